"""Stream sockets and what they hold on to, on both implementations:
sendfile() from files that cannot seek (a pipe, a FIFO, a socket), other
threads running while sendfile() works on a socket with a timeout, and the
memory a receive buffer keeps once a large message or line has been
returned (docs/stream-fast-paths.md)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from conftest import background, connected

TRANSPORTS = ["tcp", "unix"]
TIMEOUT = 5.0
KiB = 1024
MiB = 1024 * KiB


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that do not repeat every 256 bytes."""
    block = bytes((i * 7 + seed) % 256 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture(params=TRANSPORTS)
def pair(impl: ModuleType, request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(sender, receiver), both blocking; the receiver times out after TIMEOUT."""
    with connected(impl, request.param, TIMEOUT) as (a, b):
        b.settimeout(TIMEOUT)
        yield a, b


def receive_all(sock: Any, size: int) -> Callable[[], bytes]:
    def run() -> bytes:
        parts = []
        got = 0
        while got < size:
            data = sock.recv(min(65536, size - got))
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)
    return run


def write_and_close(fd: int, data: bytes) -> Callable[[], None]:
    """Write ``data`` to a pipe's descriptor in pieces, then close it (EOF)."""
    def run() -> None:
        with open(fd, "wb", buffering=0) as pipe:
            view = memoryview(data)
            while view:
                n = pipe.write(view[:100000])
                assert n
                view = view[n:]
    return run


class FdOnly:
    """An object with nothing but fileno()."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


# -- sendfile from a file that cannot seek ------------------------------------------


def test_sendfile_from_a_pipe(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    content = pattern(1_000_000, 3)
    r, w = os.pipe()
    with open(r, "rb") as f, background(write_and_close(w, content)) as writer, \
            background(receive_all(b, len(content)), a, b) as reader:
        # a count stops there; without one, the pipe is sent until its EOF
        assert a.sendfile(f, 0, 1000) == 1000
        assert a.sendfile(f, count=250_000) == 250_000
        assert a.sendfile(f) == len(content) - 251_000
        assert a.sendfile(f) == 0  # at EOF
        writer.finish()
        assert reader.finish() == content


def test_sendfile_from_a_pipe_descriptor(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    content = pattern(300_000, 4)
    r, w = os.pipe()
    try:
        with background(write_and_close(w, content)) as writer, \
                background(receive_all(b, len(content)), a, b) as reader:
            assert a.sendfile(FdOnly(r)) == len(content)
            writer.finish()
            assert reader.finish() == content
    finally:
        os.close(r)


def test_sendfile_from_a_fifo(impl: ModuleType, pair: tuple[Any, Any],
                              tmp_path: pathlib.Path) -> None:
    a, b = pair
    content = pattern(700_000, 5)
    path = tmp_path / "fifo"
    os.mkfifo(path)

    def write() -> None:
        write_and_close(os.open(path, os.O_WRONLY), content)()

    with background(write) as writer:
        with open(path, "rb") as f, \
                background(receive_all(b, len(content)), a, b) as reader:
            assert a.sendfile(f, 0, 5000) == 5000
            assert a.sendfile(f, 0, None) == len(content) - 5000
            writer.finish()
            assert reader.finish() == content


def test_sendfile_from_a_socket(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    content = pattern(900_000, 6)
    src_w, src_r = socket.socketpair()
    with src_w, src_r:
        def write() -> None:
            src_w.sendall(content)
            src_w.shutdown(socket.SHUT_WR)

        with background(write, src_w) as writer, \
                background(receive_all(b, len(content)), a, b) as reader:
            assert a.sendfile(src_r, count=123_456) == 123_456
            assert a.sendfile(src_r) == len(content) - 123_456
            writer.finish()
            assert reader.finish() == content


def test_sendfile_offset_on_a_pipe_is_refused(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    r, w = os.pipe()
    with open(r, "rb") as f, open(w, "wb", buffering=0) as pipe:
        pipe.write(b"abcdef")
        with pytest.raises(ValueError, match="seek"):
            a.sendfile(f, 2)
        with pytest.raises(ValueError, match="seek"):
            a.sendfile(f, 1, 3)
        assert os.read(r, 100) == b"abcdef"  # nothing was read from the pipe
        pipe.write(b"xyz")
        assert a.sendfile(f, 0, 3) == 3  # offset 0 is where the pipe is
    assert b.recv_exactly(3) == b"xyz"
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(1)


def test_sendfile_from_a_silent_pipe_honours_the_timeout(impl: ModuleType,
                                                         pair: tuple[Any, Any]) -> None:
    a, b = pair
    r, w = os.pipe()
    with open(r, "rb") as f, open(w, "wb", buffering=0) as pipe:
        pipe.write(b"12345")
        a.settimeout(0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            a.sendfile(f)  # the writer never closes
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 1.5, elapsed
        assert b.recv_exactly(5) == b"12345"  # what the pipe had was sent
        # a non-blocking socket never waits for the pipe either
        a.setblocking(False)
        pipe.write(b"678")
        assert a.sendfile(f) == 3
        with pytest.raises(BlockingIOError):
            a.sendfile(f)
    assert b.recv_exactly(3) == b"678"


# -- other threads run while sendfile() works -------------------------------------


# the peer's reader: another process, so that it never needs this one's GIL
_DRAIN = """
import sys
buf = bytearray(4 << 20)
total = 0
while True:
    n = sys.stdin.buffer.raw.readinto(buf)
    if not n:
        break
    total += n
print(total)
"""


def test_sendfile_on_a_socket_with_a_timeout_lets_other_threads_run(impl: ModuleType) -> None:
    """A ticker thread keeps running during a large sendfile() on a socket
    with a timeout.  The source is slower than the reader (/dev/urandom,
    whose bytes the kernel computes as it reads, as a slow disk would) and
    the send buffer large: the socket never fills, so the kernel moves
    everything in one long call, which must not hold the GIL."""
    size = 64 * MiB
    a, b = impl.socketpair()
    with a, b:
        drain = subprocess.Popen([sys.executable, "-c", _DRAIN], stdin=b.fileno(),
                                 stdout=subprocess.PIPE)
        try:
            stop = threading.Event()
            started = threading.Event()

            def tick() -> tuple[int, float]:
                ticks = 0
                worst = 0.0
                started.set()
                last = time.perf_counter()
                while not stop.is_set():
                    ticks += 1
                    now = time.perf_counter()
                    if now - last > worst:
                        worst = now - last
                    last = now
                return ticks, worst

            a.settimeout(30.0)
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)
            with open("/dev/urandom", "rb") as f, background(tick, a, b) as ticker:
                assert started.wait(TIMEOUT)
                time.sleep(0.02)
                began = time.monotonic()
                try:
                    sent = a.sendfile(f, 0, size)
                finally:
                    stop.set()
                took = time.monotonic() - began
                ticks, worst = ticker.finish()
            a.shutdown(socket.SHUT_WR)
            out, _ = drain.communicate(timeout=60)
        finally:
            if drain.poll() is None:
                drain.kill()
                drain.wait()
    assert sent == size
    assert int(out) == size
    assert ticks > 1000
    # with the GIL held the ticker stalls for about the whole sendfile; without
    # it, for a few switch intervals (more under a sanitizer build)
    assert worst < min(0.1, took / 2), (f"the ticker stalled {worst * 1000:.0f} ms "
                                        f"during a {took * 1000:.0f} ms sendfile")


# -- the memory a receive buffer keeps -------------------------------------------------

# what an idle receive buffer holding a few bytes may keep (the documented
# bound is 256 KiB), with room for the allocations of the test itself
RETAINED_MAX = 512 * KiB
TAIL = b"tail"


@contextlib.contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """Trace allocations for the block; yields a function returning the bytes
    allocated since the block began and still alive."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        yield lambda: tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def _long_receive(method: str) -> tuple[bytes, Callable[[Any], Any], bytes,
                                       Callable[[Any], Any], bytes]:
    """(sent first, a call that times out after taking all of it, sent next, the
    call that then returns, what it returns) for each way a receive grows the
    buffer; what is sent ends with TAIL, left buffered."""
    if method == "recv_until":
        line = b"x" * (4 * MiB - 1) + b"\n"
        return (line + TAIL, lambda s: s.recv_until(b"!", limit=8 * MiB), b"",
                lambda s: s.recv_until(b"\n", limit=8 * MiB), line)
    if method == "recv_msg":
        payload = pattern(16 * MiB, 8)
        head = len(payload).to_bytes(4, "big")
        return (head + payload[:-1], lambda s: s.recv_msg(), payload[-1:] + TAIL,
                lambda s: s.recv_msg(), payload)
    data = pattern(4 * MiB, 9)
    return (data[:-1], lambda s: s.recv_exactly(len(data)), data[-1:] + TAIL,
            lambda s: s.recv_exactly(len(data)), data)


@pytest.mark.parametrize("method", ["recv_until", "recv_msg", "recv_exactly"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_receive_buffer_shrinks_after_a_large_receive(impl: ModuleType, transport: str,
                                                      method: str) -> None:
    """A call that timed out leaves megabytes buffered; once the next call
    has returned them, the buffer (holding a few bytes) lets the memory go."""
    first, timing_out, rest, call, expected = _long_receive(method)
    with connected(impl, transport, TIMEOUT) as (a, b), traced() as retained:
        b.settimeout(1.0)
        with background(lambda: a.sendall(first), a, b) as sender:
            try:
                timing_out(b)
            except TimeoutError:
                pass
            else:
                pytest.fail(f"{method} did not time out")
            sender.finish()
        assert b.buffered >= len(first) - len(TAIL)
        a.sendall(rest)
        b.settimeout(TIMEOUT)
        result = call(b)
        assert result == expected
        del result
        kept = retained()
        assert b.recv_exactly(len(TAIL)) == TAIL
    assert kept < RETAINED_MAX, f"an idle receive buffer keeps {kept} bytes"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_receive_buffer_drained_in_small_pieces_stays_bounded_and_linear(
        impl: ModuleType, transport: str) -> None:
    """16 MiB buffered (a call timed out), then taken a few KiB at a time by
    every kind of call: after each one the buffer keeps at most
    max(256 KiB, 4 x what it holds), and the whole drain stays linear (a
    copy of what is left on every call would take minutes)."""
    data = pattern(16 * MiB, 10).replace(b"!", b"?")
    takes: list[Callable[[Any], bytes]] = [
        lambda s: bytes(s.recv(4096)),
        lambda s: bytes(s.recv_exactly(3000)),
        lambda s: _recv_into(s, 5000),
        lambda s: _recv_exactly_into(s, 2000),
    ]
    with connected(impl, transport, TIMEOUT) as (a, b), traced() as retained:
        b.settimeout(1.0)
        with background(lambda: a.sendall(data), a, b) as sender:
            try:
                b.recv_until(b"!", limit=32 * MiB)
            except TimeoutError:
                pass
            else:
                pytest.fail("recv_until did not time out")
            sender.finish()
        assert b.buffered == len(data)
        pos = 0
        worst = 0
        began = time.monotonic()
        turn = 0
        while pos < len(data) - 8192:
            piece = takes[turn % len(takes)](b)
            turn += 1
            assert piece == data[pos:pos + len(piece)]
            pos += len(piece)
            held = b.buffered
            assert held == len(data) - pos
            over = retained() - max(256 * KiB, 4 * held)
            worst = max(worst, over)
        took = time.monotonic() - began
        assert b.recv_exactly(len(data) - pos) == data[pos:]
    assert worst < 64 * KiB, f"the buffer kept {worst} bytes more than the bound"
    assert took < 10.0, f"draining 16 MiB took {took:.1f} s"


def _recv_into(sock: Any, size: int) -> bytes:
    buffer = bytearray(size)
    n = sock.recv_into(buffer)
    return bytes(buffer[:n])


def _recv_exactly_into(sock: Any, size: int) -> bytes:
    buffer = bytearray(size)
    sock.recv_exactly_into(buffer)
    return bytes(buffer)
