"""The command line of ``docs/guide.md`` ("Deployment"): ``python -m uvicorn MODULE:app`` with
several worker processes. Each connection is served by a worker (not the supervisor), and a
SIGTERM to the supervisor stops it within a bounded time, failing the clients' calls with
ConnectionLost.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tether
from tether.exceptions import ConnectionLost

pytest.importorskip("uvicorn")

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connect_when_listening(url: str, timeout: float = 30.0) -> tether.Peer:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return tether.connect(url, open_timeout=5)
        except ConnectionLost:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_uvicorn_with_two_workers_serves_from_the_workers_and_stops_on_sigterm() -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    command = [sys.executable, "-m", "uvicorn", "tests.asgi.services:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "2", "--log-level", "warning", "--timeout-graceful-shutdown", "5"]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peers: list[tether.Peer] = []
    try:
        peers.append(connect_when_listening(f"ws://127.0.0.1:{port}/ws"))
        peers += [tether.connect(f"ws://127.0.0.1:{port}/ws") for _ in range(5)]
        pids = {peer.root.pid() for peer in peers}
        assert proc.pid not in pids  # served by worker processes, each with its own objects
        assert all(peer.root.add(2, 3) == 5 for peer in peers)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        for peer in peers:
            with pytest.raises(ConnectionLost):
                peer.root.add(1, 1)
    finally:
        for peer in peers:
            peer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    output = proc.stdout.read() if proc.stdout else ""
    assert "Traceback" not in output, output
