"""One table of faults for every send and receive method: the kernel's answer
reaches the caller as the stdlib reports it, whatever fast path a method took.

Each row runs the same steps on the stdlib's ``socket.socket`` (where it has
the method), the compiled twin and the pure twin, over real sockets on
loopback, and compares what happened: results, exception types, errno.  The
peer is always a stdlib socket, so the fault it injects is the same for all.

- reset: the peer's RST has arrived before a send (ConnectionResetError, then
  BrokenPipeError) or after a message (the message, then ConnectionResetError,
  never an end of stream);
- refused: a connected UDP socket whose peer port is closed (the ICMP error
  reaches exactly the call the stdlib reports it on, and no datagram more);
- EOF: a message, then an orderly close;
- signal: a handler that raises while a send is blocked after part of its
  data went out without blocking;
- partial: a send that stops part-way (non-blocking, or at its deadline) says
  how many bytes went out.

Every row runs twice: alone, and with another Python thread alive, when the
compiled twin's send on a blocking socket skips its try with the GIL held.
"""

from __future__ import annotations

import contextlib
import errno
import select
import signal
import socket
import struct
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from conftest import IMPLEMENTATIONS, alarm_after, implementation_module

import fastsock

APIS = ["stdlib", *IMPLEMENTATIONS]
LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST
FRAME = struct.pack(">I", 5) + b"hello"


@pytest.fixture(autouse=True, params=["alone", "another thread"])
def other_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """An idle Python thread for the row's duration, or none."""
    if request.param == "alone":
        yield
        return
    done = threading.Event()
    idle = threading.Thread(target=done.wait, daemon=True)
    idle.start()
    try:
        yield
    finally:
        done.set()
        idle.join(5)


def api_module(name: str) -> Any:
    if name == "stdlib":
        return socket
    if name == "cython" and fastsock.IMPLEMENTATION != "cython":
        pytest.skip("compiled extension not loaded")
    return implementation_module(name)


@contextlib.contextmanager
def tcp_pair(module: Any) -> Iterator[tuple[Any, socket.socket]]:
    """(ours, peer): ours made by ``module``, the peer a stdlib socket."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = module.create_connection(server.getsockname(), timeout=10)
        ours.settimeout(None)
        peer, _ = server.accept()
    with ours, peer:
        yield ours, peer


def wait_for_error(sock: Any, seconds: float = 5.0) -> None:
    """Until the kernel has news for ``sock`` (an RST, an ICMP error, EOF)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLERR | select.POLLHUP | select.POLLRDHUP)
    assert poller.poll(int(seconds * 1000)), "the fault did not arrive"


def outcome(action: Callable[[], Any]) -> tuple[str, Any]:
    try:
        value = action()
    except OSError as exc:
        return type(exc).__name__, exc.errno
    except fastsock.IncompleteReadError as exc:
        return "IncompleteReadError", exc.partial
    return "ok", value


# -- reset before a send -----------------------------------------------------------

SENDS: dict[str, Callable[[Any, bytes], Any]] = {
    "send": lambda s, data: s.send(data),
    "sendall": lambda s, data: s.sendall(data),
    "send_msg": lambda s, data: s.send_msg(data),
    "sendall_buffers": lambda s, data: s.sendall_buffers([data[:1], data[1:]]),
    "send_buffers": lambda s, data: s.send_buffers([data[:1], data[1:]]),
}
STDLIB_SENDS = {"send", "sendall"}


@pytest.mark.parametrize("method", list(SENDS))
@pytest.mark.parametrize("api", APIS)
def test_send_after_reset(api: str, method: str) -> None:
    if api == "stdlib" and method not in STDLIB_SENDS:
        pytest.skip("not a stdlib method")
    with tcp_pair(api_module(api)) as (ours, peer):
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        peer.close()
        wait_for_error(ours)
        first = outcome(lambda: SENDS[method](ours, b"x" * 100))
        second = outcome(lambda: SENDS[method](ours, b"x" * 100))
    # as the stdlib's send: the reset once, then the broken pipe
    assert first == ("ConnectionResetError", errno.ECONNRESET)
    assert second == ("BrokenPipeError", errno.EPIPE)


# -- a connected UDP socket whose peer port is closed ------------------------------

