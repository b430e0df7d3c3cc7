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
	@# The two passes run side by side (one per core), each on its own Redis database;
	@# --output-sync keeps each pass's output together.
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

test-sqlite: $(STAMP)
	TEST_REDIS_URL=redis://127.0.0.1:6379/14 TEST_DATABASE_URL=sqlite $(VENV)/bin/pytest -p no:cacheprovider

test-postgres: $(STAMP)
	TEST_REDIS_URL=redis://127.0.0.1:6379/15 TEST_DATABASE_URL=$(PG_TEST_URL) $(VENV)/bin/pytest -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache
