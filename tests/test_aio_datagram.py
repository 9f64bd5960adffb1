"""fastsock.aio datagrams: the endpoint's batch coroutines and the drop-in
for loop.create_datagram_endpoint(), against asyncio's own transport, on the
default loop and uvloop, with sockets of both implementations."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from types import ModuleType
from typing import Any, Awaitable, Callable, Optional

import pytest

from aio_support import ASYNC_TIMEOUT, Runner, loop_runner
from fastsock import aio


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine function on a fresh loop of each kind, bounded in time."""
    return loop_runner(request.param)


def _udp(impl: ModuleType) -> Any:
    sock = impl.DatagramSocket(socket.AF_INET)
    sock.bind(("127.0.0.1", 0))
    return sock


def _peer() -> socket.socket:
    """A blocking stdlib UDP socket on loopback, with a timeout."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    return peer


# -- the endpoint ----------------------------------------------------------------

def test_recv_many_takes_every_queued_datagram_in_one_call(impl: ModuleType,
                                                           run: Runner) -> None:
    async def main() -> None:
        with _peer() as peer:
            async with await aio.open_datagram_endpoint(sock=_udp(impl)) as endpoint:
                address = endpoint.get_extra_info("sockname")
                for i in range(40):
                    peer.sendto(b"d%d" % i, address)
                await asyncio.sleep(0.05)  # all queued before the call
                got = await endpoint.recv_many(64, 64)
                assert [data for data, _ in got] == [b"d%d" % i for i in range(40)]
                assert {sender for _, sender in got} == {peer.getsockname()}
    run(main)


def test_recv_many_waits_for_the_first_and_bounds_the_batch(impl: ModuleType,
                                                            run: Runner) -> None:
    async def main() -> None:
        with _peer() as peer:
            async with await aio.open_datagram_endpoint(sock=_udp(impl)) as endpoint:
                address = endpoint.get_extra_info("sockname")
                task = asyncio.ensure_future(endpoint.recv_many(4))
                await asyncio.sleep(0.05)
                assert not task.done()
                for i in range(10):
                    peer.sendto(b"%d" % i, address)
                first = await task
                assert 1 <= len(first) <= 4
                rest: list[bytes] = []
                while len(first) + len(rest) < 10:
                    rest += [data for data, _ in await endpoint.recv_many(4)]
                assert [data for data, _ in first] + rest == [b"%d" % i for i in range(10)]
    run(main)


def test_recv_many_truncation_is_the_sockets_error(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        with _peer() as peer:
            async with await aio.open_datagram_endpoint(sock=_udp(impl)) as endpoint:
                peer.sendto(b"x" * 100, endpoint.get_extra_info("sockname"))
                with pytest.raises(impl.TruncatedDatagramError) as info:
                    await endpoint.recv_many(8, 10)
                assert info.value.truncated == [0]
                assert info.value.messages[0][0] == b"x" * 10
    run(main)


def test_recv_batch_fills_a_batch(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        batch = impl.DatagramBatch(16, 256)
        with _peer() as peer:
            async with await aio.open_datagram_endpoint(sock=_udp(impl)) as endpoint:
                task = asyncio.ensure_future(endpoint.recv_batch(batch))
                await asyncio.sleep(0.02)
                for i in range(5):
                    peer.sendto(b"b%d" % i, endpoint.get_extra_info("sockname"))
                count = await task
                got = [bytes(batch.data(k)) for k in range(count)]
                while len(got) < 5:
                    count = await endpoint.recv_batch(batch)
                    got += [bytes(batch.data(k)) for k in range(count)]
                assert got == [b"b%d" % i for i in range(5)]
    run(main)


def test_cancelled_receive_loses_no_datagram(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        with _peer() as peer:
            async with await aio.open_datagram_endpoint(sock=_udp(impl)) as endpoint:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(endpoint.recv_many(), 0.05)
                task = asyncio.ensure_future(endpoint.recv())
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                for i in range(3):
                    peer.sendto(b"c%d" % i, endpoint.get_extra_info("sockname"))
                got: list[bytes] = []
                while len(got) < 3:
                    got += [data for data, _ in await endpoint.recv_many()]
                assert got == [b"c0", b"c1", b"c2"]
    run(main)


def test_several_tasks_share_an_endpoint_without_loss_or_duplicates(impl: ModuleType,
                                                                    run: Runner) -> None:
    async def main() -> None:
        with _peer() as peer:
            async with await aio.open_datagram_endpoint(sock=_udp(impl)) as endpoint:
                address = endpoint.get_extra_info("sockname")
                got: list[bytes] = []

                async def consume() -> None:
                    while len(got) < 200:
                        try:
                            batch = await asyncio.wait_for(endpoint.recv_many(8), 0.5)
                        except asyncio.TimeoutError:
                            return
                        got.extend(data for data, _ in batch)

                tasks = [asyncio.ensure_future(consume()) for _ in range(4)]
                await asyncio.sleep(0.02)
                for i in range(200):
                    peer.sendto(b"%d" % i, address)
                    if i % 20 == 19:
                        await asyncio.sleep(0.001)
                await asyncio.gather(*tasks)
                assert sorted(got, key=int) == [b"%d" % i for i in range(200)]
    run(main)


def test_close_wakes_a_pending_receive_with_the_closed_sockets_error(impl: ModuleType,
                                                                     run: Runner) -> None:
    async def main() -> None:
        endpoint = await aio.open_datagram_endpoint(sock=_udp(impl))
        reader = asyncio.ensure_future(endpoint.recv_many())
        await asyncio.sleep(0.02)
        endpoint.close()
        with pytest.raises(OSError) as info:
            await reader
        assert info.value.errno == errno.EBADF
        assert endpoint.is_closing()
        await endpoint.wait_closed()
        with pytest.raises(OSError):
            await endpoint.sendto(b"x", ("127.0.0.1", 9))
    run(main)


def test_send_many_waits_for_room_and_delivers_everything_in_order(
        impl: ModuleType, run: Runner, unix_dir: str) -> None:
    # a Unix datagram socket blocks (here: BlockingIOError) when the peer's
    # queue is full, where UDP would drop: every datagram must arrive
    async def main() -> None:
        path = os.path.join(unix_dir, "r")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.setblocking(False)
        sender = impl.DatagramSocket(socket.AF_UNIX)
        sender.connect(path)
        payloads = [b"%05d" % i + b"p" * 500 for i in range(3000)]
        got: list[bytes] = []
        loop = asyncio.get_running_loop()

        def drain_some() -> None:
            for _ in range(50):
                try:
                    got.append(receiver.recv(1024))
                except BlockingIOError:
                    break
            if len(got) < len(payloads):
                loop.call_later(0.001, drain_some)

        async with await aio.open_datagram_endpoint(sock=sender) as endpoint:
            loop.call_later(0.01, drain_some)
            assert await endpoint.send_many(payloads) == len(payloads)
            while len(got) < len(payloads):
                await asyncio.sleep(0.005)
        receiver.close()
        assert got == payloads
    run(main)


def test_send_many_returns_the_count_before_an_error_and_raises_it_next(
        impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        with _peer() as peer:
            sock = _udp(impl)
            sock.connect(peer.getsockname())
            async with await aio.open_datagram_endpoint(sock=sock) as endpoint:
                # the third is longer than any UDP datagram: EMSGSIZE
                sent = await endpoint.send_many([b"a", b"b", b"c" * 70000, b"d"])
                assert sent == 2
                with pytest.raises(OSError) as info:
                    await endpoint.send(b"e")
                assert info.value.errno == errno.EMSGSIZE
                await endpoint.send(b"f")  # the error was raised once
                assert [peer.recv(100) for _ in range(3)] == [b"a", b"b", b"f"]
                with pytest.raises(OSError) as info:
                    await endpoint.send_many([b"c" * 70000])
                assert info.value.errno == errno.EMSGSIZE
    run(main)


def test_send_segments_and_sendto_many(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        with _peer() as peer, _peer() as other:
            async with await aio.open_datagram_endpoint(sock=_udp(impl)) as endpoint:
                data = bytes(range(256)) * 40  # 10,240 bytes
                assert await endpoint.send_segments(data, 1000, peer.getsockname()) == 11
                segments = [peer.recv(2000) for _ in range(11)]
                assert b"".join(segments) == data
                assert [len(s) for s in segments] == [1000] * 10 + [240]
                pairs = [(b"p", peer.getsockname()), (b"o", other.getsockname())] * 3
                assert await endpoint.sendto_many(pairs) == 6
                assert [peer.recv(10) for _ in range(3)] == [b"p"] * 3
                assert [other.recv(10) for _ in range(3)] == [b"o"] * 3
                with pytest.raises(ValueError):
                    await endpoint.send_segments(data, 0, peer.getsockname())
    run(main)


def test_recv_gro_returns_every_byte_sent(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        async with await aio.open_datagram_endpoint(sock=_udp(impl)) as receiver, \
                await aio.open_datagram_endpoint(sock=_udp(impl)) as sender:
            receiver.set_gro(True)  # on or not, the bytes and the segment sizes hold
            data = os.urandom(1200 * 20)
            address = receiver.get_extra_info("sockname")
            assert await sender.send_segments(data, 1200, address) == 20
            got = b""
            while len(got) < len(data):
                chunk, sender_address, segment = await receiver.recv_gro()
                assert sender_address == sender.get_extra_info("sockname")
                assert segment == 1200
                got += chunk
            assert got == data
    run(main)


def test_open_datagram_endpoint_resolves_and_connects(run: Runner) -> None:
    async def main() -> None:
        async with await aio.open_datagram_endpoint(local_addr=("127.0.0.1", 0)) as server:
            address = server.get_extra_info("sockname")
            async with await aio.open_datagram_endpoint(remote_addr=address) as client:
                assert client.get_extra_info("peername") == address
                await client.send(b"hello")
                data, sender = await server.recvfrom()
                assert (data, sender) == (b"hello", client.get_extra_info("sockname"))
                await server.sendto(b"back", sender)
                assert await client.recv() == b"back"
    run(main)


def test_endpoint_takes_a_stdlib_socket_over() -> None:
    async def main() -> None:
        stdlib = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stdlib.bind(("127.0.0.1", 0))
        address = stdlib.getsockname()
        async with await aio.open_datagram_endpoint(sock=stdlib) as endpoint:
            assert stdlib.fileno() == -1  # its descriptor is the endpoint's now
            assert endpoint.get_extra_info("sockname") == address
        stream = socket.socket()
        with pytest.raises(ValueError, match="datagram socket was expected"):
            await aio.open_datagram_endpoint(sock=stream)
        stream.close()
    asyncio.run(main())


# -- create_datagram_endpoint against asyncio's -------------------------------

class Recorder(asyncio.DatagramProtocol):
    """Records the callbacks a datagram transport makes, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.transport: Optional[asyncio.DatagramTransport] = None
        self.lost = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.events.append(("made",))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.events.append(("datagram", data))
        self.changed.set()

    def error_received(self, exc: Exception) -> None:
        self.events.append(("error", type(exc), exc.errno if isinstance(exc, OSError) else None))
        self.changed.set()

    def pause_writing(self) -> None:
        self.events.append(("pause",))

    def resume_writing(self) -> None:
        self.events.append(("resume",))

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.events.append(("lost", None if exc is None else (type(exc), str(exc))))
        self.lost.set_result(None)

    async def wait_for(self, count: int) -> None:
        while sum(1 for event in self.events if event[0] in ("datagram", "error")) < count:
            self.changed.clear()
            await self.changed.wait()


