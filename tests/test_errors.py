"""Bad input and failing operations on both implementations: the exception
type, and where the stdlib has one, its message."""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from conftest import HAS_IPV6

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
AF_UNIX = socket.AF_UNIX
SOCK_STREAM = socket.SOCK_STREAM
SOCK_DGRAM = socket.SOCK_DGRAM

SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux


needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")

LOOPBACK: dict[int, str] = {AF_INET: "127.0.0.1", AF_INET6: "::1"}


def make(impl: ModuleType, family: int, kind: int) -> Any:
    cls = impl.StreamSocket if kind == SOCK_STREAM else impl.DatagramSocket
    return cls(family)


def address_call(sock: Any, caller: str, address: Any) -> Any:
    """Call the address-taking method ``caller`` of sock with address."""
    if caller == "sendto":
        return sock.sendto(b"x", address)
    return getattr(sock, caller)(address)


def kind_for(caller: str) -> int:
    return SOCK_DGRAM if caller == "sendto" else SOCK_STREAM


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 TCP port that is bound but not listening: it refuses."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def expect_oserror(call: Callable[[], object], err: int) -> OSError:
    with pytest.raises(OSError) as info:
        call()
    assert info.value.errno == err, f"errno {info.value.errno}, expected {err}"
    assert info.value.strerror == os.strerror(err)
    return info.value


def close_all(result: Any) -> None:
    """Close whatever sockets an operation that should have failed returned."""
    items = result if isinstance(result, tuple) else (result,)
    for item in items:
        if hasattr(item, "close"):
            item.close()
        elif isinstance(item, tuple):
            close_all(item)


def raises(exc_type: type[BaseException], factory: Callable[[], Any]) -> BaseException:
    """Like pytest.raises, but closes sockets created by a call that did not raise."""
    try:
        result = factory()
    except exc_type as exc:
        return exc
    close_all(result)
    pytest.fail(f"DID NOT RAISE {exc_type.__name__} (returned {result!r})")


# -- wrong argument types ---------------------------------------------------------


@pytest.mark.parametrize("family", ["AF_INET", None, 2.0, b"\x02"])
def test_constructor_argument_types(impl: ModuleType, family: object) -> None:
    for cls in (impl.StreamSocket, impl.DatagramSocket):
        raises(TypeError, lambda: cls(family))


@pytest.mark.parametrize("args", [(1.0,), (AF_UNIX, 1.0), ("AF_UNIX",)])
def test_socketpair_argument_types(impl: ModuleType, args: tuple[Any, ...]) -> None:
    raises(TypeError, lambda: impl.socketpair(*args))


