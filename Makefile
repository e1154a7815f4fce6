# Conveyor — the two commands are `make run` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help run test lint bench clean postgres-binaries chromium screenshots

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Conveyor needs Python 3.11 or newer: set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	@rm -f $(VENV)/.installed-* && touch $@

# The embedded cluster needs initdb/pg_ctl. On a Debian machine where we are root and they are
# missing, install them; anywhere else, say what to do (or use DATABASE_URL/TEST_DATABASE_URL).
postgres-binaries:
	@if [ -n "$$DATABASE_URL$$TEST_DATABASE_URL" ] || command -v pg_ctl >/dev/null \
	   || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || [ -n "$$PG_BIN_DIR" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing the PostgreSQL server binaries (Debian package postgresql)…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
	  echo "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (apt-get install postgresql, brew install postgresql@15) or set DATABASE_URL / TEST_DATABASE_URL." >&2; exit 1; \
	fi

# The dashboard's browser tests drive the system's Chromium (never a downloaded browser build).
# On a Debian machine where we are root and it is missing, install it; elsewhere, say what to do.
chromium:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Chromium for the dashboard's browser tests (Debian package chromium)…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "Chromium not found: install it (apt-get install chromium) for tests/browser, which are skipped without it." >&2; \
	fi

run: $(STAMP) postgres-binaries ## start the system (embedded Postgres when DATABASE_URL is unset)
	$(BIN)/conveyor dev

test: $(STAMP) postgres-binaries chromium lint ## install what is needed, check style and layering, run the whole suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff, mypy (strict on jobs/), import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy jobs worker api compute conveyor migrations bench
	$(BIN)/lint-imports

bench: $(STAMP) postgres-binaries ## print store, worker and HTTP figures, beside pgbench's and PgQueuer's
	$(BIN)/python -m bench.store
	$(BIN)/python -m bench.peers
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.grid

screenshots: $(STAMP) postgres-binaries chromium ## capture docs/screenshots/*.png of the dashboard
	$(BIN)/python -m tests.browser.screenshots

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
