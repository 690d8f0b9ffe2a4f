"""Frames of another process, shown as frames: what ``traceback``, ``pdb`` and ``inspect`` see
of code that ran on a peer.

A peer that debugging is granted to sends the frames of a remote failure as plain records
(file, line, function, source line; ``docs/protocol.md`` section 10). This module turns them
into a real traceback, so that ``traceback.print_exception(err)`` prints the caller's frames
and then the remote ones, each marked with where it ran::

    File "<remote ws://127.0.0.1:8765: /srv/calc.py>", line 12, in divide
      return a / b

(a name in angle brackets, as Python gives code without a file, so that ``pdb`` and
``linecache`` take it as it is).

Each remote frame is a tiny code object of our own (``raise`` at that line, renamed to the
remote function and file) run once to get a frame and a traceback entry; the remote source
lines go into :mod:`linecache` under the marked file name, which is how ``traceback`` finds
them. Nothing the peer sends is compiled: only its names and line numbers are used, and its
source lines are stored as text. :func:`source_code` does the same for
``inspect.getsource`` on a proxy.
"""

from __future__ import annotations

import linecache
import re
import threading
import types
from collections import OrderedDict
from collections.abc import Iterable, Sequence

__all__ = ["MAX_FRAMES", "MAX_LINENO", "RemoteFrame", "code_at", "mark", "remember_lines", "source_code", "synthetic_traceback"]

RemoteFrame = tuple[str, int, str, "str | None"]  # file, line number, function, source line

MAX_FRAMES = 200  # frames of one failure that travel (the innermost ones)
MAX_LINENO = 100_000  # remote source lines are remembered up to this line number
_MAX_FILES = 2048  # marked file names kept in linecache (the oldest are forgotten)
_MAX_LINE = 2000  # characters of one source line kept

_lock = threading.Lock()
_files: OrderedDict[str, None] = OrderedDict()  # the marked names this module put in linecache
_INDENT = re.compile(r"[ \t]*")
_codes: dict[tuple[str, int], types.CodeType] = {}


def mark(filename: str, where: str) -> str:
    """The file name a remote frame is shown under: ``<remote WHERE: FILE>`` (a frame that
    crossed hops before keeps the mark of the process it ran in)."""
    if filename.startswith("<remote ") and filename.endswith(">"):
        return filename
    return f"<remote {where}: {filename}>"


def remember_lines(filename: str, first: int, lines: Iterable[str]) -> None:
    """Put remote source ``lines`` into :mod:`linecache` under ``filename``, the first at line
    ``first`` (lines not known stay blank). The entry never expires on its own (there is no
    file to compare it with); the oldest of many marked files are forgotten."""
    with _lock:
        entry = linecache.cache.get(filename)
        known = list(entry[2]) if entry is not None and len(entry) == 4 else []
        for offset, line in enumerate(lines):
            lineno = first + offset
            if not 1 <= lineno <= MAX_LINENO:
                continue
            if len(known) < lineno:
                known.extend("\n" for _ in range(lineno - len(known)))
            text = line[:_MAX_LINE].rstrip("\r\n")
            known[lineno - 1] = text + "\n"
        if not known:
            return
        linecache.cache[filename] = (sum(map(len, known)), None, known, filename)
        _files[filename] = None
        _files.move_to_end(filename)
        while len(_files) > _MAX_FILES:
            old, _ = _files.popitem(last=False)
            linecache.cache.pop(old, None)


class _Raised(Exception):
    """Raised by a remote frame's stand-in code, to get a frame and a traceback entry of it."""


_GLOBALS = {"__name__": "<remote>", "__tether_remote__": _Raised}


def _base_code(indent: str, width: int) -> tuple[types.CodeType, int]:
    """A code object that raises ``raise (__tether_remote__   )``, indented like the remote
    line and as wide as it (so that ``traceback`` underlines nothing in the remote text), and
    the line it raises at (2 when indented: its line 1 is ``if 1:``)."""
    key = (indent, width)
    code = _codes.get(key)
    statement = "raise (__tether_remote__" + " " * max(0, width - 25) + ")"
    if code is None:
        source = f"if 1:\n{indent}{statement}\n" if indent else f"{statement}\n"
        code = compile(source, "<remote>", "exec")
        if len(_codes) < 4096:
            _codes[key] = code
    return code, 2 if indent else 1


def code_at(filename: str, lineno: int, name: str, line: str | None = None) -> types.CodeType:
    """A code object that stands for remote code: file ``filename``, function ``name``, and
    (run) raising at line ``lineno``, indented and as wide as the remote ``line``."""
    found = _INDENT.match(line or "")
    indent = found.group() if found and lineno > 1 else ""
    code, at = _base_code(indent, len((line or "").strip()))
    first = max(1, lineno) - at + 1
    return code.replace(co_filename=filename, co_name=name, co_qualname=name, co_firstlineno=first)


def _entry(code: types.CodeType, tb_next: types.TracebackType | None) -> types.TracebackType:
    """One traceback entry for a stand-in code object (run once), followed by ``tb_next``."""
    raised: types.TracebackType | None = None
    try:
        exec(code, dict(_GLOBALS))
    except _Raised as exc:
        raised = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    assert raised is not None
    try:
        return types.TracebackType(tb_next, raised.tb_frame, raised.tb_lasti, raised.tb_lineno)
    finally:
        del raised, tb_next  # the stand-in frame's f_back (this frame) keeps no traceback


def synthetic_traceback(frames: Sequence[RemoteFrame], where: str) -> types.TracebackType | None:
    """A traceback made of ``frames`` (outermost first), each shown as having run at
    ``where`` (unless it is marked already); their source lines go to :mod:`linecache`."""
    tb: types.TracebackType | None = None
    for filename, lineno, name, line in reversed(frames[-MAX_FRAMES:]):
        marked = mark(filename, where)
        if line is not None:
            remember_lines(marked, lineno, [line])
        tb = _entry(code_at(marked, lineno, name, line), tb)
    return tb


def source_code(filename: str, first: int, lines: Sequence[str], name: str, block: bool) -> types.CodeType:
    """A code object whose source ``inspect.getsource`` finds in :mod:`linecache`: remote
    ``lines`` starting at line ``first`` of ``filename``. A ``block`` (a class or a module) is
    put at line 1 of a file of its own, since ``inspect`` finds a class's start by scanning
    back from the line it is given for a ``def``; a function keeps its real line numbers."""
    start = 1 if block or first < 1 else first
    remember_lines(filename, start, lines)
    base = compile("pass\n", "<remote>", "exec")
    return base.replace(co_filename=filename, co_name=name, co_qualname=name, co_firstlineno=start)
