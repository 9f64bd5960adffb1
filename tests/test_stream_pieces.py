"""Large frames that arrive in pieces, on both implementations: a non-blocking
socket (or one with a timeout) whose recv_msg, recv_msgs, recv_exactly or
recv_exactly_into gives up part-way many times continues the frame on the
next call instead of starting over, so the whole costs time linear in the
frame's size; nothing is lost or reordered, and a partial frame survives a
timeout (docs/stream-fast-paths.md, "Frames arriving in pieces")."""

from __future__ import annotations

import hashlib
import os
import random
import select
import time
import tracemalloc
from types import ModuleType
from typing import Any, Callable

import pytest

KiB = 1024
MiB = 1024 * KiB
PIECE = 64 * KiB
# a run that has not finished by then has gone quadratic (before the fix a
# 32 MiB frame took 6 s compiled, 15 s pure): stop it and fail
BUDGET = 5.0


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


_INTO_BUFFERS: dict[int, bytearray] = {}


def _receive_into(sock: Any, size: int) -> bytes:
    # one buffer per size, as a caller retrying would keep it (a new 32 MiB
    # buffer per call would itself cost quadratic time)
    buffer = _INTO_BUFFERS.get(size)
    if buffer is None:
        buffer = _INTO_BUFFERS[size] = bytearray(size)
    assert sock.recv_exactly_into(buffer) == size
    return bytes(_INTO_BUFFERS.pop(size))


def _receive_one_msg(sock: Any, size: int) -> bytes:
    messages = sock.recv_msgs(max_size=64 * MiB)
    assert len(messages) == 1
    return bytes(messages[0])


RECEIVERS: dict[str, tuple[bool, Callable[[Any, int], bytes]]] = {
    # name: (framed by a length prefix, the call)
    "recv_msg": (True, lambda s, n: bytes(s.recv_msg(max_size=64 * MiB))),
    "recv_msgs": (True, _receive_one_msg),
    "recv_exactly": (False, lambda s, n: bytes(s.recv_exactly(n))),
    "recv_exactly_into": (False, _receive_into),
}


