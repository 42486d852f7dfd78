# Two commands on a fresh machine: `make run` and `make test`. Both install first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
# pyproject.toml wants 3.11: python3.11 where there is one (python3 may be another version), else python3.
PYTHON ?= $(or $(shell command -v python3.11 2>/dev/null),python3)
PG_URL ?= postgres://postgres@127.0.0.1:5432/apertur
HOST ?= 127.0.0.1
# make run's ports: Apertur, the demo partner site, the PayPal emulator (e.g. make run PORT=8010 SITE_PORT=8011 PAYPAL_PORT=8012).
PORT ?= 8000
SITE_PORT ?= 8001
PAYPAL_PORT ?= 8002

.PHONY: install browser node sdk sdk-test run test test-sqlite test-postgres lint format bench clean

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

# Node builds and tests the aptr-connect SDK (make run does not need it: the bundle is committed).
node:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "Installing Debian's nodejs and npm for the SDK build"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }

sdk/js/node_modules/.installed: sdk/js/package.json sdk/js/package-lock.json
	cd sdk/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Rebuild the SDK into apertur/static/sdk/ (and its SRI hash into docs/sdk.md).
sdk: node sdk/js/node_modules/.installed
	cd sdk/js && npm run build

# Type-check and unit-test the SDK, and fail if the committed bundle differs from a fresh build.
sdk-test: sdk
	cd sdk/js && npm run typecheck && npm test
	@changed=$$(git status --porcelain -- apertur/static/sdk docs/sdk.md); \
	if [ -n "$$changed" ]; then \
	  echo "The committed SDK bundle does not match its source (run make sdk and commit):" >&2; \
	  echo "$$changed" >&2; git --no-pager diff --stat -- apertur/static/sdk docs/sdk.md >&2; exit 1; fi

