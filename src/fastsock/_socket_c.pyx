"""The compiled implementation: StreamSocket and DatagramSocket over the POSIX
sockets API.

Every operation is a tiny ``noexcept nogil`` function (``_do_*``) run by one
helper, ``_Socket._call``, that does what CPython's ``sock_call_ex`` does:
the syscall, EINTR -> signal check -> retry (PEP 475), EAGAIN on a socket
with a timeout -> ``poll()`` without the GIL until the monotonic deadline,
then ``TimeoutError("timed out")``.  The GIL is released only around calls
that can block: syscalls on blocking descriptors, and ``poll()``.

Closing a socket while another thread is blocked in a call on it shuts the
socket down (which wakes the call) and leaves the real ``close()`` to the
last call on its way out, so a blocked call can never touch a descriptor
number the OS has meanwhile handed to another file.
"""

from cpython.buffer cimport (
    PyBuffer_FillInfo,
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.long cimport PyLong_AsLong, PyLong_AsSsize_t
from cpython.number cimport PyNumber_AsSsize_t
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_XDECREF
from libc.errno cimport (
    EAFNOSUPPORT,
    EBADF,
    ECONNRESET,
    EINPROGRESS,
    EINTR,
    errno,
)
from libc.limits cimport INT_MAX, INT_MIN
from libc.math cimport ceil
from libc.string cimport memcmp, memcpy, memmove, memset, strlen
from cpython.mem cimport (
    PyMem_Calloc,
    PyMem_Free,
    PyMem_Malloc,
    PyMem_RawCalloc,
    PyMem_RawFree,
    PyMem_RawMalloc,
    PyMem_RawRealloc,
)
from posix.fcntl cimport F_GETFL, O_NONBLOCK, fcntl
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close as c_close, pread

from .includes cimport sockapi as c

import errno as _errno
import os as _os
from operator import index as _index
import socket as _stdlib  # for the exception class gaierror only, never for I/O
import warnings as _warnings

from . import _common
from ._common import (
    DEFAULT_MAX_MESSAGE,
    MAX_SLOT_SIZE,
    MAX_UDP_PAYLOAD,
    UDP_GRO,
    UDP_GSO,
    IncompleteReadError,
    LimitOverrunError,
    MessageTooLargeError,
    TruncatedDatagramError,
    check_size,
    iter_segments,
)

cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int fd, unsigned long request, ...)
    enum: FIONBIO

cdef extern from "Python.h":
    PyObject *PyBytes_FromStringAndSize_ptr "PyBytes_FromStringAndSize" (
        const char *v, Py_ssize_t size) except NULL
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t newsize) except -1
    object PyUnicode_DecodeFSDefaultAndSize(const char *s, Py_ssize_t size)


IMPLEMENTATION = "cython"

AF_INET = c.AF_INET
AF_INET6 = c.AF_INET6
AF_UNIX = c.AF_UNIX
SOCK_STREAM = c.SOCK_STREAM
SOCK_DGRAM = c.SOCK_DGRAM
SHUT_RD = c.SHUT_RD
SHUT_WR = c.SHUT_WR
SHUT_RDWR = c.SHUT_RDWR

__all__ = [
    "IMPLEMENTATION", "StreamSocket", "DatagramSocket", "socketpair",
    "create_connection", "create_server", "AF_INET", "AF_INET6", "AF_UNIX",
    "SOCK_STREAM", "SOCK_DGRAM", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
    "IncompleteReadError", "LimitOverrunError", "MessageTooLargeError",
    "DatagramBatch", "TruncatedDatagramError", "iter_segments", "UDP_GSO", "UDP_GRO",
]

cdef enum:
    # recv() of up to this many bytes reads into the stack and copies out:
    # cheaper than allocating bufsize bytes and shrinking the result
    STACK_RECV_MAX = 8192
    GETSOCKOPT_BUFLEN_MAX = 1024
    # sends up to this size on a blocking socket first try with MSG_DONTWAIT
    TRY_SEND_MAX = 65536
    SEND_BACKOFF = 8
    # the receive buffer of a stream socket starts at this size, and reads
    # into it ask for at least this much
    RECV_BUFFER_INITIAL = 65536
    # a read of more than this goes straight into its destination
    DIRECT_READ_MIN = 32768
    # reads into the receive buffer ask for at least this much room
    FILL_MIN = 16384
    # one sendfile() call moves at most this much (Linux's own limit)
    SENDFILE_CHUNK = 0x7FFFF000
    FALLBACK_CHUNK = 65536

cdef gaierror = _stdlib.gaierror

# Bumped in a forked child: calls in progress in the parent's threads do not
# exist there, so a socket's count of them is stale (see _Socket._enter).
cdef unsigned long fork_generation = 0


def _after_fork_in_child():
    global fork_generation
    fork_generation += 1


_os.register_at_fork(after_in_child=_after_fork_in_child)


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


# -- addresses ----------------------------------------------------------------

cdef bytes host_bytes(object host):
    """The stdlib's idna_converter: str (IDNA-encoded when not ASCII), bytes, bytearray."""
    cdef bytes raw
    if isinstance(host, str):
        try:
            raw = (<str>host).encode("ascii")
        except UnicodeEncodeError:
            try:
                raw = (<str>host).encode("idna")
            except UnicodeError:
                raise TypeError("encoding of hostname failed") from None
    elif isinstance(host, (bytes, bytearray)):
        raw = bytes(host)
    else:
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if b"\0" in raw:
        raise TypeError("host name must not contain null character")
    return raw


