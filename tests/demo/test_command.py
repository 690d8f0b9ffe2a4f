"""The demo's commands: ``python -m tether_demo``, ``tether demo`` delegating to it, and the
native demo (two processes) end to end. The browser demo runs in ``tests/browser/test_demo.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[2] / "src"


def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONIOENCODING="utf-8", **env)
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=environ)


def options(help_text: str) -> str:
    return help_text.split("options:", 1)[1]


def test_tether_demo_takes_the_options_of_python_m_tether_demo() -> None:
    own = run("-m", "tether_demo", "--help")
    delegated = run("-m", "tether", "demo", "--help")
    assert own.returncode == delegated.returncode == 0, own.stderr + delegated.stderr
    assert delegated.stdout.startswith("usage: tether demo ")
    assert options(own.stdout) == options(delegated.stdout)
    for option in ("--port", "--once", "--headless", "--no-browser", "--native"):
        assert option in own.stdout


def test_tether_demo_refuses_unknown_options_and_other_commands_still_do() -> None:
    demo = run("-m", "tether", "demo", "--bogus")
    assert demo.returncode == 2 and "tether demo: error: unrecognized arguments: --bogus" in demo.stderr
    serve = run("-m", "tether", "serve", "x:y", "--bogus")
    assert serve.returncode == 2 and "tether: error: unrecognized arguments: --bogus" in serve.stderr


def test_tether_demo_without_the_demo_installed_says_so_in_one_line() -> None:
    # sys.modules[name] = None makes any import of tether_demo fail, as when it is not installed.
    out = run("-c", "import sys; sys.modules['tether_demo'] = None; from tether.cli import main; main(['demo'])")
    assert out.returncode == 1
    assert out.stderr.strip() == "tether: the demo is not installed (no tether_demo package; it ships with tether's sources)"


def test_the_native_demo_runs_two_processes_end_to_end() -> None:
    out = run("-m", "tether_demo", "--native", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "$ tether serve tether_demo.native:make_library --port 0 --tracebacks" in text
    assert "lib.add(3, 4)            -> 7" in text
    assert "counter.increment(5) -> 6" in text and "tether_demo.native.Counter #2 on ws://127.0.0.1:" in text
    assert "lib.announce('hello') -> \"client answered 'seen'\"" in text
    assert "lib.ping(5, console) -> 5" in text and "lib.bounce(300, ...) -> 300" in text
    assert "lib.author('Dune') raised KeyError('Dune') with the remote traceback:" in text
    assert "tether_demo/native.py" in text and "in author" in text
    assert "lib._Library__secret raised AccessDenied" in text
