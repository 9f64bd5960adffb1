"""The pure core of fastsock.aio's streams: the reads, writes and waits run
per request (the compiled twin is ``_aio_stream_c.pxi``).  ``aio.StreamReader``
and ``aio.StreamWriter`` add asyncio's remaining methods on top of the core of
their socket's implementation.

Every read first calls the socket (non-blocking); only when it says
``BlockingIOError`` does the coroutine wait for readability, and the readiness
callback moves the bytes into the socket's buffer and resumes the waiting task
at once (``resume_now``).
"""

from __future__ import annotations

import asyncio
import socket as _stdlib
import struct
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Optional, Union

from . import _common
from ._common import (
    DEFAULT_MAX_MESSAGE as DEFAULT_MAX_MESSAGE,
    IncompleteReadError as _FastIncomplete,
    LimitOverrunError as _FastOverrun,
)

DEFAULT_LIMIT = _common.AIO_DEFAULT_LIMIT
HIGH_WATER = _common.AIO_HIGH_WATER
SEND_CHUNK = _common.AIO_SEND_CHUNK
READ_AHEAD_FRAMES = _common.AIO_READ_AHEAD_FRAMES
READ_AHEAD_BYTES = _common.AIO_READ_AHEAD_BYTES

PREFIXES = {size: struct.Struct(code)
            for size, code in ((1, ">B"), (2, ">H"), (4, ">I"), (8, ">Q"))}


class Connection:
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
        self.reader: Any = None  # aio.StreamReader
        self.writer: Any = None  # aio.StreamWriter
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


def wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


# off: every wake goes through the loop's scheduling (tests run the faults both ways)
RESUME_INLINE = True


def resume_now(fut: "asyncio.Future[None]") -> None:
    """Complete ``fut`` and, when one task waits on it, run that task's step
    now instead of on the loop's next pass, as a Protocol's callback runs in
    the readiness callback.  The task's own wake-up is called, in its context
    (an event loop callback runs outside every task, so it may step one).  The
    saving: the loop's scheduling of the wake-up, a fifth of an echo request's
    instructions on asyncio's loop."""
    callbacks = fut._callbacks if RESUME_INLINE else None  # (callback, context) pairs
    if callbacks is not None and len(callbacks) == 1:
        wakeup, context = callbacks[0]
        fut.remove_done_callback(wakeup)
        fut.set_result(None)
        context.run(wakeup, fut)
    else:
        fut.set_result(None)


def serve(loop: asyncio.AbstractEventLoop, reader: Any,
          coro: "Coroutine[Any, Any, None]") -> "asyncio.Task[None]":
    """The task of a server's handler coroutine.  The compiled core's drives
    the handler's reads from the readiness callback (AioHandler); this core's
    task steps them all."""
    return loop.create_task(coro)


def prefix(prefix_size: int) -> struct.Struct:
    try:
        return PREFIXES[prefix_size]
    except KeyError:
        raise ValueError("prefix_size must be 1, 2, 4 or 8") from None


def incomplete(exc: Any) -> asyncio.IncompleteReadError:
    return asyncio.IncompleteReadError(exc.partial, exc.expected)


class ReaderCore:
    """The per-request part of aio.StreamReader.

    The bytes not yet returned live in the socket's own receive buffer
    (``sock.buffered``), which the framing methods read.
    """

    def __init__(self, conn: Connection, limit: int = DEFAULT_LIMIT) -> None:
        if limit <= 0:
            raise ValueError("Limit cannot be <= 0")
        self._conn = conn
        self._sock = conn.sock
        self._limit = limit
        self._eof = False
        self._waiter: Optional[asyncio.Future[None]] = None
        self._waits = 0  # waits for readability so far (tests count them)
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

    if TYPE_CHECKING:  # aio.StreamReader's: readuntil() with several separators
        async def _readuntil_any(self, seps: list[bytes]) -> bytes: ...

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
            wake(fut)

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
        self._waits += 1
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
            self._sock.recv_ahead(READ_AHEAD_BYTES)
        except BlockingIOError:
            return  # such a stale report: keep waiting
        except OSError as exc:
            self._lost(exc)  # the waiting read raises it
            return
        self._waiter = None
        resume_now(fut)

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
        pack = PREFIXES[self._frames_prefix].pack
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
                raise incomplete(exc) from None
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
                raise incomplete(exc) from None
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
                    READ_AHEAD_FRAMES, prefix_size=prefix_size, max_size=max_size,
                    max_bytes=READ_AHEAD_BYTES)
            except BlockingIOError:
                pass
            except _FastIncomplete as exc:
                self._eof = True
                raise incomplete(exc) from None
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
                raise incomplete(exc) from None
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
                raise incomplete(exc) from None
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
                raise incomplete(exc) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait_readable("readexactly_into")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", nbytes or len(memoryview(buffer).cast("B")))


class WriterCore:
    """The per-request part of aio.StreamWriter: a write is tried at once,
    what the kernel does not take is kept and sent when the socket is
    writable; drain() waits while more than the high-water mark is kept, until
    no more than the low-water mark is."""

    def __init__(self, conn: Connection, reader: Optional[ReaderCore]) -> None:
        self._conn = conn
        self._sock = conn.sock
        self._reader = reader
        self._buffer = bytearray()
        self._writing = False  # registered with add_writer
        self._closing = False
        self._eof_pending = False
        self._eof_sent = False
        self._high = HIGH_WATER
        self._low = HIGH_WATER // 4
        self._drain_waiters: list[asyncio.Future[None]] = []
        conn.writer = self

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

    def write_msg(self, payload: Any, *, prefix_size: int = 4) -> None:
        """Write ``payload`` after its length as a big-endian ``prefix_size``-byte
        integer (1, 2, 4 or 8), the framing of read_msg(); OverflowError when
        the length does not fit."""
        header = prefix(prefix_size)
        data = payload if type(payload) is bytes else memoryview(payload).cast("B")
        size = len(data)
        try:
            packed = header.pack(size)
        except struct.error:
            raise OverflowError(f"message of {size} bytes does not fit a "
                                f"{prefix_size}-byte length prefix") from None
        if not self._check_writable():
            return
        buffer = self._buffer
        if buffer:
            buffer += packed
            buffer += data
            return
        try:  # one sendmsg(), the payload not copied
            sent: int = self._sock.send_buffers([packed, data])
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._conn.close(exc)
            return
        if sent < len(packed):
            buffer += packed[sent:]
            buffer += data
        else:
            buffer += data[sent - len(packed):]
        if buffer:
            self._start_writing()

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
            sent: int = self._sock.send(memoryview(buffer)[:SEND_CHUNK])
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
                wake(fut)

    def _connection_closed(self) -> None:
        self._buffer.clear()
        self._writing = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            wake(fut)

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
