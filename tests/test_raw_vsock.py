"""Raw IP sockets (RawSocket), vsock addresses (AF_VSOCK), and the errors of
families the kernel or fastsock lacks, on both twins, compared with the stdlib
where it has the behaviour.

These machines have a vsock transport to the host but no loopback one: a
connect to VMADDR_CID_LOCAL times out, a datagram vsock socket cannot be made
(ENODEV).  What needs a working transport (a connection over vsock) is skipped
with the reason when it cannot be had; see docs/socket-kinds.md.  Raw sockets
need CAP_NET_RAW: the suite runs as root here; without it those tests skip.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from conftest import HAS_IPV6, IMPLEMENTATIONS, implementation_module_name

import fastsock
from fastsock import _common, _names, ping

AF_VSOCK = socket.AF_VSOCK
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="raw sockets need CAP_NET_RAW")
needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """What a call did: its value, or its exception's type, errno and message."""
    try:
        return ("returned", call())
    except Exception as exc:  # the outcome under test, whatever it is
        return ("raised", type(exc), getattr(exc, "errno", None), str(exc))


# -- vsock ----------------------------------------------------------------------


def test_vsock_constants_are_importable() -> None:
    assert fastsock.VMADDR_CID_ANY == socket.VMADDR_CID_ANY == 0xFFFFFFFF
    assert fastsock.VMADDR_CID_HOST == socket.VMADDR_CID_HOST == 2
    assert fastsock.VMADDR_PORT_ANY == socket.VMADDR_PORT_ANY == 0xFFFFFFFF
    assert fastsock.VMADDR_CID_LOCAL == getattr(socket, "VMADDR_CID_LOCAL", 1) == 1
    assert fastsock.AF_VSOCK == AF_VSOCK
    for name in ("VMADDR_CID_LOCAL", "RawSocket"):
        assert name in fastsock.__all__ and name in _names.TWIN_NAMES


def test_vsock_stream_socket_is_made(impl: ModuleType) -> None:
    with impl.socket(AF_VSOCK, socket.SOCK_STREAM) as sock, socket.socket(AF_VSOCK) as std:
        assert type(sock) is impl.StreamSocket
        assert sock.family == AF_VSOCK and sock.family is std.family
        assert sock.getsockname() == std.getsockname()  # unbound: (CID_ANY, PORT_ANY)
        assert "family=AF_VSOCK" in repr(sock)


BAD_VSOCK_ADDRESSES = [
    [1, 2], "x", None, b"12", (1,), (1, 2, 3), (), (1.0, 2), (1, 2.5), (1, "2"), (None, 1),
    (b"1", 2),
]


@pytest.mark.parametrize("address", BAD_VSOCK_ADDRESSES, ids=repr)
@pytest.mark.parametrize("method", ["bind", "connect", "connect_ex"])
def test_vsock_bad_addresses_raise_as_the_stdlib(impl: ModuleType, method: str,
                                                 address: Any) -> None:
    with impl.StreamSocket(AF_VSOCK) as sock, socket.socket(AF_VSOCK) as std:
        ours = outcome(lambda: getattr(sock, method)(address))
        theirs = outcome(lambda: getattr(std, method)(address))
    assert ours == theirs
    assert ours[0] == "raised" and ours[1] is TypeError


class Index:
    def __index__(self) -> int:
        return int(socket.VMADDR_CID_ANY)

    def __repr__(self) -> str:  # a stable test id
        return "Index()"


@pytest.mark.parametrize("address", [
    (socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY),
    (-1, -1),                        # wraps to CID_ANY/PORT_ANY, as the stdlib's "II"
    (Index(), socket.VMADDR_PORT_ANY),
    (2**32 + 2**32 - 1, -1),         # wraps too
    (True, 1),                       # CID 1 (local): refused where there is no loopback
    (5, 1234),                       # a CID that is not ours
], ids=repr)
def test_vsock_bind_and_getsockname_as_the_stdlib(impl: ModuleType, address: Any) -> None:
    with impl.StreamSocket(AF_VSOCK) as sock, socket.socket(AF_VSOCK) as std:
        ours = outcome(lambda: sock.bind(address))
        theirs = outcome(lambda: std.bind(address))
        assert ours == theirs
        if ours[0] == "returned":
            mine, stdlib = sock.getsockname(), std.getsockname()
            assert mine[0] == stdlib[0] and type(mine[0]) is int
            if address[1] in (-1, socket.VMADDR_PORT_ANY):
                assert mine[1] != socket.VMADDR_PORT_ANY  # the kernel chose one
            else:
                assert mine[1] == stdlib[1] == address[1]


