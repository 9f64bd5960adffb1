# The base of the compiled twin (pair: _base_py.py): errors, integer
# arguments, the clock, the syscalls as tiny nogil functions, and _Socket with
# the one call helper every operation goes through (_call: deadline, poll,
# syscall, EINTR, as CPython's sock_call_ex).  Included once by _socket_c.pyx.

# Bumped in a forked child: calls in progress in the parent's threads do not
# exist there, so a socket's count of them is stale (see _Socket._enter).
cdef unsigned long fork_generation = 0


def _after_fork_in_child():
    global fork_generation
    fork_generation += 1


_os.register_at_fork(after_in_child=_after_fork_in_child)


cdef enum:
    # recv() of up to this many bytes reads into the stack and copies out:
    # cheaper than allocating bufsize bytes and shrinking the result
    STACK_RECV_MAX = 8192
    GETSOCKOPT_BUFLEN_MAX = 1024
    # sends up to this size on a blocking socket first try with MSG_DONTWAIT
    TRY_SEND_MAX = 65536
    SEND_BACKOFF = 8


# -- errors -------------------------------------------------------------------

cdef int raise_errno(int err) except -1:
    """Raise the OSError subclass that matches ``err``, with errno and strerror."""
    global errno
    errno = err
    PyErr_SetFromErrno(OSError)
    return -1


cdef int raise_timeout() except -1:
    raise TimeoutError("timed out")


cdef int raise_gaierror(int code, int err) except -1:
    if code == c.EAI_SYSTEM:
        return raise_errno(err)
    raise gaierror(code, c.gai_strerror(code).decode("utf-8", "replace"))


# -- integers -----------------------------------------------------------------

cdef int as_int(object value) except? -1:
    """A C int from anything with __index__ (never a float), with the errors
    of the stdlib's "i" argument format."""
    cdef long n = PyLong_AsLong(value)
    if n > INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if n < INT_MIN:
        raise OverflowError("signed integer is less than minimum")
    return <int>n


cdef int as_int_arg(object value) except? -1:
    """A C int with the errors of the stdlib's _PyLong_AsInt() (shutdown)."""
    cdef long n
    try:
        n = PyLong_AsLong(value)
    except OverflowError:
        n = INT_MAX + <long>1
    if n > INT_MAX or n < INT_MIN:
        raise OverflowError("Python int too large to convert to C int")
    return <int>n


# -- time ---------------------------------------------------------------------

cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


# -- the syscalls, one small function each ------------------------------------
# Each returns the syscall's result (-1 with errno set on failure).

ctypedef ssize_t (*sock_func)(int fd, void *data) noexcept nogil

cdef struct IOArgs:
    char *buf
    size_t len
    int flags
    c.sockaddr_storage addr
    c.socklen_t addrlen


cdef ssize_t _do_recv(int fd, void *data) noexcept nogil:
    cdef IOArgs *a = <IOArgs *>data
    return c.recv(fd, a.buf, a.len, a.flags)


cdef ssize_t _do_send(int fd, void *data) noexcept nogil:
    cdef IOArgs *a = <IOArgs *>data
    return c.send(fd, a.buf, a.len, a.flags | c.MSG_NOSIGNAL)


cdef ssize_t _do_recvfrom(int fd, void *data) noexcept nogil:
    cdef IOArgs *a = <IOArgs *>data
    a.addrlen = sizeof(a.addr)
    return c.recvfrom(fd, a.buf, a.len, a.flags, <c.sockaddr *>&a.addr, &a.addrlen)


cdef ssize_t _do_sendto(int fd, void *data) noexcept nogil:
    cdef IOArgs *a = <IOArgs *>data
    return c.sendto(fd, a.buf, a.len, a.flags | c.MSG_NOSIGNAL,
                    <c.sockaddr *>&a.addr, a.addrlen)


cdef ssize_t _do_accept(int fd, void *data) noexcept nogil:
    cdef IOArgs *a = <IOArgs *>data
    a.addrlen = sizeof(a.addr)
    return c.accept4(fd, <c.sockaddr *>&a.addr, &a.addrlen, c.SOCK_CLOEXEC)


cdef struct MsgArgs:
    c.msghdr msg
    int flags


