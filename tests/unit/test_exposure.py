"""Reference tables: wire-delta counting keeps an object alive while a reference is in flight."""

from __future__ import annotations

import gc

import pytest

from tether.exceptions import ProtocolError
from tether.exposure import ExportTable, ImportTable


class Thing:
    pass


def test_same_object_gets_the_same_key_and_counts_up() -> None:
    table = ExportTable(tether=object())
    thing = Thing()
    assert table.export(thing) == (1, True)
    assert table.export(thing) == (1, False)
    assert len(table) == 1


def test_reference_in_flight_survives_release_of_an_earlier_copy() -> None:
    table = ExportTable(tether=object())
    thing = Thing()
    key, _ = table.export(thing)  # first reference, read by the peer
    table.export(thing)  # second reference, still on the wire
    table.release(key, 1)  # the peer drops the proxy it made from the first one
    assert table.get(key) is thing
    table.release(key, 1)  # ... and later the second
    with pytest.raises(ProtocolError, match="no object is exposed under key 1"):
        table.get(key)
    assert len(table) == 0


def test_over_release_and_unknown_keys_are_protocol_errors() -> None:
    table = ExportTable(tether=object())
    key, _ = table.export(Thing())
    with pytest.raises(ProtocolError, match="release of 2 references to key 1, but 1 were sent"):
        table.release(key, 2)
    with pytest.raises(ProtocolError, match="not exposed"):
        table.release(99, 1)
    with pytest.raises(ProtocolError, match="not exposed"):
        table.release(0, 1)  # the Tether itself is never released


def test_keys_are_reused_only_after_release() -> None:
    table = ExportTable(tether=object())
    things = [Thing() for _ in range(3)]
    keys = [table.export(t)[0] for t in things]
    assert keys == [1, 2, 3]
    table.release(2, 1)
    assert table.export(Thing())[0] == 4


class Proxyish:
    pass


def test_import_table_makes_one_proxy_per_key_and_releases_what_it_read() -> None:
    released: list[tuple[int, int]] = []
    table = ImportTable(lambda key, count: released.append((key, count)))
    made = []

    def factory(key: int, info: object) -> Proxyish:
        made.append(key)
        return Proxyish()

    p1 = table.get(7, None, factory)
    p2 = table.get(7, None, factory)
    assert p1 is p2 and made == [7]
    del p1, p2
    gc.collect()
    assert released == [(7, 2)]
    p3 = table.get(7, None, factory)  # a new reference after the release starts afresh
    del p3
    gc.collect()
    assert released == [(7, 2), (7, 1)]
