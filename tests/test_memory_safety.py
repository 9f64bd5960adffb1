"""Boundary cases where a C implementation could read or write past a buffer:
lengths the kernel reports beyond what it stored (MSG_TRUNC), addresses at
the size limits of their sockaddr, and receive-into calls that must write
only inside the caller's buffer.  Both implementations give the same results;
``make asan-test`` and ``make valgrind-test`` run these against instrumented
builds, where an overrun is reported even when the result looks right."""

from __future__ import annotations

import os
import socket
from types import ModuleType
from typing import Any

import pytest

MSG_TRUNC = socket.MSG_TRUNC
SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux

# longer than the compiled recv()'s on-stack buffer (8 KiB) and than any
# bufsize below, with no byte repeating at a short period
DATAGRAM = os.urandom(20_000)

# one bufsize read through the on-stack buffer, one through a heap allocation
BUFSIZES = [16, 9_000]


def dgram_pair(impl: ModuleType) -> tuple[Any, Any]:
    a, b = impl.socketpair(impl.AF_UNIX, impl.SOCK_DGRAM)
    b.settimeout(5.0)
    return a, b


@pytest.mark.parametrize("bufsize", BUFSIZES)
def test_recv_with_msg_trunc_returns_only_the_bytes_received(impl: ModuleType,
                                                             bufsize: int) -> None:
    a, b = dgram_pair(impl)
    with a, b:
        a.send(DATAGRAM)
        assert b.recv(bufsize, MSG_TRUNC) == DATAGRAM[:bufsize]
        # the datagram was consumed whole
        a.send(b"next")
        assert b.recv(bufsize) == b"next"


@pytest.mark.parametrize("bufsize", BUFSIZES)
def test_recvfrom_with_msg_trunc_returns_only_the_bytes_received(impl: ModuleType,
                                                                 bufsize: int) -> None:
    a, b = dgram_pair(impl)
    with a, b:
        a.send(DATAGRAM)
        data, address = b.recvfrom(bufsize, MSG_TRUNC)
        assert data == DATAGRAM[:bufsize]
        assert address is None  # socketpair ends have no name


@pytest.mark.parametrize("bufsize", BUFSIZES)
def test_msg_trunc_with_a_datagram_that_fits(impl: ModuleType, bufsize: int) -> None:
    a, b = dgram_pair(impl)
    with a, b:
        a.send(DATAGRAM[:10])
        assert b.recv(bufsize, MSG_TRUNC) == DATAGRAM[:10]
        a.send(DATAGRAM[:10])
        assert b.recvfrom(bufsize, MSG_TRUNC)[0] == DATAGRAM[:10]


def test_receive_into_with_msg_trunc_reports_the_real_length_and_writes_only_the_buffer(
        impl: ModuleType) -> None:
    """As the stdlib: the result is the datagram's length; the bytes past the
    buffer (here: past a slice of a larger bytearray) are left alone."""
    a, b = dgram_pair(impl)
    with a, b:
        backing = bytearray(b"\xaa" * 64)
        with memoryview(backing) as whole:
            a.send(DATAGRAM)
            assert b.recv_into(whole[:16], 0, MSG_TRUNC) == len(DATAGRAM)
            assert backing[:16] == DATAGRAM[:16]
            assert backing[16:] == b"\xaa" * 48
            a.send(DATAGRAM)
            n, _ = b.recvfrom_into(whole[:32], 8, MSG_TRUNC)
            assert n == len(DATAGRAM)
            assert backing[:8] == DATAGRAM[:8]
            assert backing[8:16] == DATAGRAM[8:16]  # the previous call's bytes
            assert backing[16:] == b"\xaa" * 48


def test_receive_into_writes_only_nbytes(impl: ModuleType) -> None:
    a, b = dgram_pair(impl)
    with a, b:
        backing = bytearray(b"\xaa" * 64)
        a.send(DATAGRAM)
        assert b.recv_into(backing, 10) == 10
        assert backing == DATAGRAM[:10] + b"\xaa" * 54


def test_longest_unix_path_round_trips(impl: ModuleType, unix_dir: str) -> None:
    """A path of 107 bytes fills sun_path but for its terminating NUL."""
    path = os.path.join(unix_dir, "p" * (SUN_PATH_MAX - 2 - len(unix_dir)))
    assert len(os.fsencode(path)) == SUN_PATH_MAX - 1
    with impl.DatagramSocket(impl.AF_UNIX) as receiver, \
            impl.DatagramSocket(impl.AF_UNIX) as sender:
        receiver.bind(path)
        sender_path = path[:-1] + "q"
        sender.bind(sender_path)
        assert receiver.getsockname() == path
        sender.sendto(b"x", path)
        receiver.settimeout(5.0)
        assert receiver.recvfrom(16) == (b"x", sender_path)


def test_longest_abstract_name_round_trips(impl: ModuleType) -> None:
    """An abstract name uses all 108 bytes of sun_path, with no NUL after it."""
    tag = os.urandom(8).hex().encode()
    name = (b"\0fastsock-" + tag).ljust(SUN_PATH_MAX, b"n")
    other = name[:-1] + b"o"
    with impl.DatagramSocket(impl.AF_UNIX) as receiver, \
            impl.DatagramSocket(impl.AF_UNIX) as sender:
        receiver.bind(name)
        sender.bind(other)
        assert receiver.getsockname() == name
        sender.sendto(b"y", name)
        receiver.settimeout(5.0)
        assert receiver.recvfrom(16) == (b"y", other)


def test_shortest_abstract_name_round_trips(impl: ModuleType) -> None:
    with impl.StreamSocket(impl.AF_UNIX) as server:
        # b"\0" + a unique byte string: the shortest names are taken quickly,
        # so use a short random one
        name = b"\0" + os.urandom(4).hex().encode()
        server.bind(name)
        server.listen()
        assert server.getsockname() == name
        with impl.StreamSocket(impl.AF_UNIX) as client:
            client.settimeout(5.0)
            client.connect(name)
            conn, peer = server.accept()
            with conn:
                assert peer == ""  # an unbound client has no name
                assert conn.getsockname() == name
                assert client.getpeername() == name


def test_unix_addresses_one_byte_too_long_are_refused(impl: ModuleType) -> None:
    with impl.DatagramSocket(impl.AF_UNIX) as sock:
        with pytest.raises(OSError):
            sock.bind("/" + "x" * (SUN_PATH_MAX - 1))
        with pytest.raises(OSError):
            sock.bind(b"\0" + b"x" * SUN_PATH_MAX)
        with pytest.raises(OSError):
            sock.sendto(b"z", b"\0" + b"x" * SUN_PATH_MAX)
