"""``python -m tether_demo --native`` (``tether demo --native``): the two-process demo.

It starts ``tether serve tether_demo.native:make_library`` in a child process, connects to it
exposing a :class:`Console` of its own, and prints what happens on both sides: calls each way,
a live object by reference, nested calls bouncing between the two processes, a remote error
with its remote traceback, and, on a second connection that asks for debugging, the same error
read like a local one and a post-mortem in the server driven from here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from typing import Any


class Library:
    """The server's root, one per connection (made by :func:`make_library`)."""

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.shelf = {"SICP": "Abelson & Sussman", "Smalltalk-80": "Goldberg & Robson"}

    def add(self, a: int, b: int) -> int:
        return a + b

    def author(self, title: str) -> str:
        return self.shelf[title]  # a KeyError travels back to the caller

    def titles(self) -> list[str]:
        return sorted(self.shelf)

    def new_counter(self) -> Counter:
        return Counter()  # not a literal: the client gets a proxy

    def announce(self, text: str) -> str:
        """Call back into the client: its root is this connection's peer root."""
        reply = self.peer.root.show(f"the server announces: {text}")
        return f"client answered {reply!r}"

    def ping(self, n: int, other: Any) -> int:
        """Nested calls: each hop calls the other side's ping, on the previous one's behalf."""
        print(f"  [server pid {os.getpid()}] ping({n})", flush=True)
        return 0 if n == 0 else 1 + other.ping(n - 1, self)

    def bounce(self, n: int, other: Any) -> int:
        """Like ping, without printing: for long chains."""
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


def make_library(peer: Any) -> Library:
    """The factory ``tether serve`` calls with each new peer: one Library per connection.

    Run by the demo (``TETHER_DEMO_DEBUG=1``), it offers debugging to each peer: a peer that
    connects with ``debug=True`` may then debug this server (and is trusted: the demo's own
    client, on loopback); the others stay strangers."""
    if os.environ.get("TETHER_DEMO_DEBUG") == "1":
        import tether

        tether.grant_debugging(peer)
    return Library(peer)


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def increment(self, by: int = 1) -> int:
        self.count += by
        return self.count


class Console:
    """The client's root: the server calls it back."""

    def show(self, text: str) -> str:
        print(f"  [client pid {os.getpid()}] show: {text}", flush=True)
        return "seen"

    def ping(self, n: int, other: Any) -> int:
        print(f"  [client pid {os.getpid()}] ping({n})", flush=True)
        return 0 if n == 0 else 1 + other.ping(n - 1, self)


def _forward(stream: Any) -> None:
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()


def main(port: int = 0) -> int:
    """The native demo: a server process and this process message each other's objects."""
    import tether

    cmd = [sys.executable, "-m", "tether", "serve", "tether_demo.native:make_library", "--port", str(port), "--tracebacks"]
    print(f"$ {' '.join(cmd[2:])}", flush=True)
    env = dict(os.environ, TETHER_DEMO_DEBUG="1")  # make_library offers debugging (step 6)
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        if "serving" not in first:
            print(first + server.stdout.read(), file=sys.stderr)
            return 1
        print(first.rstrip(), f"(server pid {server.pid})", flush=True)
        url = first.rsplit(" ", 1)[1].strip()
        threading.Thread(target=_forward, args=(server.stdout,), daemon=True).start()

        with tether.connect(url, root=Console()) as peer:
            lib = peer.root
            print(f"\nconnected to {url} from pid {os.getpid()}; the server says: {peer.info}")
            print("\n1. client -> server")
            print(f"   lib.add(3, 4)            -> {lib.add(3, 4)}")
            print(f"   lib.titles()             -> {lib.titles()}")
            print(f"   lib.author('SICP')       -> {lib.author('SICP')!r}")
            counter = lib.new_counter()
            counter.increment()
            print(f"   counter = lib.new_counter(); counter.increment(); counter.increment(5) -> {counter.increment(5)}")
            print(f"   {tether.describe(counter)}")
            print("\n2. server -> client (a callback into the client's root)")
            print(f"   lib.announce('hello') -> {lib.announce('hello')!r}")
            print("\n3. nested calls bouncing between the two processes")
            console = Console()
            print(f"   lib.ping(5, console) -> {lib.ping(5, console)}")
            started = time.perf_counter()
            hops = lib.bounce(300, _QuietConsole())
            print(f"   lib.bounce(300, ...) -> {hops}: 300 nested hops in {time.perf_counter() - started:.2f} s")
            print("\n4. a remote error")
            try:
                lib.author("Dune")
            except KeyError as exc:
                print(f"   lib.author('Dune') raised KeyError({exc.args[0]!r}) with the remote traceback:")
                for line in (getattr(exc, "remote_traceback", "") or "").rstrip().splitlines():
                    print(f"     | {line}")
            print("\n5. a refused attribute")
            try:
                lib._Library__secret  # noqa: B018
            except tether.AccessDenied as exc:
                print(f"   lib._Library__secret raised AccessDenied: {exc}")
            time.sleep(0.1)
            print(f"\nstats: {peer.stats()}")
        _debugging(url)
        return 0
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()


def _debugging(url: str) -> None:
    """Step 6: a connection that asks for debugging; the server (make_library) offers it."""
    import tether

    print("\n6. the same error with debugging on: connect(url, debug=True)")
    with tether.connect(url, root=Console(), debug=True) as peer:
        try:
            peer.root.author("Dune")
        except KeyError as exc:
            print("   traceback.print_exception(exc) reads like a local one, the server's frames marked remote:")
            for line in traceback.format_exception(exc):
                for part in line.rstrip("\n").splitlines():
                    print(f"     | {part}")
            print("   tether.post_mortem(exc): pdb runs in the server, on its frames; typed here: p title, p sorted(self.shelf), q")
            typed = _Typed(["p title", "p sorted(self.shelf)", "q"])
            stdin, sys.stdin = sys.stdin, typed  # type: ignore[assignment]
            try:
                tether.post_mortem(exc)
            finally:
                sys.stdin = stdin


class _Typed:
    """Stands for a terminal: gives the demo's commands one by one and shows them typed."""

    def __init__(self, commands: list[str]) -> None:
        self.commands = commands

    def readline(self) -> str:
        if not self.commands:
            return ""
        command = self.commands.pop(0)
        print(command, flush=True)
        return command + "\n"


class _QuietConsole:
    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


if __name__ == "__main__":
    sys.exit(main())
