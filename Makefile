# The two commands: `make dev` runs the whole app, `make test` runs the whole test suite.
VENV ?= .venv
PYTHON ?= python3
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
STAMP := $(VENV)/.installed

.PHONY: dev test test-sqlite test-postgres lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/loafy dev

test: $(STAMP)
	bash .ci/services.sh
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory test-sqlite test-postgres

test-sqlite: $(STAMP)
	TEST_DATABASE_URL=sqlite $(VENV)/bin/pytest -p no:cacheprovider

test-postgres: $(STAMP)
	TEST_DATABASE_URL=$(PG_TEST_URL) $(VENV)/bin/pytest -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache
