"""fastsock.aio against asyncio's own streams, on the default loop and uvloop,
with sockets of both implementations (passed in through ``sock=``)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import struct
import sys
from types import ModuleType
from typing import Any, Awaitable, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aio_support import Runner, loop_runner
import fastsock
from fastsock import _aio_stream_py, aio


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine function on a fresh loop of each kind, bounded in time."""
    return loop_runner(request.param)


@pytest.fixture(params=["inline", "scheduled"])
def resume(request: pytest.FixtureRequest) -> Iterator[str]:
    """How a read's wait ends: the readiness callback runs the waiting task at
    once (the fast path), or its wake-up goes through the loop's scheduling
    (asyncio's own way): the faults are run both ways, on both cores."""
    inline = request.param == "inline"
    compiled = sys.modules.get("fastsock._socket_c")
    _aio_stream_py.RESUME_INLINE = inline
    if compiled is not None:
        compiled._aio_resume_inline(inline)
    try:
        yield request.param
    finally:
        _aio_stream_py.RESUME_INLINE = True
        if compiled is not None:
            compiled._aio_resume_inline(True)


def frames(payloads: list[bytes], prefix_size: int = 4) -> bytes:
    code = {1: ">B", 2: ">H", 4: ">I", 8: ">Q"}[prefix_size]
    return b"".join(struct.pack(code, len(p)) + p for p in payloads)


async def _pair(impl: ModuleType) -> tuple[Any, Any, Any, Any]:
    """fastsock.aio streams on one end of an ``impl`` socketpair, asyncio's on the other."""
    a, b = impl.socketpair()
    reader, writer = await aio.open_unix_connection(sock=a)
    peer = socket.socket(fileno=b.detach())
    peer_reader, peer_writer = await asyncio.open_unix_connection(sock=peer)
    return reader, writer, peer_reader, peer_writer


async def _close(*writers: Any) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


# -- servers and clients against asyncio's -------------------------------------

@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_fastsock_server_asyncio_client(impl: ModuleType, run: Runner, kind: str,
                                        unix_dir: str) -> None:
    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        assert writer.get_extra_info("socket") is not None
        async for line in reader:
            writer.write(line.upper())
            await writer.drain()
        assert reader.at_eof()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        path = os.path.join(unix_dir, "s")
        if kind == "tcp":
            listener = impl.create_server(("127.0.0.1", 0))
            server = await aio.start_server(handle, sock=listener)
            reader, writer = await asyncio.open_connection(*listener.getsockname())
        else:
            listener = impl.create_server(path, family=impl.AF_UNIX)
            server = await aio.start_unix_server(handle, sock=listener)
            reader, writer = await asyncio.open_unix_connection(path)
        async with server:
            assert server.is_serving()
            writer.writelines([b"one\ntw", b"o\n", b"three\n"])
            await writer.drain()
            assert await reader.readline() == b"ONE\n"
            assert await reader.readexactly(4) == b"TWO\n"
            assert await reader.readuntil(b"E\n") == b"THREE\n"
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()

    run(main)


def test_start_server_by_address(run: Runner, unix_dir: str) -> None:
    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        writer.write(await reader.readexactly(3))
        writer.close()

    async def main() -> None:
        server = await aio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"abc")
        assert await reader.read() == b"abc"
        writer.close()
        path = os.path.join(unix_dir, "u")
        userver = await aio.start_unix_server(handle, path)
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"xyz")
        assert await reader.read() == b"xyz"
        writer.close()
        for srv in (server, userver):
            srv.close()
            await srv.wait_closed()
        assert not os.path.exists(path)  # removed with the server, as asyncio's

    run(main)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_asyncio_server_fastsock_client(impl: ModuleType, run: Runner, kind: str,
                                        unix_dir: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frames([b"hello", b"", b"x" * 70000]) + b"line\nrest")
        await writer.drain()
        assert await reader.readexactly(9) == frames([b"abcde"])
        assert await reader.readexactly(9) == frames([b"f", b""])
        writer.close()

    async def main() -> None:
        path = os.path.join(unix_dir, "s")
        if kind == "tcp":
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            address = server.sockets[0].getsockname()
            sock = impl.create_connection(address)
            reader, writer = await aio.open_connection(sock=sock)
            assert writer.get_extra_info("peername") == address
        else:
            server = await asyncio.start_unix_server(handle, path)
            sock = impl.StreamSocket(impl.AF_UNIX)
            sock.connect(path)
            reader, writer = await aio.open_unix_connection(sock=sock)
        async with server:
            assert writer.get_extra_info("socket") is sock
            assert writer.get_extra_info("sockname") == sock.getsockname()
            assert await reader.read_msg() == b"hello"
            got = await reader.read_msgs()
            while len(got) < 2:
                got += await reader.read_msgs()
            assert got == [b"", b"x" * 70000]
            assert await reader.readline() == b"line\n"
            writer.write_msg(b"abcde")
            writer.write_msgs([b"f", bytearray()])
            await writer.drain()
            assert await reader.read() == b"rest"
            assert reader.at_eof()
            await _close(writer)

    run(main)


def test_open_connection_by_name(run: Runner) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await aio.open_connection("localhost", port, family=socket.AF_INET)
            writer.write(b"hi\n")
            assert await reader.readline() == b"hi\n"
            assert await reader.readline() == b""
            await _close(writer)
            # nobody listens there any more
            server.close()
            await server.wait_closed()
            with pytest.raises(ConnectionRefusedError):
                await aio.open_connection("127.0.0.1", port)

    run(main)


def test_ssl_refused(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="asyncio"):
            await aio.open_connection("127.0.0.1", 1, ssl=True)

    run(main)


# -- asyncio's semantics -------------------------------------------------------

def test_errors_are_asyncios(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        reader._limit = 8
        peer_writer.write(b"0123456789abc\nxy")
        await peer_writer.drain()
        await asyncio.sleep(0.01)
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.readuntil(b"\n")
        assert await reader.readexactly(3) == b"012"  # the data stayed
        with pytest.raises(ValueError):
            await reader.readline()  # drops the over-long line
        assert await reader.read(1) == b"x"
        peer_writer.close()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(5)
        assert info.value.partial == b"y" and info.value.expected == 5
        with pytest.raises(asyncio.IncompleteReadError):
            await reader.readuntil(b"\n")
        with pytest.raises(asyncio.IncompleteReadError):
            await reader.read_msg()
        assert reader.at_eof()
        await _close(writer, peer_writer)

    run(main)


def test_cancelled_read_loses_nothing(impl: ModuleType, run: Runner, resume: str) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        data = frames([b"a" * 100, b"b" * 200000, b"c"])
        for method in ("read_msg", "readexactly", "readuntil", "separators"):
            peer_writer.write(data[:50])
            await peer_writer.drain()
            if method == "read_msg":
                task = asyncio.ensure_future(reader.read_msg())
            elif method == "readexactly":
                task = asyncio.ensure_future(reader.readexactly(len(data)))
            elif method == "readuntil":
                task = asyncio.ensure_future(reader.readuntil(b"\xff"))
            else:
                task = asyncio.ensure_future(reader.readuntil((b"\xff", b"\xfe\xfe")))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read_msg(), 0.01)
            peer_writer.write(data[50:])
            await peer_writer.drain()
            got = [await reader.read_msg()]
            while len(got) < 3:
                got += await reader.read_msgs()
            assert got == [b"a" * 100, b"b" * 200000, b"c"]
        await _close(writer, peer_writer)

    run(main)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is new in 3.11")
@pytest.mark.parametrize("method", ["read_msg", "read_msgs", "readexactly", "readexactly_into",
                                    "readuntil"])
def test_asyncio_timeout_around_a_read_loses_nothing(impl: ModuleType, run: Runner,
                                                     method: str, resume: str) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        data = frames([b"x" * 70000, b"y"])
        size = len(data)
        buffer = bytearray(size)
        reads = {"read_msg": reader.read_msg, "read_msgs": reader.read_msgs,
                 "readexactly": lambda: reader.readexactly(size),
                 "readexactly_into": lambda: reader.readexactly_into(buffer),
                 "readuntil": lambda: reader.readuntil(b"\xff")}
        peer_writer.write(data[:40000])  # part of the first frame: the read must wait
        await peer_writer.drain()
        with pytest.raises(TimeoutError):
            async with getattr(asyncio, "timeout")(0.05):  # 3.11+, as the mark says
                await reads[method]()
        peer_writer.write(data[40000:])
        await peer_writer.drain()
        messages = [await reader.read_msg(), await reader.read_msg()]
        assert messages == [b"x" * 70000, b"y"]
        await _close(writer, peer_writer)

    run(main)


def test_concurrent_reads_refused(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        task = asyncio.ensure_future(reader.read(10))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already waiting"):
            await reader.read_msg()
        peer_writer.write(b"z")
        assert await task == b"z"
        await _close(writer, peer_writer)

    run(main)


def test_reads_and_drain_behave_as_asyncios_coroutines(impl: ModuleType, run: Runner) -> None:
    """What code does with asyncio's reads beyond awaiting them at once: the
    compiled core's reads are awaitables of their own, not coroutines."""
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        peer_writer.write(frames([b"m1", b"m2"]) + b"abcdefgh")
        await peer_writer.drain()
        # made before they are awaited: each reads when awaited, in that order
        first, second, drain = reader.read_msg(), reader.read_msg(), writer.drain()
        assert asyncio.iscoroutine(first) and asyncio.iscoroutine(drain)
        await drain
        assert await second == b"m1"
        assert await first == b"m2"
        # a read made and closed unawaited reads nothing
        reader.readexactly(1).close()
        assert await asyncio.create_task(reader.readexactly(3)) == b"abc"
        read = reader.readexactly(3)
        assert await read == b"def"
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await read
        closed = reader.readexactly(1)
        closed.close()
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await closed
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"gh"
        # a read in a task of its own waits, then completes with what comes
        task = asyncio.create_task(reader.read_msgs())
        await asyncio.sleep(0.01)
        assert not task.done()
        peer_writer.write(frames([b"n1", b"n2"]))
        assert await task == [b"n1", b"n2"]
        with pytest.raises(ValueError, match="less than zero"):
            await reader.readexactly(-1)
        assert await reader.readexactly(0) == b""
        writer.write(b"x")
        assert await asyncio.create_task(writer.drain()) is None
        assert await peer_reader.readexactly(1) == b"x"
        await _close(writer, peer_writer)

    run(main)


_STEP = contextvars.ContextVar("_STEP", default=0)


def test_a_resumed_read_runs_in_its_task_and_its_context(impl: ModuleType, run: Runner,
                                                        resume: str) -> None:
    # the readiness callback runs in a copy of the context made when the
    # descriptor was first watched; a read it resumes must run in its task's
    # own context, and as that task (asyncio.timeout() and current_task()
    # rely on it)
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        me = asyncio.current_task()
        seen = []

        async def feed() -> None:
            for i in range(3):
                await asyncio.sleep(0.01)
                peer_writer.write(bytes([i]))

        feeder = asyncio.ensure_future(feed())
        for i in range(1, 4):
            _STEP.set(i)  # changed after the watch began: only the task's context has it
            assert await reader.readexactly(1) == bytes([i - 1])
            seen.append((_STEP.get(), asyncio.current_task() is me))
        await feeder
        assert seen == [(1, True), (2, True), (3, True)]
        # after a step through the loop, still in the task's own context:
        # what the resumed steps set is there (run in another context, the
        # sets after the first wait would have gone there)
        await asyncio.sleep(0)
        assert _STEP.get() == 3
        assert reader._waits >= 3  # each read waited: each was resumed
        await _close(writer, peer_writer)
    run(main)


def test_close_wakes_pending_read(impl: ModuleType, run: Runner, resume: str) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        pending = [asyncio.ensure_future(reader.read_msg())]
        await asyncio.sleep(0.01)
        writer.close()
        with pytest.raises(asyncio.IncompleteReadError):
            await pending[0]
        assert await reader.read(10) == b""
        assert writer.is_closing()
        await writer.wait_closed()
        assert await peer_reader.read() == b""
        await _close(peer_writer)

    run(main)


def test_reset_reported(impl: ModuleType, run: Runner, resume: str) -> None:
    async def main() -> None:
        listener = impl.create_server(("127.0.0.1", 0))
        accepted: asyncio.Future[aio.StreamReader] = asyncio.get_running_loop().create_future()

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            accepted.set_result(reader)

        server = await aio.start_server(handle, sock=listener)
        async with server:
            client = socket.create_connection(listener.getsockname())
            reader = await accepted
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # an RST
            with pytest.raises(ConnectionResetError):
                await reader.read_msg()
            assert reader.exception() is not None
            server.close_clients()

    run(main)


def test_reset_after_frames_read_ahead_comes_after_them(impl: ModuleType, run: Runner, resume: str) -> None:
    # read_msg() splits the three frames at once; the reset the same receive
    # met is raised only once they have all been handed out
    async def main() -> None:
        listener = impl.create_server(("127.0.0.1", 0))
        accepted: asyncio.Future[aio.StreamReader] = asyncio.get_running_loop().create_future()

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            accepted.set_result(reader)

        server = await aio.start_server(handle, sock=listener)
        async with server:
            client = socket.create_connection(listener.getsockname())
            reader = await accepted
            client.sendall(frames([b"one", b"two", b"three"]))
            await asyncio.sleep(0.05)  # arrived before the reset
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # an RST
            await asyncio.sleep(0.05)
            assert await reader.read_msg() == b"one"
            assert reader._frames  # the path under test: read ahead
            assert [await reader.read_msg(), await reader.read_msg()] == [b"two", b"three"]
            with pytest.raises(ConnectionResetError):
                await reader.read_msg()
            assert reader.exception() is not None
            server.close_clients()

    run(main)


@pytest.mark.parametrize("buffer", [bytes, bytearray, memoryview])
def test_backpressure(impl: ModuleType, run: Runner, buffer: type) -> None:
    # partial sends and a full buffer, for bytes and for the other buffers
    # (which the compiled writer sends by another path)
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        writer.set_write_buffer_limits(high=65536)
        chunk = buffer(b"q" * 65536)
        total = 0
        blocked = False
        # a peer that does not read: drain() must come to wait
        for _ in range(200):
            writer.write(chunk)
            total += len(chunk)
            assert writer.get_write_buffer_size() <= 65536 + len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.05)
            except asyncio.TimeoutError:
                blocked = True
                break
        assert blocked
        drained = asyncio.ensure_future(writer.drain())
        received = 0
        while received < total:
            block = await peer_reader.read(1 << 20)
            assert block == b"q" * len(block)
            received += len(block)
        await drained
        assert writer.get_write_buffer_size() == 0
        await _close(writer, peer_writer)

    run(main)


@pytest.mark.parametrize("buffer", [bytes, bytearray, memoryview])
def test_write_after_a_reset_reports_as_asyncios(impl: ModuleType, run: Runner,
                                                 buffer: type) -> None:
    # the same steps on asyncio's own streams and on fastsock.aio's (on both
    # loops): the reset the write meets ends the connection; drain() and
    # exception() tell it, later writes are dropped quietly (bytes, and other
    # buffers, which the compiled writer sends by another path)
    async def steps(streams: str) -> tuple[Any, ...]:
        if streams == "asyncio":
            listener: Any = socket.create_server(("127.0.0.1", 0))
            connect: Any = asyncio.open_connection
        else:
            listener, connect = impl.create_server(("127.0.0.1", 0)), aio.open_connection
        with listener:
            reader, writer = await connect(sock=impl.create_connection(listener.getsockname())
                                           if streams == "fastsock" else
                                           socket.create_connection(listener.getsockname()))
            peer, _ = listener.accept()
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()  # an RST
            await asyncio.sleep(0.05)
            writer.write(buffer(b"x" * 1000))
            with pytest.raises(ConnectionError) as drained:
                await writer.drain()
            writer.write(buffer(b"y"))  # dropped: the connection has ended
            with pytest.raises(ConnectionError):
                await writer.drain()
            seen = (drained.type, type(reader.exception()), writer.is_closing())
            writer.close()
            return seen

    # the reference: asyncio's streams on its own loop (uvloop's refuse a
    # write after the end with RuntimeError)
    expected = loop_runner("asyncio")(lambda: steps("asyncio"))
    assert expected[1] is ConnectionResetError and expected[2]
    assert run(lambda: steps("fastsock")) == expected


def test_write_after_eof_refused(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        assert writer.can_write_eof()
        writer.write(b"end")
        writer.write_eof()
        with pytest.raises(RuntimeError):
            writer.write(b"more")
        assert await peer_reader.read() == b"end"
        await _close(writer, peer_writer)

    run(main)


@pytest.mark.parametrize("clients", ["asyncio", "fastsock"])
def test_many_connections(run: Runner, clients: str) -> None:
    count = 1000
    connect = asyncio.open_connection if clients == "asyncio" else aio.open_connection

    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        writer.write_msgs(await reader.read_msgs())
        await writer.drain()
        writer.close()

    async def client(port: int, i: int) -> bytes:
        reader, writer = await connect("127.0.0.1", port)
        payload = str(i).encode()
        writer.write(frames([payload]))
        size = struct.unpack(">I", await reader.readexactly(4))[0]
        got = await reader.readexactly(size)
        writer.close()
        await writer.wait_closed()
        return got

    async def main() -> None:
        server = await aio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        async with server:
            port = server.sockets[0].getsockname()[1]
            results = await asyncio.gather(*(client(port, i) for i in range(count)))
            assert results == [str(i).encode() for i in range(count)]

    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * count + 100:
        pytest.skip(f"{soft} descriptors are too few")
    run(main)


# -- framing over random write splits ------------------------------------------

@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=20),
       cuts=st.lists(st.integers(min_value=0, max_value=10000), max_size=12),
       prefix_size=st.sampled_from([1, 2, 4, 8]),
       batched=st.booleans())