def test_vsock_getpeername_unconnected_as_the_stdlib(impl: ModuleType) -> None:
    with impl.StreamSocket(AF_VSOCK) as sock, socket.socket(AF_VSOCK) as std:
        assert outcome(sock.getpeername) == outcome(std.getpeername)
        assert outcome(sock.getpeername)[1] is OSError


def test_vsock_bound_port_round_trips(impl: ModuleType) -> None:
    with impl.StreamSocket(AF_VSOCK) as first:
        first.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
        port = first.getsockname()[1]
    with impl.StreamSocket(AF_VSOCK) as sock:
        sock.bind((socket.VMADDR_CID_ANY, port))
        assert sock.getsockname() == (socket.VMADDR_CID_ANY, port)
        sock.listen()
        assert outcome(sock.getpeername)[1] is OSError


def test_vsock_connect_ends_as_the_stdlibs(impl: ModuleType) -> None:
    """Without a loopback transport (as here) a connect to VMADDR_CID_LOCAL
    ends, bounded by a short timeout, as the stdlib's does: the same exception
    class and errno.  Only the local CID: another could reach the host."""
    address = (fastsock.VMADDR_CID_LOCAL, 0x7FFF0001)
    with impl.StreamSocket(AF_VSOCK) as sock, socket.socket(AF_VSOCK) as std:
        sock.settimeout(0.3)
        std.settimeout(0.3)
        started = time.monotonic()
        ours = outcome(lambda: sock.connect(address))
        assert time.monotonic() - started < 5
        theirs = outcome(lambda: std.connect(address))
    if ours[0] == "returned" or theirs[0] == "returned":
        pytest.skip(f"something listens on vsock {address}")
    assert ours[1:3] == theirs[1:3]
    with impl.StreamSocket(AF_VSOCK) as sock, socket.socket(AF_VSOCK) as std:
        sock.settimeout(0.3)
        std.settimeout(0.3)
        assert sock.connect_ex(address) == std.connect_ex(address) != 0


def test_vsock_connection_over_loopback(impl: ModuleType) -> None:
    """A connection over vsock: needs a transport that reaches this machine
    (the vsock_loopback module, or a VM and its host)."""
    with impl.StreamSocket(AF_VSOCK) as server:
        try:
            server.bind((fastsock.VMADDR_CID_LOCAL, socket.VMADDR_PORT_ANY))
        except OSError as exc:
            pytest.skip(f"no vsock loopback transport here ({exc.strerror}): needs a VM "
                        f"or vsock_loopback")
        server.listen()
        with impl.StreamSocket(AF_VSOCK) as client:
            client.settimeout(5)
            client.connect(server.getsockname())
            conn, peer = server.accept()
            with conn:
                assert peer[0] == fastsock.VMADDR_CID_LOCAL
                client.sendall(b"ping")
                assert conn.recv(4) == b"ping"


def test_vsock_datagram_as_the_kernel_allows(impl: ModuleType) -> None:
    """Datagram vsock needs a transport that has datagrams: without one the
    error is the stdlib's errno, and its message names the family."""
    try:
        std = socket.socket(AF_VSOCK, socket.SOCK_DGRAM)
    except OSError as exc:
        with pytest.raises(type(exc)) as raised:
            impl.DatagramSocket(AF_VSOCK)
        assert raised.value.errno == exc.errno
        assert "AF_VSOCK SOCK_DGRAM" in str(raised.value)
        return
    with std, impl.DatagramSocket(AF_VSOCK) as sock:
        assert sock.family == AF_VSOCK


def test_vsock_from_fd_and_from_socket(impl: ModuleType) -> None:
    std = socket.socket(AF_VSOCK)
    std.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
    name = std.getsockname()
    with impl.StreamSocket.from_socket(std) as sock:
        assert sock.family == AF_VSOCK and sock.getsockname() == name
    assert std.fileno() == -1


# -- raw sockets ----------------------------------------------------------------


