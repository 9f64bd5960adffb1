"""The stdlib parity suite: the same scripted steps on ``socket.socket``, the
compiled twin and the pure twin, compared step by step.

A case is one row of data: a name, a setup and a list of steps.

- The setup is one string, "family kind state [modifier]": family ``inet``,
  ``inet6`` or ``unix``; kind ``stream``, ``dgram`` or (``unix`` only)
  ``seqpacket``; a state from
  ``STATES`` (unconnected, bound, listening, connected, peer-closed,
  peer-reset, closed, detached); optionally ``nonblocking`` or ``timeout``
  (a short timeout, ``TIMEOUT``), set once the state is reached.
- A step is a method name and its arguments: ``"close"`` or
  ``("recv", 10, socket.MSG_PEEK)``.  ``peer.<method>`` calls the method on
  the other end (always a stdlib socket, so what it does is the same for
  all); the few pseudo-steps in ``PSEUDO_STEPS`` do what is not a method
  (``repr``, ``pickle``, ``with``, waiting for readiness, a client that
  connects to a listening socket, ``new``: another socket from the API's
  constructor).  Addresses that exist only at run time are ``Ref``
  placeholders (``PEER``, ``REFUSED``, ``OWN``, ``path("x")``...); a buffer
  to receive into is ``buf(n)`` or another ``New``, made afresh for each
  run, and what the call wrote into it is part of the outcome.
- The expected outcome of every step is whatever the stdlib does: its
  result, or its exception's type, errno and message.  Values that differ
  from run to run (ports, descriptors, the private directory, autobind
  names) are replaced by placeholders before comparing; ``repr`` is
  compared by its shape; a wrong argument count and a refused pickle by
  the exception's type (their words are the calling convention's and the
  pickle machinery's).

Adding a row: append to ``ROWS``, e.g.
``row("recv after a reset", "inet stream peer-reset", ("recv", 10), ("recv", 10))``.
A deliberate, documented difference from the stdlib gets
``differs=Documented("method", "words of its docstring")``: the test then
checks that the docstring still says so, that the twins still differ from
the stdlib, and that they agree with each other.  A row for a method that
fastsock does not have yet gets ``xfail="why"`` (strict: it fails once the
method arrives and agrees, so that the marker goes).

Faults around sends and receives of data (resets and EOF after a message,
ICMP errors, partial sends, signals) are in test_fault_table.py, generated
arguments in test_differential.py; this table covers the socket's states.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import itertools
import os
import pathlib
import pickle
import re
import select
import socket
import struct
import tempfile
from array import array
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Optional, Union

import pytest
from conftest import (
    HAS_IPV6,
    IMPLEMENTATIONS,
    alarm_after,
    full_unix_listener,
    implementation_module,
)
from stand_ins import Index

import fastsock

AF_INET, AF_INET6, AF_UNIX = socket.AF_INET, socket.AF_INET6, socket.AF_UNIX
SOL_SOCKET, IPPROTO_TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP

FAMILIES = {"inet": AF_INET, "inet6": AF_INET6, "unix": AF_UNIX}
KINDS = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM}
# kinds of one family only, kept out of the rows made for every family and kind
UNIX_KINDS = {"seqpacket": socket.SOCK_SEQPACKET}
ALL_KINDS = {**KINDS, **UNIX_KINDS}
STATES = ("unconnected", "bound", "listening", "connected", "peer-closed", "peer-reset",
          "closed", "detached")
TIMEOUT = 0.05  # the "timeout" modifier: short, a row that runs into it waits on each API
MODIFIERS = {"nonblocking": 0.0, "timeout": TIMEOUT}
HANG_LIMIT = 5.0  # a row whose steps take longer than this has hung: it fails
LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST


# -- rows --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """An argument that exists only once the row runs (see Run.resolve)."""

    name: str
    arg: str = ""

    def __repr__(self) -> str:
        return f"{self.name.upper()}({self.arg})" if self.arg else self.name.upper()


PEER = Ref("peer")        # the other end: a listener (stream) or a bound socket (dgram)
IN_USE = PEER             # an address something is bound to already
REFUSED = Ref("refused")  # an address where nothing accepts
LOOPBACK = Ref("loopback")  # what a "bound" socket is bound to: port 0, or a fresh path
OWN = Ref("own")          # the socket's own address, as getsockname() says now
MISSING = Ref("missing")  # a Unix path where nothing is
FULL = Ref("full")        # a Unix stream listener whose backlog is full


def path(name: str) -> Ref:
    """A str path in the row's private directory."""
    return Ref("path", name)


def bytes_path(name: str) -> Ref:
    return Ref("bytes_path", name)


def path_like(name: str) -> Ref:
    return Ref("path_like", name)


def abstract(name: str) -> Ref:
    """A Linux abstract name (bytes, NUL first), unique to the run."""
    return Ref("abstract", name)


def abstract_str(name: str) -> Ref:
    return Ref("abstract_str", name)


@dataclass(frozen=True)
class Documented:
    """A deliberate difference from the stdlib: ``method``'s docstring (the
    same in both twins; "": the class's) says so in ``says``."""

    method: str
    says: str


class New:
    """A mutable argument made afresh for each run (a buffer to receive
    into): ``New(bytearray, 4)``.  What the call wrote into it is part of
    the step's outcome."""

    def __init__(self, factory: Callable[..., Any], *args: Any, text: str = "") -> None:
        self.factory = factory
        self.args = args
        self.text = text or f"{factory.__name__}({', '.join(map(repr, args))})"

    def make(self) -> Any:
        return self.factory(*self.args)

    def __repr__(self) -> str:
        return self.text


def buf(size: int) -> New:
    return New(bytearray, size)


@dataclass(frozen=True)
class Step:
    method: str
    args: tuple[Any, ...] = ()
    label: str = ""  # the step as written in its row (arguments change as steps run)


@dataclass(frozen=True)
class Row:
    name: str
    family: str
    kind: str
    state: str
    modifier: Optional[str]
    steps: tuple[Step, ...]
    differs: Optional[Documented] = None
    xfail: Optional[str] = None

    @property
    def setup(self) -> str:
        return " ".join(filter(None, (self.family, self.kind, self.state, self.modifier)))


StepSpec = Union[str, tuple[Any, ...]]


def row(name: str, setup: str, *steps: StepSpec, differs: Optional[Documented] = None,
        xfail: Optional[str] = None) -> Row:
    """A row: ``setup`` is "family kind state [modifier]", each step a method
    name or a tuple (method, *args)."""
    family, kind, state, *rest = setup.split()
    modifier = rest[0] if rest else None
    if family not in FAMILIES or kind not in ALL_KINDS or state not in STATES or \
            len(rest) > 1 or (modifier is not None and modifier not in MODIFIERS):
        raise ValueError(f"row {name!r}: bad setup {setup!r}")
    if kind == "dgram" and state in ("listening", "peer-reset"):
        raise ValueError(f"row {name!r}: a datagram socket is never {state}")
    if kind in UNIX_KINDS and family != "unix":
        raise ValueError(f"row {name!r}: a {kind} socket is AF_UNIX")
    if state == "peer-reset" and family == "unix":
        raise ValueError(f"row {name!r}: a Unix peer cannot reset")
    made = tuple(Step(spec, (), f"{spec}()") if isinstance(spec, str) else
                 Step(spec[0], tuple(spec[1:]), f"{spec[0]}({', '.join(map(repr, spec[1:]))})")
                 for spec in steps)
    if not made:
        raise ValueError(f"row {name!r}: no steps")
    return Row(name, family, kind, state, modifier, made, differs, xfail)


# -- running a row -----------------------------------------------------------------


class StepHung(BaseException):
    """A step blocked past HANG_LIMIT (a BaseException: never an outcome)."""


def _hung() -> StepHung:
    return StepHung(f"a step blocked for more than {HANG_LIMIT} s")


def wait_for(sock: Any, events: int, seconds: float = 5.0) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), events)
    return bool(poller.poll(int(seconds * 1000)))


_serials = itertools.count()
# how CPython, Cython and the argument clinic each word a wrong argument count
ARITY = re.compile(r"takes .*arguments? \(\d+ given\)|takes .*but \d+ (was|were) given|"
                   r"missing (\d+ )?required")

Outcome = tuple[Any, ...]


