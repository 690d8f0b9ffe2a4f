"""An exception goes home as itself: raised by this side's code in a callback the peer made,
and let through by the peer's handler, it comes back as the very object raised here (its own
class, unregistered), not a RemoteError (``docs/protocol.md`` 4.3, the exception's id)."""

from __future__ import annotations

from typing import Any

import pytest

import tether
from tether.testing import async_pair, pair


class LocalError(Exception):
    """Defined only here, registered nowhere: the peer cannot rebuild it."""


class Server:
    def __init__(self) -> None:
        self.items = [3, 1, 2]

    def call_back(self, f: Any) -> Any:
        return f()

    def listing(self) -> Any:
        return tether.by_reference(self.items)

    def swallow(self, f: Any) -> str:
        try:
            f()
        except Exception as exc:
            return type(exc).__name__
        return "nothing raised"


def test_a_callbacks_error_comes_home_as_the_object_raised_here() -> None:
    raised: list[BaseException] = []

    def fail() -> None:
        error = LocalError("from the callback")
        raised.append(error)
        raise error

    with pair(Server()) as (client, _):
        with pytest.raises(LocalError) as caught:
            client.root.call_back(fail)
        assert caught.value is raised[0]


def test_a_remote_list_sorted_with_a_failing_key_raises_the_keys_error() -> None:
    """What CPython's list suite does over a proxy: list.sort runs remotely, the key here."""

    def bad_key(x: int) -> int:
        raise LocalError(f"cannot order {x}")

    with pair(Server()) as (client, _):
        remote = client.root.listing()
        with pytest.raises(LocalError, match="cannot order"):
            remote.sort(key=bad_key)
        assert list(remote) == [3, 1, 2]


def test_the_peer_still_sees_a_remote_error_it_can_catch() -> None:
    def fail() -> None:
        raise LocalError("seen there")

    with pair(Server()) as (client, _):
        assert client.root.swallow(fail) == "RemoteError"


async def test_on_the_async_face_too() -> None:
    def fail() -> None:
        raise LocalError("async")

    async with async_pair(Server()) as (client, _):
        with pytest.raises(LocalError, match="async"):
            await client.root.call_back(fail)
