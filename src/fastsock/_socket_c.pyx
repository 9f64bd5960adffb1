"""The compiled implementation: StreamSocket and DatagramSocket over the POSIX
sockets API.

Every operation is a tiny ``noexcept nogil`` function (``_do_*``) run by one
helper, ``_Socket._call``, that does what CPython's ``sock_call_ex`` does:
the syscall, EINTR -> signal check -> retry (PEP 475), EAGAIN on a socket
with a timeout -> ``poll()`` without the GIL until the monotonic deadline,
then ``TimeoutError("timed out")``.  The GIL is released only around calls
that can block: syscalls on blocking descriptors, and ``poll()``.

One extension, its source split by concern (one level deep; each file names
its pure twin): _base_c.pxi (errors, integers, clock, syscalls, _Socket and
its call helper), _address_c.pxi, _stream_c.pxi, _file_c.pxi (the file of
StreamSocket.makefile()), _datagram_c.pxi, _seqpacket_c.pxi, _message_c.pxi
(ancillary data), _netlink_c.pxi (NetlinkSocket), _aio_stream_c.pxi (the
core of fastsock.aio's StreamReader and StreamWriter).
They are one translation unit so that the hot helpers inline across them (see
docs/architecture.md).
"""

cimport cython
from cpython.buffer cimport (
    PyBuffer_FillInfo,
    PyBuffer_IsContiguous,
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.long cimport PyLong_AsLong, PyLong_AsSsize_t, PyLong_AsUnsignedLongMask
from cpython.number cimport PyNumber_AsSsize_t, PyNumber_Index
from cpython.object cimport PyObject, PyTypeObject
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.sequence cimport (
    PySequence_Check,
    PySequence_Fast,
    PySequence_Fast_GET_ITEM,
    PySequence_Fast_GET_SIZE,
    PySequence_Size,
)
from cpython.ref cimport Py_DECREF, Py_XDECREF
from cpython.version cimport PY_VERSION_HEX
from libc.errno cimport (
    EAFNOSUPPORT,
    EAGAIN,
    EBADF,
    ECONNRESET,
    EINPROGRESS,
    EINTR,
    EPIPE,
    errno,
)
from libc.limits cimport INT_MAX, INT_MIN
from libc.math cimport ceil
from libc.string cimport memchr, memcmp, memcpy, memmove, memset, strlen
from cpython.mem cimport (
    PyMem_Calloc,
    PyMem_Free,
    PyMem_Malloc,
    PyMem_RawCalloc,
    PyMem_RawFree,
    PyMem_RawMalloc,
    PyMem_RawRealloc,
)
from posix.fcntl cimport F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_SETFD, FD_CLOEXEC, O_NONBLOCK, fcntl
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close as c_close, pread, read as c_read, usleep

from .includes cimport sockapi as c
from .includes cimport netlink as nl
from .includes.python cimport (
    PyBytes_FromStringAndSize_ptr,
    PyType_GenericAlloc,
    PyUnicode_DecodeFSDefaultAndSize,
    _PyBytes_Resize,
)
from .includes.sockapi cimport FIONBIO, FIONREAD, ioctl

import io as _io
import os as _os
from itertools import islice as _islice
import socket as _stdlib  # its constants, enums and exceptions; never for I/O
import struct as _struct
import warnings as _warnings

from . import _common, _makefile, _names
from ._common import (
    DEFAULT_MAX_MESSAGE,
    GSO_REFUSED,
    MAX_RECORD_SIZE,
    MAX_SLOT_SIZE,
    MAX_UDP_PAYLOAD,
    SENDFILE_UNSUPPORTED,
    IncompleteReadError,
    LimitOverrunError,
    MessageTooLargeError,
    TruncatedDatagramError,
    TruncatedRecordError,
    VMADDR_CID_LOCAL,
    check_size,
    iter_segments,
    recv_fds,
    send_fds,
    udp_gro_available,
    udp_gso_available,
)
from ._common import (  # netlink
    NETLINK_SOCK_DIAG,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_NOOP,
    NetlinkMessage,
    netlink_attributes,
)

IMPLEMENTATION = "cython"


cdef inline object _index(object value):
    """operator.index(value), its message included, without a call through Python."""
    return PyNumber_Index(value)


# the stdlib's own objects (enum members), as the stdlib's code compares them
AF_INET = _stdlib.AF_INET
AF_INET6 = _stdlib.AF_INET6
AF_UNIX = _stdlib.AF_UNIX
SOCK_STREAM = _stdlib.SOCK_STREAM
SOCK_DGRAM = _stdlib.SOCK_DGRAM
SOCK_SEQPACKET = _stdlib.SOCK_SEQPACKET
SHUT_RD = _stdlib.SHUT_RD
SHUT_WR = _stdlib.SHUT_WR
SHUT_RDWR = _stdlib.SHUT_RDWR

__all__ = list(_names.TWIN_NAMES)

# sizes and option numbers written once in _common (C variables: read once)
cdef Py_ssize_t sendfile_chunk = _common.SENDFILE_CHUNK
cdef Py_ssize_t sendfile_read_chunk = _common.SENDFILE_READ_CHUNK
cdef Py_ssize_t gso_max_segments = _common.GSO_MAX_SEGMENTS
cdef int sol_udp = _common.SOL_UDP
cdef int udp_segment_opt = _common.UDP_SEGMENT_OPT
cdef int udp_gro_opt = _common.UDP_GRO_OPT

cdef gaierror = _stdlib.gaierror


include "_base_c.pxi"
include "_address_c.pxi"
include "_stream_c.pxi"
include "_file_c.pxi"
include "_datagram_c.pxi"
include "_seqpacket_c.pxi"
include "_message_c.pxi"
include "_netlink_c.pxi"
include "_aio_stream_c.pxi"


# -- module functions -------------------------------------------------------------

SocketType = _Socket  # what every class is, as socket.SocketType for the stdlib's

# the class of each (family, type) socket() and socketpair() make; family -1: any
CLASSES = {
    (-1, c.SOCK_STREAM): StreamSocket,
    (-1, c.SOCK_DGRAM): DatagramSocket,
    # raw IP; a family with a class of its own for SOCK_RAW has its own entry
    (-1, c.SOCK_RAW): RawSocket,
    (c.AF_UNIX, c.SOCK_SEQPACKET): SeqPacketSocket,
}
# netlink
CLASSES[nl.AF_NETLINK, nl.SOCK_RAW] = NetlinkSocket
CLASSES[nl.AF_NETLINK, c.SOCK_DGRAM] = NetlinkSocket


def socket(family=-1, type=-1, proto=-1, fileno=None):
    """socket.socket()'s arguments, fastsock's classes: a StreamSocket for SOCK_STREAM
    (the default), a DatagramSocket for SOCK_DGRAM, a RawSocket for SOCK_RAW (AF_INET,
    AF_INET6; ICMP or ICMPv6 when no protocol is given), a SeqPacketSocket for AF_UNIX
    SOCK_SEQPACKET, ValueError for another type.  With ``fileno`` and no type, the
    descriptor's own type decides.  A family the class does not take, or the kernel
    lacks, raises OSError (EAFNOSUPPORT) naming it.
    """
    kind = as_int(type)
    cls = _common.socket_class(CLASSES, as_int(family), kind, fileno)
    return cls(family, kind, proto, fileno)


def fromfd(fd, family, type, proto=0):
    """A socket on a duplicate of descriptor ``fd`` (not inheritable), as
    socket.fromfd(); ``fd`` stays the caller's.
    """
    duplicate = _os.dup(_index(fd))
    try:
        return socket(family, type, proto, duplicate)
    except BaseException:
        c_close(duplicate)
        raise


def socketpair(family=None, type=SOCK_STREAM, proto=0):
    """A pair of connected sockets, as socket.socketpair(): StreamSocket for
    SOCK_STREAM, DatagramSocket for SOCK_DGRAM, SeqPacketSocket for SOCK_SEQPACKET
    (SOCK_NONBLOCK/SOCK_CLOEXEC may be or'ed in, as for the constructor).
    ``family`` None is AF_UNIX.  Their timeout is socket.getdefaulttimeout(), or 0.0
    with SOCK_NONBLOCK.

    ValueError for another type, OSError (EAFNOSUPPORT) for a family other than AF_UNIX,
    AF_INET or AF_INET6; Linux pairs only AF_UNIX sockets (EOPNOTSUPP for the others).
    """
    cdef int fds[2]
    # converted first, in order, as in C
    cdef int fam = c.AF_UNIX if family is None else as_int(family)
    cdef int kind = as_int(type)
    cdef int cproto = as_int(proto)
    cdef double timeout
    cdef _Socket a, b
    cls = CLASSES.get((fam, kind & ~sock_type_flags)) or \
        CLASSES.get((-1, kind & ~sock_type_flags)) or \
        next((k for (_, t), k in CLASSES.items() if t == kind & ~sock_type_flags), None)
    if cls is None:
        raise ValueError("socketpair type must be SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET")
    if fam not in cls._FAMILIES:
        raise _common.unsupported_family(cls.__name__, cls._FAMILIES, fam)
    timeout = 0.0 if kind & c.SOCK_NONBLOCK else default_timeout()
    kind &= ~sock_type_flags
    if c.socketpair(fam, kind | c.SOCK_CLOEXEC | (c.SOCK_NONBLOCK if timeout >= 0 else 0),
                    cproto, fds) < 0:
        raise_errno(errno)
    pair = []
    try:
        for fd in (fds[0], fds[1]):
            sock = cls.__new__(cls)
            (<_Socket>sock)._adopt_fd(fd, fam, kind, cproto, timeout)
            pair.append(sock)
    except BaseException:  # MemoryError: close what no socket owns yet
        for fd in (fds[0], fds[1])[len(pair):]:
            c_close(fd)
        raise
    return tuple(pair)


# a function object of its own (binding): its default is a sentinel object,
# which a builtin's text signature cannot carry; it connects, so the cost of
# the call does not matter
@cython.binding(True)
def create_connection(address, timeout=_common.DEFAULT_TIMEOUT, source_address=None, *,
                      all_errors=False):
    """Connect a StreamSocket to ``(host, port)`` or to an AF_UNIX path, as
    socket.create_connection().

    Every address the host resolves to (IPv4, IPv6) is tried in turn; when all fail,
    the last error is raised, or with ``all_errors`` (Python 3.11+) an ExceptionGroup
    of them all.  ``timeout`` (default: socket.getdefaulttimeout()) bounds each
    attempt and stays set on the socket; ``source_address`` is bound before
    connecting (not for a path).
    """
    return _common.create_connection(StreamSocket, address, timeout, source_address,
                                     all_errors)


def create_server(address=None, *, family=AF_INET, backlog=None, reuse_port=False,
                  dualstack_ipv6=False):
    """A StreamSocket bound to ``address`` and listening, as socket.create_server().

    Without an address it listens on a free port of the loopback of ``family``
    (127.0.0.1 or ::1), never on every interface; an AF_UNIX server needs a path
    (ValueError).  SO_REUSEADDR is set, SO_REUSEPORT with ``reuse_port``; an AF_INET6
    server takes IPv6 only, or IPv4 too with ``dualstack_ipv6`` (ValueError where
    the system cannot).  A failed bind says the address, as the stdlib's.
    """
    return _common.create_server(StreamSocket, address, family, backlog, reuse_port,
                                 dualstack_ipv6)
