"""Remote debugging between real processes, driven the way a person would: pdb commands typed
on the client's stdin, its answers read from the client's stdout (``tether.debug``).

Each test starts a server process that asks for debugging (``debug=True``) on 127.0.0.1 and a
client process that asks for it too; every process is bounded in time.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).parents[2]
TIMEOUT = 60

SERVICE = '''
import tether


class Calculator:
    def divide(self, a, b):
        scale = 10 * a
        return self._ratio(a, b, scale)

    def _ratio(self, a, b, scale):
        reason = "dividing " + str(a)
        return scale / b

    def stepped(self, x):
        y = x + 1
        tether.breakpoint()
        z = y * 2
        return z + 1

    def add(self, a, b):
        return a + b


class Relay:
    """B: passes calls on to C, so an error crosses two hops."""

    def __init__(self, other):
        self.other = other

    def relay(self, a, b):
        hop = "B"
        return self.other.divide(a, b)
'''

SERVER = """
import sys, tether
from service import Calculator
with tether.serve(Calculator(), host="127.0.0.1", port=0, debug=sys.argv[1] == "debug") as server:
    print(server.url, flush=True)
    sys.stdin.read()  # serves until the test closes our stdin
"""

RELAY = """
import sys, tether
from service import Relay
with tether.connect(sys.argv[1], debug=True) as c:
    with tether.serve(Relay(c.root), host="127.0.0.1", port=0, debug=True) as server:
        print(server.url, flush=True)
        sys.stdin.read()
"""


def environ(tmp: Path) -> dict[str, str]:
    (tmp / "service.py").write_text(SERVICE)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(tmp)]), PYTHONIOENCODING="utf-8")


@contextmanager
def server(tmp: Path, code: str, *args: str) -> Iterator[str]:
    """A server process; yields its URL (the first line it prints), stops it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ(tmp),
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "the server printed no URL in time"
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:"), url + (proc.stderr.read() if proc.stderr else "")
        yield url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def client(tmp: Path, code: str, url: str, typed: str) -> subprocess.CompletedProcess[str]:
    """A client process with ``typed`` on its stdin (pdb commands, one a line)."""
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code, url],
        input=typed,
        capture_output=True,
        text=True,
        env=environ(tmp),
        timeout=TIMEOUT,
    )
    assert time.monotonic() - started < TIMEOUT
    return out


POST_MORTEM = """
import sys, traceback, tether
with tether.connect(sys.argv[1], debug=True) as peer:
    try:
        peer.root.divide(3, 0)
    except ZeroDivisionError as err:
        traceback.print_exception(err, file=sys.stdout)
        print("--post-mortem--", flush=True)
        tether.post_mortem(err)
        print("--debugger quit--", flush=True)
    print("still connected:", peer.root.add(2, 2))
"""


def test_post_mortem_shows_a_remote_local_and_moves_up_a_frame_on_the_remote_side(tmp_path: Path) -> None:
    with server(tmp_path, SERVER, "debug") as url:
        out = client(tmp_path, POST_MORTEM, url, "p scale\np reason\npp sorted(locals())\nu\np scale * 2\nll\nd\nw\nq\n")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    traceback_text, _, session = text.partition("--post-mortem--")
    service = tmp_path / "service.py"
    # The remote traceback reads like a local one: the caller's frames, then the server's.
    assert 'File "<string>", line 5, in <module>' in traceback_text
    assert f'File "<remote {url}: {service}>", line 8, in divide' in traceback_text
    assert "    return self._ratio(a, b, scale)" in traceback_text
    assert f'File "<remote {url}: {service}>", line 12, in _ratio' in traceback_text
    assert "    return scale / b" in traceback_text
    assert traceback_text.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "sync/session.py" not in traceback_text and "waiter.py" not in traceback_text
    # pdb ran in the server, on its frames, reading this client's stdin.
    lines = session.splitlines()
    assert "--Remote post-mortem in process" in session and "ZeroDivisionError: division by zero--" in session
    assert f"> {service}(12)_ratio()" in session
    assert "(Pdb) 30" in lines  # p scale, in _ratio
    assert "(Pdb) 'dividing 3'" in lines  # p reason
    assert "(Pdb) ['a', 'b', 'reason', 'scale', 'self']" in lines  # pp sorted(locals())
    assert f"(Pdb) > {service}(8)divide()" in lines  # u: up to divide, on the server
    assert "(Pdb) 60" in lines  # p scale * 2, evaluated in divide's frame
    assert "  6  \t    def divide(self, a, b):" in session  # ll: divide's source, read on the server
    assert session.count(f"> {service}(12)_ratio()") == 3  # the start, d, and w's current frame
    assert f"  {service}(8)divide()\n-> return self._ratio(a, b, scale)\n> {service}(12)_ratio()" in session  # w
    assert "--debugger quit--" in text and "still connected: 4" in text


