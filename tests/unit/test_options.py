"""One options object for every entry point: the same names and defaults, validated once, an
error naming the option for anything unknown or out of place, websockets' settings only in
``transport=``."""

from __future__ import annotations

import asyncio

import pytest

import tether
import tether.aio
from tether.options import NAMES, Options, resolve_options


def test_an_unknown_option_is_named_with_the_closest_one() -> None:
    with pytest.raises(tether.UsageError, match=r"tether.connect\(\) got an unknown option 'tokn'; did you mean 'token'\?"):
        tether.connect("ws://127.0.0.1:9", tokn="x")
    with pytest.raises(tether.UsageError, match=r"tether.serve\(\) got an unknown option 'ping_interval'.*transport="):
        tether.serve(object(), port=0, ping_interval=5)


def test_an_option_out_of_place_says_where_it_belongs() -> None:
    with pytest.raises(tether.UsageError, match=r"tether.connect\(\) got origins=, which only a server takes"):
        tether.connect("ws://127.0.0.1:9", origins=["https://a.example"])
    with pytest.raises(tether.UsageError, match=r"tether.connect\(\) got run_sync_in_threads=, which only aio and web take"):
        tether.connect("ws://127.0.0.1:9", run_sync_in_threads=False)
    with pytest.raises(tether.UsageError, match=r"tether.serve\(\) got open_timeout=, which only connect\(\) takes"):
        tether.serve(object(), port=0, open_timeout=3)


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"timeout": -1}, r"timeout= is a number of seconds above 0, or None; not -1"),
        ({"open_timeout": None}, r"open_timeout= is a number of seconds above 0; not None"),
        ({"keepalive": "20"}, r"keepalive= is a number of seconds above 0, or None; not '20'"),
        ({"max_frame_size": 10}, r"max_frame_size= is a number of bytes, at least 1024; not 10"),
        ({"marker_base": 5}, r"marker_base= is 0x60000000"),
        ({"passing": {int: "copy"}}, r"passing= maps classes to 'value' or 'reference'"),
        ({"limits": {"max_concurrency": 4}}, r"limits= takes a tether.Limits, not dict"),
        ({"token": 1234}, r"token= is a string, not int"),
        ({"transport": [("max_queue", 4)]}, r"transport= is a dict of websockets settings, not list"),
    ],
)
def test_bad_values_are_refused_before_anything_opens(given: dict[str, object], error: str) -> None:
    with pytest.raises(tether.UsageError, match=error):
        Options(**given)  # type: ignore[arg-type]
    with pytest.raises(tether.UsageError, match=error):
        tether.connect("ws://127.0.0.1:9", **given)


def test_keywords_override_an_options_object() -> None:
    base = Options(timeout=5.0, token="s3cret")
    resolved = resolve_options("tether.connect", False, "sync", base, {"timeout": 1.0})
    assert (resolved.timeout, resolved.token) == (1.0, "s3cret")
    assert base.timeout == 5.0  # the object given is not changed


def test_tracebacks_default_off_when_serving_and_on_when_connecting() -> None:
    assert Options().session(serving=True)["send_tracebacks"] is False
    assert Options().session(serving=False)["send_tracebacks"] is True
    assert Options(send_tracebacks=True).session(serving=True)["send_tracebacks"] is True


def test_every_face_takes_the_same_options_object() -> None:
    """One object for a program's servers and clients: each side uses what applies to it
    (open_timeout is a client's, origins a server's, run_sync_in_threads the async face's)."""
    opts = Options(
        token="s3cret",
        timeout=10.0,
        limits=tether.Limits(max_concurrency=8),
        open_timeout=5.0,
        origins=("https://app.example",),
        run_sync_in_threads=False,
    )

    class Root:
        def add(self, a: int, b: int) -> int:
            return a + b

    with tether.serve(Root(), port=0, options=opts) as server:
        with tether.connect(server.url, options=opts) as peer:
            assert peer.root.add(1, 2) == 3

        async def from_async() -> int:
            async with tether.aio.connect(server.url, options=opts) as apeer:
                return int(await apeer.root.add(2, 3))

        assert asyncio.run(from_async()) == 5

    async def async_server() -> int:
        async with tether.aio.serve(Root(), port=0, options=opts) as aserver:
            async with tether.aio.connect(aserver.url, options=opts) as apeer:
                return int(await apeer.root.add(3, 4))

    assert asyncio.run(async_server()) == 7


def test_transport_settings_reach_the_connection() -> None:
    with tether.serve(object(), port=0, transport={"close_timeout": 3}) as server:
        with tether.connect(server.url, transport={"close_timeout": 2}) as peer:
            assert peer.session.transport.close_timeout == 2
            assert server.peers[0].session.transport.close_timeout == 3


def test_an_unknown_transport_setting_is_named() -> None:
    with pytest.raises(tether.UsageError, match="no_such_setting"):
        tether.connect("ws://127.0.0.1:9", transport={"no_such_setting": 1}, open_timeout=1)


def test_the_option_names_are_documented_on_options() -> None:
    doc = Options.__doc__ or ""
    for name in NAMES:
        assert f"``{name}``" in doc, f"Options' docstring does not explain {name}"