def test_framing_random_splits(impl: ModuleType, run: Runner, payloads: list[bytes],
                               cuts: list[int], prefix_size: int, batched: bool) -> None:
    data = frames(payloads, prefix_size)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})

    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)

        async def send() -> None:
            for start, end in zip(points, points[1:]):
                peer_writer.write(data[start:end])
                await peer_writer.drain()
                await asyncio.sleep(0)
            peer_writer.write_eof()

        sender = asyncio.ensure_future(send())
        got: list[bytes] = []
        while len(got) < len(payloads):
            if batched:
                got += await reader.read_msgs(7, prefix_size=prefix_size)
            else:
                got.append(await reader.read_msg(prefix_size=prefix_size))
        assert got == payloads
        await sender
        assert await reader.read() == b""
        await _close(writer, peer_writer)

    run(main)


def test_readexactly_into(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        buffer = bytearray(10)
        peer_writer.write(b"01234")
        task = asyncio.ensure_future(reader.readexactly_into(buffer, 8))
        await asyncio.sleep(0.01)
        assert not task.done()
        peer_writer.write(b"56789")
        assert await task == 8
        assert buffer[:8] == b"01234567"
        assert await reader.read(100) == b"89"
        await _close(writer, peer_writer)

    run(main)


def test_close_with_unsent_data_wakes_pending_read(impl: ModuleType, run: Runner, resume: str) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        pending = asyncio.ensure_future(reader.readexactly(10))
        await asyncio.sleep(0.01)
        data = b"w" * (4 << 20)  # more than the kernel takes at once
        writer.write(data)
        assert writer.get_write_buffer_size() > 0
        writer.close()
        with pytest.raises(asyncio.IncompleteReadError):
            await pending
        received = b""
        while len(received) < len(data):
            block = await peer_reader.read(1 << 20)
            assert block
            received += block
        assert received == data  # close sent everything first
        await writer.wait_closed()
        assert await peer_reader.read() == b""
        await _close(peer_writer)

    run(main)


def test_read_variants(impl: ModuleType, run: Runner, resume: str) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        peer_writer.write(b"first\nsecond\nthird")
        await peer_writer.drain()
        assert await reader.read(0) == b""
        assert await reader.read(3) == b"fir"
        assert await reader.readuntil((b"\n",)) == b"st\n"
        lines = []
        peer_writer.write_eof()
        async for line in reader:
            lines.append(line)
        assert lines == [b"second\n", b"third"]  # the last line as it is, as asyncio's
        assert reader.at_eof()
        assert await reader.read() == b""
        assert await reader.readline() == b""
        with pytest.raises(ValueError):
            await reader.readexactly(-1)
        with pytest.raises(ValueError):
            await reader.readuntil(b"")
        await _close(writer, peer_writer)

    run(main)


def test_read_all_until_end(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        data = os.urandom(300000)
        peer_writer.write(data)
        peer_writer.write_eof()
        assert await reader.read() == data
        assert reader.at_eof()
        await _close(writer, peer_writer)

    run(main)


def test_abort_drops_unsent(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        writer.write(b"a" * (4 << 20))
        writer.abort()
        assert writer.is_closing()
        await writer.wait_closed()
        received = 0
        while True:
            block = await peer_reader.read(1 << 20)
            if not block:
                break
            received += len(block)
        assert received < 4 << 20
        await _close(peer_writer)

    run(main)


def test_handler_error_reported_and_connection_closed(run: Runner) -> None:
    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        raise RuntimeError("handler failed")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: reported.append(context))
        server = await aio.start_server(handle, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
            assert await reader.read() == b""
            writer.close()
        assert isinstance(reported[0]["exception"], RuntimeError)

    run(main)


@pytest.mark.parametrize("pieces", [[b"ab\r", b"\ncd\n"], [b"ab", b"\r", b"\n", b"cd\n"],
                                    [b"ab\r\ncd\n"]])
def test_readuntil_separator_tuple(impl: ModuleType, run: Runner,
                                   pieces: list[bytes]) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)

        async def send() -> None:
            for piece in pieces:
                peer_writer.write(piece)
                await asyncio.sleep(0.005)

        sender = asyncio.ensure_future(send())
        # the one that ends first wins; the shortest on a tie
        assert await reader.readuntil((b"\r\n", b"\n")) == b"ab\r\n"
        assert await reader.readuntil((b"\r\n", b"d\n", b"\n")) == b"cd\n"
        await sender
        peer_writer.write(b"0123456789 tail")
        peer_writer.write_eof()
        reader._limit = 4
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.readuntil((b"x", b"yz"))
        assert await reader.readexactly(10) == b"0123456789"  # the data stayed
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readuntil((b"x", b"yz"))
        assert info.value.partial == b" tail"
        await _close(writer, peer_writer)

    run(main)


def test_server_wait_closed_waits_for_close(run: Runner) -> None:
    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        writer.close()

    async def main() -> None:
        server = await aio.start_server(handle, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        waiter = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await server.start_serving()
        assert server.is_serving()
        server.close()
        await waiter
        assert server.sockets == ()

    run(main)


def test_write_any_buffer(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        import array
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        writer.write(array.array("i", [1, 2]))
        writer.write(bytearray(b"ab"))
        writer.writelines([b"c", memoryview(b"d")])
        assert await peer_reader.readexactly(12) == array.array("i", [1, 2]).tobytes() + b"abcd"
        await _close(writer, peer_writer)

    run(main)


def test_descriptors_close_on_exec(run: Runner) -> None:
    async def main() -> None:
        accepted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            accepted.set_result(writer.get_extra_info("socket"))
            writer.close()

        server = await aio.start_server(handle, "127.0.0.1", 0)
        async with server:
            assert not server.sockets[0].get_inheritable()
            reader, writer = await aio.open_connection(*server.sockets[0].getsockname())
            assert not writer.get_extra_info("socket").get_inheritable()
            assert not (await accepted).get_inheritable()
            await _close(writer)

    run(main)


def test_write_msg_under_backpressure(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        payloads = [os.urandom(n) for n in (0, 1, 70000, 3, 1 << 20, 5)]
        for payload in payloads:
            writer.write_msg(bytearray(payload), prefix_size=8)
        with pytest.raises(OverflowError):
            writer.write_msg(b"x" * 256, prefix_size=1)
        with pytest.raises(ValueError):
            writer.write_msg(b"x", prefix_size=3)
        drained = asyncio.ensure_future(writer.drain())
        for payload in payloads:
            size = struct.unpack(">Q", await peer_reader.readexactly(8))[0]
            assert await peer_reader.readexactly(size) == payload
        await drained
        await _close(writer, peer_writer)

    run(main)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
                      min_size=1, max_size=15),
       enders=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=15, max_size=15),
       cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=10),
       tuple_separators=st.booleans())
def test_lines_random_splits(impl: ModuleType, run: Runner, lines: list[bytes],
                             enders: list[bytes], cuts: list[int],
                             tuple_separators: bool) -> None:
    expected = [line + end for line, end in zip(lines, enders)]
    data = b"".join(expected)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    # with ("\r\n", "\n") as with "\n" a line ends at its "\n": the same lines

    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)

        async def send() -> None:
            for start, end in zip(points, points[1:]):
                peer_writer.write(data[start:end])
                await asyncio.sleep(0)
            peer_writer.write_eof()

        sender = asyncio.ensure_future(send())
        got = []
        for _ in expected:
            if tuple_separators:
                got.append(await reader.readuntil((b"\r\n", b"\n")))
            else:
                got.append(await reader.readline())
        assert got == expected
        assert await reader.readline() == b""
        await sender
        await _close(writer, peer_writer)

    run(main)