cdef ssize_t _do_sendmsg(int fd, void *data) noexcept nogil:
    cdef MsgArgs *a = <MsgArgs *>data
    return c.sendmsg(fd, &a.msg, a.flags | c.MSG_NOSIGNAL)


cdef struct SendfileArgs:
    int in_fd
    c.off_t offset
    size_t count


cdef ssize_t _do_sendfile(int fd, void *data) noexcept nogil:
    cdef SendfileArgs *a = <SendfileArgs *>data
    return c.sendfile(fd, a.in_fd, &a.offset, a.count)


cdef struct MmsgArgs:
    c.mmsghdr *msgs
    unsigned int count
    int flags


cdef ssize_t _do_recvmmsg(int fd, void *data) noexcept nogil:
    cdef MmsgArgs *a = <MmsgArgs *>data
    return c.recvmmsg(fd, a.msgs, a.count, a.flags, NULL)


cdef ssize_t _do_sendmmsg(int fd, void *data) noexcept nogil:
    cdef MmsgArgs *a = <MmsgArgs *>data
    return c.sendmmsg(fd, a.msgs, a.count, a.flags | c.MSG_NOSIGNAL)


cdef ssize_t _do_recvmsg(int fd, void *data) noexcept nogil:
    cdef MsgArgs *a = <MsgArgs *>data
    return c.recvmsg(fd, &a.msg, a.flags)


# -- buffers ------------------------------------------------------------------

cdef int get_writable(object buffer, Py_buffer *view, str method) except -1:
    try:
        PyObject_GetBuffer(buffer, view, PyBUF_WRITABLE)
    except Exception:  # not a buffer, read-only, not contiguous, ...
        raise TypeError(f"{method}() argument 1 must be read-write bytes-like object, "
                        f"not {'None' if buffer is None else type(buffer).__name__}") from None
    return 0


cdef Py_ssize_t check_nbytes(Py_buffer *view, object nbytes_arg, object flags, int *cflags,
                             str negative, str too_large) except -1:
    """The byte count to use (0: the whole buffer), converting ``nbytes``
    and then ``flags`` (when ``cflags`` is given) after the buffer and
    checking them, in the stdlib's order; on error the view is released."""
    cdef Py_ssize_t nbytes
    try:
        nbytes = PyLong_AsSsize_t(_index(nbytes_arg))
        if cflags != NULL:
            cflags[0] = as_int(flags)
    except BaseException:
        PyBuffer_Release(view)
        raise
    if nbytes < 0:
        PyBuffer_Release(view)
        raise ValueError(negative)
    if nbytes > view.len:
        PyBuffer_Release(view)
        raise ValueError(too_large)
    return nbytes if nbytes else view.len




cdef Py_ssize_t check_positive(object value, str name) except -1:
    cdef Py_ssize_t n = PyLong_AsSsize_t(_index(value))  # the stdlib's OverflowError
    if n <= 0:
        raise ValueError(f"{name} must be positive")
    return n


# -- the socket ---------------------------------------------------------------

