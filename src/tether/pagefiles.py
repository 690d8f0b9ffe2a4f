"""The files a Tether page needs, without any web framework: where the Pyodide runtime is,
the page's own files (``index.html``, ``boot.mjs``), ``/tether/tether.zip`` (this ``tether``
package and the modules a server ships with ``packages=``), and the content types to serve
them with.

Both page servers use these: :func:`tether.web.serve_web` (aiohttp) and :func:`tether.asgi.app`
(any ASGI server). A server checks what it will serve when it is made (:func:`find_pyodide`,
:func:`shipped_files`: a missing runtime or a package that cannot be shipped raises
:class:`~tether.exceptions.UsageError` there, not in the browser), then zips with
:func:`zip_shipped` and serves each file with its :func:`content_type`.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from .exceptions import UsageError

__all__ = ["CONTENT_TYPES", "MAX_SHIPPED_BYTES", "PACKAGE", "PYODIDE_VERSION", "STATIC", "content_type", "find_pyodide", "package_zip", "shipped_files", "zip_shipped"]

PYODIDE_VERSION = "314.0.7"
PACKAGE = Path(__file__).parent
STATIC = PACKAGE / "web" / "static"
# What a page server ships for packages= at most (the files' total size): a page downloads it all.
MAX_SHIPPED_BYTES = 32 * 1024 * 1024
# Left out of shipped packages: bytecode and compiled extensions cannot run in the page.
_NOT_SHIPPED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll")

# Explicit types: module scripts need a JavaScript type and WebAssembly.instantiateStreaming
# needs application/wasm; the platform's mimetypes tables are not to be trusted for either.
CONTENT_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".zip": "application/zip",
    ".html": "text/html; charset=utf-8",
    ".map": "application/json",
    ".whl": "application/zip",
    ".tar": "application/x-tar",
}


def find_pyodide(pyodide_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the Pyodide runtime is: ``pyodide_dir``, else ``$TETHER_PYODIDE_DIR``, else
    ``.cache/pyodide/<version>`` in the current directory or in the checkout ``tether`` runs from.

    Raises :class:`~tether.exceptions.UsageError` saying how to fetch it when none is found.
    """
    candidates: list[Path] = []
    if pyodide_dir is not None:
        candidates.append(Path(pyodide_dir))
    else:
        env = os.environ.get("TETHER_PYODIDE_DIR")
        if env:
            candidates.append(Path(env))
        candidates.append(Path.cwd() / ".cache" / "pyodide" / PYODIDE_VERSION)
        candidates.append(PACKAGE.parents[1] / ".cache" / "pyodide" / PYODIDE_VERSION)
    for path in candidates:
        if (path / "pyodide.mjs").is_file() and (path / "pyodide.asm.wasm").is_file():
            return path.resolve()
    tried = ", ".join(str(p) for p in candidates)
    raise UsageError(
        f"no Pyodide runtime found (looked in {tried}); fetch it once with "
        f"scripts/fetch_pyodide.sh (npm pack pyodide@{PYODIDE_VERSION}) or pass pyodide_dir="
    )


def package_zip(package: Path = PACKAGE, packages: Iterable[ModuleType | str] = ()) -> bytes:
    """Zip the ``tether`` package (sources only), and the ``packages`` as a page server
    ships them (see :func:`shipped_files`), for ``pyodide.unpackArchive`` in the page."""
    return zip_shipped(shipped_files(packages), package)