@needs_root
def test_raw_socket_defaults(impl: ModuleType) -> None:
    with impl.RawSocket() as v4, impl.RawSocket(socket.AF_INET6) as v6:
        assert isinstance(v4, impl.DatagramSocket)
        assert (v4.family, v4.type, v4.proto) == (socket.AF_INET, socket.SOCK_RAW,
                                                  socket.IPPROTO_ICMP)
        assert (v6.family, v6.type, v6.proto) == (socket.AF_INET6, socket.SOCK_RAW,
                                                  socket.IPPROTO_ICMPV6)
        assert v4.family is socket.AF_INET and v4.type is socket.SOCK_RAW
    with impl.socket(socket.AF_INET, socket.SOCK_RAW) as made:
        assert type(made) is impl.RawSocket and made.proto == socket.IPPROTO_ICMP
    with impl.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP) as udp:
        assert udp.proto == socket.IPPROTO_UDP


@needs_root
def test_raw_socket_protocol_zero_is_the_kernels_error(impl: ModuleType) -> None:
    theirs = outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 0))
    ours = outcome(lambda: impl.RawSocket(socket.AF_INET, socket.SOCK_RAW, 0))
    assert ours == theirs  # the stdlib's message: it is the protocol that is refused
    assert ours[:3:2] == ("raised", errno.EPROTONOSUPPORT)


def test_raw_socket_refuses_other_families_and_types(impl: ModuleType) -> None:
    for family in (socket.AF_UNIX, AF_VSOCK, 31):
        with pytest.raises(OSError) as raised:
            impl.RawSocket(family)
        assert raised.value.errno == errno.EAFNOSUPPORT
        assert _common.family_name(family) in str(raised.value)
    with pytest.raises(ValueError, match="RawSocket wraps SOCK_RAW sockets, not SOCK_DGRAM"):
        impl.RawSocket(socket.AF_INET, socket.SOCK_DGRAM)


@needs_root
def test_raw_socket_from_fd_checks_the_kind(impl: ModuleType) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as std:
        with pytest.raises(ValueError, match="not what StreamSocket wraps"):
            impl.StreamSocket.from_fd(std.fileno())
        with pytest.raises(ValueError, match="not what DatagramSocket wraps"):
            impl.DatagramSocket.from_fd(std.fileno())
        with impl.RawSocket.from_fd(os.dup(std.fileno())) as sock:
            assert sock.proto == socket.IPPROTO_ICMP and type(sock) is impl.RawSocket
        with impl.socket(fileno=os.dup(std.fileno())) as sock:
            assert type(sock) is impl.RawSocket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError, match="AF_INET SOCK_DGRAM socket, not what RawSocket"):
            impl.RawSocket.from_fd(udp.fileno())


def echo(family: int, identifier: int, sequence: int, data: bytes) -> bytes:
    return ping.echo_request(family, identifier, sequence, data)


@needs_root
@pytest.mark.parametrize("family, host", [
    (socket.AF_INET, "127.0.0.1"),
    pytest.param(socket.AF_INET6, "::1", marks=needs_ipv6),
])
def test_raw_icmp_echo_over_loopback(impl: ModuleType, family: int, host: str) -> None:
    identifier = (os.getpid() + family) & 0xFFFF
    with impl.RawSocket(family) as sock:
        sock.settimeout(5)
        sent_at = time.monotonic()
        assert sock.sendto(echo(family, identifier, 7, b"fastsock"), (host, 0)) == 16
        deadline = sent_at + 5
        while True:  # loopback shows our own request and others' ICMP too
            assert time.monotonic() < deadline, "no echo reply"
            packet, sender = sock.recvfrom(2048)
            reply = ping.parse_reply(family, packet, True, identifier, None)
            if reply is not None and reply.sequence == 7:
                break
        assert sender[0] == host and reply.data == b"fastsock"
        if family == socket.AF_INET:
            assert reply.ttl == packet[8] and ping.checksum(packet[20:]) == 0
        # the batch receive takes raw packets too
        sock.sendto(echo(family, identifier, 8, b"batch"), (host, 0))
        seen: list[Any] = []
        while not any(r is not None and r.sequence == 8 for r in seen):
            assert time.monotonic() < deadline + 5, "no echo reply in a batch"
            seen += [ping.parse_reply(family, data, True, identifier, None)
                     for data, _ in sock.recv_many(8, 2048)]


# -- without the privilege: a child process without CAP_NET_RAW ------------------------


