"""Fixtures of the hostile suite: a default server (no trusted=, no accept_code=) on loopback,
a well-behaved client of it, and a raw peer that writes frames by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tether

from .services import make_root, shared_root
from .wire import RawPeer, integer


@pytest.fixture(scope="module")
def server() -> Iterator[tether.Server]:
    """A default server; each connection gets its own Root (which holds that connection's Peer)."""
    with tether.serve(make_root, host="127.0.0.1", port=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def shared_server() -> Iterator[tether.Server]:
    """A default server whose one Root object is shared by every client."""
    with tether.serve(shared_root, host="127.0.0.1", port=0) as srv:
        yield srv


@pytest.fixture
def peer(server: tether.Server) -> Iterator[tether.Peer]:
    with tether.connect(server.url) as p:
        yield p


@pytest.fixture
def raw(server: tether.Server) -> Iterator[RawPeer]:
    with RawPeer(server.url) as r:
        yield r


def still_answers(raw: RawPeer) -> None:
    """The attacked connection lives on: the same server answers a normal call on it."""
    assert raw.call_root("add", integer(1), integer(2)) == 3


def server_still_answers(server: tether.Server) -> None:
    """The attacked server answers a normal call from a new, well-behaved client."""
    with tether.connect(server.url, open_timeout=5) as p:
        assert p.root.add(1, 2) == 3