def zip_shipped(shipped: Iterable[tuple[Path, str]], package: Path = PACKAGE) -> bytes:
    """``/tether/tether.zip``: the ``tether`` package's sources (and its page files), and the
    files :func:`shipped_files` listed, each under its name in the page's ``site-packages``.
    A server lists the files when it is made (so a bad ``packages=`` fails there) and zips them
    when it starts or first serves the zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            relative = path.relative_to(package)
            if not path.is_file() or "__pycache__" in relative.parts:
                continue
            if path.suffix in (".py", ".typed") or relative.parts[:2] == ("web", "static"):
                archive.write(path, str(Path(package.name) / relative))
        for path, name in shipped:
            archive.write(path, name)
    return buffer.getvalue()


def shipped_files(packages: Iterable[ModuleType | str]) -> list[tuple[Path, str]]:
    """The files a page server (``serve_web``, ``tether.asgi.app``) ships to the page for
    ``packages=``: (file, name in the page's ``site-packages``), for each top-level module or
    package, given as a module object or as its name (imported here). Raises :class:`~tether.exceptions.UsageError` saying why
    when one cannot be shipped: not importable, not top-level, part of the standard library,
    not Python source on disk (built in, compiled, zipped, a namespace package), or more than
    :data:`MAX_SHIPPED_BYTES` in all.

    A module is its ``.py`` file; a package is every file in its folder and below, except
    ``__pycache__``, names starting with ``.``, bytecode and compiled extensions, and symbolic
    links leading out of the folder. ``tether`` itself is always shipped.
    """
    if isinstance(packages, (str, ModuleType)):
        raise UsageError(f"packages= takes a list of modules or module names, not {packages!r}: packages=[...]")
    shipped: list[tuple[Path, str]] = []
    seen = {"tether"}
    total = 0
    for item in packages:
        module = _top_level_module(item)
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        for path, name in _module_files(module):
            total += path.stat().st_size
            shipped.append((path, name))
    if total > MAX_SHIPPED_BYTES:
        raise UsageError(
            f"packages= would ship {total / 2**20:.1f} MiB to every page, more than the "
            f"{MAX_SHIPPED_BYTES // 2**20} MiB allowed: list only the modules the page imports"
        )
    return shipped


def _top_level_module(item: ModuleType | str) -> ModuleType:
    if isinstance(item, ModuleType):
        module = item
    elif isinstance(item, str):
        if not all(part.isidentifier() for part in item.split(".")):
            raise UsageError(f"packages=: {item!r} is not a module name")
        if "." in item:
            raise _not_top_level(item)
        try:
            module = importlib.import_module(item)
        except Exception as exc:
            raise UsageError(
                f"packages=: cannot import {item!r} to ship it to the page ({type(exc).__name__}: {exc}); "
                "list modules importable here"
            ) from exc
    else:
        raise UsageError(f"packages= takes modules or module names, not {item!r}")
    name = module.__name__
    if "." in name:
        raise _not_top_level(name)
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        raise UsageError(f"packages=: {name!r} is part of the standard library, which the page has already")
    return module


def _not_top_level(name: str) -> UsageError:
    return UsageError(
        f"packages= lists top-level modules and packages, which the page imports from its "
        f"site-packages: list {name.partition('.')[0]!r} (all of it is shipped), not {name!r}"
    )


def _module_files(module: ModuleType) -> list[tuple[Path, str]]:
    """(file, name in site-packages) of a top-level module or package, sources on disk only."""
    name = module.__name__
    file = getattr(module, "__file__", None)
    path = Path(file) if file else None
    if hasattr(module, "__path__"):  # a package
        if path is None or path.name != "__init__.py" or not path.is_file():
            what = "a namespace package (no __init__.py)" if path is None else f"not a package of source files ({file})"
            raise UsageError(f"packages=: cannot ship {name!r} to the page: it is {what}")
        return _folder_files(path.parent, name)
    if path is None or path.suffix != ".py" or not path.is_file():
        raise UsageError(
            f"packages=: cannot ship {name!r} to the page: it is not a Python source file "
            f"({file or 'built in'}); only pure-Python modules and packages run there"
        )
    return [(path, f"{name}.py")]


def _folder_files(root: Path, name: str) -> list[tuple[Path, str]]:
    resolved_root = root.resolve()
    files: list[tuple[Path, str]] = []
    for folder, dirs, names in os.walk(root):  # never into symbolically linked folders
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for file_name in sorted(names):
            path = Path(folder) / file_name
            if file_name.startswith(".") or file_name.endswith(_NOT_SHIPPED_SUFFIXES) or not path.is_file():
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(resolved_root):
                continue  # a link out of the package: not part of it
            files.append((path, f"{name}/{path.relative_to(root).as_posix()}"))
    return files


def content_type(path: Path) -> str:
    """The ``Content-Type`` to serve ``path`` with: :data:`CONTENT_TYPES` by its suffix, else
    ``application/octet-stream`` (never the platform's ``mimetypes`` tables)."""
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")
