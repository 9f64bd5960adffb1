"""NetlinkSocket on both twins: construction and addresses as the stdlib's, the
splitter of a datagram of netlink messages (lengths never trusted), request()
and dump() against a peer that plays the kernel (multipart replies, other
sequence numbers, errors, the deadline, close from another thread), and the
real kernel: links and routes compared with `ip -json`, routes changed in a
network namespace of the test's own, sockets found with sock_diag.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from hypothesis import given, settings, strategies as st
from conftest import IMPLEMENTATIONS, Worker, compiled_module

import fastsock
from fastsock import _common, _names, _netlink_py
from netlink_support import (
    INET_DIAG_REQ_V2,
    INET_DIAG_SOCKID,
    RTM_DELROUTE,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWROUTE,
    SOCK_DIAG_BY_FAMILY,
    TCP_LISTEN,
    blackhole_route,
    decode_link,
    decode_route,
    ip_links,
    ip_routes,
    link_request,
    route_request,
)

AF_NETLINK = socket.AF_NETLINK
NETLINK_USERSOCK = socket.NETLINK_USERSOCK
HEADER = struct.Struct("=IHHII")
TESTS = Path(__file__).resolve().parent

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def message(kind: int, flags: int = 0, seq: int = 0, pid: int = 0, payload: bytes = b"",
            pad: bool = True) -> bytes:
    data = HEADER.pack(16 + len(payload), kind, flags, seq, pid) + payload
    return data + bytes(-len(data) % 4) if pad else data


def error_message(code: int, seq: int, pid: int, kind: int = _common.NLMSG_ERROR) -> bytes:
    return message(kind, 0, seq, pid, struct.pack("=i", code) + bytes(16))


def splitters() -> list[Callable[[Any], list[Any]]]:
    return [compiled_module()._split_netlink, _netlink_py._split_netlink]


# -- the fake kernel: a NETLINK_USERSOCK peer the socket is connected to ------------


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    with socket.socket(AF_NETLINK, socket.SOCK_RAW, NETLINK_USERSOCK) as sock:
        sock.bind((0, 0))
        sock.settimeout(10)
        yield sock


@pytest.fixture
def client(impl: ModuleType, peer: socket.socket) -> Iterator[Any]:
    """A NetlinkSocket whose requests go to ``peer`` (connected to it)."""
    with impl.NetlinkSocket(AF_NETLINK, socket.SOCK_RAW, NETLINK_USERSOCK) as sock:
        sock.bind((0, 0))
        sock.connect((peer.getsockname()[0], 0))
        sock.settimeout(10)
        yield sock


def serve(peer: socket.socket, replies: Callable[[int, int], list[bytes]],
          pause: float = 0.0) -> Worker:
    """Answer one request: ``replies(seq, pid)`` gives the datagrams to send back."""
    def run() -> bytes:
        request, (pid, _groups) = peer.recvfrom(65536)
        seq = HEADER.unpack_from(request)[3]
        for datagram in replies(seq, pid):
            peer.sendto(datagram, (pid, 0))
            time.sleep(pause)
        return request
    worker = Worker(run, name="fake kernel")
    worker.start()
    return worker


# -- construction and addresses ----------------------------------------------------------


def test_defaults_are_the_netlink_ones(impl: ModuleType) -> None:
    with impl.NetlinkSocket() as sock:
        assert (sock.family, sock.type, sock.proto) == \
            (socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        assert isinstance(sock.family, socket.AddressFamily)
    with impl.NetlinkSocket(type=socket.SOCK_DGRAM) as sock:
        assert sock.type == socket.SOCK_DGRAM
    with impl.NetlinkSocket(type=socket.SOCK_RAW | socket.SOCK_NONBLOCK) as sock:
        assert sock.gettimeout() == 0.0


def test_socket_makes_a_netlink_socket(impl: ModuleType) -> None:
    for kind in (socket.SOCK_RAW, socket.SOCK_DGRAM):
        with impl.socket(AF_NETLINK, kind, socket.NETLINK_ROUTE) as sock:
            assert type(sock) is impl.NetlinkSocket and sock.type == kind
    with impl.socket(AF_NETLINK, socket.SOCK_RAW, impl.NETLINK_SOCK_DIAG) as sock:
        assert sock.proto == 4
    assert impl.CLASSES[AF_NETLINK, socket.SOCK_RAW] is impl.NetlinkSocket


def test_refused_types_and_families(impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="NetlinkSocket wraps SOCK_RAW"):
        impl.NetlinkSocket(type=socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        impl.NetlinkSocket(socket.AF_INET)
    assert info.value.errno == errno.EAFNOSUPPORT
    with pytest.raises(OSError):  # the StreamSocket of (any family, SOCK_STREAM)
        impl.socket(AF_NETLINK, socket.SOCK_STREAM)


def test_descriptor_hand_over(impl: ModuleType) -> None:
    stdlib = socket.socket(AF_NETLINK, socket.SOCK_DGRAM, NETLINK_USERSOCK)
    sock = impl.socket(fileno=stdlib.detach())
    with sock:
        assert type(sock) is impl.NetlinkSocket
        assert (sock.type, sock.proto) == (socket.SOCK_DGRAM, NETLINK_USERSOCK)
        back = sock.to_socket()
    with back, impl.NetlinkSocket.from_socket(back) as again:
        assert again.type == socket.SOCK_DGRAM
    with socket.socket() as tcp, pytest.raises(ValueError, match="not what NetlinkSocket"):
        impl.NetlinkSocket.from_fd(tcp.fileno())


def test_addresses_as_the_stdlib(impl: ModuleType, peer: socket.socket) -> None:
    with impl.NetlinkSocket(AF_NETLINK, socket.SOCK_RAW, NETLINK_USERSOCK) as sock:
        sock.bind((0, 0))
        pid = sock.getsockname()[0]
        assert sock.getsockname() == (pid, 0) and pid != 0
        sock.settimeout(10)
        sock.sendto(b"hello", peer.getsockname())
        assert peer.recvfrom(100) == (b"hello", (pid, 0))
        peer.sendto(b"back", (pid, 0))
        assert sock.recvfrom(100) == (b"back", peer.getsockname())
        with socket.socket(AF_NETLINK, socket.SOCK_RAW, NETLINK_USERSOCK) as stdlib:
            for bad in ("x", (1,), (1, 2, 3)):
                with pytest.raises(TypeError) as ours:
                    sock.sendto(b"", bad)
                with pytest.raises(TypeError) as theirs:
                    stdlib.sendto(b"", bad)
                assert str(ours.value) == str(theirs.value)


# -- the splitter ----------------------------------------------------------------------


def test_split_messages() -> None:
    data = message(16, 2, 7, 9, b"abc") + message(3, 0, 7, 9, b"\0" * 4) + \
        message(1, 0, 0, 0, b"xy", pad=False)
    for split in splitters():
        got = split(data)
        assert got == [(16, 2, 7, 9, b"abc"), (3, 0, 7, 9, bytes(4)), (1, 0, 0, 0, b"xy")]
        assert isinstance(got[0], fastsock.NetlinkMessage)
        assert got[0].payload == b"abc" and got[1].type == fastsock.NLMSG_DONE
        assert split(b"") == []
        assert split(memoryview(b"\0" + data)[1:]) == got  # unaligned


@pytest.mark.parametrize("data, text", [
    (HEADER.pack(15, 1, 0, 0, 0), "length 15, less than its 16-byte header"),
    (HEADER.pack(0, 1, 0, 0, 0), "length 0, less than"),
    (HEADER.pack(40, 1, 0, 0, 0) + bytes(8), "length 40, but only 24 bytes are left"),
    (HEADER.pack(0xFFFFFFFF, 1, 0, 0, 0), "length 4294967295, but only 16"),
    (message(1) + bytes(5), "ends with 5 bytes at offset 16, too few"),
    (b"\1\2\3", "ends with 3 bytes at offset 0"),
])
def test_split_never_trusts_a_length(data: bytes, text: str) -> None:
    for split in splitters():
        with pytest.raises(ValueError, match=text):
            split(data)


_MESSAGE = st.tuples(st.sampled_from([1, 2, 3, 16, 0xFFFF]), st.integers(0, 0xFFFF),
                     st.sampled_from([0, 1, 0xFFFFFFFF]), st.sampled_from([0, 7]),
                     st.binary(max_size=24),
                     st.one_of(st.none(), st.integers(0, 80), st.just(0xFFFFFFFF)),
                     st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(_MESSAGE, max_size=5), st.binary(max_size=6), st.integers(0, 3))
def test_splitters_agree(parts: list[Any], tail: bytes, shift: int) -> None:
    """Both twins' splitters on buffers whose lengths may lie: the same messages
    or the same error, and messages only from the bytes they claim."""
    data = b""
    for kind, flags, seq, pid, payload, length, pad in parts:
        header = HEADER.pack(16 + len(payload) if length is None else length, kind, flags,
                             seq, pid)
        data += header + payload + (bytes(-len(payload) % 4) if pad else b"")
    data += tail
    view = memoryview(bytes(shift) + data)[shift:]
    outcomes: list[tuple[str, Any]] = []
    for split in splitters():
        try:
            outcomes.append(("ok", split(view)))
        except ValueError as exc:
            outcomes.append(("error", str(exc)))
    assert outcomes[0] == outcomes[1]
    if outcomes[0][0] == "ok":
        offset = 0
        for got in outcomes[0][1]:
            length = HEADER.unpack_from(data, offset)[0]
            assert got.payload == data[offset + 16:offset + length]
            offset += (length + 3) & ~3


def test_netlink_attributes() -> None:
    data = bytes(12) + struct.pack("=HH", 7, 3) + b"eth\0" + struct.pack("=HHI", 8, 0x8004, 1500)
    assert fastsock.netlink_attributes(data, 12) == {3: b"eth", 4: struct.pack("=I", 1500)}
    with pytest.raises(ValueError, match="attribute at offset 12 has length 99"):
        fastsock.netlink_attributes(bytes(12) + struct.pack("=HH", 99, 1), 12)


# -- recv_messages --------------------------------------------------------------------


def test_recv_messages_splits_a_datagram(client: Any, peer: socket.socket) -> None:
    pid = client.getsockname()[0]
    peer.sendto(message(20, 2, 5, 0, b"one") + message(21, 0, 5, 0, b"two", pad=False),
                (pid, 0))
    assert client.recv_messages() == [(20, 2, 5, 0, b"one"), (21, 0, 5, 0, b"two")]


def test_recv_messages_refuses_a_bad_datagram_and_goes_on(client: Any,
                                                          peer: socket.socket) -> None:
    pid = client.getsockname()[0]
    peer.sendto(HEADER.pack(64, 1, 0, 0, 0) + bytes(4), (pid, 0))
    peer.sendto(message(30), (pid, 0))
    with pytest.raises(ValueError, match="length 64, but only 20"):
        client.recv_messages()
    assert client.recv_messages() == [(30, 0, 0, 0, b"")]


def test_recv_messages_takes_a_datagram_larger_than_its_buffer(client: Any,
                                                               peer: socket.socket) -> None:
    so_rcvbufforce = 33  # <asm/socket.h>: past rmem_max, for root
    client.setsockopt(socket.SOL_SOCKET, so_rcvbufforce if os.geteuid() == 0
                      else socket.SO_RCVBUF, 1 << 20)
    big = os.urandom(200_000)
    peer.sendto(message(40, 0, 1, 0, big) + message(41), (client.getsockname()[0], 0))
    assert client.recv_messages() == [(40, 0, 1, 0, big), (41, 0, 0, 0, b"")]


def test_recv_messages_nonblocking(client: Any) -> None:
    client.settimeout(None)
    with pytest.raises(BlockingIOError):
        client.recv_messages(socket.MSG_DONTWAIT)


# -- request() and dump() against the fake kernel ----------------------------------------


def test_dump_collects_a_multipart_reply(client: Any, peer: socket.socket) -> None:
    multi = _common.NLM_F_MULTI

    def replies(seq: int, pid: int) -> list[bytes]:
        return [message(16, multi, seq, pid, b"a") + message(77, 0, 0, 0, b"notice"),
                message(16, multi, seq, pid, b"b") + message(16, multi, seq + 1, pid, b"old")
                + message(16, multi, seq, pid, b"c"),
                message(_common.NLMSG_NOOP, 0, seq, pid)
                + message(_common.NLMSG_DONE, multi, seq, pid, bytes(4))]

    worker = serve(peer, replies)
    got = client.dump(RTM_GETLINK, b"\1\2\3")
    request = worker.finish()
    length, kind, flags, seq, pid = HEADER.unpack_from(request)
    assert (length, kind, flags, pid, request[16:]) == \
        (19, RTM_GETLINK, _common.NLM_F_REQUEST | _common.NLM_F_DUMP, 0, b"\1\2\3")
    assert [m.payload for m in got] == [b"a", b"b", b"c"]
    assert all(m.seq == seq for m in got)
    # what was not the reply is kept, in order, for recv_messages()
    client.settimeout(0.0)
    assert [m.payload for m in client.recv_messages()] == [b"notice", b"old"]
    client.settimeout(10)
    # the next request has the next sequence number
    worker = serve(peer, lambda seq, pid: [error_message(0, seq, pid)])
    assert client.request(99) == []
    assert HEADER.unpack_from(worker.finish())[3] == seq + 1


def test_request_ends_at_the_ack(client: Any, peer: socket.socket) -> None:
    worker = serve(peer, lambda seq, pid: [message(5, 0, seq, pid, b"reply"),
                                           error_message(0, seq, pid)])
    got = client.request(5, b"x")
    assert [(m.type, m.pid, m.payload) for m in got] == \
        [(5, client.getsockname()[0], b"reply")]
    worker.finish()


def test_request_without_ack_ends_at_a_single_reply(client: Any, peer: socket.socket) -> None:
    worker = serve(peer, lambda seq, pid: [message(5, 0, seq, pid, b"one")
                                           + message(6, 0, seq, pid, b"after")])
    assert [m.payload for m in client.request(5, flags=_common.NLM_F_REQUEST)] == [b"one"]
    worker.finish()
    client.settimeout(0.0)
    assert [m.payload for m in client.recv_messages()] == [b"after"]


def test_kernel_error_is_an_oserror(client: Any, peer: socket.socket) -> None:
    worker = serve(peer, lambda seq, pid: [message(5, 2, seq, pid, b"part"),
                                           error_message(-errno.EEXIST, seq, pid)])
    with pytest.raises(FileExistsError) as info:
        client.request(5)
    assert info.value.errno == errno.EEXIST
    worker.finish()
    client.settimeout(0.0)
    assert [m.payload for m in client.recv_messages()] == [b"part"]  # nothing lost


def test_failed_dump_reports_the_error_in_done(client: Any, peer: socket.socket) -> None:
    worker = serve(peer, lambda seq, pid: [
        error_message(-errno.EINTR, seq, pid, _common.NLMSG_DONE)])
    with pytest.raises(OSError) as info:
        client.dump(RTM_GETLINK)
    assert info.value.errno == errno.EINTR
    worker.finish()


def test_short_error_message_is_refused(client: Any, peer: socket.socket) -> None:
    worker = serve(peer, lambda seq, pid: [message(_common.NLMSG_ERROR, 0, seq, pid, b"ab")])
    with pytest.raises(ValueError, match="2-byte payload, too short"):
        client.request(5)
    worker.finish()


def test_reply_from_another_port_is_not_taken(client: Any, peer: socket.socket) -> None:
    worker = serve(peer, lambda seq, pid: [message(5, 0, seq, pid + 1, b"stranger"),
                                           error_message(0, seq, pid)])
    assert client.request(5) == []
    worker.finish()
    client.settimeout(0.0)
    assert [m.payload for m in client.recv_messages()] == [b"stranger"]


def test_reply_with_port_id_zero_is_taken(client: Any, peer: socket.socket) -> None:
    # some kernel families (NETLINK_AUDIT) put port id 0, not the requester's,
    # in their replies: with the request's sequence number they are its reply
    worker = serve(peer, lambda seq, pid: [message(5, 0, seq, 0, b"reply")])
    got = client.request(5, flags=_common.NLM_F_REQUEST)
    assert [(m.pid, m.payload) for m in got] == [(0, b"reply")]
    worker.finish()
    worker = serve(peer, lambda seq, pid: [message(5, 0, seq, 0, b"reply"),
                                           error_message(0, seq, 0)])
    assert [m.payload for m in client.request(5)] == [b"reply"]
    worker.finish()


NETLINK_AUDIT, AUDIT_GET = 9, 1000


@needs_root
def test_audit_status_request(impl: ModuleType) -> None:
    try:
        sock = impl.NetlinkSocket(AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    except OSError as exc:
        pytest.skip(f"no NETLINK_AUDIT here: {exc}")
    with sock:
        sock.settimeout(5)
        try:
            # the kernel's audit replies carry port id 0
            got = sock.request(AUDIT_GET, flags=_common.NLM_F_REQUEST)
        except (ConnectionRefusedError, PermissionError) as exc:
            pytest.skip(f"the audit subsystem does not answer here: {exc}")
        assert [(m.type, m.pid) for m in got] == [(AUDIT_GET, 0)]
        assert len(got[0].payload) >= 40  # struct audit_status


def test_timeout_bounds_the_whole_dump(client: Any, peer: socket.socket) -> None:
    multi = _common.NLM_F_MULTI
    stop = threading.Event()

    def trickle() -> None:  # a part every 50 ms, never the end
        request, (pid, _) = peer.recvfrom(65536)
        seq = HEADER.unpack_from(request)[3]
        while not stop.wait(0.05):
            peer.sendto(message(16, multi, seq, pid, b"part"), (pid, 0))

    worker = Worker(trickle)
    worker.start()
    client.settimeout(0.4)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            client.dump(RTM_GETLINK)
        assert 0.35 < time.monotonic() - started < 2.0
    finally:
        stop.set()
        worker.finish()
    client.settimeout(0.0)
    assert len(client.recv_messages()) >= 3  # the parts received are kept


def test_one_receiver_at_a_time(client: Any, peer: socket.socket) -> None:
    asked, release = threading.Event(), threading.Event()

    def late(seq: int, pid: int) -> list[bytes]:
        asked.set()
        release.wait(10)
        return [error_message(0, seq, pid)]

    server = serve(peer, late)
    requester = Worker(lambda: client.request(5))
    requester.start()
    try:
        assert asked.wait(10)  # the request went out: its call now waits for the reply
        with pytest.raises(RuntimeError, match="another call is receiving"):
            client.recv_messages()
        with pytest.raises(RuntimeError, match="another call is receiving"):
            client.request(6)
    finally:
        release.set()
    assert requester.finish() == []
    server.finish()


def test_close_wakes_a_blocked_request(client: Any, peer: socket.socket) -> None:
    client.settimeout(None)
    requester = Worker(lambda: client.request(5))
    requester.start()
    peer.recvfrom(65536)  # the request went out: the call now waits for the reply
    time.sleep(0.1)
    client.close()
    with pytest.raises(OSError) as info:
        requester.finish(10)
    assert info.value.errno == errno.EBADF


def test_bad_request_arguments(impl: ModuleType) -> None:
    with impl.NetlinkSocket() as sock:
        for kind, flags in ((-1, 1), (0x10000, 1), (5, 0x10000), (5, -1)):
            with pytest.raises(ValueError, match="must be 0-65535"):
                sock.request(kind, b"", flags)
        with pytest.raises(TypeError):
            sock.request(5, "text")
        with pytest.raises(TypeError):
            sock.request(5.0)
    with pytest.raises(OSError) as info:
        sock.request(RTM_GETLINK)
    assert info.value.errno == errno.EBADF


# -- against the kernel ----------------------------------------------------------------


def links(sock: Any) -> set[tuple[int, str, int, Any]]:
    return {decode_link(fastsock.netlink_attributes, m.payload)
            for m in sock.dump(RTM_GETLINK, link_request())}


def routes(sock: Any) -> set[tuple[str, str, str, Any, Any]]:
    names = {index: name for index, name, _, _ in links(sock)}
    return {decode_route(fastsock.netlink_attributes, m.payload, names)
            for m in sock.dump(RTM_GETROUTE, route_request())}


def test_link_dump_matches_ip(impl: ModuleType) -> None:
    with impl.NetlinkSocket() as sock:
        sock.settimeout(10)
        assert links(sock) == ip_links()


def test_route_dump_matches_ip(impl: ModuleType) -> None:
    with impl.NetlinkSocket() as sock:
        sock.settimeout(10)
        assert routes(sock) == ip_routes()


def test_sock_diag_finds_a_listening_socket(impl: ModuleType) -> None:
    with impl.create_server(("127.0.0.1", 0)) as server, \
            impl.NetlinkSocket(proto=impl.NETLINK_SOCK_DIAG) as diag:
        diag.settimeout(10)
        port = server.getsockname()[1]
        request = INET_DIAG_REQ_V2.pack(socket.AF_INET, socket.IPPROTO_TCP, 0,
                                        1 << TCP_LISTEN) + bytes(48)
        found = {}
        for reply in diag.dump(SOCK_DIAG_BY_FAMILY, request):
            state = reply.payload[1]
            sport, _dport, src, _dst = INET_DIAG_SOCKID.unpack_from(reply.payload, 4)
            inode = struct.unpack_from("=I", reply.payload, 68)[0]
            assert state == TCP_LISTEN
            found[sport] = (socket.inet_ntoa(src[:4]), inode)
        assert found[port] == ("127.0.0.1", os.fstat(server.fileno()).st_ino)


# -- routes changed in a network namespace of the test's own --------------------------

NAMESPACE_BODY = """
import errno, json, socket, sys
import fastsock
from netlink_support import *
enter_new_netns()
sock = fastsock.NetlinkSocket()
sock.settimeout(10)
flags = fastsock.NLM_F_REQUEST | fastsock.NLM_F_ACK
create = flags | NLM_F_CREATE | NLM_F_EXCL
assert sock.request(RTM_NEWROUTE, blackhole_route("10.20.0.0/16"), create) == []
assert sock.request(RTM_NEWROUTE, blackhole_route("2001:db8:1::/48", 100), create) == []
try:
    sock.request(RTM_NEWROUTE, blackhole_route("10.20.0.0/16"), create)
    raise AssertionError("a second identical route was added")
