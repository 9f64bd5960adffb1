"""asyncio streams on fastsock sockets, with the framing done by the socket.

``open_connection``, ``start_server``, ``open_unix_connection`` and
``start_unix_server`` take asyncio's arguments and give a ``StreamReader`` and
a ``StreamWriter`` that behave as asyncio's (its exceptions included), so code
switches by changing the import.  On top of them the reader has the fast
methods ``read_msg``, ``read_msgs`` and ``readexactly_into``, and the writer
``write_msg`` and ``write_msgs``: the framing of the blocking ``StreamSocket``
methods, run on the socket's own receive buffer.

Every read first calls the socket (non-blocking); only when it says
``BlockingIOError`` does the coroutine wait, through ``loop.add_reader``, and
it is woken once per readiness, whatever number of messages that brings.  A
call that cannot finish leaves what it read in the socket's buffer, so a
cancelled read loses and reorders nothing.  Works on any loop with
``add_reader``/``add_writer`` (the default loop, uvloop).  ``ssl=`` is refused:
use asyncio's own streams for TLS.

Datagrams (``open_datagram_endpoint``, ``create_datagram_endpoint``) live in
``_aio_datagram``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket as _stdlib
import stat
import struct
from typing import Any, Awaitable, Callable, Iterable, Optional, Sequence, Union

import fastsock

from ._aio_datagram import (
    DatagramEndpoint as DatagramEndpoint,
    DatagramTransport as DatagramTransport,
    create_datagram_endpoint as create_datagram_endpoint,
    open_datagram_endpoint as open_datagram_endpoint,
)

__all__ = [
    "StreamReader",
    "StreamWriter",
    "Server",
    "open_connection",
    "start_server",
    "open_unix_connection",
    "start_unix_server",
    "DatagramEndpoint",
    "DatagramTransport",
    "open_datagram_endpoint",
    "create_datagram_endpoint",
]

_DEFAULT_LIMIT = 2 ** 16  # asyncio's
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024  # StreamSocket.recv_msg()'s
_HIGH_WATER = 64 * 1024  # asyncio's transport defaults
_ACCEPT_RETRY_DELAY = 1.0  # as asyncio, after running out of descriptors
_SEND_CHUNK = 256 * 1024
# what read_msg() splits per receive and hands out one per call, so that a
# call is a list pop, not a socket call: a batch bounded in count and in bytes
# (whatever the frames' sizes, what is held ahead stays small)
_READ_AHEAD_FRAMES = 256
_READ_AHEAD_BYTES = 64 * 1024

# the twins' framing errors, turned into asyncio's own at this boundary
_FastIncomplete = fastsock.IncompleteReadError
_FastOverrun = fastsock.LimitOverrunError

_PREFIXES = {size: struct.Struct(code)
             for size, code in ((1, ">B"), (2, ">H"), (4, ">I"), (8, ">Q"))}

ClientConnectedCallback = Callable[["StreamReader", "StreamWriter"], Optional[Awaitable[None]]]


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


def _incomplete(exc: Any) -> asyncio.IncompleteReadError:
    return asyncio.IncompleteReadError(exc.partial, exc.expected)


def _prefix(prefix_size: int) -> struct.Struct:
    try:
        return _PREFIXES[prefix_size]
    except KeyError:
        raise ValueError("prefix_size must be 1, 2, 4 or 8") from None


class _Connection:
    """What the reader and the writer of one socket share: its loop
    registrations and its end."""

    def __init__(self, sock: Any, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)  # a closed socket raises OSError (EBADF) here
        self.sock = sock
        self.fd: int = sock.fileno()
        self.loop = loop
        self.closed = False
        self.closing = False  # closed, or to be once the writer has sent all
        self.exception: Optional[BaseException] = None
        self.reader: Optional[StreamReader] = None
        self.writer: Optional[StreamWriter] = None
        self.closed_future: asyncio.Future[None] = loop.create_future()
        self.on_close: Optional[Callable[[], None]] = None

    def close(self, exc: Optional[BaseException] = None) -> None:
        """Close the descriptor now and wake whoever waits on it."""
        if self.closed:
            return
        self.closed = True
        self.closing = True
        if exc is not None and self.exception is None:
            self.exception = exc
        # unregister before closing: a loop must never watch a reused number
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        self.sock.close()
        if self.reader is not None:
            self.reader._connection_closed()
        if self.writer is not None:
            self.writer._connection_closed()
        if not self.closed_future.done():
            if exc is not None:
                self.closed_future.set_exception(exc)
                self.closed_future.exception()  # retrieved: wait_closed() is optional
            else:
                self.closed_future.set_result(None)
        if self.on_close is not None:
            self.on_close()


class StreamReader:
    """asyncio.StreamReader over a non-blocking fastsock StreamSocket.

    The bytes not yet returned live in the socket's own receive buffer
    (``sock.buffered``), which the framing methods read in C.
    """

    def __init__(self, conn: _Connection, limit: int = _DEFAULT_LIMIT) -> None:
        if limit <= 0:
            raise ValueError("Limit cannot be <= 0")
        self._conn = conn
        self._sock = conn.sock
        self._limit = limit
        self._eof = False
        self._waiter: Optional[asyncio.Future[None]] = None
        self._watching = False  # registered with add_reader
        # the last read took everything there was, and no readiness came since:
        # the next one waits for readability first instead of trying a receive
        # bound to fail (a request/response peer is nearly always so)
        self._drained = False
        # frames read_msg() split ahead, last first (popped), with the prefix
        # size they were split with; every other read puts them back first
        self._frames: list[bytes] = []
        self._frames_prefix = 0
        conn.reader = self

    def __repr__(self) -> str:
        info = ["StreamReader", f"fd={self._conn.fd}"]
        if self._eof:
            info.append("eof")
        if self._waiter is not None and not self._waiter.done():
            info.append("waiting")
        return "<{}>".format(" ".join(info))

    # -- state --------------------------------------------------------------

    def exception(self) -> Optional[BaseException]:
        """The error that ended the connection, or None."""
        return self._conn.exception

    def at_eof(self) -> bool:
        """True once the stream has ended and nothing is left to read."""
        if self._conn.closing:
            return True
        return self._eof and not self._frames and not self._sock.buffered

    def _connection_closed(self) -> None:
        self._eof = True
        self._frames = []  # reads end here, as for the bytes the socket held
        self._watching = False  # the connection unregisters the descriptor
        fut = self._waiter
        if fut is not None:
            self._waiter = None
            _wake(fut)

    def _stop(self) -> None:
        """The writer is closing: reads end now, as asyncio's once its
        transport closes (the socket may still be sending)."""
        if self._watching:
            self._watching = False
            self._conn.loop.remove_reader(self._conn.fd)
        self._connection_closed()

    def _ended(self) -> bool:
        """Whether reads must report the end without asking the socket
        (closed, or lost with an error: that error is raised)."""
        conn = self._conn
        if conn.exception is not None:
            raise conn.exception
        return conn.closing

    def _wait_readable(self, name: str) -> "asyncio.Future[None]":
        """What a read awaits until the socket has news: a future, not a
        coroutine (a coroutine and its frame per wait cost about 5% of an
        echo request's instructions).  Whoever completes it also clears
        ``_waiter``; one cancelled is left there, and the next wait replaces it."""
        fut = self._waiter
        if fut is not None and not fut.cancelled():
            raise RuntimeError(
                f"{name}() called while another coroutine is already waiting for incoming data")
        conn = self._conn
        fut = conn.loop.create_future()
        self._waiter = fut
        self._drained = False  # after the wait, try before waiting again
        if not self._watching:
            self._watching = True
            conn.loop.add_reader(conn.fd, self._on_readable)
        return fut

    def _on_readable(self) -> None:
        # the descriptor stays watched between a wake and the next wait (a
        # reader that keeps up then costs no epoll_ctl per batch); a readiness
        # that finds nobody waiting stops the watch until someone does
        fut = self._waiter
        if fut is None or fut.done():
            self._watching = False
            self._conn.loop.remove_reader(self._conn.fd)
            return
        # the bytes move into the socket's buffer here, as a transport reads in
        # its callback: the readiness is used up before the loop polls again.
        # Left to the woken reader, the default loop's next poll (which comes
        # first) reports it once more, and that stale report would wake the
        # reader's next wait for nothing: a receive bound to fail per request.
        try:
            self._sock.recv_ahead(_READ_AHEAD_BYTES)
        except BlockingIOError:
            return  # such a stale report: keep waiting
        except OSError as exc:
            self._lost(exc)  # the waiting read raises it
            return
        self._waiter = None
        fut.set_result(None)

    def _lost(self, exc: OSError) -> None:
        """The kernel reported the connection broken: end it as asyncio does."""
        self._conn.close(exc)

    def _unsplit(self) -> None:
        """Give the frames read_msg() split ahead back to the socket, prefixes
        and all, in front of what it holds: every read but read_msg() starts
        from the socket's bytes in their order."""
        frames = self._frames
        if not frames:
            return
        self._frames = []
        if self._conn.closing:
            return  # reads end: nothing will read them
        pack = _PREFIXES[self._frames_prefix].pack
        self._sock.unrecv(b"".join([pack(len(frame)) + frame for frame in reversed(frames)]))

    # -- asyncio's methods ----------------------------------------------------
    #
    # Each read spells out its own try/wait loop: a shared helper coroutine
    # costs a coroutine and a frame per call, which halved read_msg()'s rate
    # (3.7 to 1.7 million messages/s) when the messages are already there.

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all until the end when negative); b"" at the end."""
        if n == 0:
            return b""
        if self._frames:  # (a call per read costs more than the test)
            self._unsplit()
        if n < 0:
            blocks: list[bytes] = []
            while True:
                block = await self.read(self._limit)
                if not block:
                    return b"".join(blocks)
                blocks.append(block)
        sock = self._sock
        conn = self._conn
        while not conn.closing:
            if self._drained and not sock.buffered:
                await self._wait_readable("read")
                continue
            try:
                data: bytes = sock.recv(n)
            except BlockingIOError:
                await self._wait_readable("read")
                continue
            except ConnectionError as exc:
                self._lost(exc)
                raise
            if not data:
                self._eof = True
            # less than asked and nothing held: the kernel had no more
            self._drained = 0 < len(data) < n and not sock.buffered
            return data
        self._ended()  # the error that ended the connection, if any
        return b""

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes; asyncio.IncompleteReadError when the stream
        ends first."""
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if n == 0:
            return b""
        if self._frames:
            self._unsplit()
        sock = self._sock
        conn = self._conn
        while not conn.closing:
            if self._drained and not sock.buffered:
                await self._wait_readable("readexactly")
                continue
            try:
                data: bytes = sock.recv_exactly(n)
                self._drained = not sock.buffered
                return data
            except BlockingIOError:
                pass
            except _FastIncomplete as exc:
                self._eof = True
                raise _incomplete(exc) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait_readable("readexactly")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", n)

    async def readuntil(self, separator: Union[bytes, tuple[bytes, ...]] = b"\n") -> bytes:
        """Read up to and including ``separator``, as asyncio's readuntil().

        asyncio.LimitOverrunError (the data stays buffered) when the separator
        does not start within the reader's limit, asyncio.IncompleteReadError
        (holding everything read) when the stream ends first.
        """
        if isinstance(separator, tuple):
            seps = sorted(separator, key=len)  # asyncio's: the shortest wins a tie
            if not seps:
                raise ValueError("Separator should contain at least one element")
            if not seps[0]:
                raise ValueError("Separator should be at least one-byte string")
            if len(seps) > 1:
                return await self._readuntil_any(seps)
            separator = seps[0]
        if not separator:
            raise ValueError("Separator should be at least one-byte string")
        if self._frames:
            self._unsplit()
        sock = self._sock
        limit = self._limit + len(separator)  # asyncio bounds where the separator starts
        conn = self._conn
        while not conn.closing:
            if self._drained and not sock.buffered:
                await self._wait_readable("readuntil")
                continue
            try:
                data: bytes = sock.recv_until(separator, limit)
                self._drained = not sock.buffered
                return data
            except BlockingIOError:
                pass
            except _FastIncomplete as exc:
                self._eof = True
                raise _incomplete(exc) from None
            except _FastOverrun as exc:
                raise asyncio.LimitOverrunError(
                    "Separator is not found, and chunk exceed the limit",
                    exc.consumed) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait_readable("readuntil")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", None)

    async def _readuntil_any(self, seps: list[bytes]) -> bytes:
        if self._frames:
            self._unsplit()
        conn = self._conn
        while not conn.closing:
            try:
                found = self._find_any(seps)
            except ConnectionError as exc:
                self._lost(exc)
                raise
            if found is not None:
                return found
            await self._wait_readable("readuntil")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", None)

    def _find_any(self, seps: list[bytes]) -> Optional[bytes]:
        """One try of readuntil() with several separators: the socket's search
        takes one, so the bytes are looked at without being taken (its buffer,
        then the kernel's with MSG_PEEK) and only the line is taken."""
        sock = self._sock
        limit = self._limit
        longest = len(seps[-1])
        window = limit + longest  # enough to decide, as asyncio's rules go
        held = sock.buffered
        data: bytes = sock.recv(held, _stdlib.MSG_PEEK) if held else b""
        more = b""
        ended = False
        if len(data) < window:
            # a stdlib object on the same descriptor, detached at once: a peek
            # past the socket's buffer, which its own recv() does not do
            peeker = _stdlib.socket(fileno=self._conn.fd)
            try:
                more = peeker.recv(window - len(data), _stdlib.MSG_PEEK | _stdlib.MSG_DONTWAIT)
                ended = not more
            except BlockingIOError:
                pass
            finally:
                peeker.detach()
            data += more
        start = end = -1
        for sep in seps:
            at = data.find(sep, 0, window)
            if at >= 0 and (end < 0 or at + len(sep) < end):
                start, end = at, at + len(sep)
        if end >= 0:
            if start > limit:
                raise asyncio.LimitOverrunError(
                    "Separator is found, but chunk is longer than limit", start)
            line: bytes = sock.recv_exactly(end)  # all there: does not wait
            return line
        if len(data) >= window:
            raise asyncio.LimitOverrunError(
                "Separator is not found, and chunk exceed the limit", len(data) + 1 - longest)
        if ended:
            self._eof = True
            raise asyncio.IncompleteReadError(sock.take_buffered(), None)
        if more:
            # into the socket's buffer, not taken (no separator is in them, so
            # the search up to their end fails): the next readiness is new bytes
            try:
                sock.recv_until(seps[0], len(data))
            except (_FastOverrun, BlockingIOError):
                pass
        return None

    async def readline(self) -> bytes:
        """Read one line ending with b"\\n" (or what is left at the end), as
        asyncio's readline(); ValueError, with the over-long line dropped from
        the buffer, past the limit."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            sock = self._sock
            # asyncio drops the line if its end has arrived, else all it holds;
            # it may hold up to twice the limit before it stops reading
            try:
                sock.recv_until(b"\n", sock.buffered + self._limit)
            except (_FastOverrun, BlockingIOError, _FastIncomplete):
                sock.take_buffered()
            raise ValueError(exc.args[0]) from None

    def __aiter__(self) -> "StreamReader":
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # -- fast methods ---------------------------------------------------------

    async def read_msg(self, *, prefix_size: int = 4,
                       max_size: int = DEFAULT_MAX_MESSAGE) -> bytes:
        """Read one message framed by a big-endian length prefix (write_msg(),
        StreamSocket.send_msg()) and return its payload.

        fastsock.MessageTooLargeError when the prefix announces more than
        ``max_size`` bytes (the prefix stays buffered); asyncio.IncompleteReadError
        when the stream ends mid-message or before one.

        One receive splits up to a batch of the frames already there; the
        following calls hand them out without a socket call, and any other
        read gives them back to the socket first (nothing is reordered).
        """
        frames = self._frames
        if frames:
            if prefix_size == self._frames_prefix and len(frames[-1]) <= max_size:
                return frames.pop()
            self._unsplit()  # another framing: the socket decides, in order
        sock = self._sock
        conn = self._conn
        while not conn.closing:
            if self._drained and not sock.buffered:
                await self._wait_readable("read_msg")
                continue
            try:
                messages: list[bytes] = sock.recv_msgs(
                    _READ_AHEAD_FRAMES, prefix_size=prefix_size, max_size=max_size,
                    max_bytes=_READ_AHEAD_BYTES)
            except BlockingIOError:
                pass
            except _FastIncomplete as exc:
                self._eof = True
                raise _incomplete(exc) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            else:
                self._drained = not sock.buffered
                if len(messages) > 1:
                    self._frames = messages[:0:-1]  # the rest, last first
                    self._frames_prefix = prefix_size
                return messages[0]
            await self._wait_readable("read_msg")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", prefix_size)

    async def read_msgs(self, max_count: int = 1024, *, prefix_size: int = 4,
                        max_size: int = DEFAULT_MAX_MESSAGE,
                        max_bytes: Optional[int] = None) -> list[bytes]:
        """Wait for the next message and return it with every complete one
        already received after it, at most ``max_count`` (and, after the first,
        only while the payloads stay within ``max_bytes``): one wake per batch.
        Errors as read_msg(); an error after the first message is raised by the
        next call.
        """
        if self._frames:
            self._unsplit()
        sock = self._sock
        conn = self._conn
        while not conn.closing:
            if self._drained and not sock.buffered:
                await self._wait_readable("read_msgs")
                continue
            try:
                messages: list[bytes] = sock.recv_msgs(
                    max_count, prefix_size=prefix_size, max_size=max_size,
                    max_bytes=max_bytes)
                self._drained = not sock.buffered
                return messages
            except BlockingIOError:
                pass
            except _FastIncomplete as exc:
                self._eof = True
                raise _incomplete(exc) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait_readable("read_msgs")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", prefix_size)

    async def read_until(self, delimiter: Any, limit: int = 65536) -> bytes:
        """Read up to and including ``delimiter`` with StreamSocket.recv_until()'s
        rule: all of it within ``limit`` bytes.  asyncio.LimitOverrunError (the
        data stays buffered) past that, asyncio.IncompleteReadError when the
        stream ends first."""
        if self._frames:
            self._unsplit()
        sock = self._sock
        conn = self._conn
        while not conn.closing:
            if self._drained and not sock.buffered:
                await self._wait_readable("read_until")
                continue
            try:
                data: bytes = sock.recv_until(delimiter, limit)
                self._drained = not sock.buffered
                return data
            except BlockingIOError:
                pass
            except _FastIncomplete as exc:
                self._eof = True
                raise _incomplete(exc) from None
            except _FastOverrun as exc:
                raise asyncio.LimitOverrunError(str(exc), exc.consumed) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait_readable("read_until")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", None)

    async def readexactly_into(self, buffer: Any, nbytes: int = 0) -> int:
        """Fill the first ``nbytes`` bytes (0: all) of a writable buffer and
        return that count; asyncio.IncompleteReadError when the stream ends first.
        When cancelled, the bytes read so far stay in the socket's buffer (the
        buffer's contents are then undefined)."""
        if self._frames:
            self._unsplit()
        sock = self._sock
        conn = self._conn
        while not conn.closing:
            if self._drained and not sock.buffered:
                await self._wait_readable("readexactly_into")
                continue
            try:
                filled: int = sock.recv_exactly_into(buffer, nbytes)
                self._drained = not sock.buffered
                return filled
            except BlockingIOError:
                pass
            except _FastIncomplete as exc:
                self._eof = True
                raise _incomplete(exc) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait_readable("readexactly_into")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", nbytes or len(memoryview(buffer).cast("B")))


