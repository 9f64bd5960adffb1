"""The binary file of StreamSocket.makefile() in the pure-Python twin (pair:
_file_c.pxi): a buffered file that reads the socket's own receive buffer.

It never imports the compiled module.
"""

from __future__ import annotations

import io
from operator import index as _index
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

from ._base_py import _writable_bytes

if TYPE_CHECKING:
    from ._stream_py import StreamSocket

# a read into the receive buffer asks the kernel for up to this many bytes
_CHUNK = 65536
# peek() returns at most this many bytes, or as many as it is asked for
_PEEK_MOST = io.DEFAULT_BUFFER_SIZE


def _size(size: Any) -> int:
    """A read size as io.BufferedReader takes it: None is -1; negative means
    no limit."""
    if size is None:
        return -1
    if type(size) is int:
        return size
    try:
        number: int = _index(size)
    except TypeError:
        raise TypeError(f"argument should be integer or None, "
                        f"not '{type(size).__name__}'") from None
    return number


def _writable(buffer: Any, method: str) -> memoryview:
    try:
        return _writable_bytes(buffer, 0, method)
    except TypeError:
        raise TypeError(f"{method}() argument must be read-write bytes-like object, "
                        f"not {type(buffer).__name__}") from None


class SocketFile(io.BufferedIOBase):
    """The buffered binary file StreamSocket.makefile() returns for reading ("rb",
    "rwb"; the binary file under a text file).

    It has no buffer of its own: it reads the socket's receive buffer, the one recv,
    recv_until, recv_exactly and recv_msg use, so mixing its reads with theirs, in any
    order, never loses or reorders a byte, and take_buffered() returns every byte
    received and not yet read.  read(n) and readinto() wait until they have all the
    bytes or the stream ends; readline() returns what is left at the end of the
    stream; read1(), readinto1() and peek() wait for the kernel at most once.  The
    socket's timeout bounds each wait for data, as in the stdlib's file; a
    TimeoutError, a signal handler's exception or a non-blocking socket's
    BlockingIOError leaves every byte received in the buffer, and reading again goes
    on where it stopped.  Writes ("rwb") go through a buffer flushed with sendall
    semantics, as the stdlib's.
    """

    def __init__(self, sock: StreamSocket, mode: str, writer: Optional[io.BufferedWriter],
                 line_chunks: bool) -> None:
        super().__init__()
        self._sock: Optional[StreamSocket] = None  # closed, for the finalizer, until opened
        self._writer = writer
        sock._file_opened()
        self._sock = sock
        self._mode = mode
        # under a text file: read1() stops after a line, so the text layer
        # never holds bytes past the line it returns
        self._line_chunks = line_chunks

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} name={self.name}>"

    # -- state ------------------------------------------------------------------

    def _reading(self, method: str) -> StreamSocket:
        sock = self._sock
        if sock is None:
            raise ValueError(f"{method} of closed file")
        return sock

    def _open(self) -> StreamSocket:
        sock = self._sock
        if sock is None:
            raise ValueError("I/O operation on closed file.")
        return sock

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return self._sock is None

    @property
    def name(self) -> int:
        """The socket's descriptor, -1 once the file is closed (as the stdlib's)."""
        sock = self._sock
        return -1 if sock is None else sock.fileno()

    @property
    def mode(self) -> str:
        """"rb" or "rwb"."""
        return self._mode

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self._open().fileno()

    def isatty(self) -> bool:
        """False: a socket is no terminal."""
        self._open()
        return False

    def readable(self) -> bool:
        """True: the file reads."""
        self._open()
        return True

    def writable(self) -> bool:
        """True when the file was opened for writing too ("rwb")."""
        self._open()
        return self._writer is not None

    def seekable(self) -> bool:
        """False: a socket cannot seek."""
        self._open()
        return False

    def close(self) -> None:
        """Flush what is written, then close the file; the socket closes with it only
        if its close() was called while files were open and this was the last of them.
        What the socket has received stays in its buffer for its own receive calls.
        """
        sock = self._sock
        if sock is None:
            return
        writer = self._writer
        try:
            if writer is not None:
                writer.close()  # flushes, then lets its reference on the socket go
        finally:
            self._sock = None
            self._writer = None
            sock._file_closed()

    def detach(self) -> io.RawIOBase:
        """Not supported: the file has no raw stream (io.UnsupportedOperation)."""
        raise io.UnsupportedOperation("detach")

    # -- reading ----------------------------------------------------------------

    def _fill(self, sock: StreamSocket, need: int) -> None:
        """Receive into the socket's buffer until it holds ``need`` bytes (-1:
        until the end of the stream) or the stream ends; each wait has the
        socket's timeout.  Whatever stops it, the bytes stay buffered."""
        stdlib_sock = sock._sock

        def fill() -> None:
            while need < 0 or len(sock._rbuf) - sock._rpos < need:
                data = stdlib_sock.recv(_CHUNK)
                if not data:
                    sock._raise_if_closed()  # closed meanwhile: report the close, not an end
                    return
                sock._append(data)

        sock._call(fill)  # the caller has the receive buffer

    def read(self, size: Optional[int] = -1, /) -> bytes:
        """Read ``size`` bytes, fewer only at the end of the stream; with None or a
        negative size, read until the end of the stream."""
        n = _size(size)
        sock = self._reading("read")
        if n < -1:
            raise ValueError("read length must be non-negative or -1")
        sock._begin_receive()
        try:
            if not 0 <= n <= len(sock._rbuf) - sock._rpos:
                self._fill(sock, n)
            return sock._take_at(sock._rpos, len(sock._rbuf) - sock._rpos if n < 0 else n)
        finally:
            sock._end_receive()

    def read1(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (negative: all it holds): the bytes buffered, or
        else what one receive from the kernel brings; b"" at the end of the stream."""
        n = size if type(size) is int else _index(size)
        sock = self._reading("read")
        if n == 0:
            return b""
        sock._begin_receive()
        try:
            if len(sock._rbuf) == sock._rpos:
                self._fill(sock, 1)
            rbuf, pos = sock._rbuf, sock._rpos
            take = len(rbuf) - pos
            if 0 < n < take:
                take = n
            if self._line_chunks:
                found = rbuf.find(b"\n", pos, pos + take)
                if found >= 0:
                    take = found + 1 - pos
            return sock._take_at(pos, take)
        finally:
            sock._end_receive()

    def readinto(self, buffer: Any, /) -> int:
        """Fill ``buffer`` (a writable bytes-like object) and return the count, which is
        smaller only at the end of the stream."""
        view = _writable(buffer, "readinto")
        try:
            self._reading("readinto")
            data = self.read(len(view))
            view[:len(data)] = data
        finally:
            view.release()
        return len(data)

    def readinto1(self, buffer: Any, /) -> int:
        """Read into ``buffer`` the bytes buffered, or else what one receive from the
        kernel brings, and return the count; 0 at the end of the stream."""
        view = _writable(buffer, "readinto1")
        try:
            self._reading("readinto")
            data = self.read1(len(view)) if len(view) else b""
            view[:len(data)] = data
        finally:
            view.release()
        return len(data)

    def peek(self, size: int = 0, /) -> bytes:
        """The bytes the next read returns, without consuming them: those buffered (at
        most max(size, 8192)), or else what one receive from the kernel brings; b"" at
        the end of the stream."""
        n = size if type(size) is int else _index(size)
        sock = self._reading("peek")
        sock._begin_receive()
        try:
            if len(sock._rbuf) == sock._rpos:
                self._fill(sock, 1)
            pos = sock._rpos
            return bytes(sock._rbuf[pos:pos + max(n, _PEEK_MOST)])
        finally:
            sock._end_receive()

    def readline(self, size: Optional[int] = -1, /) -> bytes:
        """Read a line, up to and including b"\\n", at most ``size`` bytes (None or
        negative: no limit); at the end of the stream, what is left (b"" once nothing
        is)."""
        limit = _size(size)
        sock = self._reading("readline")
        sock._begin_receive()
        try:
            rbuf = sock._rbuf
            if rbuf:
                pos = sock._rpos
                end = len(rbuf) if limit < 0 else min(len(rbuf), pos + limit)
                found = rbuf.find(b"\n", pos, end)
                if found >= 0:
                    return sock._take_at(pos, found + 1 - pos)
                if end - pos == limit:
                    return sock._take_at(pos, limit)
            if limit == 0:
                return b""
            return self._readline_slow(sock, limit)
        finally:
            sock._end_receive()

    def _readline_slow(self, sock: StreamSocket, limit: int) -> bytes:
        stdlib_sock = sock._sock

        def receive() -> bytes:
            scanned = 0  # bytes after the read position known to hold no newline
            while True:
                rbuf, pos = sock._rbuf, sock._rpos
                held = len(rbuf) - pos
                window = held if limit < 0 else min(held, limit)
                found = rbuf.find(b"\n", pos + scanned, pos + window)
                if found >= 0:
                    return sock._take_at(pos, found + 1 - pos)
                if held >= limit >= 0:
                    return sock._take_at(pos, limit)
                scanned = window
                data = stdlib_sock.recv(_CHUNK)
                if not data:
                    sock._raise_if_closed()
                    return sock._take_all()
                sock._append(data)

        line: bytes = sock._call(receive)  # the caller has the receive buffer
        return line

    def readlines(self, hint: Optional[int] = -1, /) -> list[bytes]:
        """The lines up to the end of the stream, or until they hold more than
        ``hint`` bytes (the stdlib file's rule)."""
        most = _size(hint)
        lines = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if 0 < most < total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        self._open()
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    # -- writing ----------------------------------------------------------------

    def _writing(self, method: str) -> io.BufferedWriter:
        writer = self._writer
        if writer is None:
            if self._sock is None:
                raise ValueError(f"{method} to closed file")
            raise io.UnsupportedOperation(method)
        return writer

    def write(self, data: Any, /) -> int:
        """Buffer ``data`` for sending (mode "rwb") and return its length; a full
        buffer is sent first."""
        return self._writing("write").write(data)

    def writelines(self, lines: Iterable[Any], /) -> None:
        """write() each of ``lines``."""
        write = self._writing("write").write
        for line in lines:
            write(line)

    def flush(self) -> None:
        """Send what is written and not yet sent."""
        if self._sock is None:
            raise ValueError("I/O operation on closed file.")
        if self._writer is not None:
            self._writer.flush()

    # -- what a socket cannot do --------------------------------------------------

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Not supported (io.UnsupportedOperation)."""
        raise io.UnsupportedOperation("File or stream is not seekable.")

    def tell(self) -> int:
        """Not supported (io.UnsupportedOperation)."""
        raise io.UnsupportedOperation("seek")

    def truncate(self, size: Optional[int] = None, /) -> int:
        """Not supported (io.UnsupportedOperation)."""
        raise io.UnsupportedOperation("truncate")
