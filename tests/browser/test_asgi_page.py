"""A page served by ``tether.asgi.app(..., pages=True)`` under a real uvicorn: it boots
Pyodide from the app, connects back to the app's ``/ws`` with its default main, and the two
sides call each other (the native side drives the page's DOM; the page calls native objects,
which call the page back while it waits).

Uses this folder's ``browser`` fixture (headless Chromium); uvicorn runs as in ``tests/asgi``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..asgi.server import Uvicorn, wait_until
from .conftest import new_page, unavailable
from .services import Hub, Native

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def asgi_server() -> Iterator[tuple[Uvicorn, Any]]:
    import tether.asgi
    from tether.exceptions import UsageError
    from tether.pagefiles import find_pyodide

    try:
        pyodide_dir = find_pyodide()
    except UsageError as exc:
        unavailable(str(exc))
    hub = Hub()
    app = tether.asgi.app(
        lambda peer: Native(hub, peer), pages=True, pyodide_dir=pyodide_dir, send_tracebacks=True
    )
    with Uvicorn(app) as server:
        yield server, app


def test_the_asgi_apps_page_boots_connects_and_calls_back(
    browser: Any, asgi_server: tuple[Uvicorn, Any]
) -> None:
    server, app = asgi_server
    driver = new_page(browser, server.url + "/")  # the default main connects to /ws
    try:
        assert driver.boot["version"] == "314.0.7"
        wait_until(lambda: len(app.peers) == 1, timeout=30, what="the page's connection")
        page = app.peers[0].root  # from this (non-loop) thread: the sync face, blocking
        page.title = "set by the ASGI app's side"
        assert driver.page.title() == "set by the ASGI app's side"
        item = page.document.createElement("li")
        item.textContent = "added natively"
        page.document.body.appendChild(item)
        assert driver.page.locator("li").inner_text() == "added natively"
        result = driver.run(
            """
import json, tether.browser.page as tp

class Seven:
    def value(self):
        return 41

native = tp.peer.root
json.dumps([await native.add(3, 4), await native.visit(Seven()), await native.value()])
"""
        )
        assert result == [7, 42, 99]  # visit: the native side calls the page back while it waits
        assert driver.foreign == []
    finally:
        driver.close()
    wait_until(lambda: app.peers == [], timeout=10, what="the page's connection to end")


def test_a_page_served_under_a_starlette_mount_connects_under_that_mount(browser: Any) -> None:
    """Mounted at /tether next to the application's own route, the page at /tether/ loads its
    files from there and its default main connects to /tether/ws (next to the page), not /ws."""
    import tether.asgi
    from tether.exceptions import UsageError
    from tether.pagefiles import find_pyodide

    starlette = pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    try:
        pyodide_dir = find_pyodide()
    except UsageError as exc:
        unavailable(str(exc))
    assert starlette is not None
    app = tether.asgi.app(lambda peer: Native(Hub(), peer), pages=True, pyodide_dir=pyodide_dir)
    site = Starlette(
        routes=[Route("/", lambda request: PlainTextResponse("the site's own page")), Mount("/tether", app=app)],
        lifespan=app.lifespan,
    )
    with Uvicorn(site) as server:
        driver = new_page(browser, server.url + "/tether/")
        try:
            wait_until(lambda: len(app.peers) == 1, timeout=30, what="the page's connection under the mount")
            assert driver.run("import tether.browser.page as tp\nawait tp.peer.root.add(3, 4)") == 7
            assert driver.foreign == []
        finally:
            driver.close()
