"""The sans-I/O state machine of one Tether connection: bytes in, events and bytes out.

A :class:`Protocol` knows frames, the codec and the connection's reference tables
(``protocol.references``), and nothing about sockets, threads or event loops. A runtime
(``tether.sync.session`` for threads, ``tether.aio.session`` for asyncio,
``tether.browser.session`` in a page; each through ``tether.session.BaseSession``) drives it:

* feeds it every received frame with :meth:`Protocol.receive` and acts on the events it returns;
* queues what it has to say with :meth:`~Protocol.queue_call`, :meth:`~Protocol.queue_answer`,
  :meth:`~Protocol.queue_error`, :meth:`~Protocol.queue_releases` (and, for an incoming message
  it runs, :meth:`~Protocol.start` then :meth:`~Protocol.finish` or :meth:`~Protocol.fail`);
* sends, in order, the frames :meth:`Protocol.data_to_send` hands back.

**Wire order is the protocol's.** Every frame, whoever makes it, is encoded and put in one
outbox under the protocol's lock, in one step; ``data_to_send`` drains the outbox in that order.
A frame may define a class info that later frames refer to, so a runtime must send the drained
frames in the order given, and must not let two drains overtake each other (hold a send lock
around drain-and-send, or drain on one thread only). Any thread may queue.

:meth:`receive` must be called from one reader at a time, in frame order. :attr:`Protocol.state`
says where the conversation is (:class:`State`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._version import __version__
from .codec import Decoder
from .dispatch import AccessPolicy, perform, smalltalk_selector
from .errors import ErrorsSent, error_parts, make_exception, register_runtime_file
from .events import (
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    AnswerReceived,
    ErrorReceived,
    Event,
    HandoffNeeded,
    Incoming,
    Observer,
    Opened,
    State,
    Violation,
)
from .exceptions import AccessDenied, DecodeError, EncodeError, FrameTooLarge, ProtocolError
from .exposure import TETHER_KEY, ExportTable, ImportTable
from .frames import (
    Answer,
    AnswerOf,
    ErrorAnswer,
    Exposure,
    FrameBodyError,
    MessageSend,
    answer_bytes,
    error_answer_bytes,
    exposure_bytes,
    message_send_bytes,
    new_id_source,
    parse_frame,
)
from .gifts import VAT, Handoff, Vat
from .held import ANSWER_TAG_BYTES as _ANSWER_TAG_BYTES
from .held import ERROR_TAG_BYTES as _ERROR_TAG_BYTES
from .held import TETHER_TAG_BYTES as _TETHER_TAG_BYTES
from .held import HeldFrames
from .hello import apply_hello, hello_info
from .hooks import NeedClasses
from .hooks import reading as _reading
from .limits import Limits
from .references import References
from .tether_object import TetherObject
from .words import (
    DEFAULT_MAX_DEPTH,
    MY_OBJECT_BASE,
    TAG_UUID,
    ClassInfo,
    pack_word,
)

__all__ = [
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "DEFAULT_MAX_FRAME_SIZE",
    "VERSION",
    "AnswerReceived",
    "ErrorReceived",
    "Event",
    "HandoffNeeded",
    "Incoming",
    "Observer",
    "Opened",
    "Protocol",
    "State",
    "Violation",
]

VERSION = __version__  # what hello says


log = logging.getLogger("tether")
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

class Protocol:
    """One connection's protocol state. See the module docstring for how a runtime drives it.

    ``root`` is the object answered to the peer's ``root`` message. ``proxy_factory(key, info)``
    makes a proxy for the peer's object ``key``. ``policy`` decides what the peer may reach.
    """

    def __init__(
        self,
        *,
        root: object = None,
        client: bool,
        proxy_factory: Callable[[int, ClassInfo | None], Any],
        policy: AccessPolicy | None = None,
        send_tracebacks: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        marker_base: int | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        accept_code: bool = False,
        passing: dict[type, str] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.root = root
        self.client = client
        self.state = State.CONNECTING
        self.limits = limits or Limits()
        self.policy = policy or AccessPolicy()
        self.send_tracebacks = send_tracebacks
        self.max_frame_size = max_frame_size
        # The "my object" base read and written on this connection: given, or taken from the
        # peer's first exposure frame when that is unambiguous (docs/protocol.md 2.5).
        self.marker_base = MY_OBJECT_BASE if marker_base is None else marker_base
        self._detect_base = marker_base is None
        self.max_depth = max_depth
        self.tether = TetherObject(self)
        self.releases: deque[tuple[int, int]] = deque()
        self.dropped_answers: deque[bytes] = deque()  # kept answers of ours the peer may forget
        self.references = refs = References(
            owner=self,
            tether=self.tether,
            policy=self.policy,
            limits=self.limits,
            accept_code=accept_code,
            proxy_factory=proxy_factory,
            release=self._queue_release,
            max_depth=max_depth,
            passing=passing,
        )
        refs.marker_base = self.marker_base
        self.exports: ExportTable = refs.exports
        self.imports: ImportTable = refs.imports
        self._lock = threading.Lock()  # encoding a frame and putting it in the outbox: one step
        self._encoding_thread: int | None = None
        self._outbox: deque[bytes] = deque()
        self.queued_bytes = 0  # the bytes of the frames in the outbox (what data_to_send takes)
        self.held = HeldFrames(self)  # frames waiting for classes or handoffs, in order
        # Three-party handoff (tether.gifts, docs/protocol.md 5.5): this process's vat, the URL
        # this side listens on (when it says so), whether it writes handoff descriptors to a
        # peer that takes them, and its secret for this connection when it takes them itself.
        self.vat: Vat = VAT
        self.advertise: str | None = None
        self.writes_handoffs = True
        self.handoff_secret: bytes | None = None
        self.on_deposits: Callable[[list[tuple[Any, bytes, object, bytes]]], None] | None = None
        self.on_hello: Callable[[], None] | None = None
        self.next_id = new_id_source()
        self.errors_sent = ErrorsSent(self.next_id)  # the identity of exceptions across it (4.3)
        self._id_prefix = self.next_id()[:8]  # every id this side makes starts so
        self.peer_tether_key: int | None = None
        self._hello_id: bytes | None = None
        self.peer_info: dict[str, Any] = {}
        # The largest frame the peer accepts, as its hello announced (None: not announced);
        # read once from the hello, checked against every frame sent.
        self.peer_max_frame_size: int | None = None
        # Whether the peer reads a message's "on behalf of" word (its hello says nesting: true).
        self.peer_reads_nesting = False
        self.on_release_queued: Callable[[], None] | None = None
        self.on_cancel: Callable[[list[bytes]], None] | None = None  # the runtime cancels handlers
        self.on_drop_answers: Callable[[list[bytes]], None] | None = None  # ... forgets kept answers
        self.observer: Observer | None = None  # a tracer, told of what is sent and received
        # Whether an answer to this exchange id is awaited (the runtime's pending calls); an
        # answer or error to any other id is dropped unread, so it creates no proxies.
        self.expects: Callable[[bytes], bool] | None = None
        self.answers_dropped = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_received = 0
        self.bytes_received = 0

    @property
    def peer_is_python(self) -> bool:
        """Whether the peer said (in hello) that it is a Python Tether: then references carry
        class info and the encoder uses the compact forms."""
        return self.references.peer_is_python

    @property
    def encoder(self) -> Any:
        """The connection's encoder (for tools that measure what a value costs on the wire)."""
        return self.references.encoder

    # -- the outbox -------------------------------------------------------------------------

    def _queue(self, make: Callable[..., bytes | None], *args: Any) -> None:
        """Encode a frame with ``make(*args)`` and put it in the outbox, in one step."""
        me = threading.get_ident()
        if self._encoding_thread == me:
            raise EncodeError(
                "encoding a frame would send another message on this connection (a proxy used "
                "while a value is written, e.g. in __reduce__ or __getstate__); write plain state"
            )
        deposits = None
        with self._lock:
            self._encoding_thread = me
            try:
                frame = make(*args)
                if frame is not None and self.state is not State.CLOSED:
                    self._outbox.append(frame)
                    self.queued_bytes += len(frame)
            finally:
                self._encoding_thread = None
                refs = self.references
                if refs.deposits:
                    deposits, refs.deposits = refs.deposits, []
        if deposits is not None and self.on_deposits is not None:
            self.on_deposits(deposits)  # before the frame is sent: the gifts are there first

    def data_to_send(self) -> list[bytes]:
        """Take every frame queued so far, in the order to send them (counted as sent)."""
        outbox = self._outbox
        if not outbox:
            return []
        with self._lock:
            frames = list(outbox)
            outbox.clear()
            queued, self.queued_bytes = self.queued_bytes, 0
        self.frames_sent += len(frames)
        self.bytes_sent += queued
        return frames

    def has_data_to_send(self) -> bool:
        return bool(self._outbox)

    # -- outgoing ---------------------------------------------------------------------------

    def queue_opening(self) -> None:
        """Queue the conversation-start frame (the connecting side sends it first)."""
        self._queue(exposure_bytes, TETHER_KEY, self.marker_base)

    def hello_argument(self) -> list[Any]:
        """What ``hello`` carries on the wire: :meth:`hello_info` as a flat Array of keys and
        values (``#('language' 'python' 'tether' '0.1.0' ...)``), in Caffeine's words only, so
        that a Smalltalk peer can read the frame even if it does not understand ``hello``."""
        return [item for pair in self.hello_info().items() for item in pair]

    def hello_info(self) -> dict[str, Any]:
        """What this side says about itself in ``hello`` (``docs/protocol.md`` section 7)."""
        return hello_info(self)

    def queue_call(
        self,
        receiver: int | AnswerOf,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        exchange_id: bytes | None = None,
        on_behalf: bytes | None = None,
        keep: bool = False,
    ) -> None:
        """Queue a message-send to the peer's object ``receiver`` (a key). With an
        ``exchange_id`` (from :attr:`next_id`; register the caller's waiter under it first, since
        the answer may come as soon as the frame is out) it is a call; without, one-way.

        ``on_behalf`` is the exchange id of the peer's call that the current handler runs, when
        this message is sent from that handler: a peer whose hello says it reads it runs this
        message on the thread that waits for that call's answer (no new thread per nested hop).

        ``keep`` asks the peer to keep this call's answer, so that messages may be sent to it
        before it comes back (``receiver=AnswerOf(exchange_id)``: promise pipelining); drop it
        with :meth:`drop_answer` when no more will be. Python peers only.

        Raises :class:`DecodeError` on a thread that is reading a frame: nothing may ask a
        peer anything while a frame is decoded (hashing a key, rebuilding a value), since the
        answer could only be read by that very thread. Raises what encoding raises (nothing is
        queued then)."""
        if _reading.active:
            raise DecodeError(
                f"reading a frame would send {selector!r} to a remote object (a proxy used as a "
                "key, or in the state of a value rebuilt here); remote objects cannot take part "
                "in decoding"
            )
        if not self.peer_reads_nesting:
            on_behalf = None
        if (keep or type(receiver) is AnswerOf) and not self.peer_is_python:
            raise EncodeError(
                f"{selector}(...) would be pipelined, which {self.describe_peer()} does not read (it is "
                "not a Python Tether): await the previous answer first"
            )
        if not self.peer_is_python and receiver != self.peer_tether_key:  # a Smalltalk peer
            if kwargs:
                raise EncodeError(
                    f"{selector}(...) to {self.describe_peer()}, which is not a Python Tether (it sent "
                    f"no hello): keyword arguments {sorted(kwargs)} have no Smalltalk form; pass them in order"
                )
            selector = smalltalk_selector(selector, len(args))
        self._queue(self._call_frame, receiver, selector, args, kwargs, exchange_id, on_behalf, keep)
        if self.observer is not None:
            self.observer.call_sent(exchange_id, receiver, selector, args, kwargs or {})

    def _call_frame(
        self,
        receiver: int | AnswerOf,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None,
        exchange_id: bytes | None,
        on_behalf: bytes | None,
        keep: bool = False,
    ) -> bytes:
        refs = self.references
        undo = refs.begin_frame()
        try:
            frame = message_send_bytes(
                refs.encoder, exchange_id, receiver, selector, args, kwargs, on_behalf, keep and exchange_id is not None
            )
            if self.peer_max_frame_size is not None and len(frame) > self.peer_max_frame_size:
                self._check_size(frame, f"the call {selector}(...)")
        except BaseException:
            refs.undo_frame(undo)
            raise
        finally:
            refs.end_frame(undo)
        if selector == "hello" and receiver == self.peer_tether_key:
            self._hello_id = exchange_id  # its answer is applied as soon as it is read
        return frame

    def apply_hello(self, info: object) -> None:
        """Take what the peer says about itself (its hello, or its answer to ours): a flat
        Array of keys and values (:meth:`hello_argument`), or a Dictionary."""
        apply_hello(self, info)

    def queue_answer(self, exchange_id: bytes, value: object) -> None:
        """Queue the answer to the peer's call ``exchange_id``; if ``value`` cannot be encoded,
        the error answer saying why (the caller is always told)."""
        self._queue(self._answer_frame, exchange_id, value)

    def _answer_frame(self, exchange_id: bytes, value: object) -> bytes:
        refs = self.references
        undo = refs.begin_frame()
        try:
            frame = answer_bytes(refs.encoder, exchange_id, value)
            if self.peer_max_frame_size is not None and len(frame) > self.peer_max_frame_size:
                self._check_size(frame, "the answer")
            if self.observer is not None:
                self.observer.answer_sent(exchange_id, value)
            return frame
        except Exception as exc:  # whatever went wrong, the caller must hear of it
            refs.undo_frame(undo)
            if not isinstance(exc, (EncodeError, RecursionError)):
                log.warning("cannot encode the answer to %s: %r", self.describe_peer(), exc)
            return self._error_frame(exchange_id, exc)
        finally:
            refs.end_frame(undo)

    def queue_error(self, exchange_id: bytes, exc: BaseException) -> None:
        """Queue an error answer to the peer's call ``exchange_id``."""
        self._queue(self._error_frame, exchange_id, exc)

    def _error_frame(self, exchange_id: bytes, exc: BaseException) -> bytes:
        if self.observer is not None:
            self.observer.error_sent(exchange_id, exc)
        # A Python peer is told the exception's identity, so that it can come home (4.3).
        identity = self.errors_sent.identity(exc) if self.peer_is_python else None
        return error_answer_bytes(exchange_id, *error_parts(exc, self.send_tracebacks), identity)

    def _check_size(self, frame: bytes, what: str) -> None:
        limit = self.peer_max_frame_size
        if limit is not None and len(frame) > limit:
            raise FrameTooLarge(
                f"{what} would be a frame of {len(frame)} bytes, over the {limit} bytes "
                f"{self.describe_peer()} accepts (its max_frame_size): nothing was sent; send "
                "less at once, by reference, or in parts",
                len(frame),
                limit,
            )

    def describe_peer(self) -> str:
        return "the client" if not self.client else "the server"

    def queue_releases(self) -> bool:
        """Queue one one-way ``release`` message for every release queued so far; False when
        there was none."""
        if self.peer_tether_key is None:
            return False
        if not self.peer_is_python:  # a Smalltalk peer reads no one-way messages: it keeps its objects
            self.releases.clear()
            return False
        dropped: list[bytes] = []
        while self.dropped_answers and len(dropped) < 1024:
            dropped.append(self.dropped_answers.popleft())
        if dropped:
            self.queue_call(self.peer_tether_key, "drop_answers", (dropped,))
            if self.dropped_answers and self.on_release_queued is not None:
                self.on_release_queued()  # more than one batch: the next flush sends the rest
        pairs: list[int] = []
        pop = self.releases.popleft
        while True:
            try:
                key, count = pop()
            except IndexError:
                break
            pairs += (key, count)
        if not pairs:
            return bool(dropped)
        self.queue_call(self.peer_tether_key, "release", (pairs,))
        return True

    def drop_answer(self, exchange_id: bytes) -> None:
        """The peer may forget the answer it keeps for our call ``exchange_id`` (no more messages
        will be pipelined on it): sent with the next batch of releases (any thread, even inside
        the garbage collector)."""
        self.dropped_answers.append(exchange_id)
        callback = self.on_release_queued
        if callback is not None:
            callback()

    def _queue_release(self, key: int, count: int) -> None:
        self.releases.append((key, count))
        callback = self.on_release_queued
        if callback is not None:
            callback()

    # -- incoming ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Take one received frame; return the events it causes (never raises on bad input).

        A frame that holds an object of a class this side must first get from the peer, or a
        handoff descriptor the runtime must resolve first, is held, with every frame after it,
        until the peer's ``get_classes`` answer arrives or the handoff is resolved
        (:meth:`handoff_resolved`); then they are read in order (``tether.held``). Once a frame
        broke the protocol (a :class:`Violation`), or the runtime set :attr:`state` to
        ``CLOSING``, frames are ignored.
        """
        self.frames_received += 1
        self.bytes_received += len(data)
        if self.state is State.CLOSING or self.state is State.CLOSED:
            return []
        if self.held.frames is not None and self.held.keeps(data):
            return []
        return self._received(self._receive(data))

    def _received(self, events: list[Event]) -> list[Event]:
        """What received frames caused: a violation makes the state CLOSING; the observer is told."""
        if events:
            for event in events:
                if type(event) is Violation:
                    self.state = State.CLOSING
            if self.observer is not None:
                self.observer.events_received(events)
        return events

    def _receive(self, data: bytes) -> list[Event]:
        if len(data) > self.max_frame_size:
            return [
                Violation(
                    CLOSE_TOO_BIG,
                    f"frame of {len(data)} bytes is over this peer's limit of "
                    f"{self.max_frame_size} bytes",
                )
            ]
        if self._detect_base and self.peer_tether_key is None and data in _TETHER_EXPOSURES:
            # The peer's Tether is key 0 in either convention: its first exposure frame says
            # which base it uses; read and write that one from now on.
            self.marker_base = self.references.marker_base = int.from_bytes(data, "big")
        expects = self.expects
        if (
            expects is not None
            and data[:4] in (_ANSWER_TAG_BYTES, _ERROR_TAG_BYTES)
            and data[4:12] == _UUID_HEAD
            and not expects(exchange_id := data[12:28])
            and exchange_id not in self.held.class_requests
        ):
            self.answers_dropped += 1  # nobody waits for it (never sent, or given up on)
            return []
        refs = self.references
        decoder = Decoder(data, 0, refs, self.max_depth, self.marker_base, self.limits)
        imports: list[int] = []
        refs.decoding_imports = imports
        refs.decoder = decoder
        needed: list[Handoff] = []
        refs.handoffs_needed = needed
        refs.handoffs_used.clear()
        reading = _reading.active
        _reading.active = True
        try:
            frame = parse_frame(decoder)
        except NeedClasses as need:
            self.imports.rollback(imports)
            refs.decoding_imports = None
            self.held.wait_for_classes(data, need.class_ids)
            return []
        except FrameBodyError as body:  # one name per clause: compiled, a name keeps its first clause's type
            refs.decoding_imports = None
            if data[:4] == _TETHER_TAG_BYTES:
                self.queue_error(body.exchange_id, ProtocolError(f"cannot read the message-send: {body.error}"))
                return []
            return [ErrorReceived(body.exchange_id, ProtocolError(f"cannot read the answer: {body.error}"))]
        except ProtocolError as broken:
            return [Violation(CLOSE_PROTOCOL_ERROR, str(broken))]
        except RecursionError:
            return [Violation(CLOSE_PROTOCOL_ERROR, "frame nests too deeply to decode")]
        except Exception as exc:  # a frame kind's own code failed: the frame cannot be read
            return [Violation(CLOSE_PROTOCOL_ERROR, f"cannot read the frame: {type(exc).__name__}: {exc}")]
        finally:
            _reading.active = reading
            refs.decoding_imports = None
            refs.decoder = None
            refs.handoffs_needed = None
        if needed:
            self.imports.rollback(imports)
            return self.held.wait_for_handoffs(data, needed)
        for gift in refs.handoffs_used:
            refs.handoffs.pop(gift, None)
        kind = type(frame)
        if kind is Answer:
            if frame.exchange_id in self.held.class_requests:
                return self.held.classes_arrived(frame.exchange_id, frame.value, None)
            if frame.exchange_id == self._hello_id:  # before any later frame is read
                self.apply_hello(frame.value)
            return [AnswerReceived(frame.exchange_id, frame.value)]
        if kind is MessageSend:
            if self.peer_tether_key is None:
                return [Violation(CLOSE_PROTOCOL_ERROR, "message-send before the conversation start frame")]
            if frame.exchange_id is not None and frame.exchange_id[:8] == self._id_prefix:
                return [Violation(CLOSE_PROTOCOL_ERROR, "the peer sent our own message back: not a Tether peer (an echo server?)")]
            receiver = frame.receiver
            if type(receiver) is AnswerOf:
                if not self.peer_is_python:  # only a Python peer was asked to keep answers
                    return [Violation(CLOSE_PROTOCOL_ERROR, "a message pipelined on an answer before hello")]
            elif receiver is not self.tether and self.exports.key_of(receiver) is None:
                if frame.exchange_id is not None:
                    error = ProtocolError(
                        f"the receiver of a message-send must be an object exposed to the peer "
                        f"(a 'your object' word), not a {type(receiver).__qualname__} it wrote"
                    )
                    self.queue_error(frame.exchange_id, error)
                return []
            frame.size = len(data)
            return [Incoming(frame)]
        if kind is ErrorAnswer:
            if frame.exchange_id in self.held.class_requests:
                return self.held.classes_arrived(frame.exchange_id, None, make_exception(frame))
            return [ErrorReceived(frame.exchange_id, self.errors_sent.exception_of(frame))]
        if kind is Exposure:
            if self.peer_tether_key is not None:
                return [Violation(CLOSE_PROTOCOL_ERROR, "the peer exposed its Tether twice")]
            self.peer_tether_key = frame.key
            if self.state is State.CONNECTING:
                self.state = State.OPEN
            self._detect_base = False
            if not self.client:
                self._queue(exposure_bytes, TETHER_KEY, self.marker_base)
            return [Opened(frame.key)]
        handle = getattr(frame, "handle", None)  # a user-registered frame kind
        if handle is None:
            return [Violation(CLOSE_PROTOCOL_ERROR, f"no handler for frame {kind.__name__}")]
        return list(handle(self) or ())

    def queue_tether_call(self, exchange_id: bytes | None, selector: str, args: tuple[Any, ...]) -> None:
        """Queue a message-send to the peer's Tether object that no runtime waits for (the
        protocol's own: ``get_classes``)."""
        assert self.peer_tether_key is not None
        self._queue(self._call_frame, self.peer_tether_key, selector, args, None, exchange_id, None)

    def handoff_resolved(self, gift: bytes, value: object) -> list[Event]:
        """The runtime resolved the handoff of gift ``gift``: ``value`` is the object withdrawn
        (a proxy of the connection to its owner, or the object itself when this process owns
        it), or ``None`` to use the introducer's fallback reference. Returns the events of the
        held frames that can be read now (call it where frames are received, in their order)."""
        return self._received(self.held.resolved(gift, value))

    # -- running an incoming message ---------------------------------------------------------

    def perform(self, message: MessageSend) -> None:
        """Run ``message`` to completion here and queue its answer (none if one-way).

        For the Tether object's quick selectors (``TetherObject.INLINE``), which a runtime runs
        on its reading thread; anything else runs in a task or worker of its own, through
        :meth:`start` and :meth:`finish` or :meth:`fail`.
        """
        try:
            result = self.start(message)
        except BaseException as exc:  # the error travels; KeyboardInterrupt is re-raised below
            self.fail(message, exc)
            return
        self.finish(message, result)

    def start(self, message: MessageSend) -> Any:
        """Begin performing ``message``; return its result (perhaps an awaitable: await it, then
        :meth:`finish`)."""
        receiver = message.receiver
        if receiver is self.tether:
            if message.selector not in TetherObject.SELECTORS:
                raise AccessDenied(
                    "the Tether object understands "
                    + ", ".join(sorted(TetherObject.SELECTORS))
                    + f", not {message.selector!r}",
                    name=message.selector,
                )
            return getattr(self.tether, message.selector)(*message.args, **message.kwargs)
        return perform(receiver, message.selector, message.args, message.kwargs, self.policy)

    def finish(self, message: MessageSend, result: Any) -> None:
        """Queue the answer of a message that ran to ``result`` (nothing if it was one-way)."""
        if message.exchange_id is not None:
            self.queue_answer(message.exchange_id, result)

    def fail(self, message: MessageSend, exc: BaseException) -> None:
        """Queue the error answer of a message that raised ``exc`` (nothing if it was one-way).
        ``KeyboardInterrupt`` and ``SystemExit`` are re-raised: they are this process's."""
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc
        if message.exchange_id is not None:
            self.queue_error(message.exchange_id, exc)

    def close(self) -> None:
        """The connection is gone: mark it closed, forget both tables and the outbox."""
        self.state = State.CLOSED
        self._outbox.clear()
        self.queued_bytes = 0
        self.references.close()
        self.errors_sent.clear()
        self.releases.clear()
        self.dropped_answers.clear()


_TETHER_EXPOSURES = (pack_word(MY_OBJECT_BASE), pack_word(MY_OBJECT_BASE + 1))
_UUID_HEAD = pack_word(TAG_UUID) + pack_word(16)
