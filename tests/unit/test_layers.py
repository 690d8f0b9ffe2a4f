"""The layering rule, as a test: every module of ``src/tether`` belongs to one layer, imports
only its own layer or lower ones, never an I/O framework below the flavours, and no import
cycle exists anywhere (imports inside functions count; ``TYPE_CHECKING`` imports do not).

Layers, lowest first (``docs/architecture.md`` draws them):

- ``base``: the vocabulary every layer uses (exceptions, words, limits, deadlines).
- ``core``: the sans-I/O protocol: codec, values, classes, the access rule, dispatch, the
  reference tables, frames, the protocol state machine, proxies, the call gate.
- ``runtime``: the flavour-neutral session core and the native thread machinery.
- ``flavour``: ``sync/`` (threads), ``aio/`` (asyncio), ``browser/`` (Pyodide), and what the
  native ones share about ``websockets`` (``websocket.py``).
- ``edge``: what plugs flavours into the world or into users' hands: the page server
  (``web/``), the ASGI application (``asgi/``) and the page files both serve (``pagefiles``),
  testing helpers, tracing, the CLI, the package face.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[2] / "src"
PACKAGE = SRC / "tether"

LAYERS = {"base": 0, "core": 1, "runtime": 2, "flavour": 3, "edge": 4}
LAYER_OF = {
    "tether._version": "base", "tether.exceptions": "base", "tether.words": "base", "tether.limits": "base", "tether.deadline": "base",
    "tether.hooks": "core", "tether.codec": "core", "tether.decoding": "core", "tether.values": "core", "tether.classes": "core",
    "tether.access": "core", "tether.admission": "core", "tether.dispatch": "core", "tether.exposure": "core",
    "tether.frames": "core", "tether.transfer": "core", "tether.tether_object": "core", "tether.errors": "core",
    "tether.references": "core", "tether.events": "core", "tether.gifts": "core", "tether.held": "core", "tether.hello": "core",
    "tether.protocol": "core", "tether.proxy": "core", "tether.gate": "core", "tether.options": "core",
    "tether.transports": "core",
    "tether.debug": "core", "tether.remote_frames": "core",
    "tether.session": "runtime", "tether.workers": "runtime", "tether.waiter": "runtime", "tether.pipelining": "runtime", "tether.handoff": "runtime",
    "tether.websocket": "flavour", "tether.framing": "flavour", "tether.aio.transport": "flavour",
    "tether.aio.settings": "flavour", "tether.aio.running": "flavour", "tether.aio.promising": "flavour", "tether.aio.stepping": "flavour", "tether.web": "edge", "tether.testing": "edge",
    "tether.trace": "edge",
    "tether.asgi": "edge", "tether.pagefiles": "edge",
    "tether.cli": "edge", "tether.__main__": "edge", "tether": "edge",
}  # fmt: skip
FLAVOURS = ("tether.sync", "tether.aio", "tether.browser")
# Imports between flavours that are allowed: the page's flavour is asyncio on Pyodide's loop, and
# the async face picks the page's client when it runs in a page (a lazy platform switch).
CROSS_FLAVOUR = {("tether.browser", "tether.aio.session"), ("tether.browser", "tether.aio.promise"), ("tether.aio", "tether.browser")}
IO_FRAMEWORKS = {"asyncio", "websockets", "js", "pyodide", "aiohttp"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    if module.startswith(FLAVOURS):
        return "flavour"
    for prefix in sorted(LAYER_OF, key=len, reverse=True):
        if module == prefix or (prefix != "tether" and module.startswith(prefix + ".")):
            return LAYER_OF[prefix]
    raise AssertionError(f"{module} has no layer: add it to LAYER_OF in tests/unit/test_layers.py")


def flavour(module: str) -> str | None:
    return next((f for f in FLAVOURS if module == f or module.startswith(f + ".")), None)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(modules of tether it imports, top-level names of other packages it imports)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.split(".")[0] == "tether" else others).add(
                    alias.name if alias.name.startswith("tether") else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(
                    package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
                )
            else:
                base = node.module or ""
            if base.split(".")[0] != "tether":
                others.add(base.split(".")[0])
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                ours.add(full if full in MODULES else base)
    return {m for m in ours if m in MODULES and m != module}, others


GRAPH = {module: imports_of(module)[0] for module in MODULES}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_imports_point_to_the_same_layer_or_a_lower_one() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        for target in targets:
            if LAYERS[layer(target)] > LAYERS[layer(module)]:
                wrong.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)


def test_flavours_do_not_import_each_other() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        mine = flavour(module)
        for target in targets:
            theirs = flavour(target)
            if mine and theirs and mine != theirs:
                allowed = any(module.startswith(a) and target.startswith(b) for a, b in CROSS_FLAVOUR)
                if not allowed:
                    wrong.append(f"{module} imports {target}")
    assert not wrong, "one flavour reaches into another:\n" + "\n".join(wrong)


def test_no_import_cycle() -> None:
    """Depth-first search for a back edge; prints the cycle it finds."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check above can fail: a graph with a cycle is reported."""
    global GRAPH
    saved = GRAPH
    GRAPH = {**saved, "tether.codec": saved["tether.codec"] | {"tether.protocol"}}
    try:
        test_no_import_cycle()
    except AssertionError as exc:
        assert "tether.codec" in str(exc) and "tether.protocol" in str(exc)
    else:
        raise AssertionError("a cycle codec -> protocol -> codec was not found")
    finally:
        GRAPH = saved


def test_below_the_flavours_no_io_framework_is_imported() -> None:
    wrong = []
    for module in MODULES:
        if LAYERS[layer(module)] < LAYERS["flavour"]:
            found = imports_of(module)[1] & IO_FRAMEWORKS
            if found:
                wrong.append(f"{module} imports {sorted(found)}")
    assert not wrong, "\n".join(wrong)


def test_importing_tether_and_using_the_protocol_loads_no_transport() -> None:
    code = (
        "import sys, tether, tether.protocol, tether.codec, tether.frames, tether.session\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'asyncio', 'websockets', 'js'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_modules_stay_under_800_lines() -> None:
    for path in SRC.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 800, f"{path.name} wants splitting"
