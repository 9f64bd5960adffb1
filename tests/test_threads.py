"""Threads: blocking calls release the GIL, close() from another thread wakes
a blocked call, and one socket can send and receive in two threads at once."""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import os
import socket
import subprocess
import sys
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import Worker, connected, received_sha256

PROMPT_S = 2.0


@contextlib.contextmanager
def running(*targets: Callable[[], Any]) -> Iterator[list[Worker]]:
    workers = [Worker(target) for target in targets]
    for worker in workers:
        worker.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.join(15)
        assert not any(worker.is_alive() for worker in workers), "thread did not finish"


_POKER = r"""
import os, socket, sys, time
time.sleep(float(sys.argv[1]))
if sys.argv[2] == "write":
    os.write(int(sys.argv[3]), b"!")
else:
    family = socket.AF_UNIX if sys.argv[3] == "unix" else socket.AF_INET
    address = sys.argv[4] if family == socket.AF_UNIX else ("127.0.0.1", int(sys.argv[4]))
    s = socket.socket(family)
    s.connect(address)
    time.sleep(2)
    s.close()
"""


@contextlib.contextmanager
def external_poke(args: list[str], pass_fds: tuple[int, ...] = (),
                  after: float = 5.0) -> Iterator[None]:
    """A separate process that unblocks a call after ``after`` seconds: it
    needs no GIL, so it ends a call even if that call held the GIL."""
    proc = subprocess.Popen([sys.executable, "-c", _POKER, str(after), *args],
                            pass_fds=pass_fds)
    try:
        yield
    finally:
        proc.kill()
        proc.wait(10)


def _count_for(seconds: float) -> int:
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return n


# -- the GIL is released while blocked ----------------------------------------

@pytest.mark.parametrize("timeout", [pytest.param(None, id="blocking"),
                                     pytest.param(30.0, id="timeout")])
@pytest.mark.parametrize("op", ["recv", "recv_into", "accept"])
def test_gil_released_while_blocked(impl: ModuleType, op: str,
                                    timeout: Optional[float]) -> None:
    baseline = _count_for(0.1) * 3
    with contextlib.ExitStack() as stack:
        if op == "accept":
            server = stack.enter_context(impl.create_server(("127.0.0.1", 0)))
            server.settimeout(timeout)
            port = server.getsockname()[1]
            poke_args = ["connect", "tcp", str(port)]
            fds: tuple[int, ...] = ()

            def call() -> Any:
                conn, _ = server.accept()
                conn.close()
                return "accepted"

            def unblock() -> None:
                impl.create_connection(("127.0.0.1", port), timeout=5).close()
        else:
            a, b = impl.socketpair()
            stack.enter_context(a)
            stack.enter_context(b)
            a.settimeout(timeout)
            poke_args, fds = ["write", str(b.fileno())], (b.fileno(),)
            buf = bytearray(64)

            def call() -> Any:
                if op == "recv":
                    return a.recv(64)
                return bytes(buf[:a.recv_into(buf)])

            def unblock() -> None:
                b.sendall(b"data")

        with external_poke(poke_args, fds), running(call) as (worker,):
            worker.entered.wait(5)
            time.sleep(0.05)
            count = _count_for(0.3)
            blocked_throughout = worker.is_alive() and worker.ended_at is None
            unblock()
            result = worker.finish()
    assert blocked_throughout, "the main thread could not run until the call returned"
    assert result in ("accepted", b"data")
    assert count > baseline * 0.25, f"{count} iterations against {baseline} unblocked"


def test_gil_released_during_blocking_sendall(impl: ModuleType) -> None:
    baseline = _count_for(0.1) * 3
    a, b = impl.socketpair()
    size = 8 * 1024 * 1024
    with a, b, external_poke(["drain", str(b.fileno())], (b.fileno(),)):
        with running(lambda: a.sendall(b"s" * size)) as (worker,):
            worker.entered.wait(5)
            time.sleep(0.1)
            count = _count_for(0.3)
            blocked_throughout = worker.is_alive()
            assert blocked_throughout, "the main thread could not run until sendall returned"
            got = 0
            while got < size:
                chunk = b.recv(1 << 20)
                assert chunk
                got += len(chunk)
            worker.finish()
    assert count > baseline * 0.25, f"{count} iterations against {baseline} unblocked"


# -- close() from another thread ------------------------------------------------

