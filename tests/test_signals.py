"""Signals during blocking calls: PEP 475 retries for handlers that return,
prompt exceptions for handlers that raise, and deadlines that survive both."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import signal
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import Worker as SharedWorker, connected, full_unix_listener, received_sha256

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

    def keep_sender_waiting(got: int) -> None:
        if got < size // 2:
            time.sleep(0.0005)  # keep the sender waiting for a while

    def slow_reader() -> str:
        time.sleep(0.3)
        return received_sha256(b, size, 65536, after_each=keep_sender_waiting)

    ticks = Ticks()
    with connected(impl, family, timeout=10) as (a, b):
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
    if op == "connect":
        if timeout is not None:
            pytest.skip("a Unix connect with a timeout does not wait: EAGAIN, as the stdlib's")
        return _blocked_connect(impl, timeout, stack)
    a, b = impl.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    if op in SENDING:
        _fill(a)  # from here on a send waits for the peer to read
        a.settimeout(timeout)
        return _SEND_OPS[op](a, stack), (lambda: b.close())
    a.settimeout(timeout)
    if op == "recv":
        return (lambda: a.recv(1024)), (lambda: b.send(b"poke"))
    if op == "recv_exactly":
        return (lambda: a.recv_exactly(8)), (lambda: b.send(b"poke-poke"))
    if op == "recv_msg":
        return (lambda: a.recv_msg()), (lambda: b.send(b"\0\0\0\1!"))
    if op == "recv_ahead":
        return (lambda: a.recv_ahead()), (lambda: b.send(b"poke"))
    if op == "recvfrom":
        return (lambda: a.recvfrom(1024)), (lambda: b.send(b"poke"))
    buf = bytearray(1024)
    return (lambda: a.recv_into(buf)), (lambda: b.send(b"poke"))


def _fill(sock: Any) -> None:
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.send(b"f" * 65536)
    sock.setblocking(True)


def _sendfile_call(sock: Any, stack: contextlib.ExitStack) -> Callable[[], Any]:
    import tempfile
    source = stack.enter_context(tempfile.TemporaryFile())
    source.write(b"s" * (1 << 20))
    source.flush()
    return lambda: sock.sendfile(source, 0)


_SEND_OPS: dict[str, Callable[[Any, contextlib.ExitStack], Callable[[], Any]]] = {
    "sendall": lambda a, stack: (lambda: a.sendall(b"x" * 60_000)),
    "send_msg": lambda a, stack: (lambda: a.send_msg(b"x" * 60_000)),
    "sendall_buffers": lambda a, stack: (lambda: a.sendall_buffers([b"x" * 30_000] * 2)),
    "sendfile": _sendfile_call,
}
SENDING = set(_SEND_OPS)


def _blocked_connect(impl: ModuleType, timeout: Optional[float],
                     stack: contextlib.ExitStack) -> tuple[Callable[[], Any], Callable[[], None]]:
    """A connect that waits: a Unix listener whose backlog is full."""
    import socket
    import tempfile
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="fs-", dir="/tmp"))
    path = os.path.join(folder, "full")
    listener = full_unix_listener(path, stack)
    sock = stack.enter_context(impl.StreamSocket(socket.AF_UNIX))
    sock.settimeout(timeout)

    def poke() -> None:
        for _ in range(8):
            with contextlib.suppress(OSError):
                listener.accept()[0].close()

    return (lambda: sock.connect(path)), poke


OPS = ["recv", "recv_into", "recvfrom", "accept", "recv_exactly", "recv_msg", "recv_ahead",
       "connect", *_SEND_OPS]
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


# -- a storm of signals: a no-op handler every 100 µs ------------------------------

STORM_S = 0.0001
STORM_BYTES = 256 * 1024 * 1024
STORM_CHUNK = 4 * 1024 * 1024


def _storm_chunks() -> Iterator[bytes]:
    """STORM_BYTES in chunks that differ from each other (a numbered header)."""
    body = os.urandom(STORM_CHUNK)
    for i in range(STORM_BYTES // STORM_CHUNK):
        yield i.to_bytes(8, "big") + body[8:]


def _storm_pair(impl: ModuleType, family: str) -> tuple[Any, Any]:
    if family == "unix":
        a, b = impl.socketpair()
        return a, b
    with impl.create_server(("127.0.0.1", 0)) as server:
        a = impl.create_connection(server.getsockname(), timeout=10)
        a.settimeout(None)
        b, _ = server.accept()
    return a, b


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["send", "receive"])
@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_signal_storm_during_256mib_transfer(impl: ModuleType, family: str,
                                             direction: str) -> None:
    """256 MiB through sendall (or recv_into/recv_exactly_into/recv) in the
    thread that takes the signals, one every 100 µs: every byte arrives, in
    order (SHA-256 of both ends)."""
    a, b = _storm_pair(impl, family)
    ticks = Ticks()

    def send_all(sock: Any) -> str:
        digest = hashlib.sha256()
        for chunk in _storm_chunks():
            digest.update(chunk)
            sock.sendall(chunk)
        sock.shutdown(impl.SHUT_WR)
        return digest.hexdigest()

    def receive_all(sock: Any, mixed: bool) -> tuple[str, int]:
        digest = hashlib.sha256()
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        got = 0
        for i in itertools.count():
            if mixed and i % 3 == 1:
                want = min(len(buf), STORM_BYTES - got)
                if want == 0:
                    n = sock.recv_into(view)
                else:
                    n = sock.recv_exactly_into(view, want)
                chunk: Any = view[:n]
            elif mixed and i % 3 == 2:
                chunk = sock.recv(len(buf))
                n = len(chunk)
            else:
                n = sock.recv_into(view)
                chunk = view[:n]
            if n == 0:
                break
            digest.update(chunk)
            got += n
        return digest.hexdigest(), got

    with a, b:
        if direction == "send":
            with started(lambda: receive_all(b, mixed=False)) as peer, \
                    watchdog(b.close, after=120):
                start = time.monotonic()
                with itimer(ticks, STORM_S, STORM_S):
                    sent = send_all(a)
                    during = ticks.count
                elapsed = time.monotonic() - start
                received, count = peer.finish(120)
        else:
            with started(lambda: send_all(b)) as peer, watchdog(b.close, after=120):
                start = time.monotonic()
                with itimer(ticks, STORM_S, STORM_S):
                    received, count = receive_all(a, mixed=True)
                    during = ticks.count
                elapsed = time.monotonic() - start
                sent = peer.finish(120)
    print(f"{impl.IMPLEMENTATION} {family} {direction}: {count} bytes, "
          f"{during} signals handled in {elapsed:.2f} s")
    assert count == STORM_BYTES
    assert received == sent
    assert during >= 20, f"only {during} signals handled during the transfer"


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_signal_storm_during_long_blocking_accept(
        impl: ModuleType, family: str, timeout: Optional[float], unix_dir: str) -> None:
    """accept() blocked for a second under a signal every 100 µs still
    accepts the connection that finally comes, and data flows."""
    if family == "tcp":
        server = impl.create_server(("127.0.0.1", 0))
    else:
        server = impl.create_server(os.path.join(unix_dir, "srv"), family=impl.AF_UNIX)
    address = server.getsockname()
    server.settimeout(timeout)

    def connect_and_talk() -> bytes:
        with impl.create_connection(address, timeout=10) as client:
            client.sendall(b"hello")
            return bytes(client.recv_exactly(5))

    ticks = Ticks()
    with server:
        with started(_later(1.0, connect_and_talk)) as client_thread, \
                watchdog(lambda: impl.create_connection(address, timeout=1).close(), after=30):
            start = time.monotonic()
            with itimer(ticks, STORM_S, STORM_S):
                conn, _ = server.accept()
                during = ticks.count
            waited = time.monotonic() - start
            with conn:
                conn.settimeout(10)
                assert conn.recv_exactly(5) == b"hello"
                conn.sendall(b"world")
                assert client_thread.finish() == b"world"
    print(f"{impl.IMPLEMENTATION} {family}: accept waited {waited:.2f} s, {during} signals")
    assert waited >= 0.8, "accept returned before the client connected"
    assert during >= 20, f"only {during} signals handled while blocked"


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_signal_storm_sendall_timeout_still_honoured(impl: ModuleType, family: str) -> None:
    """sendall to a peer that never reads, timeout 1 s, a signal every
    100 µs: TimeoutError, neither early nor much late."""
    timeout = 1.0
    a, b = _storm_pair(impl, family)
    ticks = Ticks()
    with a, b:
        a.settimeout(timeout)
        with watchdog(lambda: b.shutdown(impl.SHUT_RDWR), after=30) as fired:
            start = time.monotonic()
            with itimer(ticks, STORM_S, STORM_S):
                with pytest.raises(TimeoutError):
                    a.sendall(b"x" * (64 * 1024 * 1024))
                during = ticks.count
            elapsed = time.monotonic() - start
        assert not fired.is_set(), "the deadline was lost: the watchdog had to end the call"
    print(f"{impl.IMPLEMENTATION} {family}: timed out after {elapsed:.2f} s, {during} signals")
    assert timeout * 0.9 <= elapsed < timeout + 5.0, f"timed out after {elapsed:.2f} s"
    assert during >= 20, f"only {during} signals handled while waiting"
