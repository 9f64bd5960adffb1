"""StreamSocket.makefile() on both implementations, against the stdlib's
socket.makefile() where it has the behaviour: every mode, every read call on
the same byte stream, the socket's receive calls mixed with the file's in
any order without a byte lost or reordered, the close order (the socket
closes with its last file), timeouts, the end of the stream, a reset, a
signal handler's exception, and the stdlib modules that use socket files
(http.client, socketserver)."""

from __future__ import annotations

import contextlib
import errno
import gc
import http.client
import http.server
import io
import select
import signal
import socket
import socketserver
import struct
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import Worker, background, connected
from hypothesis import HealthCheck, given, settings, strategies as st

TRANSPORTS = ["unix", "tcp"]
TIMEOUT = 5.0
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LINGER_RESET = struct.pack("ii", 1, 0)


# -- plumbing -----------------------------------------------------------------------


@pytest.fixture(params=TRANSPORTS)
def pair(impl: ModuleType, request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(sender, receiver) of ``impl``; the receiver times out after TIMEOUT."""
    with connected(impl, request.param, TIMEOUT) as (a, b):
        b.settimeout(TIMEOUT)
        yield a, b


@contextlib.contextmanager
def fed(make_pair: Callable[[], tuple[Any, Any]], data: bytes,
        splits: Optional[list[int]] = None) -> Iterator[Any]:
    """A receiving socket whose peer sends ``data`` (in writes of ``splits``
    bytes, pausing now and then, when given) and then shuts down."""
    sender, receiver = make_pair()
    receiver.settimeout(TIMEOUT)

    def send() -> None:
        view = memoryview(data)
        sizes = iter(splits or [])
        count = 0
        while view:
            size = next(sizes, len(view))
            sender.sendall(view[:size])
            view = view[size:]
            count += 1
            if count % 3 == 0:
                time.sleep(0.001)
        sender.shutdown(socket.SHUT_WR)

    with sender, receiver, background(send, sender, receiver):
        yield receiver


def stdlib_pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair()


def impl_pair(impl: ModuleType) -> Callable[[], tuple[Any, Any]]:
    return lambda: impl.socketpair()


def outcome(call: Callable[[], Any]) -> Any:
    """The result of ``call``, or its exception's type and message."""
    try:
        return ("ok", call())
    except Exception as exc:  # the outcome compared between implementations
        return ("raised", type(exc), str(exc))


# -- modes, attributes and argument checks ---------------------------------------------

MODES = ["r", "w", "rw", "rb", "wb", "rwb", "b", "br", "wrb", "", "rr"]


@pytest.mark.parametrize("buffering", [None, -1, 1, 4096])
@pytest.mark.parametrize("mode", MODES)
def test_modes_like_the_stdlib(impl: ModuleType, mode: str, buffering: Optional[int]) -> None:
    ours_a, ours_b = impl.socketpair()
    theirs_a: Any
    theirs_a, theirs_b = socket.socketpair()
    ours: Any
    theirs: Any
    with ours_a, ours_b, theirs_a, theirs_b:
        with ours_a.makefile(mode, buffering, encoding="utf-8") as ours, \
                theirs_a.makefile(mode, buffering, encoding="utf-8") as theirs:
            binary = "b" in mode
            assert issubclass(type(ours), io.BufferedIOBase if binary else io.TextIOWrapper)
            assert ours.readable() == theirs.readable()
            assert ours.writable() == theirs.writable()
            assert ours.seekable() is theirs.seekable() is False
            assert ours.fileno() == ours_a.fileno()
            assert ours.closed is False
            assert ours.name == ours_a.fileno()
            raw_mode = ("r" if "r" in mode or "w" not in mode else "") + \
                ("w" if "w" in mode else "") + "b"
            assert ours.mode == (raw_mode if binary else mode)
            if hasattr(theirs, "name"):  # a BufferedRWPair has neither name nor mode
                assert theirs.name == theirs_a.fileno() and theirs.mode == ours.mode
            assert ours.isatty() is False
            if ours.readable():
                ours_b.sendall(b"line\n")
                assert ours.readline() in (b"line\n", "line\n")
            if ours.writable():
                ours.write(b"out\n" if binary else "out\n")
                ours.flush()
                assert ours_b.recv(10) == b"out\n"
        assert ours.closed and theirs.closed and ours.name == -1


@pytest.mark.parametrize("mode", ["rb", "wb", "rwb", "b"])
def test_unbuffered_binary_is_raw_like_the_stdlib(impl: ModuleType, mode: str) -> None:
    a, b = impl.socketpair()
    raw: Any
    with a, b, a.makefile(mode, 0) as raw:
        assert issubclass(type(raw), io.RawIOBase)
        assert raw.mode == ("rwb" if "w" in mode and "r" in mode else
                            "wb" if "w" in mode else "rb")
        if raw.writable():
            assert raw.write(b"abc") == 3
            assert b.recv(3) == b"abc"
        if raw.readable():
            b.sendall(b"hello\nthere")
            buf = bytearray(3)
            assert raw.readinto(buf) == 3 and buf == b"hel"
            assert a.recv_until(b"\n") == b"lo\n"  # one buffer: nothing skipped
            assert raw.read(100) == b"there"


@pytest.mark.parametrize("args", [
    ("x",), ("rbt",), ("rw+",), (3,), (b"rb",), ("r", 0), ("w", 0), ("rb", 1.5), ("rb", "x"),
    ("wb", 1.5),
])
def test_bad_arguments_like_the_stdlib(impl: ModuleType, args: tuple[Any, ...]) -> None:
    a, b = impl.socketpair()
    with b, socket.socket() as theirs:
        expected = outcome(lambda: theirs.makefile(*args))
        gc.collect()  # what the stdlib's makefile left behind
        assert expected[0] == "raised"
        assert outcome(lambda: a.makefile(*args)) == expected
        a.close()  # nothing holds the socket open
        assert a.fileno() == -1


def test_text_layer_errors_leave_nothing_open(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with b:
        with pytest.raises(LookupError):
            a.makefile("r", encoding="no-such-codec")
        with pytest.raises(ValueError, match="illegal newline"):
            a.makefile("rw", newline="x")
        a.close()
        assert a.fileno() == -1


def test_makefile_of_a_closed_socket(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    b.close()
    a.close()
    with pytest.raises(OSError) as info:
        a.makefile("rb")
    assert info.value.errno == errno.EBADF


def test_closed_file_refuses_like_the_stdlib(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    theirs_a, theirs_b = socket.socketpair()
    with a, b, theirs_a, theirs_b:
        ours, theirs = a.makefile("rb"), theirs_a.makefile("rb")
        ours.close()
        theirs.close()
        ours.close()  # twice is harmless
        for name, args in [("read", ()), ("read", (3,)), ("read1", ()), ("readline", ()),
                           ("peek", ()), ("readinto", (bytearray(2),)), ("fileno", ()),
                           ("flush", ()), ("isatty", ()), ("readlines", ()),
                           ("__iter__", ()), ("__enter__", ())]:
            got = outcome(lambda: getattr(ours, name)(*args))
            want = outcome(lambda: getattr(theirs, name)(*args))
            assert got == want, name
        assert ours.closed and ours.name == -1
        with pytest.raises(ValueError):
            ours.readable()


def test_reading_file_refuses_writes_and_seeks(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    theirs_a, theirs_b = socket.socketpair()
    with a, b, theirs_a, theirs_b, a.makefile("rb") as f:
        with theirs_a.makefile("rb") as theirs:
            for name, args in [("write", (b"x",)), ("seek", (0,)), ("tell", ()),
                               ("truncate", ()), ("readline", ("x",)), ("read", ("x",)),
                               ("read", (1.5,)), ("readinto", (b"xx",)), ("readinto", (3,)),
                               ("read1", ("x",)), ("peek", ("x",)), ("readlines", ("x",))]:
                got = outcome(lambda: getattr(f, name)(*args))
                want = outcome(lambda: getattr(theirs, name)(*args))
                assert got == want, name
        with pytest.raises(io.UnsupportedOperation):
            f.detach()


def test_binary_file_is_a_buffered_io_base(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b, a.makefile("rb") as f, a.makefile("rwb") as rw:
        assert isinstance(f, io.BufferedIOBase) and isinstance(f, io.IOBase)
        assert isinstance(rw, io.BufferedIOBase)
        assert f.readable() and not f.writable()
        assert rw.readable() and rw.writable()
        assert repr(f).endswith(f"name={a.fileno()}>")


# -- reads against the stdlib's file on the same stream ---------------------------------

LINES = b"first\nsecond line\n\n\nno newline at the end"


def read_ops() -> st.SearchStrategy[list[tuple[str, Any]]]:
    size = st.one_of(st.none(), st.integers(-2, 40))
    return st.lists(st.one_of(
        st.tuples(st.just("read"), size),
        st.tuples(st.just("readline"), size),
        st.tuples(st.just("readinto"), st.integers(0, 40)),
        st.tuples(st.just("readlines"), st.one_of(st.none(), st.integers(-1, 60))),
        st.tuples(st.just("next"), st.none()),
    ), min_size=1, max_size=12)


def apply_read(f: Any, op: str, arg: Any) -> Any:
    if op == "readinto":
        buf = bytearray(arg)
        n = f.readinto(buf)
        return n, bytes(buf[:n])
    if op == "next":
        return next(f, None)
    return getattr(f, op)(arg)


@SETTINGS
@given(data=st.binary(max_size=300).map(lambda raw: raw.replace(b"\x01", b"\n")),
       ops=read_ops())
def test_reads_match_the_stdlib_file(impl: ModuleType, data: bytes,
                                     ops: list[tuple[str, Any]]) -> None:
    with fed(stdlib_pair, data) as theirs_sock, fed(impl_pair(impl), data) as ours_sock:
        with theirs_sock.makefile("rb") as theirs, ours_sock.makefile("rb") as ours:
            for op, arg in ops:
                assert outcome(lambda: apply_read(ours, op, arg)) == \
                    outcome(lambda: apply_read(theirs, op, arg)), (op, arg)
            assert ours.read() == theirs.read()


@pytest.mark.parametrize("hint", [1, 2, 3, 4, 6, 7, 0, -1])
def test_readlines_hint_stops_as_the_stdlib_file(impl: ModuleType, hint: int) -> None:
    # the stdlib stops once the lines hold more than hint bytes: a hint equal
    # to a line boundary takes the next line too
    data = b"ab\ncd\nef"
    with fed(stdlib_pair, data) as theirs_sock, fed(impl_pair(impl), data) as ours_sock:
        with theirs_sock.makefile("rb") as theirs, ours_sock.makefile("rb") as ours:
            expected = theirs.readlines(hint)
            assert ours.readlines(hint) == expected
            assert ours.read() == theirs.read()
    assert expected == ([b"ab\n", b"cd\n"] if hint == 3 else expected)


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
def test_text_lines_match_the_stdlib_file(impl: ModuleType, newline: Optional[str]) -> None:
    data = "a\r\nb\rc\nd\r\r\ne \u00e9\u20ac\U0001f600\nlast".encode()
    with fed(stdlib_pair, data) as theirs_sock, fed(impl_pair(impl), data) as ours_sock:
        with theirs_sock.makefile("r", encoding="utf-8", newline=newline) as theirs, \
                ours_sock.makefile("r", encoding="utf-8", newline=newline) as ours:
            assert ours.readline() == theirs.readline()
            assert list(ours) == list(theirs)


def test_text_read_all_matches_the_stdlib(impl: ModuleType) -> None:
    data = "x\u00e9\n".encode() * 5000
    with fed(stdlib_pair, data, [7, 1, 3000]) as theirs_sock, \
            fed(impl_pair(impl), data, [7, 1, 3000]) as ours_sock:
        with theirs_sock.makefile("r", encoding="utf-8") as theirs, \
                ours_sock.makefile("r", encoding="utf-8") as ours:
            assert ours.read(5) == theirs.read(5)
            assert ours.read() == theirs.read()


def test_read1_peek_readinto1(pair: tuple[Any, Any]) -> None:
    a, b = pair
    with b.makefile("rb") as f:
        a.sendall(b"abcdef")
        first = f.peek()
        assert first and b"abcdef".startswith(first)
        assert f.peek(1) == first  # peeking consumes nothing
        got = f.read1(2)
        assert got == b"ab"
        buf = bytearray(10)
        n = f.readinto1(buf)
        assert bytes(buf[:n]) == b"cdef"[:n] and n > 0
        rest = b"cdef"[n:]
        assert f.read(len(rest)) == rest
        assert f.read1(0) == b"" and f.readinto1(bytearray()) == 0
        a.sendall(b"xyz")
        assert f.read1() == b"xyz"
        a.shutdown(socket.SHUT_WR)
        assert f.peek() == b"" and f.read1() == b"" and f.readinto1(buf) == 0


def test_end_of_stream(pair: tuple[Any, Any]) -> None:
    a, b = pair
    with b.makefile("rb") as f:
        a.sendall(b"one\ntwo")
        a.shutdown(socket.SHUT_WR)
        assert f.readline() == b"one\n"
        assert f.readline() == b"two"  # what is left
        assert f.readline() == b"" and f.read() == b"" and f.read(5) == b""
        assert f.readinto(bytearray(4)) == 0 and list(f) == []


def test_read_n_waits_for_all_and_returns_short_at_the_end(pair: tuple[Any, Any]) -> None:
    a, b = pair
    with b.makefile("rb") as f:
        def trickle() -> None:
            for piece in (b"ab", b"cd", b"ef"):
                time.sleep(0.02)
                a.sendall(piece)
            a.shutdown(socket.SHUT_WR)

        with background(trickle, a, b):
            assert f.read(5) == b"abcde"
            assert f.read(5) == b"f"


def test_large_reads(pair: tuple[Any, Any]) -> None:
    a, b = pair
    data = bytes(range(256)) * 4096  # 1 MiB
    with b.makefile("rb") as f:
        def send() -> None:
            a.sendall(b"head\n" + data)
            a.shutdown(socket.SHUT_WR)

        with background(send, a, b):
            assert f.readline() == b"head\n"
            assert f.read(100_000) == data[:100_000]
            buf = bytearray(200_000)
            assert f.readinto(buf) == len(buf) and buf == data[100_000:300_000]
            assert b.recv_exactly(70_000) == data[300_000:370_000]
            assert f.read() == data[370_000:]


def test_long_line_and_size_limits(pair: tuple[Any, Any]) -> None:
    a, b = pair
    line = b"x" * 300_000 + b"\n"
    with b.makefile("rb") as f:
        def send() -> None:
            a.sendall(line + b"abc\n")
            a.shutdown(socket.SHUT_WR)

        with background(send, a, b):
            assert f.readline() == line
            assert f.readline(2) == b"ab" and f.readline(0) == b"" and f.readline(5) == b"c\n"


# -- one receive buffer: the file's reads and the socket's, mixed ------------------------

SOCKET_OPS = ["recv_until", "recv_exactly", "recv", "recv_msg", "take_buffered"]
FILE_OPS = ["readline", "read", "read1", "peek", "readinto", "readline_limit"]


class Model:
    """What each call must return, from the bytes sent and how far they were read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def rest(self) -> bytes:
        return self.data[self.pos:]

    def line(self, limit: int = -1) -> bytes:
        end = self.rest.find(b"\n")
        size = len(self.rest) if end < 0 else end + 1
        return self.rest[:size if limit < 0 else min(size, limit)]

    def took(self, data: bytes) -> None:
        assert self.rest.startswith(data), (data, self.rest[:len(data) + 8])
        self.pos += len(data)


def run_op(model: Model, sock: Any, f: Any, op: str, arg: int, fastsock: Any) -> None:
    if op == "readline":
        model.took(f.readline())
    elif op == "readline_limit":
        expected = model.line(arg)
        assert f.readline(arg) == expected
        model.took(expected)
    elif op == "read":
        expected = model.rest[:arg]
        assert f.read(arg) == expected
        model.took(expected)
    elif op == "read1":
        got = f.read1(arg or 1)
        assert got or not model.rest
        model.took(got)
    elif op == "peek":
        got = f.peek(arg)
        assert got or not model.rest
        assert model.rest.startswith(got)
    elif op == "readinto":
        buf = bytearray(arg)
        n = f.readinto(buf)
        model.took(bytes(buf[:n]))
        assert n == min(arg, len(model.rest) + n)
    elif op == "recv":
        got = sock.recv(arg or 1)
        assert got or not model.rest
        model.took(got)
    elif op == "take_buffered":
        model.took(sock.take_buffered())
    elif op == "recv_until":
        expected = model.line()
        if expected.endswith(b"\n"):
            assert sock.recv_until(b"\n") == expected
            model.took(expected)
        else:
            with pytest.raises(fastsock.IncompleteReadError) as info:
                sock.recv_until(b"\n")
            model.took(info.value.partial)
            assert not model.rest
    elif op == "recv_exactly":
        if len(model.rest) >= arg:
            got = sock.recv_exactly(arg)
            assert got == model.rest[:arg]
            model.took(got)
        else:
            with pytest.raises(fastsock.IncompleteReadError) as info:
                sock.recv_exactly(arg)
            model.took(info.value.partial)
            assert not model.rest
    elif op == "recv_msg":
        rest = model.rest
        if rest and len(rest) > rest[0]:
            assert sock.recv_msg(prefix_size=1) == rest[1:1 + rest[0]]
            model.took(rest[:1 + rest[0]])
        else:
            with pytest.raises(fastsock.IncompleteReadError):
                sock.recv_msg(prefix_size=1)
            model.pos = len(model.data)  # EOF mid-message: all of it consumed


@SETTINGS
@given(data=st.binary(min_size=0, max_size=3000).map(lambda raw: raw.replace(b"\x01", b"\n")),
       splits=st.lists(st.integers(1, 700), max_size=10),
       program=st.lists(st.tuples(st.sampled_from(SOCKET_OPS + FILE_OPS),
                                  st.integers(0, 300)), min_size=1, max_size=30),
       transport=st.sampled_from(TRANSPORTS))
def test_mixed_reads_lose_and_reorder_nothing(impl: ModuleType, data: bytes,
                                              splits: list[int],
                                              program: list[tuple[str, int]],
                                              transport: str) -> None:
    def make_pair() -> tuple[Any, Any]:
        if transport == "unix":
            return impl.socketpair()  # type: ignore[no-any-return]
        with impl.create_server(("127.0.0.1", 0)) as server:
            a = impl.create_connection(server.getsockname(), timeout=TIMEOUT)
            try:
                b, _ = server.accept()
            except BaseException:
                a.close()
                raise
            return a, b

    model = Model(data)
    with fed(make_pair, data, splits) as sock, sock.makefile("rb") as f:
        for op, arg in program:
            run_op(model, sock, f, op, arg, impl)
        model.took(f.read())
        assert model.pos == len(data)


def test_take_buffered_after_readline_tells_everything(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b, b.makefile("rb") as f:
        a.sendall(b"HELLO\r\nearly bytes")  # one write: one read takes it all
        assert f.readline() == b"HELLO\r\n"
        assert b.buffered == len(b"early bytes")
        with pytest.raises(RuntimeError):
            b.detach()  # refused: what the file read past its line is the socket's
        assert b.take_buffered() == b"early bytes"
        assert b.buffered == 0
        raw = b.to_socket()  # nothing held: the hand-over goes through
        raw.close()


def test_text_readline_takes_no_byte_past_the_line(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b, b.makefile("r", encoding="utf-8") as text:
        a.sendall("h\u00e9llo\nworld\n".encode() + struct.pack(">I", 3) + b"abc" + b"tail")
        a.shutdown(socket.SHUT_WR)
        assert text.readline() == "h\u00e9llo\n"
        assert b.recv_until(b"\n") == b"world\n"
        assert b.recv_msg() == b"abc"
        assert b.take_buffered() + b.recv(100) == b"tail"


def test_text_iteration_mixed_with_socket_reads(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b, b.makefile("rw", encoding="ascii", newline="\r\n") as text:
        a.sendall(b"CMD one\r\nCMD two\r\n" + b"\x00" * 5 + b"CMD three\r\n")
        a.shutdown(socket.SHUT_WR)
        lines = []
        for line in text:
            lines.append(line)
            if line == "CMD two\r\n":
                assert b.recv_exactly(5) == b"\x00" * 5
        assert lines == ["CMD one\r\n", "CMD two\r\n", "CMD three\r\n"]
        text.write("OK\n")  # written as OK\r\n
        text.flush()
        assert a.recv(10) == b"OK\r\n"


# -- close order ----------------------------------------------------------------------


def test_socket_close_waits_for_the_last_file_like_the_stdlib(impl: ModuleType) -> None:
    for make in (socket.socketpair, impl.socketpair):
        a, b = make()
        with b:
            f = a.makefile("rb")
            w = a.makefile("w", encoding="utf-8")
            fd = a.fileno()
            a.close()
            assert a.fileno() == fd  # still open: the files use it
            b.sendall(b"still here\n")
            assert f.readline() == b"still here\n"
            w.write("reply\n")
            w.flush()
            assert b.recv(10) == b"reply\n"
            f.close()
            assert a.fileno() == fd
            w.close()
            assert a.fileno() == -1  # the last file closed the socket
            assert b.recv(10) == b""  # and the peer sees the end


def test_file_closed_first_then_socket(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with b:
        with a.makefile("rb") as f, a.makefile("rwb", 0) as raw:
            assert not f.closed and not raw.closed
        assert a.fileno() != -1
        a.close()
        assert a.fileno() == -1 and a.closed


def test_socket_context_manager_with_file_open(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with b:
        with a:
            f = a.makefile("rb")
        assert not a.closed
        f.close()
        assert a.closed


def test_collected_file_lets_the_socket_go(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with b:
        f = a.makefile("rb")
        t = a.makefile("rw", encoding="utf-8")
        a.close()
        del f, t
        gc.collect()
        assert a.closed


def test_collected_file_flushes(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        w = a.makefile("wb")
        w.write(b"buffered")
        del w
        gc.collect()
        assert b.recv(100) == b"buffered"


def test_detach_with_a_file_open(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with b:
        f = a.makefile("rb")
        fd = a.detach()
        try:
            with pytest.raises(OSError) as info:
                f.read(1)
            assert info.value.errno == errno.EBADF
            f.close()
        finally:
            socket.socket(fileno=fd).close()


# -- timeouts, non-blocking sockets, resets, signals -------------------------------------


def test_timeout_loses_nothing_and_reading_goes_on(pair: tuple[Any, Any]) -> None:
    a, b = pair
    b.settimeout(0.1)
    with b.makefile("rb") as f:
        a.sendall(b"part")
        with pytest.raises(TimeoutError):
            f.readline()
        assert b.buffered == 4
        with pytest.raises(TimeoutError):
            f.read(10)
        a.sendall(b"ial\nmore")
        assert f.readline() == b"partial\n"  # the stdlib's file refuses to read again
        with pytest.raises(TimeoutError):
            f.read(10)
        buf = bytearray(10)
        with pytest.raises(TimeoutError):
            f.readinto(buf)
        assert b.recv(10) == b"more"


def test_timeout_bounds_each_wait(pair: tuple[Any, Any]) -> None:
    a, b = pair
    b.settimeout(0.3)
    with b.makefile("rb") as f:
        def trickle() -> None:
            for _ in range(6):
                time.sleep(0.1)
                a.sendall(b"x")
            a.sendall(b"\n")

        with background(trickle, a, b):
            assert f.readline() == b"xxxxxx\n"  # 0.6 s in all, never 0.3 s without data


def test_text_file_reads_again_after_a_timeout(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b, b.makefile("r", encoding="utf-8") as text:
        b.settimeout(0.1)
        with pytest.raises(TimeoutError):
            text.readline()  # nothing of the line had come
        a.sendall(b"abc\ndef\n")
        assert text.readline() == "abc\n"  # the stdlib's file refuses to read again
        assert b.recv_until(b"\n") == b"def\n"


def test_non_blocking_socket(pair: tuple[Any, Any]) -> None:
    a, b = pair
    b.setblocking(False)
    with b.makefile("rb") as f:
        with pytest.raises(BlockingIOError):
            f.readline()
        a.sendall(b"abc")
        assert select.select([b], [], [], TIMEOUT)[0]
        with pytest.raises(BlockingIOError):
            f.readline()  # a partial line: kept, not returned
        assert b.buffered == 3
        with pytest.raises(BlockingIOError):
            f.read(4)
        assert b.buffered == 3  # kept for the next call
        a.sendall(b"\n")
        b.settimeout(TIMEOUT)
        assert f.readline() == b"abc\n"


def test_peer_reset_like_the_stdlib(impl: ModuleType) -> None:
    for module in (socket, impl):
        with module.create_server(("127.0.0.1", 0)) as server:
            client = module.create_connection(server.getsockname(), timeout=TIMEOUT)
            conn, _ = server.accept()
            with client, conn, client.makefile("rb") as f:
                conn.sendall(b"line\npartial")
                assert f.readline() == b"line\n"
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                conn.close()
                time.sleep(0.05)
                with pytest.raises(ConnectionResetError):
                    while f.readline():
                        pass


class Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted


@pytest.mark.parametrize("method", ["readline", "read"])
def test_signal_handler_exception_propagates_and_loses_nothing(impl: ModuleType,
                                                               method: str) -> None:
    a, b = impl.socketpair()
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        with a, b, b.makefile("rb") as f:
            a.sendall(b"half ")
            call: Callable[[], bytes] = ((lambda: f.readline()) if method == "readline"
                                         else (lambda: f.read(20)))
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            started = time.monotonic()
            with pytest.raises(Interrupted):
                call()
            assert time.monotonic() - started < TIMEOUT
            a.sendall(b"a line\n" + b"x" * 8)
            assert call() == (b"half a line\n" if method == "readline"
                              else b"half a line\n" + b"x" * 8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_another_receive_in_progress(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b, b.makefile("rb") as f:
        b.settimeout(TIMEOUT)
        worker = Worker(lambda: b.recv_exactly(4))
        worker.start()
        worker.entered.wait(TIMEOUT)
        time.sleep(0.2)  # it waits in the kernel, holding the buffer
        with pytest.raises(RuntimeError):
            f.readline()
        a.sendall(b"abcd")
        assert worker.finish() == b"abcd"


# -- writing ----------------------------------------------------------------------------


def test_buffered_writes_wait_for_flush(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b:
        b.setblocking(False)
        with a.makefile("wb") as w:
            w.write(b"abc")
            with pytest.raises(BlockingIOError):
                b.recv(10)
            w.flush()
            b.settimeout(TIMEOUT)
            assert b.recv(10) == b"abc"
            w.write(b"at close")
        assert b.recv(10) == b"at close"


def test_rwb_file(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    with a, b, a.makefile("rwb") as f:
        f.writelines([b"one ", b"two\n"])
        f.flush()
        assert b.recv_until(b"\n") == b"one two\n"
        b.sendall(b"answer\n")
        assert f.readline() == b"answer\n"


# -- the stdlib modules that use socket files ----------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        body = (self.path.encode() + b"\n") * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[tuple[str, int]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def test_http_client_over_a_fastsock_socket(impl: ModuleType) -> None:
    with http_server() as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        conn.sock = impl.create_connection((host, port), timeout=TIMEOUT)
        try:
            conn.request("GET", "/first")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("Content-Length") == "7000"
            assert resp.read() == b"/first\n" * 1000
            conn.request("GET", "/chunked")  # the same connection (keep-alive)
            resp = conn.getresponse()
            assert resp.chunked and resp.read() == b"hello chunked world"
            conn.request("GET", "/third")
            resp = conn.getresponse()
            assert resp.readline() == b"/third\n"
            assert resp.read(7) == b"/third\n"
            assert resp.read() == b"/third\n" * 998
        finally:
            conn.close()
        assert conn.sock is None


class LineHandler(socketserver.StreamRequestHandler):
    """A line protocol: "ECHO text", "BYTES n" then n raw bytes, "QUIT"."""

    def handle(self) -> None:
        for line in self.rfile:
            command, _, rest = line.rstrip(b"\r\n").partition(b" ")
            if command == b"ECHO":
                self.wfile.write(rest.upper() + b"\r\n")
            elif command == b"BYTES":
                # the socket's own call, on the same buffer as the file
                payload = self.connection.recv_exactly(int(rest))
                self.wfile.write(b"GOT %d %s\r\n" % (len(payload), payload[-3:]))
            elif command == b"QUIT":
                self.wfile.write(b"BYE\r\n")
                return


class FastsockTCPServer(socketserver.TCPServer):
    """A TCPServer listening on (and so accepting) fastsock StreamSockets: its
    own socket taken over before it is bound (as in docs/porting.md)."""

    def __init__(self, impl: ModuleType, address: tuple[str, int],
                 handler: type[socketserver.BaseRequestHandler]) -> None:
        super().__init__(address, handler, bind_and_activate=False)
        self.socket = impl.StreamSocket.from_socket(self.socket)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise


def test_socketserver_stream_request_handler(impl: ModuleType) -> None:
    server = FastsockTCPServer(impl, ("127.0.0.1", 0), LineHandler)
    accepted: list[Any] = []
    original = server.get_request

    def get_request() -> Any:
        request = original()
        accepted.append(type(request[0]))
        return request

    server.get_request = get_request  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        with socket.create_connection((str(host), port), timeout=TIMEOUT) as client, \
                client.makefile("rwb") as f:
            f.write(b"ECHO hello\r\nBYTES 10\r\n0123456789ECHO after\r\nQUIT\r\n")
            f.flush()
            assert f.readline() == b"HELLO\r\n"
            assert f.readline() == b"GOT 10 789\r\n"
            assert f.readline() == b"AFTER\r\n"
            assert f.readline() == b"BYE\r\n"
            assert f.readline() == b""
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
    assert accepted == [impl.StreamSocket]


def test_line_protocol_client_and_server(impl: ModuleType) -> None:
    client, server = impl.socketpair()

    def serve() -> None:
        with server, server.makefile("rw", encoding="utf-8", newline="") as f:
            for line in f:
                if line == "end\n":
                    break
                f.write(line[::-1].strip() + "\n")
                f.flush()

    with client, background(serve, client, server):
        with client.makefile("rw", encoding="utf-8", newline="") as f:
            for word in ("abc", "h\u00e9llo", "x" * 10_000):
                f.write(word + "\n")
                f.flush()
                assert f.readline() == word[::-1] + "\n"
            f.write("end\n")
            f.flush()
            assert f.readline() == ""


def test_makefile_of_a_closed_socket_leaves_no_half_file(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    b.close()
    a.close()
    for args in [("rb",), ("rb", 0), ("wb",), ("rwb",), ("r",)]:
        with pytest.raises(OSError):
            a.makefile(*args)
        gc.collect()  # a finalizer of a half-made file would fail here (warnings are errors)