class StreamWriter:
    """asyncio.StreamWriter over a non-blocking fastsock StreamSocket: a write
    is tried at once, what the kernel does not take is kept and sent when the
    socket is writable; drain() waits while more than the high-water mark is
    kept, until no more than the low-water mark is."""

    def __init__(self, conn: _Connection, reader: Optional[StreamReader]) -> None:
        self._conn = conn
        self._sock = conn.sock
        self._reader = reader
        self._buffer = bytearray()
        self._writing = False  # registered with add_writer
        self._closing = False
        self._eof_pending = False
        self._eof_sent = False
        self._high = _HIGH_WATER
        self._low = _HIGH_WATER // 4
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._extra: dict[str, Any] = {"socket": conn.sock}
        for key, getter in (("sockname", conn.sock.getsockname),
                            ("peername", conn.sock.getpeername)):
            try:
                self._extra[key] = getter()
            except OSError:  # e.g. a peer already gone: asyncio says None too
                self._extra[key] = None
        conn.writer = self

    def __repr__(self) -> str:
        info = ["StreamWriter", f"fd={self._conn.fd}"]
        if self._closing:
            info.append("closing")
        return "<{}>".format(" ".join(info))

    @property
    def transport(self) -> "StreamWriter":
        """asyncio's writers expose their transport; here the writer is its own."""
        return self

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket`` (the fastsock socket), ``sockname``, ``peername``."""
        if name == "socket" and self._reader is not None:
            self._reader._unsplit()  # whoever reads the socket reads every byte
        return self._extra.get(name, default)

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """(low, high) water marks."""
        return self._low, self._high

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        """As asyncio's transports: high defaults to 64 KiB (4 × low when only
        low is given), low to high // 4."""
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low
        self._maybe_resume()

    # -- writing ------------------------------------------------------------

    def _check_writable(self) -> bool:
        if self._eof_pending or self._eof_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        # asyncio drops writes on a lost or closing connection silently
        return not (self._closing or self._conn.closed)

    def write(self, data: Any) -> None:
        """Send ``data`` now as far as the kernel takes it; keep the rest."""
        if self._eof_pending or self._eof_sent or self._closing or self._conn.closed:
            if not self._check_writable():  # (the common case tested inline: no call)
                return
        if not data:
            return
        if type(data) is not bytes:
            data = memoryview(data).cast("B")  # lengths in bytes, whatever the format
        if self._buffer:
            self._buffer += data
            return
        try:
            sent: int = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._conn.close(exc)
            return
        if sent < len(data):
            self._buffer += data[sent:]
            self._start_writing()

    def writelines(self, data: Iterable[Any]) -> None:
        """write() of the concatenated buffers."""
        self.write(b"".join(data))

    def write_msg(self, payload: Any, *, prefix_size: int = 4) -> None:
        """Write ``payload`` after its length as a big-endian ``prefix_size``-byte
        integer (1, 2, 4 or 8), the framing of read_msg(); OverflowError when
        the length does not fit."""
        header = _prefix(prefix_size)
        data = payload if type(payload) is bytes else memoryview(payload).cast("B")
        size = len(data)
        try:
            prefix = header.pack(size)
        except struct.error:
            raise OverflowError(f"message of {size} bytes does not fit a "
                                f"{prefix_size}-byte length prefix") from None
        if not self._check_writable():
            return
        buffer = self._buffer
        if buffer:
            buffer += prefix
            buffer += data
            return
        try:  # one sendmsg(), the payload not copied
            sent: int = self._sock.send_buffers([prefix, data])
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._conn.close(exc)
            return
        if sent < len(prefix):
            buffer += prefix[sent:]
            buffer += data
        else:
            buffer += data[sent - len(prefix):]
        if buffer:
            self._start_writing()

    def write_msgs(self, payloads: Iterable[Any], *, prefix_size: int = 4) -> None:
        """write_msg() of each payload, with one send."""
        pack = _prefix(prefix_size).pack
        parts = []
        for payload in payloads:
            data = payload if type(payload) is bytes else bytes(payload)
            try:
                parts.append(pack(len(data)))
            except struct.error:
                raise OverflowError(f"message of {len(data)} bytes does not fit a "
                                    f"{prefix_size}-byte length prefix") from None
            parts.append(data)
        self.write(b"".join(parts))

    def can_write_eof(self) -> bool:
        """True: a stream socket can be shut down for writing."""
        return True

    def write_eof(self) -> None:
        """Shut the sending side down once everything written is sent."""
        if self._eof_pending or self._eof_sent or self._closing or self._conn.closed:
            return
        self._eof_pending = True
        if not self._buffer:
            self._send_eof()

    def _send_eof(self) -> None:
        self._eof_pending = False
        self._eof_sent = True
        try:
            self._sock.shutdown(_stdlib.SHUT_WR)
        except OSError as exc:
            self._conn.close(exc)

    def _start_writing(self) -> None:
        if not self._writing:
            self._writing = True
            self._conn.loop.add_writer(self._conn.fd, self._on_writable)

    def _on_writable(self) -> None:
        buffer = self._buffer
        try:
            sent: int = self._sock.send(memoryview(buffer)[:_SEND_CHUNK])
        except BlockingIOError:
            return
        except OSError as exc:
            self._conn.close(exc)
            return
        del buffer[:sent]
        if buffer:
            self._maybe_resume()
            return
        self._writing = False
        self._conn.loop.remove_writer(self._conn.fd)
        self._maybe_resume()
        if self._eof_pending:
            self._send_eof()
        if self._closing:
            self._conn.close()

    def _maybe_resume(self) -> None:
        if len(self._buffer) <= self._low:
            waiters, self._drain_waiters = self._drain_waiters, []
            for fut in waiters:
                _wake(fut)

    def _connection_closed(self) -> None:
        self._buffer.clear()
        self._writing = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            _wake(fut)

    async def drain(self) -> None:
        """Wait while more than the high-water mark is waiting to be sent.
        Raises the error that ended the connection; ConnectionResetError once
        it is closed."""
        conn = self._conn
        if not (self._closing or conn.closed) and len(self._buffer) <= self._high:
            return  # the common case: nothing to wait for (a lost connection is closed)
        if conn.exception is not None:
            raise conn.exception
        if self._closing or conn.closed:
            await asyncio.sleep(0)  # as asyncio: let the close proceed
        while len(self._buffer) > self._high and not conn.closed:
            fut: asyncio.Future[None] = conn.loop.create_future()
            self._drain_waiters.append(fut)
            await fut
        if conn.exception is not None:
            raise conn.exception
        if conn.closed and not self._closing:
            raise ConnectionResetError("Connection lost")

    # -- closing ------------------------------------------------------------

    def close(self) -> None:
        """Close once what was written is sent; a pending read sees the end
        at once."""
        if self._closing or self._conn.closed:
            return
        self._closing = True
        self._conn.closing = True
        if self._reader is not None:
            self._reader._stop()
        if not self._buffer:
            # as asyncio, the descriptor goes on the next loop pass
            self._conn.loop.call_soon(self._conn.close)

    def abort(self) -> None:
        """Close now, dropping what is not yet sent (asyncio's transport.abort())."""
        if self._reader is not None:
            self._reader._stop()
        self._closing = True
        self._conn.closing = True
        self._conn.close()

    def is_closing(self) -> bool:
        """True once close() was called or the connection is lost."""
        return self._closing or self._conn.closed

    async def wait_closed(self) -> None:
        """Wait until the socket is closed; raises the error that ended it, if any."""
        await asyncio.shield(self._conn.closed_future)


