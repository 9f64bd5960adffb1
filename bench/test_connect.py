"""Connection rate on TCP loopback: create a socket, connect, accept, close
both ends; one thread, the listener's backlog never fills."""

from __future__ import annotations

import socket
from typing import Any

from ._harness import CONNECT, CBuild, Pinning, Sizes, Variant, measure, measure_cref


def test_connect(benchmark: Any, variant: Variant, sizes: Sizes) -> None:
    n = sizes.connect
    server = variant.create_server(("127.0.0.1", 0))
    address = server.getsockname()
    new_socket = variant.stream_factory(socket.AF_INET)

    def run() -> None:
        for _ in range(n):
            client = new_socket()
            client.connect(address)
            conn, _ = server.accept()
            client.close()
            conn.close()

    try:
        measure(benchmark, sizes, workload=CONNECT, variant=variant.name, unit="conns",
                units=n, run=run, batch=n)
    finally:
        server.close()


def test_connect_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=CONNECT, cworkload="connect",
                 unit="conns", params=dict(batch=sizes.connect, rounds=sizes.rounds,
                                           warmup=sizes.warmup))
