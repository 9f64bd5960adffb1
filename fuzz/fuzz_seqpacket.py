"""Fuzz target: the SOCK_SEQPACKET record calls against a model.

On an AF_UNIX SOCK_SEQPACKET socketpair of each implementation (both ends
non-blocking), an arbitrary sequence of send_records, send, sendall, the end
of the sending side (shutdown), recv_record, recv_records, recv_batch (with
DatagramBatch objects of arbitrary count and slot size) and recv, with
arbitrary sizes and counts.  A model of the queue (the records each send
reported as sent, in order, and whether the sending side has ended) says
what every receive must return: each record whole and in order, a longer one
reported as truncated with its real length (the stdlib's recv cuts it
silently), BlockingIOError when nothing is queued, EOFError from the record
calls at the end (empty records last before the end, with no bytes queued
after them, are taken for it, as documented), and the implementations must
agree at every step as well.
"""

from __future__ import annotations

import collections
import operator
import socket
from typing import Any

import atheris

import harness
from fuzz_datagram import payloads
from harness import Index, pick


def plan(fdp: atheris.FuzzedDataProvider) -> list[tuple[str, bytes]]:
    steps = []
    for _ in range(fdp.ConsumeIntInRange(1, 10)):
        name = pick(fdp, ["send_records", "send_records", "send", "sendall", "recv_record",
                          "recv_records", "recv_records", "recv_batch", "recv", "end"])
        steps.append((name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))))
    return steps


class Model:
    """The records queued for the receiver, and whether the sender has ended."""

    def __init__(self) -> None:
        self.queue: collections.deque[bytes] = collections.deque()
        self.ended = False

    def sent(self, items: list[Any], count: int) -> None:
        self.queue.extend(bytes(memoryview(item)) for item in items[:count])

    def take(self, count: int) -> tuple[list[bytes], bool]:
        """(the records a batch of ``count`` returns, whether it meets the end
        instead): at the end the kernel fills the rest of the batch with
        zero-length answers, and the trailing zero-length entries are taken
        for the end unless a record with bytes is still queued after them."""
        taken = [self.queue.popleft() for _ in range(min(count, len(self.queue)))]
        if self.ended and (len(taken) < count or not taken[-1]) and not any(self.queue):
            while taken and not taken[-1]:
                taken.pop()
            return taken, not taken
        return taken, False

    def expect_batch(self, count: int, size: int) -> Any:
        taken, end = self.take(count)
        if end:
            return "EOFError"
        if not taken:
            return "BlockingIOError"
        if any(len(record) > size for record in taken):
            return ("truncated", [record[:size] for record in taken],
                    [k for k, record in enumerate(taken) if len(record) > size],
                    [len(record) for record in taken])
        return taken


def check(label: str, got: Any, expected: Any) -> None:
    if got != expected:
        raise harness.Defect(f"{label}: got {got!r:.600} but the model says {expected!r:.600}")


def key(kind: str, value: Any) -> Any:
    return harness.error_key(value, False)[0] if kind == "error" else value


def step(impl: Any, a: Any, b: Any, model: Model, name: str, seed: bytes) -> Any:
    fdp = atheris.FuzzedDataProvider(seed)
    if name in ("send_records", "send", "sendall"):
        items = payloads(fdp) if name == "send_records" else payloads(fdp)[:1] or [b""]
        if name == "send_records":
            kind, value = harness.outcome(lambda: a.send_records(items))
        else:
            kind, value = harness.outcome(lambda: getattr(a, name)(items[0]))
            if kind == "ok":
                value = 1
        if kind == "ok":
            model.sent(items, value)
        elif not isinstance(value, (TypeError, BufferError, BlockingIOError, BrokenPipeError)):
            raise harness.Defect(f"{name}: {value!r}")
        return kind, key(kind, value)
    if name == "end":
        a.shutdown(socket.SHUT_WR)
        model.ended = True
        return "ok", None
    if name == "recv":
        size = pick(fdp, [0, 1, 64, 3000, fdp.ConsumeIntInRange(0, 4000)])
        kind, value = harness.outcome(lambda: b.recv(size))
        if size == 0:
            expected: Any = b""  # the stdlib's: at once, nothing taken
        elif model.queue:
            expected = model.queue.popleft()[:size]
        else:
            expected = b"" if model.ended else "BlockingIOError"
        check("recv", key(kind, value), expected)
        return kind, key(kind, value)
    if name == "recv_record":
        size = pick(fdp, [1, 7, 64, 65536, 0, -1, fdp.ConsumeIntInRange(1, 4000), Index(5), 1.0])

        def record() -> Any:
            try:
                return b.recv_record(size)
            except impl.TruncatedRecordError as exc:
                return ("truncated", exc.messages, exc.truncated, exc.lengths)
        kind, value = harness.outcome(record)
        if isinstance(size, float):
            check("recv_record", key(kind, value), "TypeError")
        elif operator.index(size) <= 0:
            check("recv_record", key(kind, value), "ValueError")
        else:
            expected = model.expect_batch(1, operator.index(size))
            check("recv_record", key(kind, value),
                  expected[0] if isinstance(expected, list) else expected)
        return kind, key(kind, value)
    count = pick(fdp, [1, 4, 64, fdp.ConsumeIntInRange(1, 100), 0, Index(2)])
    slot = pick(fdp, [1, 7, 64, 2048, 65536, 65537, fdp.ConsumeIntInRange(1, 3000)])
    bad = not operator.index(count) or slot > 65536
    if name == "recv_records":
        def records() -> Any:
            try:
                return b.recv_records(count, slot)
            except impl.TruncatedRecordError as exc:
                return ("truncated", exc.messages, exc.truncated, exc.lengths)
        kind, value = harness.outcome(records)
    else:
        def receive() -> Any:
            batch = impl.DatagramBatch(count, slot)
            try:
                filled = b.recv_batch(batch)
            except EOFError:
                if len(batch):
                    raise harness.Defect("recv_batch: EOFError left the batch filled")
                raise
            views = [bytes(view) for view, _ in batch]
            if any(batch.truncated(k) for k in range(filled)):
                return ("truncated", views,
                        [k for k in range(filled) if batch.truncated(k)],
                        [batch.length(k) for k in range(filled)])
            return views
        kind, value = harness.outcome(receive)
    check(name, key(kind, value), "ValueError" if bad else model.expect_batch(operator.index(count), slot))
    return kind, key(kind, value)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    steps = plan(fdp)
    logs: dict[str, list[Any]] = {}
    for impl in harness.IMPLS:
        a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            a.settimeout(0.0)
            b.settimeout(0.0)
            model = Model()
            log = logs.setdefault(impl.IMPLEMENTATION, [])
            for name, seed in steps:
                log.append((name, *step(impl, a, b, model, name, seed)))
        finally:
            a.close()
            b.close()
    harness.same_logs(logs)


if __name__ == "__main__":
    harness.main(one_input)
