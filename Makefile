# The workbench in three targets. `.venv` in the repo root is created when missing and reused.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PIP_QUIET := 2>&1 | { grep -v "WARNING: Location" || true; }

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

# reinstall only when the package's dependencies change (idempotent and quick otherwise)
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip $(PIP_QUIET)
	$(VENV)/bin/python -m pip install -q -e '.[dev,download]' $(PIP_QUIET)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/foley demo --out outputs/demo

test: setup
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow and not notebook"

lint: setup
	$(VENV)/bin/ruff check foleylib tests notebooks

clean:
	rm -rf outputs .pytest_cache
