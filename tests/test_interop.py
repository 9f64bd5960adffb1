"""fastsock sockets in the standard libraries that take a socket object:
selectors, asyncio (its default loop and uvloop), ssl and socketserver.

Each test passes a fastsock socket where code written for socket.socket
passes a stdlib one, over real loopback connections, and checks what the
library did with it.  Where a library cannot take a fastsock socket as it
is, the test shows the door (``to_socket()``, ``take_buffered()``) and that
nothing is lost through it.  docs/porting.md lists the findings; each of its
rows names the test that shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import io
import os
import selectors
import socket
import socketserver
import sys
import threading
import warnings
from types import ModuleType
from typing import Any, Awaitable, Callable, Iterator, Optional, TypeVar, cast

import pytest
from conftest import Worker, client_context, server_context

T = TypeVar("T")
Server = TypeVar("Server", bound=socketserver.TCPServer)

TIMEOUT = 10.0  # every wait of these tests ends within this
PAYLOAD = os.urandom(1 << 21)  # large enough that sends usually wait for room

# -- helpers ----------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    """The event loop: asyncio's default one, or uvloop's."""
    return str(request.param)


def run(loop_kind: str, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a new loop of ``loop_kind``, bounded by TIMEOUT."""
    loop: asyncio.AbstractEventLoop
    if loop_kind == "uvloop":
        # the test extra installs it where it has a build (not yet for
        # free-threaded CPython); without it only asyncio's loop runs
        loop = pytest.importorskip("uvloop").new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class Collecting(asyncio.Protocol):
    """Keeps what arrives; ``wait_for(n)`` waits until ``n`` bytes have, ``lost``
    is done when the connection is.  ``first`` is handed to it before any
    received byte (the bytes a socket held when it was handed over)."""

    def __init__(self, first: bytes = b"") -> None:
        self.data = bytearray(first)
        self.transport: Optional[asyncio.Transport] = None
        self._changed = asyncio.Event()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._changed.set()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    async def wait_for(self, size: int) -> bytes:
        while len(self.data) < size:
            self._changed.clear()
            await self._changed.wait()
        return bytes(self.data)


async def recv_exactly(loop: asyncio.AbstractEventLoop, sock: Any, size: int) -> bytes:
    """``size`` bytes from a non-blocking socket through loop.sock_recv."""
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        assert chunk, f"the peer closed after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


@contextlib.contextmanager
def tcp_pair(impl: ModuleType) -> Iterator[tuple[Any, Any]]:
    """(client, accepted) fastsock sockets over 127.0.0.1, both with TIMEOUT."""
    with impl.create_server(("127.0.0.1", 0)) as listener:
        client = impl.create_connection(listener.getsockname(), timeout=TIMEOUT)
        with client:
            accepted, _ = listener.accept()
            with accepted:
                accepted.settimeout(TIMEOUT)
                yield client, accepted


def holding(client: Any, accepted: Any) -> None:
    """Leave b"early" received but not returned in ``accepted`` (its buffer):
    one send on loopback arrives whole, and recv_until reads past the line."""
    client.sendall(b"head\r\nearly")
    assert accepted.recv_until(b"\r\n") == b"head\r\n"
    assert accepted.buffered == len(b"early"), "the test needs the bytes held"


# -- selectors --------------------------------------------------------------------

SELECTOR_CLASSES = [selectors.DefaultSelector] + [
    getattr(selectors, name) for name in
    ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector", "KqueueSelector")
    if hasattr(selectors, name)]
SELECTOR_IDS = ["DefaultSelector"] + [cls.__name__ for cls in SELECTOR_CLASSES[1:]]


def ready(selector: selectors.BaseSelector, timeout: float) -> dict[Any, int]:
    """{socket object: events} of what ``selector`` reports within ``timeout``."""
    return {key.fileobj: events for key, events in selector.select(timeout)}


