"""The stream fast paths (docs/stream-fast-paths.md) on both implementations,
over TCP on 127.0.0.1 and Unix socket pairs: the receive buffer shared by
every receive call, exact reads, delimited reads, length-prefixed messages,
vectored sends and sendfile, with their deadlines, end-of-stream reports,
limits and argument checks."""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import mmap
import os
import pathlib
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import textwrap
import threading
import time
from functools import partial
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from conftest import background, connected, implementation_module

from fastsock import _common

TRANSPORTS = ["tcp", "unix"]
TIMEOUT = 5.0
MiB = 1024 * 1024
IOV_MAX = os.sysconf("SC_IOV_MAX")
PEEK = socket.MSG_PEEK
SHUT_WR = socket.SHUT_WR
SHUT_RDWR = socket.SHUT_RDWR


# -- helpers --------------------------------------------------------------------


@contextlib.contextmanager
def stream_pair(impl: ModuleType, transport: str) -> Iterator[tuple[Any, Any]]:
    """(sender, receiver), both blocking; the receiver times out after TIMEOUT."""
    with connected(impl, transport, TIMEOUT) as (a, b):
        b.settimeout(TIMEOUT)
        yield a, b


@pytest.fixture(params=TRANSPORTS)
def pair(impl: ModuleType, request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    with stream_pair(impl, request.param) as both:
        yield both


def queued(sock: Any) -> int:
    """Bytes the kernel holds for ``sock`` that nothing has read yet."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
    count: int = struct.unpack("i", raw)[0]
    return count


def wait_queued(sock: Any, count: int, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while queued(sock) < count:
        assert time.monotonic() < deadline, f"only {queued(sock)} of {count} bytes arrived"
        time.sleep(0.002)


def wait_readable(sock: Any, timeout: float = TIMEOUT) -> None:
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, "no data arrived"


def framed(payload: bytes, prefix_size: int = 4) -> bytes:
    return len(payload).to_bytes(prefix_size, "big") + payload


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that repeat only every 251 * 256 bytes."""
    block = bytes((i * 7 + seed) % 256 for i in range(256))
    rows = (size // (251 * 256)) + 1
    data = b"".join(block[k % 256:] + block[:k % 256] for k in range(251 * rows))
    return data[:size]


def send_in_pieces(sock: Any, data: bytes, sizes: tuple[int, ...] = (1, 7, 100, 4096, 65536),
                   shutdown: bool = True) -> Callable[[], None]:
    def run() -> None:
        pos = 0
        turn = 0
        while pos < len(data):
            size = sizes[turn % len(sizes)]
            sock.sendall(data[pos:pos + size])
            pos += size
            turn += 1
        if shutdown:
            sock.shutdown(SHUT_WR)
    return run


def trickle(sock: Any, data: bytes, interval: float = 0.05) -> Callable[[], None]:
    """Send ``data`` a byte at a time, ``interval`` seconds apart."""
    def run() -> None:
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            time.sleep(interval)
    return run


def slow_reader(sock: Any, stop: threading.Event, chunk: int = MiB,
                interval: float = 0.05, limit_s: float = 3.0) -> Callable[[], int]:
    """Drain ``sock`` every ``interval`` seconds until stopped, EOF or ``limit_s``."""
    def run() -> int:
        total = 0
        sock.settimeout(0.2)
        deadline = time.monotonic() + limit_s
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                data = sock.recv(chunk)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            total += len(data)
            time.sleep(interval)
        return total
    return run


def receive_all(sock: Any, size: int, chunk: int = 65536,
                pause: float = 0.0) -> Callable[[], bytes]:
    def run() -> bytes:
        parts = []
        got = 0
        while got < size:
            data = sock.recv(min(chunk, size - got))
            if not data:
                break
            parts.append(data)
            got += len(data)
            if pause:
                time.sleep(pause)
        return b"".join(parts)
    return run


def retry_nonblocking(sock: Any, call: Callable[[], Any], limit_s: float = TIMEOUT) -> Any:
    """Repeat ``call`` on a non-blocking socket until it stops raising
    BlockingIOError, waiting for readability in between."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return call()
        except BlockingIOError:
            assert time.monotonic() < deadline, "the call never completed"
            select.select([sock], [], [], 0.1)


# -- exports --------------------------------------------------------------------


def test_exceptions_are_exported(impl: ModuleType) -> None:
    for name in ("IncompleteReadError", "LimitOverrunError", "MessageTooLargeError"):
        assert name in impl.__all__
        assert getattr(impl, name) is getattr(_common, name)
    assert issubclass(impl.IncompleteReadError, EOFError)
    assert issubclass(impl.MessageTooLargeError, ValueError)


# -- the receive buffer -----------------------------------------------------------


def test_mixing_receive_calls_keeps_every_byte_in_order(
        impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    line = b"GET /index HTTP/1.1\r\n"
    first = b"payload-one"
    raw = pattern(10240, 1)
    tail_line = b"tail\n"
    exact = pattern(70000, 2)
    big = pattern(100000, 3)
    stream = (line + framed(first) + raw + framed(b"") + tail_line + exact + framed(big))
    with background(send_in_pieces(a, stream), a, b) as sender:
        assert b.recv_until(b"\r\n") == line
        assert b.recv_msg() == first
        got = bytearray(b.recv(100))
        buf = bytearray(300)
        got += buf[:b.recv_into(buf, 300)]
        block = bytearray(1000)
        assert b.recv_exactly_into(block) == 1000
        got += block
        got += b.recv_exactly(len(raw) - len(got))
        assert bytes(got) == raw
        assert b.recv_msg() == b""
        assert b.recv_until(b"\n") == tail_line
        assert b.recv_exactly(len(exact)) == exact
        assert b.recv_msgs() == [big]
        assert b.recv(10) == b""
        assert b.buffered == 0
        sender.finish()


def test_buffered_counts_bytes_taken_from_the_kernel(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    assert b.buffered == 0
    a.sendall(b"one\ntwo\nthree")
    wait_queued(b, 13)
    assert b.recv_until(b"\n") == b"one\n"
    assert b.buffered == 9
    assert b.recv(2) == b"tw"
    assert b.buffered == 7
    assert b.recv_exactly(7) == b"o\nthree"
    assert b.buffered == 0
    assert isinstance(b.buffered, int)


def test_buffered_bytes_are_served_without_the_kernel(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"abc\ndef")
    wait_queued(b, 7)
    assert b.recv_until(b"\n") == b"abc\n"
    b.setblocking(False)
    # a selector cannot see buffered bytes; recv still returns them at once
    readable, _, _ = select.select([b], [], [], 0)
    assert readable == []
    assert b.buffered == 3
    assert b.recv(100) == b"def"
    with pytest.raises(BlockingIOError):
        b.recv(100)


def test_recv_into_is_served_from_the_buffer(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"x\n0123456789")
    wait_queued(b, 12)
    assert b.recv_until(b"\n") == b"x\n"
    target = bytearray(4)
    assert b.recv_into(target) == 4 and target == b"0123"
    assert b.recv_into(target, 2) == 2 and target == b"4523"
    words = array.array("H", [0, 0])
    assert b.recv_into(words) == 4 and words.tobytes() == b"6789"
    assert b.buffered == 0


def test_msg_peek_does_not_consume_buffered_bytes(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"head\nbody")
    wait_queued(b, 9)
    assert b.recv_until(b"\n") == b"head\n"
    assert b.recv(2, PEEK) == b"bo"
    assert b.recv(100, PEEK) == b"body"
    target = bytearray(10)
    assert b.recv_into(target, 0, PEEK) == 4 and target[:4] == b"body"
    assert b.buffered == 4
    assert b.recv(10) == b"body"
    assert b.buffered == 0


def test_buffered_recv_checks_arguments_like_the_stdlib(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"x\nkeep")
    wait_queued(b, 6)
    assert b.recv_until(b"\n") == b"x\n"
    for buffer, name in ((b"abcd", "bytes"), (memoryview(b"abcd"), "memoryview"), ("abcd", "str")):
        with pytest.raises(TypeError) as info:
            b.recv_into(buffer)
        assert str(info.value) == (
            f"recv_into() argument 1 must be read-write bytes-like object, not {name}")
    with pytest.raises(ValueError, match="negative buffersize in recv_into"):
        b.recv_into(bytearray(4), -1)
    with pytest.raises(ValueError, match="buffer too small for requested bytes"):
        b.recv_into(bytearray(4), 5)
    with pytest.raises(ValueError, match="negative buffersize in recv"):
        b.recv(-1)
    with pytest.raises(TypeError):
        b.recv(1.0)
    with pytest.raises(TypeError):
        b.recv_into(bytearray(4), "1")
    assert b.buffered == 4
    assert b.recv(10) == b"keep"


def test_close_discards_the_buffer(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"x\nrest")
    wait_queued(b, 6)
    assert b.recv_until(b"\n") == b"x\n"
    b.close()
    assert b.buffered == 0
    with pytest.raises(OSError) as info:
        b.recv(10)
    assert info.value.errno == errno.EBADF


def test_a_receive_during_a_buffered_receive_is_refused(impl: ModuleType,
                                                       pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"abc")
    with background(lambda: b.recv_exactly(10), a, b) as worker:
        time.sleep(0.2)
        assert worker.is_alive()
        refused: list[Callable[[], Any]] = [
            lambda: b.recv(1), lambda: b.recv_into(bytearray(1)), lambda: b.recv_exactly(1),
            lambda: b.recv_until(b"\n"), lambda: b.recv_msg(), lambda: b.recv_msgs()]
        for call in refused:
            with pytest.raises(RuntimeError, match="another receive call is in progress"):
                call()
        a.sendall(b"defghij")
        assert worker.finish() == b"abcdefghij"
    assert b.recv_exactly(0) == b""


def test_error_messages(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    expected: list[tuple[type[Exception], str, Callable[[], Any]]] = [
        (ValueError, "n must not be negative", lambda: b.recv_exactly(-1)),
        (ValueError, "prefix_size must be 1, 2, 4 or 8", lambda: b.recv_msg(prefix_size=3)),
        (ValueError, "prefix_size must be 1, 2, 4 or 8", lambda: a.send_msg(b"", prefix_size=0)),
        (ValueError, "max_size must be positive", lambda: b.recv_msg(max_size=0)),
        (ValueError, "max_count must be positive", lambda: b.recv_msgs(0)),
        (ValueError, "limit must be positive", lambda: b.recv_until(b"\n", 0)),
        (ValueError, "delimiter must not be empty", lambda: b.recv_until(b"")),
        (ValueError, "recv_iter() needs a non-empty buffer", lambda: b.recv_iter(bytearray())),
        (OverflowError, "message of 256 bytes does not fit a 1-byte length prefix",
         lambda: a.send_msg(bytes(256), prefix_size=1)),
        (ValueError, "negative buffersize in recv_exactly_into",
         lambda: b.recv_exactly_into(bytearray(1), -1)),
        (ValueError, "buffer too small for requested bytes",
         lambda: b.recv_exactly_into(bytearray(1), 2)),
        (TypeError, "recv_exactly_into() argument 1 must be read-write bytes-like object, "
         "not bytes", lambda: b.recv_exactly_into(b"x")),
    ]
    for kind, message, call in expected:
        with pytest.raises(kind) as info:
            call()
        assert str(info.value) == message
    a.sendall(b"x" * 60)
    wait_queued(b, 60)
    with pytest.raises(impl.LimitOverrunError) as overrun:
        b.recv_until(b"\n", 50)
    assert str(overrun.value) == "no delimiter within the first 50 bytes"


# -- recv_exactly and recv_exactly_into -------------------------------------------------


def test_recv_exactly_zero_and_bad_counts(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    _, b = pair
    started = time.monotonic()
    assert b.recv_exactly(0) == b""
    assert b.recv_exactly_into(bytearray()) == 0
    assert time.monotonic() - started < 1.0
    with pytest.raises(ValueError):
        b.recv_exactly(-1)
    for bad in (1.0, "1", None):
        with pytest.raises(TypeError):
            b.recv_exactly(bad)


@pytest.mark.parametrize("size", [1, 1000, 65536, 65537, 1_000_000])
def test_recv_exactly_sizes(impl: ModuleType, pair: tuple[Any, Any], size: int) -> None:
    a, b = pair
    data = pattern(size)
    with background(send_in_pieces(a, data + b"END", shutdown=False), a, b) as sender:
        result = b.recv_exactly(size)
        assert type(result) is bytes
        assert result == data
        assert b.recv_exactly(3) == b"END"
        sender.finish()


def test_recv_exactly_into_buffer_types(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    data = pattern(64 + 8 + 12 + 6 + 5)
    a.sendall(data)
    target = bytearray(64)
    assert b.recv_exactly_into(target) == 64
    assert target == data[:64]
    view = memoryview(bytearray(8))
    assert b.recv_exactly_into(view) == 8
    assert view.tobytes() == data[64:72]
    ints = array.array("i", [0, 0, 0])
    assert b.recv_exactly_into(ints) == 12
    assert ints.tobytes() == data[72:84]
    grid = np.zeros((2, 3), dtype=np.uint8)
    assert b.recv_exactly_into(grid) == 6
    assert grid.tobytes() == data[84:90]
    partial = bytearray(10)
    assert b.recv_exactly_into(partial, 5) == 5
    assert partial == data[90:95] + bytes(5)


def test_recv_exactly_into_checks_its_buffer(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"x\nkeep")
    wait_queued(b, 6)
    assert b.recv_until(b"\n") == b"x\n"
    for buffer in (b"abcd", memoryview(b"abcd"), "abcd", 5,
                   np.zeros((4, 4), dtype=np.uint8)[:, 0]):
        with pytest.raises(TypeError, match="read-write bytes-like object"):
            b.recv_exactly_into(buffer)
    with pytest.raises(ValueError):
        b.recv_exactly_into(bytearray(4), -1)
    with pytest.raises(ValueError):
        b.recv_exactly_into(bytearray(4), 5)
    with pytest.raises(TypeError):
        b.recv_exactly_into(bytearray(4), 1.0)
    assert b.buffered == 4
    assert b.recv(10) == b"keep"


# -- one deadline, and nothing lost --------------------------------------------------

TRICKLED = b"ABCDEFGHIJ"  # ten bytes, 50 ms apart: half a second
LARGE = 100000


def _partial_call(method: str) -> tuple[bytes, Callable[[Any], Any], bytes, Callable[[Any], Any]]:
    """(bytes sent before, a call that needs more, bytes sent after, the call
    that then completes the read), for each kind of multi-step receive."""
    rest = pattern(LARGE - len(TRICKLED))
    if method == "recv_exactly":
        return b"", lambda s: s.recv_exactly(20), pattern(10), lambda s: s.recv_exactly(20)
    if method == "recv_exactly_large":
        return b"", lambda s: s.recv_exactly(LARGE), rest, lambda s: s.recv_exactly(LARGE)
    if method == "recv_exactly_into":
        return (b"", lambda s: s.recv_exactly_into(bytearray(20)), pattern(10),
                lambda s: s.recv_exactly(20))
    if method == "recv_exactly_into_large":
        return (b"", lambda s: s.recv_exactly_into(bytearray(LARGE)), rest,
                lambda s: s.recv_exactly(LARGE))
    if method == "recv_msg":
        return (struct.pack(">I", 20), lambda s: s.recv_msg(), pattern(10),
                lambda s: s.recv_exactly(24))
    if method == "recv_msg_large":
        return (struct.pack(">I", LARGE), lambda s: s.recv_msg(), rest,
                lambda s: s.recv_exactly(LARGE + 4))
    if method == "recv_msgs":
        return (struct.pack(">I", 20), lambda s: s.recv_msgs(), pattern(10),
                lambda s: s.recv_exactly(24))
    assert method == "recv_until"
    return b"", lambda s: s.recv_until(b"\n"), b"tail\n", lambda s: s.recv_until(b"\n")


PARTIAL_METHODS = ["recv_exactly", "recv_exactly_large", "recv_exactly_into",
                   "recv_exactly_into_large", "recv_msg", "recv_msg_large", "recv_msgs",
                   "recv_until"]


@pytest.mark.parametrize("method", PARTIAL_METHODS)
def test_one_deadline_over_a_trickling_sender(impl: ModuleType, pair: tuple[Any, Any],
                                              method: str) -> None:
    a, b = pair
    before, call, after, complete = _partial_call(method)
    a.sendall(before)
    b.settimeout(0.3)
    with background(trickle(a, TRICKLED), a, b) as sender:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            call(b)
        elapsed = time.monotonic() - started
        sender.finish()
    # the timeout covers the whole call, not each read of a byte
    assert 0.25 <= elapsed < 0.6, elapsed
    # every byte read before the timeout is still there, in order
    a.sendall(after)
    b.settimeout(TIMEOUT)
    assert complete(b) == before + TRICKLED + after


@pytest.mark.parametrize("method", PARTIAL_METHODS)
def test_nonblocking_call_continues_after_blocking_io_error(
        impl: ModuleType, pair: tuple[Any, Any], method: str) -> None:
    a, b = pair
    before, call, after, complete = _partial_call(method)
    first = before + TRICKLED
    a.sendall(first)
    wait_queued(b, len(first))
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        call(b)
    assert b.buffered == len(first)
    with pytest.raises(BlockingIOError):
        call(b)
    assert b.buffered == len(first)
    a.sendall(after)
    assert retry_nonblocking(b, lambda: complete(b)) == first + after


def test_nonblocking_calls_complete_when_data_is_there(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"line\n" + framed(b"msg") + b"exact")
    wait_queued(b, 5 + 7 + 5)
    b.setblocking(False)
    assert b.recv_until(b"\n") == b"line\n"
    assert b.recv_msg() == b"msg"
    assert b.recv_exactly(5) == b"exact"
    with pytest.raises(BlockingIOError):
        b.recv_exactly(1)


class Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
@pytest.mark.parametrize("method", PARTIAL_METHODS)
def test_signal_handler_exception_loses_nothing(impl: ModuleType, pair: tuple[Any, Any],
                                                method: str) -> None:
    a, b = pair
    before, call, after, complete = _partial_call(method)
    first = before + TRICKLED
    a.sendall(first)
    wait_queued(b, len(first))
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            call(b)  # the receiver's timeout bounds this if the signal went astray
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)
    assert b.buffered == len(first)
    a.sendall(after)
    assert complete(b) == first + after


# -- end of stream -----------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 100000])
def test_eof_in_recv_exactly(impl: ModuleType, pair: tuple[Any, Any], size: int) -> None:
    a, b = pair
    data = pattern(size // 2)
    with background(send_in_pieces(a, data), a, b) as sender:
        with pytest.raises(impl.IncompleteReadError) as info:
            b.recv_exactly(size)
        sender.finish()
    assert info.value.partial == data
    assert info.value.expected == size
    assert isinstance(info.value, EOFError)
    assert b.buffered == 0
    assert b.recv(10) == b""


@pytest.mark.parametrize("size", [10, 100000])
def test_eof_in_recv_exactly_into(impl: ModuleType, pair: tuple[Any, Any], size: int) -> None:
    a, b = pair
    data = pattern(size // 2)
    with background(send_in_pieces(a, data), a, b) as sender:
        target = bytearray(size + 10)
        with pytest.raises(impl.IncompleteReadError) as info:
            b.recv_exactly_into(target, size)
        sender.finish()
    assert info.value.partial == data
    assert info.value.expected == size
    assert b.recv(10) == b""


def test_eof_in_recv_until(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"first\nno newline")
    a.shutdown(SHUT_WR)
    assert b.recv_until(b"\n") == b"first\n"
    with pytest.raises(impl.IncompleteReadError) as info:
        b.recv_until(b"\n")
    assert info.value.partial == b"no newline"
    assert info.value.expected is None
    assert b.buffered == 0
    with pytest.raises(impl.IncompleteReadError) as info:
        b.recv_until(b"\n")
    assert info.value.partial == b"" and info.value.expected is None


EOF_CASES = [(size, where) for size in (1, 2, 4, 8)
             for where in ("boundary", "prefix", "payload", "large payload")
             if not (size == 1 and where == "prefix") and not (size < 4 and where == "large payload")]


@pytest.mark.parametrize("prefix_size,where", EOF_CASES)
def test_eof_in_recv_msg(impl: ModuleType, pair: tuple[Any, Any], prefix_size: int,
                         where: str) -> None:
    a, b = pair
    whole = framed(b"complete", prefix_size)
    if where == "boundary":
        tail, partial, expected = b"", b"", prefix_size
    elif where == "prefix":
        tail = partial = (5).to_bytes(prefix_size, "big")[:-1]
        expected = prefix_size
    elif where == "payload":
        tail, partial, expected = (10).to_bytes(prefix_size, "big") + b"abcd", b"abcd", 10
    else:
        partial = pattern(100000)
        tail, expected = (200000).to_bytes(prefix_size, "big") + partial, 200000
    with background(send_in_pieces(a, whole + tail), a, b) as sender:
        assert b.recv_msg(prefix_size=prefix_size) == b"complete"
        with pytest.raises(impl.IncompleteReadError) as info:
            b.recv_msg(prefix_size=prefix_size)
        sender.finish()
    assert info.value.partial == partial
    assert info.value.expected == expected
    assert b.buffered == 0
    assert b.recv(1) == b""


def test_recv_msgs_returns_complete_messages_before_eof(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    stream = framed(b"1") + framed(b"22") + framed(b"333") + (5).to_bytes(4, "big") + b"ab"
    a.sendall(stream)
    a.shutdown(SHUT_WR)
    wait_queued(b, len(stream))
    assert b.recv_msgs() == [b"1", b"22", b"333"]
    with pytest.raises(impl.IncompleteReadError) as info:
        b.recv_msgs()
    assert info.value.partial == b"ab" and info.value.expected == 5
    with pytest.raises(impl.IncompleteReadError) as info:
        b.recv_msgs()
    assert info.value.partial == b"" and info.value.expected == 4


# -- recv_until limits and arguments ----------------------------------------------------


def test_limit_overrun_leaves_the_data_buffered(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    data = b"x" * 100 + b"\n"
    a.sendall(data)
    wait_queued(b, len(data))
    with pytest.raises(impl.LimitOverrunError) as info:
        b.recv_until(b"\n", limit=50)
    assert info.value.consumed == b.buffered
    assert b.buffered >= 50
    with pytest.raises(impl.LimitOverrunError):
        b.recv_until(b"\n", limit=50)
    assert b.recv_exactly(len(data)) == data


def test_limit_counts_the_delimiter(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"123456789\n" + b"abcdefghi\n")
    wait_queued(b, 20)
    assert b.recv_until(b"\n", limit=10) == b"123456789\n"
    with pytest.raises(impl.LimitOverrunError):
        b.recv_until(b"\n", limit=9)
    assert b.recv_until(b"\n", 10) == b"abcdefghi\n"


def test_limit_overrun_while_waiting(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    with background(send_in_pieces(a, b"y" * 5000, sizes=(100,), shutdown=False), a, b) as sender:
        with pytest.raises(impl.LimitOverrunError):
            b.recv_until(b"\n", limit=1000)
        sender.finish()
    assert b.buffered >= 1000
    assert b.recv_exactly(5000) == b"y" * 5000


def test_multibyte_delimiter_split_across_reads(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    with background(trickle(a, b"abc\r\ndef\r\r\n", interval=0.01), a, b) as sender:
        assert b.recv_until(b"\r\n") == b"abc\r\n"
        assert b.recv_until(bytearray(b"\r\n")) == b"def\r\r\n"
        sender.finish()


def test_recv_until_bad_arguments(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"x\nkeep")
    wait_queued(b, 6)
    assert b.recv_until(memoryview(b"\n")) == b"x\n"
    value_errors: list[Callable[[], Any]] = [
        lambda: b.recv_until(b""), lambda: b.recv_until(b"\n", 0),
        lambda: b.recv_until(b"\n", limit=-5)]
    for call in value_errors:
        with pytest.raises(ValueError):
            call()
    type_errors: list[Callable[[], Any]] = [
        lambda: b.recv_until("\n"), lambda: b.recv_until(10),
        lambda: b.recv_until(b"\n", 1.5)]
    for call in type_errors:
        with pytest.raises(TypeError):
            call()
    assert b.buffered == 4


# -- length-prefixed messages ---------------------------------------------------------


@pytest.mark.parametrize("prefix_size", [1, 2, 4, 8])
def test_every_prefix_size_round_trips(impl: ModuleType, pair: tuple[Any, Any],
                                       prefix_size: int) -> None:
    a, b = pair
    sizes = [0, 1, 200, 255] + ([256, 65535] if prefix_size >= 2 else []) + \
        ([70000] if prefix_size >= 4 else [])
    payloads = [pattern(size, size % 13) for size in sizes]

    def send() -> None:
        for payload in payloads:
            a.send_msg(payload, prefix_size=prefix_size)
        a.send_msg(b"abc", prefix_size=prefix_size)

    with background(send, a, b) as sender:
        for payload in payloads:
            assert b.recv_msg(prefix_size=prefix_size) == payload
        # the wire format: a big-endian length, then the payload
        assert b.recv_exactly(prefix_size + 3) == (3).to_bytes(prefix_size, "big") + b"abc"
        sender.finish()


def test_zero_length_messages(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    for _ in range(4):
        a.send_msg(b"")
    a.send_msg(bytearray())
    wait_queued(b, 20)
    assert b.recv_msg() == b""
    assert b.recv_msgs() == [b""] * 4
    a.send_msg(b"", prefix_size=1)
    assert b.recv_exactly(1) == b"\x00"


def test_send_msg_takes_any_bytes_like_payload(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    ints = array.array("i", [1, 2, 3])
    grid = np.arange(6, dtype=np.int16).reshape(2, 3)
    payloads: list[Any] = [b"bytes", bytearray(b"bytearray"), memoryview(b"view")[1:], ints, grid]
    for payload in payloads:
        a.send_msg(payload)
    assert b.recv_msg() == b"bytes"
    assert b.recv_msg() == b"bytearray"
    assert b.recv_msg() == b"iew"
    assert b.recv_msg() == ints.tobytes()
    assert b.recv_msg() == grid.tobytes()
    for bad in ("text", 5, None):
        with pytest.raises(TypeError):
            a.send_msg(bad)


def test_payload_too_long_for_its_prefix(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    with pytest.raises(OverflowError):
        a.send_msg(b"x" * 256, prefix_size=1)
    with pytest.raises(OverflowError):
        a.send_msg(bytearray(65536), prefix_size=2)
    try:
        huge = mmap.mmap(-1, 2 ** 32)  # address space only: never touched
    except (OSError, OverflowError, MemoryError):
        huge = None
    if huge is not None:
        with huge:
            with pytest.raises(OverflowError):
                a.send_msg(huge, prefix_size=4)
    # nothing of the refused messages was sent
    a.send_msg(b"x" * 255, prefix_size=1)
    a.send_msg(b"ok")
    assert b.recv_msg(prefix_size=1) == b"x" * 255
    assert b.recv_msg() == b"ok"


def test_bad_framing_arguments(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.send_msg(b"keep")
    wait_queued(b, 8)
    value_errors: list[Callable[[], Any]] = []
    for size in (0, 3, 5, 16, -4):
        value_errors += [partial(a.send_msg, b"x", prefix_size=size),
                         partial(b.recv_msg, prefix_size=size),
                         partial(b.recv_msgs, prefix_size=size)]
    value_errors += [lambda: b.recv_msg(max_size=0), lambda: b.recv_msg(max_size=-1),
                     lambda: b.recv_msgs(max_size=0), lambda: b.recv_msgs(0),
                     lambda: b.recv_msgs(max_count=-1)]
    for call in value_errors:
        with pytest.raises(ValueError):
            call()
    type_errors: list[Callable[[], Any]] = [
        lambda: a.send_msg(b"x", prefix_size=4.0), lambda: b.recv_msg(prefix_size="4"),
        lambda: b.recv_msg(max_size=1.5), lambda: b.recv_msgs(1.0)]
    for call in type_errors:
        with pytest.raises(TypeError):
            call()
    assert b.recv_msg() == b"keep"


def test_message_too_large_is_refused_before_allocating(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(struct.pack(">I", 2 ** 31))
    started = time.monotonic()
    with pytest.raises(impl.MessageTooLargeError) as info:
        b.recv_msg()
    assert time.monotonic() - started < 1.0
    assert info.value.size == 2 ** 31
    assert info.value.max_size == 16 * MiB
    assert isinstance(info.value, ValueError)
    assert b.buffered >= 4
    with pytest.raises(impl.MessageTooLargeError):
        b.recv_msg()
    assert b.recv_exactly(4) == struct.pack(">I", 2 ** 31)  # the prefix stayed buffered


def test_message_too_large_keeps_the_message(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    payload = pattern(100)
    a.send_msg(payload)
    with pytest.raises(impl.MessageTooLargeError) as info:
        b.recv_msg(max_size=99)
    assert (info.value.size, info.value.max_size) == (100, 99)
    assert b.recv_msg(max_size=100) == payload
    a.sendall((2 ** 63).to_bytes(8, "big"))
    with pytest.raises(impl.MessageTooLargeError) as info:
        b.recv_msg(prefix_size=8)
    assert info.value.size == 2 ** 63


def test_recv_msgs_stops_before_a_message_too_large(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    stream = framed(b"1") + framed(b"22") + struct.pack(">I", 2 ** 31)
    a.sendall(stream)
    wait_queued(b, len(stream))
    assert b.recv_msgs() == [b"1", b"22"]
    with pytest.raises(impl.MessageTooLargeError):
        b.recv_msgs()
    assert b.buffered >= 4


def test_recv_msgs_returns_every_message_already_received(impl: ModuleType,
                                                          pair: tuple[Any, Any]) -> None:
    a, b = pair
    payloads = [b"m%03d" % i for i in range(100)]
    for payload in payloads:
        a.send_msg(payload)
    wait_queued(b, 800)
    assert b.recv_msgs() == payloads
    # more than one read's worth: 70 messages of 1000 bytes
    payloads = [pattern(1000, i) for i in range(70)]
    for payload in payloads:
        a.send_msg(payload)
    wait_queued(b, 70 * 1004)
    assert b.recv_msgs() == payloads
    # a large message that has fully arrived counts too
    payloads = [b"a", pattern(70000), b"b"]
    for payload in payloads:
        a.send_msg(payload)
    wait_queued(b, 70000 + 2 + 12)
    assert b.recv_msgs() == payloads


def test_recv_msgs_respects_max_count(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    payloads = [b"%d" % i for i in range(100)]
    for payload in payloads:
        a.send_msg(payload, prefix_size=2)
    wait_queued(b, sum(len(p) + 2 for p in payloads))
    assert b.recv_msgs(10, prefix_size=2) == payloads[:10]
    assert b.recv_msgs(max_count=1, prefix_size=2) == payloads[10:11]
    assert b.recv_msgs(prefix_size=2) == payloads[11:]


def test_recv_msgs_respects_max_bytes(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    payloads = [b"a" * 10, b"b" * 10, b"c" * 5, b"", b"d" * 100, b"e"]
    stream = b"".join(framed(p) for p in payloads)
    a.sendall(stream)
    wait_queued(b, len(stream))
    assert b.recv_msgs(max_bytes=5) == payloads[:1]  # the first always
    assert b.recv_msgs(max_bytes=25) == payloads[1:4]  # 15 bytes; d's 100 wait
    assert b.recv_msgs(max_bytes=1) == payloads[4:5]
    assert b.recv_msgs(max_bytes=1000) == payloads[5:]
    for bad, error in ((0, ValueError), (-1, ValueError), (2 ** 70, OverflowError),
                       ("1", TypeError), (1.0, TypeError)):
        with pytest.raises(error):
            b.recv_msgs(max_bytes=bad)


def test_recv_msgs_max_bytes_bounds_each_batch_of_a_fast_sender(impl: ModuleType,
                                                                  pair: tuple[Any, Any]) -> None:
    # large frames streaming in: no batch holds more than max_bytes after its
    # first message, and the socket does not read ahead without bound either
    a, b = pair
    payloads = [pattern(30000, i) for i in range(60)]

    def send() -> None:
        for payload in payloads:
            a.send_msg(payload)

    received: list[bytes] = []
    with background(send, a, b) as sender:
        while len(received) < len(payloads):
            batch = b.recv_msgs(max_bytes=70000)
            assert len(batch) == 1 or sum(map(len, batch)) <= 70000
            assert b.buffered <= 70000 + 2 * 30004 + 65536
            received += batch
        sender.finish()
    assert received == payloads


def test_recv_msgs_collects_everything_in_bounded_calls(impl: ModuleType,
                                                        pair: tuple[Any, Any]) -> None:
    a, b = pair
    payloads = [pattern(i * 37 % 3000, i) for i in range(300)]

    def send() -> None:
        for payload in payloads:
            a.send_msg(payload)

    received: list[bytes] = []
    with background(send, a, b) as sender:
        for _ in range(len(payloads)):
            if len(received) == len(payloads):
                break
            batch = b.recv_msgs()
            assert 1 <= len(batch) <= 1024
            received += batch
        sender.finish()
    assert received == payloads


# -- recv_iter ----------------------------------------------------------------------


def test_recv_iter_yields_views_of_the_callers_buffer(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    data = pattern(200000)
    buffer = bytearray(4096)
    received = bytearray()
    with background(send_in_pieces(a, data), a, b) as sender:
        for count, view in enumerate(b.recv_iter(buffer)):
            assert count < len(data)
            assert isinstance(view, memoryview)
            assert view.obj is buffer
            assert 0 < len(view) <= len(buffer)
            buffer[0] ^= 0xFF  # the view shows the caller's buffer itself
            assert view[0] == buffer[0]
            buffer[0] ^= 0xFF
            received += view
        sender.finish()
    assert received == data


def test_recv_iter_serves_buffered_bytes_first(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"line\nrest")
    wait_queued(b, 9)
    assert b.recv_until(b"\n") == b"line\n"
    a.sendall(b" and more")
    a.shutdown(SHUT_WR)
    buffer = array.array("B", bytes(100))
    parts = [bytes(view) for view in b.recv_iter(buffer)]
    assert parts[0] == b"rest"
    assert b"".join(parts) == b"rest and more"


def test_recv_iter_validates_at_once(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"x\nkeep")
    wait_queued(b, 6)
    assert b.recv_until(b"\n") == b"x\n"
    for bad in (b"abc", memoryview(b"abc"), "abc", None):
        with pytest.raises(TypeError):
            b.recv_iter(bad)  # no next(): the call itself refuses
    with pytest.raises(ValueError):
        b.recv_iter(bytearray())
    assert b.buffered == 4
    iterator = b.recv_iter(bytearray(2))
    assert bytes(next(iterator)) == b"ke"
    assert bytes(next(iterator)) == b"ep"


def test_recv_iter_views_are_bytes(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall(b"abcdef")
    a.shutdown(SHUT_WR)
    words = array.array("H", [0] * 8)
    views = []
    for view in b.recv_iter(words):
        assert view.obj is words
        assert view.format == "B"
        views.append(bytes(view))
    assert b"".join(views) == b"abcdef"


# -- send_buffers and sendall_buffers -------------------------------------------------


def test_send_buffers_is_one_call_of_at_most_iov_max(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    buffers = [bytes([i % 256]) * 3 for i in range(3000)]
    sent = a.send_buffers(buffers)
    assert sent == 3 * min(len(buffers), IOV_MAX)
    assert b.recv_exactly(sent) == b"".join(buffers)[:sent]


def test_send_buffers_types(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    buffers: list[Any] = [b"a", bytearray(b"b"), memoryview(b"cd"), array.array("B", b"ef"), b""]
    assert a.send_buffers(buffers) == 6
    assert a.send_buffers(iter([b"gh", b"i"])) == 3
    assert a.send_buffers(()) == 0
    assert b.recv_exactly(9) == b"abcdefghi"
    for bad in ([b"x", "text"], [1], None, 5):
        with pytest.raises(TypeError):
            a.send_buffers(bad)


def test_sendall_buffers_many_small_buffers(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    buffers: list[Any] = []
    for i in range(3000):
        chunk = bytes([i % 256]) * (i % 7)
        kind = i % 4
        buffers.append(chunk if kind == 0 else bytearray(chunk) if kind == 1
                       else memoryview(chunk) if kind == 2 else array.array("B", chunk))
    expected = b"".join(bytes(buffer) for buffer in buffers)
    with background(receive_all(b, len(expected)), a, b) as reader:
        assert a.sendall_buffers(buffers) is None
        assert reader.finish() == expected


def test_sendall_buffers_large_buffers_and_a_slow_reader(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    words = array.array("H", range(1000))
    buffers: list[Any] = [pattern(MiB, 1), b"x", bytearray(pattern(2 * MiB, 2)),
                          memoryview(pattern(300000, 3))[10:], words, b""]
    expected = b"".join(bytes(buffer) for buffer in buffers)
    a.settimeout(30)
    with background(receive_all(b, len(expected), chunk=16384, pause=0.0005), a, b) as reader:
        a.sendall_buffers(buffers)
        assert reader.finish() == expected


def test_sendall_buffers_empty(impl: ModuleType, pair: tuple[Any, Any]) -> None:
    a, b = pair
    a.sendall_buffers([])
    a.sendall_buffers([b"", bytearray(), memoryview(b"")])
    a.sendall_buffers(iter([b"o", b"k"]))
    assert b.recv_exactly(2) == b"ok"
    for bad in ([b"x", "text"], [None], 5):
        with pytest.raises(TypeError):
            a.sendall_buffers(bad)


@pytest.mark.parametrize("method", ["sendall_buffers", "send_msg"])
def test_sends_have_one_deadline(impl: ModuleType, pair: tuple[Any, Any], method: str) -> None:
    a, b = pair
    payload = bytes(32 * MiB)
    stop = threading.Event()
    a.settimeout(0.3)
    # the reader drains everything every 50 ms, so each write makes progress
    with background(slow_reader(b, stop), a, b) as reader:
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                if method == "send_msg":
                    a.send_msg(payload)
                else:
                    a.sendall_buffers([payload[:MiB], payload[MiB:]])
            elapsed = time.monotonic() - started
        finally:
            stop.set()
        assert reader.finish() > 0
    assert 0.25 <= elapsed < 1.0, elapsed


# -- sendfile ------------------------------------------------------------------------


@pytest.fixture
def datafile(tmp_path: pathlib.Path) -> tuple[pathlib.Path, bytes]:
    content = pattern(300000, 5)
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    return path, content


class FdOnly:
    """An object with nothing but fileno()."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def test_sendfile_whole_file(impl: ModuleType, pair: tuple[Any, Any],
                             datafile: tuple[pathlib.Path, bytes]) -> None:
    a, b = pair
    path, content = datafile
    with open(path, "rb") as f, background(receive_all(b, len(content)), a, b) as reader:
        assert a.sendfile(f) == len(content)
        assert f.tell() == len(content)
        assert reader.finish() == content


def test_sendfile_offset_and_count(impl: ModuleType, pair: tuple[Any, Any],
                                   datafile: tuple[pathlib.Path, bytes]) -> None:
    a, b = pair
    path, content = datafile
    size = len(content)
    with open(path, "rb") as f:
        assert a.sendfile(f, 1000, 5000) == 5000
        assert f.tell() == 6000
        assert b.recv_exactly(5000) == content[1000:6000]
        # a count beyond the end sends up to the end
        assert a.sendfile(f, size - 100, 1000) == 100
        assert f.tell() == size
        assert b.recv_exactly(100) == content[-100:]
        assert a.sendfile(f, size + 10) == 0
        assert f.tell() == size + 10
        assert a.sendfile(f, 7, 0) == 0
        assert f.tell() == 7
        with background(receive_all(b, size - 200000), a, b) as reader:
            assert a.sendfile(f, offset=200000) == size - 200000
            assert reader.finish() == content[200000:]
        assert f.tell() == size


def test_sendfile_descriptor_without_seek(impl: ModuleType, pair: tuple[Any, Any],
                                          datafile: tuple[pathlib.Path, bytes]) -> None:
    a, b = pair
    path, content = datafile
    fd = os.open(path, os.O_RDONLY)
    try:
        assert a.sendfile(FdOnly(fd), 10, 20) == 20
        assert os.lseek(fd, 0, os.SEEK_CUR) == 30
        assert b.recv_exactly(20) == content[10:30]
    finally:
        os.close(fd)


def test_sendfile_bad_inputs(impl: ModuleType, pair: tuple[Any, Any],
                             datafile: tuple[pathlib.Path, bytes]) -> None:
    a, b = pair
    path, _ = datafile
    with open(path, "ab") as writer:
        with pytest.raises(ValueError):
            a.sendfile(writer)
    fd = os.open(path, os.O_WRONLY)
    try:
        with pytest.raises(ValueError):
            a.sendfile(FdOnly(fd))
    finally:
        os.close(fd)
    for bad in (object(), b"bytes", 5, None, str(path)):
        with pytest.raises(TypeError):
            a.sendfile(bad)
    with open(path, "rb") as f:
        with pytest.raises(ValueError):
            a.sendfile(f, -1)
        with pytest.raises(ValueError):
            a.sendfile(f, 0, -1)
        with pytest.raises(TypeError):
            a.sendfile(f, 1.5)
        with pytest.raises(TypeError):
            a.sendfile(f, 0, 2.0)
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(1)  # nothing was sent


@pytest.fixture
def bigfile(tmp_path: pathlib.Path) -> tuple[pathlib.Path, bytes]:
    """32 MiB: more than the kernel buffers of both ends hold."""
    content = pattern(32 * MiB, 9)
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    return path, content


def test_sendfile_honours_the_timeout(impl: ModuleType, pair: tuple[Any, Any],
                                      bigfile: tuple[pathlib.Path, bytes]) -> None:
    a, b = pair
    path, content = bigfile
    a.settimeout(0.3)
    with open(path, "rb") as f:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            a.sendfile(f)  # the peer never reads
        elapsed = time.monotonic() - started
        sent = f.tell()  # offset + sent, even after the timeout
    assert 0.25 <= elapsed < 1.5, elapsed
    assert 0 < sent < len(content)
    b.settimeout(TIMEOUT)
    assert b.recv_exactly(sent) == content[:sent]
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(1)


def test_sendfile_nonblocking(impl: ModuleType, pair: tuple[Any, Any],
                              bigfile: tuple[pathlib.Path, bytes]) -> None:
    a, b = pair
    path, content = bigfile
    a.setblocking(False)
    with open(path, "rb") as f:
        sent = a.sendfile(f)  # sends what fits
        assert 0 < sent < len(content)
        assert f.tell() == sent
        refused = False
        for _ in range(1000):
            try:
                more = a.sendfile(f, sent)
            except BlockingIOError:
                refused = True  # only when nothing could be sent
                break
            assert more > 0
            sent += more
            assert f.tell() == sent
        assert refused
        assert f.tell() == sent
    b.settimeout(TIMEOUT)
    assert b.recv_exactly(sent) == content[:sent]


def test_sendfile_falls_back_to_read_and_send(monkeypatch: pytest.MonkeyPatch,
                                              datafile: tuple[pathlib.Path, bytes]) -> None:
    pure = implementation_module("python")

    def unsupported(*args: Any) -> int:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    path, content = datafile
    monkeypatch.setattr(os, "sendfile", unsupported)
    with stream_pair(pure, "unix") as (a, b), open(path, "rb") as f:
        with background(receive_all(b, 250000), a, b) as reader:
            assert a.sendfile(f, 100, 250000) == 250000
            assert reader.finish() == content[100:250100]
        assert f.tell() == 250100
        a.setblocking(False)
        sent = a.sendfile(f)
        assert 0 < sent < len(content)
        assert f.tell() == sent


_SENDFILE_SIGPIPE = textwrap.dedent("""
    import importlib, signal, sys, tempfile, time
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    m = importlib.import_module(sys.argv[1])
    a, b = m.socketpair()
    b.close()
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 100000)
        f.flush()
        try:
            a.sendfile(f)
            print("no error")
        except OSError as exc:
            print(type(exc).__name__)
    a.close()
    time.sleep(0.05)
    print("alive")
""")


def test_sendfile_never_raises_sigpipe(impl: ModuleType) -> None:
    proc = subprocess.run([sys.executable, "-c", _SENDFILE_SIGPIPE, impl.__name__],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != -signal.SIGPIPE, "the process was killed by SIGPIPE"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["BrokenPipeError", "alive"]


# -- close() from another thread ------------------------------------------------------

BLOCKING_CALLS = ["recv_exactly", "recv_exactly_large", "recv_exactly_into", "recv_until",
                  "recv_msg", "recv_msg_large", "recv_msgs", "recv_iter", "recv_ahead",
                  "sendall_buffers", "send_msg", "sendfile"]


@pytest.mark.parametrize("method", BLOCKING_CALLS)
def test_close_wakes_a_blocked_call(impl: ModuleType, pair: tuple[Any, Any], method: str,
                                    tmp_path: pathlib.Path) -> None:
    a, b = pair
    big = bytes(32 * MiB)
    if method.startswith("send"):
        victim = a  # the peer never reads
    else:
        victim = b  # the peer sends part of what the call waits for
        a.sendall(struct.pack(">I", LARGE if method.endswith("large") else 20)
                  if method.startswith("recv_msg") else b"abc")
    victim.settimeout(None)
    path = tmp_path / "big.bin"
    if method == "sendfile":
        path.write_bytes(big)
    calls: dict[str, Callable[[], Any]] = {
        "recv_exactly": lambda: b.recv_exactly(20),
        "recv_exactly_large": lambda: b.recv_exactly(LARGE),
        "recv_exactly_into": lambda: b.recv_exactly_into(bytearray(20)),
        "recv_until": lambda: b.recv_until(b"\n"),
        "recv_msg": lambda: b.recv_msg(),
        "recv_msg_large": lambda: b.recv_msg(),
        "recv_msgs": lambda: b.recv_msgs(),
        "recv_iter": lambda: [bytes(view) for view in b.recv_iter(bytearray(2))],
        "recv_ahead": lambda: b.recv_ahead() and b.recv_ahead(),  # the second waits
        "sendall_buffers": lambda: a.sendall_buffers([big[:MiB], big[MiB:]]),
        "send_msg": lambda: a.send_msg(big),
    }

    def sendfile() -> Any:
        with open(path, "rb") as f:
            return a.sendfile(f)

    calls["sendfile"] = sendfile
    with background(calls[method], a, b) as worker:
        time.sleep(0.3)
        assert worker.is_alive(), f"{method} did not block"
        victim.close()
        worker.join(5)
        assert not worker.is_alive(), "close() did not wake the call"
    assert isinstance(worker.error, OSError), worker.error
    assert worker.error.errno == errno.EBADF
