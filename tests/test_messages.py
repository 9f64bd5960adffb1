"""sendmsg, recvmsg, recvmsg_into and descriptor passing (send_fds, recv_fds),
on both twins and, where the stdlib has the call, side by side with it: the
same steps give the same results, exception types, errno and messages.

Received descriptors are compared by the file they refer to (device and
inode), must be close-on-exec, and are closed by each test; the tests that
truncate control data count every open descriptor before and after."""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import (
    HAS_IPV6,
    IMPLEMENTATIONS,
    Worker,
    implementation_module,
    implementation_module_name,
)

import fastsock
from fastsock import _common

SOL_SOCKET = socket.SOL_SOCKET
SCM_RIGHTS = socket.SCM_RIGHTS
CLOEXEC = socket.MSG_CMSG_CLOEXEC
# every way of making sockets the comparisons run on: the stdlib first
MAKERS = ["stdlib", *IMPLEMENTATIONS]
TRANSPORTS = ["unix-stream", "unix-dgram", "udp"]
UNIX_KINDS = {"unix-stream": socket.SOCK_STREAM, "unix-dgram": socket.SOCK_DGRAM}


# -- making sockets of the stdlib or of a twin ------------------------------------

def _maker(name: str) -> Any:
    return socket if name == "stdlib" else implementation_module(name)


def _unix_pair(name: str, kind: int) -> tuple[Any, Any]:
    if name == "stdlib":
        a, b = socket.socketpair(socket.AF_UNIX, kind)
        a.settimeout(None)
        b.settimeout(None)
        return a, b
    pair: tuple[Any, Any] = implementation_module(name).socketpair(socket.AF_UNIX, kind)
    return pair


def _udp_socket(name: str, family: int = socket.AF_INET) -> Any:
    if name == "stdlib":
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.settimeout(None)
        return sock
    return implementation_module(name).DatagramSocket(family)


@contextlib.contextmanager
def pair(name: str, transport: str) -> Iterator[tuple[Any, Any]]:
    """(sender, receiver) of ``transport``, both blocking; a UDP pair is
    connected both ways on 127.0.0.1."""
    if transport in UNIX_KINDS:
        a, b = _unix_pair(name, UNIX_KINDS[transport])
    else:
        a, b = _udp_socket(name), _udp_socket(name)
        try:
            b.bind(("127.0.0.1", 0))
            a.bind(("127.0.0.1", 0))
            a.connect(b.getsockname())
            b.connect(a.getsockname())
        except BaseException:
            a.close()
            b.close()
            raise
    with a, b:
        yield a, b


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """A call's result, or what must agree about its error."""
    try:
        return ("ok", call())
    except Exception as exc:  # the comparison is the test
        return ("error", type(exc).__name__, getattr(exc, "errno", None), str(exc))


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def is_cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def fds_in(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return fds.tolist()


def take_fds(fds: list[int]) -> list[tuple[tuple[int, int], bool]]:
    """What each received descriptor is (its file, whether close-on-exec);
    closes them."""
    seen = [(identity(fd), is_cloexec(fd)) for fd in fds]
    for fd in fds:
        os.close(fd)
    return seen


@pytest.fixture
def files() -> Iterator[list[int]]:
    """Three descriptors to pass: both ends of a pipe and a temporary file."""
    r, w = os.pipe()
    handle = tempfile.TemporaryFile()
    fds = [r, w, handle.fileno()]
    try:
        yield fds
    finally:
        os.close(r)
        os.close(w)
        handle.close()


def rights(fds: list[int]) -> tuple[int, int, bytes]:
    return (SOL_SOCKET, SCM_RIGHTS, array.array("i", fds).tobytes())


# -- plain messages: the same results as the stdlib ---------------------------------

def _plain_steps(name: str, transport: str) -> list[Any]:
    steps: list[Any] = []
    with pair(name, transport) as (a, b):
        sender = a.getsockname() if transport == "udp" else None

        def address(value: Any) -> Any:
            return "sender" if transport == "udp" and value == sender else value

        steps.append(a.sendmsg([b"ab", b"", bytearray(b"cd"), memoryview(b"ef")]))
        data, anc, flags, addr = b.recvmsg(100)
        steps.append((data, anc, flags, address(addr)))
        steps.append(a.sendmsg(iter([b"xyz"]), [], 0))
        first, second = bytearray(2), bytearray(5)
        n, anc, flags, addr = b.recvmsg_into([first, second], 0)
        steps.append((n, anc, flags, address(addr), bytes(first), bytes(second)))
        steps.append(a.sendmsg([b"peek"]))
        data, anc, flags, addr = b.recvmsg(100, 0, socket.MSG_PEEK)
        steps.append((data, anc, flags, address(addr)))
        data, anc, flags, addr = b.recvmsg(100, 64)  # room for control data, none came
        steps.append((data, anc, flags, address(addr)))
        if transport != "unix-stream":
            a.sendmsg([b"long datagram"])
            data, anc, flags, addr = b.recvmsg(4)
            steps.append((data, anc, flags & socket.MSG_TRUNC, address(addr)))
            a.sendmsg([b"long datagram"])
            n, anc, flags, addr = b.recvmsg_into([bytearray(4)], 0, socket.MSG_TRUNC)
            steps.append((n, anc, flags & socket.MSG_TRUNC, address(addr)))
            steps.append(a.sendmsg([]))  # an empty datagram
            steps.append(b.recvmsg(10)[:3])
        a.sendmsg([b"cloexec"])
        steps.append(b.recvmsg(100, 0, CLOEXEC)[:3])  # the kernel's echo, as asked
    return steps


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_plain_messages_match_stdlib(impl: ModuleType, transport: str) -> None:
    assert _plain_steps(impl.IMPLEMENTATION, transport) == _plain_steps("stdlib", transport)


def test_udp_sendmsg_to_an_address(impl: ModuleType) -> None:
    with contextlib.closing(impl.DatagramSocket()) as a, \
            contextlib.closing(impl.DatagramSocket()) as b:
        b.bind(("127.0.0.1", 0))
        assert a.sendmsg([b"to", b"you"], [], 0, b.getsockname()) == 5
        data, anc, flags, addr = b.recvmsg(10)
        assert (data, anc, flags, addr) == (b"toyou", [], 0, ("127.0.0.1", a.getsockname()[1]))


# <linux/in.h>: the stdlib names it only from Python 3.12
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8 if sys.platform == "linux" else None)


