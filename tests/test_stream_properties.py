"""Property tests of the stream fast paths: whatever the messages and however
the sender splits the byte stream into writes (with pauses between some),
the receiver gets exactly what was sent, through every receive call and any
mix of them; and the two implementations answer the same sequence of calls
with the same results and the same exceptions."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import connected, implementation_module
from hypothesis import HealthCheck, given, settings, strategies as st

import fastsock

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TIMEOUT = 10.0
DELIMITER = b"\xff\xff"  # never inside a payload built by payload()
NO_FF = bytes.maketrans(b"\xff", b"\xfe")
MAX_WRITES = 200  # the sender merges splits beyond this many writes


def payload(index: int, size: int) -> bytes:
    """Deterministic bytes without 0xFF, different for each index."""
    block = bytes((i * 31 + index * 17) % 256 for i in range(256)).translate(NO_FF)
    return (block * (size // 256 + 1))[:size]


def framed(data: bytes, prefix_size: int = 4) -> bytes:
    return len(data).to_bytes(prefix_size, "big") + data


@st.composite
def message_sizes(draw: st.DrawFn) -> list[int]:
    """Mostly 0..5000 bytes, sometimes a few tiny ones, now and then a big one."""
    sizes = draw(st.lists(st.one_of(st.integers(0, 16), st.integers(0, 5000)),
                          min_size=1, max_size=25))
    for big in draw(st.lists(st.sampled_from([65535, 65536, 70000, 150000]), max_size=2)):
        sizes.insert(draw(st.integers(0, len(sizes))), big)
    return sizes


splits = st.lists(st.integers(1, 9000), min_size=1, max_size=12)
pauses = st.lists(st.booleans(), min_size=1, max_size=8)
transports = st.sampled_from(["unix", "tcp"])


# -- plumbing -----------------------------------------------------------------------


@contextlib.contextmanager
def timed_pair(impl: ModuleType, transport: str) -> Iterator[tuple[Any, Any]]:
    """A connected pair, both ends timing out after TIMEOUT."""
    with connected(impl, transport, TIMEOUT) as (a, b):
        a.settimeout(TIMEOUT)
        b.settimeout(TIMEOUT)
        yield a, b


def write_plan(total: int, split_sizes: list[int]) -> list[int]:
    """Write sizes covering ``total`` bytes, cycling through ``split_sizes``,
    at most about MAX_WRITES of them."""
    floor = total // MAX_WRITES + 1
    sizes = []
    done = 0
    turn = 0
    while done < total:
        size = min(max(split_sizes[turn % len(split_sizes)], floor), total - done)
        sizes.append(size)
        done += size
        turn += 1
    return sizes


class Sender(threading.Thread):
    def __init__(self, sock: Any, stream: bytes, split_sizes: list[int],
                 pause_flags: list[bool]) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.stream = stream
        self.sizes = write_plan(len(stream), split_sizes)
        self.pauses = pause_flags
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            pos = 0
            for turn, size in enumerate(self.sizes):
                self.sock.sendall(self.stream[pos:pos + size])
                pos += size
                if self.pauses[turn % len(self.pauses)]:
                    time.sleep(0.0005)
            self.sock.shutdown(socket.SHUT_WR)
        except BaseException as exc:
            self.error = exc


def exchange(impl: ModuleType, transport: str, stream: bytes, split_sizes: list[int],
             pause_flags: list[bool], receive: Callable[[Any], Any]) -> Any:
    """Send ``stream`` as planned while ``receive`` runs on the other end."""
    with timed_pair(impl, transport) as (a, b):
        sender = Sender(a, stream, split_sizes, pause_flags)
        sender.start()
        try:
            result = receive(b)
        except BaseException:
            b.shutdown(socket.SHUT_RDWR)  # the sender must not stay blocked
            raise
        finally:
            sender.join(TIMEOUT * 2)
        assert not sender.is_alive(), "the sender did not finish"
        if sender.error is not None:
            raise sender.error
        return result


def payloads_for(sizes: list[int], prefix_size: int = 4) -> list[bytes]:
    most = 256 ** prefix_size - 1
    return [payload(i, min(size, most)) for i, size in enumerate(sizes)]


# -- every receive call gets every message ---------------------------------------------


@SETTINGS
@given(sizes=message_sizes(), prefix_size=st.sampled_from([1, 2, 4, 8]),
       split_sizes=splits, pause_flags=pauses, transport=transports)
def test_recv_msg_gets_every_message(impl: ModuleType, sizes: list[int], prefix_size: int,
                                     split_sizes: list[int], pause_flags: list[bool],
                                     transport: str) -> None:
    messages = payloads_for(sizes, prefix_size)
    stream = b"".join(framed(m, prefix_size) for m in messages)

    def receive(sock: Any) -> list[bytes]:
        got = [sock.recv_msg(prefix_size=prefix_size) for _ in messages]
        with pytest.raises(impl.IncompleteReadError) as info:
            sock.recv_msg(prefix_size=prefix_size)
        assert (info.value.partial, info.value.expected) == (b"", prefix_size)
        return got

    assert exchange(impl, transport, stream, split_sizes, pause_flags, receive) == messages


@SETTINGS
@given(sizes=message_sizes(), prefix_size=st.sampled_from([1, 2, 4, 8]),
       max_count=st.integers(1, 40), split_sizes=splits, pause_flags=pauses,
       transport=transports, max_bytes=st.none() | st.integers(1, 5000))
def test_recv_msgs_gets_every_message(impl: ModuleType, sizes: list[int], prefix_size: int,
                                      max_count: int, split_sizes: list[int],
                                      pause_flags: list[bool], transport: str,
                                      max_bytes: Optional[int]) -> None:
    messages = payloads_for(sizes, prefix_size)
    stream = b"".join(framed(m, prefix_size) for m in messages)

    def receive(sock: Any) -> list[bytes]:
        got: list[bytes] = []
        for _ in range(len(messages)):
            if len(got) == len(messages):
                break
            batch = sock.recv_msgs(max_count, prefix_size=prefix_size, max_bytes=max_bytes)
            assert 1 <= len(batch) <= max_count
            if max_bytes is not None and len(batch) > 1:
                assert sum(map(len, batch)) <= max_bytes
            got += batch
        with pytest.raises(impl.IncompleteReadError):
            sock.recv_msgs(prefix_size=prefix_size)
        return got

    assert exchange(impl, transport, stream, split_sizes, pause_flags, receive) == messages


@SETTINGS
@given(sizes=message_sizes(), split_sizes=splits, pause_flags=pauses, transport=transports)
def test_recv_until_gets_every_record(impl: ModuleType, sizes: list[int],
                                      split_sizes: list[int], pause_flags: list[bool],
                                      transport: str) -> None:
    records = [data + DELIMITER for data in payloads_for(sizes)]
    limit = max(len(record) for record in records)

    def receive(sock: Any) -> list[bytes]:
        got = [sock.recv_until(DELIMITER, limit) for _ in records]
        with pytest.raises(impl.IncompleteReadError) as info:
            sock.recv_until(DELIMITER, limit)
        assert (info.value.partial, info.value.expected) == (b"", None)
        return got

    result = exchange(impl, transport, b"".join(records), split_sizes, pause_flags, receive)
    assert result == records


# self-overlapping delimiters ("aa", "abab", CRLFCRLF) are where a search that
# resumes after each read can miss a match cut in two by the read boundary
DELIMITERS = st.sampled_from([b"\n", b"\r\n", b"\r\n\r\n", b"aa", b"aaa", b"abab", b"\0\0\0\1"])


@SETTINGS
@given(delimiter=DELIMITERS,
       bodies=st.lists(st.lists(st.sampled_from(list(b"ab\r\n\0\1x")), max_size=300)
                       .map(bytes), min_size=1, max_size=15),
       slack=st.integers(-1, 3), split_sizes=st.lists(st.integers(1, 7), min_size=1,
                                                     max_size=12),
       pause_flags=pauses, transport=transports)
def test_recv_until_finds_every_delimiter_across_any_split(
        impl: ModuleType, delimiter: bytes, bodies: list[bytes], slack: int,
        split_sizes: list[int], pause_flags: list[bool], transport: str) -> None:
    """Records whose bodies are made of the delimiter's own bytes, cut into
    writes of a few bytes: every record comes back whole, and a limit one
    byte short of the longest record gives LimitOverrunError with nothing lost."""
    stream = b"".join(body + delimiter for body in bodies)
    records = []
    rest = stream
    while delimiter in rest:  # the records as a reader must find them: at each first match
        end = rest.find(delimiter) + len(delimiter)
        records.append(rest[:end])
        rest = rest[end:]
    # what is left when matches overlapped the last delimiter ("aaa" is "aa" + "a")
    tail = rest
    limit = max(1, max(len(record) for record in records) + slack, len(tail) + 1)

    def receive(sock: Any) -> list[Any]:
        got: list[Any] = []
        for record in records:
            if len(record) > limit:
                with pytest.raises(impl.LimitOverrunError):
                    sock.recv_until(delimiter, limit)
                got.append(sock.recv_exactly(len(record)))  # still all there
            else:
                got.append(sock.recv_until(delimiter, limit))
        with pytest.raises(impl.IncompleteReadError) as info:
            sock.recv_until(delimiter, limit)
        assert info.value.partial == tail
        return got

    assert exchange(impl, transport, stream, split_sizes, pause_flags, receive) == records


# -- any mix of calls reads the stream in order -----------------------------------------

OPS = ["msg", "exactly", "recv", "recv_into", "exactly_into", "until", "peek"]
ops = st.lists(st.tuples(st.sampled_from(OPS), st.integers(1, 20000)), min_size=1, max_size=40)


class StreamModel:
    """The framed byte stream and where the reader is in it."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.stream = b"".join(framed(m) for m in messages)
        self.starts: dict[int, int] = {}
        offset = 0
        for index, message in enumerate(messages):
            self.starts[offset] = index
            offset += 4 + len(message)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.stream) - self.pos

    def next_boundary(self) -> int:
        return min((start for start in self.starts if start > self.pos),
                   default=len(self.stream))

    def take(self, data: bytes) -> None:
        assert data == self.stream[self.pos:self.pos + len(data)], \
            f"wrong bytes at offset {self.pos}"
        self.pos += len(data)