@pytest.mark.parametrize("selector_class", SELECTOR_CLASSES, ids=SELECTOR_IDS)
def test_selector_takes_the_socket_object_for_accept_recv_and_send(
        impl: ModuleType, selector_class: type[selectors.BaseSelector]) -> None:
    with selector_class() as selector, impl.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        key = selector.register(listener, selectors.EVENT_READ, "listener")
        assert key.fd == listener.fileno() and selector.get_key(listener) == key
        assert ready(selector, 0) == {}
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as peer:
            assert ready(selector, TIMEOUT) == {listener: selectors.EVENT_READ}
            conn, _ = listener.accept()
            conn.setblocking(False)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            with conn:
                selector.register(conn, selectors.EVENT_READ)
                assert ready(selector, 0) == {}
                peer.sendall(b"ping")
                assert ready(selector, TIMEOUT) == {conn: selectors.EVENT_READ}
                assert conn.recv(100) == b"ping"

                selector.modify(conn, selectors.EVENT_WRITE)
                assert ready(selector, TIMEOUT) == {conn: selectors.EVENT_WRITE}
                sent = 0
                with pytest.raises(BlockingIOError):
                    for _ in range(100_000):  # a few MB at most fill loopback buffers
                        sent += conn.send(b"x" * 65536)
                assert ready(selector, 0) == {}, "a full socket was reported writable"
                peer.settimeout(TIMEOUT)
                drained = 0
                while drained < sent:
                    drained += len(peer.recv(1 << 20))
                assert ready(selector, TIMEOUT) == {conn: selectors.EVENT_WRITE}
            # closed: the selector finds the key by the object, as for a stdlib socket
            assert conn.fileno() == -1
            assert selector.unregister(conn).fileobj is conn
        listener.close()
        assert selector.unregister(listener).data == "listener"
        assert len(selector.get_map()) == 0


@pytest.mark.parametrize("selector_class", SELECTOR_CLASSES, ids=SELECTOR_IDS)
def test_selector_takes_a_datagram_socket(
        impl: ModuleType, selector_class: type[selectors.BaseSelector]) -> None:
    with selector_class() as selector, impl.DatagramSocket() as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        selector.register(receiver, selectors.EVENT_READ | selectors.EVENT_WRITE)
        assert ready(selector, TIMEOUT) == {receiver: selectors.EVENT_WRITE}
        sender.sendto(b"datagram", receiver.getsockname())
        assert ready(selector, TIMEOUT) == {receiver: selectors.EVENT_READ | selectors.EVENT_WRITE}
        assert receiver.recvfrom(100)[0] == b"datagram"
        receiver.close()
        assert selector.unregister(receiver).fileobj is receiver


# -- asyncio: the loop's sock_* methods -------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_loop_sock_methods_take_fastsock_sockets(
        impl: ModuleType, loop_kind: str, transport: str, unix_dir: str) -> None:
    if transport == "unix":
        family, address = socket.AF_UNIX, os.path.join(unix_dir, "s")
        listener = impl.StreamSocket(family)
        listener.bind(address)
        listener.listen()
    else:
        family = socket.AF_INET
        listener = impl.create_server(("127.0.0.1", 0))
        address = listener.getsockname()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        client = impl.StreamSocket(family)
        with listener, client:
            listener.setblocking(False)
            client.setblocking(False)
            accepting = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, address)
            conn, _ = await accepting
            with conn:
                assert type(conn) is impl.StreamSocket
                assert conn.gettimeout() == 0.0  # the loop made it non-blocking
                sending = asyncio.ensure_future(loop.sock_sendall(client, PAYLOAD))
                assert await recv_exactly(loop, conn, len(PAYLOAD)) == PAYLOAD
                await sending
                await loop.sock_sendall(conn, b"reply")
                buffer = bytearray(16)
                got = 0
                while got < 5:
                    got += await loop.sock_recv_into(client, memoryview(buffer)[got:])
                assert bytes(buffer[:got]) == b"reply"

    run(loop_kind, main)


