"""The ASGI application ``tests/asgi/test_processes.py`` runs with ``python -m uvicorn``:
``tests.asgi.services:app`` (a per-connection :class:`~tests.native.services.Service`)."""

from __future__ import annotations

import tether.asgi

from ..native.services import make_service

app = tether.asgi.app(make_service)
