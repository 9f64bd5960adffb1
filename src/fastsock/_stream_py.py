"""Stream sockets of the pure-Python twin (pair: _stream_c.pxi): StreamSocket
with its receive buffer, framing, vectored sends and sendfile.

It never imports the compiled module.
"""

from __future__ import annotations

import errno
import fcntl
import io
import math
import os
import select
import signal
import socket as _stdlib
import struct
import threading
import termios
from itertools import islice
from operator import index as _index
from time import monotonic as _monotonic
from typing import Any, Iterable, Iterator, Literal, Optional, Tuple, overload

from . import _common, _makefile
from ._base_py import (
    _NOSIGNAL,
    _SSIZE_MAX,
    _closed_error,
    _flags,
    _positive,
    _readable_bytes,
    _Socket,
    _Steps,
    _writable_bytes,
)
from ._common import (
    DEFAULT_MAX_MESSAGE,
    RECV_BUFFER_KEEP,
    SENDFILE_CHUNK,
    SENDFILE_READ_CHUNK,
    SENDFILE_UNSUPPORTED,
    SOCK_STREAM,
    SUPPORTED_FAMILIES,
    IncompleteReadError,
    LimitOverrunError,
    MessageTooLargeError,
)
from ._file_py import SocketFile


# -- sizes, headers and argument checks ---------------------------------------------

# A read into the receive buffer asks the kernel for up to this many bytes;
# a payload that has not fully arrived is read straight into its result.
_CHUNK = 65536
# A receive that stops past this many consumed bytes, with no more left than
# it consumed, copies what is left to a new buffer: a large message or line
# already returned is not kept alive by the few bytes after it.  Each copy is
# at most what was consumed and drops it, so the cost stays linear; the
# buffer then keeps at most about RECV_BUFFER_KEEP bytes, or four times what
# it holds (docs/stream-fast-paths.md, "Memory").
_COMPACT_MIN = RECV_BUFFER_KEEP // 4
# A socket that can give up part-way (non-blocking, or with a timeout) whose
# receive buffer already holds more than this of a large frame completes the
# frame in the buffer (see _gathers); its reads then ask for up to
# _GATHER_CHUNK bytes at a time.
_GATHER_MIN = 65536
_GATHER_CHUNK = 1 << 20
_IOV_MAX: int = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024
if _IOV_MAX <= 0:
    _IOV_MAX = 1024
_MSG_PEEK: int = int(_stdlib.MSG_PEEK)
_FIONREAD: int = termios.FIONREAD
_INT = struct.Struct("i")
_INT_ZERO = bytes(_INT.size)
_HEADERS = {size: struct.Struct(">" + code) for size, code in
            ((1, "B"), (2, "H"), (4, "I"), (8, "Q"))}
_SIGPIPE = {signal.SIGPIPE}
# how often a wait that a signal cannot interrupt looks whether close() came
_CLOSE_CHECK_SECONDS = 0.05


def _prefix_struct(prefix_size: Any) -> struct.Struct:
    header = _HEADERS.get(prefix_size) if type(prefix_size) is int else None
    if header is None:
        size = _index(prefix_size)
        header = _HEADERS.get(size)
        if header is None:
            raise ValueError("prefix_size must be 1, 2, 4 or 8")
    return header