def without_net_raw() -> tuple[str, ...]:
    """A command prefix that runs without CAP_NET_RAW (still root: dropped from
    the bounding set, so the exec'd program does not get it back), or a skip.
    Root rather than another user, because the interpreter may live where only
    root can read, such as a home directory."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop CAP_NET_RAW")
    return ("setpriv", "--bounding-set=-net_raw")


@needs_root
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_raw_socket_without_the_privilege_is_permission_error(implementation: str) -> None:
    module = implementation_module_name(implementation)
    code = textwrap.dedent(f"""
        import socket, {module} as m
        for family, proto in ((socket.AF_INET, 1), (socket.AF_INET6, 58)):
            try:
                socket.socket(family, socket.SOCK_RAW, proto)
            except PermissionError as exc:
                stdlib_errno = exc.errno
            else:
                raise SystemExit("the stdlib made a raw socket without CAP_NET_RAW")
            try:
                m.RawSocket(family)
            except PermissionError as exc:
                assert exc.errno == stdlib_errno, (exc.errno, stdlib_errno)
                print(exc.strerror)
            else:
                raise SystemExit("a raw socket made without CAP_NET_RAW")
        """)
    env = dict(os.environ, **_names.IMPLEMENTATIONS[implementation][1])
    result = subprocess.run([*without_net_raw(), sys.executable, "-c", code], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Operation not permitted: {name} SOCK_RAW sockets need the CAP_NET_RAW capability"
        for name in ("AF_INET", "AF_INET6")]


# -- families fastsock or the kernel lacks ------------------------------------------

AF_BLUETOOTH = 31  # not in this build's socket module; not in this kernel
AF_CAN = 29


@pytest.mark.parametrize("family", [AF_BLUETOOTH, AF_CAN, 99])
def test_constructors_name_a_family_they_do_not_take(impl: ModuleType, family: int) -> None:
    stdlib_errno = outcome(lambda: socket.socket(family, socket.SOCK_STREAM))[2]
    makers: list[tuple[Any, Callable[[], Any]]] = [
        (impl.StreamSocket, lambda: impl.StreamSocket(family)),
        (impl.DatagramSocket, lambda: impl.DatagramSocket(family)),
        (impl.RawSocket, lambda: impl.RawSocket(family)),
        (impl.StreamSocket, lambda: impl.socket(family, socket.SOCK_STREAM)),
        (impl.DatagramSocket, lambda: impl.socket(family, socket.SOCK_DGRAM)),
        (impl.RawSocket, lambda: impl.socket(family, socket.SOCK_RAW)),
        (impl.StreamSocket, lambda: impl.socketpair(family)),
    ]
    name = _common.family_name(family)
    assert name == {AF_BLUETOOTH: "AF_BLUETOOTH", AF_CAN: "AF_CAN", 99: "99"}[family]
    assert stdlib_errno == errno.EAFNOSUPPORT  # the kernel's answer: the same errno
    for cls, make in makers:
        with pytest.raises(OSError) as raised:
            make()
        assert raised.value.errno == errno.EAFNOSUPPORT
        taken = ", ".join(map(_common.family_name, cls._FAMILIES))
        assert str(raised.value) == (f"[Errno {errno.EAFNOSUPPORT}] "
                                     f"{os.strerror(errno.EAFNOSUPPORT)}: {cls.__name__} "
                                     f"takes {taken}, not {name}")


def test_open_error_names_what_the_kernel_lacks() -> None:
    lacking = _common.open_error(errno.EAFNOSUPPORT, AF_VSOCK, socket.SOCK_STREAM)
    assert lacking.errno == errno.EAFNOSUPPORT
    assert "the kernel has no AF_VSOCK SOCK_STREAM sockets" in str(lacking)
    assert type(_common.open_error(errno.EACCES, socket.AF_INET, socket.SOCK_RAW)) \
        is PermissionError
    plain = _common.open_error(errno.EMFILE, socket.AF_INET, socket.SOCK_STREAM)
    assert str(plain) == str(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))


@needs_root
def test_descriptor_of_a_family_without_a_class_is_refused(impl: ModuleType) -> None:
    """A packet socket (AF_PACKET, no fastsock class): from_fd, a constructor's
    fileno and socket(fileno=) refuse it with ValueError naming it, and leave
    the descriptor open and the caller's."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0) as std:
        fd = std.fileno()
        makers: list[Callable[[], Any]] = [
                     lambda: impl.DatagramSocket.from_fd(fd),
                     lambda: impl.DatagramSocket(fileno=fd),
                     lambda: impl.socket(fileno=fd),
                     lambda: impl.RawSocket.from_fd(fd)]
        for make in makers:
            with pytest.raises(ValueError, match="AF_PACKET SOCK_DGRAM socket, not what"):
                make()
            assert std.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM


