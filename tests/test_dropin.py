"""Drop-in for the stdlib: code written for ``socket`` runs with only the import
changed.  The constructor's forms, ``socket()``/``fromfd()``, the re-exported
constants and helpers, ``dup``, inheritance, ``create_connection`` and
``create_server`` with the stdlib's arguments, and the tutorials' programs run
on ``import fastsock as socket`` — on both implementations, compared with the
stdlib where it has the behaviour."""

from __future__ import annotations

import builtins
import errno
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from types import ModuleType
from typing import Any

import pytest
from conftest import HAS_IPV6, IMPLEMENTATIONS, compiled_module

import fastsock
from fastsock import _names

OWN_NAMES = set(_names.TWIN_NAMES)


# -- the stdlib's names --------------------------------------------------------------


def test_every_stdlib_name_is_importable_from_fastsock() -> None:
    # the constants, exceptions and helpers are the stdlib's very objects; the
    # names fastsock has its own of are fastsock's
    for name in socket.__all__:
        assert hasattr(fastsock, name), name
        if name not in OWN_NAMES:
            assert getattr(fastsock, name) is getattr(socket, name), name
    for name in ("SOL_SOCKET", "SO_REUSEADDR", "IPPROTO_TCP", "TCP_NODELAY", "MSG_PEEK",
                 "SCM_RIGHTS", "AF_PACKET", "SOCK_SEQPACKET", "timeout", "gaierror",
                 "getaddrinfo", "inet_pton", "htons", "has_dualstack_ipv6"):
        assert name in fastsock.__all__
    assert fastsock.AF_INET is socket.AF_INET and fastsock.SOCK_DGRAM is socket.SOCK_DGRAM
    assert fastsock.SHUT_WR == socket.SHUT_WR


def test_star_import_gives_the_stdlib_names_and_fastsock_classes() -> None:
    namespace: dict[str, Any] = {}
    exec("from fastsock import *", namespace)
    assert namespace["SO_REUSEADDR"] == socket.SO_REUSEADDR
    assert namespace["socket"] is fastsock.socket
    assert namespace["StreamSocket"] is fastsock.StreamSocket


# -- the constructor ---------------------------------------------------------------


@pytest.mark.parametrize("cls_name, wrong", [("StreamSocket", socket.SOCK_DGRAM),
                                             ("DatagramSocket", socket.SOCK_STREAM),
                                             ("StreamSocket", socket.SOCK_RAW)])
