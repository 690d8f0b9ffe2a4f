#!/usr/bin/env bash
# The tests against the installed wheel, not the source tree (`make wheel-check`; `make test`
# runs it too):
#
# 1. `python -m build` on a clean copy of this tree: the sdist, then the wheel built from it;
#    setuptools must not warn.
# 2. What they hold: the sdist must hold every file git tracks among the sources, tests, docs,
#    scripts and benchmarks (MANIFEST.in); the wheel every file of the sdist's packages (package
#    data included), no tests, the tether command and the license as an SPDX expression, and the
#    compiled codec (setup.py: mypyc's extension modules beside the sources that pyproject.toml's
#    [tool.tether.build] compiled lists, in a wheel for this CPython and platform) unless
#    TETHER_PURE_BUILD=1 asks for none, or the build
#    said it could not make it (no C compiler or Python headers): accepted with a note, but not
#    under CI=true (.ci/run installs them).
# 3. A fresh venv with the wheel and its test and web extras, and nothing else; `tether info`
#    says which codec it runs.
# 4. pytest in the unpacked sdist with its src/ removed (nothing can import the sources, and
#    the tests' subprocesses, which put ROOT/src on PYTHONPATH, find nothing there); it fails
#    unless tether and tether_demo were imported from the venv's site-packages.
#
#   scripts/check_wheel.sh                      # the default subset (below), no browser needed
#   scripts/check_wheel.sh tests/native -x      # any pytest arguments instead
#
# BUILD_PYTHON builds and makes the venv (default .venv/bin/python, with `build` from the test
# extra, and a pip that installs into another venv: --python).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_PYTHON=${BUILD_PYTHON:-$ROOT/.venv/bin/python}
# PYTHONPATH could make the sources importable; PYTHONDONTWRITEBYTECODE makes setuptools warn
# that it does not byte-compile.
unset PYTHONPATH PYTHONDONTWRITEBYTECODE
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
started=$SECONDS

# The tests that read src/ itself (the layering rule, every module's __all__) check the sources,
# not what is installed: `make test` runs them.
DEFAULT=(
  tests/unit tests/session tests/security tests/sync tests/aio tests/web tests/demo
  --ignore=tests/unit/test_layers.py
  --deselect=tests/unit/test_exports.py::test_the_module_declares_what_it_exports
)

echo "check_wheel: building the sdist and the wheel"
mkdir "$WORK/source"
tar -c --exclude=./.git --exclude=./.venv --exclude=./.cache --exclude='./.*_cache' \
  --exclude=./.hypothesis --exclude='*.egg-info' --exclude=./build --exclude=./dist \
  --exclude=__pycache__ --exclude='*.so' . | tar -x -C "$WORK/source"
if ! "$BUILD_PYTHON" -m build --outdir "$WORK/dist" "$WORK/source" >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log"
  echo "check_wheel: the build failed" >&2
  exit 1
fi
# setuptools' own warnings ("warning: ...") and Python's (SetuptoolsDeprecationWarning: ...).
if grep -E "^warning:|Warning:" "$WORK/build.log"; then
  echo "check_wheel: the build warned (above; the whole log follows)" >&2
  cat "$WORK/build.log" >&2
  exit 1
fi
PURE_BUILD=${TETHER_PURE_BUILD:-}
if [ "$PURE_BUILD" != 1 ] && grep "^tether: pure-Python codec" "$WORK/build.log"; then
  if [ "${CI:-}" = true ]; then
    echo "check_wheel: the compiled codec did not build (above), and CI must test it" >&2
    exit 1
  fi
  echo "check_wheel: note: this wheel has the pure-Python codec only (above)"
  PURE_BUILD=1
