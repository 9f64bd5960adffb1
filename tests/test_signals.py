"""Signals during blocking calls: PEP 475 retries for handlers that return,
prompt exceptions for handlers that raise, and deadlines that survive both."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import Worker as SharedWorker

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer") or not hasattr(signal, "pthread_sigmask"),
    reason="needs setitimer and pthread_sigmask",
)

_HANDLED = {signal.SIGALRM, signal.SIGINT}
# how long a helper waits before unsticking a call that should have ended
WATCHDOG_S = 5.0
PROMPT_S = 2.0


class Worker(SharedWorker):
    """A thread that blocks the signals under test, so they reach the main thread."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(target, blocked_signals=_HANDLED)


@contextlib.contextmanager
def started(target: Callable[[], Any]) -> Iterator[Worker]:
    worker = Worker(target)
    worker.start()
    try:
        yield worker
    finally:
        worker.join(15)
        assert not worker.is_alive(), "helper thread did not finish"


@contextlib.contextmanager
def watchdog(poke: Callable[[], None], after: float = WATCHDOG_S) -> Iterator[threading.Event]:
    """Run ``poke`` after ``after`` seconds unless the block ends first, so a
    call that wrongly ignores a signal or a deadline fails instead of hanging."""
    done = threading.Event()
    fired = threading.Event()

    def guard() -> None:
        if not done.wait(after):
            fired.set()
            with contextlib.suppress(OSError):
                poke()

    with started(guard):
        try:
            yield fired
        finally:
            done.set()


@contextlib.contextmanager
def itimer(handler: Callable[[int, Any], None], first: float,
           repeat: float = 0.0) -> Iterator[None]:
    """SIGALRM with ``handler`` after ``first`` seconds, then every ``repeat``."""
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, first, repeat)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0, 0.0)
        signal.signal(signal.SIGALRM, previous)


