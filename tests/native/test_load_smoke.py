"""A tiny run of the load and soak benchmark (``benchmarks/load.py``): 2 client processes of 10
connections each calling for 2 s against both servers (``tether serve`` and
``tether.aio.serve``, each a process of its own), then 2,000 soak calls. It runs the script as
a subprocess, bounded in time, and reads the figures it writes with ``--json``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "benchmarks" / "load.py"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="load.py reads /proc")


@pytest.mark.timeout(90)
def test_tiny_load_and_soak_make_calls_without_errors(tmp_path: Path) -> None:
    figures = tmp_path / "load.json"
    argv = [
        sys.executable,
        str(SCRIPT),
        "--connections", "20",
        "--processes", "2",
        "--seconds", "2",
        "--settle", "0",
        "--soak-calls", "2000",
        "--soak-processes", "1",
        "--soak-connections", "2",
        "--json", str(figures),
    ]  # fmt: skip
    # A timeout kills the script with SIGKILL; every process it started gets SIGTERM then
    # (PR_SET_PDEATHSIG), so nothing is left behind.
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=75)
    assert done.returncode == 0, f"load.py exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    result = json.loads(figures.read_text())

    loads = {run["kind"]: run for run in result["load"]}
    assert set(loads) == {"thread", "aio"}
    for kind, run in loads.items():
        assert run["failure"] is None, (kind, run["failure"])
        assert run["opened"] == 20 and run["failed_connects"] == 0, (kind, run["connect_errors"])
        assert run["errors"] == 0 and run["lost"] == 0, (kind, run["error_samples"])
        assert run["calls"] > 0 and run["per_connection"]["min"] > 0, kind
        assert run["p50"] is not None and run["p50"] <= run["p99"] <= run["max"]
        assert run["open"]["census"]["roots"] == 21  # 20 clients and the script's census connection
        assert run["after"]["census"]["roots"] == 1  # every client's root let go

    soak = result["soak"]
    assert soak["failure"] is None, soak["failure"]
    assert soak["calls"] == 2000 and soak["errors"] == 0, soak["error_samples"]
    assert soak["samples"] and soak["samples"][-1][0] == 2000
    assert soak["end"]["rss"] > 0
