# Two commands on a fresh machine: `make run` and `make test`. Both install first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
PYTHON ?= python3
PG_URL ?= postgres://postgres@127.0.0.1:5432/apertur
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install browser run test test-sqlite test-postgres lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --inexact --quiet
	@touch $@

# Debian's Chromium for the Playwright tests (a test tool's own browser download does not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/apertur migrate
	DEBUG=$${DEBUG:-1} $(BIN)/apertur demo
	DEBUG=$${DEBUG:-1} $(BIN)/apertur serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check apertur tests bench conftest.py
	$(BIN)/ruff format --check apertur tests bench conftest.py
	$(BIN)/mypy apertur

format: install
	$(BIN)/ruff format apertur tests bench conftest.py
	$(BIN)/ruff check --fix apertur tests bench conftest.py

# The whole suite on SQLite, then again on PostgreSQL. With CI=true an unreachable PostgreSQL fails.
test: install browser lint test-sqlite test-postgres

test-sqlite: install
	@echo "== tests on SQLite =="
	env -u DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: install
	@echo "== tests on PostgreSQL ($(PG_URL)) =="
	@if $(BIN)/python -m apertur.core.pgcheck "$(PG_URL)"; then \
	  DATABASE_URL="$(PG_URL)" $(BIN)/pytest $(PYTEST_ARGS); \
	elif [ "$${CI:-}" = "true" ]; then \
	  echo "PostgreSQL is required when CI=true" >&2; exit 1; \
	else \
	  echo "PostgreSQL not reachable: skipping the PostgreSQL run (CI=true makes this a failure)"; \
	fi

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
