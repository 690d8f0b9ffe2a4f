"""Objects by value from an untrusted peer: rebuilt only for allowed classes, never half-built
where a user method could see them, and never by asking the peer anything while the frame is
read (that would make the server's reader wait on the attacker)."""

from __future__ import annotations

import gc
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether

from . import services
from .conftest import server_still_answers, still_answers
from .services import make_root
from .wire import (
    OBJECT,
    TRUE,
    YOUR_CLASS,
    RawPeer,
    array,
    backref,
    by_value,
    dict_,
    frozenset_,
    integer,
    mine,
    named,
    nil,
    set_,
    string,
    tuple_,
    words,
)

MODULE = "tests.security.services"


@pytest.fixture
def python_raw(server: tether.Server) -> Iterator[RawPeer]:
    """A raw peer that said hello as a Python peer (so the server describes its references)."""
    with RawPeer(server.url) as r:
        r.hello()
        yield r


def test_a_temporary_file_closer_is_never_built_so_its_finalizer_never_deletes_a_file(
    raw: RawPeer, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    closer = by_value(
        1, "tempfile", "_TemporaryFileCloser",
        dict_((string("file"), integer(1)), (string("name"), string(str(victim))), (string("delete"), words(TRUE))),
    )  # fmt: skip
    with pytest.raises(tether.ProtocolError, match=r"an instance of tempfile\._TemporaryFileCloser cannot be received"):
        raw.call_root("echo", closer)
    gc.collect()
    assert victim.read_text() == "keep me"
    still_answers(raw)


def test_the_temporary_file_closer_payload_would_really_delete_the_file(tmp_path: Path) -> None:
    """Control: the state sent above deletes the file when such an object is collected."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    closer = tempfile._TemporaryFileCloser.__new__(tempfile._TemporaryFileCloser)
    for name, value in {"file": io.BytesIO(), "name": str(victim), "delete": True}.items():
        object.__setattr__(closer, name, value)
    del closer
    gc.collect()
    assert not victim.exists()


@pytest.mark.parametrize(
    ("module", "qualname", "state"),
    [
        (MODULE, "Vault", dict_((string("owner"), string("mallory")))),
        ("tether.access", "AccessPolicy", dict_((string("trusted"), words(TRUE)))),
        ("subprocess", "Popen", dict_((string("args"), string("sh")))),
    ],
    ids=["an application class never sent", "Tether's AccessPolicy, trusted", "subprocess.Popen"],
)
def test_an_object_of_a_class_the_server_did_not_allow_is_not_rebuilt(
    raw: RawPeer, module: str, qualname: str, state: bytes
) -> None:
    with pytest.raises(tether.ProtocolError, match=rf"an instance of {module}\.{qualname} cannot be received"):
        raw.call_root("kind", by_value(1, module, qualname, state))
    still_answers(raw)


def test_a_class_described_by_reference_cannot_be_rebuilt_by_value_with_forged_private_state(
    python_raw: RawPeer,
) -> None:
    python_raw.call_root("account")  # the server describes Account to this peer (by reference only)
    forged = by_value(1, MODULE, "Account", dict_((string("owner"), string("mallory")), (string("_admin"), words(TRUE))))
    with pytest.raises(tether.ProtocolError, match=rf"an instance of {MODULE}\.Account cannot be received"):
        python_raw.call_root("is_account", forged)
    still_answers(python_raw)


def test_a_registered_by_value_class_cannot_be_turned_into_another_class_through_its_state(
    python_raw: RawPeer,
) -> None:
    """Note is registered (@tether.by_value_class): its state is a Dict of attributes. A state
    that sets ``__class__`` would turn the rebuilt Note into an Account with forged private
    state, an instance of a class peers may not build."""
    python_raw.call_root("account")  # Account is now a name this peer may use (as a class)
    forged = by_value(
        1, MODULE, "Note",
        dict_(
            (string("__class__"), named(MODULE, "Account")),
            (string("owner"), string("mallory")),
            (string("_balance"), integer(10**6)),
            (string("_admin"), words(TRUE)),
        ),
    )  # fmt: skip
    with pytest.raises(tether.ProtocolError, match=r"cannot read the message-send: .*__class__"):
        answer = python_raw.call_root("is_account", forged)
        assert answer is not True, "the server accepted a forged Account with _admin=True"
    still_answers(python_raw)


def test_a_dict_keyed_by_its_half_built_owner_is_refused_before_its_hash_runs(raw: RawPeer) -> None:
    raw.call_root("tagged")  # the server sends a Tagged: peers may send Tagged objects back
    hashed = len(services.HASHED)
    cyclic = by_value(1, MODULE, "Tagged", string("half-built"), dict_((backref(0), integer(1))))
    with pytest.raises(tether.ProtocolError, match=r"Dict key is an object whose state is still being read"):
        raw.call_root("echo", cyclic)
    assert services.HASHED[hashed:] == [], "Tagged.__hash__ ran on a half-built object"
    still_answers(raw)


def test_a_set_holding_its_half_built_owner_is_refused_before_its_hash_runs(raw: RawPeer) -> None:
    raw.call_root("tagged")
    hashed = len(services.HASHED)
    cyclic = by_value(1, MODULE, "Tagged", string("half-built"), set_(backref(0)))
    with pytest.raises(tether.ProtocolError, match=r"Set element is an object whose state is still being read"):
        raw.call_root("echo", cyclic)
    assert services.HASHED[hashed:] == []
    still_answers(raw)


def test_a_finalizable_object_whose_state_fails_half_way_is_never_made(raw: RawPeer) -> None:
    raw.call_root("finalizing")
    broken = by_value(1, MODULE, "Finalizing", string("half"), words(0x2000FFFF))
    with pytest.raises(tether.ProtocolError, match=r"unknown class tag 0x2000ffff"):
        raw.call_root("echo", broken)
    gc.collect()
    assert [s for s in services.FINALIZED if s.get("first") == "half" or "second" not in s] == [], (
        "__del__ ran on a half-built Finalizing"
    )
    still_answers(raw)


def test_a_cycle_into_a_finalizable_object_is_refused(raw: RawPeer) -> None:
    raw.call_root("finalizing")
    cyclic = by_value(1, MODULE, "Finalizing", backref(0), string("second"))
    with pytest.raises(tether.ProtocolError, match=r"a cycle through a value built after its parts"):
        raw.call_root("echo", cyclic)
    gc.collect()
    assert [s for s in services.FINALIZED if "second" not in s or s["second"] == "second"] == []
    still_answers(raw)


def test_a_function_sent_by_value_is_not_defined_so_its_code_never_runs(raw: RawPeer, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source = f"open({str(marker)!r}, 'w').close()\ndef f():\n    return 1\n"
    record = dict_(
        *[(string(k), string(v)) for k, v in {"module": "evil", "qualname": "f", "name": "f", "source": source}.items()],
        (string("defaults"), nil()),
        (string("kwdefaults"), nil()),
        (string("closure"), dict_()),
        (string("globals"), dict_()),
    )
    with pytest.raises(tether.ProtocolError, match=r"function f was sent by value.*accept_code=True"):
        raw.call_root("apply", words(0x20000115) + record)
    assert not marker.exists()
    still_answers(raw)


def test_an_object_of_a_class_the_server_never_sent_cannot_claim_to_be_going_home(raw: RawPeer) -> None:
    with pytest.raises(tether.ProtocolError, match=r"refers to our class id 77, which we never sent"):
        raw.call_root("echo", words(OBJECT, YOUR_CLASS, 77) + dict_())
    still_answers(raw)


# -- nothing is asked of the peer while its frame is read ---------------------------------------

ASKING = {
    # A Dict key or Set element that hashes a proxy inside it: the server's reader would call
    # the peer's __hash__ and wait for an answer only that same reader can read.
    "a Dict key that is a Tuple holding a proxy": dict_((tuple_(mine(5)), integer(1))),
    "a Set element that is a Tuple holding a proxy": set_(tuple_(mine(5))),
    "a FrozenSet element that is a Tuple holding a proxy": frozenset_(tuple_(mine(5))),
    # A value type rebuilt as cls(*state) from a state that is a proxy: unpacking it iterates
    # the peer's object.
    "a Decimal whose state is a proxy": by_value(1, "decimal", "Decimal", mine(5)),
    "a ValueError whose args are a proxy": by_value(1, "builtins", "ValueError", mine(5)),
    # A path rebuilt from a proxy calls os.fspath on it: the peer's __fspath__.
    "a PurePosixPath of a proxy": by_value(1, "pathlib", "PurePosixPath", tuple_(mine(5))),
}


@pytest.fixture(scope="module")
def wedgeable() -> Iterator[tether.Server]:
    """A default server, except that closing gives up on a connection after half a second
    (``close_timeout``, a WebSocket option): a connection whose receiving thread is stuck
    waiting on the peer would otherwise hold the server's close for ten seconds."""
    with tether.serve(make_root, host="127.0.0.1", port=0, transport={"close_timeout": 0.5}) as srv:
        yield srv


@pytest.mark.parametrize("value", list(ASKING.values()), ids=list(ASKING))
def test_reading_a_value_never_asks_the_peer_anything(wedgeable: tether.Server, value: bytes) -> None:
    with RawPeer(wedgeable.url) as raw:
        with pytest.raises(tether.ProtocolError, match=r"cannot read the message-send"):
            raw.call_root("echo", value)
        assert raw.asked == []
        still_answers(raw)
    server_still_answers(wedgeable)


def test_a_proxy_as_a_dict_key_is_refused_its_hash_lives_on_the_peer(raw: RawPeer) -> None:
    with pytest.raises(tether.ProtocolError, match=r"Dict key is a remote object: its hash lives on the peer"):
        raw.call_root("echo", dict_((mine(5), integer(1))))
    assert raw.asked == []
    still_answers(raw)


def test_a_by_value_object_inside_an_array_is_numbered_so_back_references_cannot_reach_past_it(
    raw: RawPeer,
) -> None:
    # A back-reference to a slot that does not exist yet must fail cleanly, not index anything.
    with pytest.raises(tether.ProtocolError, match=r"back-reference to object 5, but only 1 came before"):
        raw.call_root("echo", array(integer(1), backref(5)))
    still_answers(raw)
