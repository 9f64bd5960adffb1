"""Per-call overhead: a 1-byte send and a 1-byte recv on an AF_UNIX
socketpair, in one thread.  The kernel work is tiny, so this is mostly the
cost of getting from Python to the syscall and back."""

from __future__ import annotations

from typing import Any

from ._harness import PERCALL, CBuild, Pinning, Sizes, Variant, measure, measure_cref


def test_percall(benchmark: Any, variant: Variant, sizes: Sizes) -> None:
    a, b = variant.socketpair()
    n = sizes.percall

    def run() -> None:
        for _ in range(n):
            a.send(b"x")
            b.recv(1)

    try:
        measure(benchmark, sizes, workload=PERCALL, variant=variant.name, unit="msgs",
                units=n, run=run, batch=n)
    finally:
        a.close()
        b.close()


def test_percall_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=PERCALL, cworkload="percall",
                 unit="msgs", params=dict(batch=sizes.percall, rounds=sizes.rounds,
                                          warmup=sizes.warmup))
