"""Real processes: a server killed with SIGKILL mid-call, a client killed mid-call, and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether

ROOT = Path(__file__).parents[2]


def start_server(spec: str, *extra: str, env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", **(env_extra or {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", spec, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line}{proc.stdout.read()}")
    return proc, line.rsplit(" ", 1)[1].strip()


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, url = start_server("tests.native.services:make_service", "--tracebacks")
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def test_sigkill_of_the_server_fails_waiting_calls_within_a_second(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = server
    peer = tether.connect(url)
    assert peer.root.pid() == proc.pid
    errors: list[BaseException] = []

    def wait_long() -> None:
        try:
            peer.root.sleep(30)
        except BaseException as exc:
            errors.append(exc)

    callers = [threading.Thread(target=wait_long) for _ in range(5)]
    for t in callers:
        t.start()
    deadline = time.monotonic() + 5
    while peer.stats()["pending"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert peer.stats()["pending"] == 5
    killed = time.perf_counter()
    os.kill(proc.pid, signal.SIGKILL)
    for t in callers:
        t.join(2)
    elapsed = time.perf_counter() - killed
    assert not any(t.is_alive() for t in callers), "a caller is still hung"
    assert elapsed < 1.0, f"callers were told after {elapsed:.2f} s"
    assert len(errors) == 5 and all(isinstance(e, tether.ConnectionLost) for e in errors)
    assert peer.stats()["pending"] == 0
    with pytest.raises(tether.ConnectionLost):
        peer.root.add(1, 2)
    assert not any(t.name == "tether-reader" and t.is_alive() for t in threading.enumerate())
    peer.close()


CLIENT_SCRIPT = """
import sys, time, tether
class Slow:
    def answer(self, question):
        print("client got", question, flush=True)
        time.sleep(60)
peer = tether.connect(sys.argv[1], root=Slow())
peer.root.ask_client("who?")
"""


def test_sigkill_of_a_client_mid_callback_leaves_the_server_serving_others(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = server
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    client = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, url], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert client.stdout is not None
        assert client.stdout.readline().startswith("client got who?")
        os.kill(client.pid, signal.SIGKILL)
        client.wait(5)
        with tether.connect(url) as other:
            assert other.root.add(20, 22) == 42
        assert proc.poll() is None
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(5)


def test_cli_serve_and_shell() -> None:
    proc, url = start_server("tests.native.services:calculator")
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        out = subprocess.run(
            [sys.executable, "-m", "tether", "shell", url],
            input="print('sum', root.add(3, 4))\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert "Tether shell connected" in out.stderr
        assert "sum 7" in out.stdout
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_cli_reports_a_bad_object_spec() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, "-m", "tether", "serve", "no_such_module_xyz:thing", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode != 0
    assert "cannot import 'no_such_module_xyz'" in out.stderr


def test_cli_serve_with_a_token_refuses_other_clients_and_the_shell_reads_it(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    proc, url = start_server("tests.native.services:calculator", "--token-file", str(token_file))
    try:
        with pytest.raises(tether.Refused, match="authentication failed") as refused:
            tether.connect(url)
        assert refused.value.code == 4401
        with pytest.raises(tether.Refused):
            tether.connect(url, token="guess")
        with tether.connect(url, token="s3cret-token") as peer:
            assert peer.root.add(1, 2) == 3
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TETHER_TOKEN="s3cret-token")
        out = subprocess.run(
            [sys.executable, "-m", "tether", "shell", url],
            input="print('sum', root.add(3, 4))\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert "sum 7" in out.stdout, out.stderr
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_cli_serve_max_connections_answers_one_more_with_503() -> None:
    proc, url = start_server("tests.native.services:calculator", "--max-connections", "1")
    try:
        with tether.connect(url) as peer:
            with pytest.raises(tether.HandshakeFailed, match="503"):
                tether.connect(url)
            assert peer.root.add(1, 2) == 3
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_cli_version_and_a_port_in_use_are_one_line_answers() -> None:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    out = subprocess.run([sys.executable, "-m", "tether", "--version"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"tether {tether.__version__}"
    proc, url = start_server("tests.native.services:calculator")
    try:
        port = url.rsplit(":", 1)[1]
        out = subprocess.run(
            [sys.executable, "-m", "tether", "serve", "tests.native.services:calculator", "--port", port],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=30,
        )
        assert out.returncode == 1
        assert out.stderr.strip() == (
            f"tether: cannot listen on 127.0.0.1:{port}: Address already in use "
            "(another server is using it: pick another --port, or --port 0 for a free one)"
        )
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_importing_tether_reaches_its_public_submodules() -> None:
    code = "import tether; print(tether.aio.connect.__module__, tether.testing.pair.__name__, tether.Limits.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split() == ["tether.aio.client", "pair", "Limits"]


EXITING_SCRIPT = """
import sys, threading
import tether
peer = tether.connect(sys.argv[1])
def wait():
    try:
        peer.root.sleep(30)
    except BaseException as exc:
        print("thread got", type(exc).__name__, exc, flush=True)