def test_a_type_the_class_does_not_wrap_is_a_value_error(impl: ModuleType, cls_name: str,
                                                         wrong: int) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match=f"^{cls_name} wraps SOCK_"):
        getattr(impl, cls_name)(socket.AF_INET, wrong)
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_keyword_forms(impl: ModuleType) -> None:
    with impl.StreamSocket(family=socket.AF_INET6 if HAS_IPV6 else socket.AF_INET,
                           type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert isinstance(sock.family, socket.AddressFamily)
        assert isinstance(sock.type, socket.SocketKind)
    with impl.DatagramSocket(type=socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        assert sock.type is socket.SOCK_DGRAM and sock.family is socket.AF_INET
        assert not os.get_inheritable(sock.fileno())


@pytest.mark.parametrize("kind", ["stream", "dgram"])
def test_fileno_takes_the_descriptor_over_as_the_stdlib(impl: ModuleType, kind: str) -> None:
    sock_type = socket.SOCK_STREAM if kind == "stream" else socket.SOCK_DGRAM
    cls = impl.StreamSocket if kind == "stream" else impl.DatagramSocket
    with socket.socket(socket.AF_INET, sock_type) as original:
        original.bind(("127.0.0.1", 0))
        fd = original.detach()
    made = cls(fileno=fd)
    with made, socket.socket(fileno=os.dup(fd)) as reference:
        assert made.fileno() == fd
        assert (made.family, made.type, made.proto) == \
            (reference.family, reference.type, reference.proto)
        assert made.getsockname() == reference.getsockname()
        assert made.gettimeout() is None


def test_fileno_with_nonblock_and_the_default_timeout(impl: ModuleType) -> None:
    a, b = socket.socketpair()
    with a, b:
        with impl.StreamSocket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK,
                               fileno=os.dup(a.fileno())) as made:
            assert made.gettimeout() == 0.0 and not os.get_blocking(made.fileno())
            with pytest.raises(BlockingIOError):
                made.recv(1)
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(0.05)
        try:
            with impl.StreamSocket(fileno=os.dup(a.fileno())) as made:
                assert made.gettimeout() == 0.05
                with pytest.raises(TimeoutError):
                    made.recv(1)
        finally:
            socket.setdefaulttimeout(old)


@pytest.mark.parametrize("case", ["other class", "other family", "other type"])
def test_a_refused_fileno_stays_open_and_the_callers(impl: ModuleType, case: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as owner:
        fd = owner.fileno()
        with pytest.raises(ValueError, match=f"^fd {fd} is "):
            if case == "other class":
                impl.StreamSocket(fileno=fd)
            elif case == "other family":
                impl.DatagramSocket(socket.AF_INET6, fileno=fd)
            else:
                impl.DatagramSocket(socket.AF_INET, socket.SOCK_STREAM, fileno=fd)
        os.fstat(fd)  # still open
        assert owner.fileno() == fd


@pytest.mark.parametrize("fileno", [-1, 1 << 20, "x", 1.5])
def test_bad_fileno_as_the_stdlib(impl: ModuleType, fileno: Any) -> None:
    with pytest.raises(Exception) as expected:
        socket.socket(fileno=fileno)
    with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
        impl.StreamSocket(fileno=fileno)


def test_a_descriptor_that_is_no_socket(impl: ModuleType) -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError) as expected:
            socket.socket(fileno=read_end)
        with pytest.raises(OSError) as info:
            impl.StreamSocket(fileno=read_end)
        assert info.value.errno == expected.value.errno == errno.ENOTSOCK
        os.fstat(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


# -- socket(), fromfd(), SocketType ------------------------------------------------


def test_socket_makes_the_class_of_the_type(impl: ModuleType) -> None:
    with impl.socket() as stream, impl.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
        assert type(stream) is impl.StreamSocket and type(dgram) is impl.DatagramSocket
        assert isinstance(stream, impl.SocketType) and isinstance(dgram, impl.SocketType)
        with impl.socket(fileno=os.dup(dgram.fileno())) as adopted:
            assert type(adopted) is impl.DatagramSocket  # the descriptor's type decides
    with pytest.raises(ValueError, match="no socket class"):
        impl.socket(socket.AF_UNIX, socket.SOCK_RDM)


def test_socket_type_itself_makes_no_socket(impl: ModuleType) -> None:
    # the base of every class: isinstance() works, a call says where to go
    # (the stdlib's SocketType makes a TCP socket; a half-made object would not do)
    before = len(os.listdir("/proc/self/fd"))
    for args in [(), (socket.AF_INET, socket.SOCK_STREAM)]:
        with pytest.raises(TypeError, match=r"fastsock\.socket\(\)"):
            impl.SocketType(*args)
    assert len(os.listdir("/proc/self/fd")) == before


def test_fromfd_duplicates(impl: ModuleType) -> None:
    a, b = socket.socketpair()
    with a, b:
        with impl.fromfd(a.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as copy:
            assert copy.fileno() != a.fileno() and not copy.get_inheritable()
            copy.sendall(b"via the copy")
            assert b.recv(100) == b"via the copy"
        a.sendall(b"original open")  # closing the copy left the original alone
        assert b.recv(100) == b"original open"
        with pytest.raises(ValueError):
            impl.fromfd(a.fileno(), socket.AF_UNIX, socket.SOCK_RDM)


# -- dup and inheritance ------------------------------------------------------------


def test_dup_shares_the_connection_not_the_buffer(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(2.0)
        a.sendall(b"line\nheld")
        assert b.recv_until(b"\n") == b"line\n"
        copy = b.dup()
        with copy:
            assert type(copy) is type(b) and copy.gettimeout() == 2.0
            assert copy.fileno() != b.fileno() and not copy.get_inheritable()
            a.sendall(b"+later")
            # the buffered bytes stay with b; the copy reads from the kernel
            assert copy.recv(100) == b"+later"
            assert b.recv(100) == b"held"
        a.sendall(b"still open")  # closing the copy closed only its descriptor
        assert b.recv(100) == b"still open"


def test_set_inheritable_reaches_a_child(impl: ModuleType) -> None:
    with impl.DatagramSocket(socket.AF_UNIX) as sock:
        assert sock.get_inheritable() is False
        sock.set_inheritable(True)
        assert os.get_inheritable(sock.fileno()) and sock.get_inheritable() is True
        child = subprocess.run(
            [sys.executable, "-c", f"import os; os.fstat({sock.fileno()})"],
            close_fds=False, timeout=30)
        assert child.returncode == 0
        sock.set_inheritable(False)
        assert not os.get_inheritable(sock.fileno())


# -- create_connection and create_server ---------------------------------------------


def test_create_connection_as_the_stdlib(impl: ModuleType) -> None:
    with impl.create_server() as server:
        port = server.getsockname()[1]
        with impl.create_connection(("localhost", port), 2.0,
                                    ("127.0.0.1", 0)) as client:
            assert client.proto == socket.IPPROTO_TCP  # getaddrinfo's, as the stdlib's
            assert client.gettimeout() == 2.0
            server.accept()[0].close()
        # the stdlib's marker of "no timeout given" (http.client passes it on)
        with impl.create_connection(("127.0.0.1", port),
                                    socket._GLOBAL_DEFAULT_TIMEOUT) as client:  # type: ignore[attr-defined]
            assert client.gettimeout() is None
            server.accept()[0].close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_create_connection_all_errors(impl: ModuleType) -> None:
    exception_group: Any = getattr(builtins, "ExceptionGroup")
    stdlib_create_connection: Any = socket.create_connection  # all_errors is 3.11+
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = unused.getsockname()
    with pytest.raises(exception_group) as expected:
        stdlib_create_connection(refused, all_errors=True)
    with pytest.raises(exception_group) as info:
        impl.create_connection(refused, all_errors=True)
    assert str(info.value) == str(expected.value)
    assert [type(e) for e in info.value.exceptions] == \
        [type(e) for e in expected.value.exceptions] == [ConnectionRefusedError]
    with pytest.raises(ConnectionRefusedError):
        impl.create_connection(refused)


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.10 has no ExceptionGroup")
def test_create_connection_all_errors_needs_exception_groups(impl: ModuleType) -> None:
    with pytest.raises(TypeError, match="3.11"):
        impl.create_connection(("127.0.0.1", 1), all_errors=True)


def test_create_server_refusals_as_the_stdlib(impl: ModuleType) -> None:
    with pytest.raises(ValueError) as expected:
        socket.create_server(("127.0.0.1", 0), family=socket.AF_INET, dualstack_ipv6=True)
    with pytest.raises(ValueError, match=re.escape(str(expected.value))):
        impl.create_server(("127.0.0.1", 0), family=socket.AF_INET, dualstack_ipv6=True)
    with impl.create_server() as taken:
        address = taken.getsockname()
        with pytest.raises(OSError) as expected_busy:
            socket.create_server(address)
        with pytest.raises(OSError) as busy:
            impl.create_server(address)
        assert (busy.value.errno, str(busy.value)) == \
            (expected_busy.value.errno, str(expected_busy.value))


@pytest.mark.skipif(not (HAS_IPV6 and socket.has_dualstack_ipv6()),
                    reason="no dual-stack IPv6 here")
def test_create_server_dualstack_takes_ipv4_too(impl: ModuleType) -> None:
    with impl.create_server(("::", 0), family=socket.AF_INET6,
                            dualstack_ipv6=True) as server:
        assert server.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        with socket.create_connection(("127.0.0.1", server.getsockname()[1]), timeout=5):
            conn, address = server.accept()
            with conn:
                assert address[0] == "::ffff:127.0.0.1"
    with impl.create_server(family=socket.AF_INET6) as v6only:
        assert v6only.getsockname()[0] == "::1"  # loopback unless told otherwise
        assert v6only.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


# -- the tutorials' programs, with only the import changed ---------------------------

TUTORIAL_ECHO = """
import socket

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn, addr = server.accept()
    with conn, client:
        client.sendall(b"Hello, world")
        data = conn.recv(1024)
        conn.sendall(data)
        assert client.recv(1024) == b"Hello, world"
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert conn.family == socket.AF_INET and conn.type == socket.SOCK_STREAM

with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
    udp.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.sendto(b"ping", udp.getsockname())
        data, sender = udp.recvfrom(1024)
        assert data == b"ping" and sender[1] == peer.getsockname()[1]
try:
    socket.create_connection(("127.0.0.1", 1), timeout=5)
except ConnectionRefusedError:
    pass
try:
    socket.getaddrinfo("nonexistent.invalid", 80)
except socket.gaierror:
    pass
print(socket.IMPLEMENTATION, "ok")
"""


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_tutorial_program_runs_with_only_the_import_changed(name: str) -> None:
    # fastsock's dispatcher picks the implementation; the program sees the
    # public package, as a user's does
    if name == "cython":
        compiled_module()  # skips in a pure-only install
    program = TUTORIAL_ECHO.replace("import socket\n", "import fastsock as socket\n", 1)
    env = dict(os.environ, FASTSOCK_NO_EXTENSIONS="1" if name == "python" else "0")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(program)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{name} ok"


# -- stream recvfrom and sendto ---------------------------------------------------


def test_stream_recvfrom_returns_buffered_bytes_first(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        a.sendall(b"one\ntwo three")
        assert b.recv_until(b"\n") == b"one\n"
        assert b.recvfrom(3) == (b"two", None)
        into = bytearray(3)
        assert b.recvfrom_into(into, 0, socket.MSG_PEEK) == (3, None) and into == b" th"
        assert b.recvfrom_into(into) == (3, None) and into == b" th"
        a.sendall(b"!")
        assert b.recv_exactly(3) == b"ree"
        assert b.recvfrom(10) == (b"!", None)  # from the kernel now


def test_stream_sendto_on_tcp_ignores_the_address(impl: ModuleType) -> None:
    with impl.create_server() as server:
        client = impl.create_connection(server.getsockname(), 5)
        conn, _ = server.accept()
        with client, conn:
            assert client.sendto(b"data", ("192.0.2.1", 9)) == 4
            assert conn.recv(10) == b"data"


def test_threads_share_a_dup(impl: ModuleType) -> None:
    # a dup'd socket is independent: closing one while the other is blocked in
    # another thread does not disturb that call
    a, b = impl.socketpair()
    with a, b:
        copy = b.dup()
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(copy.recv(10)))
        reader.start()
        b.close()
        a.sendall(b"x")
        reader.join(5)
        copy.close()
        assert got == [b"x"]
