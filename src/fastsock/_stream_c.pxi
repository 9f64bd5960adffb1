# Stream sockets of the compiled twin (pair: _stream_py.py): the receive
# buffer, StreamSocket with its framing, vectored sends and sendfile.
# Included once by _socket_c.pyx.

# -- the receive buffer of a stream socket -------------------------------------
# Bytes taken from the kernel but not yet returned: data[start:end].

cdef enum:
    # the receive buffer of a stream socket starts at this size, and reads
    # into it ask for at least this much
    RECV_BUFFER_INITIAL = 65536
    # a read of more than this goes straight into its destination
    DIRECT_READ_MIN = 32768
    # reads into the receive buffer ask for at least this much room
    FILL_MIN = 16384
    # a socket that can give up part-way (non-blocking, or with a timeout)
    # whose receive buffer already holds more than this of a large frame
    # completes the frame in the buffer (see _gathers)
    GATHER_MIN = 65536

# once a receive call has returned, a buffer larger than this that holds less
# than a quarter of it shrinks (rb_settle)
cdef Py_ssize_t recv_buffer_keep = _common.RECV_BUFFER_KEEP


cdef struct RecvBuffer:
    char *data
    Py_ssize_t capacity
    Py_ssize_t start
    Py_ssize_t end


cdef int rb_reserve_tail(RecvBuffer *rb, Py_ssize_t tail) except -1:
    """Make room for at least ``tail`` more bytes after ``end``."""
    cdef Py_ssize_t held = rb.end - rb.start
    cdef Py_ssize_t capacity
    cdef char *grown
    if rb.capacity - rb.end >= tail:
        return 0
    if rb.start > 0:
        if held:
            memmove(rb.data, rb.data + rb.start, held)
        rb.start = 0
        rb.end = held
        if rb.capacity - rb.end >= tail:
            return 0
    capacity = rb.capacity * 2 if rb.capacity else RECV_BUFFER_INITIAL
    if capacity < held + tail:
        capacity = held + tail
    grown = <char *>PyMem_RawRealloc(rb.data, <size_t>capacity)
    if grown == NULL:
        raise MemoryError()
    rb.data = grown
    rb.capacity = capacity
    return 0


cdef int rb_reserve_frame(RecvBuffer *rb, Py_ssize_t need) except -1:
    """Make room for the next read of a frame that ends ``need`` bytes after
    ``start``: nothing while FILL_MIN bytes or the rest of the frame fit;
    otherwise compact, then grow at least twofold, but not past the frame
    (plus FILL_MIN).  A frame gathered in pieces is thus copied O(1) times
    per byte, and the buffer stays within twice what it holds plus FILL_MIN
    (rb_settle leaves it alone while the frame is incomplete)."""
    cdef Py_ssize_t held = rb.end - rb.start
    cdef Py_ssize_t capacity
    cdef char *grown
    if rb.capacity - rb.end >= FILL_MIN or rb.capacity - rb.end >= need - held:
        return 0
    if rb.start > 0:
        if held:
            memmove(rb.data, rb.data + rb.start, held)
        rb.start = 0
        rb.end = held
        if rb.capacity - held >= FILL_MIN or rb.capacity - held >= need - held:
            return 0
    capacity = max(rb.capacity * 2, held + FILL_MIN)
    capacity = min(capacity, max(need, held + FILL_MIN))
    grown = <char *>PyMem_RawRealloc(rb.data, <size_t>capacity)
    if grown == NULL:
        raise MemoryError()
    rb.data = grown
    rb.capacity = capacity
    return 0


cdef int rb_unread(RecvBuffer *rb, const char *src, Py_ssize_t n) except -1:
    """Put ``n`` bytes back in front of the buffered ones (nothing is lost
    when a read fails part-way)."""
    cdef Py_ssize_t held = rb.end - rb.start
    if n <= 0:
        return 0
    if rb.start >= n:
        rb.start -= n
        memcpy(rb.data + rb.start, src, n)
        return 0
    rb_reserve_tail(rb, n)  # compacts: start is 0 afterwards
    memmove(rb.data + n, rb.data + rb.start, held)
    memcpy(rb.data, src, n)
    rb.start = 0
    rb.end = n + held
    return 0


cdef void rb_shrink(RecvBuffer *rb) noexcept:
    """Give back the memory a large receive left behind: a buffer that holds
    less than a quarter of its capacity is freed when empty, else shrunk to
    twice what it holds (at least RECV_BUFFER_INITIAL).  The bytes copied are
    fewer than the buffer received since it last grew: the cost stays
    linear.  A failed realloc keeps the buffer as it was."""
    cdef Py_ssize_t held = rb.end - rb.start
    cdef Py_ssize_t capacity
    cdef char *smaller
    if held * 4 >= rb.capacity:
        return
    if held == 0:
        PyMem_RawFree(rb.data)
        rb.data = NULL
        rb.capacity = rb.start = rb.end = 0
        return
    capacity = max(held * 2, <Py_ssize_t>RECV_BUFFER_INITIAL)
    if rb.start:
        memmove(rb.data, rb.data + rb.start, held)
        rb.start = 0
        rb.end = held
    smaller = <char *>PyMem_RawRealloc(rb.data, <size_t>capacity)
    if smaller != NULL:
        rb.data = smaller
        rb.capacity = capacity


cdef inline void rb_settle(RecvBuffer *rb) noexcept:
    """At the end of a receive call: after a large use, let the memory go
    (see rb_shrink); one comparison otherwise."""
    if rb.capacity > recv_buffer_keep:
        rb_shrink(rb)


