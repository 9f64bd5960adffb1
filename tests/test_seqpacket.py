"""SeqPacketSocket (AF_UNIX SOCK_SEQPACKET) on both twins, compared with the
stdlib's socket of that type where it has the behaviour: records kept whole,
recv() cutting a longer record silently as the stdlib's does, the record
calls that never do (recv_record, recv_records, recv_batch: truncation
reported, many records in one call), the end of the connection, a reset,
timeouts, non-blocking sockets, a signal handler's exception, close() from
another thread, listen/accept on a path and on an abstract name."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import Worker

SEQPACKET = socket.SOCK_SEQPACKET
PROMPT_S = 2.0


@contextlib.contextmanager
def pair(impl: ModuleType) -> Iterator[tuple[Any, Any]]:
    a, b = impl.socketpair(socket.AF_UNIX, SEQPACKET)
    with a, b:
        yield a, b


@contextlib.contextmanager
def stdlib_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, SEQPACKET)
    with a, b:
        yield a, b


def outcome(call: Callable[[], Any]) -> Any:
    """The result of ``call``, or the type and errno of what it raised."""
    try:
        return call()
    except OSError as exc:
        return type(exc), exc.errno


# -- construction and the factories -------------------------------------------------


def test_factories_make_seqpacket_sockets(impl: ModuleType) -> None:
    with impl.socket(socket.AF_UNIX, SEQPACKET) as made:
        assert type(made) is impl.SeqPacketSocket
        assert made.family == socket.AF_UNIX and made.type == SEQPACKET
    with impl.SeqPacketSocket() as default:
        assert default.family == socket.AF_UNIX and default.type == SEQPACKET
        assert default.proto == 0
    with pair(impl) as (a, b):
        assert type(a) is type(b) is impl.SeqPacketSocket
    with pytest.raises(ValueError, match="SeqPacketSocket wraps SOCK_SEQPACKET"):
        impl.SeqPacketSocket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(OSError) as refused:
        impl.SeqPacketSocket(socket.AF_INET, SEQPACKET)
    assert refused.value.errno == errno.EAFNOSUPPORT


def test_socketpair_of_another_family_names_the_family(impl: ModuleType) -> None:
    # the type is one fastsock has: the family is what SeqPacketSocket does not
    # take, as its constructor says
    makers: list[Callable[[], Any]] = [
        lambda: impl.socketpair(socket.AF_INET, SEQPACKET),
        lambda: impl.SeqPacketSocket(socket.AF_INET, SEQPACKET)]
    for make in makers:
        with pytest.raises(OSError) as info:
            make()
        assert info.value.errno == errno.EAFNOSUPPORT
        assert "SeqPacketSocket takes AF_UNIX, not AF_INET" in str(info.value)


def test_from_fd_from_socket_and_fileno(impl: ModuleType) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, SEQPACKET)
    b.settimeout(3.0)
    with impl.SeqPacketSocket.from_fd(a.detach()) as ours, \
            impl.SeqPacketSocket.from_socket(b) as theirs:
        assert b.fileno() == -1 and theirs.gettimeout() == 3.0
        ours.send(b"one")
        assert theirs.recv_record() == b"one"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
        with pytest.raises(ValueError):
            impl.SeqPacketSocket.from_fd(stream.fileno())
    with socket.socket(socket.AF_UNIX, SEQPACKET) as other:
        with pytest.raises(ValueError):
            impl.StreamSocket.from_fd(other.fileno())
        with impl.socket(fileno=os.dup(other.fileno())) as adopted:
            assert type(adopted) is impl.SeqPacketSocket


# -- the stdlib's calls -------------------------------------------------------------


def test_records_kept_whole_and_recv_cuts_silently_as_the_stdlib(impl: ModuleType) -> None:
    def run(a: Any, b: Any) -> list[Any]:
        a.send(b"first")
        a.sendall(b"second record")
        a.send(b"", socket.MSG_EOR)
        a.send(b"third")
        a.send(b"0123456789")
        a.send(b"from")
        buffer = bytearray(4)
        return [b.recv(100), b.recv(6), b.recv(100), b.recv(100),
                b.recv_into(buffer), bytes(buffer), b.recvfrom(100)]

    with stdlib_pair() as (a, b):
        expected = run(a, b)
    with pair(impl) as (a, b):
        assert run(a, b) == expected
    assert expected[:3] == [b"first", b"second", b""]


def test_recvfrom_names_a_bound_sender_as_the_stdlib(impl: ModuleType, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")

    def run(make: Callable[[], Any]) -> list[Any]:
        with make() as listener:
            listener.bind(path)
            listener.listen()
            with make() as client:
                client.connect(path)
                conn, address = listener.accept()
                with conn:
                    conn.send(b"to client")
                    client.send(b"to server")
                    got = [address, client.recvfrom(64), conn.recvfrom(64)]
                    conn.send(b"into")
                    buffer = bytearray(8)
                    got.append(client.recvfrom_into(buffer))
        os.unlink(path)
        return got

    expected = run(lambda: socket.socket(socket.AF_UNIX, SEQPACKET))
    assert run(lambda: impl.SeqPacketSocket()) == expected
    assert expected[1] == (b"to client", path)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_listen_accept_connect(impl: ModuleType, unix_dir: str, abstract: bool) -> None:
    name: Any = b"\0fastsock-seqpacket-%d" % os.getpid() if abstract \
        else os.path.join(unix_dir, "listener")
    with impl.SeqPacketSocket() as listener:
        listener.bind(name)
        listener.listen(4)
        assert listener.getsockname() == name
        with impl.socket(socket.AF_UNIX, SEQPACKET) as client:
            client.connect(name)
            conn, address = listener.accept()
            with conn:
                assert type(conn) is impl.SeqPacketSocket
                assert address == ""  # an unnamed client, as the stdlib's
                assert conn.getsockname() == name
                client.send_records([b"a", b"bb", b"ccc"])
                assert conn.recv_records() == [b"a", b"bb", b"ccc"]
                conn.sendall(b"reply")
                assert client.recv_record() == b"reply"


def test_sendall_is_one_record_and_too_large_is_emsgsize(impl: ModuleType) -> None:
    with stdlib_pair() as (a, _):
        size = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) * 2
        expected = outcome(lambda: a.sendall(b"x" * size))
    with pair(impl) as (a, b):
        assert outcome(lambda: a.sendall(b"x" * size)) == expected == (OSError, errno.EMSGSIZE)
        a.sendall(b"y" * 100_000)
        assert b.recv_record(200_000) == b"y" * 100_000


# -- whole records ------------------------------------------------------------------


def test_recv_record_reports_truncation_and_keeps_the_next(impl: ModuleType) -> None:
    with pair(impl) as (a, b):
        a.send(b"hello world")
        a.send(b"next")
        with pytest.raises(impl.TruncatedRecordError) as cut:
            b.recv_record(5)
        assert isinstance(cut.value, impl.TruncatedDatagramError)
        assert cut.value.messages == [b"hello"]
        assert cut.value.truncated == [0] and cut.value.lengths == [11]
        assert b.recv_record(5) == b"next"
        big = os.urandom(20_000)  # past the compiled twin's stack buffer
        a.send(big)
        with pytest.raises(impl.TruncatedRecordError) as cut:
            b.recv_record(10_000)
        assert cut.value.messages == [big[:10_000]] and cut.value.lengths == [20_000]
        a.send(big)
        assert b.recv_record(20_000) == big


def test_recv_records_takes_every_queued_record_in_one_call(impl: ModuleType) -> None:
    records = [bytes([k]) * (k % 7) for k in range(50)]  # empty ones too
    with pair(impl) as (a, b):
        assert a.send_records(records) == 50
        # all 50 were queued before the call: one call returns them all
        assert b.recv_records(64) == records
        assert a.send_records(records) == 50
        assert b.recv_records(20) == records[:20]
        assert b.recv_records(64, 8) == records[20:]


def test_recv_records_reports_truncation_with_everything(impl: ModuleType) -> None:
    with pair(impl) as (a, b):
        a.send_records([b"ok", b"far too long", b"fine", b"also too long"])
        with pytest.raises(impl.TruncatedRecordError) as cut:
            b.recv_records(max_size=4)
        assert cut.value.messages == [b"ok", b"far ", b"fine", b"also"]
        assert cut.value.truncated == [1, 3]
        assert cut.value.lengths == [2, 12, 4, 13]


def test_recv_batch_reuses_the_datagram_batch(impl: ModuleType) -> None:
    batch = impl.DatagramBatch(16, 8)
    with pair(impl) as (a, b):
        a.send_records([b"one", b"", b"three", b"longer than 8"])
        assert b.recv_batch(batch) == 4 == len(batch)
        assert [bytes(view) for view, _ in batch] == [b"one", b"", b"three", b"longer t"]
        assert [batch.truncated(i) for i in range(4)] == [False, False, False, True]
        assert batch.length(3) == 13
        assert batch.address(0) is None
        with pytest.raises(TypeError):
            b.recv_batch(None)


def test_empty_record_is_not_the_end(impl: ModuleType) -> None:
    with pair(impl) as (a, b):
        a.send(b"")
        assert b.recv_record() == b""
        a.send_records([b"", b""])
        assert b.recv_records() == [b"", b""]


@pytest.mark.parametrize("how", ["close", "shutdown"])
def test_end_of_connection(impl: ModuleType, how: str) -> None:
    def end(a: Any) -> None:
        a.shutdown(socket.SHUT_WR) if how == "shutdown" else a.close()

    with stdlib_pair() as (a, b):
        a.send(b"last")
        end(a)
        expected = [b.recv(10), b.recv(10), b.recv(10)]
    batch = impl.DatagramBatch(4)
    with pair(impl) as (a, b):
        a.send(b"last")
        end(a)
        assert [b.recv(10), b.recv(10), b.recv(10)] == expected == [b"last", b"", b""]
    with pair(impl) as (a, b):
        a.send_records([b"x", b"y"])
        end(a)
        assert b.recv_records() == [b"x", b"y"]  # the records before the end
        for call in (b.recv_records, b.recv_record, lambda: b.recv_batch(batch)):
            with pytest.raises(EOFError):
                call()
        assert len(batch) == 0
    with pair(impl) as (a, b):
        a.send_records([b"x", b""])
        end(a)
        # the kernel answers a receive at the end as it answers an empty record:
        # empty records last before the end are taken for it (docs/socket-kinds.md)
        assert b.recv_records(2) == [b"x"]
        with pytest.raises(EOFError):
            b.recv_record()


@pytest.mark.parametrize("how", ["close", "shutdown"])
def test_empty_records_before_others_are_not_the_end(impl: ModuleType, how: str) -> None:
    # the peer has ended but records are still queued after the empty ones:
    # those empty records are records, neither the end nor dropped
    def ended_pair(records: list[bytes]) -> Any:
        a, b = impl.socketpair(socket.AF_UNIX, SEQPACKET)
        a.send_records(records)
        a.shutdown(socket.SHUT_WR) if how == "shutdown" else a.close()
        return contextlib.closing(a), contextlib.closing(b)

    records = [b"", b"x", b"", b"", b"y"]
    batch = impl.DatagramBatch(3, 8)
    a, b = ended_pair(records)
    with a, b as b:
        assert [b.recv_record() for _ in records] == records
        with pytest.raises(EOFError):
            b.recv_record()
    a, b = ended_pair(records[1:])
    with a, b as b:
        assert b.recv_records(3) == [b"x", b"", b""]  # a full batch ending in empties
        assert b.recv_records(3) == [b"y"]
        with pytest.raises(EOFError):
            b.recv_records(3)
    a, b = ended_pair(records[1:])
    with a, b as b:
        assert b.recv_batch(batch) == 3
        assert [bytes(view) for view, _ in batch] == [b"x", b"", b""]
        assert b.recv_batch(batch) == 1 and batch.length(0) == 1
        with pytest.raises(EOFError):
            b.recv_batch(batch)


def test_peer_reset_and_send_to_a_closed_peer_as_the_stdlib(impl: ModuleType) -> None:
    def run(a: Any, b: Any, receive: Callable[[], Any]) -> list[Any]:
        b.send(b"never read")  # a close with unread records resets
        a.send(b"x")
        a.close()
        return [outcome(receive), outcome(receive), outcome(lambda: b.send(b"y"))]

    with stdlib_pair() as (sa, sb):
        expected = run(sa, sb, lambda: sb.recv(10))
    assert expected == [(ConnectionResetError, errno.ECONNRESET), b"x",
                        (BrokenPipeError, errno.EPIPE)]
    with pair(impl) as (a, b):
        assert run(a, b, lambda: b.recv(10)) == expected
    with pair(impl) as (a, b):
        assert run(a, b, lambda: b.recv_record(10)) == expected
    with pair(impl) as (a, b):
        assert run(a, b, b.recv_records) == [expected[0], [b"x"], expected[2]]


def test_send_records_checks_before_sending(impl: ModuleType) -> None:
    with pair(impl) as (a, b):
        with pytest.raises(TypeError):
            a.send_records([b"fine", "not bytes"])
        assert a.send_records([]) == 0
        a.setblocking(False)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv_records()  # nothing was sent


@pytest.mark.parametrize("call", [
    lambda s: s.recv_record(0),
    lambda s: s.recv_record(-1),
    lambda s: s.recv_records(0),
    lambda s: s.recv_records(1, 0),
    lambda s: s.recv_records(1, 65537),
])
def test_bad_sizes_raise_value_error(impl: ModuleType, call: Any) -> None:
    with pair(impl) as (a, _):
        with pytest.raises(ValueError):
            call(a)


# -- timeouts, non-blocking, signals, close ------------------------------------------

RECEIVES = ["recv", "recv_record", "recv_records", "recv_batch"]


def _receive(impl: ModuleType, sock: Any, name: str) -> Callable[[], Any]:
    """A receive of ``sock``: the stdlib's recv or one of the record calls."""
    if name == "recv":
        return lambda: sock.recv(10)
    if name == "recv_batch":
        batch = impl.DatagramBatch(4)
        return lambda: sock.recv_batch(batch)
    method = getattr(sock, name)
    return lambda: method()


