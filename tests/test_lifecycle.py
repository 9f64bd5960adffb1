"""Descriptor lifetime: garbage collection, close-on-exec, SIGPIPE, fork."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from conftest import implementation_module_name


def _inode(fd: int) -> int:
    return os.fstat(fd).st_ino


def _still_open(fd: int, inode: int) -> bool:
    """Whether ``fd`` still refers to the socket with ``inode``."""
    try:
        return os.fstat(fd).st_ino == inode
    except OSError:
        return False


def _make(impl: ModuleType, kind: str, unix_dir: str, helpers: list[Any]) -> Any:
    """A socket of ``kind``; sockets it needed besides go to ``helpers``."""
    if kind == "stream":
        return impl.StreamSocket(impl.AF_INET)
    if kind == "stream-unix":
        return impl.StreamSocket(impl.AF_UNIX)
    if kind == "datagram":
        return impl.DatagramSocket(impl.AF_INET)
    if kind in ("socketpair", "socketpair-dgram"):
        kind_type = impl.SOCK_STREAM if kind == "socketpair" else impl.SOCK_DGRAM
        pair = list(impl.socketpair(impl.AF_UNIX, kind_type))
        helpers.append(pair.pop())
        return pair.pop()
    if kind == "create_server":
        return impl.create_server(("127.0.0.1", 0))
    if kind == "create_server-unix":
        return impl.create_server(os.path.join(unix_dir, "srv"), family=impl.AF_UNIX)
    server = impl.create_server(("127.0.0.1", 0))
    helpers.append(server)
    client = impl.create_connection(server.getsockname(), timeout=5)
    if kind == "create_connection":
        helpers.append(server.accept()[0])
        return client
    assert kind == "accept", kind
    helpers.append(client)
    return server.accept()[0]


@contextlib.contextmanager
def _helpers() -> Iterator[list[Any]]:
    helpers: list[Any] = []
    try:
        yield helpers
    finally:
        for helper in helpers:
            helper.close()


KINDS = ["stream", "stream-unix", "datagram", "socketpair", "socketpair-dgram",
         "create_server", "create_server-unix", "create_connection", "accept"]


# -- garbage collection -------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_collecting_open_socket_warns_and_closes(impl: ModuleType, kind: str,
                                                 unix_dir: str) -> None:
    with _helpers() as helpers:
        sock = _make(impl, kind, unix_dir, helpers)
        fd = sock.fileno()
        inode = _inode(fd)
        text = repr(sock)
        with pytest.warns(ResourceWarning, match="unclosed") as record:
            del sock
            gc.collect()
        assert not _still_open(fd, inode), f"fd {fd} stayed open"
    messages = [str(w.message) for w in record if w.category is ResourceWarning]
    assert len(messages) == 1, messages
    assert f"fd={fd}" in messages[0]
    assert text in messages[0]


def test_collecting_open_socket_in_a_cycle(impl: ModuleType) -> None:
    sock = impl.StreamSocket(impl.AF_INET)
    fd = sock.fileno()
    inode = _inode(fd)
    holder: list[Any] = [sock]
    holder.append(holder)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del sock, holder
        gc.collect()
    assert not _still_open(fd, inode)


@pytest.mark.parametrize("kind", KINDS)
def test_no_warning_after_close(impl: ModuleType, kind: str, unix_dir: str) -> None:
    with _helpers() as helpers:
        sock = _make(impl, kind, unix_dir, helpers)
        fd = sock.fileno()
        inode = _inode(fd)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sock.close()
            sock.close()
            del sock
            gc.collect()
        assert not _still_open(fd, inode)
    assert [w for w in caught if w.category is ResourceWarning] == []


def test_no_warning_with_context_manager(impl: ModuleType) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with impl.DatagramSocket(impl.AF_INET) as sock:
            fd = sock.fileno()
            inode = _inode(fd)
        assert sock.closed
        del sock
        gc.collect()
    assert not _still_open(fd, inode)
    assert [w for w in caught if w.category is ResourceWarning] == []


def test_no_warning_after_detach(impl: ModuleType) -> None:
    sock = impl.StreamSocket(impl.AF_INET)
    fd = sock.detach()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del sock
            gc.collect()
        assert [w for w in caught if w.category is ResourceWarning] == []
        os.fstat(fd)  # detached: still open, and ours
    finally:
        os.close(fd)


# -- close-on-exec ------------------------------------------------------------

_PROBE = textwrap.dedent("""
    import json, os, sys
    seen = {}
    for arg in sys.argv[1:]:
        try:
            seen[arg] = os.fstat(int(arg)).st_ino
        except OSError as exc:
            seen[arg] = "errno %d" % exc.errno
    print(json.dumps(seen))
""")


def _probe_child(fds: list[int]) -> dict[int, Any]:
    """What a child started without closing descriptors finds at ``fds``:
    the inode if something is open there, else "errno N" from fstat."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, fds)],
                          close_fds=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {int(k): v for k, v in json.loads(proc.stdout).items()}


