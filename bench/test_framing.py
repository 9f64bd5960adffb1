"""Framing: receive 64-byte messages, each after a 4-byte big-endian length,
over a Unix stream connection and over TCP on 127.0.0.1.  The sender is a
peer process writing the pre-framed stream as fast as it can.

The variants are the ways Python code splits such a stream: the stdlib
``makefile('rb')`` idiom (``read(4)`` then ``read(n)``, the baseline), a
``recv_into`` loop over one bytearray with ``struct.unpack_from`` yielding a
``bytes`` per message, asyncio's ``readexactly`` on the default event loop,
and fastsock's ``recv_msg`` and ``recv_msgs`` (with a Python ``for`` loop
over each list it returns), pure and compiled.  Every variant hands out one
``bytes`` per message.  The C reference receives into one buffer and splits
the frames in place.

The stream is continuous: every round takes exactly its count of messages
and leaves whatever else arrived for the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any, Callable, Generator

import pytest

from ._harness import (
    FRAME_PAYLOAD,
    FRAMING_BASELINE,
    FRAME_PREFIX,
    FRAMING_RECV_BUFSIZE,
    CBuild,
    Impl,
    Peers,
    Pinning,
    Sizes,
    Variant,
    fastsock_impls,
    fastsock_variant,
    framing_name,
    framing_row,
    measure,
    measure_cref,
    served_peer,
)

pytestmark = pytest.mark.bench_heavy

TRANSPORTS = ["unix", "tcp"]
BASELINE = Impl(FRAMING_BASELINE, "stdlib", "makefile")
IMPLS = [
    BASELINE,
    Impl("stdlib recv_into+unpack", "stdlib", "recv_into+unpack"),
    Impl("asyncio readexactly", "asyncio", "readexactly"),
    *fastsock_impls("recv_msg", "recv_msgs"),
]
RECV_MSGS_MAX = 1024
EXPECTED = b"m" * FRAME_PAYLOAD

# A round: receive this many messages; returns the last one (for a check).
Reader = Callable[[int], bytes]


def _makefile_reader(conn: Any, stack: contextlib.ExitStack) -> Reader:
    stream = stack.enter_context(conn.makefile("rb"))
    read = stream.read
    unpack = struct.Struct(">I").unpack

    def run(n: int) -> bytes:
        msg = b""
        for _ in range(n):
            (size,) = unpack(read(4))
            msg = read(size)
        return msg

    return run


def _split_frames(conn: Any) -> Generator[bytes, None, None]:
    """The messages of the stream, one ``bytes`` each, from ``recv_into``
    calls into one bytearray; a partial frame is moved to the front."""
    buf = bytearray(FRAMING_RECV_BUFSIZE)
    view = memoryview(buf)
    unpack_from = struct.Struct(">I").unpack_from
    recv_into = conn.recv_into
    start = end = 0
    while True:
        while end - start >= FRAME_PREFIX:
            (size,) = unpack_from(buf, start)
            stop = start + FRAME_PREFIX + size
            if stop > end:
                break
            yield view[start + FRAME_PREFIX:stop].tobytes()
            start = stop
        if start:
            buf[:end - start] = buf[start:end]
            end -= start
            start = 0
        if end == len(buf):
            raise ValueError("a frame larger than the receive buffer")
        got = recv_into(view[end:])
        if not got:
            raise ConnectionError("frames peer closed the connection")
        end += got


def _recv_into_reader(conn: Any, stack: contextlib.ExitStack) -> Reader:
    frames = _split_frames(conn)
    stack.callback(frames.close)

    def run(n: int) -> bytes:
        msg = b""
        for _, msg in zip(range(n), frames):
            pass
        return msg

    return run


def _asyncio_reader(conn: Any, stack: contextlib.ExitStack, transport: str) -> Reader:
    loop = asyncio.new_event_loop()
    stack.callback(loop.close)
    opener = asyncio.open_unix_connection if transport == "unix" else asyncio.open_connection
    reader, writer = loop.run_until_complete(opener(sock=conn))

    async def close() -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    stack.callback(lambda: loop.run_until_complete(close()))
    unpack = struct.Struct(">I").unpack

    async def receive(n: int) -> bytes:
        readexactly = reader.readexactly
        msg = b""
        for _ in range(n):
            (size,) = unpack(await readexactly(4))
            msg = await readexactly(size)
        return msg

    def run(n: int) -> bytes:
        return loop.run_until_complete(receive(n))

    return run


def _recv_msg_reader(conn: Any) -> Reader:
    recv_msg = conn.recv_msg

    def run(n: int) -> bytes:
        msg = b""
        for _ in range(n):
            msg = recv_msg()
        return msg

    return run


def _recv_msgs_reader(conn: Any) -> Reader:
    recv_msgs = conn.recv_msgs

    def run(n: int) -> bytes:
        msg = b""
        got = 0
        while got < n:
            msgs = recv_msgs(min(RECV_MSGS_MAX, n - got))
            for msg in msgs:
                pass
            got += len(msgs)
        return msg

    return run


def _reader(impl: Impl, conn: Any, stack: contextlib.ExitStack, transport: str) -> Reader:
    if impl.method == "makefile":
        return _makefile_reader(conn, stack)
    if impl.method == "recv_into+unpack":
        return _recv_into_reader(conn, stack)
    if impl.method == "readexactly":
        return _asyncio_reader(conn, stack, transport)
    if impl.method == "recv_msg":
        return _recv_msg_reader(conn)
    return _recv_msgs_reader(conn)


@pytest.mark.parametrize("impl", IMPLS, ids=[impl.id for impl in IMPLS])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_framing(benchmark: Any, sizes: Sizes, peers: Peers, transport: str,
                 impl: Impl) -> None:
    if impl.is_fastsock:
        variant = fastsock_variant(impl, impl.method)
    else:
        variant = Variant("stdlib")
    n = sizes.framing
    last: list[bytes] = []
    with served_peer(variant, peers, transport, "frames", str(FRAME_PAYLOAD)) as conn, \
            contextlib.ExitStack() as stack:
        receive = _reader(impl, conn, stack, transport)
        if sizes.framing_warmup:
            receive(sizes.framing_warmup)

        def run() -> None:
            last[:] = [receive(n)]

        measure(benchmark, sizes, workload=framing_name(transport), variant=impl.label,
                unit="msgs", units=n, run=run, rounds=sizes.framing_rounds, warmup=0,
                baseline=FRAMING_BASELINE, impl=impl.family, method=impl.method,
                row=framing_row(transport, impl.method) if impl.is_fastsock else None,
                batch=n, payload=FRAME_PAYLOAD, peer=peers.kind)
    if last != [EXPECTED]:
        raise AssertionError(f"the last message of a round was {last[:1]!r}")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_framing_cref(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                      transport: str) -> None:
    measure_cref(benchmark, sizes, cbuild, pinning, workload=framing_name(transport),
                 cworkload=f"frames-{transport}", unit="msgs",
                 params=dict(batch=sizes.framing, rounds=sizes.framing_rounds,
                             warmup=1, size=FRAME_PAYLOAD, wsize=FRAMING_RECV_BUFSIZE),
                 baseline=FRAMING_BASELINE, impl="c", method="split in place",
                 payload=FRAME_PAYLOAD, peer="c")

