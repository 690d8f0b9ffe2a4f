"""One client cannot rewrite what every client shares: the root's attributes stay as the
server set them, and each connection reaches only its own exposure table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tether

from .conftest import still_answers
from .services import Root, helper, shared_root
from .wire import RawPeer, string, yours


@pytest.fixture
def victim(shared_server: tether.Server) -> Iterator[tether.Peer]:
    """Another client of the same shared root."""
    with tether.connect(shared_server.url) as p:
        yield p


@pytest.fixture
def attacker(shared_server: tether.Server) -> Iterator[tether.Peer]:
    with tether.connect(shared_server.url) as p:
        yield p


def test_a_client_cannot_replace_a_method_of_the_shared_root(attacker: tether.Peer, victim: tether.Peer) -> None:
    def add(a: int, b: int) -> str:
        return "the attacker's add ran"

    with pytest.raises(tether.AccessDenied, match=r"peers may not set attribute 'add' of Root"):
        attacker.root.add = add
    assert "add" not in vars(shared_root)
    assert victim.root.add(1, 2) == 3
    assert attacker.root.add(1, 2) == 3


def test_a_client_cannot_change_a_public_attribute_of_the_shared_root(
    attacker: tether.Peer, victim: tether.Peer
) -> None:
    with pytest.raises(tether.AccessDenied, match=r"peers may not set attribute 'label' of Root"):
        attacker.root.label = "pwned"
    assert shared_root.label == "root"
    assert victim.root.label == "root"


def test_a_client_cannot_add_an_attribute_to_the_shared_root(attacker: tether.Peer, victim: tether.Peer) -> None:
    with pytest.raises(tether.AccessDenied, match=r"peers may not set attribute 'greeting' of Root"):
        attacker.root.greeting = "pwned"
    assert "greeting" not in vars(shared_root)
    assert victim.root.add(1, 2) == 3


@pytest.mark.parametrize("name", ["label", "add"])
def test_a_client_cannot_delete_an_attribute_of_the_shared_root(
    attacker: tether.Peer, victim: tether.Peer, name: str
) -> None:
    with pytest.raises(tether.AccessDenied, match=rf"peers may not delete attribute {name!r} of Root"):
        delattr(attacker.root, name)
    assert shared_root.label == "root"
    assert victim.root.add(1, 2) == 3


@pytest.mark.parametrize(
    ("selector", "args", "name"),
    [
        ("__setattr__", [string("__class__"), string("str")], "__class__"),
        ("__setattr__", [string("__dict__"), string("x")], "__dict__"),
        ("__setattr__", [string("_api_token"), string("attacker's token")], "_api_token"),
        ("__delattr__", [string("_api_token")], "_api_token"),
    ],
    ids=["set __class__", "set __dict__", "set _api_token", "delete _api_token"],
)
def test_private_attributes_of_the_shared_root_cannot_be_set_or_deleted(
    shared_server: tether.Server, victim: tether.Peer, selector: str, args: list[bytes], name: str
) -> None:
    with RawPeer(shared_server.url) as raw:
        with pytest.raises(tether.AccessDenied, match=rf"Root attribute {name!r} is private"):
            raw.call_root(selector, *args)
        still_answers(raw)
    assert type(shared_root) is Root
    assert vars(shared_root)["_api_token"].startswith("tok-")
    assert victim.root.add(1, 2) == 3


def test_a_client_cannot_use_the_keys_of_objects_exposed_to_another_client(shared_server: tether.Server) -> None:
    with RawPeer(shared_server.url) as first, RawPeer(shared_server.url) as second:
        account = first.call_root("account")  # exposed to the first client only
        assert first.call(yours(account.key), "balance") == 100
        assert account.key != second.root
        with pytest.raises(
            tether.ProtocolError, match=rf"no object is exposed under key {account.key} on this connection"
        ):
            second.call(yours(account.key), "balance")
        still_answers(second)
        assert first.call(yours(account.key), "balance") == 100


def test_a_function_handed_out_cannot_be_given_attributes(attacker: tether.Peer) -> None:
    func = attacker.root.function()
    with pytest.raises(tether.AccessDenied, match=r"peers may not set attribute 'hook' of function"):
        func.hook = "pwned"
    assert "hook" not in vars(helper)
    assert func(5) == 5
    assert attacker.root.add(1, 2) == 3
