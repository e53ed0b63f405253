# The two commands of the README: `make demo` and `make test`. Both create or update .venv by themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
NODE_APPS := src/hmacguard/lab/apps/node
STAMP  := $(VENV)/.installed

.PHONY: venv demo docs test lint layers typecheck pytest bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(NODE_APPS)/package-lock.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "hmacguard needs Python 3.10 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@command -v npm >/dev/null || { echo "make: npm (Node.js 20) is needed for the lab's Express targets" >&2; exit 2; }
	npm ci --prefix $(NODE_APPS) --no-audit --no-fund --loglevel=error
	touch $(STAMP)

demo: venv
	$(VENV)/bin/hmacguard demo

# The docs made from the code (rule docstrings); the tests fail while they are stale.
docs: venv
	$(PY) docs/generate.py

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

layers: venv
	$(VENV)/bin/lint-imports --no-cache

typecheck: venv
	$(VENV)/bin/mypy

# Two workers, a test file to each at a time (a file's servers and module fixtures stay together):
# the suite is mostly waiting on real servers, and run serially it passed the 15-minute bound on
# slower machines. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
pytest: venv
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint layers typecheck pytest

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(NODE_APPS)/node_modules
