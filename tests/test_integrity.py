"""Data integrity: tens of megabytes through stream echoes and thousands of
numbered datagrams, every byte and every datagram accounted for."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import socket
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from conftest import Worker

pytestmark = pytest.mark.slow

STREAM_BYTES = 64 * 1024 * 1024
DATAGRAMS = 6000
MAX_DATAGRAM = 1400


@contextlib.contextmanager
def running(**targets: Callable[[], Any]) -> Iterator[dict[str, Worker]]:
    workers = {name: Worker(target, name) for name, target in targets.items()}
    for worker in workers.values():
        worker.start()
    try:
        yield workers
    finally:
        for worker in workers.values():
            worker.join(30)
        assert not any(w.is_alive() for w in workers.values()), "thread did not finish"


# -- streams ------------------------------------------------------------------

def _echo(listener: Any) -> int:
    """Accept one connection and echo it back until EOF; returns bytes echoed."""
    conn, _ = listener.accept()
    total = 0
    buf = bytearray(256 * 1024)
    view = memoryview(buf)
    with conn:
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            conn.sendall(view[:n])
            total += n
        conn.shutdown(socket.SHUT_WR)
    return total


def _send_random(sock: Any, total: int, seed: int) -> tuple[int, str]:
    """sendall ``total`` random bytes in pieces of varied size, then SHUT_WR."""
    sizes = random.Random(seed)
    digest = hashlib.sha256()
    sent = 0
    while sent < total:
        block = os.urandom(min(1 << 20, total - sent))
        digest.update(block)
        view = memoryview(block)
        offset = 0
        while offset < len(block):
            step = min(len(block) - offset, sizes.choice((1, 7, 1500, 65536, 300_000, 1 << 20)))
            sock.sendall(view[offset:offset + step])
            offset += step
        sent += len(block)
    sock.shutdown(socket.SHUT_WR)
    return sent, digest.hexdigest()


def _receive_all(sock: Any, seed: int) -> tuple[int, str]:
    """recv_into with varied sizes until EOF; (bytes, SHA-256)."""
    sizes = random.Random(seed)
    digest = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    got = 0
    while True:
        want = sizes.choice((1, 100, 4096, 65536, 1 << 20))
        n = sock.recv_into(view[:want]) if want < len(buf) else sock.recv_into(buf, want)
        if n == 0:
            break
        assert 0 < n <= want
        digest.update(view[:n])
        got += n
    return got, digest.hexdigest()


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_stream_echo_integrity(impl: ModuleType, family: str, unix_dir: str) -> None:
    if family == "tcp":
        listener = impl.create_server(("127.0.0.1", 0))
    else:
        listener = impl.create_server(os.path.join(unix_dir, "echo"), family=impl.AF_UNIX)
    start = time.monotonic()
    with listener:
        listener.settimeout(10)
        with running(server=lambda: _echo(listener)) as server:
            client = impl.create_connection(listener.getsockname(), timeout=10)
            with client:
                client.settimeout(None)
                with running(send=lambda: _send_random(client, STREAM_BYTES, 1),
                             recv=lambda: _receive_all(client, 2)) as workers:
                    sent, sent_digest = workers["send"].finish(60)
                    got, got_digest = workers["recv"].finish(60)
            echoed = server["server"].finish(10)
    elapsed = time.monotonic() - start
    assert sent == STREAM_BYTES
    assert echoed == STREAM_BYTES
    assert got == STREAM_BYTES
    assert got_digest == sent_digest
    assert elapsed < 30, f"64 MiB echo took {elapsed:.1f} s"


def test_stream_socketpair_integrity_with_recv(impl: ModuleType) -> None:
    """The same check one way through a socketpair, with recv() building bytes."""
    total = 16 * 1024 * 1024
    a, b = impl.socketpair()

    def receive() -> tuple[int, str]:
        digest = hashlib.sha256()
        got = 0
        sizes = random.Random(3)
        while True:
            chunk = b.recv(sizes.choice((1, 333, 8192, 8193, 200_000)))
            if not chunk:
                return got, digest.hexdigest()
            digest.update(chunk)
            got += len(chunk)

    with a, b:
        with running(send=lambda: _send_random(a, total, 4), recv=receive) as workers:
            sent = workers["send"].finish(60)
            got = workers["recv"].finish(60)
    assert got == sent
    assert sent[0] == total


# -- datagrams ----------------------------------------------------------------

def _datagram(seq: int) -> bytes:
    size = 12 + (seq * 7919) % (MAX_DATAGRAM - 12)
    seed = hashlib.sha256(seq.to_bytes(8, "big")).digest()
    body = (seed * (size // 32 + 1))[:size - 12]
    return seq.to_bytes(8, "big") + len(body).to_bytes(4, "big") + body


def _check_datagram(data: bytes) -> int:
    assert len(data) >= 12, f"runt datagram of {len(data)} bytes"
    seq = int.from_bytes(data[:8], "big")
    assert 0 <= seq < DATAGRAMS, f"bad sequence number {seq}"
    assert data == _datagram(seq), f"datagram {seq} corrupted"
    return seq


class Window:
    """Flow control: the sender stays at most ``size`` datagrams ahead."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.received = 0
        self.cond = threading.Condition()

    def arrived(self) -> None:
        with self.cond:
            self.received += 1
            self.cond.notify_all()

    def wait_for_room(self, sent: int, timeout: float) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: sent - self.received < self.size, timeout)
        assert ok, f"receiver stalled at {self.received} of {sent} sent"


