"""Fuzz target: the datagram batch paths.

On a Unix datagram socketpair or a pair of UDP sockets on 127.0.0.1 of each
implementation, the same arbitrary sequence of send_many, sendto_many,
send_segments, sendto, recv_many, recv_batch (with DatagramBatch objects of
arbitrary count and slot size, and their accessors with arbitrary indices),
recv_gro and iter_segments runs, with arbitrary counts, sizes, segment
sizes and addresses (the peer's, or malformed ones).  Both implementations
must agree at every step: the same counts, data, senders and truncation
flags, or the same exceptions.  Datagrams are only ever sent to the peer
socket on loopback.
"""

from __future__ import annotations

import socket
from typing import Any

import atheris

import harness
from harness import Index, Weird, integer, pick

BAD_ADDRESSES = [("127.0.0.1", 70000), ("127.0.0.1", -1), ("127.0.0.1\0", 9), ("::1", 9), None,
                 "not-an-inet-address", ("127.0.0.1",), 5, ("127.0.0.1", 2**40)]


def payloads(fdp: atheris.FuzzedDataProvider) -> list[Any]:
    out: list[Any] = []
    for _ in range(pick(fdp, [0, 1, 3, 10, fdp.ConsumeIntInRange(0, 80)])):
        size = pick(fdp, [0, 1, 100, 1500, fdp.ConsumeIntInRange(0, 3000)])
        item: Any = bytes([len(out) & 0xFF]) * size
        if fdp.ConsumeIntInRange(0, 15) == 0:
            item = pick(fdp, ["text", None, memoryview(bytearray(8))[::2], bytearray(item), Weird()])
        out.append(item)
    return out


def address(fdp: atheris.FuzzedDataProvider, peer: Any) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice <= 6:
        return peer
    if choice == 7:
        return None  # the connected peer, if any
    return pick(fdp, BAD_ADDRESSES)


def plan(fdp: atheris.FuzzedDataProvider) -> list[tuple[str, bytes]]:
    steps = []
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        name = pick(fdp, ["send_many", "sendto_many", "send_segments", "sendto", "recv_many",
                          "recv_many", "recv_batch", "recv_batch", "recv_gro", "iter_segments"])
        steps.append((name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))))
    return steps


def batch_view(impl: Any, batch: Any, filled: Any, fdp: atheris.FuzzedDataProvider) -> Any:
    """What recv_batch gave, read through the batch's accessors."""
    out: list[Any] = [len(batch)]
    for k in range(len(batch)):
        with batch.data(k) as view:
            out.append((bytes(view), batch.length(k), batch.truncated(k), batch.address(k)))
    for _ in range(3):  # arbitrary indices: IndexError / TypeError, or the same as above
        index = pick(fdp, [-1, -len(batch) - 1, len(batch), 2**70, Index(0), 1.0, None])
        try:
            with batch.data(index) as view:
                out.append(("data", index if isinstance(index, int) else repr(index), bytes(view)))
        except (IndexError, TypeError, OverflowError) as exc:
            out.append(("data", type(exc).__name__))
    return out