def run_mix(impl: ModuleType, sock: Any, model: StreamModel,
            program: list[tuple[str, int]]) -> None:
    for kind, k in program:
        if model.remaining == 0:
            break
        if kind == "msg":
            if model.pos in model.starts:
                message = model.messages[model.starts[model.pos]]
                assert sock.recv_msg() == message
                model.take(framed(message))
                continue
            k = model.next_boundary() - model.pos
            kind = "exactly"
        size = min(k, model.remaining)
        if kind == "exactly":
            model.take(sock.recv_exactly(size))
        elif kind == "exactly_into":
            target = bytearray(size + 3)
            assert sock.recv_exactly_into(target, size) == size
            model.take(bytes(target[:size]))
        elif kind == "recv":
            data = sock.recv(k)
            assert 1 <= len(data) <= k
            model.take(data)
        elif kind == "recv_into":
            target = bytearray(k)
            count = sock.recv_into(target)
            assert 1 <= count <= k
            model.take(bytes(target[:count]))
        elif kind == "peek":
            data = sock.recv(k, socket.MSG_PEEK)
            assert 1 <= len(data) <= k
            assert data == model.stream[model.pos:model.pos + len(data)]
        else:
            delimiter = b"\x07"
            rest = model.stream[model.pos:]
            found = rest.find(delimiter, 0, k)
            if found >= 0:
                model.take(sock.recv_until(delimiter, k))
            elif len(rest) >= k:
                with pytest.raises(impl.LimitOverrunError):
                    sock.recv_until(delimiter, k)
            else:
                with pytest.raises(impl.IncompleteReadError) as info:
                    sock.recv_until(delimiter, k)
                assert info.value.expected is None
                model.take(info.value.partial)
        assert 0 <= sock.buffered <= model.remaining
    if model.remaining:
        model.take(sock.recv_exactly(model.remaining))
    assert sock.recv(1) == b""


