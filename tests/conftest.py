"""Which codec the tests run against.

Where the compiled codec is installed (``setup.py``: mypyc builds ``tether/codec.py``,
``decoding.py``, ``values.py``, ``classes.py``, ``transfer.py``, ``references.py``, ``framing.py``
and ``frames.py`` into extension modules that CPython imports in place of the ``.py`` files), the tests use it; ``TETHER_PURE=1`` makes this process import the pure-Python modules
instead, before anything imports tether (``make test`` runs the codec's tests both ways). So
does a compiled codec built in place (``src/tether/*.so``, by the editable install) that is older
than a source it was built from: it would test stale code (``make`` rebuilds it). Processes that
the tests start import whichever their Python finds. pytest's header says which codec this run
uses.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

PURE = os.environ.get("TETHER_PURE") == "1"
COMPILED_MODULES = (  # what setup.py compiles
    "tether.codec", "tether.decoding", "tether.values", "tether.classes", "tether.transfer",
    "tether.references", "tether.framing", "tether.frames", "tether.protocol",
)  # fmt: skip
# What the compiled modules were built from: their sources, and the modules they import from
# tether (words' constants are compiled in; the others' signatures are checked at run time).
BUILT_FROM = (
    "codec", "decoding", "values", "classes", "transfer", "references", "words", "hooks", "exceptions", "limits",
    "access", "dispatch", "events", "exposure", "gifts", "proxy", "framing", "frames", "protocol", "_version",
    "errors", "held", "hello", "tether_object",
)  # fmt: skip


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
    for name in COMPILED_MODULES:
        for built in folder.glob(name.rpartition(".")[2] + ".*.so"):
            when = built.stat().st_mtime
            stale += [f"{built.name} is older than {base}.py" for base in BUILT_FROM
                      if (folder / f"{base}.py").stat().st_mtime > when]
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
