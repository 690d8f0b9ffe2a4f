"""Remote debugging with the tools Python people already use: ``traceback``, ``pdb`` and
``inspect`` across a connection (``docs/guide.md``, "Debugging a remote failure").

Debugging is off unless both sides ask for it. A side asks with ``debug=True`` (on ``serve``,
``connect`` and every other entry point), or per peer with :func:`grant_debugging` from a root
factory; its hello then says ``"debug": true``. On a connection where both hellos say so,
debugging is **on**, and then:

* each side trusts the other as with ``trusted=True`` (pdb evaluates any expression in a frame,
  so a debugging peer is a peer you would give a shell; ``docs/security.md``);
* an error answer carries the failure: a reference to a :class:`Failure` that holds the
  traceback here, and the frames as plain records (``docs/protocol.md`` section 10); the
  caller's exception shows those frames as frames (``traceback.print_exception(err)``), and
  :func:`post_mortem` runs pdb *here*, on the failure, with the caller's terminal as pdb's
  console (a :class:`Console` the caller lends; its calls run on the caller's waiting thread);
* :func:`breakpoint` in a handler opens pdb on the calling peer's terminal, stopped in the
  handler;
* ``inspect.getsource(proxy)`` shows the remote source (``Proxy.__wrapped__``).

Without debugging, none of this is reachable: the Tether object's debugging selectors, a
failure and a console answer :class:`~tether.exceptions.AccessDenied`.
"""

from __future__ import annotations

import gc
import linecache
import os
import socket
import sys
import threading
import types
import weakref
from collections import deque
from collections.abc import Collection
from typing import Any

from .access import AccessPolicy
from .exceptions import AccessDenied, EncodeError, UsageError
from .frames import TAG_FAILURE
from .gate import current_exchange
from .proxy import Proxy, _state
from .remote_frames import MAX_FRAMES, RemoteFrame, synthetic_traceback
from .words import pack_word

__all__ = [
    "MAX_FAILURES",
    "Console",
    "DebuggingPolicy",
    "Failure",
    "FailurePart",
    "attach_failure",
    "breakpoint",
    "debugging",
    "failure_part",
    "grant_debugging",
    "offer_debugging",
    "pm",
    "post_mortem",
    "require_debugging",
]

MAX_FAILURES = 16  # failures of one connection whose frames are kept (the newest ones)

_NOT_ON = (
    "debugging is not on for this connection: both sides must ask for it, the debugged side "
    "with debug=True (or tether.grant_debugging(peer) in its root factory) and the debugging "
    "side with debug=True (connect(..., debug=True)); give it only to peers you would give a shell"
)


# -- whether debugging is on --------------------------------------------------------------


def debugging(protocol: Any) -> bool:
    """Whether debugging is on for the connection of ``protocol``: this side asked for it and
    the peer's hello says ``"debug": true``."""
    return protocol.tether.debugging() is True


def require_debugging(protocol: Any, what: str) -> None:
    """Raise :class:`AccessDenied` unless the message running now came over the connection of
    ``protocol`` and debugging is on for it."""
    handling = current_exchange.get()
    session = handling[0] if handling is not None else None
    if session is None or getattr(session, "protocol", None) is not protocol or not debugging(protocol):
        raise AccessDenied(f"{what}: {_NOT_ON}", name=what)


def offer_debugging(protocol: Any) -> None:
    """This side asks for debugging on the connection of ``protocol``: its hello says so (call
    it before the hello is sent or answered), and once the peer's hello says so too, the peer
    is trusted (when the connection's policy is a plain :class:`AccessPolicy`)."""
    tether = protocol.tether
    if tether.debug:
        return
    tether.debug = True  # Protocol.hello_info says "debug": true from now on
    tether.failures = deque()
    policy = protocol.policy
    if type(policy) is AccessPolicy:
        protocol.policy = protocol.references.policy = DebuggingPolicy(policy, protocol)


def grant_debugging(peer: Any) -> None:
    """Offer debugging to this one peer (call it in a root factory, before the conversation
    starts): a peer that connected with ``debug=True`` may then debug this side, and is
    trusted as with ``trusted=True``; a peer that did not ask stays as it was. Give it only to
    peers you would give a shell."""
    session = getattr(peer, "session", None)
    if session is None or not hasattr(session, "protocol"):
        raise UsageError(f"tether.grant_debugging() takes the Peer a root factory is given, not {type(peer).__name__}")
    offer_debugging(session.protocol)