@pytest.mark.parametrize("kind", KINDS)
def test_descriptors_are_close_on_exec(impl: ModuleType, kind: str, unix_dir: str) -> None:
    with _helpers() as helpers:
        with _make(impl, kind, unix_dir, helpers) as sock:
            everything = [sock, *helpers]
            fds = [s.fileno() for s in everything]
            inodes = {fd: _inode(fd) for fd in fds}
            for fd in fds:
                assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, fd
                assert os.get_inheritable(fd) is False
            # control: an inheritable duplicate does reach the child
            control = os.dup(fds[0])
            os.set_inheritable(control, True)
            try:
                seen = _probe_child(fds + [control])
            finally:
                os.close(control)
    assert seen[control] == inodes[fds[0]], "the probe cannot see inherited descriptors"
    for fd in fds:
        assert seen[fd] != inodes[fd], f"fd {fd} leaked into the child"


# -- SIGPIPE ------------------------------------------------------------------

_SIGPIPE_CHILD = textwrap.dedent("""
    import importlib, json, signal, sys, time
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    m = importlib.import_module(sys.argv[1])
    results = {}

    def attempt(name, call):
        try:
            for _ in range(2000):
                call()
                time.sleep(0.001)
            results[name] = "no error"
        except OSError as exc:
            results[name] = type(exc).__name__

    a, b = m.socketpair()
    b.close()
    attempt("unix send", lambda: a.send(b"x"))
    attempt("unix sendall", lambda: a.sendall(b"x" * 100000))
    a.close()

    a, b = m.socketpair()
    a.shutdown(m.SHUT_WR)
    attempt("own shutdown send", lambda: a.send(b"x"))
    attempt("own shutdown sendall", lambda: a.sendall(b"x"))
    a.close()
    b.close()

    server = m.create_server(("127.0.0.1", 0))
    client = m.create_connection(server.getsockname(), timeout=5)
    client.settimeout(None)
    conn, _ = server.accept()
    conn.close()
    attempt("tcp send", lambda: client.send(b"x" * 1000))
    client.close()

    client = m.create_connection(server.getsockname(), timeout=5)
    client.settimeout(None)
    conn, _ = server.accept()
    conn.close()
    attempt("tcp sendall", lambda: client.sendall(b"x" * 1000))
    client.close()

    client = m.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept()
    conn.close()
    attempt("tcp sendall with timeout", lambda: client.sendall(b"x" * 1000))
    client.close()
    server.close()
    print(json.dumps(results))
""")


def test_sigpipe_never_kills(impl: ModuleType) -> None:
    proc = subprocess.run([sys.executable, "-c", _SIGPIPE_CHILD,
                           implementation_module_name(impl.IMPLEMENTATION)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != -signal.SIGPIPE, "the process was killed by SIGPIPE"
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    expected = {"BrokenPipeError", "ConnectionResetError"}
    for name, outcome in results.items():
        assert outcome in expected, (name, outcome)
    assert results["unix send"] == "BrokenPipeError"
    assert results["own shutdown send"] == "BrokenPipeError"
    assert len(results) == 7


def test_sigpipe_control_default_disposition_kills() -> None:
    """Without MSG_NOSIGNAL the child above would die: the check is meaningful."""
    script = textwrap.dedent("""
        import os, signal, socket
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        a, b = socket.socketpair()
        b.close()
        os.write(a.fileno(), b"x")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGPIPE


# -- fork ---------------------------------------------------------------------

def _in_child(action: Callable[[], None]) -> int:
    """Fork, run ``action`` in the child, return the child's exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _round_trip(x: Any, y: Any) -> None:
    x.settimeout(5)
    y.settimeout(5)
    x.sendall(b"ping")
    assert y.recv(16) == b"ping"
    y.sendall(b"pong")
    assert x.recv(16) == b"pong"


@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_fork_child_close_leaves_parent_connected(impl: ModuleType, family: str) -> None:
    with contextlib.ExitStack() as stack:
        if family == "unix":
            a, b = impl.socketpair()
        else:
            server = stack.enter_context(impl.create_server(("127.0.0.1", 0)))
            a = impl.create_connection(server.getsockname(), timeout=5)
            b, _ = server.accept()
        stack.enter_context(a)
        stack.enter_context(b)
        _round_trip(a, b)

        def close_both() -> None:
            a.close()
            b.close()
            assert a.closed and b.closed

        assert _in_child(close_both) == 0
        assert not a.closed and not b.closed
        _round_trip(a, b)
        _round_trip(b, a)


def test_fork_child_close_while_parent_thread_blocked(impl: ModuleType) -> None:
    """A call blocked in another thread of the parent does not exist in the
    child: the child's close() must not shut the shared connection down."""
    a, b = impl.socketpair()
    with a, b:
        result: list[Any] = []

        def receive() -> None:
            try:
                result.append(a.recv(16))
            except OSError as exc:
                result.append(exc)

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        try:
            time.sleep(0.2)
            assert thread.is_alive()
            fd, inode = a.fileno(), _inode(a.fileno())

            def close_in_child() -> None:
                a.close()
                # nothing is in progress in the child: the descriptor is
                # closed there and then, not left for a call that never ends
                assert not _still_open(fd, inode)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                status = _in_child(close_in_child)
            assert status == 0, "the child's close() left its descriptor open"
            time.sleep(0.2)
            try:
                b.sendall(b"still here")
                shut_down = False
            except BrokenPipeError:
                shut_down = True
            assert not shut_down, "the child's close() shut the parent's connection down"
            thread.join(5)
            assert not thread.is_alive(), "the parent's call never completed"
        finally:
            if thread.is_alive():
                b.close()
            thread.join(5)
        assert result == [b"still here"], result
        _round_trip(a, b)
