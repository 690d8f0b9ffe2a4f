"""Messages between a page and the native side, in both directions, in both faces."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import PageDriver, Web
from .services import PAGE_SETUP


@pytest.fixture(scope="module")
def page_root(page: PageDriver, web: Web) -> Iterator[Any]:
    """Connect the module's page with a PageRoot; return the native proxy of that root."""
    before = set(web.peers())
    assert page.run(PAGE_SETUP) == "BrowserSession"
    server_peer = web.wait_for_peer(before)
    yield server_peer.root  # fetched from this (non-loop) thread: blocks, sync face
    page.run("await peer.close()\n'null'")


def test_page_calls_native_async_face(page: PageDriver, page_root: Any) -> None:
    result = page.run(
        """
r = peer.root
out = [await r.add(3, 4), await r.add("a", "b"), await r.echo({"k": [1, 2.5, None, b"\\x00\\xff"]})]
try:
    await r.div(1, 0)
except ZeroDivisionError as e:
    out.append("ZeroDivisionError")
out.append([x async for x in await r.numbers(5)])
out.append(list(await asyncio.gather(*(r.add(i, i) for i in range(20)))))
p = r.add(1, 1)
out.append([asyncio.isfuture(p), await asyncio.wait_for(p, 10), p.done()])
out.append([type(e).__name__ for e in await asyncio.gather(r.div(1, 0), return_exceptions=True)])
q = r.add(2, 2)
out.append([q.cancel(), q.cancelled()])
json.dumps(out, default=repr)
"""
    )
    assert result[6] == [True, 2, True]  # a promise is a future in the page too
    assert result[7] == ["ZeroDivisionError"]
    assert result[8] == [True, True]
    assert result[:2] == [7, "ab"]
    assert result[2] == {"k": [1, 2.5, None, "b'\\x00\\xff'"]}
    assert result[3] == "ZeroDivisionError"
    assert result[4] == [0, 1, 4, 9, 16]
    assert result[5] == [2 * i for i in range(20)]


def test_native_calls_page_python_objects(page_root: Any) -> None:
    assert page_root.add(2, 3) == 5
    counter = page_root.counter
    assert counter.increment() == 1
    assert counter.increment(by=10) == 11
    assert counter.value() == 11
    with pytest.raises(KeyError, match="no such thing"):
        page_root.fail()
    assert page_root.sleep(0.01) == "woke"  # an async def in the page


def test_native_calls_from_many_threads_at_once(page_root: Any) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        value = page_root.add(i, 1000)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [i + 1000 for i in range(16)]


def test_nested_calls_page_to_native_to_page(page: PageDriver, page_root: Any) -> None:
    # The page calls native.visit(page_object); the native handler calls back into the page.
    result = page.run("json.dumps([await peer.root.visit(root), await peer.root.visit(root.counter)])")
    assert result == [42, page_root.counter.value() + 1]


def test_nested_calls_native_to_page_to_native(page_root: Any, web: Web) -> None:
    native = _native_object(web)
    assert page_root.avisit(native) == 100  # async handler in the page awaits the native side
    assert page_root.visit(native) == 100  # plain handler in the page blocks with JSPI


def test_deep_ping_pong_both_ways(page: PageDriver, page_root: Any, web: Web) -> None:
    native = _native_object(web)
    assert page_root.pong(native, 8) == 8
    assert page_root.pong_sync(native, 8) == 8
    assert page.run("json.dumps(await peer.root.ping(root, 8))") == 8
    assert page.run("json.dumps(peer.root.ping_sync(root, 6))") == 6  # sync face from the top


def test_sync_face_in_plain_code_blocks_with_jspi(page: PageDriver, page_root: Any) -> None:
    result = page.run(
        """
def plain():
    r = peer.root
    gen = r.numbers(4)
    return [r.add(5, 6), list(gen), str(r.echo("x")), r.add(1, 2) + 1]
json.dumps(plain())
"""
    )
    assert result == [11, [0, 1, 4, 9], "x", 4]
    # Top-level code without await is plain code too.
    assert page.run("json.dumps(peer.root.add(20, 22))") == 42


def test_tether_connect_in_a_page_is_the_sync_face(page: PageDriver, page_root: Any) -> None:
    result = page.run(
        """
import tether
with tether.connect() as blocking:          # plain code: connects and calls through JSPI
    out = [blocking.root.add(2, 40), type(blocking).__name__, blocking.closed]
out.append(blocking.closed)
try:
    tether.serve
except AttributeError as exc:
    out.append(str(exc))
json.dumps(out)
"""
    )
    assert result == [42, "BlockingPeer", False, True, "a browser cannot listen: tether.serve exists natively only"]


