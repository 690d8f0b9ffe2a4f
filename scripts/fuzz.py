"""Coverage-guided fuzzing of the frame parser and the codec, for a chosen time.

``python scripts/fuzz.py --seconds N [--seed S] [--engine auto|atheris|hypothesis] [--jobs J]``
(``make fuzz FUZZ_SECONDS=N``). Three targets take bytes:

* ``server``: :meth:`tether.protocol.Protocol.receive` on a server-side protocol that has
  received the client's exposure frame and a Python ``hello``, with its root exposed as key 1;
  every message-send it admits is then performed (:meth:`Protocol.perform`);
* ``client``: the same on a client-side protocol that sent ``hello`` (its answer id is known
  to the generator, so hello answers are reached) and exposed one object as key 1;
* ``value``: :func:`tether.codec.decode_value`.

A fourth unit, ``roundtrip``, checks ``decode_value(encode_value(v)) == v`` (nan-aware, exact
types) for hypothesis-generated literals.

**What counts as a failure.** For every input: the target returns (events, or a value) or
rejects it in a documented way (``ProtocolError`` from ``decode_value``; for ``receive`` the
outcomes of ``docs/protocol.md`` section 8: a ``Violation`` with code 1002 for an unknown first
word, an error answer to the exchange id of a message-send whose body is malformed, only frames
that start with a frame tag in ``data_to_send()``); any other exception is a failure, and so is

* an input that takes more than ``slow_limit(input)``: ``SLOW_SECONDS`` (1 s) plus
  ``SLOW_PER_MIB`` (2 s) per MiB, since decoding is linear in the frame's size (the watchdog
  notes where the input is at that moment, and stops it at ten times that);
* a ``tracemalloc`` peak over ``max(Limits.memory_floor, Limits.memory_factor * len(input))
  + MEMORY_SLACK``, measured for every ``MEMORY_EVERY``-th input and every ``MEMORY_EVERY_BIG``-th
  one of 64 KiB or more (tracemalloc makes decoding 5 to 15 times slower);
* ``receive`` asking a remote object anything (a proxy compared or hashed while a frame is
  read: the reading thread would wait for an answer that only it can read), and so is a
  ``Tether`` message that a session performs on its reading thread (``INLINE``) doing it.

Each failure is reported once per *signature* (its kind and the code it happened in), its input
written to ``tests/fuzz/corpus/<sha256 prefix>.bin`` (which ``tests/fuzz/test_fuzz.py``
replays), and the run goes on looking for others; the script exits with status 1 if any input
failed. Each worker first replays the corpus, so an input that still fails is reported again
(and its bug not counted as new); ``--seed-corpus`` writes the hand-made inputs of
:func:`hand_made_inputs` into the corpus.

**Inputs.** The first byte of a fuzz input chooses its use: ``0x00``-``0x3F`` make the rest the
input itself (raw bytes: libFuzzer's mutations, with the protocol's words as its dictionary);
any other value makes the rest a choice sequence for a structured generator (:class:`Builder`)
that writes frames in the protocol's words (valid headers and bodies of every tag in
``tether.words``, lengths and counts near their boundaries, nested containers, compact forms,
markers, back-references, class tags and class info, keyword arguments, nesting around the
depth limit, containers of up to 30,000 elements, registered classes of every by-value kind),
then mutates them (truncation, a length or count moved to its boundaries, words replaced,
inserted or deleted). Coverage guidance on the choice sequence makes the generator
structure-aware.

**Engines.** ``atheris`` (libFuzzer, coverage-guided; tether's functions and the generator's
are instrumented, and the time and memory of an input are judged on the uninstrumented code)
when it is installed (``pip install atheris``; not a dependency of the project), else
``hypothesis`` rounds driven by the time budget (random choice sequences, each round seeded
from ``--seed``; failures that are not slow are shrunk). The units run in worker processes
(``--jobs``, default the number of CPUs), and the time is shared among them so that the whole
run takes about ``--seconds``. A worker that dies (a crash, a hang in C code, which
``faulthandler`` reports after 120 s) leaves the input it was running in a file that the
script keeps in the corpus too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import faulthandler
import gc
import hashlib
import itertools
import json
import math
import mmap
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
import types
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

import tether  # noqa: E402
from tether import words as W  # noqa: E402
from tether.classes import fingerprint  # noqa: E402
from tether.codec import decode_value, encode_value  # noqa: E402
from tether.exceptions import ProtocolError  # noqa: E402
from tether.limits import Limits  # noqa: E402
from tether.protocol import (  # noqa: E402
    AnswerReceived,
    ErrorReceived,
    Incoming,
    Opened,
    Protocol,
    Violation,
    _reading,
)
from tether.proxy import make_proxy  # noqa: E402
from tether.tether_object import TetherObject  # noqa: E402

CORPUS = ROOT / "tests" / "fuzz" / "corpus"
TARGET_NAMES = ("server", "client", "value")
SLOW_SECONDS = 1.0  # an input that takes longer (plus SLOW_PER_MIB for its size) is a failure
SLOW_PER_MIB = 2.0  # decoding is linear: about 0.6 s per MiB of tiny dicts on a slow 2-core machine
WATCHDOG_FACTOR = 10  # a Python-level loop is interrupted after 10 times its limit
MEMORY_EVERY = 16  # tracemalloc measures every 16th input (it slows decoding down 5 to 15 times)
MEMORY_EVERY_BIG = 4  # and every 4th input of BIG_INPUT bytes or more
MEMORY_SLACK = 128 * 1024  # the constant on top of the decoder's own bound
BIG_INPUT = 64 * 1024
INSTRUMENT_DATAFLOW = False  # atheris: trace comparisons too (several times slower, finds magic words)
LIMITS = Limits()
HELLO_ID = bytes.fromhex("0123456789abcdef0000000000000001")  # the client's hello, see make_client
OTHER_ID = bytes.fromhex("0123456789abcdef00000000000000ff")

_pack = struct.Struct(">I").pack


def words(*ws: int) -> bytes:
    return b"".join(_pack(w & 0xFFFFFFFF) for w in ws)


# ---------------------------------------------------------------------------------------------
# Classes a peer may name here (registered, so objects by value of them are rebuilt): every kind
# of tether.classes, so that the fuzzer reaches each way of rebuilding an object.


@dataclasses.dataclass
class FuzzPoint:
    x: Any
    y: Any


@dataclasses.dataclass(frozen=True, slots=True)
class FuzzFrozen:
    a: Any


class FuzzPair(NamedTuple):
    left: Any
    right: Any


class FuzzColor(enum.Enum):
    RED = 1
    GREEN = 2


@tether.by_value_class
class FuzzPlain:
    def __init__(self) -> None:
        self.a = 1


class FuzzReduced:
    def __init__(self, state: Any = None) -> None:
        self.state = state

    def __tether_reduce__(self) -> Any:
        return self.state

    @classmethod
    def __tether_rebuild__(cls, state: Any) -> FuzzReduced:
        if isinstance(state, str) and state == "boom":
            raise ValueError("a rebuild that fails")
        return cls(state)


@dataclasses.dataclass
class FuzzFinalized:
    value: Any

    def __del__(self) -> None:
        pass


class FuzzError(Exception):
    pass


FUZZ_CLASSES: tuple[type, ...] = (
    FuzzPoint, FuzzFrozen, FuzzPair, FuzzColor, FuzzPlain, FuzzReduced, FuzzFinalized, FuzzError,
)  # fmt: skip
# One module name for these classes whether this file runs as a script or is imported by
# tests/fuzz/test_fuzz.py, so that a corpus input naming one names it in both.
MODULE = "tether_fuzz"
sys.modules.setdefault(MODULE, sys.modules[__name__])
for _cls in FUZZ_CLASSES:
    _cls.__module__ = MODULE
tether.register(*FUZZ_CLASSES)


class Root:
    """The server's root object (key 1): a few methods that give values back."""

    def take(self, *args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    def echo(self, value: Any) -> Any:
        return value  # the received value is encoded again, proxies going home included


for _cls in (*FUZZ_CLASSES, Root):  # once per process, as a server would: not the cost of an input
    fingerprint(_cls)


# ---------------------------------------------------------------------------------------------
# The targets


class FuzzFailure(AssertionError):
    """An input that a target did not handle in a documented way."""

    def __init__(self, target: str, data: bytes, problem: str, detail: str = "", where: str = "") -> None:
        self.target = target
        self.data = data
        self.problem = problem
        self.detail = detail
        self.where = where  # the kind of failure and the code it happened in: one per bug
        super().__init__(f"{target}: {problem}")

    @property
    def signature(self) -> str:
        return f"{self.target}: {self.where or self.problem[:60]}"

    def report(self) -> str:
        shown = self.data[:512].hex()
        more = f"... ({len(self.data)} bytes in all)" if len(self.data) > 512 else f" ({len(self.data)} bytes)"
        lines = [f"target:  {self.target}", f"problem: {self.problem}", f"input:   {shown}{more}"]
        if self.detail:
            lines += ["", self.detail.rstrip()]
        return "\n".join(lines)


class Hang(BaseException):
    """Raised by the watchdog in a Python-level loop (a BaseException: receive catches Exception)."""


class RemoteCallDuringFuzz(Exception):
    """A proxy made by the protocol under test was asked to call its remote object."""


class FuzzSession:
    """What the proxies made while fuzzing point to: a remote call is refused and counted (the
    protocol under test has no peer; during ``receive`` nothing may call one)."""

    closed = False

    def __init__(self) -> None:
        self.protocol: Protocol | None = None
        self.calls = 0

    def call(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise RemoteCallDuringFuzz(f"a proxy was asked to send {args[1] if len(args) > 1 else '?'!r}")

    call_tether = call

    def describe(self) -> str:
        return "the fuzzer's peer"


EVENT_TYPES = (Opened, Incoming, AnswerReceived, ErrorReceived, Violation)
HEAD_TETHER, HEAD_ANSWER, HEAD_ERROR = words(W.TAG_TETHER), words(W.TAG_ANSWER), words(W.TAG_ERROR_ANSWER)
_UUID_HEAD = words(W.TAG_UUID, 16)


def _is_exposure(head: bytes) -> bool:
    return len(head) == 4 and W.MY_OBJECT_BASE <= struct.unpack(">I", head)[0] < W.MY_OBJECT_END


def make_protocol(client: bool) -> tuple[Protocol, FuzzSession]:
    """A protocol in the state the targets fuzz: the conversation has started."""
    session = FuzzSession()
    protocol = Protocol(
        client=client,
        root=Root(),
        proxy_factory=lambda key, info: make_proxy(session, key, info),  # type: ignore[arg-type]
    )
    session.protocol = protocol
    if client:
        ids = itertools.chain([HELLO_ID], (HELLO_ID[:8] + n.to_bytes(8, "big") for n in itertools.count(2)))
        protocol.next_id = lambda: next(ids)
        protocol.queue_opening()
        assert protocol.receive(words(W.MY_OBJECT_BASE)) == [Opened(0)]
        exchange_id = protocol.next_id()
        protocol.queue_call(0, "hello", (protocol.hello_argument(),), exchange_id=exchange_id)
        assert exchange_id == HELLO_ID
        protocol.exports.export(Root())  # key 1: an object the server may name
    else:
        assert protocol.receive(words(W.MY_OBJECT_BASE)) == [Opened(0)]
        protocol.apply_hello({"language": "python"})  # a Python client: described refs, compact forms
        protocol.exports.export(protocol.root)  # key 1, as after `root`
    protocol.data_to_send()
    return protocol, session


def _check_outbox(target: str, data: bytes, outbox: Any) -> None:
    if type(outbox) is not list:
        raise FuzzFailure(target, data, f"data_to_send() returned {type(outbox).__name__}, not a list")
    for frame in outbox:
        if type(frame) is not bytes or len(frame) < 4:
            raise FuzzFailure(target, data, f"data_to_send() holds {frame!r:.80}, not a frame")
        head = frame[:4]
        if head not in (HEAD_TETHER, HEAD_ANSWER, HEAD_ERROR) and not _is_exposure(head):
            raise FuzzFailure(target, data, f"data_to_send() holds a frame that starts with {head.hex()}")


def _check_events(target: str, data: bytes, events: Any, outbox: list[bytes]) -> None:
    if type(events) is not list:
        raise FuzzFailure(target, data, f"receive() returned {type(events).__name__}, not a list of events")
    for event in events:
        if not isinstance(event, EVENT_TYPES):
            raise FuzzFailure(target, data, f"receive() returned {event!r:.100}, which is not an event")
        if isinstance(event, Violation) and (event.code not in (1002, 1009) or not isinstance(event.reason, str)):
            raise FuzzFailure(target, data, f"a Violation with code {event.code!r} (1002 or 1009 are documented)")
        if isinstance(event, ErrorReceived) and not isinstance(event.error, BaseException):
            raise FuzzFailure(target, data, f"ErrorReceived carries {event.error!r:.80}, not an exception")
    head = data[:4]
    if len(data) < 4 or (head not in (HEAD_TETHER, HEAD_ANSWER, HEAD_ERROR) and not _is_exposure(head)):
        if len(events) != 1 or not isinstance(events[0], Violation) or events[0].code != 1002:
            raise FuzzFailure(
                target, data, f"a frame with first word {head.hex() or '(none)'} gave {events!r:.200}, not a close 1002"
            )
    if head == HEAD_TETHER and data[4:12] == _UUID_HEAD and len(data) >= 28 and not events:
        exchange_id = data[12:28]
        if not any(f[:4] == HEAD_ERROR and f[12:28] == exchange_id for f in outbox):
            raise FuzzFailure(
                target, data, "a message-send whose exchange id was read gave no event and no error answer to that id"
            )


def _protocol_target(client: bool) -> Callable[[bytes], str]:
    target = "client" if client else "server"

    def run(data: bytes) -> str:
        protocol, session = make_protocol(client)
        try:
            events = protocol.receive(data)
        except RemoteCallDuringFuzz as exc:
            raise FuzzFailure(
                target, data, "receive() asked a remote object something while reading a frame "
                "(a real session's reading thread would wait for an answer only it can read)",
                traceback.format_exc(), f"remote call in receive at {tether_frame(traceback.extract_tb(exc.__traceback__))}",
            ) from None
        if getattr(_reading, "active", False):
            raise FuzzFailure(target, data, "receive() left the thread marked as reading a frame")
        outbox = protocol.data_to_send()
        _check_outbox(target, data, outbox)
        _check_events(target, data, events, outbox)
        for event in events:
            if isinstance(event, Incoming):
                message = event.message
                inline = message.receiver is protocol.tether and message.selector in TetherObject.INLINE
                calls = session.calls
                protocol.perform(message)
                answers = protocol.data_to_send()
                answer = answers[0] if len(answers) == 1 else (None if not answers else answers)
                if inline and session.calls != calls:
                    raise FuzzFailure(
                        target, data, f"the inline Tether message {message.selector!r} (performed on the "
                        "reading thread) asked a remote object something",
                        where=f"remote call in the inline Tether message {message.selector!r}",
                    )
                if message.exchange_id is None:
                    if answer is not None:
                        raise FuzzFailure(target, data, "a one-way message-send was answered")
                elif type(answer) is not bytes or answer[:4] not in (HEAD_ANSWER, HEAD_ERROR) or (
                    answer[12:28] != message.exchange_id
                ):
                    raise FuzzFailure(target, data, f"perform() answered {answer!r:.100}")
        if protocol.queue_releases():
            releases = protocol.data_to_send()
            if len(releases) != 1 or releases[0][:4] != HEAD_TETHER:
                raise FuzzFailure(target, data, f"queue_releases() queued {releases!r:.100}")
        protocol.close()
        kinds = sorted({type(e).__name__ for e in events}) or (["error answer"] if outbox else ["nothing"])
        return "+".join(kinds)

    return run


def _value_target(data: bytes) -> str:
    try:
        value = decode_value(data)
    except ProtocolError:
        return "rejected"
    return "value " + type(value).__name__


TARGETS: dict[str, Callable[[bytes], str]] = {
    "server": _protocol_target(client=False),
    "client": _protocol_target(client=True),
    "value": _value_target,
}


def memory_bound(data: bytes) -> int:
    return max(LIMITS.memory_floor, LIMITS.memory_factor * len(data)) + MEMORY_SLACK


def tether_frame(stack: Sequence[traceback.FrameSummary]) -> str:
    """The innermost frame of tether's own code in ``stack``, as ``file:line function``."""
    for frame in reversed(stack):
        if f"{os.sep}tether{os.sep}" in frame.filename:
            return f"{frame.filename.rpartition(os.sep + 'tether' + os.sep)[2]}:{frame.lineno} {frame.name}"
    return "outside tether"


class _Watch:
    """The watchdog's state: at its limit (slow_limit) it notes where the input is (a slow input's
    report says where it spent its time), at WATCHDOG_FACTOR times that it raises :class:`Hang`."""

    stack: list[traceback.FrameSummary] | None = None
    limit = SLOW_SECONDS
    factor = WATCHDOG_FACTOR


def slow_limit(data: bytes) -> float:
    """How long one input may take: SLOW_SECONDS, and SLOW_PER_MIB more per MiB."""
    return SLOW_SECONDS + SLOW_PER_MIB * len(data) / (1 << 20)


def _on_alarm(signum: int, frame: Any) -> None:
    if _Watch.stack is None:
        _Watch.stack = traceback.extract_stack(frame)
        signal.setitimer(signal.ITIMER_REAL, _Watch.limit * (_Watch.factor - 1))
        return
    # Raised where the signal lands: if that is a place whose exceptions are ignored (a gc or
    # weakref callback, a __del__), the next alarm half a second later tries again.
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    raise Hang(f"still running after {_Watch.limit * _Watch.factor:.1f} s")


@dataclasses.dataclass
class Stats:
    inputs: int = 0
    measured: int = 0
    max_seconds: float = 0.0
    max_memory_ratio: float = 0.0  # tracemalloc peak / memory_bound, the largest seen
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)


class Checker:
    """Runs one input through one target with the checks of the module docstring."""

    def __init__(self, memory_every: int = MEMORY_EVERY, hang_factor: int = WATCHDOG_FACTOR) -> None:
        self.memory_every = memory_every
        self.stats = Stats()
        # The watchdog borrows SIGALRM for each input (and gives back a timer someone else had
        # set, pytest-timeout's for one); signals reach only the main thread.
        self.watchdog = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        _Watch.factor = hang_factor
        # Under coverage instrumentation (atheris), a context in which the code runs without it:
        # time and memory are judged there (instrumented code runs 5 to 40 times slower).
        self.plain: Callable[[], contextlib.AbstractContextManager[None]] | None = None

    def check(self, target: str, data: bytes, measure: bool | None = None) -> str:
        run = TARGETS[target]
        stats = self.stats
        stats.inputs += 1
        outcome = self._timed(target, run, data)
        stats.outcomes[outcome.split(" ")[0]] += 1
        if measure is None and self.memory_every > 0:  # chosen by the input, so that replays agree
            every = MEMORY_EVERY_BIG if len(data) >= BIG_INPUT else self.memory_every
            measure = zlib.crc32(data) % every == 0
        if measure:
            self._measure(target, run, data)
        return outcome

    def slow_found(self) -> None:
        """After a first slow input, stop the next ones sooner: the run goes on finding others."""
        _Watch.factor = 2

    def _timed(self, target: str, run: Callable[[bytes], str], data: bytes) -> str:
        if self.plain is None:
            return self._judged(target, run, data)
        try:
            return self._judged(target, run, data)
        except FuzzFailure as failure:
            if not failure.where.startswith("slow"):
                raise
        with self.plain():  # slow when instrumented: is it slow without?
            return self._judged(target, run, data)

    def _judged(self, target: str, run: Callable[[bytes], str], data: bytes) -> str:
        limit = slow_limit(data)
        if self.watchdog:
            _Watch.stack = None
            _Watch.limit = limit
            previous = signal.signal(signal.SIGALRM, _on_alarm)
            pending = signal.setitimer(signal.ITIMER_REAL, limit)[0]
        start = time.perf_counter()
        try:
            outcome = run(data)
        except FuzzFailure:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            frame = tether_frame(traceback.extract_tb(exc.__traceback__))
            if isinstance(exc, Hang):  # signed as a slow input: it is one, stopped
                self.slow_found()
                where = f"slow in {frame.split(':')[0]}"  # where a slow input is sampled varies: its file
                raise FuzzFailure(target, data, f"hang: {exc}", traceback.format_exc(), where) from None
            raise FuzzFailure(
                target, data, f"undocumented exception {type(exc).__name__}: {exc!s:.300}", traceback.format_exc(),
                f"{type(exc).__name__} at {frame}",
            ) from None
        finally:
            if self.watchdog:
                signal.setitimer(signal.ITIMER_REAL, 0)
                if previous is not None:  # None: a handler not set from Python, left to its owner
                    signal.signal(signal.SIGALRM, previous)
                if pending:  # the other owner's alarm, late by this input at most
                    signal.setitimer(signal.ITIMER_REAL, max(pending - (time.perf_counter() - start), 0.001))
        elapsed = time.perf_counter() - start
        self.stats.max_seconds = max(self.stats.max_seconds, elapsed)
        if elapsed > limit:
            self.slow_found()
            stack = _Watch.stack or []
            raise FuzzFailure(
                target, data, f"slow: {elapsed:.2f} s for one input of {len(data)} bytes (its limit is {limit:.2f} s)",
                f"where it was after {limit:.2f} s:\n" + "".join(traceback.format_list(stack[-14:])) if stack else "",
                f"slow in {tether_frame(stack).split(':')[0]}",
            )
        return outcome

    def _measure(self, target: str, run: Callable[[bytes], str], data: bytes) -> None:
        with self.plain() if self.plain is not None else contextlib.nullcontext():
            self._measured(target, run, data)

    def _measured(self, target: str, run: Callable[[bytes], str], data: bytes) -> None:
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            try:
                run(data)
            except Exception:
                pass  # the timed run reported it already
            _, peak = tracemalloc.get_traced_memory()
        finally:
            if not was_tracing:
                tracemalloc.stop()
        used = peak - base
        bound = memory_bound(data)
        self.stats.measured += 1
        self.stats.max_memory_ratio = max(self.stats.max_memory_ratio, used / bound)
        if used > bound:
            stack = _where_memory_peaks(run, data)
            raise FuzzFailure(
                target, data, f"memory: a peak of {used} bytes for an input of {len(data)} bytes "
                f"(the bound is {bound}: max(memory_floor, memory_factor * len) + {MEMORY_SLACK})",
                "where the most memory was in use (approximately):\n" + "".join(traceback.format_list(stack[-14:])),
                f"memory at {tether_frame(stack)}",
            )


def _where_memory_peaks(run: Callable[[bytes], str], data: bytes) -> list[traceback.FrameSummary]:
    """Run ``data`` again, noting the stack each time the memory in use grows by 64 KiB more
    than seen before (at calls and returns): where a failing input's peak was."""
    best = [0, 0]
    found: list[traceback.FrameSummary] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        current = tracemalloc.get_traced_memory()[0]
        if current > best[0] + 65536:
            best[0] = current
            found[:] = traceback.extract_stack(frame)

    tracemalloc.start()
    sys.setprofile(profile)
    try:
        run(data)
    except Exception:
        pass
    finally:
        sys.setprofile(None)
        tracemalloc.stop()
    return found


def save_failure(data: bytes, corpus: Path = CORPUS) -> Path:
    corpus.mkdir(parents=True, exist_ok=True)
    path = corpus / (hashlib.sha256(data).hexdigest()[:16] + ".bin")
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
# The structured generator


class Source:
    """Choices read from bytes (a fuzz input): each choice takes one to four bytes, and an
    exhausted source answers 0, which every choice below makes its simplest option."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        pos = self.pos
        if pos >= len(self.data):
            return 0
        self.pos = pos + 1
        return self.data[pos]

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        if n <= 256:
            return self.byte() % n
        if n <= 65536:
            return ((self.byte() << 8) | self.byte()) % n
        return int.from_bytes(self.take(4), "big") % n

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk + bytes(n - len(chunk))

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.below(len(options))]

    def chance(self, one_in: int) -> bool:
        return self.below(one_in) == 0


ALL_TAGS = sorted({v for k, v in vars(W).items() if k.startswith("TAG_")})
INTERESTING_WORDS = [
    *ALL_TAGS,
    W.COMPACT_OBJECT, W.COMPACT_OBJECT + 1, W.COMPACT_OBJECT + 0xFFFFFF, W.COMPACT_STRING, W.COMPACT_STRING + 1,
    W.COMPACT_STRING + 0xFFFFFF, 0x23000000, 0x20000000, 0x2000FFFF, 0x3FFFFFFF, W.SMALLINT_BASE,
    W.SMALLINT_BASE + 1, 0x5FFFFFFF, W.MY_OBJECT_BASE, W.MY_OBJECT_BASE + 1, W.MY_OBJECT_BASE + 2, 0x6FFFFFFF,
    0x70000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0, 1, 2, 16, 0x1FFFFFFF,
]  # fmt: skip
SMALL_INTS = (0, 1, 2, 3, 255, 0x1FFFFFFF, 0x1FFFFFFE, 1000)
BIG_INT_LENGTHS = (1, 1, 2, 4, 8, 9, 16, 0, 33, 300, 5000)
FLOATS = (0.0, -0.0, 1.5, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308)
TEXTS = (
    b"", b"a", b"hello", "\u00e9\u4e2d\U0001f600".encode(), "\ud800".encode("utf-8", "surrogatepass"),
    b"\xff", b"\xc3", b"\xed\xa0\x80\xed\xb0\x80", b"\x00", b"__class__", b"__dict__", b"language", b"python",
    b"x" * 300,
)  # fmt: skip
SELECTORS = (
    "take", "echo", "fetch", "hello", "root", "release", "get_classes", "iterate", "next_batch", "help",
    "__getattribute__", "__setattr__", "__len__", "__call__", "__getitem__", "__eq__", "__hash__", "__dir__",
    "__repr__", "__iter__", "at:put:", "+", "nosuch", "__class__", "_private", "", "cancel",
)  # fmt: skip
EXCEPTION_TYPES = (
    "builtins.KeyError", "builtins.ValueError", "builtins.ExceptionGroup", "builtins.BaseExceptionGroup",
    "builtins.SystemExit", "builtins.KeyboardInterrupt", "builtins.UnicodeDecodeError", "builtins.OSError",
    "builtins.print", "builtins.object", "tether.exceptions.Busy", "tether.exceptions.DecodeError",
    "tether.exceptions.RemoteError", "tether.exceptions.TetherError", f"{FuzzError.__module__}.FuzzError",
    "nosuch.Error", "", ".", "builtins.",
)  # fmt: skip
CLASS_NAMES = (
    *((c.__module__, c.__qualname__) for c in FUZZ_CLASSES),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"), ("datetime", "timedelta"),
    ("datetime", "timezone"), ("decimal", "Decimal"), ("pathlib", "PurePosixPath"), ("pathlib", "Path"),
    ("builtins", "ValueError"), ("builtins", "ExceptionGroup"), ("builtins", "UnicodeDecodeError"),
    ("builtins", "int"), ("builtins", "list"), ("builtins", "range"), ("builtins", "bytearray"),
    ("uuid", "UUID"), ("tether.exceptions", "DecodeError"), ("tether.exceptions", "RemoteError"),
    ("os", "system"), ("builtins", "eval"), ("__main__", "Nothing"), ("", ""), ("builtins", ""),
)  # fmt: skip


def _string(text: str) -> bytes:
    data = text.encode()
    return words(W.TAG_STRING, len(data)) + data


_POINT = _string(FuzzPoint.__module__) + _string(FuzzPoint.__qualname__)
BULK_ELEMENTS = (
    words(W.SMALLINT_BASE + 7), words(W.COMPACT_STRING + 2) + b"ab", words(W.TAG_ARRAY, 0), words(W.TAG_SET, 0),
    words(W.TAG_DICT, 1, W.SMALLINT_BASE, W.SMALLINT_BASE), words(W.TAG_TUPLE, 1, W.SMALLINT_BASE),
    words(W.TAG_FLOAT) + struct.pack(">d", 1.5), words(W.TAG_INTEGER, 4) + b"\x80\x00\x00\x01",
    words(W.TAG_BACKREF, 0), words(W.TAG_NIL), words(W.TAG_NAMED) + _POINT + words(W.TAG_NIL, W.TAG_NIL),
    words(W.TAG_DESCRIBED_REF, W.MY_OBJECT_BASE + 1, W.TAG_CLASS_INFO_REF, 1),
)  # fmt: skip
BULK_MAKERS: tuple[Callable[[int], bytes], ...] = (
    lambda i: _pack(W.MY_OBJECT_BASE + 1 + i),  # distinct references: a proxy each
    lambda i: _pack(W.SMALLINT_BASE + 1000 + i),  # distinct small ints
    lambda i: words(W.TAG_OBJECT, W.TAG_CLASS, i + 1) + _POINT + words(W.TAG_NIL, W.TAG_NIL, W.TAG_NIL),
    lambda i: words(W.TAG_DESCRIBED_REF, W.MY_OBJECT_BASE + 1, W.TAG_CLASS_INFO, i + 1) + _POINT + words(0, 0),
)


class Builder:
    """Writes one frame or value from a :class:`Source`, then mutates it. Positions of length and
    count words are kept, so that mutations can move them to their boundaries."""

    MAX_NODES = 120

    def __init__(self, source: Source) -> None:
        self.s = source
        self.out = bytearray()
        self.lengths: list[int] = []  # offsets of length and count words
        self.nodes = 0
        self.numbered = 0  # containers and objects that a back-reference may name
        self.class_ids: list[int] = []
        self.info_ids: list[int] = []

    # -- words --------------------------------------------------------------------------------

    def word(self, w: int) -> None:
        self.out += _pack(w & 0xFFFFFFFF)

    def length(self, n: int) -> None:
        self.lengths.append(len(self.out))
        self.word(n)

    def any_word(self) -> int:
        s = self.s
        choice = s.below(4)
        if choice == 0:
            return int(s.pick(INTERESTING_WORDS))
        if choice == 1:
            return (s.pick(INTERESTING_WORDS) + s.below(4) - 2) & 0xFFFFFFFF
        return int.from_bytes(s.take(4), "big")

    def text_bytes(self) -> bytes:
        s = self.s
        if s.chance(4):
            return s.take(s.below(40))
        return bytes(s.pick(TEXTS))

    def string(self, tags: Sequence[int] = (W.TAG_STRING,), text: bytes | None = None) -> None:
        data = self.text_bytes() if text is None else text
        s = self.s
        tag = s.pick(tags) if not s.chance(16) else s.pick((W.TAG_STRING, W.TAG_SYMBOL, W.COMPACT_STRING))
        if tag == W.COMPACT_STRING:
            self.lengths.append(len(self.out))
            self.word(W.COMPACT_STRING + len(data))
        else:
            self.word(tag)
            self.length(len(data))
        self.out += data

    def class_id(self, known: list[int]) -> int:
        s = self.s
        if known and not s.chance(4):
            return int(s.pick(known))
        return int(s.pick((1, 2, 3, 0, 0xFFFFFF, 0x1000000, 0xFFFFFFFF)))

    # -- values -------------------------------------------------------------------------------

    def value(self, depth: int = 0) -> None:
        s = self.s
        self.nodes += 1
        leaf = depth >= 6 or self.nodes >= self.MAX_NODES
        kind = s.below(12 if leaf else 32)
        if kind <= 2:
            self.word(W.SMALLINT_BASE + s.pick(SMALL_INTS))
        elif kind == 3:
            self.word(s.pick((W.TAG_NIL, W.TAG_TRUE, W.TAG_FALSE, W.TAG_ELLIPSIS)))
        elif kind <= 5:
            self.string((W.TAG_STRING, W.TAG_SYMBOL, W.COMPACT_STRING))
        elif kind == 6:
            self.word(W.TAG_BYTEARRAY)
            data = s.take(s.below(24))
            self.length(len(data))
            self.out += data
        elif kind == 7:
            n = s.pick(BIG_INT_LENGTHS)
            self.word(W.TAG_INTEGER)
            self.length(n)
            self.out += s.take(n) if n < 64 else bytes([s.byte()]) * n
        elif kind == 8:
            if s.chance(2):
                self.word(W.TAG_FLOAT)
                self.out += struct.pack(">d", s.pick(FLOATS)) if s.chance(2) else s.take(8)
            else:
                self.word(W.TAG_COMPLEX)
                self.out += struct.pack(">dd", s.pick(FLOATS), s.pick(FLOATS))
        elif kind == 9:
            self.word(W.TAG_UUID)
            n = 16 if not s.chance(4) else s.pick((0, 15, 17))
            self.length(n)
            self.out += s.take(n)
        elif kind == 10:
            self.reference()
        elif kind == 11:
            self.word(self.any_word())
        elif kind <= 16:
            self.sequence(depth)
        elif kind <= 18:
            self.mapping(depth)
        elif kind == 19:
            self.word(W.TAG_SLICE)
            for _ in range(3):
                self.value(depth + 1)
        elif kind <= 21:
            self.word(W.TAG_BACKREF)
            self.word(s.below(self.numbered + 2) if not s.chance(8) else s.pick((0xFFFFFFFF, 1 << 20)))
        elif kind <= 24:
            self.object_by_value(depth)
        elif kind == 25:
            self.described_reference()
        elif kind == 26:
            self.named()
        elif kind == 27:
            self.word(W.TAG_FUNCTION)
            self.mapping(depth, keys=(b"qualname", b"source", b"globals", b"module", b"name"))
        elif kind == 28:
            self.deep(depth)
        elif kind == 29:
            if self.nodes <= 3 and s.chance(8):  # rare (they are slow), near the top
                self.bulk()
            else:
                self.word(W.TAG_NIL)
        elif kind == 30:
            self.word(s.pick((W.TAG_ARRAY, W.TAG_TUPLE, W.TAG_SET, W.TAG_FROZENSET, W.TAG_DICT)))
            self.length(s.pick((0xFFFFFFFF, 0x7FFFFFFF, 1 << 20, (1 << 20) + 1, 0x00FFFFFF, 1000)))
        else:
            self.word(s.pick(ALL_TAGS))  # a tag in the wrong place, or a frame tag as a value

    def reference(self) -> None:
        s = self.s
        if s.chance(2):
            self.word(W.MY_OBJECT_BASE + s.pick((1, 2, 3, 0, 0xFFFFFFF, 1000)))
        else:
            self.word(s.pick((1, 0, 2, 0x1FFFFFFF, 7)))  # "your object": 0 and 1 exist

    def sequence(self, depth: int) -> None:
        s = self.s
        tag = s.pick((W.TAG_ARRAY, W.TAG_ARRAY, W.TAG_TUPLE, W.TAG_SET, W.TAG_FROZENSET))
        n = s.below(5)
        self.word(tag)
        self.length(n)
        if n and tag in (W.TAG_ARRAY, W.TAG_SET):
            self.numbered += 1
        hashable = tag in (W.TAG_SET, W.TAG_FROZENSET)
        for _ in range(n):
            if hashable and s.chance(2):
                self.word(W.SMALLINT_BASE + s.below(4))  # equal elements too
            else:
                self.value(depth + 1)

    def mapping(self, depth: int, keys: Sequence[bytes] = ()) -> None:
        s = self.s
        n = s.below(4)
        self.word(W.TAG_DICT)
        self.length(n)
        if n:
            self.numbered += 1
        for _ in range(n):
            if keys and not s.chance(4):
                self.string(text=s.pick(keys))
            elif s.chance(2):
                self.string(text=s.pick((b"a", b"b", b"__class__", b"__dict__", b"language", b"x")))
            else:
                self.value(depth + 1)
            self.value(depth + 1)

    def class_head(self) -> tuple[str, str] | None:
        """The class of an object by value; returns its names when they are written."""
        s = self.s
        choice = s.below(8)
        if choice <= 4 or not self.class_ids:
            class_id = s.pick((1, 2, 3, 1, 0, 0xFFFFFF, 0xFFFFFFFF))
            self.word(W.TAG_CLASS)
            self.word(class_id)
            names: tuple[str, str] = s.pick(CLASS_NAMES)
            self.string(text=names[0].encode())
            self.string(text=names[1].encode())
            if s.chance(4):
                self.word(W.TAG_BYTEARRAY)
                self.length(8)
                self.out += s.take(8)
            else:
                self.word(W.TAG_NIL)
            self.class_ids.append(class_id)
            return names
        if choice <= 6:
            self.word(W.TAG_CLASS_REF)
        else:
            self.word(W.TAG_YOUR_CLASS)
        self.word(self.class_id(self.class_ids))
        return None

    def object_by_value(self, depth: int) -> None:
        s = self.s
        names = None
        if self.class_ids and s.chance(3):
            self.word(W.COMPACT_OBJECT + (self.class_id(self.class_ids) & 0xFFFFFF))
        else:
            self.word(W.TAG_OBJECT)
            names = self.class_head()
        self.numbered += 1
        self.state(names, depth)

    def state(self, names: tuple[str, str] | None, depth: int) -> None:
        """A state that fits the class most of the time (else any value)."""
        s = self.s
        qualname = names[1] if names else ""
        if names is None or s.chance(4):
            for _ in range(s.below(3) + 1):
                self.value(depth + 1)
        elif qualname == "FuzzPoint":  # a dataclass: its fields, one after another
            self.value(depth + 1)
            self.value(depth + 1)
        elif qualname == "FuzzPair":  # a named tuple: a Tuple of its values
            self.word(W.TAG_TUPLE)
            self.length(2)
            self.value(depth + 1)
            self.value(depth + 1)
        elif qualname in ("datetime", "date", "time", "FuzzColor"):
            self.string(text=s.pick((b"2024-01-02T03:04:05", b"2024-01-02", b"03:04", b"RED", b"GREEN", b"x", b"")))
        elif qualname in ("timedelta", "Decimal", "PurePosixPath", "Path", "ValueError", "ExceptionGroup",
                          "UnicodeDecodeError", "FuzzError", "DecodeError", "RemoteError", "range"):  # fmt: skip
            self.word(W.TAG_TUPLE)
            n = s.below(4)
            self.length(n)
            for _ in range(n):
                if s.chance(2):
                    self.string(text=s.pick((b"1e999999999", b"NaN", b"-0", b"/etc", b"msg", b"", b"1")))
                else:
                    self.value(depth + 1)
        elif qualname == "FuzzPlain":
            self.mapping(depth, keys=(b"a", b"b", b"__class__", b"__dict__"))
        else:
            self.value(depth + 1)

    def described_reference(self) -> None:
        s = self.s
        self.word(W.TAG_DESCRIBED_REF)
        self.word(W.MY_OBJECT_BASE + s.pick((1, 2, 3)) if not s.chance(8) else self.any_word())
        if self.info_ids and s.chance(2):
            self.word(W.TAG_CLASS_INFO_REF)
            self.word(self.class_id(self.info_ids))
            return
        self.word(W.TAG_CLASS_INFO if not s.chance(16) else self.any_word())
        class_id = s.pick((1, 2, 3, 0, 0xFFFFFFFF))
        self.info_ids.append(class_id)
        self.word(class_id)
        self.string((W.TAG_STRING, W.TAG_SYMBOL), s.pick((b"calc", b"builtins", b"", b"\xff")))
        self.string((W.TAG_STRING, W.TAG_SYMBOL), s.pick((b"Calculator", b"function", b"x")))
        for names in (
            (b"add", b"take", b"__class__", b"x"),
            (b"__call__", b"__await__", b"__len__", b"__aiter__", b"__iter__", b"__getattr__"),
        ):
            n = s.below(4)
            self.length(n)
            for _ in range(n):
                self.string((W.TAG_SYMBOL, W.TAG_STRING), s.pick(names))

    def named(self) -> None:
        s = self.s
        names = s.pick((*CLASS_NAMES, ("os", ""), ("builtins", "len"), ("sys", "modules")))
        self.word(W.TAG_NAMED)
        self.string(text=names[0].encode())
        self.string(text=names[1].encode())
        self.word(W.TAG_NIL)
        if s.chance(2):
            self.word(W.TAG_NIL)
        else:
            self.reference()

    def deep(self, depth: int) -> None:
        """Nesting around the decoder's depth limit (200), in one kind of container."""
        s = self.s
        n = s.pick((50, 199, 200, 201, 250, 1000, 5000))
        kind = s.below(6)
        heads = {
            0: words(W.TAG_ARRAY, 1), 1: words(W.TAG_TUPLE, 1), 2: words(W.TAG_FROZENSET, 1),
            3: words(W.TAG_DICT, 1, W.SMALLINT_BASE), 4: words(W.TAG_SLICE), 5: words(W.TAG_SET, 1),
        }  # fmt: skip
        tail = words(W.TAG_NIL, W.TAG_NIL) if kind == 4 else b""
        self.out += heads[kind] * n
        self.word(W.SMALLINT_BASE)
        self.out += tail * n
        self.numbered += n

    def bulk(self) -> None:
        """A container of many like elements: what the memory bound is about, and what would make
        decoding slow if one element cost more than its bytes."""
        s = self.s
        n = s.pick((300, 2000, 8000, 30_000))  # 8000 and more: past the memory floor of 1 MiB
        tag = s.pick((W.TAG_ARRAY, W.TAG_TUPLE, W.TAG_SET, W.TAG_FROZENSET))
        self.word(tag)
        self.length(n)
        self.numbered += 1
        choice = s.below(len(BULK_ELEMENTS) + len(BULK_MAKERS))
        if choice < len(BULK_ELEMENTS):
            self.out += BULK_ELEMENTS[choice] * n
        else:
            self.out += b"".join(map(BULK_MAKERS[choice - len(BULK_ELEMENTS)], range(n)))

    # -- frames -------------------------------------------------------------------------------

    def exchange_id(self, nil_ok: bool) -> None:
        s = self.s
        choice = s.below(24)
        if choice <= 1 and nil_ok:
            self.word(W.TAG_NIL)
        elif choice == 2:
            self.word(W.TAG_UUID)
            self.length(s.pick((15, 17, 0, 0xFFFFFFFF)))
            self.out += s.take(16)
        else:
            self.word(W.TAG_UUID)
            self.length(16)
            self.out += s.pick((HELLO_ID, OTHER_ID, HELLO_ID)) if s.below(4) else s.take(16)

    def message_send(self) -> None:
        s = self.s
        self.word(W.TAG_TETHER)
        self.exchange_id(nil_ok=True)
        if s.chance(4):
            self.value(1)
        else:
            self.word(s.pick((1, 0, 1, 1, 0, 1, 1, 2)))
        self.word(W.TAG_MESSAGE if not s.chance(16) else self.any_word())
        selector = s.pick(SELECTORS)
        self.string((W.TAG_SYMBOL, W.TAG_STRING), selector.encode())
        self.word(W.TAG_ARRAY if not s.chance(16) else self.any_word())
        self.arguments(selector)
        if s.chance(3):
            self.word(W.TAG_KWARGS)
            n = s.below(4)
            self.length(n)
            for _ in range(n):
                self.string((W.TAG_SYMBOL,), s.pick((b"by", b"x", b"__class__", b"", b"\xff")))
                self.value(1)

    def arguments(self, selector: str) -> None:
        s = self.s
        if selector == "release" and s.chance(2):
            pairs = [s.pick((1, 0, 2, 1)) if i % 2 == 0 else s.pick((1, 2, 0, 1000)) for i in range(2 * s.below(3))]
            self.length(1)
            self.word(W.TAG_ARRAY)
            self.length(len(pairs))
            for p in pairs:
                self.word(W.SMALLINT_BASE + p)
            return
        if selector == "hello" and s.chance(2):
            self.length(1)
            self.mapping(1, keys=(b"language", b"tether", b"max_frame_size"))
            return
        if selector == "cancel" and s.chance(2):
            self.length(1)
            self.word(W.TAG_ARRAY)
            n = s.below(3)
            self.length(n)
            for _ in range(n):
                self.word(W.TAG_BYTEARRAY)
                self.length(16)
                self.out += s.pick((OTHER_ID, HELLO_ID)) if s.chance(2) else s.take(16)
            return
        if selector in ("iterate", "next_batch") and s.chance(2):
            self.length(2)
            self.value(1)
            self.word(W.SMALLINT_BASE + s.pick((1, 0, 65536, 0x1FFFFFFF)))
            return
        n = s.below(4)
        self.length(n)
        for _ in range(n):
            self.value(1)

    def frame(self, client: bool) -> None:
        s = self.s
        choice = s.below(16)
        if choice < (7 if client else 10):
            self.message_send()
        elif choice < 13:
            self.word(W.TAG_ANSWER)
            self.exchange_id(nil_ok=False)
            self.value(0)
        elif choice < 15:
            self.word(W.TAG_ERROR_ANSWER)
            self.exchange_id(nil_ok=False)
            self.string(text=s.pick(EXCEPTION_TYPES).encode())
            self.string(text=self.text_bytes())
            if s.chance(8):
                self.sequence(1)
            else:
                self.error_args()
            if s.chance(2):
                self.word(W.TAG_NIL)
            else:
                self.value(1)
        else:
            self.word(W.MY_OBJECT_BASE + s.pick((0, 1, 0xFFFFFFF)) if not s.chance(4) else self.any_word())

    def error_args(self) -> None:
        s = self.s
        self.word(W.TAG_ARRAY)
        n = s.below(4)
        self.length(n)
        for _ in range(n):
            self.value(2)

    # -- mutations ----------------------------------------------------------------------------

    def mutate(self) -> bytes:
        s = self.s
        out = self.out
        for _ in range(s.below(4) if s.chance(2) else 0):
            choice = s.below(7)
            if choice == 0 and out:  # truncated, often at a word boundary
                cut = s.below(len(out))
                del out[cut - cut % 4 if s.chance(2) else cut :]
            elif choice <= 2 and self.lengths:  # a length or count near its boundary
                at = s.pick(self.lengths)
                if at + 4 <= len(out):
                    n = struct.unpack_from(">I", out, at)[0]
                    left = len(out) - at - 4
                    new = s.pick((0, 1, n - 1, n + 1, left, left + 1, left // 4, left // 4 + 1, 0x7FFFFFFF,
                                  0xFFFFFFFF, 1 << 20, (1 << 20) + 1, 0x00FFFFFF))  # fmt: skip
                    struct.pack_into(">I", out, at, new & 0xFFFFFFFF)
            elif choice == 3 and len(out) >= 4:  # a word replaced
                at = s.below(len(out) // 4) * 4
                struct.pack_into(">I", out, at, self.any_word())
            elif choice == 4:  # a word inserted
                at = s.below(len(out) // 4 + 1) * 4
                out[at:at] = _pack(self.any_word())
            elif choice == 5 and len(out) >= 8:  # a word deleted
                at = s.below(len(out) // 4) * 4
                del out[at : at + 4]
            elif out:  # a byte changed
                out[s.below(len(out))] ^= 1 << s.below(8)
        return bytes(out)


def make_input(target: str, choice: bytes) -> bytes:
    """The input a fuzz input stands for (see the module docstring: raw, or structured)."""
    if not choice or choice[0] < 0x40:
        return choice[1:]
    builder = Builder(Source(choice[1:]))
    if target == "value":
        builder.value(0)
    else:
        builder.frame(client=target == "client")
    return builder.mutate()


# ---------------------------------------------------------------------------------------------
# Hand-made inputs: the corpus's first entries (also atheris's seeds)


def _message(receiver: int, selector: bytes, args: bytes, n_args: int, exchange_id: bytes = OTHER_ID) -> bytes:
    return (
        words(W.TAG_TETHER, W.TAG_UUID, 16) + exchange_id + words(receiver, W.TAG_MESSAGE, W.TAG_SYMBOL, len(selector))
        + selector + words(W.TAG_ARRAY, n_args) + args
    )  # fmt: skip


def hand_made_inputs() -> dict[str, bytes]:
    """Named inputs that each test one documented refusal."""
    root_echo = _message(1, b"echo", words(W.SMALLINT_BASE + 7), 1)
    deep = words(W.TAG_TUPLE, 1) * 210 + words(W.SMALLINT_BASE)
    return {
        "truncated message-send": root_echo[:-3],
        "truncated exchange id": words(W.TAG_TETHER, W.TAG_UUID, 16) + OTHER_ID[:5],
        "string length past the end": _message(1, b"echo", words(W.TAG_STRING, 1000) + b"abc", 1),
        "compact string past the end": words(W.COMPACT_STRING + 0xFFFFFF) + b"ab",
        "array nested 210 deep": deep,
        "message-send nested 210 deep": _message(1, b"echo", deep, 1),
        "slices nested 1000 deep": words(W.TAG_SLICE) * 1000 + words(W.TAG_NIL) * 2001,
        "array of 2**32-1 elements": words(W.TAG_ARRAY, 0xFFFFFFFF, W.TAG_NIL),
        "dict of a million pairs": _message(0, b"fetch", words(W.TAG_DICT, 1 << 20), 1),
        "bad UTF-8 in a String": words(W.TAG_STRING, 2) + b"\xc3\x28",
        "bad UTF-8 in a selector": _message(1, b"\xff\xfe", b"", 0),
        "compact object of an unknown class id": _message(1, b"echo", words(W.COMPACT_OBJECT + 77, W.TAG_NIL), 1),
        "compact object in a plain value": words(W.COMPACT_OBJECT + 1, W.TAG_NIL),
        "class info back-reference never defined": words(W.TAG_ANSWER, W.TAG_UUID, 16) + HELLO_ID
        + words(W.TAG_DESCRIBED_REF, W.MY_OBJECT_BASE + 1, W.TAG_CLASS_INFO_REF, 9),
        "back-reference to a set being built": words(W.TAG_SET, 1, W.TAG_BACKREF, 0),
        "unknown frame tag": words(0x2000ABCD, 1, 2),
        "second exposure frame": words(W.MY_OBJECT_BASE),
        "keyword arguments past the end": _message(1, b"take", b"", 0) + words(W.TAG_KWARGS, 1000),
        "hello answer whose language is a remote object": words(W.TAG_ANSWER, W.TAG_UUID, 16) + HELLO_ID
        + words(W.TAG_DICT, 1, W.COMPACT_STRING + 8) + b"language" + words(W.MY_OBJECT_BASE + 5),
        "hello whose language is a remote object": _message(
            0, b"hello", words(W.TAG_DICT, 1, W.COMPACT_STRING + 8) + b"language" + words(W.MY_OBJECT_BASE + 5), 1
        ),
        "a registered class named 100 times": _message(
            1, b"take", words(W.TAG_ARRAY, 100) + (words(W.TAG_NAMED) + _POINT + words(W.TAG_NIL, W.TAG_NIL)) * 100, 1
        ),
        "a registered class named under 100 class ids": _message(1, b"take", words(W.TAG_ARRAY, 100) + b"".join(
            words(W.TAG_OBJECT, W.TAG_CLASS, i) + _POINT + words(W.TAG_NIL, W.TAG_NIL, W.TAG_NIL) for i in range(1, 101)
        ), 1),
        "a set of a million empty tuples": words(W.TAG_SET, 1 << 20) + words(W.TAG_TUPLE, 0) * 1000,
        "one object of a registered class": _message(
            1, b"echo", words(W.TAG_OBJECT, W.TAG_CLASS, 1) + _POINT + words(W.TAG_NIL, W.SMALLINT_BASE + 1, W.TAG_NIL), 1
        ),
    }  # fmt: skip


def seed_corpus() -> list[Path]:
    """Write the hand-made inputs into the corpus (they are kept there, named like any other)."""
    return [save_failure(data) for data in hand_made_inputs().values()]


# ---------------------------------------------------------------------------------------------
# The round-trip property


def same(a: Any, b: Any) -> bool:
    """Equal values of exactly the same types; floats compared by their bits (nan, -0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is slice:
        return same((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if type(a) in (set, frozenset):
        if len(a) != len(b):
            return False
        left = list(b)
        for x in a:
            for i, y in enumerate(left):
                if same(x, y):
                    del left[i]
                    break
            else:
                return False
        return True
    return bool(a == b)


def literal_strategy() -> Any:
    from hypothesis import strategies as st

    text = st.text(st.characters(exclude_categories=()), max_size=20)  # surrogates included
    integers = st.integers() | st.integers(min_value=-(2**600), max_value=2**600) | st.sampled_from(
        [0, 2**29 - 1, 2**29, -1, -(2**31), 2**64, -(2**64) - 1, 2**4000 + 1]
    )
    floats = st.floats(allow_nan=True, allow_infinity=True)
    scalars = (
        st.none() | st.booleans() | integers | floats | st.complex_numbers(allow_nan=True, allow_infinity=True)
        | text | st.binary(max_size=20) | st.uuids()
    )  # fmt: skip
    hashables = st.recursive(
        scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6
    )
    return st.recursive(
        scalars | st.just(Ellipsis),
        lambda inner: st.lists(inner, max_size=4)
        | st.tuples(inner, inner, inner)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
        | st.builds(slice, inner, inner, inner),
        max_leaves=24,
    )


def check_round_trip(value: Any) -> None:
    data = encode_value(value)
    back = decode_value(data)
    assert same(back, value), f"decode_value(encode_value(v)) is {back!r:.300}, not {value!r:.300}"


# ---------------------------------------------------------------------------------------------
# Workers


class InFlight:
    """The input being run, in a file mapped into memory: if the worker dies in the middle of
    one (a crash, a hang in C code), the parent finds it there."""

    SIZE = 64 << 20

    def __init__(self, path: Path | None) -> None:
        self.map: mmap.mmap | None = None
        if path is not None:
            with open(path, "w+b") as f:
                f.truncate(self.SIZE)
                self.map = mmap.mmap(f.fileno(), self.SIZE)

    def set(self, data: bytes) -> None:
        m = self.map
        if m is not None and len(data) <= self.SIZE - 4:
            m[4 : 4 + len(data)] = data
            m[0:4] = _pack(len(data))

    def clear(self) -> None:
        if self.map is not None:
            self.map[0:4] = b"\0\0\0\0"

    @staticmethod
    def read(path: Path) -> bytes | None:
        try:
            with open(path, "rb") as f:
                n = struct.unpack(">I", f.read(4))[0]
                return f.read(n) if n else None
        except (OSError, struct.error):
            return None


class Findings:
    """The failures one worker found, one per signature (a bug found again is only counted)."""

    def __init__(self, unit: str, engine: str) -> None:
        self.unit = unit
        self.engine = engine
        self.found: dict[str, str] = {}  # signature -> the corpus file of its first input
        self.again: Counter[str] = Counter()

    def add(self, failure: FuzzFailure, from_corpus: Path | None = None) -> bool:
        """Keep and report ``failure`` if its signature is new; return whether it was."""
        signature = failure.signature
        if signature in self.found:
            self.again[signature] += 1
            return False
        path = from_corpus or save_failure(failure.data)
        self.found[signature] = str(path.relative_to(ROOT))
        how = "a corpus input still fails" if from_corpus else "new failure"
        print(f"\nFAILURE ({how}) in {self.unit} ({self.engine}): {self.found[signature]}\n{failure.report()}\n",
              flush=True)  # fmt: skip
        return True

    def replay_corpus(self, checker: Checker) -> list[Path]:
        """Run the corpus first: inputs that still fail are reported (and their bugs are not
        reported again). Returns the inputs that pass."""
        passed = []
        _Watch.factor = 2  # an input that failed before need not run long to fail again
        for path in sorted(CORPUS.glob("*.bin")) if CORPUS.is_dir() else ():
            try:
                checker.check(self.unit, path.read_bytes(), measure=True)
                passed.append(path)
            except FuzzFailure as failure:
                self.add(failure, from_corpus=path)
        if not self.found:
            _Watch.factor = WATCHDOG_FACTOR
        checker.stats = Stats()
        return passed

    def result_line(self, seconds: float, stats: Stats) -> str:
        return "FUZZ-RESULT " + json.dumps(
            {
                "unit": self.unit, "engine": self.engine, "seconds": round(seconds, 2), "inputs": stats.inputs,
                "per_second": round(stats.inputs / seconds, 1) if seconds > 0 else 0, "measured": stats.measured,
                "max_seconds": round(stats.max_seconds, 4), "max_memory_ratio": round(stats.max_memory_ratio, 3),
                "outcomes": dict(stats.outcomes.most_common(12)),
                "failures": [
                    {"signature": sig, "input": path, "seen_again": self.again[sig]} for sig, path in self.found.items()
                ],
            }
        )


def hypothesis_worker(unit: str, seconds: float, seed: int, inflight: InFlight) -> int:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    started = time.monotonic()
    deadline = started + seconds
    checker = Checker()
    findings = Findings(unit, "hypothesis")
    config = settings(
        max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False,
    )  # fmt: skip
    shrinking: list[FuzzFailure] = []  # the failure being shrunk (kept at once, in case shrinking never ends)

    if unit == "roundtrip":

        @config
        @given(literal_strategy())
        def run(value: Any) -> None:
            if time.monotonic() < deadline or shrinking:
                checker.stats.inputs += 1
                try:
                    check_round_trip(value)
                except Exception as exc:
                    failure = FuzzFailure("roundtrip", _encoded(value), f"{type(exc).__name__}: {exc}",
                                          f"value: {value!r:.2000}\n{traceback.format_exc()}", type(exc).__name__)  # fmt: skip
                    if not shrinking:
                        shrinking.append(failure)
                    raise failure from None

    else:
        findings.replay_corpus(checker)

        @config
        @given(st.binary(min_size=1, max_size=2048))
        def run(choice: bytes) -> None:
            if time.monotonic() >= deadline and not shrinking:
                return
            faulthandler.dump_traceback_later(120, exit=True)  # a hang in C code
            data = make_input(unit, choice)
            inflight.set(data)
            try:
                checker.check(unit, data)
            except FuzzFailure as failure:
                if failure.signature in findings.found:
                    findings.again[failure.signature] += 1
                    return
                if failure.where.startswith(("memory", "slow")):
                    findings.add(failure)  # not shrunk: each try would take seconds
                    return
                if not shrinking:
                    shrinking.append(failure)
                    save_failure(failure.data)
                raise

    faulthandler.enable()
    fuzz_started = time.monotonic()
    round_ = 0
    while time.monotonic() < deadline:
        try:
            hypothesis_seed(seed * 1000 + round_)(run)()
        except FuzzFailure as failure:  # shrunk
            first = shrinking.pop()
            if first.data != failure.data and first.signature != failure.signature:
                findings.add(first)
            elif first.data != failure.data:
                (CORPUS / (hashlib.sha256(first.data).hexdigest()[:16] + ".bin")).unlink(missing_ok=True)
            findings.add(failure)
        except Exception as exc:  # hypothesis's own (a flaky failure): the first input is what we have
            print(f"hypothesis stopped a round: {type(exc).__name__}: {exc}", flush=True)
            if shrinking:
                findings.add(shrinking.pop())
        finally:
            faulthandler.cancel_dump_traceback_later()
            inflight.clear()
        round_ += 1
    print(findings.result_line(time.monotonic() - fuzz_started, checker.stats), flush=True)
    return 1 if findings.found else 0


def _encoded(value: Any) -> bytes:
    try:
        return encode_value(value)
    except Exception:
        return repr(value).encode("utf-8", "backslashreplace")


def _escaped(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


def _instrument() -> Callable[[], contextlib.AbstractContextManager[None]]:
    """Coverage instrumentation of tether's functions and of this generator's (coverage of both
    guides the fuzzer; atheris.instrument_all() would take a minute over every module loaded).
    Returns a context manager in which the functions run their original code."""
    from atheris import instrument_bytecode  # type: ignore[import-not-found]

    modules = {"tether", MODULE, __name__}
    swaps: list[tuple[types.FunctionType, types.CodeType, types.CodeType]] = []
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and str(obj.__module__).split(".")[0] in modules:
            original = obj.__code__
            try:
                obj.__code__ = instrument_bytecode.patch_code(original, INSTRUMENT_DATAFLOW, True)
            except Exception as exc:  # a function atheris cannot patch: left as it is
                print(f"not instrumented: {obj.__qualname__}: {exc}", file=sys.stderr)
                continue
            swaps.append((obj, original, obj.__code__))

    @contextlib.contextmanager
    def plain() -> Iterator[None]:
        for func, original, _ in swaps:
            func.__code__ = original
        try:
            yield
        finally:
            for func, _, patched in swaps:
                func.__code__ = patched

    return plain


def atheris_worker(unit: str, seconds: float, seed: int, inflight: InFlight, workdir: Path) -> int:
    import atheris  # type: ignore[import-not-found]

    checker = Checker()
    findings = Findings(unit, "atheris")
    deadline = time.monotonic() + seconds
    passed = findings.replay_corpus(checker)
    checker.plain = _instrument()
    started = time.monotonic()

    def one(choice: bytes) -> None:
        faulthandler.dump_traceback_later(120, exit=True)  # a hang in C code
        data = make_input(unit, choice)
        inflight.set(data)
        try:
            checker.check(unit, data)
        except FuzzFailure as failure:
            findings.add(failure)
        if time.monotonic() >= deadline:
            inflight.clear()
            print(findings.result_line(time.monotonic() - started, checker.stats), flush=True)
            os._exit(1 if findings.found else 0)

    seeds = workdir / f"seeds-{unit}"
    seeds.mkdir(parents=True, exist_ok=True)
    for path in passed:
        (seeds / path.name).write_bytes(b"\0" + path.read_bytes())
    for i in range(64):  # structured seeds: the generator's choices from a few fixed byte strings
        (seeds / f"gen-{i}").write_bytes(bytes([0x40 + i]) + hashlib.sha256(bytes([i, seed & 0xFF])).digest() * 8)
    dictionary = workdir / "words.dict"
    dictionary.write_text("".join(f'w{i}="{_escaped(_pack(w))}"\n' for i, w in enumerate(INTERESTING_WORDS)))
    work = workdir / f"corpus-{unit}"
    work.mkdir(parents=True, exist_ok=True)
    args = [
        sys.argv[0], f"-seed={seed}", "-timeout=120", "-rss_limit_mb=4096",
        "-max_len=8192", f"-dict={dictionary}", f"-artifact_prefix={workdir}/", "-print_final_stats=0",
        str(work), str(seeds),
    ]  # fmt: skip
    faulthandler.enable()
    atheris.Setup(args, one)
    atheris.Fuzz()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent: share the time among worker processes, collect their results


WEIGHTS = {"server": 0.35, "client": 0.25, "value": 0.25, "roundtrip": 0.15}


def plan(seconds: float, jobs: int) -> list[list[tuple[str, float]]]:
    """Lanes of (unit, seconds), one lane per process at a time, each lane about ``seconds``."""
    lanes: list[list[str]] = [[] for _ in range(max(1, min(jobs, len(WEIGHTS))))]
    load = [0.0] * len(lanes)
    for unit in sorted(WEIGHTS, key=lambda u: -WEIGHTS[u]):
        i = load.index(min(load))
        lanes[i].append(unit)
        load[i] += WEIGHTS[unit]
    return [[(u, seconds * WEIGHTS[u] / load[i]) for u in lane] for i, lane in enumerate(lanes)]


def have_atheris() -> bool:
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def run_unit(unit: str, seconds: float, seed: int, engine: str, workdir: Path) -> dict[str, Any]:
    inflight = workdir / f"inflight-{unit}"
    log = workdir / f"log-{unit}.txt"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", unit, "--seconds", f"{seconds:.1f}",
        "--seed", str(seed), "--engine", engine, "--workdir", str(workdir),
    ]  # fmt: skip
    with open(log, "wb") as out:
        try:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 300, cwd=ROOT)
            returncode: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            returncode = "killed after its time and 300 s more"
    text = log.read_text(errors="replace")
    result: dict[str, Any] = {"unit": unit, "engine": engine, "returncode": returncode, "log": text, "failures": []}
    for line in text.splitlines():
        if line.startswith("FUZZ-RESULT "):
            result.update(json.loads(line[len("FUZZ-RESULT ") :]))
    failures: list[dict[str, Any]] = result["failures"]
    if returncode != 0 and not failures:
        data = InFlight.read(inflight)
        saved = str(save_failure(data).relative_to(ROOT)) if data is not None else "(none)"
        failures.append({"signature": f"{unit}: the worker ended with {returncode}", "input": saved, "seen_again": 0})
    for artifact in sorted(workdir.iterdir()):  # what libFuzzer kept of a crash, timeout or leak
        if artifact.name.startswith(("crash-", "timeout-", "oom-", "leak-", "slow-unit-")):
            saved = str(save_failure(make_input(unit, artifact.read_bytes())).relative_to(ROOT))
            kind = artifact.name.split("-")[0]
            failures.append({"signature": f"{unit}: libFuzzer {kind}", "input": saved, "seen_again": 0})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="wall-clock time of the whole run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes at once")
    parser.add_argument("--seed-corpus", action="store_true", help="write the hand-made inputs into the corpus")
    parser.add_argument("--worker", choices=(*TARGET_NAMES, "roundtrip"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.seed_corpus:
        for path in seed_corpus():
            print(path.relative_to(ROOT))
        return 0
    if args.worker:  # one unit, in this process
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tether-fuzz-"))
        inflight = InFlight(workdir / f"inflight-{args.worker}")
        if args.engine == "atheris" and args.worker != "roundtrip":
            return atheris_worker(args.worker, args.seconds, args.seed, inflight, workdir)
        return hypothesis_worker(args.worker, args.seconds, args.seed, inflight)

    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "hypothesis"
    elif engine == "atheris" and not have_atheris():
        parser.error("atheris is not installed (pip install atheris)")
    lanes = plan(args.seconds, args.jobs)
    print(
        f"fuzzing for {args.seconds:g} s with {engine} (seed {args.seed}) in {len(lanes)} processes: "
        + "; ".join(" then ".join(f"{u} {s:.0f} s" for u, s in lane) for lane in lanes),
        flush=True,
    )
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tether-fuzz-") as tmp:

        def lane_runner(lane: list[tuple[str, float]]) -> None:
            for unit, seconds in lane:
                unit_engine = "hypothesis" if unit == "roundtrip" else engine
                unit_dir = Path(tmp) / unit
                unit_dir.mkdir()
                results.append(run_unit(unit, seconds, args.seed, unit_engine, unit_dir))

        threads = [threading.Thread(target=lane_runner, args=(lane,)) for lane in lanes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    results.sort(key=lambda r: list(WEIGHTS).index(r["unit"]))
    print(f"\nfuzzed for {time.monotonic() - started:.0f} s\n")
    print(f"{'unit':9} {'engine':10} {'seconds':>7} {'inputs':>9} {'inputs/s':>8} {'measured':>8} "
          f"{'max s':>6} {'max mem':>7}  outcomes")  # fmt: skip
    for r in results:
        outcomes = ", ".join(f"{k} {v}" for k, v in (r.get("outcomes") or {}).items())
        print(
            f"{r['unit']:9} {r['engine']:10} {r.get('seconds', 0):7.1f} {r.get('inputs', 0):9d} "
            f"{r.get('per_second', 0):8.0f} {r.get('measured', 0):8d} {r.get('max_seconds', 0):6.3f} "
            f"{r.get('max_memory_ratio', 0):7.3f}  {outcomes}"
        )
    print("(measured: inputs whose tracemalloc peak was checked; max mem: the largest peak / its bound)")
    failures = [f for r in results for f in r["failures"]]
    if not failures:
        print("\nno failures")
        return 0
    print(f"\n{len(failures)} failure(s), one per bug signature; each input is in {CORPUS.relative_to(ROOT)}/ "
          "and tests/fuzz/test_fuzz.py replays it:")  # fmt: skip
    for f in failures:
        again = f" (seen {f['seen_again']} more times)" if f.get("seen_again") else ""
        print(f"  {f['signature']}: {f['input']}{again}")
    for r in results:
        if r["failures"]:
            reports = [block for block in r["log"].split("\nFAILURE ")[1:]]
            print(f"\n=== {r['unit']}: the reports of its worker")
            for block in reports:
                print("FAILURE " + block.split("\nFUZZ-RESULT ")[0][:6000])
            if not reports:
                print("\n".join(r["log"].splitlines()[-60:]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
