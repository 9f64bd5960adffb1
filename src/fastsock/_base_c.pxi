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
    # close() while calls are blocked: how many times it signals them, and
    # the longest pause between two rounds (microseconds)
    WAKE_ROUNDS = 200
    WAKE_PAUSE_MAX_US = 5000


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
    return c.accept4(fd, <c.sockaddr *>&a.addr, &a.addrlen, a.flags)


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


# -- closing a descriptor -----------------------------------------------------

# the do-nothing handler close() wakes blocked calls with, installed once
cdef int wake_handler_installed = 0
cdef cython.pymutex wake_handler_lock


cdef int install_wake_handler() except -1:
    cdef int err = 0
    if c.load_int(&wake_handler_installed):
        return 0
    with wake_handler_lock:
        if not wake_handler_installed:
            if c.install_wake_handler() < 0:
                err = errno
            else:
                c.store_int(&wake_handler_installed, 1)
    return raise_errno(err) if err else 0


cdef int close_fd(int fd) except -1:
    """close() without the GIL (with SO_LINGER it can wait for seconds); EINTR
    and ECONNRESET still closed the descriptor, so they are no error."""
    cdef int rc, err
    with nogil:
        rc = c_close(fd)
        err = errno
    if rc < 0 and err != ECONNRESET and err != EINTR:
        return raise_errno(err)
    return 0


# -- the socket ---------------------------------------------------------------

# A call that released the GIL while using the descriptor: a node on that
# call's own stack, linked into the socket's list for as long as the call
# runs, so that close() can find and wake its thread.
# what family and type report: the stdlib's enum members (a dict lookup)
cdef dict family_members = _common._FAMILY_MEMBERS
cdef dict kind_members = _common._KIND_MEMBERS
# the flags the stdlib accepts or'ed into a type, never part of what type reports
cdef int sock_type_flags = c.SOCK_NONBLOCK | c.SOCK_CLOEXEC
_builtin_type = type  # where a parameter is named type, as in the stdlib


cdef double default_timeout() except? -2.0:
    """socket.getdefaulttimeout() as a stored timeout (-1.0: None, block)."""
    value = _stdlib.getdefaulttimeout()
    return -1.0 if value is None else <double>value


cdef struct BlockedCall:
    c.pthread_t thread
    BlockedCall *next


