# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint format params mlflow-ui benchmark clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -c "import aidetector, torch, lightning, mlflow, dvc" 
	touch $(STAMP)

install: $(STAMP)

## Run the whole pipeline (prepare -> train -> evaluate ...) on the embedded demo data.
demo: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc metrics show

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

test-fast: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow and not ddp and not real_data"

lint: $(STAMP)
	$(BIN)/ruff check src tests pipelines benchmarks
	$(BIN)/ruff format --check src tests pipelines benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests pipelines benchmarks
	$(BIN)/ruff check --fix src tests pipelines benchmarks

## Re-compose params.yaml from conf/ (what `dvc exp run -S ...` does).
params: $(STAMP)
	$(BIN)/aidetector params

mlflow-ui: $(STAMP)
	$(BIN)/mlflow server --backend-store-uri sqlite:///mlflow.db \
		--artifacts-destination ./mlartifacts --host 127.0.0.1 --port 5000

benchmark: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf data/raw/demo data/prepared models checkpoints reports/eval/*/png
