"""Workloads for the leak tests, each run in a fresh interpreter so that
its measurements are its own:

    python leak_workloads.py MODULE WORKLOAD COUNT

imports MODULE (``fastsock._socket_c`` or ``fastsock._socket_py``), runs
WORKLOAD's body COUNT times and prints one JSON object: the open descriptor
count before and after, and the resident set size and the memory traced by
tracemalloc at a checkpoint after a warm-up (a tenth of the iterations) and
at the end.  The test asserts on those numbers; this file only measures.
"""

from __future__ import annotations

import errno
import gc
import importlib
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
import tracemalloc
from contextlib import ExitStack
from types import ModuleType
from typing import Any, Callable

Body = Callable[[int], None]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sanitized() -> bool:
    """Whether AddressSanitizer's runtime is loaded (``make asan-test``): its
    quarantine holds freed memory back by design, so the resident set grows
    without a leak, and LeakSanitizer checks this process's leaks instead."""
    with open("/proc/self/maps") as maps:
        return "libasan" in maps.read()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def expect(exc_type: type[BaseException], call: Callable[[], Any],
           code: int | None = None) -> BaseException:
    """Run ``call``, which must raise ``exc_type`` (with errno ``code``)."""
    try:
        call()
    except exc_type as exc:
        if code is not None:
            assert isinstance(exc, OSError) and exc.errno == code, exc
        return exc
    raise AssertionError(f"{call} did not raise {exc_type.__name__}")