def step(impl: Any, a: Any, b: Any, peer: Any, name: str, seed: bytes) -> Any:
    fdp = atheris.FuzzedDataProvider(seed)
    if name == "send_many":
        items, target = payloads(fdp), address(fdp, peer)
        if target is not peer and target is not None:
            # a malformed address with good data only: the compiled call
            # parses the address first, the pure one cannot parse an inet
            # address without sending to it, so it meets bad data first
            items = [item if isinstance(item, bytes) else b"" for item in items]
        return harness.outcome(lambda: a.send_many(items, target))
    if name == "sendto_many":
        # a bad address only first: the compiled call checks every address
        # before sending any, the pure one sends the pairs before a bad one
        pairs = [(item, address(fdp, peer) if not k else peer)
                 for k, item in enumerate(payloads(fdp))]
        if pairs and pairs[0][1] is not peer:  # as for send_many below
            pairs = [(item if isinstance(item, bytes) else b"", target) for item, target in pairs]
        return harness.outcome(lambda: a.sendto_many(pairs))
    if name == "send_segments":
        data = bytes(range(256)) * fdp.ConsumeIntInRange(0, 40)
        seg = pick(fdp, [1, 100, 1200, 1500, 65507, 65508, 0, -1, fdp.ConsumeIntInRange(1, 9000),
                         Index(1000), 1.5])
        target = address(fdp, peer)
        return harness.outcome(lambda: a.send_segments(data, seg, target))
    if name == "sendto":
        items = payloads(fdp)
        target = address(fdp, peer)
        data = items[0] if items else b""
        return harness.outcome(lambda: a.sendto(data, target))
    if name == "recv_many":
        count = pick(fdp, [1, 4, 64, 0, -1, fdp.ConsumeIntInRange(1, 200), 2**20 + 1, Index(3), 1.0])
        size = pick(fdp, [1, 10, 2048, 65536, 65537, 0, fdp.ConsumeIntInRange(1, 3000)])

        def many() -> Any:
            try:
                return b.recv_many(count, size)
            except impl.TruncatedDatagramError as exc:
                return ("truncated", exc.messages, exc.truncated)
        return harness.outcome(many)
    if name == "recv_batch":
        count = pick(fdp, [1, 4, 64, fdp.ConsumeIntInRange(1, 100), 0, 2**20 + 1, Index(2), "x"])
        slot = pick(fdp, [1, 10, 2048, 65536, 65537, 0, fdp.ConsumeIntInRange(1, 3000)])

        def receive() -> Any:
            batch = impl.DatagramBatch(count, slot)
            filled = b.recv_batch(batch)
            return filled, batch_view(impl, batch, filled, fdp)
        return harness.outcome(receive)
    if name == "recv_gro":
        size = pick(fdp, [1, 10, 2048, 65535, 65536, 65537, 0, fdp.ConsumeIntInRange(1, 3000)])

        def gro() -> Any:
            try:
                return b.recv_gro(size)
            except impl.TruncatedDatagramError as exc:
                return ("truncated", exc.messages, exc.truncated)
        return harness.outcome(gro)
    data = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 500))
    seg = pick(fdp, [1, 3, 100, 0, -1, Index(2), 1.5, fdp.ConsumeIntInRange(1, 600)])
    return harness.outcome(lambda: [bytes(s) for s in impl.iter_segments(data, seg)])


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    udp = fdp.ConsumeBool()
    connected = fdp.ConsumeBool()
    steps = plan(fdp)
    logs: dict[str, list[Any]] = {}
    for impl in harness.IMPLS:
        if udp:
            a, b = impl.DatagramSocket(), impl.DatagramSocket()
        else:
            a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if udp:
                a.bind(("127.0.0.1", 0))
                b.bind(("127.0.0.1", 0))
                if connected:
                    a.connect(b.getsockname())
            a.settimeout(0.0)
            b.settimeout(0.0)
            peer = b.getsockname() if udp else None
            sender = a.getsockname()
            log = logs.setdefault(impl.IMPLEMENTATION, [])
            for name, seed in steps:
                kind, value = step(impl, a, b, peer, name, seed)
                log.append((name, kind, normalise(value, sender, name == "sendto")))
        finally:
            a.close()
            b.close()
    harness.same_logs(logs)


def normalise(value: Any, sender: Any, message: bool) -> Any:
    """Exceptions by their key (messages only where the stdlib has the call:
    which of several bad items a batch call reports first is its own
    business); our own sender's address (an ephemeral port, different per
    implementation) as a placeholder."""
    if isinstance(value, BaseException):
        return harness.error_key(value, message)
    if value == sender and sender is not None:
        return "<sender>"
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [normalise(item, sender, message) for item in value]
    return value


if __name__ == "__main__":
    harness.main(one_input)
