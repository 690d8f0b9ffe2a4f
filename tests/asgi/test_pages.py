"""``tether.asgi.app(..., pages=True)``: the page, the boot script, ``tether.zip`` and the
Pyodide runtime over ASGI HTTP (content types, HEAD, conditional requests, methods), no path
out of the runtime's folder (a hostile list of requests sent byte for byte), and the app
mounted inside a Starlette application under a prefix, next to the application's own route.

The Pyodide runtime is a stand-in (the app checks that two files exist), so no browser is
needed; ``tests/browser/test_asgi_page.py`` boots the real one in Chromium.
"""

from __future__ import annotations

import http.client
import io
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
import tether.aio
import tether.asgi
from tether.exceptions import ConnectionLost, HandshakeFailed

from ..native.services import Calculator
from .server import Uvicorn, wait_until

pytestmark = pytest.mark.timeout(60)

SECRET = b"SECRET-NEXT-TO-THE-RUNTIME"


@pytest.fixture
def pyodide_dir(tmp_path: Path) -> Path:
    """A stand-in runtime folder, with a secret beside it and hidden files and folders in it."""
    folder = tmp_path / "pyodide"
    folder.mkdir()
    (folder / "pyodide.mjs").write_text("export const loadPyodide = null;\n")
    (folder / "pyodide.asm.wasm").write_bytes(
        b"\0asm" + bytes(range(256)) * 2048
    )  # 512 KiB: streamed in chunks
    (folder / "python_stdlib.zip").write_bytes(b"PK\5\6" + b"\0" * 18)
    (folder / ".hidden").write_bytes(SECRET)
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.js").write_bytes(SECRET)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return folder


def get(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client-side normalization)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


HOSTILE = [
    "/pyodide/../secret.txt",
    "/pyodide/..%2Fsecret.txt",
    "/pyodide/..%2fsecret.txt",
    "/pyodide/%2e%2e/secret.txt",
    "/pyodide/%2e%2e%2fsecret.txt",
    "/pyodide/%252e%252e%252fsecret.txt",
    "/pyodide/..%5csecret.txt",
    "/pyodide/..\\secret.txt",
    "/pyodide/.hidden",
    "/pyodide/%2ehidden",
    "/pyodide/sub/inner.js",
    "/pyodide/sub%2finner.js",
    "/pyodide/.",
    "/pyodide/..",
    "/pyodide/",
    "/pyodide//secret.txt",
    "/pyodide/pyodide.mjs%00.txt",
    "/pyodide/%00",
    "/pyodide/../../../../../../etc/passwd",
    "/pyodide/" + "..%2F" * 12 + "etc/passwd",
    "/tether/../secret.txt",
    "/tether/%2e%2e/%2e%2e/pyproject.toml",
    "/../secret.txt",
    "//secret.txt",
    "/index.html/../../secret.txt",
    "/secret.txt",
    "/tether/boot.mjs/../../secret.txt",
]


def assert_nothing_leaks(port: int, prefix: str = "") -> None:
    for target in HOSTILE:
        status, body = raw_get(port, prefix + target)
        assert status in (400, 404), (target, status)
        assert SECRET not in body and b"root:" not in body, target


@pytest.fixture
def served(pyodide_dir: Path) -> Iterator[tuple[Uvicorn, tether.asgi.TetherApp]]:
    app = tether.asgi.app(Calculator(), pages=True, pyodide_dir=pyodide_dir)
    with Uvicorn(app) as server:
        yield server, app


def test_the_page_and_runtime_are_served_with_explicit_types(
    served: tuple[Uvicorn, Any], pyodide_dir: Path
) -> None:
    server, _ = served
    expected = {
        "/": "text/html; charset=utf-8",
        "/index.html": "text/html; charset=utf-8",
        "/tether/boot.mjs": "text/javascript",
        "/tether/tether.zip": "application/zip",
        "/pyodide/pyodide.mjs": "text/javascript",
        "/pyodide/pyodide.asm.wasm": "application/wasm",
        "/pyodide/python_stdlib.zip": "application/zip",
    }
    for path, content_type in expected.items():
        status, headers, body = get(server.url + path)
        assert (status, headers["content-type"]) == (200, content_type), path
        assert int(headers["content-length"]) == len(body), path
        assert headers["x-content-type-options"] == "nosniff"
    assert get(server.url + "/pyodide/pyodide.asm.wasm")[2] == (pyodide_dir / "pyodide.asm.wasm").read_bytes()
    assert b"./tether/boot.mjs" in get(server.url + "/")[2]  # relative: works under a prefix
    assert b"import.meta.url" in get(server.url + "/tether/boot.mjs")[2]
    assert get(server.url + "/tether/boot.mjs")[1]["cache-control"] == "no-cache"
    names = zipfile.ZipFile(io.BytesIO(get(server.url + "/tether/tether.zip")[2])).namelist()
    assert "tether/protocol.py" in names and "tether/web/static/boot.mjs" in names
    assert get(server.url + "/favicon.ico")[0] == 204


