"""Remote debugging is a trusted grant (``tether.debug``): pdb evaluates any expression in the
frames it is given. Every way in is refused to a peer that debugging is not on with: the Tether
object's debugging selectors, the frames and the failure of an error answer, a post-mortem, a
lent console, a breakpoint's console, and the debugging objects themselves."""

from __future__ import annotations

import struct
import sys
import traceback
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import tether
from tether.codec import Decoder
from tether.debug import Console, Failure
from tether.errors import make_exception
from tether.frames import TAG_FAILURE, ErrorAnswer, parse_frame
from tether.proxy import make_proxy

from .conftest import still_answers
from .services import API_TOKEN, Root, make_root
from .wire import UUID, RawPeer, dict_, integer, message, nil, string, words, yours

DEBUG_SELECTORS = ["debug_source", "debug_console"]


def hello_claiming_debug(raw: RawPeer) -> None:
    """A hostile peer says it is a Python peer that asks for debugging."""
    raw.call(yours(0), "hello", dict_((string("language"), string("python")), (string("debug"), words(0x20000001))))


@pytest.mark.parametrize("claims_debug", [False, True], ids=["plain", "claims debug"])
@pytest.mark.parametrize("selector", DEBUG_SELECTORS)
def test_the_debugging_selectors_refuse_a_peer_debugging_is_not_on_with(
    raw: RawPeer, selector: str, claims_debug: bool
) -> None:
    if claims_debug:
        hello_claiming_debug(raw)  # asking is not enough: the server did not offer it
    args = (yours(raw.root),) if selector == "debug_source" else ()
    with pytest.raises(tether.AccessDenied, match=rf"{selector}: debugging is not on for this connection"):
        raw.call(yours(0), selector, *args)
    still_answers(raw)


def test_an_error_answer_carries_no_frames_to_a_peer_that_claims_debug(raw: RawPeer) -> None:
    hello_claiming_debug(raw)
    exchange_id = raw.new_id()
    raw.send(message(exchange_id, yours(raw.root), "add", [string("a"), integer(1)]))
    while True:
        frame = raw.ws.recv(timeout=5)
        assert isinstance(frame, bytes)
        if frame[12:28] == exchange_id:
            break
    error = parse_frame(Decoder(frame))
    assert isinstance(error, ErrorAnswer) and error.type_name == "builtins.TypeError"
    assert error.traceback is None and error.debug is None
    assert error.identity is not None and error.identity[0] == "mine"
    # nil: no traceback; after it only the exception's id (4.3), no debugging part
    assert frame.endswith(words(0x20000003, 0x20000121) + error.identity[1])
    assert words(TAG_FAILURE) not in frame
    still_answers(raw)


def test_post_mortem_of_an_error_from_a_server_that_offers_no_debugging_is_refused(server: tether.Server) -> None:
    with tether.connect(server.url, debug=True) as peer:  # the client asks; the server does not offer
        with pytest.raises(TypeError) as caught:
            peer.root.add("a", 1)
        with pytest.raises(tether.AccessDenied, match=r"came from a peer without its frames"):
            tether.post_mortem(caught.value)
        assert not hasattr(caught.value, "__tether_failure__")
        text = "".join(traceback.format_exception(caught.value))
        assert "<remote" not in text and "services.py" not in text  # no frame, no text
        for selector in DEBUG_SELECTORS:
            args = (peer.root,) if selector == "debug_source" else ()
            with pytest.raises(tether.AccessDenied):
                peer.session.call_tether(selector, args)


@pytest.fixture(scope="module")
def offering_server() -> Iterator[tether.Server]:
    """A server that offers debugging (debug=True) to every peer that asks for it."""
    with tether.serve(make_root, host="127.0.0.1", port=0, debug=True) as srv:
        yield srv


def test_offering_debugging_does_not_trust_a_peer_that_did_not_ask(offering_server: tether.Server) -> None:
    with tether.connect(offering_server.url) as peer:
        assert peer.info["debug"] is True  # offered
        with pytest.raises(tether.AccessDenied):
            peer.root._api_token  # noqa: B018 - still an untrusted peer
        with pytest.raises(TypeError) as caught:
            peer.root.add("a", 1)
        assert not hasattr(caught.value, "__tether_failure__")
        assert getattr(caught.value, "remote_traceback", None) is None
        with pytest.raises(tether.AccessDenied, match=r"debug_source: debugging is not on"):
            peer.session.call_tether("debug_source", (peer.root,))
        assert peer.root.add(1, 2) == 3


