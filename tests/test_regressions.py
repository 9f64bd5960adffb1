"""Regression tests for defects that fuzzing and the differential property
tests found: each one failed before its fix.  Defects about the stdlib's
exceptions and messages are rows of test_conformance.py instead."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from types import ModuleType
from typing import Any, Optional

import pytest
from conftest import Worker


def test_batch_send_on_closed_socket_reports_the_address_error(impl: ModuleType) -> None:
    # the pure twin used to turn every OSError of a closed socket into EBADF,
    # hiding the resolver's error that the compiled one (and the stdlib) raise
    sock = impl.DatagramSocket(socket.AF_INET)
    sock.close()
    with pytest.raises(socket.gaierror):
        sock.send_many([b"x"], ("::1", 9))
    with pytest.raises(socket.gaierror):
        sock.sendto_many([(b"x", ("::1", 9))])


@pytest.mark.parametrize("timeout", [None, 0.0, 5.0])
def test_zero_byte_receives_return_at_once(impl: ModuleType, timeout: Optional[float]) -> None:
    # the compiled recv(0) and recv_into(<empty>) asked the kernel for 0
    # bytes, which waits for data on a Unix stream: a blocking socket hung, a
    # non-blocking one raised BlockingIOError, a timeout ran out; the stdlib
    # returns at once without touching the socket (a datagram stays queued)
    stream_a, stream_b = impl.socketpair()
    dgram_a, dgram_b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with stream_a, stream_b, dgram_a, dgram_b:
        stream_b.settimeout(timeout)
        dgram_b.settimeout(timeout)
        dgram_a.send(b"kept")

        def receive_nothing() -> list[object]:
            return [stream_b.recv(0), stream_b.recv_into(bytearray(0)),
                    stream_b.recv(0, socket.MSG_DONTWAIT),
                    dgram_b.recv(0), dgram_b.recv_into(bytearray(0))]

        worker = Worker(receive_nothing, name="zero-byte receives")
        worker.start()
        worker.join(3.0)
        if worker.is_alive():
            stream_b.close()  # wakes the blocked call
            dgram_b.close()
            worker.join(5.0)
            pytest.fail("a zero-byte receive blocked")
        assert worker.finish() == [b"", 0, b"", b"", 0]
        assert dgram_b.recv(10) == b"kept"


NONCONTIGUOUS = memoryview(bytearray(8))[::2]


@pytest.mark.parametrize("call", [
    lambda s: s.send_msg(NONCONTIGUOUS),
    lambda s: s.sendall_buffers([b"x", NONCONTIGUOUS]),
    lambda s: s.recv_until(NONCONTIGUOUS),
], ids=["send_msg", "sendall_buffers", "recv_until"])
def test_stream_fast_paths_refuse_noncontiguous_buffers_with_buffererror(
        impl: ModuleType, call: Any) -> None:
    # as send() and the stdlib do; the pure twin raised TypeError
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(BufferError, match="not C-contiguous"):
            call(a)


@pytest.mark.parametrize("call", [
    lambda s: s.send_msg("text"),
    lambda s: s.sendall_buffers(["text"]),
    lambda s: s.recv_until("text"),
], ids=["send_msg", "sendall_buffers", "recv_until"])
def test_stream_fast_paths_refuse_non_buffers_with_the_c_message(
        impl: ModuleType, call: Any) -> None:
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(TypeError) as info:
            call(a)
        assert str(info.value) == "a bytes-like object is required, not 'str'"


@pytest.mark.parametrize("call", [
    lambda s: s.send_many([NONCONTIGUOUS]),
    lambda s: s.send_segments(NONCONTIGUOUS, 2),
], ids=["send_many", "send_segments"])
def test_datagram_fast_paths_refuse_noncontiguous_buffers_with_buffererror(
        impl: ModuleType, call: Any) -> None:
    a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        with pytest.raises(BufferError, match="not C-contiguous"):
            call(a)
        with pytest.raises(TypeError) as info:
            a.send_many(["text"])
        assert str(info.value) == "a bytes-like object is required, not 'str'"


@pytest.mark.parametrize("nbytes", [2**63, -2**63 - 1])
def test_receive_into_nbytes_beyond_ssize_t_is_overflowerror(impl: ModuleType,
                                                              nbytes: int) -> None:
    # as the stdlib's recv_into; the pure twin's own checks (recv_exactly_into,
    # and recv_into while bytes are buffered) said ValueError
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(OverflowError, match="too large to convert to C ssize_t"):
            b.recv_exactly_into(bytearray(4), nbytes)
        a.sendall(b"\n12345")
        b.recv_until(b"\n")  # leaves "12345" in the socket's buffer
        with pytest.raises(OverflowError, match="too large to convert to C ssize_t"):
            b.recv_into(bytearray(4), nbytes)
        assert b.recv(5) == b"12345"


@pytest.mark.parametrize("method", ["recv_exactly_into", "recv_iter"])
def test_fast_path_buffer_none_message(impl: ModuleType, method: str) -> None:
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(TypeError) as info:
            getattr(b, method)(None)
        assert str(info.value).endswith("read-write bytes-like object, not None")


def test_empty_datagram_batches_send_nothing_whatever_the_address(impl: ModuleType) -> None:
    # the compiled send_many checked the address of an empty batch and raised,
    # where the pure twin (and send_segments of an empty buffer) send nothing
    with impl.DatagramSocket() as sock:
        assert sock.send_many([], ("127.0.0.1", 70000)) == 0
        assert sock.send_many((), "not an address") == 0
        assert sock.sendto_many([]) == 0
        assert sock.send_segments(b"", 100, ("127.0.0.1", 70000)) == 0


def test_empty_unix_datagram_batch_sends_nothing_whatever_the_address(impl: ModuleType) -> None:
    a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        assert a.send_many([], 5) == 0
        assert a.send_segments(b"", 10, 5) == 0


def test_sendto_many_refuses_a_pair_without_address(impl: ModuleType) -> None:
    # the pure twin took None as "the connected peer" (as send_many does)
    with impl.DatagramSocket() as a, impl.DatagramSocket() as b:
        b.bind(("127.0.0.1", 0))
        a.connect(b.getsockname())
        with pytest.raises(TypeError, match="AF_INET address must be tuple, not NoneType"):
            a.sendto_many([(b"x", None)])


@pytest.mark.parametrize("index", [None, 1.0, "0"])
def test_datagram_batch_index_of_wrong_type_is_typeerror(impl: ModuleType, index: Any) -> None:
    # the pure batch called index.__index__() and raised AttributeError
    a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.send(b"one")
        batch = impl.DatagramBatch(4, 64)
        b.settimeout(5.0)
        assert b.recv_batch(batch) == 1
        for accessor in (batch.data, batch.length, batch.truncated, batch.address):
            with pytest.raises(TypeError):
                accessor(index)


def test_sendto_many_checks_each_address_before_its_data(impl: ModuleType) -> None:
    with impl.DatagramSocket(socket.AF_UNIX) as sock:
        with pytest.raises(TypeError):
            sock.sendto_many([(NONCONTIGUOUS, 5)])


@pytest.mark.parametrize("method", ["recv_msg", "recv_msgs"])
def test_failed_allocation_of_a_message_loses_nothing(impl: ModuleType, method: str) -> None:
    # the compiled recv_msg took the length prefix off the buffer before
    # allocating the payload; a MemoryError then lost the prefix and the
    # stream was out of step.  A 1 PiB payload is more than any address space.
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(5.0)
        head = (2**50).to_bytes(8, "big")
        a.sendall(head + b"x" * 100)
        with pytest.raises(MemoryError):
            getattr(b, method)(prefix_size=8, max_size=2**51)
        assert b.recv_exactly(108) == head + b"x" * 100


@pytest.mark.parametrize("n", [2**63, -2**63 - 1, -2**70])
def test_recv_exactly_beyond_ssize_t(impl: ModuleType, n: int) -> None:
    # the pure twin said ValueError for a hugely negative n, the compiled
    # module an OverflowError with another message than the stdlib's
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(OverflowError) as info:
            b.recv_exactly(n)
        assert str(info.value) == "Python int too large to convert to C ssize_t"


@pytest.mark.parametrize("value", [2**64, -2**63 - 1])
@pytest.mark.parametrize("call", [
    lambda s, v: s.recv_until(b"\n", v),
    lambda s, v: s.recv_msg(max_size=v),
    lambda s, v: s.recv_msgs(v),
], ids=["recv_until limit", "recv_msg max_size", "recv_msgs max_count"])
def test_fast_path_sizes_beyond_ssize_t(impl: ModuleType, call: Any, value: int) -> None:
    # the compiled module said "cannot fit 'int' into an index-sized
    # integer", the pure twin ValueError for a hugely negative value
    a, b = impl.socketpair()
    with a, b:
        with pytest.raises(OverflowError) as info:
            call(b, value)
        assert str(info.value) == "Python int too large to convert to C ssize_t"


def test_recv_into_with_buffered_bytes_checks_the_buffer_before_flags(impl: ModuleType) -> None:
    # with bytes already in the socket's buffer, the pure twin converted the
    # flags first and reported a bad flags object for a call whose buffer was
    # None; the stdlib (and the compiled module) check buffer, nbytes, flags
    a, b = impl.socketpair()
    with a, b:
        a.sendall(b"abc\nrest")
        assert b.recv_until(b"\n") == b"abc\n"    # leaves b"rest" buffered
        assert b.buffered > 0                      # the buffered path is taken
        with pytest.raises(TypeError, match="must be read-write bytes-like object, not None"):
            b.recv_into(None, 0, object())
        with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
            b.recv_into(bytearray(1), 2, object())     # flags before the size check
        assert b.recv_exactly(4) == b"rest"


def test_recv_with_buffered_bytes_converts_flags_before_refusing_a_negative_size(
        impl: ModuleType) -> None:
    # with bytes already buffered, the pure twin refused the negative size
    # before converting the flags; the stdlib converts both arguments first
    a, b = impl.socketpair()
    with a, b:
        a.sendall(b"abc\nrest")
        assert b.recv_until(b"\n") == b"abc\n"
        assert b.buffered > 0                      # the buffered path is taken
        with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
            b.recv(-1, object())
        with pytest.raises(ValueError, match="negative buffersize in recv"):
            b.recv(-1)
        with pytest.raises(OverflowError, match="too large to convert to C ssize_t"):
            b.recv(-2**70)
        assert b.recv_exactly(4) == b"rest"


# -- found by the faults fuzz target (fuzz/seeds/faults/) -------------------------


@pytest.fixture
def tcp_pair_with_small_send_buffer(impl: ModuleType) -> Any:
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = impl.create_connection(server.getsockname(), timeout=5)
        peer, _ = server.accept()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.settimeout(None)
    with ours, peer:
        yield ours, peer


def _wait_for_hangup(sock: Any) -> None:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP | select.POLLERR | select.POLLHUP)
    assert poller.poll(5000), "the peer's close did not arrive"


def test_blocking_send_failing_after_its_first_try_returns_the_count(
        tcp_pair_with_small_send_buffer: Any) -> None:
    # blocking_send_loses_count: the compiled send() went on with a blocking
    # send of the rest after a partial try and raised when that failed,
    # losing the count of what went out; the stdlib's one send returns it
    ours, peer = tcp_pair_with_small_send_buffer
    peer.close()
    _wait_for_hangup(ours)
    sent = ours.send(b"x" * 65536)
    assert 0 < sent <= 65536
    # a receive never reports the send side's EPIPE (the faults target saw
    # one that did): the end of the stream, or the peer's reset
    try:
        assert ours.recv(10) == b""
    except ConnectionResetError:
        pass
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for _ in range(3):  # the error is the next call's (once the RST is back)
            ours.send(b"y" * 65536)
            time.sleep(0.05)


def test_empty_sendall_asks_the_kernel_as_the_stdlib(impl: ModuleType) -> None:
    # empty_sendall_skips_kernel: the pure sendall(b"") returned without a
    # syscall, where the stdlib's (and the compiled one) raise the pending error
    for make in (lambda: socket.socketpair(), lambda: impl.socketpair()):
        a, b = make()
        with a:
            b.close()
            with pytest.raises(BrokenPipeError):
                a.sendall(b"")


def test_reset_kept_by_recv_msgs_is_the_next_call_s_error_whatever_the_call(
        impl: ModuleType) -> None:
    # deferred_reset_differs: a reset met while recv_msgs drained was kept for
    # the next receive only, so a send in between reported something else
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = impl.create_connection(server.getsockname(), timeout=5)
        peer, _ = server.accept()
    with ours:
        peer.sendall(b"\0\0\0\5hello")
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        _wait_for_hangup(ours)
        assert ours.recv_msgs() == [b"hello"]
        with pytest.raises(ConnectionResetError):
            ours.send(b"x")
        assert ours.recv(10) == b""


# -- the twins agree (differences found while documenting them) ---------------------


def test_recv_msg_timeout_bounds_the_whole_call(impl: ModuleType) -> None:
    # the pure twin gave the wait for the prefix and the wait for the payload
    # each the whole timeout
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(0.6)
        sender = threading.Timer(0.4, lambda: a.sendall(struct.pack(">I", 1 << 20) + b"x"))
        sender.start()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            b.recv_msg()
        elapsed = time.monotonic() - started
        sender.join()
    assert elapsed < 0.9, f"recv_msg with a 0.6 s timeout gave up after {elapsed:.2f} s"


def test_send_buffers_takes_no_more_of_an_iterator_than_it_sends(impl: ModuleType) -> None:
    # one sendmsg() takes at most IOV_MAX buffers; the compiled twin consumed
    # the whole iterator
    a, b = impl.socketpair()
    with a, b:
        buffers = iter([b"x"] * 3000)
        sent = a.send_buffers(buffers)
        assert 0 < sent <= 1024
        assert len(list(buffers)) == 3000 - 1024


def test_accepted_socket_has_the_listener_s_protocol(impl: ModuleType) -> None:
    # as the stdlib's accept(); the pure twin reported 0
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    with impl.StreamSocket.from_socket(plain) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            conn, _ = server.accept()
            with conn:
                assert server.proto == conn.proto == socket.IPPROTO_TCP


def test_batch_send_timeout_bounds_the_whole_call(impl: ModuleType) -> None:
    # the pure twin gave each datagram the whole timeout: a reader emptying
    # the queue every 100 ms kept a send_many with a 0.3 s timeout going for
    # as long as it took
    a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    stop = threading.Event()

    def slow_reader() -> None:
        # at most one queue's worth per wake-up: a drain that went on while the
        # sender refilled the queue would never pause at all
        while not stop.wait(0.1):
            try:
                for _ in range(queue_capacity):
                    b.recv(100, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass

    with a, b:
        a.setblocking(False)
        queue_capacity = 0
        try:
            while True:  # fill the queue: from here on each send waits for the reader
                a.send(b"f")
                queue_capacity += 1
        except BlockingIOError:
            pass
        # the queue's size depends on the host's buffer settings: ask for twenty
        # queues' worth, two seconds of draining, far beyond the timeout
        count = max(5000, 20 * queue_capacity)
        a.settimeout(0.3)
        reader = threading.Thread(target=slow_reader, daemon=True)
        reader.start()
        started = time.monotonic()
        try:
            sent = a.send_many([b"d"] * count)
        finally:
            elapsed = time.monotonic() - started
            stop.set()
            reader.join(5)
    assert 0 < sent < count and elapsed < 0.8, f"{sent} of {count} datagrams in {elapsed:.2f} s"


@pytest.mark.parametrize("args, error", [(("x", 99), TypeError), ((1, "x"), TypeError),
                                         ((socket.AF_UNIX, 99), ValueError)])
def test_socketpair_converts_both_arguments_first(impl: ModuleType, args: Any,
                                                  error: type) -> None:
    with pytest.raises(error):
        impl.socketpair(*args)