@pytest.mark.parametrize("call", [
    pytest.param(lambda s: s.recv("1"), id="recv-str"),
    pytest.param(lambda s: s.recv(1.0), id="recv-float"),
    pytest.param(lambda s: s.recv(None), id="recv-none"),
    pytest.param(lambda s: s.recv(1, "0"), id="recv-flags-str"),
    pytest.param(lambda s: s.recv_into(bytearray(1), "1"), id="recv_into-nbytes-str"),
    pytest.param(lambda s: s.send(5), id="send-int"),
    pytest.param(lambda s: s.send(None), id="send-none"),
    pytest.param(lambda s: s.send(b"x", "0"), id="send-flags-str"),
    pytest.param(lambda s: s.sendall([1, 2]), id="sendall-list"),
    pytest.param(lambda s: s.listen("5"), id="listen-str"),
    pytest.param(lambda s: s.shutdown("both"), id="shutdown-str"),
    pytest.param(lambda s: s.setsockopt("x", socket.SO_REUSEADDR, 1), id="setsockopt-level"),
    pytest.param(lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, "1"),
                 id="setsockopt-value-str"),
    pytest.param(lambda s: s.getsockopt(socket.SOL_SOCKET, "x"), id="getsockopt-name"),
    pytest.param(lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, "4"),
                 id="getsockopt-buflen"),
    pytest.param(lambda s: s.settimeout("1"), id="settimeout-str"),
    pytest.param(lambda s: s.bind(None), id="bind-none"),
    pytest.param(lambda s: s.bind(("127.0.0.1", "80")), id="port-str"),
    pytest.param(lambda s: s.bind(("127.0.0.1", None)), id="port-none"),
    pytest.param(lambda s: s.bind(("127.0.0.1", 80.0)), id="port-float"),
    pytest.param(lambda s: s.connect((None, 80)), id="host-none"),
    pytest.param(lambda s: s.connect((127, 80)), id="host-int"),
    # a float is not an integer, even where it has an integral value
    pytest.param(lambda s: s.listen(5.0), id="listen-float"),
    pytest.param(lambda s: s.shutdown(2.0), id="shutdown-float"),
    pytest.param(lambda s: s.recv(0, 0.0), id="recv-flags-float"),
    pytest.param(lambda s: s.send(b"", 0.0), id="send-flags-float"),
    pytest.param(lambda s: s.setsockopt(float(socket.SOL_SOCKET), socket.SO_REUSEADDR, 1),
                 id="setsockopt-level-float"),
    pytest.param(lambda s: s.getsockopt(float(socket.SOL_SOCKET), socket.SO_REUSEADDR),
                 id="getsockopt-level-float"),
    pytest.param(lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 4.0),
                 id="getsockopt-buflen-float"),
    # before 3.12 setblocking() takes an int, as the stdlib's does; from 3.12 the
    # stdlib's takes any object's truth value, and so does fastsock's
    # (test_conformance.py compares both with the running version's stdlib)
    *([pytest.param(lambda s: s.setblocking(None), id="setblocking-none"),
       pytest.param(lambda s: s.setblocking(0.0), id="setblocking-float")]
      if sys.version_info < (3, 12) else []),
])
def test_wrong_argument_types(impl: ModuleType, call: Callable[[Any], object]) -> None:
    with impl.StreamSocket() as s:
        with pytest.raises(TypeError):
            call(s)


