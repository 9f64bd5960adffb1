"""close() acts on this socket object only.

A call blocked in another thread is woken promptly (it raises EBADF), but
nothing is done to the connection or to the open file description, which a
forked worker or a duplicated descriptor may share: their calls go on.  Also:
close() never holds the GIL while the kernel lingers, and a socket is
initialised once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from types import ModuleType
from typing import Any

import pytest
from conftest import Worker, full_unix_listener

PROMPT_S = 3.0


def _blocked(target: Any) -> Worker:
    worker = Worker(target)
    worker.start()
    worker.entered.wait(5)
    time.sleep(0.2)  # into the syscall
    assert worker.is_alive(), "the call did not block"
    return worker


def _assert_woken_with_ebadf(worker: Worker, closed_at: float) -> None:
    worker.join(PROMPT_S)
    assert not worker.is_alive(), "close() did not wake the blocked call"
    assert worker.ended_at is not None and worker.ended_at - closed_at < PROMPT_S
    assert isinstance(worker.error, OSError), repr(worker.error)
    assert worker.error.errno == errno.EBADF


_WORKER_SCRIPT = textwrap.dedent("""
    import select, socket, sys
    listener = socket.socket(fileno=int(sys.argv[1]))
    print("ready", flush=True)
    # wait without touching the shared O_NONBLOCK flag
    assert select.select([listener], [], [], 20)[0], "no connection came"
    conn, _ = listener.accept()
    with conn:
        conn.sendall(b"served by the worker")
    listener.detach()
""")


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["blocking", "timeout"])
def test_close_in_parent_leaves_other_processes_accepting(
        impl: ModuleType, timeout: Any) -> None:
    # the pre-fork server: workers share the listening socket's open file
    # description; the parent closing its own socket (here while one of its
    # threads is blocked in accept) must not break the workers' accept
    server = impl.create_server(("127.0.0.1", 0))
    server.settimeout(timeout)
    address = server.getsockname()
    with subprocess.Popen(
            [sys.executable, "-c", _WORKER_SCRIPT, str(server.fileno())],
            pass_fds=(server.fileno(),), stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            worker = _blocked(server.accept)
            closed_at = time.monotonic()
            server.close()
            _assert_woken_with_ebadf(worker, closed_at)
            # only the worker is listening now, and it serves
            with socket.create_connection(address, timeout=5) as client:
                assert client.recv(100) == b"served by the worker"
            assert child.wait(10) == 0
        finally:
            if child.poll() is None:
                child.kill()
            server.close()


def test_close_leaves_a_duplicated_descriptor_working(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    duplicate = socket.socket(fileno=os.dup(a.fileno()))
    with b, duplicate:
        worker = _blocked(lambda: a.recv(100))
        closed_at = time.monotonic()
        a.close()
        _assert_woken_with_ebadf(worker, closed_at)
        # the connection is intact for the other holder, both ways
        duplicate.sendall(b"still here")
        assert b.recv(100) == b"still here"
        b.sendall(b"and back")
        duplicate.settimeout(5)
        assert duplicate.recv(100) == b"and back"


def test_close_wakes_connect_to_a_full_unix_backlog(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "full")
    with contextlib.ExitStack() as stack:
        full_unix_listener(path, stack)
        sock = impl.StreamSocket(socket.AF_UNIX)
        worker = _blocked(lambda: sock.connect(path))
        closed_at = time.monotonic()
        sock.close()
        _assert_woken_with_ebadf(worker, closed_at)


def test_close_while_lingering_releases_the_gil(impl: ModuleType) -> None:
    # with SO_LINGER and unsent data, close() waits in the kernel for up to
    # the linger time: other threads must run meanwhile
    server = socket.create_server(("127.0.0.1", 0))
    with server:
        sock = impl.create_connection(server.getsockname(), timeout=5)
        peer, _ = server.accept()
    with peer:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 1))
        sock.setblocking(False)
        try:
            while True:  # data the peer never reads: close() lingers
                sock.send(b"l" * 65536)
        except BlockingIOError:
            pass
        sock.setblocking(True)
        longest_gap = [0.0]
        stop = threading.Event()

        def tick() -> None:
            last = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                longest_gap[0] = max(longest_gap[0], now - last)
                last = now

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        time.sleep(0.05)
        started = time.monotonic()
        sock.close()
        lingered = time.monotonic() - started
        stop.set()
        ticker.join(5)
    assert lingered > 0.5, "close() did not linger; the test proves nothing"
    # the ticker waits for the GIL at most a few switch intervals, not the linger
    assert longest_gap[0] < 0.25, f"another thread stalled {longest_gap[0]:.3f} s"


@pytest.mark.parametrize("kind", ["StreamSocket", "DatagramSocket"])
def test_init_twice_is_refused(impl: ModuleType, kind: str) -> None:
    cls = getattr(impl, kind)
    with cls(socket.AF_INET) as sock:
        with pytest.raises(RuntimeError, match="already initialised"):
            sock.__init__(socket.AF_INET)
        assert not sock.closed
        sock.settimeout(1)
    with pytest.raises(RuntimeError, match="already initialised"):
        sock.__init__(socket.AF_INET)
    assert sock.closed  # nothing was reopened behind the caller's back


def test_init_refused_on_accepted_and_paired_sockets(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        for sock in (a, b):
            with pytest.raises(RuntimeError, match="already initialised"):
                sock.__init__(socket.AF_UNIX)
    with impl.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=5):
            conn, _ = server.accept()
            with conn:
                with pytest.raises(RuntimeError, match="already initialised"):
                    conn.__init__(socket.AF_INET)
