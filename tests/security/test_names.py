"""Names from an untrusted peer resolve only to what the server sent it, built-in value types
and registered classes: no name reaches code, modules or objects the server never exposed, and
naming never imports anything (checked in a server process's own ``sys.modules``)."""

from __future__ import annotations

import gc
import operator
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import tether

from . import services
from .conftest import still_answers
from .wire import (
    TRUE,
    RawPeer,
    array,
    by_value,
    dict_,
    integer,
    key_of,
    message,
    mine,
    named,
    raw_bytes,
    string,
    tuple_,
    words,
    yours,
)

ROOT = Path(__file__).parents[2]


@dataclass
class Attack:
    """A callable named by the peer, the root method it is handed to, and what must not happen."""

    module: str
    qualname: str
    selector: str
    args: Callable[[RawPeer, Path], list[bytes]]
    unharmed: Callable[[Path], bool]


def _marker(tmp: Path) -> str:
    return str(tmp / "pwned")


def _no_marker(tmp: Path) -> bool:
    return not (tmp / "pwned").exists()


def _victim_dir(tmp: Path) -> Path:
    victim = tmp / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "data.txt").write_text("keep me")
    return victim


def _pickle_payload(tmp: Path) -> bytes:
    return f"cos\nsystem\n(S'touch {_marker(tmp)}'\ntR.".encode()


ATTACKS = {
    "os.system runs a shell command": Attack(
        "os", "system", "apply", lambda r, t: [named("os", "system"), string(f"touch {_marker(t)}")], _no_marker
    ),
    "posix.system, the same function under its C module's name": Attack(
        "posix", "system", "apply", lambda r, t: [named("posix", "system"), string(f"touch {_marker(t)}")], _no_marker
    ),
    "builtins.eval evaluates an expression": Attack(
        "builtins", "eval", "apply",
        lambda r, t: [named("builtins", "eval"), string(f"open({_marker(t)!r}, 'w').close()")], _no_marker,
    ),
    "builtins.exec executes statements": Attack(
        "builtins", "exec", "apply",
        lambda r, t: [named("builtins", "exec"), string(f"open({_marker(t)!r}, 'w').close()")], _no_marker,
    ),
    "builtins.open creates a file": Attack(
        "builtins", "open", "apply", lambda r, t: [named("builtins", "open"), string(_marker(t)), string("w")],
        _no_marker,
    ),
    "subprocess.Popen starts a process": Attack(
        "subprocess", "Popen", "apply",
        lambda r, t: [named("subprocess", "Popen"), array(string("touch"), string(_marker(t)))], _no_marker,
    ),
    "shutil.rmtree deletes a directory": Attack(
        "shutil", "rmtree", "apply", lambda r, t: [named("shutil", "rmtree"), string(str(_victim_dir(t)))],
        lambda t: (t / "victim" / "data.txt").exists(),
    ),
    "pickle.loads as a sort key unpickles a payload that runs a command": Attack(
        "pickle", "loads", "sort", lambda r, t: [array(raw_bytes(_pickle_payload(t))), named("pickle", "loads")],
        _no_marker,
    ),
    "operator.attrgetter makes a getter of a private attribute": Attack(
        "operator", "attrgetter", "apply", lambda r, t: [named("operator", "attrgetter"), string("_api_token")],
        lambda t: True,
    ),
    "builtins.getattr reads a private attribute of the root": Attack(
        "builtins", "getattr", "apply",
        lambda r, t: [named("builtins", "getattr"), yours(r.root), string("_api_token")], lambda t: True,
    ),
    "builtins.vars dumps the root's __dict__": Attack(
        "builtins", "vars", "apply", lambda r, t: [named("builtins", "vars"), yours(r.root)], lambda t: True
    ),
    "builtins.__import__ imports a module": Attack(
        "builtins", "__import__", "apply", lambda r, t: [named("builtins", "__import__"), string("tabnanny")],
        lambda t: "tabnanny" not in sys.modules,
    ),
    "importlib.import_module imports a module": Attack(
        "importlib", "import_module", "apply",
        lambda r, t: [named("importlib", "import_module"), string("tabnanny")],
        lambda t: "tabnanny" not in sys.modules,
    ),
    "sys.modules.get, a dotted name through a module's dict": Attack(
        "sys", "modules.get", "apply", lambda r, t: [named("sys", "modules.get"), string("os")], lambda t: True
    ),
    "os.environ, a module-level object": Attack(
        "os", "environ", "echo", lambda r, t: [named("os", "environ")], lambda t: True
    ),
    "builtins.type, a class that is not a value type": Attack(
        "builtins", "type", "apply", lambda r, t: [named("builtins", "type"), yours(r.root)], lambda t: True
    ),
    "tether.access.AccessPolicy, to build a trusted policy": Attack(
        "tether.access", "AccessPolicy", "apply",
        lambda r, t: [named("tether.access", "AccessPolicy"), words(0x20000001)], lambda t: True,
    ),
    "an application class the server never sent (Vault)": Attack(
        "tests.security.services", "Vault", "apply",
        lambda r, t: [named("tests.security.services", "Vault"), string("mallory")], lambda t: True,
    ),
    "a module-level secret string of the application": Attack(
        "tests.security.services", "SECRET", "echo",
        lambda r, t: [named("tests.security.services", "SECRET")], lambda t: True,
    ),
    "an application object never exposed to this peer (the shared root of another server)": Attack(
        "tests.security.services", "shared_root", "echo",
        lambda r, t: [named("tests.security.services", "shared_root")], lambda t: True,
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
def test_a_named_callable_or_object_is_refused_and_nothing_runs(
    attack: Attack, raw: RawPeer, tmp_path: Path
) -> None:
    args = attack.args(raw, tmp_path)
    assert attack.unharmed(tmp_path), "the check must hold before the attack"
    name = re.escape(f"{attack.module}.{attack.qualname}")
    with pytest.raises(tether.ProtocolError, match=rf"{name} cannot be named by an untrusted peer"):
        raw.call_root(attack.selector, *args)
    assert attack.unharmed(tmp_path)
    still_answers(raw)


def test_a_standard_library_class_passed_by_the_client_is_refused_not_resolved_to_the_servers_own(
    peer: tether.Peer,
) -> None:
    # The public client writes operator.attrgetter by name; it may not send a stdlib class by
    # reference, so no fallback goes with it, and the server must not resolve the name itself.
    with pytest.raises(tether.ProtocolError, match=r"operator\.attrgetter cannot be named by an untrusted peer"):
        peer.root.identical(operator.attrgetter, "operator", "attrgetter")
    assert peer.root.add(1, 2) == 3


def test_an_application_class_passed_by_the_client_is_its_own_fallback_never_the_servers_class(
    peer: tether.Peer,
) -> None:
    # The client has a class of the same name as the server's Vault (here: the very same one,
    # in-process); the server never sent Vault, so it must use the fallback proxy.
    assert peer.root.identical(services.Vault, "tests.security.services", "Vault") is False
    assert peer.root.kind(services.Vault).startswith("tether.proxy.")
    assert peer.root.add(1, 2) == 3


def test_a_module_named_with_a_fallback_gives_the_fallback_not_the_module(raw: RawPeer) -> None:
    kind = raw.call_root("kind", named("os", "", fallback=mine(9)))
    assert kind.startswith("tether.proxy."), f"the server resolved the name os to a {kind}"
    with pytest.raises(tether.ProtocolError, match=r"os cannot be named by an untrusted peer"):
        raw.call_root("kind", named("os", ""))
    still_answers(raw)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("codec", named("json", "")),
        ("module", named("tests.security.services", "")),
        ("modules", dict_((string("json"), named("json", "")), (string("sys"), named("sys", "")))),
    ],
    ids=["a module in the root's own __dict__", "a method answering a module", "a dict of modules"],
)
def test_the_server_writes_a_module_by_name_only_never_with_a_fallback_reference(
    raw: RawPeer, selector: str, expected: bytes
) -> None:
    if selector == "codec":
        answer = raw.call_root("__getattribute__", string(selector))
    else:
        answer = raw.call_root(selector)
    assert answer == expected, "the module went with a reference the peer could use"
    still_answers(raw)