@pytest.fixture
def abstract_name() -> Iterator[bytes]:
    yield b"\0fastsock-raw-test-" + os.urandom(6).hex().encode()


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_unix_abstract_names_still_work(impl: ModuleType, kind: int,
                                        abstract_name: bytes) -> None:
    with impl.socket(socket.AF_UNIX, kind) as server, impl.socket(socket.AF_UNIX, kind) as client:
        server.bind(abstract_name)
        assert server.getsockname() == abstract_name
        if kind == socket.SOCK_STREAM:
            server.listen()
        client.settimeout(5)
        client.connect(abstract_name)
        client.sendall(b"abstract")
        if kind == socket.SOCK_STREAM:
            conn, _ = server.accept()
            with conn:
                assert conn.recv(8) == b"abstract"
        else:
            server.settimeout(5)
            assert server.recv(8) == b"abstract"


# -- python -m fastsock.ping ----------------------------------------------------------


def run_ping(implementation: str, *args: str, timeout: float = 30,
             prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **_names.IMPLEMENTATIONS[implementation][1])
    return subprocess.run([*prefix, sys.executable, "-m", "fastsock.ping", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


REPLY_LINE = r"^(\d+) bytes from (\S+): icmp_seq=(\d+) ttl=(\d+) time=(\d+\.\d{3}) ms$"


def check_replies(output: str, host: str, count: int) -> None:
    import re
    replies = [re.match(REPLY_LINE, line) for line in output.splitlines()
               if " bytes from " in line]
    assert all(replies) and len(replies) == count, output
    assert [int(m.group(3)) for m in replies if m] == list(range(1, count + 1))
    assert all(m.group(1) == "64" and m.group(2) == host for m in replies if m)
    assert f"{count} packets transmitted, {count} received, 0% packet loss" in output
    assert re.search(r"^rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms$", output,
                     re.M), output


@needs_root
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("host, flag", [
    ("127.0.0.1", "-4"), pytest.param("::1", "-6", marks=needs_ipv6)])
def test_ping_loopback(implementation: str, host: str, flag: str) -> None:
    result = run_ping(implementation, "-c", "3", "-i", "0.05", "-W", "5", flag, host)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"PING {host} ({host}) 56(")
    check_replies(result.stdout, host, 3)
    assert f"--- {host} ping statistics ---" in result.stdout


@needs_root
def test_pings_at_once_see_only_their_replies() -> None:
    """Two raw-socket pings at once each see every reply on loopback, and
    count only their own (by identifier): no duplicates, none lost."""
    env = dict(os.environ, **_names.IMPLEMENTATIONS["python"][1])
    command = [sys.executable, "-m", "fastsock.ping", "-c", "5", "-i", "0.05", "127.0.0.1"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=30)[0] for process in (first, second)]
    assert first.returncode == second.returncode == 0
    for output in outputs:
        assert "DUP" not in output
        check_replies(output, "127.0.0.1", 5)


@needs_root
def test_ping_ctrl_c_prints_the_summary() -> None:
    import signal
    # Ctrl-C's default in the child even when this run ignores SIGINT (a
    # background job's does, and a child inherits it); the pipe closed on any failure
    with subprocess.Popen(
            [sys.executable, "-m", "fastsock.ping", "-i", "0.05", "127.0.0.1"],
            stdout=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline(), process.stdout.readline()]
            assert " bytes from 127.0.0.1: icmp_seq=1 " in lines[1], lines
            process.send_signal(signal.SIGINT)
            rest = process.communicate(timeout=30)[0]
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0
    assert "--- 127.0.0.1 ping statistics ---" in rest and "rtt min/avg/max/mdev" in rest
    assert "Traceback" not in rest


