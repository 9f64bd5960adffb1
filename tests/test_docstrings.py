"""Both twins carry the same docstrings.

The pure module is the typed reference and the compiled one mirrors it, so
``help()`` reads the same whichever implementation is live: every public
class and function of ``_names.TWIN_NAMES``, and every public method and
property of those classes, has a non-empty docstring in both twins, and the
texts are equal once the signature line that the compiled module's
``embedsignature`` directive puts in front of its docstrings is removed.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import pytest
from conftest import compiled_module as _compiled

from fastsock import _names, _socket_py


# what help() shows that needs no docstring of ours: the data attributes of
# slots (DatagramBatch.count, slot_size: described by the class docstring)
_DATA_ATTRIBUTE = type(_socket_py.DatagramBatch.__dict__["count"])


def _documented_names() -> list[str]:
    """The twins' public classes and functions (constants carry no docstring)."""
    return [name for name in _names.TWIN_NAMES
            if inspect.isclass(getattr(_socket_py, name))
            or callable(getattr(_socket_py, name))]


def _classes() -> list[str]:
    return [name for name in _documented_names()
            if inspect.isclass(getattr(_socket_py, name))]


def _static(cls: type, name: str) -> Any:
    """The attribute as the class (or the nearest base) defines it."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    raise AttributeError(name)


def _defined_here(cls: type, name: str) -> bool:
    """Whether fastsock defines ``name`` (not object, nor a builtin exception)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__module__ != "builtins"
    return False


def _public_members(cls: type) -> set[str]:
    return {name for name in dir(cls)
            if not name.startswith("_") and _defined_here(cls, name)}


def _members(name: str) -> list[tuple[str, str]]:
    pure = getattr(_socket_py, name)
    return [(name, member) for member in sorted(_public_members(pure))
            if not isinstance(_static(pure, member), _DATA_ATTRIBUTE)]


def _doc(obj: Any) -> Optional[str]:
    doc = obj.__doc__
    if isinstance(obj, (classmethod, staticmethod)):
        doc = obj.__func__.__doc__
    return doc if isinstance(doc, str) else None


def _without_signature(doc: str, name: str) -> str:
    """The compiled docstring without the line ``embedsignature`` put first.

    That line is ``name(...)`` or ``Class.name(...)`` (the defining class,
    ``_Socket`` for inherited methods); properties and most classes get none.
    """
    first, _, rest = doc.partition("\n")
    head = first.split("(", 1)[0]
    if "(" in first and first.rstrip().endswith(")") and \
            (head == name or head.endswith("." + name)):
        return rest
    return doc


def _text(doc: Optional[str]) -> str:
    return inspect.cleandoc(doc) if doc else ""


def _pair(name: str, member: Optional[str]) -> tuple[str, str]:
    pure: Any = getattr(_socket_py, name)
    compiled: Any = getattr(_compiled(), name)
    if member is None:
        pure_doc, compiled_doc, short = _doc(pure), _doc(compiled), name
    else:
        pure_doc = _doc(_static(pure, member))
        compiled_doc = _doc(_static(compiled, member))
        short = member
    compiled_text = _without_signature(compiled_doc, short) if compiled_doc else ""
    return _text(pure_doc), _text(compiled_text)


def _check(name: str, member: Optional[str]) -> None:
    label = name if member is None else f"{name}.{member}"
    pure, compiled = _pair(name, member)
    assert pure, f"{label} has no docstring in the pure twin (_socket_py)"
    assert compiled, f"{label} has no docstring in the compiled twin (_socket_c)"
    assert pure == compiled, (
        f"{label}: the twins' docstrings differ\n--- pure ---\n{pure}\n"
        f"--- compiled ---\n{compiled}")


@pytest.mark.parametrize("name", _documented_names())
def test_class_or_function_documented_alike(name: str) -> None:
    _check(name, None)


@pytest.mark.parametrize("name,member", [pair for name in _classes()
                                         for pair in _members(name)])
def test_member_documented_alike(name: str, member: str) -> None:
    _check(name, member)


@pytest.mark.parametrize("name", _classes())
def test_twins_have_the_same_public_members(name: str) -> None:
    # a member only the compiled twin has would escape the checks above
    pure = _public_members(getattr(_socket_py, name))
    compiled = _public_members(getattr(_compiled(), name))
    assert pure == compiled


def test_the_signature_line_is_removed() -> None:
    doc = "StreamSocket.recv(self, Py_ssize_t bufsize, flags=0)\n\nReceive."
    assert _text(_without_signature(doc, "recv")) == "Receive."
    assert _without_signature("Receive (some) bytes.", "recv") == "Receive (some) bytes."
    assert _text(_without_signature("socketpair(family=AF_UNIX)\nA pair.", "socketpair")) \
        == "A pair."