def _creators(impl: ModuleType) -> dict[str, Callable[..., Awaitable[Any]]]:
    async def stdlib(factory: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().create_datagram_endpoint(factory, **kwargs)

    async def fast(factory: Any, **kwargs: Any) -> Any:
        if "local_addr" in kwargs and kwargs.get("family") != socket.AF_UNIX:
            sock = impl.DatagramSocket(socket.AF_INET)
            sock.bind(kwargs.pop("local_addr"))
            if "remote_addr" in kwargs:
                sock.connect(kwargs.pop("remote_addr"))
            kwargs["sock"] = sock
        return await aio.create_datagram_endpoint(factory, **kwargs)

    return {"asyncio": stdlib, "fastsock": fast}


@pytest.mark.parametrize("steps", ["exchange", "refused", "bad_arguments", "close_flushes"])
def test_transport_makes_the_callbacks_asyncios_does(impl: ModuleType, run: Runner,
                                                     steps: str) -> None:
    async def scenario(create: Callable[..., Awaitable[Any]]) -> list[Any]:
        record: list[Any] = []
        reports: list[Any] = []  # what the transport reports to the loop is compared too
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: reports.append(("reported", context["message"])))
        with _peer() as peer:
            if steps == "refused":
                closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                closed.bind(("127.0.0.1", 0))
                target = closed.getsockname()
                closed.close()  # nothing listens there: ICMP port unreachable
                transport, protocol = await create(Recorder, local_addr=("127.0.0.1", 0),
                                                   remote_addr=target)
                transport.sendto(b"one")
                await protocol.wait_for(1)
                transport.sendto(b"two")
                await asyncio.sleep(0.05)
            else:
                transport, protocol = await create(Recorder, local_addr=("127.0.0.1", 0))
                address = transport.get_extra_info("sockname")
            if steps == "exchange":
                for i in range(20):
                    peer.sendto(b"in%d" % i, address)
                await protocol.wait_for(20)
                for i in range(5):
                    transport.sendto(b"out%d" % i, peer.getsockname())
                record.append([peer.recv(100) for _ in range(5)])
                record.append(transport.get_extra_info("peername"))
            if steps == "bad_arguments":
                for data, addr in (("text", peer.getsockname()), (b"x", "nowhere")):
                    try:
                        transport.sendto(data, addr)
                        await asyncio.sleep(0.02)
                    except Exception as exc:  # the exception itself is what is compared
                        record.append((type(exc), str(exc)))
            if steps == "close_flushes":
                for i in range(10):
                    transport.sendto(b"last%d" % i, peer.getsockname())
            transport.close()
            assert transport.is_closing()
            await protocol.lost
            if steps == "close_flushes":
                record.append([peer.recv(100) for _ in range(10)])
        events: list[Any] = protocol.events
        return events + record + reports

    # the reference is asyncio's own loop and transport, also when fastsock's
    # runs on uvloop (whose transport raises the TypeError of a bad address
    # from sendto() where asyncio's ends the transport with it)
    creators = _creators(impl)
    reference = asyncio.new_event_loop()
    try:
        expected = reference.run_until_complete(
            asyncio.wait_for(scenario(creators["asyncio"]), ASYNC_TIMEOUT))
    finally:
        reference.close()
    assert run(lambda: scenario(creators["fastsock"])) == expected


