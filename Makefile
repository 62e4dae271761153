# Two commands for a fresh clone:  make demo  and  make test.
PYTHON ?= python3
VENV ?= .venv
# torch first and pinned: a bare "torch" requirement can pull a multi-GB CUDA build.
# Override for your platform, e.g.  make test TORCH="torch==2.13.0 --index-url ..."
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(STAMP)

## demo: create the environment, index example photos, answer queries (ZSV_MODEL picks the model)
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## test: create the environment and run the whole test suite, on every core (at most 4)
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadgroup

## lint: ruff (lint + format check), mypy --strict on the package, and the import layers
lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## bench: every benchmark: tables beside same-run baselines, JSON in benchmarks/results/
bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

## docs: build the documentation site into site/ (strict: broken links fail)
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) demo-data site test-artifacts