cdef class _Socket:
    """What stream and datagram sockets have in common."""

    cdef int fd
    cdef int family_
    cdef int kind
    cdef int proto_
    cdef double timeout        # < 0: blocking; 0: non-blocking; > 0: seconds
    cdef int busy              # calls that released the GIL while using fd
    cdef unsigned long busy_generation  # fork_generation when busy was counted
    cdef int pending_close_fd  # closed by close() while busy; closed by the last call
    cdef int send_backoff      # sends left that skip the MSG_DONTWAIT try
    cdef object __weakref__

    def __cinit__(self):
        self.fd = -1
        self.pending_close_fd = -1
        self.timeout = -1.0

    cdef int _open(self, object family, int kind) except -1:
        cdef int fam = as_int(family)
        cdef int fd
        if fam != c.AF_INET and fam != c.AF_INET6 and fam != c.AF_UNIX:
            return raise_errno(EAFNOSUPPORT)
        fd = c.socket(fam, kind | c.SOCK_CLOEXEC, 0)
        if fd < 0:
            return raise_errno(errno)
        self.fd = fd
        self.family_ = fam
        self.kind = kind
        return 0

    @classmethod
    def from_fd(cls, fd):
        """Take ownership of an open socket descriptor of this class's type.

        The timeout starts as None for a blocking descriptor and 0.0 for a
        non-blocking one.  On error the descriptor stays open and the caller's.
        """
        cdef int cfd = as_int(fd)
        cdef int kind = 0, family = 0, proto = 0, flags
        cdef c.socklen_t optlen = sizeof(int)
        if cfd < 0:
            raise ValueError("negative file descriptor")
        if c.getsockopt(cfd, c.SOL_SOCKET, c.SO_TYPE, &kind, &optlen) < 0:
            raise_errno(errno)
        optlen = sizeof(int)
        c.getsockopt(cfd, c.SOL_SOCKET, c.SO_DOMAIN, &family, &optlen)
        optlen = sizeof(int)
        c.getsockopt(cfd, c.SOL_SOCKET, c.SO_PROTOCOL, &proto, &optlen)
        if kind != cls._KIND or family not in _common.SUPPORTED_FAMILIES:
            raise ValueError(
                f"fd {cfd} is a {_common.family_name(family)} "
                f"{_common.type_name(kind)} socket, not what {cls.__name__} wraps")
        flags = fcntl(cfd, F_GETFL)
        cdef _Socket self = cls.__new__(cls)
        self.fd = cfd
        self.family_ = family
        self.kind = kind
        self.proto_ = proto
        self.timeout = 0.0 if flags >= 0 and (flags & O_NONBLOCK) else -1.0
        return self

    @classmethod
    def from_socket(cls, sock):
        """Take over a stdlib socket (which is detached) keeping its timeout."""
        if not isinstance(sock, _stdlib.socket):
            raise TypeError(f"expected a socket.socket, not {type(sock).__name__}")
        timeout = sock.gettimeout()
        fd = sock.fileno()
        if fd == -1:
            raise_errno(EBADF)
        self = cls.from_fd(fd)
        sock.detach()
        self.settimeout(timeout)
        return self

    def to_socket(self):
        """Hand the descriptor over to a new stdlib socket; this one is left closed."""
        timeout = self.gettimeout()
        family, kind = self.family_, self.kind
        fd = self.detach()
        if fd == -1:
            raise_errno(EBADF)
        sock = _stdlib.socket(family, kind, 0, fileno=fd)
        sock.settimeout(timeout)
        return sock

    # -- the one helper every call goes through ------------------------------

    cdef inline void _enter(self) noexcept:
        if self.busy_generation != fork_generation:
            self.busy = 0  # counted in the parent before a fork
            self.busy_generation = fork_generation
        self.busy += 1

    cdef inline void _leave(self) noexcept:
        self.busy -= 1
        if self.busy == 0 and self.pending_close_fd >= 0:
            c_close(self.pending_close_fd)
            self.pending_close_fd = -1

    cdef inline double _deadline(self) noexcept:
        return monotonic() + self.timeout if self.timeout > 0 else -1.0

    cdef int _wait(self, short events, double deadline) except -1:
        """poll() without the GIL until ready (0) or past the deadline (1)."""
        cdef c.pollfd pfd
        cdef int rc, err, ms
        cdef double remaining
        while True:
            if deadline < 0:
                ms = -1
            else:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return 1
                ms = <int>ceil(remaining * 1000) if remaining < INT_MAX / 1000 else INT_MAX
            pfd.fd = self.fd
            if pfd.fd < 0:
                return raise_errno(EBADF)
            pfd.events = events
            pfd.revents = 0
            self._enter()
            with nogil:
                rc = c.poll(&pfd, 1, ms)
                err = errno
            self._leave()
            if self.fd < 0:
                return raise_errno(EBADF)
            if rc > 0:
                return 0
            if rc < 0:
                if err != EINTR:
                    return raise_errno(err)
                PyErr_CheckSignals()

    cdef ssize_t _call(self, short events, sock_func func, void *data,
                       double deadline) except -1:
        """Run ``func`` on the descriptor the way CPython's sock_call_ex does."""
        cdef ssize_t res
        cdef int fd, err
        while True:
            fd = self.fd
            if fd < 0:
                return raise_errno(EBADF)
            if self.timeout < 0:
                # a blocking descriptor: the call may block, so drop the GIL
                self._enter()
                with nogil:
                    res = func(fd, data)
                    err = errno
                self._leave()
                if self.fd < 0 and (res < 0 or (res == 0 and func != _do_accept
                                                and events == c.POLLIN)):
                    # closed by another thread meanwhile: the shutdown() that
                    # woke this call looks like EOF; report the close instead
                    return raise_errno(EBADF)
                if res >= 0:
                    return res
            else:
                res = func(fd, data)
                if res >= 0:
                    return res
                err = errno
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if self.timeout > 0 and c.would_block(err):
                if self._wait(events, deadline):
                    return raise_timeout()
                continue
            return raise_errno(err)

    cdef ssize_t _call_nogil(self, short events, sock_func func, void *data,
                             double deadline) except -1:
        """``_call`` for a syscall that may take long even on a non-blocking
        descriptor (sendfile() reads its file): the GIL is released around
        ``func`` whatever the timeout.  ``_call`` keeps the GIL there, which
        is cheaper for the quick recv/send family."""
        cdef ssize_t res
        cdef int fd, err
        while True:
            fd = self.fd
            if fd < 0:
                return raise_errno(EBADF)
            self._enter()
            with nogil:
                res = func(fd, data)
                err = errno
            self._leave()
            if self.fd < 0 and (res < 0 or (res == 0 and func != _do_accept
                                            and events == c.POLLIN)):
                return raise_errno(EBADF)  # closed by another thread meanwhile
            if res >= 0:
                return res
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if self.timeout > 0 and c.would_block(err):
                if self._wait(events, deadline):
                    return raise_timeout()
                continue
            return raise_errno(err)

    cdef ssize_t _send(self, sock_func func, IOArgs *a, double deadline) except -1:
        """A send through ``_call``.  On a blocking socket a small send first
        tries not to block, with the GIL held: there is room in the common
        case, and keeping the GIL is then cheaper than releasing it.  What
        that try leaves (all, or the rest of a partial send) goes on as an
        ordinary blocking send, so the result is what a blocking send gives;
        and after a try that found no room the next few sends skip it."""
        cdef ssize_t sent
        cdef int flags = a.flags
        if self.timeout >= 0 or a.len > TRY_SEND_MAX or self.fd < 0:
            return self._call(c.POLLOUT, func, a, deadline)
        if self.send_backoff:
            self.send_backoff -= 1
            return self._call(c.POLLOUT, func, a, deadline)
        a.flags = flags | c.MSG_DONTWAIT
        sent = func(self.fd, a)
        a.flags = flags
        if sent == <ssize_t>a.len:
            return sent
        self.send_backoff = SEND_BACKOFF
        if sent <= 0:
            return self._call(c.POLLOUT, func, a, deadline)
        a.buf += sent
        a.len -= <size_t>sent
        try:
            return sent + self._call(c.POLLOUT, func, a, deadline)
        except Exception:
            return sent  # these bytes are out; the error shows on the next call

    cdef inline int _check_open(self) except -1:
        if self.fd < 0:
            return raise_errno(EBADF)
        return 0

    # -- identity and lifetime ------------------------------------------------

    @property
    def family(self):
        return self.family_

    @property
    def type(self):
        return self.kind

    @property
    def proto(self):
        return self.proto_

    @property
    def closed(self):
        return self.fd < 0

    def fileno(self):
        return self.fd

    def close(self):
        """Close the socket; a no-op when already closed."""
        cdef int fd = self.fd
        if fd < 0:
            return
        self.fd = -1
        self._forget_received()
        if self.busy > 0 and self.busy_generation == fork_generation:
            # wake the calls blocked on fd; the last one out closes it
            c.shutdown(fd, c.SHUT_RDWR)
            self.pending_close_fd = fd
            return
        if c_close(fd) < 0 and errno != ECONNRESET and errno != EINTR:
            raise_errno(errno)

    cdef void _forget_received(self) noexcept:
        """At close: drop what the socket holds received (StreamSocket's buffer)."""
        pass

    def detach(self):
        """Forget the descriptor without closing it and return it (-1 if closed)."""
        cdef int fd = self.fd
        self.fd = -1
        return fd

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return _common.socket_repr(self)

    def __del__(self):
        if self.fd < 0:
            return
        try:
            _warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
        finally:
            self.close()

    def __dealloc__(self):
        if self.fd >= 0:  # only if __del__ could not run
            c_close(self.fd)

    def __reduce__(self):
        raise TypeError(f"cannot pickle '{type(self).__name__}' object")

    # -- addresses and options ------------------------------------------------

    def bind(self, address):
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen
        parse_address(self.family_, address, &addr, &addrlen, "bind")
        self._check_open()
        if c.bind(self.fd, <c.sockaddr *>&addr, addrlen) < 0:
            raise_errno(errno)

    cdef int _connect(self, object address, bint raise_errors) except -1:
        """connect() with the socket's timeout; returns 0 or, when not
        raising, the errno (c.EWOULDBLOCK on timeout)."""
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen
        cdef c.socklen_t optlen = sizeof(int)
        cdef int fd, rc, err, soerr = 0
        cdef double deadline
        parse_address(self.family_, address, &addr, &addrlen,
                      "connect" if raise_errors else "connect_ex")
        fd = self.fd
        if fd < 0:
            return raise_errno(EBADF) if raise_errors else EBADF
        deadline = self._deadline()
        if self.timeout < 0:
            self._enter()
            with nogil:
                rc = c.connect(fd, <c.sockaddr *>&addr, addrlen)
                err = errno
            self._leave()
            if self.fd < 0:
                return raise_errno(EBADF)  # closed by another thread meanwhile
        else:
            rc = c.connect(fd, <c.sockaddr *>&addr, addrlen)
            err = errno
        if rc == 0:
            return 0
        if err == EINTR:
            PyErr_CheckSignals()
            # the connection goes on in the background (CPython issue 23618)
            if self.timeout == 0:
                err = EINTR
            else:
                err = EINPROGRESS
        if err == EINPROGRESS and self.timeout != 0:
            if self._wait(c.POLLOUT, deadline):
                if raise_errors:
                    raise_timeout()
                return c.EWOULDBLOCK
            if c.getsockopt(self.fd, c.SOL_SOCKET, c.SO_ERROR, &soerr, &optlen) < 0:
                err = errno
            else:
                err = soerr
            if err == 0:
                return 0
        if raise_errors:
            raise_errno(err)
        return err

    def connect(self, address):
        self._connect(address, True)

    def connect_ex(self, address):
        """connect() returning an errno (0 on success) instead of raising OSError."""
        return self._connect(address, False)

    def getsockname(self):
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = sizeof(addr)
        memset(&addr, 0, sizeof(addr))
        self._check_open()
        if c.getsockname(self.fd, <c.sockaddr *>&addr, &addrlen) < 0:
            raise_errno(errno)
        return make_address(&addr, addrlen)

    def getpeername(self):
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = sizeof(addr)
        memset(&addr, 0, sizeof(addr))
        self._check_open()
        if c.getpeername(self.fd, <c.sockaddr *>&addr, &addrlen) < 0:
            raise_errno(errno)
        return make_address(&addr, addrlen)

    def setsockopt(self, level, optname, value):
        """Set an option from an int or from a bytes-like value."""
        cdef int clevel = as_int(level), coptname = as_int(optname)
        cdef int flag
        cdef Py_buffer view
        cdef int rc
        try:
            # as the stdlib: an int (anything with __index__) if it is one,
            # else a bytes-like value
            flag = as_int(value)
            is_int = True
        except (TypeError, OverflowError):
            is_int = False
        if is_int:
            self._check_open()
            rc = c.setsockopt(self.fd, clevel, coptname, &flag, sizeof(flag))
        else:
            PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
            try:
                self._check_open()
                rc = c.setsockopt(self.fd, clevel, coptname, view.buf, <c.socklen_t>view.len)
            finally:
                PyBuffer_Release(&view)
        if rc < 0:
            raise_errno(errno)

    def getsockopt(self, level, optname, buflen=0):
        """An int option, or with ``buflen`` up to that many raw bytes."""
        cdef int clevel = as_int(level), coptname = as_int(optname)
        cdef int cbuflen = as_int(buflen)
        cdef int flag = 0
        cdef char buf[GETSOCKOPT_BUFLEN_MAX]
        cdef c.socklen_t optlen
        if cbuflen == 0:
            self._check_open()
            optlen = sizeof(flag)
            if c.getsockopt(self.fd, clevel, coptname, &flag, &optlen) < 0:
                raise_errno(errno)
            return flag
        if cbuflen < 0 or cbuflen > GETSOCKOPT_BUFLEN_MAX:
            raise OSError("getsockopt buflen out of range")  # before EBADF, as the stdlib
        self._check_open()
        optlen = cbuflen
        if c.getsockopt(self.fd, clevel, coptname, buf, &optlen) < 0:
            raise_errno(errno)
        return buf[:optlen]

    def shutdown(self, how):
        cdef int chow = as_int_arg(how)
        self._check_open()
        if c.shutdown(self.fd, chow) < 0:
            raise_errno(errno)

    # -- timeouts -------------------------------------------------------------

    def settimeout(self, value):
        """None blocks, 0 never blocks, a positive number is a deadline in seconds."""
        cdef double seconds = _common.stored_timeout(_common.normalize_timeout(value))
        cdef int nonblocking = seconds >= 0
        self.timeout = seconds
        self._check_open()
        if ioctl(self.fd, FIONBIO, &nonblocking) < 0:
            raise_errno(errno)

    def gettimeout(self):
        return None if self.timeout < 0 else self.timeout

    def setblocking(self, flag):
        cdef long block = PyLong_AsLong(flag)  # the stdlib's conversion
        self.settimeout(None if block else 0.0)

    def getblocking(self):
        return self.timeout != 0.0

    # -- data -----------------------------------------------------------------

    def recv(self, Py_ssize_t bufsize, flags=0):
        """Receive up to ``bufsize`` bytes; b"" means the peer closed.

        With MSG_TRUNC a datagram socket reports a datagram's real length,
        which may exceed ``bufsize``: the result is still only the (at most
        ``bufsize``) bytes received, never more.
        """
        cdef int cflags = as_int(flags)  # every argument is converted first, as by the stdlib
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        return self._recv_bytes(bufsize, cflags)

    cdef object _recv_bytes(self, Py_ssize_t bufsize, int flags):
        """recv() from the kernel, its arguments checked."""
        cdef IOArgs a
        cdef char stack[STACK_RECV_MAX]
        cdef PyObject *result
        cdef ssize_t n
        if bufsize == 0:
            # as the stdlib: at once, without asking the kernel (which
            # would wait for data on a Unix stream, or drop a datagram)
            self._check_open()
            return b""
        a.flags = flags
        a.len = <size_t>bufsize
        if bufsize <= STACK_RECV_MAX:
            a.buf = stack
            n = self._call(c.POLLIN, _do_recv, &a, self._deadline())
            return PyBytes_FromStringAndSize(stack, min(n, bufsize))
        result = PyBytes_FromStringAndSize_ptr(NULL, bufsize)
        a.buf = PyBytes_AS_STRING(<object>result)
        try:
            n = min(self._call(c.POLLIN, _do_recv, &a, self._deadline()), bufsize)
            if n != bufsize:
                _PyBytes_Resize(&result, n)
        except BaseException:
            Py_XDECREF(result)
            raise
        obj = <object>result
        Py_DECREF(obj)
        return obj

    def recv_into(self, buffer, nbytes=0, flags=0):
        """Receive into a writable buffer; returns how many bytes were written."""
        cdef Py_buffer view
        cdef IOArgs a
        get_writable(buffer, &view, "recv_into")
        a.len = <size_t>check_nbytes(&view, nbytes, flags, &a.flags,
                                     "negative buffersize in recv_into",
                                     "buffer too small for requested bytes")
        a.buf = <char *>view.buf
        return self._recv_into_view(&view, &a)

    cdef Py_ssize_t _recv_into_view(self, Py_buffer *view, IOArgs *a) except -1:
        """recv_into() from the kernel, its arguments checked; releases ``view``."""
        if a.len == 0:  # as in recv(0)
            PyBuffer_Release(view)
            self._check_open()
            return 0
        try:
            return self._call(c.POLLIN, _do_recv, a, self._deadline())
        finally:
            PyBuffer_Release(view)

    def send(self, data, flags=0):
        """Send some of ``data``; returns how many bytes went out."""
        cdef Py_buffer view
        cdef IOArgs a
        a.flags = as_int(flags)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        a.buf = <char *>view.buf
        a.len = <size_t>view.len
        try:
            return self._send(_do_send, &a, self._deadline())
        finally:
            PyBuffer_Release(&view)


