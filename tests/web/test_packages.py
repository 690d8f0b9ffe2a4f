"""``serve_web(..., packages=[...])``: the page's own modules, shipped in ``/tether/tether.zip``.

What is shipped, and that whatever cannot be shipped is refused when ``serve_web`` is called
(not later, in the browser). The browser half (a page imports what was shipped) is
``tests/browser/test_packages.py``.
"""

from __future__ import annotations

import io
import sys
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("aiohttp")

import tether.pagefiles
import tether.web
from tether.exceptions import UsageError
from tether.web import package_zip, serve_web, shipped_files


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for packages made by the test; they leave sys.modules after it."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        del sys.modules[name]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def make_package(site: Path, outside: Path) -> str:
    name = unique("pagepkg")
    root = site / name
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("VALUE = 42\n")
    (root / "page.py").write_text("async def main():\n    return 'page main'\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "mod.py").write_text("def hello():\n    return 'hello from the page package'\n")
    (root / "data.json").write_text('{"shipped": true}')
    (root / ".env").write_text("SECRET=1\n")  # hidden: not shipped
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "page.cpython-311.pyc").write_bytes(b"\0")
    (root / "fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")  # compiled: not shipped
    (outside / "secret.txt").write_text("not part of the package\n")
    (root / "escape.txt").symlink_to(outside / "secret.txt")  # a link out of the folder
    (root / "inside.txt").symlink_to(root / "data.json")  # a link within it is a file of it
    return name


def zip_names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_a_package_is_shipped_whole_but_for_caches_hidden_compiled_and_links_out(site: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    name = make_package(site, outside)
    module = __import__(name)
    mod_name = unique("pagemod")
    (site / f"{mod_name}.py").write_text("X = 1\n")
    shipped = {arcname for _, arcname in shipped_files([module, mod_name, "tether", module])}
    assert shipped == {
        f"{name}/__init__.py",
        f"{name}/page.py",
        f"{name}/data.json",
        f"{name}/inside.txt",
        f"{name}/sub/__init__.py",
        f"{name}/sub/mod.py",
        f"{mod_name}.py",
    }
    names = zip_names(package_zip(packages=[module, mod_name]))
    assert len(names) == len(set(names))  # nothing twice
    assert "tether/__init__.py" in names and "tether/web/static/boot.mjs" in names
    assert set(names) - {n for n in names if n.startswith("tether/")} == shipped


async def test_the_server_serves_them_in_tether_zip(site: Path, tmp_path: Path, pyodide_dir: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    name = make_package(site, outside)
    async with serve_web(object(), port=0, pyodide_dir=pyodide_dir, packages=[name]) as server:
        import asyncio

        def fetch() -> bytes:
            with urllib.request.urlopen(server.url + "tether/tether.zip", timeout=10) as response:
                return response.read()  # type: ignore[no-any-return]

        data = await asyncio.get_running_loop().run_in_executor(None, fetch)
    names = zip_names(data)
    assert f"{name}/sub/mod.py" in names and "tether/protocol.py" in names
    assert not any(".env" in n or "secret" in n or "escape" in n or "__pycache__" in n for n in names)
    assert zipfile.ZipFile(io.BytesIO(data)).read(f"{name}/data.json") == b'{"shipped": true}'


def test_without_packages_only_tether_is_shipped() -> None:
    assert {n.split("/")[0] for n in zip_names(package_zip())} == {"tether"}


# -- refused at serve time, saying why ---------------------------------------------------------


def refused(pyodide_dir: Path, packages: Any) -> str:
    with pytest.raises(UsageError) as info:
        serve_web(object(), port=0, pyodide_dir=pyodide_dir, packages=packages)
    return str(info.value)


def test_a_name_that_does_not_import_is_refused_when_serve_web_is_called(pyodide_dir: Path) -> None:
    message = refused(pyodide_dir, ["no_such_module_for_tether_tests"])
    assert "cannot import 'no_such_module_for_tether_tests'" in message
    assert "ModuleNotFoundError" in message


def test_a_module_that_fails_to_import_is_refused_with_its_error(site: Path, pyodide_dir: Path) -> None:
    name = unique("broken")
    (site / f"{name}.py").write_text("raise RuntimeError('broken on purpose')\n")
    message = refused(pyodide_dir, [name])
    assert f"cannot import {name!r}" in message and "RuntimeError: broken on purpose" in message


@pytest.mark.parametrize(
    "bad",
    ["../etc/passwd", "/etc/passwd", "os.path/../x", "", "a b", "pkg:main"],
)
def test_names_that_are_not_module_names_are_refused_before_any_import(pyodide_dir: Path, bad: str) -> None:
    assert "is not a module name" in refused(pyodide_dir, [bad])


def test_submodules_are_refused_naming_their_top_level_package(pyodide_dir: Path) -> None:
    message = refused(pyodide_dir, ["no_such_package_for_tether_tests.page"])  # refused before importing
    assert "list 'no_such_package_for_tether_tests'" in message
    message = refused(pyodide_dir, ["tether.web"])
    assert "list 'tether'" in message and "not 'tether.web'" in message
    assert "list 'tether'" in refused(pyodide_dir, [tether.web])


@pytest.mark.parametrize("name", ["json", "os", "sys", "asyncio"])
def test_the_standard_library_is_refused(pyodide_dir: Path, name: str) -> None:
    assert "part of the standard library" in refused(pyodide_dir, [name])


def test_a_single_string_or_other_objects_are_refused(pyodide_dir: Path) -> None:
    assert "a list of modules" in refused(pyodide_dir, "tether_demo")
    assert "module names, not 42" in refused(pyodide_dir, [42])
    assert "module names, not" in refused(pyodide_dir, [Path("tether_demo")])


def test_modules_that_are_not_source_files_are_refused(site: Path, pyodide_dir: Path) -> None:
    namespace = unique("nspkg")
    (site / namespace).mkdir()
    (site / namespace / "part.py").write_text("")
    assert "namespace package" in refused(pyodide_dir, [namespace])
    fake = ModuleType(unique("made_here"))  # no file at all
    assert "not a Python source file" in refused(pyodide_dir, [fake])


def test_the_total_size_is_bounded(site: Path, tmp_path: Path, pyodide_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    name = make_package(site, outside)
    monkeypatch.setattr(tether.pagefiles, "MAX_SHIPPED_BYTES", 10)  # where shipped_files reads it
    assert "more than the 0 MiB allowed" in refused(pyodide_dir, [name])
