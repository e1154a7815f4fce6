# Conveyor — the two commands are `make run` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKSUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(CHECKSUM)
STAMP := $(VENV)/.installed-test-$(CHECKSUM)
# pytest-xdist processes for `make test` (TEST_PROCESSES=0 runs the suite in one)
TEST_PROCESSES ?= 3

.DEFAULT_GOAL := help
.PHONY: help run test lint bench clean postgres-binaries chromium pgbouncer screenshots

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Conveyor needs Python 3.11 or newer: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What running needs (about 550 MB and half a minute, once); `make test` adds the test, dev and bench extras.
$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "Installing what Conveyor needs to run into $(VENV) (once; pip's progress follows)…"
	$(BIN)/python -m pip install --progress-bar on -e .
	@rm -f $(VENV)/.installed-run-* && touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "Installing Conveyor with its test, dev and bench extras into $(VENV) (once)…"
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	@rm -f $(VENV)/.installed-test-* $(VENV)/.installed-run-* && touch $@ $(RUN_STAMP)

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

# tests/integration/test_pgbouncer.py runs Conveyor through Debian's PgBouncer (skipped without it).
pgbouncer:
	@if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing PgBouncer for the pooler tests (Debian package pgbouncer)…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; \
	else \
	  echo "PgBouncer not found: install it (apt-get install pgbouncer) for tests/integration/test_pgbouncer.py, which is skipped without it." >&2; \
	fi

run: $(RUN_STAMP) postgres-binaries ## start the system (embedded Postgres kept in .conveyor/ when DATABASE_URL is unset; ARGS=--fresh starts empty)
	$(BIN)/conveyor dev $(ARGS)

test: $(STAMP) postgres-binaries chromium pgbouncer lint ## install what is needed, check style and layering, run the whole suite
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist worksteal

lint: $(STAMP) ## ruff, mypy (strict on jobs/), import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy jobs stores worker api compute kinds conveyor migrations bench
	$(BIN)/lint-imports

bench: $(STAMP) postgres-binaries pgbouncer ## print store, worker and HTTP figures, beside pgbench's and PgQueuer's
	$(BIN)/python -m bench.store
	$(BIN)/python -m bench.peers
	$(BIN)/python -m bench.pickup_parts
	$(BIN)/python -m bench.horizon
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.flow_control
	$(BIN)/python -m bench.research_save
	$(BIN)/python -m bench.pooler
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.grid
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.dashboard_stats

screenshots: $(STAMP) postgres-binaries chromium ## capture docs/screenshots/*.png of the dashboard
	$(BIN)/python -m tests.browser.screenshots

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
