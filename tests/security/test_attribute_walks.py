"""Walks through public names to what was never exposed: frames, globals, builtins, the bound
object of a method, the server's own session and policy. Each door is shut with a clear error,
and the connection goes on."""

from __future__ import annotations

import pytest

import tether

from . import services
from .conftest import still_answers
from .wire import RawPeer, integer, string


@pytest.mark.parametrize("name", ["gi_frame", "gi_code"])
def test_a_generator_offers_send_but_not_its_frame_or_code(peer: tether.Peer, name: str) -> None:
    gen = peer.root.generator()
    assert gen.send(None) == 2  # generators keep send/throw/close
    with pytest.raises(tether.AccessDenied, match=rf"generator has no public name {name!r}"):
        getattr(gen, name)  # gen.gi_frame.f_globals / f_locals would follow
    assert peer.root.add(1, 2) == 3


@pytest.mark.parametrize(
    ("selector", "type_name"),
    [
        ("frame", "builtins.frame"),  # frame.f_globals, frame.f_builtins
        ("traceback", "builtins.traceback"),  # tb.tb_frame.f_back.f_locals
        ("exc_info", "builtins.traceback"),  # (type, value, tb): the traceback in a tuple
        ("code", "builtins.code"),  # code objects rebuild functions
        ("class_namespace", "builtins.mappingproxy"),  # vars(cls): methods and class attributes
    ],
)
def test_interpreter_objects_never_leave_by_reference(peer: tether.Peer, selector: str, type_name: str) -> None:
    with pytest.raises(tether.EncodeError, match=rf"a {type_name} cannot be sent to an untrusted peer"):
        getattr(peer.root, selector)()
    assert peer.root.add(1, 2) == 3


@pytest.mark.parametrize("name", ["__globals__", "__builtins__", "__code__", "__closure__", "__defaults__"])
def test_a_function_is_callable_but_its_globals_builtins_and_code_are_private(peer: tether.Peer, name: str) -> None:
    func = peer.root.function()
    assert func("x") == "x"
    assert func.__name__ == "helper"  # one of the four readable dunder names
    with pytest.raises(tether.AccessDenied, match=rf"function attribute {name!r} is private"):
        getattr(func, name)
    assert peer.root.add(1, 2) == 3


def test_a_function_s_defaults_cannot_be_replaced(peer: tether.Peer) -> None:
    func = peer.root.function()
    with pytest.raises(tether.AccessDenied, match=r"function attribute '__defaults__' is private"):
        func.__defaults__ = ("poisoned",)
    assert services.helper.__defaults__ is None
    assert func(7) == 7


@pytest.mark.parametrize("name", ["__self__", "__func__"])
def test_a_bound_method_does_not_give_its_object_or_function(peer: tether.Peer, name: str) -> None:
    method = peer.root.bound_method()
    assert method(2, 3) == 5
    with pytest.raises(tether.AccessDenied, match=rf"method attribute {name!r} is private"):
        getattr(method, name)
    assert peer.root.add(1, 2) == 3


def test_a_partial_does_not_give_its_function_or_arguments(peer: tether.Peer) -> None:
    part = peer.root.partial()
    for name in ("func", "args"):
        with pytest.raises(tether.AccessDenied, match=rf"partial has no public name {name!r}"):
            getattr(part, name)  # .args holds the API token
    assert peer.root.add(1, 2) == 3


@pytest.mark.parametrize("name", ["run", "start"])
def test_a_standard_library_object_offers_none_of_its_methods(peer: tether.Peer, name: str) -> None:
    thread = peer.root.thread()
    with pytest.raises(tether.AccessDenied, match=rf"Thread has no public name {name!r}"):
        getattr(thread, name)()
    assert peer.root.add(1, 2) == 3


def test_the_root_s_peer_attribute_never_leaves_so_the_session_and_policy_stay_out_of_reach(
    peer: tether.Peer,
) -> None:
    root = peer.root
    with pytest.raises(tether.EncodeError, match=r"a tether\.sync\.session\.Peer cannot be sent to an untrusted peer"):
        root.peer  # noqa: B018 - root.peer.session.protocol.policy.trusted = True would follow
    with pytest.raises(tether.EncodeError, match=r"a tether\.sync\.session\.Session cannot be sent to an untrusted peer"):
        root.session()
    with pytest.raises(tether.AccessDenied, match=r"'_private' is private"):
        root._private()  # still untrusted
    assert root.add(1, 2) == 3


PRIVATE = {
    "__reduce_ex__ (pickle's reduction hands out the state)": ("__reduce_ex__", [integer(2)]),
    "__getstate__ (the __dict__, token included)": ("__getstate__", []),
    "__init__ (re-initialise the root)": ("__init__", []),
    "__init_subclass__": ("__init_subclass__", []),
    "reading __dict__": ("__getattribute__", [string("__dict__")]),
    "reading __class__": ("__getattribute__", [string("__class__")]),
    "reading _api_token": ("__getattribute__", [string("_api_token")]),
    "calling _private": ("_private", []),
}


@pytest.mark.parametrize("selector_args", list(PRIVATE.values()), ids=list(PRIVATE))
def test_private_and_dunder_names_of_the_root_are_refused(raw: RawPeer, selector_args: tuple[str, list[bytes]]) -> None:
    selector, args = selector_args
    name = args[0][8:].decode() if selector == "__getattribute__" else selector
    with pytest.raises(tether.AccessDenied, match=rf"Root attribute {name!r} is private"):
        raw.call_root(selector, *args)
    still_answers(raw)


def test_dir_of_the_root_lists_only_the_names_a_peer_may_use(peer: tether.Peer) -> None:
    names = dir(peer.root)
    assert "add" in names and "label" in names
    assert not [n for n in names if n.startswith("_")], names
    with pytest.raises(tether.AccessDenied, match=r"Root attribute '_api_token' is private"):
        peer.root._api_token  # noqa: B018
    assert peer.root.add(1, 2) == 3