def test_loop_sock_recv_and_bytes_the_socket_holds(impl: ModuleType, loop_kind: str) -> None:
    # asyncio's sock_recv tries the call first and gets the held bytes at once;
    # uvloop's waits for the descriptor first: held bytes wait for more to arrive
    with tcp_pair(impl) as (client, conn):
        holding(client, conn)
        conn.setblocking(False)

        async def main() -> bytes:
            loop = asyncio.get_running_loop()
            if loop_kind == "asyncio":
                return await loop.sock_recv(conn, 100)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(loop.sock_recv(conn, 100), 0.3)
            assert conn.buffered == len(b"early")
            client.sendall(b"late")
            return await recv_exactly(loop, conn, len(b"earlylate"))

        expected = b"early" if loop_kind == "asyncio" else b"earlylate"
        assert run(loop_kind, main) == expected


@pytest.mark.parametrize("source", ["regular file", "file object without a descriptor"])
def test_loop_sock_sendfile(impl: ModuleType, loop_kind: str, source: str,
                            tmp_path: Any) -> None:
    path = tmp_path / "payload"
    path.write_bytes(PAYLOAD)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tcp_pair(impl) as (client, conn), open(path, "rb") as regular:
            client.setblocking(False)
            conn.setblocking(False)
            file: Any = regular if source == "regular file" else io.BytesIO(PAYLOAD)
            if loop_kind == "uvloop":
                # uvloop has no sock_sendfile at all, for a stdlib socket neither
                with pytest.raises(NotImplementedError):
                    await loop.sock_sendfile(client, file)
                with socket.socket() as stdlib_socket, pytest.raises(NotImplementedError):
                    await loop.sock_sendfile(stdlib_socket, file)
                return
            receiving = asyncio.ensure_future(recv_exactly(loop, conn, len(PAYLOAD)))
            if source == "regular file":
                # fallback=False: os.sendfile on the descriptor, or an error
                sent = await loop.sock_sendfile(client, file, fallback=False)
            else:
                with pytest.raises(asyncio.SendfileNotAvailableError):
                    await loop.sock_sendfile(client, file, fallback=False)
                sent = await loop.sock_sendfile(client, file)  # read and sock_sendall
            assert sent == len(PAYLOAD)
            assert await receiving == PAYLOAD

    run(loop_kind, main)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="sock_sendto/sock_recvfrom: 3.11+")
def test_loop_sock_sendto_and_recvfrom(impl: ModuleType, loop_kind: str) -> None:
    async def main() -> None:
        loop: Any = asyncio.get_running_loop()  # the 3.11 methods, typed for 3.10
        with impl.DatagramSocket() as a, impl.DatagramSocket() as b:
            for sock in (a, b):
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
            if loop_kind == "uvloop":
                # not implemented by uvloop, for a stdlib socket neither
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stdlib_socket:
                    for sock in (a, stdlib_socket):
                        with pytest.raises(NotImplementedError):
                            await loop.sock_sendto(sock, b"x", b.getsockname())
                        with pytest.raises(NotImplementedError):
                            await loop.sock_recvfrom(sock, 100)
                return
            assert await loop.sock_sendto(a, b"first", b.getsockname()) == 5
            assert await loop.sock_recvfrom(b, 100) == (b"first", a.getsockname())
            await loop.sock_sendto(a, b"second", b.getsockname())
            buffer = bytearray(16)
            assert await loop.sock_recvfrom_into(b, buffer) == (6, a.getsockname())
            assert bytes(buffer[:6]) == b"second"

    run(loop_kind, main)


# -- asyncio: transports and servers over a given socket --------------------------


