"""Bulk stream: one way over TCP, a peer process writing 256 KiB buffers as
fast as it can, this side receiving in 4 KiB, 64 KiB or 1 MiB chunks with
``recv`` (a new bytes object per call) or ``recv_into`` (one reused buffer).

The C reference is ``recv`` into one buffer, the floor for both methods.

Exact reads: the same stream in 1 MiB chunks, each filled completely before
the next, by fastsock's ``recv_exactly_into`` (pure and compiled), against
the stdlib's ``recv(1 MiB)`` (the baseline) and ``recv_into`` loops and a C
reference that loops ``recv`` until each chunk is full."""

from __future__ import annotations

from typing import Any

import pytest

from ._harness import (
    BULK_WRITE_SIZE,
    CHUNKS,
    EXACT_BASELINE,
    EXACT_CHUNK,
    CBuild,
    Impl,
    Peers,
    Pinning,
    Sizes,
    Variant,
    bulk_name,
    exact_name,
    exact_row,
    fastsock_impls,
    fastsock_variant,
    measure,
    measure_cref,
    served_peer,
)

BASELINE_RECV = Impl(EXACT_BASELINE, "stdlib", "recv")
EXACT_IMPLS = [
    BASELINE_RECV,
    Impl("stdlib recv_into", "stdlib", "recv_into"),
    *fastsock_impls("recv_exactly_into"),
]


@pytest.mark.parametrize("chunk_label", list(CHUNKS))
@pytest.mark.parametrize("method", ["recv", "recv_into"])
def test_bulk(benchmark: Any, variant: Variant, sizes: Sizes, peers: Peers, method: str,
              chunk_label: str) -> None:
    chunk = CHUNKS[chunk_label]
    per_round = sizes.bulk_per_round
    with served_peer(variant, peers, "tcp", "source", str(BULK_WRITE_SIZE)) as conn:
        if method == "recv":

            def run() -> None:
                remaining = per_round
                while remaining:
                    data = conn.recv(chunk if remaining > chunk else remaining)
                    if not data:
                        raise ConnectionError("source peer closed the connection")
                    remaining -= len(data)

        else:
            buf = bytearray(chunk)

            def run() -> None:
                remaining = per_round
                while remaining:
                    got = conn.recv_into(buf, chunk if remaining > chunk else remaining)
                    if not got:
                        raise ConnectionError("source peer closed the connection")
                    remaining -= got

        measure(benchmark, sizes, workload=bulk_name(method, chunk_label),
                variant=variant.name, unit="bytes", units=per_round, run=run,
                rounds=sizes.bulk_rounds, ref=bulk_name("recv_into", chunk_label),
                chunk=chunk, bytes_per_round=per_round, peer=peers.kind)


# "method" only places the C run next to the recv_into cases it is compared with
@pytest.mark.parametrize("chunk_label", list(CHUNKS))
@pytest.mark.parametrize("method", ["recv_into"])
def test_bulk_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                   method: str, chunk_label: str) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning,
                 workload=bulk_name(method, chunk_label), cworkload="bulk",
                 unit="bytes",
                 params=dict(batch=sizes.bulk_per_round, rounds=sizes.bulk_rounds,
                             warmup=sizes.warmup, size=CHUNKS[chunk_label],
                             wsize=BULK_WRITE_SIZE),
                 chunk=CHUNKS[chunk_label], peer="c")


@pytest.mark.parametrize("impl", EXACT_IMPLS, ids=[impl.id for impl in EXACT_IMPLS])
def test_bulk_exact(benchmark: Any, sizes: Sizes, peers: Peers, impl: Impl) -> None:
    if impl.is_fastsock:
        variant = fastsock_variant(impl, "recv_exactly_into")
    else:
        variant = Variant("stdlib")
    chunk = EXACT_CHUNK
    per_round = sizes.bulk_per_round
    with served_peer(variant, peers, "tcp", "source", str(BULK_WRITE_SIZE)) as conn:
        if impl.method == "recv":

            def run() -> None:
                remaining = per_round
                while remaining:
                    data = conn.recv(chunk if remaining > chunk else remaining)
                    if not data:
                        raise ConnectionError("source peer closed the connection")
                    remaining -= len(data)

        elif impl.method == "recv_into":
            buf = bytearray(chunk)

            def run() -> None:
                remaining = per_round
                while remaining:
                    got = conn.recv_into(buf, chunk if remaining > chunk else remaining)
                    if not got:
                        raise ConnectionError("source peer closed the connection")
                    remaining -= got

        else:
            buf = bytearray(chunk)
            recv_exactly_into = conn.recv_exactly_into

            def run() -> None:
                remaining = per_round
                while remaining:
                    remaining -= recv_exactly_into(buf, chunk if remaining > chunk
                                                   else remaining)

        measure(benchmark, sizes, workload=exact_name(), variant=impl.label, unit="bytes",
                units=per_round, run=run, rounds=sizes.bulk_rounds,
                baseline=EXACT_BASELINE, impl=impl.family, method=impl.method,
                row=exact_row() if impl.is_fastsock else None, chunk=chunk,
                bytes_per_round=per_round, peer=peers.kind)


def test_bulk_exact_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild,
                         pinning: Pinning) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=exact_name(),
                 cworkload="bulk-exact", unit="bytes",
                 params=dict(batch=sizes.bulk_per_round, rounds=sizes.bulk_rounds,
                             warmup=sizes.warmup, size=EXACT_CHUNK, wsize=BULK_WRITE_SIZE),
                 baseline=EXACT_BASELINE, impl="c", method="recv until full",
                 chunk=EXACT_CHUNK, peer="c")