class DebuggingPolicy(AccessPolicy):
    """One connection's access policy while debugging is asked for on it: the rules of the
    policy it was made from, trusting the peer (as ``trusted=True``) once debugging is on."""

    def __init__(self, base: AccessPolicy, protocol: Any) -> None:
        self._on = False
        self._protocol = protocol
        super().__init__(base.trusted, settable=base.settable)
        self.allowed = base.allowed

    @property  # type: ignore[override]
    def trusted(self) -> bool:
        if self._trusted or self._on:
            return True
        if debugging(self._protocol):
            self._on = True
            return True
        return False

    @trusted.setter
    def trusted(self, value: bool) -> None:
        self._trusted = value


# -- failures: what an error answer carries for a debugging peer ----------------------------


class Failure:
    """An error raised here while running a debugging peer's call, kept for that peer.

    The caller's exception holds a proxy to it (``err.__tether_failure__``), and
    :func:`tether.post_mortem` calls :meth:`debug` with the caller's console. Its frames stay
    alive until the debugger quits, the caller's exception is collected, or the connection has
    :data:`MAX_FAILURES` newer failures.
    """

    __tether_debug__ = True  # travels to a debugging peer whatever the policy (access.py)

    def __init__(self, protocol: Any, exc: BaseException, tb: types.TracebackType) -> None:
        self._protocol = protocol
        self._exc: BaseException | None = exc
        self._tb: types.TracebackType | None = tb
        self._summary = _summary(exc)

    def debug(self, console: Any, follow: bool = True) -> None:
        """Run pdb on this failure's frames, with ``console`` (the caller's terminal: an object
        with ``readline`` and ``write``) as pdb's stdin and stdout; return when the debugger
        quits, and let the frames go. With ``follow``, an error that came from a further peer
        that debugging is on with is debugged there, where it was raised."""
        require_debugging(self._protocol, "Failure.debug")
        _require_thread("a post-mortem")
        exc, tb = self._exc, self._tb
        if exc is None or tb is None:
            raise UsageError(
                f"the frames of this failure ({self._summary}) were let go: a debugger quit on them "
                f"already, or the connection had {MAX_FAILURES} newer failures"
            )
        try:
            downstream = getattr(exc, "__tether_failure__", None) if follow else None
            if downstream is not None:
                try:
                    downstream.debug(console, follow)
                    return
                except Exception as problem:
                    console.write(f"*** cannot debug where it was raised ({problem}); debugging here\n")
            _post_mortem_here(console, exc, tb)
        finally:
            self._release()

    def _release(self) -> None:
        """Let the frames go (the debugger quit on them, or newer failures replace them)."""
        self._exc = self._tb = None

    def __repr__(self) -> str:
        state = "held" if self._tb is not None else "let go"
        return f"<tether failure {self._summary} ({state})>"


class FailurePart:
    """What an error answer adds for a debugging peer (``docs/protocol.md`` section 10): the
    word ``0x20000120``, a reference to a new :class:`Failure`, and the frames as a Tuple of
    ``(file, line, function, source line)`` Tuples. Written by
    :func:`tether.frames.error_answer_bytes`, under the protocol's lock, into the error answer
    of the call it was made for (any other: nothing)."""

    __slots__ = ("exc", "exchange_id", "frames", "protocol", "tb")

    def __init__(
        self,
        protocol: Any,
        exchange_id: bytes,
        exc: BaseException,
        tb: types.TracebackType,
        frames: tuple[RemoteFrame, ...],
    ) -> None:
        self.protocol = protocol
        self.exchange_id = exchange_id
        self.exc = exc
        self.tb = tb
        self.frames = frames

    def write(self, out: bytearray, exchange_id: bytes) -> None:
        if exchange_id != self.exchange_id:
            return
        protocol = self.protocol
        refs = protocol.references
        failure = Failure(protocol, self.exc, self.tb)
        part = bytearray(pack_word(TAG_FAILURE))
        undo = refs.begin_frame()
        try:
            encoder = refs.encoder
            encoder.begin()
            encoder.write(failure, part)
            encoder.write(self.frames, part)
            limit = protocol.peer_max_frame_size
            if limit is not None and len(out) + len(part) > limit:
                raise EncodeError("the frames would not fit in the peer's frames")
        except Exception:  # the error answer goes without its debugging part
            refs.undo_frame(undo)
            return
        finally:
            refs.end_frame(undo)
        out += part
        failures = protocol.tether.failures
        failures.append(weakref.ref(failure))
        while len(failures) > MAX_FAILURES:
            old = failures.popleft()()
            if old is not None:
                old._release()