@pytest.mark.skipif(IP_PKTINFO is None, reason="no IP_PKTINFO")
def test_udp_ip_pktinfo_matches_stdlib(impl: ModuleType) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        with pair(name, "udp") as (a, b):
            b.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            a.sendmsg([b"where"])
            data, anc, flags, addr = b.recvmsg(10, socket.CMSG_SPACE(12))
            assert len(anc) == 1
            level, kind, info = anc[0]
            assert info[8:12] == socket.inet_aton("127.0.0.1")  # ipi_addr
            results.append((data, level, kind, len(info), flags))
    assert results[0] == results[1]


@pytest.mark.skipif(not HAS_IPV6 or not hasattr(socket, "IPV6_RECVPKTINFO"),
                    reason="no IPv6 loopback or IPV6_RECVPKTINFO")
def test_udp_ipv6_pktinfo_matches_stdlib(impl: ModuleType) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        a, b = _udp_socket(name, socket.AF_INET6), _udp_socket(name, socket.AF_INET6)
        with a, b:
            b.bind(("::1", 0))
            b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            a.sendmsg([b"six"], [], 0, b.getsockname()[:2])
            data, anc, flags, addr = b.recvmsg(10, socket.CMSG_SPACE(20))
            level, kind, info = anc[0]
            assert info[:16] == socket.inet_pton(socket.AF_INET6, "::1")
            results.append((data, level, kind, len(info), flags, addr[:2] == a.getsockname()[:2]))
    assert results[0] == results[1]


@pytest.mark.skipif(not hasattr(socket, "SCM_CREDENTIALS"), reason="no SCM_CREDENTIALS")
@pytest.mark.parametrize("transport", ["unix-stream", "unix-dgram"])
def test_credentials_round_trip_match_stdlib(impl: ModuleType, transport: str) -> None:
    credentials = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        with pair(name, transport) as (a, b):
            b.setsockopt(SOL_SOCKET, socket.SO_PASSCRED, 1)
            a.sendmsg([b"me"], [(SOL_SOCKET, socket.SCM_CREDENTIALS, credentials)])
            results.append(b.recvmsg(10, socket.CMSG_SPACE(12))[:3])
            a.sendmsg([b"cut"])
            results.append(b.recvmsg(10, socket.CMSG_LEN(4))[:3])  # credentials cut short
    assert results[0] == (b"me", [(SOL_SOCKET, socket.SCM_CREDENTIALS, credentials)], 0)
    assert results[1][2] & socket.MSG_CTRUNC
    assert results[:2] == results[2:]