@pytest.mark.parametrize("name", RECEIVES)
def test_timeout_and_non_blocking(impl: ModuleType, name: str) -> None:
    with pair(impl) as (a, b):
        receive = _receive(impl, b, name)
        b.settimeout(0.2)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            receive()
        assert 0.15 < time.monotonic() - started < PROMPT_S
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            receive()
        a.send(b"now")
        assert receive() in (b"now", [b"now"], 1)


def test_send_records_on_a_full_non_blocking_socket(impl: ModuleType) -> None:
    with pair(impl) as (a, b):
        a.setblocking(False)
        sent = a.send_records([b"r" * 64] * 100_000)
        assert 0 < sent < 100_000
        with pytest.raises(BlockingIOError):
            a.send_records([b"more"])
        b.setblocking(False)
        got = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                got += len(b.recv_records(1024, 64))
        assert got == sent


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("name", RECEIVES)
def test_signal_handler_exception_propagates(impl: ModuleType, name: str) -> None:
    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        with pair(impl) as (a, b):
            receive = _receive(impl, b, name)
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(Interrupted):
                receive()
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            a.send(b"after")  # the socket is still usable
            assert receive() in (b"after", [b"after"], 1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["blocking", "timeout"])
@pytest.mark.parametrize("name", RECEIVES)
def test_close_from_another_thread_wakes_the_receive(impl: ModuleType, name: str,
                                                     timeout: Optional[float]) -> None:
    a, b = impl.socketpair(socket.AF_UNIX, SEQPACKET)
    with a:
        b.settimeout(timeout)
        worker = Worker(_receive(impl, b, name))
        worker.start()
        worker.entered.wait(5)
        time.sleep(0.2)
        assert worker.is_alive(), "the call did not block"
        b.close()
        worker.join(PROMPT_S)
        if worker.is_alive():
            a.send(b"unstick")
            worker.join(10)
            pytest.fail("close() did not wake the blocked call")
        assert isinstance(worker.error, OSError), (worker.result, worker.error)
        assert worker.error.errno == errno.EBADF
