# Developer entry points. Everything runs from the project's virtualenv (.venv).
#   make setup && make test && make demo
# torch is installed first and pinned; `pip install -e .` then finds `torch>=2.4` met and leaves it.
# CPU-only machine: make setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
MODELS ?= itransformer-etth1@champion

.PHONY: setup demo test lint typecheck bench-accuracy serve clean

setup:
	python3 -m venv $(VENV)
	$(PIP) install torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(PIP) install -e '.[dev]'

demo:
	$(VENV)/bin/seer demo

test:
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

bench-accuracy:
	$(PY) bench/accuracy.py

serve:
	$(VENV)/bin/seer serve --models $(MODELS)

# Build outputs and caches only: mlflow.db, mlruns/ and mlartifacts/ hold trained models and runs,
# so they stay (delete them by hand to start the registry afresh).
clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache lightning_logs
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
