"""SOCK_SEQPACKET records: 64-byte records on an AF_UNIX SOCK_SEQPACKET
socketpair, in one thread.  Before each round a stdlib sender queues
``sizes.seqpacket`` records (untimed; the sender's default send buffer holds
about 270), and the round drains the receiver, non-blocking, until EAGAIN:
the stdlib ``recv`` loop (which would cut a longer record silently) is the
baseline against fastsock's ``recv_records(64, 64)`` (a list of bytes per
call: recvmmsg in the compiled twin) and ``recv_batch`` into a
``DatagramBatch(64, 64)`` (reading each record's length only), pure and
compiled.  Every variant counts the records it received.  The C reference
drains with ``recvmmsg`` of 64 slots.
"""

from __future__ import annotations

import socket
from typing import Any, Callable

import pytest

from ._harness import (
    SEQPACKET_BASELINE,
    SEQPACKET_COUNT,
    SEQPACKET_SIZE,
    CBuild,
    Impl,
    Pinning,
    Sizes,
    Variant,
    fastsock_impls,
    fastsock_variant,
    mean_of_last,
    measure,
    measure_cref,
    seqpacket_drain_name,
    seqpacket_row,
)

BASELINE = Impl(SEQPACKET_BASELINE, "stdlib", "recv")
IMPLS = [BASELINE, *fastsock_impls("recv_records", "recv_batch")]


def _drainer(impl: Impl, variant: Variant, rx: Any, counts: list[int]) -> Callable[[], None]:
    if impl.method == "recv":
        recv = rx.recv

        def run() -> None:
            count = 0
            try:
                while True:
                    recv(SEQPACKET_SIZE)
                    count += 1
            except BlockingIOError:
                pass
            counts.append(count)

    elif impl.method == "recv_records":
        recv_records = rx.recv_records

        def run() -> None:
            count = 0
            try:
                while True:
                    count += len(recv_records(SEQPACKET_COUNT, SEQPACKET_SIZE))
            except BlockingIOError:
                pass
            counts.append(count)

    else:
        batch = variant.module.DatagramBatch(SEQPACKET_COUNT, SEQPACKET_SIZE)
        recv_batch = rx.recv_batch
        length = batch.length

        def run() -> None:
            count = received = 0
            try:
                while True:
                    n = recv_batch(batch)
                    for i in range(n):
                        received += length(i)
                    count += n
            except BlockingIOError:
                pass
            if received != count * SEQPACKET_SIZE:
                raise AssertionError(f"recv_batch: {count} records but {received} bytes")
            counts.append(count)

    return run


@pytest.mark.parametrize("impl", IMPLS, ids=[impl.id for impl in IMPLS])
def test_seqpacket_drain(benchmark: Any, sizes: Sizes, impl: Impl) -> None:
    if impl.is_fastsock:
        variant = fastsock_variant(impl, impl.method, cls="SeqPacketSocket")
    else:
        variant = Variant("stdlib")
    tx, stdlib_rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    rx: Any = stdlib_rx
    if impl.is_fastsock:
        rx = variant.module.SeqPacketSocket.from_socket(stdlib_rx)
    record = b"r" * SEQPACKET_SIZE
    fill = sizes.seqpacket
    counts: list[int] = []
    try:
        rx.setblocking(False)
        send = tx.send

        def setup() -> None:
            for _ in range(fill):
                send(record)

        row = seqpacket_row(impl.method) if impl.is_fastsock else None
        measure(benchmark, sizes, workload=seqpacket_drain_name(), variant=impl.label,
                unit="msgs", units=lambda: mean_of_last(counts, sizes.seqpacket_rounds),
                run=_drainer(impl, variant, rx, counts), setup=setup,
                rounds=sizes.seqpacket_rounds, warmup=min(sizes.warmup, 1),
                baseline=SEQPACKET_BASELINE, impl=impl.family, method=impl.method, row=row,
                fill=fill, size=SEQPACKET_SIZE, count=SEQPACKET_COUNT)
        if counts and min(counts) != fill:
            raise AssertionError(f"a round received {min(counts)} of {fill} records")
    finally:
        rx.close()
        tx.close()


def test_seqpacket_drain_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild,
                              pinning: Pinning) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=seqpacket_drain_name(),
                 cworkload="seqpacket-drain-mmsg", unit="msgs",
                 params=dict(batch=sizes.seqpacket, rounds=sizes.seqpacket_rounds,
                             warmup=min(sizes.warmup, 1), size=SEQPACKET_SIZE,
                             vlen=SEQPACKET_COUNT),
                 baseline=SEQPACKET_BASELINE, impl="c", method="recvmmsg",
                 size=SEQPACKET_SIZE, count=SEQPACKET_COUNT)
