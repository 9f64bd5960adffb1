"""Lines: ``makefile('rb').readline()`` over a stream of 16-byte lines (the
last byte a newline) that a peer process writes as fast as it can, over a
Unix stream connection.

The baseline is the stdlib's file (an io.BufferedReader over
socket.SocketIO); fastsock's file reads the socket's own receive buffer,
which the compiled twin splits with memchr() and refills with large recv()s.
Every variant hands out one ``bytes`` per line.  The C reference receives
into one buffer and finds each newline with memchr() where it lies.  The stream is continuous:
each round reads exactly its count of lines and leaves the rest for the next.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import pytest

from ._harness import (
    LINE_SIZE,
    LINES_BASELINE,
    CBuild,
    Impl,
    PURE,
    Peers,
    Pinning,
    Sizes,
    Variant,
    fastsock_impls,
    fastsock_variant,
    lines_name,
    lines_row,
    measure,
    measure_cref,
    served_peer,
)

METHOD = "makefile.readline"
IMPLS = [Impl(LINES_BASELINE, "stdlib", METHOD), *fastsock_impls(METHOD)]
EXPECTED = b"l" * (LINE_SIZE - 1) + b"\n"
# The pure twin's file reads 0.4-0.6M lines/s: its rounds take a quarter of
# the count (the rate is lines per second either way), or they alone would be
# a seventh of make bench.
PURE_LINES_SHARE = 4


@pytest.mark.parametrize("impl", IMPLS, ids=[impl.id for impl in IMPLS])
def test_lines(benchmark: Any, sizes: Sizes, peers: Peers, impl: Impl) -> None:
    variant = fastsock_variant(impl, "makefile") if impl.is_fastsock else Variant("stdlib")
    n = sizes.lines // (PURE_LINES_SHARE if impl.family == PURE else 1)
    last: list[bytes] = []
    with served_peer(variant, peers, "unix", "lines", str(LINE_SIZE)) as conn, \
            contextlib.ExitStack() as stack:
        readline: Callable[[], bytes] = stack.enter_context(conn.makefile("rb")).readline

        def read_lines() -> bytes:
            line = b""
            for _ in range(n):
                line = readline()
            return line

        def run() -> None:
            last[:] = [read_lines()]

        measure(benchmark, sizes, workload=lines_name(), variant=impl.label, unit="lines",
                units=n, run=run, rounds=sizes.lines_rounds, warmup=1,
                baseline=LINES_BASELINE, impl=impl.family, method=impl.method,
                row=lines_row() if impl.is_fastsock else None, batch=n, payload=LINE_SIZE,
                peer=peers.kind)
    if last != [EXPECTED]:
        raise AssertionError(f"the last line of a round was {last[:1]!r}")


def test_lines_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=lines_name(),
                 cworkload="lines-unix", unit="lines",
                 params=dict(batch=sizes.lines, rounds=sizes.lines_rounds, warmup=1,
                             size=LINE_SIZE, wsize=256 << 10),
                 baseline=LINES_BASELINE, impl="c", method="memchr in place", payload=LINE_SIZE,
                 peer="c")
