"""Both twins carry the same docstrings and signatures.

The pure module is the typed reference and the compiled one mirrors it, so
``help()`` reads the same whichever implementation is live: every public
class and function of ``_names.TWIN_NAMES``, and every public method and
property of those classes, has a non-empty docstring in both twins, and the
texts are equal.  The compiled module's signatures are in the builtins' form
(``embedsignature.format = "clinic"``), which CPython keeps out of ``__doc__``
and ``inspect.signature()`` reads: it gives the same parameters for both twins.
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


def _text(doc: Optional[str]) -> str:
    return inspect.cleandoc(doc) if doc else ""


def _pair(name: str, member: Optional[str]) -> tuple[str, str]:
    pure: Any = getattr(_socket_py, name)
    compiled: Any = getattr(_compiled(), name)
    if member is None:
        pure_doc, compiled_doc = _doc(pure), _doc(compiled)
    else:
        pure_doc = _doc(_static(pure, member))
        compiled_doc = _doc(_static(compiled, member))
    return _text(pure_doc), _text(compiled_doc)


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


# -- signatures: inspect.signature() reads the compiled twin as it reads the pure one


def _parameters(obj: Any) -> list[tuple[str, str, object]]:
    """Names, kinds and defaults (annotations are the pure twin's alone); the
    instance methods' ``self`` left out, which the compiled twin declares
    positional-only, as the builtins do."""
    parameters = list(inspect.signature(obj).parameters.values())
    if parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    return [(p.name, p.kind.name, p.default) for p in parameters]


@pytest.mark.parametrize("name", _documented_names())
def test_class_or_function_signature_alike(name: str) -> None:
    assert _parameters(getattr(_compiled(), name)) == _parameters(getattr(_socket_py, name))


@pytest.mark.parametrize("name,member", [
    pair for name in _classes() for pair in _members(name)
    if callable(_static(getattr(_socket_py, name), pair[1]))
    or isinstance(_static(getattr(_socket_py, name), pair[1]), (classmethod, staticmethod))])
def test_member_signature_alike(name: str, member: str) -> None:
    pure = getattr(getattr(_socket_py, name), member)
    compiled = getattr(getattr(_compiled(), name), member)
    assert _parameters(compiled) == _parameters(pure)