def api_class(module: ModuleType, kind: int) -> Any:
    """The class of ``module`` that wraps sockets of type ``kind``."""
    classes: dict[int, Any] = {socket.SOCK_STREAM: module.StreamSocket,
                               socket.SOCK_DGRAM: module.DatagramSocket,
                               socket.SOCK_SEQPACKET: module.SeqPacketSocket}
    return classes[kind]


class Run:
    """One row on one API (``module`` None: the stdlib): the socket under
    test, the stdlib helpers around it and a private directory, all closed
    with ``stack``."""

    def __init__(self, module: Optional[ModuleType], case: Row,
                 stack: contextlib.ExitStack) -> None:
        self.module = module
        self.case = case
        self.stack = stack
        self.family = FAMILIES[case.family]
        self.kind = ALL_KINDS[case.kind]
        self.dir = tempfile.mkdtemp(prefix="fs-", dir="/tmp")
        stack.callback(_remove_tree, self.dir)
        self.abstract_prefix = f"fastsock-parity-{os.getpid()}-{next(_serials)}-"
        self.peer: Optional[socket.socket] = None  # the accepted or datagram peer
        self._peer_socket: Optional[socket.socket] = None
        self._cache: dict[Ref, Any] = {}
        self.sock = self._make()

    # -- sockets --------------------------------------------------------------

    def _make(self) -> Any:
        if self.module is None:
            sock: Any = socket.socket(self.family, self.kind)
        else:
            sock = api_class(self.module, self.kind)(self.family)
        self.stack.callback(sock.close)
        return sock

    def helper(self) -> socket.socket:
        """A stdlib socket of the row's family and kind, closed with the run."""
        sock = self.stack.enter_context(socket.socket(self.family, self.kind))
        sock.settimeout(5.0)
        return sock

    def loopback(self, name: str) -> Any:
        if self.family == AF_UNIX:
            return os.path.join(self.dir, name)
        return ("::1", 0) if self.family == AF_INET6 else ("127.0.0.1", 0)

    def peer_socket(self) -> socket.socket:
        """The listener (stream) or bound socket (dgram) at PEER."""
        if self._peer_socket is None:
            helper = self.helper()
            helper.bind(self.loopback("peer.sock"))
            if self.kind != socket.SOCK_DGRAM:
                helper.listen()
            self._peer_socket = helper
        return self._peer_socket

    def setup(self) -> None:
        sock, state = self.sock, self.case.state
        if state == "closed":
            self.modify()
            sock.close()
            return
        if state == "detached":
            os.close(sock.detach())
            return
        if state in ("bound", "listening") or \
                (self.kind == socket.SOCK_DGRAM and state != "unconnected"):
            sock.bind(self.resolve(LOOPBACK))
        if state == "listening":
            sock.listen()
        if state in ("connected", "peer-closed", "peer-reset"):
            listener = self.peer_socket()
            sock.connect(listener.getsockname())
            if self.kind != socket.SOCK_DGRAM:
                self.peer = self.stack.enter_context(listener.accept()[0])
            else:
                self.peer = listener
                listener.connect(sock.getsockname())
        if state == "peer-closed":
            assert self.peer is not None
            self.peer.close()
            if self.kind != socket.SOCK_DGRAM:
                assert wait_for(sock, select.POLLIN | select.POLLRDHUP), "no EOF arrived"
        if state == "peer-reset":
            assert self.peer is not None
            self.peer.setsockopt(SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            self.peer.close()
            assert wait_for(sock, select.POLLERR | select.POLLHUP), "no reset arrived"
        self.modify()

    def modify(self) -> None:
        if self.case.modifier is not None:
            self.sock.settimeout(MODIFIERS[self.case.modifier])

    # -- arguments ------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(self.resolve(item) for item in value)
        if isinstance(value, New):
            return value.make()
        if not isinstance(value, Ref):
            return value
        if value == OWN:
            return self.sock.getsockname()
        if value not in self._cache:
            self._cache[value] = self._make_ref(value)
        return self._cache[value]

    def _make_ref(self, ref: Ref) -> Any:
        if ref == PEER:
            return self.peer_socket().getsockname()
        if ref == LOOPBACK:
            return self.loopback("own.sock")
        if ref == REFUSED:
            holder = self.helper()
            holder.bind(self.loopback("refused.sock"))
            if self.family == AF_UNIX:
                holder.close()  # a socket file nobody listens on
                return os.path.join(self.dir, "refused.sock")
            return holder.getsockname()  # bound, not listening
        if ref.name == "peer_port":
            return self.peer_socket().getsockname()[1]
        if ref == MISSING:
            return os.path.join(self.dir, "missing.sock")
        if ref == FULL:
            where = os.path.join(self.dir, "full.sock")
            full_unix_listener(where, self.stack)
            return where
        if ref.name == "path":
            return os.path.join(self.dir, ref.arg)
        if ref.name == "bytes_path":
            return os.fsencode(os.path.join(self.dir, ref.arg))
        if ref.name == "bytearray_path":
            return bytearray(os.fsencode(os.path.join(self.dir, ref.arg)))
        if ref.name == "path_like":
            return pathlib.Path(self.dir, ref.arg)
        if ref.name == "abstract":
            return b"\0" + (self.abstract_prefix + ref.arg).encode()
        if ref.name == "abstract_str":
            return "\0" + self.abstract_prefix + ref.arg
        raise ValueError(f"unknown reference {ref!r}")

    # -- steps ----------------------------------------------------------------

    def call(self, step: Step, args: tuple[Any, ...]) -> Any:
        pseudo = PSEUDO_STEPS.get(step.method)
        if pseudo is not None:
            return pseudo(self, *args)
        if step.method.startswith("peer."):
            target: Any = self.peer if self.peer is not None else self.peer_socket()
            return getattr(target, step.method[5:])(*args)
        return getattr(self.sock, step.method)(*args)

    def outcome(self, step: Step) -> Outcome:
        args = self.resolve(step.args)
        fresh = [arg for arg, spec in zip(args, step.args) if isinstance(spec, New)]
        return self._outcome(step, args) + tuple(bytes(memoryview(arg)) for arg in fresh)

    def _outcome(self, step: Step, args: tuple[Any, ...]) -> Outcome:
        try:
            value = self.call(step, args)
        except Exception as exc:  # noqa: BLE001 - the exception is the outcome
            message = self.shape(str(exc))
            if isinstance(exc, TypeError) and ARITY.search(message):
                message = "<wrong number of arguments>"  # the caller machinery's words
            if step.method in ("pickle", "copy"):
                message = "<refused>"  # the words are the pickle machinery's
            return (type(exc).__name__, getattr(exc, "errno", None), message)
        if step.method == "detach" and isinstance(value, int) and value >= 0:
            self.stack.callback(os.close, value)
        if step.method in ("fileno", "detach"):
            return ("ok", "<fd>" if value >= 0 else value)
        return ("ok", self.shape(value))

    def shape(self, value: Any) -> Any:
        """``value`` without what differs from run to run."""
        if isinstance(value, tuple):
            if len(value) in (2, 4) and isinstance(value[0], str) and \
                    type(value[1]) is int and value[1] > 0:  # an inet address
                return (self.shape(value[0]), "<port>", *value[2:])
            return tuple(self.shape(item) for item in value)
        if isinstance(value, list):
            return [self.shape(item) for item in value]
        if isinstance(value, str):
            return value.replace(self.dir, "<dir>").replace(self.abstract_prefix, "<abstract>")
        if isinstance(value, bytes):
            if re.fullmatch(rb"\0[0-9a-f]{5}", value):
                return "<autobind>"
            return value.replace(os.fsencode(self.dir), b"<dir>").replace(
                self.abstract_prefix.encode(), b"<abstract>")
        if hasattr(value, "fileno") and hasattr(value, "recv"):  # accept()'s socket
            self.stack.callback(value.close)
            return "<socket>"
        return value

    def outcomes(self) -> list[tuple[str, Outcome]]:
        with alarm_after(HANG_LIMIT, _hung):
            self.setup()
            results = []
            for step in self.case.steps:
                try:
                    results.append((step.label, self.outcome(step)))
                except StepHung:
                    raise StepHung(f"{step.label} blocked for more than {HANG_LIMIT} s") \
                        from None
            return results


def _remove_tree(directory: str) -> None:
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


# -- pseudo-steps: what is not a method ------------------------------------------


def _repr_shape(run: Run) -> dict[str, Any]:
    """What a repr must say: closed or not, fd, and the addresses (the class
    name, family and type spelling, and the stdlib's proto are free)."""
    text = repr(run.sock)
    shape: dict[str, Any] = {"closed": "[closed]" in text}
    for key in ("fd", "laddr", "raddr"):
        found = re.search(rf"\b{key}=(.*?)(?:, \w+=|>$)", text)
        if found is None:
            continue
        raw = found.group(1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # the stdlib writes a Unix path with str(), not repr()
        shape[key] = ("<fd>" if value >= 0 else value) if key == "fd" else run.shape(value)
    return shape


def _pickle(run: Run, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    return pickle.dumps(run.sock, protocol)


def _copy(run: Run) -> Any:
    return copy.copy(run.sock)


def _with(run: Run) -> bool:
    """A with block around the socket; whether ``as`` gave the socket itself."""
    with run.sock as entered:
        return entered is run.sock


def _wait_readable(run: Run) -> bool:
    return wait_for(run.sock, select.POLLIN)


def _wait_writable(run: Run) -> bool:
    return wait_for(run.sock, select.POLLOUT)


def _new(run: Run, *args: Any) -> Any:
    """Another socket made by the API's constructor for the row's kind
    (``socket.socket``, ``StreamSocket``, ``DatagramSocket``, ...) with ``args``;
    given no type, the stdlib's gets the row's."""
    if len(args) < 2:  # the row's type where none is given
        args = (args[0] if args else AF_INET, run.kind)
    if run.module is None:
        made: Any = socket.socket(*args)
    else:
        made = api_class(run.module, run.kind)(*args)
    run.stack.callback(made.close)
    return (repr(made.family), repr(made.type), made.proto, made.gettimeout(),
            made.timeout, os.get_blocking(made.fileno()), made.get_inheritable())


def _connect_client(run: Run) -> None:
    """A stdlib client connects to the (listening) socket under test."""
    client = run.helper()
    client.connect(run.sock.getsockname())


PSEUDO_STEPS: dict[str, Callable[..., Any]] = {
    "repr": _repr_shape,
    "pickle": _pickle,
    "copy": _copy,
    "with": _with,
    "wait_readable": _wait_readable,
    "wait_writable": _wait_writable,
    "connect_client": _connect_client,
    "new": _new,
}


# -- the table ---------------------------------------------------------------------

NONCONTIGUOUS = New(lambda: memoryview(bytearray(8))[::2], text="memoryview(bytearray(8))[::2]")
LONG_PATH = "/tmp/" + "x" * 103          # 108 bytes: no room for the terminating NUL
LONGEST_PATH_NAME = "x" * 60              # fits in any private directory
LONG_ABSTRACT = b"\0" + b"a" * 108        # 109 bytes
INT4 = struct.pack("i", 1)
MSG = b"hello parity"

ROWS: list[Row] = []

# getsockname, getpeername and fileno in every state of every family and kind
for _family, _kind, _state in itertools.product(FAMILIES, KINDS, STATES):
    if (_kind == "dgram" and _state in ("listening", "peer-reset")) or \
            (_family == "unix" and _state == "peer-reset"):
        continue
    ROWS.append(row(f"names {_family} {_kind} {_state}", f"{_family} {_kind} {_state}",
                    "getsockname", "getpeername", "fileno", "gettimeout", "getblocking",
                    "repr"))

ROWS += [
    # -- AF_INET addresses ---------------------------------------------------------
    row("inet bind loopback", "inet stream unconnected",
        ("bind", ("127.0.0.1", 0)), "getsockname"),
    row("inet bind wildcard", "inet stream unconnected", ("bind", ("", 0)), "getsockname"),
    row("inet bind 0.0.0.0", "inet dgram unconnected", ("bind", ("0.0.0.0", 0)), "getsockname"),
    row("inet bind localhost", "inet stream unconnected",
        ("bind", ("localhost", 0)), "getsockname"),
    row("inet bind bytes host", "inet stream unconnected",
        ("bind", (b"127.0.0.1", 0)), "getsockname"),
    row("inet bind bytearray host", "inet dgram unconnected",
        ("bind", (bytearray(b"127.0.0.1"), 0)), "getsockname"),
    row("inet bind <broadcast>", "inet dgram unconnected", ("bind", ("<broadcast>", 0))),
    row("inet bind port __index__", "inet stream unconnected",
        ("bind", ("127.0.0.1", Index(0))), "getsockname"),
    row("inet bind port bool", "inet stream unconnected", ("bind", ("127.0.0.1", False))),
    row("inet bind twice", "inet stream bound", ("bind", LOOPBACK)),
    row("inet bind address in use", "inet stream unconnected", ("bind", IN_USE)),
    row("inet dgram bind address in use", "inet dgram unconnected", ("bind", IN_USE)),
    row("inet bind in use with SO_REUSEADDR", "inet stream unconnected",
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, 1), ("bind", IN_USE)),
    row("inet bind after listen", "inet stream listening", ("bind", ("127.0.0.1", 0))),
    row("inet bind when connected", "inet stream connected", ("bind", ("127.0.0.1", 0))),
    row("inet bind port 65536", "inet stream unconnected", ("bind", ("127.0.0.1", 65536))),
    row("inet bind port -1", "inet dgram unconnected", ("bind", ("127.0.0.1", -1))),
    row("inet bind unix path", "inet stream unconnected", ("bind", path("x"))),
    row("inet bind list", "inet stream unconnected", ("bind", ["127.0.0.1", 0])),
    row("inet bind no argument", "inet stream unconnected", "bind"),
    row("inet bind two arguments", "inet stream unconnected", ("bind", "127.0.0.1", 0)),
    # -- AF_INET6 addresses ----------------------------------------------------------
    row("inet6 bind 2-tuple", "inet6 stream unconnected", ("bind", ("::1", 0)), "getsockname"),
    row("inet6 bind 3-tuple", "inet6 dgram unconnected", ("bind", ("::1", 0, 5)), "getsockname"),
    row("inet6 bind 4-tuple", "inet6 dgram unconnected",
        ("bind", ("::1", 0, 0, 0)), "getsockname"),
    row("inet6 bind wildcard", "inet6 stream unconnected", ("bind", ("", 0)), "getsockname"),
    row("inet6 bind ::", "inet6 dgram unconnected", ("bind", ("::", 0)), "getsockname"),
    row("inet6 bind v4-mapped", "inet6 stream unconnected",
        ("bind", ("::ffff:127.0.0.1", 0)), "getsockname"),
    row("inet6 bind unknown scope", "inet6 stream unconnected", ("bind", ("::1", 0, 0, 999))),
    row("inet6 bind flowinfo -10", "inet6 stream unconnected", ("bind", ("::1", 0, -10))),
    row("inet6 bind twice", "inet6 stream bound", ("bind", LOOPBACK)),
    row("inet6 bind address in use", "inet6 stream unconnected", ("bind", IN_USE)),
    row("inet6 bind IPv4 tuple", "inet6 dgram unconnected", ("bind", ("127.0.0.1", 0))),
    row("inet6 bind 5-tuple", "inet6 dgram unconnected", ("bind", ("::1", 0, 0, 0, 0))),
    row("inet6 connect refused", "inet6 stream unconnected", ("connect", REFUSED),
        "getpeername"),
    row("inet6 connect_ex refused", "inet6 stream unconnected", ("connect_ex", REFUSED)),
    # -- AF_UNIX addresses -------------------------------------------------------------
    row("unix bind str path", "unix stream unconnected", ("bind", path("a")), "getsockname"),
    row("unix bind bytes path", "unix stream unconnected",
        ("bind", bytes_path("a")), "getsockname"),
    row("unix bind bytearray path", "unix dgram unconnected",
        ("bind", Ref("bytearray_path", "a")), "getsockname"),
    row("unix bind path-like", "unix stream unconnected",
        ("bind", path_like("a")), "getsockname",
        differs=Documented("bind", "a str, bytes or path-like path for AF_UNIX")),
    row("unix bind abstract bytes", "unix stream unconnected",
        ("bind", abstract("a")), "getsockname"),
    row("unix bind abstract str", "unix dgram unconnected",
        ("bind", abstract_str("a")), "getsockname"),
    row("unix bind autobind", "unix stream unconnected", ("bind", ""), "getsockname"),
    row("unix bind autobind bytes", "unix dgram unconnected", ("bind", b""), "getsockname"),
    row("unix bind surrogate-escaped path", "unix stream unconnected",
        ("bind", path("\udcff")), "getsockname"),
    row("unix bind path too long", "unix stream unconnected", ("bind", LONG_PATH)),
    row("unix bind bytes path too long", "unix dgram unconnected",
        ("bind", LONG_PATH.encode())),
    row("unix bind abstract name too long", "unix stream unconnected", ("bind", LONG_ABSTRACT)),
    row("unix connect path too long", "unix stream unconnected", ("connect", LONG_PATH)),
    row("unix connect_ex path too long", "unix stream unconnected", ("connect_ex", LONG_PATH)),
    row("unix bind int", "unix stream unconnected", ("bind", 5)),
    row("unix bind None", "unix stream unconnected", ("bind", None)),
    row("unix bind float", "unix dgram unconnected", ("bind", 1.5)),
    row("unix bind tuple", "unix stream unconnected", ("bind", ("127.0.0.1", 0))),
    row("unix bind existing path", "unix stream unconnected", ("bind", IN_USE)),
    row("unix bind twice", "unix stream bound", ("bind", path("other"))),
    row("unix bind missing directory", "unix stream unconnected", ("bind", path("no/such"))),
    row("unix bind embedded NUL", "unix stream unconnected",
        ("bind", path("cut\0short")), "getsockname",
        differs=Documented("bind", "a path with a NUL after its first byte raises ValueError")),
    row("unix connect missing", "unix stream unconnected", ("connect", MISSING)),
    row("unix connect_ex missing", "unix stream unconnected", ("connect_ex", MISSING)),
    row("unix connect refused", "unix stream unconnected", ("connect", REFUSED)),
    row("unix connect_ex refused", "unix stream unconnected", ("connect_ex", REFUSED)),
    row("unix connect abstract nobody", "unix stream unconnected",
        ("connect", abstract("nobody"))),
    row("unix dgram sendto missing", "unix dgram unconnected", ("sendto", b"x", MISSING)),
    row("unix dgram sendto refused", "unix dgram unconnected", ("sendto", b"x", REFUSED)),
    row("unix dgram sendto unbound sender", "unix dgram unconnected",
        ("sendto", MSG, PEER), ("peer.recvfrom", 100)),
    row("unix accept from unbound client", "unix stream listening",
        "connect_client", "accept"),
    row("unix abstract listener", "unix stream unconnected",
        ("bind", abstract("srv")), "listen", "connect_client", "accept", "getsockname"),
]

# -- options -----------------------------------------------------------------------
ROWS += [
    row("SO_REUSEADDR default, set, read back", "inet stream unconnected",
        ("getsockopt", SOL_SOCKET, socket.SO_REUSEADDR),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, 1),
        ("getsockopt", SOL_SOCKET, socket.SO_REUSEADDR),
        ("getsockopt", SOL_SOCKET, socket.SO_REUSEADDR, 4)),
    row("SO_REUSEADDR as bytes", "inet6 stream unconnected",
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, INT4),
        ("getsockopt", SOL_SOCKET, socket.SO_REUSEADDR)),
    row("option values as bytearray, memoryview, bool, __index__", "inet dgram unconnected",
        ("setsockopt", SOL_SOCKET, socket.SO_BROADCAST, bytearray(INT4)),
        ("getsockopt", SOL_SOCKET, socket.SO_BROADCAST),
        ("setsockopt", SOL_SOCKET, socket.SO_BROADCAST, memoryview(bytes(4))),
        ("getsockopt", SOL_SOCKET, socket.SO_BROADCAST),
        ("setsockopt", SOL_SOCKET, socket.SO_BROADCAST, True),
        ("getsockopt", SOL_SOCKET, socket.SO_BROADCAST),
        ("setsockopt", SOL_SOCKET, socket.SO_BROADCAST, Index(0)),
        ("getsockopt", SOL_SOCKET, socket.SO_BROADCAST)),
    row("SO_RCVBUF and SO_SNDBUF", "inet stream connected",
        ("setsockopt", SOL_SOCKET, socket.SO_RCVBUF, 4096),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF),
        ("setsockopt", SOL_SOCKET, socket.SO_SNDBUF, 8192),
        ("getsockopt", SOL_SOCKET, socket.SO_SNDBUF),
        ("getsockopt", SOL_SOCKET, socket.SO_SNDBUF, 8)),
    row("SO_RCVBUF on a Unix datagram socket", "unix dgram bound",
        ("setsockopt", SOL_SOCKET, socket.SO_RCVBUF, 1),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF)),
    row("TCP_NODELAY", "inet stream connected",
        ("getsockopt", IPPROTO_TCP, socket.TCP_NODELAY),
        ("setsockopt", IPPROTO_TCP, socket.TCP_NODELAY, 1),
        ("getsockopt", IPPROTO_TCP, socket.TCP_NODELAY)),
    row("TCP_NODELAY on IPv6", "inet6 stream unconnected",
        ("setsockopt", IPPROTO_TCP, socket.TCP_NODELAY, 1),
        ("getsockopt", IPPROTO_TCP, socket.TCP_NODELAY)),
    row("TCP_NODELAY on a Unix socket", "unix stream unconnected",
        ("setsockopt", IPPROTO_TCP, socket.TCP_NODELAY, 1),
        ("getsockopt", IPPROTO_TCP, socket.TCP_NODELAY)),
    row("TCP_NODELAY on UDP", "inet dgram unconnected",
        ("setsockopt", IPPROTO_TCP, socket.TCP_NODELAY, 1),
        ("getsockopt", IPPROTO_TCP, socket.TCP_NODELAY)),
    row("SO_TYPE, SO_ACCEPTCONN, SO_DOMAIN", "inet stream listening",
        ("getsockopt", SOL_SOCKET, socket.SO_TYPE),
        ("getsockopt", SOL_SOCKET, socket.SO_ACCEPTCONN),
        ("getsockopt", SOL_SOCKET, socket.SO_DOMAIN)),
    row("SO_TYPE of a datagram socket", "unix dgram unconnected",
        ("getsockopt", SOL_SOCKET, socket.SO_TYPE), ("getsockopt", SOL_SOCKET, socket.SO_TYPE, 4)),
    row("SO_LINGER as a struct", "inet stream unconnected",
        ("setsockopt", SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5)),
        ("getsockopt", SOL_SOCKET, socket.SO_LINGER, 8),
        ("getsockopt", SOL_SOCKET, socket.SO_LINGER, 1024),
        ("getsockopt", SOL_SOCKET, socket.SO_LINGER)),
    row("getsockopt buflen edges", "inet stream unconnected",
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, 1),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, 0),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, -1),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, 1025),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, 2**31),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, "4")),
    row("option value too short", "inet stream unconnected",
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, b"\x01"),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, b"")),
    row("unknown level and option", "inet stream unconnected",
        ("setsockopt", 9999, 1, 1), ("getsockopt", 9999, 1),
        ("setsockopt", SOL_SOCKET, 12345, 1), ("getsockopt", SOL_SOCKET, 12345),
        ("getsockopt", SOL_SOCKET, 12345, 16)),
    row("option argument types", "unix stream unconnected",
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, "1"),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, None),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, 1.0),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, NONCONTIGUOUS),
        ("setsockopt", "1", socket.SO_REUSEADDR, 1),
        ("getsockopt", SOL_SOCKET, None),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR),
        ("getsockopt", SOL_SOCKET)),
    row("SO_ERROR after a refused blocking connect", "inet stream unconnected",
        ("connect", REFUSED), ("getsockopt", SOL_SOCKET, socket.SO_ERROR)),
    row("SO_ERROR after a refused non-blocking connect", "inet stream unconnected nonblocking",
        ("connect_ex", REFUSED), "wait_writable",
        ("getsockopt", SOL_SOCKET, socket.SO_ERROR), ("getsockopt", SOL_SOCKET, socket.SO_ERROR),
        ("connect_ex", REFUSED)),
    row("SO_ERROR after a refused connect, as bytes", "inet stream unconnected nonblocking",
        ("connect", REFUSED), "wait_writable",
        ("getsockopt", SOL_SOCKET, socket.SO_ERROR, 4), "getpeername", ("recv", 1)),
    row("SO_ERROR after a reset", "inet stream peer-reset",
        ("getsockopt", SOL_SOCKET, socket.SO_ERROR), ("getsockopt", SOL_SOCKET, socket.SO_ERROR),
        ("recv", 10)),
    row("options of a closed socket", "unix dgram closed",
        ("setsockopt", SOL_SOCKET, socket.SO_RCVBUF, 4096),
        ("setsockopt", SOL_SOCKET, socket.SO_RCVBUF, INT4),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, 4),
        ("getsockopt", SOL_SOCKET, socket.SO_RCVBUF, 4096)),
]

# -- timeouts ----------------------------------------------------------------------
_TIMEOUT_VALUES: list[Any] = [None, 0, 0.0, -0.0, 1, 2.5, 1e-10, True, False, Index(3),
                              -1, -0.5, float("nan"), float("inf"), float("-inf"), 1e300,
                              2**70, "1", b"1", [], 1j]
ROWS += [
    row(f"settimeout({value!r})", "inet stream unconnected",
        ("settimeout", value), "gettimeout", "getblocking")
    for value in _TIMEOUT_VALUES
]
ROWS += [
    row(f"setblocking({value!r})", "unix dgram unconnected",
        ("settimeout", 5), ("setblocking", value), "gettimeout", "getblocking")
    for value in [True, False, 0, 1, -1, 2**40, 2**64, Index(0), "x", None, 1.0, b""]
]
ROWS += [
    row("timeout round trips", "inet stream connected",
        ("settimeout", 3), "gettimeout", "getblocking",
        ("setblocking", False), "gettimeout", "getblocking",
        ("settimeout", None), "gettimeout", "getblocking",
        ("settimeout", 0.25), ("setblocking", True), "gettimeout",
        ("settimeout", 1 / 3), "gettimeout"),
    row("settimeout on a closed socket", "inet stream closed",
        ("settimeout", 5), "gettimeout", "getblocking", ("setblocking", False), "gettimeout",
        ("settimeout", -1), ("settimeout", "x")),
    row("timeout modifier kept after close", "unix stream unconnected timeout",
        "close", "gettimeout", "getblocking"),
    row("recv with a timeout", "inet stream connected timeout",
        ("recv", 10), ("recv_into", buf(4)), ("peer.sendall", MSG), "wait_readable",
        ("recv", 100)),
    row("recv non-blocking", "unix stream connected nonblocking",
        ("recv", 10), ("recv_into", buf(4)), ("peer.sendall", MSG), "wait_readable",
        ("recv", 100), ("recv", 100)),
    row("recvfrom with a timeout", "inet dgram bound timeout",
        ("recvfrom", 10), ("recvfrom_into", buf(4)), ("recv", 1)),
    row("recvfrom non-blocking", "unix dgram bound nonblocking",
        ("recvfrom", 10), ("recvfrom_into", buf(4)), ("recv_into", buf(4))),
    row("MSG_DONTWAIT on a blocking socket", "inet stream connected",
        ("recv", 10, socket.MSG_DONTWAIT), ("recv_into", buf(3), 0, socket.MSG_DONTWAIT)),
    row("accept with a timeout", "inet stream listening timeout", "accept", "accept"),
    row("accept non-blocking", "unix stream listening nonblocking",
        "accept", "connect_client", "wait_readable", "accept", "accept"),
    row("connect with a timeout to a full backlog", "unix stream unconnected timeout",
        ("connect", FULL), "getpeername"),
    row("connect_ex with a timeout to a full backlog", "unix stream unconnected timeout",
        ("connect_ex", FULL)),
    row("connect non-blocking to a full backlog", "unix stream unconnected nonblocking",
        ("connect", FULL), ("connect_ex", FULL)),
    row("connect non-blocking", "inet stream unconnected nonblocking",
        ("connect", PEER), "wait_writable", ("connect", PEER), ("connect_ex", PEER),
        "getpeername"),
    row("connect_ex non-blocking", "inet6 stream unconnected nonblocking",
        ("connect_ex", PEER), "wait_writable", ("connect_ex", PEER)),
    row("connect with a timeout", "inet stream unconnected timeout",
        ("connect", PEER), "getpeername", "gettimeout"),
    row("connect refused with a timeout", "inet stream unconnected timeout",
        ("connect", REFUSED), ("connect_ex", REFUSED)),
]

# -- shutdown ----------------------------------------------------------------------
_SHUT_AFTER: list[StepSpec] = [("send", b"x"), ("recv", 10), ("peer.recv", 10)]
ROWS += [
    row("shutdown SHUT_RD", "inet stream connected",
        ("shutdown", socket.SHUT_RD), ("recv", 10), ("send", b"x"), ("peer.recv", 10),
        ("shutdown", socket.SHUT_RD)),
    row("shutdown SHUT_WR", "inet stream connected",
        ("shutdown", socket.SHUT_WR), ("send", b"x"), ("sendall", b"x"), ("peer.recv", 10),
        ("peer.sendall", MSG), ("recv", 100)),
    row("shutdown SHUT_RDWR", "unix stream connected",
        ("shutdown", socket.SHUT_RDWR), *_SHUT_AFTER, "getpeername"),
    row("shutdown twice", "inet stream connected",
        ("shutdown", socket.SHUT_RDWR), ("shutdown", socket.SHUT_RDWR)),
    row("shutdown bad how", "inet stream connected",
        ("shutdown", 3), ("shutdown", -1), ("shutdown", 2**31), ("shutdown", "1"),
        ("shutdown", 1.0), ("shutdown", None), "shutdown", ("shutdown", Index(2))),
    row("shutdown unconnected", "inet stream unconnected", ("shutdown", socket.SHUT_RDWR)),
    row("shutdown unconnected Unix", "unix stream bound", ("shutdown", socket.SHUT_WR)),
    row("shutdown listening", "inet stream listening",
        ("shutdown", socket.SHUT_RD), "accept"),
    row("shutdown after the peer closed", "inet stream peer-closed",
        ("shutdown", socket.SHUT_WR), ("recv", 1)),
    row("shutdown after a reset", "inet stream peer-reset", ("shutdown", socket.SHUT_RDWR)),
    row("shutdown unconnected datagram", "inet dgram unconnected",
        ("shutdown", socket.SHUT_RDWR)),
    row("shutdown connected datagram", "unix dgram connected",
        ("shutdown", socket.SHUT_WR), ("send", b"x"), ("peer.send", b"y"), ("recv", 10)),
    row("shutdown closed", "unix stream closed", ("shutdown", socket.SHUT_RDWR),
        ("shutdown", 3)),
]

# -- closed and detached sockets: every method ---------------------------------------
_EVERY_METHOD: list[StepSpec] = [
    ("bind", LOOPBACK), "listen", "accept", ("connect", PEER), ("connect_ex", PEER),
    ("recv", 1), ("recv_into", buf(1)),
    ("send", b"x"), ("send", b""), ("sendall", b"x"), ("sendall", b""),
    ("shutdown", socket.SHUT_RDWR), "getsockname", "getpeername",
    ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, 1),
    ("getsockopt", SOL_SOCKET, socket.SO_REUSEADDR), ("settimeout", 1.0),
    "gettimeout", ("setblocking", False), "getblocking", "fileno", "close", "close",
    "detach", "repr",
]
_STREAM_ONLY = {"listen", "accept", "sendall"}
_DGRAM_METHODS: list[StepSpec] = [
    ("sendto", b"x", PEER), ("sendto", b"x", 0, PEER), ("recvfrom", 1), ("recvfrom", 0),
    ("recvfrom_into", buf(1)),
]


def _method(spec: StepSpec) -> str:
    return spec if isinstance(spec, str) else str(spec[0])


for _family, _kind, _state in itertools.product(FAMILIES, KINDS, ("closed", "detached")):
    _steps = [spec for spec in _EVERY_METHOD if _kind == "stream" or
              _method(spec) not in _STREAM_ONLY]
    if _kind == "dgram":
        _steps += _DGRAM_METHODS
    ROWS.append(row(f"every method {_family} {_kind} {_state}", f"{_family} {_kind} {_state}",
                    *_steps))

# the stdlib answers a zero-byte receive without looking at the descriptor
_CLOSED_EBADF = Documented("close", "recv(0) and a recv_into() of 0 bytes too")
ROWS += [
    row(f"zero-byte receive {_family} {_kind} {_state}", f"{_family} {_kind} {_state}",
        ("recv", 0), ("recv_into", buf(0)), ("recv_into", buf(4), 0), ("recv", 1),
        differs=_CLOSED_EBADF)
    for _family, _kind, _state in itertools.product(("inet", "unix"), KINDS,
                                                    ("closed", "detached"))
]
ROWS += [
    row("close twice, then detach", "inet stream connected", "close", "close", "detach",
        "fileno", ("recv", 1)),
    row("detach, then close", "unix stream connected", "detach", "detach", "close", "fileno",
        ("send", b"x")),
    row("with block closes", "inet stream connected", "with", "fileno", ("send", b"x"),
        "close", "with"),
    row("with block of a datagram socket", "unix dgram bound", "with", "getsockname", "repr"),
]

# -- listen, accept, connect in each state -------------------------------------------
ROWS += [
    row("listen unbound inet autobinds", "inet stream unconnected", "listen", "getsockname"),
    row("listen unbound Unix", "unix stream unconnected", "listen", "getsockname"),
    row("listen backlogs", "inet stream bound",
        ("listen", 0), ("listen", -1), ("listen", 2**31), ("listen", 1.0), ("listen", "1"),
        ("listen", Index(5)), ("listen", True), ("listen", None), ("listen", 1, 2)),
    row("listen twice", "unix stream listening", "listen", ("listen", 3)),
    row("listen when connected", "inet stream connected", "listen"),
    row("listen after the peer closed", "unix stream peer-closed", "listen"),
    row("accept unconnected", "inet stream unconnected", "accept"),
    row("accept bound, not listening", "unix stream bound", "accept"),
    row("accept when connected", "inet stream connected", "accept"),
    row("accept a connection", "inet stream listening",
        "connect_client", "accept", "getsockname", "getpeername"),
    row("accept an IPv6 connection", "inet6 stream listening", "connect_client", "accept"),
    row("accept with arguments", "inet stream listening", ("accept", 1)),
    row("connect and read the names", "inet stream unconnected",
        ("connect", PEER), "getpeername", "getsockname"),
    row("connect twice", "inet stream unconnected", ("connect", PEER), ("connect", PEER),
        ("connect_ex", PEER)),
    row("connect when listening", "inet stream listening", ("connect", PEER),
        ("connect_ex", PEER)),
    row("connect Unix when listening", "unix stream listening", ("connect", PEER)),
    row("connect refused", "inet stream unconnected", ("connect", REFUSED), "getpeername",
        ("connect", PEER), "getpeername"),
    row("connect_ex refused", "inet stream bound", ("connect_ex", REFUSED),
        ("connect_ex", REFUSED), ("connect_ex", PEER)),
    row("connect after the peer closed", "inet stream peer-closed", ("connect", PEER),
        ("connect_ex", PEER)),
    row("connect after a reset", "inet stream peer-reset", ("connect_ex", PEER),
        "getpeername"),
    row("connect_ex argument errors still raise", "inet stream unconnected",
        ("connect_ex", "x"), ("connect_ex", ("127.0.0.1", 70000)), ("connect_ex", None)),
    row("connect argument count", "inet stream unconnected", "connect", ("connect", PEER, 1),
        "connect_ex"),
    row("datagram connect, names, send", "inet dgram unconnected",
        ("connect", PEER), "getpeername", ("send", MSG), ("peer.recvfrom", 100)),
    row("datagram connect Unix", "unix dgram bound", ("connect", PEER), "getpeername",
        ("send", MSG), ("peer.recv", 100)),
    row("datagram connect missing", "unix dgram unconnected", ("connect", MISSING),
        ("connect_ex", MISSING)),
    row("datagram connect again", "inet dgram connected", ("connect", REFUSED),
        "getpeername"),
    row("datagram unconnected send and recv", "inet dgram unconnected", ("send", b"x")),
    row("datagram Unix unconnected send", "unix dgram bound", ("send", b"x")),
    row("datagram sendto when connected", "inet dgram connected",
        ("sendto", MSG, PEER), ("peer.recv", 100)),
    row("datagram Unix sendto when connected", "unix dgram connected",
        ("sendto", MSG, PEER), ("sendto", MSG, REFUSED)),
    row("datagram peer closed", "unix dgram peer-closed",
        ("send", b"x"), ("send", b"x"), ("recv", 1, socket.MSG_DONTWAIT), "getpeername"),
]

# -- data: argument checks ---------------------------------------------------------
ROWS += [
    row("recv sizes", "unix stream connected",
        ("peer.sendall", MSG), "wait_readable", ("recv", 0), ("recv", 5), ("recv", -1),
        ("recv", 2**63), ("recv", "5"), ("recv", 5.0), ("recv", Index(3)), ("recv", True),
        ("recv", 1000)),
    row("recv flags", "inet stream connected",
        ("peer.sendall", MSG), "wait_readable", ("recv", 5, socket.MSG_PEEK),
        ("recv", 5, Index(socket.MSG_PEEK)), ("recv", 5, "0"), ("recv", 5, 1.0),
        ("recv", 5, 2**32), ("recv", 5, True), ("recv", 5, None), "recv",
        ("recv", 5, 0, 0), ("recv", 100)),
    row("recv MSG_OOB without urgent data", "unix stream connected",
        ("recv", 5, socket.MSG_OOB)),
    row("recv MSG_OOB without urgent data, TCP", "inet stream connected",
        ("recv", 5, socket.MSG_OOB)),
    row("recv_into buffers", "unix stream connected",
        ("peer.sendall", MSG * 4), "wait_readable",
        ("recv_into", buf(4)), ("recv_into", New(lambda: memoryview(bytearray(6))[1:4], text="memoryview(bytearray(6))[1:4]")),
        ("recv_into", New(array, "i", [0, 0])), ("recv_into", New(array, "B", [0] * 5), 2),
        ("recv_into", buf(0)), ("recv_into", buf(3), 0, socket.MSG_PEEK),
        ("recv", 100)),
    row("recv_into bad buffers", "unix stream connected",
        ("recv_into", b"abcd"), ("recv_into", memoryview(b"abcd")), ("recv_into", "abcd"),
        ("recv_into", NONCONTIGUOUS), ("recv_into", None), ("recv_into", buf(4), 5),
        ("recv_into", buf(4), -1), ("recv_into", buf(4), 2**63),
        ("recv_into", buf(4), "1"), ("recv_into", buf(4), 0, "0"),
        ("recv_into", buf(4), 0, 2**40), "recv_into",
        ("recv_into", buf(4), -1, "0")),
    row("recv_into keywords", "unix stream connected",
        ("peer.sendall", MSG), "wait_readable", ("recv_into", buf(20), 3), ("recv", 100)),
    row("send data kinds", "unix stream connected",
        ("send", MSG), ("send", bytearray(b"ab")), ("send", memoryview(b"abcdef")[2:4]),
        ("send", array("i", [1, 2])), ("send", b""), ("sendall", array("h", [7])),
        ("sendall", memoryview(b"xyz")), ("peer.recv", 1000)),
    row("send bad data", "unix stream connected",
        ("send", "text"), ("send", 5), ("send", None), ("send", NONCONTIGUOUS),
        ("send", b"x", "0"), ("send", b"x", 1.0), ("send", b"x", 2**31), "send",
        ("sendall", "text"), ("sendall", NONCONTIGUOUS), ("sendall", b"x", None), "sendall",
        ("send", "text", "0"), ("send", NONCONTIGUOUS, 2**40), ("sendall", "text", "0"),
        ("sendall", None, 2**40)),
    row("send flags", "inet stream connected",
        ("send", b"ab", socket.MSG_DONTWAIT), ("send", b"cd", Index(0)), ("send", b"ef", True),
        ("sendall", b"gh", socket.MSG_DONTWAIT), ("peer.recv", 100)),
    row("send unconnected", "inet stream unconnected",
        ("send", b"x"), ("sendall", b"x"), ("send", b""), ("recv", 1), ("recv_into",
                                                                       buf(1))),
    row("send unconnected Unix", "unix stream bound", ("send", b"x"), ("recv", 1)),
    row("send when listening", "inet stream listening", ("send", b"x"), ("recv", 1)),
    row("datagram sendto forms", "inet dgram bound",
        ("sendto", MSG, OWN), ("sendto", MSG, 0, OWN), ("sendto", MSG, Index(0), OWN),
        ("recvfrom", 100), ("recvfrom_into", buf(100)), ("recvfrom", 0)),
    row("datagram sendto bad arguments", "inet dgram bound",
        ("sendto", b"x"), ("sendto", b"x", 0, OWN, 4), ("sendto", "x", OWN),
        ("sendto", b"x", None), ("sendto", b"x", "0", OWN), ("sendto", b"x", None, None),
        ("sendto", 5j, 0, OWN), ("sendto", NONCONTIGUOUS, OWN), ("sendto", b"x", 0, None),
        ("sendto", b"x", ("127.0.0.1", 70000)), ("sendto", b"x", path("x")), "sendto",
        ("sendto", "x", "0", OWN), ("sendto", None, 2**40, OWN), ("sendto", b"x", 2**40, None)),
    row("datagram too large", "inet dgram bound", ("sendto", bytes(65508), OWN),
        ("sendto", bytes(65507), OWN), ("recv", 70000)),
    row("datagram recvfrom sizes", "unix dgram bound",
        ("peer.sendto", MSG, OWN), ("peer.sendto", MSG, OWN), ("peer.sendto", MSG, OWN),
        ("recvfrom", -1), ("recvfrom", "1"), ("recvfrom", 1, "0"), ("recvfrom", 3),
        ("recvfrom", 0), ("recvfrom", 100, socket.MSG_PEEK), ("recvfrom", 100),
        ("recvfrom", 100, socket.MSG_DONTWAIT)),
    row("datagram recv(0) leaves the datagram", "inet dgram connected",
        ("peer.send", MSG), "wait_readable", ("recv", 0), ("recv_into", buf(0)),
        ("recv", 100)),
    row("datagram recvfrom_into checks", "inet dgram bound",
        ("peer.sendto", MSG, OWN), ("peer.sendto", MSG, OWN), "wait_readable",
        ("recvfrom_into", buf(4), 5), ("recvfrom_into", buf(4), -1),
        ("recvfrom_into", b"abcd"), ("recvfrom_into", buf(4), 0, "0"),
        ("recvfrom_into", buf(4), 2), ("recvfrom_into", buf(0)),
        ("recvfrom", 100, socket.MSG_DONTWAIT)),
    row("datagram recv cuts", "unix dgram connected",
        ("peer.send", MSG), ("peer.send", MSG), ("recv", 3), ("recv_into", buf(5)),
        ("recv", 100, socket.MSG_DONTWAIT)),
    row("datagram MSG_TRUNC into a buffer", "inet dgram connected",
        ("peer.send", MSG), "wait_readable", ("recv_into", buf(4), 0, socket.MSG_TRUNC)),
    row("datagram MSG_TRUNC recv", "inet dgram connected",
        ("peer.send", MSG), "wait_readable", ("recv", 4, socket.MSG_TRUNC),
        differs=Documented("recv", "With MSG_TRUNC the result is still only the bytes "
                                   "received")),
    row("datagram MSG_TRUNC recvfrom", "unix dgram bound",
        ("peer.sendto", MSG, OWN), ("recvfrom", 4, socket.MSG_TRUNC),
        differs=Documented("recvfrom", "with MSG_TRUNC the bytes are still only those "
                                       "received")),
]

# -- EOF and reset -----------------------------------------------------------------
ROWS += [
    row("EOF", "inet stream peer-closed",
        ("recv", 10), ("recv", 10), ("recv_into", buf(4)), "getpeername"),
    row("EOF on Unix", "unix stream peer-closed",
        ("recv", 10), ("recv_into", buf(4)), ("send", b"x"), ("sendall", b"x"),
        ("recv", 10)),
    row("EOF after data", "unix stream connected",
        ("peer.sendall", MSG), ("peer.close",), ("recv", 5), ("recv", 100), ("recv", 100)),
    row("EOF non-blocking", "inet stream peer-closed nonblocking", ("recv", 10)),
    row("half close by the peer", "inet stream connected",
        ("peer.shutdown", socket.SHUT_WR), "wait_readable", ("recv", 10), ("send", MSG),
        ("peer.recv", 100)),
    row("reset", "inet stream peer-reset", ("recv", 10), ("recv", 10), "getpeername"),
    row("reset into a buffer", "inet6 stream peer-reset",
        ("recv_into", buf(4)), ("recv_into", buf(4))),
    row("reset non-blocking", "inet stream peer-reset nonblocking",
        ("recv", 10), ("recv", 10), ("send", b"x")),
    row("reset with a timeout", "inet stream peer-reset timeout",
        ("recv", 10), ("recv", 10)),
]

# -- repr, pickling ------------------------------------------------------------------
ROWS += [
    row(f"pickle protocol {protocol}", "inet stream unconnected", ("pickle", protocol))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1)
]
ROWS += [
    row("pickle datagram", "unix dgram bound", "pickle", "copy"),
    row("pickle closed", "inet stream closed", "pickle", "copy"),
    row("copy", "inet stream connected", "copy"),
    row("repr after bind and listen", "unix stream unconnected",
        "repr", ("bind", path("r")), "repr", "listen", "repr", "close", "repr"),
    row("repr abstract", "unix dgram unconnected", ("bind", abstract("r")), "repr"),
]


# -- more states and sequences --------------------------------------------------------
ROWS += [
    row("constructor defaults", "inet stream unconnected", "new", ("new", AF_UNIX)),
    row("constructor of a datagram socket", "unix dgram unconnected", ("new", AF_INET6)),
    row("constructor bad family", "inet stream unconnected", ("new", "x"), ("new", None)),
    row("constructor of a family the class does not take", "inet stream unconnected",
        ("new", 99), ("new", 31),
        differs=Documented("", "a family it does not take: OSError (EAFNOSUPPORT) naming "
                               "the family")),
    row("constructor with the stdlib's arguments", "inet stream unconnected",
        ("new", AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP),
        ("new", AF_INET6, socket.SOCK_STREAM | socket.SOCK_NONBLOCK),
        ("new", AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0),
        ("new", -1, -1, -1), ("new", AF_INET, socket.SOCK_STREAM, 999),
        ("new", AF_INET, socket.SOCK_STREAM, "x"), ("new", AF_INET, 1.5)),
    row("datagram constructor with the stdlib's arguments", "unix dgram unconnected",
        ("new", AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP),
        ("new", AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK),
        ("new", AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_TCP)),
    row("timeout attribute", "inet stream connected timeout", "timeout",
        ("settimeout", None), "timeout", ("setblocking", False), "timeout"),
    row("setsockopt with no value and a length", "inet stream unconnected",
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, None, 4),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, None),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, 1, 4),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, None, "x"),
        ("setsockopt", SOL_SOCKET, socket.SO_REUSEADDR, None, -1)),
    row("recvfrom and sendto on a TCP stream", "inet stream connected",
        ("peer.sendall", MSG), ("recvfrom", 5), ("recvfrom_into", buf(20)),
        ("sendto", MSG, ("127.0.0.1", 9)), ("peer.recv", 100), ("recvfrom", -1),
        ("recvfrom_into", buf(4), 5)),
    row("recvfrom and sendto on a Unix stream", "unix stream connected",
        ("peer.sendall", MSG), ("recvfrom", 5), ("recvfrom", 100, socket.MSG_PEEK),
        ("recvfrom_into", buf(20)), ("sendto", MSG, PEER), ("sendto", MSG, 0)),
    row("recvfrom at the end of a stream", "inet stream peer-closed", ("recvfrom", 10),
        ("recvfrom_into", buf(4))),
    row("recvfrom on a stream after a reset", "inet stream peer-reset", ("recvfrom", 10),
        ("recvfrom_into", buf(4))),
    row("recvfrom on a stream with nothing to read", "inet stream connected timeout",
        ("recvfrom", 10), ("recvfrom_into", buf(4))),
    row("recvfrom on a non-blocking stream", "unix stream connected nonblocking",
        ("recvfrom", 10), ("peer.sendall", MSG), "wait_readable", ("recvfrom", 100)),
    row("sendall on a connected datagram socket", "inet dgram connected",
        ("sendall", MSG), ("peer.recv", 100), ("sendall", b""), ("peer.recv", 100),
        ("sendall", "text"), ("sendall", MSG, "x")),
    row("sendall on an unconnected datagram socket", "unix dgram unconnected",
        ("sendall", MSG)),
    row("connect by name", "inet stream unconnected",
        ("connect", ("localhost", Ref("peer_port"))), "getpeername"),
    row("connect IPv6 by 4-tuple", "inet6 stream unconnected",
        ("connect", ("::1", Ref("peer_port"), 0, 0)), "getpeername"),
    row("connect IPv4 literal on IPv6", "inet6 stream unconnected",
        ("connect", ("127.0.0.1", Ref("peer_port")))),
    row("connect_ex unresolvable", "inet stream unconnected",
        ("connect_ex", ("nonexistent.invalid", 80))),
    row("non-blocking connected datagram", "inet dgram connected nonblocking",
        ("recv", 10), ("recvfrom", 10), ("send", MSG), ("peer.recv", 100)),
    row("non-blocking send on a stream", "unix stream connected nonblocking",
        ("send", MSG), ("sendall", MSG), ("peer.recv", 100)),
    row("detach with a timeout", "inet stream connected timeout",
        "detach", "gettimeout", "fileno", ("recv", 1), "close"),
    row("accept after close", "inet stream listening", "close", "accept"),
    row("listen then connect to it", "unix stream listening",
        "connect_client", "connect_client", "wait_readable", "accept", "accept",
        ("getsockopt", SOL_SOCKET, socket.SO_ACCEPTCONN)),
    row("recv after shutdown SHUT_RD on Unix", "unix stream connected",
        ("peer.sendall", MSG), ("shutdown", socket.SHUT_RD), ("recv", 100), ("recv", 100),
        ("peer.sendall", MSG), ("recv", 100)),
    row("unix datagram to an unbound peer", "unix dgram unconnected",
        ("sendto", MSG, PEER), ("peer.recvfrom", 100), ("recvfrom", 1, socket.MSG_DONTWAIT)),
    row("unix datagram answer", "unix dgram bound",
        ("sendto", MSG, PEER), ("peer.recvfrom", 100), ("peer.sendto", b"back", OWN),
        ("recvfrom", 100)),
    row("inet datagram recvfrom the peer", "inet6 dgram bound",
        ("peer.sendto", MSG, OWN), ("recvfrom", 100), ("peer.sendto", MSG, OWN),
        ("recvfrom_into", buf(20))),
]