fi
SDIST=$(echo "$WORK"/dist/*.tar.gz)
WHEEL=$(echo "$WORK"/dist/*.whl)
echo "check_wheel: built $(basename "$SDIST") and $(basename "$WHEEL") ($((SECONDS - started)) s)"

tracked=""
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  tracked=$(git -C "$ROOT" ls-files -- src tests docs scripts benchmarks examples Makefile README.md LICENSE \
    MANIFEST.in pyproject.toml)
fi
TRACKED="$tracked" TETHER_PURE_BUILD="$PURE_BUILD" "$BUILD_PYTHON" - "$SDIST" "$WHEEL" "$ROOT" <<'EOF'
import os
import sys
import tarfile
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path

sdist, wheel, root = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with tarfile.open(sdist) as tar:
    top = tar.getnames()[0].split("/")[0]
    in_sdist = {n.partition("/")[2] for n in tar.getnames() if not tar.getmember(n).isdir()}
with zipfile.ZipFile(wheel) as zf:
    in_wheel = set(zf.namelist())
    info = next(n.split("/")[0] for n in in_wheel if n.endswith(".dist-info/METADATA"))
    metadata = HeaderParser().parsestr(zf.read(f"{info}/METADATA").decode())
    entry_points = zf.read(f"{info}/entry_points.txt").decode()

problems = []
# Tracked files that still exist (one deleted and not yet committed is no loss).
tracked = [p for p in os.environ.get("TRACKED", "").splitlines() if (root / p).is_file()]
problems += [f"the sdist lacks {p} (add its type to MANIFEST.in)" for p in tracked if p not in in_sdist]
for need in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "Makefile", "docs/protocol.md", "scripts/fuzz.py",
             "benchmarks/load.py", "tests/__init__.py", "src/tether/py.typed"):
    if need not in in_sdist:
        problems.append(f"the sdist lacks {need}")
problems += [f"the sdist holds {n}" for n in in_sdist if "__pycache__" in n or n.endswith((".pyc", ".so", ".c"))]
packaged = {n.removeprefix("src/") for n in in_sdist if n.startswith(("src/tether/", "src/tether_demo/"))}
problems += [f"the wheel lacks {n} (package data in pyproject.toml?)" for n in sorted(packaged - in_wheel)]
for need in ("tether/py.typed", "tether/web/static/index.html", "tether/web/static/boot.mjs",
             "tether_demo/demo.html", f"{info}/licenses/LICENSE"):
    if need not in in_wheel:
        problems.append(f"the wheel lacks {need}")
problems += [f"the wheel holds {n}" for n in sorted(in_wheel)
             if n.split("/")[0] not in ("tether", "tether_demo", info) or n.endswith(".pyc")]
# The compiled codec: mypyc's modules and their shared library, in a wheel tagged for this Python.
with open(root / "pyproject.toml", "rb") as file:  # what setup.py compiles
    compiled = tuple(f"tether/{name}." for name in tomllib.load(file)["tool"]["tether"]["build"]["compiled"])
compiled += ("tether/_codec__mypyc.",)
extensions = sorted(n for n in in_wheel if n.endswith((".so", ".pyd")))
if os.environ.get("TETHER_PURE_BUILD") == "1":
    problems += [f"a pure-Python build, but the wheel holds {n}" for n in extensions]
else:
    problems += [f"the wheel lacks the compiled {c}*.so (did setup.py say why?)" for c in compiled
                 if not any(n.startswith(c) for n in extensions)]
    problems += [f"the wheel holds {n}, which is not the compiled codec" for n in extensions if not n.startswith(compiled)]
    if Path(wheel).name.endswith("-py3-none-any.whl"):
        problems.append(f"{Path(wheel).name} is tagged pure Python but holds extension modules")
if metadata["License-Expression"] != "MIT":
    problems.append(f"License-Expression is {metadata['License-Expression']!r}, not 'MIT'")
if "tether = tether.cli:main" not in entry_points:
    problems.append("the wheel has no tether command (entry_points.txt)")
if problems:
    sys.exit("check_wheel: " + "\ncheck_wheel: ".join(problems))
print(f"check_wheel: {top}: the sdist holds {len(in_sdist)} files ({len(tracked)} tracked ones checked), "
      f"the wheel {len(in_wheel)} ({len(extensions)} extension modules)")
EOF

echo "check_wheel: installing the wheel with its test and web extras in a fresh venv"
# The venv gets no pip of its own (BUILD_PYTHON's pip installs into it: quicker), and nothing is
# byte-compiled ahead (mypy and ruff come with the test extra, and these tests never run them).
"$BUILD_PYTHON" -m venv --without-pip "$WORK/venv"
VPY=$WORK/venv/bin/python
"$BUILD_PYTHON" -m pip --python "$VPY" install -qq --no-compile --disable-pip-version-check "$WHEEL[test,web]"
version=$(basename "$WHEEL" | cut -d- -f2)
answer=$("$WORK/venv/bin/tether" --version)
if [ "$answer" != "tether $version" ]; then
  echo "check_wheel: tether --version says '$answer', not 'tether $version'" >&2
  exit 1
fi
codec=$("$WORK/venv/bin/tether" info | grep '^codec:')
echo "check_wheel: the installed wheel's $codec"
expected="codec: compiled (mypyc)"
[ "$PURE_BUILD" != 1 ] || expected="codec: pure Python"
if [ "${codec%% (*}" != "${expected%% (*}" ]; then
  echo "check_wheel: tether info says '$codec', not '$expected'" >&2
  exit 1
fi

mkdir "$WORK/tree"
tar -xzf "$SDIST" -C "$WORK/tree" --strip-components=1
rm -rf "$WORK/tree/src"
cd "$WORK/tree"
if [ $# -eq 0 ]; then
  set -- "${DEFAULT[@]}"
fi
echo "check_wheel: pytest $* (in $WORK/tree, without src/; $((SECONDS - started)) s so far)"
"$VPY" - "$@" <<'EOF'
import sys
import sysconfig
from pathlib import Path

import pytest

code = pytest.main(["-p", "no:cacheprovider", "-q", *sys.argv[1:]])
site = Path(sysconfig.get_paths()["purelib"]).resolve()
for name in ("tether", "tether_demo"):
    module = sys.modules.get(name) or __import__(name)
    where = Path(module.__file__).resolve()
    if site not in where.parents:
        sys.exit(f"check_wheel: the tests imported {name} from {where}, not from the venv ({site})")
    print(f"check_wheel: {name} came from {where.parent}")
sys.exit(code)
EOF
echo "check_wheel: passed in $((SECONDS - started)) s"
