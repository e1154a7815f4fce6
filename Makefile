# Conveyor — the two commands are `make run` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help run test lint bench pgbench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Conveyor needs Python 3.11 or newer: set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP) ## start the system (embedded Postgres when DATABASE_URL is unset)
	$(BIN)/conveyor dev

test: $(STAMP) lint ## install what is needed, check style and layering, run the whole suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff, mypy (strict on jobs/), import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy jobs conveyor migrations
	$(BIN)/lint-imports

bench: $(STAMP) ## print store throughput figures and pgbench's on the same server
	$(BIN)/python -m bench.store

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
