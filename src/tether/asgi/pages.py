"""The page's files over ASGI HTTP, without any web framework: what
:func:`tether.asgi.app` serves with ``pages=True``.

:class:`PageFiles` answers a fixed set of paths (relative to where the app is mounted):

* ``/`` and ``/index.html``: the page (the bundled ``index.html``, or ``index=``);
* ``/tether/boot.mjs``: the boot script; ``/tether/tether.zip``: the ``tether`` package and
  the ``packages=`` (zipped once, on first use or at the app's lifespan startup);
* ``/pyodide/NAME``: one plain file of the Pyodide runtime's folder, ``NAME`` a bare file
  name (letters, digits, ``.``, ``_``, ``-``; not starting with ``.``): no request names any
  other file, so no path leads out of that folder;
* ``/favicon.ico``: no content.

``GET`` and ``HEAD`` only; the runtime's files carry an ``ETag`` and answer
``If-None-Match`` with 304; the page, the boot script and the zip are ``no-cache``.
Content types are :data:`tether.pagefiles.CONTENT_TYPES`, never the platform's tables.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Sequence
from email.utils import formatdate
from pathlib import Path

from ..pagefiles import PACKAGE, STATIC, content_type, zip_shipped
from .transport import ASGISend

__all__ = ["CHUNK", "PageFiles", "respond"]

CHUNK = 256 * 1024
"""Bytes read and sent at a time when a file is streamed."""

_RUNTIME_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_NOT_FOUND = b"not found: this server serves a Tether page, its boot script and the Pyodide runtime\n"


async def respond(
    send: ASGISend,
    status: int,
    body: bytes = b"",
    content: str = "text/plain; charset=utf-8",
    headers: Sequence[tuple[str, str]] = (),
    head: bool = False,
) -> None:
    """Send one whole HTTP response (``head``: the headers only, with the body's length)."""
    await send(
        {"type": "http.response.start", "status": status, "headers": _headers(content, len(body), headers)}
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


def _headers(content: str, length: int, extra: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    pairs = [
        ("content-type", content),
        ("content-length", str(length)),
        ("x-content-type-options", "nosniff"),
        *extra,
    ]
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


class PageFiles:
    """The files of a Tether page, served over ASGI HTTP (see the module docstring).

    ``pyodide``: the runtime's folder (:func:`tether.pagefiles.find_pyodide` found it);
    ``index``: the page; ``shipped``: what :func:`tether.pagefiles.shipped_files` listed.
    """

    def __init__(
        self, pyodide: Path, index: Path | None = None, shipped: Sequence[tuple[Path, str]] = ()
    ) -> None:
        self.pyodide = pyodide
        self.index = index or STATIC / "index.html"
        self._shipped = list(shipped)
        self._zip: bytes | None = None
        self._zip_lock = threading.Lock()

    async def prepare(self) -> None:
        """Zip the package now (in a thread) rather than on the first request for it."""
        await asyncio.to_thread(self._package)

    def _package(self) -> bytes:
        with self._zip_lock:
            if self._zip is None:
                self._zip = zip_shipped(self._shipped, PACKAGE)
            return self._zip

    async def serve(
        self, path: str, method: str, request_headers: Sequence[tuple[bytes, bytes]], send: ASGISend
    ) -> None:
        """Answer ``method`` on ``path`` (relative to the app's mount point)."""
        if method not in ("GET", "HEAD"):
            await respond(send, 405, b"method not allowed: GET or HEAD\n", headers=[("allow", "GET, HEAD")])
            return
        head = method == "HEAD"
        if path in ("/", "/index.html"):
            await self._file(send, self.index, head, request_headers, no_cache=True)
        elif path == "/tether/boot.mjs":
            await self._file(send, STATIC / "boot.mjs", head, request_headers, no_cache=True)
        elif path == "/tether/tether.zip":
            data = self._zip if self._zip is not None else await asyncio.to_thread(self._package)
            await respond(send, 200, data, "application/zip", [("cache-control", "no-cache")], head)
        elif path == "/favicon.ico":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        elif path.startswith("/pyodide/"):
            name = path[len("/pyodide/") :]
            file = self.pyodide / name
            # A bare file name of the runtime's one flat folder: nothing else is ever opened.
            if _RUNTIME_NAME.fullmatch(name) is None or not file.is_file():
                await respond(
                    send, 404, f"{name} is not part of the Pyodide runtime served here\n".encode(), head=head
                )
                return
            await self._file(send, file, head, request_headers, no_cache=False)
        else:
            await respond(send, 404, _NOT_FOUND, head=head)

    async def _file(
        self,
        send: ASGISend,
        path: Path,
        head: bool,
        request_headers: Sequence[tuple[bytes, bytes]],
        no_cache: bool,
    ) -> None:
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except OSError:
            await respond(send, 404, _NOT_FOUND, head=head)
            return
        try:
            stat = os.fstat(handle.fileno())
            etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            extra = [("etag", etag), ("last-modified", formatdate(stat.st_mtime, usegmt=True))]
            if no_cache:
                extra.append(("cache-control", "no-cache"))
            if etag in _header_values(request_headers, b"if-none-match"):
                not_modified = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in extra]
                await send({"type": "http.response.start", "status": 304, "headers": not_modified})
                await send({"type": "http.response.body", "body": b""})
                return
            start = {
                "type": "http.response.start",
                "status": 200,
                "headers": _headers(content_type(path), stat.st_size, extra),
            }
            await send(start)
            left = 0 if head else stat.st_size
            while True:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, left)) if left > 0 else b""
                left -= len(chunk)
                more = left > 0 and bool(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return
        finally:
            handle.close()


def _header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[str]:
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return [part.strip() for value in values for part in value.split(",")]