def test_host_type_message(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        with pytest.raises(TypeError, match="^str, bytes or bytearray expected, not NoneType$"):
            s.bind((None, 0))


def test_sendto_flags_type(impl: ModuleType) -> None:
    with impl.DatagramSocket() as d:
        for flags in ("0", 0.0, None):
            with pytest.raises(TypeError):
                d.sendto(b"", flags, ("127.0.0.1", 9))


def test_classmethod_argument_types(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.StreamSocket.from_fd("3")
    fd = socket.socket().detach()
    try:
        adopted = impl.StreamSocket.from_fd(float(fd))
    except TypeError:
        os.close(fd)
    else:
        adopted.close()
        pytest.fail("from_fd() took a float descriptor")
    with pytest.raises(TypeError):
        impl.StreamSocket.from_socket(3)
    with pytest.raises(TypeError):
        impl.DatagramSocket.from_socket(None)


def test_socketpair_bad_type(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.socketpair(AF_UNIX, 99)


# -- ports ------------------------------------------------------------------------


BAD_PORTS = [-1, 65536, 100_000, 2**31, 2**40]


@pytest.mark.parametrize("family", [AF_INET, pytest.param(AF_INET6, marks=needs_ipv6)],
                         ids=["inet", "inet6"])
@pytest.mark.parametrize("caller", ["bind", "connect", "connect_ex", "sendto"])
def test_port_out_of_range(impl: ModuleType, caller: str, family: int) -> None:
    wrong = []
    for port in BAD_PORTS:
        with make(impl, family, kind_for(caller)) as s:
            try:
                address_call(s, caller, (LOOPBACK[family], port))
            except OverflowError as exc:
                if str(exc) != f"{caller}(): port must be 0-65535.":
                    wrong.append(f"port {port}: message {str(exc)!r}")
            except Exception as exc:  # noqa: BLE001 - reported below
                wrong.append(f"port {port}: {type(exc).__name__}: {exc}")
            else:
                wrong.append(f"port {port}: no exception")
    assert not wrong, (f"expected OverflowError('{caller}(): port must be 0-65535.'); "
                       + "; ".join(wrong))


def test_port_edges_accepted(impl: ModuleType) -> None:
    with impl.DatagramSocket() as s:
        s.bind(("127.0.0.1", 0))
        assert s.sendto(b"", ("127.0.0.1", 65535)) == 0


# -- AF_UNIX paths ------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["bind", "connect", "connect_ex", "sendto"])
def test_unix_path_too_long(impl: ModuleType, caller: str, unix_dir: str) -> None:
    too_long = [
        "/" + "x" * (SUN_PATH_MAX - 1),             # 108 bytes: no room for the NUL
        os.path.join(unix_dir, "y" * 200),
        b"/" + b"z" * (SUN_PATH_MAX - 1),
        b"\0" + b"a" * SUN_PATH_MAX,                  # abstract: 109 bytes
    ]
    for path in too_long:
        with make(impl, AF_UNIX, kind_for(caller)) as s:
            with pytest.raises(OSError) as info:
                address_call(s, caller, path)
            assert type(info.value) is OSError
            assert str(info.value) == "AF_UNIX path too long"


def test_unix_path_longest_accepted(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "p" * (SUN_PATH_MAX - 1 - len(unix_dir) - 1))
    assert len(path) == SUN_PATH_MAX - 1
    with impl.DatagramSocket(AF_UNIX) as s:
        s.bind(path)
        assert s.getsockname() == path
    name = b"\0" + uuid.uuid4().hex.encode().ljust(SUN_PATH_MAX - 1, b"q")
    assert len(name) == SUN_PATH_MAX
    with impl.DatagramSocket(AF_UNIX) as s:
        s.bind(name)
        assert s.getsockname() == name


@pytest.mark.parametrize("caller", ["bind", "connect", "connect_ex", "sendto"])
def test_unix_embedded_nul_refused(impl: ModuleType, caller: str, unix_dir: str) -> None:
    # the stdlib silently truncates at the NUL; fastsock refuses on purpose
    for path in (os.path.join(unix_dir, "a\0b"), os.path.join(unix_dir, "a\0b").encode(),
                 b"\0abstract\0tail"):
        with make(impl, AF_UNIX, kind_for(caller)) as s:
            with pytest.raises(ValueError):
                address_call(s, caller, path)
    assert os.listdir(unix_dir) == []  # nothing was bound under a truncated name


def test_unix_leading_nul_accepted(impl: ModuleType) -> None:
    name = b"\0fastsock-err-" + uuid.uuid4().hex.encode()
    with impl.StreamSocket(AF_UNIX) as server:
        server.bind(name)
        server.listen()
        with impl.StreamSocket(AF_UNIX) as client:
            assert client.connect_ex(name) == 0
            conn, _ = server.accept()
            conn.close()
    with impl.StreamSocket(AF_UNIX) as client:
        # nobody listens on a fresh abstract name
        with pytest.raises(ConnectionRefusedError):
            client.connect(b"\0fastsock-none-" + uuid.uuid4().hex.encode())


def test_unix_missing_path(impl: ModuleType, unix_dir: str) -> None:
    with impl.StreamSocket(AF_UNIX) as s:
        with pytest.raises(FileNotFoundError):
            s.connect(os.path.join(unix_dir, "missing"))
        assert s.connect_ex(os.path.join(unix_dir, "missing")) == errno.ENOENT
    with impl.DatagramSocket(AF_UNIX) as d:
        with pytest.raises(FileNotFoundError):
            d.sendto(b"x", os.path.join(unix_dir, "missing"))
        with pytest.raises(FileNotFoundError):
            d.bind(os.path.join(unix_dir, "no-dir", "s"))


def test_unix_path_in_use(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "taken")
    with impl.StreamSocket(AF_UNIX) as first, impl.StreamSocket(AF_UNIX) as second:
        first.bind(path)
        expect_oserror(lambda: second.bind(path), errno.EADDRINUSE)


# -- address shapes --------------------------------------------------------------


@pytest.mark.parametrize("caller", ["bind", "connect", "sendto"])
def test_inet_address_shape(impl: ModuleType, caller: str) -> None:
    address: Any
    with make(impl, AF_INET, kind_for(caller)) as s:
        for address in (("127.0.0.1",), ("127.0.0.1", 1, 2), ()):
            with pytest.raises(TypeError, match=r"^AF_INET address must be a pair \(host, port\)$"):
                address_call(s, caller, address)
        for address, name in (("127.0.0.1", "str"), (["127.0.0.1", 1], "list"),
                              (None, "NoneType")):
            with pytest.raises(TypeError) as info:
                address_call(s, caller, address)
            assert str(info.value) == f"{caller}(): AF_INET address must be tuple, not {name}"


@needs_ipv6
@pytest.mark.parametrize("caller", ["bind", "connect", "sendto"])
def test_inet6_address_shape(impl: ModuleType, caller: str) -> None:
    message = "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])"
    with make(impl, AF_INET6, kind_for(caller)) as s:
        for address in (("::1",), ("::1", 1, 0, 0, 0)):
            with pytest.raises(TypeError) as info:
                address_call(s, caller, address)
            assert str(info.value) == message
        with pytest.raises(TypeError) as info:
            address_call(s, caller, "::1")
        assert str(info.value) == f"{caller}(): AF_INET6 address must be tuple, not str"


@needs_ipv6
@pytest.mark.parametrize("flowinfo", [1 << 20, 0xFFFFFFFF, -1])
def test_inet6_flowinfo_out_of_range(impl: ModuleType, flowinfo: int) -> None:
    with impl.StreamSocket(AF_INET6) as s:
        with pytest.raises(OverflowError) as info:
            s.bind(("::1", 0, flowinfo))
        assert str(info.value) == "bind(): flowinfo must be 0-1048575."
    with impl.StreamSocket(AF_INET6) as s:
        s.bind(("::1", 0, (1 << 20) - 1))  # the largest flow label is fine


def test_wrong_family_address(impl: ModuleType, unix_dir: str) -> None:
    with impl.StreamSocket(AF_UNIX) as s:
        with pytest.raises(TypeError, match="^a bytes-like object is required, not 'tuple'$"):
            s.bind(("127.0.0.1", 0))
        with pytest.raises(TypeError):
            s.connect(("127.0.0.1", 80))
        with pytest.raises(TypeError):
            s.bind(5)
    with impl.DatagramSocket(AF_UNIX) as d:
        with pytest.raises(TypeError):
            d.sendto(b"x", ("127.0.0.1", 9))
    with impl.StreamSocket(AF_INET) as s:
        with pytest.raises(TypeError):
            s.bind(os.path.join(unix_dir, "x"))
        with pytest.raises(TypeError):
            s.bind(("127.0.0.1", 0, 0, 0))
        with pytest.raises(TypeError):
            s.bind(b"127.0.0.1")


def test_host_with_nul(impl: ModuleType) -> None:
    message = "^host name must not contain null character$"
    with impl.StreamSocket() as s:
        with pytest.raises(TypeError, match=message):
            s.bind(("127.0.0.1\0", 0))
        with pytest.raises(TypeError, match=message):
            s.connect((b"local\0host", 80))
    with impl.DatagramSocket() as d:
        with pytest.raises(TypeError, match=message):
            d.sendto(b"x", ("\0", 9))


def test_host_not_idna_encodable(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        with pytest.raises(TypeError, match="^encoding of hostname failed$"):
            s.bind(("\udcff.example", 0))


def test_host_of_other_family(impl: ModuleType) -> None:
    with impl.StreamSocket(AF_INET) as s:
        with pytest.raises(socket.gaierror):
            s.bind(("::1", 0))
    if HAS_IPV6:
        with impl.StreamSocket(AF_INET6) as s6:
            with pytest.raises(socket.gaierror):
                s6.bind(("127.0.0.1", 0))


def test_unresolvable_host(impl: ModuleType) -> None:
    host = "nonexistent.invalid"
    with impl.StreamSocket() as s:
        with pytest.raises(socket.gaierror) as info:
            s.connect((host, 80))
        assert isinstance(info.value, OSError)
        assert info.value.errno is not None and info.value.errno < 0
    with impl.StreamSocket() as s:
        with pytest.raises(socket.gaierror):
            s.bind((host, 0))
    with impl.DatagramSocket() as d:
        with pytest.raises(socket.gaierror):
            d.sendto(b"x", (host, 9))
    with pytest.raises(socket.gaierror):
        impl.create_connection((host, 80), timeout=2.0)


def test_address_not_assignable(impl: ModuleType) -> None:
    # 192.0.2.0/24 is documentation space: never a local address
    with impl.StreamSocket() as s:
        expect_oserror(lambda: s.bind(("192.0.2.1", 0)), errno.EADDRNOTAVAIL)


def test_bind_twice_and_in_use(impl: ModuleType) -> None:
    with impl.StreamSocket() as first:
        first.bind(("127.0.0.1", 0))
        expect_oserror(lambda: first.bind(("127.0.0.1", 0)), errno.EINVAL)
        first.listen()
        with impl.StreamSocket() as second:
            expect_oserror(lambda: second.bind(first.getsockname()), errno.EADDRINUSE)


# -- buffers ---------------------------------------------------------------------


def test_readonly_buffers_refused(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        for buffer, name in ((b"abcd", "bytes"), (memoryview(b"abcd"), "memoryview"),
                             ("abcd", "str")):
            with pytest.raises(TypeError) as info:
                b.recv_into(buffer)
            assert str(info.value) == (
                f"recv_into() argument 1 must be read-write bytes-like object, not {name}")
    with impl.DatagramSocket() as d:
        with pytest.raises(TypeError) as info:
            d.recvfrom_into(b"abcd")
        assert str(info.value) == (
            "recvfrom_into() argument 1 must be read-write bytes-like object, not bytes")


def test_recv_into_nbytes_checks(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(ValueError) as info:
            b.recv_into(bytearray(4), -1)
        assert str(info.value) == "negative buffersize in recv_into"
        with pytest.raises(ValueError) as info:
            b.recv_into(bytearray(4), 5)
        assert str(info.value) == "buffer too small for requested bytes"
        # nothing was consumed by the refused calls
        a.sendall(b"ok")
        b.settimeout(5.0)
        assert b.recv(2) == b"ok"


def test_recvfrom_into_nbytes_checks(impl: ModuleType) -> None:
    with impl.DatagramSocket() as d:
        with pytest.raises(ValueError) as info:
            d.recvfrom_into(bytearray(4), -1)
        assert str(info.value) == "negative buffersize in recvfrom_into"
        with pytest.raises(ValueError) as info:
            d.recvfrom_into(bytearray(4), 5)
        assert str(info.value) == "nbytes is greater than the length of the buffer"


def test_negative_bufsize(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(ValueError) as info:
            a.recv(-1)
        assert str(info.value) == "negative buffersize in recv"
    with impl.DatagramSocket() as d:
        with pytest.raises(ValueError) as info:
            d.recvfrom(-5)
        assert str(info.value) == "negative buffersize in recvfrom"


def test_str_to_send(impl: ModuleType) -> None:
    message = "^a bytes-like object is required, not 'str'$"
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(TypeError, match=message):
            a.send("text")
        with pytest.raises(TypeError, match=message):
            a.sendall("text")
    with impl.DatagramSocket() as d:
        with pytest.raises(TypeError, match=message):
            d.sendto("text", ("127.0.0.1", 9))
        with pytest.raises(TypeError, match=message):
            d.sendto("text", 0, ("127.0.0.1", 9))


def test_sendto_argument_count(impl: ModuleType) -> None:
    with impl.DatagramSocket() as d:
        with pytest.raises(TypeError) as info:
            d.sendto(b"x")
        assert str(info.value) == "sendto() takes 2 or 3 arguments (1 given)"
        with pytest.raises(TypeError) as info:
            d.sendto(b"x", 0, ("127.0.0.1", 9), None)
        assert str(info.value) == "sendto() takes 2 or 3 arguments (4 given)"
        with pytest.raises(TypeError) as info:
            d.sendto(b"x", 0, ("127.0.0.1", 9), None, None)
        assert str(info.value) == "sendto() takes 2 or 3 arguments (5 given)"


# -- closed sockets -----------------------------------------------------------------


STREAM_METHODS: list[tuple[str, Callable[[Any], object]]] = [
    ("bind", lambda s: s.bind(("127.0.0.1", 0))),
    ("listen", lambda s: s.listen()),
    ("accept", lambda s: s.accept()),
    ("connect", lambda s: s.connect(("127.0.0.1", 9))),
    ("recv", lambda s: s.recv(1)),
    ("recv-large", lambda s: s.recv(100_000)),
    ("recv-zero", lambda s: s.recv(0)),
    ("recv_into", lambda s: s.recv_into(bytearray(1))),
    ("send", lambda s: s.send(b"x")),
    ("send-empty", lambda s: s.send(b"")),
    ("sendall", lambda s: s.sendall(b"x")),
    ("shutdown", lambda s: s.shutdown(socket.SHUT_RDWR)),
    ("getsockname", lambda s: s.getsockname()),
    ("getpeername", lambda s: s.getpeername()),
    ("setsockopt", lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)),
    ("setsockopt-bytes", lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                                b"\1\0\0\0")),
    ("getsockopt", lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)),
    ("getsockopt-buflen", lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 4)),
    ("settimeout", lambda s: s.settimeout(1.0)),
    ("setblocking", lambda s: s.setblocking(False)),
    ("to_socket", lambda s: s.to_socket()),
]

DGRAM_METHODS: list[tuple[str, Callable[[Any], object]]] = [
    ("sendto", lambda s: s.sendto(b"x", ("127.0.0.1", 9))),
    ("sendto-flags", lambda s: s.sendto(b"x", 0, ("127.0.0.1", 9))),
    ("recvfrom", lambda s: s.recvfrom(1)),
    ("recvfrom_into", lambda s: s.recvfrom_into(bytearray(1))),
    ("recv", lambda s: s.recv(1)),
    ("send", lambda s: s.send(b"x")),
]


def _closed_failures(impl: ModuleType, kind: int,
                     methods: list[tuple[str, Callable[[Any], object]]]) -> list[str]:
    wrong = []
    for name, call in methods:
        s = make(impl, AF_INET, kind)
        s.close()
        try:
            result = call(s)
        except OSError as exc:
            if type(exc) is not OSError or exc.errno != errno.EBADF:
                wrong.append(f"{name}: {type(exc).__name__} errno {exc.errno}")
        except Exception as exc:  # noqa: BLE001 - reported below
            wrong.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{name}: returned {result!r}")
            if hasattr(result, "close"):
                result.close()
    return wrong


def test_closed_stream_socket_methods_raise_ebadf(impl: ModuleType) -> None:
    wrong = _closed_failures(impl, SOCK_STREAM, STREAM_METHODS)
    assert not wrong, "expected OSError(EBADF): " + "; ".join(wrong)


def test_closed_datagram_socket_methods_raise_ebadf(impl: ModuleType) -> None:
    wrong = _closed_failures(impl, SOCK_DGRAM, DGRAM_METHODS)
    assert not wrong, "expected OSError(EBADF): " + "; ".join(wrong)


def test_closed_socket_harmless_methods(impl: ModuleType) -> None:
    s = impl.StreamSocket()
    s.settimeout(2.0)
    s.close()
    assert s.fileno() == -1
    assert s.detach() == -1
    assert s.close() is None
    assert s.close() is None
    assert s.closed is True
    assert s.gettimeout() == 2.0
    assert s.getblocking() is True
    assert s.family == AF_INET


def test_closed_socket_connect_ex_returns_ebadf(impl: ModuleType) -> None:
    # as in the stdlib, connect_ex reports the error as a number
    s = impl.StreamSocket()
    s.close()
    assert s.connect_ex(("127.0.0.1", 9)) == errno.EBADF


def test_closed_socket_argument_errors_still_first(impl: ModuleType) -> None:
    s = impl.StreamSocket()
    s.close()
    with pytest.raises(ValueError):
        s.recv(-1)
    with pytest.raises(OverflowError):
        s.bind(("127.0.0.1", 70000))


def test_from_socket_of_closed_stdlib_socket(impl: ModuleType) -> None:
    std = socket.socket()
    std.close()
    expect_oserror(lambda: impl.StreamSocket.from_socket(std), errno.EBADF)


def test_from_fd_errors(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.StreamSocket.from_fd(-1)
    with pytest.raises(ValueError):
        impl.DatagramSocket.from_fd(-3)
    r, w = os.pipe()
    try:
        expect_oserror(lambda: impl.DatagramSocket.from_fd(w), errno.ENOTSOCK)
    finally:
        os.close(r)
        os.close(w)


# -- failing operations -------------------------------------------------------------


def test_accept_on_non_listening_socket(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        expect_oserror(s.accept, errno.EINVAL)
        s.bind(("127.0.0.1", 0))
        expect_oserror(s.accept, errno.EINVAL)
        s.settimeout(0.5)
        expect_oserror(s.accept, errno.EINVAL)


def test_connect_refused(impl: ModuleType, refused_port: int) -> None:
    with impl.StreamSocket() as s:
        with pytest.raises(ConnectionRefusedError) as info:
            s.connect(("127.0.0.1", refused_port))
        assert info.value.errno == errno.ECONNREFUSED
    with impl.StreamSocket() as s:
        s.settimeout(2.0)
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", refused_port))
    with pytest.raises(ConnectionRefusedError):
        impl.create_connection(("127.0.0.1", refused_port))
    with pytest.raises(ConnectionRefusedError):
        impl.create_connection(("127.0.0.1", refused_port), timeout=2.0)


def test_connect_to_a_regular_file(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "plain")
    with open(path, "w"):
        pass
    with impl.StreamSocket(AF_UNIX) as s:
        with pytest.raises(ConnectionRefusedError):
            s.connect(path)


def test_unconnected_operations(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        expect_oserror(lambda: s.recv(1), errno.ENOTCONN)
        expect_oserror(s.getpeername, errno.ENOTCONN)
        expect_oserror(lambda: s.shutdown(socket.SHUT_RDWR), errno.ENOTCONN)
        with pytest.raises(BrokenPipeError):
            s.send(b"x")
    with impl.DatagramSocket() as d:
        expect_oserror(lambda: d.send(b"x"), errno.EDESTADDRREQ)


def test_shutdown_bad_how(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        expect_oserror(lambda: a.shutdown(7), errno.EINVAL)


def test_peer_reset(impl: ModuleType) -> None:
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with impl.StreamSocket() as client:
            client.connect(server.getsockname())
            conn, _ = server.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            client.settimeout(5.0)
            with pytest.raises(ConnectionResetError) as info:
                client.recv(10)
            assert info.value.errno == errno.ECONNRESET


def test_peer_reset_recv_into_blocking(impl: ModuleType) -> None:
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with impl.StreamSocket() as client:
            client.connect(server.getsockname())
            conn, _ = server.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            with pytest.raises(ConnectionResetError):
                client.recv_into(bytearray(10))


def _send_until_error(sock: Any, call: Callable[[], object]) -> OSError:
    deadline = time.monotonic() + 5.0
    for _ in range(1000):
        if time.monotonic() > deadline:
            break
        try:
            call()
        except OSError as exc:
            return exc
        time.sleep(0.001)
    raise AssertionError("sending to a closed peer never failed")


def test_send_to_closed_peer(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a:
        b.close()
        with pytest.raises(BrokenPipeError):
            a.send(b"x")
        with pytest.raises(BrokenPipeError):
            a.sendall(b"x" * 100_000)
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with impl.StreamSocket() as client:
            client.connect(server.getsockname())
            conn, _ = server.accept()
            conn.close()
            exc = _send_until_error(client, lambda: client.send(b"data"))
            assert isinstance(exc, (BrokenPipeError, ConnectionResetError))
            exc = _send_until_error(client, lambda: client.sendall(b"data"))
            assert isinstance(exc, BrokenPipeError)


SIGPIPE_SCRIPT = textwrap.dedent("""
    import importlib, signal, socket, sys, time
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    impl = importlib.import_module(sys.argv[1])
    errors = []
    a, b = impl.socketpair()
    b.close()
    for call in (lambda: a.send(b"x"), lambda: a.sendall(b"x" * 100000)):
        try:
            call()
        except OSError as exc:
            errors.append(type(exc).__name__)
    a.close()
    server = impl.StreamSocket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = impl.StreamSocket()
    client.connect(server.getsockname())
    conn, _ = server.accept()
    conn.close()
    deadline = time.monotonic() + 5.0
    for _ in range(1000):
        if time.monotonic() > deadline:
            break
        try:
            client.send(b"data")
        except OSError as exc:
            errors.append(type(exc).__name__)
            if isinstance(exc, BrokenPipeError):
                break
        time.sleep(0.001)
    client.close()
    server.close()
    print("survived", *errors)
""")


def test_no_sigpipe(impl: ModuleType) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SIGPIPE_SCRIPT, impl.__name__],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    words = proc.stdout.split()
    assert words[:3] == ["survived", "BrokenPipeError", "BrokenPipeError"]
    assert words[-1] == "BrokenPipeError"


# -- timeouts ---------------------------------------------------------------------


def test_settimeout_bad_values(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        with pytest.raises(ValueError, match=r"^Timeout value out of range$"):
            s.settimeout(-1)
        with pytest.raises(ValueError, match=r"^Timeout value out of range$"):
            s.settimeout(-0.5)
        with pytest.raises(ValueError, match=r"^Invalid value NaN \(not a number\)$"):
            s.settimeout(float("nan"))
        with pytest.raises(TypeError,
                           match="^'str' object cannot be interpreted as an integer$"):
            s.settimeout("x")
        with pytest.raises(OverflowError):
            s.settimeout(float("inf"))
        with pytest.raises(OverflowError):
            s.settimeout(1e300)
        # a refused value leaves the timeout alone
        assert s.gettimeout() is None


def test_create_connection_bad_timeout(impl: ModuleType) -> None:
    with impl.create_server() as server:
        with pytest.raises(ValueError, match="^Timeout value out of range$"):
            impl.create_connection(server.getsockname(), -1)


@pytest.mark.parametrize("address", [("127.0.0.1",), ("127.0.0.1", 1, 2), 80, None])
def test_create_connection_bad_address(impl: ModuleType, address: Any) -> None:
    # the stdlib unpacks (host, port): its error, whatever it is, is ours
    with pytest.raises(Exception) as expected:
        socket.create_connection(address)
    with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
        impl.create_connection(address)


# -- options ------------------------------------------------------------------------


def test_getsockopt_buflen_out_of_range(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        for buflen in (-1, 1025, 1 << 20):
            with pytest.raises(OSError) as info:
                s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buflen)
            assert type(info.value) is OSError
            assert str(info.value) == "getsockopt buflen out of range"
        assert len(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)) == 4


def test_unknown_option(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        expect_oserror(lambda: s.getsockopt(socket.SOL_SOCKET, 12345), errno.ENOPROTOOPT)
        expect_oserror(lambda: s.setsockopt(socket.SOL_SOCKET, 12345, 1), errno.ENOPROTOOPT)


def test_setsockopt_value_too_large_for_int(impl: ModuleType) -> None:
    # the stdlib only takes a C int, then falls back to the buffer form
    with impl.StreamSocket() as s:
        with pytest.raises(TypeError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 << 40)


# -- families, blocking, sizes --------------------------------------------------------


@pytest.mark.parametrize("family", [99, socket.AF_PACKET, -2])
def test_unsupported_family(impl: ModuleType, family: int) -> None:
    for factory in (impl.StreamSocket, impl.DatagramSocket, impl.socketpair):
        with pytest.raises(OSError) as info:
            result = factory(family)
            if isinstance(result, tuple):
                for sock in result:
                    sock.close()
            else:
                result.close()
        assert info.value.errno == errno.EAFNOSUPPORT


def test_nonblocking_without_data(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        b.setblocking(False)
        with pytest.raises(BlockingIOError) as info:
            b.recv(10)
        assert info.value.errno == errno.EAGAIN
        with pytest.raises(BlockingIOError):
            b.recv_into(bytearray(10))
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    with impl.DatagramSocket() as d:
        d.bind(("127.0.0.1", 0))
        d.settimeout(0.0)
        with pytest.raises(BlockingIOError):
            d.recvfrom(10)
        with pytest.raises(BlockingIOError):
            d.recvfrom_into(bytearray(10))


def test_datagram_too_large(impl: ModuleType) -> None:
    with impl.DatagramSocket() as rx, impl.DatagramSocket() as tx:
        rx.bind(("127.0.0.1", 0))
        expect_oserror(lambda: tx.sendto(b"x" * 70_000, rx.getsockname()), errno.EMSGSIZE)
        tx.connect(rx.getsockname())
        expect_oserror(lambda: tx.send(b"x" * 70_000), errno.EMSGSIZE)


def test_oserror_carries_errno_and_strerror(impl: ModuleType, refused_port: int) -> None:
    with impl.StreamSocket() as s:
        with pytest.raises(OSError) as info:
            s.connect(("127.0.0.1", refused_port))
        exc = info.value
        assert exc.errno == errno.ECONNREFUSED
        assert exc.strerror == os.strerror(errno.ECONNREFUSED)
        assert str(exc) == f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"
