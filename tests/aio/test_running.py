"""How the asyncio runtime decides that a message runs an ``async def`` (``tether.aio.running``):
the answer is remembered per class and selector, and asked again as soon as the class, a base
or the instance holds another object under that name."""

from __future__ import annotations

from typing import Any

from tether.aio.running import _is_async_target


class Base:
    def echo(self, x: Any) -> Any:
        return x

    async def aecho(self, x: Any) -> Any:
        return x


class Derived(Base):
    pass


class Message:
    def __init__(self, selector: str, receiver: Any) -> None:
        self.selector = selector
        self.receiver = receiver


async def coroutine_function(x: Any) -> Any:
    return x


def test_the_remembered_answer_follows_the_class_the_base_and_the_instance() -> None:
    receiver = Derived()
    echo = Message("echo", receiver)
    assert not _is_async_target(echo) and not _is_async_target(echo)
    assert _is_async_target(Message("aecho", receiver)) and _is_async_target(Message("aecho", receiver))
    receiver.echo = coroutine_function  # type: ignore[method-assign]
    assert _is_async_target(echo)
    del receiver.echo
    assert not _is_async_target(echo)
    Derived.echo = coroutine_function  # type: ignore[attr-defined,method-assign]
    try:
        assert _is_async_target(echo)
    finally:
        del Derived.echo  # type: ignore[attr-defined]
    assert not _is_async_target(echo)
    original = Base.echo
    Base.echo = coroutine_function  # type: ignore[assignment,method-assign]
    try:
        assert _is_async_target(echo)
    finally:
        Base.echo = original  # type: ignore[method-assign]
    assert not _is_async_target(echo)


class AsyncCallable:
    async def __call__(self, x: Any) -> Any:
        return x


class PlainCallable:
    def __call__(self, x: Any) -> Any:
        return x


def plain_function(x: Any) -> Any:
    return x


def test_a_called_function_or_object_runs_as_a_task_when_it_is_a_coroutine_function() -> None:
    import functools
    import inspect

    assert _is_async_target(Message("__call__", coroutine_function))
    assert not _is_async_target(Message("__call__", plain_function))
    assert _is_async_target(Message("__call__", lambda: None)) is False
    assert _is_async_target(Message("__call__", AsyncCallable()))  # its class's __call__
    assert not _is_async_target(Message("__call__", PlainCallable()))
    assert _is_async_target(Message("__call__", functools.partial(coroutine_function, 1)))
    if hasattr(inspect, "markcoroutinefunction"):  # 3.12: a plain function marked as one
        def marked(x: Any) -> Any:
            return x

        assert _is_async_target(Message("__call__", inspect.markcoroutinefunction(marked)))