cdef int resolve_host(bytes host, int family, void *dst) except -1:
    """Fill an in_addr/in6_addr from a numeric address or a name, like setipaddr()."""
    cdef const char *name = host
    cdef c.addrinfo hints
    cdef c.addrinfo *res = NULL
    cdef int code, err
    if name[0] == 0:
        if family == c.AF_INET:
            (<c.in_addr *>dst).s_addr = c.htonl(c.INADDR_ANY)
        else:
            memcpy(dst, &c.in6addr_any, sizeof(c.in6_addr))
        return 0
    if host == b"<broadcast>" or host == b"255.255.255.255":
        if family != c.AF_INET:
            raise OSError("address family mismatched")  # as the stdlib's setipaddr()
        (<c.in_addr *>dst).s_addr = c.htonl(c.INADDR_BROADCAST)
        return 0
    if c.inet_pton(family, name, dst) == 1:
        return 0
    memset(&hints, 0, sizeof(hints))
    hints.ai_family = family
    with nogil:
        code = c.getaddrinfo(name, NULL, &hints, &res)
        err = errno
    if code != 0:
        return raise_gaierror(code, err)
    try:
        if family == c.AF_INET:
            memcpy(dst, &(<c.sockaddr_in *>res.ai_addr).sin_addr, sizeof(c.in_addr))
        else:
            memcpy(dst, &(<c.sockaddr_in6 *>res.ai_addr).sin6_addr, sizeof(c.in6_addr))
    finally:
        c.freeaddrinfo(res)
    return 0


cdef object parse_port(object port, const char *caller):
    """The port as the stdlib's argument parsing takes it: beyond a C int it
    is refused at once, before the host is resolved."""
    value = _index(port)
    if value < INT_MIN or value > INT_MAX:
        raise OverflowError(f"{caller.decode()}(): port must be 0-65535.")
    return value


cdef int check_port(object port, const char *caller) except -1:
    value = _index(port)
    if value < 0 or value > 0xFFFF:
        raise OverflowError(f"{caller.decode()}(): port must be 0-65535.")
    return value


cdef int parse_address(int family, object address, c.sockaddr_storage *out,
                       c.socklen_t *outlen, const char *caller) except -1:
    """Turn a stdlib-style address into a sockaddr, with the stdlib's errors."""
    cdef c.sockaddr_in *sin
    cdef c.sockaddr_in6 *sin6
    cdef c.sockaddr_un *sun
    cdef bytes raw
    cdef Py_ssize_t n
    cdef unsigned int scope_id = 0
    flowinfo = 0
    memset(out, 0, sizeof(c.sockaddr_storage))
    if family == c.AF_INET:
        if not isinstance(address, tuple):
            raise TypeError(f"{caller.decode()}(): AF_INET address must be tuple, "
                            f"not {type(address).__name__}")
        if len(address) != 2:
            raise TypeError("AF_INET address must be a pair (host, port)")
        raw = host_bytes(address[0])
        port = parse_port(address[1], caller)
        sin = <c.sockaddr_in *>out
        resolve_host(raw, c.AF_INET, &sin.sin_addr)
        sin.sin_family = c.AF_INET
        sin.sin_port = c.htons(<unsigned short>check_port(port, caller))
        outlen[0] = sizeof(c.sockaddr_in)
        return 0
    if family == c.AF_INET6:
        if not isinstance(address, tuple):
            raise TypeError(f"{caller.decode()}(): AF_INET6 address must be tuple, "
                            f"not {type(address).__name__}")
        if not 2 <= len(address) <= 4:
            raise TypeError(
                "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
        raw = host_bytes(address[0])
        port = parse_port(address[1], caller)
        if len(address) > 2:
            flowinfo = _index(address[2]) & 0xFFFFFFFF  # wraps, as the stdlib's
        if len(address) > 3:
            scope_id = <unsigned int>(_index(address[3]) & 0xFFFFFFFF)  # wraps, as the stdlib's
        sin6 = <c.sockaddr_in6 *>out
        resolve_host(raw, c.AF_INET6, &sin6.sin6_addr)
        sin6.sin6_family = c.AF_INET6
        sin6.sin6_port = c.htons(<unsigned short>check_port(port, caller))
        if not 0 <= flowinfo <= 0xFFFFF:
            raise OverflowError(f"{caller.decode()}(): flowinfo must be 0-1048575.")
        sin6.sin6_flowinfo = c.htonl(<unsigned int>flowinfo)
        sin6.sin6_scope_id = scope_id
        outlen[0] = sizeof(c.sockaddr_in6)
        return 0
    # AF_UNIX: the encoding and the embedded-NUL check are shared with the
    # pure implementation so both refuse the same paths the same way
    raw = _common.unix_path_bytes(address)
    n = len(raw)
    sun = <c.sockaddr_un *>out
    if (n > 0 and (<const char *>raw)[0] == 0 and <size_t>n > sizeof(sun.sun_path)) or \
            (n > 0 and (<const char *>raw)[0] != 0 and <size_t>n >= sizeof(sun.sun_path)):
        raise OSError("AF_UNIX path too long")
    sun.sun_family = c.AF_UNIX
    memcpy(sun.sun_path, <const char *>raw, n)
    outlen[0] = <c.socklen_t>(c.FASTSOCK_SUN_PATH_OFFSET + n)
    return 0


cdef object make_address(const c.sockaddr_storage *addr, c.socklen_t addrlen):
    """The stdlib's makesockaddr(): a sockaddr back into a Python address."""
    cdef char text[c.INET6_ADDRSTRLEN + 1]
    cdef const c.sockaddr_in *sin
    cdef const c.sockaddr_in6 *sin6
    cdef const c.sockaddr_un *sun
    cdef size_t pathlen, n
    if addrlen == 0:
        return None  # e.g. a datagram from an unbound AF_UNIX socket
    if addr.ss_family == c.AF_INET:
        sin = <const c.sockaddr_in *>addr
        c.inet_ntop(c.AF_INET, &sin.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), c.ntohs(sin.sin_port))
    if addr.ss_family == c.AF_INET6:
        sin6 = <const c.sockaddr_in6 *>addr
        c.inet_ntop(c.AF_INET6, &sin6.sin6_addr, text, sizeof(text))
        return (text.decode("ascii"), c.ntohs(sin6.sin6_port),
                c.ntohl(sin6.sin6_flowinfo), sin6.sin6_scope_id)
    if addr.ss_family == c.AF_UNIX:
        sun = <const c.sockaddr_un *>addr
        pathlen = addrlen - c.FASTSOCK_SUN_PATH_OFFSET if addrlen > c.FASTSOCK_SUN_PATH_OFFSET else 0
        if pathlen > sizeof(sun.sun_path):
            pathlen = sizeof(sun.sun_path)
        if pathlen > 0 and sun.sun_path[0] == 0:
            return sun.sun_path[:pathlen]  # Linux abstract name: bytes, NUL first
        n = 0
        while n < pathlen and sun.sun_path[n] != 0:
            n += 1
        return PyUnicode_DecodeFSDefaultAndSize(sun.sun_path, n)
    return (addr.ss_family, (<const char *>addr)[:addrlen])


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