def test_stdlib_sockets_taken_over(run: Runner, unix_dir: str) -> None:
    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        writer.write_msg(await reader.readline())
        writer.close()

    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        server = await aio.start_server(handle, sock=listener)
        async with server:
            assert listener.fileno() == -1  # its descriptor is the server's now
            client = socket.create_connection(server.sockets[0].getsockname())
            reader, writer = await aio.open_connection(sock=client)
            writer.write(b"taken over\n")
            assert await reader.read_msg() == b"taken over\n"
            await _close(writer)

    run(main)


def test_read_msgs_takes_a_bounded_batch_per_call(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        payloads = [b"%d" % i for i in range(3000)]
        peer_writer.write(frames(payloads))
        await peer_writer.drain()
        await asyncio.sleep(0.01)
        # everything has arrived: each call takes all it may, never waiting
        first = await reader.read_msgs()
        assert len(first) == 1024
        second = await reader.read_msgs(max_count=10000)
        assert first + second == payloads
        await _close(writer, peer_writer)

    run(main)


def test_read_until_has_the_sockets_limit(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        peer_writer.write(b"ab||cdefgh||")
        task = asyncio.ensure_future(reader.read_until(b"||", limit=4))
        assert await task == b"ab||"
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.read_until(b"||", limit=7)  # 8 bytes with the delimiter
        assert await reader.read_until(b"||", limit=8) == b"cdefgh||"
        pending = asyncio.ensure_future(reader.read_until(b"\n"))
        await asyncio.sleep(0.01)
        peer_writer.write(b"tail")
        peer_writer.write_eof()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await pending
        assert info.value.partial == b"tail"
        await _close(writer, peer_writer)

    run(main)


def test_defaults_are_the_sockets(impl: ModuleType) -> None:
    import inspect
    for method in ("recv_msg", "recv_msgs"):
        parameters = inspect.signature(getattr(impl.StreamSocket, method)).parameters
        assert parameters["max_size"].default == aio.DEFAULT_MAX_MESSAGE
    parameters = inspect.signature(impl.StreamSocket.recv_until).parameters
    assert inspect.signature(aio.StreamReader.read_until).parameters["limit"].default == \
        parameters["limit"].default


_SEPARATORS: list[Any] = [b"\n", b"ab", b"\r\n", b"xyz"]
if sys.version_info >= (3, 13):  # asyncio's readuntil() takes tuples from 3.13
    _SEPARATORS += [(b"\r\n", b"\n"), (b"ab", b"b"), (b"xyz", b"yz", b"z")]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=40).map(lambda b: bytes(b"abxyz\r\n"[c % 7] for c in b)),
       separator=st.sampled_from(_SEPARATORS), limit=st.integers(min_value=1, max_value=12))
def test_readuntil_as_asyncio(impl: ModuleType, run: Runner, data: bytes, separator: Any,
                              limit: int) -> None:
    async def read_all(reader: Any) -> list[Any]:
        out: list[Any] = []
        for _ in range(4):
            try:
                out.append(await reader.readuntil(separator))
            except asyncio.IncompleteReadError as exc:
                out.append(("incomplete", exc.partial))
                break
            except asyncio.LimitOverrunError:
                out.append(("overrun", await reader.readexactly(1)))
        return out

    async def main() -> None:
        a, b = impl.socketpair()
        reader, writer = await aio.open_unix_connection(sock=a, limit=limit)
        with b:
            b.sendall(data)
            b.shutdown(socket.SHUT_WR)
            ours = await read_all(reader)
        theirs_reader = asyncio.StreamReader(limit=limit)
        theirs_reader.feed_data(data)
        theirs_reader.feed_eof()
        assert ours == await read_all(theirs_reader)
        await _close(writer)

    run(main)