DATAGRAM_SENDS: dict[str, Callable[[Any, bytes], Any]] = {
    "send": lambda s, data: s.send(data),
    "sendto": lambda s, data: s.sendto(data, s.getpeername()),
    "send_many": lambda s, data: s.send_many([data]),
    "send_segments": lambda s, data: s.send_segments(data, len(data)),
}
STDLIB_DATAGRAM_SENDS = {"send", "sendto"}


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("method", list(DATAGRAM_SENDS))
@pytest.mark.parametrize("api", APIS)
def test_send_to_a_refusing_port(api: str, method: str) -> None:
    if api == "stdlib" and method not in STDLIB_DATAGRAM_SENDS:
        pytest.skip("not a stdlib method")
    module = api_module(api)
    sock = module.socket(socket.AF_INET, socket.SOCK_DGRAM) if api == "stdlib" \
        else module.DatagramSocket(socket.AF_INET)
    with sock:
        sock.connect(("127.0.0.1", closed_udp_port()))
        outcomes = [outcome(lambda: SENDS_ONE(sock, method))]
        wait_for_error(sock)
        outcomes += [outcome(lambda: SENDS_ONE(sock, method)) for _ in range(2)]
    sent = {"send": 4, "sendto": 4, "send_many": 1, "send_segments": 1}[method]
    # the first datagram goes out; the ICMP error it caused is the next
    # call's error (no datagram goes out with it); then sending works again
    assert outcomes == [("ok", sent), ("ConnectionRefusedError", errno.ECONNREFUSED),
                        ("ok", sent)]


def SENDS_ONE(sock: Any, method: str) -> Any:
    return DATAGRAM_SENDS[method](sock, b"ping")


def test_refused_error_sends_no_extra_datagram(impl: ModuleType) -> None:
    # a receiver that appears on the port after the refusal sees only the
    # datagrams sent after it, never the one the refused call was given
    port = closed_udp_port()
    with impl.DatagramSocket(socket.AF_INET) as sock:
        sock.connect(("127.0.0.1", port))
        sock.send(b"first")
        wait_for_error(sock)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
            receiver.bind(("127.0.0.1", port))
            with pytest.raises(ConnectionRefusedError):
                sock.send(b"refused")
            sock.send(b"after")
            receiver.settimeout(5)
            assert receiver.recv(100) == b"after"


# -- a message, then a reset or an orderly close -----------------------------------

RECEIVES: dict[str, Callable[[Any], Any]] = {
    "recv": lambda s: s.recv(100),
    "recv_into": lambda s: _recv_into(s),
    "recv_exactly": lambda s: s.recv_exactly(len(FRAME)),
    "recv_until": lambda s: s.recv_until(b"o"),
    "recv_msg": lambda s: s.recv_msg(),
    "recv_msgs": lambda s: s.recv_msgs(),
}
STDLIB_RECEIVES = {"recv", "recv_into"}
FIRST = {"recv": FRAME, "recv_into": FRAME, "recv_exactly": FRAME, "recv_until": FRAME,
         "recv_msg": b"hello", "recv_msgs": [b"hello"]}
AT_EOF = {"recv": ("ok", b""), "recv_into": ("ok", b""),
          "recv_exactly": ("IncompleteReadError", b""),
          "recv_until": ("IncompleteReadError", b""),
          "recv_msg": ("IncompleteReadError", b""),
          "recv_msgs": ("IncompleteReadError", b"")}


def _recv_into(sock: Any) -> bytes:
    buffer = bytearray(100)
    n = sock.recv_into(buffer)
    return bytes(buffer[:n])


@pytest.mark.parametrize("ending", ["reset", "eof"])
@pytest.mark.parametrize("method", list(RECEIVES))
@pytest.mark.parametrize("api", APIS)
def test_message_then_the_end(api: str, method: str, ending: str) -> None:
    # a message, then the peer's RST (the next receive raises the reset,
    # never an end of stream) or its orderly close (the documented EOF)
    if api == "stdlib" and method not in STDLIB_RECEIVES:
        pytest.skip("not a stdlib method")
    with tcp_pair(api_module(api)) as (ours, peer):
        peer.sendall(FRAME)
        if ending == "reset":
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        peer.close()
        wait_for_error(ours)
        first = outcome(lambda: RECEIVES[method](ours))
        second = outcome(lambda: RECEIVES[method](ours))
    assert first == ("ok", FIRST[method])
    if ending == "reset":
        assert second == ("ConnectionResetError", errno.ECONNRESET)
    else:
        assert second == AT_EOF[method]


def test_reset_behind_buffered_messages(impl: ModuleType) -> None:
    # recv_msgs takes what else has arrived without waiting; the reset it
    # meets there is the next call's error, after every message
    with tcp_pair(impl) as (ours, peer):
        peer.sendall(FRAME * 3)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        peer.close()
        wait_for_error(ours)
        assert ours.recv_msgs(max_count=2) == [b"hello", b"hello"]
        assert ours.recv_msgs() == [b"hello"]
        with pytest.raises(ConnectionResetError):
            ours.recv_msg()
        assert ours.recv(10) == b""  # the kernel's end of stream after a reset


# -- a handler that raises while a send is blocked after a partial try --------------


class Interrupted(Exception):
    pass




SIGNAL_SENDS = ["send", "sendall", "send_msg", "sendall_buffers"]


