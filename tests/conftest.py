"""Which codec the tests run against.

Where the compiled codec is installed (``setup.py``: mypyc builds the modules that
``pyproject.toml``'s ``[tool.tether.build] compiled`` lists into extension modules that CPython
imports in place of the ``.py`` files), the tests use it; ``TETHER_PURE=1`` makes this process import the pure-Python modules
instead, before anything imports tether (``make test`` runs the codec's tests both ways). So
does a compiled codec built in place (``src/tether/*.so``, by the editable install) that is older
than a source it was built from: it would test stale code (``make`` rebuilds it). Processes that
the tests start import whichever their Python finds. pytest's header says which codec this run
uses.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

PURE = os.environ.get("TETHER_PURE") == "1"
ROOT = Path(__file__).resolve().parents[1]
with open(ROOT / "pyproject.toml", "rb") as _file:  # setup.py compiles what this list names
    _COMPILED_PATHS = tuple(tomllib.load(_file)["tool"]["tether"]["build"]["compiled"])
COMPILED_MODULES = tuple("tether." + name.replace("/", ".") for name in _COMPILED_PATHS)


def _built_from(package: Path) -> list[Path]:
    """What the compiled modules were built from: their sources, and the modules of ``package``
    they import (mypyc compiles in imported constants and checks imported signatures at run
    time), read from the sources' import statements."""
    sources = {package / f"{name}.py" for name in _COMPILED_PATHS}
    found = set(sources)
    for source in sources:
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = source.parents[node.level - 1]
            if node.module:  # from .module import name, from .package import module
                base = base.joinpath(*node.module.split("."))
                candidates = [base.with_suffix(".py"), base / "__init__.py"]
            else:  # from . import module
                candidates = []
            candidates += [base / f"{alias.name}.py" for alias in node.names]
            found.update(c for c in candidates if c.is_file() and package in c.parents)
    return sorted(found)


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` file of a compiled module, next to its extension module."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        for entry in path or ():
            source = Path(entry, fullname.rpartition(".")[2] + ".py")
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def _stale_extensions() -> list[str]:
    """In a source tree (an editable install builds the compiled modules in place): what makes
    them older than a source they were built from. Looked up without importing tether's modules."""
    spec = importlib.util.find_spec("tether")
    folder = Path(spec.origin).resolve().parent if spec is not None and spec.origin else None
    if folder is None or not (folder.parents[1] / "setup.py").is_file():
        return []
    stale = []
    sources = _built_from(folder)
    for name in _COMPILED_PATHS:
        module = folder / name
        for built in module.parent.glob(module.name + ".*.so"):
            when = built.stat().st_mtime
            stale += [f"{built.relative_to(folder)} is older than {source.relative_to(folder)}" for source in sources
                      if source.stat().st_mtime > when]
    return stale


# A compiled codec older than its sources is left alone: this run uses the pure one (and says so).
STALE = _stale_extensions()
if PURE or STALE:
    imported = [name for name in COMPILED_MODULES if name in sys.modules]
    if imported:
        raise RuntimeError(f"the pure codec was asked for, but {imported} were imported before tests/conftest.py")
    sys.meta_path.insert(0, _PureFinder())

import tether.codec  # noqa: E402 - after the finder


def pytest_report_header() -> str:
    where = Path(tether.codec.__file__ or "?").name
    how = " (TETHER_PURE=1)" if PURE else ""
    if STALE and not PURE:
        how = (" (the compiled one is stale: " + "; ".join(STALE) + "; rebuild it with make or "
               "`pip install -e .`)")
    return f"tether codec: {tether.codec.implementation()}{how}, {where}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if (PURE or STALE) and tether.codec.implementation() != "pure Python":
        raise pytest.UsageError("the pure codec was asked for, but the compiled codec was imported")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STALE and not PURE:
        terminalreporter.write_line(
            "tether: these tests ran the pure-Python codec: the compiled one in src/tether is older "
            "than its sources (make, or `pip install -e .`, rebuilds it)", yellow=True
        )


@pytest.fixture
def pyodide_dir(tmp_path: Path) -> Path:
    """A stand-in for the Pyodide runtime: serve_web only checks that its two files exist."""
    folder = tmp_path / "pyodide"
    folder.mkdir()
    (folder / "pyodide.mjs").write_text("export {}")
    (folder / "pyodide.asm.wasm").write_bytes(b"\0asm")
    return folder
