"""The common case of WebSocket framing, beside websockets' sans-I/O protocol.

Tether's messages are small binary messages, one frame each. websockets' ``Protocol`` parses
every frame with generator-based coroutines and builds every frame with a ``Frame`` object:
correct for everything the RFC allows, and about 84,000 CPU instructions per round trip here
(two frames built, two parsed; ``docs/benchmarks.md``, "Instructions per round trip, and
framing"), a fifth of a whole Tether call. :class:`FastFrames` keeps websockets for everything
but the one common case (both native transports use it: ``tether.sync.transport``,
``tether.aio.transport``):

- **Receiving.** It finds the frames in what arrives (their headers say how long they are). A
  complete frame that is a whole binary message (FIN set, no RSV bit, opcode 2), masked exactly
  when the RFC says it must be (frames to a server are, frames to a client are not), at most
  ``max_size`` bytes, while no fragmented message is under way and the connection is OPEN, is
  unmasked here and handed on as ``bytes``. Every other frame (control frames, text,
  fragments, anything malformed) goes to websockets as it arrives, from its first byte, and
  what websockets reads comes back in its place in the order, a data message whole (its
  fragments joined, text decoded), ping, pong and close frames as they are; so websockets
  refuses a bad frame exactly when it would on its own. A binary frame declared longer than
  ``max_size`` goes to websockets at once (it closes with 1009), and so does everything once
  the connection is no longer OPEN: every error and every close is websockets' own.
  ``tests/unit/test_framing.py`` checks, for generated streams of good and bad frames cut
  anywhere, that the messages, events, state, close code and answers are websockets' own.
- **Sending.** :meth:`FastFrames.frame` builds a binary frame (masked with 4 bytes from the
  operating system's random source when this side is the client, as the RFC requires).

What it buffers is bounded: at most one incomplete binary frame of at most ``max_size`` bytes
(a longer one goes to websockets as soon as its header is in), or 13 bytes of a header.

It must start where websockets' parser is at a frame boundary: right after the opening
handshake, if no byte came after the end of the HTTP message; a connection where one did
uses websockets for everything (``enabled=False``).

On CPython mypyc compiles this module with the codec (``setup.py``): keep it typed, and keep
its constants ``Final``.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Final

from websockets.frames import Frame, Opcode, apply_mask
from websockets.protocol import Protocol, Side, State

__all__ = ["FastFrames", "handshake_ended_cleanly"]

_OPEN: Final = State.OPEN
_BINARY: Final = Opcode.BINARY
_TEXT: Final = Opcode.TEXT
_CONT: Final = Opcode.CONT
_WHOLE_BINARY: Final = 0x82  # FIN, no RSV bit, opcode 2
_MASKS: Final = 1024  # random bytes read at once (256 masking keys)


def handshake_ended_cleanly(data: bytes | bytearray) -> bool:
    """Whether ``data``, all that was read until the opening handshake was complete, ends
    exactly with the HTTP message (nothing of a frame came after it)."""
    end = data.find(b"\r\n\r\n")
    return end >= 0 and end + 4 == len(data)


def _length(buf: bytes | bytearray, pos: int, length: int) -> int:
    """The payload length of the frame at ``pos`` (``length``: its 7-bit length field)."""
    if length == 126:
        return (buf[pos + 2] << 8) | buf[pos + 3]
    if length == 127:
        return int.from_bytes(buf[pos + 2 : pos + 10], "big")
    return length


class FastFrames:
    """Frames one connection's common case; feeds websockets' ``protocol`` the rest (see the
    module docstring). Use it under the lock that guards ``protocol``."""

    __slots__ = ("_buffer", "_fragmented", "_header", "_mask_at", "_masks", "_parts", "_parts_text", "_passing", "client",
                 "enabled", "max_size", "protocol")  # fmt: skip

    def __init__(self, protocol: Protocol, max_size: int | None, enabled: bool = True) -> None:
        self.protocol = protocol
        self.client = protocol.side is Side.CLIENT
        self.max_size = max_size
        self.enabled = enabled
        self._buffer = bytearray()  # the start of a frame not complete yet
        self._fragmented = False  # a fragmented message is under way (websockets reads it)
        self._passing = 0  # bytes of the current frame still to go to websockets, which reads it
        self._header = b""  # the first bytes of such a frame, until its length is known
        self._parts: list[bytes] = []  # the fragments websockets read of a message so far
        self._parts_text = False
        self._masks = b""
        self._mask_at = _MASKS

    def receive(self, data: bytes) -> list[Any]:
        """Take what arrived; return, in order, each whole message (``bytes``; ``str`` for a
        text message) and the other frames websockets read (ping, pong, close)."""
        protocol = self.protocol
        out: list[Any] = []
        if not self.enabled:
            protocol.receive_data(data)
            self._messages(protocol.events_received(), out)
            return out
        if self._header:  # the start of a frame websockets reads: how long is it?
            data = self._complete_header(out, data)
            if not data:
                return out
        buf: bytes | bytearray = data
        if self._buffer:  # (a bytearray grows in place: a long frame in many reads is linear)
            buf = self._buffer
            buf += data
        end = len(buf)
        pos = 0
        masked_in = not self.client
        while pos < end:
            if self._passing:  # the rest of a frame websockets reads
                stop = min(end, pos + self._passing)
                self._passing -= stop - pos
                self._feed(out, buf[pos:stop])
                pos = stop
                if not self.enabled:  # closing, or websockets failed it: its own from here
                    return self._hand_over(out, buf[pos:])
                continue
            if end - pos < 2:
                break
            first = buf[pos]
            second = buf[pos + 1]
            length = second & 0x7F
            masked = second & 0x80
            start = pos + (2 if length < 126 else 4 if length == 126 else 10) + (4 if masked else 0)
            if (
                first != _WHOLE_BINARY
                or (masked != 0) is not masked_in
                or self._fragmented
                or protocol.state is not _OPEN
            ):
                # Not the common case: websockets reads this frame, as it arrives (it may
                # refuse it at its first two bytes).
                opcode = first & 0x0F
                if opcode == 1 or opcode == 2:
                    self._fragmented = not first & 0x80
                elif opcode == 0 and first & 0x80:
                    self._fragmented = False
                if start > end:  # its length is not all here yet
                    self._header = bytes(buf[pos:end])
                    self._feed(out, self._header)
                    pos = end
                    break
                self._passing = start - pos + _length(buf, pos, length)
                continue
            if start > end:
                break
            length = _length(buf, pos, length)
            if self.max_size is not None and length > self.max_size:
                return self._hand_over(out, buf[pos:])  # websockets refuses it (1009)
            stop = start + length
            if stop > end:
                break  # the rest of this frame is still to come
            if masked:
                out.append(apply_mask(buf[start:stop], bytes(buf[start - 4 : start])))
            else:
                out.append(bytes(buf[start:stop]))
            pos = stop
        if not self.enabled:
            return self._hand_over(out, buf[pos:])
        if buf is self._buffer:
            del buf[:pos]
        elif pos < end:
            self._buffer = bytearray(buf[pos:])
        return out

    def _complete_header(self, out: list[Any], data: bytes) -> bytes:
        """More of a frame whose first bytes websockets has (``_header``): once its header is
        whole, websockets reads the rest of it (``_passing``); returns what is left of ``data``
        for :meth:`receive` to go on with."""
        head = self._header + data
        length = head[1] & 0x7F
        size = (2 if length < 126 else 4 if length == 126 else 10) + (4 if head[1] & 0x80 else 0)
        if len(head) < size:
            self._header = head
            self._feed(out, data)
            return b""
        self._passing = size + _length(head, 0, length) - len(self._header)
        self._header = b""
        return data

    def messages(self, events: list[Any]) -> list[Any]:
        """websockets' ``events`` as :meth:`receive` gives them (for frames it read along with
        the opening handshake)."""
        out: list[Any] = []
        self._messages(events, out)
        return out

    def _messages(self, events: list[Any], out: list[Any]) -> None:
        """Each data message websockets read, whole (its fragments joined; websockets bounds
        their total by ``max_size``); other frames as they are; what is not a frame dropped."""
        for frame in events:
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is _CONT:
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    data = b"".join(self._parts)
                    self._parts = []
                    out.append(data.decode("utf-8", "replace") if self._parts_text else data)
            elif opcode is _BINARY or opcode is _TEXT:
                if frame.fin:
                    out.append(bytes(frame.data) if opcode is _BINARY else bytes(frame.data).decode("utf-8", "replace"))
                else:
                    self._parts = [bytes(frame.data)]
                    self._parts_text = opcode is _TEXT
            else:
                out.append(frame)

    def _feed(self, out: list[Any], chunk: bytes | bytearray) -> None:
        protocol = self.protocol
        protocol.receive_data(bytes(chunk))
        self._messages(protocol.events_received(), out)
        if protocol.state is not _OPEN:
            self.enabled = False

    def _hand_over(self, out: list[Any], rest: bytes | bytearray) -> list[Any]:
        """From now on websockets reads everything (starting with ``rest``)."""
        self.enabled = False
        self._buffer = bytearray()
        protocol = self.protocol
        if rest:
            protocol.receive_data(bytes(rest))
            self._messages(protocol.events_received(), out)
        return out

    def receive_eof(self) -> list[Any]:
        """The stream ended: websockets gets what is left of an incomplete frame first, so that
        it tells the end as it would have. Returns what it read then, as :meth:`receive`."""
        self.enabled = False
        rest, self._buffer = self._buffer, bytearray()
        if rest:
            self.protocol.receive_data(bytes(rest))
        self.protocol.receive_eof()
        return self.messages(self.protocol.events_received())

    def frame(self, payload: bytes) -> bytes:
        """``payload`` as one binary frame (a whole message), masked if this side is the client."""
        n = len(payload)
        mask_bit = 0x80 if self.client else 0
        if n < 126:
            head = bytes((_WHOLE_BINARY, n | mask_bit))
        elif n < 65536:
            head = struct.pack("!BBH", _WHOLE_BINARY, 126 | mask_bit, n)
        else:
            head = struct.pack("!BBQ", _WHOLE_BINARY, 127 | mask_bit, n)
        if not mask_bit:
            return head + payload
        at = self._mask_at
        if at >= _MASKS:
            self._masks, at = os.urandom(_MASKS), 0
        mask = self._masks[at : at + 4]
        self._mask_at = at + 4
        return head + mask + apply_mask(payload, mask)
