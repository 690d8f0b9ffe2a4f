"""``tether.asgi.app`` under a real uvicorn: the core behaviours from both native faces (calls,
callbacks, nesting, errors, per-peer roots), connection loss both ways, admission (token,
Origin, subprotocol), what is refused on the wire (text frames, frames over
``max_frame_size``, other paths), the lifespan, and the options it takes.

Every server is a real ``uvicorn.Server`` on 127.0.0.1 in a thread (``tests/asgi/server.py``);
every wait is bounded.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

import tether
import tether.aio
import tether.asgi
from tether.admission import client_subprotocols
from tether.exceptions import ConnectionLost, HandshakeFailed, Refused, UsageError

from ..native.services import Calculator, make_service
from .server import Uvicorn, wait_until

pytestmark = pytest.mark.timeout(60)

TOKEN = "a-long-random-token-for-the-asgi-tests"


class ClientRoot:
    def answer(self, question: str) -> str:
        return f"answer to {question}"

    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)

    async def abounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + await other.abounce(n - 1, self)


class AsyncService(Calculator):
    def __init__(self, peer: Any) -> None:
        self.peer = peer

    async def abounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + await other.abounce(n - 1, self)

    async def ask_client(self, question: str) -> Any:
        client = await self.peer.fetch_root()
        return await client.answer(question)

    async def acall(self, f: Any, x: Any) -> Any:
        return await f(x)


# -- the core behaviours -------------------------------------------------------------------------


def test_sync_face_calls_callbacks_nesting_and_errors() -> None:
    app = tether.asgi.app(make_service)
    with Uvicorn(app) as server, tether.connect(server.ws_url + "/ws", root=ClientRoot()) as peer:
        assert peer.root.add(3, 4) == 7
        assert peer.root.echo([1, "two", {3: b"four"}]) == [1, "two", {3: b"four"}]
        assert peer.root.apply(lambda x: x * 2, 21) == 42  # the server calls the client's function
        assert peer.root.ask_client("why") == "answer to why"  # the factory's peer reaches the client's root
        assert peer.root.bounce(40, ClientRoot()) == 40  # server -> client -> server ... while each waits
        with pytest.raises(ZeroDivisionError, match="division by zero, remotely"):
            peer.root.fail()
        with pytest.raises(tether.AccessDenied):
            peer.root._private()
        assert peer.root.add(1, 1) == 2  # the connection goes on after errors
        assert len(app.peers) == 1


async def test_async_face_calls_callbacks_nesting_and_errors() -> None:
    app = tether.asgi.app(lambda peer: AsyncService(peer))
    with Uvicorn(app) as server:
        async with tether.aio.connect(server.ws_url + "/ws", root=ClientRoot()) as peer:
            assert await peer.root.add(3, 4) == 7

            async def double(x: int) -> int:
                return x * 2

            assert await peer.root.acall(double, 21) == 42
            assert await peer.root.ask_client("how") == "answer to how"
            assert await peer.root.abounce(40, ClientRoot()) == 40
            assert await peer.root.bounce(10, ClientRoot()) == 10  # plain handlers on worker threads
            with pytest.raises(ZeroDivisionError):
                await peer.root.fail()


def test_each_connection_gets_its_own_root_from_the_factory() -> None:
    made: list[Any] = []

    def factory(peer: Any) -> Any:
        made.append(peer)
        return make_service(peer)

    app = tether.asgi.app(factory)
    with Uvicorn(app) as server:
        with tether.connect(server.ws_url) as a, tether.connect(server.ws_url + "/ws") as b:  # "/" and "/ws"
            assert a.root.add(1, 2) == 3 and b.root.add(2, 3) == 5
            assert len(made) == 2 and made[0] is not made[1]
            assert {id(p) for p in app.peers} == {id(p) for p in made}


def test_an_object_root_is_shared_by_every_connection() -> None:
    shared: list[Any] = []

    class Box:
        def put(self, x: Any) -> int:
            shared.append(x)
            return len(shared)

    app = tether.asgi.app(Box())
    with Uvicorn(app) as server, tether.connect(server.ws_url) as a, tether.connect(server.ws_url) as b:
        assert a.root.put(1) == 1 and b.root.put(2) == 2


# -- connection loss -----------------------------------------------------------------------------


def test_stopping_the_server_fails_pending_calls_with_connection_lost() -> None:
    app = tether.asgi.app(make_service)
    server = Uvicorn(app).start()
    try:
        peer = tether.connect(server.ws_url + "/ws")
        failed: list[BaseException] = []

        def pending() -> None:
            try:
                peer.root.sleep(5)
            except BaseException as exc:
                failed.append(exc)

        caller = threading.Thread(target=pending, daemon=True)
        caller.start()
        wait_until(
            lambda: app.peers and app.peers[0].stats()["frames_received"] >= 3, what="the call to arrive"
        )
        began = time.monotonic()
        server.stop()  # uvicorn closes its WebSockets itself (1012), then runs the lifespan shutdown
        caller.join(5)
        assert not caller.is_alive() and time.monotonic() - began < 5
        assert isinstance(failed[0], ConnectionLost), failed
        assert "1012" in str(failed[0]) or "shut down" in str(failed[0])
        with pytest.raises(ConnectionLost):
            peer.root.add(1, 2)
        assert app.peers == []
        peer.close()
    finally:
        if server.thread.is_alive():
            server.stop()


def test_closing_the_app_tells_clients_the_server_shut_down_and_refuses_new_ones() -> None:
    app = tether.asgi.app(Calculator())
    with Uvicorn(app) as server:
        peer = tether.connect(server.ws_url)
        wait_until(lambda: len(app.peers) == 1, what="the connection")
        server.run(app.close())
        with pytest.raises(ConnectionLost, match=r"the server shut down \(close code 1001\)"):
            for _ in range(100):  # until the close frame has arrived
                peer.root.add(1, 2)
                time.sleep(0.02)
        assert app.peers == []
        with pytest.raises(ConnectionLost, match="shut down"):
            tether.connect(server.ws_url)
        server.run(app.startup())  # admits connections again
        with tether.connect(server.ws_url) as again:
            assert again.root.add(2, 2) == 4
        peer.close()


def test_closing_the_client_removes_its_peer_on_the_server() -> None:
    app = tether.asgi.app(make_service)
    with Uvicorn(app) as server:
        first = tether.connect(server.ws_url)
        second = tether.connect(server.ws_url)
        wait_until(lambda: len(app.peers) == 2, what="two connections")
        first.close()
        wait_until(lambda: len(app.peers) == 1, what="the closed connection's removal")
        assert second.root.add(1, 2) == 3
        second.close()
        wait_until(lambda: app.peers == [], what="the last connection's removal")


async def test_a_server_side_peer_sees_the_client_go() -> None:
    app = tether.asgi.app(make_service)
    with Uvicorn(app) as server:
        peer = await tether.aio.connect(server.ws_url)
        wait_until(lambda: len(app.peers) == 1, what="the connection")
        served = app.peers[0]
        await peer.close()
        wait_until(lambda: served.closed, what="the server side noticing")
        assert "peer closed the connection (code 1000)" in str(served.session.close_reason)


# -- admission -----------------------------------------------------------------------------------


def test_a_missing_or_wrong_token_is_refused_with_4401() -> None:
    app = tether.asgi.app(Calculator(), token=TOKEN)
    with Uvicorn(app) as server:
        for token in (None, "not it", TOKEN + "x"):
            with pytest.raises(Refused) as refused:
                tether.connect(server.ws_url, token=token)
            assert refused.value.code == 4401
        with tether.connect(server.ws_url, token=TOKEN) as peer:
            assert peer.root.add(1, 2) == 3
        assert app.peers == [] or all(p.closed for p in app.peers)


async def test_a_missing_token_is_refused_on_the_async_face_too() -> None:
    app = tether.asgi.app(Calculator(), token=TOKEN)
    with Uvicorn(app) as server:
        with pytest.raises(Refused) as refused:
            await tether.aio.connect(server.ws_url + "/ws")
        assert refused.value.code == 4401
        async with tether.aio.connect(server.ws_url + "/ws", token=TOKEN) as peer:
            assert await peer.root.add(1, 2) == 3


async def raw_close(
    url: str, origin: str | None = None, subprotocols: list[str] | None = None
) -> tuple[int, str, list[Any], str | None]:
    """Open a raw WebSocket, read until it closes: (close code, reason, frames read, subprotocol)."""
    offered = [Subprotocol(p) for p in (subprotocols if subprotocols is not None else ["tether"])]
    async with ws_connect(url, origin=Origin(origin) if origin else None, subprotocols=offered or None,
                          open_timeout=5, compression=None) as ws:  # fmt: skip
        frames: list[Any] = []
        try:
            while True:
                frames.append(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, closed
            return closed.rcvd.code, closed.rcvd.reason, frames, ws.subprotocol


async def test_refusals_close_before_any_frame_with_4401_or_4403() -> None:
    app = tether.asgi.app(Calculator(), token=TOKEN, origins=["https://app.example.com"])
    with Uvicorn(app) as server:
        url = server.ws_url + "/ws"
        code, reason, frames, chosen = await raw_close(url)
        assert (code, reason, frames, chosen) == (4401, "tether: authentication failed", [], "tether")
        code, reason, frames, _ = await raw_close(
            url, origin="http://evil.example", subprotocols=client_subprotocols(TOKEN)
        )
        assert (code, reason, frames) == (4403, "tether: origin not allowed", [])
        # DNS rebinding: a foreign name for this very address is still a foreign origin
        code, _, frames, _ = await raw_close(
            url, origin=f"http://evil.example:{server.port}", subprotocols=client_subprotocols(TOKEN)
        )
        assert (code, frames) == (4403, [])
        with pytest.raises(Refused) as refused:
            await tether.aio.connect(url, token=TOKEN, transport={"origin": "http://evil.example"})
        assert refused.value.code == 4403
        for admitted in (
            "https://app.example.com",
            f"http://127.0.0.1:{server.port}",
            f"http://localhost:{server.port}",
        ):
            async with tether.aio.connect(url, token=TOKEN, transport={"origin": admitted}) as peer:
                assert await peer.root.add(1, 2) == 3, admitted


async def test_by_default_only_this_servers_own_pages_are_admitted_and_star_admits_any() -> None:
    with Uvicorn(tether.asgi.app(Calculator())) as server:
        code, _, frames, _ = await raw_close(server.ws_url + "/ws", origin="https://app.example.com")
        assert (code, frames) == (4403, [])
        async with tether.aio.connect(
            server.ws_url, transport={"origin": f"http://[::1]:{server.port}"}
        ) as peer:
            assert await peer.root.add(1, 2) == 3
    with Uvicorn(tether.asgi.app(Calculator(), origins=["*"])) as server:
        async with tether.aio.connect(server.ws_url, transport={"origin": "http://anything.example"}) as peer:
            assert await peer.root.add(1, 2) == 3


async def test_a_peer_offering_no_subprotocol_is_served_without_one() -> None:
    with Uvicorn(tether.asgi.app(Calculator())) as server:
        async with ws_connect(server.ws_url + "/ws", open_timeout=5, compression=None) as ws:
            assert ws.subprotocol is None
            await ws.send("not a Tether frame")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)


# -- what is refused on the wire -----------------------------------------------------------------


async def test_a_text_message_closes_the_connection_with_1002() -> None:
    app = tether.asgi.app(Calculator())
    with Uvicorn(app) as server:
        async with ws_connect(
            server.ws_url + "/ws", subprotocols=[Subprotocol("tether")], open_timeout=5
        ) as ws:
            wait_until(lambda: len(app.peers) == 1, what="the session")
            await ws.send("hello, in text")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
        assert "binary" in closed.value.rcvd.reason
        wait_until(lambda: app.peers == [], what="the peer's removal")


async def test_a_frame_over_max_frame_size_closes_with_1009() -> None:
    app = tether.asgi.app(Calculator(), max_frame_size=64 * 1024)
    with Uvicorn(app) as server:  # uvicorn's own limit (--ws-max-size) is 16 MiB: this is ours
        async with ws_connect(
            server.ws_url, subprotocols=[Subprotocol("tether")], max_size=None, open_timeout=5
        ) as ws:
            await ws.send(b"\0" * (64 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        wait_until(lambda: app.peers == [], what="the peer's removal")


def test_a_frame_over_uvicorns_own_limit_is_refused_by_uvicorn() -> None:
    app = tether.asgi.app(Calculator())
    with Uvicorn(app, ws_max_size=32 * 1024) as server, tether.connect(server.ws_url) as peer:
        assert peer.root.echo(b"x" * 1000) == b"x" * 1000
        with pytest.raises(ConnectionLost, match="1009"):
            peer.root.echo(b"x" * 64 * 1024)


def test_other_paths_are_not_the_endpoint() -> None:
    with Uvicorn(tether.asgi.app(Calculator())) as server:
        for path in ("/other", "/ws/more", "/tether/ws"):
            with pytest.raises(HandshakeFailed, match="404"):
                tether.connect(server.ws_url + path)


def test_uvicorns_root_path_is_respected() -> None:
    """Behind a proxy that strips /prefix, uvicorn --root-path /prefix: the endpoint stays /ws."""
    with (
        Uvicorn(tether.asgi.app(Calculator()), root_path="/prefix") as server,
        tether.connect(server.ws_url + "/ws") as peer,
    ):
        assert peer.root.add(1, 2) == 3


def test_a_failing_factory_closes_the_connection_with_1011() -> None:
    def factory(peer: Any) -> Any:
        raise RuntimeError("no root for you")

    with Uvicorn(tether.asgi.app(factory)) as server:
        with pytest.raises(ConnectionLost, match="1011"):
            tether.connect(server.ws_url, open_timeout=5)


# -- the lifespan, called directly ---------------------------------------------------------------


async def test_the_lifespan_starts_and_closes_the_connections_with_1001() -> None:
    app = tether.asgi.app(Calculator())
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return await events.get()

    async def send(message: Any) -> None:
        sent.append(dict(message))

    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await events.put({"type": "lifespan.startup"})
    await asyncio.sleep(0.05)
    assert sent == [{"type": "lifespan.startup.complete"}]
    await events.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(lifespan, 5)
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}


# -- options -------------------------------------------------------------------------------------


def test_options_that_belong_to_the_asgi_server_are_refused_saying_where_they_go() -> None:
    with pytest.raises(UsageError, match="--ssl-certfile"):
        tether.asgi.app(Calculator(), ssl=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    with pytest.raises(UsageError, match="--ws-max-size"):
        tether.asgi.app(Calculator(), transport={"max_queue": 4})
    with pytest.raises(UsageError, match="--ws-ping-interval"):
        tether.asgi.app(Calculator(), keepalive=5)
    with pytest.raises(UsageError, match="did you mean 'token'"):
        tether.asgi.app(Calculator(), tokn="x")
    with pytest.raises(UsageError, match="only connect"):
        tether.asgi.app(Calculator(), open_timeout=3)
    with pytest.raises(UsageError, match="origins= entries"):
        tether.asgi.app(Calculator(), origins="https://app.example.com")
    with pytest.raises(UsageError, match="only pages=True"):
        tether.asgi.app(Calculator(), pyodide_dir="/nowhere")
    with pytest.raises(UsageError, match="no Pyodide runtime found"):
        tether.asgi.app(Calculator(), pages=True, pyodide_dir="/nowhere")
    # One Options object for a whole program: what applies to clients only is left to them.
    shared = tether.Options(token=TOKEN, keepalive=5, open_timeout=3)
    app = tether.asgi.app(Calculator(), options=shared)
    with Uvicorn(app) as server, tether.connect(server.ws_url, options=shared) as peer:
        assert peer.root.add(1, 2) == 3