def failure_part(exc: BaseException, runtime_files: Collection[str]) -> FailurePart | None:
    """The debugging part of the error answer for ``exc``, when it answers the peer's call that
    the current thread or task runs and debugging is on for that peer (else ``None``). Frames
    of ``runtime_files`` (Tether's own) are left out."""
    handling = current_exchange.get()
    tb = exc.__traceback__
    if handling is None or tb is None:
        return None
    protocol = getattr(handling[0], "protocol", None)
    if protocol is None or not debugging(protocol):
        return None
    frames: list[RemoteFrame] = []
    first: types.TracebackType | None = None  # the first entry outside Tether's runtime
    entry: types.TracebackType | None = tb
    while entry is not None:
        code = entry.tb_frame.f_code
        if code.co_filename not in runtime_files:
            first = first or entry
            lineno = entry.tb_lineno if isinstance(entry.tb_lineno, int) and entry.tb_lineno >= 0 else 0
            line = linecache.getline(code.co_filename, lineno, entry.tb_frame.f_globals).rstrip("\r\n")
            frames.append((code.co_filename, lineno, code.co_name, line or None))
        entry = entry.tb_next
    return FailurePart(protocol, handling[1], exc, first or tb, tuple(frames[-MAX_FRAMES:]))


def attach_failure(exc: BaseException, failure: object, frames: tuple[RemoteFrame, ...]) -> bool:
    """Give a received exception its remote frames (as its traceback) and its failure (for
    :func:`post_mortem`), if this side asked for debugging on the failure's connection."""
    if not isinstance(failure, Proxy):
        return False
    session = _state(failure).session
    if not getattr(session.protocol.tether, "debug", False):
        return False
    try:
        tb = synthetic_traceback(frames, session.describe())
    except Exception:  # frames this side cannot show (they were checked when read): none at all
        return False
    exc.__traceback__ = tb
    exc.__tether_failure__ = failure  # type: ignore[attr-defined]
    exc.__tether_frames__ = tb  # type: ignore[attr-defined]  # the remote frames alone (proxies re-raise with them)
    return True


# -- the caller's side: a console lent to the peer's debugger -------------------------------


class Console:
    """A debugging caller's terminal, lent to the peer's debugger for one session: pdb there
    reads lines from ``stdin`` and writes to ``stdout`` (this process's own, by default).

    Its calls arrive on behalf of the call the caller waits for, so they run on the caller's
    waiting thread. Only the connection it was lent to may use it, while debugging is on, until
    :meth:`close`."""

    __tether_debug__ = True  # travels to a debugging peer whatever the policy (access.py)

    def __init__(self, protocol: Any, stdin: Any = None, stdout: Any = None) -> None:
        self._protocol = protocol
        self._stdin = stdin
        self._stdout = stdout
        self._open = True

    def readline(self) -> str:
        """One line typed at this terminal (``""`` at its end)."""
        self._check("readline")
        line = (self._stdin or sys.stdin).readline()
        return line if isinstance(line, str) else bytes(line).decode(errors="replace")

    def write(self, text: str) -> int:
        """Show ``text`` on this terminal."""
        self._check("write")
        if type(text) is not str:
            raise TypeError(f"Console.write takes a str, not {type(text).__name__}")
        out = self._stdout or sys.stdout
        out.write(text)
        out.flush()
        return len(text)

    def flush(self) -> None:
        self._check("flush")

    def close(self) -> None:
        """The debugging session is over: nothing more may be read or written."""
        self._check("close")
        self._open = False

    def _check(self, what: str) -> None:
        if not self._open:
            raise UsageError("this console was lent for a debugging session that has ended")
        require_debugging(self._protocol, f"Console.{what}")


def post_mortem(err: BaseException | None = None, *, follow: bool = True) -> None:
    """Open pdb at the remote frame where ``err`` was raised, in this terminal.

    ``err`` is an exception a call through a proxy raised, on a connection where debugging is
    on: pdb runs on the peer, on the frames of the failure, reading commands from this
    terminal (``p``, ``pp``, ``l``, ``ll``, ``w``, ``u``, ``d``, expressions...); the call
    returns when the debugger quits, and the remote frames are let go. An error that crossed
    several peers is debugged where it was raised, as far as debugging is on between each
    (``follow=False``: at the first peer). A local exception opens local pdb. Call it from a
    thread (on an event loop: ``await asyncio.to_thread(tether.post_mortem, err)``)."""
    if err is None:
        err = _last_error()
    failure = getattr(err, "__tether_failure__", None)
    if failure is None:
        if hasattr(err, "remote_traceback"):
            raise AccessDenied(
                f"this {type(err).__name__} came from a peer without its frames: {_NOT_ON}; the "
                "traceback text, if the peer sent it, is in err.remote_traceback",
                name="post_mortem",
            )
        import pdb

        pdb.post_mortem(err.__traceback__)
        return
    console = Console(_state(failure).session.protocol)
    try:
        outcome = failure.debug(console, follow)
        if hasattr(outcome, "__await__"):
            getattr(outcome, "close", lambda: None)()
            raise UsageError(
                "tether.post_mortem() blocks for the debugging session: on an event loop, "
                "call it in a thread (await asyncio.to_thread(tether.post_mortem, err))"
            )
    finally:
        console._open = False


