"""examples/many_machines.py (docs/many-machines.md) runs: five processes pass a counter around,
the calls go straight to its owner, identity holds on the way back, and it exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from .test_processes import ROOT

EXAMPLE = ROOT / "examples" / "many_machines.py"


def test_the_many_machines_example_runs_and_the_calls_go_straight_to_the_owner() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    # Its own session: should the example hang past its own 20-second alarm, its group (it and
    # the five nodes it started) is ended here.
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"the example did not finish within 60 s:\n{out}") from None
    assert proc.returncode == 0, out
    assert "FAILED" not in out, out

    for name in ("P3", "P4", "P5"):
        assert re.search(rf"{name} holds many_machines\.Counter #\d+ on ws://127\.0\.0\.1:\d+ \(P2\)", out), out
    assert "P2's counter is at 301" in out, out
    assert "P2 says it is its own object (is): True" in out, out

    # The frames table: link, what it was opened for, frames while wiring, frames during the calls.
    rows = {
        (m[1], m[2]): (int(m[3]), int(m[4]))
        for m in re.finditer(r"^  (P\d) -> (P\d) +.+? +(\d+) +(\d+)$", out, re.MULTILINE)
    }
    assert set(rows) == {
        ("P1", "P2"), ("P1", "P3"), ("P1", "P4"), ("P1", "P5"),
        ("P3", "P2"), ("P3", "P4"), ("P4", "P2"), ("P4", "P5"), ("P5", "P2"),
    }, out
    for (opener, acceptor), (_, during_calls) in rows.items():
        if acceptor == "P2" and opener != "P1":
            assert during_calls >= 200, out  # 100 calls and their answers, straight to P2
        else:
            assert during_calls == 0, out  # neither P1 nor the passers-on carry a call
    assert "ok: after the handoffs every call went straight to P2" in out, out
