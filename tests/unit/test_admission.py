"""tether.admission: the token subprotocol (bytes as docs/protocol.md section 2 gives them)
and the origin and token checks, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

import tether
from tether.admission import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_UNAUTHORIZED,
    Admission,
    client_subprotocols,
    offered_subprotocols,
    own_origins,
    select_subprotocol,
)

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def test_the_token_subprotocol_is_the_documented_one() -> None:
    assert client_subprotocols(None) == ["tether"]
    assert client_subprotocols("s3cret") == ["tether", "tether.token.czNjcmV0"]
    assert "`tether.token.czNjcmV0` for the token `s3cret`" in DOC


def test_the_server_selects_tether_and_serves_peers_that_offer_nothing() -> None:
    assert select_subprotocol(["tether", "tether.token.x"]) == "tether"
    assert select_subprotocol([]) is None
    assert offered_subprotocols(["tether, tether.token.abc", "other"]) == ["tether", "tether.token.abc", "other"]


@pytest.mark.parametrize(
    ("offered", "admitted"),
    [
        (["tether", "tether.token.czNjcmV0"], True),
        (["tether"], False),
        (["tether", "tether.token.czNjcmV1"], False),
        (["tether", "tether.token.!!!"], False),
        (["tether", "tether.token."], False),
    ],
)
def test_a_token_is_required_when_set(offered: list[str], admitted: bool) -> None:
    result = Admission("s3cret").check(None, offered)
    assert result is None if admitted else result == (CLOSE_UNAUTHORIZED, "tether: authentication failed")


def test_native_servers_refuse_every_browser_origin_by_default() -> None:
    admission = Admission()
    assert admission.check(None, []) is None
    assert admission.check("http://127.0.0.1:8765", []) == (CLOSE_FORBIDDEN_ORIGIN, "tether: origin not allowed")
    assert admission.check("null", []) is not None


def test_listed_origins_are_admitted_exactly() -> None:
    admission = Admission(origins=["https://app.example.com"])
    assert admission.check("https://app.example.com", []) is None
    assert admission.check("HTTPS://APP.EXAMPLE.COM/", []) is None
    assert admission.check("https://app.example.com.evil.net", []) is not None
    assert admission.check("http://app.example.com", []) is not None
    assert Admission(origins=["*"]).check("https://anything.example", []) is None


def test_a_web_servers_own_origins_are_its_loopback_names_not_the_host_header() -> None:
    admission = Admission(own=own_origins("http", "127.0.0.1", 8765))
    for origin in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        assert admission.check(origin, []) is None
    assert admission.check("http://127.0.0.1:8766", []) is not None
    assert admission.check("http://rebound.example:8765", []) is not None  # DNS rebinding


def test_bad_options_say_what_is_expected() -> None:
    with pytest.raises(tether.UsageError, match="non-empty str"):
        Admission("")
    with pytest.raises(tether.UsageError, match="list of origins"):
        Admission(origins="https://a.example")  # type: ignore[arg-type]
    with pytest.raises(tether.UsageError, match="look like 'https://host:port'"):
        Admission(origins=["app.example.com"])
