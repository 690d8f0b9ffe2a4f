"""The layering rule: the core never imports asyncio, websockets or js."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[2] / "src" / "tether"
CORE = [
    "codec.py", "words.py", "frames.py", "exposure.py", "dispatch.py", "access.py", "admission.py", "limits.py",
    "tether_object.py", "hooks.py",
    "protocol.py", "exceptions.py", "proxy.py", "gate.py",
]  # fmt: skip
FORBIDDEN = {"asyncio", "websockets", "js", "pyodide"}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_import_no_io_framework() -> None:
    for name in CORE:
        assert not imported_modules(SRC / name) & FORBIDDEN, f"{name} imports an I/O framework"


def test_importing_tether_and_using_the_protocol_loads_no_transport() -> None:
    code = (
        "import sys, tether, tether.protocol, tether.codec, tether.frames\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'asyncio', 'websockets', 'js'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_modules_stay_under_800_lines() -> None:
    for path in SRC.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 800, f"{path.name} wants splitting"