# -- the receive buffer of a stream socket -------------------------------------
# Bytes taken from the kernel but not yet returned: data[start:end].

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
    cdef RecvBuffer rbuf       # stream sockets: received, not yet returned
    cdef bint receiving        # a buffered receive is in progress
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
        expected = SOCK_STREAM if issubclass(cls, StreamSocket) else SOCK_DGRAM
        if kind != expected or family not in _common.SUPPORTED_FAMILIES:
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

    cdef int _check_not_receiving(self) except -1:
        if self.receiving:
            raise RuntimeError("another receive call is in progress on this socket")
        return 0

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
        if not self.receiving:
            self.rbuf.start = self.rbuf.end = 0  # unread data goes with the socket
        if self.busy > 0 and self.busy_generation == fork_generation:
            # wake the calls blocked on fd; the last one out closes it
            c.shutdown(fd, c.SHUT_RDWR)
            self.pending_close_fd = fd
            return
        if c_close(fd) < 0 and errno != ECONNRESET and errno != EINTR:
            raise_errno(errno)

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
        PyMem_RawFree(self.rbuf.data)

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
        cdef IOArgs a
        cdef char stack[STACK_RECV_MAX]
        cdef PyObject *result
        cdef ssize_t n
        a.flags = as_int(flags)  # every argument is converted first, as by the stdlib
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self.receiving or self.rbuf.end > self.rbuf.start:
            self._check_open()
            self._check_not_receiving()
            n = min(bufsize, self.rbuf.end - self.rbuf.start)
            if a.flags & c.MSG_PEEK:
                return PyBytes_FromStringAndSize(self.rbuf.data + self.rbuf.start, n)
            return rb_take(&self.rbuf, n)
        if bufsize == 0:
            # as the stdlib: at once, without asking the kernel (which
            # would wait for data on a Unix stream, or drop a datagram)
            self._check_open()
            return b""
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
        cdef ssize_t n
        get_writable(buffer, &view, "recv_into")
        a.len = <size_t>check_nbytes(&view, nbytes, flags, &a.flags,
                                     "negative buffersize in recv_into",
                                     "buffer too small for requested bytes")
        a.buf = <char *>view.buf
        if self.receiving or self.rbuf.end > self.rbuf.start:
            try:
                self._check_open()
                self._check_not_receiving()
                n = min(<Py_ssize_t>a.len, self.rbuf.end - self.rbuf.start)
                memcpy(a.buf, self.rbuf.data + self.rbuf.start, n)
                if not a.flags & c.MSG_PEEK:
                    self.rbuf.start += n
            finally:
                PyBuffer_Release(&view)
            return n
        if a.len == 0:  # as in recv(0)
            PyBuffer_Release(&view)
            self._check_open()
            return 0
        try:
            n = self._call(c.POLLIN, _do_recv, &a, self._deadline())
        finally:
            PyBuffer_Release(&view)
        return n

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


