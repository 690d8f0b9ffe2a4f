"""Admission on the native faces, over real WebSockets on 127.0.0.1: the token (a WebSocket
subprotocol), the Origin check and TLS, each checked before anything is exposed.

A refused request is closed right after the handshake (4401 for the token, 4403 for the
origin) without a single Tether frame; the client raises :class:`tether.Refused`. After each
refusal the same server still serves a client that gives the right token.

The CA and certificates are made here, at test time, with ``trustme``; no key is stored.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect as aio_ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import tether
import tether.admission
import tether.aio

TOKEN = "s3cret-token-\u00e9"  # not ASCII: the subprotocol carries the UTF-8 bytes
WRONG = "not-the-token"
GARBAGE = ["tether", "tether.token.!!not*base64!!"]
# A refusal races with the client sending its opening frame: try enough times to meet both orders.
ATTEMPTS = 20
REFUSED_MATCH = {4401: r"token=", 4403: r"origins="}


class Calculator:
    def add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    """(server context, client context): a CA made now, a certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    yield server, client


# -- helpers ------------------------------------------------------------------------------


def describe(errors: list[BaseException | None]) -> str:
    kinds = Counter("connected" if e is None else f"{type(e).__module__}.{type(e).__qualname__}" for e in errors)
    odd = next((e for e in errors if not isinstance(e, tether.Refused)), None)
    return f"outcomes {dict(kinds)}; first other: {odd!r}"


def assert_all_refused(errors: list[BaseException | None], code: int) -> None:
    """Every attempt raised tether.Refused with ``code`` and a message that says what to do."""
    assert all(isinstance(e, tether.Refused) for e in errors), (
        f"expected tether.Refused (code {code}) on every attempt, {describe(errors)}"
    )
    for error in errors:
        assert isinstance(error, tether.Refused)
        assert isinstance(error, tether.ConnectionLost) and isinstance(error, tether.TetherError)
        assert error.code == code
        assert ("authentication failed" if code == 4401 else "origin not allowed") in str(error)
        assert REFUSED_MATCH[code] in str(error), str(error)


def _transport(options: dict[str, Any]) -> dict[str, Any]:
    """websockets' own settings (here the Origin header a browser would send) go in transport=."""
    if "origin" not in options:
        return options
    rest = {name: value for name, value in options.items() if name != "origin"}
    return {**rest, "transport": {"origin": options["origin"]}}


def sync_attempts(url: str, attempts: int = ATTEMPTS, **options: Any) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []
    for _ in range(attempts):
        try:
            peer = tether.connect(url, open_timeout=5, **_transport(options))
        except Exception as exc:
            outcomes.append(exc)
        else:
            peer.close()
            outcomes.append(None)
    return outcomes


async def aio_attempts(url: str, attempts: int = ATTEMPTS, **options: Any) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []
    for _ in range(attempts):
        try:
            peer = await tether.aio.connect(url, open_timeout=5, **_transport(options))
        except Exception as exc:
            outcomes.append(exc)
        else:
            await peer.close()
            outcomes.append(None)
    return outcomes


def assert_still_serves(url: str, **options: Any) -> None:
    with tether.connect(url, open_timeout=5, **_transport(options)) as peer:
        assert peer.root.add(1, 2) == 3


async def assert_still_serves_aio(url: str, **options: Any) -> None:
    async with tether.aio.connect(url, open_timeout=5, **_transport(options)) as peer:
        assert await peer.root.add(1, 2) == 3


def raw_closed_without_frame(url: str, **options: Any) -> ConnectionClosed:
    """Open a raw WebSocket; return the ConnectionClosed its first recv raises (no message first)."""
    with ws_connect(url, open_timeout=5, **options) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            message = ws.recv(timeout=5)
            pytest.fail(f"the server sent a message before closing: {message!r}")
    return closed.value


async def aio_raw_closed_without_frame(url: str, **options: Any) -> ConnectionClosed:
    async with aio_ws_connect(url, open_timeout=5, **options) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            message = await asyncio.wait_for(ws.recv(), 5)
            pytest.fail(f"the server sent a message before closing: {message!r}")
    return closed.value