# -- the wait-first path ---------------------------------------------------------

@pytest.mark.parametrize("method", ["read", "readexactly", "read_msg", "read_msgs"])
def test_a_read_that_waits_first_sees_bytes_that_came_while_nobody_waited(
        impl: ModuleType, run: Runner, method: str, resume: str) -> None:
    # after a read took everything, the next one waits for readability before
    # trying; bytes that arrived in between (their readiness found nobody
    # waiting) must still be seen, on both loops
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        peer_writer.write(frames([b"first"]))
        await peer_writer.drain()
        assert await reader.read_msg() == b"first"
        assert reader._drained  # the path under test
        peer_writer.write(frames([b"second"]))
        await peer_writer.drain()
        await asyncio.sleep(0.02)  # the readiness comes and goes
        call = {"read": lambda: reader.read(100), "readexactly": lambda: reader.readexactly(10),
                "read_msg": reader.read_msg, "read_msgs": reader.read_msgs}[method]
        got = await asyncio.wait_for(call(), 2.0)
        expected = {"read": frames([b"second"]), "readexactly": frames([b"second"]),
                    "read_msg": b"second", "read_msgs": [b"second"]}[method]
        assert got == expected
        peer_writer.write(b"x")
        await peer_writer.drain()
        peer_writer.transport.abort()  # a reset (or the end) while it waits first
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            while True:
                await asyncio.wait_for(reader.readexactly(2), 2.0)
        await _close(writer)
    run(main)


def test_one_wait_per_request_of_a_request_response_peer(impl: ModuleType, run: Runner) -> None:
    # the readiness callback moves the bytes into the socket: the default
    # loop's next poll, which comes before the woken reader runs, finds
    # nothing left and reports nothing, so no wait is woken for nothing (it
    # was, for about half the requests, each costing a receive that fails)
    waits = 0
    connections, requests, size = 4, 150, 1024

    def client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(requests):
                request = bytes([i % 251]) * size
                sock.sendall(request)
                answer = b""
                while len(answer) < size:
                    chunk = sock.recv(size - len(answer))
                    assert chunk, "the server closed"
                    answer += chunk
                assert answer == request

    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        nonlocal waits
        try:
            while True:
                writer.write(await reader.readexactly(size))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            waits += reader._waits  # the core counts its waits for readability
            writer.close()

    async def main() -> None:
        listener = impl.create_server(("127.0.0.1", 0))
        server = await aio.start_server(handle, sock=listener)
        port = listener.getsockname()[1]
        loop = asyncio.get_running_loop()
        async with server:
            await asyncio.gather(*[loop.run_in_executor(None, client, port)
                                   for _ in range(connections)])
    run(main)
    # one wait per request, and each connection's last one sees the end; a
    # request that arrives in two TCP segments may take one more
    assert waits <= connections * (requests + 1) * 1.1, waits


# -- read_msg's read-ahead against every other read ------------------------------

_READ_OPS = st.one_of(
    st.tuples(st.just("read_msg"), st.sampled_from([1, 2, 4]),
              st.sampled_from([3, 64, aio.DEFAULT_MAX_MESSAGE])),
    st.tuples(st.just("read_msgs"), st.integers(1, 5)),
    st.tuples(st.just("readexactly"), st.integers(0, 20)),
    st.tuples(st.just("read"), st.integers(1, 20)),
    st.tuples(st.just("readline")),
    st.tuples(st.just("socket.recv"), st.integers(1, 20)),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.binary(max_size=80).map(lambda b: b.replace(b"\0", b"\n")),
                         min_size=1, max_size=30),
       cut=st.integers(0, 6),
       ops=st.lists(_READ_OPS, min_size=1, max_size=25))
def test_read_msg_read_ahead_loses_and_reorders_nothing(impl: ModuleType, run: Runner,
                                                        payloads: list[bytes], cut: int,
                                                        ops: list[tuple[Any, ...]]) -> None:
    # read_msg() splits frames ahead of the caller; any other read, in any
    # order, must see the stream exactly as if nothing had been split: checked
    # against a model of the stream (everything sent, then the end, maybe
    # mid-frame)
    data = frames(payloads)
    data = data[:len(data) - cut]

    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        peer_writer.write(data)
        peer_writer.write_eof()
        await peer_writer.drain()
        pos = 0

        def frame_at(at: int, prefix_size: int) -> tuple[int, int]:
            """(the payload's length, where it ends), the end past the data
            when it is cut short"""
            length = int.from_bytes(data[at:at + prefix_size], "big")
            return length, at + prefix_size + length

        for op in ops:
            name = op[0]
            rest = data[pos:]
            if name == "read_msg":
                prefix_size, max_size = op[1], op[2]
                length, end = frame_at(pos, prefix_size)
                if len(rest) >= prefix_size and length > max_size:
                    with pytest.raises(fastsock.MessageTooLargeError):
                        await reader.read_msg(prefix_size=prefix_size, max_size=max_size)
                elif len(rest) < prefix_size or end > len(data):
                    with pytest.raises(asyncio.IncompleteReadError) as info:
                        await reader.read_msg(prefix_size=prefix_size, max_size=max_size)
                    # the partial payload, or the partial prefix (recv_msg()'s rule)
                    if len(rest) < prefix_size:
                        assert (info.value.partial, info.value.expected) == (rest, prefix_size)
                    else:
                        assert (info.value.partial, info.value.expected) == (
                            rest[prefix_size:], length)
                    pos = len(data)
                else:
                    got = await reader.read_msg(prefix_size=prefix_size, max_size=max_size)
                    assert got == data[pos + prefix_size:end]
                    pos = end
            elif name == "read_msgs":
                expected: list[bytes] = []
                at = pos
                while len(expected) < op[1]:
                    length, end = frame_at(at, 4)
                    if len(data) - at < 4 or length > aio.DEFAULT_MAX_MESSAGE or end > len(data):
                        break
                    expected.append(data[at + 4:end])
                    at = end
                if not expected:
                    with pytest.raises((asyncio.IncompleteReadError, fastsock.MessageTooLargeError)):
                        await reader.read_msgs(op[1])
                    if len(rest) < 4 or frame_at(pos, 4)[0] <= aio.DEFAULT_MAX_MESSAGE:
                        pos = len(data)  # incomplete: all of it taken
                    continue
                got_msgs = await reader.read_msgs(op[1])
                assert 1 <= len(got_msgs) and got_msgs == expected[:len(got_msgs)]
                pos += sum(4 + len(m) for m in got_msgs)
            elif name == "readexactly":
                if op[1] > len(rest):
                    with pytest.raises(asyncio.IncompleteReadError) as info:
                        await reader.readexactly(op[1])
                    assert info.value.partial == rest
                    pos = len(data)
                else:
                    assert await reader.readexactly(op[1]) == rest[:op[1]]
                    pos += op[1]
            elif name == "read":
                got = await reader.read(op[1])
                assert got == rest[:len(got)] and (got or not rest)
                pos += len(got)
            elif name == "readline":
                line = await reader.readline()
                newline = rest.find(b"\n")
                assert line == (rest[:newline + 1] if newline >= 0 else rest)
                pos += len(line)
            else:  # the socket itself, as get_extra_info() hands it out
                sock = writer.get_extra_info("socket")
                try:
                    got = sock.recv(op[1])
                except BlockingIOError:
                    got = None  # the kernel's bytes not readable yet: allowed
                if got is not None:
                    assert got == rest[:len(got)] and (got or not rest)
                    pos += len(got)
        assert await reader.read() == data[pos:]
        assert reader.at_eof()
        await _close(writer, peer_writer)

    run(main)