def _streams(sock: Any, loop: asyncio.AbstractEventLoop,
             limit: int) -> tuple[StreamReader, StreamWriter]:
    conn = _Connection(sock, loop)
    reader = StreamReader(conn, limit)
    return reader, StreamWriter(conn, reader)


def _as_fastsock(sock: Any) -> Any:
    """A fastsock StreamSocket (of either implementation) as it is; a stdlib
    socket's descriptor taken over by one of the live implementation."""
    if isinstance(sock, _stdlib.socket):
        return fastsock.StreamSocket.from_socket(sock)  # refuses an SSLSocket
    return sock


def _check_ssl(ssl: Any) -> None:
    if ssl is not None and ssl is not False:
        raise ValueError("fastsock.aio does not do TLS: use asyncio.open_connection / "
                         "asyncio.start_server with ssl=")


async def _connect(loop: asyncio.AbstractEventLoop, sock: Any, address: Any) -> None:
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass
    fut: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)
    err = sock.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_ERROR)
    if err:
        raise OSError(err, f"Connect call failed {address!r}: {os.strerror(err)}")


def _set_nodelay(sock: Any) -> None:
    if sock.family in (_stdlib.AF_INET, _stdlib.AF_INET6):
        sock.setsockopt(_stdlib.IPPROTO_TCP, _stdlib.TCP_NODELAY, 1)  # as asyncio's transports