BREAKPOINT = """
import sys, tether
with tether.connect(sys.argv[1], debug=True) as peer:
    print("result:", peer.root.stepped(4), flush=True)
    print("after:", peer.root.add(1, 1), flush=True)
"""


def test_a_breakpoint_in_a_handler_is_stepped_and_continued_from_the_caller(tmp_path: Path) -> None:
    with server(tmp_path, SERVER, "debug") as url:
        out = client(tmp_path, BREAKPOINT, url, "p y\nn\np z\nl\nc\n")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    service = tmp_path / "service.py"
    assert "--Remote breakpoint in stepped(), process" in text
    assert f"> {service}(17)stepped()\n-> z = y * 2" in text  # stopped after tether.breakpoint()
    assert "(Pdb) 5\n" in text  # p y
    assert f"(Pdb) > {service}(18)stepped()\n-> return z + 1" in text  # n: one step
    assert "(Pdb) 10\n" in text  # p z
    assert " 18  ->\t        return z + 1" in text  # l
    assert "result: 11" in text  # c: the handler went on and answered
    assert "after: 2" in text


def test_without_debugging_the_caller_gets_no_debugger_and_the_handler_goes_on(tmp_path: Path) -> None:
    code = """
import sys, tether
with tether.connect(sys.argv[1]) as peer:  # no debug=True
    print("result:", peer.root.stepped(4), flush=True)
    try:
        peer.root.divide(1, 0)
    except ZeroDivisionError as err:
        try:
            tether.post_mortem(err)
        except tether.AccessDenied as denied:
            print("post_mortem:", type(denied).__name__, flush=True)
"""
    with server(tmp_path, SERVER, "debug") as url:
        out = client(tmp_path, code, url, "p y\nc\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "result: 11" in out.stdout and "(Pdb)" not in out.stdout
    assert "post_mortem: AccessDenied" in out.stdout


def test_a_failure_two_hops_away_shows_both_hops_and_is_debugged_where_it_was_raised(tmp_path: Path) -> None:
    code = """
import sys, traceback, tether
with tether.connect(sys.argv[1], debug=True) as peer:
    try:
        peer.root.relay(7, 0)
    except ZeroDivisionError as err:
        traceback.print_exception(err, file=sys.stdout)
        print("--post-mortem--", flush=True)
        tether.pm()
"""
    with server(tmp_path, SERVER, "debug") as c_url, server(tmp_path, RELAY, c_url) as b_url:
        out = client(tmp_path, code, b_url, "p scale\nq\n")
    assert out.returncode == 0, out.stdout + out.stderr
    traceback_text, _, session = out.stdout.partition("--post-mortem--")
    service = tmp_path / "service.py"
    # A's frames, then B's (marked with B's URL), then C's (marked with C's URL, as B knew it).
    assert f'File "<remote {b_url}: {service}>", line 32, in relay' in traceback_text
    assert f'File "<remote {c_url}: {service}>", line 8, in divide' in traceback_text
    assert f'File "<remote {c_url}: {service}>", line 12, in _ratio' in traceback_text
    assert traceback_text.index(b_url) < traceback_text.index(c_url)
    # tether.pm() debugs the error being handled, where it was raised: on C.
    assert f"> {service}(12)_ratio()" in session and "(Pdb) 70" in session