except FileExistsError:
    pass
for command in (["route", "add", "10.30.0.0/24", "dev", "lo"],
                ["route", "add", "10.40.0.0/24", "via", "10.30.0.7", "table", "7"]):
    subprocess.run(["ip", *command], check=True, timeout=30)
names = {index: name for index, name, _, _ in (
    decode_link(fastsock.netlink_attributes, m.payload)
    for m in sock.dump(RTM_GETLINK, link_request()))}
ours = {decode_route(fastsock.netlink_attributes, m.payload, names)
        for m in sock.dump(RTM_GETROUTE, route_request())}
assert ours == ip_routes(), (ours, ip_routes())
assert ("main", "blackhole", "10.20.0.0/16", None, None) in ours
assert ("7", "unicast", "10.40.0.0/24", "10.30.0.7", "lo") in ours
assert sock.request(RTM_DELROUTE, blackhole_route("10.20.0.0/16"), flags) == []
assert not any(route[2] == "10.20.0.0/16" for route in ip_routes())
try:
    sock.request(RTM_DELROUTE, blackhole_route("10.20.0.0/16"), flags)
    raise AssertionError("a route that is gone was deleted")
except OSError as exc:
    assert exc.errno == errno.ESRCH, exc
sock.close()
print("namespace ok")
"""


@needs_root
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_routes_changed_in_a_namespace(name: str) -> None:
    if name == "cython":
        compiled_module()
    env = {**os.environ, **_names.IMPLEMENTATIONS[name][1],
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    body = "import subprocess\n" + NAMESPACE_BODY
    # a child process: the namespace ends with it, whatever happens
    done = subprocess.run([sys.executable, "-c", body], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "namespace ok"
