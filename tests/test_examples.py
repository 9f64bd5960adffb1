"""The programs in examples/, each run as a file (``python examples/NAME.py``,
from the top of the checkout, as their docstrings say) in a subprocess on
both implementations, against real peers: nothing but the installed
``fastsock`` package is on their path.  Servers listen on a free port (0)
and say which on their first line; every server is killed in ``finally``."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import http.client
import os
import re
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

Process = subprocess.Popen[bytes]
import pytest

import fastsock
from conftest import IMPLEMENTATIONS
from fastsock import _names

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 30.0

# every file in examples/ and the tests that run it
TESTED = {
    "echo_server.py": ("test_echo_server_and_client",),
    "echo_client.py": ("test_echo_server_and_client", "test_echo_client_without_a_server"),
    "udp_receiver.py": ("test_udp_sender_to_receiver",),
    "udp_sender.py": ("test_udp_sender_to_receiver",),
    "unix_pair.py": ("test_unix_pair",),
    "webserver.py": ("test_webserver_and_webclient",),
    "webclient.py": ("test_webserver_and_webclient",),
}


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    """The implementation the example subprocesses run on."""
    if request.param == "cython" and fastsock.IMPLEMENTATION != "cython":
        pytest.skip("compiled extension not loaded")
    return str(request.param)


def command(name: str, *args: str) -> list[str]:
    return [sys.executable, f"examples/{name}", *args]


def environment(implementation: str) -> dict[str, str]:
    # a warning (the compiled module falling back to the pure one, say) is an error
    return dict(os.environ, **_names.IMPLEMENTATIONS[implementation][1], PYTHONWARNINGS="error")


def run(implementation: str, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command(name, *args), cwd=ROOT, env=environment(implementation),
                          capture_output=True, timeout=TIMEOUT)


@contextlib.contextmanager
def running(implementation: str, name: str, *args: str) -> Iterator[tuple[Process, str, int]]:
    """Start example ``name``; yield (process, its first line, the port it names)."""
    process = subprocess.Popen(command(name, *args), cwd=ROOT, env=environment(implementation),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        line = process.stdout.readline().decode() if ready else ""
        found = re.search(r" port (\d+)\b", line)
        if not found:
            process.kill()
            err = process.communicate(timeout=TIMEOUT)[1]
            raise AssertionError(f"{name} did not start: {line!r} {err.decode()!r}")
        yield process, line, int(found.group(1))
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def stop(process: Process) -> tuple[str, str]:
    """Ctrl-C ``process``; return its stdout and stderr once it has exited."""
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=TIMEOUT)
    return out.decode(), err.decode()


def unused_port(kind: int) -> int:
    """A port nothing listens on (bound, then freed)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_echo_server_and_client(implementation: str) -> None:
    with running(implementation, "echo_server.py", "--port", "0") as (server, banner, port):
        assert f"(fastsock {implementation}) listening on 127.0.0.1 port {port}" in banner
        # a client that stays connected does not keep others waiting
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as held:
            result = run(implementation, "echo_client.py", "--port", str(port), "hello,", "echo")
            assert (result.returncode, result.stdout, result.stderr) == (0, b"hello, echo\n", b"")
            result = run(implementation, "echo_client.py", "--port", str(port))
            assert (result.returncode, result.stdout) == (0, b"Hello, fastsock!\n")
            payload = bytes(range(256)) * 1024
            held.sendall(payload)
            echoed = b""
            while len(echoed) < len(payload):
                chunk = held.recv(65536)
                assert chunk, "the server closed the connection"
                echoed += chunk
            assert echoed == payload
            # Ctrl-C with that client still connected
            out, err = stop(server)
    assert server.returncode == 0, err
    assert out.rstrip().endswith("echo server: stopped"), out
    assert err == ""
    assert out.count(": connected") == 3
    assert out.count(": echoed 11 bytes, closed") == 1
    assert out.count(": echoed 16 bytes, closed") == 1
    assert out.count(", closed") == 2