def receive_in_pieces(impl: ModuleType, size: int, method: str) -> tuple[float, int]:
    """Send a ``size``-byte frame PIECE bytes at a time to a non-blocking
    socket, calling ``method`` after each piece until it returns (each call
    before the last raises BlockingIOError); returns (seconds, calls)."""
    framed, call = RECEIVERS[method]
    payload = os.urandom(MiB) * (size // MiB)
    wire = memoryview(frame(payload) if framed else payload)
    a, b = impl.socketpair()
    with a, b:
        b.setblocking(False)
        calls = sent = 0
        began = time.monotonic()
        while True:
            if sent < len(wire):
                a.sendall(wire[sent:sent + PIECE])  # the receiver takes it all each time
                sent += PIECE
            calls += 1
            try:
                got = call(b, size)
                break
            except BlockingIOError:
                assert sent < len(wire), "the whole frame was sent, yet the call would block"
                if time.monotonic() - began > BUDGET:
                    pytest.fail(f"{method}: {sent} of {len(wire)} bytes took over "
                                f"{BUDGET} s ({calls} calls): not linear")
        took = time.monotonic() - began
        assert b.buffered == 0
    assert len(got) == size
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    return took, calls


@pytest.mark.parametrize("method", list(RECEIVERS))
def test_a_frame_arriving_in_many_pieces_costs_linear_time(impl: ModuleType,
                                                           method: str) -> None:
    """8 MiB and 32 MiB, 64 KiB per readiness event (128 and 512 calls): the
    larger takes about four times as long, not sixteen."""
    small, small_calls = receive_in_pieces(impl, 8 * MiB, method)
    large, large_calls = receive_in_pieces(impl, 32 * MiB, method)
    assert small_calls >= 8 * MiB // PIECE and large_calls >= 32 * MiB // PIECE
    # 8x leaves room for noise on a busy machine; quadratic would be 16x and
    # more (about 100x before the fix); the floor absorbs tiny timings
    assert large < 8 * small + 0.3, (
        f"{method}: 8 MiB in {small:.3f} s, 32 MiB in {large:.3f} s")


@pytest.mark.parametrize("framing", ["messages", "exactly"])
def test_partial_large_frames_interleaved_with_small_ones(impl: ModuleType,
                                                          framing: str) -> None:
    """Small and large frames in one stream, sent in pieces of random sizes
    to a non-blocking socket that receives whenever anything arrived: every
    payload comes out whole and in order, whatever part of a large frame
    each call found."""
    rng = random.Random(1)
    payloads = []
    for i in range(40):
        size = rng.choice([0, 1, 5, 300, 70 * KiB, 200 * KiB, 1 * MiB + 3])
        payloads.append(rng.randbytes(size))
    wire = memoryview(b"".join(frame(p) for p in payloads))
    received: list[bytes] = []
    pending: list[int] = []  # "exactly": the size whose payload is due, once known

    def receive(sock: Any) -> None:
        if framing == "messages":
            if rng.random() < 0.5:
                received.append(bytes(sock.recv_msg(max_size=4 * MiB)))
            else:
                received.extend(bytes(m) for m in sock.recv_msgs(3, max_size=4 * MiB))
            return
        if not pending:
            pending.append(int.from_bytes(sock.recv_exactly(4), "big"))
        size = pending[0]
        if rng.random() < 0.5:
            data = bytes(sock.recv_exactly(size))
        else:
            buffer = bytearray(size)
            sock.recv_exactly_into(buffer)
            data = bytes(buffer)
        pending.pop()
        received.append(data)

    a, b = impl.socketpair()
    with a, b:
        b.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 30
        while len(received) < len(payloads):
            assert time.monotonic() < deadline, "stalled"
            if sent < len(wire):
                piece = rng.randint(1, 100 * KiB)  # fits the kernel's buffer
                a.sendall(wire[sent:sent + piece])
                sent += len(wire[sent:sent + piece])
            try:
                while len(received) < len(payloads):
                    receive(b)
            except BlockingIOError:
                assert sent < len(wire), "the whole stream was sent, yet a call would block"
        assert b.buffered == 0
        b.setblocking(True)
        a.close()
        assert b.recv(1) == b""
    assert [len(p) for p in received] == [len(p) for p in payloads]
    assert received == payloads


@pytest.mark.parametrize("method", list(RECEIVERS))
def test_a_partial_frame_survives_timeouts_and_the_next_call_completes_it(
        impl: ModuleType, method: str) -> None:
    """A socket with a timeout: a 1 MiB frame comes in 16 pieces and the call
    times out after each but the last; every byte taken stays buffered, and
    the call after the last piece returns the whole frame."""
    framed, call = RECEIVERS[method]
    size = 1 * MiB
    payload = os.urandom(size)
    wire = memoryview(frame(payload) if framed else payload)
    piece = len(wire) // 16 + 1
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(0.02)
        sent = 0
        timeouts = 0
        while True:
            a.sendall(wire[sent:sent + piece])
            sent = min(sent + piece, len(wire))
            try:
                got = call(b, size)
                break
            except TimeoutError:
                timeouts += 1
                assert sent < len(wire)
                # all that arrived was taken and kept for the next call
                select.select([b], [], [], 0)
                assert b.buffered == sent
        assert timeouts == 15
        assert b.buffered == 0
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def test_a_timed_out_frame_is_left_whole_for_plain_receives(impl: ModuleType) -> None:
    """After recv_msg timed out on a partial frame, recv() returns the frame's
    bytes (prefix first) in order: what the call gathered is the stream's."""
    payload = os.urandom(MiB)
    wire = frame(payload)
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(0.02)
        sent = 0
        for _ in range(5):  # the last calls complete the frame in the buffer
            a.sendall(wire[sent:sent + 100 * KiB])
            sent += 100 * KiB
            with pytest.raises(TimeoutError):
                b.recv_msg()
            assert b.buffered == sent
        got = bytearray()
        while len(got) < sent:
            got += b.recv(64 * KiB)
        assert bytes(got) == wire[:sent]


@pytest.mark.parametrize("method", ["recv_msg", "recv_exactly"])
def test_a_partial_frame_keeps_memory_within_the_bound(impl: ModuleType, method: str) -> None:
    """While a 16 MiB frame is gathered, the receive buffer keeps at most
    max(256 KiB, 4 x what it holds); once the frame is returned it lets the
    memory go."""
    framed, call = RECEIVERS[method]
    size = 16 * MiB
    payload = os.urandom(MiB) * 16
    wire = memoryview(frame(payload) if framed else payload)
    a, b = impl.socketpair()
    with a, b:
        b.setblocking(False)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            sent = 0
            worst = 0
            while True:
                a.sendall(wire[sent:sent + PIECE])  # fits the kernel's buffer
                sent = min(sent + PIECE, len(wire))
                try:
                    got = call(b, size)
                    break
                except BlockingIOError:
                    pass
                # (outside the handler: its traceback may keep the call's locals)
                assert b.buffered == sent
                kept = tracemalloc.get_traced_memory()[0] - base
                worst = max(worst, kept - max(256 * KiB, 4 * b.buffered))
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            del got
            after = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
    assert worst < 64 * KiB, f"a partial frame kept {worst} bytes more than the bound"
    assert after < 512 * KiB, f"the buffer keeps {after} bytes after the frame"
