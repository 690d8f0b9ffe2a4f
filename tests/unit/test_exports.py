"""Every module of ``src/tether`` says what it exports (``__all__``): each listed name exists,
and each public class, function or constant it defines is listed (or named with a leading
underscore), so a newcomer can tell a module's interface from its internals."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

import tether

SRC = Path(__file__).parents[2] / "src"
BROWSER_ONLY = {"tether.browser.page", "tether.browser.session", "tether.browser.transport", "tether.browser"}
NEEDS_AIOHTTP = {"tether.web"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(
    (module_name(p), p) for p in (SRC / "tether").rglob("*.py") if module_name(p) not in ("tether.__main__",)
)


def defined_public_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_") and (n[0].isupper() or not n.islower() or callable_name(n, path))}


def callable_name(name: str, path: Path) -> bool:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
    return False


def declared_all(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "__all__":
            value = node.value
            assert isinstance(value, ast.List), f"{path}: __all__ is a literal list"
            return [elt.value for elt in value.elts if isinstance(elt, ast.Constant)]
    return None


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_the_module_declares_what_it_exports(name: str, path: Path) -> None:
    exported = declared_all(path)
    assert exported is not None, f"{name} has no __all__"
    if name == "tether":
        return  # the package face exports lazily: checked below
    missing = defined_public_names(path) - set(exported)
    assert not missing, f"{name} defines public {sorted(missing)} without listing them in __all__ (or a leading _)"
    if name in BROWSER_ONLY or (name in NEEDS_AIOHTTP and importlib.util.find_spec("aiohttp") is None):
        return
    module = importlib.import_module(name)
    absent = [n for n in exported if not hasattr(module, n)]
    assert not absent, f"{name}.__all__ lists names it does not have: {absent}"


def test_every_public_name_of_the_package_resolves() -> None:
    for name in tether.__all__:
        assert getattr(tether, name) is not None, name
    assert "Options" in tether.__all__ and tether.Options.__module__ == "tether.options"