def pm() -> None:
    """:func:`post_mortem` of the error being handled, or else of the last unhandled error of
    an interactive session (``sys.last_value``), like ``pdb.pm()``."""
    err = sys.exc_info()[1] or getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if err is None:
        raise UsageError(
            "tether.pm(): no error to debug (none is being handled, and no unhandled error ended "
            "an interactive command); call tether.post_mortem(err) with the exception"
        )
    post_mortem(err)


def _last_error() -> BaseException:
    err = sys.exc_info()[1] or getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if err is None:
        raise UsageError("tether.post_mortem() needs the exception to debug: tether.post_mortem(err)")
    return err


# -- the debugged side: pdb on a lent console -----------------------------------------------


def breakpoint(*, local: bool = False) -> None:
    """Stop here in pdb, on the terminal of the peer whose call this code runs for.

    Call it in a handler (a method a peer calls). When debugging is on with that peer, pdb
    opens on the caller's terminal, stopped at the line after this call: ``n``, ``s``, ``c``,
    ``p``, ``l``, ``w``... work there; ``c`` lets the handler go on (and its answer return),
    ``q`` aborts it (the caller gets ``bdb.BdbQuit``). Only this handler's thread waits: other
    calls go on. Otherwise it says why on stderr and returns (``local=True``: local pdb
    instead). A coroutine handler on an event loop cannot stop in a debugger (the loop would
    stop with it): make it a plain method (run on a worker thread) to debug it."""
    frame = sys._getframe(1)
    why, session = _why_no_debugger()
    console: Any = None
    if session is not None:
        try:
            console = session.call_tether("debug_console", ())
        except Exception as exc:
            why = f"the caller lent no console ({type(exc).__name__}: {exc})"
    if console is None:
        if local:
            import pdb

            pdb.Pdb().set_trace(frame)
            return
        print(f"tether.breakpoint(): no debugger: {why}; going on", file=sys.stderr, flush=True)
        return
    stream = _ConsoleStream(console)
    handler = _handler_frame(frame)
    debugger = _pdb_class()(stream, handler=handler, console=console)
    stream.write(
        f"--Remote breakpoint in {handler.f_code.co_name}(), process {os.getpid()} on "
        f"{socket.gethostname()}: c lets the handler go on, q aborts it--\n"
    )
    debugger.set_trace(frame)


def _why_no_debugger() -> tuple[str, Any]:
    """(why no remote debugger can open here, None) or ("", the session of the caller)."""
    handling = current_exchange.get()
    if handling is None:
        return "this code does not run on behalf of a peer's call", None
    session, _, runner = handling
    if not isinstance(runner, int):
        return "a coroutine handler runs on an event loop, which a debugger would stop (make it a plain method)", None
    protocol = session.protocol  # type: ignore[attr-defined]
    if not getattr(protocol.tether, "debug", False):
        return "this side does not offer debugging (debug=True, or tether.grant_debugging(peer))", None
    if protocol.peer_info.get("debug") is not True:
        return "the caller did not ask for debugging (connect(..., debug=True))", None
    return "", session


def _require_thread(what: str) -> None:
    handling = current_exchange.get()
    if handling is not None and not isinstance(handling[2], int):
        raise UsageError(
            f"{what} blocks a thread while the debugger runs, and this side runs the call as a task "
            "on its event loop (a page, or run_sync_in_threads=False): its frames show in tracebacks only"
        )


def _post_mortem_here(console: Any, exc: BaseException, tb: types.TracebackType) -> None:
    stream = _ConsoleStream(console)
    debugger = _pdb_class()(stream)
    stream.write(f"--Remote post-mortem in process {os.getpid()} on {socket.gethostname()}: {_summary(exc)}--\n")
    debugger.reset()
    debugger.interaction(None, tb)
    stream.flush()


def _is_runtime(module: str | None) -> bool:
    """Whether frames of ``module`` are Tether's runtime (pdb steps over them)."""
    if module is None or not (module == "tether" or module.startswith("tether.")):
        return False
    return not module.startswith(("tether.remote.", "tether.browser.page"))


