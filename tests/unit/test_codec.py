"""The codec: hypothesis round trips of every by-value type, and hostile input rejected."""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FunctionType, ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tether.values  # noqa: F401 - registers its readers into the codec (as the pure values does below)
from tether import codec
from tether.codec import (
    DEFAULT_MAX_DEPTH,
    TAG_ARRAY,
    TAG_DICT,
    TAG_STRING,
    Decoder,
    Encoder,
    decode_value,
    encode_value,
    implementation,
    pack_word,
)
from tether.exceptions import DecodeError, EncodeError

# Words that make generated hostile input reach the readers: every tag, some counts and lengths.
WORDS = {pack_word(w) for w in (*range(0x20000001, 0x20000024), *range(0x20000101, 0x20000123))} | {
    pack_word(n) for n in (0, 1, 2, 3, 4, 16, 0x7FFFFFFF, 0xFFFFFFFF, 0x40000000, 0x60000001, 0x22000003)
}

hashables = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.uuids()
    | st.floats(allow_nan=False) | st.complex_numbers(allow_nan=False),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=10,
)  # fmt: skip
values = st.recursive(
    hashables,
    lambda inner: st.lists(inner, max_size=5)
    | st.tuples(inner, inner)
    | st.dictionaries(hashables, inner, max_size=5)
    | st.sets(hashables, max_size=5),
    max_leaves=30,
)