def test_a_peer_that_asks_where_it_is_offered_is_trusted(offering_server: tether.Server) -> None:
    """The grant is a shell's worth of trust: said here so that the refusals above mean something."""
    with tether.connect(offering_server.url, debug=True) as peer:
        assert peer.root._api_token == API_TOKEN
        with pytest.raises(TypeError) as caught:
            peer.root.add("a", 1)
        assert hasattr(caught.value, "__tether_failure__")


class Handout(Root):
    """A root that hands its peer debugging objects made for its own connection (which no
    server does: it shows that the objects guard themselves)."""

    def failure(self) -> Failure:
        try:
            raise ValueError(API_TOKEN)
        except ValueError as exc:
            assert exc.__traceback__ is not None
            return Failure(self.peer.session.protocol, exc, exc.__traceback__)

    def console(self) -> Console:
        return Console(self.peer.session.protocol, stdout=sys.stderr)

    def ask_for_the_callers_console(self) -> Any:
        return self.peer.session.call_tether("debug_console", ())


@pytest.fixture(scope="module")
def handout_server() -> Iterator[tether.Server]:
    with tether.serve(lambda peer: Handout(peer), host="127.0.0.1", port=0) as srv:
        yield srv


def test_a_failure_reached_without_debugging_refuses_every_door(handout_server: tether.Server) -> None:
    with tether.connect(handout_server.url) as peer:
        failure = peer.root.failure()
        with pytest.raises(tether.AccessDenied, match=r"Failure\.debug: debugging is not on"):
            failure.debug(None)
        for private in ("_tb", "_exc", "_protocol", "_summary"):
            with pytest.raises(tether.AccessDenied):
                getattr(failure, private)


def test_a_console_reached_without_debugging_reads_and_writes_nothing(handout_server: tether.Server) -> None:
    with tether.connect(handout_server.url) as peer:
        console = peer.root.console()
        for method, args in (("readline", ()), ("write", ("phish: password? ",)), ("flush", ()), ("close", ())):
            with pytest.raises(tether.AccessDenied, match=rf"Console\.{method}: debugging is not on"):
                getattr(console, method)(*args)


def test_a_server_gets_no_console_from_a_client_that_did_not_ask(handout_server: tether.Server) -> None:
    with tether.connect(handout_server.url) as peer:
        with pytest.raises(tether.AccessDenied, match=r"debug_console: debugging is not on"):
            peer.root.ask_for_the_callers_console()


def test_a_forged_debugging_part_is_ignored_by_a_side_that_did_not_ask() -> None:
    not_asking = SimpleNamespace(
        protocol=SimpleNamespace(tether=SimpleNamespace(debug=False)), describe=lambda: "a hostile peer"
    )
    failure = make_proxy(not_asking, 5, None)  # type: ignore[arg-type]
    frames = (("/etc/passwd", 1, "forged", "root:x:0:0"),)
    error = make_exception(ErrorAnswer(b"x" * 16, "builtins.KeyError", "'k'", ["k"], None, (failure, frames)))
    assert isinstance(error, KeyError) and error.__traceback__ is None
    assert not hasattr(error, "__tether_failure__")


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        (words(TAG_FAILURE) + nil() + string("frames"), "the remote frames must be a Tuple"),
        (words(TAG_FAILURE) + nil() + words(0x20000104, 1) + string("x"), "a remote frame is a Tuple"),
        (words(0x2000012F), "expected the end of the error answer, its debugging part"),
        (words(0x20000121), "the exception's id declares 16 bytes"),
    ],
)
def test_a_malformed_debugging_part_is_a_protocol_error(part: bytes, problem: str) -> None:
    body = words(0x20000109, UUID, 16) + b"E" * 16 + string("builtins.KeyError") + string("'k'")
    body += words(0x20000008, 0) + nil() + part
    with pytest.raises(tether.ProtocolError, match=problem):
        parse_frame(Decoder(body))
    assert struct.unpack(">I", body[:4])[0] == 0x20000109
