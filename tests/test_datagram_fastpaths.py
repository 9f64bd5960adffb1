"""Datagram fast paths (docs/datagram-fast-paths.md) on both implementations:
batch receive, batch send, GSO segmentation and GRO coalescing."""

from __future__ import annotations

import os
import socket
import struct
import time
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

import fastsock
from conftest import HAS_IPV6, Worker

FAMILIES = ["ipv4", "ipv6", "unix"]


def _pair(impl: ModuleType, family: str, unix_dir: str) -> tuple[Any, Any, Any]:
    """(receiver, sender, receiver address) of the family, receiver with a big buffer."""
    if family == "ipv6" and not HAS_IPV6:
        pytest.skip("no IPv6 loopback")
    fam = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6, "unix": socket.AF_UNIX}[family]
    receiver = impl.DatagramSocket(fam)
    sender = impl.DatagramSocket(fam)
    if family == "unix":
        receiver.bind(os.path.join(unix_dir, "r"))
        sender.bind(os.path.join(unix_dir, "s"))
    else:
        receiver.bind(("127.0.0.1", 0) if family == "ipv4" else ("::1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.settimeout(2.0)
    return receiver, sender, receiver.getsockname()


@pytest.fixture(params=FAMILIES)
def pair(request: pytest.FixtureRequest, impl: ModuleType, unix_dir: str) -> Iterator[tuple[Any, Any, Any]]:
    receiver, sender, address = _pair(impl, request.param, unix_dir)
    try:
        yield receiver, sender, address
    finally:
        receiver.close()
        sender.close()


def _numbered(count: int, size: int = 32) -> list[bytes]:
    return [struct.pack(">I", i) + bytes([i % 251]) * (size - 4) for i in range(count)]


def _drain(receiver: Any, expected: int, bufsize: int = 2048) -> list[tuple[bytes, Any]]:
    got: list[tuple[bytes, Any]] = []
    deadline = time.monotonic() + 5
    while len(got) < expected and time.monotonic() < deadline:
        got += receiver.recv_many(64, bufsize)
    return got


def test_send_many_then_recv_many_in_order(pair: tuple[Any, Any, Any]) -> None:
    receiver, sender, address = pair
    datagrams = _numbered(500)
    sending = Worker(lambda: sender.send_many(datagrams, address))
    sending.start()
    got = _drain(receiver, 500)
    assert sending.finish() == 500
    assert [data for data, _ in got] == datagrams
    senders = {repr(peer) for _, peer in got}
    assert len(senders) == 1


def test_recv_many_waits_for_first_and_respects_max_count(pair: tuple[Any, Any, Any]) -> None:
    receiver, sender, address = pair
    receiver.settimeout(0.2)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        receiver.recv_many()
    assert time.monotonic() - start < 1.5
    receiver.settimeout(2.0)
    sender.send_many(_numbered(10), address)
    time.sleep(0.05)
    first = receiver.recv_many(3)
    assert len(first) == 3
    rest = _drain(receiver, 7)
    assert [d for d, _ in first + rest] == _numbered(10)


def test_sendto_many_per_datagram_addresses(impl: ModuleType) -> None:
    with impl.DatagramSocket() as a, impl.DatagramSocket() as b, impl.DatagramSocket() as s:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.settimeout(2)
        b.settimeout(2)
        pairs = [(b"to-a-%d" % i if i % 2 == 0 else b"to-b-%d" % i,
                  a.getsockname() if i % 2 == 0 else b.getsockname()) for i in range(20)]
        assert s.sendto_many(pairs) == 20
        got_a = _drain(a, 10)
        got_b = _drain(b, 10)
        assert [d for d, _ in got_a] == [p[0] for p in pairs if p[0].startswith(b"to-a")]
        assert [d for d, _ in got_b] == [p[0] for p in pairs if p[0].startswith(b"to-b")]


def test_send_many_on_connected_socket(impl: ModuleType) -> None:
    with impl.DatagramSocket() as r, impl.DatagramSocket() as s:
        r.bind(("127.0.0.1", 0))
        r.settimeout(2)
        s.connect(r.getsockname())
        assert s.send_many([b"one", bytearray(b"two"), memoryview(b"three")]) == 3
        assert [d for d, _ in _drain(r, 3)] == [b"one", b"two", b"three"]
        assert s.send_many([]) == 0


def test_batch_receive(pair: tuple[Any, Any, Any], impl: ModuleType) -> None:
    receiver, sender, address = pair
    batch = impl.DatagramBatch(64, 256)
    assert (batch.count, batch.slot_size, len(batch)) == (64, 256, 0)
    datagrams = _numbered(200, 100)
    sending = Worker(lambda: sender.send_many(datagrams, address))
    sending.start()
    received: list[bytes] = []
    deadline = time.monotonic() + 5
    while len(received) < 200 and time.monotonic() < deadline:
        n = receiver.recv_batch(batch)
        assert n == len(batch) and 1 <= n <= 64
        for i in range(n):
            assert batch.length(i) == 100 and not batch.truncated(i)
            with batch.data(i) as view:
                received.append(bytes(view))
        sender_address = batch.address(0)
        assert batch.address(n - 1) is sender_address  # repeated sender: cached tuple
    assert sending.finish() == 200
    assert received == datagrams


def test_batch_iteration_and_indexing(impl: ModuleType) -> None:
    with impl.DatagramSocket() as r, impl.DatagramSocket() as s:
        r.bind(("127.0.0.1", 0))
        r.settimeout(2)
        s.send_many([b"a", b"bb", b"ccc"], r.getsockname())
        time.sleep(0.05)
        batch = impl.DatagramBatch(8, 16)
        assert r.recv_batch(batch) == 3
        items = [(bytes(view), peer) for view, peer in batch]
        assert [d for d, _ in items] == [b"a", b"bb", b"ccc"]
        assert items[0][1][1] == s.getsockname()[1]
        assert bytes(batch.data(-1)) == b"ccc"
        with pytest.raises(IndexError):
            batch.data(3)
        with pytest.raises(IndexError):
            batch.length(-4)


def test_batch_refuses_reuse_while_a_view_is_alive(impl: ModuleType) -> None:
    with impl.DatagramSocket() as r, impl.DatagramSocket() as s:
        r.bind(("127.0.0.1", 0))
        r.settimeout(2)
        s.send_many([b"first", b"second"], r.getsockname())
        time.sleep(0.05)
        batch = impl.DatagramBatch(1, 64)
        assert r.recv_batch(batch) == 1
        view = batch.data(0)
        with pytest.raises(BufferError):
            r.recv_batch(batch)
        assert bytes(view) == b"first"  # untouched
        view.release()
        assert r.recv_batch(batch) == 1
        assert bytes(batch.data(0)) == b"second"


def test_truncation_is_reported(impl: ModuleType) -> None:
    with impl.DatagramSocket() as r, impl.DatagramSocket() as s:
        r.bind(("127.0.0.1", 0))
        r.settimeout(2)
        s.send_many([b"short", b"L" * 300, b"tail"], r.getsockname())
        time.sleep(0.05)
        with pytest.raises(fastsock.TruncatedDatagramError) as info:
            _drain(r, 3, bufsize=100)
        err = info.value
        assert isinstance(err, ValueError)
        data = [d for d, _ in err.messages]
        assert data[0] == b"short" and data[1] == b"L" * 100
        assert err.truncated == [1]
        s.sendto(b"M" * 300, r.getsockname())
        batch = impl.DatagramBatch(4, 50)
        assert r.recv_batch(batch) >= 1
        last = len(batch) - 1
        assert batch.truncated(last) and batch.length(last) == 300
        assert bytes(batch.data(last)) == b"M" * 50


def test_send_segments_matches_plain_datagrams(pair: tuple[Any, Any, Any]) -> None:
    receiver, sender, address = pair
    payload = os.urandom(1000 * 150 + 123)
    sending = Worker(lambda: sender.send_segments(payload, 1000, address))
    sending.start()
    got = _drain(receiver, 151)
    assert sending.finish() == 151
    assert [len(d) for d, _ in got] == [1000] * 150 + [123]
    assert b"".join(d for d, _ in got) == payload


def test_send_segments_many_calls_and_small_segments(impl: ModuleType) -> None:
    # more segments than one GSO call may carry: split, don't fail
    with impl.DatagramSocket() as r, impl.DatagramSocket() as s:
        r.bind(("127.0.0.1", 0))
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        r.settimeout(2)
        payload = bytes(range(256)) * 64  # 16 KiB
        assert s.send_segments(payload, 64, r.getsockname()) == 256
        got = _drain(r, 256)
        assert [d for d, _ in got] == [payload[i:i + 64] for i in range(0, len(payload), 64)]
        assert s.send_segments(b"", 64, r.getsockname()) == 0


def test_gro_coalesces_and_segments_reassemble(impl: ModuleType) -> None:
    with impl.DatagramSocket() as r, impl.DatagramSocket() as s:
        r.bind(("127.0.0.1", 0))
        r.settimeout(2)
        enabled = r.set_gro(True)
        assert enabled == fastsock.UDP_GRO
        payload = os.urandom(1200 * 20 + 7)
        assert s.send_segments(payload, 1200, r.getsockname()) == 21
        time.sleep(0.05)
        pieces: list[bytes] = []
        deadline = time.monotonic() + 5
        while sum(map(len, pieces)) < len(payload) and time.monotonic() < deadline:
            data, peer, segment = r.recv_gro()
            assert peer[1] == s.getsockname()[1]
            views = list(fastsock.iter_segments(data, segment))
            assert all(len(v) == segment for v in views[:-1])
            pieces += [bytes(v) for v in views]
        assert b"".join(pieces) == payload
        assert pieces[:20] == [payload[i:i + 1200] for i in range(0, 1200 * 20, 1200)]


def test_gro_off_or_unix_gives_single_datagrams(impl: ModuleType, unix_dir: str) -> None:
    with impl.DatagramSocket() as r, impl.DatagramSocket() as s:
        r.bind(("127.0.0.1", 0))
        r.settimeout(2)
        s.sendto(b"x" * 500, r.getsockname())
        data, _, segment = r.recv_gro()
        assert data == b"x" * 500 and segment == 500
    with impl.DatagramSocket(socket.AF_UNIX) as u:
        assert u.set_gro(True) is False


def test_iter_segments() -> None:
    assert [bytes(v) for v in fastsock.iter_segments(b"abcdefg", 3)] == [b"abc", b"def", b"g"]
    assert list(fastsock.iter_segments(b"", 3)) == []
    with pytest.raises(ValueError):
        list(fastsock.iter_segments(b"abc", 0))


@pytest.mark.parametrize("call", [
    lambda s, impl: s.recv_many(0),
    lambda s, impl: s.recv_many(-1),
    lambda s, impl: s.recv_many(4, 0),
    lambda s, impl: s.recv_many(4, 70000),
    lambda s, impl: impl.DatagramBatch(0, 10),
    lambda s, impl: impl.DatagramBatch(4, 0),
    lambda s, impl: impl.DatagramBatch(4, 65537),
    lambda s, impl: s.send_segments(b"abc", 0, ("127.0.0.1", 9)),
    lambda s, impl: s.send_segments(b"abc", 70000, ("127.0.0.1", 9)),
    lambda s, impl: s.recv_gro(0),
], ids=["max_count 0", "max_count -1", "bufsize 0", "bufsize big", "batch count 0",
        "slot 0", "slot big", "segment 0", "segment big", "gro bufsize 0"])
def test_bad_sizes_raise_value_error(impl: ModuleType, call: Any) -> None:
    with impl.DatagramSocket() as s:
        with pytest.raises(ValueError):
            call(s, impl)


def test_wrong_family_addresses(impl: ModuleType, unix_dir: str) -> None:
    with impl.DatagramSocket() as s:
        with pytest.raises(TypeError):
            s.send_many([b"x"], "/some/path")
        with pytest.raises(TypeError):
            s.sendto_many([(b"x", "/some/path")])
        with pytest.raises(OverflowError):
            s.send_segments(b"abc", 1, ("127.0.0.1", 70000))
    with impl.DatagramSocket(socket.AF_UNIX) as u:
        with pytest.raises(TypeError):
            u.send_many([b"x"], ("127.0.0.1", 9))


def test_read_only_and_non_buffer_data(impl: ModuleType) -> None:
    with impl.DatagramSocket() as s:
        with pytest.raises(TypeError):
            s.send_many(["text"], ("127.0.0.1", 9))
        with pytest.raises(TypeError):
            s.send_segments("text", 10, ("127.0.0.1", 9))
        with pytest.raises(TypeError):
            s.recv_batch(bytearray(10))


def test_nonblocking_recv_many_and_batch(impl: ModuleType) -> None:
    with impl.DatagramSocket() as r:
        r.bind(("127.0.0.1", 0))
        r.setblocking(False)
        with pytest.raises(BlockingIOError):
            r.recv_many()
        with pytest.raises(BlockingIOError):
            r.recv_batch(impl.DatagramBatch(4, 64))


def test_closed_socket_gives_ebadf(impl: ModuleType) -> None:
    s = impl.DatagramSocket()
    s.close()
    calls: list[Callable[[], Any]] = [
        lambda: s.recv_many(), lambda: s.send_many([b"x"], ("127.0.0.1", 9)),
        lambda: s.recv_batch(impl.DatagramBatch(2, 8)),
        lambda: s.send_segments(b"abc", 1, ("127.0.0.1", 9)), lambda: s.recv_gro()]
    for call in calls:
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == 9
