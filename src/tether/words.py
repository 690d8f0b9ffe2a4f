"""The words of the wire: every tag, marker range and limit of the encoding, and the class
info that describes a remote object's class. ``docs/protocol.md`` section 3 is the normative
table; :mod:`tether.codec` reads and writes these words."""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "COMPACT_LIMIT",
    "COMPACT_OBJECT",
    "COMPACT_STRING",
    "DEFAULT_MAX_DEPTH",
    "KEY_LIMIT",
    "MY_OBJECT_BASE",
    "MY_OBJECT_END",
    "SMALLINT_BASE",
    "SMALLINT_LIMIT",
    "TAG_ANSWER",
    "TAG_ANSWER_OF",
    "TAG_ARRAY",
    "TAG_BACKREF",
    "TAG_BYTEARRAY",
    "TAG_CLASS",
    "TAG_CLASS_INFO",
    "TAG_CLASS_INFO_REF",
    "TAG_CLASS_REF",
    "TAG_COMPLEX",
    "TAG_DESCRIBED_REF",
    "TAG_DICT",
    "TAG_ELLIPSIS",
    "TAG_ERROR_ANSWER",
    "TAG_FAILURE",
    "TAG_FALSE",
    "TAG_FLOAT",
    "TAG_FROZENSET",
    "TAG_FUNCTION",
    "TAG_HANDOFF",
    "TAG_INTEGER",
    "TAG_KEEP_ANSWER",
    "TAG_KWARGS",
    "TAG_MESSAGE",
    "TAG_MY_ERROR",
    "TAG_NAMED",
    "TAG_NIL",
    "TAG_OBJECT",
    "TAG_ON_BEHALF",
    "TAG_SET",
    "TAG_SLICE",
    "TAG_STRING",
    "TAG_SYMBOL",
    "TAG_TETHER",
    "TAG_TRUE",
    "TAG_TUPLE",
    "TAG_UUID",
    "TAG_YOUR_CLASS",
    "TAG_YOUR_ERROR",
    "ClassInfo",
]

# Words. The Caffeine Tether words first, then the Python extensions (0x201xxxxx).

TAG_TRUE: Final = 0x20000001
TAG_FALSE: Final = 0x20000002
TAG_NIL: Final = 0x20000003
TAG_SYMBOL: Final = 0x20000004
TAG_STRING: Final = 0x20000005
TAG_TETHER: Final = 0x20000007  # first word of a message-send frame
TAG_ARRAY: Final = 0x20000008
TAG_UUID: Final = 0x20000011
TAG_BYTEARRAY: Final = 0x2000001B
TAG_ANSWER: Final = 0x2000001D  # first word of an answer frame
TAG_MESSAGE: Final = 0x20000021

TAG_INTEGER: Final = 0x20000101  # any int outside SmallInteger range: two's complement bytes
TAG_FLOAT: Final = 0x20000102
TAG_COMPLEX: Final = 0x20000103
TAG_TUPLE: Final = 0x20000104
TAG_DICT: Final = 0x20000105
TAG_SET: Final = 0x20000106
TAG_FROZENSET: Final = 0x20000107
TAG_KWARGS: Final = 0x20000108  # optional, after the arguments Array of a Message
TAG_ERROR_ANSWER: Final = 0x20000109  # first word of an error-answer frame
TAG_DESCRIBED_REF: Final = 0x2000010A  # "my object" word plus the class info of its object
TAG_CLASS_INFO: Final = 0x2000010B
TAG_CLASS_INFO_REF: Final = 0x2000010C
TAG_SLICE: Final = 0x2000010D  # start, stop, step: three encoded objects
TAG_ELLIPSIS: Final = 0x2000010E
TAG_BACKREF: Final = 0x20000110  # index word: an object already decoded in this frame
TAG_OBJECT: Final = 0x20000111  # an object by value: class, then state
TAG_CLASS: Final = 0x20000112  # id word, module String, qualname String, fingerprint (ByteArray or nil)
TAG_CLASS_REF: Final = 0x20000113  # id word of a class the sender named earlier on this connection
TAG_NAMED: Final = 0x20000114  # module, qualname, fingerprint, fallback reference (or nil)
TAG_FUNCTION: Final = 0x20000115  # a function by value: its record (a Dict)
TAG_YOUR_CLASS: Final = 0x20000116  # id word of a class the receiver sent us earlier
TAG_ON_BEHALF: Final = 0x20000117  # optional, after the arguments: the exchange id of the call it is nested in
TAG_KEEP_ANSWER: Final = 0x20000118  # optional, last in a Message: keep this call's answer for pipelining
TAG_ANSWER_OF: Final = 0x20000119  # a Message's receiver: the answer to the sender's call with this exchange id
TAG_FAILURE: Final = 0x20000120  # optional, in an error answer to a debugging peer: failure and frames
TAG_MY_ERROR: Final = 0x20000121  # optional, last in an error answer: 16 bytes, the sender's id for this exception
TAG_YOUR_ERROR: Final = 0x20000122  # optional, last in an error answer: 16 bytes, the receiver's exception going home
TAG_HANDOFF: Final = 0x20000123  # vat id, gift id, URL or nil, fallback reference: an object on a third party
# Compact forms, written only to Python peers (after hello): the tag word carries a number.
COMPACT_OBJECT: Final = 0x21000000  # + class id: an object of a class named before, then its state
COMPACT_STRING: Final = 0x22000000  # + length: a String of that many bytes
COMPACT_LIMIT: Final = 0x01000000

SMALLINT_BASE: Final = 0x40000000
SMALLINT_LIMIT: Final = 0x20000000
MY_OBJECT_BASE: Final = 0x60000000
MY_OBJECT_END: Final = 0x70000000
KEY_LIMIT: Final = 0x10000000  # keys are 0 .. 0x0FFFFFFF, so that both reference forms fit

DEFAULT_MAX_DEPTH: Final = 200

_WORD = struct.Struct(">I")
_DOUBLE = struct.Struct(">d")
_TWO_DOUBLES = struct.Struct(">dd")
pack_word = _WORD.pack
_unpack_word = _WORD.unpack_from

_NIL_BYTES = pack_word(TAG_NIL)
_TRUE_BYTES = pack_word(TAG_TRUE)
_FALSE_BYTES = pack_word(TAG_FALSE)


class ClassInfo:
    """What a proxy needs to know about the class of a remote object.

    ``methods`` are the public names that the class defines as methods: calling ``p.name(...)``
    on a proxy costs one round trip for these, while other names are read as attributes.
    ``None`` as ``methods`` means "unknown" (a peer that sends no class info, such as a
    Smalltalk peer): then every name is treated as a method. ``specials`` are the data-model
    methods the class has beyond those every object has (``__len__``, ``__aiter__``...).
    """

    __slots__ = ("methods", "module", "qualname", "specials")

    def __init__(
        self,
        module: str,
        qualname: str,
        methods: frozenset[str] | None,
        specials: frozenset[str] = frozenset(),
    ) -> None:
        self.module = module
        self.qualname = qualname
        self.methods = methods
        self.specials = specials

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}" if self.module else self.qualname

    def __repr__(self) -> str:
        return f"ClassInfo({self.name!r}, {len(self.methods or ())} methods)"