@pytest.mark.parametrize("handoff", ["fastsock socket", "to_socket()"])
def test_create_connection_takes_a_connected_socket(
        impl: ModuleType, loop_kind: str, handoff: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tcp_pair(impl) as (client, conn):
            conn.setblocking(False)
            given = client if handoff == "fastsock socket" else client.to_socket()
            with given:
                transport, protocol = await loop.create_connection(Collecting, sock=given)
                transport.write(PAYLOAD)
                assert await recv_exactly(loop, conn, len(PAYLOAD)) == PAYLOAD
                await loop.sock_sendall(conn, b"to the protocol")
                assert await protocol.wait_for(15) == b"to the protocol"
                transport.close()
                await protocol.lost
                assert given.fileno() == -1  # the transport closed what it was given
                assert client.closed

    run(loop_kind, main)


def test_uvloop_closes_a_fastsock_sockets_descriptor_twice(impl: ModuleType) -> None:
    # uvloop detaches a socket.socket when its transport closes; any other
    # object it closes after libuv closed the descriptor: the second close
    # finds the number free (EBADF, which uvloop ignores) or, if another
    # thread opened a descriptor meanwhile, closes that one
    class CloseRecorded(impl.StreamSocket):  # type: ignore[name-defined,misc]
        errors: list[Optional[int]] = []

        def close(self) -> None:
            try:
                super().close()
            except OSError as exc:
                self.errors.append(exc.errno)
                raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with impl.create_server(("127.0.0.1", 0)) as listener:
            sock = CloseRecorded()
            sock.connect(listener.getsockname())
            accepted, _ = listener.accept()
            with accepted, sock:
                transport, protocol = await loop.create_connection(Collecting, sock=sock)
                transport.close()
                await protocol.lost
                await asyncio.sleep(0)  # uvloop closes its handle in the next turn
                for _ in range(100):
                    if sock.closed:
                        break
                    await asyncio.sleep(0.01)
                assert sock.closed
                assert CloseRecorded.errors == [errno.EBADF]

    run("uvloop", main)


def test_transport_over_a_socket_that_holds_bytes(impl: ModuleType, loop_kind: str) -> None:
    # asyncio's transport reads through sock.recv(): the held bytes come
    # first, once the descriptor is readable again; uvloop reads the
    # descriptor itself and never sees them
    expected = b"earlylate" if loop_kind == "asyncio" else b"late"

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        with tcp_pair(impl) as (client, conn):
            holding(client, conn)
            transport, protocol = await loop.create_connection(Collecting, sock=conn)
            client.sendall(b"late")
            await protocol.wait_for(len(expected))
            await asyncio.sleep(0.05)  # time for anything else to come
            transport.close()
            await protocol.lost
            return bytes(protocol.data)

    assert run(loop_kind, main) == expected


def test_to_socket_hands_a_loop_the_connection_and_nothing_is_lost(
        impl: ModuleType, loop_kind: str) -> None:
    # the door: to_socket() refuses while bytes are held; take_buffered()
    # gives them to the protocol before the transport reads anything
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        with tcp_pair(impl) as (client, conn):
            holding(client, conn)
            with pytest.raises(RuntimeError, match="take_buffered"):
                conn.to_socket()
            early = conn.take_buffered()
            transport, protocol = await loop.create_connection(
                lambda: Collecting(first=early), sock=conn.to_socket())
            client.sendall(b"late")
            received = await protocol.wait_for(len(b"earlylate"))
            transport.close()
            await protocol.lost
            return received

    assert run(loop_kind, main) == b"earlylate"


def test_open_connection_takes_a_fastsock_socket(impl: ModuleType, loop_kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tcp_pair(impl) as (client, conn):
            conn.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=client)
            await loop.sock_sendall(conn, b"line one\nline two\n")
            assert await reader.readline() == b"line one\n"
            assert await reader.readline() == b"line two\n"
            writer.write(b"answer")
            await writer.drain()
            assert await recv_exactly(loop, conn, 6) == b"answer"
            writer.close()
            await writer.wait_closed()
            assert client.closed

    run(loop_kind, main)


@pytest.mark.parametrize("handoff", ["fastsock socket", "to_socket()"])
@pytest.mark.parametrize("api", ["loop.create_server", "asyncio.start_server"])
def test_servers_take_a_fastsock_listener(impl: ModuleType, loop_kind: str, api: str,
                                          handoff: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = impl.create_server(("127.0.0.1", 0))
        address = listener.getsockname()
        given = listener if handoff == "fastsock socket" else listener.to_socket()
        server: asyncio.AbstractServer
        with listener, given:
            if api == "loop.create_server":
                class Upper(asyncio.Protocol):
                    def connection_made(self, transport: asyncio.BaseTransport) -> None:
                        self.transport = cast(asyncio.Transport, transport)

                    def data_received(self, data: bytes) -> None:
                        self.transport.write(data.upper())
                server = await loop.create_server(Upper, sock=given)
            else:
                async def upper(reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
                    writer.write((await reader.readline()).upper())
                    await writer.drain()
                    writer.close()
                server = await asyncio.start_server(upper, sock=given)
            for word in (b"one\n", b"two\n"):  # two connections, one after the other
                reader, writer = await asyncio.open_connection(*address)
                writer.write(word)
                assert await reader.readline() == word.upper()
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()
            assert given.fileno() == -1  # the server closed the socket it was given

    run(loop_kind, main)


def test_unix_connection_and_server_take_fastsock_sockets(
        impl: ModuleType, loop_kind: str, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = impl.StreamSocket(socket.AF_UNIX)
        client = impl.StreamSocket(socket.AF_UNIX)
        with listener, client:
            listener.bind(path)
            listener.listen()
            served: list[Collecting] = []

            def serving() -> Collecting:
                served.append(Collecting())
                return served[-1]

            server = await loop.create_unix_server(serving, sock=listener)
            client.connect(path)  # the backlog takes it before the loop accepts
            transport, protocol = await loop.create_unix_connection(Collecting, sock=client)
            transport.write(b"over a unix socket")
            while not served:
                await asyncio.sleep(0.01)
            assert await served[0].wait_for(18) == b"over a unix socket"
            transport.close()
            await protocol.lost
            await served[0].lost
            server.close()
            await server.wait_closed()
            assert client.closed and listener.closed

    run(loop_kind, main)


@pytest.mark.parametrize("handoff", ["fastsock socket", "to_socket()"])
def test_datagram_endpoint_takes_a_fastsock_socket(impl: ModuleType, loop_kind: str,
                                                   handoff: str) -> None:
    class Datagrams(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.received.put_nowait((data, addr))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with impl.DatagramSocket() as sock:
            sock.bind(("127.0.0.1", 0))
            address = sock.getsockname()
            given = sock if handoff == "fastsock socket" else sock.to_socket()
            ours, our_protocol = await loop.create_datagram_endpoint(Datagrams, sock=given)
            theirs, their_protocol = await loop.create_datagram_endpoint(
                Datagrams, local_addr=("127.0.0.1", 0))
            their_address = theirs.get_extra_info("sockname")
            ours.sendto(b"ping", their_address)
            assert await their_protocol.received.get() == (b"ping", address)
            theirs.sendto(b"pong", address)
            assert await our_protocol.received.get() == (b"pong", their_address)
            ours.close()
            theirs.close()
            for _ in range(100):  # the transports close in a later turn
                if given.fileno() == -1:
                    break
                await asyncio.sleep(0.01)
            assert given.fileno() == -1

    run(loop_kind, main)


def test_connect_accepted_socket_takes_a_fastsock_socket(
        impl: ModuleType, loop_kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tcp_pair(impl) as (client, conn):
            client.setblocking(False)
            transport, protocol = await loop.connect_accepted_socket(Collecting, conn)
            await loop.sock_sendall(client, b"accepted elsewhere")
            assert await protocol.wait_for(18) == b"accepted elsewhere"
            transport.close()
            await protocol.lost
            assert conn.closed

    run(loop_kind, main)


def test_to_socket_keeps_the_protocol_so_asyncio_turns_nodelay_on(impl: ModuleType) -> None:
    # asyncio sets TCP_NODELAY only on a socket whose proto is IPPROTO_TCP
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with impl.create_server(("127.0.0.1", 0)) as listener:
            stdlib_client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
            assert stdlib_client.proto == socket.IPPROTO_TCP
            client = impl.StreamSocket.from_socket(stdlib_client)
            accepted, _ = listener.accept()
            with accepted, client:
                assert client.proto == socket.IPPROTO_TCP
                with client.to_socket() as raw:
                    assert raw.proto == socket.IPPROTO_TCP
                    transport, protocol = await loop.create_connection(Collecting, sock=raw)
                    try:
                        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
                    finally:
                        transport.close()
                        await protocol.lost

    run("asyncio", main)


def test_asyncio_turns_nodelay_on_for_a_create_connection_socket(impl: ModuleType) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with impl.create_server(("127.0.0.1", 0)) as listener:
            client = impl.create_connection(listener.getsockname(), timeout=TIMEOUT)
            accepted, _ = listener.accept()
            with accepted, client:
                transport, protocol = await loop.create_connection(Collecting, sock=client)
                try:
                    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
                finally:
                    transport.close()
                    await protocol.lost

    run("asyncio", main)


# -- ssl --------------------------------------------------------------------------


def test_wrap_socket_takes_fastsock_sockets_on_both_sides(
        impl: ModuleType, certificate: tuple[str, str]) -> None:
    with tcp_pair(impl) as (client, conn):
        client_proto = client.proto

        def client_side() -> bytes:
            with client_context(certificate).wrap_socket(
                    client, server_hostname="localhost") as tls:
                assert tls.gettimeout() == TIMEOUT and tls.proto == client_proto
                tls.sendall(b"secret over TLS")
                return tls.recv(100)

        worker = Worker(client_side)
        worker.start()
        with server_context(certificate).wrap_socket(conn, server_side=True) as tls:
            assert conn.closed  # ssl took the descriptor (detach)
            assert tls.recv(100) == b"secret over TLS"
            tls.sendall(b"reply over TLS")
            assert worker.finish() == b"reply over TLS"
        assert client.closed


def test_wrap_socket_with_bytes_held_loses_the_descriptor(
        impl: ModuleType, certificate: tuple[str, str]) -> None:
    # ssl makes its own socket object on sock.fileno() before it calls
    # sock.detach(); detach() refuses (bytes are held) too late: ssl's
    # object is garbage, and collecting it closes the descriptor
    with tcp_pair(impl) as (client, conn):
        holding(client, conn)
        fd = conn.fileno()
        with pytest.raises(RuntimeError, match="take_buffered") as refused:
            server_context(certificate).wrap_socket(conn, server_side=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # ssl's object, unclosed
            del refused
            gc.collect()
        with pytest.raises(OSError) as gone:
            os.fstat(fd)
        assert gone.value.errno == errno.EBADF
        assert conn.take_buffered() == b"early"
        conn.detach()  # the number is no longer ours to close


def test_to_socket_then_wrap_socket_loses_nothing(
        impl: ModuleType, certificate: tuple[str, str]) -> None:
    # the door: to_socket() refuses before ssl sees the socket, the held
    # bytes are taken, and the TLS session runs over the same connection
    with tcp_pair(impl) as (client, conn):
        raw_client = client.to_socket()
        with raw_client:
            raw_client.sendall(b"STARTTLS\r\nNOOP\r\n")  # pipelined plaintext commands
            assert conn.recv_until(b"\r\n") == b"STARTTLS\r\n"
            with pytest.raises(RuntimeError, match="take_buffered"):
                server_context(certificate).wrap_socket(conn.to_socket(), server_side=True)
            assert not conn.closed and conn.buffered == len(b"NOOP\r\n")
            assert conn.take_buffered() == b"NOOP\r\n"
            conn.sendall(b"OK\r\n")

            def client_side() -> bytes:
                assert raw_client.recv(4) == b"OK\r\n"
                with client_context(certificate).wrap_socket(
                        raw_client, server_hostname="localhost") as tls:
                    tls.sendall(b"secret over TLS")
                    return tls.recv(100)

            worker = Worker(client_side)
            worker.start()
            with server_context(certificate).wrap_socket(conn.to_socket(),
                                                         server_side=True) as tls:
                assert tls.recv(100) == b"secret over TLS"
                tls.sendall(b"reply over TLS")
            assert worker.finish() == b"reply over TLS"


# -- socketserver ------------------------------------------------------------------


def fastsock_server(impl: ModuleType, server_class: type[Server], address: Any,
                    handler: type[socketserver.BaseRequestHandler]) -> Server:
    """A socketserver server whose socket is the fastsock twin of the one it
    makes: taken over (from_socket) before it is bound, so that accept()
    hands fastsock connections to the handlers (the recipe in porting.md)."""
    server = server_class(address, handler, bind_and_activate=False)
    fastsock_class = (impl.DatagramSocket if server.socket_type == socket.SOCK_DGRAM
                      else impl.StreamSocket)
    server.socket = fastsock_class.from_socket(server.socket)
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    return server


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """serve_forever() in a thread for the block; the server closed afterwards."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        server.server_close()
        assert not thread.is_alive(), "serve_forever did not stop"


@pytest.mark.parametrize("server_class", [socketserver.TCPServer,
                                          socketserver.ThreadingTCPServer,
                                          socketserver.UnixStreamServer])
def test_stream_servers_hand_fastsock_connections_to_the_handler(
        impl: ModuleType, server_class: type[socketserver.TCPServer], unix_dir: str) -> None:
    requests: list[type] = []

    class Upper(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            requests.append(type(self.request))
            self.request.settimeout(TIMEOUT)
            # recv_until: a fastsock method, so a stdlib request would fail here
            self.request.sendall(self.request.recv_until(b"\n").upper())

    unix = server_class is socketserver.UnixStreamServer
    address: Any = os.path.join(unix_dir, "s") if unix else ("127.0.0.1", 0)
    family = socket.AF_UNIX if unix else socket.AF_INET

    def connect() -> socket.socket:
        peer = socket.socket(family, socket.SOCK_STREAM)
        peer.settimeout(TIMEOUT)
        peer.connect(server.server_address)
        return peer

    server = fastsock_server(impl, server_class, address, Upper)
    assert type(server.socket) is impl.StreamSocket
    with serving(server):
        with connect() as first:
            if server_class is socketserver.ThreadingTCPServer:
                # a second client is served while the first handler still waits
                with connect() as second:
                    second.sendall(b"second\n")
                    assert second.recv(100) == b"SECOND\n"
            first.sendall(b"first\n")
            assert first.recv(100) == b"FIRST\n"
    assert requests and all(cls is impl.StreamSocket for cls in requests)
    assert server.socket.fileno() == -1  # server_close() closed the fastsock socket


def test_udp_server_with_datagram_request_handler(impl: ModuleType) -> None:
    sockets: list[type] = []

    class Upper(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            sockets.append(type(self.socket))
            self.wfile.write(self.rfile.read().upper())

    server = fastsock_server(impl, socketserver.UDPServer, ("127.0.0.1", 0), Upper)
    with serving(server), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.settimeout(TIMEOUT)
        for word in (b"one", b"two"):
            peer.sendto(word, server.server_address)
            assert peer.recvfrom(100) == (word.upper(), server.server_address)
    assert sockets == [impl.DatagramSocket, impl.DatagramSocket]
    assert server.socket.fileno() == -1  # server_close() closed the fastsock socket
