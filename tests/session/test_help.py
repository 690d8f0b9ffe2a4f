"""help() on proxies and on remote methods shows the remote names, signatures and docstrings
(pydoc renders them here from what the peer answers)."""

from __future__ import annotations

import inspect
import pydoc
from typing import Any

from tether.testing import pair


class Calc:
    """A calculator that lives on the other side."""

    def add(self, a: int, b: int = 2) -> int:
        """Add two numbers, remotely."""
        return a + b


def remote_function(x: int, *, scale: float = 1.5) -> float:
    """Scale x where it lives."""
    return x * scale


class Root(Calc):
    def function(self) -> Any:
        return remote_function


def text(obj: Any) -> str:
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)  # type: ignore[attr-defined, no-any-return]


def test_help_on_a_remote_method_shows_its_remote_signature_and_docstring() -> None:
    with pair(Root()) as (client, _):
        page = text(client.root.add)
        assert "add(a: int, b: int = 2) -> int" in page
        assert "Add two numbers, remotely." in page
        assert "RemoteMethod" not in page
        assert str(inspect.signature(client.root.add)) == "(a: int, b: int = 2) -> int"
        assert client.root.add(1) == 3  # still a method


def test_help_on_a_remote_function_shows_its_signature_and_docstring() -> None:
    with pair(Root()) as (client, _):
        page = text(client.root.function())
        assert "remote_function(x: int, *, scale: float = 1.5) -> float" in page
        assert "Scale x where it lives." in page


def test_tether_help_of_an_untrusted_peers_object_lists_what_it_may_call() -> None:
    with pair(Root()) as (client, _):
        page = client.session.call_tether("help", (client.root,), must_block=True)
        assert "A calculator that lives on the other side." in page
        assert "add(a: 'int', b: 'int' = 2) -> 'int'" in page and "Add two numbers, remotely." in page
        assert "function()" in page
