"""``serve_web(..., packages=[...])`` in a real page: a page imports the packages its server
ships, and its ``<meta name="tether-main">`` may name a function in one of them (the demo's
page is ``tether_demo.page:main``). What is shipped and what is refused: ``tests/web``."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LoopThread, PageDriver, new_page, pyodide_or_skip

PAGE_PY = '''
import importlib.resources, json, os

import tether.aio

from . import VALUE
from .sub import mod

peer = None


class PageRoot:
    def value(self):
        return VALUE


async def main():
    """Connect back and report what this page imported (the boot script runs this)."""
    global peer
    import {single}

    here = os.path.dirname(__file__)
    peer = await tether.aio.connect(root=PageRoot())
    await peer.root.report({{
        "module": __name__,
        "file": __file__,
        "hello": mod.hello(),
        "single": {single}.X,
        "data": json.loads(importlib.resources.files(__package__).joinpath("data.json").read_text()),
        "listing": sorted(os.listdir(here)),
    }})
    return peer
'''

INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>packages=</title>
<meta name="tether-main" content="{name}.page:main">
<script type="module" src="/tether/boot.mjs"></script>
</head><body><p id="tether-status">Loading Python…</p></body></html>
"""


class Reports:
    """The native root of each page: it keeps what pages report."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.arrived = threading.Event()

    def report(self, facts: dict[str, Any]) -> str:
        self.reports.append(dict(facts))
        self.arrived.set()
        return "thanks"


class Shipped:
    def __init__(self, runner: LoopThread, server: Any, name: str, single: str, reports: Reports) -> None:
        self.runner = runner
        self.server = server
        self.name = name
        self.single = single
        self.reports = reports


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipped]:
    pyodide_dir = pyodide_or_skip()
    import tether.web
    site = tmp_path_factory.mktemp("site")
    name, single = f"shipped_{uuid.uuid4().hex[:8]}", f"single_{uuid.uuid4().hex[:8]}"
    root = site / name
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("VALUE = 42\n")
    (root / "page.py").write_text(PAGE_PY.format(single=single))
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "mod.py").write_text("def hello():\n    return 'hello from a shipped package'\n")
    (root / "data.json").write_text('{"shipped": true}')
    (root / ".env").write_text("SECRET=1\n")
    (site / f"{single}.py").write_text("X = 'a single module'\n")
    index = site / "index.html"
    index.write_text(INDEX.format(name=name), encoding="utf-8")
    sys.path.insert(0, str(site))
    reports = Reports()
    runner = LoopThread()

    async def start() -> Any:
        return await tether.web.serve_web(
            lambda peer: reports, port=0, pyodide_dir=pyodide_dir, index=index, packages=[name, single]
        )

    try:
        server = runner.run(start())
        try:
            yield Shipped(runner, server, name, single, reports)
        finally:
            runner.run(server.close())
    finally:
        runner.stop()
        sys.path.remove(str(site))
        for module in [m for m in sys.modules if m.split(".")[0] in (name, single)]:
            del sys.modules[module]


@pytest.fixture(scope="module")
def page(browser: Any, shipped: Shipped) -> Iterator[PageDriver]:
    driver = new_page(browser, shipped.server.url)
    try:
        yield driver
    finally:
        driver.close()
    assert driver.foreign == [], f"the page tried to reach other hosts: {driver.foreign}"


def test_the_page_runs_a_main_from_a_shipped_package(page: PageDriver, shipped: Shipped) -> None:
    assert shipped.reports.arrived.wait(30), f"no report from the page; console: {page.console}"
    facts = shipped.reports.reports[0]
    name = shipped.name
    assert facts["module"] == f"{name}.page"
    assert facts["file"].endswith(f"/site-packages/{name}/page.py")  # unpacked like tether itself
    assert facts["hello"] == "hello from a shipped package"
    assert facts["single"] == "a single module"
    assert facts["data"] == {"shipped": True}
    assert facts["listing"] == ["__init__.py", "data.json", "page.py", "sub"]  # no .env, no caches


def test_page_code_imports_the_shipped_packages(page: PageDriver, shipped: Shipped) -> None:
    result = page.run(
        f"import json, {shipped.name}, {shipped.single}\n"
        f"from {shipped.name}.sub import mod\n"
        f"json.dumps([{shipped.name}.VALUE, mod.hello(), {shipped.single}.X])"
    )
    assert result == [42, "hello from a shipped package", "a single module"]


def test_the_native_side_reaches_the_shipped_page_root(page: PageDriver, shipped: Shipped) -> None:
    assert shipped.reports.arrived.wait(30)
    peer = shipped.server.peers[0]

    async def value() -> Any:
        root = await peer.fetch_root()
        return await root.value()

    assert shipped.runner.run(value()) == 42
