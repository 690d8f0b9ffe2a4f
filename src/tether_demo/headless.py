"""Headless Chromium for pages that run Tether: which binary, which flags, and a route guard
that keeps a page on one host.

Used by the demo (``tether demo``), the browser tests and the browser benchmark. Playwright
drives Debian's Chromium through ``executable_path``; nothing here downloads a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

# $TETHER_CHROMIUM, else chromium on PATH, else Debian's path.
CHROMIUM = os.environ.get("TETHER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

# No sandbox (containers, root), no GPU, shared memory in /tmp rather than /dev/shm (which a
# container may cap at 64 MB, too little for a page running Pyodide), and none of Chromium's own
# background traffic (this machine's network is closed, so those connections would only be refused).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _allowed(route: Any, host: str) -> bool:
    return urlsplit(route.request.url).hostname == host


def host_guard(foreign: list[str], host: str = "127.0.0.1") -> Callable[[Any], None]:
    """A route handler for Playwright's sync API (``context.route("**/*", guard)``): requests
    to ``host`` go through; any other is aborted and its URL appended to ``foreign``."""

    def guard(route: Any) -> None:
        if _allowed(route, host):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    return guard


def async_host_guard(foreign: list[str], host: str = "127.0.0.1") -> Callable[[Any], Awaitable[None]]:
    """:func:`host_guard` for Playwright's async API."""

    async def guard(route: Any) -> None:
        if _allowed(route, host):
            await route.continue_()
        else:
            foreign.append(route.request.url)
            await route.abort()

    return guard
