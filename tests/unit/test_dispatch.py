"""Dispatch: selectors performed as the interpreter would, under the access policy."""

from __future__ import annotations

import pytest

from tether.dispatch import OPERATIONS, AccessPolicy, perform, python_name
from tether.exceptions import AccessDenied


class Box:
    """A small object with a public method, a private one and a data attribute."""

    def __init__(self) -> None:
        self.value = 1
        self._secret = "s"

    def at_put(self, key: str, value: int) -> str:
        return f"{key}={value}"

    def _hidden(self) -> str:
        return "h"

    def __radd__(self, other: int) -> str:
        return f"radd {other}"


def run(obj: object, selector: str, *args: object, trusted: bool = False, **kwargs: object) -> object:
    return perform(obj, selector, list(args), dict(kwargs), AccessPolicy(trusted))


def test_plain_selector_calls_the_method() -> None:
    assert run(Box(), "at_put", "k", 2) == "k=2"


def test_smalltalk_selectors_map_to_python_names() -> None:
    assert python_name("at:put:") == "at_put"
    assert python_name("value:") == "value"
    assert python_name("size") == "size"
    assert python_name("+") == "__add__"
    assert run(Box(), "at:put:", "k", 3) == "k=3"
    assert run(3, "+", 4) == 7


def test_data_model_selectors_use_the_builtin_operation() -> None:
    assert run([1, 2, 3], "__len__") == 3
    assert run([1, 2, 3], "__getitem__", slice(0, 2)) == [1, 2]
    assert run(Box(), "__radd__", 5) == "radd 5"  # other + obj, so Box.__radd__ runs
    assert run(2, "__pow__", 10, 1000) == 24
    assert run(5, "__rsub__", 7) == 2
    assert run("a{}", "__format__", "") == "a{}"


def test_attribute_selectors_read_write_and_delete_where_the_policy_allows() -> None:
    box = Box()
    assert run(box, "__getattribute__", "value") == 1
    settable = AccessPolicy(settable=True)
    perform(box, "__setattr__", ["value", 5], {}, settable)
    assert box.value == 5
    perform(box, "__delattr__", ["value"], {}, settable)
    assert not hasattr(box, "value")


def test_setting_and_deleting_attributes_is_refused_by_default() -> None:
    box = Box()
    with pytest.raises(AccessDenied, match=r"may not set attribute 'value'.*__tether_settable__"):
        run(box, "__setattr__", "value", 5)
    with pytest.raises(AccessDenied, match="may not delete attribute 'value'"):
        run(box, "__delattr__", "value")
    assert box.value == 1


def test_a_class_lists_its_settable_attributes() -> None:
    class Settings:
        __tether_settable__ = frozenset({"volume"})

        def __init__(self) -> None:
            self.volume = 1
            self.owner = "me"

    s = Settings()
    run(s, "__setattr__", "volume", 7)
    assert s.volume == 7
    with pytest.raises(AccessDenied):
        run(s, "__setattr__", "owner", "you")


@pytest.mark.parametrize(
    ("selector", "args"),
    [
        ("_hidden", ()),
        ("__getattribute__", ("_secret",)),
        ("__getattribute__", ("__class__",)),
        ("__getattribute__", ("__dict__",)),
        ("__setattr__", ("_secret", 1)),
        ("__delattr__", ("_secret",)),
        ("__init__", ()),
        ("__reduce__", ()),
    ],
)
def test_private_names_are_refused_for_untrusted_peers(selector: str, args: tuple[object, ...]) -> None:
    with pytest.raises(AccessDenied, match=r"is private.*trusted=True"):
        run(Box(), selector, *args)


def test_refusal_is_an_attribute_error_so_getattr_defaults_work() -> None:
    with pytest.raises(AttributeError):
        run(Box(), "__getattribute__", "_secret")


def test_trusted_peers_reach_private_names() -> None:
    assert run(Box(), "_hidden", trusted=True) == "h"
    assert run(Box(), "__getattribute__", "_secret", trusted=True) == "s"


def test_safe_dunder_attributes_are_readable() -> None:
    assert run(Box(), "__getattribute__", "__doc__").startswith("A small object")
    assert run(Box, "__getattribute__", "__name__") == "Box"


def test_attribute_selectors_check_their_arguments() -> None:
    with pytest.raises(TypeError, match="attribute name"):
        run(Box(), "__getattribute__", 3)


def test_every_operation_is_a_dunder() -> None:
    assert all(name.startswith("__") and name.endswith("__") for name in OPERATIONS)
