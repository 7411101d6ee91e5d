# The two set-up commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/nubes migrate
	$(BIN)/nubes serve

migrate: $(STAMP)
	$(BIN)/nubes migrate

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: $(TEST_STAMP) lint
	# pytest exits 5 when it collects no test: that is not a failure of the code.
	$(BIN)/pytest -q || { rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest: no tests collected'; exit 0; fi; exit $$rc; }

bench: $(TEST_STAMP)
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/callbacks.py
	$(BIN)/python bench/dtls.py

clean:
	rm -rf $(VENV) var build dist src/*.egg-info