def _collect(receive: Callable[[], bytes], window: Window) -> dict[int, int]:
    counts: dict[int, int] = {}
    while sum(counts.values()) < DATAGRAMS:
        try:
            data = receive()
        except TimeoutError:
            break  # the checks below report what is missing
        seq = _check_datagram(data)
        counts[seq] = counts.get(seq, 0) + 1
        window.arrived()
    return counts


def _assert_all_once(counts: dict[int, int]) -> None:
    missing = [seq for seq in range(DATAGRAMS) if seq not in counts]
    duplicated = [seq for seq, n in counts.items() if n != 1]
    assert not missing, f"{len(missing)} datagrams lost, first {missing[:10]}"
    assert not duplicated, f"duplicated datagrams {duplicated[:10]}"


def test_udp_sequence_integrity(impl: ModuleType) -> None:
    rx = impl.DatagramSocket(impl.AF_INET)
    tx = impl.DatagramSocket(impl.AF_INET)
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        rx.bind(("127.0.0.1", 0))
        tx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        address = rx.getsockname()
        source = tx.getsockname()
        buf = bytearray(65536)
        sources: set[Any] = set()
        calls = itertools.count()

        def receive() -> bytes:
            data: bytes
            if next(calls) % 2:
                data, addr = rx.recvfrom(65536)
            else:
                n, addr = rx.recvfrom_into(buf)
                data = bytes(buf[:n])
            sources.add(addr)
            return data

        # well inside even the default receive buffer
        window = Window(64)

        def send() -> None:
            for seq in range(DATAGRAMS):
                window.wait_for_room(seq, 10)
                data = _datagram(seq)
                assert tx.sendto(data, address) == len(data)

        start = time.monotonic()
        with running(recv=lambda: _collect(receive, window), send=send) as workers:
            workers["send"].finish(60)
            counts = workers["recv"].finish(60)
        elapsed = time.monotonic() - start
    _assert_all_once(counts)
    assert sources == {source}
    assert elapsed < 30, f"{DATAGRAMS} datagrams took {elapsed:.1f} s"


def test_unix_datagram_socketpair_integrity(impl: ModuleType) -> None:
    a, b = impl.socketpair(impl.AF_UNIX, impl.SOCK_DGRAM)
    with a, b:
        b.settimeout(5)
        window = Window(DATAGRAMS + 1)  # Unix datagrams are never dropped: no pacing
        buf = bytearray(65536)

        def receive() -> bytes:
            n = b.recv_into(buf)
            return bytes(buf[:n])

        def send() -> None:
            for seq in range(DATAGRAMS):
                data = _datagram(seq)
                assert a.send(data) == len(data)

        start = time.monotonic()
        with running(recv=lambda: _collect(receive, window), send=send) as workers:
            workers["send"].finish(60)
            counts = workers["recv"].finish(60)
        elapsed = time.monotonic() - start
    _assert_all_once(counts)
    assert elapsed < 30


def test_unix_datagram_order_preserved(impl: ModuleType) -> None:
    """A Unix datagram socketpair is reliable and ordered: check the order too."""
    a, b = impl.socketpair(impl.AF_UNIX, impl.SOCK_DGRAM)
    n = 5000
    with a, b:
        b.settimeout(5)

        def send() -> None:
            for seq in range(n):
                a.send(seq.to_bytes(4, "big") * (1 + seq % 50))

        with running(send=send) as workers:
            order = []
            for _ in range(n):
                data = b.recv(4096)
                seq = int.from_bytes(data[:4], "big")
                assert data == seq.to_bytes(4, "big") * (1 + seq % 50)
                order.append(seq)
            workers["send"].finish(30)
    assert order == list(range(n))