def test_at_eof_is_false_while_frames_read_ahead_are_left(impl: ModuleType,
                                                         run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        peer_writer.write(frames([b"one", b"two", b"three"]))
        peer_writer.write_eof()
        await peer_writer.drain()
        await asyncio.sleep(0.01)
        assert await reader.read_msg() == b"one"
        assert reader._frames  # the path under test: two read ahead
        assert not reader.at_eof()
        assert [await reader.read_msg(), await reader.read_msg()] == [b"two", b"three"]
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.read_msg()
        assert info.value.partial == b""
        assert reader.at_eof()
        await _close(writer, peer_writer)

    run(main)


def test_read_ahead_frames_obey_a_later_smaller_max_size(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        peer_writer.write(frames([b"one", b"x" * 10, b"three"]))
        await peer_writer.drain()
        await asyncio.sleep(0.01)
        assert await reader.read_msg() == b"one"
        assert len(reader._frames) == 2  # the path under test: read ahead
        with pytest.raises(fastsock.MessageTooLargeError):
            await reader.read_msg(max_size=5)
        # refused, and kept with its prefix, as StreamSocket.recv_msg() keeps it
        assert await reader.readexactly(4) == b"\x00\x00\x00\x0a"
        assert await reader.readexactly(10) == b"x" * 10
        assert await reader.read_msgs() == [b"three"]
        await _close(writer, peer_writer)

    run(main)


def test_read_ahead_is_bounded_in_bytes(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        reader, writer, peer_reader, peer_writer = await _pair(impl)
        payloads = [bytes([i]) * 20000 for i in range(30)]
        peer_writer.write(frames(payloads))  # more than the kernel holds: sent as read
        got = []
        for _ in payloads:
            got.append(await reader.read_msg())
            assert sum(map(len, reader._frames)) <= 64 * 1024  # never 30 frames ahead
        assert got == payloads
        await _close(writer, peer_writer)

    run(main)


# -- a server handler's reads, resumed by the readiness callback ----------------

@pytest.fixture(params=["driven", "task"])
def drive(request: pytest.FixtureRequest) -> Iterator[str]:
    """The compiled core resumes a server handler's reads from the readiness
    callback (AioHandler); off, its task resumes them: both ways, both cores."""
    compiled = sys.modules.get("fastsock._socket_c")
    if compiled is not None:
        compiled._aio_drive(request.param == "driven")
    try:
        yield request.param
    finally:
        if compiled is not None:
            compiled._aio_drive(True)


async def _serve_one(impl: ModuleType, handle: Callable[..., Awaitable[None]],
                     ) -> tuple[Any, asyncio.StreamReader, asyncio.StreamWriter]:
    listener = impl.create_server(("127.0.0.1", 0))
    server = await aio.start_server(handle, sock=listener)
    reader, writer = await asyncio.open_connection(*listener.getsockname())
    return server, reader, writer


def test_driven_handler_keeps_task_context_and_cancellation(impl: ModuleType, run: Runner,
                                                            drive: str) -> None:
    async def main() -> None:
        outcome: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            me = asyncio.current_task()
            assert me is not None
            seen: list[Any] = []
            try:
                for i in range(1, 4):
                    _STEP.set(i)
                    data = await reader.readexactly(2)
                    seen.append((data, _STEP.get(), asyncio.current_task() is me))
                    writer.write(data)
                await asyncio.sleep(0)  # a bare yield after a resumed read
                await asyncio.sleep(0.01)  # another future
                seen.append(await reader.readexactly(2))
                # cancelled while running after a resumed read: the next wait raises
                me.cancel()
                try:
                    await reader.readexactly(2)
                except asyncio.CancelledError:
                    if sys.version_info >= (3, 11):
                        me.uncancel()
                    seen.append("cancelled")
                seen.append(await reader.readexactly(2))  # nothing lost
                try:
                    await asyncio.wait_for(reader.readexactly(2), 0.05)
                except asyncio.TimeoutError:
                    seen.append("timeout")
                seen.append(await reader.readexactly(2))
                seen.append(_STEP.get())
            except BaseException as exc:
                outcome.set_exception(exc)
                raise
            else:
                outcome.set_result(seen)
            writer.close()

        server, reader, writer = await _serve_one(impl, handle)
        for chunk in (b"a1", b"b2", b"c3"):
            writer.write(chunk)
            assert await reader.readexactly(2) == chunk
        await asyncio.sleep(0.05)
        writer.write(b"d4")
        await asyncio.sleep(0.05)
        writer.write(b"e5")
        await asyncio.sleep(0.1)
        writer.write(b"f6")
        seen = await asyncio.wait_for(outcome, 5)
        assert seen == [(b"a1", 1, True), (b"b2", 2, True), (b"c3", 3, True), b"d4",
                        "cancelled", b"e5", "timeout", b"f6", 3]
        writer.close()
        server.close()
        await server.wait_closed()
    run(main)


@pytest.mark.parametrize("ending", ["returns", "raises"])
def test_driven_handler_ends_after_a_resumed_read(impl: ModuleType, run: Runner, drive: str,
                                                  ending: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[Any] = []
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        tasks: list[asyncio.Task[Any]] = []

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            current = asyncio.current_task()
            assert current is not None
            tasks.append(current)
            data = await reader.readexactly(3)
            writer.write(data.upper())
            if ending == "raises":
                raise ValueError(data)
            writer.close()

        server, reader, writer = await _serve_one(impl, handle)
        await asyncio.sleep(0.02)  # the handler waits for its data
        writer.write(b"abc")
        assert await reader.readexactly(3) == b"ABC"
        assert await reader.read() == b""
        for _ in range(100):
            if tasks and tasks[0].done() and (ending == "returns" or reported):
                break
            await asyncio.sleep(0.01)
        assert tasks[0].done()
        if ending == "raises":
            assert isinstance(tasks[0].exception(), ValueError)
            assert [type(c["exception"]) for c in reported] == [ValueError]
        else:
            assert tasks[0].result() is None and not reported
        writer.close()
        server.close()
        await server.wait_closed()
    run(main)


def test_driven_handler_cancelled_from_outside_loses_nothing(impl: ModuleType, run: Runner,
                                                             drive: str) -> None:
    async def main() -> None:
        got: list[bytes] = []
        tasks: list[asyncio.Task[Any]] = []
        done = asyncio.Event()

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            current = asyncio.current_task()
            assert current is not None
            tasks.append(current)
            got.append(await reader.readexactly(2))
            try:
                await reader.readexactly(2)
            except asyncio.CancelledError:
                got.append(await reader.readexactly(4))
                done.set()
            writer.close()

        server, reader, writer = await _serve_one(impl, handle)
        writer.write(b"01")
        await asyncio.sleep(0.05)
        tasks[0].cancel()
        await asyncio.sleep(0.01)
        writer.write(b"2345")
        await asyncio.wait_for(done.wait(), 5)
        assert got == [b"01", b"2345"]
        writer.close()
        server.close()
        await server.wait_closed()
    run(main)


def test_driven_handler_waits_on_one_future_across_reads(impl: ModuleType, run: Runner,
                                                         drive: str) -> None:
    # the saving itself: resumed by the readiness callback, the handler's task
    # keeps waiting on the same future from read to read; through its task,
    # each read makes a new one
    async def main() -> None:
        tasks: list[asyncio.Task[Any]] = []
        cores: list[bool] = []

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            current = asyncio.current_task()
            assert current is not None
            tasks.append(current)
            compiled = sys.modules.get("fastsock._socket_c")
            cores.append(compiled is not None and isinstance(reader, compiled.AioReaderCore))
            for _ in range(3):
                writer.write(await reader.readexactly(1))
            writer.close()

        server, reader, writer = await _serve_one(impl, handle)
        waited = []
        for byte in (b"x", b"y", b"z"):
            await asyncio.sleep(0.02)  # the handler is waiting
            waited.append(tasks[0]._fut_waiter)  # type: ignore[attr-defined]
            writer.write(byte)
            assert await reader.readexactly(1) == byte
        driven = drive == "driven" and cores == [True]  # the compiled core drives
        assert len({id(fut) for fut in waited}) == (1 if driven else 3)
        writer.close()
        server.close()
        await server.wait_closed()
    run(main)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_a_read_in_an_eager_task_inside_a_driven_handler_waits_in_that_task(
        impl: ModuleType, run: Runner, drive: str) -> None:
    # an eager task's first step runs inside the handler's (resumed) step:
    # its read must wait as that task's, not on the handler's future
    async def main() -> None:
        loop = asyncio.get_running_loop()
        if type(loop).__module__.startswith("uvloop"):
            pytest.skip("uvloop passes eager_start to a task factory, which asyncio's refuses")
        loop.set_task_factory(getattr(asyncio, "eager_task_factory"))  # 3.12+, as the mark says
        outcome: asyncio.Future[list[bytes]] = loop.create_future()

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            async def read_two() -> bytes:
                return await reader.readexactly(2)

            try:
                # the first read waits through the task (the handler's task
                # started eagerly, before it could be driven); the second is
                # resumed by the readiness callback, and so runs what follows
                got = [await reader.readexactly(1), await reader.readexactly(1)]
                inner = asyncio.create_task(read_two())  # runs at once, and waits
                assert not inner.done()
                got.append(await inner)
                got.append(await reader.readexactly(1))
            except BaseException as exc:
                outcome.set_exception(exc)
                raise
            outcome.set_result(got)
            writer.close()

        server, reader, writer = await _serve_one(impl, handle)
        for chunk in (b"a", b"b", b"cd", b"e"):
            await asyncio.sleep(0.02)
            writer.write(chunk)
        assert await asyncio.wait_for(outcome, 5) == [b"a", b"b", b"cd", b"e"]
        writer.close()
        server.close()
        await server.wait_closed()
    run(main)
