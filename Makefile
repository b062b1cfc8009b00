# Two commands for a new user: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test bench soak cluster cluster-status cluster-stop format clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "todo-mcp needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Serve MCP on http://127.0.0.1:5000/mcp and REST on http://127.0.0.1:8000, on the embedded SQLite database.
run: $(STAMP)
	$(BIN)/todo-mcp db upgrade
	$(BIN)/todo-mcp serve --demo --with-api

## Lint, strict type checks and the whole test suite.
test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

## Load benchmark (about 15 minutes): needs wrk and PostgreSQL; writes bench/results/ and the README table.
bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python bench/run.py

## A soak of the production shape (SOAK_ARGS="--minutes 30 --pgbouncer"): memory of every process sampled.
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

## The production shape on one machine: serve and api processes behind nginx on PostgreSQL (docs/DEPLOY.md).
## CLUSTER_ARGS="--serve 3 --pgbouncer" for more processes and PgBouncer in between.
cluster: $(STAMP)
	$(BIN)/python deploy/cluster.py start $(CLUSTER_ARGS)

cluster-status: $(STAMP)
	$(BIN)/python deploy/cluster.py status

cluster-stop: $(STAMP)
	$(BIN)/python deploy/cluster.py stop

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
