#!/usr/bin/env bash
# Setup step of the sequential-baseline benchmark: RecBole 1.2.1 into a private folder, never into the
# project's dependencies (its metadata pins ray<=2.6.3). --no-deps, plus what its lower-level API imports and
# the project's venv does not already have (numpy, scipy, pandas, torch, tqdm, pyyaml, scikit-learn, psutil are
# there). The benchmark runs its own epoch loop, so tensorboard (Trainer only) and plotly (hyper-tuning only)
# are not needed.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-$HERE/../../.venv/bin/python}"
"$PY" -m pip install -q --no-deps --target "$HERE/work/recbole-site" \
  recbole==1.2.1 colorlog==4.7.2 colorama==0.4.4 thop==0.1.1.post2209072238 tabulate texttable
"$PY" -c "import sys; sys.path.insert(0, '$HERE'); from recbole_compat import import_recbole; print('recbole', import_recbole())"
