"""The public API of both implementations over real sockets on 127.0.0.1, ::1
and Unix paths: construction, connection set-up, data transfer with every
kind of buffer, addresses, options, timeouts, descriptor hand-over and the
helper functions."""

from __future__ import annotations

import array
import contextlib
import errno
import mmap
import os
import select
import socket
import struct
import threading
import time
import uuid
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from conftest import HAS_IPV6, small_buffers

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
AF_UNIX = socket.AF_UNIX
SOCK_STREAM = socket.SOCK_STREAM
SOCK_DGRAM = socket.SOCK_DGRAM


needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")


def abstract_name() -> bytes:
    """A Linux abstract AF_UNIX name no other test or process uses."""
    return b"\0fastsock-test-" + uuid.uuid4().hex.encode()


@contextlib.contextmanager
def connected(impl: ModuleType, family: int, address: Any) -> Iterator[tuple[Any, Any]]:
    """(client, accepted) StreamSockets connected through a listener at address."""
    with impl.StreamSocket(family) as server:
        server.bind(address)
        server.listen()
        with impl.StreamSocket(family) as client:
            client.connect(server.getsockname())
            conn, _ = server.accept()
            with conn:
                yield client, conn


@pytest.fixture
def pair(impl: ModuleType, stream_family: tuple[int, Any]) -> Iterator[tuple[Any, Any]]:
    family, address = stream_family
    with connected(impl, family, address) as both:
        yield both


@pytest.fixture(params=["ipv4", "ipv6", "unix"])
def dgram_family(request: pytest.FixtureRequest, unix_dir: str) -> tuple[int, Any, Any]:
    """(family, receiver address, sender address) for each datagram family."""
    if request.param == "ipv4":
        return AF_INET, ("127.0.0.1", 0), ("127.0.0.1", 0)
    if request.param == "ipv6":
        if not HAS_IPV6:
            pytest.skip("no IPv6 loopback")
        return AF_INET6, ("::1", 0), ("::1", 0)
    return AF_UNIX, os.path.join(unix_dir, "rx"), os.path.join(unix_dir, "tx")


def recv_exactly(sock: Any, n: int, timeout: float = 5.0) -> bytes:
    """Read n bytes from a blocking stream socket, bounded in calls and time."""
    sock.settimeout(timeout)
    chunks = []
    got = 0
    deadline = time.monotonic() + timeout
    for _ in range(n + 1):
        if got >= n or time.monotonic() > deadline:
            break
        chunk = sock.recv(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def assert_cloexec(sock: Any) -> None:
    assert os.get_inheritable(sock.fileno()) is False


# -- construction ---------------------------------------------------------------


@pytest.mark.parametrize("family", [AF_INET, pytest.param(AF_INET6, marks=needs_ipv6),
                                    AF_UNIX], ids=["inet", "inet6", "unix"])
def test_construction_per_family(impl: ModuleType, family: int) -> None:
    for kind in (SOCK_STREAM, SOCK_DGRAM):
        check_new_socket(impl, family, kind)


def check_new_socket(impl: ModuleType, family: int, kind: int) -> None:
    cls = impl.StreamSocket if kind == SOCK_STREAM else impl.DatagramSocket
    sock = cls(family)
    try:
        assert isinstance(sock, cls)
        assert sock.family == family
        assert sock.type == kind
        assert sock.proto == 0
        assert sock.closed is False
        fd = sock.fileno()
        assert isinstance(fd, int) and fd >= 0
        assert os.path.exists(f"/proc/self/fd/{fd}")
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        assert sock.gettimeout() is None
        assert sock.getblocking() is True
        assert os.get_blocking(fd) is True
        assert_cloexec(sock)
        # the kernel agrees about what was created
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == kind
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == family
    finally:
        sock.close()
    assert sock.closed is True
    assert sock.fileno() == -1


def test_default_family_is_inet(impl: ModuleType) -> None:
    with impl.StreamSocket() as s, impl.DatagramSocket() as d:
        assert s.family == AF_INET and s.type == SOCK_STREAM
        assert d.family == AF_INET and d.type == SOCK_DGRAM


def test_default_timeout_applies_as_in_the_stdlib(impl: ModuleType) -> None:
    # socket.setdefaulttimeout() sets the timeout of every socket made after it:
    # the constructor's, accept()'s, socketpair()'s, create_connection()'s;
    # SOCK_NONBLOCK in the type makes a socket non-blocking instead
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(3.0)
    try:
        with impl.StreamSocket() as made, socket.socket() as reference:
            assert made.gettimeout() == reference.gettimeout() == 3.0
            assert os.get_blocking(made.fileno()) is os.get_blocking(reference.fileno()) is False
        with impl.DatagramSocket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) as made:
            assert made.gettimeout() == 0.0 and not os.get_blocking(made.fileno())
        a, b = impl.socketpair()
        with a, b:
            assert a.gettimeout() == b.gettimeout() == 3.0
        with impl.create_server() as server:
            with impl.create_connection(server.getsockname()) as client:
                conn, _ = server.accept()
                with conn:
                    assert client.gettimeout() == conn.gettimeout() == 3.0
                    assert not os.get_blocking(conn.fileno())
            with impl.create_connection(server.getsockname(), None) as client:
                assert client.gettimeout() is None  # an explicit None blocks
                server.accept()[0].close()
        socket.setdefaulttimeout(None)
        with impl.StreamSocket() as made:
            assert made.gettimeout() is None and os.get_blocking(made.fileno())
    finally:
        socket.setdefaulttimeout(old)


