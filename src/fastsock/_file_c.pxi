# The binary file of StreamSocket.makefile() in the compiled twin (pair:
# _file_py.py): a buffered file that reads the socket's own receive buffer;
# a line is a memchr() over that buffer, refilled with large recv()s.
# Included once by _socket_c.pyx, after _stream_c.pxi.

cdef enum:
    # peek() returns at most this many bytes, or as many as it is asked for
    PEEK_MOST = 8192


cdef Py_ssize_t file_size_arg(object size) except? -2:
    """A read size as io.BufferedReader takes it: None is -1; negative means
    no limit."""
    cdef Py_ssize_t n
    if size is None:
        return -1
    if type(size) is not int:
        try:
            size = _index(size)
        except TypeError:
            raise TypeError(f"argument should be integer or None, "
                            f"not '{type(size).__name__}'") from None
    return PyLong_AsSsize_t(size)


cdef int file_writable(object buffer, Py_buffer *view, str method) except -1:
    try:
        PyObject_GetBuffer(buffer, view, PyBUF_WRITABLE)
    except Exception:  # not a buffer, read-only, not contiguous, ...
        raise TypeError(f"{method}() argument must be read-write bytes-like object, "
                        f"not {type(buffer).__name__}") from None
    return 0


cdef inline object file_readline(SocketFile file, StreamSocket sock, Py_ssize_t limit):
    """A line of at most ``limit`` bytes (-1: any): without a call into the
    kernel when the buffer holds it (the common case), else the slow path."""
    cdef RecvBuffer *rb = &sock.rbuf
    cdef Py_ssize_t window
    cdef const char *start
    cdef const char *found
    cdef bytes line = None
    with cython.critical_section(sock):  # the buffer while no call holds it
        window = 0 if sock.receiving else rb.end - rb.start
        if window:
            if 0 <= limit < window:
                window = limit
            start = rb.data + rb.start
            found = <const char *>memchr(start, 10, <size_t>window)
            if found != NULL:
                line = rb_take(rb, found - start + 1)
                rb_settle(rb)
            elif window == limit:
                line = rb_take(rb, limit)
                rb_settle(rb)
    if line is not None:
        return line
    if limit == 0:
        return b""
    return file._readline_slow(sock, limit)


