# The two commands of the README: `make demo` and `make test`. Each builds .venv from scratch
# when it is missing or pyproject.toml changed.
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYODIDE := .cache/pyodide/314.0.7/pyodide.mjs

.PHONY: demo test lint unit wheel-check browser-deps bench fuzz load clean

# (_version.py too: the installed metadata says the version, tests/unit/test_version.py checks it;
# setup.py and the package's sources: the editable install compiles the modules that
# pyproject.toml's [tool.tether.build] lists in place with mypyc, into src/tether/**/*.so, or says
# it uses the pure-Python codec; `tether info` prints which. tests/conftest.py refuses to run
# compiled modules older than a source they were built from; any source is a superset of those.)
BUILT_FROM := $(shell find src/tether -name '*.py')
$(VENV)/.test-installed: pyproject.toml setup.py src/tether/_version.py $(BUILT_FROM)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,browser-test]'
	@$(BIN)/tether info | grep '^codec:' | sed 's/^/make: tether /'
	touch $@

$(VENV)/.bench-installed: $(VENV)/.test-installed
	$(BIN)/python -m pip install --quiet -e '.[test,browser-test,bench]'
	touch $@

# Pyodide from the npm registry (never a CDN). Without npm the browser tests say they did not
# run (and fail under CI=true), so a failure here does not stop the rest.
$(PYODIDE):
	-scripts/fetch_pyodide.sh

# Debian's Chromium for the browser tests, where this user may install it (root).
browser-deps:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium) || \
	  echo "make: could not install chromium: the browser tests will say they did not run"

demo: $(VENV)/.test-installed $(PYODIDE) browser-deps
	$(BIN)/python -m tether demo

# mypyc compiles in `python -m build`'s isolated environment, where websockets is not installed
# (its types are Any there): the compiled modules are checked as they are typed there too, with
# a Python that has no packages, or the wheel would quietly come out pure-Python.
NO_DEPS := build/no-deps-python
COMPILED_SOURCES = $(shell $(BIN)/python -c "import tomllib; print(' '.join(f'src/tether/{n}.py' for n in \
  tomllib.load(open('pyproject.toml', 'rb'))['tool']['tether']['build']['compiled']))")
lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests benchmarks examples setup.py
	$(BIN)/mypy
	test -x $(NO_DEPS)/bin/python || $(PYTHON) -m venv --without-pip $(NO_DEPS)
	$(BIN)/mypy --python-executable $(NO_DEPS)/bin/python $(COMPILED_SOURCES)

# The whole suite with the compiled codec (where it built), then the codec's own tests, the
# fuzz corpus and the hostile suite again with the pure-Python one (tests/conftest.py).
CODEC_TESTS := tests/unit/test_codec.py tests/unit/test_protocol_doc.py tests/unit/test_limits.py \
  tests/unit/test_frames.py tests/unit/test_protocol.py tests/fuzz tests/security
test: lint $(PYODIDE) browser-deps
	$(BIN)/python -m pytest
	TETHER_PURE=1 $(BIN)/python -m pytest -q $(CODEC_TESTS)
	BUILD_PYTHON=$(BIN)/python scripts/check_wheel.sh

unit: $(VENV)/.test-installed
	$(BIN)/python -m pytest tests/unit tests/session -q

# Build the sdist and the wheel, install the wheel in a fresh venv, run tests against it (not
# against src/): scripts/check_wheel.sh says what it checks. `make test` runs it last.
wheel-check: $(VENV)/.test-installed
	BUILD_PYTHON=$(BIN)/python scripts/check_wheel.sh

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/pipelining.py
	$(BIN)/python benchmarks/handoff.py

# A longer fuzzing round than the one in `make test` (FUZZ_SECONDS, default 300).
FUZZ_SECONDS ?= 300
fuzz: $(VENV)/.test-installed
	$(BIN)/python scripts/fuzz.py --seconds $(FUZZ_SECONDS)

# Many concurrent clients in several processes against `tether serve` and tether.aio.serve,
# then a soak of 1,000,000 calls (docs/benchmarks.md has the figures).
load: $(VENV)/.test-installed
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build $(shell find src/tether -name "*.so")
