"""The Tether object (key 0) answers only its eight messages, and each obeys the policy:
``fetch`` copies only values, ``get_classes`` sends source only for registered classes,
``help`` shows only what the peer may use, ``iterate``/``next_batch`` reach no names."""

from __future__ import annotations

from typing import Any

import pytest

import tether

from .conftest import still_answers
from .services import API_TOKEN, SECRET
from .wire import RawPeer, array, integer, named, string, yours


@pytest.mark.parametrize(
    ("selector", "type_name"),
    [
        ("echo", "Root"),  # the root itself: its __dict__ holds _api_token
        ("account", "Account"),  # private balance and admin flag
        ("function", "function"),  # a function by value carries its source and globals
        ("partial", "partial"),  # its args hold the API token
        ("generator", "generator"),
    ],
)
def test_fetch_copies_only_values_never_the_private_state_of_an_object(
    peer: tether.Peer, selector: str, type_name: str
) -> None:
    target = peer.root if selector == "echo" else getattr(peer.root, selector)()
    with pytest.raises(
        tether.AccessDenied, match=rf"a {type_name} travels by reference and its state is private to this side"
    ):
        tether.fetch(target)
    assert tether.fetch(peer.root.echo([1, {"a": 2}])) == [1, {"a": 2}]  # values still copy
    assert peer.root.add(1, 2) == 3


def test_fetch_of_the_tether_object_itself_is_refused(raw: RawPeer) -> None:
    with pytest.raises(tether.AccessDenied, match=r"a TetherObject travels by reference"):
        raw.call(yours(0), "fetch", yours(0))
    still_answers(raw)


def test_get_classes_does_not_send_the_source_of_an_unregistered_class_the_server_sent(raw: RawPeer) -> None:
    raw.call_root("point")  # the server names Point (class id 1 on this connection) by value
    with pytest.raises(
        tether.AccessDenied, match=r"the source of tests\.security\.services\.Point is not sent to untrusted peers"
    ):
        raw.call(yours(0), "get_classes", array(integer(1)))
    still_answers(raw)


def test_get_classes_of_a_class_id_never_named_is_refused(raw: RawPeer) -> None:
    with pytest.raises(tether.ProtocolError, match=r"no class was named under id 999 on this connection"):
        raw.call(yours(0), "get_classes", array(integer(999)))
    still_answers(raw)


def test_get_classes_asking_for_thousands_of_ids_at_once_is_refused(raw: RawPeer) -> None:
    with pytest.raises(tether.ProtocolError, match=r"get_classes asks for 5000 classes; at most 1024 at once"):
        raw.call(yours(0), "get_classes", array(*[integer(i) for i in range(5000)]))
    still_answers(raw)


@pytest.mark.parametrize("selector", ["echo", "partial", "function"])
def test_help_shows_only_public_names_never_private_ones_or_secrets(raw: RawPeer, selector: str) -> None:
    target = raw.call_root(selector, yours(raw.root)) if selector == "echo" else raw.call_root(selector)
    page = raw.call(yours(0), "help", yours(target.key))
    assert isinstance(page, str) and page
    for hidden in ("_private", "_api_token", API_TOKEN, SECRET, "__dict__", "FUNCTIONS", "DATA"):
        assert hidden not in page, f"help shows {hidden!r}:\n{page}"
    if selector == "echo":
        assert "  add(" in page and "  apply(" in page
    still_answers(raw)


def test_help_of_the_tether_object_shows_nothing_of_its_protocol(raw: RawPeer) -> None:
    page = raw.call(yours(0), "help", yours(0))
    for hidden in ("_protocol", "apply_hello", "class_records", "exports"):
        assert hidden not in page, f"help shows {hidden!r}:\n{page}"
    assert page.startswith("Help on TetherObject object")
    still_answers(raw)


@pytest.mark.parametrize(
    ("module", "qualname"), [("sys", ""), ("os", "environ"), ("sys", "argv")], ids=["sys", "os.environ", "sys.argv"]
)
def test_help_of_a_named_module_or_its_data_is_refused(raw: RawPeer, module: str, qualname: str) -> None:
    name = f"{module}.{qualname}" if qualname else module
    with pytest.raises(tether.ProtocolError, match=rf"{name} cannot be named by an untrusted peer"):
        raw.call(yours(0), "help", named(module, qualname))
    still_answers(raw)


@pytest.mark.parametrize(
    ("selector", "args"),
    [
        ("iterate", [named("os", "environ"), integer(100)]),
        ("next_batch", [named("sys", "modules"), integer(100)]),
        ("iterate", [named("gc", "get_objects"), integer(100)]),
    ],
    ids=["iterate(os.environ)", "next_batch(sys.modules)", "iterate(gc.get_objects)"],
)
def test_iterating_a_named_object_is_refused(raw: RawPeer, selector: str, args: list[bytes]) -> None:
    with pytest.raises(tether.ProtocolError, match=r"cannot be named by an untrusted peer"):
        raw.call(yours(0), selector, *args)
    still_answers(raw)


def test_a_batch_is_cut_at_65536_items_however_many_are_asked(raw: RawPeer) -> None:
    counter = raw.call_root("counter")
    answer: Any = raw.call(yours(0), "next_batch", yours(counter.key), integer(2**28))
    items, done = answer
    assert len(items) == 65536 and items[-1] == 65535 and done is False
    still_answers(raw)


@pytest.mark.parametrize(
    ("selector", "args"),
    [
        ("_protocol", []),
        ("__getattribute__", [string("_protocol")]),
        ("__init__", [yours(0)]),
        ("__reduce_ex__", [integer(2)]),
        ("__call__", []),
        ("INLINE", []),
        ("apply_hello", [integer(1)]),
    ],
)
def test_the_tether_object_refuses_every_other_selector(raw: RawPeer, selector: str, args: list[bytes]) -> None:
    with pytest.raises(tether.AccessDenied, match=rf"the Tether object understands .*, not {selector!r}"):
        raw.call(yours(0), selector, *args)
    still_answers(raw)


def test_releasing_the_tether_object_is_refused(raw: RawPeer) -> None:
    with pytest.raises(tether.ProtocolError, match=r"release of key 0, which is not exposed"):
        raw.call(yours(0), "release", array(integer(0), integer(1)))
    still_answers(raw)


def test_releasing_more_references_than_were_sent_is_refused_and_changes_nothing(raw: RawPeer) -> None:
    with pytest.raises(tether.ProtocolError, match=rf"release of 5 references to key {raw.root}, but 1 were sent"):
        raw.call(yours(0), "release", array(integer(raw.root), integer(5)))
    still_answers(raw)