def test_transport_connected_rejects_another_address_as_asyncio(impl: ModuleType,
                                                                run: Runner) -> None:
    async def main() -> None:
        messages = []
        with _peer() as peer:
            for create in _creators(impl).values():
                transport, protocol = await create(Recorder, local_addr=("127.0.0.1", 0),
                                                   remote_addr=peer.getsockname())
                with pytest.raises(ValueError) as info:
                    transport.sendto(b"x", ("127.0.0.1", 1))
                messages.append(str(info.value))
                transport.sendto(b"y", peer.getsockname())  # its own peer is fine
                assert peer.recv(10) == b"y"
                transport.close()
                await protocol.lost
        assert messages[0] == messages[1]
    run(main)


def test_transport_pauses_writing_and_delivers_every_queued_datagram(
        impl: ModuleType, run: Runner, unix_dir: str) -> None:
    async def main() -> None:
        path = os.path.join(unix_dir, "r")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.setblocking(False)
        sock = impl.DatagramSocket(socket.AF_UNIX)
        sock.connect(path)
        transport, protocol = await aio.create_datagram_endpoint(Recorder, sock=sock)
        payloads = [b"%05d" % i + b"q" * 1000 for i in range(2000)]
        for payload in payloads:
            transport.sendto(payload)
        assert ("pause",) in protocol.events
        assert transport.get_write_buffer_size() > 64 * 1024
        got: list[bytes] = []
        while len(got) < len(payloads):
            try:
                got.append(receiver.recv(2048))
            except BlockingIOError:
                await asyncio.sleep(0.001)
        assert got == payloads
        assert protocol.events[-1] == ("resume",)
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await protocol.lost
        receiver.close()
    run(main)