# Apertur on $(PORT) and, in the background: the demo partner site on http://partner.localhost:$(SITE_PORT), the PayPal
# emulator on $(PAYPAL_PORT) (its webhooks come back to /webhooks/paypal) and the worker, whose payout schedule pays
# the demo partner at start through the emulator. APERTUR_BASE_URL follows PORT (links in mail, the partner site's
# SDK). The trap stops them all when the recipe ends (Ctrl-C included: background jobs ignore SIGINT on their own).
RUN_ENV = DEBUG=$${DEBUG:-1} APERTUR_BASE_URL=$${APERTUR_BASE_URL:-http://localhost:$(PORT)} \
  PAYPAL_API_BASE=$${PAYPAL_API_BASE:-http://127.0.0.1:$(PAYPAL_PORT)}

run: install
	$(RUN_ENV) $(BIN)/apertur migrate
	$(RUN_ENV) $(BIN)/apertur demo
	@mkdir -p var; export $(RUN_ENV) \
	  PAYPAL_WEBHOOK_ID=$${PAYPAL_WEBHOOK_ID:-EMULATORWEBHOOK01} PAYOUT_SCHEDULER_INTERVAL=$${PAYOUT_SCHEDULER_INTERVAL:-15}; \
	$(BIN)/apertur paypal-emulator --host 127.0.0.1 --port $(PAYPAL_PORT) --advance-after 5 \
	  --webhook-url http://127.0.0.1:$(PORT)/webhooks/paypal >var/paypal-emulator.log 2>&1 & emu=$$!; \
	$(BIN)/apertur partner-site --host $(HOST) --port $(SITE_PORT) & site=$$!; \
	sleep 1; $(BIN)/apertur worker >var/worker.log 2>&1 & worker=$$!; \
	trap 'kill $$site $$emu $$worker 2>/dev/null; wait $$site $$emu $$worker 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	echo "PayPal emulator on http://127.0.0.1:$(PAYPAL_PORT) (log: var/paypal-emulator.log); worker log: var/worker.log"; \
	echo "DEBUG=$$DEBUG $(BIN)/apertur serve --host $(HOST) --port $(PORT)"; \
	$(BIN)/apertur serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check apertur tests bench examples sdk/python conftest.py
	$(BIN)/ruff format --check apertur tests bench examples sdk/python conftest.py
	$(BIN)/mypy apertur
	cd sdk/python && ../../$(BIN)/mypy --strict src/apertur_connect

format: install
	$(BIN)/ruff format apertur tests bench examples sdk/python conftest.py
	$(BIN)/ruff check --fix apertur tests bench examples sdk/python conftest.py

# The whole suite on SQLite and again on PostgreSQL, the two runs side by side (each is one process; together
# they keep both cores busy), each run's output printed when it ends. With CI=true an unreachable PostgreSQL fails.
# Side by side, a test that gives the same answer on either database runs once: the browser tests (a UI through a
# live server) in the PostgreSQL run, the production database under it; the tests whose processes use a SQLite
# file of their own or no database (marker `own_database`) in the SQLite run. Every other test runs in both;
# tests/test_suite_split.py checks that the two selections together hold every test. Without a PostgreSQL to
# reach (outside CI) the SQLite run takes everything; `make test-sqlite` or `make test-postgres` alone runs all.
SQLITE_SHARE = not browser or own_database
POSTGRES_SHARE = not own_database

test: install browser lint sdk-test
	@echo "== the suite on SQLite and on PostgreSQL, side by side: each run prints its results when it ends (several minutes) =="
	@if $(BIN)/python -m apertur.core.pgcheck "$(PG_URL)" 2>/dev/null; then share="SIDE_BY_SIDE=1"; else share=""; fi; \
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres $$share

# Its own Redis database for the test that flushes one (tests/test_concurrency.py): the PostgreSQL run's
# multi-process test takes a free one among 15..8 at the same time.
test-sqlite: install
	@echo "== tests on SQLite$(if $(SIDE_BY_SIDE), (-m '$(SQLITE_SHARE)')) =="
	env -u DATABASE_URL TEST_REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/7} $(BIN)/pytest $(if $(SIDE_BY_SIDE),-m "$(SQLITE_SHARE)") $(PYTEST_ARGS)

test-postgres: install
	@echo "== tests on PostgreSQL ($(PG_URL))$(if $(SIDE_BY_SIDE), (-m '$(POSTGRES_SHARE)')) =="
	@if $(BIN)/python -m apertur.core.pgcheck "$(PG_URL)"; then \
	  DATABASE_URL="$(PG_URL)" $(BIN)/pytest $(if $(SIDE_BY_SIDE),-m "$(POSTGRES_SHARE)") $(PYTEST_ARGS); \
	elif [ "$${CI:-}" = "true" ]; then \
	  echo "PostgreSQL is required when CI=true" >&2; exit 1; \
	else \
	  echo "PostgreSQL not reachable: skipping the PostgreSQL run (CI=true makes this a failure)"; \
	fi

# Micro-benchmarks (bench/run.py), then the side-by-side HTTP benchmark (bench/http, docs/performance.md):
# Apertur on SQLite and PostgreSQL against django-oauth-toolkit and node-oidc-provider, installed here into
# the ignored bench/.peers/. Figures only, never pass/fail. BENCH_ARGS="--duration 10 --warmup 2 --only ...".
bench: install browser node bench/.peers/dot-venv/.installed bench/.peers/oidc/node_modules/.installed
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "Installing Debian's wrk for the HTTP benchmark"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/run.py
	$(BIN)/python bench/sdk_popup.py
	$(BIN)/python bench/http/harness.py $(BENCH_ARGS)
	$(BIN)/python bench/money.py $(BENCH_MONEY_ARGS)
	$(BIN)/python bench/housekeeping.py

bench/.peers/dot-venv/.installed: bench/http/peers/dot/requirements.txt
	@test -x bench/.peers/dot-venv/bin/python || $(PYTHON) -m venv bench/.peers/dot-venv
	bench/.peers/dot-venv/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	@touch $@

bench/.peers/oidc/node_modules/.installed: bench/http/peers/oidc/package.json
	@mkdir -p bench/.peers/oidc && cp $< bench/.peers/oidc/package.json
	cd bench/.peers/oidc && npm install --no-audit --no-fund --loglevel=error
	@touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
