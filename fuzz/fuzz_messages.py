"""Fuzz target: ancillary data, sent and received.

On a Unix stream or datagram socketpair of each implementation, the same
arbitrary sequence runs: sendmsg / send_fds with arbitrary buffers and
ancillary items (descriptors from a fixed pool, credentials, items of any
level and type, malformed items), flags and SO_PASSCRED on or off, then
recvmsg / recvmsg_into / recv_fds with arbitrary sizes, ancillary buffer
sizes (around and inside the room the messages need, so that the kernel
truncates them anywhere) and flags; on a stream, sometimes after a framing
read left bytes in the receive buffer.  Both implementations must agree at
every step.  The model: every received descriptor refers to a file of the
pool and is close-on-exec, a recv_fds returns no more than asked for, and
once each run's sockets are closed no descriptor is left open (the received
ones are closed by the target).
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
from typing import Any

import atheris

import harness
from harness import Defect, Index, Weird, integer, pick

SOL_SOCKET = socket.SOL_SOCKET
SCM_RIGHTS = socket.SCM_RIGHTS
SCM_CREDENTIALS = socket.SCM_CREDENTIALS

# the descriptors the target passes: both ends of a pipe and /dev/null
_PIPE = os.pipe()
POOL = [*_PIPE, os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)]
POOL_FILES = {(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in POOL}
CREDENTIALS = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())

SEND_FLAGS = [0, 0, 0, socket.MSG_DONTWAIT, socket.MSG_EOR, -1, 2**40, "x"]
RECV_FLAGS = [0, 0, 0, socket.MSG_PEEK, socket.MSG_TRUNC, socket.MSG_CMSG_CLOEXEC,
              socket.MSG_PEEK | socket.MSG_TRUNC, socket.MSG_WAITALL, 2**40, None]


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def ancillary_item(fdp: atheris.FuzzedDataProvider) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice <= 4:
        fds = [pick(fdp, POOL) for _ in range(fdp.ConsumeIntInRange(0, 6))]
        data: Any = array.array("i", fds).tobytes()
        if choice == 4:
            data = data[:fdp.ConsumeIntInRange(0, len(data))]  # a partial int
        return (SOL_SOCKET, SCM_RIGHTS, data)
    if choice == 5:
        return (SOL_SOCKET, SCM_CREDENTIALS, pick(fdp, [CREDENTIALS, CREDENTIALS[:8],
                                                      fdp.ConsumeBytes(12)]))
    if choice == 6:  # any level and type: the kernel ignores or refuses it
        return (fdp.ConsumeIntInRange(0, 300), fdp.ConsumeIntInRange(0, 40),
                fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)))
    return pick(fdp, [None, 5, b"abc", (1, 2), (1, 2, 3, 4), (1, "x", b""), (2**40, 1, b""),
                      (SOL_SOCKET, SCM_RIGHTS, "text"), [SOL_SOCKET, 99, b""], Weird()])


def send_plan(fdp: atheris.FuzzedDataProvider) -> tuple[Any, ...]:
    buffers: Any = [b"m%d" % i * fdp.ConsumeIntInRange(0, 40)
                    for i in range(fdp.ConsumeIntInRange(0, 3))]
    if fdp.ConsumeIntInRange(0, 15) == 0:
        buffers = pick(fdp, [b"abc", 5, ["text"], [memoryview(b"abcd")[::2]], None])
    if fdp.ConsumeBool():
        fds: Any = [pick(fdp, POOL) for _ in range(fdp.ConsumeIntInRange(0, 5))]
        if fdp.ConsumeIntInRange(0, 15) == 0:
            fds = pick(fdp, [["x"], [2**40], 5, [-1]])
        return ("send_fds", buffers, fds, pick(fdp, SEND_FLAGS))
    items = [ancillary_item(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return ("sendmsg", buffers, items, pick(fdp, SEND_FLAGS))


def size_arg(fdp: atheris.FuzzedDataProvider, small: int) -> Any:
    """A receive size: anything, but a huge one that fits a ssize_t is cut to
    1 MiB (allocating it would only give MemoryError, as in the stdlib)."""
    value = integer(fdp, small)
    if isinstance(value, (int, Index)) and 1 << 20 < value.__index__() < 2**63:
        return 1 << 20
    return value


def ancbufsize(fdp: atheris.FuzzedDataProvider) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice <= 6:
        return fdp.ConsumeIntInRange(0, socket.CMSG_SPACE(4 * 12) + socket.CMSG_SPACE(12))
    return pick(fdp, [-1, 2**31, 2**70, 4096, 1.0, "x"])


def receive_plan(fdp: atheris.FuzzedDataProvider) -> tuple[Any, ...]:
    name = pick(fdp, ["recvmsg", "recvmsg_into", "recv_fds"])
    flags = pick(fdp, RECV_FLAGS)
    if name == "recv_fds":
        maxfds = pick(fdp, [0, 1, 3, 12, fdp.ConsumeIntInRange(0, 20), -1, 2**62, 1.0])
        return (name, size_arg(fdp, 200), maxfds, flags)
    if name == "recvmsg":
        return (name, size_arg(fdp, 200), ancbufsize(fdp), flags)
    sizes = [fdp.ConsumeIntInRange(0, 60) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    buffers: Any = [bytearray(size) for size in sizes]
    if fdp.ConsumeIntInRange(0, 15) == 0:
        buffers = pick(fdp, [[b"ro"], bytearray(4), [memoryview(bytearray(8))[::2]], 5])
    return (name, buffers, ancbufsize(fdp), flags)


def seen_fd(fd: int) -> Any:
    """A received descriptor as the file it refers to; checked and closed."""
    try:
        st = os.fstat(fd)
        cloexec = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    finally:
        os.close(fd)
    if (st.st_dev, st.st_ino) not in POOL_FILES:
        raise Defect(f"received descriptor {fd} is none of the pool's files")
    return (st.st_dev, st.st_ino, cloexec)


def normalise(name: str, result: Any, asked_cloexec: bool) -> Any:
    """Results with every descriptor replaced by its file (and closed)."""
    first, ancillary, flags, address = result
    if name == "recv_fds":
        fds = [seen_fd(fd) for fd in ancillary]
        if not all(cloexec for _, _, cloexec in fds):
            raise Defect("a received descriptor is not close-on-exec")
        return (first, fds, flags, address)
    items = []
    for level, kind, data in ancillary:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            numbers = array.array("i")
            numbers.frombytes(data[:len(data) - len(data) % numbers.itemsize])
            fds = [seen_fd(fd) for fd in numbers]
            if not all(cloexec for _, _, cloexec in fds):
                raise Defect("a received descriptor is not close-on-exec")
            items.append((level, kind, fds, len(data) % numbers.itemsize))
        else:
            items.append((level, kind, data))
    if not asked_cloexec and flags & socket.MSG_CMSG_CLOEXEC:
        raise Defect("MSG_CMSG_CLOEXEC reported though the caller did not ask for it")
    return (first, items, flags, address)


def run(impl: Any, kind: int, passcred: bool, buffered: bytes,
        steps: list[tuple[Any, ...]]) -> list[Any]:
    log: list[Any] = []
    a, b = impl.socketpair(socket.AF_UNIX, kind)
    try:
        a.setblocking(False)
        b.setblocking(False)
        if passcred:
            b.setsockopt(SOL_SOCKET, socket.SO_PASSCRED, 1)
        if buffered and kind == socket.SOCK_STREAM:
            a.sendall(buffered + b"\n" + buffered)
            status, value = harness.outcome(lambda: b.recv_until(b"\n"))
            log.append(("framing", status, value if status == "ok" else harness.error_key(value)))
        for plan in steps:
            name, first, second, flags = plan
            if name == "recvmsg_into" and isinstance(first, list):
                # this run's own buffers: the other implementation's get the same sizes
                first = [bytearray(len(item)) if type(item) is bytearray else item
                         for item in first]
            if name in ("sendmsg", "send_fds"):
                status, value = harness.outcome(lambda: getattr(a, name)(first, second, flags))
                log.append((name, status,
                            value if status == "ok" else harness.error_key(value)))
                continue
            kept: list[Any] = []

            def receive() -> Any:
                result = getattr(b, name)(first, second, flags)
                kept.append(result)
                return result

            status, value = harness.outcome(receive)
            if status == "ok":
                asked = isinstance(flags, int) and bool(flags & socket.MSG_CMSG_CLOEXEC)
                value = normalise(name, value, asked)
                if name == "recv_fds" and isinstance(second, int) and len(value[1]) > second:
                    raise Defect(f"recv_fds returned {len(value[1])} descriptors, "
                                 f"asked for {second}")
                if name == "recvmsg_into":
                    value = (value, [bytes(buffer) for buffer in first])
            log.append((name, status, value if status == "ok" else harness.error_key(value)))
    finally:
        harness.closing([a, b])
    return log


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind = pick(fdp, [socket.SOCK_STREAM, socket.SOCK_DGRAM])
    passcred = fdp.ConsumeIntInRange(0, 3) == 0
    buffered = b"b" * pick(fdp, [0, 0, 1, 5])
    steps: list[tuple[Any, ...]] = []
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        steps.append(send_plan(fdp) if fdp.ConsumeBool() else receive_plan(fdp))
    logs = {}
    for impl in harness.IMPLS:
        before = open_fds()
        logs[impl.IMPLEMENTATION] = run(impl, kind, passcred, buffered, steps)
        leaked = open_fds() - before
        if leaked:
            raise Defect(f"{impl.IMPLEMENTATION}: descriptors left open: {sorted(leaked)}")
    harness.same_logs(logs)


if __name__ == "__main__":
    harness.main(one_input)
