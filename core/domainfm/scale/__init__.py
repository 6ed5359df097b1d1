"""Running domainfm on Ray: batch prediction and embedding over Ray Data, tuning with Ray Tune (or Optuna alone),
data-parallel fine-tuning under torchrun / accelerate / Ray Train.

Install the ``scale`` extra (``pip install -e ".[scale]"``). Nothing here imports Ray at module level: importing
``domainfm`` or running a command that does not ask for Ray never loads it (``domainfm.scale.cluster`` does, when
called).
"""
