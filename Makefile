# Every target works on a fresh machine with only Python 3.11 and make.
# Python 3.11 or newer: python3.11 if installed, else python3 (checked below).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LAKENODE_ACCESS_KEY ?= lakenode
LAKENODE_SECRET_KEY ?= lakenode-secret

.PHONY: run test lint bench fmt clean screenshots

# Re-install when a package appears: an editable install maps packages when it is made.
$(STAMP): pyproject.toml $(wildcard node/__init__.py api/__init__.py storage/__init__.py replication/__init__.py)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "lakenode needs Python >= 3.11 (found $(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	@echo "lakenode on http://127.0.0.1:9000  data=./data"
	@echo "  access key: $(LAKENODE_ACCESS_KEY)"
	@echo "  secret key: $(LAKENODE_SECRET_KEY)"
	$(BIN)/lakenode serve --data-dir ./data --listen 127.0.0.1:9000 \
		--access-key $(LAKENODE_ACCESS_KEY) --secret-key $(LAKENODE_SECRET_KEY)

# Two pytest workers by default (TEST_WORKERS=0: all in one process); --dist loadfile keeps each
# test module in one worker, so a module's shared node fixture starts once.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check node api storage replication tests
	$(BIN)/ruff format --check node api storage replication tests
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format node api storage replication tests
	$(BIN)/ruff check --fix node api storage replication tests

# The console's pictures in docs/console.md, taken by its browser tests in headless Chromium.
screenshots: $(STAMP)
	LAKENODE_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/console

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
