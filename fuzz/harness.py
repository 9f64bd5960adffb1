"""What every fuzz target shares: loading both implementations under
atheris, telling expected errors from defects, and comparing the compiled
implementation with the pure one call by call.

A target is a module with ``one_input(data: bytes) -> None`` that ends in
``harness.main(one_input)``.  ``one_input`` raises ``Defect`` (or lets any
unexpected exception escape) when it finds one; libFuzzer then saves the
input and the run fails.  Expected errors are caught with ``outcome()``.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import tempfile
from types import ModuleType
from typing import Any, Callable, Iterator

import atheris

with atheris.instrument_imports(include=["fastsock"]):
    import fastsock  # noqa: F401  (picks and loads the implementation)
    import fastsock._common as common
    from fastsock._names import IMPLEMENTATIONS

    cy = importlib.import_module(IMPLEMENTATIONS["cython"][0])
    py = importlib.import_module(IMPLEMENTATIONS["python"][0])

# the argument stand-ins the tests use too (tests/stand_ins.py)
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
from stand_ins import Index  # noqa: E402

# The errors the API documents for bad arguments and failed calls.  Anything
# else escaping a call (RuntimeError, SystemError, AttributeError, KeyError,
# AssertionError, ...) is a defect, and so is a crash, a sanitizer report or
# a hang (libFuzzer's -timeout).
EXPECTED: tuple[type[BaseException], ...] = (
    OSError,  # TimeoutError, BlockingIOError, ConnectionError, gaierror, ...
    ValueError,  # MessageTooLargeError, TruncatedDatagramError
    TypeError,
    OverflowError,
    BufferError,
    EOFError,  # IncompleteReadError
    common.LimitOverrunError,
)

IMPLS: tuple[ModuleType, ModuleType] = (cy, py)

# Every socket a target makes gets this timeout unless it sets another:
# nothing may block for long (libFuzzer's -timeout catches what still does).
CALL_TIMEOUT = 0.5

# numeric only: a name would be looked up by a resolver that may ask the network
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "", "::ffff:127.0.0.1", "127.0.0.2")


class Defect(AssertionError):
    """A finding: the implementations disagree, or one broke a promise."""


class Weird:
    """An object of no expected type: every conversion must refuse it cleanly."""

    def __repr__(self) -> str:
        return "Weird()"


def check_loaded() -> None:
    """Refuse to fuzz an uninstrumented build by mistake."""
    expected = os.environ.get("FASTSOCK_FUZZ_LIB")
    if expected and not os.path.realpath(cy.__file__).startswith(os.path.realpath(expected)):
        sys.exit(f"the compiled module came from {cy.__file__}, not from {expected}")


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("error", exception) for an expected error; a
    defect propagates."""
    try:
        return "ok", call()
    except EXPECTED as exc:
        return "error", exc


def error_key(exc: BaseException, message: bool = True) -> tuple[Any, ...]:
    """What must agree between implementations about an error: its type,
    its errno for OSError, and otherwise its message (unless ``message`` is
    false: for calls the stdlib lacks, whose messages are ours to choose)."""
    if isinstance(exc, OSError):
        return (type(exc).__name__, exc.errno)
    return (type(exc).__name__, str(exc) if message else None)


def same(label: str, results: dict[str, tuple[str, Any]],
         normalise: Callable[[Any], Any] = lambda value: value) -> None:
    """Raise Defect unless both implementations' outcomes match."""
    keys = {}
    for name, (kind, value) in results.items():
        keys[name] = (kind, error_key(value) if kind == "error" else normalise(value))
    if keys["cython"] != keys["python"]:
        raise Defect(f"{label}: compiled {keys['cython']!r} != pure {keys['python']!r}")


def same_logs(logs: dict[str, list[tuple[Any, ...]]], width: int = 600) -> None:
    """Raise Defect at the first step whose ``(name, outcome...)`` entries
    differ between the implementations' logs of one sequence of calls."""
    for index, (ours, theirs) in enumerate(zip(logs["cython"], logs["python"])):
        if ours != theirs:
            raise Defect(f"step {index} {ours[0]}: compiled {ours[1:]!r:.{width}} != "
                         f"pure {theirs[1:]!r:.{width}}")

def integer(fdp: atheris.FuzzedDataProvider, small: int = 70000) -> Any:
    """An int-like argument: mostly plausible, sometimes extreme or of a wrong type."""
    choice = fdp.ConsumeIntInRange(0, 15)
    if choice < 9:
        return fdp.ConsumeIntInRange(0, small)
    return [
        lambda: -fdp.ConsumeIntInRange(1, 1 << 40),
        lambda: fdp.ConsumeInt(9),  # up to +-2**71: past every C type
        lambda: Index(fdp.ConsumeIntInRange(0, small)),
        lambda: True,
        lambda: float(fdp.ConsumeIntInRange(0, 10)),
        lambda: None,
        lambda: Weird(),
    ][choice - 9]()


def unix_dir() -> str:
    """A private directory to bind AF_UNIX paths in (made once, the cwd)."""
    path = tempfile.mkdtemp(prefix="fastsock-fuzz-", dir="/tmp")
    os.chdir(path)
    return path


def closing(sockets: list[Any]) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass


def pairs(family: int, kind: int) -> Iterator[tuple[str, Any, Any]]:
    """(name, a, b) connected pairs of each implementation; the caller closes them."""
    for impl in IMPLS:
        a, b = impl.socketpair(family, kind)
        a.settimeout(CALL_TIMEOUT)
        b.settimeout(CALL_TIMEOUT)
        yield impl.IMPLEMENTATION, a, b


def main(one_input: Callable[[bytes], None]) -> None:
    check_loaded()
    socket.setdefaulttimeout(CALL_TIMEOUT)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def pick(fdp: atheris.FuzzedDataProvider, choices: Any) -> Any:
    """One of ``choices`` (any sequence)."""
    return choices[fdp.ConsumeIntInRange(0, len(choices) - 1)]