class Ticks:
    """A no-op handler that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def recv_exact(sock: Any, n: int) -> bytes:
    chunks = []
    got = 0
    while got < n:
        chunk = sock.recv(n - got)
        assert chunk, f"EOF after {got} of {n} bytes"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _later(delay: float, action: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        time.sleep(delay)
        return action()
    return run


# -- handlers that return: calls are retried and complete ---------------------

@pytest.mark.parametrize("method", ["recv", "recv_into"])
def test_noop_signal_does_not_interrupt_blocking_recv(impl: ModuleType, method: str) -> None:
    payload = bytes(range(256)) * 16
    ticks = Ticks()
    a, b = impl.socketpair()
    with a, b:
        with started(_later(0.4, lambda: b.sendall(payload))) as sender, \
                watchdog(b.close):
            with itimer(ticks, 0.002, 0.002):
                if method == "recv":
                    first = a.recv(len(payload))
                else:
                    buf = bytearray(len(payload))
                    first = bytes(buf[:a.recv_into(buf)])
                during = ticks.count
            sender.finish()
        data = first + recv_exact(a, len(payload) - len(first))
    assert data == payload
    assert during >= 20, f"only {during} signals fired while blocked"


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_noop_signal_does_not_interrupt_blocking_accept(
        impl: ModuleType, family: str, unix_dir: str) -> None:
    if family == "tcp":
        server = impl.create_server(("127.0.0.1", 0))
    else:
        server = impl.create_server(os.path.join(unix_dir, "srv"), family=impl.AF_UNIX)
    address = server.getsockname()

    def connect_and_send() -> None:
        with impl.create_connection(address, timeout=10) as client:
            client.sendall(b"hello")
            assert client.recv(16) == b"world"

    ticks = Ticks()
    with server:
        with started(_later(0.4, connect_and_send)) as client_thread:
            with watchdog(lambda: impl.create_connection(address, timeout=1).close()):
                with itimer(ticks, 0.002, 0.002):
                    conn, _ = server.accept()
                    during = ticks.count
            with conn:
                assert recv_exact(conn, 5) == b"hello"
                conn.sendall(b"world")
                client_thread.finish()
    assert during >= 20, f"only {during} signals fired while blocked"


@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_noop_signal_does_not_break_blocking_sendall(impl: ModuleType, family: str) -> None:
    size = 16 * 1024 * 1024
    payload = os.urandom(size)
    if family == "unix":
        a, b = impl.socketpair()
    else:
        with impl.create_server(("127.0.0.1", 0)) as server:
            a = impl.create_connection(server.getsockname(), timeout=10)
            a.settimeout(None)
            b, _ = server.accept()

    def slow_reader() -> str:
        time.sleep(0.3)
        digest = hashlib.sha256()
        buf = bytearray(65536)
        got = 0
        while got < size:
            n = b.recv_into(buf)
            if n == 0:
                break
            digest.update(memoryview(buf)[:n])
            got += n
            if got < size // 2:
                time.sleep(0.0005)  # keep the sender waiting for a while
        return digest.hexdigest()

    ticks = Ticks()
    with a, b:
        with started(slow_reader) as reader, watchdog(b.close, after=30):
            with itimer(ticks, 0.002, 0.002):
                a.sendall(payload)
                during = ticks.count
            received = reader.finish(30)
    assert received == hashlib.sha256(payload).hexdigest()
    assert during >= 20, f"only {during} signals fired while sending"


# -- handlers that raise: the exception surfaces promptly ---------------------

def _blocking_call(impl: ModuleType, op: str, timeout: Optional[float],
                   stack: contextlib.ExitStack) -> tuple[Callable[[], Any], Callable[[], None]]:
    """(the call that blocks, a poke that would unblock it) for ``op``."""
    if op == "accept":
        server = stack.enter_context(impl.create_server(("127.0.0.1", 0)))
        server.settimeout(timeout)
        address = server.getsockname()

        def accept() -> Any:
            conn, _ = server.accept()
            conn.close()
            return conn

        return accept, lambda: impl.create_connection(address, timeout=1).close()
    a, b = impl.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    a.settimeout(timeout)
    if op == "recv":
        return (lambda: a.recv(1024)), (lambda: b.send(b"poke"))
    buf = bytearray(1024)
    return (lambda: a.recv_into(buf)), (lambda: b.send(b"poke"))


OPS = ["recv", "recv_into", "accept"]
TIMEOUTS = [pytest.param(None, id="blocking"), pytest.param(30.0, id="timeout")]


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("op", OPS)
def test_raising_handler_interrupts_call(
        impl: ModuleType, op: str, timeout: Optional[float]) -> None:
    with contextlib.ExitStack() as stack:
        call, poke = _blocking_call(impl, op, timeout, stack)
        with watchdog(poke) as fired:
            start = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                with itimer(_raise_keyboard_interrupt, 0.2):
                    call()
            elapsed = time.monotonic() - start
        assert not fired.is_set()
        assert 0.15 <= elapsed < PROMPT_S, f"interrupted after {elapsed:.2f} s"


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("op", OPS)
def test_sigint_from_another_thread_raises_keyboardinterrupt(
        impl: ModuleType, op: str, timeout: Optional[float]) -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with contextlib.ExitStack() as stack:
            call, poke = _blocking_call(impl, op, timeout, stack)
            with watchdog(poke) as fired:
                start = time.monotonic()
                with pytest.raises(KeyboardInterrupt):
                    with started(_later(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))):
                        call()
                elapsed = time.monotonic() - start
            assert not fired.is_set()
            assert 0.15 <= elapsed < PROMPT_S, f"interrupted after {elapsed:.2f} s"
    finally:
        signal.signal(signal.SIGINT, previous)


def test_socket_still_usable_after_interrupt(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(KeyboardInterrupt):
            with itimer(_raise_keyboard_interrupt, 0.1):
                with watchdog(lambda: b.send(b"poke")):
                    a.recv(16)
        b.sendall(b"after")
        assert recv_exact(a, 5) == b"after"
        a.sendall(b"reply")
        assert recv_exact(b, 5) == b"reply"


# -- deadlines survive a stream of signals -------------------------------------

@pytest.mark.parametrize("op", ["recv", "recv_into", "accept", "sendall"])
def test_timeout_honoured_while_signals_fire(impl: ModuleType, op: str) -> None:
    timeout = 0.5
    ticks = Ticks()
    with contextlib.ExitStack() as stack:
        if op == "sendall":
            a, b = impl.socketpair()
            stack.enter_context(a)
            stack.enter_context(b)
            a.settimeout(timeout)
            data = b"x" * (32 * 1024 * 1024)

            def call() -> Any:
                return a.sendall(data)

            def poke() -> None:
                b.shutdown(impl.SHUT_RDWR)
        else:
            call, poke = _blocking_call(impl, op, timeout, stack)
        with watchdog(poke) as fired:
            start = time.monotonic()
            with itimer(ticks, 0.003, 0.003):
                with pytest.raises(TimeoutError):
                    call()
                during = ticks.count
            elapsed = time.monotonic() - start
        assert not fired.is_set(), "the deadline was lost: the watchdog had to end the call"
    assert timeout * 0.9 <= elapsed < timeout + 1.0, f"timed out after {elapsed:.2f} s"
    assert during >= 20, f"only {during} signals fired while waiting"


def test_blocking_recv_with_signals_completes_many_times(impl: ModuleType) -> None:
    """Many short waits, each interrupted, each returning the right message."""
    rounds = 40
    ticks = Ticks()
    a, b = impl.socketpair()

    def feeder() -> None:
        for i in range(rounds):
            time.sleep(0.005)
            b.sendall(i.to_bytes(4, "big") * 8)

    with a, b:
        with started(feeder) as feeding, watchdog(b.close, after=20):
            with itimer(ticks, 0.001, 0.001):
                for i in range(rounds):
                    assert recv_exact(a, 32) == i.to_bytes(4, "big") * 8
            feeding.finish()
    assert ticks.count >= 20
