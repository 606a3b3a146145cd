# The two commands: `make run` and `make test`. Everything else is a helper they use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test install lint typecheck contracts migrations-check check schemathesis bench-audit bench-packs bench-gate clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Release Gate needs Python 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(INSTALLED)

# The embedded default: SQLite, Celery eager, files under var/.
run: export DEBUG = 1
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# The OpenID provider the single sign-on tests start (Node's oidc-provider, pinned in tests/oidc).
# Without Node.js those tests are skipped with the reason printed; .ci/run installs it.
OIDC_MODULES := tests/oidc/node_modules/.package-lock.json
$(OIDC_MODULES): tests/oidc/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the single sign-on tests will be skipped (install Node.js to run them)"; fi

# The whole suite; SQLite unless DATABASE_URL says otherwise. It starts many Python processes (a
# pytest-xdist worker per core, the commands and servers the tests run): they share the compiled
# modules and pytest's rewritten test modules in __pycache__ (git ignores it) instead of each
# compiling them anew, even where PYTHONDONTWRITEBYTECODE is set (an empty value unsets it).
test: export PYTHONDONTWRITEBYTECODE =
test: install $(OIDC_MODULES)
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports --no-logo

migrations-check: export DEBUG = 1
migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run

check: lint typecheck contracts migrations-check

# The audit trail benchmark (docs/benchmarks.md): needs PostgreSQL, whose scratch database it
# creates and drops (BENCH_ARGS="--database-url postgres://…/name" to point elsewhere).
bench-audit: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/audit.py $(BENCH_ARGS)

# The evidence-pack benchmark (docs/benchmarks.md): one signed changelog pack, and a population of
# 10,000 changes beside reportlab alone (a few minutes; BENCH_ARGS=--no-docs leaves the docs alone).
bench-packs: install
	$(BIN)/python bench/packs.py $(BENCH_ARGS)

# The gate under load (docs/benchmarks.md): gunicorn and PostgreSQL on 127.0.0.1, wrk with 16
# connections, the gate beside a trivial endpoint, with a small and a large history (about 5
# minutes). Needs PostgreSQL and Debian's wrk (apt-get install -y wrk); creates and drops its
# scratch database (BENCH_ARGS="--database-url postgres://…/name" to point elsewhere).
bench-gate: install
	@command -v wrk >/dev/null || { echo "bench-gate needs wrk: apt-get install -y wrk"; exit 1; }
	$(BIN)/python bench/gate.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