# -- descriptors ------------------------------------------------------------------

RECEIVERS = ["recvmsg", "recvmsg_into", "recv_fds", "module recv_fds"]
SENDERS = ["sendmsg", "send_fds", "module send_fds"]


def _send(how: str, sock: Any, impl: ModuleType, data: bytes, fds: list[int]) -> int:
    if how == "sendmsg":
        return int(sock.sendmsg([data], [rights(fds)]))
    if how == "send_fds":
        return int(sock.send_fds([data], fds))
    return int(impl.send_fds(sock, [data], fds))


def _receive(how: str, sock: Any, impl: ModuleType, maxfds: int) -> tuple[bytes, list[int], int]:
    if how == "recvmsg":
        data, anc, flags, _ = sock.recvmsg(100, socket.CMSG_SPACE(maxfds * 4))
        return data, fds_in(anc), flags
    if how == "recvmsg_into":
        buf = bytearray(100)
        n, anc, flags, _ = sock.recvmsg_into([buf], socket.CMSG_SPACE(maxfds * 4))
        return bytes(buf[:n]), fds_in(anc), flags
    if how == "recv_fds":
        data, fds, flags, _ = sock.recv_fds(100, maxfds)
        return data, fds, flags
    data, fds, flags, _ = impl.recv_fds(sock, 100, maxfds)
    return data, fds, flags


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("receiver", RECEIVERS)
@pytest.mark.parametrize("transport", ["unix-stream", "unix-dgram"])
def test_descriptors_round_trip(impl: ModuleType, transport: str, sender: str,
                                receiver: str, files: list[int]) -> None:
    with pair(impl.IMPLEMENTATION, transport) as (a, b):
        assert _send(sender, a, impl, b"fds", files) == 3
        data, fds, flags = _receive(receiver, b, impl, 3)
        assert (data, len(fds), flags) == (b"fds", 3, 0)
        assert take_fds(fds) == [(identity(fd), True) for fd in files]


def test_the_same_descriptor_twice(impl: ModuleType, files: list[int]) -> None:
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        a.send_fds([b"x"], [files[0], files[0]])
        data, fds, flags, addr = b.recv_fds(1, 2)
        assert fds[0] != fds[1]
        assert take_fds(fds) == [(identity(files[0]), True)] * 2


def test_several_control_messages(impl: ModuleType, files: list[int]) -> None:
    with pair(impl.IMPLEMENTATION, "unix-dgram") as (a, b):
        a.sendmsg([b"two"], [rights(files[:1]), rights(files[1:])])
        data, anc, flags, _ = b.recvmsg(10, socket.CMSG_SPACE(12) * 2)
        # the kernel merges SCM_RIGHTS messages into one
        assert (data, flags) == (b"two", 0)
        assert take_fds(fds_in(anc)) == [(identity(fd), True) for fd in files]


# ancillary buffer sizes around what three descriptors need
ANCBUFSIZES = [0, 1, socket.CMSG_LEN(0), socket.CMSG_LEN(4), socket.CMSG_LEN(4) + 2,
               socket.CMSG_SPACE(4), socket.CMSG_LEN(8), socket.CMSG_SPACE(12), 4096]