def test_a_module_the_server_names_is_refused_by_a_default_client(peer: tether.Peer) -> None:
    with pytest.raises(tether.ProtocolError, match=r"cannot read the answer: json cannot be named by an untrusted peer"):
        peer.root.codec  # noqa: B018 - the read is the attack
    assert peer.root.add(1, 2) == 3


# -- naming never imports: the server's own process --------------------------------------------


@pytest.fixture(scope="module")
def process_server() -> Iterator[str]:
    """A default server in a process of its own, so that its sys.modules is its own."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "tests.security.services:make_root", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert "serving" in line, f"the server did not start: {line}"
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.kill()
        proc.wait(5)


@pytest.mark.parametrize(
    ("module", "attack"),
    [
        ("this", named("this", "")),
        ("antigravity", named("antigravity", "geohash")),
        ("unittest.__main__", by_value(1, "unittest.__main__", "main", tuple_())),
    ],
    ids=["this (prints on import)", "antigravity (opens a browser)", "unittest.__main__ (runs and exits)"],
)
def test_naming_a_module_never_imports_it_in_the_server_process(
    process_server: str, module: str, attack: bytes
) -> None:
    with RawPeer(process_server) as raw:
        assert raw.call_root("loaded", string(module)) is False, "the module must not be loaded before"
        with pytest.raises(tether.ProtocolError, match=rf"{re.escape(module)}\S* cannot be"):
            raw.call_root("echo", attack)
        assert raw.call_root("loaded", string(module)) is False
        still_answers(raw)


def test_a_name_with_a_fallback_never_imports_either(process_server: str) -> None:
    with RawPeer(process_server) as raw:
        kind = raw.call_root("kind", named("this", "", fallback=mine(4)))
        assert kind.startswith("tether.proxy."), f"'this' resolved to a {kind}"
        assert raw.call_root("loaded", string("this")) is False
        still_answers(raw)


def test_the_pickle_payload_would_really_run(tmp_path: Path) -> None:
    """The pickle attack above is real: the same bytes run a command when unpickled here."""
    marker = tmp_path / "pwned"
    assert not marker.exists()
    pickle.loads(_pickle_payload(tmp_path))
    assert marker.exists()


def test_a_standard_library_class_described_as_the_class_of_a_reference_does_not_become_nameable(
    server: tether.Server, tmp_path: Path
) -> None:
    """The root hands out a NamedTemporaryFile by reference, so its class info names
    tempfile._TemporaryFileWrapper. If that made the class nameable, a peer could build
    ``_TemporaryFileWrapper(<anything with close()>, "/any/file", True)`` through any callback
    method, and dropping the reference would delete the file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with RawPeer(server.url) as raw:
        raw.hello()
        raw.call_root("scratch")
        gen = key_of(raw.call_root("generator"))  # something with a close() method
        wrapper = named("tempfile", "_TemporaryFileWrapper")
        with pytest.raises(
            tether.ProtocolError, match=r"tempfile\._TemporaryFileWrapper cannot be named by an untrusted peer"
        ):
            made = raw.call_root("apply", wrapper, yours(gen), string(str(victim)), words(TRUE))
            raw.send(message(None, yours(0), "release", [array(integer(key_of(made)), integer(1))]))
        still_answers(raw)
    gc.collect()
    assert victim.read_text() == "keep me"
