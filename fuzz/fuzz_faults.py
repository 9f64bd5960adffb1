"""Fuzz target: resets, orderly closes and partial sends on a TCP connection.

Each input is a script of steps, run the same way on a connected TCP pair on
127.0.0.1 per implementation: ours is a fastsock StreamSocket, the peer a
stdlib socket.

- the peer sends bytes or length-prefixed frames, reads some or all of what
  ours sent, resets (SO_LINGER 0 + close), closes cleanly (after reading
  what ours sent, so the kernel sends a FIN and not a reset) or shuts down
  its sending side;
- ours sends (send, sendall, send_msg, sendall_buffers, send_buffers) on a
  blocking, non-blocking or small-timeout socket, with the peer reading
  meanwhile in a thread or not reading, and sometimes resetting in that
  thread after a fuzzed number of bytes;
- ours receives (recv, recv_into, recv_exactly, recv_until, recv_msg,
  recv_msgs with a fuzzed max_count and max_bytes, take_buffered), moves the
  kernel's bytes into its buffer (recv_ahead, as an event loop's readiness
  callback does), gives back some of the bytes it received (unrecv, as a
  reader that read ahead does) and checks that detach()/to_socket() refuse
  while bytes are buffered.

A model of each direction of the stream checks every result:

- the bytes our calls return are the next bytes the peer sent: nothing lost,
  duplicated or reordered, take_buffered() included; at the end ours drains
  the connection and must have received everything the peer sent (all of it
  after an orderly close; at least what had reached our kernel before a
  reset);
- a send that stops part-way (BlockingIOError, TimeoutError) carries
  ``characters_written``, exactly the number of bytes the peer can then read
  from that call: at the end ours shuts down its sending side and the peer
  must read exactly the model's stream, then EOF;
- before the peer's reset was reported, no receive reports an end of stream
  (b"", IncompleteReadError); the reset is reported as ConnectionResetError
  once (by a receive that reached the kernel with nothing left, or by a
  send), and an end of stream follows; after an orderly close, the
  receives return the rest of the stream and then report the end of it, as
  documented, and never time out.

The implementations are compared step by step while they are in the same
state (the same position in both streams, the same fault reported): the same
results and exception types.  Not compared: how much a plain recv() or
take_buffered() returns (it depends on how much a call read ahead), how many
bytes a partial send got out, and a send on a socket with a timeout that
went out on the compiled twin's first try while the pure twin's readiness
poll timed out (the documented difference between calling first and polling
first); the model checks each implementation on its own instead.

Fixed regression inputs are in fuzz/seeds/faults/: those written from the
readable scripts in ``SEEDS`` by ``python fuzz/fuzz_faults.py --write-seeds``,
and the inputs that found the differences skipped below, named after them
(``FUZZ_TRACE=1`` shows their steps).  fuzz/run.sh gives them to libFuzzer
with the corpus, so every run starts from them.
"""

from __future__ import annotations

import fcntl
import os
import random
import select
import socket
import struct
import sys
import termios
import threading
import time
from typing import Any, Optional

import harness

LINGER_RESET = struct.pack("ii", 1, 0)
FIONREAD = termios.FIONREAD
SIOCOUTQNSD = 0x894B  # bytes in the send queue not yet sent
TIMEOUT = 0.002  # the small-timeout mode
SETTLE = 1.0  # the most any wait the model expects to end may take
OURS_SNDBUF = 4096  # small buffers: sends of a few tens of KiB stop part-way
PEER_RCVBUF = 4096
OURS_RCVBUF = 1 << 20  # big: what the peer sends always reaches our kernel at once
PREFIXES = (1, 2, 4, 8)
MODES = ("blocking", "nonblocking", "timeout")
SENDS = ("send", "sendall", "send_msg", "sendall_buffers", "send_buffers")
RECEIVES = ("recv", "recv_into", "recv_exactly", "recv_until", "recv_msg", "recv_msgs")
PARTIAL_NOTED = ("sendall", "send_msg", "sendall_buffers")
POOL = random.Random(1).randbytes(1 << 18)  # what ours sends
PEER_POOL = random.Random(2).randbytes(1 << 16)  # what the peer sends
MAX_STEPS = 14
TRACE = bool(os.environ.get("FUZZ_TRACE"))  # print every step (to read a finding)

# -- the script: a small byte code, so that regression inputs can be written -------