cdef class StreamSocket(_Socket):
    """A TCP (AF_INET, AF_INET6) or Unix stream (AF_UNIX) socket."""

    def __init__(self, family=AF_INET):
        if self.fd >= 0:
            raise RuntimeError("socket already initialised")
        self._open(family, c.SOCK_STREAM)

    def listen(self, backlog=128):
        cdef int cbacklog = as_int(backlog)
        self._check_open()
        if c.listen(self.fd, cbacklog if cbacklog > 0 else 0) < 0:
            raise_errno(errno)

    def accept(self):
        """Wait for a connection: ``(StreamSocket, address)``; the new socket blocks."""
        cdef IOArgs a
        cdef int fd = <int>self._call(c.POLLIN, _do_accept, &a, self._deadline())
        cdef StreamSocket conn
        cdef object address
        try:
            address = make_address(&a.addr, a.addrlen)
            conn = StreamSocket.__new__(StreamSocket)
        except BaseException:  # MemoryError: nothing owns the new descriptor yet
            c_close(fd)
            raise
        conn.fd = fd
        conn.family_ = self.family_
        conn.kind = c.SOCK_STREAM
        conn.proto_ = self.proto_
        return conn, address

    def sendall(self, data, flags=0):
        """Send all of ``data``; the timeout bounds the whole call."""
        cdef Py_buffer view
        cdef IOArgs a
        cdef Py_ssize_t sent = 0
        cdef double deadline = self._deadline()
        a.flags = as_int(flags)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            while True:
                a.buf = <char *>view.buf + sent
                a.len = <size_t>(view.len - sent)
                sent += self._send(_do_send, &a, deadline)
                if sent >= view.len:
                    break
                PyErr_CheckSignals()
        finally:
            PyBuffer_Release(&view)

    # -- the receive buffer and the calls that use it -------------------------
    # A buffered receive holds ``receiving`` for its whole duration (it may
    # release the GIL while reading into the buffer); any other receive on
    # the socket meanwhile raises RuntimeError instead of racing it.

    @property
    def buffered(self):
        """How many received bytes the socket holds that no call has returned yet."""
        return self.rbuf.end - self.rbuf.start

    cdef inline int _begin_receive(self) except -1:
        self._check_not_receiving()
        self.receiving = True
        return 0

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
        holds nothing (or at EOF, or on an error: the next call reports those)."""
        cdef ssize_t n
        if self.fd < 0:
            return 0
        rb_reserve_tail(&self.rbuf, FILL_MIN)
        n = c.recv(self.fd, self.rbuf.data + self.rbuf.end,
                   <size_t>(self.rbuf.capacity - self.rbuf.end), c.MSG_DONTWAIT)
        if n <= 0:
            return 0
        self.rbuf.end += n
        return n

    cdef int _recv_full(self, char *dst, Py_ssize_t n, double deadline,
                        Py_ssize_t *got) except -1:
        """Read straight into dst until got[0] == n, or EOF (got[0] < n).
        On a blocking socket the whole loop runs without the GIL."""
        cdef IOArgs a
        cdef ssize_t r = 0
        cdef Py_ssize_t done = got[0]
        cdef int fd, err = 0
        while done < n:
            if self.timeout < 0:
                fd = self.fd
                if fd < 0:
                    return raise_errno(EBADF)
                self._enter()
                with nogil:
                    while done < n:
                        r = c.recv(fd, dst + done, <size_t>(n - done), 0)
                        if r <= 0:
                            err = errno
                            break
                        done += r
                self._leave()
                got[0] = done
                if self.fd < 0 and done < n:
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
        """Exactly ``n`` bytes; the timeout bounds the whole call.

        EOF first raises IncompleteReadError; any other failure puts the
        bytes already read back in the receive buffer.
        """
        cdef Py_ssize_t size = PyLong_AsSsize_t(_index(n))  # the stdlib's message
        cdef Py_ssize_t got = 0
        cdef bytes result
        if size < 0:
            raise ValueError("n must not be negative")
        self._begin_receive()
        try:
            if self.rbuf.end - self.rbuf.start >= size:
                return rb_take(&self.rbuf, size)
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
            self.receiving = False

    def recv_exactly_into(self, buffer, nbytes=0):
        """Fill ``nbytes`` (default: all) of a writable buffer; returns nbytes."""
        cdef Py_buffer view
        cdef Py_ssize_t size, got = 0
        get_writable(buffer, &view, "recv_exactly_into")
        size = check_nbytes(&view, nbytes, None, NULL,
                            "negative buffersize in recv_exactly_into",
                            "buffer too small for requested bytes")
        try:
            self._begin_receive()
            try:
                self._read_exact(<char *>view.buf, size, self._deadline(), &got)
            except BaseException:
                rb_unread(&self.rbuf, <char *>view.buf, got)
                raise
            finally:
                self.receiving = False
            if got < size:
                raise IncompleteReadError(PyBytes_FromStringAndSize(<char *>view.buf, got), size)
            return size
        finally:
            PyBuffer_Release(&view)

    def recv_until(self, delimiter, limit=65536):
        """The data up to and including ``delimiter``, at most ``limit`` bytes.

        No delimiter within ``limit`` bytes raises LimitOverrunError and
        leaves the data buffered; EOF first raises IncompleteReadError.
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
                self.receiving = False
        finally:
            PyBuffer_Release(&delim)

    def recv_iter(self, buffer):
        """Iterate over memoryviews of ``buffer``, each the part just received,
        until EOF.  A view is valid only until the next iteration."""
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
        """Send ``payload`` after its big-endian length, in one vectored send."""
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

    def recv_msg(self, *, prefix_size=4, max_size=DEFAULT_MAX_MESSAGE):
        """One length-prefixed message's payload."""
        cdef int psize = check_prefix_size(prefix_size)
        cdef Py_ssize_t cmax = check_positive(max_size, "max_size")
        self._begin_receive()
        try:
            return self._recv_one(psize, cmax, self._deadline())
        finally:
            self.receiving = False

    def recv_msgs(self, max_count=1024, *, prefix_size=4, max_size=DEFAULT_MAX_MESSAGE):
        """Every complete message already received (up to ``max_count``),
        waiting within the timeout for the first."""
        cdef Py_ssize_t count = check_positive(max_count, "max_count")
        cdef int psize = check_prefix_size(prefix_size)
        cdef Py_ssize_t cmax = check_positive(max_size, "max_size")
        cdef list messages = []
        self._begin_receive()
        try:
            self._take_msgs(messages, count, psize, cmax)
            if not messages:
                messages.append(self._recv_one(psize, cmax, self._deadline()))
                self._take_msgs(messages, count, psize, cmax)
            # and whatever the kernel already holds, without waiting
            while len(messages) < count and self._fill_nowait():
                self._take_msgs(messages, count, psize, cmax)
            return messages
        finally:
            self.receiving = False

    cdef int _take_msgs(self, list messages, Py_ssize_t count, int psize,
                        Py_ssize_t cmax) except -1:
        """Move the complete messages in the receive buffer to ``messages``."""
        cdef unsigned long long length
        cdef Py_ssize_t held
        while len(messages) < count:
            held = self.rbuf.end - self.rbuf.start
            if held < psize:
                break
            length = decode_prefix(self.rbuf.data + self.rbuf.start, psize)
            if length > <unsigned long long>cmax or <unsigned long long>(held - psize) < length:
                break  # too large (reported by the next call) or incomplete
            messages.append(rb_take_after(&self.rbuf, psize, <Py_ssize_t>length))
        return 0

    cdef object _recv_one(self, int psize, Py_ssize_t cmax, double deadline):
        """One framed message (the caller holds ``receiving``)."""
        cdef unsigned long long length
        cdef Py_ssize_t n, got = 0
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
        if n - (self.rbuf.end - self.rbuf.start - psize) < DIRECT_READ_MIN:
            # small: through the buffer, which the same reads may fill with
            # the next messages too; a failure leaves the frame buffered
            while self.rbuf.end - self.rbuf.start - psize < n:
                if self._fill(deadline) == 0:
                    raise IncompleteReadError(rb_take_after(
                        &self.rbuf, psize, self.rbuf.end - self.rbuf.start - psize), n)
            return rb_take_after(&self.rbuf, psize, n)
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
        place), IOV_MAX buffers at a time."""
        cdef MsgArgs a
        cdef ssize_t n
        memset(&a, 0, sizeof(a))
        while True:
            while count > 0 and iov[0].iov_len == 0:
                iov += 1
                count -= 1
            if count == 0:
                return 0
            a.msg.msg_iov = iov
            a.msg.msg_iovlen = <size_t>min(count, <Py_ssize_t>c.IOV_MAX)
            n = -1
            if self.timeout < 0:
                # as in _send: try without blocking first, keeping the GIL
                n = c.sendmsg(self.fd, &a.msg, c.MSG_NOSIGNAL | c.MSG_DONTWAIT)
            if n < 0:
                n = self._call(c.POLLOUT, _do_sendmsg, &a, deadline)
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
        cdef list items = list(buffers)
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
        """One vectored send of up to IOV_MAX bytes-like objects; returns bytes sent."""
        return self._send_buffers(buffers, False)

    def sendall_buffers(self, buffers):
        """Send every byte of every buffer, without concatenating them; the
        timeout bounds the whole call."""
        self._send_buffers(buffers, True)

    def sendfile(self, file, offset=0, count=None):
        """Send a file's bytes (kernel zero-copy where possible); returns how
        many were sent.  The timeout bounds the whole call; on a non-blocking
        socket it sends what fits."""
        cdef SendfileArgs a
        cdef Py_ssize_t total = 0, want
        cdef ssize_t n
        cdef double deadline
        cdef c.off_t start
        in_fd, start, want = _sendfile_plan(file, offset, count)
        deadline = self._deadline()
        a.in_fd = in_fd
        a.offset = start
        try:
            while total < want:
                a.count = <size_t>min(want - total, <Py_ssize_t>SENDFILE_CHUNK)
                try:
                    n = self._call(c.POLLOUT, _do_sendfile, &a, deadline)
                except BlockingIOError:
                    if total:
                        break
                    raise
                except OSError as exc:
                    if total == 0 and exc.errno in _SENDFILE_UNSUPPORTED:
                        total = self._sendfile_by_reading(in_fd, start, want, deadline)
                        break
                    raise
                if n == 0:
                    break  # end of file
                total += n
        finally:
            _common.set_file_position(file, in_fd, start + total)
        return total

    cdef Py_ssize_t _sendfile_by_reading(self, int in_fd, c.off_t start, Py_ssize_t want,
                                         double deadline) except -1:
        """The fallback for descriptors the kernel cannot sendfile() from."""
        cdef char *chunk = <char *>PyMem_Malloc(FALLBACK_CHUNK)
        cdef Py_ssize_t total = 0
        cdef ssize_t n
        cdef c.iovec iov
        if chunk == NULL:
            raise MemoryError()
        try:
            while total < want:
                with nogil:
                    n = pread(in_fd, chunk, <size_t>min(want - total, <Py_ssize_t>FALLBACK_CHUNK),
                              start + total)
                if n < 0:
                    if errno == EINTR:
                        PyErr_CheckSignals()
                        continue
                    raise_errno(errno)
                if n == 0:
                    break
                iov.iov_base = chunk
                iov.iov_len = <size_t>n
                self._sendall_iov(&iov, 1, deadline)
                total += n
        finally:
            PyMem_Free(chunk)
        return total


cdef class DatagramSocket(_Socket):
    """A UDP (AF_INET, AF_INET6) or Unix datagram (AF_UNIX) socket."""

    cdef DatagramBatch scratch   # reused by recv_many
    cdef bint gso_usable         # cleared when the kernel refuses UDP_SEGMENT
    cdef c.sockaddr_storage last_raw  # the last sender, raw and decoded
    cdef c.socklen_t last_len
    cdef object last_address

    def __cinit__(self):
        self.gso_usable = UDP_GSO

    def __init__(self, family=AF_INET):
        if self.fd >= 0:
            raise RuntimeError("socket already initialised")
        self._open(family, c.SOCK_DGRAM)

    def sendto(self, data, *args):
        """``sendto(data, address)`` or ``sendto(data, flags, address)``."""
        cdef Py_buffer view
        cdef IOArgs a
        if len(args) == 1:
            a.flags = 0
            address = args[0]
        elif len(args) == 2:
            a.flags = as_int(args[0])
            address = args[1]
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            parse_address(self.family_, address, &a.addr, &a.addrlen, "sendto")
            a.buf = <char *>view.buf
            a.len = <size_t>view.len
            return self._send(_do_sendto, &a, self._deadline())
        finally:
            PyBuffer_Release(&view)

    def recvfrom(self, Py_ssize_t bufsize, flags=0):
        """Receive one datagram: ``(bytes, address)``; at most ``bufsize``
        bytes, even when MSG_TRUNC makes the call report a longer datagram."""
        cdef IOArgs a
        cdef ssize_t n
        cdef char stack[STACK_RECV_MAX]
        a.flags = as_int(flags)  # every argument is converted first, as by the stdlib
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        a.len = <size_t>bufsize
        if bufsize <= STACK_RECV_MAX:
            a.buf = stack
            n = self._call(c.POLLIN, _do_recvfrom, &a, self._deadline())
            return PyBytes_FromStringAndSize(stack, min(n, bufsize)), self._sender(&a)
        data = PyBytes_FromStringAndSize(NULL, bufsize)
        a.buf = PyBytes_AS_STRING(data)
        n = min(self._call(c.POLLIN, _do_recvfrom, &a, self._deadline()), bufsize)
        if n != bufsize:
            data = data[:n]
        return data, self._sender(&a)

    cdef object _sender(self, IOArgs *a):
        """The sender's address; the previous tuple again when it is the same
        sender (a datagram stream mostly comes from a few peers)."""
        if self.last_address is not None and a.addrlen == self.last_len and \
                memcmp(&a.addr, &self.last_raw, a.addrlen) == 0:
            return self.last_address
        address = make_address(&a.addr, a.addrlen)
        memcpy(&self.last_raw, &a.addr, a.addrlen)
        self.last_len = a.addrlen
        self.last_address = address
        return address

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        """Receive one datagram into a writable buffer: ``(nbytes, address)``."""
        cdef Py_buffer view
        cdef IOArgs a
        cdef ssize_t n
        get_writable(buffer, &view, "recvfrom_into")
        a.len = <size_t>check_nbytes(&view, nbytes, flags, &a.flags,
                                     "negative buffersize in recvfrom_into",
                                     "nbytes is greater than the length of the buffer")
        a.buf = <char *>view.buf
        try:
            n = self._call(c.POLLIN, _do_recvfrom, &a, self._deadline())
        finally:
            PyBuffer_Release(&view)
        return n, self._sender(&a)

    # -- batches, GSO and GRO ---------------------------------------------------

    cdef Py_ssize_t _recv_into_batch(self, DatagramBatch batch) except -1:
        cdef MmsgArgs a
        batch._prepare()
        a.msgs = batch.msgs
        a.count = <unsigned int>batch.count
        # wait for the first datagram only; MSG_TRUNC reports real lengths
        a.flags = c.MSG_WAITFORONE | c.MSG_TRUNC
        batch.filled = self._call(c.POLLIN, _do_recvmmsg, &a, self._deadline())
        return batch.filled

    def recv_batch(self, DatagramBatch batch not None):
        """Fill ``batch`` with what has arrived (waiting for the first datagram
        within the timeout) in one recvmmsg; returns how many datagrams."""
        return self._recv_into_batch(batch)

    def recv_many(self, max_count=64, bufsize=2048):
        """A list of ``(bytes, address)``: the first datagram (waiting within
        the timeout) and whatever else is already queued, up to max_count."""
        cdef Py_ssize_t count = check_size(max_count, "max_count", 1 << 20)
        cdef Py_ssize_t size = check_size(bufsize, "bufsize", MAX_SLOT_SIZE)
        cdef DatagramBatch batch = self.scratch
        cdef Py_ssize_t n, k
        cdef list messages, cut = []
        if batch is None or batch.count != count or batch.slot_size != size:
            batch = self.scratch = DatagramBatch(count, size)
        n = self._recv_into_batch(batch)
        messages = []
        for k in range(n):
            messages.append((PyBytes_FromStringAndSize(batch.memory + k * size, batch._stored(k)),
                             batch._address(k)))
            if batch.msgs[k].msg_hdr.msg_flags & c.MSG_TRUNC:
                cut.append(k)
        if cut:
            raise TruncatedDatagramError(messages, cut)
        return messages

    cdef Py_ssize_t _send_mmsg(self, c.mmsghdr *msgs, Py_ssize_t n) except -1:
        """sendmmsg() until all n are sent; the count so far when an error
        follows a partial send (no error is lost: the next call reports it)."""
        cdef MmsgArgs a
        cdef Py_ssize_t sent = 0
        cdef double deadline = self._deadline()
        a.flags = 0
        while sent < n:
            a.msgs = msgs + sent
            a.count = <unsigned int>min(n - sent, <Py_ssize_t>c.UIO_MAXIOV)
            try:
                sent += self._call(c.POLLOUT, _do_sendmmsg, &a, deadline)
            except OSError:
                if sent:
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

    def send_many(self, buffers, address=None):
        """Send each buffer as one datagram (to ``address``, or the connected
        peer) with sendmmsg; returns how many were sent."""
        return self._send_many(list(buffers), address, False)

    def sendto_many(self, pairs):
        """Send ``(data, address)`` pairs with sendmmsg; returns how many were sent."""
        return self._send_many(list(pairs), None, True)

    def send_segments(self, buffer, segment_size, address=None):
        """Send ``buffer`` as datagrams of ``segment_size`` bytes (the last may
        be shorter): with UDP GSO, many per sendmsg, where the kernel has it;
        else with sendmmsg.  Returns how many datagrams were sent."""
        cdef Py_ssize_t seg = check_size(segment_size, "segment_size", MAX_UDP_PAYLOAD)
        cdef Py_buffer view
        cdef Py_ssize_t sent = 0
        PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
        try:
            if view.len == 0:
                return 0
            if self.gso_usable and self.family_ != c.AF_UNIX:
                sent = self._send_gso(&view, seg, address)
            if sent * seg < view.len:
                sent += self._send_slices(&view, seg, sent, address)
            return sent
        finally:
            PyBuffer_Release(&view)

    cdef Py_ssize_t _send_gso(self, Py_buffer *view, Py_ssize_t seg, object address) except -1:
        """Segments through UDP_SEGMENT; stops early (returning the count so
        far) when the kernel refuses it, so the caller sends the rest plainly."""
        cdef MsgArgs a
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = 0
        cdef c.iovec iov
        cdef c.cmsg_buffer control
        cdef c.cmsghdr *cmsg
        cdef Py_ssize_t per_call, offset = 0, chunk, sent = 0
        cdef double deadline = self._deadline()
        per_call = min(<Py_ssize_t>c.FASTSOCK_GSO_MAX_SEGMENTS, MAX_UDP_PAYLOAD // seg)
        if per_call < 2:
            return 0  # nothing to gain
        memset(&a, 0, sizeof(a))
        if address is not None:
            parse_address(self.family_, address, &addr, &addrlen, "sendto")
            a.msg.msg_name = &addr
            a.msg.msg_namelen = addrlen
        a.msg.msg_iov = &iov
        a.msg.msg_iovlen = 1
        while offset < view.len:
            chunk = min(per_call * seg, view.len - offset)
            iov.iov_base = <char *>view.buf + offset
            iov.iov_len = <size_t>chunk
            memset(&control, 0, sizeof(control))
            a.msg.msg_control = control.buf
            a.msg.msg_controllen = c.CMSG_SPACE(sizeof(unsigned short))
            cmsg = c.CMSG_FIRSTHDR(&a.msg)
            cmsg.cmsg_level = c.SOL_UDP
            cmsg.cmsg_type = c.UDP_SEGMENT
            cmsg.cmsg_len = c.CMSG_LEN(sizeof(unsigned short))
            (<unsigned short *>c.CMSG_DATA(cmsg))[0] = <unsigned short>seg
            try:
                self._call(c.POLLOUT, _do_sendmsg, &a, deadline)
            except OSError as exc:
                if exc.errno in _GSO_REFUSED:
                    self.gso_usable = False  # e.g. a segment larger than the path MTU
                    return sent
                if sent:
                    return sent
                raise
            sent += (chunk + seg - 1) // seg
            offset += chunk
        return sent

    cdef Py_ssize_t _send_slices(self, Py_buffer *view, Py_ssize_t seg, Py_ssize_t first,
                                 object address) except -1:
        """Segments from index ``first`` on, one datagram each, with sendmmsg."""
        cdef Py_ssize_t total = (view.len + seg - 1) // seg
        cdef Py_ssize_t n = total - first, i, start
        cdef c.mmsghdr *msgs = <c.mmsghdr *>PyMem_Calloc(<size_t>(n + 1), sizeof(c.mmsghdr))
        cdef c.iovec *iovs = <c.iovec *>PyMem_Calloc(<size_t>(n + 1), sizeof(c.iovec))
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = 0
        try:
            if not (msgs and iovs):
                raise MemoryError()
            if address is not None:
                parse_address(self.family_, address, &addr, &addrlen, "sendto")
            for i in range(n):
                start = (first + i) * seg
                iovs[i].iov_base = <char *>view.buf + start
                iovs[i].iov_len = <size_t>min(seg, view.len - start)
                msgs[i].msg_hdr.msg_iov = &iovs[i]
                msgs[i].msg_hdr.msg_iovlen = 1
                if address is not None:
                    msgs[i].msg_hdr.msg_name = &addr
                    msgs[i].msg_hdr.msg_namelen = addrlen
            return self._send_mmsg(msgs, n)
        finally:
            PyMem_Free(msgs)
            PyMem_Free(iovs)

    def set_gro(self, enabled=True):
        """Turn UDP receive coalescing on or off; returns whether it is on
        (False where the kernel or the family lacks it)."""
        cdef int value = 1 if enabled else 0
        self._check_open()
        if self.family_ == c.AF_UNIX or not UDP_GRO:
            return False
        if c.setsockopt(self.fd, c.SOL_UDP, c.UDP_GRO, &value, sizeof(value)) < 0:
            return False
        return bool(value)

    def recv_gro(self, bufsize=65535):
        """``(data, address, segment_size)``: several coalesced datagrams of
        segment_size bytes (the last may be shorter), or one datagram with
        ``segment_size == len(data)``."""
        cdef Py_ssize_t size = check_size(bufsize, "bufsize", MAX_SLOT_SIZE)
        cdef MsgArgs a
        cdef c.iovec iov
        cdef c.sockaddr_storage addr
        cdef c.cmsg_buffer control
        cdef c.cmsghdr *cmsg
        cdef ssize_t n
        cdef int segment = 0
        data = PyBytes_FromStringAndSize(NULL, size)
        memset(&a, 0, sizeof(a))
        iov.iov_base = PyBytes_AS_STRING(data)
        iov.iov_len = <size_t>size
        a.msg.msg_iov = &iov
        a.msg.msg_iovlen = 1
        a.msg.msg_name = &addr
        a.msg.msg_namelen = sizeof(addr)
        a.msg.msg_control = control.buf
        a.msg.msg_controllen = sizeof(control.buf)
        a.flags = 0
        n = self._call(c.POLLIN, _do_recvmsg, &a, self._deadline())
        cmsg = c.CMSG_FIRSTHDR(&a.msg)
        while cmsg != NULL:
            if cmsg.cmsg_level == c.SOL_UDP and cmsg.cmsg_type == c.UDP_GRO and \
                    cmsg.cmsg_len >= c.CMSG_LEN(sizeof(int)):
                memcpy(&segment, c.CMSG_DATA(cmsg), sizeof(int))
            cmsg = c.CMSG_NXTHDR(&a.msg, cmsg)
        data = data[:n]
        result = (data, make_address(&addr, a.msg.msg_namelen), segment if segment > 0 else n)
        if a.msg.msg_flags & c.MSG_TRUNC:
            raise TruncatedDatagramError([result], [0])
        return result


# -- batches of datagrams -----------------------------------------------------

cdef class DatagramBatch:
    """Reusable memory for ``DatagramSocket.recv_batch``: ``count`` slots of
    ``slot_size`` bytes, with their lengths and senders.

    ``data(i)`` is a memoryview into the batch's own memory; while any such
    view is alive, ``recv_batch`` refuses to overwrite the batch (BufferError).
    """

    cdef char *memory
    cdef c.mmsghdr *msgs
    cdef c.iovec *iovs
    cdef c.sockaddr_storage *addrs
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t slot_size
    cdef Py_ssize_t filled
    cdef int exports
    # the last decoded sender: a datagram from the same one reuses the tuple
    cdef c.sockaddr_storage cached_raw
    cdef c.socklen_t cached_len
    cdef object cached_address

    def __cinit__(self, count, slot_size=2048):
        cdef Py_ssize_t i
        self.count = check_size(count, "count", 1 << 20)
        self.slot_size = check_size(slot_size, "slot_size", MAX_SLOT_SIZE)
        self.memory = <char *>PyMem_RawMalloc(<size_t>(self.count * self.slot_size))
        self.msgs = <c.mmsghdr *>PyMem_RawCalloc(<size_t>self.count, sizeof(c.mmsghdr))
        self.iovs = <c.iovec *>PyMem_RawCalloc(<size_t>self.count, sizeof(c.iovec))
        self.addrs = <c.sockaddr_storage *>PyMem_RawCalloc(<size_t>self.count,
                                                          sizeof(c.sockaddr_storage))
        if not (self.memory and self.msgs and self.iovs and self.addrs):
            raise MemoryError()
        for i in range(self.count):
            self.iovs[i].iov_base = self.memory + i * self.slot_size
            self.iovs[i].iov_len = <size_t>self.slot_size
            self.msgs[i].msg_hdr.msg_iov = &self.iovs[i]
            self.msgs[i].msg_hdr.msg_iovlen = 1
            self.msgs[i].msg_hdr.msg_name = &self.addrs[i]

    def __dealloc__(self):
        PyMem_RawFree(self.memory)
        PyMem_RawFree(self.msgs)
        PyMem_RawFree(self.iovs)
        PyMem_RawFree(self.addrs)

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.memory, self.count * self.slot_size, 0, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1

    cdef int _prepare(self) except -1:
        cdef Py_ssize_t i
        if self.exports:
            raise BufferError("the batch still has memoryviews alive; release them "
                              "before receiving into it again")
        for i in range(self.count):
            self.msgs[i].msg_hdr.msg_namelen = sizeof(c.sockaddr_storage)
            self.msgs[i].msg_hdr.msg_flags = 0
            self.msgs[i].msg_len = 0
        self.filled = 0
        return 0

    cdef inline Py_ssize_t _index(self, object i) except -1:
        cdef Py_ssize_t k = PyNumber_AsSsize_t(i, IndexError)
        if k < 0:
            k += self.filled
        if not 0 <= k < self.filled:
            raise IndexError("batch index out of range")
        return k

    cdef inline Py_ssize_t _stored(self, Py_ssize_t k) noexcept:
        return min(<Py_ssize_t>self.msgs[k].msg_len, self.slot_size)

    def __len__(self):
        return self.filled

    def data(self, i):
        """Slot i's datagram as a memoryview into the batch."""
        cdef Py_ssize_t k = self._index(i)
        start = k * self.slot_size
        return memoryview(self)[start:start + self._stored(k)]

    def length(self, i):
        """The datagram's real length (more than slot_size when truncated)."""
        return self.msgs[self._index(i)].msg_len

    def truncated(self, i):
        return bool(self.msgs[self._index(i)].msg_hdr.msg_flags & c.MSG_TRUNC)

    def address(self, i):
        """The sender of datagram i (the same tuple as the previous sender's
        when they are equal)."""
        cdef Py_ssize_t k = self._index(i)
        return self._address(k)

    cdef object _address(self, Py_ssize_t k):
        cdef c.socklen_t n = self.msgs[k].msg_hdr.msg_namelen
        if self.cached_address is not None and n == self.cached_len and \
                memcmp(&self.addrs[k], &self.cached_raw, n) == 0:
            return self.cached_address
        address = make_address(&self.addrs[k], n)
        memcpy(&self.cached_raw, &self.addrs[k], n)
        self.cached_len = n
        self.cached_address = address
        return address

    def __iter__(self):
        cdef Py_ssize_t k
        whole = memoryview(self)
        for k in range(self.filled):
            start = k * self.slot_size
            yield whole[start:start + self._stored(k)], self._address(k)

    def __repr__(self):
        return (f"<fastsock.DatagramBatch {self.filled}/{self.count} slots "
                f"of {self.slot_size} bytes>")

    def __reduce__(self):
        raise TypeError("cannot pickle 'DatagramBatch' object")