def recv_all(sock: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "unexpected EOF"
        data += chunk
    return data


# -- the workloads: each sets up with ``stack`` and returns the loop body ------

def cycles_tcp(m: ModuleType, stack: ExitStack) -> Body:
    """Create, connect, accept and close a TCP connection on 127.0.0.1."""
    server = stack.enter_context(m.create_server(("127.0.0.1", 0)))
    address = server.getsockname()

    def body(i: int) -> None:
        if i % 4 == 0:
            client = m.create_connection(address, timeout=10)
        else:
            client = m.StreamSocket(m.AF_INET)
            client.connect(address)
        conn, peer = server.accept()
        assert peer == client.getsockname()
        if i % 2:
            client.close()
            conn.close()
        else:
            conn.close()
            client.close()

    return body


def cycles_unix(m: ModuleType, stack: ExitStack) -> Body:
    """Create, connect, accept and close a Unix stream connection."""
    directory = tempfile.mkdtemp(prefix="fs-leak-", dir="/tmp")
    stack.callback(shutil.rmtree, directory, True)
    path = os.path.join(directory, "s")
    server = stack.enter_context(m.create_server(path, family=m.AF_UNIX))

    def body(i: int) -> None:
        if i % 4 == 0:
            client = m.create_connection(path, timeout=10)
        else:
            client = m.StreamSocket(m.AF_UNIX)
            client.connect(path)
        conn, _ = server.accept()
        if i % 2:
            client.close()
            conn.close()
        else:
            conn.close()
            client.close()

    return body


# One iteration of ``calls`` makes CALLS_PER_ITERATION send calls and as
# many receive calls, over Unix and TCP streams and UDP.
CALLS_PER_ITERATION = 8


def calls(m: ModuleType, stack: ExitStack) -> Body:
    """Small sends and receives through every receive path."""
    ua, ub = m.socketpair()
    stack.enter_context(ua)
    stack.enter_context(ub)
    server = stack.enter_context(m.create_server(("127.0.0.1", 0)))
    ta = stack.enter_context(m.create_connection(server.getsockname(), timeout=10))
    tb = stack.enter_context(server.accept()[0])
    ta.settimeout(None)
    for sock in (ta, tb):  # small writes must not wait for delayed ACKs
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    da = stack.enter_context(m.DatagramSocket(m.AF_INET))
    db = stack.enter_context(m.DatagramSocket(m.AF_INET))
    db.bind(("127.0.0.1", 0))
    db_address = db.getsockname()
    pa, pb = m.socketpair(m.AF_UNIX, m.SOCK_DGRAM)
    stack.enter_context(pa)
    stack.enter_context(pb)
    buf = bytearray(64)
    msg = b"0123456789abcdef"

    def body(i: int) -> None:
        ua.send(msg)                                   # 1
        assert ub.recv(64) == msg
        ta.sendall(msg)                                # 2
        assert tb.recv_exactly(16) == msg
        tb.send_msg(msg)                               # 3
        assert ta.recv_msg() == msg
        ua.sendall_buffers([msg, b"\n"])               # 4
        assert ub.recv_until(b"\n") == msg + b"\n"
        ta.send(msg)                                   # 5
        assert tb.recv_exactly_into(buf, 16) == 16
        da.sendto(msg, db_address)                     # 6
        data, _ = db.recvfrom(64)
        assert data == msg
        pa.send(msg)                                   # 7
        assert pb.recv_into(buf) == 16
        ub.send(msg)                                   # 8
        assert ua.recv(16) == msg

    return body


def refused(m: ModuleType, stack: ExitStack) -> Body:
    """ConnectionRefusedError from create_connection and connect; connect_ex."""
    # a port that is bound but not listening refuses connections, and being
    # bound it can be neither a client's ephemeral port (no self-connect)
    # nor another process's listener
    closed = stack.enter_context(socket.socket())
    closed.bind(("127.0.0.1", 0))
    address = closed.getsockname()
    directory = tempfile.mkdtemp(prefix="fs-leak-", dir="/tmp")
    stack.callback(shutil.rmtree, directory, True)
    missing = os.path.join(directory, "nobody")

    def body(i: int) -> None:
        expect(ConnectionRefusedError, lambda: m.create_connection(address, timeout=5))
        with m.StreamSocket(m.AF_INET) as s:
            expect(ConnectionRefusedError, lambda: s.connect(address))
        with m.StreamSocket(m.AF_INET) as s:
            assert s.connect_ex(address) == errno.ECONNREFUSED
        expect(FileNotFoundError, lambda: m.create_connection(missing))

    return body


def timeouts(m: ModuleType, stack: ExitStack) -> Body:
    """TimeoutError from recv, recv_exactly (data put back), accept and
    sendall; BlockingIOError on non-blocking sockets."""
    a, b = m.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    a.settimeout(0.0005)
    server = stack.enter_context(m.create_server(("127.0.0.1", 0)))
    server.settimeout(0.0005)
    full_a, full_b = m.socketpair()
    stack.enter_context(full_a)
    stack.enter_context(full_b)
    full_a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    full_a.setblocking(False)
    try:
        while True:
            full_a.send(b"f" * 4096)  # fill the pipe once: every send now waits
    except BlockingIOError:
        pass
    full_a.settimeout(0.0005)
    nb_a, nb_b = m.socketpair()
    stack.enter_context(nb_a)
    stack.enter_context(nb_b)
    nb_a.setblocking(False)
    big = b"x" * 65536

    def body(i: int) -> None:
        expect(TimeoutError, lambda: a.recv(16))
        b.send(b"abc")
        expect(TimeoutError, lambda: a.recv_exactly(8))
        assert a.buffered == 3
        expect(TimeoutError, lambda: a.recv_msg())   # b"abc" is half a prefix
        assert a.recv_exactly(3) == b"abc"
        expect(TimeoutError, lambda: server.accept())
        expect(TimeoutError, lambda: full_a.sendall(big))
        expect(BlockingIOError, lambda: nb_a.recv(16))
        expect(BlockingIOError, lambda: nb_a.recv_exactly(4))

    return body


def bad_arguments(m: ModuleType, stack: ExitStack) -> Body:
    """TypeError, ValueError, OverflowError and gaierror from bad arguments."""
    a, b = m.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    d = stack.enter_context(m.DatagramSocket(m.AF_INET))
    s = stack.enter_context(m.StreamSocket(m.AF_INET))
    u = stack.enter_context(m.StreamSocket(m.AF_UNIX))

    def body(i: int) -> None:
        expect(ValueError, lambda: a.recv(-1))
        expect(TypeError, lambda: a.recv_into(b"read-only"))
        expect(ValueError, lambda: a.recv_into(bytearray(4), 8))
        expect(TypeError, lambda: a.send("text"))
        expect(TypeError, lambda: a.sendall(None))
        expect(ValueError, lambda: a.recv_msg(prefix_size=3))
        expect(ValueError, lambda: a.recv_until(b""))
        expect(OverflowError, lambda: a.send_msg(b"x" * 256, prefix_size=1))
        expect(TypeError, lambda: s.connect("not a tuple"))
        expect(OverflowError, lambda: s.connect(("127.0.0.1", 70000)))
        expect(TypeError, lambda: d.sendto(b"x", ("127.0.0.1",)))
        expect(ValueError, lambda: d.recv_many(max_count=0))
        expect(ValueError, lambda: a.settimeout(-1))
        expect(TypeError, lambda: a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, "x"))
        expect(ValueError, lambda: u.bind("a\0b"))

    return body