def assert_close(closed: ConnectionClosed, code: int, reason: str) -> None:
    assert closed.rcvd is not None, f"no close frame came: {closed!r}"
    assert closed.rcvd.code == code
    assert closed.rcvd.reason == reason


UNAUTHORIZED = (4401, "tether: authentication failed")
FORBIDDEN = (4403, "tether: origin not allowed")


# -- the token, sync face -------------------------------------------------------------------


def test_sync_right_token_is_admitted() -> None:
    with tether.serve(Calculator(), port=0, token=TOKEN) as server:
        assert server.url.startswith("ws://127.0.0.1:")
        with tether.connect(server.url, token=TOKEN) as peer:
            assert peer.root.add(1, 2) == 3
            assert peer.root.add(20, 22) == 42


def test_sync_wrong_token_is_refused_4401() -> None:
    with tether.serve(Calculator(), port=0, token=TOKEN) as server:
        assert_all_refused(sync_attempts(server.url, token=WRONG), 4401)
        assert_still_serves(server.url, token=TOKEN)


def test_sync_missing_token_is_refused_4401() -> None:
    with tether.serve(Calculator(), port=0, token=TOKEN) as server:
        assert_all_refused(sync_attempts(server.url), 4401)
        assert_still_serves(server.url, token=TOKEN)


def test_sync_garbage_token_subprotocol_is_closed_4401_without_a_frame() -> None:
    with tether.serve(Calculator(), port=0, token=TOKEN) as server:
        closed = raw_closed_without_frame(server.url, subprotocols=GARBAGE)
        assert_close(closed, *UNAUTHORIZED)
        # The plain subprotocol alone (no token offered) is closed the same way.
        assert_close(raw_closed_without_frame(server.url, subprotocols=["tether"]), *UNAUTHORIZED)
        assert_still_serves(server.url, token=TOKEN)


# -- the token, async face ------------------------------------------------------------------


async def test_aio_right_token_is_admitted() -> None:
    async with tether.aio.serve(Calculator(), port=0, token=TOKEN) as server:
        assert server.url.startswith("ws://127.0.0.1:")
        async with tether.aio.connect(server.url, token=TOKEN) as peer:
            assert await peer.root.add(1, 2) == 3


async def test_aio_wrong_token_is_refused_4401() -> None:
    async with tether.aio.serve(Calculator(), port=0, token=TOKEN) as server:
        assert_all_refused(await aio_attempts(server.url, token=WRONG), 4401)
        await assert_still_serves_aio(server.url, token=TOKEN)


async def test_aio_missing_token_is_refused_4401() -> None:
    async with tether.aio.serve(Calculator(), port=0, token=TOKEN) as server:
        assert_all_refused(await aio_attempts(server.url), 4401)
        await assert_still_serves_aio(server.url, token=TOKEN)


async def test_aio_garbage_token_subprotocol_is_closed_4401_without_a_frame() -> None:
    async with tether.aio.serve(Calculator(), port=0, token=TOKEN) as server:
        assert_close(await aio_raw_closed_without_frame(server.url, subprotocols=GARBAGE), *UNAUTHORIZED)
        assert_close(await aio_raw_closed_without_frame(server.url, subprotocols=["tether"]), *UNAUTHORIZED)
        await assert_still_serves_aio(server.url, token=TOKEN)


def test_token_must_be_a_non_empty_string() -> None:
    with pytest.raises(tether.UsageError, match="token="):
        tether.serve(Calculator(), port=0, token="")
    with pytest.raises(tether.UsageError, match="token="):
        tether.connect("ws://127.0.0.1:9", token="")


# -- origins, sync server -------------------------------------------------------------------


def test_sync_server_refuses_any_origin_by_default_and_admits_native_clients() -> None:
    with tether.serve(Calculator(), port=0) as server:
        closed = raw_closed_without_frame(server.url, origin="http://127.0.0.1:8000")
        assert_close(closed, *FORBIDDEN)
        assert_close(raw_closed_without_frame(server.url, origin="http://evil.example"), *FORBIDDEN)
        assert_all_refused(sync_attempts(server.url, attempts=5, origin="http://evil.example"), 4403)
        # A native client sends no Origin: admitted.
        assert_still_serves(server.url)


