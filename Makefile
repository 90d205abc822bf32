# alphafactory — `make help` lists the targets. `make run` and `make test` set everything up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTHON ?= python3
EXTRAS := dev,registry,cloud,xgboost,ngboost,torch,sources
INSTALLED := $(VENV)/.installed
ENV ?= local-dev
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

install: $(INSTALLED) ## Create or reuse .venv and install the project with its extras

run: $(INSTALLED) ## Run the whole pipeline locally (kfp.local) on the embedded data (ENV=local-dev)
	$(VENV)/bin/alphafactory run --env $(ENV)

lint: $(INSTALLED) ## Lint (ruff), format check and type check (mypy)
	$(VENV)/bin/ruff check src components pipelines tests bench
	$(VENV)/bin/ruff format --check src components pipelines tests bench
	$(VENV)/bin/mypy

test-python: $(INSTALLED) browser ## Python test suite, slow tests included (real kfp.local run, PostgreSQL, MLflow server)
	$(PY) -m pytest --ignore=tests/cluster $(PYTEST_ARGS)

test-fast: $(INSTALLED) ## Python tests without the slow ones
	$(PY) -m pytest --ignore=tests/cluster -m "not slow" $(PYTEST_ARGS)

test: lint test-python test-cluster ## Everything CI runs: lint, Python tests, cluster artifact checks

clean: ## Remove local run folders and caches (keeps .venv)
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install run lint test test-python test-fast clean

-include mk/*.mk
