"""Every error Tether raises, in one hierarchy.

::

    TetherError
    ├── UsageError          you used the API in a way that cannot work (a local mistake)
    ├── EncodeError         a value cannot be written on the wire (also a TypeError)
    │   └── FrameTooLarge   the frame would be over the receiver's max_frame_size (announced in hello)
    ├── ProtocolError       the peer sent bytes that break the protocol
    │   ├── DecodeError     a frame could not be read; says where (``$.args[0]``) and at which byte
    │   └── GiftRefused     no gift for this recipient here (three-party handoff: withdrawn, expired, never deposited)
    ├── ConnectionLost      the peer went away; every waiting call and every proxy raises it
    │   └── HandshakeFailed no Tether conversation could be opened (bad URL, not a WebSocket, not a Tether peer, no answer in time)
    │       └── Refused     the server refused this client (a wrong token, a browser origin it does not allow)
    ├── Busy                the peer has Limits.max_concurrency calls running here and max_queued (bytes) waiting
    ├── AccessDenied        the peer asked for a name its access policy refuses (also an AttributeError)
    └── RemoteError         the remote handler raised an exception that cannot be recreated here

Exceptions raised by a remote handler are re-raised at the caller as the same type when the type
is a builtin exception or one of the classes above; otherwise as :class:`RemoteError`. Either
way the remote traceback text, when the remote side sends it, is in ``exc.remote_traceback``
and shown as a note under the local traceback.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "Busy",
    "ConnectionLost",
    "DecodeError",
    "EncodeError",
    "FrameTooLarge",
    "GiftRefused",
    "HandshakeFailed",
    "ProtocolError",
    "Refused",
    "RemoteError",
    "TetherError",
    "UsageError",
]


class TetherError(Exception):
    """Base class of every error Tether raises itself."""


class UsageError(TetherError):
    """The API was used in a way that cannot work; the message says what to do instead."""


class EncodeError(TetherError, TypeError):
    """A value cannot be encoded (for example a structure nested deeper than the limit)."""


class FrameTooLarge(EncodeError):
    """A call or answer would make a frame larger than the receiver accepts (its
    ``max_frame_size``, announced in its hello). Nothing was sent and the connection goes on:
    send less at once (a reference, or the data in parts), or raise the receiver's limit."""

    def __init__(self, message: str, size: int = 0, limit: int = 0) -> None:
        super().__init__(message, size, limit)  # all three travel in an error answer
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return str(self.args[0])


class ProtocolError(TetherError):
    """The peer broke the protocol: an unknown tag, a malformed frame, an unknown key."""


class DecodeError(ProtocolError):
    """A frame could not be decoded.

    ``path`` says where in the decoded structure the problem is (``$`` is the frame body,
    ``$.args[1]`` the second argument of a message) and ``offset`` the byte offset in the frame.
    """

    def __init__(self, message: str, offset: int | None = None, path: str = "$") -> None:
        self.reason = message
        self.offset = offset
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:
        where = f" at byte {self.offset}" if self.offset is not None else ""
        return f"{self.reason} (in {self.path}{where})"

    def prefixed(self, part: str) -> DecodeError:
        """Return self with ``part`` inserted after ``$`` in the path (used while unwinding)."""
        self.path = "$" + part + self.path[1:]
        return self


class GiftRefused(ProtocolError):
    """A handoff's gift could not be withdrawn: none is held under that id for that recipient
    (not deposited yet, withdrawn already, expired, or meant for someone else). The recipient
    retries until its deadline, then uses the introducer's reference instead (forwarding)."""


class Busy(TetherError):
    """The other side already runs ``Limits.max_concurrency`` of this side's calls and holds
    ``Limits.max_queued`` more waiting, or ``Limits.max_queued_bytes`` of their frames: this
    call was not started. Call again later, or make fewer calls at once (or smaller ones)."""


class ConnectionLost(TetherError, ConnectionError):
    """The connection to the peer is gone. Calls waiting on it and proxies to it raise this.

    Reconnect with :func:`tether.connect` to go on; proxies from the old connection stay dead.
    """


class HandshakeFailed(ConnectionLost):
    """No Tether conversation could be opened with the URL: the message says what was found
    instead (a URL that is not ``ws://`` or ``wss://``, an HTTP server that is not a WebSocket
    endpoint, a WebSocket peer that does not speak Tether, no answer within ``open_timeout``).
    """


class Refused(HandshakeFailed):
    """The server refused this connection before exposing anything.

    ``code`` is the WebSocket close code: 4401 when the server requires a token and the one
    given (if any) is not it (pass ``token=`` to connect); 4403 when the request came from a
    browser page whose origin the server does not allow (the server lists allowed origins in
    its ``origins=``).
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class AccessDenied(TetherError, AttributeError):
    """The peer asked for an attribute or operation that the access policy refuses.

    By default a peer may use public names and the data-model operations only; the serving
    side can pass ``trusted=True`` to allow private names.
    """


class RemoteError(TetherError):
    """An exception raised by the remote handler whose type cannot be recreated here.

    ``remote_type`` is its qualified name (``"mymodule.MyError"``), ``remote_args`` what could be
    carried of its arguments and ``remote_traceback`` the remote traceback text (or ``None``
    when the remote side does not send tracebacks).
    """

    def __init__(
        self,
        remote_type: str,
        message: str,
        remote_args: tuple[object, ...] = (),
        remote_traceback: str | None = None,
    ) -> None:
        self.remote_type = remote_type
        self.message = message
        self.remote_args = remote_args
        self.remote_traceback = remote_traceback
        super().__init__(f"{remote_type}: {message}" if message else remote_type)
