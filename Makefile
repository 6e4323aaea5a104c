# Developer entry points. Everything runs from the project's virtualenv (.venv).
#   make setup && make test && make demo
# torch is installed first and pinned; `pip install -e .` then finds `torch>=2.4` met and leaves it.
# From plain PyPI on Linux the pin installs the CUDA build (~2.7 GB; it runs on CPU too). `make setup-cpu`
# takes the CPU-only build from PyTorch's CPU index instead (README, "About pip install torch").

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
MODELS ?= itransformer-etth1@champion

.PHONY: setup setup-cpu demo demo-pretrained test lint typecheck bench-accuracy results gpu-dry-run gpu-prepare gpu-run serve clean

setup:
	python3 -m venv $(VENV)
	$(PIP) install torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(PIP) install -e '.[dev]'

setup-cpu:
	$(MAKE) setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"

demo:
	$(VENV)/bin/seer demo

# The shipped pretrained Moirai-MoE: registered (no training), served, one zero-shot forecast.
demo-pretrained:
	$(VENV)/bin/seer demo moirai-moe-tiny

test:
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

bench-accuracy:
	$(PY) bench/accuracy.py

# docs/RESULTS.md and the README's results blocks, from bench/results/*.json
results:
	$(PY) bench/report.py

# The prepared GPU run (README, "GPU run"): dry run here; pack for a GPU without PyPI; the run itself.
GPU_OUT ?= /tmp/seer-gpu-run
GPU_BUDGET_S ?= 540
gpu-dry-run:
	PYTHON=$(PY) bench/gpu.sh --dry-run --out /tmp/seer-gpu-dry-run

gpu-prepare:
	PYTHON=$(PY) bench/gpu.sh prepare

gpu-run:
	bench/gpu.sh --out $(GPU_OUT) --budget-s $(GPU_BUDGET_S)

serve:
	$(VENV)/bin/seer serve --models $(MODELS)

# Build outputs and caches only: mlflow.db, mlruns/ and mlartifacts/ hold trained models and runs,
# so they stay (delete them by hand to start the registry afresh).
clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache lightning_logs
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