def test_sync_server_admits_only_the_listed_origins() -> None:
    with tether.serve(Calculator(), port=0, origins=["http://good.example"]) as server:
        with tether.connect(server.url, transport={"origin": "http://good.example"}) as peer:
            assert peer.root.add(1, 2) == 3
        assert_close(raw_closed_without_frame(server.url, origin="http://bad.example"), *FORBIDDEN)
        assert_close(raw_closed_without_frame(server.url, origin="https://good.example"), *FORBIDDEN)
        assert_close(raw_closed_without_frame(server.url, origin="http://good.example:8080"), *FORBIDDEN)
        assert_still_serves(server.url)
        assert_still_serves(server.url, origin="http://good.example")


def test_sync_server_with_star_admits_any_origin() -> None:
    with tether.serve(Calculator(), port=0, origins=["*"]) as server:
        for origin in ("http://anything.example", "https://127.0.0.1:1234", "null"):
            with tether.connect(server.url, transport={"origin": origin}) as peer:
                assert peer.root.add(1, 2) == 3
        assert_still_serves(server.url)


def test_sync_origin_is_checked_before_the_token() -> None:
    with tether.serve(Calculator(), port=0, token=TOKEN, origins=["http://good.example"]) as server:
        offered = tether.admission.client_subprotocols(TOKEN)
        closed = raw_closed_without_frame(server.url, origin="http://bad.example", subprotocols=offered)
        assert_close(closed, *FORBIDDEN)
        closed = raw_closed_without_frame(server.url, origin="http://good.example", subprotocols=["tether"])
        assert_close(closed, *UNAUTHORIZED)
        assert_still_serves(server.url, token=TOKEN, origin="http://good.example")


# -- origins, async server ------------------------------------------------------------------


async def test_aio_server_refuses_any_origin_by_default_and_admits_native_clients() -> None:
    async with tether.aio.serve(Calculator(), port=0) as server:
        closed = await aio_raw_closed_without_frame(server.url, origin="http://evil.example")
        assert_close(closed, *FORBIDDEN)
        assert_all_refused(await aio_attempts(server.url, attempts=5, origin="http://evil.example"), 4403)
        await assert_still_serves_aio(server.url)


async def test_aio_server_admits_only_the_listed_origins() -> None:
    async with tether.aio.serve(Calculator(), port=0, origins=["http://good.example"]) as server:
        async with tether.aio.connect(server.url, transport={"origin": "http://good.example"}) as peer:
            assert await peer.root.add(1, 2) == 3
        closed = await aio_raw_closed_without_frame(server.url, origin="http://bad.example")
        assert_close(closed, *FORBIDDEN)
        await assert_still_serves_aio(server.url)


async def test_aio_server_with_star_admits_any_origin() -> None:
    async with tether.aio.serve(Calculator(), port=0, origins=["*"]) as server:
        async with tether.aio.connect(server.url, transport={"origin": "http://anything.example"}) as peer:
            assert await peer.root.add(1, 2) == 3
        await assert_still_serves_aio(server.url)


def test_origins_must_be_a_list_of_origins() -> None:
    with pytest.raises(tether.UsageError, match="origins="):
        tether.serve(Calculator(), port=0, origins="http://good.example")
    with pytest.raises(tether.UsageError, match="origins="):
        tether.serve(Calculator(), port=0, origins=["good.example"])


# -- TLS ------------------------------------------------------------------------------------

# TLS_SYNC_NOTE: websockets' sync client (17.4) sometimes never delivers its HTTP upgrade
# request over TLS 1.3 (about 1 connection in 200-300 here): its reader thread wakes for the
# server's post-handshake NewSessionTicket records, then blocks in SSLSocket.recv while the
# connecting thread writes the request on the same SSL object; the connect then times out.
# Tether's servers now turn session tickets off (tether.admission.tls_server_context), which
# removes the cause (600 sync wss connections in a row pass); the tests below still keep their
# number of sync TLS connections small.


