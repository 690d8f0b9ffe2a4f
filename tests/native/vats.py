"""What each process serves in the many-process tests (tests/native/test_handoff_processes.py):
a node with a counter of its own, links to other nodes, and counters of every link."""

from __future__ import annotations

import gc
import os
from typing import Any

import tether
from tether.gifts import VAT


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def increment(self) -> int:
        self.n += 1
        return self.n


COUNTER = Counter()


class Node:
    """One process's root: ``link(url)`` connects it to another node; ``remote_counter(url)``
    hands out that node's counter (a proxy of the link: handed off or forwarded)."""

    def __init__(self, server_peer: Any = None) -> None:
        self.held: dict[str, Any] = {}

    def pid(self) -> int:
        return os.getpid()

    def vat(self) -> bytes:
        return VAT.id

    def counter(self) -> Counter:
        return COUNTER

    def count(self) -> int:
        return COUNTER.n

    def link(self, url: str, handoff: str = "direct", token: str | None = None) -> None:
        if url not in _LINKS or _LINKS[url].closed:
            _LINKS[url] = tether.connect(url, handoff=handoff, token=token)

    def unlink(self, url: str) -> None:
        _LINKS.pop(url).close()

    def remote_counter(self, url: str) -> Any:
        proxy = self.held[url] = _LINKS[url].root.counter()
        return proxy

    def drop(self) -> None:
        self.held.clear()
        gc.collect()

    def is_mine(self, obj: Any) -> bool:
        return obj is COUNTER

    def is_held(self, obj: Any, url: str) -> bool:
        return obj is self.held[url]

    def increment(self, obj: Any) -> int:
        return obj.increment()

    def pass_to(self, url: str, obj: Any) -> bool:
        """Send ``obj`` to the node at ``url`` and ask whether it is that node's own counter."""
        return _LINKS[url].root.is_mine(obj)

    def stats(self) -> dict[str, Any]:
        gc.collect()
        links = {url: peer.stats() for url, peer in _LINKS.items() if not peer.closed}
        served = [peer.stats() for peer in _SERVED if not peer.closed]
        return {"links": links, "served": served, "gifts": len(VAT), "withdrawn": VAT.withdrawn}


_LINKS: dict[str, Any] = {}
_SERVED: list[Any] = []  # the peers connected to this node


def make_node(peer: Any) -> Node:
    _SERVED.append(peer)
    return NODE


NODE = Node()
