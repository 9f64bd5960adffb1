"""The datagram fast paths: 64-byte UDP datagrams on 127.0.0.1.

drain: as ``udp drain`` in test_udp.py (a stdlib sender fills the receiver's
queue, a large SO_RCVBUF, before each round, untimed; the round drains it
until EAGAIN; two thirds of its rounds), with the stdlib ``recvfrom`` loop as the baseline against
fastsock's plain ``recvfrom``, ``recv_many(64)`` (one list per call) and
``recv_batch`` into a ``DatagramBatch(64, 2048)`` (reading each datagram's
length only: no Python object per datagram), pure and compiled.  The C
reference drains with ``recvmmsg`` of 64 slots.

send: datagrams sent per second to a bound receiver nobody reads (the kernel
drops what does not fit, the same for every variant): the stdlib ``sendto``
loop as the baseline against ``send_many`` of 64 buffers and
``send_segments`` of a 64-datagram buffer (UDP GSO where the kernel has it),
pure and compiled.  Every variant counts what the calls report as sent.  The
C reference is ``sendmmsg`` of 64; a second C variant sends 64 segments per
``sendmsg`` with UDP_SEGMENT.

end-to-end: datagrams per second received while a peer process sends as fast
as it can: stdlib ``sendto`` → ``recvfrom`` (the baseline) against fastsock's
``send_segments`` → ``set_gro`` + ``recv_gro``, counting the segments of each
coalesced receive (a GRO round receives 16 times the baseline's count, so
that the rounds take comparable times).  The sender runs for a bounded time and is stopped after
the benchmark; the receive queue is emptied, untimed, before each round.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from typing import Any, Callable

import pytest

from ._harness import (
    CREF,
    PEER_TIMEOUT,
    UDP_BATCH_COUNT,
    UDP_BATCH_SIZE,
    UDP_DRAIN_BASELINE,
    UDP_E2E_BASELINE,
    UDP_RCVBUF,
    UDP_RECV_BUFSIZE,
    UDP_SEND_BASELINE,
    FASTSOCK_FAMILIES,
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
    set_large_rcvbuf,
    udp_batch_drain_name,
    udp_batch_row,
    udp_batch_send_name,
    udp_e2e_name,
)

SIZE = UDP_BATCH_SIZE
COUNT = UDP_BATCH_COUNT
SLOT_SIZE = 2048
GRO_BUFSIZE = 65535
E2E_RCVBUF = 1 << 20
E2E_SENDER_SECONDS = 120.0   # the sender stops by itself after this at the latest
E2E_RECV_TIMEOUT = 5.0
DRAIN_BEFORE_ROUND_S = 0.5   # the untimed emptying of the queue before a round
E2E_GRO_FACTOR = 16          # a GRO round receives this many times the baseline's

DRAIN_BASELINE = Impl(UDP_DRAIN_BASELINE, "stdlib", "recvfrom")
DRAIN_IMPLS = [DRAIN_BASELINE, *fastsock_impls("recvfrom", "recv_many", "recv_batch")]

SEND_BASELINE = Impl(UDP_SEND_BASELINE, "stdlib", "sendto")
SEND_IMPLS = [SEND_BASELINE, *fastsock_impls("send_many", "send_segments")]
SEND_CREFS = [Impl(CREF, "c", "sendmmsg"), Impl("C sendmsg UDP_SEGMENT", "c", "udp_segment")]
_CWORKLOADS = {"sendmmsg": "udp-send-mmsg", "udp_segment": "udp-send-gso"}

E2E_BASELINE = Impl(UDP_E2E_BASELINE, "stdlib", "sendto-recvfrom")
E2E_IMPLS = [E2E_BASELINE] + [
    Impl(f"{family} send_segments → recv_gro", family, "gso-gro")
    for family in FASTSOCK_FAMILIES
]


def _ids(impls: list[Impl]) -> list[str]:
    return [impl.id for impl in impls]


def _variant(impl: Impl, *needed: str) -> Variant:
    if impl.is_fastsock:
        return fastsock_variant(impl, *needed, cls="DatagramSocket")
    return Variant("stdlib")


def _kernel_has_gso() -> bool:
    try:
        import fastsock
    except ImportError:
        return False
    return bool(getattr(fastsock, "UDP_GSO", False))


# -- drain ---------------------------------------------------------------------

def _drain_rounds(sizes: Sizes) -> tuple[int, int]:
    """Rounds and warm-up rounds of the drain group: two thirds of the other
    UDP workloads' rounds (seven variants, each refilling the queue per round)."""
    return max(1, sizes.udp_rounds * 2 // 3), min(sizes.warmup, 1)


def _drainer(impl: Impl, variant: Variant, rx: Any, counts: list[int]) -> Callable[[], None]:
    if impl.method == "recvfrom":
        recvfrom = rx.recvfrom

        def run() -> None:
            count = 0
            try:
                while True:
                    recvfrom(UDP_RECV_BUFSIZE)
                    count += 1
            except BlockingIOError:
                pass
            counts.append(count)

    elif impl.method == "recv_many":
        recv_many = rx.recv_many

        def run() -> None:
            count = 0
            try:
                while True:
                    count += len(recv_many(COUNT))
            except BlockingIOError:
                pass
            counts.append(count)

    else:
        batch = variant.module.DatagramBatch(COUNT, SLOT_SIZE)
        recv_batch = rx.recv_batch
        length = batch.length

        def run() -> None:
            count = 0
            received = 0
            try:
                while True:
                    n = recv_batch(batch)
                    for i in range(n):
                        received += length(i)
                    count += n
            except BlockingIOError:
                pass
            if count and received < count:
                raise AssertionError(f"recv_batch: {count} datagrams but {received} bytes")
            counts.append(count)

    return run


@pytest.mark.parametrize("impl", DRAIN_IMPLS, ids=_ids(DRAIN_IMPLS))
def test_udp_batch_drain(benchmark: Any, sizes: Sizes, udp_fill: Callable[[int], int],
                         impl: Impl) -> None:
    variant = _variant(impl, impl.method)
    fill = udp_fill(SIZE)
    rounds, warmup = _drain_rounds(sizes)
    payload = b"d" * SIZE
    counts: list[int] = []
    rx = variant.dgram(socket.AF_INET)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        set_large_rcvbuf(rx)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        address = rx.getsockname()
        sendto = tx.sendto

        def setup() -> None:
            for _ in range(fill):
                sendto(payload, address)

        row = (udp_batch_row("drain", impl.method)
               if impl.is_fastsock and impl.method != "recvfrom" else None)
        measure(benchmark, sizes, workload=udp_batch_drain_name(), variant=impl.label,
                unit="msgs", units=lambda: mean_of_last(counts, rounds),
                run=_drainer(impl, variant, rx, counts), setup=setup,
                rounds=rounds, warmup=warmup, baseline=UDP_DRAIN_BASELINE, impl=impl.family,
                method=impl.method, row=row, fill=fill, size=SIZE, count=COUNT)
        if counts and max(counts) == 0:
            raise AssertionError("no datagram was received")
    finally:
        rx.close()
        tx.close()


def test_udp_batch_drain_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild,
                              pinning: Pinning, udp_fill: Callable[[int], int]) -> None:
    rounds, warmup = _drain_rounds(sizes)
    measure_cref(benchmark, sizes, cbuild, pinning, workload=udp_batch_drain_name(),
                 cworkload="udp-drain-mmsg", unit="msgs",
                 params=dict(batch=udp_fill(SIZE), rounds=rounds, warmup=warmup, size=SIZE,
                             rcvbuf=UDP_RCVBUF, vlen=COUNT),
                 baseline=UDP_DRAIN_BASELINE, impl="c", method="recvmmsg", size=SIZE,
                 count=COUNT)


