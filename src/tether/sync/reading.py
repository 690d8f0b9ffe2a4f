"""How a sync connection (``tether.sync.transport.Connection``) is read: leader/followers.

Reading the socket, feeding websockets' protocol and handing each message to ``on_message``
(the session) is one thread's at a time: the holder of the read lock. Two kinds of thread read:

- **Watchers** (followers): threads that only wait for the socket to be readable: the
  connection's own thread at first, then workers of the pool. The one woken reads what came
  and hands it on; when the session asks it to run a message itself (:meth:`Reading.run_here`,
  a message that would go to a worker), it stops watching and runs it right after the read,
  on the thread that read it, while another watcher waits on: one already waiting (up to two
  do), or an idle worker handed the watching at once (else the message goes to a worker, as
  before). After the message it watches again, unless two others already do.
- **A caller waiting for an answer** (:meth:`Reading.read_here`, from ``tether.waiter``):
  when no other thread reads, it takes the read lock and waits for the socket itself, so its
  answer (or a message sent on behalf of its call) is read on its own thread, with no
  hand-off; it reads until then, handing on what else comes, and lets go.

With epoll (Linux) the watchers wait on one epoll with a one-shot registration: an arrival
wakes one of them, and nobody else until the reader re-arms it. A reading caller disarms it
and waits on a poll of its own, so what arrives while it waits wakes it alone: the watchers
sleep through a call's round trip (they woke for about half the calls when the caller waited
on the same epoll). Elsewhere each waiting thread polls, and all of them wake.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from websockets.protocol import Protocol, State

from ..limits import HELD_READING_LOOK
from ..workers import worker_pool

__all__ = ["Reading"]

log = logging.getLogger("tether")

_OPEN: Final = State.OPEN
_DONTWAIT: Final[int] = getattr(socket, "MSG_DONTWAIT", 0)  # (without it, a read follows a poll)
_Socket = socket.socket
# How long a caller waits for a watcher's read to end before it leaves the reading to others (a
# watcher holds the read lock only while it reads what came, or gives way to a reading caller).
_BRIEF: Final = 0.02
# How long a reading caller waits for the socket before it looks at its waiter again. (_LOOK
# and _SPARE_FOR are not Final, which mypyc would compile in: tests change them.)
_LOOK = 0.05
# How long a worker watches without being woken, while another thread watches too, before it
# goes back to the pool (a connection that is used keeps two watchers; an idle one, its own).
_SPARE_FOR = 30.0


def _left() -> None:
    """What :meth:`Reading._watch_on` returns when a spare watcher leaves."""


_LEFT: Final = _left


class _Readiness:
    """Waits for a socket to have something to read (or to end). With epoll (Linux), threads
    may wait at once (the watchers): an arrival wakes one of them, and no other until
    :meth:`rearm`; the holder of the read lock waits alone (:meth:`wait_alone`). Elsewhere
    each waits on a poll of its own, and all wake."""

    def __init__(self, sock: _Socket) -> None:
        self._fd = sock.fileno()
        self._epoll: Any = None
        self._alone: Any = None  # the reading caller's own poll (wait_alone)
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            self._epoll.register(self._fd, _ONE_READ)
            self._alone = select.poll()
            self._alone.register(self._fd, select.POLLIN)

    def wait(self, timeout: float | None) -> bool:
        """Wait at most ``timeout`` seconds (None: no limit); True: something came, and this
        thread reads it (under the read lock), then calls :meth:`rearm`."""
        if self._epoll is not None:
            return bool(self._epoll.poll(-1 if timeout is None else timeout, 1))
        if not hasattr(select, "poll"):
            return bool(select.select([self._fd], [], [], timeout)[0])
        poll = select.poll()
        poll.register(self._fd, select.POLLIN)
        return bool(poll.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))

    def wait_alone(self, timeout: float) -> bool:
        """As :meth:`wait`, for the holder of the read lock, with the watchers' registration
        disarmed: what arrives meanwhile wakes this thread only (with epoll; elsewhere
        :meth:`wait`). If nothing came, the registration is armed again; if something did,
        this thread reads it and calls :meth:`rearm`, as after any read."""
        if self._epoll is None:
            return self.wait(timeout)
        self._epoll.modify(self._fd, _DISARMED)
        came = False
        try:
            came = bool(self._alone.poll(max(0, int(timeout * 1000 + 0.999))))
        finally:
            if not came:
                self.rearm()
        return came

    def rearm(self) -> None:
        """Let the next arrival wake a waiting thread (after a read, under the read lock)."""
        if self._epoll is not None:
            self._epoll.modify(self._fd, _ONE_READ)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


_ONE_READ: Final[int] = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLONESHOT", 0)
_DISARMED: Final[int] = getattr(select, "EPOLLONESHOT", 0)  # (only the end of the stream wakes a watcher)


class Reading:
    """The reading half of a connection (see the module docstring): a base class of
    ``tether.sync.transport.Connection``, which supplies what is declared here."""

    socket: _Socket
    protocol: Protocol
    remote_address: Any
    _lock: threading.Lock  # the protocol and the TLS object
    _frames: Any  # tether.framing.FastFrames: what is received goes through it
    _tls: Any
    _view: memoryview
    _handshake_events: list[Any]
    _receiver: int | None
    _tick: float | None
    _failure: BaseException | None
    _done: threading.Event  # set once the socket is closed and on_closed called

    def _process(self, events: Sequence[Any]) -> None:
        raise NotImplementedError

    def _has_output(self) -> bool:
        raise NotImplementedError

    def _write_pending(self) -> None:
        raise NotImplementedError

    def _abort(self, failure: BaseException | None = None) -> None:
        raise NotImplementedError

    def _on_silence(self) -> bool:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _init_reading(self, sock: _Socket) -> None:
        # Reading (receiving and handing on what came) is one thread's at a time: the read
        # lock's (see the module docstring).
        self._read_lock = threading.Lock()
        self._ready = _Readiness(sock)
        self._watch_lock = threading.Lock()
        self._watchers = 0  # threads in _watch (followers), or handed the watching
        self._watcher_reads = False  # the watcher holds the read lock (briefly)
        self._keeper: int | None = None  # the watcher, while it reads and may keep a job
        self._kept: Callable[[], None] | None = None  # the job it kept (run_here)
        self._over = False  # the stream ended: nobody reads it any more
        self._wanting: list[Callable[[], None]] = []  # wakes of callers that found it read
        self._received_at = time.monotonic()
        self._looked_at = self._received_at  # when a watcher last looked at the time
        # Set by the session: whether to read nothing from the peer for now (truthy: it holds
        # more unsent bytes for the peer than it may, and waits for none of its answers).
        self.hold_reading: Callable[[], object] | None = None

    def start(self) -> None:
        """Watch the connection from a thread of its own (a daemon, like websockets'); see
        :meth:`_watch`."""
        thread = threading.Thread(target=self._watch_first, name="tether-receiver", daemon=True)
        thread.start()

    def run(self) -> None:
        """Watch the connection from the calling thread (see :meth:`_watch`) and return when it
        has ended: the socket is closed and ``on_closed`` was called."""
        self._watch_first()
        self._done.wait()

    def _watch_first(self) -> None:
        """Hand on what came with the opening handshake, then watch (:meth:`_follow`)."""
        with self._read_lock:
            self._receiver = threading.get_ident()
            events, self._handshake_events = self._handshake_events, []
            try:
                self._process(self._frames.messages(events))
                if self._has_output():
                    self._write_pending()
            except Exception as exc:
                self._fail(exc)
            finally:
                self._receiver = None
        with self._watch_lock:
            self._watchers += 1
        self._follow(None)

    def _lead(self) -> None:
        """A worker handed the watching (counted in ``_watchers`` already): watch."""
        self._follow(worker_pool())

    def _follow(self, pool: Any) -> None:
        """Watch; run each message this thread keeps, then watch again while fewer than two
        threads watch (a worker counts as blocked while it watches)."""
        while True:
            if pool is None:
                job = self._watch(False)
            else:
                counted = pool.block()  # (not blocked(): this runs once per message)
                try:
                    job = self._watch(True)
                finally:
                    if counted:
                        pool.unblock()
            if job is None:
                return
            try:
                job()
            except BaseException:  # jobs answer their own errors; a stray one must not stop us
                pass
            job = None
            with self._watch_lock:
                if self._over or self._watchers >= 2:
                    return
                self._watchers += 1

    def _watch(self, spare: bool) -> Callable[[], None] | None:
        """Be one of the connection's watchers (its followers: they wait for the socket to be
        readable; with epoll, an arrival wakes the last one that began waiting). The one woken
        reads (:meth:`_read`) unless a caller does; it keeps the line alive when it is silent.
        Returns the job it kept (:meth:`run_here`), for the caller to run; or None once the
        connection has ended (the last watcher to leave closes it: :meth:`_finish`), or once
        this worker (``spare``) went unwoken for ``_SPARE_FOR`` seconds while another watched."""
        try:
            job = self._watch_on(spare)
        except BaseException as exc:  # a bug: drop the connection (the last watcher closes it)
            if isinstance(exc, Exception):
                self._fail(exc)
            self._over = True
            self._abort()
            job = None
        if job is _LEFT:
            return None
        if job is not None:  # (no longer counted as a watcher: see run_here)
            return job
        with contextlib.suppress(OSError, ValueError):
            self._ready.rearm()  # the next watcher wakes and sees the end too
        with self._watch_lock:
            self._watchers -= 1
            last = self._watchers == 0
        if last:
            self._finish()
        return None

    def _watch_on(self, spare: bool) -> Callable[[], None] | None:
        lock, ready, ident = self._read_lock, self._ready, threading.get_ident()
        idle_since = time.monotonic()
        while not self._over:
            tick = self._tick
            hold = self.hold_reading
            if hold is not None and hold():
                self._held(tick)
                continue
            wait = tick if not spare else _SPARE_FOR if tick is None else min(tick, _SPARE_FOR)
            if not ready.wait(wait):
                self._look_at_the_time()
                if spare and time.monotonic() - idle_since >= _SPARE_FOR:
                    with self._watch_lock:
                        if self._watchers >= 2 and not self._over:
                            self._watchers -= 1
                            return _LEFT  # back to the pool: one watcher is enough when idle
                continue
            idle_since = time.monotonic()
            self._watcher_reads = True  # (a caller that finds the read lock taken waits a little)
            if not lock.acquire(False):  # a reader waits for it: let it have it, look again after
                ready.rearm()
                got = lock.acquire(timeout=-1 if tick is None else tick)
                if got:
                    lock.release()
                    self._nudge()
                self._watcher_reads = False
                if not got:
                    self._look_at_the_time()
                continue
            self._receiver = self._keeper = ident
            alive = False
            try:
                alive = self._read_guarded() if not self._over else False
            finally:
                self._receiver = self._keeper = None
                self._watcher_reads = False
                job, self._kept = self._kept, None
                try:
                    self._rearm(alive)
                finally:
                    lock.release()
                    self._nudge()
            if job is not None:
                return job
        return None

    def _held(self, tick: float | None) -> None:
        """The session holds the reading (a peer that does not read its answers): read nothing
        for a moment, and keep the time as a watcher does (keepalive: such a peer answers no
        ping either, and is dropped; closing)."""
        time.sleep(HELD_READING_LOOK)
        if tick is not None and time.monotonic() - self._looked_at >= tick:
            self._look_at_the_time()

    def _look_at_the_time(self) -> None:
        """A watcher waited ``_tick`` seconds: keepalive and closing (one watcher at a time)."""
        self._looked_at = time.monotonic()
        with self._watch_lock:
            if not self._over and not self._on_silence():
                self._over = True

    def _rearm(self, alive: bool) -> None:
        """After a read (under the read lock): an end seen here ends the watching (the socket
        is shut down: every waiting thread wakes and sees it); the next arrival may wake a
        thread."""
        if not alive and not self._over:
            self._over = True
            self._abort()
        self._ready.rearm()

    def run_here(self, fn: Callable[..., None], *args: Any) -> bool:
        """From ``on_message``: keep ``fn(*args)`` to run on this thread, right after what it
        read is handed on, if this thread is a watcher that keeps nothing yet and another
        thread watches meanwhile (one already waiting, or an idle worker handed the watching
        now). False: run it elsewhere (a worker)."""
        if self._keeper != threading.get_ident():
            return False
        with self._watch_lock:
            if self._watchers < 2 and not worker_pool().hand_off(self._lead):
                return False
            if self._watchers >= 2:
                self._watchers -= 1  # this one leaves; a worker handed it takes its place
        self._keeper = None
        self._kept = functools.partial(fn, *args)
        return True

    def read_here(
        self, timeout: float | None, stop: Callable[[], bool], wake: Callable[[], None] | None = None
    ) -> bool:
        """Read the connection on this thread, if no other thread reads it (only watches it):
        wait at most ``timeout`` seconds (None: no limit) for data, receive it and hand its
        messages on (``on_message``, here). Returns True after that one read (or none in time,
        or at once when ``stop()`` is true): the caller looks at what changed and calls again;
        False when another thread reads or the connection has ended: the caller waits for
        what it needs to be handed over, or for ``wake()``: the reading thread lets go, the
        caller may call again."""
        lock = self._read_lock
        if not lock.acquire(False) and (
            not self._watcher_reads
            or not lock.acquire(timeout=_BRIEF if timeout is None else min(timeout, _BRIEF))
        ):
            if wake is None:
                return False
            self._wanting.append(wake)  # (then look again: the reader may have let go meanwhile)
            if not lock.acquire(False):
                return False
        try:
            self._receiver = threading.get_ident()
            if self._over:
                return False
            if stop():
                return True
            # At most _LOOK seconds at a time: the answer may also come another way (a held frame
            # read on by the thread that resolved its handoff, tether.held), and stop() says so.
            # The watchers sleep meanwhile: what comes now is this thread's to read.
            if self._ready.wait_alone(_LOOK if timeout is None else min(timeout, _LOOK)):
                alive = False
                try:
                    alive = self._read_guarded()
                except BaseException as exc:  # KeyboardInterrupt in the caller's thread, mid-read:
                    # what it had not handed on yet is lost, so the connection cannot go on: end
                    # it (every waiting caller is told), then let the interrupt through.
                    self._abort(ConnectionError(f"the reading thread was interrupted ({type(exc).__name__})"))
                    raise
                finally:
                    self._rearm(alive)  # (the lock is released below even if this fails)
        finally:
            self._receiver = None
            lock.release()
            self._nudge()
        return True

    def _nudge(self) -> None:
        """The read lock was let go: wake a caller that found it taken (it may read now)."""
        if self._wanting:
            with contextlib.suppress(IndexError):
                self._wanting.pop(0)()

    def _read_guarded(self) -> bool:
        try:
            return self._read()
        except Exception as exc:  # a bug, or an on_message that raised: drop the connection
            self._fail(exc)
            return False

    def _fail(self, exc: Exception) -> None:
        log.exception("the connection to %s failed", self.remote_address)
        with self._lock:
            if self.protocol.state is _OPEN:
                self.protocol.fail(1011)
        self._write_pending()
        self._abort(exc)

    def _read(self) -> bool:
        """Under the read lock: receive what the socket holds (never waiting for more), feed
        the protocol, write what it answers by itself, hand the messages on. False: the
        connection ended."""
        view = self._view
        if not _DONTWAIT and not self._ready.wait(0):  # another reader took it first
            return True
        try:
            n = self.socket.recv_into(view, 0, _DONTWAIT)
        except (BlockingIOError, InterruptedError):  # another reader took it first
            return True
        except OSError as exc:
            self._abort(exc)
            return False
        if not n:
            return False
        self._received_at = time.monotonic()
        protocol, tls = self.protocol, self._tls
        ended = False
        frames = self._frames
        with self._lock:
            if tls is None:
                events = frames.receive(bytes(view[:n]))  # (bytes of the size received: see _buffer)
            else:
                try:
                    data, ended = tls.decrypt(view[:n])
                except ssl.SSLError as exc:  # a broken TLS stream: the connection is over
                    self._failure = self._failure or exc
                    return False
                events = frames.receive(data) if data else []
        if protocol.writes or (tls is not None and tls.outgoing.pending):
            self._write_pending()
        if events:
            self._process(events)
        return not ended