class Source:
    """Reads the script's numbers from the input, one or two bytes each (0 past the end)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def below(self, n: int) -> int:
        return self.byte() % n

    def size(self, most: int) -> int:
        return (self.byte() | self.byte() << 8) % (most + 1)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def done(self) -> bool:
        return self.pos >= len(self.data)


# step kinds by the first byte of a step (weights: receives and sends most often)
KINDS = ("peer_send", "peer_frames", "peer_read", "send", "send", "send",
         "recv", "recv", "recv", "recv", "take_buffered", "handoff",
         "peer_reset", "peer_close", "peer_shutdown", "recv_ahead", "unrecv")


def peer_bytes(src: Source, index: int) -> bytes:
    raw = src.take(src.below(32))
    size = src.size(4096)
    filler = PEER_POOL[(index * 977) % 32768:][:size]
    return raw + filler[len(raw):]


def choose(src: Source, fixed: tuple[Any, ...], other: Any) -> Any:
    """One of ``fixed``, or (the last choice) what ``other()`` reads from the input."""
    choice = src.below(len(fixed) + 1)
    return fixed[choice] if choice < len(fixed) else other()


def decode(data: bytes) -> tuple[int, list[tuple[Any, ...]]]:
    src = Source(data)
    prefix = PREFIXES[src.below(4)]
    steps: list[tuple[Any, ...]] = []
    total_peer = 0
    for index in range(MAX_STEPS):
        if src.done():
            break
        kind = KINDS[src.below(len(KINDS))]
        if kind == "peer_send":
            chunk = peer_bytes(src, index)
            steps.append(("peer_send", chunk))
            total_peer += len(chunk)
        elif kind == "peer_frames":
            out = bytearray()
            for number in range(1 + src.below(5)):
                choice = src.below(8)
                if choice == 7:  # a hostile length
                    out += src.take(prefix)
                    continue
                size = (0, 1, 5, 100, 3000)[choice] if choice < 5 else src.size(2000)
                payload = PEER_POOL[(index * 131 + number * 17) % 32768:][:size]
                out += size.to_bytes(8, "big")[-prefix:] + payload
            steps.append(("peer_send", bytes(out)))
            total_peer += len(out)
        elif kind == "peer_read":
            steps.append(("peer_read", None if src.below(2) else 1 + src.size(40000)))
        elif kind == "recv_ahead":
            mode = MODES[src.below(3)]
            steps.append(("recv_ahead", mode, choose(src, (1, 100, 65536),
                                                     lambda: 1 + src.size(70000))))
        elif kind == "unrecv":
            # how many of the bytes last returned go back (at most all returned)
            steps.append(("unrecv", choose(src, (1, 4, 100), lambda: src.size(70000))))
        elif kind == "send":
            method = SENDS[src.below(len(SENDS))]
            mode = MODES[src.below(3)]
            size = choose(src, (0, 1, 100, 5000, 30000, 65536), lambda: src.size(65535))
            pieces = src.below(4)
            reader = src.below(3)  # 0: the peer does not read, 1: it reads, 2: then resets
            reset_after = src.size(60000)
            if mode == "blocking" and reader == 0:
                reader = 1  # a blocking send with nobody reading would wait forever
            steps.append(("send", method, mode, size, pieces, reader, reset_after))
        elif kind == "recv":
            method = RECEIVES[src.below(len(RECEIVES))]
            mode = MODES[src.below(3)]
            if method in ("recv", "recv_into"):
                args: tuple[Any, ...] = (choose(src, (0, 1, 7, 100, 65536),
                                                lambda: src.size(70000)),)
            elif method == "recv_exactly":
                args = (choose(src, (0, 1, 4, 100, 5000, 70000), lambda: src.size(70000)),)
            elif method == "recv_until":
                delim = choose(src, (b"\n", b"\r\n", b"\0"),
                               lambda: src.take(1 + src.below(3))) or b"\n"
                args = (delim, choose(src, (65536, 1, 16), lambda: 1 + src.size(70000)))
            else:
                own = prefix if src.below(8) else PREFIXES[src.below(4)]
                most = choose(src, (16 << 20, 1, 100), lambda: 1 + src.size(70000))
                count = 1 + src.below(20)
                args = (own, most, count)
            steps.append(("recv", method, mode, args))
        else:
            steps.append((kind,))
    return prefix, steps


class Encoder:
    """Writes a script in the byte code ``decode`` reads (for the seeds)."""

    def __init__(self) -> None:
        self.out = bytearray()

    def below(self, n: int, value: int) -> "Encoder":
        assert 0 <= value < n
        self.out.append(value)
        return self

    def size(self, most: int, value: int) -> "Encoder":
        assert 0 <= value <= min(most, 65535)
        self.out += bytes((value & 0xFF, value >> 8))
        return self

    def raw(self, data: bytes) -> "Encoder":
        self.out += data
        return self

    def kind(self, name: str) -> "Encoder":
        return self.below(len(KINDS), KINDS.index(name))


def seed_frames_then_reset() -> bytes:
    # three frames, the peer resets, recv_msgs(2) and recv_msgs() take them,
    # then recv_msg meets the reset and recv the end of the stream
    e = Encoder().below(4, 2)  # prefix 4
    e.kind("peer_frames").below(5, 2).below(8, 2).below(8, 1).below(8, 0)  # 5, 1, 0 bytes
    e.kind("peer_reset")
    for method, count in (("recv_msgs", 1), ("recv_msgs", 9), ("recv_msg", 0)):
        e.kind("recv").below(6, RECEIVES.index(method)).below(3, 1)
        e.below(8, 1).below(4, 0).below(20, count)
    e.kind("recv").below(6, 0).below(3, 0).below(6, 3)
    return bytes(e.out)


def seed_partial_sends() -> bytes:
    # sendall, send_msg and sendall_buffers that stop part-way (non-blocking,
    # then at their deadline) while the peer does not read, then a blocking
    # sendall while the peer reads and resets part-way
    e = Encoder().below(4, 2)
    for method, mode in (("sendall", 1), ("send_msg", 2), ("sendall_buffers", 1),
                         ("send_buffers", 2)):
        e.kind("send").below(5, SENDS.index(method)).below(3, mode).below(7, 5).below(4, 3)
        e.below(3, 0).size(60000, 0)
    e.kind("peer_read").below(2, 1)
    e.kind("send").below(5, 1).below(3, 0).below(7, 5).below(4, 0).below(3, 2).size(60000, 7000)
    e.kind("recv").below(6, 0).below(3, 1).below(6, 2)
    return bytes(e.out)


def seed_close_and_take_buffered() -> bytes:
    # a frame and a line, recv_until reads ahead, take_buffered and the
    # refused hand-off, an orderly close, then every receive at EOF
    e = Encoder().below(4, 1)  # prefix 2
    e.kind("peer_send").below(32, 6).raw(b"ab\ncd\n").size(4096, 6)
    e.kind("peer_frames").below(5, 0).below(8, 3)  # one frame of 100 bytes
    e.kind("recv").below(6, 3).below(3, 2).below(4, 0).below(4, 0)
    e.kind("handoff")
    e.kind("take_buffered")
    e.kind("peer_close")
    for method in RECEIVES:
        e.kind("recv").below(6, RECEIVES.index(method)).below(3, 0)
        if method in ("recv", "recv_into"):
            e.below(6, 3)
        elif method == "recv_exactly":
            e.below(7, 2)
        elif method == "recv_until":
            e.below(4, 0).below(4, 0)
        else:
            e.below(8, 1).below(4, 0).below(20, 3)
    return bytes(e.out)


def seed_unrecv_around_the_end() -> bytes:
    # a frame taken and given back with the line before it, read again by
    # recv_until and recv_msg; then the peer closes, bytes go back after the
    # end was reported and come again before the end is reported again
    e = Encoder().below(4, 2)  # prefix 4
    e.kind("peer_send").below(32, 4).raw(b"hi!\n").size(4096, 4)
    e.kind("peer_frames").below(5, 0).below(8, 2)  # one frame of 5 bytes
    e.kind("recv").below(6, 3).below(3, 0).below(4, 0).below(4, 0)  # recv_until b"\n"
    e.kind("recv").below(6, 4).below(3, 1).below(8, 1).below(4, 0).below(20, 0)
    e.kind("unrecv").below(4, 2)  # 100: all of it
    e.kind("recv").below(6, 2).below(3, 0).below(7, 1)  # recv_exactly(1)
    e.kind("unrecv").below(4, 0)
    e.kind("peer_close")
    e.kind("recv").below(6, 0).below(3, 0).below(6, 4)  # recv(65536)
    e.kind("recv").below(6, 0).below(3, 0).below(6, 4)  # the end
    e.kind("unrecv").below(4, 1)
    e.kind("recv").below(6, 4).below(3, 2).below(8, 1).below(4, 0).below(20, 0)
    e.kind("take_buffered")
    return bytes(e.out)


def seed_recv_ahead_then_reset() -> bytes:
    # frames taken in ahead (a byte, then the rest), split by recv_msgs; then
    # the peer sends half a frame and resets: recv_ahead takes the half in,
    # then reports the reset once, and the half is still returned before the end
    e = Encoder().below(4, 2)  # prefix 4
    e.kind("peer_frames").below(5, 2).below(8, 2).below(8, 1).below(8, 3)  # 5, 1, 100 bytes
    e.kind("recv_ahead").below(3, 1).below(4, 0)  # non-blocking, 1 byte
    e.kind("recv_ahead").below(3, 2).below(4, 2)  # small timeout, 65536
    e.kind("recv").below(6, 5).below(3, 1).below(8, 1).below(4, 0).below(20, 8)
    e.kind("peer_send").below(32, 8).raw(b"\0\0\0\x09half").size(4096, 8)
    e.kind("peer_reset")
    e.kind("recv_ahead").below(3, 0).below(4, 1)  # blocking, 100
    e.kind("recv_ahead").below(3, 0).below(4, 1)  # the reset
    e.kind("recv_ahead").below(3, 1).below(4, 2)  # the end
    e.kind("recv").below(6, 4).below(3, 0).below(8, 1).below(4, 0).below(20, 0)
    return bytes(e.out)


SEEDS = {
    "recv-ahead-then-reset": seed_recv_ahead_then_reset,
    "unrecv-around-the-end": seed_unrecv_around_the_end,
    "frames-then-reset": seed_frames_then_reset,
    "partial-sends": seed_partial_sends,
    "close-and-take-buffered": seed_close_and_take_buffered,
}

# -- the model ------------------------------------------------------------------


def ioctl_int(fd: int, request: int) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(fd, request, b"\0" * 4))[0]  # type: ignore[no-any-return]
    except OSError:
        return 0


def frame_header(prefix: int, size: int) -> bytes:
    return size.to_bytes(8, "big")[-prefix:]


class Model:
    """What one implementation's connection must do."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stream = bytearray()  # what the peer handed its kernel
        self.pos = 0  # how much of it our calls returned
        self.fault = "open"  # "eof" after the peer's orderly close, "reset" after its RST
        self.reported = False  # the reset was raised (once) by a call of ours
        self.resets = 0
        self.arrived = 0  # at the reset: bytes that had reached our side
        self.out = bytearray()  # what ours got out, in order: what the peer must read
        self.out_known = True  # False once a send failed in a way that hides its count
        self.peer_got = 0  # how much of ``out`` the peer read
        self.peer_reads = True  # the peer's receiving side is still there
        self.peer_open = True  # the peer socket is still there
        self.pool = 0

    def defect(self, message: str) -> harness.Defect:
        return harness.Defect(f"{self.name}: {message}")

    # receiving

    def next_bytes(self, stream: bytearray, pos: int, got: bytes, what: str) -> int:
        """``pos`` moved past ``got``, which must be the next bytes of ``stream``."""
        expected = bytes(stream[pos:pos + len(got)])
        if got != expected:
            raise self.defect(f"{what} gave {got[:40]!r} ({len(got)} bytes) at offset {pos}; "
                              f"the stream there is {expected[:40]!r} ({len(stream) - pos} "
                              f"bytes left of {len(stream)})")
        return pos + len(got)

    def take(self, chunk: bytes, what: str) -> None:
        self.pos = self.next_bytes(self.stream, self.pos, chunk, what)

    def peer_took(self, got: bytes, what: str) -> None:
        if self.out_known:
            self.next_bytes(self.out, self.peer_got, got, what)
        self.peer_got += len(got)

    def reset_reported(self, what: str, exc: BaseException) -> None:
        """A call raised ConnectionResetError: only once, and only after the peer's reset."""
        if self.fault != "reset" or self.reported:
            raise self.defect(f"{what} raised {exc!r} with the peer {self.fault}"
                              f"{' (reset already reported)' if self.reported else ''}")
        self.reported = True
        self.resets += 1

    def peer_reset(self, ours: Any) -> None:
        """The peer has reset: what has reached our side by now must not be lost."""
        self.peer_open = self.peer_reads = False
        wait_for_news(ours)
        self.fault = "reset"
        self.arrived = self.pos + ours.buffered + ioctl_int(ours.fileno(), FIONREAD)

    def take_msg(self, prefix: int, payload: bytes, what: str) -> None:
        self.take(frame_header(prefix, len(payload)), what + " (its prefix)")
        self.take(payload, what)

    def rest(self) -> bytes:
        return bytes(self.stream[self.pos:])

    def at_end_allowed(self) -> bool:
        return self.fault == "eof" or (self.fault == "reset" and self.reported)

    def check_at_end(self, what: str) -> None:
        """An end of stream was reported: legal now, and nothing before it lost."""
        if not self.at_end_allowed():
            raise self.defect(f"{what} reported an end of stream while the peer is "
                              f"{'open' if self.fault == 'open' else 'reset (not yet reported)'}")
        if self.fault == "eof" and self.pos != len(self.stream):
            raise self.defect(f"{what} reported the end of the stream with "
                              f"{len(self.stream) - self.pos} bytes never returned")
        if self.fault == "reset" and self.pos < self.arrived:
            raise self.defect(f"{what} reported the end of the stream after a reset with "
                              f"{self.arrived - self.pos} bytes that had arrived never returned")

    def will_complete(self, method: str, args: tuple[Any, ...]) -> bool:
        """Whether a blocking receive can return without more from the peer."""
        if self.fault != "open":
            return True
        rest = self.rest()
        if method in ("recv", "recv_into"):
            return bool(rest) or args[0] == 0
        if method == "recv_exactly":
            return len(rest) >= args[0]
        if method == "recv_until":
            delim, limit = args
            return delim in rest[:limit] or len(rest) >= limit
        prefix, most = args[0], args[1]
        if len(rest) < prefix:
            return False
        size = int.from_bytes(rest[:prefix], "big")
        return size > most or len(rest) >= prefix + size


