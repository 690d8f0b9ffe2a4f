"""One version: ``src/tether/_version.py`` holds it, ``pyproject.toml`` reads it from there, and
the package, ``tether --version``, the hello a peer sends and the installed metadata say the same."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tether
from tether import _version, protocol
from tether.cli import main

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_the_package_the_protocol_and_the_installed_metadata_agree() -> None:
    assert tether.__version__ == _version.__version__
    assert protocol.VERSION == tether.__version__
    assert importlib.metadata.version("tether") == tether.__version__, (
        "the installed metadata is stale: reinstall (pip install -e .)"
    )


def test_pyproject_takes_the_version_from_the_module() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tether._version.__version__"}


def test_version_prints_the_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"tether {tether.__version__}\n"


def test_the_installed_tether_command_prints_the_version() -> None:
    command = Path(sys.executable).with_name("tether")  # the console script, next to this python
    if not command.exists():
        pytest.skip(f"no tether command next to {sys.executable} (tether is not installed there)")
    out = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"tether {tether.__version__}\n", "")
