"""Faults: a peer that resets or half-closes, buffers that fill up, a process
out of descriptors, and close() racing a blocked call while the descriptor
number is reused."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import (
    Worker,
    connected,
    implementation_module,
    implementation_module_name,
    small_buffers,
)

PROMPT_S = 5.0
TIMEOUTS = [pytest.param(None, id="blocking"), pytest.param(30.0, id="timeout")]
LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST


@contextlib.contextmanager
def running(target: Callable[[], Any]) -> Iterator[Worker]:
    worker = Worker(target)
    worker.start()
    worker.entered.wait(5)
    try:
        yield worker
    finally:
        worker.join(20)
        assert not worker.is_alive(), "helper thread did not finish"


def pattern(size: int, salt: int = 0) -> bytes:
    """Bytes whose every 4-byte word is its own index: a lost, repeated or
    reordered stretch shows."""
    words = (size + 3) // 4
    return b"".join(struct.pack(">I", (i + salt) & 0xFFFFFFFF) for i in range(words))[:size]


def drain(sock: Any, limit: float = 10.0) -> bytes:
    """Everything ``sock`` receives until EOF."""
    sock.settimeout(limit)
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


# -- a peer that resets the connection mid-transfer -------------------------------

def reset(sock: Any) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_peer_reset_during_sendall(impl: ModuleType, timeout: Optional[float]) -> None:
    payload = b"s" * (64 << 20)
    with connected(impl, "tcp") as (a, b):
        a.settimeout(timeout)
        got = bytearray()
        with running(lambda: a.sendall(payload)) as worker:
            while len(got) < 1 << 20:  # the transfer is under way
                got += b.recv(1 << 16)
            reset(b)
            worker.join(PROMPT_S)
            assert not worker.is_alive(), "sendall did not notice the reset"
        error = worker.error
        assert isinstance(error, (ConnectionResetError, BrokenPipeError)), repr(error)
        assert error.errno in (errno.ECONNRESET, errno.EPIPE)
        assert not isinstance(error, TimeoutError)
        # the socket reports the dead connection from now on, and closes cleanly
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            a.sendall(b"more")
        try:
            assert a.recv(16) == b""
        except ConnectionResetError:
            pass  # the kernel may report the reset once more to a receive


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("method", ["recv", "recv_into", "recv_exactly", "recv_msg",
                                    "recv_until"])
def test_peer_reset_during_receive_keeps_what_arrived(
        impl: ModuleType, method: str, timeout: Optional[float]) -> None:
    """A reset while a call waits for the rest of a frame raises
    ConnectionResetError; the bytes it had already taken stay buffered."""
    head = struct.pack(">I", 1000) + b"p" * 60  # a message prefix and part of it
    calls: dict[str, Callable[[Any], Any]] = {
        "recv": lambda s: s.recv(100),
        "recv_into": lambda s: s.recv_into(bytearray(100)),
        "recv_exactly": lambda s: s.recv_exactly(1000),
        "recv_msg": lambda s: s.recv_msg(),
        "recv_until": lambda s: s.recv_until(b"\n"),
    }
    with connected(impl, "tcp") as (a, b):
        a.settimeout(timeout)
        call = calls[method]
        if method not in ("recv", "recv_into"):  # these return what is there
            b.sendall(head)
        with running(lambda: call(a)) as worker:
            time.sleep(0.3)  # the call takes what is there and waits for more
            try:
                assert worker.is_alive(), worker.result
            finally:
                reset(b)
            worker.join(PROMPT_S)
            assert not worker.is_alive(), "the call did not notice the reset"
        assert isinstance(worker.error, ConnectionResetError), repr(worker.error)
        assert worker.error.errno == errno.ECONNRESET
        if method not in ("recv", "recv_into"):
            assert a.buffered == len(head)
            assert a.recv_exactly(len(head)) == head
        assert a.recv(16) == b""  # the reset was reported once; then EOF
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            a.send(b"x")


@pytest.mark.parametrize("ending", ["reset", "close"])
@pytest.mark.parametrize("method", ["recv_exactly", "recv_msg", "recv_msgs", "recv_until"])
def test_an_answer_ready_when_the_time_is_up_is_reported_not_a_timeout(
        impl: ModuleType, method: str, ending: str) -> None:
    """A call that takes part of a frame and then finds its deadline passed
    still asks the kernel once: the peer's reset or end, already there, is
    what it reports.  The timeout is a nanosecond, so every step after the
    first comes after the deadline."""
    head = struct.pack(">I", 1000) + b"p" * 60
    calls: dict[str, Callable[[Any], Any]] = {
        "recv_exactly": lambda s: s.recv_exactly(1000),
        "recv_msg": lambda s: s.recv_msg(),
        "recv_msgs": lambda s: s.recv_msgs(),
        "recv_until": lambda s: s.recv_until(b"\n"),
    }
    with connected(impl, "tcp") as (a, b):
        b.sendall(head)
        if ending == "reset":
            reset(b)
        else:
            b.close()
        time.sleep(0.05)  # loopback delivers at once; this is margin
        a.settimeout(1e-9)
        expected = ConnectionResetError if ending == "reset" else impl.IncompleteReadError
        with pytest.raises(expected):
            calls[method](a)
        if ending == "reset":
            assert a.buffered == len(head)  # what the call took stays
        a.settimeout(5)
        assert a.recv(1 << 16) == (head if ending == "reset" else b"")


# -- a peer that half-closes ------------------------------------------------------

@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_peer_half_close(impl: ModuleType, transport: str) -> None:
    """After the peer's SHUT_WR every receive call reports EOF its own way,
    nothing sent before it is lost, and the other direction still works."""
    frame = struct.pack(">I", 5) + b"hello"
    with connected(impl, transport) as (a, b):
        a.settimeout(10)
        b.sendall(frame + frame + b"line\n" + b"tail")
        b.shutdown(impl.SHUT_WR)
        assert a.recv_msg() == b"hello"
        assert a.recv_msgs() == [b"hello"]
        assert a.recv_until(b"\n") == b"line\n"
        with pytest.raises(impl.IncompleteReadError) as info:
            a.recv_exactly(10)
        assert (info.value.partial, info.value.expected) == (b"tail", 10)
        for _ in range(3):  # EOF stays EOF
            assert a.recv(16) == b""
            assert a.recv_into(bytearray(16)) == 0
            with pytest.raises(impl.IncompleteReadError) as info:
                a.recv_msg()
            assert (info.value.partial, info.value.expected) == (b"", 4)
            with pytest.raises(impl.IncompleteReadError) as info:
                a.recv_exactly(1)
            assert info.value.partial == b""
            with pytest.raises(impl.IncompleteReadError):
                a.recv_until(b"\n")
        # the half-closed peer still receives
        payload = pattern(1 << 20)
        with running(lambda: drain(b)) as reader:
            a.sendall(payload)
            a.send_msg(b"bye")
            a.shutdown(impl.SHUT_WR)
            received = reader.finish()
        assert received == payload + struct.pack(">I", 3) + b"bye"


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_peer_half_close_inside_a_message(impl: ModuleType, transport: str) -> None:
    with connected(impl, transport) as (a, b):
        a.settimeout(10)
        b.sendall(struct.pack(">I", 100) + b"only this")
        b.shutdown(impl.SHUT_WR)
        with pytest.raises(impl.IncompleteReadError) as info:
            a.recv_msg()
        assert (info.value.partial, info.value.expected) == (b"only this", 100)
        assert a.recv(16) == b""


# -- buffers that fill up ------------------------------------------------------------

@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_full_buffers_lose_nothing(impl: ModuleType, transport: str) -> None:
    """A peer that stops reading: non-blocking sends end in BlockingIOError,
    timed ones in TimeoutError; each send says how much it took, a failed
    sendall leaves a prefix of its data in flight, and once the peer reads
    again the stream is exactly what was sent, in order."""
    with small_buffers(impl, transport) as (a, b):
        sent = bytearray()  # the bytes the stream must carry, in order
        salt = 0

        def send_until(error: type[OSError]) -> int:
            """send() until it raises ``error``; every byte it took is recorded
            (the kernel may free a little room at any time)."""
            nonlocal salt
            calls = 0
            for _ in range(100_000):
                chunk = pattern(1000, salt)
                salt += 250
                calls += 1
                try:
                    n = a.send(chunk)
                except error:
                    return calls
                sent.extend(chunk[:n])
            raise AssertionError(f"send never raised {error.__name__}")

        a.setblocking(False)
        assert send_until(BlockingIOError) > 1
        assert len(sent) > 0
        send_until(BlockingIOError)  # and again: still full
        a.settimeout(0.2)
        send_until(TimeoutError)
        attempt = pattern(300_000, 1 << 24)  # more than the buffers hold
        with pytest.raises(TimeoutError):
            a.sendall(attempt)
        # what the peer will read: sent, then some prefix of attempt
        a.settimeout(None)
        tail = b"and the end"
        with running(lambda: drain(b)) as reader:
            a.sendall(tail)
            a.shutdown(impl.SHUT_WR)
            received = reader.finish()
        assert received.startswith(bytes(sent)), "bytes taken by send() went missing"
        rest = received[len(sent):]
        assert rest.endswith(tail)
        in_flight = rest[:len(rest) - len(tail)]
        assert attempt.startswith(in_flight), "a failed sendall sent something else"


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_timed_out_receives_lose_nothing_under_backpressure(
        impl: ModuleType, transport: str) -> None:
    """The receiving side of a congested stream: exact reads that time out
    part-way keep what they took, and the stream comes out whole."""
    total = 4 << 20
    payload = pattern(total, 7)
    with small_buffers(impl, transport) as (a, b):
        def trickle() -> None:
            view = memoryview(payload)
            for offset in range(0, total, 1 << 18):
                a.sendall(view[offset:offset + (1 << 18)])
                time.sleep(0.02)

        got = bytearray()
        timeouts = 0
        b.settimeout(0.005)
        with running(trickle) as sender:
            deadline = time.monotonic() + 60
            while len(got) < total and time.monotonic() < deadline:
                want = min(100_000, total - len(got))
                try:
                    got += b.recv_exactly(want)
                except TimeoutError:
                    timeouts += 1
            sender.finish()
        assert bytes(got) == payload
        assert timeouts > 0, "no read ever timed out: the test proved nothing"


# -- out of descriptors ---------------------------------------------------------------

_EMFILE_CHILD = textwrap.dedent("""
    import errno, importlib, json, os, resource, sys
    m = importlib.import_module(sys.argv[1])

    def outcome(call):
        try:
            result = call()
        except OSError as exc:
            return exc.errno
        for s in (result if isinstance(result, tuple) else (result,)):
            if hasattr(s, "close"):
                s.close()
        return "ok"

    start = len(os.listdir("/proc/self/fd"))
    server = m.create_server(("127.0.0.1", 0))
    address = server.getsockname()
    clients = [m.create_connection(address, timeout=5) for _ in range(3)]
    for c in clients:
        c.settimeout(5)
    # lower the limit just above what is open, then use up what is left
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 4, hard))
    fillers = []
    while True:
        try:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            assert exc.errno == errno.EMFILE, exc
            break
    results = {}
    for mode, timeout in (("blocking", None), ("timeout", 5.0), ("nonblocking", 0.0)):
        server.settimeout(timeout)
        results["accept " + mode] = outcome(lambda: server.accept())
    results["StreamSocket"] = outcome(lambda: m.StreamSocket(m.AF_INET))
    results["DatagramSocket"] = outcome(lambda: m.DatagramSocket(m.AF_INET))
    results["socketpair"] = outcome(lambda: m.socketpair())
    results["create_connection"] = outcome(lambda: m.create_connection(address, timeout=5))
    # free descriptors: the listening socket and the queued connections work
    for fd in fillers:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    server.settimeout(5)
    echoed = []
    for i, c in enumerate(clients):
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            c.sendall(b"ping %d" % i)
            data = conn.recv_exactly(6)
            conn.sendall(data.upper())
            echoed.append(c.recv_exactly(6).decode())
    results["echoed"] = echoed
    for c in clients:
        c.close()
    server.close()
    results["fds leaked"] = len(os.listdir("/proc/self/fd")) - start
    print(json.dumps(results))