def check_receive(m: Model, sock: Any, method: str, args: tuple[Any, ...],
                  result: tuple[str, Any]) -> None:
    kind, value = result
    what = f"{method}{args!r}"
    if kind == "ok":
        if method == "recv" or method == "recv_into":
            if args[0] and not value:
                m.check_at_end(what)
            m.take(value, what)
        elif method == "recv_exactly":
            if len(value) != args[0]:
                raise m.defect(f"{what} returned {len(value)} bytes")
            m.take(value, what)
        elif method == "recv_until":
            delim, limit = args
            if not value.endswith(delim) or value.find(delim) != len(value) - len(delim) \
                    or len(value) > limit:
                raise m.defect(f"{what} returned {value[:80]!r}")
            m.take(value, what)
        elif method == "recv_msg":
            m.take_msg(args[0], value, what)
        else:
            bound = msgs_byte_bound(args[2])
            if not value or len(value) > args[2] or (
                    bound is not None and len(value) > 1 and sum(map(len, value)) > bound):
                raise m.defect(f"{what} returned {len(value)} messages "
                               f"of {sum(map(len, value))} bytes (max_bytes={bound})")
            for payload in value:
                m.take_msg(args[0], payload, what)
        return
    exc = value
    if isinstance(exc, harness.common.IncompleteReadError):
        partial = exc.partial
        if method in ("recv_msg", "recv_msgs") and exc.expected != args[0]:
            m.take(frame_header(args[0], exc.expected), what + " (its prefix)")
        elif method in ("recv_msg", "recv_msgs") and len(m.rest()) >= args[0] and \
                int.from_bytes(m.rest()[:args[0]], "big") == exc.expected:
            m.take(m.rest()[:args[0]], what + " (its prefix)")
        m.take(partial, what + " (IncompleteReadError.partial)")
        m.check_at_end(what)
    elif isinstance(exc, ConnectionResetError):
        m.reset_reported(what, exc)
        queued = ioctl_int(sock.fileno(), FIONREAD)
        if queued:
            raise m.defect(f"{what} raised {exc!r} while the kernel held {queued} bytes")
    elif isinstance(exc, (BlockingIOError, TimeoutError)):
        if m.fault != "open":
            raise m.defect(f"{what} raised {exc!r} though the peer is {m.fault}: the "
                           f"kernel has the answer at once")
        if m.will_complete(method, args):
            raise m.defect(f"{what} raised {exc!r} though the bytes it needs had arrived")
    elif isinstance(exc, harness.common.MessageTooLargeError):
        rest = m.rest()
        if len(rest) < args[0] or int.from_bytes(rest[:args[0]], "big") <= args[1]:
            raise m.defect(f"{what} raised {exc!r} but the next prefix is {rest[:args[0]]!r}")
    elif isinstance(exc, harness.common.LimitOverrunError):
        delim, limit = args
        if delim in m.rest()[:limit]:
            raise m.defect(f"{what} raised {exc!r} with the delimiter within the limit")
    else:
        raise m.defect(f"{what} raised {exc!r}")