cdef class SocketFile:
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

    cdef StreamSocket sock     # None once the file is closed
    cdef object writer         # the io.BufferedWriter of mode "rwb", else None
    cdef str mode_
    # under a text file: read1() stops after a line, so the text layer never
    # holds bytes past the line it returns
    cdef bint line_chunks
    cdef object __weakref__

    def __init__(self, StreamSocket sock, str mode, writer, bint line_chunks):
        if self.mode_ is not None:
            raise RuntimeError("SocketFile already initialised")
        sock._file_opened()
        self.sock = sock
        self.mode_ = mode
        self.writer = writer
        self.line_chunks = line_chunks

    def __repr__(self):
        return f"<{type(self).__module__}.{type(self).__qualname__} name={self.name}>"

    def __del__(self):
        if self.sock is None:
            return
        try:
            self.close()
        except OSError:
            pass  # as io's files: a flush that fails at collection is not reported

    # -- state ------------------------------------------------------------------

    cdef inline StreamSocket _reading(self, str method):
        if self.sock is None:
            raise ValueError(f"{method} of closed file")
        return self.sock

    cdef inline StreamSocket _open(self):
        if self.sock is None:
            raise ValueError("I/O operation on closed file.")
        return self.sock

    @property
    def closed(self):
        """True once the file is closed."""
        return self.sock is None

    @property
    def name(self):
        """The socket's descriptor, -1 once the file is closed (as the stdlib's)."""
        return -1 if self.sock is None else self.sock.fileno()

    @property
    def mode(self):
        """"rb" or "rwb"."""
        return self.mode_

    def fileno(self):
        """The socket's descriptor."""
        return self._open().fileno()

    def isatty(self):
        """False: a socket is no terminal."""
        self._open()
        return False

    def readable(self):
        """True: the file reads."""
        self._open()
        return True

    def writable(self):
        """True when the file was opened for writing too ("rwb")."""
        self._open()
        return self.writer is not None

    def seekable(self):
        """False: a socket cannot seek."""
        self._open()
        return False

    def close(self):
        """Flush what is written, then close the file; the socket closes with it only
        if its close() was called while files were open and this was the last of them.
        What the socket has received stays in its buffer for its own receive calls.
        """
        cdef StreamSocket sock = self.sock
        if sock is None:
            return
        writer = self.writer
        try:
            if writer is not None:
                writer.close()  # flushes, then lets its reference on the socket go
        finally:
            self.sock = None
            self.writer = None
            sock._file_closed()

    def detach(self):
        """Not supported: the file has no raw stream (io.UnsupportedOperation)."""
        raise _io.UnsupportedOperation("detach")

    def __enter__(self):
        self._open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- reading ----------------------------------------------------------------

    cdef Py_ssize_t _read_into(self, StreamSocket sock, char *dst, Py_ssize_t n) except -1:
        """Fill dst[:n] from the receive buffer, then from the kernel, until it is
        full or the stream ends, and return the count: small remainders through
        the buffer (one read may bring more), large ones straight into dst.  Each
        wait has the socket's timeout; on an exception every byte taken goes
        back to the buffer."""
        cdef Py_ssize_t got = 0, take
        cdef IOArgs a
        cdef ssize_t r
        cdef RecvBuffer *rb = &sock.rbuf
        sock._begin_receive()
        try:
            while True:
                take = min(n - got, rb.end - rb.start)
                if take:
                    memcpy(dst + got, rb.data + rb.start, take)
                    rb.start += take
                    got += take
                    if rb.start == rb.end:
                        rb.start = rb.end = 0
                if got >= n:
                    return got
                if n - got >= DIRECT_READ_MIN:
                    a.buf = dst + got
                    a.len = <size_t>(n - got)
                    a.flags = 0
                    r = sock._call(c.POLLIN, _do_recv, &a, sock._deadline())
                    if r == 0:
                        return got
                    got += r
                elif sock._fill(sock._deadline()) == 0:
                    return got
        except BaseException:
            rb_unread(rb, dst, got)
            raise
        finally:
            sock._end_receive()

    cdef object _read_all(self, StreamSocket sock):
        sock._begin_receive()
        try:
            while sock._fill(sock._deadline()):
                pass
            return rb_take(&sock.rbuf, sock.rbuf.end - sock.rbuf.start)
        finally:
            sock._end_receive()

    def read(self, size=-1, /):
        """Read ``size`` bytes, fewer only at the end of the stream; with None or a
        negative size, read until the end of the stream."""
        cdef Py_ssize_t n = file_size_arg(size)
        cdef StreamSocket sock = self._reading("read")
        cdef Py_ssize_t got
        cdef bytes result = None
        if n < 0:
            if n != -1:
                raise ValueError("read length must be non-negative or -1")
            return self._read_all(sock)
        with cython.critical_section(sock):  # the buffer while no call holds it
            if not sock.receiving and sock.rbuf.end - sock.rbuf.start >= n:
                result = rb_take(&sock.rbuf, n)
                rb_settle(&sock.rbuf)
        if result is not None:
            return result
        result = PyBytes_FromStringAndSize(NULL, n)
        got = self._read_into(sock, PyBytes_AS_STRING(result), n)
        return result if got == n else result[:got]

    def read1(self, Py_ssize_t size=-1, /):
        """Read up to ``size`` bytes (negative: all it holds): the bytes buffered, or
        else what one receive from the kernel brings; b"" at the end of the stream."""
        cdef StreamSocket sock = self._reading("read")
        cdef RecvBuffer *rb = &sock.rbuf
        cdef Py_ssize_t take
        cdef const char *found
        cdef bytes result
        if size == 0:
            return b""
        sock._begin_receive()
        try:
            if rb.end == rb.start and sock._fill(sock._deadline()) == 0:
                return b""
            take = rb.end - rb.start
            if 0 < size < take:
                take = size
            if self.line_chunks:
                found = <const char *>memchr(rb.data + rb.start, 10, <size_t>take)
                if found != NULL:
                    take = found - (rb.data + rb.start) + 1
            return rb_take(rb, take)
        finally:
            sock._end_receive()

    def readinto(self, buffer, /):
        """Fill ``buffer`` (a writable bytes-like object) and return the count, which is
        smaller only at the end of the stream."""
        cdef Py_buffer view
        file_writable(buffer, &view, "readinto")
        try:
            return self._read_into(self._reading("readinto"), <char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def readinto1(self, buffer, /):
        """Read into ``buffer`` the bytes buffered, or else what one receive from the
        kernel brings, and return the count; 0 at the end of the stream."""
        cdef Py_buffer view
        cdef StreamSocket sock
        cdef RecvBuffer *rb
        cdef Py_ssize_t take
        file_writable(buffer, &view, "readinto1")
        try:
            sock = self._reading("readinto")
            rb = &sock.rbuf
            if view.len == 0:
                return 0
            sock._begin_receive()
            try:
                if rb.end == rb.start and sock._fill(sock._deadline()) == 0:
                    return 0
                take = min(view.len, rb.end - rb.start)
                memcpy(view.buf, rb.data + rb.start, take)
                rb.start += take
                if rb.start == rb.end:
                    rb.start = rb.end = 0
                return take
            finally:
                sock._end_receive()
        finally:
            PyBuffer_Release(&view)

    def peek(self, Py_ssize_t size=0, /):
        """The bytes the next read returns, without consuming them: those buffered (at
        most max(size, 8192)), or else what one receive from the kernel brings; b"" at
        the end of the stream."""
        cdef StreamSocket sock = self._reading("peek")
        cdef RecvBuffer *rb = &sock.rbuf
        sock._begin_receive()
        try:
            if rb.end == rb.start:
                sock._fill(sock._deadline())
            return PyBytes_FromStringAndSize(
                rb.data + rb.start, min(rb.end - rb.start, max(size, <Py_ssize_t>PEEK_MOST)))
        finally:
            sock._end_receive()

    def readline(self, size=-1, /):
        """Read a line, up to and including b"\\n", at most ``size`` bytes (None or
        negative: no limit); at the end of the stream, what is left (b"" once nothing
        is)."""
        cdef Py_ssize_t limit = -1 if size is -1 else file_size_arg(size)
        if self.sock is None:
            raise ValueError("readline of closed file")
        return file_readline(self, self.sock, limit)

    cdef object _readline_slow(self, StreamSocket sock, Py_ssize_t limit):
        cdef RecvBuffer *rb = &sock.rbuf
        cdef Py_ssize_t held, window, scanned = 0
        cdef const char *start
        cdef const char *found
        sock._begin_receive()
        try:
            while True:
                held = rb.end - rb.start
                window = held if limit < 0 or limit > held else limit
                if window > scanned:
                    start = rb.data + rb.start
                    found = <const char *>memchr(start + scanned, 10,
                                                 <size_t>(window - scanned))
                    if found != NULL:
                        return rb_take(rb, found - start + 1)
                    scanned = window
                if 0 <= limit <= held:
                    return rb_take(rb, limit)
                if sock._fill(sock._deadline()) == 0:
                    return rb_take(rb, rb.end - rb.start)  # the end: what is left
        finally:
            sock._end_receive()

    def readlines(self, hint=-1, /):
        """The lines up to the end of the stream, or until they hold more than
        ``hint`` bytes (the stdlib file's rule)."""
        cdef Py_ssize_t most = file_size_arg(hint), total = 0
        cdef list lines = []
        cdef StreamSocket sock = self._open()
        while True:
            line = file_readline(self, sock, -1)
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < most < total:
                return lines

    def __iter__(self):
        self._open()
        return self

    def __next__(self):
        if self.sock is None:
            raise ValueError("readline of closed file")
        line = file_readline(self, self.sock, -1)
        if not line:
            raise StopIteration
        return line

    # -- writing ----------------------------------------------------------------

    cdef object _writing(self, str method):
        if self.writer is None:
            if self.sock is None:
                raise ValueError(f"{method} to closed file")
            raise _io.UnsupportedOperation(method)
        return self.writer

    def write(self, data, /):
        """Buffer ``data`` for sending (mode "rwb") and return its length; a full
        buffer is sent first."""
        return self._writing("write").write(data)

    def writelines(self, lines, /):
        """write() each of ``lines``."""
        write = self._writing("write").write
        for line in lines:
            write(line)

    def flush(self):
        """Send what is written and not yet sent."""
        if self.sock is None:
            raise ValueError("I/O operation on closed file.")
        if self.writer is not None:
            self.writer.flush()

    # -- what a socket cannot do --------------------------------------------------

    def seek(self, offset, whence=0, /):
        """Not supported (io.UnsupportedOperation)."""
        raise _io.UnsupportedOperation("File or stream is not seekable.")

    def tell(self):
        """Not supported (io.UnsupportedOperation)."""
        raise _io.UnsupportedOperation("seek")

    def truncate(self, size=None, /):
        """Not supported (io.UnsupportedOperation)."""
        raise _io.UnsupportedOperation("truncate")


_io.BufferedIOBase.register(SocketFile)