def in_private_network(setup: str) -> tuple[str, ...]:
    """A command prefix that runs in a new network namespace (loopback up, then
    ``setup``), or a skip where this system cannot make one."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {probe.stderr!r}")
    script = f"ip link set lo up && {setup} && exec \"$@\""
    return ("unshare", "-n", "sh", "-c", script, "sh")


@needs_root
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ping_without_replies_exits_1(implementation: str) -> None:
    prefix = in_private_network("echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all")
    result = run_ping(implementation, "-c", "2", "-i", "0.05", "-W", "0.3", "127.0.0.1",
                      prefix=prefix)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "2 packets transmitted, 0 received, 100% packet loss" in result.stdout
    assert "rtt" not in result.stdout


@needs_root
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ping_when_every_send_fails_exits_2(implementation: str) -> None:
    # a private namespace has no route but loopback: nothing leaves the machine
    prefix = in_private_network("true")
    result = run_ping(implementation, "-c", "2", "-i", "0.05", "-W", "0.3", "192.0.2.1",
                      prefix=prefix)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == ["ping: sendto: Network is unreachable"] * 2
    assert "2 packets transmitted, 0 received, +2 errors, 100% packet loss" in result.stdout


@needs_root
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ping_over_a_ping_socket_without_the_privilege(implementation: str) -> None:
    """Without CAP_NET_RAW, ping uses an ICMP ping socket where
    net.ipv4.ping_group_range allows it (set here in a private namespace)."""
    prefix = in_private_network(
        "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range") + without_net_raw()
    for host in ("127.0.0.1", "::1") if HAS_IPV6 else ("127.0.0.1",):
        result = run_ping(implementation, "-c", "2", "-i", "0.05", "-W", "5", host,
                          prefix=prefix)
        assert result.returncode == 0, result.stderr
        check_replies(result.stdout, host, 2)


@needs_root
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ping_with_no_socket_allowed_exits_2(implementation: str) -> None:
    prefix = in_private_network(
        "echo '1 0' > /proc/sys/net/ipv4/ping_group_range") + without_net_raw()
    result = run_ping(implementation, "-c", "1", "127.0.0.1", prefix=prefix)
    assert result.returncode == 2
    assert result.stderr.startswith("ping: Operation not permitted: AF_INET SOCK_RAW sockets "
                                    "need the CAP_NET_RAW capability"), result.stderr
    assert "ping_group_range" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (("-c", "0", "127.0.0.1"), "invalid count"),
    (("-W", "nan", "127.0.0.1"), "invalid time"),
    (("-4", "-6", "127.0.0.1"), "not allowed with argument"),
    (("-c", "1", "host.invalid"), "ping: host.invalid: "),
    (("-c", "1", "-6", "127.0.0.1"), "ping: 127.0.0.1: "),
])
def test_ping_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run_ping("python", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_ping_checks_replies() -> None:
    request = ping.echo_request(socket.AF_INET, 0x1234, 9, b"data")
    assert ping.checksum(request) == 0
    reply = bytes([0, 0]) + request[2:]
    # the reply's checksum: the request's, less the type byte it no longer has
    fixed = reply[:2] + struct.pack("!H", ping.checksum(reply[:2] + b"\0\0" + reply[4:])) + \
        reply[4:]
    assert ping.parse_reply(socket.AF_INET, fixed, False, 0x1234, 64) == \
        ping.Reply(9, 12, 64, b"data")
    assert ping.parse_reply(socket.AF_INET, fixed, False, 0x4321, 64) is None  # not ours
    corrupt = fixed[:-1] + b"x"
    assert ping.parse_reply(socket.AF_INET, corrupt, False, 0x1234, 64) is None
    assert ping.parse_reply(socket.AF_INET, request, False, 0x1234, 64) is None  # a request
    assert ping.parse_reply(socket.AF_INET, fixed[:7], False, None, None) is None
    v6 = bytes([129, 0, 0, 0]) + struct.pack("!HH", 7, 3) + b"x"
    assert ping.parse_reply(socket.AF_INET6, v6, True, 7, 255) == ping.Reply(3, 9, 255, b"x")
    stats = ping.Statistics(transmitted=4, received=3, rtts=[1.0, 2.0, 3.0])
    assert stats.summary("h", 0.5).splitlines()[1:] == [
        "4 packets transmitted, 3 received, 25% packet loss, time 500ms",
        "rtt min/avg/max/mdev = 1.000/2.000/3.000/0.816 ms"]