# -- the peer ---------------------------------------------------------------------


class Reader(threading.Thread):
    """The peer reading while ours sends; it resets after ``reset_after`` bytes
    if that is set."""

    def __init__(self, peer: socket.socket, reset_after: Optional[int]) -> None:
        super().__init__(daemon=True)
        self.peer = peer
        self.reset_after = reset_after
        self.got = bytearray()
        self.target: Optional[int] = None
        self.did_reset = False
        self.eof = False
        self.stop = time.monotonic() + SETTLE * 2

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.peer.fileno(), select.POLLIN)
        while time.monotonic() < self.stop:
            if self.reset_after is not None and len(self.got) >= self.reset_after:
                reset(self.peer)
                self.did_reset = True
                return
            if self.target is not None and len(self.got) >= self.target:
                return
            if not poller.poll(2):
                continue
            try:
                data = self.peer.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                self.eof = True
                return
            self.got += data


def reset(peer: socket.socket) -> None:
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    peer.close()


def wait_for_news(sock: Any) -> None:
    """Until our kernel has seen the peer's RST or FIN (at once on loopback)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLERR | select.POLLHUP | select.POLLRDHUP)
    poller.poll(int(SETTLE * 1000))


def peer_read(m: Model, peer: socket.socket, most: Optional[int]) -> int:
    """The peer reads what has arrived (at most ``most``), checked against the model."""
    got = bytearray()
    while most is None or len(got) < most:
        try:
            data = peer.recv(65536 if most is None else min(65536, most - len(got)))
        except BlockingIOError:
            break
        if not data:
            break
        got += data
    m.peer_took(bytes(got), "the peer's read")
    return len(got)


def peer_drain_then(m: Model, ours: Any, peer: socket.socket) -> None:
    """Read everything ours sent that can arrive, so that a close sends a FIN."""
    stop = time.monotonic() + SETTLE
    while time.monotonic() < stop:
        peer_read(m, peer, None)
        if ioctl_int(peer.fileno(), FIONREAD) == 0 and \
                ioctl_int(ours.fileno(), SIOCOUTQNSD) == 0:
            return
        time.sleep(0.0005)
    raise m.defect("the peer could not read what ours had queued")


# -- one step ---------------------------------------------------------------------


def set_mode(ours: Any, mode: str) -> None:
    ours.settimeout({"blocking": None, "nonblocking": 0.0, "timeout": TIMEOUT}[mode])


def send_data(m: Model, method: str, size: int, pieces: int, prefix: int) -> tuple[Any, bytes]:
    """The argument of a send and the bytes it puts on the wire, in order."""
    start = m.pool
    m.pool = (m.pool + size + 1) % (len(POOL) - 70000)
    data = POOL[start:start + size]
    if method == "send_msg":
        return data, frame_header(prefix, len(data)) + data
    if method in ("send", "sendall"):
        return data, data
    cuts = sorted({(size * (i + 1)) // (pieces + 2) for i in range(pieces)})
    parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [size])]
    if pieces == 3:
        parts.insert(1, b"")  # an empty buffer among them
    return parts, data


def claimed(method: str, wire: bytes, result: tuple[str, Any]) -> int:
    """How many bytes a send says went out (all of them when it does not say)."""
    kind, value = result
    if kind == "ok":
        return value if method in ("send", "send_buffers") else len(wire)
    written = getattr(value, "characters_written", None)
    if isinstance(value, (BlockingIOError, TimeoutError)):
        return written if type(written) is int and 0 <= written <= len(wire) else 0
    return len(wire)


def run_send(ours: Any, method: str, arg: Any, prefix: int) -> tuple[str, Any]:
    if method == "send_msg":
        return harness.outcome(lambda: ours.send_msg(arg, prefix_size=prefix))
    return harness.outcome(lambda: getattr(ours, method)(arg))


def check_send(m: Model, method: str, mode: str, wire: bytes, result: tuple[str, Any],
               reset_meanwhile: bool, prefix: int) -> None:
    kind, value = result
    what = f"{method}({len(wire)} bytes, {mode})"
    if kind == "ok":
        sent = value if method in ("send", "send_buffers") else len(wire)
        if method in ("send", "send_buffers") and not 0 <= sent <= len(wire):
            raise m.defect(f"{what} returned {sent}")
        if method not in ("send", "send_buffers") and value is not None:
            raise m.defect(f"{what} returned {value!r}")
        m.out += wire[:sent]
        return
    exc = value
    if isinstance(exc, (BlockingIOError, TimeoutError)):
        if (mode == "nonblocking") != isinstance(exc, BlockingIOError) or mode == "blocking":
            raise m.defect(f"{what} raised {exc!r}")
        if method in PARTIAL_NOTED:
            written = getattr(exc, "characters_written", None)
            # (nothing to send can still time out: the pure twin waits for room
            # first, as the stdlib; then nothing went out)
            if type(written) is not int or not (0 <= written < len(wire) or written == len(wire) == 0):
                raise m.defect(f"{what} raised {exc!r} with characters_written={written!r}")
            m.out += wire[:written]
        return
    if isinstance(exc, OverflowError) and method == "send_msg" and \
            len(wire) - prefix >= 1 << (8 * prefix):
        return  # the payload's length does not fit the prefix: nothing is sent
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        if m.fault == "open" and not reset_meanwhile:
            raise m.defect(f"{what} raised {exc!r} with the peer open")
        if isinstance(exc, ConnectionResetError):
            m.reset_reported(what, exc)
        m.out_known = False  # how much went out before the error is not said
        return
    raise m.defect(f"{what} raised {exc!r}")


def key_of(result: tuple[str, Any], method: str) -> Any:
    kind, value = result
    if kind == "ok":
        if method in ("recv", "recv_into"):
            return ("ok", bool(value))  # how much depends on how much was read ahead
        if method in SENDS:
            return ("ok",)
        return ("ok", value)
    extra = (value.partial, value.expected) if isinstance(
        value, harness.common.IncompleteReadError) else ()
    return ("error",) + harness.error_key(value, message=False) + extra


def recv_call(ours: Any, method: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    if method == "recv":
        return harness.outcome(lambda: ours.recv(args[0]))
    if method == "recv_into":
        buffer = bytearray(args[0])

        def into() -> bytes:
            n = ours.recv_into(buffer)
            return bytes(buffer[:n])
        return harness.outcome(into)
    if method in ("recv_exactly", "recv_until"):
        return harness.outcome(lambda: getattr(ours, method)(*args))
    if method == "recv_msg":
        return harness.outcome(lambda: ours.recv_msg(prefix_size=args[0], max_size=args[1]))
    return harness.outcome(lambda: ours.recv_msgs(args[2], prefix_size=args[0], max_size=args[1],
                                                  max_bytes=msgs_byte_bound(args[2])))


def msgs_byte_bound(count: int) -> Optional[int]:
    """recv_msgs()'s max_bytes, from its count (the inputs keep their meaning):
    none for an odd count, else a bound that a few hundred-byte frames reach."""
    return None if count % 2 else count * 40


Log = list[tuple[int, Any, Any]]


def recv_ahead(m: Model, ours: Any, index: int, st: tuple[Any, ...], log: Log,
               gate: Any) -> None:
    """The kernel's bytes move into the socket's buffer: at most as many as
    asked, the buffer grows by what it says, the next receives return them
    in order (the model checks them there), and the end, a reset and a
    timeout follow the rules of a receive."""
    _, mode, most = st
    held = ours.buffered
    waiting = len(m.stream) - m.pos - held  # what the peer sent that ours has not taken in
    # the twins read ahead differently (one may already hold what the other
    # still finds in the kernel): compared only when they agree on that
    gate = (*gate, bool(waiting))
    if mode == "blocking" and m.fault == "open" and not waiting:
        mode = "timeout"  # would wait for bytes the peer never sends
    set_mode(ours, mode)
    result = harness.outcome(lambda: ours.recv_ahead(most))
    what = f"recv_ahead({most}) {mode} with {held} buffered"
    if TRACE:
        print(f"{m.name} {index} {what}: {result!r:.200}", file=sys.stderr)
    kind, value = result
    if kind == "ok":
        if ours.buffered != held + value or not 0 <= value <= min(most, waiting):
            raise m.defect(f"{what} returned {value}, {ours.buffered} buffered after, "
                           f"{waiting} bytes on the way")
        if not value and not m.at_end_allowed():
            raise m.defect(f"{what} reported an end of stream while the peer is {m.fault}")
        if not value and m.fault == "eof" and waiting:
            raise m.defect(f"{what} reported the end with {waiting} bytes not taken in")
        log.append((index, gate, ("ok", bool(value))))
        return
    if ours.buffered != held:
        raise m.defect(f"{what} raised {value!r} and changed the buffer to {ours.buffered}")
    if isinstance(value, ConnectionResetError):
        m.reset_reported(what, value)
    elif isinstance(value, (BlockingIOError, TimeoutError)):
        if m.fault != "open" or waiting:
            raise m.defect(f"{what} raised {value!r} though the peer is {m.fault} and "
                           f"{waiting} bytes were on the way")
    else:
        raise m.defect(f"{what} raised {value!r}")
    log.append((index, gate, ("error",) + harness.error_key(value, message=False)))


def step(m: Model, ours: Any, peer: socket.socket, prefix: int, index: int,
         st: tuple[Any, ...], log: Log) -> None:
    kind = st[0]
    recv_gate = (m.pos, m.fault, m.reported)
    if kind == "peer_send":
        if m.fault != "open":
            return
        data = st[1]
        sent = 0
        while sent < len(data):
            try:
                sent += peer.send(data[sent:])
            except BlockingIOError:
                break
        m.stream += data[:sent]
    elif kind == "peer_read":
        if m.peer_reads:
            peer_read(m, peer, st[1])
    elif kind == "peer_reset":
        if m.fault == "open" and m.peer_open:
            reset(peer)
            m.peer_reset(ours)
    elif kind == "peer_close":
        if m.fault == "open" and m.peer_open:
            peer_drain_then(m, ours, peer)
            peer.close()
            m.peer_open = m.peer_reads = False
            wait_for_news(ours)
            m.fault = "eof"
    elif kind == "peer_shutdown":
        if m.fault == "open" and m.peer_open:
            peer.shutdown(socket.SHUT_WR)
            wait_for_news(ours)
            m.fault = "eof"
    elif kind == "take_buffered":
        held = ours.buffered
        result = harness.outcome(ours.take_buffered)
        if result[0] != "ok" or len(result[1]) != held or ours.buffered:
            raise m.defect(f"take_buffered() with {held} bytes buffered: {result!r:.200}")
        m.take(result[1], "take_buffered()")
    elif kind == "unrecv":
        # a reader that read ahead gives bytes back: the next receives return
        # them again, in front of what the socket holds
        count = min(st[1], m.pos)
        held = ours.buffered
        given_back = bytes(m.stream[m.pos - count:m.pos])
        result = harness.outcome(lambda: ours.unrecv(given_back))
        if result[0] != "ok" or ours.buffered != held + count:
            raise m.defect(f"unrecv() of {count} bytes with {held} buffered: {result!r:.200}, "
                           f"{ours.buffered} buffered after")
        m.pos -= count
    elif kind == "recv_ahead":
        recv_ahead(m, ours, index, st, log, recv_gate)
    elif kind == "handoff":
        held = ours.buffered
        if held:  # with nothing buffered the descriptor would really go
            for name in ("detach", "to_socket"):
                try:
                    getattr(ours, name)()
                except RuntimeError:
                    pass
                else:
                    raise m.defect(f"{name}() handed the descriptor over with {held} "
                                   "bytes buffered")
                if ours.buffered != held or ours.fileno() < 0:
                    raise m.defect(f"a refused {name}() changed the socket")
    elif kind == "recv":
        _, method, mode, args = st
        if mode == "blocking" and not m.will_complete(method, args):
            mode = "timeout"  # would wait for bytes the peer never sends
        set_mode(ours, mode)
        result = recv_call(ours, method, args)
        if TRACE:
            print(f"{m.name} {index} {method}{args!r} {mode}: {result!r:.200}", file=sys.stderr)
        check_receive(m, ours, method, args, result)
        log.append((index, recv_gate, key_of(result, method)))
    elif kind == "send":
        _, method, mode, size, pieces, reader_kind, reset_after = st
        send_gate = (len(m.out), m.peer_got, m.out_known, m.peer_reads) + recv_gate
        arg, wire = send_data(m, method, size, pieces, prefix)
        reader = None
        if reader_kind and m.peer_reads:
            may_reset = reader_kind == 2 and m.fault == "open" and m.peer_open
            reader = Reader(peer, reset_after if may_reset else None)
            reader.start()
        elif mode == "blocking" and m.fault == "open":
            mode = "timeout"  # nobody reads: a blocking send could wait forever
        set_mode(ours, mode)
        result = run_send(ours, method, arg, prefix)
        reset_meanwhile = False
        if reader is not None:
            # the reader stops once it has what the call says went out (or at
            # its reset): what is left on the way is for the final drain
            reader.target = len(m.out) - m.peer_got + claimed(method, wire, result)
            reader.stop = time.monotonic() + 0.2
            reader.join()
            reset_meanwhile = reader.did_reset
            if reset_meanwhile:
                m.peer_reset(ours)
        if TRACE:
            print(f"{m.name} {index} {method}({len(wire)} bytes) {mode} reader={reader_kind}: "
                  f"{result!r:.200} {getattr(result[1], 'characters_written', '')} "
                  f"peer reset meanwhile: {reset_meanwhile}", file=sys.stderr)
        check_send(m, method, mode, wire, result, reset_meanwhile, prefix)
        if reader is not None:
            m.peer_took(bytes(reader.got), f"the peer reading during {method}")
            if reader.eof:
                raise m.defect(f"the peer read an end of stream during {method}")
        if reader is None or (mode == "blocking" and not reset_meanwhile):
            # (whether a send with a timeout or none finds room depends on how
            # far the reading thread has got: not compared)
            log.append((index, send_gate, (mode,) + key_of(result, method)))


def finish(m: Model, ours: Any, peer: socket.socket) -> None:
    """Ours stops sending and the peer must read exactly the model's stream; the
    peer closes and ours must then receive the rest of its stream."""
    if m.peer_reads:
        ours.settimeout(SETTLE)
        try:
            ours.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise m.defect(f"shutdown(SHUT_WR) raised {exc!r}") from None
        peer.settimeout(SETTLE)
        got = bytearray()
        try:
            while data := peer.recv(65536):
                got += data
        except TimeoutError:
            raise m.defect(f"the peer read {len(got)} bytes and then no end of stream "
                           f"({len(m.out) - m.peer_got} expected)") from None
        m.peer_took(bytes(got), "the peer's final read")
        if m.out_known and m.peer_got != len(m.out):
            raise m.defect(f"the peer read {m.peer_got} bytes in all, ours reported "
                           f"{len(m.out)} sent (characters_written and the send results)")
    if m.peer_open:
        peer.close()  # it read everything: a FIN, not a reset
        m.peer_open = False
        wait_for_news(ours)
        if m.fault == "open":
            m.fault = "eof"
    ours.settimeout(SETTLE)
    for _ in range(1000):
        result = harness.outcome(lambda: ours.recv(65536))
        check_receive(m, ours, "recv", (65536,), result)
        if result == ("ok", b""):
            break
    else:
        raise m.defect("the final drain never reached the end of the stream")
    if m.fault == "reset" and m.resets != 1:
        raise m.defect(f"the reset was reported {m.resets} times")
    if m.fault == "eof" and m.resets:
        raise m.defect("a reset was reported after an orderly close")


LISTENER: Optional[socket.socket] = None


def connect(impl: Any) -> tuple[Any, socket.socket]:
    global LISTENER
    if LISTENER is None:
        LISTENER = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        LISTENER.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEER_RCVBUF)
        LISTENER.bind(("127.0.0.1", 0))
        LISTENER.listen(16)
        LISTENER.settimeout(SETTLE)
    ours = impl.StreamSocket(socket.AF_INET)
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, OURS_SNDBUF)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, OURS_RCVBUF)
        ours.settimeout(SETTLE)
        ours.connect(LISTENER.getsockname())
        peer, _ = LISTENER.accept()
    except BaseException:
        ours.close()
        raise
    # what the peer sends reaches our kernel at once (no Nagle wait for an ACK
    # that ours may delay): the model counts on it
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer.setblocking(False)
    return ours, peer


def one_input(data: bytes) -> None:
    prefix, steps = decode(data)
    logs: dict[str, Log] = {}
    for impl in harness.IMPLS:
        m = Model(impl.IMPLEMENTATION)
        log = logs.setdefault(impl.IMPLEMENTATION, [])
        ours, peer = connect(impl)
        try:
            for index, st in enumerate(steps):
                step(m, ours, peer, prefix, index, st, log)
                if ours.buffered < 0 or m.pos + ours.buffered > len(m.stream):
                    raise m.defect(f"{ours.buffered} bytes buffered at offset {m.pos} of a "
                                   f"{len(m.stream)}-byte stream")
            finish(m, ours, peer)
        finally:
            ours.close()
            peer.close()
    compare(logs)


def compare(logs: dict[str, Log]) -> None:
    """The same results wherever both implementations were in the same state."""
    theirs = {index: (gate, key) for index, gate, key in logs["python"]}
    for index, gate, key in logs["cython"]:
        if index not in theirs or theirs[index][0] != gate:
            continue
        other = theirs[index][1]
        if key == other:
            continue
        if key[0] == "timeout" and {key[1], other[1]} == {"ok", "error"} and \
                "TimeoutError" in (key[2:3] + other[2:3]):
            continue  # the compiled twin's first try went out; the pure twin's poll timed out
        raise harness.Defect(f"step {index}: compiled {key!r:.300} != pure {other!r:.300}")


def write_seeds() -> None:
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "faults")
    os.makedirs(folder, exist_ok=True)
    for name, make in SEEDS.items():
        with open(os.path.join(folder, name), "wb") as file:
            file.write(make())


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-seeds"]:
        write_seeds()
    else:
        harness.main(one_input)
