"""Ping-pong: a 64-byte request, the same 64 bytes back, over TCP (with
TCP_NODELAY) and over a Unix stream socket.  The echo peer runs in another
process: the C peer from bench/c/ref.c, or bench/peer.py without a compiler."""

from __future__ import annotations

from typing import Any

import pytest

from ._harness import (
    CBuild,
    Peers,
    Pinning,
    Sizes,
    Variant,
    measure,
    measure_cref,
    pingpong_name,
    served_peer,
)

MESSAGE = 64
TRANSPORTS = ["tcp", "unix"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pingpong(benchmark: Any, variant: Variant, sizes: Sizes, peers: Peers,
                  transport: str) -> None:
    n = sizes.pingpong
    request = b"p" * MESSAGE
    with served_peer(variant, peers, transport, "echo") as conn:

        def run() -> None:
            for _ in range(n):
                conn.sendall(request)
                need = MESSAGE
                while need:
                    reply = conn.recv(need)
                    if not reply:
                        raise ConnectionError("echo peer closed the connection")
                    need -= len(reply)

        measure(benchmark, sizes, workload=pingpong_name(transport), variant=variant.name,
                unit="msgs", units=n, run=run, batch=n, peer=peers.kind)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pingpong_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                       transport: str) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=pingpong_name(transport),
                 cworkload=f"pingpong-{transport}", unit="msgs",
                 params=dict(batch=sizes.pingpong, rounds=sizes.rounds, warmup=sizes.warmup,
                             size=MESSAGE), peer="c")
