# The two commands of the README: `make demo` and `make test`. Both create or update .venv by themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
NODE_APPS := src/hmacguard/lab/apps/node
STAMP  := $(VENV)/.installed

.PHONY: venv compiled pure wheel demo docs test lint layers typecheck pytest bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(NODE_APPS)/package-lock.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "hmacguard needs Python 3.10 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@command -v npm >/dev/null || { echo "make: npm (Node.js 20) is needed for the lab's Express targets" >&2; exit 2; }
	npm ci --prefix $(NODE_APPS) --no-audit --no-fund --loglevel=error
	touch $(STAMP)

# The guard's hot path compiled in place by mypyc (hatch_build.py), rebuilt when a source changes;
# without a C compiler it stays pure Python (one line says so). `make pure` (or HMACGUARD_PURE=1)
# removes the compiled extensions: the pure-Python guard, which behaves the same.
COMPILED := $(VENV)/.compiled
SOURCES  := $(shell find src/hmacguard -name '*.py' -not -path '*/node_modules/*')
compiled: $(COMPILED)

$(COMPILED): $(STAMP) hatch_build.py $(SOURCES)
	$(PY) hatch_build.py
	touch $(COMPILED)

pure: venv
	$(PY) hatch_build.py --clean
	rm -f $(COMPILED)

ifdef HMACGUARD_PURE
GUARD_BUILD := pure
else
GUARD_BUILD := compiled
endif

# A wheel with the compiled guard, tagged for this platform, in dist/.
wheel: venv
	HATCH_BUILD_HOOK_ENABLE_CUSTOM=true $(PY) -m pip wheel --no-deps --no-build-isolation -w dist .

demo: $(GUARD_BUILD)
	$(VENV)/bin/hmacguard demo

# The docs made from the code (rule docstrings); the tests fail while they are stale.
docs: venv
	$(PY) docs/generate.py

lint: venv
	$(VENV)/bin/ruff check src tests bench hatch_build.py
	$(VENV)/bin/ruff format --check src tests bench hatch_build.py

layers: venv
	$(VENV)/bin/lint-imports --no-cache

typecheck: venv
	$(VENV)/bin/mypy

# Two workers, a test file to each at a time (a file's servers and module fixtures stay together):
# the suite is mostly waiting on real servers, and run serially it passed the 15-minute bound on
# slower machines. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
pytest: $(GUARD_BUILD)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint layers typecheck pytest

bench: $(GUARD_BUILD)
	$(PY) bench/run_all.py

clean:
	$(PYTHON) hatch_build.py --clean
	rm -rf $(VENV) $(NODE_APPS)/node_modules
