"""UDP on 127.0.0.1 with 64-byte and 1200-byte datagrams.

drain: a stdlib sender fills the receiver's queue (a large SO_RCVBUF) before
each round, untimed; the round is the receiver draining it with non-blocking
``recvfrom`` until EAGAIN.
sendto: a ``sendto`` loop to a receiver nobody reads (the kernel drops what
does not fit; that is the same for every variant)."""

from __future__ import annotations

import socket
from typing import Any, Callable

import pytest

from ._harness import (
    UDP_RCVBUF,
    UDP_RECV_BUFSIZE,
    UDP_SIZES,
    CBuild,
    Pinning,
    Sizes,
    Variant,
    mean_of_last,
    measure,
    measure_cref,
    set_large_rcvbuf,
    udp_drain_name,
    udp_send_name,
)


@pytest.mark.parametrize("size", UDP_SIZES)
def test_udp_drain(benchmark: Any, variant: Variant, sizes: Sizes,
                   udp_fill: Callable[[int], int], size: int) -> None:
    fill = udp_fill(size)
    payload = b"d" * size
    counts: list[int] = []
    rx = variant.dgram(socket.AF_INET)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        set_large_rcvbuf(rx)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        address = rx.getsockname()

        def setup() -> None:
            for _ in range(fill):
                tx.sendto(payload, address)

        def run() -> None:
            count = 0
            try:
                while True:
                    rx.recvfrom(UDP_RECV_BUFSIZE)
                    count += 1
            except BlockingIOError:
                pass
            counts.append(count)

        measure(benchmark, sizes, workload=udp_drain_name(size), variant=variant.name,
                unit="msgs", units=lambda: mean_of_last(counts, sizes.udp_rounds),
                run=run, setup=setup, rounds=sizes.udp_rounds, fill=fill)
        if counts and max(counts) == 0:
            raise AssertionError("no datagram was received")
    finally:
        rx.close()
        tx.close()


@pytest.mark.parametrize("size", UDP_SIZES)
def test_udp_drain_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                        udp_fill: Callable[[int], int], size: int) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=udp_drain_name(size),
                 cworkload="udp-drain", unit="msgs",
                 params=dict(batch=udp_fill(size), rounds=sizes.udp_rounds,
                             warmup=sizes.warmup, size=size, rcvbuf=UDP_RCVBUF))


@pytest.mark.parametrize("size", UDP_SIZES)
def test_udp_send(benchmark: Any, variant: Variant, sizes: Sizes, size: int) -> None:
    n = sizes.udp_send
    payload = b"s" * size
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = variant.dgram(socket.AF_INET)
    try:
        sink.bind(("127.0.0.1", 0))
        address = sink.getsockname()

        def run() -> None:
            for _ in range(n):
                tx.sendto(payload, address)

        measure(benchmark, sizes, workload=udp_send_name(size), variant=variant.name,
                unit="msgs", units=n, run=run, batch=n)
    finally:
        tx.close()
        sink.close()


@pytest.mark.parametrize("size", UDP_SIZES)
def test_udp_send_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                       size: int) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=udp_send_name(size),
                 cworkload="udp-send", unit="msgs",
                 params=dict(batch=sizes.udp_send, rounds=sizes.rounds,
                             warmup=sizes.warmup, size=size))
