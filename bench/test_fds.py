"""Descriptor passing: recv_fds of one descriptor per 1-byte message on an
AF_UNIX stream socketpair, in one thread.  Each round receives a queue of
messages that its untimed setup sent (and closes the descriptors the round
before received), so only the receive is timed: ``socket.recv_fds`` for the
stdlib, ``fastsock.recv_fds`` for the twins (the same call on each module)."""

from __future__ import annotations

import os
from typing import Any

from ._harness import RECV_FDS, Sizes, Variant, measure


def test_recv_fds(benchmark: Any, variant: Variant, sizes: Sizes) -> None:
    a, b = variant.socketpair()
    passed = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    n = sizes.fds
    module = variant.module
    received: list[int] = []

    def fill() -> None:
        for fd in received:
            os.close(fd)
        received.clear()
        for _ in range(n):
            module.send_fds(a, [b"x"], [passed])

    def run() -> None:
        for _ in range(n):
            received.extend(module.recv_fds(b, 1, 1)[1])

    try:
        measure(benchmark, sizes, workload=RECV_FDS, variant=variant.name, unit="msgs",
                units=n, run=run, setup=fill)
        assert len(received) == n
    finally:
        for fd in received:
            os.close(fd)
        os.close(passed)
        a.close()
        b.close()
