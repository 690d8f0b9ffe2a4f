"""Booting a page offline from the native web server, and connecting back."""

from __future__ import annotations

import urllib.request

from .conftest import PageDriver, Web


def test_page_boots_offline_and_connects(page: PageDriver, web: Web) -> None:
    assert page.boot["version"] == "314.0.7"
    assert page.boot["jspi"] is True
    print(
        f"\nboot: {page.boot_seconds:.2f} s from goto to tether imported (in page: {page.boot['bootMs']} ms)"
    )
    result = page.run(
        """
import json, sys, tether.aio
async with tether.aio.connect() as p:
    r = await p.root.add(3, 4)
    info = p.info
json.dumps([r, info.get("language"), sys.platform])
"""
    )
    assert result == [7, "python", "emscripten"]
    assert page.foreign == []


def test_the_page_never_loads_websockets(page: PageDriver) -> None:
    loaded = page.run(
        "import json, sys, tether, tether.aio, tether.browser\n"
        "json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('websockets', 'aiohttp')))"
    )
    assert loaded == []


def test_server_serves_runtime_with_explicit_types(web: Web) -> None:
    expected = {
        "pyodide/pyodide.asm.wasm": "application/wasm",
        "pyodide/pyodide.mjs": "text/javascript",
        "tether/boot.mjs": "text/javascript",
        "tether/tether.zip": "application/zip",
        "": "text/html; charset=utf-8",
    }
    for path, content_type in expected.items():
        with urllib.request.urlopen(web.url + path, timeout=10) as response:
            assert response.headers["Content-Type"] == content_type, path
    for bad in ("pyodide/..%2Fpyproject.toml", "pyodide/.hidden", "pyodide/missing.wasm"):
        try:
            urllib.request.urlopen(web.url + bad, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, bad
        else:
            raise AssertionError(f"{bad} was served")
