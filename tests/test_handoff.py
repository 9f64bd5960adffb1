"""Handing a connection over (STARTTLS, HTTP upgrade) loses no byte.

Bytes the socket has received past what a call returned stay its own until
``take_buffered()`` takes them; ``detach()`` and ``to_socket()`` refuse to
hand the descriptor over while any are held, and ``from_socket()`` refuses a
TLS socket.  Tested with real TLS over the handed-over connection.
"""

from __future__ import annotations

import errno
import socket
import ssl
import struct
import threading
from types import ModuleType
from typing import Any, Callable

import pytest
from conftest import Worker, client_context, connected, server_context


def pump_handshake(tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                   sock: Any) -> None:
    """Finish a TLS handshake held in memory BIOs over ``sock``."""
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                sock.sendall(pending)
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the peer closed during the handshake")
            incoming.write(chunk)
    pending = outgoing.read()
    if pending:
        sock.sendall(pending)


def read_tls(tls: ssl.SSLObject, incoming: ssl.MemoryBIO, sock: Any, size: int) -> bytes:
    while True:
        try:
            return tls.read(size)
        except ssl.SSLWantReadError:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the peer closed") from None
            incoming.write(chunk)


@pytest.mark.parametrize("handoff", ["to_socket", "detach"])
def test_starttls_with_the_client_hello_already_buffered(
        impl: ModuleType, certificate: tuple[str, str], handoff: str) -> None:
    # the client sends its command and its TLS ClientHello in one write: the
    # server's recv_until reads past the command, into the ClientHello
    with impl.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname(), timeout=10) as client:
        conn, _ = server.accept()
        c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        c_tls = client_context(certificate).wrap_bio(c_in, c_out, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            c_tls.do_handshake()
        client.sendall(b"STARTTLS\r\n" + c_out.read())

        def client_side() -> bytes:
            pump_handshake(c_tls, c_in, c_out, client)
            client.sendall(c_out.read() + _tls_write(c_tls, c_out, b"secret over TLS"))
            return read_tls(c_tls, c_in, client, 100)

        with conn:
            conn.settimeout(10)
            assert conn.recv_until(b"\r\n") == b"STARTTLS\r\n"
            held = conn.buffered
            assert held > 0, "the ClientHello should be buffered for this test to mean anything"
            with pytest.raises(RuntimeError, match=f"{held} received bytes"):
                conn.to_socket() if handoff == "to_socket" else conn.detach()
            assert not conn.closed  # refused: nothing changed
            early = conn.take_buffered()
            assert len(early) == held and conn.buffered == 0
            if handoff == "to_socket":
                raw: Any = conn.to_socket()
            else:
                raw = socket.socket(fileno=conn.detach())
            assert conn.closed
        worker = Worker(client_side)
        worker.start()
        with raw:
            raw.settimeout(10)
            s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            s_tls = server_context(certificate).wrap_bio(s_in, s_out, server_side=True)
            s_in.write(early)  # the bytes the socket had read go first
            pump_handshake(s_tls, s_in, s_out, raw)
            assert read_tls(s_tls, s_in, raw, 100) == b"secret over TLS"
            raw.sendall(_tls_write(s_tls, s_out, b"reply over TLS"))
            assert worker.finish() == b"reply over TLS"


def _tls_write(tls: ssl.SSLObject, outgoing: ssl.MemoryBIO, data: bytes) -> bytes:
    tls.write(data)
    return outgoing.read()


def test_starttls_after_a_reply_hands_over_to_wrap_socket(
        impl: ModuleType, certificate: tuple[str, str]) -> None:
    # the classic order: the client waits for the server's go-ahead, so
    # nothing is buffered and the stdlib's ssl takes the descriptor over
    with impl.create_server(("127.0.0.1", 0)) as server:
        address = server.getsockname()

        def client_side() -> bytes:
            with socket.create_connection(address, timeout=10) as plain:
                plain.sendall(b"STARTTLS\r\n")
                assert plain.recv(100) == b"OK\r\n"
                with client_context(certificate).wrap_socket(
                        plain, server_hostname="localhost") as tls:
                    tls.sendall(b"secret over TLS")
                    return tls.recv(100)

        worker = Worker(client_side)
        worker.start()
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv_until(b"\r\n") == b"STARTTLS\r\n"
            conn.sendall(b"OK\r\n")
            assert conn.take_buffered() == b""
            raw = conn.to_socket()
        with server_context(certificate).wrap_socket(raw, server_side=True) as tls:
            assert tls.recv(100) == b"secret over TLS"
            tls.sendall(b"reply over TLS")
        assert worker.finish() == b"reply over TLS"


def test_http_upgrade_keeps_the_bytes_after_the_head(impl: ModuleType) -> None:
    # an upgrade request whose first frame of the new protocol came with it
    with connected(impl, "tcp") as (a, b):
        b.sendall(b"GET / HTTP/1.1\r\nUpgrade: x\r\n\r\n\x00\x00\x00\x05frame")
        head = a.recv_until(b"\r\n\r\n")
        assert head.endswith(b"\r\n\r\n")
        with pytest.raises(RuntimeError):
            a.to_socket()
        rest = a.take_buffered()
        plain = a.to_socket()
        with plain:
            plain.settimeout(5)
            stream = rest
            while len(stream) < 9:
                stream += plain.recv(100)
        assert stream == b"\x00\x00\x00\x05frame"


def test_buffer_calls_during_a_receive_are_refused(impl: ModuleType) -> None:
    with connected(impl, "unix") as (a, b):
        worker = Worker(lambda: a.recv_exactly(10))
        worker.start()
        worker.entered.wait(5)
        threading.Event().wait(0.2)
        with pytest.raises(RuntimeError):
            a.take_buffered()
        with pytest.raises(RuntimeError):
            a.detach()
        with pytest.raises(RuntimeError):
            a.unrecv(b"cut in")
        with pytest.raises(RuntimeError):
            a.recv_ahead()
        b.sendall(b"0123456789")
        assert worker.finish() == b"0123456789"
        assert a.buffered == 0


def test_close_with_bytes_buffered_is_allowed(impl: ModuleType) -> None:
    # closing drops the connection and what it held, as the kernel does
    with connected(impl, "unix") as (a, b):
        b.sendall(b"line\nmore")
        assert a.recv_until(b"\n") == b"line\n"
        a.close()
        assert a.closed and a.buffered == 0


def test_from_socket_refuses_a_tls_socket(impl: ModuleType, certificate: tuple[str, str]) -> None:
    with socket.socket() as plain:
        tls = client_context(certificate).wrap_socket(
            plain, server_hostname="localhost", do_handshake_on_connect=False)
        with tls:
            with pytest.raises(TypeError, match="SSLSocket"):
                impl.StreamSocket.from_socket(tls)
            assert tls.fileno() != -1  # refused: left as it was


# -- unrecv: a layer that read ahead gives back what it will not use ----------

def _recv_into(sock: Any) -> bytes:
    buffer = bytearray(100)
    return bytes(buffer[:sock.recv_into(buffer)])


RECEIVES: dict[str, Callable[[Any], bytes]] = {
    "recv_into": _recv_into,
    "recv": lambda s: s.recv(100),
    "recv_exactly": lambda s: s.recv_exactly(9),
    "recv_until": lambda s: s.recv_until(b"!"),
    "recv_msg": lambda s: s.recv_msg(),
    "take_buffered": lambda s: s.take_buffered(),
}


@pytest.mark.parametrize("receive, given_back, sent, expected", [
    ("recv", b"sniffed", b"", b"sniffed"),
    ("recv_into", b"sniffed", b"", b"sniffed"),
    ("recv_exactly", b"sniff", b"ed!rest", b"sniffed!r"),
    ("recv_until", b"sni", b"ffed!rest", b"sniffed!"),
    ("recv_msg", b"\x00\x00", b"\x00\x03abcrest", b"abc"),
    ("take_buffered", b"given back", b"", b"given back"),
])
def test_unrecv_bytes_come_first_for_every_receive(impl: ModuleType, receive: str,
                                                   given_back: bytes, sent: bytes,
                                                   expected: bytes) -> None:
    with connected(impl, "unix") as (a, b):
        a.settimeout(5)
        if sent:
            b.sendall(sent)
        a.unrecv(given_back)
        assert RECEIVES[receive](a) == expected


def test_unrecv_keeps_the_order_with_what_the_socket_holds(impl: ModuleType) -> None:
    with connected(impl, "unix") as (a, b):
        a.settimeout(5)
        b.sendall(b"one\ntwo\nthree\n")
        assert a.recv_until(b"\n") == b"one\n"
        assert a.buffered == len(b"two\nthree\n")  # the rest is held by the socket
        a.unrecv(memoryview(b"zero\n"))  # any bytes-like
        a.unrecv(bytearray(b"minus one\n"))
        assert [a.recv_until(b"\n") for _ in range(4)] == [
            b"minus one\n", b"zero\n", b"two\n", b"three\n"]
        b.sendall(b"four\n")
        assert a.recv_until(b"\n") == b"four\n"


def test_unrecv_held_bytes_block_a_handoff_until_taken(impl: ModuleType) -> None:
    # a protocol sniffer peeks at the first bytes, gives them back, then hands
    # the connection over: the hand-over refuses until they are taken
    with connected(impl, "unix") as (a, b):
        a.settimeout(5)
        b.sendall(b"\x16\x03\x01")
        head = a.recv_exactly(3)
        a.unrecv(head)
        with pytest.raises(RuntimeError):
            a.detach()
        assert a.take_buffered() == b"\x16\x03\x01"
        fd = a.detach()
        socket.socket(fileno=fd).close()


def test_unrecv_of_nothing_changes_nothing(impl: ModuleType) -> None:
    with connected(impl, "unix") as (a, b):
        a.unrecv(b"")
        assert a.buffered == 0
        fd = a.detach()  # nothing held
        socket.socket(fileno=fd).close()


def test_unrecv_errors(impl: ModuleType) -> None:
    with connected(impl, "unix") as (a, b):
        with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
            a.unrecv("text")
        assert a.buffered == 0
        a.close()
        with pytest.raises(OSError) as info:
            a.unrecv(b"late")
        assert info.value.errno == errno.EBADF
        assert a.buffered == 0



# -- recv_ahead: the kernel's bytes moved into the socket's buffer -------------

@pytest.mark.parametrize("receive, sent, expected", [
    ("recv", b"ahead", b"ahead"),
    ("recv_into", b"ahead", b"ahead"),
    ("recv_exactly", b"ahead of!", b"ahead of!"),
    ("recv_until", b"ahead!rest", b"ahead!"),
    ("recv_msg", b"\x00\x00\x00\x03abcrest", b"abc"),
    ("take_buffered", b"ahead", b"ahead"),
])
def test_recv_ahead_bytes_are_what_every_receive_returns_next(
        impl: ModuleType, receive: str, sent: bytes, expected: bytes) -> None:
    with connected(impl, "unix") as (a, b):
        a.settimeout(5)
        b.sendall(sent)
        assert a.recv_ahead() == len(sent)
        assert a.buffered == len(sent)
        assert RECEIVES[receive](a) == expected


def test_recv_ahead_appends_after_what_the_socket_holds(impl: ModuleType) -> None:
    with connected(impl, "tcp") as (a, b):
        a.settimeout(5)
        b.sendall(b"one\ntw")
        assert a.recv_until(b"\n") == b"one\n"
        a.unrecv(b"zero\n")
        b.sendall(b"o\nthree\n")
        got = 0
        while got < len(b"o\nthree\n"):  # TCP may deliver it in pieces
            got += a.recv_ahead(4)  # at most what is asked
            assert a.buffered <= len(b"zero\ntwo\nthree\n")
        assert [a.recv_until(b"\n") for _ in range(3)] == [b"zero\n", b"two\n", b"three\n"]
        assert a.buffered == 0


def test_recv_ahead_waits_as_recv_does(impl: ModuleType) -> None:
    with connected(impl, "unix") as (a, b):
        a.setblocking(False)
        with pytest.raises(BlockingIOError):
            a.recv_ahead()
        a.settimeout(0.05)
        with pytest.raises(TimeoutError):
            a.recv_ahead()
        assert a.buffered == 0
        a.settimeout(5)
        timer = threading.Timer(0.1, b.sendall, (b"late",))
        timer.start()
        try:
            assert a.recv_ahead() == 4  # blocked until they came
        finally:
            timer.join()
        assert a.take_buffered() == b"late"


def test_recv_ahead_at_the_end_and_after_a_reset(impl: ModuleType) -> None:
    with connected(impl, "unix") as (a, b):
        a.settimeout(5)
        b.sendall(b"last")
        b.close()
        assert a.recv_ahead() == 4
        assert a.recv_ahead() == 0  # the end, and the bytes before it kept
        assert a.recv(100) == b"last"
        assert a.recv(100) == b""
    with connected(impl, "tcp") as (a, b):
        a.settimeout(5)
        b.sendall(b"partial")
        assert a.recv_ahead() == 7
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        b.close()
        with pytest.raises(ConnectionResetError):
            a.recv_ahead()
        assert a.take_buffered() == b"partial"  # what came before the reset stays


def test_recv_ahead_errors(impl: ModuleType) -> None:
    with connected(impl, "unix") as (a, b):
        for bad in (0, -1):
            with pytest.raises(ValueError, match="max_bytes must be positive"):
                a.recv_ahead(bad)
        with pytest.raises(TypeError):
            a.recv_ahead(1.5)
        b.sendall(b"dropped")
        a.settimeout(5)
        assert a.recv_ahead() == 7
        a.close()
        assert a.buffered == 0  # they go with the socket
        with pytest.raises(OSError) as info:
            a.recv_ahead()
        assert info.value.errno == errno.EBADF
