"""Fixtures shared by every test: both implementations, loopback addresses,
short Unix paths, a self-signed TLS certificate, and a check that no test
leaks a file descriptor; and the helpers several test files use (connected
pairs, small-buffer pairs, hashing what a socket receives, TLS contexts)."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Optional

import pytest

import fastsock
from fastsock import _names

# the names of the implementations ("cython", "python"): the params of every
# fixture that runs a test on each
IMPLEMENTATIONS = list(_names.IMPLEMENTATIONS)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """FASTSOCK_TEST_SHARD=i/n keeps every n-th selected test from the i-th,
    so that n processes of a slow run (under memcheck) share the suite."""
    shard = os.environ.get("FASTSOCK_TEST_SHARD", "")
    if not shard:
        return
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise pytest.UsageError(f"FASTSOCK_TEST_SHARD={shard!r}: expected i/n") from None
    if not 0 <= index < count:
        raise pytest.UsageError(f"FASTSOCK_TEST_SHARD={shard!r}: i must be in 0..n-1")
    config.hook.pytest_deselected(
        items=[item for position, item in enumerate(items) if position % count != index])
    items[:] = items[index::count]


def implementation_module_name(name: str) -> str:
    """The module of implementation ``name``, for a child process to import."""
    return _names.IMPLEMENTATIONS[name][0]


def implementation_module(name: str) -> ModuleType:
    """The module of implementation ``name`` (``"cython"`` or ``"python"``)."""
    return importlib.import_module(implementation_module_name(name))


def compiled_module() -> ModuleType:
    """The compiled module; its absence fails the test unless pure mode was
    asked for (FASTSOCK_NO_EXTENSIONS), where it skips."""
    try:
        return implementation_module("cython")
    except ImportError as exc:
        if os.environ.get("FASTSOCK_NO_EXTENSIONS", "") not in ("", "0"):
            pytest.skip(f"FASTSOCK_NO_EXTENSIONS is set and the extension is absent: {exc}")
        pytest.fail(f"the compiled extension cannot be imported: {exc}")


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = _has_ipv6()


class Worker(threading.Thread):
    """Runs ``target`` in a thread, keeping its result or exception and when
    it ended; ``blocked_signals`` are blocked there so they reach the main
    thread.  ``finish()`` joins (bounded) and returns the result or raises."""

    def __init__(self, target: Callable[[], Any], name: Optional[str] = None,
                 blocked_signals: Iterable[signal.Signals] = ()) -> None:
        super().__init__(daemon=True, name=name)
        self._target_fn = target
        self._blocked = set(blocked_signals)
        self.entered = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.ended_at: Optional[float] = None

    def run(self) -> None:
        if self._blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, self._blocked)
        self.entered.set()
        try:
            self.result = self._target_fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def finish(self, timeout: float = 15.0) -> Any:
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not finish in {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result


def full_unix_listener(path: str, stack: contextlib.ExitStack) -> socket.socket:
    """A Unix stream listener at ``path`` whose backlog is full: the next
    connect to it waits (blocking) or fails with EAGAIN (non-blocking).  The
    listener and the connections filling it are closed with ``stack``."""
    listener = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    listener.bind(path)
    listener.listen(0)
    while True:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect(path)
        except BlockingIOError:
            probe.close()
            return listener
        stack.enter_context(probe)


@contextlib.contextmanager
def alarm_after(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise ``error()`` from a SIGALRM handler in the main thread after
    ``seconds`` (a signal handler's exception during a blocking call, or a
    bound on a step that must not hang); the previous handler is put back."""
    def handler(signum: int, frame: Any) -> None:
        raise error()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def background(target: Callable[[], Any], *socks: Any) -> Iterator[Worker]:
    """Run ``target`` in a thread for the block; if the block fails, shut
    ``socks`` down so that the thread ends too."""
    worker = Worker(target)
    worker.start()
    try:
        yield worker
    except BaseException:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise
    finally:
        worker.join(15)
        assert not worker.is_alive(), "helper thread did not finish"


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation module under test; every behavioural test runs on both."""
    name = request.param
    if name == "cython" and fastsock.IMPLEMENTATION != "cython":
        # test_implementation.py fails loudly when this should not happen
        pytest.skip("compiled extension not loaded")
    return implementation_module(name)


@pytest.fixture
def unix_dir() -> Iterator[str]:
    """A short private directory for AF_UNIX paths (sun_path holds 108 bytes)."""
    path = tempfile.mkdtemp(prefix="fs-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["ipv4", "ipv6", "unix"])
def stream_family(request: pytest.FixtureRequest, unix_dir: str) -> tuple[int, object]:
    """(family, bind address) for each stream family on loopback."""
    if request.param == "ipv4":
        return socket.AF_INET, ("127.0.0.1", 0)
    if request.param == "ipv6":
        if not HAS_IPV6:
            pytest.skip("no IPv6 loopback")
        return socket.AF_INET6, ("::1", 0)
    return socket.AF_UNIX, os.path.join(unix_dir, "s")


@contextlib.contextmanager
def connected(impl: ModuleType, transport: str,
              timeout: float = 5.0) -> Iterator[tuple[Any, Any]]:
    """A connected (a, b) stream pair of ``impl``: a Unix socketpair or TCP
    on 127.0.0.1, both blocking; closed afterwards."""
    if transport == "unix":
        a, b = impl.socketpair()
    else:
        with impl.create_server(("127.0.0.1", 0)) as server:
            a = impl.create_connection(server.getsockname(), timeout=timeout)
            try:
                b, _ = server.accept()
            except BaseException:
                a.close()
                raise
        a.settimeout(None)
    with a, b:
        yield a, b


@contextlib.contextmanager
def small_buffers(impl: ModuleType, transport: str) -> Iterator[tuple[Any, Any]]:
    """(sender, receiver) with small kernel buffers; the receiver reads only when told."""
    if transport == "unix":
        a, b = impl.socketpair()
        with a, b:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            yield a, b
        return
    with impl.StreamSocket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited
        server.bind(("127.0.0.1", 0))
        server.listen()
        with impl.StreamSocket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            client.connect(server.getsockname())
            conn, _ = server.accept()
            with conn:
                yield client, conn


def received_sha256(sock: Any, size: int, bufsize: int = 256 * 1024,
                    after_each: Optional[Callable[[int], None]] = None) -> str:
    """Receive ``size`` bytes from ``sock`` with recv_into (fewer if the peer
    closes first) and return their SHA-256 hex digest; ``after_each`` is
    called with the count received so far after each receive."""
    digest = hashlib.sha256()
    buf = bytearray(bufsize)
    got = 0
    while got < size:
        n = sock.recv_into(buf)
        if n == 0:
            break
        digest.update(memoryview(buf)[:n])
        got += n
        if after_each is not None:
            after_each(got)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(cert, key) of a self-signed certificate for localhost, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def server_context(certificate: tuple[str, str]) -> ssl.SSLContext:
    """A TLS server context presenting ``certificate``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def client_context(certificate: tuple[str, str]) -> ssl.SSLContext:
    """A TLS client context that trusts ``certificate`` alone."""
    return ssl.create_default_context(cafile=certificate[0])