def test_transport_delivers_long_unix_datagrams_whole(impl: ModuleType, run: Runner) -> None:
    async def main() -> None:
        a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        transport, protocol = await aio.create_datagram_endpoint(Recorder, sock=a)
        big = os.urandom(200_000)
        b.send(big)
        b.send(b"small")
        await protocol.wait_for(2)
        assert protocol.events[1:] == [("datagram", big), ("datagram", b"small")]
        transport.close()
        await protocol.lost
        b.close()
    run(main)


def test_transport_batches_a_burst(impl: ModuleType, run: Runner) -> None:
    # every datagram of a burst arrives, in order, however many per readiness
    async def main() -> None:
        with _peer() as peer:
            transport, protocol = await _creators(impl)["fastsock"](
                Recorder, local_addr=("127.0.0.1", 0))
            address = transport.get_extra_info("sockname")
            for i in range(100):
                peer.sendto(b"%d" % i, address)
            await protocol.wait_for(100)
            assert protocol.events[1:] == [("datagram", b"%d" % i) for i in range(100)]
            transport.close()
            await protocol.lost
    run(main)


def test_create_datagram_endpoint_argument_errors_match_asyncio() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        cases: list[dict[str, Any]] = [
            {},
            {"family": socket.AF_UNIX, "local_addr": ("127.0.0.1", 0)},
            {"local_addr": "not a pair"},
        ]
        for kwargs in cases:
            outcomes: list[Optional[type]] = []
            for create in (loop.create_datagram_endpoint, aio.create_datagram_endpoint):
                try:
                    transport, _ = await create(asyncio.DatagramProtocol, **kwargs)
                    transport.close()
                    outcomes.append(None)
                except (ValueError, TypeError) as exc:
                    outcomes.append(type(exc))
                except AssertionError:  # asyncio 3.10's way of refusing a non-pair
                    outcomes.append(TypeError)
            assert outcomes[0] == outcomes[1], kwargs
        stdlib = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(ValueError, match="can not be used when sock is specified"):
            await aio.create_datagram_endpoint(asyncio.DatagramProtocol, sock=stdlib,
                                               family=socket.AF_INET)
        stdlib.close()
    asyncio.run(main())
