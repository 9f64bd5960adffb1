"""The benchmark peers on stdlib sockets, used when no C compiler is around
(bench/c/ref.c has the same peers in C, and they are preferred).

    python bench/peer.py echo tcp HOST PORT [cpu=N]
    python bench/peer.py echo unix PATH [cpu=N]
    python bench/peer.py source HOST PORT WSIZE [cpu=N]
    python bench/peer.py frames tcp HOST PORT SIZE [cpu=N]
    python bench/peer.py frames unix PATH SIZE [cpu=N]
    python bench/peer.py lines unix PATH SIZE [cpu=N]
    python bench/peer.py sink tcp HOST PORT [cpu=N]
    python bench/peer.py sink unix PATH [cpu=N]

frames writes SIZE-byte messages, each after a 4-byte big-endian length,
until the reader goes away; lines writes SIZE-byte lines (the last byte a
newline) the same way; sink reads and discards until EOF.
"""

from __future__ import annotations

import os
import socket
import struct
import sys


def _connect_tcp(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _connect_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def echo(sock: socket.socket) -> int:
    buf = bytearray(65536)
    view = memoryview(buf)
    while True:
        try:
            n = sock.recv_into(buf)
        except ConnectionResetError:
            return 0
        if n == 0:
            return 0
        try:
            sock.sendall(view[:n])
        except (BrokenPipeError, ConnectionResetError):
            return 0


def source(sock: socket.socket, wsize: int) -> int:
    data = b"x" * wsize
    while True:
        try:
            sock.send(data)
        except (BrokenPipeError, ConnectionResetError):
            return 0  # the reader closed: the run is over


def frames(sock: socket.socket, size: int) -> int:
    frame = struct.pack(">I", size) + b"m" * size
    stream = memoryview(frame * max(1, (256 << 10) // len(frame)))
    try:
        while True:
            sock.sendall(stream)  # whole frames only, whatever the partial writes
    except (BrokenPipeError, ConnectionResetError):
        return 0


def lines(sock: socket.socket, size: int) -> int:
    line = b"l" * (size - 1) + b"\n"
    stream = memoryview(line * max(1, (256 << 10) // len(line)))
    try:
        while True:
            sock.sendall(stream)
    except (BrokenPipeError, ConnectionResetError):
        return 0


def sink(sock: socket.socket) -> int:
    buf = bytearray(256 << 10)
    try:
        while sock.recv_into(buf):
            pass
    except ConnectionResetError:
        pass
    return 0


def _is_address(where: list[str]) -> bool:
    """``tcp HOST PORT`` or ``unix PATH``."""
    return (len(where) == 3 and where[0] == "tcp") or (len(where) == 2 and where[0] == "unix")


def _connect(where: list[str]) -> socket.socket:
    if where[0] == "tcp":
        return _connect_tcp(where[1], int(where[2]))
    return _connect_unix(where[1])


def main(argv: list[str]) -> int:
    if argv and argv[-1].startswith("cpu="):
        os.sched_setaffinity(0, {int(argv.pop()[4:])})
    if len(argv) == 4 and argv[:2] == ["echo", "tcp"]:
        with _connect_tcp(argv[2], int(argv[3])) as sock:
            return echo(sock)
    if len(argv) == 3 and argv[:2] == ["echo", "unix"]:
        with _connect_unix(argv[2]) as sock:
            return echo(sock)
    if len(argv) == 4 and argv[0] == "source":
        with _connect_tcp(argv[1], int(argv[2])) as sock:
            return source(sock, int(argv[3]))
    if argv and argv[0] == "frames" and _is_address(argv[1:-1]):
        with _connect(argv[1:-1]) as sock:
            return frames(sock, int(argv[-1]))
    if len(argv) == 4 and argv[:2] == ["lines", "unix"]:
        with _connect_unix(argv[2]) as sock:
            return lines(sock, int(argv[3]))
    if argv and argv[0] == "sink" and _is_address(argv[1:]):
        with _connect(argv[1:]) as sock:
            return sink(sock)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