def test_echo_client_without_a_server(implementation: str) -> None:
    port = unused_port(socket.SOCK_STREAM)
    result = run(implementation, "echo_client.py", "--port", str(port), "anyone?")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().startswith(f"echo_client: 127.0.0.1 port {port}: ")
    assert b"Traceback" not in result.stderr


def test_udp_sender_to_receiver(implementation: str) -> None:
    count = 150   # more than one recv_many batch (64)
    with running(implementation, "udp_receiver.py", "--port", "0", "--count", str(count)) as (
            receiver, banner, port):
        assert f"(fastsock {implementation}) listening on 127.0.0.1 port {port}" in banner
        sent = run(implementation, "udp_sender.py", "--port", str(port), "--count", str(count),
                   "ping")
        assert sent.returncode == 0, sent.stderr
        assert re.fullmatch(rf"sent {count} datagrams to 127\.0\.0\.1 port {port} "
                            r"in \d+ send_many calls?\n", sent.stdout.decode()), sent.stdout
        out, err = receiver.communicate(timeout=TIMEOUT)
    assert receiver.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines[-1] == f"received {count} datagrams"
    received = [re.fullmatch(r"127\.0\.0\.1:(\d+): (.*)", line) for line in lines[:-1]]
    assert all(received), lines
    assert [m.group(2) for m in received if m] == [f"ping {i}" for i in range(1, count + 1)]
    assert len({m.group(1) for m in received if m}) == 1   # from one socket


UNIX_PAIR_LINES = [
    "sent     12 bytes, child says: 12 bytes, crc32 e76f3750",
    "sent      0 bytes, child says: 0 bytes, crc32 00000000",
    "sent      9 bytes, child says: 9 bytes, crc32 ae222de1",
    "sent 102400 bytes, child says: 102400 bytes, crc32 9a0e0c8c",
    "sent      7 bytes, child says: 7 bytes, crc32 0d8fd874",
]


def test_unix_pair(implementation: str) -> None:
    result = run(implementation, "unix_pair.py")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"unix_pair (fastsock {implementation})"
    assert lines[1:6] == UNIX_PAIR_LINES
    # how the stream cut the messages decides how many calls the child made
    assert re.fullmatch(r"child: 5 messages in [1-5] recv_msgs calls?", lines[6]), lines[6]
    assert lines[7:] == ["every answer matches"]


def test_webserver_and_webclient(implementation: str, tmp_path: Path) -> None:
    files = {
        "/hello.txt": b"hello from the examples\n",
        "/data.bin": hashlib.shake_256(b"examples").digest(512 * 1024 + 3),
    }
    for path, body in files.items():
        (tmp_path / path.lstrip("/")).write_bytes(body)
    with running(implementation, "webserver.py", "--port", "0", "--directory", str(tmp_path),
                 "--quiet") as (server, banner, port):
        assert banner.startswith(f"Serving HTTP on 127.0.0.1 port {port} ")
        fetched = run(implementation, "webclient.py", "127.0.0.1", str(port), "/data.bin",
                      "/hello.txt")
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout == files["/data.bin"] + files["/hello.txt"]
        for path, body in files.items():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                assert response.status == 200
                assert response.read() == body
            finally:
                connection.close()
        out, err = stop(server)
    assert server.returncode == 0, err
    assert "Traceback" not in err, err


def test_every_example_is_tested() -> None:
    present = {entry.name for entry in EXAMPLES.iterdir() if entry.name != "__pycache__"}
    assert present == set(TESTED), (
        f"untested: {sorted(present - set(TESTED))}, gone: {sorted(set(TESTED) - present)}")
    for name, tests in TESTED.items():
        for test in tests:
            assert callable(globals().get(test)), f"{name}: no test named {test}"


@pytest.mark.parametrize("name", sorted(TESTED))
def test_example_is_a_runnable_file(name: str) -> None:
    """Each says what it shows and how to run it, runs as ``__main__``, and
    imports fastsock as an installed package (no relative import)."""
    tree = ast.parse((EXAMPLES / name).read_text(), name)
    docstring = ast.get_docstring(tree)
    assert docstring and f"python examples/{name}" in docstring
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert any(isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
               for node in tree.body)