# A class docstring opens with the class's signature in the builtins' form (the
# call, then "--" alone at the start of a line): CPython makes it the type's
# __text_signature__, which inspect.signature() reads, and __doc__ the rest.
cdef class _Socket:
    """_Socket(family=-1, type=-1, proto=-1, fileno=None)
--

    What stream and datagram sockets have in common."""

    cdef int fd
    cdef int family_
    cdef int kind
    cdef int proto_
    cdef double timeout_       # < 0: blocking; 0: non-blocking; > 0: seconds
    cdef bint initialised      # an __init__ or a factory gave it a descriptor once
    cdef int busy              # calls that released the GIL while using fd
    cdef BlockedCall *blocked  # those calls (their threads), newest first
    cdef unsigned long busy_generation  # fork_generation when busy was counted
    cdef int pending_close_fd  # closed by close() while busy; closed by the last call
    cdef int send_backoff      # sends left that skip the MSG_DONTWAIT try
    # an error the kernel reported to a call that could not raise it (it had
    # already received or sent something: recv_msgs taking what else has
    # arrived, a batch send part-way), raised by the socket's next call
    cdef int deferred_errno
    # the batch recv_many/recv_records reuse while no other call uses it
    cdef DatagramBatch scratch
    cdef object __weakref__

    _DEFAULT_PROTOS = {}  # family -> protocol when none is given (else 0)
    # each class sets _KIND (its type, the default) and _FAMILIES (the first the
    # default); _KINDS lists the other types a class also takes (NetlinkSocket)
    _KINDS = ()

    def __cinit__(self):
        self.fd = -1
        self.pending_close_fd = -1
        self.timeout_ = -1.0
        # after the fields: __dealloc__ runs on the refused object too
        if type(self) is _Socket:
            raise _common.base_class_called()

    cdef int _adopt_fd(self, int fd, int family, int kind, int proto, double timeout) except -1:
        """Own ``fd`` from now on (every way a socket gets its descriptor ends here)."""
        if self.initialised:
            raise RuntimeError(
                f"{type(self).__name__} already initialised: create a new socket instead")
        self.family_ = family
        self.kind = kind
        self.proto_ = proto
        c.store_double(&self.timeout_, timeout)
        self.initialised = True
        c.store_int(&self.fd, fd)
        return 0

    cdef int _open(self, object family, object type, object proto, object fileno) except -1:
        """The stdlib constructor's steps: a new socket, or (``fileno``) one
        taken over after checking it is what this class wraps; the timeout is
        socket.getdefaulttimeout(), or 0.0 with SOCK_NONBLOCK in ``type``."""
        # converted in the stdlib's order, with its errors
        cdef int fam = as_int(family), kind = as_int(type), cproto = as_int(proto)
        cdef int fd
        cdef double timeout
        cdef int wanted = self._KIND
        if self.initialised:
            raise RuntimeError(
                f"{_builtin_type(self).__name__} already initialised: create a new socket instead")
        if fileno is not None:
            return self._open_fileno(fam, kind, cproto, fileno)
        if kind == -1:
            kind = wanted
        if kind & ~sock_type_flags != wanted and kind & ~sock_type_flags not in self._KINDS:
            raise _common.wrong_kind(_builtin_type(self).__name__, wanted,
                                     kind & ~sock_type_flags)
        wanted = kind & ~sock_type_flags
        if fam == -1:
            fam = self._FAMILIES[0]
        if fam not in self._FAMILIES:
            raise _common.unsupported_family(_builtin_type(self).__name__, self._FAMILIES, fam)
        if cproto == -1:
            cproto = self._DEFAULT_PROTOS.get(fam, 0)
        timeout = 0.0 if kind & c.SOCK_NONBLOCK else default_timeout()
        fd = c.socket(fam, wanted | c.SOCK_CLOEXEC | (c.SOCK_NONBLOCK if timeout >= 0 else 0),
                      cproto)
        if fd < 0:
            err = errno  # the same errno, its message naming what is missing
            raise _common.open_error(err, fam, wanted)
        return self._adopt_fd(fd, fam, wanted, cproto, timeout)

    cdef int _open_fileno(self, int family, int kind, int proto, object fileno) except -1:
        """Take over ``fileno`` as the stdlib's constructor does (its family, type
        and protocol read from the kernel where not given), refusing one this class
        does not wrap or that contradicts ``family``/``type``; on error the
        descriptor stays open and the caller's."""
        cdef int fd = as_int(fileno)
        cdef int real_family = 0, real_kind = 0, real_proto = 0
        cdef c.socklen_t optlen = sizeof(int)
        cdef double timeout
        cdef int nonblocking = 1
        name = _builtin_type(self).__name__
        if fd < 0:
            raise ValueError("negative file descriptor")
        if c.getsockopt(fd, c.SOL_SOCKET, c.SO_TYPE, &real_kind, &optlen) < 0:
            return raise_errno(errno)
        optlen = sizeof(int)
        c.getsockopt(fd, c.SOL_SOCKET, c.SO_DOMAIN, &real_family, &optlen)
        optlen = sizeof(int)
        c.getsockopt(fd, c.SOL_SOCKET, c.SO_PROTOCOL, &real_proto, &optlen)
        if (real_kind != self._KIND and real_kind not in self._KINDS) or \
                real_family not in self._FAMILIES:
            raise _common.wrong_descriptor(name, fd, real_family, real_kind)
        if family != -1 and family != real_family:
            raise _common.mismatched_fileno(fd, "family", family, real_family)
        if kind != -1 and kind & ~sock_type_flags != real_kind:
            raise _common.mismatched_fileno(fd, "type", kind & ~sock_type_flags, real_kind)
        timeout = 0.0 if kind != -1 and kind & c.SOCK_NONBLOCK else default_timeout()
        if timeout >= 0 and ioctl(fd, FIONBIO, &nonblocking) < 0:
            return raise_errno(errno)
        return self._adopt_fd(fd, real_family, real_kind, real_proto if proto == -1 else proto,
                              timeout)

    @classmethod
    def from_fd(cls, fd):
        """Take ownership of an open socket descriptor of this class's type.

        The timeout starts as None for a blocking descriptor and 0.0 for a non-blocking
        one.  ValueError when ``fd`` is negative or a socket of another type or family,
        OSError when it is no open socket; on error the descriptor stays open and the
        caller's.
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
        if (kind != cls._KIND and kind not in cls._KINDS) or family not in cls._FAMILIES:
            raise _common.wrong_descriptor(cls.__name__, cfd, family, kind)
        flags = fcntl(cfd, F_GETFL)
        cdef _Socket self = cls.__new__(cls)
        self._adopt_fd(cfd, family, kind, proto,
                       0.0 if flags >= 0 and (flags & O_NONBLOCK) else -1.0)
        return self

    @classmethod
    def from_socket(cls, sock):
        """Take over a stdlib socket.socket, keeping its timeout; ``sock`` is detached.

        TypeError for anything else, and for an ssl.SSLSocket (its bytes are TLS
        records); OSError (EBADF) when it is closed; when it is of another type or
        family (ValueError, as from_fd()) it is left as it was.
        """
        _common.check_adoptable(sock)
        timeout = sock.gettimeout()
        fd = sock.fileno()
        if fd == -1:
            raise_errno(EBADF)
        self = cls.from_fd(fd)
        sock.detach()
        self.settimeout(timeout)
        return self

    def to_socket(self):
        """Hand the descriptor over to a new stdlib socket.socket with the same timeout
        and protocol number; this socket is left closed.  OSError (EBADF) when it is
        closed already; RuntimeError, changing nothing, while a StreamSocket holds
        received bytes no call has returned: take them with take_buffered() first.
        """
        timeout = self.gettimeout()
        family, kind, proto = self.family_, self.kind, self.proto_
        fd = self.detach()
        if fd == -1:
            raise_errno(EBADF)
        return _common.stdlib_socket_for(fd, family, kind, proto, timeout)

    # -- the one helper every call goes through ------------------------------

    # Around every syscall made without the GIL: _enter(&node) before,
    # _leave(&node) after, both with the GIL held.  close() from another
    # thread meanwhile wakes the call with a signal and leaves the descriptor
    # to the last call on its way out, so no call ever acts on a descriptor
    # number the OS has handed to another file (see close()).

    # The bookkeeping (fd, busy, blocked, pending_close_fd) changes only in
    # the socket's critical section: on the GIL build that is the GIL itself
    # (Cython's critical_section compiles to nothing), on a free-threaded
    # build the object's own lock.  A kernel call made with the GIL held (a
    # non-blocking try) reads fd and runs inside the critical section, so
    # close() cannot close that descriptor under it either.

    cdef inline int _enter(self, BlockedCall *node) noexcept:
        """List the call; the descriptor it may use until _leave(), or -1
        (nothing listed) when the socket is closed."""
        cdef int fd
        with cython.critical_section(self):
            fd = self.fd
            if fd >= 0:
                if self.busy_generation != fork_generation:
                    # counted in the parent before a fork: those calls (and
                    # their threads) do not exist in this process
                    self.busy = 0
                    self.blocked = NULL
                    self.busy_generation = fork_generation
                node.thread = c.pthread_self()
                node.next = self.blocked
                self.blocked = node
                self.busy += 1
        return fd

    cdef inline bint _leave(self, BlockedCall *node) noexcept:
        """Unlist the call; closes the descriptor if close() left it to this
        call.  True when the socket was closed meanwhile."""
        cdef BlockedCall **link
        cdef int fd = -1
        cdef bint closed
        with cython.critical_section(self):
            link = &self.blocked
            while link[0] != NULL:
                if link[0] == node:
                    link[0] = node.next
                    break
                link = &link[0].next
            self.busy -= 1
            if self.busy == 0 and self.pending_close_fd >= 0:
                fd = self.pending_close_fd
                self.pending_close_fd = -1
            closed = self.fd < 0
        if fd >= 0:
            with nogil:
                c_close(fd)
        return closed

    cdef int _wake_blocked(self) except -1:
        """Signal every thread blocked in a call on this socket until all have
        left the call (bounded); each wakes with EINTR and sees the socket
        closed.  The signals go out inside the critical section: a listed
        thread cannot leave its call, let alone end, before it takes the
        section to unlist itself."""
        cdef BlockedCall *node
        cdef int count, rounds
        cdef unsigned int pause = 100
        install_wake_handler()
        for rounds in range(WAKE_ROUNDS):
            count = 0
            with cython.critical_section(self):
                if self.busy_generation == fork_generation:
                    node = self.blocked
                    while node != NULL:
                        c.pthread_kill(node.thread, c.FASTSOCK_WAKE_SIGNAL)
                        count += 1
                        node = node.next
            if count == 0:
                return 0
            # a signal that came just before its thread entered the syscall
            # woke nothing: let the threads run, then look again
            with nogil:
                usleep(pause)
            pause = min(pause * 2, <unsigned int>WAKE_PAUSE_MAX_US)
        return 0

    cdef inline double _deadline(self) noexcept:
        cdef double timeout = self._timeout()
        return monotonic() + timeout if timeout > 0 else -1.0

    cdef int _wait(self, short events, double deadline, int other_fd=-1) except -1:
        """poll() without the GIL until ready (0) or past the deadline (1; -1:
        none), the socket or, for a call that also waits on another descriptor
        (sendfile() reading a pipe), ``other_fd``."""
        cdef BlockedCall node
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
            pfd.fd = self._enter(&node)
            if pfd.fd < 0:
                return raise_errno(EBADF)
            if other_fd >= 0:
                pfd.fd = other_fd
            pfd.events = events
            pfd.revents = 0
            with nogil:
                rc = c.poll(&pfd, 1, ms)
                err = errno
            if self._leave(&node):
                return raise_errno(EBADF)
            if rc > 0:
                return 0
            if rc < 0:
                if err != EINTR:
                    return raise_errno(err)
                PyErr_CheckSignals()

    cdef ssize_t _call(self, short events, sock_func func, void *data,
                       double deadline, bint slow=False) except -1:
        """Run ``func`` on the descriptor the way CPython's sock_call_ex does.

        ``slow``: the syscall may take long even on a non-blocking descriptor
        (sendfile() reads its file), so the GIL is released around it whatever
        the timeout; the quick recv/send family keeps it there, which is cheaper.
        """
        cdef BlockedCall node
        cdef ssize_t res
        cdef int fd, err
        cdef double timeout
        cdef bint blocking_now
        if c.load_int(&self.deferred_errno):
            self._raise_deferred()
        while True:
            timeout = self._timeout()
            if timeout < 0 or slow:
                # a blocking descriptor (or a slow call): it may wait, so drop the GIL
                fd = self._enter(&node)
                if fd < 0:
                    return raise_errno(EBADF)
                with nogil:
                    res = func(fd, data)
                    err = errno
                if self._leave(&node) and (res < 0 or (res == 0 and events == c.POLLIN
                                                       and func != _do_accept)):
                    # closed by another thread meanwhile (which woke this call
                    # with EINTR, or raced an end of stream): report the close
                    return raise_errno(EBADF)
                if res >= 0:
                    return res
            else:
                with cython.critical_section(self):
                    # settimeout() changes the value and the descriptor's mode
                    # together in this section: a call that would block with
                    # the GIL held goes round to the blocking path instead
                    blocking_now = self.timeout_ < 0
                    if not blocking_now:
                        res = func(self.fd, data)  # EBADF once closed (-1)
                        err = errno
                if blocking_now:
                    continue
                if res >= 0:
                    return res
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if timeout > 0 and c.would_block(err):
                if self._wait(events, deadline):
                    return raise_timeout()
                continue
            return raise_errno(err)

    cdef ssize_t _send(self, short events, sock_func func, void *data, int *flags,
                       size_t size, double deadline, bint *partial_try=NULL) except -1:
        """A send of ``size`` bytes through ``_call``, trying first without
        blocking on a blocking socket.

        The try keeps the GIL (there is room in the common case, and keeping
        the GIL is then cheaper than releasing it) unless other Python
        threads exist (they would wait through the send: the ordinary send,
        which releases it, goes first then), and keeps the kernel's
        answer: bytes it sent, all or part, are the result; an error it
        reports is the caller's error (a pending error is consumed by the
        call that reports it, so it is never tried again).  Only "would
        block" goes on to the ordinary blocking send.  After a try that found
        the buffer full, the next few sends skip it.  ``flags`` points at the
        MSG_* flags inside ``data``, ``size`` 0 means any size may be tried.
        ``partial_try`` is set when the result is the try's and short of
        ``size``: the caller sends the rest as a blocking send would (a short
        count from the kernel's own blocking send, which a signal cut short,
        is the caller's result as it is).
        """
        cdef ssize_t sent
        cdef int saved = flags[0], err, backoff
        if c.load_int(&self.deferred_errno):
            self._raise_deferred()
        if self._timeout() >= 0 or (size > TRY_SEND_MAX) or c.gil_shared():
            return self._call(events, func, data, deadline)
        # a hint, not state to protect: racing sends may each skip or try
        backoff = c.load_int(&self.send_backoff)
        if backoff:
            c.store_int(&self.send_backoff, backoff - 1)
            return self._call(events, func, data, deadline)
        flags[0] = saved | c.MSG_DONTWAIT
        with cython.critical_section(self):
            sent = func(self.fd, data)  # EBADF once closed (-1)
            err = errno
        flags[0] = saved
        if sent >= 0:
            if size and <size_t>sent < size:
                c.store_int(&self.send_backoff, SEND_BACKOFF)  # the buffer is full now
                if partial_try != NULL:
                    partial_try[0] = True
            return sent
        if c.would_block(err):
            c.store_int(&self.send_backoff, SEND_BACKOFF)
            return self._call(events, func, data, deadline)
        return raise_errno(err)

    cdef ssize_t _send_now(self, const char *buf, size_t size) except -1:
        """One send that never waits, for an event loop's writer: the bytes the
        kernel took, 0 when its buffer is full (no BlockingIOError made and
        caught per full buffer); its error raised, a kept one first."""
        cdef IOArgs a
        cdef ssize_t sent
        cdef int err
        if c.load_int(&self.deferred_errno):
            self._raise_deferred()
        a.buf = <char *>buf
        a.len = size
        a.flags = c.MSG_DONTWAIT
        while True:
            with cython.critical_section(self):
                sent = _do_send(self.fd, &a)  # EBADF once closed (-1)
                err = errno
            if sent >= 0:
                return sent
            if c.would_block(err):
                return 0
            if err != EINTR:
                return raise_errno(err)
            PyErr_CheckSignals()

    cdef int _defer(self, object exc) except -1:
        """Keep an OSError for the next call (see deferred_errno), as the
        kernel keeps a pending socket error; EPIPE is no such error but the
        state of a socket that can no longer send, which the next send meets
        again by itself (and a receive must not report)."""
        if exc.errno and exc.errno != EPIPE:
            c.store_int(&self.deferred_errno, exc.errno)
        return 0

    cdef inline int _raise_deferred(self) except -1:
        """Raise (once: of racing calls, one takes it) the error kept for this
        call; none once the socket is closed (EBADF is its error then)."""
        cdef int err
        if c.load_int(&self.deferred_errno) and not self._closed():
            err = c.exchange_int(&self.deferred_errno, 0)
            if err:
                return raise_errno(err)
        return 0

    cdef inline bint _closed(self) noexcept:
        return c.load_int(&self.fd) < 0

    cdef inline double _timeout(self) noexcept:
        return c.load_double(&self.timeout_)

    cdef inline int _check_open(self) except -1:
        if self._closed():
            return raise_errno(EBADF)
        return 0

    # -- datagrams and records: the parts their classes share ----------------

    cdef object _recvfrom_bytes(self, Py_ssize_t bufsize, object flags, IOArgs *a):
        """The bytes of recvfrom() of one datagram or record (at most
        ``bufsize``); the sender's address is left in ``a``."""
        cdef ssize_t n
        cdef char stack[STACK_RECV_MAX]
        a.flags = as_int(flags)  # every argument is converted first, as by the stdlib
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        a.len = <size_t>bufsize
        if bufsize <= STACK_RECV_MAX:
            a.buf = stack
            n = self._call(c.POLLIN, _do_recvfrom, a, self._deadline())
            return PyBytes_FromStringAndSize(stack, min(n, bufsize))
        data = PyBytes_FromStringAndSize(NULL, bufsize)
        a.buf = PyBytes_AS_STRING(data)
        n = min(self._call(c.POLLIN, _do_recvfrom, a, self._deadline()), bufsize)
        if n != bufsize:
            data = data[:n]
        return data

    cdef ssize_t _recvfrom_into_view(self, object buffer, object nbytes, object flags,
                                     IOArgs *a) except -1:
        """recvfrom_into() of one datagram or record; the sender is left in ``a``."""
        cdef Py_buffer view
        cdef ssize_t n
        get_writable(buffer, &view, "recvfrom_into")
        a.len = <size_t>check_nbytes(&view, nbytes, flags, &a.flags,
                                     "negative buffersize in recvfrom_into",
                                     "nbytes is greater than the length of the buffer")
        a.buf = <char *>view.buf
        try:
            n = self._call(c.POLLIN, _do_recvfrom, a, self._deadline())
        finally:
            PyBuffer_Release(&view)
        return n

    cdef object _accept_as(self, type cls):
        """accept() of a connection as a new ``cls`` (of this socket's type)."""
        cdef IOArgs a
        cdef int fd
        cdef double timeout = default_timeout()
        cdef _Socket conn
        cdef object address
        a.flags = c.SOCK_CLOEXEC | (c.SOCK_NONBLOCK if timeout >= 0 else 0)
        fd = <int>self._call(c.POLLIN, _do_accept, &a, self._deadline())
        try:
            address = make_address(&a.addr, a.addrlen)
            conn = cls.__new__(cls)
        except BaseException:  # MemoryError: nothing owns the new descriptor yet
            c_close(fd)
            raise
        conn._adopt_fd(fd, self.family_, self.kind, self.proto_, timeout)
        return conn, address

    cdef int _listen(self, object backlog) except -1:
        cdef int cbacklog = as_int(backlog)
        cdef int rc, err
        with cython.critical_section(self):
            rc = c.listen(self.fd, cbacklog if cbacklog > 0 else 0)  # EBADF once closed
            err = errno
        if rc < 0:
            raise_errno(err)
        return 0

    # -- batches of messages (recvmmsg/sendmmsg): datagram and seqpacket sockets --

    cdef DatagramBatch _claim_scratch(self, Py_ssize_t count, Py_ssize_t size):
        """A batch claimed for one recv_many/recv_records (see claim_batch);
        a new one becomes the scratch of the calls after it."""
        cdef DatagramBatch current, batch
        with cython.critical_section(self):
            current = self.scratch
        batch = claim_batch(current, count, size)
        if batch is not current:
            with cython.critical_section(self):
                if self.scratch is current:
                    self.scratch = batch
        return batch

    cdef Py_ssize_t _recv_into_batch(self, DatagramBatch batch) except -1:
        """One recvmmsg into ``batch``, which the caller has claimed (its
        ``busy`` flag set): the kernel writes it with the GIL released."""
        cdef MmsgArgs a
        batch._reset()
        a.msgs = batch.msgs
        a.count = <unsigned int>batch.count
        # wait for the first datagram only; MSG_TRUNC reports real lengths
        a.flags = c.MSG_WAITFORONE | c.MSG_TRUNC
        batch.filled = self._call(c.POLLIN, _do_recvmmsg, &a, self._deadline())
        return batch.filled

    cdef Py_ssize_t _send_mmsg(self, c.mmsghdr *msgs, Py_ssize_t n) except -1:
        """sendmmsg() until all n are sent; the count so far when an error
        follows a partial send: the error is kept for the socket's next call
        (what fitted a non-blocking socket, or its deadline, is no error)."""
        cdef MmsgArgs a
        cdef Py_ssize_t sent = 0
        cdef double deadline = self._deadline()
        a.flags = 0
        while sent < n:
            a.msgs = msgs + sent
            a.count = <unsigned int>min(n - sent, <Py_ssize_t>c.UIO_MAXIOV)
            try:
                sent += self._call(c.POLLOUT, _do_sendmmsg, &a, deadline)
            except (BlockingIOError, TimeoutError):
                if sent:
                    return sent
                raise
            except OSError as exc:
                if sent:
                    self._defer(exc)
                    return sent
                raise
        return sent

    cdef object _send_many(self, list items, object address, bint per_item_address):
        cdef Py_ssize_t n = len(items), acquired = 0, i
        cdef Py_buffer *views
        cdef c.mmsghdr *msgs
        cdef c.iovec *iovs
        cdef c.sockaddr_storage *addrs
        cdef c.socklen_t addrlen = 0
        if n == 0:
            return 0  # nothing to send, nothing checked (as the pure twin, and send_segments)
        views = <Py_buffer *>PyMem_Calloc(<size_t>(n + 1), sizeof(Py_buffer))
        msgs = <c.mmsghdr *>PyMem_Calloc(<size_t>(n + 1), sizeof(c.mmsghdr))
        iovs = <c.iovec *>PyMem_Calloc(<size_t>(n + 1), sizeof(c.iovec))
        addrs = <c.sockaddr_storage *>PyMem_Calloc(
            <size_t>(n if per_item_address else 1) + 1, sizeof(c.sockaddr_storage))
        try:
            if not (views and msgs and iovs and addrs):
                raise MemoryError()
            if address is not None:
                parse_address(self.family_, address, &addrs[0], &addrlen, "sendto")
            for i in range(n):
                if per_item_address:
                    data, item_address = items[i]
                    parse_address(self.family_, item_address, &addrs[i], &addrlen, "sendto")
                    msgs[i].msg_hdr.msg_name = &addrs[i]
                    msgs[i].msg_hdr.msg_namelen = addrlen
                else:
                    data = items[i]
                    if address is not None:
                        msgs[i].msg_hdr.msg_name = &addrs[0]
                        msgs[i].msg_hdr.msg_namelen = addrlen
                PyObject_GetBuffer(data, &views[i], PyBUF_SIMPLE)
                acquired += 1
                iovs[i].iov_base = views[i].buf
                iovs[i].iov_len = <size_t>views[i].len
                msgs[i].msg_hdr.msg_iov = &iovs[i]
                msgs[i].msg_hdr.msg_iovlen = 1
            return self._send_mmsg(msgs, n)
        finally:
            for i in range(acquired):
                PyBuffer_Release(&views[i])
            PyMem_Free(views)
            PyMem_Free(msgs)
            PyMem_Free(iovs)
            PyMem_Free(addrs)

    # -- identity and lifetime ------------------------------------------------

    @property
    def family(self):
        """The address family, as socket.family: a socket.AddressFamily member
        (AF_INET, AF_INET6, AF_UNIX, AF_VSOCK).
        """
        return family_members.get(self.family_, self.family_)

    @property
    def type(self):
        """The socket type, as socket.type: a socket.SocketKind member
        (SOCK_STREAM, SOCK_DGRAM), without the SOCK_NONBLOCK/SOCK_CLOEXEC flags.
        """
        return kind_members.get(self.kind, self.kind)

    @property
    def proto(self):
        """The protocol number, as socket.proto: the one given to the constructor
        (0 by default), the kernel's (IPPROTO_TCP, ...) for a socket taken over with
        from_fd(), from_socket() or ``fileno``.
        """
        return self.proto_

    @property
    def timeout(self):
        """The timeout, as socket.timeout: the same as gettimeout()."""
        cdef double timeout = self._timeout()
        return None if timeout < 0 else timeout

    @property
    def closed(self):
        """True once the socket is closed or detached (fileno() is then -1)."""
        return self._closed()

    def fileno(self):
        """The socket's descriptor, or -1 once it is closed or detached, as
        socket.fileno().
        """
        return c.load_int(&self.fd)

    def close(self):
        """Close the socket, as socket.close(); a no-op when it is already closed.

        A call blocked on the socket in another thread is woken (a signal to its
        thread) and raises OSError (EBADF); the descriptor is closed when the last such
        call returns, so none acts on a reused descriptor.  Nothing is done to the
        connection itself: a forked child or a duplicated descriptor sharing it goes
        on undisturbed.  A StreamSocket's buffered bytes are dropped.  Afterwards every
        call that uses the descriptor raises OSError (EBADF), recv(0) and a recv_into()
        of 0 bytes too (the stdlib's return b"" and 0 without looking).
        """
        cdef int fd
        cdef bint in_use = False
        with cython.critical_section(self):
            fd = self.fd
            if fd >= 0:
                c.store_int(&self.fd, -1)
                in_use = self.busy > 0 and self.busy_generation == fork_generation
                if in_use:
                    self.pending_close_fd = fd  # the last call out closes it
        if fd < 0:
            return
        self._forget_received()
        if in_use:
            self._wake_blocked()
            return
        close_fd(fd)

    cdef void _forget_received(self) noexcept:
        """At close: drop what the socket holds received (StreamSocket's buffer)."""
        pass

    cdef int _check_handoff(self) except -1:
        """Before the descriptor leaves: refuse if received bytes would be lost."""
        return 0

    def detach(self):
        """Give up the descriptor without closing it and return it (-1 when already
        closed), as socket.detach(); the socket is then closed.  RuntimeError, changing
        nothing, while a StreamSocket holds received bytes no call has returned: take
        them with take_buffered() first.
        """
        cdef int fd
        if self._closed():
            return -1
        self._check_handoff()
        with cython.critical_section(self):
            fd = self.fd
            c.store_int(&self.fd, -1)
        return fd

    def dup(self):
        """A new socket of the same class on a duplicate of the descriptor, with the
        same timeout, as socket.dup(); the duplicate is not inheritable.  Bytes a
        StreamSocket has buffered stay with this socket.  OSError (EBADF) when closed.
        """
        cdef _Socket copy = _builtin_type(self).__new__(_builtin_type(self))
        cdef int fd, err
        with cython.critical_section(self):
            fd = fcntl(self.fd, F_DUPFD_CLOEXEC, 0)  # EBADF for -1, as the stdlib's
            err = errno
        if fd < 0:
            return raise_errno(err)
        copy._adopt_fd(fd, self.family_, self.kind, self.proto_, self._timeout())
        return copy

    def get_inheritable(self):
        """Whether the descriptor is inherited by child processes, as
        socket.get_inheritable() (False unless set_inheritable(True) was called).
        """
        cdef int flags, err
        with cython.critical_section(self):
            flags = fcntl(self.fd, F_GETFD)
            err = errno
        if flags < 0:
            return raise_errno(err)
        return not flags & FD_CLOEXEC

    def set_inheritable(self, inheritable):
        """Make the descriptor inherited by child processes or not, as
        socket.set_inheritable().
        """
        cdef bint keep = as_int(inheritable) != 0  # the stdlib's conversion
        cdef int flags, err = 0
        with cython.critical_section(self):
            flags = fcntl(self.fd, F_GETFD)
            if flags >= 0:
                flags = (flags & ~FD_CLOEXEC) if keep else (flags | FD_CLOEXEC)
                flags = fcntl(self.fd, F_SETFD, flags)
            if flags < 0:
                err = errno
        if err:
            raise_errno(err)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return _common.socket_repr(self)

    def __del__(self):
        if self._closed():
            return
        try:
            _warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
        finally:
            self.close()

    def __dealloc__(self):
        cdef int fd = self.fd
        if fd >= 0:  # only if __del__ could not run
            with nogil:
                c_close(fd)

    def __reduce__(self):
        raise TypeError(f"cannot pickle '{type(self).__name__}' object")

    # -- addresses and options ------------------------------------------------

    def bind(self, address):
        """Bind the socket to ``address``, as socket.bind(): ``(host, port)`` for
        AF_INET, ``(host, port[, flowinfo[, scope_id]])`` for AF_INET6, a str, bytes or
        path-like path for AF_UNIX, ``(cid, port)`` for AF_VSOCK.  Unlike the stdlib, a
        path with a NUL after its first byte raises ValueError (the stdlib binds it cut
        short); a leading NUL names an abstract socket.
        """
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen
        cdef int rc, err
        parse_address(self.family_, address, &addr, &addrlen, "bind")
        with cython.critical_section(self):
            rc = c.bind(self.fd, <c.sockaddr *>&addr, addrlen)  # EBADF once closed
            err = errno
        if rc < 0:
            raise_errno(err)

    cdef int _connect(self, object address, bint raise_errors) except -1:
        """connect() with the socket's timeout; returns 0 or, when not
        raising, the errno (c.EWOULDBLOCK on timeout)."""
        cdef BlockedCall node
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen
        cdef c.socklen_t optlen = sizeof(int)
        cdef int fd, rc = 0, err = 0, soerr = 0
        cdef double deadline
        cdef double timeout
        cdef bint blocking = False
        parse_address(self.family_, address, &addr, &addrlen,
                      "connect" if raise_errors else "connect_ex")
        if self._closed():
            return raise_errno(EBADF) if raise_errors else EBADF
        deadline = self._deadline()
        with cython.critical_section(self):
            # a descriptor in non-blocking mode connects with the GIL held
            # (settimeout() changes the mode inside this section)
            timeout = self.timeout_
            blocking = timeout < 0
            if not blocking:
                rc = c.connect(self.fd, <c.sockaddr *>&addr, addrlen)  # EBADF once closed
                err = errno
        if blocking:
            fd = self._enter(&node)
            if fd < 0:
                return raise_errno(EBADF) if raise_errors else EBADF
            with nogil:
                rc = c.connect(fd, <c.sockaddr *>&addr, addrlen)
                err = errno
            if self._leave(&node):
                return raise_errno(EBADF)  # closed by another thread meanwhile
        if rc == 0:
            return 0
        if err == EINTR:
            PyErr_CheckSignals()
            # the connection goes on in the background (CPython issue 23618)
            if timeout == 0:
                err = EINTR
            else:
                err = EINPROGRESS
        if err == EINPROGRESS and timeout != 0:
            if self._wait(c.POLLOUT, deadline):
                if raise_errors:
                    raise_timeout()
                return c.EWOULDBLOCK
            with cython.critical_section(self):
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
        """Connect to ``address`` (as for bind()), as socket.connect(): with a timeout,
        TimeoutError when it passes; on a non-blocking socket, BlockingIOError
        (EINPROGRESS) while the connection goes on.  A signal handler's exception
        propagates; otherwise an interrupted connect goes on (PEP 475).
        """
        self._connect(address, True)

    def connect_ex(self, address):
        """As connect(), but a failed connection returns its errno (0 on success)
        instead of raising, as socket.connect_ex(): EWOULDBLOCK on timeout, EINPROGRESS
        on a non-blocking socket.  A bad address still raises.
        """
        return self._connect(address, False)

    def getsockname(self):
        """The socket's own address, as socket.getsockname()."""
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = sizeof(addr)
        cdef int rc, err
        memset(&addr, 0, sizeof(addr))
        with cython.critical_section(self):
            rc = c.getsockname(self.fd, <c.sockaddr *>&addr, &addrlen)  # EBADF once closed
            err = errno
        if rc < 0:
            raise_errno(err)
        return make_address(&addr, addrlen)

    def getpeername(self):
        """The address of the connected peer, as socket.getpeername(); OSError
        (ENOTCONN) when not connected.
        """
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = sizeof(addr)
        cdef int rc, err
        memset(&addr, 0, sizeof(addr))
        with cython.critical_section(self):
            rc = c.getpeername(self.fd, <c.sockaddr *>&addr, &addrlen)  # EBADF once closed
            err = errno
        if rc < 0:
            raise_errno(err)
        return make_address(&addr, addrlen)

    def setsockopt(self, level, optname, value, *optlen):
        """Set a socket option, as socket.setsockopt(): ``setsockopt(level, optname,
        value)`` with an int or a bytes-like value, or ``setsockopt(level, optname,
        None, optlen)`` to pass no value and a length (options such as
        ALG_SET_AEAD_AUTHSIZE).
        """
        cdef int clevel, coptname
        cdef int flag
        cdef unsigned int clength
        cdef Py_buffer view
        cdef int rc, err
        if optlen:
            # the stdlib's 4-argument form, None and a length: any argument it
            # cannot take ends in its generic complaint about the count
            try:
                if len(optlen) > 1 or value is not None:
                    raise TypeError
                clevel, coptname = as_int(level), as_int(optname)
                clength = <unsigned int>PyLong_AsUnsignedLongMask(_index(optlen[0]))
            except (TypeError, OverflowError):
                raise TypeError(f"setsockopt() takes exactly 3 arguments "
                                f"({3 + len(optlen)} given)") from None
            with cython.critical_section(self):
                rc = c.setsockopt(self.fd, clevel, coptname, NULL, clength)
                err = errno
        else:
            clevel, coptname = as_int(level), as_int(optname)
            try:
                # as the stdlib: an int (anything with __index__) if it is one,
                # else a bytes-like value
                flag = as_int(value)
                is_int = True
            except (TypeError, OverflowError):
                is_int = False
            if is_int:
                with cython.critical_section(self):
                    rc = c.setsockopt(self.fd, clevel, coptname, &flag, sizeof(flag))
                    err = errno
            else:
                PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
                with cython.critical_section(self):
                    rc = c.setsockopt(self.fd, clevel, coptname, view.buf,
                                      <c.socklen_t>view.len)
                    err = errno
                PyBuffer_Release(&view)
        if rc < 0:
            raise_errno(err)  # EBADF once closed (-1)

    def getsockopt(self, level, optname, buflen=0):
        """An option's value, as socket.getsockopt(): an int, or with ``buflen`` (1 to
        1024) a bytes object of at most that many bytes; OSError for a ``buflen`` out of
        range.
        """
        cdef int clevel = as_int(level), coptname = as_int(optname)
        cdef int cbuflen = as_int(buflen)
        cdef int flag = 0
        cdef char buf[GETSOCKOPT_BUFLEN_MAX]
        cdef c.socklen_t optlen
        cdef int rc, err
        if cbuflen == 0:
            optlen = sizeof(flag)
            with cython.critical_section(self):
                rc = c.getsockopt(self.fd, clevel, coptname, &flag, &optlen)  # EBADF once closed
                err = errno
            if rc < 0:
                raise_errno(err)
            return flag
        if cbuflen < 0 or cbuflen > GETSOCKOPT_BUFLEN_MAX:
            raise OSError("getsockopt buflen out of range")  # before EBADF, as the stdlib
        optlen = cbuflen
        with cython.critical_section(self):
            rc = c.getsockopt(self.fd, clevel, coptname, buf, &optlen)
            err = errno
        if rc < 0:
            raise_errno(err)
        return buf[:optlen]

    def shutdown(self, how):
        """Shut down receiving (SHUT_RD), sending (SHUT_WR) or both (SHUT_RDWR), as
        socket.shutdown(); bytes a StreamSocket has buffered can still be received.
        """
        cdef int chow = as_int_arg(how)
        cdef int rc, err
        with cython.critical_section(self):
            rc = c.shutdown(self.fd, chow)  # EBADF once closed (-1)
            err = errno
        if rc < 0:
            raise_errno(err)

    # -- timeouts -------------------------------------------------------------

    def settimeout(self, value):
        """Set the timeout, as socket.settimeout(): None blocks, 0 never blocks
        (BlockingIOError when a call would), a positive number of seconds bounds each
        call (TimeoutError).  ValueError for a negative or NaN value.  The calls made of
        several kernel calls say how the timeout applies to them.
        """
        cdef double seconds = _common.stored_timeout(_common.normalize_timeout(value))
        cdef int nonblocking = seconds >= 0
        cdef int rc, err = 0
        with cython.critical_section(self):
            # the value and the mode change together (see _call)
            rc = ioctl(self.fd, FIONBIO, &nonblocking)  # EBADF once closed (-1)
            if rc < 0:
                err = errno
            if rc == 0 or self.fd < 0:
                c.store_double(&self.timeout_, seconds)
        if rc < 0:
            raise_errno(err)

    def gettimeout(self):
        """The timeout in seconds, or None when the socket blocks, as
        socket.gettimeout().
        """
        cdef double timeout = self._timeout()
        return None if timeout < 0 else timeout

    def setblocking(self, flag):
        """setblocking(True) is settimeout(None), setblocking(False) is settimeout(0.0),
        as socket.setblocking().
        """
        cdef bint block
        if PY_VERSION_HEX >= 0x030C0000:
            block = flag  # from 3.12 the stdlib takes any object's truth value
        else:
            block = PyLong_AsLong(flag) != 0  # before, an int (or __index__) that fits a C long
        self.settimeout(None if block else 0.0)

    def getblocking(self):
        """False when the timeout is 0.0, else True (a socket with a timeout counts as
        blocking), as socket.getblocking().
        """
        return self._timeout() != 0.0

    # -- data -----------------------------------------------------------------

    def recv(self, Py_ssize_t bufsize, flags=0):
        """Receive one datagram, at most ``bufsize`` bytes of it (the rest is
        discarded), as socket.recv().

        With MSG_TRUNC the result is still only the bytes received (the stdlib's is as
        long as the whole datagram).
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
        """Receive one datagram into a writable buffer, at most ``nbytes`` bytes of it
        (0: the buffer's size), and return how many were written, as socket.recv_into()
        (with MSG_TRUNC: the datagram's real length, as the stdlib).
        """
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

    def sendto(self, data, /, *args):
        """``sendto(data, address)`` or ``sendto(data, flags, address)``: send ``data``
        to ``address`` and return the bytes sent, as socket.sendto(); never raises
        SIGPIPE.  A datagram socket sends one datagram; a stream socket is connected
        already, and the kernel ignores the address (TCP) or refuses it (EISCONN).
        """
        cdef Py_buffer view
        cdef IOArgs a
        if len(args) == 1:
            flags, address = 0, args[0]
        elif len(args) == 2:
            flags, address = args
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        # the data first, then the flags, then the address, as the stdlib
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            a.flags = as_int(flags)
            parse_address(self.family_, address, &a.addr, &a.addrlen, "sendto")
            a.buf = <char *>view.buf
            a.len = <size_t>view.len
            return self._send(c.POLLOUT, _do_sendto, &a, &a.flags, a.len, self._deadline())
        finally:
            PyBuffer_Release(&view)

    def send(self, data, flags=0):
        """Send ``data`` and return how many bytes went out (a stream socket may send
        only some), as socket.send(); never raises SIGPIPE: a stream whose peer is gone
        gives BrokenPipeError.
        """
        return self._send_data(data, flags)

    cdef object _send_data(self, object data, object flags):
        cdef Py_buffer view
        cdef IOArgs a
        cdef ssize_t sent
        cdef double deadline
        cdef bint partial_try = False
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)  # the data first, as the stdlib
        deadline = self._deadline()
        a.buf = <char *>view.buf
        a.len = <size_t>view.len
        try:
            a.flags = as_int(flags)
            sent = self._send(c.POLLOUT, _do_send, &a, &a.flags, a.len, deadline,
                              &partial_try)
            if partial_try and sent > 0:
                # the try sent part: a blocking send sends the rest, as the
                # kernel's own would; an error after part went out is, as the
                # kernel's, the count now and the error for the next call (a
                # handler's exception propagates, as from a blocking send)
                a.buf += sent
                a.len -= <size_t>sent
                try:
                    sent += self._call(c.POLLOUT, _do_send, &a, deadline)
                except OSError as exc:
                    self._defer(exc)
            return sent
        finally:
            PyBuffer_Release(&view)



    # -- messages with ancillary data (docs/messages.md; _message_c.pxi) ------

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        """Send the bytes of ``buffers`` with the ancillary data items ``(level, type,
        data)`` of ``ancdata``, to ``address`` or (None) the connected peer, and return
        the bytes sent, as socket.sendmsg(); never raises SIGPIPE.  On a blocking stream
        the rest of the bytes goes on without the ancillary data, which went with the
        first of them.
        """
        return send_message(self, buffers, ancdata, flags, address)

    def recvmsg(self, bufsize, ancbufsize=0, flags=0):
        """Receive up to ``bufsize`` bytes and up to ``ancbufsize`` bytes of ancillary
        data, and return ``(data, ancdata, msg_flags, address)``, as socket.recvmsg():
        ``ancdata`` a list of ``(level, type, data)``, MSG_CTRUNC in ``msg_flags`` when
        the ancillary data did not fit.

        Received descriptors (SCM_RIGHTS) are close-on-exec, and none leaks when the
        call fails.  A StreamSocket returns the bytes it holds in its receive buffer
        first, with no ancillary data, msg_flags 0 and address None (see ``buffered``).
        """
        cdef Py_ssize_t size = as_ssize(bufsize)
        cdef Py_ssize_t ancsize = as_ssize(ancbufsize)
        cdef int cflags = as_int(flags)
        if size < 0:
            raise ValueError("negative buffer size in recvmsg()")
        check_ancbufsize(ancsize)
        data = self._buffered_bytes(size, cflags)
        if data is not None:
            return data, [], 0, None
        return self._recvmsg(size, ancsize, cflags, False)

    def recvmsg_into(self, buffers, ancbufsize=0, flags=0):
        """Receive into the writable ``buffers`` in turn, as recvmsg() does, and return
        ``(nbytes, ancdata, msg_flags, address)``, as socket.recvmsg_into().
        """
        cdef Py_ssize_t ancsize = as_ssize(ancbufsize)
        cdef int cflags = as_int(flags)
        cdef object items = PySequence_Fast(
            buffers, "recvmsg_into() argument 1 must be an iterable")
        cdef Py_ssize_t count = PySequence_Fast_GET_SIZE(items), acquired = 0, i
        cdef Py_buffer *views = NULL
        cdef c.iovec *iov = NULL
        cdef RecvMsgArgs a
        cdef c.control_buffer small
        cdef char *control
        cdef ssize_t n
        try:
            if count > INT_MAX:
                raise OSError("recvmsg_into() argument 1 is too long")
            views = <Py_buffer *>PyMem_Malloc(<size_t>(count + 1) * sizeof(Py_buffer))
            iov = <c.iovec *>PyMem_Malloc(<size_t>(count + 1) * sizeof(c.iovec))
            if views == NULL or iov == NULL:
                raise MemoryError()
            for i in range(count):
                get_writable_item(<object>PySequence_Fast_GET_ITEM(items, i), &views[i])
                acquired += 1
                iov[i].iov_base = views[i].buf
                iov[i].iov_len = <size_t>views[i].len
            check_ancbufsize(ancsize)
            if self._holds_received():
                n = self._buffered_into(iov, count, cflags)
                if n >= 0:
                    return n, [], 0, None
            control = control_memory(ancsize, &small)
            try:
                n = receive_message(self, &a, iov, <size_t>count, control, ancsize, cflags)
                return message_result(n, &a, cflags, False)
            finally:
                free_control(control, &small)
        finally:
            for i in range(acquired):
                PyBuffer_Release(&views[i])
            PyMem_Free(views)
            PyMem_Free(iov)

    cdef object _recvmsg(self, Py_ssize_t size, Py_ssize_t ancsize, int cflags,
                         bint fds_only):
        """recvmsg() (or recv_fds(): only the descriptors) from the kernel, its
        arguments checked."""
        cdef RecvMsgArgs a
        cdef c.iovec iov
        cdef char stack[STACK_RECV_MAX]
        cdef c.control_buffer small
        cdef char *control
        cdef ssize_t n
        cdef object data = None
        if size <= STACK_RECV_MAX:
            iov.iov_base = stack
        else:
            data = PyBytes_FromStringAndSize(NULL, size)
            iov.iov_base = PyBytes_AS_STRING(data)
        iov.iov_len = <size_t>size
        control = control_memory(ancsize, &small)
        try:
            n = receive_message(self, &a, &iov, 1, control, ancsize, cflags)
            n = min(n, size)  # MSG_TRUNC on a datagram reports its real length
            try:
                if data is None:
                    data = PyBytes_FromStringAndSize(stack, n)
                elif n < size:
                    data = data[:n]
            except BaseException:
                close_received_fds(control, received_control(&a))
                raise
            return message_result(data, &a, cflags, fds_only)
        finally:
            free_control(control, &small)

    def send_fds(self, buffers, fds, flags=0, address=None):
        """Send the descriptors ``fds`` (SCM_RIGHTS) with the bytes of ``buffers`` and
        return the bytes sent, as socket.send_fds(sock, ...) (which the module function
        ``send_fds`` is too).
        """
        return send_message(self, buffers, [_common.fds_item(fds)], flags, address)

    def recv_fds(self, bufsize, maxfds, flags=0):
        """Receive up to ``bufsize`` bytes and up to ``maxfds`` descriptors and return
        ``(data, fds, msg_flags, address)``, as socket.recv_fds(sock, ...) (which the
        module function ``recv_fds`` is too).  The descriptors are close-on-exec and the
        caller's to close; MSG_CTRUNC in ``msg_flags`` says more were sent (the kernel
        closed those).
        """
        cdef Py_ssize_t ancsize, size
        cdef int cflags
        if type(maxfds) is int and 0 <= <object>maxfds <= RECV_FDS_DIRECT_MAX:
            ancsize = <Py_ssize_t>c.CMSG_LEN(<size_t>(<Py_ssize_t>maxfds * fd_size))
        else:
            ancsize = _common.fds_ancbufsize(maxfds)  # the stdlib's arithmetic and errors
        size = as_ssize(bufsize)
        cflags = as_int(flags)
        if size < 0:
            raise ValueError("negative buffer size in recvmsg()")
        check_ancbufsize(ancsize)
        data = self._buffered_bytes(size, cflags)
        if data is not None:
            return data, [], 0, None
        return self._recvmsg(size, ancsize, cflags, True)

    cdef bint _holds_received(self) except -1:
        """Whether a receive must look at what the socket holds first (a
        StreamSocket's buffer, a receive in progress)."""
        return False

    cdef object _buffered_bytes(self, Py_ssize_t size, int flags):
        """Up to ``size`` bytes of what a StreamSocket holds received, or None."""
        return None

    cdef Py_ssize_t _buffered_into(self, c.iovec *iov, Py_ssize_t count, int flags) except -1:
        """Scatter what a StreamSocket holds received into ``iov`` (-2: nothing)."""
        raise AssertionError("only a StreamSocket holds received bytes")
