# cbl: every command a user needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# pytest workers: 2 keeps the 2-core CI busy without oversubscribing torch threads
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install test test-all clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv (when missing) and install cbl into it with the dev extras

test: $(STAMP) ## run the fast test suite (installs into .venv first)
	$(PY) -m pytest -q -m "not slow" -n $(PYTEST_WORKERS)

test-all: $(STAMP) ## run every test, the slow and data-dependent ones too
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

clean: ## remove caches (keeps .venv, data/ and outputs/)
	rm -rf .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
