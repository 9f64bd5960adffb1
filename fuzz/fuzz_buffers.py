"""Fuzz target: receiving into caller buffers.

A connected pair of each implementation gets the same bytes; then the same
sequence of receive calls runs on both: recv, recv_into, recvfrom_into,
recv_exactly, recv_exactly_into, recv_until and recv_iter, with buffers of
every kind (bytearray, memoryview slices, strided and read-only views,
multi-dimensional and non-byte formats, array.array, mmap, bytes, str, None)
and nbytes / flags values that are plausible, negative, huge or of a wrong
type.  Both implementations must give the same results and exceptions, the
bytes received must be the next bytes of the stream (a model of it is kept),
and no call may write outside the part of the buffer it reports.
"""

from __future__ import annotations

import array
import mmap
import socket
import sys
from typing import Any

import atheris

import harness
from harness import Index, Weird, integer, pick

SENTINEL = 0xA5


def make_buffer(fdp: atheris.FuzzedDataProvider) -> tuple[Any, Any, int]:
    """(buffer to pass, bytearray behind it to inspect afterwards or None,
    where the buffer starts in it)."""
    size = pick(fdp, [0, 1, 7, 64, 4096, fdp.ConsumeIntInRange(0, 9000)])
    kind = fdp.ConsumeIntInRange(0, 11)
    backing = bytearray([SENTINEL]) * size
    if kind <= 2:
        return backing, backing, 0
    if kind == 3:
        start = fdp.ConsumeIntInRange(0, size)
        stop = fdp.ConsumeIntInRange(start, size)
        return memoryview(backing)[start:stop], backing, start
    if kind == 4:
        return memoryview(backing)[::pick(fdp, [2, 3, -1])], None, 0  # not contiguous
    if kind == 5:
        return memoryview(backing).toreadonly(), None, 0
    if kind == 6:
        return array.array("i", [0] * (size // 4)), None, 0
    if kind == 7:
        if size and size % 4 == 0:
            return memoryview(backing).cast("B", [4, size // 4]), backing, 0  # 2-D, contiguous
        return memoryview(backing).cast("b"), backing, 0
    if kind == 8:
        return mmap.mmap(-1, max(size, 1)), None, 0
    if kind == 9:
        return bytes(size), None, 0
    return pick(fdp, [None, "text", Weird(), 5, [0] * 4]), None, 0


def size_arg(fdp: atheris.FuzzedDataProvider, small: int) -> Any:
    """A size for a call that allocates it (recv, recv_exactly): anything,
    but a huge one that fits a ssize_t is cut to 1 MiB (allocating it would
    only give MemoryError, as in the stdlib)."""
    value = integer(fdp, small)
    if isinstance(value, (int, Index)) and 1 << 20 < value.__index__() < 2**63:
        return 1 << 20
    return value


def nbytes_arg(fdp: atheris.FuzzedDataProvider) -> Any:
    if fdp.ConsumeBool():
        return fdp.ConsumeIntInRange(0, 64)
    return integer(fdp, 10000)


def any_flags(fdp: atheris.FuzzedDataProvider) -> Any:
    choice = fdp.ConsumeIntInRange(0, 7)
    if choice <= 3:
        return 0
    if choice == 4:
        return socket.MSG_PEEK
    if choice == 5:
        return socket.MSG_DONTWAIT
    return integer(fdp, 1 << 16)


def call_plan(fdp: atheris.FuzzedDataProvider) -> list[tuple[str, Any, Any, Any]]:
    plan = []
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        method = pick(fdp, ["recv", "recv_into", "recv_into", "recv_exactly",
                            "recv_exactly_into", "recv_exactly_into", "recv_until",
                            "recv_iter", "recvfrom_into", "buffered"])
        seed = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
        plan.append((method, seed, fdp.ConsumeIntInRange(0, 1 << 30), fdp.ConsumeBool()))
    return plan


def run_call(sock: Any, method: str, seed: bytes, dgram: Any) -> tuple[Any, ...]:
    """Run one call: (outcome, buffer bytes afterwards or None, buffer
    offset, whether the stream model applies: no flags but MSG_DONTWAIT)."""
    fdp = atheris.FuzzedDataProvider(seed)  # the same arguments for both implementations
    buffer, backing, offset = make_buffer(fdp)
    flags: Any = 0
    timed = bool(sock.gettimeout())

    def flags_arg(fdp: atheris.FuzzedDataProvider) -> Any:
        value = any_flags(fdp)
        plain = value.__index__() if isinstance(value, (int, Index)) else None
        if timed and plain is not None and -2**31 <= plain < 2**31 and \
                plain not in (0, socket.MSG_PEEK, socket.MSG_DONTWAIT):
            # with a timeout the stdlib polls before the first call, the
            # compiled module calls first: a call that fails at once (MSG_OOB
            # on a Unix socket) gives its error there and TimeoutError here
            return 0
        return value

    try:
        if method == "recv":
            bufsize = size_arg(fdp, 10000)
            flags = flags_arg(fdp)
            result = harness.outcome(lambda: sock.recv(bufsize, flags))
        elif method == "recv_into":
            nbytes = nbytes_arg(fdp)
            flags = flags_arg(fdp)
            result = harness.outcome(lambda: sock.recv_into(buffer, nbytes, flags))
        elif method == "recvfrom_into":
            nbytes = nbytes_arg(fdp)
            flags = flags_arg(fdp)
            result = harness.outcome(lambda: dgram.recvfrom_into(buffer, nbytes, flags))
        elif method == "recv_exactly":
            size = size_arg(fdp, 2000)
            result = harness.outcome(lambda: sock.recv_exactly(size))
        elif method == "recv_exactly_into":
            nbytes = nbytes_arg(fdp)
            result = harness.outcome(lambda: sock.recv_exactly_into(buffer, nbytes))
        elif method == "recv_until":
            delim = pick(fdp, [b"\n", b"ab", b"", "x", bytearray(b"\0"), memoryview(b"zz")])
            limit = integer(fdp, 5000)
            result = harness.outcome(lambda: sock.recv_until(delim, limit))
        elif method == "recv_iter":
            def first_chunk() -> bytes:
                for chunk in sock.recv_iter(buffer):
                    return bytes(chunk)  # the stream may not end: one chunk is enough
                return b""
            result = harness.outcome(first_chunk)
        else:
            result = ("ok", sock.buffered)
        snapshot = bytes(backing) if backing is not None else None
        modelled = type(flags) is int and flags in (0, socket.MSG_DONTWAIT)
        return result, snapshot, offset, modelled
    finally:
        if isinstance(buffer, mmap.mmap):
            buffer.close()


TIMED_OUT = ("error", "TimeoutError")


def describe(result: tuple[str, Any]) -> Any:
    kind, value = result
    if kind == "error":
        extra = getattr(value, "partial", None)
        return ("error",) + harness.error_key(value) + ((extra,) if extra is not None else ())
    return ("ok", value)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    stream = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 20000))
    timeout = pick(fdp, [0.0, 0.0, 0.01])
    eof = fdp.ConsumeBool()
    plan = call_plan(fdp)
    seen: dict[str, list[Any]] = {}
    sockets: list[Any] = []
    try:
        for impl in harness.IMPLS:
            a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            da, db = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            sockets += [a, b, da, db]
            a.sendall(stream)
            if eof:
                a.shutdown(socket.SHUT_WR)
            da.send(stream[:4000])
            b.settimeout(timeout)
            db.settimeout(timeout)
            log = seen.setdefault(impl.IMPLEMENTATION, [])
            for method, seed, _, _ in plan:
                result, snapshot, offset, modelled = run_call(b, method, seed, db)
                log.append((method, describe(result), snapshot, offset, modelled))
    finally:
        harness.closing(sockets)
    for step, (ours, theirs) in enumerate(zip(seen["cython"], seen["python"])):
        if ours[0] == "buffered":
            continue  # how much each read ahead is its own business
        if ours != theirs:
            if TIMED_OUT in (ours[1][:2], theirs[1][:2]):
                # a 10 ms deadline can pass between two steps of a call on a
                # loaded machine: the stdlib's way (the pure twin's) polls
                # before each step and times out where the compiled module,
                # which calls first, still reads what is there (an EOF, say);
                # each stream is still checked against the model below
                break
            if ours[0] in ("recv", "recv_into", "recv_iter") and ours[1][0] == theirs[1][0] == "ok":
                # both right (the model checks the bytes), but one returned
                # more of what it had read ahead: the two streams now stand
                # at different places, so comparing further means nothing
                break
            raise harness.Defect(f"call {step} ({ours[0]}): compiled {ours[1:3]!r:.600} != "
                                 f"pure {theirs[1:3]!r:.600}")
    check_model(stream, seen["cython"])
    check_model(stream, seen["python"])


def check_model(stream: bytes, log: list[Any]) -> None:
    """Each stream call returned the next bytes of the stream, and wrote
    nothing into its buffer outside the part it reported."""
    pos = 0
    for method, (kind, *rest), snapshot, offset, modelled in log:
        if method in ("recvfrom_into", "buffered"):
            continue
        if not modelled:
            return  # MSG_PEEK, MSG_TRUNC, ...: the model stops here
        got: Any = None
        if kind == "ok" and method in ("recv", "recv_exactly", "recv_until", "recv_iter"):
            got = rest[0]
        elif kind == "ok" and snapshot is not None:  # recv_into, recv_exactly_into
            n = rest[0]
            got = snapshot[offset:offset + n]
            outside = snapshot[:offset] + snapshot[offset + n:]
            if any(byte != SENTINEL for byte in outside):
                raise harness.Defect(f"{method} reported {n} bytes but wrote outside them")
        elif kind == "ok" and rest[0]:
            return  # bytes went into a buffer we cannot look at: the model stops here
        elif kind == "error" and len(rest) == 3:  # IncompleteReadError.partial
            got = rest[2]
        if got is None:
            continue  # an error that consumed nothing, or a buffer we cannot see
        if bytes(got) != stream[pos:pos + len(got)]:
            raise harness.Defect(f"{method} returned bytes {pos}..{pos + len(got)} of the "
                                 f"stream wrongly: {bytes(got)[:40]!r} != "
                                 f"{stream[pos:pos + 40]!r}")
        pos += len(got)


if __name__ == "__main__":
    harness.main(one_input)
