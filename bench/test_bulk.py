"""Bulk stream: one way over TCP, a peer process writing 256 KiB buffers as
fast as it can, this side receiving in 4 KiB, 64 KiB or 1 MiB chunks with
``recv`` (a new bytes object per call) or ``recv_into`` (one reused buffer).

The C reference is ``recv`` into one buffer, the floor for both methods."""

from __future__ import annotations

from typing import Any

import pytest

from ._harness import (
    BULK_WRITE_SIZE,
    CHUNKS,
    CBuild,
    Peers,
    Pinning,
    Sizes,
    Variant,
    bulk_name,
    measure,
    measure_cref,
    served_peer,
)


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
