# deploy-compare: the two commands a newcomer needs.
#   make deploy-compare   set up .venv, install, run the pipeline (quick profile), print the report path
#   make test             set up the same way and run the whole test suite (unit + integration)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PROFILE ?= quick
ARGS ?=
PYTEST_ARGS ?=

.PHONY: deploy-compare test lint install install-test system-deps clean images converters

deploy-compare: install
	$(BIN)/deploy-compare run --profile $(PROFILE) $(ARGS)

test: install-test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff, and the layers contract (imports point down: app -> loadtests -> serving -> models -> core)
lint: install-test
	$(BIN)/ruff check .
	scripts/lint-layers.sh

install: system-deps $(STAMP)

install-test: install $(TEST_STAMP)

# torch==2.13.0 resolves to the CPU wheel on this machine's disk (find-links); never a CUDA build.
$(STAMP): requirements.lock pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.lock
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-test.lock
	touch $(TEST_STAMP)

# The base, toolkit and TorchServe images (serving/images.py): reused when their content hash is tagged.
# Needs a Docker engine (scripts/docker-engine.sh start); builds offline where no registry is reachable.
images: install
	$(BIN)/python -m deploy_compare.serving.images

# The cross-framework converters' venvs (litert-torch, onnx2tf: their pins conflict with the lock), created once
# within a time bound and cached in $$DEPLOY_COMPARE_CACHE or ~/.cache/deploy-compare/venvs (6-9 min each here).
# The full profile runs the converters (and creates the venvs itself when absent); the quick profile leaves them out.
converters: install
	$(BIN)/python -m deploy_compare.models.exporters.converters

# TorchServe's frontend needs Java 17.
system-deps:
	@scripts/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache
