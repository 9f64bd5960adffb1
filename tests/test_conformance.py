"""Conformance with the stdlib ``socket`` module on bad input.

Each row of the tables below is an operation with a bad input.  It runs on
a stdlib socket and on a fastsock socket of the same family and type (and
on both fastsock implementations); fastsock must fail the way the stdlib
does: the same exception class, the same errno for OSError, and the same
message where the row says so.  Every row also states what the stdlib
raises, so a row that stops testing anything is caught too.

Deliberately left out: an AF_UNIX path with a NUL after the first byte.
The stdlib silently binds or connects to the name truncated at the NUL;
fastsock refuses it with ValueError (tested in test_errors.py).

Not rows either, because the stdlib itself misbehaves there:
``socket.create_connection`` with a bad timeout leaks its socket, and a
stdlib ``recv(0)`` on a closed socket returns b"" without looking at the
descriptor, where fastsock reports EBADF like for every other call on a
closed socket (tested in test_errors.py).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, Iterator, Optional, Union

import pytest
from conftest import HAS_IPV6

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
AF_UNIX = socket.AF_UNIX
SOCK_STREAM = socket.SOCK_STREAM
SOCK_DGRAM = socket.SOCK_DGRAM




class Index:
    """An int only through ``__index__``, which the stdlib accepts wherever it takes an int."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class FailingBool:
    """An object whose truth value cannot be taken."""

    def __bool__(self) -> bool:
        raise ZeroDivisionError("no truth value")


# socket.setblocking() converts its argument with the stdlib's int conversion
# (TypeError for a non-int, OverflowError past a C long) before 3.12, and takes
# any object's truth value from 3.12 on; fastsock follows the running version
SETBLOCKING_TAKES_TRUTH = sys.version_info >= (3, 12)


class Returns:
    """The stdlib does not raise: it returns ``value`` (compared with ==)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Returns({self.value!r})"


Expected = Union[type[BaseException], Returns]


# -- the adapter ----------------------------------------------------------------------


class Api:
    """The same small surface over the stdlib module and over a fastsock module."""

    def __init__(self, module: Optional[ModuleType]) -> None:
        self.module = module

    @property
    def name(self) -> str:
        return "stdlib" if self.module is None else f"fastsock[{self.module.IMPLEMENTATION}]"

    def socket(self, family: Any, kind: int) -> Any:
        if self.module is None:
            return socket.socket(family, kind)
        cls = self.module.StreamSocket if kind == SOCK_STREAM else self.module.DatagramSocket
        return cls(family)

    def socketpair(self, *args: Any) -> Any:
        if self.module is None:
            return socket.socketpair(*args)
        return self.module.socketpair(*args)

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.module is None:
            return socket.create_connection(*args, **kwargs)
        return self.module.create_connection(*args, **kwargs)


@dataclass(frozen=True)
class Outcome:
    raised: Optional[BaseException]
    value: object = None

    def describe(self) -> str:
        if self.raised is None:
            return f"returned {self.value!r}"
        exc = self.raised
        extra = f" errno={exc.errno}" if isinstance(exc, OSError) else ""
        return f"{type(exc).__name__}{extra}: {exc}"


def _dispose(result: object) -> None:
    """Close sockets returned by an operation that was expected to fail."""
    if isinstance(result, tuple):
        for item in result:
            _dispose(item)
    elif hasattr(result, "close") and hasattr(result, "fileno"):
        result.close()


def run(call: Callable[[], object]) -> Outcome:
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return Outcome(exc)
    _dispose(result)
    return Outcome(None, result if not hasattr(result, "fileno") else "<socket>")


# -- the tables ----------------------------------------------------------------------


@dataclass(frozen=True)
class SocketCase:
    description: str
    family: int
    kind: int
    operation: Callable[[Any, SimpleNamespace], object]
    expected: Expected
    message: bool = True       # compare str(exception) too
    state: str = "fresh"       # "fresh" or "closed"


@dataclass(frozen=True)
class ModuleCase:
    description: str
    operation: Callable[[Api, SimpleNamespace], object]
    expected: Expected
    message: bool = True


S, D = SOCK_STREAM, SOCK_DGRAM
LONG_PATH = "/" + "x" * 107          # 108 bytes: no room for the terminating NUL
LONG_ABSTRACT = b"\0" + b"a" * 108   # 109 bytes
NONCONTIGUOUS = memoryview(bytearray(8))[::2]

SOCKET_CASES: list[SocketCase] = [
    # AF_INET addresses
    SocketCase("inet bind port -1", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", -1)), OverflowError),
    SocketCase("inet bind port 65536", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", 65536)), OverflowError),
    SocketCase("inet bind port 2**31", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", 2**31)), OverflowError),
    SocketCase("inet bind port 2**40", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", 2**40)), OverflowError),
    SocketCase("inet connect port 65536", AF_INET, S,
               lambda s, c: s.connect(("127.0.0.1", 65536)), OverflowError),
    SocketCase("inet connect_ex port 65536", AF_INET, S,
               lambda s, c: s.connect_ex(("127.0.0.1", 65536)), OverflowError),
    SocketCase("inet sendto port 65536", AF_INET, D,
               lambda s, c: s.sendto(b"x", ("127.0.0.1", 65536)), OverflowError),
    SocketCase("inet sendto port beyond C int, IPv6 host", AF_INET, D,
               lambda s, c: s.sendto(b"x", ("::1", -2**40)), OverflowError),
    SocketCase("inet bind port beyond C int, IPv6 host", AF_INET, S,
               lambda s, c: s.bind(("::1", 2**31)), OverflowError),
    SocketCase("inet bind port 70000, IPv6 host", AF_INET, S,
               lambda s, c: s.bind(("::1", 70000)), socket.gaierror),
    SocketCase("inet6 bind port beyond C int, IPv4 host", AF_INET6, D,
               lambda s, c: s.bind(("127.0.0.1", 2**63, 2**20)), OverflowError),
    SocketCase("inet port str", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", "80")), TypeError, message=False),
    SocketCase("inet port None", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", None)), TypeError, message=False),
    SocketCase("inet port float", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", 0.0)), TypeError, message=False),
    SocketCase("inet address str", AF_INET, S,
               lambda s, c: s.bind("127.0.0.1"), TypeError),
    SocketCase("inet address list", AF_INET, S,
               lambda s, c: s.bind(["127.0.0.1", 0]), TypeError),
    SocketCase("inet connect address None", AF_INET, S,
               lambda s, c: s.connect(None), TypeError),
    SocketCase("inet address 1-tuple", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1",)), TypeError),
    SocketCase("inet address 3-tuple", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", 0, 0)), TypeError),
    SocketCase("inet address 4-tuple", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1", 0, 0, 0)), TypeError),
    SocketCase("inet host None", AF_INET, S,
               lambda s, c: s.bind((None, 0)), TypeError),
    SocketCase("inet host int", AF_INET, S,
               lambda s, c: s.bind((127, 0)), TypeError),
    SocketCase("inet host with NUL", AF_INET, S,
               lambda s, c: s.bind(("127.0.0.1\0", 0)), TypeError),
    SocketCase("inet host bytes with NUL", AF_INET, S,
               lambda s, c: s.connect((b"local\0host", 80)), TypeError),
    SocketCase("inet host not IDNA-encodable", AF_INET, S,
               lambda s, c: s.bind(("\udcff.example", 0)), TypeError),
    SocketCase("inet host unresolvable", AF_INET, S,
               lambda s, c: s.connect(("nonexistent.invalid", 80)), socket.gaierror),
    SocketCase("inet host is IPv6 literal", AF_INET, S,
               lambda s, c: s.bind(("::1", 0)), socket.gaierror),
    SocketCase("inet sendto host unresolvable", AF_INET, D,
               lambda s, c: s.sendto(b"x", ("nonexistent.invalid", 9)), socket.gaierror),
    SocketCase("inet bind address not local", AF_INET, S,
               lambda s, c: s.bind(("192.0.2.1", 0)), OSError),
    SocketCase("inet bind twice", AF_INET, S,
               lambda s, c: (s.bind(("127.0.0.1", 0)), s.bind(("127.0.0.1", 0))), OSError),
    SocketCase("inet bind address in use", AF_INET, S,
               lambda s, c: s.bind(c.listening), OSError),
    SocketCase("inet connect refused", AF_INET, S,
               lambda s, c: s.connect(c.refused), ConnectionRefusedError),
    SocketCase("inet connect_ex refused", AF_INET, S,
               lambda s, c: s.connect_ex(c.refused), Returns(111)),
    # AF_INET6 addresses
    SocketCase("inet6 address 1-tuple", AF_INET6, S,
               lambda s, c: s.bind(("::1",)), TypeError),
    SocketCase("inet6 address 5-tuple", AF_INET6, S,
               lambda s, c: s.bind(("::1", 0, 0, 0, 0)), TypeError),
    SocketCase("inet6 address str", AF_INET6, S,
               lambda s, c: s.bind("::1"), TypeError),
    SocketCase("inet6 address list", AF_INET6, S,
               lambda s, c: s.connect(["::1", 80]), TypeError),
    SocketCase("inet6 port 65536", AF_INET6, S,
               lambda s, c: s.bind(("::1", 65536)), OverflowError),
    SocketCase("inet6 port 2**40", AF_INET6, S,
               lambda s, c: s.bind(("::1", 2**40)), OverflowError),
    SocketCase("inet6 connect port -1", AF_INET6, S,
               lambda s, c: s.connect(("::1", -1)), OverflowError),
    SocketCase("inet6 flowinfo 2**20", AF_INET6, S,
               lambda s, c: s.bind(("::1", 0, 2**20)), OverflowError),
    SocketCase("inet6 flowinfo -1", AF_INET6, S,
               lambda s, c: s.bind(("::1", 0, -1)), OverflowError),
    SocketCase("inet6 flowinfo 2**32 wraps to 0", AF_INET6, D,
               lambda s, c: s.bind(("::1", 0, 2**32)), Returns(None)),
    SocketCase("inet6 flowinfo 2**32 + 2**20 wraps out of range", AF_INET6, D,
               lambda s, c: s.bind(("::1", 0, 2**32 + 2**20)), OverflowError),
    SocketCase("inet6 flowinfo 2**64 + 1 wraps to 1", AF_INET6, D,
               lambda s, c: s.sendto(b"x", 0, ("::1", 9, 2**64 + 1)), Returns(1)),
    SocketCase("inet6 flowinfo str", AF_INET6, S,
               lambda s, c: s.bind(("::1", 0, "0")), TypeError, message=False),
    SocketCase("inet6 host is IPv4 literal", AF_INET6, S,
               lambda s, c: s.bind(("127.0.0.1", 0)), socket.gaierror),
    SocketCase("inet6 host <broadcast>", AF_INET6, D,
               lambda s, c: s.bind(("<broadcast>", 0)), OSError),
    SocketCase("inet6 host 255.255.255.255", AF_INET6, D,
               lambda s, c: s.sendto(b"x", ("255.255.255.255", 9)), OSError),
    SocketCase("inet6 host with NUL", AF_INET6, S,
               lambda s, c: s.bind(("::1\0", 0)), TypeError),
    # AF_UNIX addresses
    SocketCase("unix address tuple", AF_UNIX, S,
               lambda s, c: s.bind(("127.0.0.1", 0)), TypeError),
    SocketCase("unix address int", AF_UNIX, S,
               lambda s, c: s.bind(5), TypeError),
    SocketCase("unix address None", AF_UNIX, S,
               lambda s, c: s.connect(None), TypeError),
    SocketCase("unix path too long", AF_UNIX, S,
               lambda s, c: s.bind(LONG_PATH), OSError),
    SocketCase("unix bytes path too long", AF_UNIX, S,
               lambda s, c: s.bind(LONG_PATH.encode()), OSError),
    SocketCase("unix abstract name too long", AF_UNIX, S,
               lambda s, c: s.bind(LONG_ABSTRACT), OSError),
    SocketCase("unix connect path too long", AF_UNIX, S,
               lambda s, c: s.connect(LONG_PATH), OSError),
    SocketCase("unix connect_ex path too long", AF_UNIX, S,
               lambda s, c: s.connect_ex(LONG_PATH), OSError),
    SocketCase("unix sendto path too long", AF_UNIX, D,
               lambda s, c: s.sendto(b"x", LONG_PATH), OSError),
    SocketCase("unix path not encodable", AF_UNIX, S,
               lambda s, c: s.bind(os.path.join(c.dir, "\ud800")), UnicodeEncodeError),
    SocketCase("unix connect missing path", AF_UNIX, S,
               lambda s, c: s.connect(os.path.join(c.dir, "missing")), FileNotFoundError),
    SocketCase("unix connect_ex missing path", AF_UNIX, S,
               lambda s, c: s.connect_ex(os.path.join(c.dir, "missing")), Returns(2)),
    SocketCase("unix bind in missing directory", AF_UNIX, S,
               lambda s, c: s.bind(os.path.join(c.dir, "none", "s")), FileNotFoundError),
    SocketCase("unix bind over existing file", AF_UNIX, S,
               lambda s, c: s.bind(c.plain_file), OSError),
    SocketCase("unix connect to regular file", AF_UNIX, S,
               lambda s, c: s.connect(c.plain_file), ConnectionRefusedError),
    SocketCase("unix sendto missing path", AF_UNIX, D,
               lambda s, c: s.sendto(b"x", os.path.join(c.dir, "missing")), FileNotFoundError),
    SocketCase("unix sendto str data, address None", AF_UNIX, D,
               lambda s, c: s.sendto("x", None), TypeError),
    SocketCase("unix sendto non-contiguous data, address int", AF_UNIX, D,
               lambda s, c: s.sendto(NONCONTIGUOUS, 5), BufferError),
    SocketCase("unix sendto flags float, address None", AF_UNIX, D,
               lambda s, c: s.sendto(b"x", 1.0, None), TypeError),
    SocketCase("unix sendto tuple", AF_UNIX, D,
               lambda s, c: s.sendto(b"x", ("127.0.0.1", 9)), TypeError),
    # data and buffers
    SocketCase("recv negative", AF_UNIX, S, lambda s, c: s.recv(-1), ValueError),
    SocketCase("recv str", AF_UNIX, S, lambda s, c: s.recv("1"), TypeError),
    SocketCase("recv float", AF_UNIX, S, lambda s, c: s.recv(1.0), TypeError),
    SocketCase("recv flags str", AF_UNIX, S,
               lambda s, c: s.recv(1, "0"), TypeError, message=False),
    SocketCase("recv flags float", AF_UNIX, S,
               lambda s, c: s.recv(0, 0.0), TypeError, message=False),
    SocketCase("recv unconnected", AF_INET, S, lambda s, c: s.recv(1), OSError),
    SocketCase("recv negative, flags beyond C int", AF_UNIX, S,
               lambda s, c: s.recv(-1, 2**31), OverflowError),
    SocketCase("recv negative, flags float", AF_UNIX, S,
               lambda s, c: s.recv(-1, 1.0), TypeError),
    SocketCase("recvfrom negative, flags None", AF_INET, D,
               lambda s, c: s.recvfrom(-1, None), TypeError),
    SocketCase("recv_into bytes", AF_UNIX, S,
               lambda s, c: s.recv_into(b"abcd"), TypeError),
    SocketCase("recv_into str", AF_UNIX, S,
               lambda s, c: s.recv_into("abcd"), TypeError),
    SocketCase("recv_into read-only memoryview", AF_UNIX, S,
               lambda s, c: s.recv_into(memoryview(b"abcd")), TypeError),
    SocketCase("recv_into non-contiguous", AF_UNIX, S,
               lambda s, c: s.recv_into(NONCONTIGUOUS), TypeError),
    SocketCase("recv_into nbytes negative", AF_UNIX, S,
               lambda s, c: s.recv_into(bytearray(4), -1), ValueError),
    SocketCase("recv_into nbytes too large", AF_UNIX, S,
               lambda s, c: s.recv_into(bytearray(4), 5), ValueError),
    SocketCase("recv_into nbytes float", AF_UNIX, S,
               lambda s, c: s.recv_into(bytearray(4), 1.0), TypeError),
    # the buffer is checked first, then nbytes, then flags
    SocketCase("recv_into None, nbytes beyond ssize_t", AF_UNIX, S,
               lambda s, c: s.recv_into(None, 2**63), TypeError),
    SocketCase("recv_into read-only, nbytes float", AF_UNIX, S,
               lambda s, c: s.recv_into(b"abcd", 1.0), TypeError),
    SocketCase("recv_into non-contiguous, flags str", AF_UNIX, S,
               lambda s, c: s.recv_into(NONCONTIGUOUS, 0, "x"), TypeError),
    SocketCase("recv_into nbytes beyond ssize_t", AF_UNIX, S,
               lambda s, c: s.recv_into(bytearray(4), 2**63), OverflowError),
    SocketCase("recv_into nbytes negative, flags float", AF_UNIX, S,
               lambda s, c: s.recv_into(bytearray(4), -1, 1.0), TypeError),
    SocketCase("recvfrom_into str, nbytes None", AF_INET, D,
               lambda s, c: s.recvfrom_into("abcd", None), TypeError),
    SocketCase("recvfrom_into nbytes -2**63 - 1", AF_INET, D,
               lambda s, c: s.recvfrom_into(bytearray(4), -2**63 - 1), OverflowError),
    SocketCase("send str", AF_UNIX, S, lambda s, c: s.send("text"), TypeError),
    SocketCase("send int", AF_UNIX, S, lambda s, c: s.send(5), TypeError),
    SocketCase("send None", AF_UNIX, S, lambda s, c: s.send(None), TypeError),
    SocketCase("send non-contiguous", AF_UNIX, S,
               lambda s, c: s.send(NONCONTIGUOUS), BufferError),
    SocketCase("send flags float", AF_UNIX, S,
               lambda s, c: s.send(b"", 0.0), TypeError, message=False),
    SocketCase("send unconnected", AF_INET, S, lambda s, c: s.send(b"x"), BrokenPipeError),
    SocketCase("send flags __index__", AF_INET, S,
               lambda s, c: s.send(b"x", Index(0)), BrokenPipeError),
    SocketCase("sendall flags __index__", AF_INET, S,
               lambda s, c: s.sendall(b"x", Index(0)), BrokenPipeError),
    SocketCase("sendto flags __index__", AF_INET, D,
               lambda s, c: s.sendto(b"x", Index(0), c.udp), Returns(1)),
    SocketCase("sendto flags float, message", AF_INET, D,
               lambda s, c: s.sendto(b"x", 1.0, c.udp), TypeError),
    SocketCase("send flags float, message", AF_INET, S,
               lambda s, c: s.send(b"x", 1.0), TypeError),
    SocketCase("sendall str", AF_UNIX, S, lambda s, c: s.sendall("text"), TypeError),
    SocketCase("sendall list", AF_UNIX, S, lambda s, c: s.sendall([1]), TypeError),
    SocketCase("sendall non-contiguous", AF_UNIX, S,
               lambda s, c: s.sendall(NONCONTIGUOUS), BufferError),
    # datagrams
    SocketCase("sendto without address", AF_INET, D,
               lambda s, c: s.sendto(b"x"), TypeError),
    SocketCase("sendto with 3 extra arguments", AF_INET, D,
               lambda s, c: s.sendto(b"x", 0, ("127.0.0.1", 9), None), TypeError),
    SocketCase("sendto str data", AF_INET, D,
               lambda s, c: s.sendto("x", ("127.0.0.1", 9)), TypeError),
    SocketCase("sendto address str", AF_INET, D,
               lambda s, c: s.sendto(b"x", "127.0.0.1"), TypeError),
    SocketCase("sendto flags str", AF_INET, D,
               lambda s, c: s.sendto(b"x", "0", ("127.0.0.1", 9)), TypeError, message=False),
    SocketCase("sendto flags float", AF_INET, D,
               lambda s, c: s.sendto(b"", 0.0, c.udp), TypeError, message=False),
    SocketCase("sendto datagram too large", AF_INET, D,
               lambda s, c: s.sendto(b"x" * 70_000, c.udp), OSError),
    SocketCase("send unconnected datagram", AF_INET, D,
               lambda s, c: s.send(b"x"), OSError),
    SocketCase("recvfrom negative", AF_INET, D, lambda s, c: s.recvfrom(-1), ValueError),
    SocketCase("recvfrom_into bytes", AF_INET, D,
               lambda s, c: s.recvfrom_into(b"abcd"), TypeError),
    SocketCase("recvfrom_into nbytes negative", AF_INET, D,
               lambda s, c: s.recvfrom_into(bytearray(4), -1), ValueError),
    SocketCase("recvfrom_into nbytes too large", AF_INET, D,
               lambda s, c: s.recvfrom_into(bytearray(4), 5), ValueError),
    SocketCase("recvfrom non-blocking without data", AF_INET, D,
               lambda s, c: (s.setblocking(False), s.recvfrom(1)), BlockingIOError),
    # connection state
    SocketCase("accept not listening", AF_INET, S, lambda s, c: s.accept(), OSError),
    SocketCase("listen str", AF_INET, S, lambda s, c: s.listen("1"), TypeError, message=False),
    SocketCase("listen float", AF_INET, S, lambda s, c: s.listen(1.0), TypeError,
               message=False),
    # out-of-range ints: the messages of the stdlib's conversions
    SocketCase("shutdown 2**40", AF_INET, S, lambda s, c: s.shutdown(2**40), OverflowError),
    SocketCase("shutdown -2**64", AF_INET, S, lambda s, c: s.shutdown(-2**64), OverflowError),
    SocketCase("setblocking 2**40", AF_INET, S,
               lambda s, c: (s.setblocking(2**40), s.getblocking())[1], Returns(True)),
    SocketCase("setblocking 2**64", AF_INET, S,
               lambda s, c: (s.setblocking(2**64), s.getblocking())[1],
               Returns(True) if SETBLOCKING_TAKES_TRUTH else OverflowError),
    SocketCase("listen 2**64", AF_INET, S, lambda s, c: s.listen(2**64), OverflowError),
    SocketCase("listen -2**31 - 1", AF_INET, S,
               lambda s, c: s.listen(-2**31 - 1), OverflowError),
    SocketCase("recv flags 2**64", AF_UNIX, S, lambda s, c: s.recv(1, 2**64), OverflowError),
    SocketCase("send flags 2**31", AF_UNIX, S, lambda s, c: s.send(b"", 2**31), OverflowError),
    SocketCase("getsockopt level 2**64", AF_INET, S,
               lambda s, c: s.getsockopt(2**64, 1), OverflowError),
    SocketCase("setsockopt option -2**40", AF_INET, S,
               lambda s, c: s.setsockopt(1, -2**40, 1), OverflowError),
    SocketCase("shutdown unconnected", AF_INET, S,
               lambda s, c: s.shutdown(socket.SHUT_RDWR), OSError),
    SocketCase("shutdown bad how", AF_UNIX, S, lambda s, c: s.shutdown(7), OSError),
    SocketCase("shutdown float", AF_INET, S, lambda s, c: s.shutdown(2.0), TypeError,
               message=False),
    SocketCase("getpeername unconnected", AF_INET, S, lambda s, c: s.getpeername(), OSError),
    SocketCase("non-blocking accept", AF_INET, S,
               lambda s, c: (s.bind(("127.0.0.1", 0)), s.listen(), s.setblocking(False),
                             s.accept()), BlockingIOError),
    # options
    SocketCase("setsockopt str value", AF_INET, S,
               lambda s, c: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, "1"),
               TypeError),
    SocketCase("setsockopt None value", AF_INET, S,
               lambda s, c: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, None),
               TypeError),
    SocketCase("setsockopt float value", AF_INET, S,
               lambda s, c: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1.0),
               TypeError),
    SocketCase("setsockopt value beyond C int", AF_INET, S,
               lambda s, c: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 2**40),
               TypeError),
    SocketCase("setsockopt value __index__", AF_INET, S,
               lambda s, c: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, Index(1)),
               Returns(None)),
    SocketCase("setsockopt value bool", AF_INET, S,
               lambda s, c: (s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True),
                             s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))[1],
               Returns(1)),
    SocketCase("setsockopt value __index__ beyond C int", AF_INET, S,
               lambda s, c: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, Index(2**40)),
               TypeError),
    SocketCase("getsockopt buflen None", AF_INET, S,
               lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, None), TypeError),
    SocketCase("getsockopt level float, buflen None", AF_INET, S,
               lambda s, c: s.getsockopt(1.0, socket.SO_RCVBUF, None), TypeError),
    SocketCase("getsockopt buflen __index__", AF_INET, S,
               lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE, Index(4)),
               Returns(b"\x01\x00\x00\x00")),
    SocketCase("setsockopt level float", AF_INET, S,
               lambda s, c: s.setsockopt(1.0, socket.SO_REUSEADDR, 1), TypeError,
               message=False),
    SocketCase("setsockopt unknown option", AF_INET, S,
               lambda s, c: s.setsockopt(socket.SOL_SOCKET, 12345, 1), OSError),
    SocketCase("getsockopt unknown option", AF_INET, S,
               lambda s, c: s.getsockopt(socket.SOL_SOCKET, 12345), OSError),
    SocketCase("getsockopt buflen -1", AF_INET, S,
               lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, -1), OSError),
    SocketCase("getsockopt buflen 1025", AF_INET, S,
               lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1025), OSError),
    SocketCase("getsockopt buflen float", AF_INET, S,
               lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4.0),
               TypeError, message=False),
    SocketCase("getsockopt level str", AF_INET, S,
               lambda s, c: s.getsockopt("x", socket.SO_RCVBUF), TypeError, message=False),
    # timeouts
    SocketCase("settimeout -1", AF_INET, S, lambda s, c: s.settimeout(-1), ValueError),
    SocketCase("settimeout -0.5", AF_INET, S, lambda s, c: s.settimeout(-0.5), ValueError),
    SocketCase("settimeout NaN", AF_INET, S,
               lambda s, c: s.settimeout(float("nan")), ValueError),
    SocketCase("settimeout str", AF_INET, S, lambda s, c: s.settimeout("x"), TypeError),
    SocketCase("settimeout list", AF_INET, S, lambda s, c: s.settimeout([]), TypeError),
    SocketCase("settimeout inf", AF_INET, S,
               lambda s, c: s.settimeout(float("inf")), OverflowError),
    SocketCase("settimeout 1e300", AF_INET, S,
               lambda s, c: s.settimeout(1e300), OverflowError),
    SocketCase("settimeout 9.223372036e9", AF_INET, S,
               lambda s, c: (s.settimeout(9.223372036e9), s.gettimeout())[1],
               Returns(9.223372036e9)),
    SocketCase("settimeout 2**63 ns", AF_INET, S,
               lambda s, c: s.settimeout(2**63 / 1e9), OverflowError),
    SocketCase("settimeout -1e10", AF_INET, S,
               lambda s, c: s.settimeout(-1e10), OverflowError),
    SocketCase("settimeout -inf", AF_INET, S,
               lambda s, c: s.settimeout(float("-inf")), OverflowError),
    SocketCase("settimeout -2**70", AF_INET, S,
               lambda s, c: s.settimeout(-2**70), OverflowError),
    SocketCase("settimeout 9223372037", AF_INET, S,
               lambda s, c: s.settimeout(9223372037), OverflowError),
    SocketCase("settimeout 2**70, message", AF_INET, S,
               lambda s, c: s.settimeout(2**70), OverflowError),
    SocketCase("settimeout 2**70", AF_INET, S,
               lambda s, c: s.settimeout(2**70), OverflowError, message=False),
    # gettimeout() gives back what the stdlib keeps: nanoseconds, rounded up
    SocketCase("gettimeout after settimeout 1e-10", AF_INET, S,
               lambda s, c: (s.settimeout(1e-10), s.gettimeout())[1], Returns(1e-09)),
    SocketCase("gettimeout after settimeout 1/3", AF_INET, S,
               lambda s, c: (s.settimeout(1 / 3), s.gettimeout())[1], Returns(0.333333334)),
    SocketCase("gettimeout after settimeout 2.0000000001", AF_INET, S,
               lambda s, c: (s.settimeout(2.0000000001), s.gettimeout())[1],
               Returns(2.000000001)),
    SocketCase("gettimeout after settimeout 1e-300", AF_INET, S,
               lambda s, c: (s.settimeout(1e-300), s.gettimeout())[1], Returns(1e-09)),
    SocketCase("gettimeout after settimeout 0.1", AF_INET, S,
               lambda s, c: (s.settimeout(0.1), s.gettimeout())[1], Returns(0.1)),
    SocketCase("setblocking str", AF_INET, S,
               lambda s, c: (s.setblocking("x"), s.getblocking())[1],
               Returns(True) if SETBLOCKING_TAKES_TRUTH else TypeError, message=False),
    SocketCase("setblocking None", AF_INET, S,
               lambda s, c: (s.setblocking(None), s.getblocking())[1],
               Returns(False) if SETBLOCKING_TAKES_TRUTH else TypeError, message=False),
    SocketCase("setblocking float", AF_INET, S,
               lambda s, c: (s.setblocking(1.0), s.getblocking())[1],
               Returns(True) if SETBLOCKING_TAKES_TRUTH else TypeError, message=False),
    SocketCase("setblocking failing __bool__", AF_INET, S,
               lambda s, c: s.setblocking(FailingBool()),
               ZeroDivisionError if SETBLOCKING_TAKES_TRUTH else TypeError, message=False),
]

CLOSED_STREAM: list[tuple[str, Callable[[Any, SimpleNamespace], object], Expected]] = [
    ("bind", lambda s, c: s.bind(("127.0.0.1", 0)), OSError),
    ("listen", lambda s, c: s.listen(), OSError),
    ("accept", lambda s, c: s.accept(), OSError),
    ("connect", lambda s, c: s.connect(c.refused), OSError),
    ("connect_ex", lambda s, c: s.connect_ex(c.refused), Returns(9)),
    ("recv", lambda s, c: s.recv(1), OSError),
    ("recv_into", lambda s, c: s.recv_into(bytearray(1)), OSError),
    ("send", lambda s, c: s.send(b"x"), OSError),
    ("sendall", lambda s, c: s.sendall(b"x"), OSError),
    ("shutdown", lambda s, c: s.shutdown(socket.SHUT_RDWR), OSError),
    ("getsockname", lambda s, c: s.getsockname(), OSError),
    ("getpeername", lambda s, c: s.getpeername(), OSError),
    ("setsockopt", lambda s, c: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
     OSError),
    ("getsockopt", lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR), OSError),
    ("settimeout", lambda s, c: s.settimeout(1.0), OSError),
    ("setblocking", lambda s, c: s.setblocking(False), OSError),
    ("fileno", lambda s, c: s.fileno(), Returns(-1)),
    ("detach", lambda s, c: s.detach(), Returns(-1)),
    ("close", lambda s, c: s.close(), Returns(None)),
    ("gettimeout", lambda s, c: s.gettimeout(), Returns(None)),
    ("getsockopt buflen -5", lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE, -5),
     OSError),
    ("getsockopt buflen 1025",
     lambda s, c: s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE, 1025), OSError),
    ("recv negative", lambda s, c: s.recv(-1), ValueError),
    ("bind bad port", lambda s, c: s.bind(("127.0.0.1", 65536)), OverflowError),
    # the address is looked at first: its errors win over EBADF
    ("connect IPv6 literal", lambda s, c: s.connect(("::1", 80)), socket.gaierror),
    ("connect_ex IPv6 literal", lambda s, c: s.connect_ex(("::1", 80)), socket.gaierror),
]

CLOSED_DGRAM: list[tuple[str, Callable[[Any, SimpleNamespace], object], Expected]] = [
    ("sendto", lambda s, c: s.sendto(b"x", c.udp), OSError),
    ("sendto with flags", lambda s, c: s.sendto(b"x", 0, c.udp), OSError),
    ("recvfrom", lambda s, c: s.recvfrom(1), OSError),
    ("recvfrom_into", lambda s, c: s.recvfrom_into(bytearray(1)), OSError),
    ("sendto IPv6 literal", lambda s, c: s.sendto(b"x", ("::1", 9)), socket.gaierror),
    ("sendto with flags IPv6 literal", lambda s, c: s.sendto(b"x", 0, ("::1", 9)),
     socket.gaierror),
]

SOCKET_CASES += [SocketCase(f"closed stream {name}", AF_INET, S, op, exp, state="closed")
                 for name, op, exp in CLOSED_STREAM]
SOCKET_CASES += [SocketCase(f"closed datagram {name}", AF_INET, D, op, exp, state="closed")
                 for name, op, exp in CLOSED_DGRAM]

MODULE_CASES: list[ModuleCase] = [
    # the same errno as the stdlib's; fastsock's message also names the family
    # and what the class takes (test_raw_vsock.py checks it)
    ModuleCase("stream socket family 99", lambda a, c: a.socket(99, S), OSError,
               message=False),
    ModuleCase("datagram socket family 99", lambda a, c: a.socket(99, D), OSError,
               message=False),
    ModuleCase("stream socket family str", lambda a, c: a.socket("x", S), TypeError,
               message=False),
    ModuleCase("stream socket family float", lambda a, c: a.socket(2.0, S), TypeError,
               message=False),
    ModuleCase("socketpair family 99", lambda a, c: a.socketpair(99), OSError,
               message=False),
    ModuleCase("socketpair AF_INET", lambda a, c: a.socketpair(AF_INET), OSError),
    ModuleCase("socketpair family float", lambda a, c: a.socketpair(1.0), TypeError,
               message=False),
    ModuleCase("socketpair type float", lambda a, c: a.socketpair(AF_UNIX, 1.0), TypeError,
               message=False),
    ModuleCase("create_connection refused",
               lambda a, c: a.create_connection(c.refused), ConnectionRefusedError),
    ModuleCase("create_connection refused with timeout",
               lambda a, c: a.create_connection(c.refused, 2.0), ConnectionRefusedError),
    ModuleCase("create_connection unresolvable",
               lambda a, c: a.create_connection(("nonexistent.invalid", 80)), socket.gaierror),
    ModuleCase("create_connection host int",
               lambda a, c: a.create_connection((127, 80)), TypeError),
]


# -- running the tables -----------------------------------------------------------------


@pytest.fixture
def ctx(unix_dir: str) -> Iterator[SimpleNamespace]:
    """Addresses the rows refer to: a refusing port, a listener, a UDP sink, a file."""
    plain = os.path.join(unix_dir, "plain-file")
    with open(plain, "w"):
        pass
    with socket.socket() as holder, socket.socket() as listener, \
            socket.socket(AF_INET, SOCK_DGRAM) as sink:
        holder.bind(("127.0.0.1", 0))
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        sink.bind(("127.0.0.1", 0))
        yield SimpleNamespace(dir=unix_dir, refused=holder.getsockname(),
                              listening=listener.getsockname(), udp=sink.getsockname(),
                              plain_file=plain)


def outcome_on(api: Api, case: SocketCase, ctx: SimpleNamespace) -> Outcome:
    sock = api.socket(case.family, case.kind)
    try:
        if case.state == "closed":
            sock.close()
        return run(lambda: case.operation(sock, ctx))
    finally:
        sock.close()


def assert_stdlib_as_tabled(expected: Expected, std: Outcome) -> None:
    if isinstance(expected, Returns):
        assert std.raised is None and std.value == expected.value, (
            f"stdlib: {std.describe()}, table says {expected!r}")
    else:
        assert type(std.raised) is expected, (
            f"stdlib: {std.describe()}, table says {expected.__name__}")


def assert_same(std: Outcome, ours: Outcome, message: bool, who: str) -> None:
    detail = f"stdlib {std.describe()} | {who} {ours.describe()}"
    if std.raised is None:
        assert ours.raised is None, detail
        assert ours.value == std.value and type(ours.value) is type(std.value), detail
        return
    assert ours.raised is not None, detail
    assert type(ours.raised) is type(std.raised), detail
    if isinstance(std.raised, OSError):
        assert getattr(ours.raised, "errno", None) == std.raised.errno, detail
    if message:
        assert str(ours.raised) == str(std.raised), detail


@pytest.mark.parametrize("case", SOCKET_CASES, ids=[c.description for c in SOCKET_CASES])
def test_socket_conformance(impl: ModuleType, case: SocketCase, ctx: SimpleNamespace) -> None:
    if case.family == AF_INET6 and not HAS_IPV6:
        pytest.skip("no IPv6 loopback")
    std = outcome_on(Api(None), case, ctx)
    assert_stdlib_as_tabled(case.expected, std)
    api = Api(impl)
    ours = outcome_on(api, case, ctx)
    assert_same(std, ours, case.message, api.name)


@pytest.mark.parametrize("case", MODULE_CASES, ids=[c.description for c in MODULE_CASES])
def test_module_conformance(impl: ModuleType, case: ModuleCase, ctx: SimpleNamespace) -> None:
    std = run(lambda: case.operation(Api(None), ctx))
    assert_stdlib_as_tabled(case.expected, std)
    api = Api(impl)
    ours = run(lambda: case.operation(api, ctx))
    assert_same(std, ours, case.message, api.name)


def test_tables_have_unique_descriptions() -> None:
    names = [c.description for c in SOCKET_CASES] + [c.description for c in MODULE_CASES]
    assert len(names) == len(set(names))