def _open_fds() -> set[int]:
    return set(int(fd) for fd in os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leak() -> Iterator[None]:
    """Fail a test that leaves a descriptor open behind it."""
    before = _open_fds()
    yield
    leaked = _new_sockets(before)
    if leaked:
        # a socket only garbage (a reference cycle) still holds is no leak; a full
        # collection costs tens of milliseconds, so only when it can matter
        gc.collect()
        leaked = _new_sockets(before)
    assert not leaked, f"test leaked socket descriptors {sorted(leaked)}"


def _new_sockets(before: set[int]) -> set[int]:
    # the listing itself opened a descriptor that is gone again; report only
    # descriptors that are still open and are sockets
    return {fd for fd in _open_fds() - before if os.path.exists(f"/proc/self/fd/{fd}")
            and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")}


# -- the web demo: a site on disk and the server on either implementation -------


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def web_impl(request: pytest.FixtureRequest) -> str:
    """The implementation the web server subprocess runs on."""
    if request.param == "cython" and fastsock.IMPLEMENTATION != "cython":
        pytest.skip("compiled extension not loaded")
    return str(request.param)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """(root, {url path: contents}) of a directory made for serving."""
    from web_support import make_site
    root = tmp_path_factory.mktemp("site") / "root"
    root.mkdir()
    return root, make_site(root)


@pytest.fixture(scope="module")
def served(web_impl: str, site: tuple[Path, dict[str, bytes]]) -> Iterator[Any]:
    """One server per module and implementation, serving ``site``."""
    from web_support import running_server
    with running_server(web_impl, site[0]) as server:
        yield server