# -- send ----------------------------------------------------------------------

def _send_count(sizes: Sizes) -> int:
    """Datagrams per round: a whole number of 64-datagram calls."""
    return max(COUNT, sizes.udp_send // COUNT * COUNT)


def _sender(impl: Impl, tx: Any, address: Any, n: int,
            counts: list[int]) -> Callable[[], None]:
    calls = n // COUNT
    if impl.method == "sendto":
        payload = b"s" * SIZE
        sendto = tx.sendto

        def run() -> None:
            sent = 0
            for _ in range(n):
                sendto(payload, address)
                sent += 1
            counts.append(sent)

    elif impl.method == "send_many":
        buffers = [b"s" * SIZE] * COUNT
        send_many = tx.send_many

        def run() -> None:
            sent = 0
            for _ in range(calls):
                sent += send_many(buffers, address)
            counts.append(sent)

    else:
        buffer = b"s" * (SIZE * COUNT)
        send_segments = tx.send_segments

        def run() -> None:
            sent = 0
            for _ in range(calls):
                sent += send_segments(buffer, SIZE, address)
            counts.append(sent)

    return run


@pytest.mark.parametrize("impl", SEND_IMPLS, ids=_ids(SEND_IMPLS))
def test_udp_batch_send(benchmark: Any, sizes: Sizes, impl: Impl) -> None:
    variant = _variant(impl, impl.method)
    n = _send_count(sizes)
    counts: list[int] = []
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = variant.dgram(socket.AF_INET)
    try:
        sink.bind(("127.0.0.1", 0))
        address = sink.getsockname()
        measure(benchmark, sizes, workload=udp_batch_send_name(), variant=impl.label,
                unit="msgs", units=lambda: mean_of_last(counts, sizes.rounds),
                run=_sender(impl, tx, address, n, counts), baseline=UDP_SEND_BASELINE,
                impl=impl.family, method=impl.method,
                row=udp_batch_row("send", impl.method) if impl.is_fastsock else None,
                batch=n, size=SIZE, count=COUNT, gso=_kernel_has_gso())
        if counts and min(counts) < n:
            raise AssertionError(f"{impl.method}: {min(counts)} of {n} datagrams sent")
    finally:
        tx.close()
        sink.close()


@pytest.mark.parametrize("impl", SEND_CREFS, ids=_ids(SEND_CREFS))
def test_udp_batch_send_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                             impl: Impl) -> None:
    if impl.method == "udp_segment" and not _kernel_has_gso():
        pytest.skip("this kernel has no UDP_SEGMENT")
    measure_cref(benchmark, sizes, cbuild, pinning, workload=udp_batch_send_name(),
                 cworkload=_CWORKLOADS[impl.method], unit="msgs", variant=impl.label,
                 params=dict(batch=_send_count(sizes), rounds=sizes.rounds,
                             warmup=sizes.warmup, size=SIZE, vlen=COUNT),
                 baseline=UDP_SEND_BASELINE, impl="c", method=impl.method, size=SIZE,
                 count=COUNT)


