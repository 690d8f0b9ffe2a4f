"""Which face a page's proxy operation gets, decided natively (no browser needed)."""

from __future__ import annotations

import asyncio

from tether.browser.session import in_async_code


def probe() -> bool:
    return in_async_code(1)  # as BrowserSession.call asks: about its caller's caller


def test_plain_code_is_the_sync_face() -> None:
    def plain() -> bool:
        return probe()

    assert plain() is False
    assert [probe() for _ in range(1)] == [False]


def test_async_code_and_its_anonymous_helpers_are_the_async_face() -> None:
    async def coroutine() -> list[bool]:
        direct = probe()
        in_genexpr = list(probe() for _ in range(1))
        in_lambda = (lambda: probe())()
        in_listcomp = [probe() for _ in range(1)]
        return [direct, *in_genexpr, in_lambda, *in_listcomp]

    assert asyncio.run(coroutine()) == [True, True, True, True]


def test_a_plain_helper_called_from_async_code_is_the_sync_face() -> None:
    def helper() -> bool:
        return probe()

    async def coroutine() -> bool:
        return helper()

    assert asyncio.run(coroutine()) is False
