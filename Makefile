# The two set-up commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The web portal (portal/) is built into the package, where `nubes serve` finds it.
PORTAL_MODULES := portal/node_modules/.package-lock.json
PORTAL_BUILT := src/nubes/portal_dist/index.html
PORTAL_SOURCES := $(shell find portal/src -type f ! -name '*.test.ts') \
	portal/index.html portal/vite.config.ts portal/tsconfig.json portal/package-lock.json

.PHONY: run test lint bench migrate clean portal portal-test portal-e2e

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(PORTAL_MODULES): portal/package.json portal/package-lock.json
	cd portal && npm ci --no-audit --no-fund
	touch $@

$(PORTAL_BUILT): $(PORTAL_MODULES) $(PORTAL_SOURCES)
	cd portal && npm run build

portal: $(PORTAL_BUILT)

portal-test: $(PORTAL_MODULES)
	cd portal && npx vitest run

# In headless Debian chromium, installed from Debian's packages when missing;
# never downloads a browser.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Debian's docker-compose validates compose.yaml offline (no Docker engine).
COMPOSE := /usr/bin/docker-compose
$(COMPOSE):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose

portal-e2e: $(STAMP) $(PORTAL_BUILT) $(CHROMIUM)
	cd portal && node e2e/run.mjs

run: $(STAMP) $(PORTAL_BUILT)
	$(BIN)/nubes migrate
	$(BIN)/nubes serve

migrate: $(STAMP)
	$(BIN)/nubes migrate

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: $(TEST_STAMP) $(COMPOSE) lint portal-test
	# pytest exits 5 when it collects no test: that is not a failure of the code.
	$(BIN)/pytest -q || { rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest: no tests collected'; exit 0; fi; exit $$rc; }
	$(MAKE) portal-e2e

bench: $(TEST_STAMP)
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/callbacks.py
	$(BIN)/python bench/dtls.py
	$(BIN)/python bench/partitions.py

clean:
	rm -rf $(VENV) var build dist src/*.egg-info portal/node_modules src/nubes/portal_dist