# -- end-to-end ----------------------------------------------------------------

# The peer: sends SIZE-byte datagrams to the receiver until it is stopped, or
# for E2E_SENDER_SECONDS at most.  "socket" sends with a sendto loop, a
# fastsock module with send_segments of COUNT datagrams a call.
_SENDER = r"""
import importlib, os, socket, sys, time
module, host, port, size, count, seconds, cpu = sys.argv[1:8]
if cpu != "-":
    os.sched_setaffinity(0, {int(cpu)})
address = (host, int(port))
size, count = int(size), int(count)
deadline = time.monotonic() + float(seconds)
if module == "socket":
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"e" * size
    sendto = tx.sendto
    def burst():
        for _ in range(count):
            sendto(payload, address)
else:
    tx = importlib.import_module(module).DatagramSocket(socket.AF_INET)
    buffer = b"e" * (size * count)
    send_segments = tx.send_segments
    def burst():
        send_segments(buffer, size, address)
sys.stdout.write("ready\n")
sys.stdout.flush()
while time.monotonic() < deadline:
    for _ in range(16):
        try:
            burst()
        except (ConnectionRefusedError, BlockingIOError, InterruptedError):
            pass
"""


@contextlib.contextmanager
def _udp_source(module: str, address: Any, pinning: Pinning) -> Any:
    cpu = "-" if pinning.peer is None else str(pinning.peer)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SENDER, module, address[0], str(address[1]), str(SIZE),
         str(COUNT), str(E2E_SENDER_SECONDS), cpu],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            proc.wait(timeout=PEER_TIMEOUT)
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise RuntimeError(f"UDP sender did not start (exit {proc.returncode}): {err}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=PEER_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _empty_queue(receive: Callable[[], Any], rx: Any) -> None:
    """Take what queued up between rounds, for DRAIN_BEFORE_ROUND_S at most."""
    rx.setblocking(False)
    deadline = time.monotonic() + DRAIN_BEFORE_ROUND_S
    try:
        while time.monotonic() < deadline:
            for _ in range(256):
                receive()
    except BlockingIOError:
        pass
    rx.settimeout(E2E_RECV_TIMEOUT)


@pytest.mark.bench_heavy
@pytest.mark.parametrize("impl", E2E_IMPLS, ids=_ids(E2E_IMPLS))
def test_udp_e2e(benchmark: Any, sizes: Sizes, pinning: Pinning, impl: Impl) -> None:
    variant = _variant(impl, "send_segments", "set_gro", "recv_gro")
    m = sizes.udp_e2e * (E2E_GRO_FACTOR if impl.is_fastsock else 1)
    counts: list[int] = []
    rx = variant.dgram(socket.AF_INET)
    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, E2E_RCVBUF)
        rx.bind(("127.0.0.1", 0))
        address = rx.getsockname()
        gro = False
        if impl.is_fastsock:
            gro = bool(rx.set_gro(True))
            recv_gro = rx.recv_gro

            def receive() -> Any:
                return recv_gro(GRO_BUFSIZE)

            def run() -> None:
                count = 0
                while count < m:
                    data, _, segment = recv_gro(GRO_BUFSIZE)
                    count += -(-len(data) // segment) if data else 1
                counts.append(count)

        else:
            recvfrom = rx.recvfrom

            def receive() -> Any:
                return recvfrom(UDP_RECV_BUFSIZE)

            def run() -> None:
                count = 0
                while count < m:
                    recvfrom(UDP_RECV_BUFSIZE)
                    count += 1
                counts.append(count)

        module = "socket" if not impl.is_fastsock else variant.module.__name__
        with _udp_source(module, address, pinning):
            measure(benchmark, sizes, workload=udp_e2e_name(), variant=impl.label,
                    unit="msgs", units=lambda: mean_of_last(counts, sizes.udp_rounds),
                    run=run, setup=lambda: _empty_queue(receive, rx),
                    rounds=sizes.udp_rounds, baseline=UDP_E2E_BASELINE, impl=impl.family,
                    method=impl.method,
                    row=udp_batch_row("end-to-end", "send_segments→recv_gro")
                    if impl.is_fastsock else None,
                    batch=m, size=SIZE, count=COUNT, gro=gro, gso=_kernel_has_gso())
    finally:
        rx.close()
