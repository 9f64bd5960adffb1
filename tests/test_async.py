"""Non-blocking sockets under selectors and asyncio's default event loop."""

from __future__ import annotations

import asyncio
import errno
import os
import selectors
import socket
import time
from types import ModuleType
from typing import Any, Awaitable, Callable

import pytest

ASYNC_TIMEOUT = 15.0


def _run(factory: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(factory(), ASYNC_TIMEOUT)
    return asyncio.run(main(), debug=True)


def _server(impl: ModuleType, kind: str, unix_dir: str) -> Any:
    if kind == "unix":
        return impl.create_server(os.path.join(unix_dir, "srv"), family=impl.AF_UNIX)
    return impl.create_server(("127.0.0.1", 0))


# -- selectors ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_selector_echo(impl: ModuleType, kind: str, unix_dir: str) -> None:
    clients_n, rounds = 4, 5
    server = _server(impl, kind, unix_dir)
    server.setblocking(False)
    address = server.getsockname()
    sel = selectors.DefaultSelector()
    opened: list[Any] = [server]
    try:
        sel.register(server, selectors.EVENT_READ, "listen")
        clients = []
        for _ in range(clients_n):
            family = impl.AF_UNIX if kind == "unix" else impl.AF_INET
            client = impl.StreamSocket(family)
            opened.append(client)
            client.setblocking(False)
            assert client.getblocking() is False
            assert client.gettimeout() == 0.0
            err = client.connect_ex(address)
            assert err in (0, errno.EINPROGRESS, errno.EAGAIN), os.strerror(err)
            clients.append(client)
            sel.register(client, selectors.EVENT_WRITE, "connecting")

        expected = {id(c): [f"{i}:{r}:".encode() * (r + 1) for r in range(rounds)]
                    for i, c in enumerate(clients)}
        received: dict[int, bytes] = {id(c): b"" for c in clients}
        sent_round = {id(c): 0 for c in clients}
        pending: dict[int, bytes] = {}
        accepted = 0
        deadline = time.monotonic() + 10
        done = 0
        while done < clients_n:
            assert time.monotonic() < deadline, "selector echo did not finish"
            for key, events in sel.select(timeout=1.0):
                sock: Any = key.fileobj
                if key.data == "listen":
                    while True:
                        try:
                            conn, _ = server.accept()
                        except BlockingIOError:
                            break
                        opened.append(conn)
                        conn.setblocking(False)
                        accepted += 1
                        sel.register(conn, selectors.EVENT_READ, "echo")
                elif key.data == "echo":
                    try:
                        data = sock.recv(4096)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(sock)
                        sock.close()
                        continue
                    sock.sendall(data)
                elif key.data == "connecting":
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    sel.modify(sock, selectors.EVENT_READ, "client")
                    message = expected[id(sock)][0]
                    pending[id(sock)] = message
                    assert sock.send(message) == len(message)
                else:
                    try:
                        data = sock.recv(4096)
                    except BlockingIOError:
                        continue
                    assert data, "server closed early"
                    received[id(sock)] += data
                    want = pending[id(sock)]
                    if len(received[id(sock)]) < len(want):
                        continue
                    assert received[id(sock)] == want
                    received[id(sock)] = b""
                    sent_round[id(sock)] += 1
                    if sent_round[id(sock)] == rounds:
                        sel.unregister(sock)
                        sock.shutdown(impl.SHUT_WR)
                        done += 1
                        continue
                    message = expected[id(sock)][sent_round[id(sock)]]
                    pending[id(sock)] = message
                    sock.sendall(message)
        assert accepted == clients_n
    finally:
        sel.close()
        for sock in opened:
            sock.close()


def test_selector_reports_nonblocking_errors(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        a.setblocking(False)
        with pytest.raises(BlockingIOError):
            a.recv(16)
        with pytest.raises(BlockingIOError):
            a.recv_into(bytearray(16))
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ)
            assert sel.select(timeout=0.05) == []
            b.sendall(b"ping")
            ready = sel.select(timeout=5)
            assert [key.fileobj for key, _ in ready] == [a]
            assert a.recv(16) == b"ping"
        # fill the send buffer until it would block
        total = 0
        with pytest.raises(BlockingIOError):
            for _ in range(100_000):
                total += a.send(b"x" * 65536)
        assert total > 0


# -- asyncio --------------------------------------------------------------------

async def _connected_pair(impl: ModuleType, kind: str, unix_dir: str) -> tuple[Any, Any, Any]:
    loop = asyncio.get_running_loop()
    server = _server(impl, kind, unix_dir)
    server.setblocking(False)
    family = impl.AF_UNIX if kind == "unix" else impl.AF_INET
    client = impl.StreamSocket(family)
    client.setblocking(False)
    try:
        (conn, peer), _ = await asyncio.gather(
            loop.sock_accept(server), loop.sock_connect(client, server.getsockname()))
    except BaseException:
        server.close()
        client.close()
        raise
    assert isinstance(conn, impl.StreamSocket)
    assert conn.gettimeout() == 0.0
    if kind == "tcp":
        assert peer == client.getsockname()
    return server, client, conn


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_asyncio_accept_connect_send_recv(impl: ModuleType, kind: str, unix_dir: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server, client, conn = await _connected_pair(impl, kind, unix_dir)
        with server, client, conn:
            for i in range(10):
                message = f"message {i} ".encode() * (i + 1)
                await loop.sock_sendall(client, message)
                got = b""
                while len(got) < len(message):
                    chunk = await loop.sock_recv(conn, 65536)
                    assert chunk
                    got += chunk
                assert got == message
                await loop.sock_sendall(conn, got[::-1])
                buf = bytearray(len(message))
                view = memoryview(buf)
                filled = 0
                while filled < len(message):
                    n = await loop.sock_recv_into(client, view[filled:])
                    assert n > 0
                    filled += n
                assert bytes(buf) == message[::-1]
            client.shutdown(impl.SHUT_WR)
            assert await loop.sock_recv(conn, 16) == b""

    _run(main)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_asyncio_large_transfer(impl: ModuleType, kind: str, unix_dir: str) -> None:
    size = 8 * 1024 * 1024
    payload = os.urandom(size)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server, client, conn = await _connected_pair(impl, kind, unix_dir)
        with server, client, conn:
            async def reader() -> bytes:
                buf = bytearray(size)
                view = memoryview(buf)
                filled = 0
                while filled < size:
                    n = await loop.sock_recv_into(conn, view[filled:filled + 100_000])
                    assert n > 0
                    filled += n
                return bytes(buf)

            got, _ = await asyncio.gather(reader(), loop.sock_sendall(client, payload))
            assert got == payload

    _run(main)


def test_asyncio_add_reader(impl: ModuleType) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = impl.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)
            chunks: list[bytes] = []
            finished: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                try:
                    data = a.recv(4096)
                except BlockingIOError:
                    return
                if not data:
                    loop.remove_reader(a)
                    if not finished.done():
                        finished.set_result(None)
                    return
                chunks.append(data)

            loop.add_reader(a, readable)
            try:
                for i in range(20):
                    await loop.sock_sendall(b, b"%03d;" % i)
                    await asyncio.sleep(0.001)
                b.shutdown(impl.SHUT_WR)
                await finished
            finally:
                loop.remove_reader(a)
            assert b"".join(chunks) == b"".join(b"%03d;" % i for i in range(20))

            # add_reader by file descriptor number works too
            event = asyncio.Event()
            a2, b2 = impl.socketpair()
            with a2, b2:
                loop.add_reader(a2.fileno(), event.set)
                try:
                    b2.sendall(b"x")
                    await event.wait()
                finally:
                    assert loop.remove_reader(a2.fileno())
                assert a2.recv(1) == b"x"

    _run(main)


def test_asyncio_connect_refused(impl: ModuleType) -> None:
    with impl.create_server(("127.0.0.1", 0)) as probe:
        address = probe.getsockname()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        client = impl.StreamSocket(impl.AF_INET)
        with client:
            client.setblocking(False)
            with pytest.raises(ConnectionRefusedError):
                await loop.sock_connect(client, address)

    _run(main)


def test_asyncio_many_concurrent_connections(impl: ModuleType) -> None:
    n = 20

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = impl.create_server(("127.0.0.1", 0), backlog=n)
        server.setblocking(False)
        address = server.getsockname()
        handlers: list[asyncio.Task[None]] = []

        async def handle(conn: Any) -> None:
            with conn:
                while data := await loop.sock_recv(conn, 1024):
                    await loop.sock_sendall(conn, data.upper())

        async def serve() -> None:
            for _ in range(n):
                conn, _ = await loop.sock_accept(server)
                handlers.append(asyncio.create_task(handle(conn)))

        async def client(i: int) -> bytes:
            sock = impl.StreamSocket(impl.AF_INET)
            with sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                message = b"client %d" % i
                await loop.sock_sendall(sock, message)
                got = b""
                while len(got) < len(message):
                    chunk = await loop.sock_recv(sock, 1024)
                    assert chunk
                    got += chunk
                sock.shutdown(impl.SHUT_WR)
                assert await loop.sock_recv(sock, 16) == b""
                return got

        with server:
            serving = asyncio.create_task(serve())
            results = await asyncio.gather(*(client(i) for i in range(n)))
            await serving
            await asyncio.gather(*handlers)
        assert results == [b"CLIENT %d" % i for i in range(n)]

    _run(main)