async def open_connection(host: Optional[str] = None, port: Optional[int] = None, *,
                          limit: int = _DEFAULT_LIMIT, ssl: Any = None, family: int = 0,
                          proto: int = 0, flags: int = 0, sock: Any = None,
                          local_addr: Optional[tuple[str, int]] = None,
                          server_hostname: Optional[str] = None,
                          ) -> tuple[StreamReader, StreamWriter]:
    """Connect by TCP, as asyncio.open_connection(), and return (reader, writer).

    ``sock``: a connected stream socket to use instead (a fastsock one of either
    implementation, or a stdlib one, whose descriptor is taken over).
    """
    _check_ssl(ssl)
    if server_hostname is not None:
        raise ValueError("server_hostname is only meaningful with ssl")
    loop = asyncio.get_running_loop()
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sock = _as_fastsock(sock)
        _set_nodelay(sock)
        return _streams(sock, loop, limit)
    if host is None and port is None:
        raise ValueError("host and port was not specified and no sock specified")
    infos = await loop.getaddrinfo(host, port, family=family, type=_stdlib.SOCK_STREAM,
                                   proto=proto, flags=flags)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    errors: list[OSError] = []
    for af, kind, pr, _, address in infos:
        candidate = fastsock.StreamSocket(af, kind, pr)
        try:
            candidate.setblocking(False)
            if local_addr is not None:
                candidate.bind(local_addr)
            await _connect(loop, candidate, address)
        except OSError as exc:
            candidate.close()
            errors.append(exc)
            continue
        except BaseException:
            candidate.close()
            raise
        _set_nodelay(candidate)
        return _streams(candidate, loop, limit)
    if len(errors) == 1:
        raise errors[0]
    raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