def test_family_and_type_are_ints_usable_as_constants(impl: ModuleType) -> None:
    assert impl.AF_INET == AF_INET and impl.AF_INET6 == AF_INET6
    assert impl.AF_UNIX == AF_UNIX
    assert impl.SOCK_STREAM == SOCK_STREAM and impl.SOCK_DGRAM == SOCK_DGRAM
    assert (impl.SHUT_RD, impl.SHUT_WR, impl.SHUT_RDWR) == (
        socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR)


# -- connection set-up ------------------------------------------------------------


def test_bind_listen_accept_connect(impl: ModuleType, stream_family: tuple[int, Any]) -> None:
    family, address = stream_family
    with impl.StreamSocket(family) as server:
        server.bind(address)
        server.listen(5)
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with impl.StreamSocket(family) as client:
            assert client.connect(server.getsockname()) is None
            conn, peer = server.accept()
            with conn:
                assert isinstance(conn, impl.StreamSocket)
                assert conn.family == family
                assert conn.type == SOCK_STREAM
                assert conn.closed is False
                assert conn.gettimeout() is None
                assert os.get_blocking(conn.fileno()) is True
                assert_cloexec(conn)
                assert_cloexec(client)
                assert_cloexec(server)
                assert peer == client.getsockname()
                assert conn.getpeername() == client.getsockname()
                assert client.getpeername() == server.getsockname()
                assert conn.getsockname() == server.getsockname()


def test_accepted_socket_blocks_even_if_listener_has_timeout(impl: ModuleType) -> None:
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(2.0)
        with impl.StreamSocket() as client:
            client.connect(server.getsockname())
            conn, _ = server.accept()
            with conn:
                assert conn.gettimeout() is None
                assert conn.getblocking() is True
                assert os.get_blocking(conn.fileno()) is True


def test_connect_ex_success_returns_zero(impl: ModuleType, stream_family: tuple[int, Any]) -> None:
    family, address = stream_family
    with impl.StreamSocket(family) as server:
        server.bind(address)
        server.listen()
        with impl.StreamSocket(family) as client:
            assert client.connect_ex(server.getsockname()) == 0
            conn, _ = server.accept()
            conn.close()
            assert client.getpeername() == server.getsockname()


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_connect_ex_refused_returns_econnrefused(impl: ModuleType, host: str) -> None:
    family = AF_INET6 if ":" in host else AF_INET
    # a bound port nobody listens on refuses connections, and stays ours
    with impl.StreamSocket(family) as holder:
        holder.bind((host, 0))
        port = holder.getsockname()[1]
        with impl.StreamSocket(family) as client:
            assert client.connect_ex((host, port)) == errno.ECONNREFUSED


def test_connect_ex_nonblocking_einprogress(impl: ModuleType) -> None:
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with impl.StreamSocket() as client:
            client.setblocking(False)
            assert client.connect_ex(server.getsockname()) == errno.EINPROGRESS
            _, writable, _ = select.select([], [client], [], 5.0)
            assert writable == [client]
            assert client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            assert client.getpeername() == server.getsockname()
            conn, _ = server.accept()
            conn.close()


def test_connect_nonblocking_raises_blocking_io_error(impl: ModuleType) -> None:
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with impl.StreamSocket() as client:
            client.setblocking(False)
            with pytest.raises(BlockingIOError) as info:
                client.connect(server.getsockname())
            assert info.value.errno == errno.EINPROGRESS
            select.select([], [client], [], 5.0)
            conn, _ = server.accept()
            conn.close()


def test_connect_with_timeout_succeeds(impl: ModuleType, stream_family: tuple[int, Any]) -> None:
    family, address = stream_family
    with impl.StreamSocket(family) as server:
        server.bind(address)
        server.listen()
        with impl.StreamSocket(family) as client:
            client.settimeout(2.0)
            client.connect(server.getsockname())
            assert client.gettimeout() == 2.0
            conn, _ = server.accept()
            with conn:
                client.sendall(b"over a timed socket")
                assert recv_exactly(conn, 19) == b"over a timed socket"


def test_listen_default_and_zero_backlog(impl: ModuleType) -> None:
    for backlog in (None, 0, -5):
        with impl.StreamSocket() as server:
            server.bind(("127.0.0.1", 0))
            if backlog is None:
                server.listen()
            else:
                server.listen(backlog)
            with impl.StreamSocket() as client:
                client.connect(server.getsockname())
                conn, _ = server.accept()
                conn.close()


# -- data transfer --------------------------------------------------------------


