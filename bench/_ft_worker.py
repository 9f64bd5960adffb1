"""One measurement of make bench-ft, in the interpreter being measured.

Run as a file by bench/ft.py (``python bench/_ft_worker.py WORKLOAD ...``),
on the GIL build and on free-threaded CPython alike: it needs only the
standard library and fastsock's public names.  It prints one JSON line.

  echo LIB REF N ROUNDS     a thread-per-connection server of blocking
                            sockets (LIB: fastsock or stdlib) echoing 1 KiB
                            requests from ``REF peer load`` (bench/c/ref.c)
                            over 32 connections; N requests a round
  framing THREADS N         THREADS threads, each on a connection of its own,
                            each sending 64-byte messages with a 4-byte length
                            prefix to itself in blocks of 1,000 and receiving
                            them with recv_msgs, N messages per thread
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from typing import Any

CONNS = 32
SIZE = 1024
BLOCK = 1000  # messages per sendall in the framing workload
PAYLOAD = 64


def gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def read_line(stream: Any) -> bytes:
    line: bytes = stream.readline()
    if not line:
        raise RuntimeError("the load generator stopped")
    return line


def echo(lib: str, ref: str, n: int, rounds: int) -> dict[str, Any]:
    """req/s and the server's CPU µs per request, medians over ``rounds``."""
    if lib == "fastsock":
        import fastsock
        listener: Any = fastsock.create_server(("127.0.0.1", 0), backlog=CONNS)

        def serve(conn: Any) -> None:
            buf = bytearray(SIZE)
            with conn:
                try:
                    while True:
                        conn.recv_exactly_into(buf)
                        conn.sendall(buf)
                except EOFError:
                    pass
    else:
        listener = socket.create_server(("127.0.0.1", 0), backlog=CONNS)

        def serve(conn: Any) -> None:
            # the stdlib's way to read exactly SIZE bytes: recv_into until full
            buf = bytearray(SIZE)
            view = memoryview(buf)
            with conn:
                while True:
                    got = 0
                    while got < SIZE:
                        k = conn.recv_into(view[got:])
                        if not k:
                            return
                        got += k
                    conn.sendall(buf)

    threads = []

    def accept_all() -> None:
        for _ in range(CONNS):
            conn, _ = listener.accept()
            t = threading.Thread(target=serve, args=(conn,), daemon=True)
            t.start()
            threads.append(t)

    acceptor = threading.Thread(target=accept_all, daemon=True)
    acceptor.start()
    port = listener.getsockname()[1]
    load = subprocess.Popen([ref, "peer", "load", "tcp", "127.0.0.1", str(port),
                             str(CONNS), str(SIZE)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert load.stdin is not None and load.stdout is not None
    rates, cpu = [], []
    try:
        if read_line(load.stdout) != b"ready\n":
            raise RuntimeError("the load generator did not start")
        for i in range(rounds + 1):  # the first round warms up
            started, cpu_started = time.perf_counter(), time.process_time()
            load.stdin.write(b"%d\n" % n)
            load.stdin.flush()
            if read_line(load.stdout) != b"done\n":
                raise RuntimeError("the load generator stopped mid-round")
            wall, used = time.perf_counter() - started, time.process_time() - cpu_started
            if i:
                rates.append(n / wall)
                cpu.append(used / n * 1e6)
    finally:
        load.stdin.close()
        load.wait(30)
        acceptor.join(30)
        for t in threads:
            t.join(30)
        listener.close()
    if load.returncode:
        raise RuntimeError(f"the load generator exited {load.returncode}")
    return {"rate": statistics.median(rates), "cpu_us": statistics.median(cpu),
            "unit": "req/s"}


def framing(threads: int, n: int) -> dict[str, Any]:
    """Messages per second over all threads, and CPU µs per message."""
    import fastsock
    block = b"".join(struct.pack("!I", PAYLOAD) + bytes([i % 251]) * PAYLOAD
                     for i in range(BLOCK))
    pairs = [fastsock.socketpair() for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(a: Any, b: Any) -> None:
        try:
            start.wait()
            for _ in range(n // BLOCK):
                a.sendall(block)
                left = BLOCK
                while left:
                    left -= len(b.recv_msgs(prefix_size=4))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=pair) for pair in pairs]
    for t in workers:
        t.start()
    start.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    for t in workers:
        t.join()
    wall, used = time.perf_counter() - started, time.process_time() - cpu_started
    for a, b in pairs:
        a.close()
        b.close()
    if errors:
        raise errors[0]
    total = threads * (n // BLOCK) * BLOCK
    return {"rate": total / wall, "cpu_us": used / total * 1e6, "unit": "msgs/s"}


def main(argv: list[str]) -> None:
    workload, args = argv[0], argv[1:]
    if workload == "echo":
        result = echo(args[0], args[1], int(args[2]), int(args[3]))
    elif workload == "framing":
        result = framing(int(args[0]), int(args[1]))
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    import fastsock
    result.update(python=sys.version.split()[0], gil=gil_enabled(),
                  implementation=fastsock.IMPLEMENTATION)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
