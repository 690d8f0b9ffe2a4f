"""``python -m tether demo --once``: the demo of ``make demo`` (the ``tether_demo`` package, its
page program shipped with ``serve_web(..., packages=...)``), run headless, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CHROMIUM, pyodide_or_skip, unavailable

DEMO_TIMEOUT = 85  # seconds: Chromium starts, Pyodide boots, the conversation runs (about 10 s here)


@pytest.fixture(scope="module")
def transcript() -> subprocess.CompletedProcess[str]:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        unavailable(f"{exc}")
    pyodide_or_skip()
    import tether.web
    if not os.path.exists(CHROMIUM):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TETHER_CHROMIUM)")
    source = str(Path(tether.web.__file__).parents[2])  # the folder holding tether and tether_demo
    env = dict(os.environ, PYTHONIOENCODING="utf-8", TETHER_CHROMIUM=CHROMIUM)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "tether", "demo", "--once", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        env=env,
        cwd=Path(__file__).parents[2],  # where .cache/pyodide is
    )


def test_demo_runs_the_page_headless_and_exits_0(transcript: subprocess.CompletedProcess[str]) -> None:
    out = transcript.stdout
    assert transcript.returncode == 0, out + transcript.stderr
    assert "running the page in headless Chromium" in out
    assert "page 1 connected" in out
    assert "conversation with page 1 done" in out
    assert "headless Chromium closed" in out
    assert "tried to reach other hosts" not in out
    assert "serving on" not in out  # --once: no serving on after the conversation


def test_transcript_shows_messages_both_ways_in_four_parts(transcript: subprocess.CompletedProcess[str]) -> None:
    out = transcript.stdout
    # 1. the native side edits the page through a proxy to js.document, and reads it back
    assert "1. The native side edits the page through a proxy to js.document" in out
    assert re.search(r"→ N\d+ +document\.title = 'Edited by the native peer'", out)
    assert "read back: ('Edited by the native peer', 2, 'its text set through a proxy')" in out
    # 2. the page calls native objects: messages received from the page, answered natively
    assert "2. The page calls native objects" in out
    call = re.search(r"← (P\d+) +library\.add\(3, 4\)", out)
    assert call and re.search(rf"→ {call[1]} +\= 7", out)
    assert "page> counter = await library.new_counter(); await counter.increment(); await counter.increment(5) -> 6" in out
    assert "page> tether.describe(counter) -> 'tether_demo.web.Counter #2 on ws://127.0.0.1:" in out
    # 3. a nested call: native -> page -> native -> ..., answered innermost first
    assert "3. A nested call" in out
    assert "page.ping(4, <library>)" in out and "library.ping(3, <page>)" in out
    assert "= 4: four nested calls" in out
    # 4. remote errors both ways, with the remote tracebacks
    assert "4. Remote errors, both ways" in out
    assert "the page caught KeyError('Dune'), with the native traceback:" in out
    assert "|     return self.shelf[title]" in out
    assert "the native side caught RemoteError: pyodide.ffi.JsException: SyntaxError" in out
    assert "| pyodide.ffi.JsException" in out