cdef inline bytes rb_take(RecvBuffer *rb, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(rb.data + rb.start, n)
    rb.start += n
    if rb.start == rb.end:
        rb.start = rb.end = 0
    return out


cdef inline bytes rb_take_after(RecvBuffer *rb, Py_ssize_t skip, Py_ssize_t n):
    """The n bytes after the first ``skip`` (a length prefix), all taken only
    once the result exists: a MemoryError leaves the buffer as it was."""
    cdef bytes out = PyBytes_FromStringAndSize(rb.data + rb.start + skip, n)
    rb.start += skip + n
    if rb.start == rb.end:
        rb.start = rb.end = 0
    return out


cdef inline unsigned long long decode_prefix(const char *p, int size) noexcept nogil:
    cdef unsigned long long value = 0
    cdef int i
    for i in range(size):
        value = (value << 8) | <unsigned char>p[i]
    return value


cdef int check_prefix_size(object prefix_size) except -1:
    cdef int size = as_int(prefix_size)
    if size != 1 and size != 2 and size != 4 and size != 8:
        raise ValueError("prefix_size must be 1, 2, 4 or 8")
    return size


cdef class StreamSocket(_Socket):
    """StreamSocket(family=-1, type=-1, proto=-1, fileno=None)
--

    A TCP (AF_INET, AF_INET6), Unix stream (AF_UNIX) or vsock stream (AF_VSOCK)
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

    # A buffered receive holds ``receiving`` for its whole duration (it may
    # release the GIL while reading into the buffer); any other receive on
    # the socket meanwhile raises RuntimeError instead of racing it.  rbuf is
    # touched only by the call holding ``receiving``, or inside the socket's
    # critical section while nobody holds it; ``receiving`` changes only
    # inside that section (free-threaded builds: see docs/architecture.md).
    cdef RecvBuffer rbuf       # received, not yet returned
    cdef bint receiving        # a buffered receive is in progress
    # the files of makefile() that are open (the stdlib's _io_refs): close()
    # while any is open only sets close_requested, and the last file to
    # close closes the socket
    cdef int files
    cdef bint close_requested

    _KIND = c.SOCK_STREAM
    _FAMILIES = _common.SUPPORTED_FAMILIES  # the first is the default

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        self._open(family, type, proto, fileno)

    def __dealloc__(self):
        PyMem_RawFree(self.rbuf.data)

    cdef void _forget_received(self) noexcept:
        with cython.critical_section(self):
            if not self.receiving:
                self.rbuf.start = self.rbuf.end = 0  # unread data goes with the socket

    cdef int _defer(self, object exc) except -1:
        """Keep a send's error for the next call, behind the bytes the kernel
        still holds: a stream's kernel returns those before its own pending
        error, but the send that met the error has taken it from the kernel,
        so the bytes move to the receive buffer first, which every receive
        reads before the kept error (a receive in progress in another thread
        owns the buffer, and reads them from the kernel itself)."""
        if exc.errno and exc.errno != EPIPE and not c.load_int(&self.deferred_errno) \
                and self._try_begin_receive():
            try:
                while self._fill_nowait() > 0:
                    pass
            finally:
                self._end_receive()
        return _Socket._defer(self, exc)

    cdef int _check_handoff(self) except -1:
        cdef Py_ssize_t held = 0
        cdef bint busy
        with cython.critical_section(self):
            busy = self.receiving
            if not busy:
                held = self.rbuf.end - self.rbuf.start
        if held or busy:
            raise RuntimeError(
                f"{held} received bytes are still buffered in this socket: take them "
                "with take_buffered() before handing the descriptor over")
        return 0

    def take_buffered(self):
        """Remove and return the bytes received but not yet returned by any call
        (b"" when none): what recv_until, recv_msg and the other buffered
        receives read past their result.  detach() and to_socket() refuse to
        hand the descriptor over while any are held, so they are never lost:
        pass them on with it (for TLS, feed them to ``ssl.MemoryBIO``)."""
        self._begin_receive()
        try:
            return rb_take(&self.rbuf, self.rbuf.end - self.rbuf.start)
        finally:
            self._end_receive()

    def unrecv(self, data, /):
        """Put ``data`` back in front of the received bytes: the next receive of
        any kind returns it first, then what was buffered, then the kernel's.  A
        layer that read ahead (a parser, a protocol sniffer, a reader that split
        messages in advance) gives back what it will not use.  OSError (EBADF)
        when the socket is closed; RuntimeError during another receive."""
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._begin_receive()
            try:
                if self._closed():
                    raise_errno(EBADF)
                rb_unread(&self.rbuf, <char *>view.buf, view.len)
            finally:
                self._end_receive()
            if self._closed():  # a close() meanwhile left the buffer to us
                self._forget_received()
        finally:
            PyBuffer_Release(&view)

    def recv_ahead(self, Py_ssize_t max_bytes=65536, /):
        """Receive up to ``max_bytes`` into the socket's receive buffer instead of
        returning them, and return how many arrived (0 at the end of the stream):
        every receive call returns them next, after the bytes already buffered.  It
        waits as recv() does (BlockingIOError when non-blocking and nothing came).
        An event loop's readiness callback calls it, so that the readiness is used
        up when the callback returns and the reader's own calls find the bytes
        where the framing calls read them.  OSError (EBADF) when the socket is
        closed; RuntimeError during another receive."""
        return self._recv_ahead(max_bytes)

    cdef Py_ssize_t _recv_ahead(self, Py_ssize_t max_bytes) except -1:
        cdef IOArgs a
        cdef Py_ssize_t n
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._begin_receive()
        try:
            rb_reserve_tail(&self.rbuf, max_bytes)
            a.buf = self.rbuf.data + self.rbuf.end
            a.len = <size_t>max_bytes
            a.flags = 0
            n = self._call(c.POLLIN, _do_recv, &a, self._deadline())
            self.rbuf.end += n
        finally:
            self._end_receive()
        if self._closed():  # a close() meanwhile left the buffer to us
            self._forget_received()
        return n

    # -- files --------------------------------------------------------------------

    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None,
                 newline=None):
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

    def _file_opened(self):
        self._check_open()
        self.files += 1

    def _file_closed(self):
        if self.files > 0:
            self.files -= 1
        if self.close_requested and self.files == 0:
            self.close()

    def close(self):
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
        if self.files:
            self.close_requested = True
            return
        _Socket.close(self)

    # -- receiving: the buffer first, then the kernel ---------------------------

    def recv(self, Py_ssize_t bufsize, flags=0):
        """Receive up to ``bufsize`` bytes, as socket.recv(); b"" at the end of the
        stream.

        Bytes already in the socket's receive buffer (``buffered``) are returned first,
        without asking the kernel (of the flags only MSG_PEEK then counts).
        RuntimeError while a framing call (recv_exactly, recv_until, recv_msg,
        recv_msgs) is in progress.
        """
        cdef int cflags = as_int(flags)  # every argument is converted first, as by the stdlib
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        data = self._buffered_bytes(bufsize, cflags)
        if data is not None:
            return data
        return self._recv_bytes(bufsize, cflags)

    def recv_into(self, buffer, nbytes=0, flags=0):
        """Receive up to ``nbytes`` bytes (0: the buffer's size) into a writable buffer
        and return how many were written, as socket.recv_into(); 0 at the end of the
        stream.  Buffered bytes are returned first, as by recv(), with the same
        RuntimeError.
        """
        cdef Py_buffer view
        cdef IOArgs a
        cdef c.iovec iov
        cdef Py_ssize_t n
        get_writable(buffer, &view, "recv_into")
        a.len = <size_t>check_nbytes(&view, nbytes, flags, &a.flags,
                                     "negative buffersize in recv_into",
                                     "buffer too small for requested bytes")
        a.buf = <char *>view.buf
        if self._holds_received():
            iov.iov_base = a.buf
            iov.iov_len = a.len
            try:
                n = self._buffered_into(&iov, 1, a.flags)
            except BaseException:
                PyBuffer_Release(&view)
                raise
            if n >= 0:
                PyBuffer_Release(&view)
                return n
        return self._recv_into_view(&view, &a)

    def recvfrom(self, Py_ssize_t bufsize, flags=0):
        """recv() with the sender's address, as socket.recvfrom(): ``(bytes, None)`` on
        a connected stream (the address is the stdlib's, which is None on Linux).
        Buffered bytes are returned first, as by recv().
        """
        cdef IOArgs a
        cdef ssize_t n
        a.flags = as_int(flags)  # every argument is converted first, as by the stdlib
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        if self._holds_received():
            return self.recv(bufsize, a.flags), None
        data = PyBytes_FromStringAndSize(NULL, bufsize)
        a.buf = PyBytes_AS_STRING(data)
        a.len = <size_t>bufsize
        n = self._call(c.POLLIN, _do_recvfrom, &a, self._deadline())
        if n != bufsize:
            data = data[:n]
        return data, make_address(&a.addr, a.addrlen)

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        """recv_into() with the sender's address, as socket.recvfrom_into():
        ``(nbytes, None)`` on a connected stream.  Buffered bytes are returned first.
        """
        cdef Py_buffer view
        cdef IOArgs a
        cdef ssize_t n
        get_writable(buffer, &view, "recvfrom_into")
        a.len = <size_t>check_nbytes(&view, nbytes, flags, &a.flags,
                                     "negative buffersize in recvfrom_into",
                                     "nbytes is greater than the length of the buffer")
        if self._holds_received():
            PyBuffer_Release(&view)
            return self.recv_into(buffer, a.len, a.flags), None
        a.buf = <char *>view.buf
        try:
            n = self._call(c.POLLIN, _do_recvfrom, &a, self._deadline())
        finally:
            PyBuffer_Release(&view)
        return n, make_address(&a.addr, a.addrlen)

    def listen(self, backlog=128):
        """Listen for connections, queueing up to ``backlog`` (default 128; negative
        counts as 0), as socket.listen().
        """
        self._listen(backlog)

    def accept(self):
        """Wait for a connection and return ``(StreamSocket, address)``, as
        socket.accept().

        The new socket's timeout is socket.getdefaulttimeout() (None unless set),
        whatever this one's is, and it is not inheritable.
        """
        return self._accept_as(StreamSocket)

    def sendall(self, data, flags=0):
        """Send all of ``data``, as socket.sendall(): the timeout bounds the whole call.
        Never raises SIGPIPE.  When it stops part-way on a non-blocking socket
        (BlockingIOError) or at the deadline (TimeoutError), the exception's
        ``characters_written`` says how many bytes went out; after another error an
        unknown part of the data may have been sent.
        """
        cdef Py_buffer view
        cdef IOArgs a
        cdef Py_ssize_t sent = 0
        cdef double deadline = self._deadline()
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)  # the data first, as the stdlib
        try:
            a.flags = as_int(flags)
            while True:
                a.buf = <char *>view.buf + sent
                a.len = <size_t>(view.len - sent)
                sent += self._send(c.POLLOUT, _do_send, &a, &a.flags, a.len, deadline)
                if sent >= view.len:
                    break
                PyErr_CheckSignals()
        except (BlockingIOError, TimeoutError) as exc:
            _common.note_written(exc, sent)
            raise
        finally:
            PyBuffer_Release(&view)

    # -- the receive buffer and the calls that use it -------------------------

    @property
    def buffered(self):
        """How many received bytes the socket holds that no call has returned yet.

        The next receive call returns them without asking the kernel.  A selector cannot
        see them: check this before waiting for readability.  While a receive call
        runs in another thread the bytes are that call's: 0.
        """
        return self._held()

    cdef inline Py_ssize_t _held(self) noexcept:
        cdef Py_ssize_t held = 0
        with cython.critical_section(self):
            if not self.receiving:
                held = self.rbuf.end - self.rbuf.start
        return held

    cdef inline bint _try_begin_receive(self) noexcept:
        """Take the receive buffer for this call; False when another call has it."""
        cdef bint taken
        with cython.critical_section(self):
            taken = not self.receiving
            self.receiving = True
        return taken

    cdef inline int _begin_receive(self) except -1:
        if not self._try_begin_receive():
            raise RuntimeError("another receive call is in progress on this socket")
        return 0

    cdef inline void _end_receive(self) noexcept:
        rb_settle(&self.rbuf)
        with cython.critical_section(self):
            self.receiving = False

    cdef Py_ssize_t _fill(self, double deadline) except -1:
        """Append what the kernel has (waiting per the timeout) to the receive
        buffer; 0 means EOF.  On failure the buffer is unchanged."""
        cdef IOArgs a
        cdef ssize_t n
        rb_reserve_tail(&self.rbuf, FILL_MIN)
        a.buf = self.rbuf.data + self.rbuf.end
        a.len = <size_t>(self.rbuf.capacity - self.rbuf.end)
        a.flags = 0
        n = self._call(c.POLLIN, _do_recv, &a, deadline)
        self.rbuf.end += n
        return n

    cdef Py_ssize_t _fill_nowait(self) except -1:
        """Append what the kernel already holds, never waiting; 0 when it
        holds nothing, at EOF (the kernel says it again to the next read) or
        on an error, which is kept for the next receive to raise: the kernel
        reports an error such as a reset only once."""
        cdef ssize_t n
        cdef int err
        if self._closed() or c.load_int(&self.deferred_errno):
            return 0
        rb_reserve_tail(&self.rbuf, FILL_MIN)
        with cython.critical_section(self):
            n = c.recv(self.fd, self.rbuf.data + self.rbuf.end,
                       <size_t>(self.rbuf.capacity - self.rbuf.end), c.MSG_DONTWAIT)
            err = errno
        if n > 0:
            self.rbuf.end += n
            return n
        if n < 0 and not c.would_block(err) and err != EINTR and err != EBADF:
            c.store_int(&self.deferred_errno, err)
        return 0

    # -- frames that arrive in pieces --------------------------------------------
    # A large frame (recv_exactly, recv_exactly_into, recv_msg, recv_msgs) is
    # read straight into its result.  When the call gives up part-way
    # (BlockingIOError, TimeoutError, a signal handler's exception) the bytes
    # it took go back to the receive buffer, and the next call would copy
    # them into a new result and back again: a frame arriving over K
    # readiness events would cost O(K x size).  So once the buffer already
    # holds more than GATHER_MIN bytes of the frame, on a socket that can give
    # up part-way, the frame is completed in the buffer itself (grown
    # geometrically, rb_reserve_frame) and copied out once, when whole:
    # every call only adds what arrived, and whatever happens every byte
    # taken is already where the next call looks.  A blocking socket, and
    # the first try at a frame, keep the straight read (no extra copy).

    cdef inline bint _gathers(self, Py_ssize_t have) noexcept:
        """Whether a frame of which the buffer holds ``have`` bytes is
        completed in the buffer (_fill_frame) rather than in its result."""
        return have > GATHER_MIN and self._timeout() >= 0

    cdef int _fill_frame(self, Py_ssize_t need, double deadline) except -1:
        """Receive into the buffer until it holds ``need`` bytes: 1, or 0 at
        EOF.  On any error the bytes read so far stay buffered."""
        cdef IOArgs a
        cdef ssize_t n
        while self.rbuf.end - self.rbuf.start < need:
            rb_reserve_frame(&self.rbuf, need)
            a.buf = self.rbuf.data + self.rbuf.end
            a.len = <size_t>(self.rbuf.capacity - self.rbuf.end)
            a.flags = 0
            n = self._call(c.POLLIN, _do_recv, &a, deadline)
            if n == 0:
                return 0
            self.rbuf.end += n
        return 1

    cdef int _recv_full(self, char *dst, Py_ssize_t n, double deadline,
                        Py_ssize_t *got) except -1:
        """Read straight into dst until got[0] == n, or EOF (got[0] < n).
        On a blocking socket the whole loop runs without the GIL."""
        cdef BlockedCall node
        cdef IOArgs a
        cdef ssize_t r = 0
        cdef Py_ssize_t done = got[0]
        cdef int fd, err = 0
        cdef bint closed
        self._raise_deferred()
        while done < n:
            if self._timeout() < 0:
                fd = self._enter(&node)
                if fd < 0:
                    return raise_errno(EBADF)
                with nogil:
                    while done < n:
                        r = c.recv(fd, dst + done, <size_t>(n - done), 0)
                        if r <= 0:
                            err = errno
                            break
                        done += r
                closed = self._leave(&node)
                got[0] = done
                if closed and done < n:
                    return raise_errno(EBADF)  # closed by another thread meanwhile
                if done >= n or r == 0:
                    return 0
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                return raise_errno(err)
            a.buf = dst + done
            a.len = <size_t>(n - done)
            a.flags = 0
            r = self._call(c.POLLIN, _do_recv, &a, deadline)
            if r == 0:
                return 0
            done += r
            got[0] = done
        return 0

    cdef int _read_exact(self, char *dst, Py_ssize_t n, double deadline,
                         Py_ssize_t *got) except -1:
        """Fill dst[got[0]:n] from the receive buffer, then from the kernel:
        small remainders through the buffer (one read may bring more), large
        ones straight into dst.  got[0] < n afterwards means EOF; on an
        exception dst[:got[0]] holds what was taken (the caller puts it back)."""
        cdef Py_ssize_t take
        while True:
            take = min(n - got[0], self.rbuf.end - self.rbuf.start)
            if take:
                memcpy(dst + got[0], self.rbuf.data + self.rbuf.start, take)
                self.rbuf.start += take
                got[0] += take
                if self.rbuf.start == self.rbuf.end:
                    self.rbuf.start = self.rbuf.end = 0
            if got[0] >= n:
                return 0
            if n - got[0] >= DIRECT_READ_MIN:
                return self._recv_full(dst, n, deadline, got)
            if self._fill(deadline) == 0:
                return 0

    def recv_exactly(self, n):
        """Receive exactly ``n`` bytes; the timeout bounds the whole call.

        IncompleteReadError (holding the bytes that came, consumed) when the stream ends
        first; on any other error (TimeoutError, OSError, a signal handler's exception)
        the bytes read so far stay in the receive buffer.
        """
        return self._recv_exactly(n)

    cdef bytes _recv_exactly(self, object n):
        cdef Py_ssize_t size = PyLong_AsSsize_t(_index(n))  # the stdlib's message
        cdef Py_ssize_t got = 0, held
        cdef bytes result
        if size < 0:
            raise ValueError("n must not be negative")
        self._begin_receive()
        try:
            held = self.rbuf.end - self.rbuf.start
            if held >= size:
                return rb_take(&self.rbuf, size)
            if self._gathers(held):
                if self._fill_frame(size, self._deadline()):
                    return rb_take(&self.rbuf, size)
                raise IncompleteReadError(
                    rb_take(&self.rbuf, self.rbuf.end - self.rbuf.start), size)
            result = PyBytes_FromStringAndSize(NULL, size)
            try:
                self._read_exact(PyBytes_AS_STRING(result), size, self._deadline(), &got)
            except BaseException:
                rb_unread(&self.rbuf, PyBytes_AS_STRING(result), got)
                raise
            if got < size:
                raise IncompleteReadError(result[:got], size)
            return result
        finally:
            self._end_receive()

    def recv_exactly_into(self, buffer, nbytes=0):
        """Fill the first ``nbytes`` bytes (0: all) of a writable buffer and return that
        count.

        As recv_exactly(): the timeout bounds the whole call, IncompleteReadError when
        the stream ends first, and on any other error the bytes read so far go back to
        the receive buffer.
        """
        cdef Py_buffer view
        cdef Py_ssize_t size, got = 0, held
        get_writable(buffer, &view, "recv_exactly_into")
        size = check_nbytes(&view, nbytes, None, NULL,
                            "negative buffersize in recv_exactly_into",
                            "buffer too small for requested bytes")
        try:
            self._begin_receive()
            try:
                held = self.rbuf.end - self.rbuf.start
                if held < size and self._gathers(held):
                    if self._fill_frame(size, self._deadline()):
                        got = size
                    else:
                        got = self.rbuf.end - self.rbuf.start
                    memcpy(view.buf, self.rbuf.data + self.rbuf.start, got)
                    self.rbuf.start += got
                    if self.rbuf.start == self.rbuf.end:
                        self.rbuf.start = self.rbuf.end = 0
                else:
                    self._read_exact(<char *>view.buf, size, self._deadline(), &got)
            except BaseException:
                rb_unread(&self.rbuf, <char *>view.buf, got)
                raise
            finally:
                self._end_receive()
            if got < size:
                raise IncompleteReadError(PyBytes_FromStringAndSize(<char *>view.buf, got), size)
            return size
        finally:
            PyBuffer_Release(&view)

    def recv_until(self, delimiter, limit=65536):
        """Receive up to and including ``delimiter`` (bytes-like) and return it all, at
        most ``limit`` bytes; the timeout bounds the whole call.

        LimitOverrunError when ``limit`` bytes hold no delimiter, IncompleteReadError
        (holding the bytes, consumed) when the stream ends first.  Bytes read past the
        delimiter, and on a timeout or an error all the bytes read, stay in the receive
        buffer.
        """
        cdef Py_buffer delim
        cdef Py_ssize_t climit = check_positive(limit, "limit")
        cdef Py_ssize_t held, window, scan = 0
        cdef const char *start
        cdef const char *found
        cdef double deadline
        PyObject_GetBuffer(delimiter, &delim, PyBUF_SIMPLE)
        try:
            if delim.len == 0:
                raise ValueError("delimiter must not be empty")
            self._begin_receive()
            try:
                deadline = self._deadline()
                while True:
                    held = self.rbuf.end - self.rbuf.start
                    window = min(held, climit)
                    if window - scan >= delim.len:
                        start = self.rbuf.data + self.rbuf.start
                        found = <const char *>c.memmem(start + scan, <size_t>(window - scan),
                                                       delim.buf, <size_t>delim.len)
                        if found != NULL:
                            return rb_take(&self.rbuf, (found - start) + delim.len)
                        scan = window - delim.len + 1
                    if held >= climit:
                        raise LimitOverrunError(
                            f"no delimiter within the first {climit} bytes", held)
                    if self._fill(deadline) == 0:
                        raise IncompleteReadError(rb_take(&self.rbuf, held), None)
            finally:
                self._end_receive()
        finally:
            PyBuffer_Release(&delim)

    def recv_iter(self, buffer):
        """Iterate until the end of the stream, receiving into ``buffer`` with
        recv_into() each time (the timeout applies to each receive) and yielding a
        memoryview of the part just written, valid only until the next iteration.
        ValueError for an empty buffer.
        """
        cdef Py_buffer view
        get_writable(buffer, &view, "recv_iter")
        empty = view.len == 0
        PyBuffer_Release(&view)
        if empty:
            raise ValueError("recv_iter() needs a non-empty buffer")
        return self._iter_received(memoryview(buffer).cast("B"))

    def _iter_received(self, view):
        while True:
            n = self.recv_into(view)
            if not n:
                return
            yield view[:n]

    # -- length-prefixed messages ---------------------------------------------

    def send_msg(self, payload, *, prefix_size=4):
        """Send ``payload`` after its length as a big-endian ``prefix_size``-byte
        integer (1, 2, 4 or 8: ValueError otherwise), all of it as sendall() does; the
        timeout bounds the whole call.  OverflowError when the length does not fit the
        prefix.
        """
        cdef int psize = check_prefix_size(prefix_size)
        cdef Py_buffer view
        cdef unsigned char header[8]
        cdef c.iovec iov[2]
        cdef unsigned long long length
        cdef int i
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            length = <unsigned long long>view.len
            if psize < 8 and length >> (8 * psize):
                raise OverflowError(
                    f"message of {length} bytes does not fit a {psize}-byte length prefix")
            for i in range(psize):
                header[psize - 1 - i] = <unsigned char>((length >> (8 * i)) & 0xFF)
            iov[0].iov_base = header
            iov[0].iov_len = <size_t>psize
            iov[1].iov_base = view.buf
            iov[1].iov_len = <size_t>view.len
            self._sendall_iov(iov, 2, self._deadline())
        finally:
            PyBuffer_Release(&view)

    # the defaults of methods are literals: inspect.signature() cannot look a
    # name up for a method of a compiled class (16777216 is DEFAULT_MAX_MESSAGE,
    # as tests/test_docstrings.py checks)
    def recv_msg(self, *, prefix_size=4, max_size=16777216):
        """Receive one message framed by send_msg() and return its payload; the timeout
        bounds the whole call.

        MessageTooLargeError when its prefix announces more than ``max_size`` bytes (the
        prefix stays buffered); IncompleteReadError when the stream ends mid-message.
        On a timeout or another error the bytes read so far stay in the receive buffer.
        """
        cdef int psize = check_prefix_size(prefix_size)
        cdef Py_ssize_t cmax = check_positive(max_size, "max_size")
        self._begin_receive()
        try:
            return self._recv_one(psize, cmax, self._deadline())
        finally:
            self._end_receive()

    def recv_msgs(self, max_count=1024, *, prefix_size=4, max_size=16777216,
                  max_bytes=None):
        """Receive the next message (waiting for it as recv_msg() does) and every
        complete one already received after it, at most ``max_count`` in all; returns
        their payloads.  Once it has a message it never waits; a next message larger
        than ``max_size`` is left for the next call to report.  ``max_bytes``: the
        messages after the first are taken only while all the payloads returned
        stay within that many bytes (the rest wait for the next call), which bounds
        a batch's memory whatever the messages' sizes.
        """
        return self._recv_msgs(max_count, prefix_size, max_size, max_bytes)

    cdef list _recv_msgs(self, object max_count, object prefix_size, object max_size,
                         object max_bytes):
        cdef Py_ssize_t count = check_positive(max_count, "max_count")
        cdef int psize = check_prefix_size(prefix_size)
        cdef Py_ssize_t cmax = check_positive(max_size, "max_size")
        cdef Py_ssize_t room = PY_SSIZE_T_MAX
        cdef list messages = []
        cdef bint full
        if max_bytes is not None:
            room = check_positive(max_bytes, "max_bytes")
        self._begin_receive()
        try:
            full = self._take_msgs(messages, count, psize, cmax, &room)
            if not messages:
                first = self._recv_one(psize, cmax, self._deadline())
                messages.append(first)
                room -= len(<bytes>first)
                full = self._take_msgs(messages, count, psize, cmax, &room)
            # and whatever the kernel already holds, without waiting, until
            # the batch is full or its next message cannot join it
            while not full and self._fill_nowait():
                full = self._take_msgs(messages, count, psize, cmax, &room)
            return messages
        finally:
            self._end_receive()

    cdef bint _take_msgs(self, list messages, Py_ssize_t count, int psize,
                         Py_ssize_t cmax, Py_ssize_t *room) except -1:
        """Move the complete messages in the receive buffer to ``messages``
        (after the first, only while their payloads fit in ``room``, which
        they use up).  True when more bytes from the kernel would not add a
        message: the batch is full, or the next one is too large for it."""
        cdef unsigned long long length
        cdef Py_ssize_t held
        while len(messages) < count:
            held = self.rbuf.end - self.rbuf.start
            if held < psize:
                return False
            length = decode_prefix(self.rbuf.data + self.rbuf.start, psize)
            if length > <unsigned long long>cmax:
                return True  # reported by the next call
            if messages and <Py_ssize_t>length > room[0]:  # length <= cmax: no overflow
                return True  # for the next batch
            if <unsigned long long>(held - psize) < length:
                return False
            messages.append(rb_take_after(&self.rbuf, psize, <Py_ssize_t>length))
            room[0] -= <Py_ssize_t>length
        return True

    cdef object _recv_one(self, int psize, Py_ssize_t cmax, double deadline):
        """One framed message (the caller holds ``receiving``)."""
        cdef unsigned long long length
        cdef Py_ssize_t n, have, got = 0
        cdef char header[8]
        cdef bytes result
        while self.rbuf.end - self.rbuf.start < psize:
            if self._fill(deadline) == 0:
                raise IncompleteReadError(
                    rb_take(&self.rbuf, self.rbuf.end - self.rbuf.start), psize)
        length = decode_prefix(self.rbuf.data + self.rbuf.start, psize)
        if length > <unsigned long long>cmax:
            raise MessageTooLargeError(length, cmax)
        n = <Py_ssize_t>length
        have = self.rbuf.end - self.rbuf.start - psize
        if n - have < DIRECT_READ_MIN:
            # small: through the buffer, which the same reads may fill with
            # the next messages too; a failure leaves the frame buffered
            while self.rbuf.end - self.rbuf.start - psize < n:
                if self._fill(deadline) == 0:
                    raise IncompleteReadError(rb_take_after(
                        &self.rbuf, psize, self.rbuf.end - self.rbuf.start - psize), n)
            return rb_take_after(&self.rbuf, psize, n)
        if self._gathers(have):  # a frame arriving in pieces: see _gathers
            if self._fill_frame(psize + n, deadline):
                return rb_take_after(&self.rbuf, psize, n)
            raise IncompleteReadError(rb_take_after(
                &self.rbuf, psize, self.rbuf.end - self.rbuf.start - psize), n)
        # large: the rest goes straight into the result, allocated before the
        # prefix is taken (a MemoryError leaves the frame where it was)
        result = PyBytes_FromStringAndSize(NULL, n)
        memcpy(header, self.rbuf.data + self.rbuf.start, psize)
        self.rbuf.start += psize
        try:
            self._read_exact(PyBytes_AS_STRING(result), n, deadline, &got)
        except BaseException:
            rb_unread(&self.rbuf, PyBytes_AS_STRING(result), got)
            rb_unread(&self.rbuf, header, psize)
            raise
        if got < n:
            raise IncompleteReadError(result[:got], n)
        return result

    # -- vectored sends and sendfile -------------------------------------------

    cdef int _sendall_iov(self, c.iovec *iov, Py_ssize_t count, double deadline) except -1:
        """sendmsg() until every byte of iov[:count] is out (iov is advanced in
        place), IOV_MAX buffers at a time.  A BlockingIOError or TimeoutError
        after part went out carries the count in ``characters_written``."""
        cdef MsgArgs a
        cdef ssize_t n
        cdef Py_ssize_t sent = 0
        memset(&a, 0, sizeof(a))
        while True:
            while count > 0 and iov[0].iov_len == 0:
                iov += 1
                count -= 1
            if count == 0:
                return 0
            a.msg.msg_iov = iov
            a.msg.msg_iovlen = <size_t>min(count, <Py_ssize_t>c.IOV_MAX)
            try:
                n = self._send(c.POLLOUT, _do_sendmsg, &a, &a.flags, 0, deadline)
            except (BlockingIOError, TimeoutError) as exc:
                _common.note_written(exc, sent)
                raise
            sent += n
            while n > 0:
                if <size_t>n >= iov[0].iov_len:
                    n -= <ssize_t>iov[0].iov_len
                    iov += 1
                    count -= 1
                else:
                    iov[0].iov_base = <char *>iov[0].iov_base + n
                    iov[0].iov_len -= <size_t>n
                    n = 0
            if count:
                PyErr_CheckSignals()

    cdef object _send_buffers(self, object buffers, bint send_all):
        # one sendmsg() takes at most IOV_MAX buffers: an iterator is not
        # consumed past them (the rest is the caller's, as in the pure twin)
        cdef list items = list(buffers) if send_all or type(buffers) is list or \
            type(buffers) is tuple else list(_islice(buffers, c.IOV_MAX))
        cdef Py_ssize_t count = len(items), acquired = 0, i
        cdef Py_buffer *views
        cdef c.iovec *iov
        cdef MsgArgs a
        if not send_all and count > c.IOV_MAX:
            count = c.IOV_MAX
        views = <Py_buffer *>PyMem_Malloc(<size_t>(count + 1) * sizeof(Py_buffer))
        iov = <c.iovec *>PyMem_Malloc(<size_t>(count + 1) * sizeof(c.iovec))
        try:
            if views == NULL or iov == NULL:
                raise MemoryError()
            for i in range(count):
                PyObject_GetBuffer(items[i], &views[i], PyBUF_SIMPLE)
                acquired += 1
                iov[i].iov_base = views[i].buf
                iov[i].iov_len = <size_t>views[i].len
            if send_all:
                self._sendall_iov(iov, count, self._deadline())
                return None
            memset(&a, 0, sizeof(a))
            a.msg.msg_iov = iov
            a.msg.msg_iovlen = <size_t>count
            return self._call(c.POLLOUT, _do_sendmsg, &a, self._deadline())
        finally:
            for i in range(acquired):
                PyBuffer_Release(&views[i])
            PyMem_Free(views)
            PyMem_Free(iov)

    def send_buffers(self, buffers):
        """Send the buffers with one sendmsg() (the first IOV_MAX of them, 1024 on
        Linux) and return how many bytes went out, possibly fewer than their total, as
        socket.sendmsg(buffers); never raises SIGPIPE.
        """
        return self._send_buffers(buffers, False)

    def sendall_buffers(self, buffers):
        """Send every byte of ``buffers`` (bytes-like objects, not joined) with as few
        sendmsg() calls as the kernel allows; the timeout bounds the whole call.  Never
        raises SIGPIPE; after an error, an unknown part may have been sent.
        """
        self._send_buffers(buffers, True)

    def sendfile(self, file, offset=0, count=None):
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
        cdef SendfileArgs a
        cdef Py_ssize_t total = 0, want
        cdef ssize_t n
        cdef double deadline
        cdef c.off_t start
        cdef bint seekable, copy
        in_fd, start, want, seekable = _common.sendfile_plan(file, offset, count)
        deadline = self._deadline()
        a.in_fd = in_fd
        a.offset = start
        copy = not seekable
        try:
            while not copy and total < want:
                a.count = <size_t>min(want - total, sendfile_chunk)
                try:
                    # sendfile() may read the disk for long even on a
                    # non-blocking socket: never with the GIL
                    n = self._call(c.POLLOUT, _do_sendfile, &a, deadline, True)
                except BlockingIOError:
                    if total:
                        break
                    raise
                except OSError as exc:
                    if total == 0 and exc.errno in SENDFILE_UNSUPPORTED:
                        copy = True
                        break
                    raise
                if n == 0:
                    break  # end of file
                total += n
            if copy:
                self._sendfile_by_reading(in_fd, start, want, seekable, deadline, &total)
        finally:
            if seekable:
                _common.set_file_position(file, in_fd, start + total)
        return total

    cdef bint _source_ready(self, int fd) except -1:
        """Whether a file that cannot seek has data to read, without waiting."""
        cdef c.pollfd pfd
        cdef int rc
        pfd.fd = fd
        pfd.events = c.POLLIN
        pfd.revents = 0
        rc = c.poll(&pfd, 1, 0)
        if rc < 0:
            return raise_errno(errno)
        return rc > 0

    cdef int _sendfile_by_reading(self, int in_fd, c.off_t start, Py_ssize_t want,
                                  bint seekable, double deadline,
                                  Py_ssize_t *total) except -1:
        """The read/send loop for descriptors the kernel cannot sendfile()
        from: pread() from a file that can seek, read() from one that cannot
        (waiting for its data within the deadline, or not at all on a
        non-blocking socket).  total[0] counts every byte sent, whatever
        stops the loop."""
        cdef char *chunk = <char *>PyMem_Malloc(<size_t>sendfile_read_chunk)
        cdef ssize_t n
        cdef size_t size
        cdef c.off_t position
        cdef int err = 0
        cdef c.iovec iov
        if chunk == NULL:
            raise MemoryError()
        try:
            while total[0] < want:
                size = <size_t>min(want - total[0], sendfile_read_chunk)
                if seekable:
                    position = start + total[0]
                    with nogil:
                        n = pread(in_fd, chunk, size, position)
                        err = errno
                else:
                    # wait for its data as for the socket's (close() wakes the
                    # wait); a non-blocking socket only looks
                    if self._timeout() == 0:
                        if not self._source_ready(in_fd):
                            raise_errno(EAGAIN)
                    elif self._wait(c.POLLIN, deadline, in_fd):
                        raise_timeout()
                    with nogil:
                        n = c_read(in_fd, chunk, size)
                        err = errno
                if n < 0:
                    if err == EINTR:
                        PyErr_CheckSignals()
                        continue
                    raise_errno(err)
                if n == 0:
                    break
                iov.iov_base = chunk
                iov.iov_len = <size_t>n
                try:
                    self._sendall_iov(&iov, 1, deadline)
                except BaseException:
                    total[0] += n - <Py_ssize_t>iov.iov_len  # the part that went out
                    raise
                total[0] += n
        except BlockingIOError:
            if not (self._timeout() == 0 and total[0]):
                raise
        finally:
            PyMem_Free(chunk)
        return 0


    # -- messages with ancillary data: the receive buffer first ---------------
    # Bytes a framing call read past its result are returned by recvmsg(),
    # recvmsg_into() and recv_fds() before anything the kernel holds, with no
    # ancillary data (docs/messages.md).

    # Each takes the buffer for itself: a call in another thread may have
    # emptied it since _holds_received() said yes, and then the kernel is next.

    cdef bint _holds_received(self) except -1:
        """Whether a receive goes through the buffer: bytes are held, or
        another call is receiving (the receive then raises RuntimeError)."""
        cdef bint holds
        with cython.critical_section(self):
            holds = self.receiving or self.rbuf.end > self.rbuf.start
        return holds

    cdef object _buffered_bytes(self, Py_ssize_t size, int flags):
        """Up to ``size`` buffered bytes, or None when the buffer is empty."""
        cdef Py_ssize_t n
        if not self._holds_received():
            return None
        self._check_open()
        self._begin_receive()
        try:
            n = min(size, self.rbuf.end - self.rbuf.start)
            if self.rbuf.end == self.rbuf.start:
                return None
            if flags & c.MSG_PEEK:
                return PyBytes_FromStringAndSize(self.rbuf.data + self.rbuf.start, n)
            return rb_take(&self.rbuf, n)
        finally:
            self._end_receive()

    cdef Py_ssize_t _buffered_into(self, c.iovec *iov, Py_ssize_t count, int flags) except -1:
        """Buffered bytes copied into ``iov``; -2 when the buffer is empty."""
        cdef Py_ssize_t copied = 0, n, i
        self._check_open()
        self._begin_receive()
        try:
            if self.rbuf.end == self.rbuf.start:
                return -2
            for i in range(count):
                n = min(<Py_ssize_t>iov[i].iov_len, self.rbuf.end - self.rbuf.start - copied)
                memcpy(iov[i].iov_base, self.rbuf.data + self.rbuf.start + copied, n)
                copied += n
            if not flags & c.MSG_PEEK:
                self.rbuf.start += copied
                if self.rbuf.start == self.rbuf.end:
                    self.rbuf.start = self.rbuf.end = 0
            return copied
        finally:
            self._end_receive()