# What the garbage collector may run at any step is not the code being debugged: the finalizers
# of what a collection frees (a generator's close, a __del__), a WeakSet dropping a member that
# died, a function in gc.callbacks (a test tool's, a profiler's). pdb neither stops in it nor in
# what it calls.
_COLLECTOR_MODULES = frozenset({"_weakrefset", "weakref"})


class _Collection:
    """The thread a garbage collection runs in, while it runs (a gc callback, first in the list
    once a remote debugger was made)."""

    thread: int | None = None

    @classmethod
    def note(cls, phase: str, info: dict[str, int]) -> None:
        cls.thread = threading.get_ident() if phase == "start" else None


def _run_by_collector(frame: types.FrameType | None, stop: types.FrameType | None) -> bool:
    """Whether ``frame`` runs for the garbage collector: a collection runs in this thread, or
    ``frame`` or a caller below ``stop`` is a gc callback's code or in a weakref module."""
    if _Collection.thread is not None and _Collection.thread == threading.get_ident():
        return True
    codes = {getattr(getattr(callback, "__func__", callback), "__code__", None) for callback in gc.callbacks}
    while frame is not None and frame is not stop:
        if frame.f_code in codes or frame.f_globals.get("__name__") in _COLLECTOR_MODULES:
            return True
        frame = frame.f_back
    return False


def _handler_frame(frame: types.FrameType) -> types.FrameType:
    """The outermost application frame below ``frame``: the handler Tether's runtime called."""
    while frame.f_back is not None and not _is_runtime(frame.f_back.f_globals.get("__name__")):
        frame = frame.f_back
    return frame


def _summary(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<str() failed>"
    return f"{type(exc).__qualname__}: {text}" if text else type(exc).__qualname__


class _ConsoleStream:
    """pdb's stdin and stdout on a lent console: what pdb writes goes in one piece when it
    reads a line or flushes (one round trip per prompt)."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, console: Any) -> None:
        self._console = console
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._console.write(text)

    def readline(self, size: int = -1) -> str:
        self.flush()
        line = self._console.readline()
        return line if isinstance(line, str) else ""

    def isatty(self) -> bool:
        return False


_PDB: Any = None


def _pdb_class() -> Any:
    """pdb.Pdb for a remote console (made on first use: pdb is imported only then)."""
    global _PDB
    if _PDB is not None:
        return _PDB
    import pdb

    gc.callbacks.insert(0, _Collection.note)  # (first: its "start" comes before the others run)

    class RemotePdb(pdb.Pdb):
        """pdb on a lent console: it steps over Tether's runtime, and a breakpoint's session
        ends (the console is given back) when the handler returns, continues or quits."""

        def __init__(self, stream: _ConsoleStream, handler: types.FrameType | None = None, console: Any = None) -> None:
            console_io: Any = stream  # what pdb reads and writes: readline, write, flush
            super().__init__(stdin=console_io, stdout=console_io, skip=["tether.*"], nosigint=True, readrc=False)
            self._stream = stream
            self._handler = handler
            self._console = console
            self._ended = False

        def is_skipped_module(self, module_name: str) -> bool:  # type: ignore[override]
            return _is_runtime(module_name)

        def dispatch_call(self, frame: types.FrameType, arg: Any) -> Any:
            if _run_by_collector(frame, self._handler):
                return None  # not traced: no stop in it, whatever was asked
            return super().dispatch_call(frame, arg)

        def do_interact(self, arg: str) -> None:
            self.error("interact would read the debugged process's own stdin: use ! statements here instead")

        def set_continue(self) -> None:
            super().set_continue()
            if not self.breaks:
                self._end()

        def set_quit(self) -> None:
            super().set_quit()
            self._end()

        def dispatch_return(self, frame: types.FrameType, arg: Any) -> Any:
            result = super().dispatch_return(frame, arg)
            if frame is self._handler:
                self._stream.write("--the handler returned: the debugger lets it go--\n")
                self._end()
                return None
            return result

        def _end(self) -> None:
            """A breakpoint's session is over: stop tracing this thread, give the console back."""
            if self._handler is None or self._ended:
                return
            self._ended = True
            self.clear_all_breaks()
            sys.settrace(None)
            frame: types.FrameType | None = sys._getframe()
            while frame is not None:
                frame.f_trace = None
                frame = frame.f_back
            try:
                self._stream.flush()
                self._console.close()
            except Exception:
                pass  # the caller went away: nothing to give back

    _PDB = RemotePdb
    return RemotePdb
