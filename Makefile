# mmcell: `make demo` and `make test` do all the set-up on a fresh machine (see README.md).
PY := .venv/bin/python
SHELL := /bin/bash

.PHONY: install test lint demo clean-venv

install:
	bash tools/misc/install.sh

lint: install
	$(PY) -m ruff check .
	.venv/bin/lint-imports  # the floors of mmcell import only downward (pyproject.toml [tool.importlinter])

test: install lint
	$(PY) -m pytest tests

demo: install
	bash tools/misc/demo.sh

clean-venv:
	rm -rf .venv