""")


def test_emfile_on_accept_then_recovery(impl: ModuleType) -> None:
    module = implementation_module_name(impl.IMPLEMENTATION)
    proc = subprocess.run([sys.executable, "-c", _EMFILE_CHILD, module],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    results = json.loads(proc.stdout)
    for key in ("accept blocking", "accept timeout", "accept nonblocking",
                "StreamSocket", "DatagramSocket", "socketpair", "create_connection"):
        assert results[key] == errno.EMFILE, (key, results)
    assert results["echoed"] == ["PING 0", "PING 1", "PING 2"]
    assert results["fds leaked"] == 0


# -- close() from another thread while the descriptor number is reused ----------------

ROUNDS = 20
CLOSE_DELAYS = (0.0, 0.00005, 0.0005, 0.005, 0.02)


def _blocked_on(impl: ModuleType, op: str, timeout: Optional[float],
                stack: contextlib.ExitStack) -> tuple[Any, Callable[[], Any]]:
    """(socket, call blocked on it)."""
    if op == "accept":
        server = stack.enter_context(impl.create_server(("127.0.0.1", 0)))
        server.settimeout(timeout)
        return server, server.accept
    a, b = impl.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    a.settimeout(timeout)
    if op == "recv":
        return a, lambda: a.recv(1024)
    if op == "recv_into":
        buf = bytearray(1024)
        return a, lambda: a.recv_into(buf)
    if op == "recv_exactly":
        b.sendall(b"partial")  # taken into the socket's buffer while it waits
        return a, lambda: a.recv_exactly(1024)
    if op == "recv_msg":
        return a, lambda: a.recv_msg()
    assert op == "sendall"
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return a, lambda: a.sendall(b"z" * (8 << 20))


class Reuser:
    """Opens stdlib socket pairs (and a listener) as fast as it can, so that a
    descriptor number freed too early is handed to one of them while the
    blocked call is still on its way out; then checks that none of them saw
    a stray read or write."""

    def __init__(self) -> None:
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.listeners: list[tuple[socket.socket, socket.socket]] = []

    def open_one(self) -> None:
        x, y = socket.socketpair()
        y.send(b"for x")  # a stray receive on x's number would take this
        self.pairs.append((x, y))
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname(), timeout=5)
        self.listeners.append((listener, client))

    def fds(self) -> set[int]:
        return ({x.fileno() for x, _ in self.pairs} | {y.fileno() for _, y in self.pairs}
                | {lst.fileno() for lst, _ in self.listeners}
                | {c.fileno() for _, c in self.listeners})

    def check_and_close(self) -> None:
        try:
            for x, y in self.pairs:
                x.setblocking(False)
                assert x.recv(64) == b"for x", "a stray receive took the new socket's data"
                with pytest.raises(BlockingIOError):
                    y.setblocking(False)
                    y.recv(64)  # a stray send on x's number would show here
            for listener, _ in self.listeners:
                listener.settimeout(5)
                conn, _ = listener.accept()  # a stray accept would have taken it
                conn.close()
        finally:
            for pair in self.pairs + self.listeners:
                for s in pair:
                    s.close()


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("op", ["recv", "recv_into", "recv_exactly", "recv_msg",
                                "accept", "sendall"])
def test_close_while_blocked_never_touches_a_reused_descriptor(
        impl: ModuleType, op: str, timeout: Optional[float]) -> None:
    reused = 0
    for round_ in range(ROUNDS):
        with contextlib.ExitStack() as stack:
            sock, call = _blocked_on(impl, op, timeout, stack)
            fd = sock.fileno()
            reuser = Reuser()
            try:
                with running(call) as worker:
                    # close at varied moments: before the call starts, as it
                    # enters the kernel, and while it is blocked there
                    time.sleep(CLOSE_DELAYS[round_ % len(CLOSE_DELAYS)])
                    sock.close()
                    closed_at = time.monotonic()
                    # race the woken call for the descriptor number
                    for _ in range(200):
                        if not worker.is_alive() or time.monotonic() > closed_at + PROMPT_S:
                            break
                        reuser.open_one()
                    worker.join(PROMPT_S)
                    assert not worker.is_alive(), f"{op} did not return after close()"
                    reuser.open_one()  # the number is free now: it is reused
                error = worker.error
                assert isinstance(error, OSError) and error.errno == errno.EBADF, \
                    (op, worker.result, error)
                reused += fd in reuser.fds()
            finally:
                reuser.check_and_close()
    print(f"{impl.IMPLEMENTATION} {op}: fd number reused in {reused} of {ROUNDS} rounds")
    assert reused > 0, "the descriptor number was never reused: the test proved nothing"


def test_pure_close_while_a_step_makes_its_twin_wakes_the_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure twin's later steps of a timed call run on a private stdlib
    socket on the same descriptor, which close() detaches.  A close() that
    lands while that twin is being made (after the descriptor was read,
    before the twin is listed) must still end the call at once with EBADF,
    not leave it waiting out its timeout on the twin."""
    pure = implementation_module("python")
    a, b = pure.socketpair()
    closer: list[Worker] = []
    real_socket = socket.socket

    def socket_while_closing(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("fileno") is not None and not closer:
            worker = Worker(a.close)
            worker.start()
            closer.append(worker)
            deadline = time.monotonic() + PROMPT_S
            while a.fileno() != -1 and time.monotonic() < deadline:
                time.sleep(0.001)  # close() has detached the socket: the race is on
        return real_socket(*args, **kwargs)

    with a, b:
        a.settimeout(10)
        b.sendall(b"partial")  # the first step takes it; the second makes the twin
        monkeypatch.setattr(socket, "socket", socket_while_closing)
        started = time.monotonic()
        with pytest.raises(OSError) as info:
            a.recv_exactly(1024)
        monkeypatch.undo()
        assert info.value.errno == errno.EBADF, info.value
        assert time.monotonic() - started < PROMPT_S, "the call waited on its twin"
        assert closer, "no twin was made: the test proved nothing"
        closer[0].join(PROMPT_S)
        assert not closer[0].is_alive()


# -- allocation failures right after accept() ------------------------------------------

_NOMEMORY_CHILD = textwrap.dedent("""
    import importlib, json, os, sys, _testcapi
    m = importlib.import_module(sys.argv[1])
    server = m.create_server(("127.0.0.1", 0))
    address = server.getsockname()
    outcomes = {"accepted": 0, "MemoryError": 0, "fds leaked": 0}
    for start in range(60):
        client = m.create_connection(address, timeout=10)
        before = len(os.listdir("/proc/self/fd"))
        conn = None
        _testcapi.set_nomemory(start, 0)   # allocation number `start` onward fails
        try:
            conn, _ = server.accept()
        except MemoryError:
            pass
        finally:
            _testcapi.remove_mem_hooks()
        if conn is None:
            outcomes["MemoryError"] += 1
            outcomes["fds leaked"] += len(os.listdir("/proc/self/fd")) - before
        else:
            outcomes["accepted"] += 1
            outcomes["fds leaked"] += len(os.listdir("/proc/self/fd")) - before - 1
            conn.close()
        client.close()
    server.close()
    print(json.dumps(outcomes))
""")


def test_allocation_failure_in_accept_closes_the_new_descriptor(impl: ModuleType) -> None:
    """Each allocation accept() makes after the connection is taken fails in
    turn: a MemoryError must not leave the accepted descriptor open."""
    pytest.importorskip("_testcapi")
    if impl.IMPLEMENTATION == "python":
        pytest.skip("the stdlib's socket._accept itself leaks the descriptor when building "
                    "its result fails; the twin's own steps are tested below")
    module = implementation_module_name("cython")
    proc = subprocess.run([sys.executable, "-X", "dev", "-W", "ignore", "-c", _NOMEMORY_CHILD,
                           module], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    outcomes = json.loads(proc.stdout.splitlines()[-1])
    assert outcomes["MemoryError"] >= 1 and outcomes["accepted"] >= 1, outcomes
    assert outcomes["fds leaked"] == 0, outcomes


@pytest.mark.parametrize("failing", ["socket", "_adopt"])
def test_pure_accept_closes_the_new_descriptor_when_wrapping_fails(
        failing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure twin wraps the accepted descriptor in two steps (a stdlib
    socket, then a StreamSocket); a failure in either closes the descriptor."""
    pure = implementation_module("python")

    def out_of_memory(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    with pure.create_server(("127.0.0.1", 0)) as server, \
            pure.create_connection(server.getsockname(), timeout=10):
        before = len(os.listdir("/proc/self/fd"))
        if failing == "socket":
            monkeypatch.setattr(socket, "socket", out_of_memory)  # the stdlib module the twin wraps
        else:
            monkeypatch.setattr(pure.StreamSocket, "_adopt", out_of_memory)
        with pytest.raises(MemoryError):
            server.accept()
        monkeypatch.undo()
        assert len(os.listdir("/proc/self/fd")) == before
