"""Fuzzing the frame parser and the codec (``scripts/fuzz.py`` is the fuzzer; this is its CI part).

* Every input in ``tests/fuzz/corpus/`` (inputs the fuzzer once failed on, and hand-made ones)
  is handled as documented by all three targets: ``Protocol.receive`` on a server-side and on a
  client-side protocol, and ``decode_value``;
* a few hand-made inputs get exactly the refusal that ``docs/protocol.md`` section 8 documents;
* a short, deterministic fuzzing round per target (hypothesis, ``derandomize=True``) finds
  nothing, and reaches both accepted and refused frames;
* ``decode_value(encode_value(v)) == v`` for generated literals (nan-aware, exact types);
* the fuzzer's checks themselves catch what they are meant to catch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tether.codec import decode_value
from tether.exceptions import DecodeError, ProtocolError
from tether.protocol import ErrorReceived, Violation

ROOT = Path(__file__).resolve().parents[2]


def _load_harness() -> ModuleType:
    """scripts/fuzz.py, imported under the module name its classes are registered with."""
    name = "tether_fuzz"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "fuzz.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


fuzz = _load_harness()
HAND_MADE: dict[str, bytes] = fuzz.hand_made_inputs()
_NAMES = {hashlib.sha256(data).hexdigest()[:16]: name for name, data in HAND_MADE.items()}
CORPUS_FILES = sorted(fuzz.CORPUS.glob("*.bin"))


def _corpus_id(path: Path) -> str:
    return f"{path.stem} ({_NAMES[path.stem]})" if path.stem in _NAMES else path.stem


# ---------------------------------------------------------------------------------------------
# The corpus


def test_the_corpus_holds_every_hand_made_input() -> None:
    names = {path.stem for path in CORPUS_FILES}
    missing = [name for digest, name in _NAMES.items() if digest not in names]
    assert not missing, f"run `scripts/fuzz.py --seed-corpus`: {missing}"


@pytest.mark.parametrize("target", fuzz.TARGET_NAMES)
@pytest.mark.parametrize("path", CORPUS_FILES, ids=_corpus_id)
def test_a_corpus_input_is_handled_as_documented(path: Path, target: str) -> None:
    """No undocumented exception, no remote call while reading, within its time and memory."""
    checker = fuzz.Checker(hang_factor=3)
    failure = None
    try:
        outcome = checker.check(target, path.read_bytes(), measure=True)
    except fuzz.FuzzFailure as exc:
        failure = exc
    if failure is not None:
        pytest.fail(f"{path.relative_to(ROOT)}:\n{failure.report()}", pytrace=False)
    assert outcome and checker.stats.measured == 1


# ---------------------------------------------------------------------------------------------
# Documented refusals of hand-made inputs


def _observe(target: str, data: bytes) -> str:
    """What a target makes of ``data``, as text: the events and the frames it would send, or the
    value or error of ``decode_value``."""
    if target == "value":
        try:
            return f"value {decode_value(data)!r}"
        except ProtocolError as exc:
            return f"{type(exc).__name__}: {exc}"
    protocol, _ = fuzz.make_protocol(client=target == "client")
    events = protocol.receive(data)
    parts = []
    for event in events:
        if isinstance(event, Violation):
            parts.append(f"Violation {event.code}: {event.reason}")
        elif isinstance(event, ErrorReceived):
            parts.append(f"ErrorReceived {type(event.error).__name__}: {event.error}")
        else:
            parts.append(type(event).__name__)
    for frame in protocol.data_to_send():
        kind = {fuzz.HEAD_ERROR: "error answer", fuzz.HEAD_ANSWER: "answer"}.get(frame[:4], "frame")
        parts.append(f"{kind} {frame[28:].decode('utf-8', 'replace')}")
    return " | ".join(parts)


REFUSALS = [
    ("truncated message-send", "server", ["error answer", "tether.exceptions.ProtocolError", "cannot read the message-send"]),
    ("truncated exchange id", "server", ["Violation 1002", "the exchange id"]),
    ("string length past the end", "server", ["error answer", "String declares 1000 bytes but only 3 remain"]),
    ("compact string past the end", "value", ["DecodeError", "String declares 16777215 bytes"]),
    ("array nested 210 deep", "value", ["DecodeError", "nests deeper than 200 levels"]),
    ("message-send nested 210 deep", "server", ["error answer", "nests deeper than 200 levels"]),
    ("slices nested 1000 deep", "value", ["DecodeError", "nests deeper than 200 levels"]),
    ("array of 2**32-1 elements", "value", ["DecodeError", "declares 4294967295 elements"]),
    ("dict of a million pairs", "server", ["error answer", "declares 1048576 elements"]),
    ("a set of a million empty tuples", "value", ["DecodeError", "declares 1048576 elements"]),
    ("bad UTF-8 in a String", "value", ["DecodeError", "not valid UTF-8"]),
    ("bad UTF-8 in a selector", "server", ["error answer", "not valid UTF-8"]),
    ("compact object of an unknown class id", "server", ["error answer", "class id 77 was never named"]),
    ("compact object in a plain value", "value", ["DecodeError", "only plain values"]),
    ("class info back-reference never defined", "client", ["ErrorReceived ProtocolError", "class id 9 was never defined"]),
    ("back-reference to a set being built", "value", ["DecodeError", "a cycle through a value built after its parts"]),
    ("unknown frame tag", "server", ["Violation 1002", "unknown frame tag 0x2000abcd"]),
    ("second exposure frame", "client", ["Violation 1002", "exposed its Tether twice"]),
    ("keyword arguments past the end", "server", ["error answer", "keyword arguments declares 1000 elements"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "target", "expected"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_hand_made_input_gets_its_documented_refusal(name: str, target: str, expected: list[str]) -> None:
    seen = _observe(target, HAND_MADE[name])
    for part in expected:
        assert part in seen, f"{name}: expected {part!r} in {seen!r}"


def test_a_hand_made_input_is_refused_in_time_by_every_target() -> None:
    """The refusals above are cheap: none of them reads past the point where it fails."""
    for name, target, _ in REFUSALS:
        start = time.perf_counter()
        _observe(target, HAND_MADE[name])
        assert time.perf_counter() - start < 0.5, name


# ---------------------------------------------------------------------------------------------
# A short fuzzing round (deterministic), and the round-trip property


ROUND_EXAMPLES = {"server": 4000, "client": 3500, "value": 3500}
# What each round must reach besides refusals: the generator gets frames through, not only junk.
ROUND_REACHES = {
    "server": {"Incoming", "error", "Violation", "AnswerReceived", "ErrorReceived"},
    "client": {"Incoming", "error", "Violation", "AnswerReceived", "ErrorReceived"},
    "value": {"value", "rejected"},
}


# The watchdog's alarm may land in hypothesis's gc callback, which ignores the exception (and
# reports it): the watchdog then tries again half a second later.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("target", fuzz.TARGET_NAMES)
def test_a_short_fuzzing_round_finds_nothing(target: str) -> None:
    checker = fuzz.Checker(memory_every=8, hang_factor=3)

    @settings(
        max_examples=ROUND_EXAMPLES[target], derandomize=True, deadline=None, database=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(st.binary(min_size=1, max_size=2048))
    def fuzz_round(choice: bytes) -> None:
        checker.check(target, fuzz.make_input(target, choice))

    fuzz_round()
    stats = checker.stats
    assert stats.inputs == ROUND_EXAMPLES[target]
    assert stats.measured >= stats.inputs // 16  # about one in 8, chosen by a checksum of the input
    reached = set(stats.outcomes)
    assert ROUND_REACHES[target] <= reached, f"not reached: {ROUND_REACHES[target] - reached}"


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(fuzz.literal_strategy())
def test_decode_value_gives_back_every_encoded_literal(value: Any) -> None:
    fuzz.check_round_trip(value)


# ---------------------------------------------------------------------------------------------
# The checks of the fuzzer


@pytest.fixture
def fake_target(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a target named ``fake`` that runs the given function."""

    def install(run: Any) -> None:
        monkeypatch.setitem(fuzz.TARGETS, "fake", run)

    return install