@SETTINGS
@given(sizes=message_sizes(), program=ops, split_sizes=splits, pause_flags=pauses,
       transport=transports)
def test_any_mix_of_calls_reads_the_stream_in_order(
        impl: ModuleType, sizes: list[int], program: list[tuple[str, int]],
        split_sizes: list[int], pause_flags: list[bool], transport: str) -> None:
    model = StreamModel([payload(i, size) for i, size in enumerate(sizes)])
    exchange(impl, transport, model.stream, split_sizes, pause_flags,
             lambda sock: run_mix(impl, sock, model, program))
    assert model.remaining == 0


# -- both implementations agree --------------------------------------------------------

PREFIXES = st.sampled_from([1, 2, 4, 8, 0, 3])
MAX_SIZES = st.one_of(st.integers(-1, 70000), st.just(16 * 1024 * 1024))
calls = st.one_of(
    st.tuples(st.just("exactly"), st.integers(-1, 3000)),
    st.tuples(st.just("exactly_into"), st.integers(0, 3000), st.integers(-1, 3001)),
    st.tuples(st.just("until"), st.sampled_from([b"\x07", b"\x07\x08", b"", "text"]),
              st.integers(-1, 5000)),
    st.tuples(st.just("msg"), PREFIXES, MAX_SIZES),
    st.tuples(st.just("msgs"), st.integers(0, 5), PREFIXES, MAX_SIZES),
    st.tuples(st.just("bad"), st.sampled_from(["recv", "recv_into", "exactly_into",
                                               "iter", "send_msg"])),
)