async def open_unix_connection(path: Optional[str] = None, *, limit: int = _DEFAULT_LIMIT,
                               ssl: Any = None, sock: Any = None,
                               ) -> tuple[StreamReader, StreamWriter]:
    """Connect to a Unix stream socket, as asyncio.open_unix_connection()."""
    _check_ssl(ssl)
    loop = asyncio.get_running_loop()
    if sock is not None:
        if path is not None:
            raise ValueError("path and sock can not be specified at the same time")
        return _streams(_as_fastsock(sock), loop, limit)
    if path is None:
        raise ValueError("no path and sock were specified")
    candidate = fastsock.StreamSocket(_stdlib.AF_UNIX)
    try:
        candidate.setblocking(False)
        await _connect(loop, candidate, os.fspath(path))
    except BaseException:
        candidate.close()
        raise
    return _streams(candidate, loop, limit)


class Server:
    """What start_server() returns: asyncio.Server's methods over listening
    fastsock sockets."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[Any],
                 callback: ClientConnectedCallback, limit: int, backlog: int,
                 unix_path: Optional[str] = None) -> None:
        self._loop = loop
        self._sockets = sockets
        self._callback = callback
        self._limit = limit
        self._backlog = backlog
        self._serving = False
        self._closed = False
        self._unix_path = unix_path
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving_forever: Optional[asyncio.Future[None]] = None
        self._idle: Optional[asyncio.Future[None]] = None
        self._shut: asyncio.Future[None] = loop.create_future()  # done by close()
        for sock in sockets:
            sock.setblocking(False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets (empty once closed)."""
        return tuple(self._sockets)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the server runs on."""
        return self._loop

    def is_serving(self) -> bool:
        """Whether connections are being accepted."""
        return self._serving

    async def start_serving(self) -> None:
        """Start accepting connections (start_server() does unless told not to)."""
        self._start()
        await asyncio.sleep(0)

    def _start(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: Any) -> None:
        # a bounded batch per readiness, as asyncio: the loop's other work goes on
        for _ in range(self._backlog):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # out of descriptors: stop listening a while rather than spin
                self._loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": exc, "socket": listener})
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(_ACCEPT_RETRY_DELAY, self._resume_accepting, listener)
                return
            self._serve(conn)

    def _resume_accepting(self, listener: Any) -> None:
        if self._serving and listener in self._sockets:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _serve(self, sock: Any) -> None:
        _set_nodelay(sock)
        reader, writer = _streams(sock, self._loop, self._limit)
        conn = reader._conn
        self._connections.add(conn)
        conn.on_close = lambda: self._forget(conn)
        result = self._callback(reader, writer)
        if asyncio.iscoroutine(result):
            task = self._loop.create_task(result)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._handler_done(t, writer))

    def _handler_done(self, task: "asyncio.Task[None]", writer: StreamWriter) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            writer.close()
            return
        exc = task.exception()
        if exc is not None:
            # as asyncio 3.12: reported, and the connection closed
            self._loop.call_exception_handler({
                "message": "Unhandled exception in client_connected_cb",
                "exception": exc, "transport": writer})
            writer.close()

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def close(self) -> None:
        """Stop listening and close the listening sockets; connections go on."""
        if self._closed:
            return
        self._closed = True
        self._serving = False
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []
        self._shut.set_result(None)
        if self._unix_path is not None:
            try:
                os.unlink(self._unix_path)
            except FileNotFoundError:
                pass
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()

    def close_clients(self) -> None:
        """Close every connection accepted by this server."""
        for conn in list(self._connections):
            if conn.writer is not None:
                conn.writer.close()

    def abort_clients(self) -> None:
        """Close every connection now, dropping what is not sent."""
        for conn in list(self._connections):
            conn.close()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections are (asyncio 3.12)."""
        await asyncio.shield(self._shut)
        if not self._connections:
            return
        if self._idle is None or self._idle.done():
            self._idle = self._loop.create_future()
        await asyncio.shield(self._idle)

    async def serve_forever(self) -> None:
        """Accept connections until cancelled (closes the server then)."""
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _listener(family: int, address: Any, backlog: int, reuse_address: Optional[bool],
              reuse_port: Optional[bool], proto: int = 0) -> Any:
    sock = fastsock.StreamSocket(family, _stdlib.SOCK_STREAM, proto)
    try:
        if family != _stdlib.AF_UNIX:
            if reuse_address is None or reuse_address:
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEPORT, 1)
            if family == _stdlib.AF_INET6:
                # as asyncio: an IPv6 listener does not take the IPv4 port too
                sock.setsockopt(_stdlib.IPPROTO_IPV6, _stdlib.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_server(client_connected_cb: ClientConnectedCallback,
                       host: Union[str, Sequence[str], None] = None,
                       port: Optional[int] = None, *, limit: int = _DEFAULT_LIMIT,
                       family: int = _stdlib.AF_UNSPEC, flags: int = _stdlib.AI_PASSIVE,
                       sock: Any = None, backlog: int = 100, ssl: Any = None,
                       reuse_address: Optional[bool] = None, reuse_port: Optional[bool] = None,
                       start_serving: bool = True) -> Server:
    """Start a TCP server, as asyncio.start_server(): ``client_connected_cb(reader,
    writer)`` is called (a coroutine function's result run as a task) for each
    connection.  ``sock``: a listening socket to use instead (fastsock or stdlib)."""
    _check_ssl(ssl)
    loop = asyncio.get_running_loop()
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sockets = [_as_fastsock(sock)]
    else:
        hosts: list[Optional[str]] = (
            [host] if host is None or isinstance(host, str) else list(host))
        infos = []
        for name in hosts:
            infos.extend(await loop.getaddrinfo(name, port, family=family,
                                                type=_stdlib.SOCK_STREAM, flags=flags))
        sockets = []
        seen = set()
        try:
            for af, _, pr, _, address in infos:
                if (af, address) in seen:
                    continue
                seen.add((af, address))
                sockets.append(_listener(af, address, backlog, reuse_address, reuse_port, pr))
        except BaseException:
            for made in sockets:
                made.close()
            raise
    server = Server(loop, sockets, client_connected_cb, limit, backlog)
    if start_serving:
        await server.start_serving()
    return server


async def start_unix_server(client_connected_cb: ClientConnectedCallback,
                            path: Optional[str] = None, *, limit: int = _DEFAULT_LIMIT,
                            sock: Any = None, backlog: int = 100, ssl: Any = None,
                            start_serving: bool = True, cleanup_socket: bool = True) -> Server:
    """Start a Unix stream server, as asyncio.start_unix_server(); a stale
    socket file at ``path`` is replaced, and removed when the server closes."""
    _check_ssl(ssl)
    loop = asyncio.get_running_loop()
    unix_path = None
    if sock is not None:
        if path is not None:
            raise ValueError("path and sock can not be specified at the same time")
        listener = _as_fastsock(sock)
    else:
        if path is None:
            raise ValueError("path was not specified, and no sock specified")
        path = os.fspath(path)
        if path[0] not in ("\0", "\x00"):
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.remove(path)
            except FileNotFoundError:
                pass
            if cleanup_socket:
                unix_path = path
        listener = _listener(_stdlib.AF_UNIX, path, backlog, None, None)
    server = Server(loop, [listener], client_connected_cb, limit, backlog, unix_path)
    if start_serving:
        await server.start_serving()
    return server