def bad_descriptor(m: ModuleType, stack: ExitStack) -> Body:
    """OSError(EBADF) from every kind of call on a closed socket."""
    ebadf = errno.EBADF
    buf = bytearray(16)

    def body(i: int) -> None:
        a, b = m.socketpair()
        a.close()
        b.close()
        expect(OSError, lambda: a.recv(16), ebadf)
        expect(OSError, lambda: a.recv_into(buf), ebadf)
        expect(OSError, lambda: a.recv_exactly(4), ebadf)
        expect(OSError, lambda: a.recv_msg(), ebadf)
        expect(OSError, lambda: a.send(b"x"), ebadf)
        expect(OSError, lambda: a.sendall(b"x"), ebadf)
        expect(OSError, lambda: a.send_msg(b"x"), ebadf)
        expect(OSError, lambda: a.getsockname(), ebadf)
        expect(OSError, lambda: a.shutdown(m.SHUT_RDWR), ebadf)
        with m.DatagramSocket(m.AF_INET) as d:
            pass
        expect(OSError, lambda: d.sendto(b"x", ("127.0.0.1", 9)), ebadf)
        expect(OSError, lambda: d.recvfrom(16), ebadf)
        expect(OSError, lambda: d.recv_many(), ebadf)

    return body


def eof(m: ModuleType, stack: ExitStack) -> Body:
    """IncompleteReadError from recv_exactly, recv_exactly_into, recv_msg
    and recv_until at EOF, with the partial data they carry."""
    buf = bytearray(64)
    header = struct.Struct(">I")

    def body(i: int) -> None:
        a, b = m.socketpair()
        with a, b:
            b.sendall(b"part" + header.pack(100) + b"payload")
            b.shutdown(m.SHUT_WR)
            exc = expect(EOFError, lambda: a.recv_exactly(50))
            assert getattr(exc, "partial") == b"part" + header.pack(100) + b"payload"
            expect(EOFError, lambda: a.recv_exactly_into(buf, 8))
            expect(EOFError, lambda: a.recv_msg())
            expect(EOFError, lambda: a.recv_until(b"\n"))
            assert a.recv(16) == b""
        c, d = m.socketpair()
        with c, d:
            d.sendall(header.pack(100) + b"short")
            d.close()
            exc = expect(EOFError, lambda: c.recv_msg())
            assert getattr(exc, "partial") == b"short"

    return body


def too_large(m: ModuleType, stack: ExitStack) -> Body:
    """MessageTooLargeError, again and again, from the same buffered prefix."""
    a, b = m.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    b.sendall(struct.pack(">I", 1 << 30))

    def body(i: int) -> None:
        expect(m.MessageTooLargeError, lambda: a.recv_msg(max_size=1024))
        expect(m.MessageTooLargeError, lambda: a.recv_msgs(max_size=1024))
        assert a.buffered == 4

    return body


def truncated(m: ModuleType, stack: ExitStack) -> Body:
    """TruncatedDatagramError from recv_many, carrying every datagram."""
    a = stack.enter_context(m.DatagramSocket(m.AF_INET))
    b = stack.enter_context(m.DatagramSocket(m.AF_INET))
    b.bind(("127.0.0.1", 0))
    b.settimeout(5)
    address = b.getsockname()
    batch = [b"short", b"x" * 100, b"tiny"]

    def body(i: int) -> None:
        assert a.send_many(batch, address) == 3
        got: list[Any] = []
        while len(got) < 3:
            try:
                got += b.recv_many(max_count=3, bufsize=16)
            except m.TruncatedDatagramError as exc:
                assert exc.truncated == [1 - len(got)]
                got += exc.messages
        assert [len(data) for data, _ in got] == [5, 16, 4]

    return body