def test_the_checks_flag_an_undocumented_exception(fake_target: Any) -> None:
    def run(data: bytes) -> str:
        raise KeyError(data)

    fake_target(run)
    with pytest.raises(fuzz.FuzzFailure, match="undocumented exception KeyError") as info:
        fuzz.Checker().check("fake", b"\x01")
    assert info.value.data == b"\x01" and "KeyError at" in info.value.signature


def test_the_checks_flag_a_slow_input(fake_target: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz, "SLOW_SECONDS", 0.05)

    def run(data: bytes) -> str:
        time.sleep(0.1)
        return "slept"

    fake_target(run)
    with pytest.raises(fuzz.FuzzFailure, match=r"slow: 0\.1\d s for one input of 3 bytes"):
        fuzz.Checker().check("fake", b"abc")


def test_the_checks_flag_memory_over_the_bound(fake_target: Any) -> None:
    fake_target(lambda data: str(len(bytearray(fuzz.memory_bound(data) + (1 << 20)))))
    with pytest.raises(fuzz.FuzzFailure, match="memory: a peak of") as info:
        fuzz.Checker().check("fake", b"abc", measure=True)
    assert info.value.where.startswith("memory at")
    fake_target(lambda data: str(len(bytearray(fuzz.memory_bound(data) // 2))))
    assert fuzz.Checker().check("fake", b"abc", measure=True) == str(fuzz.memory_bound(b"abc") // 2)


def test_the_checks_flag_a_message_send_left_unanswered() -> None:
    """receive() returning nothing for a message-send whose id it read breaks section 8."""
    message = HAND_MADE["truncated message-send"]
    with pytest.raises(fuzz.FuzzFailure, match="no event and no error answer"):
        fuzz._check_events("server", message, [], [])
    fuzz._check_events("server", message, [], [fuzz.HEAD_ERROR + message[4:28] + b"..."])


def test_the_checks_flag_a_close_code_that_is_not_documented() -> None:
    with pytest.raises(fuzz.FuzzFailure, match="code 1000"):
        fuzz._check_events("server", b"\x00" * 4, [Violation(1000, "bye")], [])


def test_the_generator_writes_frames_of_every_kind_from_choices() -> None:
    """Structured inputs start with the frame tags of section 4, raw ones are the bytes given."""
    heads: Counter[int] = Counter()
    for i in range(400):
        choice = bytes([0x40 + i % 192]) + hashlib.sha256(i.to_bytes(4, "big")).digest() * 4
        data = fuzz.make_input("server", choice)
        if len(data) >= 4:
            heads[struct.unpack(">I", data[:4])[0]] += 1
    for tag in (fuzz.W.TAG_TETHER, fuzz.W.TAG_ANSWER, fuzz.W.TAG_ERROR_ANSWER, fuzz.W.MY_OBJECT_BASE):
        assert heads[tag] > 0, hex(tag)
    assert fuzz.make_input("server", b"\x00raw bytes") == b"raw bytes"
    assert fuzz.make_input("value", b"") == b""


def test_decode_value_refuses_only_with_protocol_errors_on_truncations() -> None:
    """Every prefix of an encoded nested value is refused with DecodeError, not another error."""
    data = fuzz.encode_value([{"a": (1, 2.5, b"x")}, {frozenset({3})}, "\u00e9", 2**70, None])
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode_value(data[:n])