threading.Thread(target=wait).start()      # not a daemon: the interpreter waits for it
print("sum", peer.root.add(1, 2), flush=True)
if sys.argv[2] == "raise":
    raise RuntimeError("the main code died")
"""


@pytest.mark.parametrize("ending", ["return", "raise"])
def test_a_script_that_ends_with_a_peer_open_exits_at_once_and_its_waiting_call_fails(
    server: tuple[subprocess.Popen[str], str], ending: str
) -> None:
    _, url = server
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", EXITING_SCRIPT, url, ending], capture_output=True, text=True, env=env, timeout=30
    )
    elapsed = time.monotonic() - started
    assert "sum 3" in out.stdout
    assert "thread got ConnectionLost" in out.stdout and "this process is exiting" in out.stdout
    assert out.returncode == (1 if ending == "raise" else 0), out.stderr
    assert elapsed < 5, f"the script took {elapsed:.1f} s to exit"  # imports included; the close is < 1 s


def test_a_server_that_shuts_down_tells_its_clients_and_their_waiting_calls_say_so(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = server
    errors: list[BaseException] = []
    with tether.connect(url) as peer:

        def wait_long() -> None:
            try:
                peer.root.sleep(30)
            except BaseException as exc:
                errors.append(exc)

        waiting = threading.Thread(target=wait_long)
        waiting.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)  # tether serve closes the server on SIGTERM
        waiting.join(5)
        assert not waiting.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], tether.ConnectionLost)
    assert "the server shut down (close code 1001)" in str(errors[0])
    assert proc.wait(10) == 0


async def test_an_async_server_that_shuts_down_tells_its_clients() -> None:
    import asyncio

    from .services import Calculator

    async with tether.aio.serve(Calculator(), port=0) as srv:
        peer = await tether.aio.connect(srv.url)
        waiting = asyncio.ensure_future(peer.root.sleep(30))
        await asyncio.sleep(0.3)
        await srv.close()
        with pytest.raises(tether.ConnectionLost, match=r"the server shut down \(close code 1001\)"):
            await asyncio.wait_for(waiting, 5)
        await peer.close()


def test_a_stalled_server_fails_a_waiting_call_within_twice_the_keepalive_and_prints_nothing(
    server: tuple[subprocess.Popen[str], str], capfd: pytest.CaptureFixture[str]
) -> None:
    proc, url = server
    errors: list[BaseException] = []
    peer = tether.connect(url, keepalive=0.5)
    try:

        def wait_long() -> None:
            try:
                peer.root.sleep(30)
            except BaseException as exc:
                errors.append(exc)

        waiting = threading.Thread(target=wait_long)
        waiting.start()
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        waiting.join(5)
        detected = time.monotonic() - stopped
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        peer.close()
    assert len(errors) == 1 and isinstance(errors[0], tether.ConnectionLost)
    assert "stopped answering pings" in str(errors[0])
    assert detected < 2.5, f"detected after {detected:.1f} s with keepalive=0.5"
    assert capfd.readouterr().err == ""


async def test_a_stalled_server_fails_a_waiting_async_call_too(server: tuple[subprocess.Popen[str], str]) -> None:
    import asyncio

    proc, url = server
    peer = await tether.aio.connect(url, keepalive=0.5)
    try:
        waiting = asyncio.ensure_future(peer.root.sleep(30))
        await asyncio.sleep(0.2)
        os.kill(proc.pid, signal.SIGSTOP)
        with pytest.raises(tether.ConnectionLost, match="stopped answering pings"):
            await asyncio.wait_for(waiting, 3)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        await peer.close()


def test_a_value_over_the_servers_frame_limit_is_refused_here_and_the_connection_lives(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    _, url = server
    with tether.connect(url) as peer:
        with pytest.raises(tether.FrameTooLarge, match=r"over the 16777216 bytes the server accepts"):
            peer.root.echo(bytes(17 << 20))
        assert peer.root.add(1, 2) == 3
        assert len(peer.root.echo(bytes(8 << 20))) == 8 << 20  # large values that fit travel whole


def test_cli_serve_debug_offers_remote_frames_to_a_client_that_asks() -> None:
    """`tether serve --debug`: a client with debug=True gets the remote frames as its error's
    traceback; one without gets no frames (it stays an untrusted stranger)."""
    import traceback

    proc, url = start_server("tests.native.services:make_service", "--debug")
    try:
        with tether.connect(url, debug=True) as peer:
            with pytest.raises(ZeroDivisionError) as caught:
                peer.root.fail()
            text = "".join(traceback.format_exception(caught.value))
            assert "<remote " in text and "services.py" in text
            assert 'raise ZeroDivisionError("division by zero, remotely")' in text
        with tether.connect(url) as stranger:
            with pytest.raises(ZeroDivisionError) as caught:
                stranger.root.fail()
            assert "<remote " not in "".join(traceback.format_exception(caught.value))
    finally:
        proc.kill()
        proc.wait(5)