# controls: what the checks must catch

_kept: list[Any] = []


def control_memory(m: ModuleType, stack: ExitStack) -> Body:
    """Keeps 1 KiB per iteration: the memory checks must flag it."""
    def body(i: int) -> None:
        _kept.append(bytearray(1024))

    return body


def control_descriptor(m: ModuleType, stack: ExitStack) -> Body:
    """Leaves one socket open (forgotten, not collected): the descriptor check must flag it."""
    def body(i: int) -> None:
        if i == 0:
            _kept.append(m.StreamSocket(m.AF_INET))

    return body


def aio_streams(m: ModuleType, stack: ExitStack) -> Body:
    """fastsock.aio streams over a socketpair of the implementation (so on its
    core): every kind of read, a framed write, a read cancelled while it
    waits, a read timed out, the end of the stream and closing."""
    import asyncio

    from fastsock import aio

    loop = asyncio.new_event_loop()
    stack.callback(loop.close)
    header = struct.Struct(">I")

    async def once() -> None:
        a, b = m.socketpair()
        reader, writer = await aio.open_unix_connection(sock=a)
        peer_reader, peer_writer = await aio.open_unix_connection(sock=b)
        peer_writer.write(b"x" * 100 + b"line\n" + header.pack(3) + b"abc" + header.pack(1) + b"d")
        writer.write_msg(b"hello")
        assert await reader.readexactly(100) == b"x" * 100
        assert await reader.readuntil(b"\n") == b"line\n"
        assert await reader.read_msg() == b"abc"
        assert await reader.read_msgs() == [b"d"]
        assert await peer_reader.read_msg() == b"hello"
        pending = asyncio.ensure_future(reader.read(10))
        await asyncio.sleep(0)
        pending.cancel()
        try:
            await pending
        except asyncio.CancelledError:
            pass
        peer_writer.write(b"more")
        await peer_writer.drain()
        assert await reader.readexactly(4) == b"more"
        try:
            await asyncio.wait_for(reader.read_msg(), 0.001)
        except asyncio.TimeoutError:
            pass
        peer_writer.close()
        await peer_writer.wait_closed()
        try:
            await reader.readexactly(1)
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        await writer.wait_closed()

    def body(i: int) -> None:
        loop.run_until_complete(once())

    return body


WORKLOADS: dict[str, Callable[[ModuleType, ExitStack], Body]] = {
    "control_memory": control_memory,
    "control_descriptor": control_descriptor,
    "cycles_tcp": cycles_tcp,
    "cycles_unix": cycles_unix,
    "calls": calls,
    "refused": refused,
    "timeouts": timeouts,
    "bad_arguments": bad_arguments,
    "bad_descriptor": bad_descriptor,
    "eof": eof,
    "too_large": too_large,
    "truncated": truncated,
    "aio_streams": aio_streams,
}


def measure(module: str, workload: str, count: int) -> dict[str, Any]:
    m = importlib.import_module(module)
    warmup = max(1, count // 10)
    gc.collect()
    fds_before = open_fds()
    tracemalloc.start()
    start = time.perf_counter()
    with ExitStack() as stack:
        body = WORKLOADS[workload](m, stack)
        for i in range(warmup):
            body(i)
        gc.collect()
        rss_checkpoint = rss_bytes()
        traced_checkpoint = tracemalloc.get_traced_memory()[0]
        for i in range(warmup, count):
            body(i)
        gc.collect()
        rss_end = rss_bytes()
        traced_end = tracemalloc.get_traced_memory()[0]
    seconds = time.perf_counter() - start
    tracemalloc.stop()
    gc.collect()
    return {
        "module": module, "workload": workload, "count": count, "warmup": warmup,
        "fds_before": fds_before, "fds_after": open_fds(),
        "rss_checkpoint": rss_checkpoint, "rss_end": rss_end,
        "traced_checkpoint": traced_checkpoint, "traced_end": traced_end,
        "seconds": seconds, "sanitized": sanitized(),
    }


if __name__ == "__main__":
    module_name, workload_name, count_text = sys.argv[1:4]
    print(json.dumps(measure(module_name, workload_name, int(count_text))))
