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

The asyncio variants, each on a connection of its own loop: ``readexactly``
(asyncio's streams, on the default loop and on uvloop); a hand-written
``asyncio.BufferedProtocol`` whose ``buffer_updated`` splits the frames in
Python as they arrive (on the default loop, on uvloop, and on aiofastnet's
transport over the default loop); and fastsock.aio's ``read_msg`` and
``read_msgs`` (pure and compiled, default loop), the event-loop forms of
``recv_msg`` and ``recv_msgs``.

The stream is continuous: every round takes exactly its count of messages
and leaves whatever else arrived for the next round.  To keep the run's time
budget, the slower variants take a share of the count per round
(``round_count``; in the default mode of 2,000,000): an eighth for
``readexactly`` on either loop and the pure ``read_msg`` and ``recv_msg``, a
quarter for the compiled ``read_msg``, the BufferedProtocols and the pure
``read_msgs`` and ``recv_msgs``, so each round lasts a tenth to half a second.  Their throughput is still
messages per second, so they compare as the others do.
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
    PURE,
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
    Impl("uvloop readexactly", "uvloop", "uvloop-readexactly"),
    Impl("asyncio BufferedProtocol", "asyncio", "bufferedprotocol"),
    Impl("uvloop BufferedProtocol", "uvloop", "uvloop-bufferedprotocol"),
    Impl("aiofastnet BufferedProtocol", "aiofastnet", "aiofastnet-bufferedprotocol"),
    *fastsock_impls("recv_msg", "recv_msgs", "aio.read_msg", "aio.read_msgs"),
]
# The share of the round's count the slower asyncio variants take, so that a
# round of each lasts a tenth to a third of a second: 1/8 for one or two
# awaits per message in Python (about 1M messages/s), 1/4 for the compiled
# read_msg, the BufferedProtocols and the pure read_msgs (2-4M messages/s).
SHARES = {"readexactly": 8, "uvloop-readexactly": 8, "aio.read_msg": 4,
          "bufferedprotocol": 4, "uvloop-bufferedprotocol": 4,
          "aiofastnet-bufferedprotocol": 4}
# The pure twin's blocking calls (about 0.4M and 1M messages/s) take an
# eighth and a quarter too: whole rounds of them were a sixth of make bench.
PURE_SHARES = {"aio.read_msg": 8, "aio.read_msgs": 4, "recv_msg": 8, "recv_msgs": 4}


def round_count(impl: Impl, sizes: Sizes) -> int:
    """Messages a round of ``impl`` takes."""
    shares = PURE_SHARES if impl.family == PURE else {}
    return sizes.framing // shares.get(impl.method, SHARES.get(impl.method, 1))


# the blocking method each fastsock.aio one is the event-loop form of
AIO_BLOCKING = {"aio.read_msg": "recv_msg", "aio.read_msgs": "recv_msgs"}
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


def _new_loop(uses_uvloop: bool, stack: contextlib.ExitStack) -> asyncio.AbstractEventLoop:
    if uses_uvloop:
        uvloop = pytest.importorskip("uvloop")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    stack.callback(loop.close)
    return loop


def _asyncio_reader(conn: Any, stack: contextlib.ExitStack, transport: str,
                    uses_uvloop: bool) -> Reader:
    loop = _new_loop(uses_uvloop, stack)
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