def _blocked_call(impl: ModuleType, op: str, timeout: Optional[float], unix_dir: str,
                  stack: contextlib.ExitStack) -> tuple[Any, Callable[[], Any], Callable[[], None]]:
    """(the socket to close, the call that blocks on it, a poke that unblocks it)."""
    if op in ("accept", "accept-unix"):
        if op == "accept":
            server = stack.enter_context(impl.create_server(("127.0.0.1", 0)))
        else:
            server = stack.enter_context(
                impl.create_server(os.path.join(unix_dir, "srv"), family=impl.AF_UNIX))
        server.settimeout(timeout)
        address = server.getsockname()

        def accept() -> Any:
            conn, _ = server.accept()
            conn.close()
            return conn

        def connect() -> None:
            with contextlib.suppress(OSError):
                impl.create_connection(address, timeout=1).close()

        return server, accept, connect
    a, b = impl.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    a.settimeout(timeout)
    if op == "recv":
        return a, (lambda: a.recv(1024)), b.close
    if op == "recv_into":
        buf = bytearray(1024)
        return a, (lambda: a.recv_into(buf)), b.close
    assert op == "sendall"
    return a, (lambda: a.sendall(b"z" * (64 * 1024 * 1024))), b.close


CLOSE_OPS = ["recv", "recv_into", "accept", "accept-unix", "sendall"]
TIMEOUTS = [pytest.param(None, id="blocking"), pytest.param(30.0, id="timeout")]


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("op", CLOSE_OPS)
def test_close_from_another_thread_wakes_blocked_call(
        impl: ModuleType, op: str, timeout: Optional[float], unix_dir: str) -> None:
    with contextlib.ExitStack() as stack:
        sock, call, poke = _blocked_call(impl, op, timeout, unix_dir, stack)
        fd = sock.fileno()
        inode = os.fstat(fd).st_ino
        with running(call) as (worker,):
            worker.entered.wait(5)
            time.sleep(0.2)
            assert worker.is_alive(), "the call did not block"
            closed_at = time.monotonic()
            sock.close()
            assert sock.closed
            assert sock.fileno() == -1
            worker.join(PROMPT_S)
            woke = not worker.is_alive()
            if not woke:
                poke()  # end the call so that the failure is reported, not a hang
            worker.join(10)
            assert not worker.is_alive(), "the blocked call never returned"
        assert woke, "close() did not wake the blocked call"
        assert worker.ended_at is not None
        took = worker.ended_at - closed_at
        assert took < PROMPT_S, f"woke {took:.2f} s after close()"
        assert isinstance(worker.error, OSError), (worker.result, worker.error)
        assert worker.error.errno == errno.EBADF, worker.error
        assert not isinstance(worker.error, TimeoutError)
    # the descriptor is really gone once the call has left
    assert not _still_open(fd, inode), f"fd {fd} was never closed"


def _still_open(fd: int, inode: int) -> bool:
    """Whether ``fd`` still refers to the socket with ``inode``."""
    try:
        return os.fstat(fd).st_ino == inode
    except OSError:
        return False


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_close_wakes_several_blocked_receivers(impl: ModuleType,
                                               timeout: Optional[float]) -> None:
    """Every receiver woken by close() reports EBADF, never a false EOF."""
    outcomes: list[object] = []
    for _ in range(12):
        a, b = impl.socketpair()
        a.settimeout(timeout)
        fd = a.fileno()
        inode = os.fstat(fd).st_ino
        with a, b:
            with running(*[lambda: a.recv(16) for _ in range(12)]) as workers:
                for worker in workers:
                    worker.entered.wait(5)
                time.sleep(0.1)
                assert all(worker.is_alive() for worker in workers)
                closed_at = time.monotonic()
                a.close()
                for worker in workers:
                    worker.join(max(0.0, closed_at + PROMPT_S - time.monotonic()))
                woke = not any(worker.is_alive() for worker in workers)
                if not woke:
                    b.close()
                for worker in workers:
                    worker.join(10)
            assert woke, "close() did not wake every blocked call"
            for worker in workers:
                assert worker.ended_at is not None
                assert worker.ended_at - closed_at < PROMPT_S
                error = worker.error
                outcomes.append(error.errno if isinstance(error, OSError) else
                                error if error is not None else worker.result)
        assert not _still_open(fd, inode)
    assert outcomes == [errno.EBADF] * len(outcomes), collections.Counter(map(repr, outcomes))