def same(a: object, b: object) -> bool:
    """Equal with exact types, recursively; floats bit for bit (a NaN is the same as a NaN of the
    same bits, 0.0 is not -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)  # type: ignore[union-attr, index]
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)  # type: ignore[attr-defined]
    return a == b


@settings(max_examples=300)
@given(values)
def test_every_literal_round_trips_with_its_exact_type(value: object) -> None:
    assert same(decode_value(encode_value(value)), value)


@given(st.integers())
def test_integers_of_any_size_round_trip(n: int) -> None:
    assert decode_value(encode_value(n)) == n


@given(st.floats())
def test_floats_round_trip_bit_for_bit(x: float) -> None:
    assert struct.pack(">d", decode_value(encode_value(x))) == struct.pack(">d", x)  # type: ignore[arg-type]


@given(st.text())
def test_text_with_lone_surrogates_round_trips(text: str) -> None:
    assert decode_value(encode_value(text)) == text


def test_small_integers_use_the_caffeine_word() -> None:
    assert encode_value(0) == pack_word(0x40000000)
    assert encode_value(0x1FFFFFFF) == pack_word(0x5FFFFFFF)


def test_bool_is_not_an_int_on_the_wire() -> None:
    assert decode_value(encode_value([True, 1])) == [True, 1]
    assert type(decode_value(encode_value(True))) is bool


def test_uuid_travels_as_the_caffeine_uuid() -> None:
    u = uuid.uuid4()
    assert encode_value(u) == pack_word(0x20000011) + pack_word(16) + u.bytes
    assert decode_value(encode_value(u)) == u


def test_an_object_without_a_connection_cannot_be_encoded() -> None:
    with pytest.raises(EncodeError, match="cannot encode object by value"):
        encode_value(object())


def test_shared_and_cyclic_containers_survive_within_one_value() -> None:
    shared = [1, 2]
    table = {"a": shared, "b": shared}
    decoded = decode_value(encode_value(table))
    assert decoded == table and decoded["a"] is decoded["b"]  # type: ignore[index]
    cycle: list[object] = []
    cycle.append(cycle)
    again = decode_value(encode_value(cycle))
    assert again[0] is again  # type: ignore[index]
    d: dict[str, object] = {}
    d["self"] = d
    d2 = decode_value(encode_value(d))
    assert d2["self"] is d2  # type: ignore[index]


def test_empty_containers_are_not_numbered_on_either_side() -> None:
    shared = {"k": 1}
    value = [[], {}, set(), shared, [shared], {1}, {1}]
    decoded = decode_value(encode_value(value))
    assert decoded == value
    assert decoded[4][0] is decoded[3]  # type: ignore[index]


def test_a_back_reference_must_point_backwards() -> None:
    with pytest.raises(DecodeError, match="back-reference to object 3, but only 1 came before"):
        decode_value(pack_word(TAG_ARRAY) + pack_word(1) + pack_word(0x20000110) + pack_word(3))


def test_deep_but_legal_nesting_round_trips() -> None:
    value: list[object] = []
    for _ in range(DEFAULT_MAX_DEPTH - 1):
        value = [value]
    assert decode_value(encode_value(value)) == value


def test_nesting_past_the_limit_is_a_decode_error_not_a_recursion_error() -> None:
    data = pack_word(TAG_ARRAY) + pack_word(1)
    data = data * 10_000 + pack_word(0x20000003)
    with pytest.raises(DecodeError, match="deeper than 200"):
        decode_value(data)


def test_huge_declared_length_is_rejected_without_allocating() -> None:
    data = pack_word(TAG_STRING) + pack_word(0xFFFFFFFF) + b"abc"
    with pytest.raises(DecodeError, match="declares 4294967295 bytes but only 3 remain"):
        decode_value(data)


def test_huge_declared_count_is_rejected_before_reading() -> None:
    data = pack_word(TAG_DICT) + pack_word(0x7FFFFFFF)
    with pytest.raises(DecodeError, match="declares 2147483647 elements"):
        decode_value(data)


def test_errors_say_where_in_the_structure() -> None:
    data = encode_value([1, [2, "x"]])[:-1]  # cut the last byte of "x"
    with pytest.raises(DecodeError) as info:
        decode_value(data)
    assert info.value.path == "$[1][1]"
    assert "remain in the frame" in str(info.value)


def test_unknown_tag_and_reserved_words_are_errors() -> None:
    with pytest.raises(DecodeError, match="unknown class tag 0x20000fff"):
        decode_value(pack_word(0x20000FFF))
    with pytest.raises(DecodeError, match="reserved instruction"):
        decode_value(pack_word(0x70000000))


def test_references_are_refused_where_only_values_may_appear() -> None:
    with pytest.raises(DecodeError, match="reference"):
        decode_value(pack_word(5))
    with pytest.raises(DecodeError, match="reference"):
        decode_value(pack_word(0x60000001))


def test_unhashable_set_elements_and_dict_keys_are_decode_errors() -> None:
    data = pack_word(0x20000106) + pack_word(1) + encode_value([1])
    with pytest.raises(DecodeError, match="unhashable"):
        decode_value(data)
    data = pack_word(TAG_DICT) + pack_word(1) + encode_value([1]) + encode_value(2)
    with pytest.raises(DecodeError, match="unhashable"):
        decode_value(data)


def test_invalid_utf8_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        Decoder(pack_word(TAG_STRING) + pack_word(1) + b"\xff").read_str()


def test_a_registered_writer_makes_a_type_travel_by_value() -> None:
    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    encoder = Encoder()
    encoder.register(Point, lambda enc, p, out, depth: enc.write((p.x, p.y), out, depth))
    assert decode_value(encoder.encode(Point(1, 2))) == (1, 2)


def test_subclasses_of_literals_are_not_literals() -> None:
    class MyInt(int):
        pass

    with pytest.raises(EncodeError):
        encode_value(MyInt(3))


@given(st.lists(values, max_size=4), st.lists(values, min_size=1, max_size=4))
def test_sharing_is_kept_whatever_comes_before(prefix: list[object], shared: list[object]) -> None:
    decoded = decode_value(encode_value([*prefix, shared, {"again": shared}]))
    assert decoded[-2] is decoded[-1]["again"]  # type: ignore[index]
    assert same(decoded[-2], shared)


# ---------------------------------------------------------------------------------------------
# The compiled codec (setup.py: mypyc) against the pure-Python one, byte for byte and error for
# error. `make test` also runs this file, the fuzz corpus and the hostile suite a second time
# with TETHER_PURE=1 (tests/conftest.py): every test above runs against both.

COMPILED = implementation() == "compiled (mypyc)"
needs_compiled = pytest.mark.skipif(not COMPILED, reason="the compiled codec is not in use (it compares with it)")


def _pure_codec() -> ModuleType:
    """``tether/decoding.py``, ``tether/codec.py`` and ``tether/values.py`` run from their
    sources as other modules, beside the compiled ones (each pure one importing the pure ones
    before it, the pure values registering into the pure codec); the two share every other
    module, so their errors are of the same classes. Returns the pure codec."""
    loaded = {}
    compiled = {name: sys.modules[f"tether.{name}"] for name in ("decoding", "codec")}
    try:
        for name in ("decoding", "codec", "values"):
            source = Path(compiled["codec"].__file__ or "").with_name(f"{name}.py")
            spec = importlib.util.spec_from_file_location(f"tether._pure_{name}_for_tests", source)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
            if name in compiled:
                sys.modules[f"tether.{name}"] = module  # what the pure modules after it import
    finally:
        for name, module in compiled.items():
            sys.modules[f"tether.{name}"] = module
    assert loaded["codec"].Decoder is loaded["decoding"].Decoder  # (not the compiled one)
    return loaded["codec"]


pure = _pure_codec() if COMPILED else codec


def _outcome(decode: Callable[[bytes], object], data: bytes) -> tuple[str, object]:
    try:
        return "value", decode(data)
    except DecodeError as exc:
        return "error", (str(exc), exc.offset, exc.path)


def _alike(a: tuple[str, object], b: tuple[str, object]) -> bool:
    """The same error, or the same value (NaNs included: decoded twice, a NaN is two objects)."""
    return a[0] == b[0] and (a[1] == b[1] if a[0] == "error" else same(a[1], b[1]))


def test_ci_runs_the_compiled_codec() -> None:
    """Where CI installs a compiler (.ci/run), the install must have built the compiled codec."""
    if os.environ.get("CI") != "true" or os.environ.get("TETHER_PURE") == "1":
        pytest.skip("not CI, or the pure codec was asked for (TETHER_PURE=1)")
    if os.environ.get("TETHER_PURE_BUILD") == "1" or sys.implementation.name != "cpython":
        pytest.skip("no compiled codec is built here")
    assert COMPILED, f"CI runs the {implementation()} codec: setup.py did not build the compiled one"


def test_the_pure_module_is_the_source_of_the_compiled_one() -> None:
    assert pure.implementation() == "pure Python"
    assert codec.__all__ == pure.__all__
    if COMPILED:
        assert not (codec.__file__ or "").endswith(".py")
        assert not isinstance(codec.decode_value, FunctionType)  # the compiled reading half
    assert isinstance(pure.decode_value, FunctionType)  # the pure one's, compared with it below


@needs_compiled
@settings(max_examples=300)
@given(values)
def test_both_codecs_write_the_same_bytes_and_read_them_back_alike(value: object) -> None:
    data = encode_value(value)
    assert pure.encode_value(value) == data
    assert same(decode_value(data), pure.decode_value(data))


@needs_compiled
@given(st.integers() | st.floats(allow_nan=False) | st.text() | st.binary())
def test_both_codecs_agree_on_scalars(value: object) -> None:
    data = encode_value(value)
    assert pure.encode_value(value) == data
    assert same(decode_value(data), pure.decode_value(data))


@needs_compiled
@settings(max_examples=500)
@given(st.binary(max_size=64) | st.lists(st.sampled_from(sorted(WORDS)), max_size=12).map(b"".join))
@example(bytes.fromhex("20000102ffffffffffffffff"))  # a Float that is a NaN
@example(bytes.fromhex("20000103ffffffff2000001a2000010f20000011"))  # a Complex with a NaN
def test_both_codecs_refuse_hostile_bytes_alike(data: bytes) -> None:
    """Same value, or the same DecodeError: message, byte offset and path."""
    assert _alike(_outcome(decode_value, data), _outcome(pure.decode_value, data))


@needs_compiled
@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "fuzz" / "corpus").glob("*.bin")), ids=lambda p: p.stem)
def test_both_codecs_read_the_fuzz_corpus_alike(path: Path) -> None:
    data = path.read_bytes()
    assert _alike(_outcome(decode_value, data), _outcome(pure.decode_value, data))


@needs_compiled
def test_both_codecs_refuse_the_same_values() -> None:
    deep: list[object] = []
    for _ in range(DEFAULT_MAX_DEPTH + 5):
        deep = [deep]
    for value in (object(), deep, type("MyInt", (int,), {})(3)):
        errors = []
        for encode in (encode_value, pure.encode_value):
            with pytest.raises(EncodeError) as info:
                encode(value)
            errors.append(str(info.value))
        assert errors[0] == errors[1]
