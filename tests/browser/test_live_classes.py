"""Classes and functions by value across the version gap: CPython 3.11 natively, Pyodide's
CPython 3.14 in the page. Code travels as source, so each side defines the other's classes."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import tether

from .conftest import LoopThread, PageDriver, new_page, pyodide_or_skip


def native_square_class() -> type:
    """A class only the native side has (local to this function: no import finds it)."""

    @dataclasses.dataclass
    class Square:
        side: float

        def area(self) -> float:
            return self.side * self.side

    return Square


class CodeRoot:
    """The native root of this module's server, which accepts code from its pages."""

    def describe(self, shape: Any) -> list[Any]:
        return [type(shape).__qualname__, shape.area(), list(sys.version_info[:2])]

    def make_square(self, side: float) -> Any:
        return tether.register(native_square_class())(side)  # registered: its source may go to pages

    def apply(self, func: Any, value: Any) -> Any:
        return func(value)


PAGE_MODULE = '''
import dataclasses


@dataclasses.dataclass
class Triangle:
    base: float
    height: float

    def area(self):
        return self.base * self.height / 2


def tenfold(x):
    return 10 * x
'''


@pytest.fixture(scope="module")
def code_server() -> Iterator[Any]:
    pyodide_dir = pyodide_or_skip()
    import tether.web
    runner = LoopThread()

    async def start() -> Any:
        return await tether.web.serve_web(
            CodeRoot(), port=0, pyodide_dir=pyodide_dir, accept_code=True, send_tracebacks=True
        )

    server = runner.run(start())
    try:
        yield server
    finally:
        runner.run(server.close())
        runner.stop()


def test_classes_and_functions_cross_between_python_311_and_314(browser: Any, code_server: Any) -> None:
    page: PageDriver = new_page(browser, code_server.url + "?connect=0")
    try:
        result = page.run(
            f"""
import json, pathlib, sys, importlib
pathlib.Path("/home/pyodide/page_shapes.py").write_text({PAGE_MODULE!r})
importlib.invalidate_caches()
sys.path.insert(0, "/home/pyodide")
import page_shapes
import tether, tether.aio

tether.register(page_shapes.Triangle)   # its source may go to the native side, which asks for it
peer = await tether.aio.connect(accept_code=True)
native = await peer.root.describe(page_shapes.Triangle(3, 4))   # the page's class, defined natively
square = await peer.root.make_square(3)                          # the native class, defined here
applied = await peer.root.apply(tether.by_value(page_shapes.tenfold), 4)
out = [native, type(square).__qualname__, square.area(), list(sys.version_info[:2]), applied]
await peer.close()
json.dumps(out)
"""
        )
        native, square_name, square_area, page_version, applied = result
        assert native == ["Triangle", 6.0, list(sys.version_info[:2])]
        assert square_name.endswith("native_square_class.<locals>.Square") and square_area == 9.0
        assert page_version[0] == 3 and page_version[1] >= 12 and page_version != native[2]
        assert applied == 40
        assert page.foreign == []
    finally:
        page.close()