def test_sync_face_without_jspi_entry_explains(page: PageDriver, page_root: Any) -> None:
    message = page.page.evaluate(
        """() => {
            try { return String(pyodide.runPython("peer.root.add(1, 2)")); }
            catch (e) { return String(e.message); }
        }"""
    )
    assert "UsageError" in message and "runPythonAsync" in message and "await" in message


def test_len_and_str_block_even_in_async_code(page: PageDriver, page_root: Any) -> None:
    result = page.run(
        """
async def f():
    items = await peer.root.echo([1, 2, 3])   # a list comes back by value
    gen = await peer.root.numbers(3)
    return [items, [x for x in gen]]
json.dumps(await f())
"""
    )
    assert result == [[1, 2, 3], [0, 1, 4]]


def _native_object(web: Web) -> Any:
    """A native object for the page to call back: the hub's Native of some connection."""
    from .services import Hub, Native

    return Native(Hub(), None)


def test_rate_of_sequential_calls_vs_raw_echo(page: PageDriver, page_root: Any, web: Web) -> None:
    n = 400
    result = page.run(
        f"""
import time, js
from pyodide.ffi import create_proxy, to_js
r = peer.root
for i in range(50):
    await r.add(i, 1)
t = time.perf_counter()
for i in range({n}):
    await r.add(i, 1)
tether_rate = {n} / (time.perf_counter() - t)
def jspi_loop():                 # plain code: each call blocks with JSPI
    t = time.perf_counter()
    for i in range({n}):
        assert r.add(i, 1) == i + 1
    return {n} / (time.perf_counter() - t)
jspi_rate = jspi_loop()

ws = js.WebSocket.new({web.echo_url!r})
ws.binaryType = "arraybuffer"
loop = asyncio.get_running_loop()
state = {{"f": loop.create_future()}}
def on(ev):
    f = state["f"]
    if not f.done():
        f.set_result(ev.data.to_bytes())
opened = loop.create_future()
on_open = create_proxy(lambda ev: opened.set_result(None))
on_msg = create_proxy(on)
ws.addEventListener("open", on_open)
ws.addEventListener("message", on_msg)
await opened
payload = b"x" * 40
for i in range(50 + {n}):
    if i == 50:
        t = time.perf_counter()
    state["f"] = loop.create_future()
    ws.send(to_js(payload))
    await state["f"]
echo_rate = {n} / (time.perf_counter() - t)
ws.close()
on_open.destroy(); on_msg.destroy()
json.dumps([tether_rate, jspi_rate, echo_rate])
"""
    )
    tether_rate, jspi_rate, echo_rate = result
    print(
        f"\nsequential round trips/s from the page: tether async {tether_rate:.0f}, "
        f"tether JSPI {jspi_rate:.0f}, raw Pyodide WebSocket echo {echo_rate:.0f} "
        f"(tether/echo {tether_rate / echo_rate:.2f})"
    )
    assert tether_rate > 50 and echo_rate > 50


def test_tether_timeout_bounds_a_call_from_the_page(page: PageDriver) -> None:
    result = page.run(
        """
import time
r = peer.root
started = time.monotonic()
try:
    async with tether.timeout(0.3):
        await r.sleep(3)
    outcome = "no timeout"
except TimeoutError as e:
    outcome = str(e)
elapsed = time.monotonic() - started
json.dumps([outcome, elapsed, peer.stats()["pending"], await r.add(1, 1)])
"""
    )
    outcome, elapsed, pending, two = result
    assert "no answer to 'sleep' within 0.3 s" in outcome and "cancelled on the other side" in outcome
    assert elapsed < 1.5 and pending == 0 and two == 2


def test_tether_timeout_bounds_a_blocking_call_from_plain_page_code(page: PageDriver) -> None:
    """The sync face (JSPI) under tether.timeout: the call blocks, then fails with
    TimeoutError, its pending entry is gone, and the connection goes on."""
    result = page.run(
        """
import time
def plain():
    r = peer.root
    started = time.monotonic()
    try:
        with tether.timeout(0.3):
            r.sleep(3)
        outcome = "no timeout"
    except TimeoutError as e:
        outcome = str(e)
    return [outcome, time.monotonic() - started, peer.stats()["pending"], r.add(1, 1)]
json.dumps(plain())
"""
    )
    outcome, elapsed, pending, two = result
    assert "no answer to 'sleep' within 0.3 s" in outcome and "cancelled on the other side" in outcome
    assert elapsed < 1.5 and pending == 0 and two == 2