# -- dup, inheritance, messages ---------------------------------------------------------
ROWS += [
    row("dup", "unix stream connected", "dup", ("send", b"x"),
        ("peer.recv", 10, socket.MSG_DONTWAIT)),
    row("dup of a closed socket", "inet stream connected", "close", "dup"),
    row("dup keeps the timeout", "inet stream connected timeout", "dup", "gettimeout"),
    row("inheritable", "unix stream unconnected", "get_inheritable",
        ("set_inheritable", True), "get_inheritable", ("set_inheritable", 0),
        "get_inheritable", ("set_inheritable", "x")),
    row("inheritable when closed", "inet dgram unconnected", "close", "get_inheritable",
        ("set_inheritable", True)),
    row("sendmsg and recvmsg", "unix stream connected",
        ("sendmsg", [b"ab", b"cd"]), ("peer.recv", 10, socket.MSG_DONTWAIT), ("peer.sendall", MSG),
        ("recvmsg", 100)),
]

# -- AF_UNIX SOCK_SEQPACKET: records kept whole, a longer one cut as the stdlib cuts it ---
ROWS += [
    row(f"names unix seqpacket {_state}", f"unix seqpacket {_state}",
        "getsockname", "getpeername", "fileno", "gettimeout", "getblocking", "repr")
    for _state in STATES if _state != "peer-reset"
]
ROWS += [
    row(f"every method unix seqpacket {_state}", f"unix seqpacket {_state}",
        *_EVERY_METHOD, ("recvfrom", 1), ("recvfrom", 0), ("recvfrom_into", buf(1)))
    for _state in ("closed", "detached")
]
ROWS += [
    row("seqpacket records", "unix seqpacket connected",
        ("peer.send", b"hello"), ("peer.send", b"world!"), ("peer.send", b""),
        ("recv", 3), ("recv", 100), ("recv", 100), ("peer.send", MSG), ("recvfrom", 100),
        ("peer.send", MSG), ("recv_into", buf(4)), ("peer.send", MSG),
        ("recvfrom_into", buf(20)), ("send", b"abc"), ("sendall", b"defg"),
        ("send", b"", socket.MSG_EOR), ("peer.recv", 10), ("peer.recv", 2),
        ("peer.recv", 10)),
    row("seqpacket peer closed", "unix seqpacket peer-closed",
        ("recv", 10), ("recv", 10), ("recvfrom", 10), ("send", b"x"), ("sendall", b"x")),
    row("seqpacket timeout", "unix seqpacket connected timeout",
        ("recv", 10), ("recvfrom", 10), ("recv_into", buf(4))),
    row("seqpacket non-blocking", "unix seqpacket connected nonblocking",
        ("recv", 10), ("recvfrom_into", buf(4)), ("peer.send", b"now"), ("recv", 10)),
    row("seqpacket unconnected", "unix seqpacket unconnected nonblocking",
        ("send", b"x"), ("recv", 1), ("connect", MISSING), ("connect", REFUSED),
        ("bind", path("own")), "getsockname", "listen", "accept"),
    row("seqpacket listening", "unix seqpacket listening timeout",
        "accept", "connect_client", "accept"),
    row("seqpacket abstract name", "unix seqpacket unconnected",
        ("bind", abstract("seq")), "getsockname", ("listen", 0), "connect_client",
        "accept"),
    row("seqpacket constructor", "unix seqpacket unconnected",
        ("new", AF_UNIX), ("new", AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK),
        ("new", AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC, 0),
        ("new", AF_UNIX, socket.SOCK_SEQPACKET, "x")),
]


def _params() -> list[Any]:
    return [pytest.param(case, id=case.name,
                         marks=[pytest.mark.xfail(strict=True, reason=case.xfail)]
                         if case.xfail else [])
            for case in ROWS]


# -- the tests ---------------------------------------------------------------------


def outcomes_of(module: Optional[ModuleType], case: Row) -> list[tuple[str, Outcome]]:
    with contextlib.ExitStack() as stack:
        return Run(module, case, stack).outcomes()


def _table(results: dict[str, list[tuple[str, Outcome]]]) -> str:
    names = list(results)
    lines = []
    for index, (label, _) in enumerate(results[names[0]]):
        cells = {name: results[name][index][1] for name in names}
        same = all(cell == cells[names[0]] for cell in cells.values())
        lines.append(f"{'  ' if same else '!!'} {label}")
        if not same:
            lines += [f"     {name}: {cell!r}" for name, cell in cells.items()]
    return "\n".join(lines)


def _docstring(cls: type, method: str) -> str:
    """``method``'s docstring, or (method "") the class's own, in single spaces."""
    return " ".join(((getattr(cls, method) if method else cls).__doc__ or "").split())


def _other_twins(impl: ModuleType) -> list[ModuleType]:
    loaded = [name for name in IMPLEMENTATIONS
              if name != "cython" or fastsock.IMPLEMENTATION == "cython"]
    return [implementation_module(name) for name in loaded
            if implementation_module(name) is not impl]


@pytest.mark.parametrize("case", _params())
def test_parity(impl: ModuleType, case: Row) -> None:
    if case.family == "inet6" and not HAS_IPV6:
        pytest.skip("no IPv6 loopback")
    results = {"stdlib": outcomes_of(None, case), impl.IMPLEMENTATION: outcomes_of(impl, case)}
    # the stdlib has every method the table calls: a misspelt step would agree everywhere
    assert not [label for label, outcome in results["stdlib"] if outcome[0] == "AttributeError"]
    if case.differs is None:
        assert results["stdlib"] == results[impl.IMPLEMENTATION], \
            f"{case.setup}:\n{_table(results)}"
        return
    # a documented difference: still documented, still different, the same in both twins
    cls = api_class(impl, ALL_KINDS[case.kind])
    assert case.differs.says in _docstring(cls, case.differs.method), \
        f"{case.differs.method}'s docstring no longer says {case.differs.says!r}"
    assert results["stdlib"] != results[impl.IMPLEMENTATION], \
        f"{case.name} is no longer different: drop its differs=\n{_table(results)}"
    for other in _other_twins(impl):
        results[other.IMPLEMENTATION] = outcomes_of(other, case)
        assert results[other.IMPLEMENTATION] == results[impl.IMPLEMENTATION], \
            f"the twins disagree on {case.setup}:\n{_table(results)}"


def test_rows_have_unique_names() -> None:
    names = [case.name for case in ROWS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
