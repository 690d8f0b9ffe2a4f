"""The application the hostile suite attacks: what a server would ordinarily expose.

Importable by a server subprocess too (``python -m tether serve tests.security.services:...``),
for the attacks on process state (``sys.modules``).
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import tether

SECRET = "module-level secret that no peer may read"
API_TOKEN = "tok-4f1e9c-never-leaves-the-server"

HASHED: list[dict[str, Any]] = []  # the state of each Tagged object whose __hash__ or __eq__ ran
FINALIZED: list[dict[str, Any]] = []  # the state of each Finalizing object whose __del__ ran


class Vault:
    """An application class the server checks for with isinstance (never sent to peers)."""

    def __init__(self, owner: str = "server") -> None:
        self.owner = owner

    def open(self) -> str:
        return "opened"


class Account:
    """Handed to peers by reference only; its private state must not be forged by a peer."""

    def __init__(self, owner: str, balance: int) -> None:
        self.owner = owner
        self._balance = balance
        self._admin = False

    def balance(self) -> int:
        return self._balance


@dataclass
class Point:
    x: Any
    y: Any


@dataclass
class Tagged:
    label: Any
    extra: Any = None

    def __hash__(self) -> int:
        HASHED.append(dict(vars(self)))
        return 0

    def __eq__(self, other: object) -> bool:
        HASHED.append(dict(vars(self)))
        return other is self


@dataclass
class Finalizing:
    first: Any
    second: Any

    def __del__(self) -> None:
        FINALIZED.append(dict(vars(self)))


@tether.by_value_class
class Note:
    """Registered: travels by value (its __dict__) and peers may send it back."""

    def __init__(self, text: str) -> None:
        self.text = text


class Thing:
    """A fresh application object, sent by reference."""

    def poke(self) -> str:
        return "poked"


def helper(x: Any) -> Any:
    """An application function the root hands out by reference."""
    return x


class Root:
    """The root object every hostile peer is given."""

    def __init__(self, peer: Any = None) -> None:
        self._api_token = API_TOKEN
        self.label = "root"
        self.items = [3, 1, 2]
        self.codec = json  # a module in the object's own __dict__
        if peer is not None:
            self.peer = peer  # the server's Peer for this connection (a runtime object)

    # -- ordinary calls ----------------------------------------------------------------------

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def echo(self, x: Any) -> Any:
        return x

    def apply(self, f: Any, *args: Any) -> Any:
        return f(*args)

    def apply_here(self, f: Any) -> list[Any]:
        """[the id of the thread running this handler, f()]."""
        return [threading.get_ident(), f()]

    def thread_id(self) -> int:
        return threading.get_ident()

    def pause(self, seconds: float) -> int:
        time.sleep(min(float(seconds), 5.0))
        return threading.get_ident()

    def sort(self, items: Any, key: Any) -> Any:
        return sorted(items, key=key)

    def kind(self, x: Any) -> str:
        return f"{type(x).__module__}.{type(x).__qualname__}"

    def is_vault(self, x: Any) -> bool:
        return isinstance(x, Vault)

    def is_account(self, x: Any) -> bool:
        return isinstance(x, Account) and getattr(x, "_admin", False) is True

    def render(self, template: str, obj: Any) -> str:
        return template.format(obj)

    def identical(self, x: Any, module: str, name: str) -> bool:
        """Whether ``x`` is this process's own ``module.name`` (not a stand-in for the peer's)."""
        return x is getattr(sys.modules.get(module), name, None)

    def loaded(self, name: str) -> bool:
        return name in sys.modules

    # -- things handed out by reference -------------------------------------------------------

    def generator(self) -> Any:
        def numbers() -> Any:
            local_secret = API_TOKEN  # noqa: F841 - what a frame walk would find
            yield 1
            yield 2

        gen = numbers()
        next(gen)
        return gen

    def function(self) -> Any:
        return helper

    def bound_method(self) -> Any:
        return self.add

    def partial(self) -> Any:
        return functools.partial(helper, API_TOKEN)

    def thread(self) -> Any:
        return threading.Thread(target=helper, args=(1,), daemon=True)

    def things_and_frame(self) -> list[Any]:
        return [Thing(), Thing(), sys._getframe()]

    def scratch(self) -> Any:
        """A scratch file for the peer (a standard-library object, handed out by reference)."""
        return tempfile.NamedTemporaryFile(prefix="tether-scratch-")

    def counter(self) -> Any:
        return itertools.count()

    def account(self) -> Account:
        return Account("alice", 100)

    def thing(self) -> Thing:
        return Thing()

    def things(self, n: int) -> list[Thing]:
        return [Thing() for _ in range(n)]

    # -- values -----------------------------------------------------------------------------

    def point(self) -> Point:
        return Point(1, 2)

    def tagged(self) -> Tagged:
        return Tagged("sent")

    def finalizing(self) -> Finalizing:
        return Finalizing(1, 2)

    def note(self) -> Note:
        return Note("hello")

    # -- interpreter objects a careless application might return -----------------------------

    def frame(self) -> Any:
        return sys._getframe()

    def traceback(self) -> Any:
        try:
            raise ValueError("boom")
        except ValueError as exc:
            return exc.__traceback__

    def exc_info(self) -> Any:
        try:
            raise ValueError("boom")
        except ValueError:
            return sys.exc_info()

    def code(self) -> Any:
        return helper.__code__

    def globals(self) -> Any:
        return vars(sys.modules[__name__])

    def class_namespace(self) -> Any:
        return vars(Root)

    def module(self) -> Any:
        return sys.modules[__name__]

    def modules(self) -> Any:
        return {"json": json, "sys": sys}

    def my_peer(self) -> Any:
        return getattr(self, "peer", None)

    def session(self) -> Any:
        peer = getattr(self, "peer", None)
        return peer.session if peer is not None else None

    def _private(self) -> str:
        return "private"


def make_root(peer: Any) -> Root:
    """A root per connection, holding that connection's Peer (as servers that call back do)."""
    return Root(peer)


shared_root = Root()