class _FrameProtocol(asyncio.BufferedProtocol):
    """The frames split in Python as they arrive: the transport receives
    into one bytearray (get_buffer), buffer_updated walks the whole frames
    in it with ``struct.unpack_from`` and makes one ``bytes`` per message.

    A round asks for a count; once it is reached, reading pauses and the
    bytes past the last message taken stay in the buffer for the next round."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buf = bytearray(FRAMING_RECV_BUFSIZE)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.wanted = 0
        self.last = b""
        self.done: "asyncio.Future[None] | None" = None
        self.transport: Any = None
        self.lost: "BaseException | None" = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.pause_reading()  # type: ignore[attr-defined]

    def connection_lost(self, exc: "BaseException | None") -> None:
        self.lost = exc or ConnectionError("frames peer closed the connection")
        if self.done is not None and not self.done.done():
            self.done.set_exception(self.lost)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.start:
            # a partial frame (or what a finished round left) to the front
            self.buf[:self.end - self.start] = self.buf[self.start:self.end]
            self.end -= self.start
            self.start = 0
        if self.end == len(self.buf):
            # full of whole frames no round has taken yet (uvloop may read
            # once more after pause_reading()): a bigger buffer, never an error
            grown = bytearray(2 * len(self.buf))
            grown[:self.end] = self.buf
            self.buf, self.view = grown, memoryview(grown)
        return self.view[self.end:]

    def buffer_updated(self, nbytes: int) -> None:
        self.end += nbytes
        self._split()

    def _split(self) -> None:
        buf, view, start, end = self.buf, self.view, self.start, self.end
        wanted = self.wanted
        unpack_from = _UNPACK_FROM
        msg = self.last
        while wanted and end - start >= FRAME_PREFIX:
            (size,) = unpack_from(buf, start)
            stop = start + FRAME_PREFIX + size
            if stop > end:
                break
            msg = view[start + FRAME_PREFIX:stop].tobytes()
            start = stop
            wanted -= 1
        self.start, self.wanted, self.last = start, wanted, msg
        if not wanted and self.done is not None:
            self.transport.pause_reading()
            if not self.done.done():
                self.done.set_result(None)

    async def receive(self, n: int) -> bytes:
        if self.lost is not None:
            raise self.lost
        self.wanted = n
        self.done = self.loop.create_future()
        self._split()  # what the last round left
        if self.wanted:
            self.transport.resume_reading()
        await self.done
        self.done = None
        return self.last


_UNPACK_FROM = struct.Struct(">I").unpack_from


def _protocol_reader(conn: Any, stack: contextlib.ExitStack, transport: str,
                     uses_uvloop: bool, aiofastnet: bool = False) -> Reader:
    loop = _new_loop(uses_uvloop, stack)
    protocol = _FrameProtocol(loop)
    if aiofastnet:
        fast = pytest.importorskip("aiofastnet")
        coro = fast.connect_accepted_socket(loop, lambda: protocol, conn)
    else:
        coro = loop.connect_accepted_socket(lambda: protocol, conn)
    tport, _ = loop.run_until_complete(coro)

    async def close() -> None:
        tport.close()
        await asyncio.sleep(0)

    stack.callback(lambda: loop.run_until_complete(close()))

    def run(n: int) -> bytes:
        return loop.run_until_complete(protocol.receive(n))

    return run


def _aio_reader(conn: Any, stack: contextlib.ExitStack, transport: str,
                batch: bool) -> Reader:
    try:
        import fastsock.aio as aio
    except ImportError as exc:
        pytest.skip(f"fastsock.aio not importable: {exc}")
    loop = _new_loop(False, stack)
    opener = aio.open_unix_connection if transport == "unix" else aio.open_connection
    reader, writer = loop.run_until_complete(opener(sock=conn))

    async def close() -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    stack.callback(lambda: loop.run_until_complete(close()))

    async def receive_each(n: int) -> bytes:
        read_msg = reader.read_msg
        msg = b""
        for _ in range(n):
            msg = await read_msg()
        return msg

    async def receive_batches(n: int) -> bytes:
        read_msgs = reader.read_msgs
        msg = b""
        got = 0
        while got < n:
            msgs = await read_msgs(min(RECV_MSGS_MAX, n - got))
            for msg in msgs:
                pass
            got += len(msgs)
        return msg

    receive = receive_batches if batch else receive_each

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
    if impl.method in ("readexactly", "uvloop-readexactly"):
        return _asyncio_reader(conn, stack, transport, impl.family == "uvloop")
    if impl.method.endswith("bufferedprotocol"):
        return _protocol_reader(conn, stack, transport, impl.family == "uvloop",
                                aiofastnet=impl.family == "aiofastnet")
    if impl.method.startswith("aio."):
        return _aio_reader(conn, stack, transport, batch=impl.method == "aio.read_msgs")
    if impl.method == "recv_msg":
        return _recv_msg_reader(conn)
    return _recv_msgs_reader(conn)


@pytest.mark.parametrize("impl", IMPLS, ids=[impl.id for impl in IMPLS])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_framing(benchmark: Any, sizes: Sizes, peers: Peers, transport: str,
                 impl: Impl) -> None:
    if impl.is_fastsock:
        variant = fastsock_variant(impl, AIO_BLOCKING.get(impl.method, impl.method))
    else:
        variant = Variant("stdlib")
    n = round_count(impl, sizes)
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

