"""Header + body sends: a 16-byte header and a 4 KiB (or 64 KiB) body per
message, over TCP on 127.0.0.1 to a peer process that reads and discards
everything.

The variants: the stdlib's ``sendall(header + body)`` (a concatenation per
message; the baseline) and ``sendmsg([header, body])``, fastsock's
``sendall_buffers([header, body])`` (pure and compiled), and fastsock's
``send_msg(body)``, which sends its own 4-byte length prefix as the header.
The C reference is a ``sendmsg`` of the two buffers per message.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from ._harness import (
    SEND_BODIES,
    SEND_HEADER,
    SENDS_BASELINE,
    CBuild,
    Impl,
    Peers,
    Pinning,
    Sizes,
    Variant,
    fastsock_impls,
    fastsock_variant,
    measure,
    measure_cref,
    sends_name,
    sends_row,
    served_peer,
)

BASELINE = Impl(SENDS_BASELINE, "stdlib", "sendall(header+body)")
IMPLS = [
    BASELINE,
    Impl("stdlib sendmsg([header, body])", "stdlib", "sendmsg"),
    *fastsock_impls("sendall_buffers", "send_msg"),
]


def _count(sizes: Sizes, body_label: str) -> int:
    return sizes.sends_small if body_label == "4K" else sizes.sends_large


def _sender(impl: Impl, conn: Any, header: bytes, body: bytes, n: int) -> Callable[[], None]:
    if impl.method == "sendall(header+body)":
        sendall = conn.sendall

        def run() -> None:
            for _ in range(n):
                sendall(header + body)

    elif impl.method == "sendmsg":
        sendmsg = conn.sendmsg
        total = len(header) + len(body)

        def run() -> None:
            for _ in range(n):
                sent = sendmsg([header, body])
                if sent != total:  # a partial write: the rest the plain way
                    conn.sendall(memoryview(header + body)[sent:])

    elif impl.method == "sendall_buffers":
        sendall_buffers = conn.sendall_buffers

        def run() -> None:
            for _ in range(n):
                sendall_buffers([header, body])

    else:
        send_msg = conn.send_msg

        def run() -> None:
            for _ in range(n):
                send_msg(body)

    return run


@pytest.mark.parametrize("impl", IMPLS, ids=[impl.id for impl in IMPLS])
@pytest.mark.parametrize("body_label", list(SEND_BODIES))
def test_sends(benchmark: Any, sizes: Sizes, peers: Peers, body_label: str,
               impl: Impl) -> None:
    if impl.is_fastsock:
        variant = fastsock_variant(impl, impl.method)
    else:
        variant = Variant("stdlib")
    n = _count(sizes, body_label)
    header = b"h" * SEND_HEADER
    body = b"b" * SEND_BODIES[body_label]
    with served_peer(variant, peers, "tcp", "sink") as conn:
        measure(benchmark, sizes, workload=sends_name(body_label), variant=impl.label,
                unit="msgs", units=n, run=_sender(impl, conn, header, body, n),
                rounds=sizes.sends_rounds, warmup=min(sizes.warmup, 1),
                baseline=SENDS_BASELINE, impl=impl.family,
                method=impl.method,
                row=sends_row(body_label, impl.method) if impl.is_fastsock else None,
                batch=n, header=SEND_HEADER, body=SEND_BODIES[body_label], peer=peers.kind)


@pytest.mark.parametrize("body_label", list(SEND_BODIES))
def test_sends_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                    body_label: str) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=sends_name(body_label),
                 cworkload="send-hdr", unit="msgs",
                 params=dict(batch=_count(sizes, body_label), rounds=sizes.sends_rounds,
                             warmup=sizes.warmup, size=SEND_BODIES[body_label],
                             hsize=SEND_HEADER),
                 baseline=SENDS_BASELINE, impl="c", method="sendmsg",
                 header=SEND_HEADER, body=SEND_BODIES[body_label], peer="c")
