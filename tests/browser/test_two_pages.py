"""Two pages on one native peer, messaging each other's objects through references it passes."""

from __future__ import annotations

from typing import Any

from .conftest import PageDriver, Web, new_page
from .services import PAGE_SETUP


def test_two_pages_call_each_other_through_the_native_peer(page: PageDriver, browser: Any, web: Web) -> None:
    other = new_page(browser, web.url + "?connect=0")
    try:
        a, b = page, other
        a.run(
            PAGE_SETUP
            + "\nawait peer.root.register('A.counter', root.counter)\nawait peer.root.register('A', root)\n'null'"
        )
        b.run(PAGE_SETUP + "\nawait peer.root.register('B', root)\n'null'")
        # B reaches A's counter: a proxy of the native peer's proxy, forwarded to page A.
        assert b.run(
            "c = await peer.root.lookup('A.counter')\njson.dumps([await tether.aio.call(c, 'increment', 5), await tether.aio.call(c, 'increment', by=2)])"
        ) == [5, 7]
        assert a.run("json.dumps(root.counter.n)") == 7
        # A reaches B and back: B's plain handler (JSPI) calls A's object through the native peer.
        assert (
            a.run("rb = await peer.root.lookup('B')\njson.dumps(await tether.aio.call(rb, 'visit', root))")
            == 42
        )
        # B asks A to visit B: B -> native -> A -> native -> B, nested while B waits.
        assert (
            b.run("ra = await peer.root.lookup('A')\njson.dumps(await tether.aio.call(ra, 'visit', root))")
            == 42
        )
        # Sync face in B, through two hops.
        assert b.run("json.dumps(ra.add(c.value(), 100))") == 107
        assert a.foreign == [] and b.foreign == []
    finally:
        other.close()
        page.run("await peer.close()\n'null'")


def test_forwarded_reference_keeps_the_methods_of_its_object(
    page: PageDriver, browser: Any, web: Web
) -> None:
    other = new_page(browser, web.url + "?connect=0")
    try:
        page.run(PAGE_SETUP + "\nawait peer.root.register('A2', root.counter)\n'null'")
        assert (
            other.run(PAGE_SETUP + "\nc = await peer.root.lookup('A2')\njson.dumps(await c.increment(3))")
            == 3
        )
    finally:
        other.close()
        page.run("await peer.close()\n'null'")