def outcome(impl: ModuleType, sock: Any, call: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the call returned, or its exception's type and deterministic fields."""
    kind = call[0]
    try:
        if kind == "exactly":
            return ("ok", sock.recv_exactly(call[1]))
        if kind == "exactly_into":
            target = bytearray(call[1])
            count = sock.recv_exactly_into(target, call[2])
            return ("ok", count, bytes(target))
        if kind == "until":
            return ("ok", sock.recv_until(call[1], call[2]))
        if kind == "msg":
            return ("ok", sock.recv_msg(prefix_size=call[1], max_size=call[2]))
        if kind == "msgs":
            return ("ok", sock.recv_msgs(call[1], prefix_size=call[2], max_size=call[3]))
        bad: dict[str, Callable[[], Any]] = {
            "recv": lambda: sock.recv(-1),
            "recv_into": lambda: sock.recv_into(b"read-only"),
            "exactly_into": lambda: sock.recv_exactly_into(memoryview(b"read-only")),
            "iter": lambda: sock.recv_iter(b"read-only"),
            "send_msg": lambda: sock.send_msg(b"x" * 256, prefix_size=1),
        }
        return ("ok", bad[call[1]]())
    except impl.IncompleteReadError as exc:
        return ("IncompleteReadError", exc.partial, exc.expected)
    except impl.MessageTooLargeError as exc:
        return ("MessageTooLargeError", exc.size, exc.max_size)
    except (impl.LimitOverrunError, ValueError, TypeError, OverflowError) as exc:
        return (type(exc).__name__,)


def play(module: ModuleType, stream: bytes, program: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``program`` on a receiver whose peer has sent ``stream`` and closed:
    every byte is there and no call waits."""
    a, b = module.socketpair()
    with a, b:
        a.settimeout(TIMEOUT)
        b.settimeout(TIMEOUT)
        a.sendall(stream)
        a.shutdown(socket.SHUT_WR)
        return [outcome(module, b, call) for call in program]


pieces = st.lists(st.one_of(st.tuples(st.just("msg"), st.integers(0, 3000)),
                            st.tuples(st.just("raw"), st.binary(max_size=64))), max_size=12)


@st.composite
def stream_plans(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Framed messages (by size) and stray bytes; a big message or two now
    and then (at most about 180 kB: a Unix socket pair holds it unread)."""
    plan = draw(pieces)
    for size in draw(st.lists(st.sampled_from([30000, 70000]), max_size=2)):
        plan.insert(draw(st.integers(0, len(plan))), ("msg", size))
    return plan


def build(plan: list[tuple[str, Any]]) -> bytes:
    return b"".join(framed(payload(piece, piece)) if kind == "msg" else piece
                    for kind, piece in plan)


@SETTINGS
@given(plan=stream_plans(), program=st.lists(calls, min_size=1, max_size=25))
def test_implementations_agree(plan: list[tuple[str, Any]],
                               program: list[tuple[Any, ...]]) -> None:
    if fastsock.IMPLEMENTATION != "cython":
        pytest.skip("compiled extension not loaded")
    compiled = implementation_module("cython")
    pure = implementation_module("python")
    stream = build(plan)
    both = zip(play(compiled, stream, program), play(pure, stream, program))
    for index, (theirs, ours) in enumerate(both):
        assert theirs == ours, (f"call {index}, {program[index]!r}: compiled "
                                f"{brief(theirs)}, pure {brief(ours)}")


def brief(result: tuple[Any, ...]) -> str:
    """An outcome with its bytes shortened to their length and first bytes."""
    def short(value: Any) -> Any:
        if isinstance(value, bytes):
            return f"<{len(value)} bytes {value[:8]!r}...>" if len(value) > 8 else value
        if isinstance(value, list):
            return f"<{len(value)} messages of {[len(item) for item in value][:16]} bytes>"
        return value
    return repr(tuple(short(value) for value in result))