class StreamSocket(_Socket):
    """A TCP (AF_INET, AF_INET6), Unix stream (AF_UNIX) or vsock stream (AF_VSOCK)
    socket, like a stdlib socket of type SOCK_STREAM.

    Made as a stdlib socket is, ``(family=AF_INET, type=SOCK_STREAM, proto=0, fileno=None)``
    (another type: ValueError; a family it does not take: OSError (EAFNOSUPPORT) naming
    the family); its timeout starts as socket.getdefaulttimeout(), and its
    sends never raise SIGPIPE.  Its framing calls (recv_exactly, recv_until, recv_msg,
    recv_msgs) may read past what they return: those bytes wait in the socket's receive
    buffer (``buffered``), and every receive call returns them first.  Once a receive
    call has returned, the buffer keeps at most 256 KiB of memory, or four times the
    bytes it holds if that is more: a large message or line already returned is not
    kept alive.
    """

    # The receive buffer: bytes taken from the kernel past what a call
    # returns stay in ``_rbuf[_rpos:]``, and every receive call is served from
    # there first.  ``_rbuf`` is empty exactly when nothing is buffered (and
    # ``_rpos`` is then 0).  A buffered receive (recv_exactly, recv_until,
    # the message calls) sets ``_receiving`` for its whole duration: another
    # receive on the socket meanwhile raises RuntimeError instead of racing it
    # for the buffer.  Taking the buffer is one atomic step (``_claim``, a
    # lock tried without waiting), so two threads never both have it, with or
    # without a GIL; the buffer is touched only by the call that has it.  An
    # error kept for the next call (``_deferred``, see _Socket) is raised once
    # the bytes before it are returned.  The hot paths test ``if self._rbuf or
    # self._receiving or self._deferred`` (a hint: the claim decides).
    # ``_files`` counts the files of makefile() that are open (the stdlib's
    # _io_refs); close() while any is open only sets ``_close_requested``,
    # and the last file to close closes the socket.
    __slots__ = ("_rbuf", "_rpos", "_receiving", "_claim", "_files", "_close_requested")
    _KIND = SOCK_STREAM
    _FAMILIES = SUPPORTED_FAMILIES

    def _setup(self, sock: _stdlib.socket) -> None:
        super()._setup(sock)
        self._rbuf = bytearray()
        self._rpos = 0
        self._receiving = False
        self._claim = threading.Lock()
        self._files = 0
        self._close_requested = False

    # -- files ------------------------------------------------------------------

    @overload
    def makefile(  # type: ignore[overload-overlap]  # (buffering 0 comes first)
            self, mode: _makefile.BinaryMode, buffering: Literal[0], *,
                 encoding: None = None, errors: None = None,
                 newline: None = None) -> _makefile.SocketIO: ...

    @overload
    def makefile(self, mode: _makefile.ReadingBinaryMode, buffering: Optional[int] = None,
                 *, encoding: None = None, errors: None = None,
                 newline: None = None) -> SocketFile: ...

    @overload
    def makefile(self, mode: _makefile.WritingBinaryMode, buffering: Optional[int] = None,
                 *, encoding: None = None, errors: None = None,
                 newline: None = None) -> io.BufferedWriter: ...

    @overload
    def makefile(self, mode: _makefile.TextMode = "r", buffering: Optional[int] = None, *,
                 encoding: Optional[str] = None, errors: Optional[str] = None,
                 newline: Optional[str] = None) -> io.TextIOWrapper: ...

    @overload
    def makefile(self, mode: str, buffering: Optional[int] = None, *,
                 encoding: Optional[str] = None, errors: Optional[str] = None,
                 newline: Optional[str] = None) -> io.IOBase: ...

    def makefile(self, mode: str = "r", buffering: Optional[int] = None, *,
                 encoding: Optional[str] = None, errors: Optional[str] = None,
                 newline: Optional[str] = None) -> Any:
        """A file object reading from and writing to the socket, as socket.makefile():
        mode "r", "w" or "rw", with "b" for binary; ``buffering`` 0 for an unbuffered
        binary file, else the size of a writing file's buffer; ``encoding``, ``errors``
        and ``newline`` for text, as for io.TextIOWrapper.  OSError (EBADF) when the
        socket is closed.

        A reading file has no buffer of its own: it reads the socket's receive buffer,
        so its reads and the socket's receive calls (recv, recv_until, recv_exactly,
        recv_msg, ...) can be mixed in any order without losing or reordering a byte,
        and take_buffered() returns every byte received and not yet read.  A text
        file's readline() and iteration take no byte past the line they return (lines
        ending in b"\\n", in an encoding where that byte is always the newline: UTF-8,
        ASCII, Latin-1); its read(n) may keep the rest of the current line, which only
        it returns.  The socket's timeout bounds each wait for data, as in the stdlib's
        file; after a TimeoutError nothing is lost and reading again goes on.  close()
        of the socket while files are open takes effect when the last of them closes.
        """
        return _makefile.open_file(self, SocketFile, mode, buffering, encoding, errors,
                                   newline)

    def _file_opened(self) -> None:
        self._raise_if_closed()
        self._files += 1

    def _file_closed(self) -> None:
        if self._files > 0:
            self._files -= 1
        if self._close_requested and not self._files:
            self.close()

    def close(self) -> None:
        """Close the socket, as socket.close(); a no-op when it is already closed.
        While files made by makefile() are open, it closes when the last of them does,
        and works as before until then, as the stdlib's.

        A call blocked on the socket in another thread is woken (a signal to its
        thread) and raises OSError (EBADF); the descriptor is closed when the last such
        call returns, so none acts on a reused descriptor.  Nothing is done to the
        connection itself: a forked child or a duplicated descriptor sharing it goes
        on undisturbed.  The buffered bytes are dropped.  Afterwards every call that
        uses the descriptor raises OSError (EBADF), recv(0) and a recv_into() of 0
        bytes too (the stdlib's return b"" and 0 without looking).
        """
        if self._files:
            self._close_requested = True
            return
        super().close()

    def _check_handoff(self) -> None:
        held = 0
        if self._claim.acquire(blocking=False):  # else a receive has them
            held = len(self._rbuf) - self._rpos
            self._claim.release()
            if not held:
                return
        raise RuntimeError(
                f"{held} received bytes are still buffered in this socket: take them "
                "with take_buffered() before handing the descriptor over")

    def take_buffered(self) -> bytes:
        """Remove and return the bytes received but not yet returned by any call
        (b"" when none): what recv_until, recv_msg and the other buffered
        receives read past their result.  detach() and to_socket() refuse to
        hand the descriptor over while any are held, so they are never lost:
        pass them on with it (for TLS, feed them to ``ssl.MemoryBIO``)."""
        self._begin_receive()
        try:
            return self._take_all()
        finally:
            self._end_receive()

    def unrecv(self, data: Any, /) -> None:
        """Put ``data`` back in front of the received bytes: the next receive of
        any kind returns it first, then what was buffered, then the kernel's.  A
        layer that read ahead (a parser, a protocol sniffer, a reader that split
        messages in advance) gives back what it will not use.  OSError (EBADF)
        when the socket is closed; RuntimeError during another receive."""
        data = _readable_bytes(data).tobytes()
        self._begin_receive()
        try:
            if self._sock.fileno() == -1:
                raise _closed_error()
            self._unread(data)
        finally:
            self._end_receive()
        if self._sock.fileno() == -1:  # a close() meanwhile left the buffer to us
            self._forget_received()

    def recv_ahead(self, max_bytes: int = 65536, /) -> int:
        """Receive up to ``max_bytes`` into the socket's receive buffer instead of
        returning them, and return how many arrived (0 at the end of the stream):
        every receive call returns them next, after the bytes already buffered.  It
        waits as recv() does (BlockingIOError when non-blocking and nothing came).
        An event loop's readiness callback calls it, so that the readiness is used
        up when the callback returns and the reader's own calls find the bytes
        where the framing calls read them.  OSError (EBADF) when the socket is
        closed; RuntimeError during another receive."""
        size = _index(max_bytes)
        if size <= 0:
            raise ValueError("max_bytes must be positive")
        self._begin_receive()
        try:
            data: bytes = self._call(self._sock.recv, size)
            if not data and self._sock.fileno() == -1:
                raise _closed_error()  # closed meanwhile: report the close, not an end
            self._append(data)
        finally:
            self._end_receive()
        if self._sock.fileno() == -1:  # a close() meanwhile left the buffer to us
            self._forget_received()
        return len(data)

    def _begin_receive(self) -> None:
        if not self._claim.acquire(blocking=False):
            raise RuntimeError("another receive call is in progress on this socket")
        self._receiving = True

    def _end_receive(self) -> None:
        self._receiving = False
        self._claim.release()

    def _forget_received(self) -> None:
        if self._claim.acquire(blocking=False):  # else the bytes are that call's
            self._rbuf = bytearray()  # whatever was buffered goes with the socket
            self._rpos = 0
            self._claim.release()

    def listen(self, backlog: int = 128) -> None:
        """Listen for connections, queueing up to ``backlog`` (default 128; negative
        counts as 0), as socket.listen().
        """
        self._sock.listen(backlog)

    def accept(self) -> Tuple["StreamSocket", Any]:
        """Wait for a connection and return ``(StreamSocket, address)``, as
        socket.accept().

        The new socket's timeout is socket.getdefaulttimeout() (None unless set),
        whatever this one's is, and it is not inheritable.
        """
        return self._accept_as(StreamSocket)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``, as socket.sendall(): the timeout bounds the whole call.
        Never raises SIGPIPE.  When it stops part-way on a non-blocking socket
        (BlockingIOError) or at the deadline (TimeoutError), the exception's
        ``characters_written`` says how many bytes went out; after another error an
        unknown part of the data may have been sent.
        """
        view = _readable_bytes(data)
        try:
            send_flags = _flags(flags)
            if len(view):
                self._sendall([view], send_flags)
            else:  # as the stdlib's: the kernel is asked once (a pending error shows)
                try:
                    self._call(self._sock.send, view, send_flags)
                except TimeoutError as exc:
                    # the stdlib's wait for room came first and timed out: nothing
                    # went out, as a partial sendall's exception says
                    _common.note_written(exc, 0)
                    raise
        finally:
            view.release()

    # -- the receive buffer ---------------------------------------------------

    @property
    def buffered(self) -> int:
        """How many received bytes the socket holds that no call has returned yet.

        The next receive call returns them without asking the kernel.  A selector cannot
        see them: check this before waiting for readability.  While a receive call
        runs in another thread the bytes are that call's: 0.
        """
        if not self._claim.acquire(blocking=False):
            return 0
        try:
            return len(self._rbuf) - self._rpos
        finally:
            self._claim.release()

    def _take_at(self, start: int, size: int) -> bytes:
        """Consume the buffer up to ``start + size`` and return the bytes from ``start``."""
        rbuf = self._rbuf
        end = start + size
        if end < len(rbuf):
            data = bytes(rbuf[start:end])
            if end > _COMPACT_MIN and end + end >= len(rbuf):
                self._rbuf = rbuf[end:]  # let the consumed bytes go
                self._rpos = 0
            else:
                self._rpos = end
            return data
        data = bytes(rbuf[start:]) if start else bytes(rbuf)
        self._rbuf = bytearray()
        self._rpos = 0
        return data

    def _take_all(self) -> bytes:
        return self._take_at(self._rpos, len(self._rbuf))

    def _skip(self, size: int) -> None:
        pos = self._rpos + size
        rbuf = self._rbuf
        if pos < len(rbuf):
            if pos > _COMPACT_MIN and pos + pos >= len(rbuf):
                self._rbuf = rbuf[pos:]  # as in _take_at
                self._rpos = 0
            else:
                self._rpos = pos
        else:
            self._rbuf = bytearray()
            self._rpos = 0

    def _append(self, data: bytes) -> None:
        rbuf = self._rbuf
        if self._rpos:
            del rbuf[:self._rpos]  # compact before growing
            self._rpos = 0
        rbuf += data

    def _unread(self, data: bytes) -> None:
        """Put bytes already taken from the kernel back in front of the buffer."""
        if not data or self._sock.fileno() == -1:
            return  # a closed socket has nothing to read
        rbuf = self._rbuf
        self._rbuf = bytearray(data) + rbuf[self._rpos:] if rbuf else bytearray(data)
        self._rpos = 0

    def _fill_until(self, need: int, deadline: Optional[float] = None) -> None:
        """Receive into the buffer until it holds ``need`` bytes; at EOF, raise
        IncompleteReadError with everything buffered (consumed).  ``deadline``:
        the call's, when this is not its first wait (see _Steps)."""
        if not self._fill_frame(need, deadline):
            raise IncompleteReadError(self._take_all(), need)

    # -- frames that arrive in pieces ---------------------------------------------
    # A large frame (recv_exactly, recv_exactly_into, recv_msg, recv_msgs) is
    # read straight into its result.  When the call gives up part-way
    # (BlockingIOError, TimeoutError, a signal handler's exception) the bytes
    # it took go back to the receive buffer, and the next call would copy
    # them into a new result and back again: a frame arriving over K
    # readiness events would cost O(K x size).  So once the buffer already
    # holds more than _GATHER_MIN bytes of the frame, on a socket that can
    # give up part-way, the frame is completed in the buffer itself (a
    # bytearray, which grows geometrically) and copied out once, when whole:
    # every call only adds what arrived, and whatever happens every byte
    # taken is already where the next call looks.  A blocking socket, and
    # the first try at a frame, keep the straight read (no extra copy).
    # The compiled twin does the same (_gathers, _fill_frame).

    def _gathers(self, have: int) -> bool:
        """Whether a frame of which the buffer holds ``have`` bytes is
        completed in the buffer (_fill_frame) rather than in its result."""
        return have > _GATHER_MIN and self._sock.gettimeout() is not None

    def _fill_frame(self, need: int, deadline: Optional[float] = None) -> bool:
        """Receive into the buffer until it holds ``need`` bytes: True, or False
        at EOF.  On any error the bytes read so far stay buffered.
        ``deadline``: as for _fill_until."""
        steps = _Steps(self._sock, deadline, self._twins)

        def fill() -> bool:
            while True:
                avail = len(self._rbuf) - self._rpos
                if avail >= need:
                    return True
                data = steps.sock().recv(max(_CHUNK, min(need - avail, _GATHER_CHUNK)))
                if not data:
                    self._raise_if_closed()  # closed meanwhile: report the close, not an end
                    return False
                self._append(data)

        try:
            done: bool = self._call(fill)
        finally:
            steps.release()
        return done

    def _queued(self) -> int:
        """How many received bytes the kernel holds for this socket (0 if unknown)."""
        try:
            queued: int = _INT.unpack(fcntl.ioctl(self._sock.fileno(), _FIONREAD, _INT_ZERO))[0]
        except OSError:
            return 0
        return queued

    def _fill_queued(self, size: int) -> bool:
        """Move ``size`` bytes that the kernel already holds into the buffer.

        False when that fails (the socket is gone: the next call says so).
        """
        try:
            data = self._call(self._sock.recv, size)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:  # kept for the next call: the kernel says it once
            if exc.errno is None or self._sock.fileno() == -1:
                raise
            self._defer(exc)
            return False
        if not data:
            return False
        self._append(data)
        return True

    def _read_into(self, view: memoryview, got: int, head: bytes,
                   deadline: Optional[float] = None) -> int:
        """Receive straight into ``view[got:]`` until it is full or the stream
        ends, and return how much of ``view`` is filled.  When the call fails
        part-way, ``head`` and ``view[:got]`` go back into the receive buffer.
        ``deadline``: the call's, when this is not its first wait."""
        total = len(view)
        steps = _Steps(self._sock, deadline, self._twins)

        def read() -> None:
            nonlocal got
            while got < total:
                received = steps.sock().recv_into(view[got:])
                if not received:
                    self._raise_if_closed()
                    break
                got += received

        try:
            self._call(read)
        except BaseException:
            self._unread(head + view[:got].tobytes())
            raise
        finally:
            steps.release()
        return got

    # -- receiving ------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive up to ``bufsize`` bytes, as socket.recv(); b"" at the end of the
        stream.

        Bytes already in the socket's receive buffer (``buffered``) are returned first,
        without asking the kernel (of the flags only MSG_PEEK then counts).
        RuntimeError while a framing call (recv_exactly, recv_until, recv_msg,
        recv_msgs) is in progress.
        """
        if self._rbuf or self._receiving or self._deferred:
            held = self._recv_buffered(bufsize, flags)
            if held is not None:
                return held
        data: bytes = self._call(self._sock.recv, bufsize, flags)
        if not data and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        return data

    def _recv_buffered(self, bufsize: Any, flags: Any, method: str = "recv") -> Optional[bytes]:
        """What the buffer holds, or None when it turns out empty (another
        thread took it): the kernel is next."""
        size: int = bufsize if type(bufsize) is int else _index(bufsize)
        if not -_SSIZE_MAX - 1 <= size <= _SSIZE_MAX:  # as a C conversion
            raise OverflowError("Python int too large to convert to C ssize_t")
        peek = (flags if type(flags) is int else _index(flags)) & _MSG_PEEK
        if size < 0:  # after converting both arguments, as the stdlib
            raise ValueError(f"negative buffersize in {method}")
        return self._buffered_bytes(size, peek)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive up to ``nbytes`` bytes (0: the buffer's size) into a writable buffer
        and return how many were written, as socket.recv_into(); 0 at the end of the
        stream.  Buffered bytes are returned first, as by recv(), with the same
        RuntimeError.
        """
        if self._rbuf or self._receiving or self._deferred:
            held = self._recv_into_buffered(buffer, nbytes, flags)
            if held >= 0:
                return held
        n: int = self._call(self._sock.recv_into, buffer, nbytes, flags)
        if not n and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        return n

    def _recv_into_buffered(self, buffer: Any, nbytes: Any, flags: Any,
                            method: str = "recv_into") -> int:
        """Bytes copied from the buffer, or -1 when it turns out empty."""
        view = _writable_bytes(buffer, nbytes, method, flags)
        try:
            return self._buffered_into([view], flags if type(flags) is int else _index(flags))
        finally:
            view.release()

    def recvfrom(self, bufsize: int, flags: int = 0) -> Tuple[bytes, Any]:
        """recv() with the sender's address, as socket.recvfrom(): ``(bytes, None)`` on
        a connected stream (the address is the stdlib's, which is None on Linux).
        Buffered bytes are returned first, as by recv().
        """
        if self._rbuf or self._receiving or self._deferred:
            held = self._recv_buffered(bufsize, flags, "recvfrom")
            if held is not None:
                return held, None
        result: Tuple[bytes, Any] = self._call(self._sock.recvfrom, bufsize, flags)
        if not result[0] and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        return result

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Tuple[int, Any]:
        """recv_into() with the sender's address, as socket.recvfrom_into():
        ``(nbytes, None)`` on a connected stream.  Buffered bytes are returned first.
        """
        if self._rbuf or self._receiving or self._deferred:
            count = self._recv_into_buffered(buffer, nbytes, flags, "recvfrom_into")
            if count >= 0:
                return count, None
        result: Tuple[int, Any] = self._call(self._sock.recvfrom_into, buffer, nbytes, flags)
        if not result[0] and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        return result

    def recv_exactly(self, n: int) -> bytes:
        """Receive exactly ``n`` bytes; the timeout bounds the whole call.

        IncompleteReadError (holding the bytes that came, consumed) when the stream ends
        first; on any other error (TimeoutError, OSError, a signal handler's exception)
        the bytes read so far stay in the receive buffer.
        """
        size: int = n if type(n) is int else _index(n)
        if not -_SSIZE_MAX - 1 <= size <= _SSIZE_MAX:  # first, as a C conversion
            raise OverflowError("Python int too large to convert to C ssize_t")
        if size < 0:
            raise ValueError("n must not be negative")
        self._begin_receive()
        try:
            avail = len(self._rbuf) - self._rpos
            if avail >= size:
                return self._take_at(self._rpos, size)
            if size <= _CHUNK or self._gathers(avail):
                self._fill_until(size)
                return self._take_at(self._rpos, size)
            return self._recv_exactly_large(size)
        finally:
            self._end_receive()

    def _recv_exactly_large(self, size: int) -> bytes:
        rbuf = self._rbuf
        avail = len(rbuf) - self._rpos
        result = bytearray(size)  # the rest goes straight into the result
        view = memoryview(result)
        try:
            view[:avail] = rbuf[self._rpos:]
            self._rbuf = bytearray()
            self._rpos = 0
            got = self._read_into(view, avail, b"")
            if got < size:
                raise IncompleteReadError(view[:got].tobytes(), size)
        finally:
            view.release()
        return bytes(result)

    def recv_exactly_into(self, buffer: Any, nbytes: int = 0) -> int:
        """Fill the first ``nbytes`` bytes (0: all) of a writable buffer and return that
        count.

        As recv_exactly(): the timeout bounds the whole call, IncompleteReadError when
        the stream ends first, and on any other error the bytes read so far go back to
        the receive buffer.
        """
        view = _writable_bytes(buffer, nbytes, "recv_exactly_into")
        try:
            self._begin_receive()
        except BaseException:
            view.release()
            raise
        try:
            size = len(view)
            got = 0
            rbuf = self._rbuf
            avail = len(rbuf) - self._rpos
            if avail < size and self._gathers(avail):  # a frame arriving in pieces
                got = size if self._fill_frame(size) else len(self._rbuf) - self._rpos
                pos = self._rpos
                view[:got] = memoryview(self._rbuf)[pos:pos + got]
                self._skip(got)
                if got < size:
                    raise IncompleteReadError(view[:got].tobytes(), size)
                return size
            if rbuf:
                pos = self._rpos
                got = min(size, len(rbuf) - pos)
                view[:got] = rbuf[pos:pos + got]
                self._skip(got)
            if got < size:
                got = self._read_into(view, got, b"")
                if got < size:
                    raise IncompleteReadError(view[:got].tobytes(), size)
        finally:
            self._end_receive()
            view.release()
        return size

    def recv_until(self, delimiter: Any, limit: int = 65536) -> bytes:
        """Receive up to and including ``delimiter`` (bytes-like) and return it all, at
        most ``limit`` bytes; the timeout bounds the whole call.

        LimitOverrunError when ``limit`` bytes hold no delimiter, IncompleteReadError
        (holding the bytes, consumed) when the stream ends first.  Bytes read past the
        delimiter, and on a timeout or an error all the bytes read, stay in the receive
        buffer.
        """
        most = _positive(limit, "limit")
        if type(delimiter) is bytes:
            delim = delimiter
        else:
            view = _readable_bytes(delimiter)
            delim = view.tobytes()
            view.release()
        if not delim:
            raise ValueError("delimiter must not be empty")
        self._begin_receive()
        try:
            rbuf = self._rbuf
            if rbuf:
                pos = self._rpos
                found = rbuf.find(delim, pos, pos + most)
                if found >= 0:
                    return self._take_at(pos, found - pos + len(delim))
                if len(rbuf) - pos >= most:
                    raise self._overrun(most)
            return self._recv_until_slow(delim, most)
        finally:
            self._end_receive()

    def _overrun(self, limit: int) -> LimitOverrunError:
        held = len(self._rbuf) - self._rpos  # the caller has the buffer: not self.buffered
        return LimitOverrunError(f"no delimiter within the first {limit} bytes", held)

    def _recv_until_slow(self, delim: bytes, limit: int) -> bytes:
        tail = len(delim) - 1
        steps = _Steps(self._sock, None, self._twins)

        def receive() -> bytes:
            while True:  # each pass adds at least a byte; the buffer stays below limit
                avail = len(self._rbuf) - self._rpos
                data = steps.sock().recv(min(limit - avail, _CHUNK))
                if not data:
                    self._raise_if_closed()
                    raise IncompleteReadError(self._take_all(), None)
                self._append(data)  # the buffer now starts at 0
                rbuf = self._rbuf
                found = rbuf.find(delim, max(0, avail - tail), limit)
                if found >= 0:
                    return self._take_at(0, found + len(delim))
                if len(rbuf) >= limit:
                    raise self._overrun(limit)

        try:
            result: bytes = self._call(receive)
        finally:
            steps.release()
        return result

    def recv_iter(self, buffer: Any) -> Iterator[memoryview]:
        """Iterate until the end of the stream, receiving into ``buffer`` with
        recv_into() each time (the timeout applies to each receive) and yielding a
        memoryview of the part just written, valid only until the next iteration.
        ValueError for an empty buffer.
        """
        view = _writable_bytes(buffer, 0, "recv_iter")
        if not len(view):
            view.release()
            raise ValueError("recv_iter() needs a non-empty buffer")
        return self._iter_into(view)

    def _iter_into(self, view: memoryview) -> Iterator[memoryview]:
        try:
            while True:
                received = self.recv_into(view)
                if not received:
                    return
                yield view[:received]
        finally:
            view.release()

    # -- messages -------------------------------------------------------------

    def send_msg(self, payload: Any, *, prefix_size: int = 4) -> None:
        """Send ``payload`` after its length as a big-endian ``prefix_size``-byte
        integer (1, 2, 4 or 8: ValueError otherwise), all of it as sendall() does; the
        timeout bounds the whole call.  OverflowError when the length does not fit the
        prefix.
        """
        header = _prefix_struct(prefix_size)
        data: Any = payload if type(payload) is bytes else _readable_bytes(payload)
        size = len(data)
        try:
            prefix = header.pack(size)
        except struct.error:
            raise OverflowError(f"message of {size} bytes does not fit a "
                                f"{header.size}-byte length prefix") from None
        try:
            self._sendall([prefix, data] if size else [prefix])
        finally:
            if type(data) is memoryview:
                data.release()

    def recv_msg(self, *, prefix_size: int = 4,
                 max_size: int = DEFAULT_MAX_MESSAGE) -> bytes:
        """Receive one message framed by send_msg() and return its payload; the timeout
        bounds the whole call.

        MessageTooLargeError when its prefix announces more than ``max_size`` bytes (the
        prefix stays buffered); IncompleteReadError when the stream ends mid-message.
        On a timeout or another error the bytes read so far stay in the receive buffer.
        """
        header = _prefix_struct(prefix_size)
        most = _positive(max_size, "max_size")
        self._begin_receive()
        try:
            return self._recv_msg(header, most)
        finally:
            self._end_receive()

    def recv_msgs(self, max_count: int = 1024, *, prefix_size: int = 4,
                  max_size: int = DEFAULT_MAX_MESSAGE,
                  max_bytes: Optional[int] = None) -> list[bytes]:
        """Receive the next message (waiting for it as recv_msg() does) and every
        complete one already received after it, at most ``max_count`` in all; returns
        their payloads.  Once it has a message it never waits; a next message larger
        than ``max_size`` is left for the next call to report.  ``max_bytes``: the
        messages after the first are taken only while all the payloads returned
        stay within that many bytes (the rest wait for the next call), which bounds
        a batch's memory whatever the messages' sizes.
        """
        count = _positive(max_count, "max_count")
        header = _prefix_struct(prefix_size)
        most = _positive(max_size, "max_size")
        room = _SSIZE_MAX if max_bytes is None else _positive(max_bytes, "max_bytes")
        self._begin_receive()
        try:
            return self._recv_msgs(count, header, most, room)
        finally:
            self._end_receive()

    def _recv_msgs(self, count: int, header: struct.Struct, most: int,
                   room: int) -> list[bytes]:
        messages = [self._recv_msg(header, most)]
        room -= len(messages[0])
        hsize = header.size
        unpack = header.unpack_from
        while len(messages) < count:  # each pass takes a message or reads a byte or more
            rbuf = self._rbuf
            pos = self._rpos
            avail = len(rbuf) - pos
            size = -1
            if avail >= hsize:
                size = unpack(rbuf, pos)[0]
                if size > most:
                    break  # the next call reports it
                if size > room:
                    break  # for the next batch
                if avail - hsize >= size:
                    messages.append(self._take_at(pos + hsize, size))
                    room -= size
                    continue
                need = hsize + size - avail
            else:
                need = hsize - avail
            queued = self._queued()
            if queued < need:
                break  # the next message has not fully arrived
            if size > _CHUNK:
                messages.append(self._recv_msg(header, most))  # all there: no wait
                room -= size
            elif not self._fill_queued(min(queued, _CHUNK)):
                break
        return messages

    def _recv_msg(self, header: struct.Struct, max_size: int) -> bytes:
        # one deadline for the whole call: the wait for the prefix and the
        # wait for the payload share it
        timeout = self._sock.gettimeout()
        deadline = _monotonic() + timeout if timeout else -1.0
        hsize = header.size
        rbuf = self._rbuf
        pos = self._rpos
        avail = len(rbuf) - pos
        if avail < hsize:
            self._fill_until(hsize, deadline)
            rbuf = self._rbuf
            pos = self._rpos
            avail = len(rbuf) - pos
        size: int = header.unpack_from(rbuf, pos)[0]
        if size > max_size:
            raise MessageTooLargeError(size, max_size)  # before allocating; the prefix stays
        start = pos + hsize
        have = avail - hsize
        if have >= size:
            return self._take_at(start, size)
        if self._gathers(have):  # a frame arriving in pieces
            if self._fill_frame(hsize + size, deadline):
                return self._take_at(self._rpos + hsize, size)
            pos = self._rpos
            raise IncompleteReadError(
                self._take_at(pos + hsize, len(self._rbuf) - pos - hsize), size)
        head = bytes(rbuf[pos:start])
        result = bytearray(size)  # the rest goes straight into the result
        view = memoryview(result)
        try:
            view[:have] = rbuf[start:]
            self._rbuf = bytearray()
            self._rpos = 0
            got = self._read_into(view, have, head, deadline)
            if got < size:
                raise IncompleteReadError(view[:got].tobytes(), size)
        finally:
            view.release()
        return bytes(result)

    # -- vectored and file sends ------------------------------------------------

    def send_buffers(self, buffers: Iterable[Any]) -> int:
        """Send the buffers with one sendmsg() (the first IOV_MAX of them, 1024 on
        Linux) and return how many bytes went out, possibly fewer than their total, as
        socket.sendmsg(buffers); never raises SIGPIPE.
        """
        if type(buffers) is list or type(buffers) is tuple:
            batch: Any = buffers if len(buffers) <= _IOV_MAX else buffers[:_IOV_MAX]
        else:
            batch = list(islice(buffers, _IOV_MAX))
        sent: int = self._call(self._sock.sendmsg, batch, (), _NOSIGNAL)
        return sent

    def sendall_buffers(self, buffers: Iterable[Any]) -> None:
        """Send every byte of ``buffers`` (bytes-like objects, not joined) with as few
        sendmsg() calls as the kernel allows; the timeout bounds the whole call.  Never
        raises SIGPIPE; after an error, an unknown part may have been sent.
        """
        items: list[Any] = []
        try:
            for buffer in buffers:
                if type(buffer) is bytes:
                    if buffer:
                        items.append(buffer)
                    continue
                view = _readable_bytes(buffer)
                items.append(view)
                if not len(view):
                    items.pop().release()
            if items:
                self._sendall(items)
        finally:
            for item in items:
                if type(item) is memoryview:
                    item.release()

    def _sendall(self, items: list[Any], flags: int = _NOSIGNAL) -> None:
        """Send all of ``items`` (bytes or flat byte views, none empty) with as
        few sendmsg() calls as the kernel allows; ``items`` is used up.  A
        BlockingIOError or TimeoutError after part went out carries the count
        in ``characters_written`` (the io module's convention)."""
        steps = _Steps(self._sock, None, self._twins)
        total = 0

        def send() -> None:
            nonlocal total
            first = 0
            count = len(items)
            while first < count:
                batch = items[first:first + _IOV_MAX] if first or count > _IOV_MAX else items
                sent = steps.sock(writing=True).sendmsg(batch, (), flags)
                total += sent
                while sent:
                    size = len(items[first])
                    if sent < size:
                        items[first] = memoryview(items[first])[sent:]
                        break
                    sent -= size
                    first += 1

        try:
            self._call(send)
        except (BlockingIOError, TimeoutError) as exc:
            _common.note_written(exc, total)
            raise
        finally:
            steps.release()

    def sendfile(self, file: Any, offset: int = 0, count: Optional[int] = None) -> int:
        """Send ``count`` bytes (None: to the end) of ``file`` from ``offset`` and
        return how many were sent; a file that can seek is left just past them, even
        on error.

        Zero-copy os.sendfile() where the kernel can, a read/send loop otherwise; the
        timeout bounds the whole call; never raises SIGPIPE.  Unlike socket.sendfile(),
        a non-blocking socket sends what fits (BlockingIOError when nothing does).  A
        file that cannot seek (a pipe, a FIFO, a socket) is read from where it is until
        ``count`` bytes or its EOF: ``offset`` must be 0 (else ValueError), the timeout
        bounds the waits for its data too, and bytes read from it that a failed send
        left unsent are lost.
        """
        in_fd, start, want, seekable = _common.sendfile_plan(file, offset, count)
        out_fd = self._sock.fileno()
        if out_fd == -1:
            raise _closed_error()
        timeout = self._sock.gettimeout()
        nonblocking = timeout == 0.0
        deadline = _monotonic() + timeout if timeout else -1.0
        sent = 0
        completed = False

        def send() -> None:
            nonlocal sent, completed
            copy = not seekable
            while not copy and sent < want:
                if timeout is None and not self._wait_ready(out_fd, select.POLLOUT,
                                                            deadline):
                    raise TimeoutError("timed out")
                try:
                    moved = _sendfile_nosigpipe(out_fd, in_fd, start + sent,
                                                min(want - sent, SENDFILE_CHUNK))
                except BlockingIOError:
                    if nonblocking:
                        if sent:
                            break  # what fitted is sent
                        raise
                    if not self._wait_ready(out_fd, select.POLLOUT, deadline):
                        raise TimeoutError("timed out") from None
                    continue
                except OSError as exc:
                    if not sent and exc.errno in SENDFILE_UNSUPPORTED:
                        copy = True
                        break
                    raise
                if not moved:
                    break  # the end of the file
                sent += moved
                self._raise_if_closed()  # woken by close() after part went out
            if copy:
                try:
                    for moved in self._send_by_reading(in_fd, start, want, seekable,
                                                       nonblocking, deadline):
                        sent += moved
                except BlockingIOError:
                    if not (nonblocking and sent):
                        raise
            completed = True

        try:
            self._call(send)
        finally:
            if seekable:
                try:
                    _common.set_file_position(file, in_fd, start + sent)
                except (OSError, ValueError):
                    if completed:
                        raise
        return sent

    def _wait_ready(self, fd: int, events: int, deadline: float) -> bool:
        """Wait until ``fd`` is ready for ``events`` (True) or the deadline
        (-1.0: none; 0.0: only look) passes.  os.sendfile(), os.read() and
        poll() retry by themselves when a signal interrupts them, so close()
        from another thread could not wake this wait: it polls in slices and
        looks at the socket between them."""
        poller = select.poll()
        poller.register(fd, events)
        if deadline == 0.0:
            return bool(poller.poll(0))
        while True:
            self._raise_if_closed()
            wait = _CLOSE_CHECK_SECONDS
            if deadline >= 0.0:
                remaining = deadline - _monotonic()
                if remaining <= 0.0:
                    return bool(poller.poll(0))  # a last look: ready now is in time
                wait = min(wait, remaining)
            if poller.poll(math.ceil(wait * 1000)):
                return True

    def _send_by_reading(self, in_fd: int, start: int, want: int, seekable: bool,
                         nonblocking: bool, deadline: float) -> Iterator[int]:
        """The read/send loop for descriptors os.sendfile() cannot read:
        pread() from a file that can seek, read() from one that cannot
        (waiting for its data within the deadline, or not at all on a
        non-blocking socket).  Yields the count of each send, so the
        caller's total stays exact whatever stops the loop."""
        sent = 0
        steps = _Steps(self._sock, deadline if deadline >= 0.0 else None, self._twins)
        try:
            while sent < want:
                size = min(want - sent, SENDFILE_READ_CHUNK)
                if seekable:
                    data = os.pread(in_fd, size, start + sent)
                else:
                    if nonblocking:
                        if not self._wait_ready(in_fd, select.POLLIN, 0.0):
                            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
                    elif not self._wait_ready(in_fd, select.POLLIN, deadline):
                        raise TimeoutError("timed out")
                    data = os.read(in_fd, size)
                view = memoryview(data)
                if not view:
                    return
                while view:
                    moved = steps.sock(writing=True).send(view, _NOSIGNAL)
                    sent += moved
                    yield moved
                    view = view[moved:]
        finally:
            steps.release()


    # -- messages with ancillary data: the receive buffer first ---------------
    # Bytes a framing call read past its result are returned by recvmsg() and
    # recvmsg_into() before anything the kernel holds, with no ancillary data
    # (docs/messages.md).

    def _holds_received(self) -> bool:
        return bool(self._rbuf or self._receiving or self._deferred)

    def _buffered_bytes(self, size: int, flags: int) -> Optional[bytes]:
        """Up to ``size`` buffered bytes, or None when the buffer is (or turns
        out) empty: the kernel is next."""
        if not self._holds_received():
            return None
        self._begin_receive()
        try:
            if not self._rbuf:
                self._raise_if_closed()
                self._raise_deferred()
                return None
            pos = self._rpos
            if flags & _MSG_PEEK:
                return bytes(self._rbuf[pos:pos + size])
            return self._take_at(pos, size)
        finally:
            self._end_receive()

    def _buffered_into(self, views: list[memoryview], flags: int) -> int:
        """Bytes copied from the buffer, or -1 when it turns out empty."""
        self._begin_receive()
        try:
            if not self._rbuf:
                self._raise_if_closed()
                self._raise_deferred()
                return -1
            rbuf, pos = self._rbuf, self._rpos
            copied = 0
            for view in views:
                size = min(len(view), len(rbuf) - pos - copied)
                view[:size] = rbuf[pos + copied:pos + copied + size]
                copied += size
            if not flags & _MSG_PEEK:
                self._skip(copied)
            return copied
        finally:
            self._end_receive()


def _sendfile_nosigpipe(out_fd: int, in_fd: int, offset: int, count: int) -> int:
    """os.sendfile() with SIGPIPE blocked: unlike send(), it has no MSG_NOSIGNAL."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGPIPE)
    if signal.SIGPIPE in old:
        return os.sendfile(out_fd, in_fd, offset, count)
    try:
        return os.sendfile(out_fd, in_fd, offset, count)
    except BrokenPipeError:
        signal.sigtimedwait(_SIGPIPE, 0)  # the SIGPIPE it raised, if any
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