def test_calls_after_close_from_another_thread_fail_cleanly(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        with running(lambda: a.recv(16)) as (worker,):
            worker.entered.wait(5)
            time.sleep(0.1)
            a.close()
            worker.join(PROMPT_S)
            if worker.is_alive():
                b.sendall(b"wake")
            worker.join(10)
        assert isinstance(worker.error, OSError) and worker.error.errno == errno.EBADF
        for method, args in (("recv", (1,)), ("send", (b"x",)), ("sendall", (b"x",)),
                             ("getsockname", ())):
            with pytest.raises(OSError) as info:
                getattr(a, method)(*args)
            assert info.value.errno == errno.EBADF, method
        assert a.fileno() == -1
        a.close()  # a second close is a no-op
        # the peer sees the connection end
        b.settimeout(5)
        assert b.recv(16) == b""


# -- full duplex on one socket ------------------------------------------------

@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_concurrent_send_and_recv_on_one_socket(impl: ModuleType, family: str) -> None:
    size = 16 * 1024 * 1024
    a_to_b = os.urandom(size)
    b_to_a = os.urandom(size)

    def receive(sock: Any) -> str:
        return received_sha256(sock, size)

    def send(sock: Any, data: bytes) -> None:
        view = memoryview(data)
        offset = 0
        step = 1
        while offset < len(data):
            step = step * 7 % 1_000_003 + 1
            sock.sendall(view[offset:offset + step])
            offset += step

    with connected(impl, family, timeout=10) as (a, b):
        with running(lambda: send(a, a_to_b), lambda: receive(a),
                     lambda: send(b, b_to_a), lambda: receive(b)) as workers:
            results = [worker.finish(60) for worker in workers]
    assert results[1] == hashlib.sha256(b_to_a).hexdigest()
    assert results[3] == hashlib.sha256(a_to_b).hexdigest()


def test_many_threads_share_a_datagram_socket(impl: ModuleType) -> None:
    a, b = impl.socketpair(impl.AF_UNIX, impl.SOCK_DGRAM)
    senders, per_sender = 4, 200

    def send(tag: int) -> None:
        for i in range(per_sender):
            a.send(bytes([tag]) + i.to_bytes(4, "big"))

    def receive() -> list[bytes]:
        b.settimeout(10)
        return [b.recv(64) for _ in range(senders * per_sender)]

    with a, b:
        with running(receive, *[(lambda t=t: send(t)) for t in range(senders)]) as workers:
            received = workers[0].finish(30)
            for worker in workers[1:]:
                worker.finish(30)
    assert sorted(received) == sorted(bytes([t]) + i.to_bytes(4, "big")
                                      for t in range(senders) for i in range(per_sender))


# -- shared per-socket datagram state ------------------------------------------
#
# Two threads receive from one datagram socket while a third sends numbered
# datagrams: every datagram must arrive exactly once, whichever thread gets
# it.  The sender keeps at most a window of datagrams in flight (the receive
# queue never holds more), so UDP on loopback cannot drop any: the window is
# far below what the receive buffer holds, counting generously per datagram.

DGRAM_COUNT = 20_000
_END = b"end"


def _datagram_pair(impl: ModuleType, transport: str) -> tuple[Any, Any, Any, int]:
    """(receiver, sender, the receiver's address or None, window)."""
    if transport == "unix":
        receiver, sender = impl.socketpair(impl.AF_UNIX, impl.SOCK_DGRAM)
        return receiver, sender, None, 256  # a full queue blocks the sender: no drops
    receiver, sender = impl.DatagramSocket(), impl.DatagramSocket()
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    room = receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return receiver, sender, receiver.getsockname(), max(16, min(256, room // 4096))


def _receive_all_in_two_threads(impl: ModuleType, transport: str, timeout: Optional[float],
                                make_call: Callable[[Any], Callable[[], list[bytes]]]) -> None:
    receiver, sender, address, window = _datagram_pair(impl, transport)
    numbered = [i.to_bytes(4, "big") + b"...." for i in range(DGRAM_COUNT)]
    counts = [0, 0]
    ended: list[int] = []  # receivers that returned or failed

    def receive(k: int) -> list[bytes]:
        try:
            call = make_call(receiver)
            got: list[bytes] = []
            while True:
                items = call()
                for data in items:
                    if data == _END:
                        return got
                    got.append(data)
                counts[k] += len(items)
        finally:
            ended.append(k)

    def send() -> None:
        sent = 0
        while sent < DGRAM_COUNT:
            while sent - counts[0] - counts[1] > window:
                if ended:
                    return
                time.sleep(0.0002)
            sent += sender.send_many(numbered[sent:sent + 64], address)

    def hog() -> None:
        # keeps the GIL busy, so that a receiver back from the kernel waits
        # for it while the other one may still be receiving: memory shared
        # by the two calls shows as duplicated and missing datagrams
        while counts[0] + counts[1] < DGRAM_COUNT and not ended:
            pass

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.00005)
    try:
        with receiver, sender:
            receiver.settimeout(timeout)
            with running(lambda: receive(0), lambda: receive(1), send, hog) as workers:
                workers[2].finish(60)
                deadline = time.monotonic() + 10
                while len(ended) < 2 and time.monotonic() < deadline:
                    sender.send_many([_END], address)  # one per receiver, and spares
                    time.sleep(0.01)
                first, second = workers[0].finish(10), workers[1].finish(10)
    finally:
        sys.setswitchinterval(interval)
    got = first + second
    duplicated = len(got) - len(set(got))
    missing = len(set(numbered) - set(got))
    assert (duplicated, missing) == (0, 0), f"{duplicated} duplicated, {missing} missing"
    assert sorted(got) == numbered
    assert first and second, "one thread received everything: no concurrency was tested"


DGRAM_TRANSPORTS = ["unix", "udp"]


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("transport", DGRAM_TRANSPORTS)
def test_two_threads_recv_many_on_one_socket(impl: ModuleType, transport: str,
                                             timeout: Optional[float]) -> None:
    def make_call(receiver: Any) -> Callable[[], list[bytes]]:
        return lambda: [data for data, _ in receiver.recv_many(64, 64)]
    _receive_all_in_two_threads(impl, transport, timeout, make_call)


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("transport", DGRAM_TRANSPORTS)
def test_two_threads_recv_batch_on_one_socket(impl: ModuleType, transport: str,
                                              timeout: Optional[float]) -> None:
    def make_call(receiver: Any) -> Callable[[], list[bytes]]:
        batch = impl.DatagramBatch(64, 64)  # one batch per thread

        def call() -> list[bytes]:
            n = receiver.recv_batch(batch)
            return [bytes(batch.data(k)) for k in range(n)]
        return call
    _receive_all_in_two_threads(impl, transport, timeout, make_call)


def _blocked_in(worker: Worker) -> None:
    worker.entered.wait(5)
    time.sleep(0.2)
    assert worker.is_alive(), "the call did not block"


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_one_batch_refuses_a_second_concurrent_recv_batch(impl: ModuleType,
                                                          timeout: Optional[float]) -> None:
    receiver, sender = impl.socketpair(impl.AF_UNIX, impl.SOCK_DGRAM)
    batch = impl.DatagramBatch(16, 64)
    numbered = [b"%d" % i for i in range(10)]

    def first_call() -> list[bytes]:
        n = receiver.recv_batch(batch)
        return [bytes(batch.data(k)) for k in range(n)]

    with receiver, sender:
        receiver.settimeout(timeout)
        with running(first_call) as (first,):
            _blocked_in(first)
            with running(lambda: receiver.recv_batch(batch)) as (second,):
                second.join(PROMPT_S)
                refused_at_once = not second.is_alive()
                sender.send_many(numbered)  # ends whichever call is still waiting
            got = first.finish()
        assert refused_at_once, "the second recv_batch on a batch in use waited"
        with pytest.raises(RuntimeError, match="in use"):
            second.finish()
        receiver.settimeout(0.0)
        while True:  # the rest, if the first call did not take everything
            try:
                n = receiver.recv_batch(batch)
            except BlockingIOError:
                break
            got += [bytes(batch.data(k)) for k in range(n)]
    assert got == numbered


def test_batch_refuses_views_while_another_thread_receives_into_it(impl: ModuleType) -> None:
    receiver, sender = impl.socketpair(impl.AF_UNIX, impl.SOCK_DGRAM)
    batch = impl.DatagramBatch(4, 64)
    with receiver, sender:
        receiver.settimeout(30)
        sender.send(b"first")
        assert receiver.recv_batch(batch) == 1
        try:
            memoryview(batch).release()
            buffer_protocol = True
        except TypeError:  # the pure twin's batch has no buffer protocol
            buffer_protocol = False
        takes: dict[str, Callable[[], Any]] = {
            "data": lambda: batch.data(0), "iteration": lambda: list(batch),
            "length": lambda: batch.length(0), "address": lambda: batch.address(0),
            "truncated": lambda: batch.truncated(0)}
        if buffer_protocol:
            takes["memoryview"] = lambda: memoryview(batch)
        outcomes: dict[str, Any] = {}
        with running(lambda: receiver.recv_batch(batch)) as (worker,):
            _blocked_in(worker)
            for name, take in takes.items():
                try:
                    outcomes[name] = take()
                except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
                    outcomes[name] = exc
            sender.send(b"second")
            assert worker.finish() == 1
        # views taken meanwhile (none should have been) must still show "first"
        seen = {name: bytes(value) if isinstance(value, memoryview) else value
                for name, value in outcomes.items()}
        assert all(isinstance(value, RuntimeError) for value in outcomes.values()), seen
        assert bytes(batch.data(0)) == b"second"
        assert [bytes(view) for view, _ in batch] == [b"second"]
        if buffer_protocol:
            with memoryview(batch) as whole:
                assert bytes(whole[:6]) == b"second"