def fill(sock: Any) -> None:
    """Send until the socket's buffer and the peer's are full."""
    sock.setblocking(False)
    chunk = b"f" * 65536
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.send(chunk)
    sock.setblocking(True)


@pytest.mark.parametrize("method", SIGNAL_SENDS)
@pytest.mark.parametrize("api", APIS)
def test_raising_handler_during_a_send_blocked_after_a_partial_try(
        api: str, method: str) -> None:
    if api == "stdlib" and method not in STDLIB_SENDS:
        pytest.skip("not a stdlib method")
    payload = b"p" * 60_000  # small enough for a try without blocking
    with tcp_pair(api_module(api)) as (ours, peer):
        # fixed buffers: the kernel's autotuning may grow the peer's window
        # when it reads, and then the whole payload would fit
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        fill(ours)
        time.sleep(0.05)  # on a busy machine the first fill can stop before both are full
        fill(ours)
        peer.settimeout(5)
        freed = 0
        while freed < 16384:  # room for part of the payload, not all of it
            freed += len(peer.recv(16384 - freed))
        time.sleep(0.05)
        # the peer reads no more: the send goes out in part, then blocks
        unstick = threading.Timer(10.0, lambda: peer.shutdown(socket.SHUT_RDWR))
        unstick.start()
        started = time.monotonic()
        try:
            with alarm_after(0.3, Interrupted), pytest.raises(Interrupted):
                SENDS[method](ours, payload)
        finally:
            unstick.cancel()
        assert time.monotonic() - started < 5.0, "the handler's exception came late"


RESET_SENDS: dict[str, Callable[[Any, bytes], Any]] = {
    "send": lambda s, data: s.send(data),
    "sendmsg": lambda s, data: s.sendmsg([data]),
}


@pytest.mark.parametrize("method", list(RESET_SENDS))
@pytest.mark.parametrize("api", APIS)
def test_reset_during_a_send_blocked_after_a_partial_try_leaves_received_bytes_first(
        api: str, method: str) -> None:
    # the send returns its count and the reset waits for the next call; a receive
    # gets what the peer sent before it first, as from the kernel, then the reset
    incoming = b"i" * 5000
    with tcp_pair(api_module(api)) as (ours, peer):
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        peer.sendall(incoming)
        fill(ours)
        time.sleep(0.05)
        fill(ours)
        # room for part of the payload in ours' buffer alone (the peer's window
        # stays shut): the compiled twin's try without blocking sends that part,
        # and the rest of the send blocks at once
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 24576)

        def reset(signum: int, frame: Any) -> None:
            # in a handler: the send blocked after its first part resumes on a
            # reset connection (on a loopback the RST has arrived when close returns)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            peer.close()

        previous = signal.signal(signal.SIGALRM, reset)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            sent = RESET_SENDS[method](ours, b"p" * 60_000)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert 0 < sent < 60_000
        ours.settimeout(5)
        received = b""
        while (result := outcome(lambda: ours.recv(65536)))[0] == "ok" and result[1]:
            received += result[1]
        after = outcome(lambda: ours.recv(65536))
    assert received == incoming
    assert result == ("ConnectionResetError", errno.ECONNRESET)
    assert after == ("ok", b"")


# -- a send that stops part-way says how much went out ------------------------------

PARTIAL_SENDS = ["sendall", "send_msg", "sendall_buffers"]


def _drain(peer: socket.socket) -> int:
    peer.settimeout(2.0)
    total = 0
    with contextlib.suppress(TimeoutError):
        while chunk := peer.recv(1 << 20):
            total += len(chunk)
    return total


@pytest.mark.parametrize("timeout", [0.0, 0.2], ids=["nonblocking", "timeout"])
@pytest.mark.parametrize("method", PARTIAL_SENDS)
def test_partial_send_reports_characters_written(
        impl: ModuleType, method: str, timeout: float) -> None:
    payload = b"q" * (16 << 20)  # more than any socket buffer holds
    with tcp_pair(impl) as (ours, peer):
        ours.settimeout(timeout)
        expected = BlockingIOError if timeout == 0.0 else TimeoutError
        with pytest.raises(expected) as caught:
            SENDS[method](ours, payload)
        written: int = getattr(caught.value, "characters_written")
        ours.close()
        received = _drain(peer)
    header = 4 if method == "send_msg" else 0
    assert 0 < written < len(payload) + header
    assert received == written


@pytest.mark.parametrize("method", ["sendall", "sendall_buffers"])
def test_empty_send_on_a_full_socket_with_a_timeout(impl: ModuleType, method: str) -> None:
    # nothing to send: the call returns, or (the pure twin waits for room first,
    # as the stdlib) times out saying that nothing went out
    with tcp_pair(impl) as (ours, peer):
        fill(ours)
        ours.settimeout(0.2)
        try:
            SENDS[method](ours, b"")
        except TimeoutError as exc:
            assert getattr(exc, "characters_written") == 0
