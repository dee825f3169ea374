# mmcell: `make demo` and `make test` do all the set-up on a fresh machine (see README.md).
PY := .venv/bin/python
SHELL := /bin/bash
# The suite runs in pytest-xdist workers; tests/conftest.py builds the shared fixtures (data, the one trained
# model) once for all of them. TEST_WORKERS=1 runs it in one process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope)

.PHONY: help install test test-fast lint demo clean-venv

help:
	@echo "make install    set up .venv (torch CPU, mmcv 2.1.0 built with ops, mmdet, mmcell); ~10-13 min the first time"
	@echo "make demo       train + evaluate the quickstart on built-in synthetic data (offline)"
	@echo "make test       lint + the whole suite (what CI runs), $(TEST_WORKERS) workers"
	@echo "make test-fast  lint + the fast lane: pytest -m 'not slow' (< 3 min on 2 cores; the edit-test loop)"
	@echo "make lint       ruff + lint-imports (the floors of mmcell import only downward)"
	@echo "make clean-venv remove .venv"

install:
	bash tools/misc/install.sh

lint: install
	$(PY) -m ruff check .
	.venv/bin/lint-imports  # the floors of mmcell import only downward (pyproject.toml [tool.importlinter])

test: install lint
	$(PYTEST) tests

test-fast: install lint
	$(PYTEST) -m "not slow" tests

demo: install
	bash tools/misc/demo.sh

clean-venv:
	rm -rf .venv