def test_head_conditional_requests_and_methods(served: tuple[Uvicorn, Any]) -> None:
    server, _ = served
    status, headers, body = get(server.url + "/pyodide/pyodide.asm.wasm", method="HEAD")
    assert (status, body) == (200, b"") and int(headers["content-length"]) == 4 + 256 * 2048
    etag = headers["etag"]
    status, headers, body = get(server.url + "/pyodide/pyodide.asm.wasm", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert get(server.url + "/pyodide/pyodide.asm.wasm", headers={"If-None-Match": '"other"'})[0] == 200
    status, headers, _ = get(server.url + "/tether/tether.zip", method="HEAD")
    assert status == 200 and int(headers["content-length"]) > 10_000
    status, headers, _ = get(server.url + "/", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_no_request_reaches_a_file_outside_the_runtimes_folder(served: tuple[Uvicorn, Any]) -> None:
    server, _ = served
    assert_nothing_leaks(server.port)
    assert raw_get(server.port, "/pyodide/pyodide.mjs")[0] == 200  # the check itself can pass


def test_the_endpoint_path_over_http_and_an_app_without_pages() -> None:
    with Uvicorn(tether.asgi.app(Calculator())) as server:
        assert get(server.url + "/ws")[0] == 426
        assert get(server.url + "/")[0] == 426
        status, _, body = get(server.url + "/index.html")
        assert status == 404 and b"Tether" in body
        assert get(server.url + "/pyodide/pyodide.mjs")[0] == 404
        assert get(server.url + "/ws", method="HEAD")[0] == 426


# -- mounted in Starlette ------------------------------------------------------------------------


@pytest.fixture
def mounted(pyodide_dir: Path) -> Iterator[tuple[Uvicorn, tether.asgi.TetherApp]]:
    starlette = pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    assert starlette
    tether_app = tether.asgi.app(Calculator(), pages=True, pyodide_dir=pyodide_dir)

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello from the application's own route")

    application = Starlette(
        routes=[Route("/hello", hello), Mount("/tether", app=tether_app)], lifespan=tether_app.lifespan
    )
    with Uvicorn(application) as server:
        yield server, tether_app


def test_mounted_at_a_prefix_next_to_the_applications_own_route(mounted: tuple[Uvicorn, Any]) -> None:
    server, tether_app = mounted
    assert get(server.url + "/hello") == (
        200,
        get(server.url + "/hello")[1],
        b"hello from the application's own route",
    )
    with tether.connect(server.ws_url + "/tether/ws") as peer:
        assert peer.root.add(3, 4) == 7
        assert peer.root.apply(lambda x: x + 1, 1) == 2
        assert len(tether_app.peers) == 1
    with pytest.raises(HandshakeFailed):
        tether.connect(server.ws_url + "/ws")  # not the mount: Starlette has no such route
    with pytest.raises(HandshakeFailed, match="404"):
        tether.connect(server.ws_url + "/tether/elsewhere")


async def test_mounted_async_face(mounted: tuple[Uvicorn, Any]) -> None:
    server, _ = mounted
    async with tether.aio.connect(server.ws_url + "/tether/ws") as peer:
        assert await peer.root.add(3, 4) == 7


def test_mounted_page_files_are_under_the_prefix(mounted: tuple[Uvicorn, Any]) -> None:
    server, _ = mounted
    status, headers, body = get(server.url + "/tether")  # redirected to /tether/, where relative links work
    assert (
        status == 200
        and headers["content-type"] == "text/html; charset=utf-8"
        and b"./tether/boot.mjs" in body
    )
    for path, content_type in {
        "/tether/": "text/html; charset=utf-8",
        "/tether/tether/boot.mjs": "text/javascript",
        "/tether/tether/tether.zip": "application/zip",
        "/tether/pyodide/pyodide.asm.wasm": "application/wasm",
    }.items():
        status, headers, _ = get(server.url + path)
        assert (status, headers["content-type"]) == (200, content_type), path
    assert get(server.url + "/tether/boot.mjs")[0] == 404  # only under the prefix
    assert_nothing_leaks(server.port, "/tether")


def test_starlettes_lifespan_closes_the_mounted_apps_connections(pyodide_dir: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    tether_app = tether.asgi.app(Calculator())
    server = Uvicorn(Starlette(routes=[Mount("/t", app=tether_app)], lifespan=tether_app.lifespan)).start()
    try:
        peer = tether.connect(server.ws_url + "/t/ws")
        wait_until(lambda: len(tether_app.peers) == 1, what="the connection")
        server.stop()
        with pytest.raises(ConnectionLost):
            peer.root.add(1, 2)
        assert tether_app.peers == []
        peer.close()
    finally:
        if server.thread.is_alive():
            server.stop()


async def test_the_responder_itself_refuses_every_name_but_a_bare_file_name(pyodide_dir: Path) -> None:
    """Straight to :class:`PageFiles`, past any server's own parsing of the request target."""
    files = tether.asgi.PageFiles(pyodide_dir)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    names = ["../secret.txt", "..", ".", "", ".hidden", "sub/inner.js", "sub\\inner.js", "..\\secret.txt",
             "pyodide.mjs\0", "\0", "pyodide.mjs/", "/etc/passwd", "C:secret.txt", "\uff0e\uff0e\uff0fsecret.txt",
             "pyodide.mjs\n", " pyodide.mjs", "%2e%2e%2fsecret.txt", str(pyodide_dir.parent / "secret.txt")]  # fmt: skip
    for name in names:
        sent.clear()
        await files.serve("/pyodide/" + name, "GET", [], send)
        assert sent[0]["status"] == 404, name
        assert all(SECRET not in m.get("body", b"") for m in sent), name
    sent.clear()
    await files.serve("/pyodide/pyodide.mjs", "GET", [], send)
    assert sent[0]["status"] == 200
