"""Type checkers and porting: code written for ``socket.socket`` type-checks
on fastsock where it only calls methods both have, and passing a fastsock
socket where a ``socket.socket`` is required is an error a checker reports —
``to_socket()`` is the door.  Checked with ``mypy --strict`` on small
programs, as a user's project would be."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PORTED = """
    import socket
    import ssl

    import fastsock


    def echo_once(conn: fastsock.StreamSocket) -> bytes:
        data = conn.recv(1024)
        conn.sendall(data)
        return data


    def needs_stdlib(sock: socket.socket) -> int:
        return sock.fileno()


    def main() -> None:
        with fastsock.socket(fastsock.AF_INET, fastsock.SOCK_STREAM) as server:
            server.setsockopt(fastsock.SOL_SOCKET, fastsock.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", 0))
            server.listen()
            conn, _ = server.accept()
            echo_once(conn)
            family: socket.AddressFamily | int = conn.family
            needs_stdlib(conn.to_socket())  # the documented door
        udp = fastsock.socket(fastsock.AF_INET, fastsock.SOCK_DGRAM)
        udp.sendto(b"x", ("127.0.0.1", 9))
        data, address = udp.recvfrom(10)
        copy: fastsock.DatagramSocket = udp.dup()
        copy.close()
        udp.close()
        left, right = fastsock.socketpair()
        left.recv_msg()  # a StreamSocket pair
        first, second = fastsock.socketpair(fastsock.AF_UNIX, fastsock.SOCK_DGRAM)
        first.recv_many(4)  # a DatagramSocket pair
        records = fastsock.socketpair(type=fastsock.SOCK_SEQPACKET)[0].recv_records()
        kind = fastsock.SOCK_DGRAM if records else fastsock.SOCK_STREAM
        either = fastsock.socketpair(fastsock.AF_UNIX, kind)[0]
        either.recv(1)  # only what every kind has
        ssl.create_default_context().wrap_socket(
            fastsock.create_connection(("localhost", 443)).to_socket(),
            server_hostname="localhost")
"""

WRONG = """
    import socket

    import fastsock


    def needs_stdlib(sock: socket.socket) -> int:
        return sock.fileno()


    needs_stdlib(fastsock.StreamSocket())
    fastsock.StreamSocket().recv_many(4)
    fastsock.socketpair()[0].recv_many(4)
"""


def test_mypy_accepts_a_port_and_refuses_a_fastsock_socket_as_a_stdlib_one(
        tmp_path: Path) -> None:
    # the test extra installs it; free-threaded CPython has no build of it yet
    pytest.importorskip("mypy")
    (tmp_path / "ported.py").write_text(textwrap.dedent(PORTED))
    (tmp_path / "wrong.py").write_text(textwrap.dedent(WRONG))
    source = Path(__file__).resolve().parent.parent / "src"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", os.devnull, "--python-version", "3.10",
         str(tmp_path / "ported.py"), str(tmp_path / "wrong.py")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=dict(os.environ, MYPYPATH=str(source)))
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [line for line in errors if "ported.py" in line], result.stdout
    wrong = [line for line in errors if "wrong.py" in line]
    assert len(wrong) == 3, result.stdout
    assert '"needs_stdlib" has incompatible type "StreamSocket"' in wrong[0]
    assert '"StreamSocket" has no attribute "recv_many"' in wrong[1]
    assert '"StreamSocket" has no attribute "recv_many"' in wrong[2]  # socketpair()
