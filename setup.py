"""The compiled codec: mypyc compiles the codec (``src/tether/codec.py`` writes, ``decoding.py``
reads, ``values.py``) and what it calls on every object (``classes.py``: the kinds of objects by
value; ``transfer.py`` and ``references.py``: a connection's hooks), and the hot path around it
(``framing.py``: WebSocket frames; ``frames.py``: Tether's frames; ``protocol.py``: the state
machine every frame goes through, both ways), and the sync face's hot path (``waiter.py``: a
caller waiting for its answer; ``workers.py``: the worker pool; ``sync/reading.py`` and
``sync/transport.py``: its connection, read and written) and the asyncio face's transport
(``aio/transport.py``), into extension modules that
CPython imports in place of the ``.py`` files beside them (which stay in the wheel: the
reference, and what Pyodide and any other Python use). A compiled class cannot be subclassed by
interpreted code, so a module whose class another subclasses is compiled with it
(``references.py`` subclasses ``transfer.py``'s, ``sync/transport.py`` ``sync/reading.py``'s).
Everything else about the package is in ``pyproject.toml``.

The extension is optional. Without a C compiler, the Python headers or mypyc, the build goes on
without it and says so in one line starting with ``tether: pure-Python codec``; ``tether info``
says which codec an installation uses. ``TETHER_PURE_BUILD=1`` skips the compiled codec on
purpose. ``tests/conftest.py`` can force the pure modules in a process that has the compiled
ones (``TETHER_PURE=1``).
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# Relative paths (setuptools wants them so); mypyc names the modules from them (tether.codec).
# The list is pyproject.toml's [tool.tether.build] compiled (tests/conftest.py reads it too).
with open(ROOT / "pyproject.toml", "rb") as _file:
    COMPILED = [f"src/tether/{name}.py" for name in tomllib.load(_file)["tool"]["tether"]["build"]["compiled"]]
GROUP = "tether._codec"  # the modules' shared library: tether/_codec__mypyc.*.so


def _why_not_compiled() -> str | None:
    """Why the compiled codec cannot be built here, or None."""
    if os.environ.get("TETHER_PURE_BUILD") == "1":
        return "TETHER_PURE_BUILD=1"
    if platform.python_implementation() != "CPython":
        return f"mypyc compiles for CPython, this is {platform.python_implementation()}"
    if sys.platform == "emscripten":
        return "Pyodide runs the pure-Python codec"
    include = sysconfig.get_paths().get("include") or ""
    if not Path(include, "Python.h").is_file():
        return f"no Python headers (Python.h) in {include} (Debian: apt-get install python3-dev)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError as exc:
        return f"mypyc is not installed ({exc}; it comes with mypy, a build requirement)"
    return None


def _say_pure(reason: str) -> None:
    # One plain line (no "warning:": scripts/check_wheel.sh fails a build that warns).
    print(f"tether: pure-Python codec (the compiled one was not built: {reason})", file=sys.stderr, flush=True)


class OptionalBuildExt(build_ext):
    """build_ext that makes the mypyc extensions when it runs and, if anything fails, leaves them
    out and says so instead of failing the install."""

    def run(self) -> None:
        reason = _why_not_compiled()
        if reason is None:
            try:
                self._use_mypyc_extensions()
                super().run()
            except SystemExit as exc:  # mypyc reports its own errors (type errors) by exiting
                reason = f"mypyc failed ({exc})"
            except Exception as exc:  # no compiler, a compile error: the pure codec still works
                reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            self._drop_outputs()
            _say_pure(reason)
        else:
            print("tether: compiled codec (mypyc) built", file=sys.stderr, flush=True)

    def _use_mypyc_extensions(self) -> None:
        """Replace the placeholders with mypyc's extensions (the C it writes under build/)."""
        from mypyc.build import mypycify

        cwd = os.getcwd()
        os.chdir(ROOT)  # mypyc reads the paths and [tool.mypy] relative to the project
        try:
            extensions = mypycify(
                ["--config-file", "pyproject.toml", *COMPILED],
                opt_level="3",
                debug_level="0",
                group_name=GROUP,
                target_dir=str(ROOT / "build" / "mypyc"),
            )
        finally:
            os.chdir(cwd)
        self.distribution.ext_modules = self.extensions = extensions
        # What setuptools' finalize_options keeps per extension (it ran on the placeholders).
        self.check_extensions_list(extensions)
        for ext in extensions:
            ext._full_name = fullname = self.get_ext_fullname(ext.name)
            self.ext_map[fullname] = self.ext_map[fullname.split(".")[-1]] = ext
            ext._links_to_dynamic = ext._needs_stub = False
            ext._file_name = self.get_ext_filename(fullname)

    def _drop_outputs(self) -> None:
        """Remove any extension half-built before a failure (an import would find it)."""
        for ext in self.extensions:
            for path in {self.get_ext_fullpath(ext.name), str(ROOT / "src" / self.get_ext_filename(ext.name))}:
                Path(path).unlink(missing_ok=True)
        self.extensions = []  # (the placeholders stay: the wheel's files go where a platform wheel's go)

    def get_outputs(self) -> list[str]:
        return super().get_outputs() if self.extensions else []


# One placeholder per module, replaced by mypyc's extensions when build_ext runs: it makes the
# wheel a platform wheel, while an sdist only ever sees the .py sources.
setup(
    ext_modules=[Extension(path[4:-3].replace("/", "."), [path]) for path in COMPILED],
    cmdclass={"build_ext": OptionalBuildExt},
)