def test_sync_tls_serves_wss(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with tether.serve(Calculator(), port=0, ssl=server_ctx) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        with tether.connect(server.url, ssl=client_ctx) as peer:
            assert peer.root.add(1, 2) == 3
        # The certificate names localhost too.
        with tether.connect(server.url.replace("127.0.0.1", "localhost"), ssl=client_ctx) as peer:
            assert peer.root.add(1, 2) == 3


async def test_aio_tls_serves_wss(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    async with tether.aio.serve(Calculator(), port=0, ssl=server_ctx) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        async with tether.aio.connect(server.url, ssl=client_ctx) as peer:
            assert await peer.root.add(1, 2) == 3


def assert_untrusted(error: BaseException) -> None:
    """What a client that does not trust the server's CA gets: ConnectionLost (a TetherError)
    caused by the certificate check, and not a Refused (the server never saw a request)."""
    assert isinstance(error, tether.ConnectionLost), f"{type(error).__module__}.{type(error).__qualname__}: {error}"
    assert isinstance(error, tether.TetherError)
    assert not isinstance(error, tether.Refused)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)


def test_sync_client_that_does_not_trust_the_ca_fails(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with tether.serve(Calculator(), port=0, ssl=server_ctx) as server:
        with pytest.raises(Exception) as failed:
            tether.connect(server.url, ssl=ssl.create_default_context(), open_timeout=5)
        assert_untrusted(failed.value)
        # No ssl= at all: the default context (the system's CAs) does not know this CA either.
        with pytest.raises(Exception) as failed:
            tether.connect(server.url, open_timeout=5)
        assert_untrusted(failed.value)
        assert_still_serves(server.url, ssl=client_ctx)


async def test_aio_client_that_does_not_trust_the_ca_fails(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    async with tether.aio.serve(Calculator(), port=0, ssl=server_ctx) as server:
        with pytest.raises(Exception) as failed:
            await tether.aio.connect(server.url, ssl=ssl.create_default_context(), open_timeout=5)
        assert_untrusted(failed.value)
        await assert_still_serves_aio(server.url, ssl=client_ctx)


def test_sync_token_and_tls_together(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with tether.serve(Calculator(), port=0, ssl=server_ctx, token=TOKEN) as server:
        assert server.url.startswith("wss://")
        with tether.connect(server.url, ssl=client_ctx, token=TOKEN) as peer:
            assert peer.root.add(1, 2) == 3
        # Few connections over TLS with the sync client: see TLS_SYNC_NOTE.
        assert_all_refused(sync_attempts(server.url, attempts=1, ssl=client_ctx, token=WRONG), 4401)
        assert_all_refused(sync_attempts(server.url, attempts=1, ssl=client_ctx), 4401)
        closed = raw_closed_without_frame(server.url, ssl=client_ctx, subprotocols=GARBAGE)
        assert_close(closed, *UNAUTHORIZED)
        assert_still_serves(server.url, ssl=client_ctx, token=TOKEN)


async def test_aio_token_and_tls_together(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    async with tether.aio.serve(Calculator(), port=0, ssl=server_ctx, token=TOKEN) as server:
        assert server.url.startswith("wss://")
        async with tether.aio.connect(server.url, ssl=client_ctx, token=TOKEN) as peer:
            assert await peer.root.add(1, 2) == 3
        assert_all_refused(await aio_attempts(server.url, attempts=5, ssl=client_ctx, token=WRONG), 4401)
        closed = await aio_raw_closed_without_frame(server.url, ssl=client_ctx, subprotocols=GARBAGE)
        assert_close(closed, *UNAUTHORIZED)
        await assert_still_serves_aio(server.url, ssl=client_ctx, token=TOKEN)


# -- a sync client on an async server and the other way round -------------------------------


async def test_sync_client_on_aio_server_is_refused_too() -> None:
    async with tether.aio.serve(Calculator(), port=0, token=TOKEN) as server:
        errors: list[BaseException | None] = await asyncio.to_thread(sync_attempts, server.url, 5, token=WRONG)
        assert_all_refused(errors, 4401)
        await asyncio.to_thread(assert_still_serves, server.url, token=TOKEN)


def test_aio_client_on_sync_server_is_refused_too() -> None:
    with tether.serve(Calculator(), port=0, token=TOKEN) as server:
        assert_all_refused(asyncio.run(aio_attempts(server.url, 5, token=WRONG)), 4401)
        asyncio.run(assert_still_serves_aio(server.url, token=TOKEN))