_GSO_REFUSED = frozenset(
    getattr(_errno, name) for name in ("EINVAL", "EIO", "ENOPROTOOPT", "EOPNOTSUPP")
    if hasattr(_errno, name))

_SENDFILE_UNSUPPORTED = frozenset(
    getattr(_errno, name) for name in ("EINVAL", "ENOSYS", "EOPNOTSUPP", "ESPIPE")
    if hasattr(_errno, name))


def _sendfile_plan(file, offset, count):
    """(descriptor, start, byte count) for sendfile(), with its errors."""
    return _common.sendfile_plan(file, offset, count)


def socketpair(family=AF_UNIX, type=SOCK_STREAM):
    """A pair of connected sockets: StreamSocket for SOCK_STREAM, else DatagramSocket."""
    cdef int fds[2]
    cdef int fam = as_int(family)
    cdef int kind = as_int(type)
    cdef _Socket a, b
    if kind == c.SOCK_STREAM:
        cls = StreamSocket
    elif kind == c.SOCK_DGRAM:
        cls = DatagramSocket
    else:
        raise ValueError("socketpair type must be SOCK_STREAM or SOCK_DGRAM")
    if fam != c.AF_INET and fam != c.AF_INET6 and fam != c.AF_UNIX:
        raise_errno(EAFNOSUPPORT)
    if c.socketpair(fam, kind | c.SOCK_CLOEXEC, 0, fds) < 0:
        raise_errno(errno)
    pair = []
    for fd in (fds[0], fds[1]):
        sock = cls.__new__(cls)
        (<_Socket>sock).fd = fd
        (<_Socket>sock).family_ = fam
        (<_Socket>sock).kind = kind
        pair.append(sock)
    return tuple(pair)


def create_connection(address, timeout=None, *, source_address=None):
    """Connect to ``(host, port)`` trying every resolved address, or to an AF_UNIX path."""
    return _common.create_connection(StreamSocket, address, timeout, source_address)


def create_server(address=None, *, family=AF_INET, backlog=128, reuse_port=False):
    """A listening StreamSocket with SO_REUSEADDR, on loopback unless told otherwise."""
    return _common.create_server(StreamSocket, address, family, backlog, reuse_port)