def _truncated_steps(name: str, transport: str, ancbufsize: int,
                     files: list[int]) -> list[Any]:
    steps: list[Any] = []
    with pair(name, transport) as (a, b):
        a.sendmsg([b"abc"], [rights(files)])
        data, anc, flags, addr = b.recvmsg(10, ancbufsize)
        steps.append((data, [(level, kind) for level, kind, _ in anc], flags, addr))
        steps.append([seen for seen, _ in take_fds(fds_in(anc))])
        a.sendmsg([b"def"], [rights(files)])
        data, fds, flags, addr = (socket.recv_fds(b, 10, ancbufsize // 4) if name == "stdlib"
                                  else b.recv_fds(10, ancbufsize // 4))
        steps.append((data, flags, addr))
        steps.append([seen for seen, _ in take_fds(fds)])
    return steps


@pytest.mark.parametrize("ancbufsize", ANCBUFSIZES)
@pytest.mark.parametrize("transport", ["unix-stream", "unix-dgram"])
def test_truncated_control_data_matches_stdlib_and_leaks_nothing(
        impl: ModuleType, transport: str, ancbufsize: int, files: list[int]) -> None:
    before = open_fds()
    ours = _truncated_steps(impl.IMPLEMENTATION, transport, ancbufsize, files)
    assert open_fds() == before, "a truncated receive left descriptors open"
    assert ours == _truncated_steps("stdlib", transport, ancbufsize, files)
    if ancbufsize < socket.CMSG_SPACE(12):
        assert ours[0][2] & socket.MSG_CTRUNC


def test_descriptors_not_asked_for_are_closed_by_the_kernel(
        impl: ModuleType, files: list[int]) -> None:
    before = open_fds()
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        a.send_fds([b"x"], files)
        assert b.recv(10) == b"x"  # a plain receive: the kernel drops them
        a.send_fds([b"y"], files)
        assert b.recvmsg(10) == (b"y", [], socket.MSG_CTRUNC, None)
    assert open_fds() == before


# -- interoperation with the stdlib -----------------------------------------------

@pytest.mark.parametrize("transport", ["unix-stream", "unix-dgram"])
def test_ours_send_fds_to_stdlib_recv_fds(impl: ModuleType, transport: str,
                                          files: list[int]) -> None:
    a, b = _unix_pair(impl.IMPLEMENTATION, UNIX_KINDS[transport])
    with a, b.to_socket() as peer:
        assert impl.send_fds(a, [b"to ", b"stdlib"], files) == 9
        data, fds, flags, addr = socket.recv_fds(peer, 100, 3)
        assert (data, flags, addr) == (b"to stdlib", 0, None)
        assert [seen for seen, _ in take_fds(fds)] == [identity(fd) for fd in files]


@pytest.mark.parametrize("transport", ["unix-stream", "unix-dgram"])
def test_stdlib_send_fds_to_ours_recv_fds(impl: ModuleType, transport: str,
                                          files: list[int]) -> None:
    a, b = _unix_pair(impl.IMPLEMENTATION, UNIX_KINDS[transport])
    with a, b:
        peer = a.to_socket()
        with peer:
            assert socket.send_fds(peer, [b"from stdlib"], files) == 11
            data, fds, flags, addr = impl.recv_fds(b, 100, 3)
        assert (data, flags, addr) == (b"from stdlib", 0, None)
        assert take_fds(fds) == [(identity(fd), True) for fd in files]


def test_send_fds_honours_flags_and_address(impl: ModuleType, unix_dir: str,
                                            files: list[int]) -> None:
    path = os.path.join(unix_dir, "dgram")
    with contextlib.closing(impl.DatagramSocket(socket.AF_UNIX)) as receiver, \
            contextlib.closing(impl.DatagramSocket(socket.AF_UNIX)) as sender:
        receiver.bind(path)
        assert impl.send_fds(sender, [b"addressed"], files[:1], 0, path) == 9
        a, b = impl.socketpair()
        with a, b:
            a.send_fds([b"peeked"], files[:1])
            data, fds, flags, _ = impl.recv_fds(b, 100, 1, socket.MSG_PEEK)
            take_fds(fds)
            data_again, fds, flags, _ = b.recv_fds(100, 1)
            assert data == data_again == b"peeked"
            take_fds(fds)
        data, fds, flags, addr = receiver.recv_fds(100, 1)
        assert data == b"addressed"
        assert take_fds(fds) == [(identity(files[0]), True)]


def test_module_functions_take_a_stdlib_socket_too(impl: ModuleType) -> None:
    # as the stdlib's functions, and the received descriptors close-on-exec
    a, b = socket.socketpair()
    with a, b, open(__file__, "rb") as shared:
        assert impl.send_fds(a, [b"x"], [shared.fileno()]) == 1
        data, fds, flags, address = impl.recv_fds(b, 10, 2)
        assert (data, len(fds), flags) == (b"x", 1, 0)
        try:
            assert not os.get_inheritable(fds[0])
            assert os.fstat(fds[0]).st_ino == os.fstat(shared.fileno()).st_ino
        finally:
            os.close(fds[0])
        with pytest.raises(TypeError, match="fastsock StreamSocket or DatagramSocket"):
            impl.send_fds(object(), [b"x"], [0])
    assert impl.send_fds is fastsock.send_fds is _common.send_fds
    assert impl.recv_fds is fastsock.recv_fds is _common.recv_fds


# -- bad arguments: the stdlib's errors -------------------------------------------

_BAD_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("sendmsg bytes", lambda s: s.sendmsg(b"abc")),
    ("sendmsg int", lambda s: s.sendmsg(5)),
    ("sendmsg str item", lambda s: s.sendmsg(["abc"])),
    ("sendmsg strided", lambda s: s.sendmsg([memoryview(b"abcd")[::2]])),
    ("ancdata int", lambda s: s.sendmsg([b"x"], 5)),
    ("ancdata None", lambda s: s.sendmsg([b"x"], None)),
    ("item int", lambda s: s.sendmsg([b"x"], [5])),
    ("item None", lambda s: s.sendmsg([b"x"], [None])),
    ("item bytes", lambda s: s.sendmsg([b"x"], [b"abc"])),
    ("item dict", lambda s: s.sendmsg([b"x"], [{1: 2}])),
    ("item str", lambda s: s.sendmsg([b"x"], ["abc"])),
    ("item pair", lambda s: s.sendmsg([b"x"], [(1, 2)])),
    ("item four", lambda s: s.sendmsg([b"x"], [(1, 2, 3, 4)])),
    ("item data str", lambda s: s.sendmsg([b"x"], [(1, 2, "s")])),
    ("item data int", lambda s: s.sendmsg([b"x"], [(1, 2, 5)])),
    ("item data strided", lambda s: s.sendmsg([b"x"], [(1, 2, memoryview(b"abcd")[::2])])),
    ("item level str", lambda s: s.sendmsg([b"x"], [("a", 2, b"s")])),
    ("item type float", lambda s: s.sendmsg([b"x"], [(1, 2.0, b"s")])),
    ("item level big", lambda s: s.sendmsg([b"x"], [(2**40, 2, b"s")])),
    ("item level small", lambda s: s.sendmsg([b"x"], [(-2**40, 2, b"s")])),
    ("item unknown type", lambda s: s.sendmsg([b"x"], [(SOL_SOCKET, 99, b"")])),
    ("item list", lambda s: s.sendmsg([b"x"], [[SOL_SOCKET, 99, b""]])),
    ("rights bad fd", lambda s: s.sendmsg([b"x"], [rights([9999])])),
    ("flags str", lambda s: s.sendmsg([b"x"], [], "f")),
    ("flags big", lambda s: s.sendmsg([b"x"], [], 2**40)),
    ("flags before address", lambda s: s.sendmsg([b"x"], [], "f", 5)),
    ("address int", lambda s: s.sendmsg([b"x"], [], 0, 5)),
    ("address before data", lambda s: s.sendmsg(5, [], 0, 5)),
    ("too many buffers", lambda s: s.sendmsg([b"x"] * 2000)),
    ("recvmsg negative", lambda s: s.recvmsg(-1)),
    ("recvmsg negative anc", lambda s: s.recvmsg(1, -1)),
    ("recvmsg huge anc", lambda s: s.recvmsg(1, 2**40)),
    ("recvmsg str", lambda s: s.recvmsg("a")),
    ("recvmsg float", lambda s: s.recvmsg(1.0)),
    ("recvmsg anc str", lambda s: s.recvmsg(1, "a")),
    ("recvmsg flags str", lambda s: s.recvmsg(1, 0, "a")),
    ("recvmsg overflow", lambda s: s.recvmsg(2**70)),
    ("recvmsg anc overflow", lambda s: s.recvmsg(1, 2**70)),
    ("recvmsg flags overflow", lambda s: s.recvmsg(1, 0, 2**40)),
    ("recvmsg negative then flags", lambda s: s.recvmsg(-1, 0, "x")),
    ("into int", lambda s: s.recvmsg_into(5)),
    ("into bytes item", lambda s: s.recvmsg_into([b"abc"])),
    ("into int item", lambda s: s.recvmsg_into([5])),
    ("into bytearray", lambda s: s.recvmsg_into(bytearray(5))),
    ("into strided", lambda s: s.recvmsg_into([memoryview(bytearray(4))[::2]])),
    ("into negative anc", lambda s: s.recvmsg_into([bytearray(5)], -1)),
    ("into anc str", lambda s: s.recvmsg_into([bytearray(5)], "x")),
    ("into flags before buffers", lambda s: s.recvmsg_into(5, 0, "x")),
    ("into buffers before anc", lambda s: s.recvmsg_into([5], -1)),
    ("send_fds str", lambda s: s.send_fds([b"x"], ["a"])),
    ("send_fds big", lambda s: s.send_fds([b"x"], [2**40])),
    ("send_fds int", lambda s: s.send_fds([b"x"], 5)),
    ("send_fds float", lambda s: s.send_fds([b"x"], [1.0])),
    ("send_fds closed fd", lambda s: s.send_fds([b"x"], [9999])),
    ("recv_fds negative", lambda s: s.recv_fds(10, -1)),
    ("recv_fds float", lambda s: s.recv_fds(10, 1.0)),
    ("recv_fds str", lambda s: s.recv_fds(10, "a")),
    ("recv_fds huge", lambda s: s.recv_fds(10, 2**62)),
    ("recv_fds negative bufsize", lambda s: s.recv_fds(-1, 1)),
]


def _stdlib_fds_call(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The stdlib's socket has no send_fds/recv_fds methods: its module functions."""
    class Shim:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def send_fds(self, *args: Any) -> Any:
            return socket.send_fds(self.sock, *args)

        def recv_fds(self, *args: Any) -> Any:
            return socket.recv_fds(self.sock, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.sock, name)

    return lambda sock: call(Shim(sock))


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
@pytest.mark.parametrize("label,call", _BAD_CALLS, ids=[label for label, _ in _BAD_CALLS])
def test_bad_arguments_match_stdlib(impl: ModuleType, label: str, call: Callable[[Any], Any],
                                    closed: bool) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        a, b = _unix_pair(name, socket.SOCK_STREAM)
        with a, b:
            b.setblocking(False)  # a call that gets past the checks must not wait
            if closed:
                b.close()
            results.append(outcome(lambda: (_stdlib_fds_call(call) if name == "stdlib"
                                            else call)(b)))
    assert results[1] == results[0]
    assert results[0][0] == "error"


# -- waiting: timeouts, non-blocking, EOF, reset ------------------------------------

RECEIVE_CALLS: dict[str, Callable[[Any], Any]] = {
    "recvmsg": lambda s: s.recvmsg(10, 64),
    "recvmsg_into": lambda s: s.recvmsg_into([bytearray(10)], 64),
    "recv_fds": lambda s: s.recv_fds(10, 4),
}


def _stdlib_call(name: str, call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return _stdlib_fds_call(call) if name == "stdlib" else call


@pytest.mark.parametrize("timeout", [0.0, 0.05], ids=["nonblocking", "timeout"])
@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nothing_to_receive_matches_stdlib(impl: ModuleType, transport: str, method: str,
                                           timeout: float) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        with pair(name, transport) as (a, b):
            b.settimeout(timeout)
            start = time.monotonic()
            results.append(outcome(lambda: _stdlib_call(name, RECEIVE_CALLS[method])(b)))
            assert time.monotonic() - start < timeout + 1.0
    assert results[1] == results[0]
    assert results[0][1] == ("TimeoutError" if timeout else "BlockingIOError")


@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_end_of_stream_matches_stdlib(impl: ModuleType, method: str) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        with pair(name, "unix-stream") as (a, b):
            a.sendall(b"last")
            a.close()
            call = _stdlib_call(name, RECEIVE_CALLS[method])
            results.append([outcome(lambda: call(b)) for _ in range(2)])
    assert results[1] == results[0]


@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_peer_reset_matches_stdlib(impl: ModuleType, method: str) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        listener = socket.create_server(("127.0.0.1", 0))
        with listener:
            sock = _maker(name).create_connection(listener.getsockname(), timeout=5)
            with sock:
                peer, _ = listener.accept()
                peer.setsockopt(SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.close()
                time.sleep(0.05)
                call = _stdlib_call(name, RECEIVE_CALLS[method])
                results.append([outcome(lambda: call(sock)) for _ in range(2)])
    assert results[1] == results[0]
    assert results[0][0][1] == "ConnectionResetError"


def test_send_to_a_closed_peer_matches_stdlib(impl: ModuleType, files: list[int]) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        with pair(name, "unix-stream") as (a, b):
            b.close()
            results.append(outcome(lambda: a.sendmsg([b"x"], [rights(files)])))
    assert results[1] == results[0]
    assert results[0][1] == "BrokenPipeError"


_SIGPIPE_CHILD = """
import importlib, json, signal, socket, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
m = importlib.import_module(sys.argv[1])
results = {}
for name, call in (("sendmsg", lambda s: s.sendmsg([b"x" * 1000])),
                   ("send_fds", lambda s: s.send_fds([b"x"], [0]))):
    a, b = m.socketpair()
    b.close()
    try:
        for _ in range(100):
            call(a)
        results[name] = "no error"
    except OSError as exc:
        results[name] = type(exc).__name__
    a.close()
print(json.dumps(results))
"""


def test_sigpipe_never_kills(impl: ModuleType) -> None:
    proc = subprocess.run([sys.executable, "-c", _SIGPIPE_CHILD,
                           implementation_module_name(impl.IMPLEMENTATION)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != -signal.SIGPIPE, "the process was killed by SIGPIPE"
    assert json.loads(proc.stdout) == {"sendmsg": "BrokenPipeError",
                                       "send_fds": "BrokenPipeError"}


# -- sends that do not fit ---------------------------------------------------------

def _drain(sock: Any, until: int, collected: list[int]) -> bytes:
    """Receive ``until`` bytes with recvmsg, keeping every descriptor that came."""
    chunks = []
    got = 0
    while got < until:
        data, anc, flags, _ = sock.recvmsg(65536, socket.CMSG_SPACE(64))
        assert not flags & socket.MSG_CTRUNC
        collected.extend(fds_in(anc))
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def test_nonblocking_partial_send_on_a_full_stream(impl: ModuleType,
                                                   files: list[int]) -> None:
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        a.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, 4096)
        a.setblocking(False)
        payload = bytes(range(256)) * 4096
        sent = a.sendmsg([payload], [rights(files[:1])])
        assert 0 < sent < len(payload)
        with pytest.raises(BlockingIOError):
            for _ in range(10000):
                a.sendmsg([b"more"])
        received: list[int] = []
        assert _drain(b, sent, received) == payload[:sent]
        assert [seen for seen, _ in take_fds(received)] == [identity(files[0])]


def test_timeout_send_on_a_full_stream(impl: ModuleType) -> None:
    results = []
    for name in ("stdlib", impl.IMPLEMENTATION):
        with pair(name, "unix-stream") as (a, b):
            a.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, 4096)
            a.settimeout(0.05)
            with pytest.raises(TimeoutError, match="timed out"):
                for _ in range(100000):
                    a.sendmsg([b"x" * 1000])
            results.append(True)
    assert results == [True, True]


@pytest.mark.parametrize("timeout", [None, 10.0], ids=["blocking", "timeout"])
def test_send_larger_than_the_buffer_sends_the_descriptors_once(
        impl: ModuleType, timeout: Optional[float], files: list[int]) -> None:
    """A blocking send larger than the socket buffer sends it all, as the
    kernel's blocking sendmsg: the first try fits part, the rest follows
    without the control data, which came with the first part.  With a
    timeout it sends what fits once ready, as the stdlib's."""
    payload = os.urandom(4 * 1024 * 1024)
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        a.settimeout(timeout)
        received: list[int] = []
        reader = Worker(lambda: _drain(b, len(payload), received))
        reader.start()
        try:
            sent = a.sendmsg([payload[:10], payload[10:]], [rights(files)])
        finally:
            a.shutdown(socket.SHUT_WR)
            data = reader.finish()
        assert sent == len(payload) if timeout is None else 0 < sent <= len(payload)
        assert data == payload[:sent]
        assert [seen for seen, _ in take_fds(received)] == [identity(fd) for fd in files]


# -- signals and close() from another thread ---------------------------------------

def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def alarm(after: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _raise_keyboard_interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, after)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["blocking", "timeout"])
@pytest.mark.parametrize("method", [*RECEIVE_CALLS, "sendmsg"])
def test_signal_handler_exception_propagates(impl: ModuleType, method: str,
                                             timeout: Optional[float]) -> None:
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        call: Callable[[Any], Any]
        if method == "sendmsg":
            sock = a
            sock.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, 4096)

            def call(s: Any) -> Any:  # until the socket buffer is full, then waits
                while True:
                    s.sendmsg([b"x" * 65536])
        else:
            sock, call = b, RECEIVE_CALLS[method]
        sock.settimeout(timeout)
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            with alarm(0.2):
                call(sock)
        assert 0.15 <= time.monotonic() - start < 5
        if method != "sendmsg":  # the socket still works
            a.sendall(b"still works")
            assert b.recvmsg(100)[0] == b"still works"


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["blocking", "timeout"])
@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
@pytest.mark.parametrize("transport", ["unix-stream", "unix-dgram"])
def test_close_from_another_thread_wakes_a_blocked_receive(
        impl: ModuleType, transport: str, method: str, timeout: Optional[float]) -> None:
    with pair(impl.IMPLEMENTATION, transport) as (a, b):
        b.settimeout(timeout)
        worker = Worker(lambda: RECEIVE_CALLS[method](b))
        worker.start()
        worker.entered.wait(5)
        time.sleep(0.2)
        assert worker.is_alive(), "the call did not block"
        closed_at = time.monotonic()
        b.close()
        worker.join(5)
        if worker.is_alive():
            a.close()  # end the call so that the failure is reported, not a hang
        with pytest.raises(OSError) as caught:
            worker.finish()
        assert caught.value.errno == errno.EBADF
        assert worker.ended_at is not None and worker.ended_at - closed_at < 2


# -- a StreamSocket's receive buffer comes first --------------------------------------

@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_buffered_bytes_come_first(impl: ModuleType, method: str, files: list[int]) -> None:
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        a.sendall(b"line\nAB")
        assert b.recv_until(b"\n") == b"line\n"
        a.send_fds([b"CD"], files[:1])
        time.sleep(0.05)
        assert b.buffered == 2
        # the buffered bytes, with no ancillary data and no address
        first = RECEIVE_CALLS[method](b)
        assert first[1:] == ([], 0, None)
        assert first[0] in (b"AB", 2)
        # then the kernel's, with their descriptor
        data, anc, flags, addr = b.recvmsg(10, 64)
        assert (data, flags, addr) == (b"CD", 0, None)
        assert take_fds(fds_in(anc)) == [(identity(files[0]), True)]


def test_buffered_bytes_scatter_and_peek(impl: ModuleType) -> None:
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        a.sendall(b"x\n0123456789")
        b.recv_until(b"\n")
        time.sleep(0.05)
        assert b.recvmsg(4, 0, socket.MSG_PEEK) == (b"0123", [], 0, None)
        assert b.buffered == 10
        first, second = bytearray(3), bytearray(4)
        assert b.recvmsg_into([first, memoryview(second)], 0, socket.MSG_PEEK)[0] == 7
        assert b.buffered == 10
        assert b.recvmsg_into([first, memoryview(second)])[0] == 7
        assert (bytes(first), bytes(second)) == (b"012", b"3456")
        assert b.recv_fds(100, 1) == (b"789", [], 0, None)
        assert b.buffered == 0
        # bad arguments are refused as when nothing is buffered
        a.sendall(b"y\nz")
        b.recv_until(b"\n")
        time.sleep(0.05)
        with pytest.raises(ValueError, match="invalid ancillary data buffer length"):
            b.recvmsg(1, -1)
        with pytest.raises(TypeError, match="single-segment read-write buffers"):
            b.recvmsg_into([b"ro"])
        assert b.recvmsg(10) == (b"z", [], 0, None)


def test_receive_while_a_framing_call_runs_is_refused(impl: ModuleType) -> None:
    with pair(impl.IMPLEMENTATION, "unix-stream") as (a, b):
        worker = Worker(lambda: b.recv_exactly(10))
        worker.start()
        worker.entered.wait(5)
        time.sleep(0.1)
        for call in RECEIVE_CALLS.values():
            with pytest.raises(RuntimeError, match="another receive call"):
                call(b)
        a.sendall(b"0123456789")
        assert worker.finish() == b"0123456789"


# -- no descriptor leaks on the pure twin's failure paths ----------------------------

def test_pure_twin_closes_descriptors_when_building_the_result_fails(
        monkeypatch: pytest.MonkeyPatch, files: list[int]) -> None:
    pure = implementation_module("python")

    def fail(ancdata: Any) -> list[int]:
        raise MemoryError

    before = open_fds()
    with pair("python", "unix-stream") as (a, b):
        a.send_fds([b"x"], files)
        monkeypatch.setattr(_common, "received_fds", fail)
        with pytest.raises(MemoryError):
            pure.recv_fds(b, 10, 3)
    assert open_fds() == before