def test_send_recv_both_ways(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    client, conn = pair
    assert client.send(b"ping") == 4
    assert recv_exactly(conn, 4) == b"ping"
    conn.sendall(b"pong!")
    assert recv_exactly(client, 5) == b"pong!"


def test_large_transfer_uses_heap_receive(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    client, conn = pair
    payload = bytes(range(256)) * 400  # 102400 bytes, larger than any stack copy
    got = bytearray()

    def reader() -> None:
        conn.settimeout(5.0)
        deadline = time.monotonic() + 5.0
        for _ in range(10_000):
            if len(got) >= len(payload) or time.monotonic() > deadline:
                return
            chunk = conn.recv(65536)
            if not chunk:
                return
            got.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        client.sendall(payload)
    finally:
        thread.join(10.0)
    assert bytes(got) == payload


def test_recv_sizes(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    client, conn = pair
    client.sendall(b"0123456789")
    assert recv_exactly(conn, 1) == b"0"
    # recv(0) returns at once and consumes nothing
    assert conn.recv(0) == b""
    assert conn.recv(3) == b"123"
    assert recv_exactly(conn, 6) == b"456789"


def _bytearray(n: int) -> Any:
    return bytearray(n)


def _array_b(n: int) -> Any:
    return array.array("B", bytes(n))


def _array_i(n: int) -> Any:
    return array.array("i", [0] * (n // 4))


def _numpy_u8(n: int) -> Any:
    return np.zeros(n, dtype=np.uint8)


def _numpy_f8(n: int) -> Any:
    return np.zeros(n // 8, dtype=np.float64)


def _mmap(n: int) -> Any:
    return mmap.mmap(-1, n)


BUFFERS: list[tuple[str, Callable[[int], Any]]] = [
    ("bytearray", _bytearray),
    ("array-B", _array_b),
    ("array-i", _array_i),
    ("numpy-uint8", _numpy_u8),
    ("numpy-float64", _numpy_f8),
    ("mmap", _mmap),
]


def _raw(buffer: Any) -> bytes:
    return bytes(memoryview(buffer).cast("B"))


def test_recv_into_buffer_kinds(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(5.0)
        for name, make in BUFFERS:
            buffer = make(16)
            try:
                a.sendall(b"0123456789abcdef")
                assert b.recv_into(buffer) == 16, name
                assert _raw(buffer) == b"0123456789abcdef", name
            finally:
                if isinstance(buffer, mmap.mmap):
                    buffer.close()


def test_recv_into_memoryview_slice_writes_only_the_slice(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        target = bytearray(b"." * 10)
        a.sendall(b"WXYZ")
        b.settimeout(5.0)
        assert b.recv_into(memoryview(target)[3:7]) == 4
        assert target == bytearray(b"...WXYZ...")


def test_recv_into_nbytes_limits_the_read(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        target = bytearray(8)
        a.sendall(b"abcdefgh")
        b.settimeout(5.0)
        assert b.recv_into(target, 3) == 3
        assert target == bytearray(b"abc\0\0\0\0\0")
        assert recv_exactly(b, 5) == b"defgh"


def test_recv_into_returns_fewer_than_buffer(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        target = bytearray(b"-" * 8)
        a.sendall(b"xy")
        b.settimeout(5.0)
        assert b.recv_into(target) == 2
        assert target == bytearray(b"xy------")


def test_recv_into_numpy_is_zero_copy_view(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        values = np.arange(4, dtype=np.int32)
        target = np.zeros(4, dtype=np.int32)
        a.sendall(values)
        b.settimeout(5.0)
        assert b.recv_into(target) == 16
        assert target.tolist() == [0, 1, 2, 3]


SEND_DATA: list[tuple[str, Any, bytes]] = [
    ("empty", b"", b""),
    ("bytes", b"hello", b"hello"),
    ("bytearray", bytearray(b"hello"), b"hello"),
    ("memoryview", memoryview(b"hello"), b"hello"),
    ("memoryview-slice", memoryview(b"xxhelloxx")[2:7], b"hello"),
    ("array-i", array.array("i", [1, 2]), struct.pack("=ii", 1, 2)),
    ("numpy", np.array([7, 8, 9], dtype=np.uint8), b"\x07\x08\x09"),
]


@pytest.mark.parametrize("method", ["send", "sendall"])
def test_send_accepts_bytes_like(impl: ModuleType, pair: tuple[Any, Any], method: str) -> None:
    client, conn = pair
    for name, data, expected in SEND_DATA:
        result = getattr(client, method)(data)
        if method == "send":
            assert result == len(expected), name
        else:
            assert result is None, name
        # a marker byte after each payload proves nothing more was sent
        client.sendall(b"|")
        assert recv_exactly(conn, len(expected) + 1) == expected + b"|", name


def test_peer_close_gives_empty_recv(impl: ModuleType, stream_family: tuple[int, Any]) -> None:
    family, address = stream_family
    with connected(impl, family, address) as (client, conn):
        client.sendall(b"last")
        client.close()
        assert recv_exactly(conn, 4) == b"last"
        conn.settimeout(5.0)
        assert conn.recv(10) == b""
        assert conn.recv(100_000) == b""
        assert conn.recv_into(bytearray(4)) == 0


def test_shutdown_write_half_closes(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    client, conn = pair
    client.sendall(b"request")
    client.shutdown(impl.SHUT_WR)
    assert recv_exactly(conn, 7) == b"request"
    conn.settimeout(5.0)
    assert conn.recv(1) == b""
    # the other direction still works
    conn.sendall(b"response")
    assert recv_exactly(client, 8) == b"response"
    with pytest.raises(BrokenPipeError):
        client.send(b"more")


def test_shutdown_rdwr(impl: ModuleType) -> None:
    client, conn = impl.socketpair()
    with client, conn:
        client.shutdown(impl.SHUT_RDWR)
        conn.settimeout(5.0)
        assert conn.recv(1) == b""
        client.settimeout(5.0)
        assert client.recv(1) == b""


# -- addresses ------------------------------------------------------------------


def test_inet_addresses_are_host_port_pairs(impl: ModuleType) -> None:
    with impl.StreamSocket(AF_INET) as s:
        s.bind(("127.0.0.1", 0))
        name = s.getsockname()
        assert isinstance(name, tuple) and len(name) == 2
        host, port = name
        assert host == "127.0.0.1"
        assert isinstance(port, int) and 0 < port < 65536


def test_inet_bind_accepts_bytes_and_empty_host(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        s.bind((b"127.0.0.1", 0))
        assert s.getsockname()[0] == "127.0.0.1"
    with impl.DatagramSocket() as d:
        d.bind(("", 0))
        assert d.getsockname()[0] == "0.0.0.0"


@needs_ipv6
def test_inet6_addresses_are_four_tuples(impl: ModuleType) -> None:
    with impl.StreamSocket(AF_INET6) as s:
        s.bind(("::1", 0))
        name = s.getsockname()
        assert isinstance(name, tuple) and len(name) == 4
        host, port, flowinfo, scope_id = name
        assert host == "::1"
        assert 0 < port < 65536
        assert flowinfo == 0 and scope_id == 0


@needs_ipv6
def test_inet6_accepts_two_three_and_four_tuples(impl: ModuleType) -> None:
    for extra in ((), (0,), (0, 0)):
        with impl.DatagramSocket(AF_INET6) as s:
            s.bind(("::1", 0, *extra))
            assert s.getsockname()[0] == "::1"


def test_unix_path_addresses_are_str(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "named")
    with impl.StreamSocket(AF_UNIX) as server:
        server.bind(path)
        assert server.getsockname() == path
        assert isinstance(server.getsockname(), str)
        server.listen()
        with impl.StreamSocket(AF_UNIX) as client:
            assert client.getsockname() == ""
            client.connect(path)
            assert client.getpeername() == path
            conn, peer = server.accept()
            with conn:
                assert peer == ""
                assert conn.getsockname() == path


def test_unix_path_accepts_bytes_and_pathlike(impl: ModuleType, unix_dir: str) -> None:
    import pathlib

    bpath = os.path.join(unix_dir, "b").encode()
    with impl.DatagramSocket(AF_UNIX) as s:
        s.bind(bpath)
        assert s.getsockname() == bpath.decode()
    ppath = pathlib.Path(unix_dir) / "p"
    with impl.DatagramSocket(AF_UNIX) as s:
        s.bind(ppath)
        assert s.getsockname() == str(ppath)


def test_unix_abstract_names_are_bytes_with_leading_nul(impl: ModuleType) -> None:
    name = abstract_name()
    with impl.StreamSocket(AF_UNIX) as server:
        server.bind(name)
        got = server.getsockname()
        assert isinstance(got, bytes)
        assert got == name
        server.listen()
        with impl.StreamSocket(AF_UNIX) as client:
            client.connect(name)
            assert client.getpeername() == name
            conn, _ = server.accept()
            with conn:
                client.sendall(b"abstract")
                assert recv_exactly(conn, 8) == b"abstract"


def test_unix_abstract_name_given_as_str(impl: ModuleType) -> None:
    name = abstract_name()
    with impl.DatagramSocket(AF_UNIX) as s:
        s.bind(name.decode())
        assert s.getsockname() == name


def test_unix_empty_address_autobinds_abstract(impl: ModuleType) -> None:
    with impl.DatagramSocket(AF_UNIX) as s:
        s.bind("")
        got = s.getsockname()
        assert isinstance(got, bytes)
        assert got[:1] == b"\0" and len(got) > 1


def test_unbound_unix_datagram_sender_gives_none(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "rx")
    with impl.DatagramSocket(AF_UNIX) as rx, impl.DatagramSocket(AF_UNIX) as tx:
        rx.bind(path)
        rx.settimeout(5.0)
        assert tx.sendto(b"anon", path) == 4
        data, sender = rx.recvfrom(16)
        assert data == b"anon"
        assert sender is None
        tx.sendto(b"anon2", path)
        n, sender = rx.recvfrom_into(bytearray(16))
        assert n == 5 and sender is None


# -- options --------------------------------------------------------------------


def test_reuseaddr_int_and_bytes(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, struct.pack("i", 0))
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, bytearray(struct.pack("i", 1)))
        raw = s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 4)
        assert isinstance(raw, bytes) and len(raw) == 4
        assert struct.unpack("i", raw)[0] != 0


@pytest.mark.parametrize("family", [AF_INET, pytest.param(AF_INET6, marks=needs_ipv6)])
def test_tcp_nodelay(impl: ModuleType, family: int) -> None:
    with impl.StreamSocket(family) as s:
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_rcvbuf_int_and_buflen(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        value = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert value >= 65536  # Linux reports the doubled bookkeeping size
        raw = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4)
        assert struct.unpack("i", raw)[0] == value
        # a larger buflen returns only what the kernel wrote
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64) == raw


def test_linger_struct_roundtrip(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 7))
        raw = s.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
        assert struct.unpack("ii", raw) == (1, 7)


# -- timeouts and blocking --------------------------------------------------------


def test_timeout_modes(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        fd = s.fileno()
        assert s.gettimeout() is None and s.getblocking() is True

        s.settimeout(0.0)
        assert s.gettimeout() == 0.0
        assert s.getblocking() is False
        assert os.get_blocking(fd) is False

        s.settimeout(2.5)
        assert s.gettimeout() == 2.5
        assert s.getblocking() is True
        assert os.get_blocking(fd) is False  # waits with poll(), like the stdlib

        s.settimeout(3)
        assert s.gettimeout() == 3.0
        assert isinstance(s.gettimeout(), float)

        s.settimeout(None)
        assert s.gettimeout() is None
        assert s.getblocking() is True
        assert os.get_blocking(fd) is True


def test_setblocking(impl: ModuleType) -> None:
    with impl.DatagramSocket() as s:
        s.settimeout(4.0)
        s.setblocking(False)
        assert s.gettimeout() == 0.0
        assert s.getblocking() is False
        assert os.get_blocking(s.fileno()) is False
        s.setblocking(True)
        assert s.gettimeout() is None
        assert s.getblocking() is True
        assert os.get_blocking(s.fileno()) is True
        s.setblocking(0)
        assert s.gettimeout() == 0.0


def _assert_times_out(call: Callable[[], object], timeout: float) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        call()
    elapsed = time.monotonic() - start
    assert str(info.value) == "timed out"
    assert timeout * 0.8 <= elapsed < timeout + 2.0


def test_accept_timeout(impl: ModuleType, stream_family: tuple[int, Any]) -> None:
    family, address = stream_family
    with impl.StreamSocket(family) as server:
        server.bind(address)
        server.listen()
        server.settimeout(0.2)
        _assert_times_out(server.accept, 0.2)


def test_recv_timeouts(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    client, conn = pair
    conn.settimeout(0.15)
    _assert_times_out(lambda: conn.recv(10), 0.15)
    _assert_times_out(lambda: conn.recv(100_000), 0.15)
    _assert_times_out(lambda: conn.recv_into(bytearray(10)), 0.15)
    # the socket is still usable after a timeout
    client.sendall(b"late")
    assert recv_exactly(conn, 4) == b"late"


def test_datagram_recv_timeouts(impl: ModuleType) -> None:
    with impl.DatagramSocket() as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.15)
        _assert_times_out(lambda: s.recvfrom(10), 0.15)
        _assert_times_out(lambda: s.recvfrom_into(bytearray(10)), 0.15)


def test_connect_timeout_when_backlog_is_full(impl: ModuleType) -> None:
    with impl.StreamSocket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = server.getsockname()
        clients = []
        try:
            for _ in range(6):
                client = impl.StreamSocket()
                clients.append(client)
                client.settimeout(0.3)
                start = time.monotonic()
                try:
                    client.connect(address)
                except TimeoutError as exc:
                    elapsed = time.monotonic() - start
                    assert str(exc) == "timed out"
                    assert 0.24 <= elapsed < 2.3
                    break
            else:
                pytest.skip("connect never blocked on a full backlog")
            # connect_ex reports the same timeout as EWOULDBLOCK
            other = impl.StreamSocket()
            clients.append(other)
            other.settimeout(0.2)
            start = time.monotonic()
            assert other.connect_ex(address) == errno.EWOULDBLOCK
            assert time.monotonic() - start < 2.2
        finally:
            for client in clients:
                client.close()


def _fill_send_buffer(sock: Any) -> int:
    """Send until the kernel refuses more; bounded in calls and time."""
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5.0
    chunk = b"x" * 65536
    for _ in range(10_000):
        if time.monotonic() > deadline:
            break
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            return sent
    raise AssertionError("send buffer never filled")


@pytest.fixture(params=["unix-pair", "tcp"])
def stalled(request: pytest.FixtureRequest, impl: ModuleType) -> Iterator[tuple[Any, Any]]:
    """(sender, peer) with small buffers; the peer never reads unless told."""
    with small_buffers(impl, "unix" if request.param == "unix-pair" else "tcp") as pair:
        yield pair


def test_send_timeout_with_full_buffer(impl: ModuleType, stalled: tuple[Any, Any]) -> None:
    sender, _ = stalled
    assert _fill_send_buffer(sender) > 0
    sender.settimeout(0.2)
    _assert_times_out(lambda: sender.send(b"y" * 65536), 0.2)


def test_sendall_timeout_with_full_buffer(impl: ModuleType, stalled: tuple[Any, Any]) -> None:
    sender, _ = stalled
    sender.settimeout(0.2)
    _assert_times_out(lambda: sender.sendall(b"y" * (4 << 20)), 0.2)


def test_sendall_timeout_bounds_the_whole_call(impl: ModuleType) -> None:
    """A peer that keeps draining slowly must not extend sendall's deadline."""
    a, b = impl.socketpair()
    stop = threading.Event()
    drained = [0]

    def slow_reader() -> None:
        b.settimeout(0.05)
        deadline = time.monotonic() + 3.0
        for _ in range(1000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                drained[0] += len(b.recv(1024))
            except (TimeoutError, OSError):
                pass
            time.sleep(0.01)

    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        thread = threading.Thread(target=slow_reader)
        thread.start()
        try:
            a.settimeout(0.4)
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                a.sendall(b"z" * (4 << 20))
            elapsed = time.monotonic() - start
        finally:
            stop.set()
            thread.join(10.0)
        assert drained[0] > 0, "the reader made no progress"
        assert elapsed < 2.0


# -- lifetime ------------------------------------------------------------------


def test_close_and_closed(impl: ModuleType) -> None:
    s = impl.StreamSocket()
    fd = s.fileno()
    s.close()
    assert s.closed is True
    assert s.fileno() == -1
    assert not os.path.exists(f"/proc/self/fd/{fd}") or not os.readlink(
        f"/proc/self/fd/{fd}").startswith("socket:")
    s.close()  # a no-op the second time
    assert s.closed is True
    assert s.family == AF_INET and s.type == SOCK_STREAM


def test_detach_returns_open_fd_and_closes_socket(impl: ModuleType) -> None:
    s = impl.DatagramSocket()
    s.bind(("127.0.0.1", 0))
    name = s.getsockname()
    fd = s.detach()
    try:
        assert fd >= 0
        assert s.closed is True
        assert s.fileno() == -1
        assert s.detach() == -1
        # the descriptor is still the same open socket
        with socket.socket(fileno=os.dup(fd)) as check:
            assert check.getsockname() == name
    finally:
        os.close(fd)


def test_context_manager(impl: ModuleType) -> None:
    with impl.StreamSocket() as s:
        assert isinstance(s, impl.StreamSocket)
        assert not s.closed
    assert s.closed
    with pytest.raises(RuntimeError):
        with impl.DatagramSocket() as d:
            raise RuntimeError("boom")
    assert d.closed


def test_repr(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    client, conn = pair
    text = repr(client)
    assert text.startswith("<fastsock.StreamSocket ")
    assert f"fd={client.fileno()}" in text
    assert f"family={socket.AddressFamily(client.family).name}" in text
    assert "type=SOCK_STREAM" in text
    local, remote = client.getsockname(), client.getpeername()
    if local:
        assert f"laddr={local!r}" in text
    assert f"raddr={remote!r}" in text
    assert "[closed]" not in text


def test_repr_inet_and_closed(impl: ModuleType) -> None:
    s = impl.DatagramSocket()
    s.bind(("127.0.0.1", 0))
    text = repr(s)
    assert text.startswith("<fastsock.DatagramSocket ")
    assert "family=AF_INET," in text
    assert "type=SOCK_DGRAM" in text
    assert f"laddr={s.getsockname()!r}" in text
    assert "raddr" not in text
    s.close()
    closed = repr(s)
    assert "[closed]" in closed
    assert "fd=-1" in closed
    assert "laddr" not in closed


# -- datagrams --------------------------------------------------------------------


def test_datagram_sendto_recvfrom(impl: ModuleType, dgram_family: tuple[int, Any, Any]) -> None:
    family, rx_addr, tx_addr = dgram_family
    with impl.DatagramSocket(family) as rx, impl.DatagramSocket(family) as tx:
        rx.bind(rx_addr)
        tx.bind(tx_addr)
        rx.settimeout(5.0)
        target = rx.getsockname()
        assert tx.sendto(b"first", target) == 5
        assert tx.sendto(b"second", 0, target) == 6
        assert rx.recvfrom(100) == (b"first", tx.getsockname())
        buffer = bytearray(100)
        n, sender = rx.recvfrom_into(buffer)
        assert (n, sender) == (6, tx.getsockname())
        assert buffer[:n] == b"second"


def test_datagram_boundaries_and_truncation(impl: ModuleType) -> None:
    with impl.DatagramSocket() as rx, impl.DatagramSocket() as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5.0)
        tx.sendto(b"abcdef", rx.getsockname())
        tx.sendto(b"gh", rx.getsockname())
        data, _ = rx.recvfrom(3)
        assert data == b"abc"  # the rest of the datagram is discarded
        data, _ = rx.recvfrom(100)
        assert data == b"gh"
        tx.sendto(b"", rx.getsockname())
        assert rx.recvfrom(10)[0] == b""


def test_datagram_recvfrom_into_nbytes(impl: ModuleType) -> None:
    with impl.DatagramSocket() as rx, impl.DatagramSocket() as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5.0)
        tx.sendto(b"0123456789", rx.getsockname())
        buffer = np.zeros(10, dtype=np.uint8)
        n, _ = rx.recvfrom_into(buffer, 4)
        assert n == 4
        assert bytes(buffer) == b"0123" + bytes(6)


def test_datagram_connect_send_recv(impl: ModuleType, dgram_family: tuple[int, Any, Any]) -> None:
    family, rx_addr, tx_addr = dgram_family
    with impl.DatagramSocket(family) as rx, impl.DatagramSocket(family) as tx:
        rx.bind(rx_addr)
        tx.bind(tx_addr)
        tx.connect(rx.getsockname())
        rx.connect(tx.getsockname())
        assert tx.getpeername() == rx.getsockname()
        assert tx.send(b"connected") == 9
        rx.settimeout(5.0)
        assert rx.recv(100) == b"connected"
        rx.send(b"back")
        tx.settimeout(5.0)
        target = bytearray(10)
        assert tx.recv_into(target) == 4
        assert target[:4] == b"back"


def test_datagram_sendto_buffer_kinds(impl: ModuleType) -> None:
    with impl.DatagramSocket() as rx, impl.DatagramSocket() as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5.0)
        for data, expected in [(bytearray(b"ba"), b"ba"), (memoryview(b"_mv_")[1:3], b"mv"),
                               (array.array("B", b"ar"), b"ar")]:
            assert tx.sendto(data, rx.getsockname()) == len(expected)
            assert rx.recvfrom(10)[0] == expected


def test_datagram_nonblocking_recv(impl: ModuleType) -> None:
    with impl.DatagramSocket() as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recvfrom(10)


# -- socketpair ------------------------------------------------------------------


def test_socketpair_stream(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        for sock in (a, b):
            assert isinstance(sock, impl.StreamSocket)
            assert sock.family == AF_UNIX and sock.type == SOCK_STREAM
            assert sock.gettimeout() is None
            assert_cloexec(sock)
        a.sendall(b"to b")
        assert recv_exactly(b, 4) == b"to b"
        b.sendall(b"to a")
        assert recv_exactly(a, 4) == b"to a"


def test_socketpair_dgram(impl: ModuleType) -> None:
    a, b = impl.socketpair(AF_UNIX, SOCK_DGRAM)
    with a, b:
        for sock in (a, b):
            assert isinstance(sock, impl.DatagramSocket)
            assert sock.family == AF_UNIX and sock.type == SOCK_DGRAM
            assert_cloexec(sock)
        a.send(b"one")
        a.send(b"two")
        b.settimeout(5.0)
        assert b.recv(10) == b"one"
        assert b.recvfrom(10) == (b"two", None)


def test_socketpair_keywords(impl: ModuleType) -> None:
    a, b = impl.socketpair(family=AF_UNIX, type=SOCK_STREAM)
    a.close()
    b.close()


# -- create_connection / create_server --------------------------------------------


def test_create_connection_host_port(impl: ModuleType) -> None:
    with impl.create_server() as server:
        with impl.create_connection(server.getsockname()) as client:
            assert isinstance(client, impl.StreamSocket)
            assert client.gettimeout() is None
            assert_cloexec(client)
            conn, _ = server.accept()
            with conn:
                client.sendall(b"hi")
                assert recv_exactly(conn, 2) == b"hi"


def test_create_connection_localhost(impl: ModuleType) -> None:
    with impl.create_server() as server:
        port = server.getsockname()[1]
        with impl.create_connection(("localhost", port)) as client:
            assert client.getpeername() == ("127.0.0.1", port)
            conn, _ = server.accept()
            conn.close()


def test_create_connection_timeout(impl: ModuleType) -> None:
    with impl.create_server() as server:
        with impl.create_connection(server.getsockname(), 2.5) as client:
            assert client.gettimeout() == 2.5
            conn, _ = server.accept()
            conn.close()
        with impl.create_connection(server.getsockname(), timeout=None) as client:
            assert client.gettimeout() is None
            conn, _ = server.accept()
            conn.close()


def test_create_connection_source_address(impl: ModuleType) -> None:
    with impl.create_server(("127.0.0.1", 0)) as server:
        with impl.create_connection(server.getsockname(),
                                    source_address=("127.0.0.2", 0)) as client:
            assert client.getsockname()[0] == "127.0.0.2"
            conn, peer = server.accept()
            with conn:
                assert peer == client.getsockname()


@needs_ipv6
def test_create_connection_ipv6(impl: ModuleType) -> None:
    with impl.create_server(family=AF_INET6) as server:
        host, port = server.getsockname()[:2]
        with impl.create_connection((host, port)) as client:
            assert client.family == AF_INET6
            conn, _ = server.accept()
            conn.close()


def test_create_connection_unix_path(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "srv")
    with impl.create_server(path, family=AF_UNIX) as server:
        with impl.create_connection(path, timeout=1.5) as client:
            assert client.family == AF_UNIX
            assert client.gettimeout() == 1.5
            assert client.getpeername() == path
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"unix")
                assert recv_exactly(client, 4) == b"unix"


def test_create_server_defaults(impl: ModuleType) -> None:
    with impl.create_server() as server:
        assert isinstance(server, impl.StreamSocket)
        assert server.family == AF_INET
        host, port = server.getsockname()
        assert host == "127.0.0.1"
        assert port > 0
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert_cloexec(server)


@needs_ipv6
def test_create_server_ipv6_default_loopback(impl: ModuleType) -> None:
    with impl.create_server(family=AF_INET6) as server:
        assert server.family == AF_INET6
        assert server.getsockname()[0] == "::1"


def test_create_server_reuse_port(impl: ModuleType) -> None:
    with impl.create_server(reuse_port=True) as server:
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        # a second listener may share the port
        with impl.create_server(server.getsockname(), reuse_port=True) as twin:
            assert twin.getsockname() == server.getsockname()


def test_create_server_unix(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "listen")
    with impl.create_server(path, family=AF_UNIX, backlog=3) as server:
        assert server.family == AF_UNIX
        assert server.getsockname() == path
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with impl.StreamSocket(AF_UNIX) as client:
            client.connect(path)
            conn, _ = server.accept()
            conn.close()


def test_create_server_unix_needs_path(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.create_server(family=AF_UNIX)


def test_create_server_backlog(impl: ModuleType) -> None:
    with impl.create_server(backlog=1) as server:
        address = server.getsockname()
        with impl.StreamSocket() as client:
            client.connect(address)
            conn, _ = server.accept()
            conn.close()


# -- descriptor hand-over -----------------------------------------------------------


@pytest.mark.parametrize("family", [AF_INET, pytest.param(AF_INET6, marks=needs_ipv6),
                                    AF_UNIX])
def test_from_fd_takes_ownership_and_detects_family(impl: ModuleType, family: int) -> None:
    raw = socket.socket(family, SOCK_STREAM)
    fd = raw.detach()
    s = impl.StreamSocket.from_fd(fd)
    try:
        assert s.fileno() == fd
        assert s.family == family
        assert s.type == SOCK_STREAM
        assert s.gettimeout() is None
    finally:
        s.close()
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_from_fd_nonblocking_descriptor(impl: ModuleType) -> None:
    raw = socket.socket(AF_INET, SOCK_DGRAM)
    raw.setblocking(False)
    fd = raw.detach()
    with impl.DatagramSocket.from_fd(fd) as s:
        assert s.gettimeout() == 0.0
        assert s.getblocking() is False
        assert s.type == SOCK_DGRAM
        s.bind(("127.0.0.1", 0))
        with pytest.raises(BlockingIOError):
            s.recvfrom(1)


def test_from_fd_proto(impl: ModuleType) -> None:
    # like socket.socket(fileno=fd), the protocol is read from the descriptor
    raw = socket.socket(AF_INET, SOCK_STREAM)
    with impl.StreamSocket.from_fd(raw.detach()) as s:
        assert s.proto == socket.IPPROTO_TCP


def test_from_fd_of_connected_socket(impl: ModuleType) -> None:
    left, right = socket.socketpair()
    with right, impl.StreamSocket.from_fd(left.detach()) as s:
        assert s.family == AF_UNIX
        s.sendall(b"adopted")
        right.settimeout(5.0)
        assert right.recv(10) == b"adopted"


@pytest.mark.parametrize("cls_name,kind", [("StreamSocket", SOCK_DGRAM),
                                           ("DatagramSocket", SOCK_STREAM)])
def test_from_fd_wrong_type_leaves_fd_open(impl: ModuleType, cls_name: str, kind: int) -> None:
    raw = socket.socket(AF_INET, kind)
    fd = raw.detach()
    try:
        with pytest.raises(ValueError):
            getattr(impl, cls_name).from_fd(fd)
        os.fstat(fd)  # still open and still ours
        with socket.socket(fileno=os.dup(fd)) as check:
            assert check.type == kind
    finally:
        os.close(fd)


def test_from_fd_negative(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.StreamSocket.from_fd(-1)


def test_from_fd_not_a_socket(impl: ModuleType) -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            impl.StreamSocket.from_fd(r)
        assert info.value.errno == errno.ENOTSOCK
        os.fstat(r)
    finally:
        os.close(r)
        os.close(w)


def test_from_socket_detaches_and_keeps_timeout(impl: ModuleType) -> None:
    std = socket.socket(AF_INET, SOCK_STREAM)
    std.settimeout(1.5)
    fd = std.fileno()
    with impl.StreamSocket.from_socket(std) as s:
        assert std.fileno() == -1
        assert s.fileno() == fd
        assert s.gettimeout() == 1.5
        assert s.family == AF_INET
    std.close()


def test_from_socket_blocking_and_nonblocking(impl: ModuleType) -> None:
    for timeout in (None, 0.0):
        std = socket.socket(AF_INET, SOCK_DGRAM)
        std.settimeout(timeout)
        with impl.DatagramSocket.from_socket(std) as s:
            assert s.gettimeout() == timeout
            assert os.get_blocking(s.fileno()) is (timeout is None)


def test_from_socket_connected_pair(impl: ModuleType) -> None:
    left, right = socket.socketpair()
    with right, impl.StreamSocket.from_socket(left) as s:
        right.sendall(b"via stdlib")
        assert recv_exactly(s, 10) == b"via stdlib"


def test_to_socket(impl: ModuleType) -> None:
    s = impl.StreamSocket()
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.75)
    fd = s.fileno()
    name = s.getsockname()
    std = s.to_socket()
    with std:
        assert isinstance(std, socket.socket)
        assert s.closed
        assert s.fileno() == -1
        assert std.fileno() == fd
        assert std.family == AF_INET
        assert std.type == SOCK_STREAM
        assert std.gettimeout() == 0.75
        assert std.getsockname() == name


def test_to_socket_datagram_unix(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "d")
    s = impl.DatagramSocket(AF_UNIX)
    s.bind(path)
    with s.to_socket() as std:
        assert std.family == AF_UNIX
        assert std.type == SOCK_DGRAM
        assert std.gettimeout() is None
        assert std.getsockname() == path


def test_cloexec_on_every_created_descriptor(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "c")
    socks = [impl.StreamSocket(), impl.DatagramSocket(AF_UNIX), impl.StreamSocket(AF_UNIX)]
    try:
        for sock in socks:
            assert_cloexec(sock)
        socks[2].bind(path)
        socks[2].listen()
        client = impl.create_connection(path)
        socks.append(client)
        conn, _ = socks[2].accept()
        socks.append(conn)
        pair = impl.socketpair(AF_UNIX, SOCK_DGRAM)
        socks.extend(pair)
        server = impl.create_server()
        socks.append(server)
        for sock in socks:
            assert_cloexec(sock)
    finally:
        for sock in socks:
            sock.close()
