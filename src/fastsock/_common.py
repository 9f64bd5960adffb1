"""Pieces shared by both implementations, written once in plain Python.

Nothing here touches a socket's I/O: it formats, validates and composes the
public classes, so the compiled and the pure implementation behave the same
by construction.  The compiled module imports this one; never the reverse.
"""

from __future__ import annotations

import array
import errno
import fcntl
import functools
import math
import operator
import os
import stat
import struct
import sys
import socket as _stdlib
from typing import (Any, Callable, Iterable, Mapping, NamedTuple, Optional, Protocol, Tuple,
                    TypeVar, Union)

AF_INET: int = int(_stdlib.AF_INET)
AF_INET6: int = int(_stdlib.AF_INET6)
AF_UNIX: int = int(_stdlib.AF_UNIX)
SOCK_STREAM: int = int(_stdlib.SOCK_STREAM)
SOCK_DGRAM: int = int(_stdlib.SOCK_DGRAM)
SOCK_SEQPACKET: int = int(_stdlib.SOCK_SEQPACKET)

# vsock: the stdlib names it where its headers did (Linux); 40 is the kernel's
AF_VSOCK: int = int(getattr(_stdlib, "AF_VSOCK", 40))

SUPPORTED_FAMILIES: Tuple[int, ...] = (AF_INET, AF_INET6, AF_UNIX, AF_VSOCK)

_FAMILY_NAMES = {AF_INET: "AF_INET", AF_INET6: "AF_INET6", AF_UNIX: "AF_UNIX"}
_TYPE_NAMES = {SOCK_STREAM: "SOCK_STREAM", SOCK_DGRAM: "SOCK_DGRAM",
               SOCK_SEQPACKET: "SOCK_SEQPACKET"}

# The stdlib keeps a timeout as a signed 64-bit count of nanoseconds (rounded
# up) and refuses what does not fit, with the messages below; so do we.
_NS_LIMIT = 2**63
# the messages name the C type of the stdlib's clock, public (PyTime_t) from
# 3.13; an int that does not fit gets that message on every version, a float
# only before 3.11 (from 3.11 it is the time_t one)
_INT_TIMEOUT_OVERFLOW = "timestamp too large to convert to C " + (
    "PyTime_t" if sys.version_info >= (3, 13) else "_PyTime_t")
_FLOAT_TIMEOUT_OVERFLOW = (_INT_TIMEOUT_OVERFLOW if sys.version_info < (3, 11)
                           else "timestamp out of range for platform time_t")

Address = Union[Tuple[Any, ...], str, bytes]


def extension_was_built(package_dir: str) -> bool:
    """Whether the compiled module's file is in ``package_dir`` (for any
    interpreter): a package installed without it falls back to the pure
    implementation quietly, one whose extension fails to load says why."""
    import importlib.machinery
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return any(name.startswith("_socket_c.") and name.endswith(suffixes)
               for name in os.listdir(package_dir))


def family_name(family: int) -> str:
    """``AF_INET``, …: the stdlib's name of ``family``, or Linux's where the
    stdlib lacks it (AF_BLUETOOTH when built without its headers), or the number."""
    name = _FAMILY_NAMES.get(family)
    if name is None:
        member = _FAMILY_MEMBERS.get(family)
        name = member.name if member is not None else _LINUX_FAMILY_NAMES.get(family)
    return name if name is not None else str(family)


def type_name(kind: int) -> str:
    name = _TYPE_NAMES.get(kind)
    if name is None:
        member = _KIND_MEMBERS.get(kind)
        name = member.name if member is not None else str(kind)
    return name


# what family and type report, as the stdlib's: the enum member when there is
# one, else the plain int (a dict lookup: the enum's own call costs more)
_FAMILY_MEMBERS: dict[int, Any] = {int(member): member for member in _stdlib.AddressFamily}
_KIND_MEMBERS: dict[int, Any] = {int(member): member for member in _stdlib.SocketKind}

# flags the stdlib accepts or'ed into a socket's type (never part of what type reports)
SOCK_NONBLOCK: int = int(getattr(_stdlib, "SOCK_NONBLOCK", 0))
SOCK_CLOEXEC: int = int(getattr(_stdlib, "SOCK_CLOEXEC", 0))
SOCK_TYPE_FLAGS: int = SOCK_NONBLOCK | SOCK_CLOEXEC


def family_member(family: int) -> Any:
    """``socket.AddressFamily(family)``, or ``family`` when it has no member."""
    return _FAMILY_MEMBERS.get(family, family)


def kind_member(kind: int) -> Any:
    """``socket.SocketKind(kind)``, or ``kind`` when it has no member."""
    return _KIND_MEMBERS.get(kind, kind)


def base_class_called() -> TypeError:
    """SocketType() itself: the common base makes no socket of its own."""
    return TypeError("SocketType is the base class of fastsock's sockets and makes none "
                     "itself: call fastsock.socket() or a class such as StreamSocket")


def wrong_kind(cls_name: str, wanted: int, kind: int) -> ValueError:
    """The error of a constructor given a socket type its class does not wrap."""
    other = {SOCK_STREAM: "StreamSocket", SOCK_DGRAM: "DatagramSocket",
             SOCK_SEQPACKET: "SeqPacketSocket"}.get(kind)
    hint = f": {other} wraps those" if other else ""
    return ValueError(f"{cls_name} wraps {type_name(wanted)} sockets, "
                      f"not {type_name(kind)}{hint}")


def wrong_descriptor(cls_name: str, fd: int, family: int, kind: int) -> ValueError:
    """The error of adopting a descriptor that is not what the class wraps."""
    return ValueError(f"fd {fd} is a {family_name(family)} {type_name(kind)} socket, "
                      f"not what {cls_name} wraps")


def mismatched_fileno(fd: int, what: str, given: int, real: int) -> ValueError:
    """The error of a constructor whose family or type contradicts its ``fileno``."""
    name = family_name if what == "family" else type_name
    return ValueError(f"fd {fd} is {name(real)}, not {name(given)} as the {what} "
                      f"argument says")


# -- families and kinds beyond IP and Unix: vsock, raw IP ---------------------

# Linux families the stdlib may have no name for (it names only those its
# build's headers had); for error messages
_LINUX_FAMILY_NAMES = {29: "AF_CAN", 31: "AF_BLUETOOTH", 40: "AF_VSOCK"}

# vsock addresses: the stdlib has VMADDR_CID_ANY, VMADDR_CID_HOST and
# VMADDR_PORT_ANY but not (3.11) VMADDR_CID_LOCAL, the kernel's 1 (loopback)
VMADDR_CID_LOCAL: int = int(getattr(_stdlib, "VMADDR_CID_LOCAL", 1))

SOCK_RAW: int = int(_stdlib.SOCK_RAW)
RAW_FAMILIES: Tuple[int, ...] = (AF_INET, AF_INET6)
# what a raw socket carries when no protocol is given: ICMP (IPv4) or ICMPv6;
# the stdlib's 0 is refused by the kernel for raw IP sockets
RAW_DEFAULT_PROTOS = {AF_INET: int(_stdlib.IPPROTO_ICMP), AF_INET6: int(_stdlib.IPPROTO_ICMPV6)}


def unsupported_family(cls_name: str, families: Tuple[int, ...], family: int) -> OSError:
    """The error of a constructor given a family its class does not take:
    EAFNOSUPPORT, as the kernel's for a family it lacks, naming the family."""
    taken = ", ".join(family_name(each) for each in families)
    return OSError(errno.EAFNOSUPPORT,
                   f"{os.strerror(errno.EAFNOSUPPORT)}: {cls_name} takes {taken}, "
                   f"not {family_name(family)}")


def open_error(err: int, family: int, kind: int) -> OSError:
    """The error of socket(2) for a new socket, with the family and type named
    where the errno alone does not say what is missing (a family or transport
    the kernel lacks, the privilege a raw socket needs); the errno, and so the
    OSError subclass, is the kernel's.  Other errors (a protocol the family
    lacks, EMFILE, …) keep the stdlib's message."""
    what = f"{family_name(family)} {type_name(kind)}"
    if err == errno.EAFNOSUPPORT:
        hint = f"the kernel has no {what} sockets"
    elif err == errno.ENODEV:
        hint = f"the kernel has no transport for {what} sockets"
    elif err in (errno.EPERM, errno.EACCES) and kind == SOCK_RAW:
        hint = f"{what} sockets need the CAP_NET_RAW capability"
    else:
        return OSError(err, os.strerror(err))
    return OSError(err, f"{os.strerror(err)}: {hint}")


def normalize_timeout(value: object) -> float:
    """Return the timeout in seconds, or -1.0 for None (block forever).

    Validation and messages follow ``socket.settimeout``.
    """
    if value is None:
        return -1.0
    if isinstance(value, float):
        seconds = value
    else:
        try:
            whole: int = value.__index__()  # type: ignore[attr-defined]
        except AttributeError:
            raise TypeError(
                f"'{type(value).__name__}' object cannot be interpreted as an integer"
            ) from None
        if not -_NS_LIMIT <= whole * 1_000_000_000 < _NS_LIMIT:
            raise OverflowError(_INT_TIMEOUT_OVERFLOW)
        seconds = float(whole)
    if math.isnan(seconds):
        raise ValueError("Invalid value NaN (not a number)")
    # as the stdlib: first whole nanoseconds (rounded away from zero) that
    # must fit 64 bits, then the sign
    ns = seconds * 1e9
    if math.isinf(ns) or not -_NS_LIMIT <= (math.ceil(ns) if ns >= 0 else math.floor(ns)) \
            < _NS_LIMIT:
        raise OverflowError(_FLOAT_TIMEOUT_OVERFLOW)
    if seconds < 0:
        raise ValueError("Timeout value out of range")
    return seconds


def stored_timeout(seconds: float) -> float:
    """A normalized timeout as the stdlib keeps it, so that gettimeout()
    returns what the stdlib's would: whole nanoseconds, rounded up (a
    positive timeout never becomes 0), read back as seconds."""
    if seconds <= 0.0:
        return seconds
    ns = math.ceil(seconds * 1e9)
    if ns % 1_000_000_000 == 0:
        return float(ns // 1_000_000_000)
    return ns / 1e9


def socket_repr(sock: Any) -> str:
    """``<fastsock.StreamSocket fd=5, family=AF_INET, type=SOCK_STREAM, laddr=…>``."""
    name = f"fastsock.{type(sock).__name__}"
    fd = sock.fileno()
    head = f"<{name}{' [closed]' if fd == -1 else ''} fd={fd}, " \
           f"family={family_name(sock.family)}, type={type_name(sock.type)}"
    if fd != -1:
        for label, getter in (("laddr", sock.getsockname), ("raddr", sock.getpeername)):
            try:
                addr = getter()
            except OSError:
                continue
            if addr not in ("", None):
                head += f", {label}={addr!r}"
    return head + ">"


def note_written(exc: Any, count: int) -> None:
    """A send that stopped part-way (BlockingIOError on a full non-blocking
    socket, TimeoutError at its deadline) says how many bytes went out, the
    io module's way: ``exc.characters_written``; the caller can resume there."""
    exc.characters_written = count


def check_adoptable(sock: object) -> None:
    """What from_socket() takes: a stdlib socket, and not a TLS one (writing
    plaintext onto a TLS connection is never right)."""
    if not isinstance(sock, _stdlib.socket):
        raise TypeError(f"expected a socket.socket, not {type(sock).__name__}")
    ssl = sys.modules.get("ssl")  # loaded if sock can be an SSLSocket at all
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("from_socket() refuses an ssl.SSLSocket: its bytes are TLS "
                        "records; keep using the SSLSocket")


def stdlib_socket_for(fd: int, family: int, kind: int, proto: int,
                      timeout: Optional[float]) -> _stdlib.socket:
    """A stdlib socket that owns ``fd`` (closed if making it fails), with the
    socket's protocol number: asyncio turns TCP_NODELAY on only for a socket
    whose ``proto`` is IPPROTO_TCP."""
    try:
        sock = _stdlib.socket(family, kind, proto, fileno=fd)
    except BaseException:
        os.close(fd)
        raise
    sock.settimeout(timeout)
    return sock


def readable_view(data: Any) -> memoryview:
    """A flat unsigned-byte view of a bytes-like object, refused the way the
    buffer protocol refuses it in C (the compiled module's and the stdlib's
    errors): TypeError for a non-buffer, BufferError for a non-contiguous one."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"a bytes-like object is required, not '{type(data).__name__}'") from None
    if not view.c_contiguous:
        view.release()
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def unix_path_bytes(path: object) -> bytes:
    """Encode an AF_UNIX address the way the stdlib does, refusing embedded NULs.

    The stdlib binds a silently truncated path when a NUL follows the first
    byte; we refuse.  A leading NUL (a Linux abstract name) is allowed.
    """
    if isinstance(path, str):
        raw = os.fsencode(path)
    elif isinstance(path, os.PathLike):
        raw = os.fsencode(path)
    else:
        try:
            raw = bytes(memoryview(path))  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                f"a bytes-like object is required, not '{type(path).__name__}'"
            ) from None
    if b"\0" in raw[1:]:
        raise ValueError("AF_UNIX path must not contain a null byte after the first")
    return raw


def socket_class(classes: Mapping[Tuple[int, int], Any], family: int, kind: int,
                 fileno: Any) -> Any:
    """The class ``socket(family, type, proto, fileno)`` makes, from a twin's
    ``CLASSES`` (``(family, type)`` -> class; family -1: any family): by the
    arguments, or (-1) by what the socket ``fileno`` is."""
    if fileno is not None and (kind == -1 or family == -1):
        probe = _stdlib.socket(-1, -1, -1, fileno)  # the stdlib's checks of fileno
        if kind == -1:
            kind = probe.type
        if family == -1:
            family = probe.family
        probe.detach()
    if kind == -1:
        kind = SOCK_STREAM
    kind &= ~SOCK_TYPE_FLAGS
    cls = classes.get((family, kind)) or classes.get((-1, kind))
    if cls is None:
        raise ValueError(f"fastsock has no socket class for {family_name(family)} "
                         f"type {type_name(kind)}")
    return cls


class _Socketlike(Protocol):
    def settimeout(self, value: Optional[float]) -> None: ...
    def bind(self, address: Any) -> None: ...
    def connect(self, address: Any) -> None: ...
    def setsockopt(self, level: int, optname: int, value: Any) -> None: ...
    def listen(self, backlog: int = ...) -> None: ...
    def close(self) -> None: ...


S = TypeVar("S", bound=_Socketlike)

# the stdlib's "no timeout given" marker, so that a caller passing it on
# (http.client does) gets the stdlib's meaning: the default timeout
DEFAULT_TIMEOUT: Any = getattr(_stdlib, "_GLOBAL_DEFAULT_TIMEOUT", object())


def create_connection(
    stream_class: Callable[[int, int, int], S],
    address: Any,
    timeout: Any,
    source_address: Any,
    all_errors: bool,
) -> S:
    """Connect to ``address``, trying every address the resolver returns, in
    the stdlib's steps; an AF_UNIX path connects to that path."""
    if all_errors and sys.version_info < (3, 11):
        raise TypeError("all_errors needs Python 3.11 or later (ExceptionGroup)")
    if isinstance(address, (str, bytes, os.PathLike)):
        sock = stream_class(AF_UNIX, SOCK_STREAM, 0)
        try:
            if timeout is not DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
    host, port = address
    errors: list[Exception] = []
    for family, kind, proto, _, sockaddr in _resolve(host, port):
        sock = stream_class(family, kind, proto)
        try:
            if timeout is not DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            if not all_errors:
                errors.clear()  # the last error is the one raised, as by the stdlib
            errors.append(exc)
        except BaseException:
            sock.close()
            raise
    if not errors:
        raise OSError("getaddrinfo returns an empty list")
    try:
        if not all_errors:
            raise errors[0]
        raise ExceptionGroup(  # type: ignore[name-defined,unused-ignore]  # noqa: F821
            "create_connection failed", errors)
    finally:
        errors = []  # break the traceback -> frame -> errors cycle


def _resolve(host: Any, port: Any) -> Iterable[Tuple[Any, ...]]:
    infos = _stdlib.getaddrinfo(host, port, 0, SOCK_STREAM)
    return [info for info in infos if info[0] in SUPPORTED_FAMILIES]


def create_server(
    stream_class: Callable[[int, int, int], S],
    address: Any,
    family: int,
    backlog: Optional[int],
    reuse_port: bool,
    dualstack_ipv6: bool,
) -> S:
    """A listening stream socket, in the stdlib's steps; loopback of ``family``
    when no address is given."""
    if reuse_port and not hasattr(_stdlib, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6:
        if not _stdlib.has_dualstack_ipv6():
            raise ValueError("dualstack_ipv6 not supported on this platform")
        if family != AF_INET6:
            raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    if address is None:
        if family == AF_UNIX:
            raise ValueError("an AF_UNIX server needs a path")
        address = ("::1", 0) if family == AF_INET6 else ("127.0.0.1", 0)
    sock = stream_class(family, SOCK_STREAM, 0)
    try:
        try:
            sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEADDR, 1)
        except OSError:
            pass  # as the stdlib: a family without it binds all the same
        if reuse_port:
            sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEPORT, 1)
        if family == AF_INET6:
            sock.setsockopt(_stdlib.IPPROTO_IPV6, _stdlib.IPV6_V6ONLY,
                            0 if dualstack_ipv6 else 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno is None:
                raise
            raise OSError(exc.errno, f"{exc.strerror} (while attempting to bind on "
                                     f"address {address!r})") from None
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


# -- exceptions of the stream fast paths (raised by both implementations) ------


class IncompleteReadError(EOFError):
    """The peer closed the stream before a read was complete.

    ``partial`` holds the bytes that did arrive (they are consumed);
    ``expected`` is the number of bytes asked for, or None when reading up to
    a delimiter.
    """

    def __init__(self, partial: bytes, expected: Optional[int]) -> None:
        wanted = "undefined" if expected is None else str(expected)
        super().__init__(f"{len(partial)} bytes read on a total of {wanted} expected bytes")
        self.partial = partial
        self.expected = expected

    def __reduce__(self) -> Any:
        return type(self), (self.partial, self.expected)


class LimitOverrunError(Exception):
    """No delimiter within ``limit`` bytes; the data stays buffered.

    ``consumed`` is how many bytes are buffered and still to be read.
    """

    def __init__(self, message: str, consumed: int) -> None:
        super().__init__(message)
        self.consumed = consumed

    def __reduce__(self) -> Any:
        return type(self), (self.args[0], self.consumed)


class MessageTooLargeError(ValueError):
    """A length prefix announced more than ``max_size`` bytes.

    Raised before anything is allocated; the prefix stays buffered, so the
    stream is still positioned at that message (close the connection: a peer
    that sends it is broken or hostile).
    """

    def __init__(self, size: int, max_size: int) -> None:
        super().__init__(f"message of {size} bytes exceeds max_size={max_size}")
        self.size = size
        self.max_size = max_size

    def __reduce__(self) -> Any:
        return type(self), (self.size, self.max_size)


DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
PREFIX_SIZES = (1, 2, 4, 8)


def sendfile_plan(file: Any, offset: Any, count: Any) -> Tuple[int, int, int, bool]:
    """Validate sendfile()'s arguments: (descriptor, start offset, byte count,
    whether the descriptor can seek).

    Without ``count`` a regular file is sent from ``offset`` to its end and
    anything else until it reports EOF.  A descriptor that cannot seek (a
    pipe, a FIFO, a socket) is read from where it is: ``offset`` must be 0.
    """
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        raise TypeError(
            f"sendfile() needs a file object with fileno(), not {type(file).__name__}")
    readable = getattr(file, "readable", None)
    if readable is not None and not readable():
        raise ValueError("sendfile() needs a file opened for reading")
    fd = fileno()
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
        raise ValueError("sendfile() needs a file opened for reading")
    start = operator.index(offset)
    if start < 0:
        raise ValueError("offset must not be negative")
    if count is None:
        info = os.fstat(fd)
        want = max(info.st_size - start, 0) if stat.S_ISREG(info.st_mode) else sys.maxsize
    else:
        want = operator.index(count)
        if want < 0:
            raise ValueError("count must not be negative")
    seekable = _can_seek(fd)
    if start and not seekable:
        raise ValueError("offset must be 0 for a file that cannot seek "
                         "(a pipe, a FIFO, a socket): it is read from where it is")
    return fd, start, want, seekable


def _can_seek(fd: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_CUR)
    except OSError as exc:
        if exc.errno == errno.ESPIPE:
            return False
        raise
    return True


# -- sizes, option numbers and errno sets both twins use --------------------------
# (the compiled module reads them at import: each is defined here only)

# the most one sendfile() moves in a call (Linux's own limit)
SENDFILE_CHUNK = 0x7FFFF000
# the read size of sendfile()'s read/send loop, for descriptors the kernel
# cannot sendfile() from
SENDFILE_READ_CHUNK = 65536
# sendfile() failures that mean "not with this pair of descriptors": the bytes
# then go through the read/send loop
SENDFILE_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.ESPIPE, errno.EOPNOTSUPP})
# once a receive call has returned, a stream socket's receive buffer that
# holds less than a quarter of this keeps at most this much memory
# (docs/stream-fast-paths.md, "Memory")
RECV_BUFFER_KEEP = 256 * 1024

SOL_UDP = 17
UDP_SEGMENT_OPT = 103  # <netinet/udp.h> UDP_SEGMENT
UDP_GRO_OPT = 104  # <netinet/udp.h> UDP_GRO
# the most segments one UDP_SEGMENT send may carry (the kernel's UDP_MAX_SEGMENTS)
GSO_MAX_SEGMENTS = 64
# a UDP_SEGMENT send failing with one of these means "not here" (e.g. a
# segment larger than the path MTU): the rest goes out one datagram at a time
GSO_REFUSED = frozenset({errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP})
MAX_UDP_PAYLOAD = 65507
MAX_SLOT_SIZE = 65536

# fastsock.aio's streams (both cores)
AIO_DEFAULT_LIMIT = 2 ** 16  # asyncio's
AIO_HIGH_WATER = 64 * 1024  # asyncio's transport defaults
AIO_SEND_CHUNK = 256 * 1024
# what read_msg() splits per receive and hands out one per call, so that a
# call is a list pop, not a socket call: a batch bounded in count and in bytes
# (whatever the frames' sizes, what is held ahead stays small)
AIO_READ_AHEAD_FRAMES = 256
AIO_READ_AHEAD_BYTES = 64 * 1024


def _probe_udp_option(option: int) -> bool:
    """Whether this kernel knows a UDP socket option (a getsockopt probe)."""
    try:
        with _stdlib.socket(AF_INET, SOCK_DGRAM) as probe:
            probe.getsockopt(SOL_UDP, option)
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def udp_gso_available() -> bool:
    """Whether the kernel has UDP GSO (probed once, on first use)."""
    return _probe_udp_option(UDP_SEGMENT_OPT)


@functools.lru_cache(maxsize=None)
def udp_gro_available() -> bool:
    """Whether the kernel has UDP GRO (probed once, on first use)."""
    return _probe_udp_option(UDP_GRO_OPT)


# UDP_GSO and UDP_GRO are probed when first read, not at import (PEP 562)
UDP_GSO: bool
UDP_GRO: bool
_LAZY = {"UDP_GSO": udp_gso_available, "UDP_GRO": udp_gro_available}


def __getattr__(name: str) -> Any:
    probe = _LAZY.get(name)
    if probe is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return probe()


class TruncatedDatagramError(ValueError):
    """A datagram was longer than the room given for it.

    ``messages`` holds everything the call received (the truncated data
    included), ``truncated`` the indices of the cut ones: nothing is lost.
    """

    def __init__(self, messages: list[Any], truncated: list[int]) -> None:
        super().__init__(
            f"{len(truncated)} of {len(messages)} datagrams were longer than the buffer")
        self.messages = messages
        self.truncated = truncated

    def __reduce__(self) -> Any:
        return type(self), (self.messages, self.truncated)


class TruncatedRecordError(TruncatedDatagramError):
    """A SOCK_SEQPACKET record was longer than the room given for it.

    As TruncatedDatagramError: ``messages`` holds every record the call received
    (bytes; the long ones cut to the room), ``truncated`` the indices of the cut
    ones, and ``lengths`` the real length of each record: nothing is lost silently.
    """

    def __init__(self, messages: list[Any], truncated: list[int],
                 lengths: list[int]) -> None:
        ValueError.__init__(
            self, f"{len(truncated)} of {len(messages)} records were longer than the buffer")
        self.messages = messages
        self.truncated = truncated
        self.lengths = lengths

    def __reduce__(self) -> Any:
        return type(self), (self.messages, self.truncated, self.lengths)


# the largest record recv_record() takes room for (a record is bounded by the
# sender's SO_SNDBUF, which the kernel caps at INT_MAX)
MAX_RECORD_SIZE = 2**31 - 1
END_OF_RECORDS = "the connection has ended: no record will come"


def iter_segments(data: Any, segment_size: int) -> Any:
    """The datagrams of a coalesced GRO buffer, as memoryviews."""
    size = operator.index(segment_size)
    if size <= 0:
        raise ValueError("segment_size must be positive")
    view = memoryview(data).cast("B")
    return (view[start:start + size] for start in range(0, len(view), size))


def check_size(value: Any, name: str, maximum: int) -> int:
    """A positive size no larger than ``maximum``, or ValueError."""
    size = operator.index(value)
    if size <= 0:
        raise ValueError(f"{name} must be positive")
    if size > maximum:
        raise ValueError(f"{name} must be at most {maximum}")
    return size


def set_file_position(file: Any, fd: int, position: int) -> None:
    """After sendfile() from a file that can seek: the file's position is
    where sending stopped."""
    seek = getattr(file, "seek", None)
    if seek is not None:
        seek(position)
    else:
        os.lseek(fd, position, os.SEEK_SET)


# -- ancillary data and descriptor passing -----------------------------------------
# (docs/messages.md)

SOL_SOCKET: int = int(_stdlib.SOL_SOCKET)
SCM_RIGHTS: int = int(_stdlib.SCM_RIGHTS)
# every receive of ancillary data asks for it: a received descriptor is
# close-on-exec from the start, so a fork+exec in another thread never
# inherits it; the kernel echoes the flag in msg_flags, which is masked out
# unless the caller asked for it
MSG_CMSG_CLOEXEC: int = int(_stdlib.MSG_CMSG_CLOEXEC)
# the stdlib's message for ancillary data it cannot parse (it warns, then
# stops parsing there)
MALFORMED_ANCILLARY = "received malformed or improperly-truncated ancillary data"
FD_SIZE = array.array("i").itemsize


def fds_ancbufsize(maxfds: Any) -> int:
    """The control buffer recv_fds() asks for, with the stdlib's arithmetic
    and errors: CMSG_LEN(maxfds * sizeof(int))."""
    return int(_stdlib.CMSG_LEN(maxfds * FD_SIZE))


def fds_item(fds: Any) -> Tuple[int, int, "array.array[int]"]:
    """The SCM_RIGHTS ancillary data item that sends ``fds``, refused with
    the stdlib's errors (array.array("i", fds))."""
    return (SOL_SOCKET, SCM_RIGHTS, array.array("i", fds))


def received_fds(ancdata: Iterable[Tuple[int, int, bytes]]) -> list[int]:
    """The descriptors in the SCM_RIGHTS items of received ancillary data
    (whole ints only, as the stdlib's recv_fds)."""
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % FD_SIZE])
    return fds.tolist()


def close_received(ancdata: Iterable[Tuple[int, int, bytes]]) -> None:
    """Close every descriptor that received ancillary data holds: on a path
    that cannot hand them to the caller (which may be a MemoryError: this
    builds nothing it can do without), so that none leaks."""
    for level, kind, data in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            for start in range(0, len(data) - FD_SIZE + 1, FD_SIZE):
                try:
                    os.close(int.from_bytes(data[start:start + FD_SIZE], sys.byteorder,
                                            signed=True))
                except OSError:  # EBADF cannot happen: each was just received
                    pass


def _fds_method(sock: Any, name: str) -> Any:
    """The method ``name`` of a fastsock socket (a stdlib socket has none)."""
    try:
        return getattr(sock, name)
    except AttributeError:
        raise TypeError(f"{name}() argument 'sock' must be a fastsock StreamSocket or "
                        f"DatagramSocket, not {type(sock).__name__}") from None


def send_fds(sock: Any, buffers: Iterable[Any], fds: Iterable[int], flags: int = 0,
             address: Any = None) -> int:
    """Send the descriptors ``fds`` (SCM_RIGHTS) with the bytes of ``buffers`` over an
    AF_UNIX socket and return the bytes sent, as socket.send_fds(): for a fastsock
    socket ``sock.send_fds(buffers, fds, flags, address)``, for a stdlib one its
    ``sendmsg``.  ``flags`` and ``address`` are used (the stdlib's own ignores them in
    some versions).  TypeError for an object that is no socket.
    """
    if isinstance(sock, _stdlib.socket):
        rights = [(_stdlib.SOL_SOCKET, _stdlib.SCM_RIGHTS, array.array("i", fds))]
        if address is None:
            return sock.sendmsg(buffers, rights, flags)
        return sock.sendmsg(buffers, rights, flags, address)
    return _fds_method(sock, "send_fds")(  # type: ignore[no-any-return]
        buffers, fds, flags, address)


def recv_fds(sock: Any, bufsize: int, maxfds: int,
             flags: int = 0) -> Tuple[bytes, list[int], int, Any]:
    """Receive up to ``bufsize`` bytes and up to ``maxfds`` descriptors from an AF_UNIX
    socket and return ``(data, fds, msg_flags, address)``, as socket.recv_fds(): for a
    fastsock socket ``sock.recv_fds(bufsize, maxfds, flags)``, for a stdlib one its
    ``recvmsg``.  The descriptors are close-on-exec either way (the stdlib's own
    leaves them inheritable); ``flags`` is used.  TypeError for an object that is no
    socket.
    """
    if isinstance(sock, _stdlib.socket):
        return _recv_fds_stdlib(sock, bufsize, maxfds, flags)
    return _fds_method(sock, "recv_fds")(  # type: ignore[no-any-return]
        bufsize, maxfds, flags)


def _recv_fds_stdlib(sock: _stdlib.socket, bufsize: int, maxfds: int,
                     flags: int) -> Tuple[bytes, list[int], int, Any]:
    cloexec = _stdlib.MSG_CMSG_CLOEXEC
    data, ancillary, msg_flags, address = sock.recvmsg(
        bufsize, _stdlib.CMSG_LEN(maxfds * array.array("i").itemsize), flags | cloexec)
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == _stdlib.SOL_SOCKET and kind == _stdlib.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    if not flags & cloexec:
        msg_flags &= ~cloexec  # the kernel echoes it: report what the caller asked
    return data, list(fds), msg_flags, address


# -- netlink (NetlinkSocket: _netlink_c.pxi, _netlink_py.py) -------------------------

AF_NETLINK: int = int(_stdlib.AF_NETLINK)
NETLINK_FAMILIES: Tuple[int, ...] = (AF_NETLINK,)

# <linux/netlink.h>, <linux/sock_diag.h>: what a request and its reply are made of
NETLINK_SOCK_DIAG = 4
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_HDRLEN = 16
# the first receive buffer of a reply: more than the 32 KiB the kernel puts in
# one dump datagram at most; a larger single message grows it (peeked size)
NETLINK_RECV_SIZE = 65536


def malformed_netlink(offset: int, length: int, left: int) -> ValueError:
    """The error of a buffer of netlink messages whose header at ``offset``
    (``length``: its nlmsg_len, -1 when no header fits) does not fit the
    ``left`` bytes that remain, or is shorter than a header."""
    if length < 0:
        return ValueError(f"netlink buffer ends with {left} bytes at offset {offset}, "
                          f"too few for a message header")
    if length < NLMSG_HDRLEN:
        return ValueError(f"netlink message at offset {offset} has length {length}, "
                          f"less than its {NLMSG_HDRLEN}-byte header")
    return ValueError(f"netlink message at offset {offset} has length {length}, "
                      f"but only {left} bytes are left")


def netlink_error(error: int) -> OSError:
    """The OSError of an NLMSG_ERROR (or a failed dump's NLMSG_DONE) whose
    error field is ``error`` (the kernel's negative errno)."""
    code = -error if error < 0 else error
    try:
        text = os.strerror(code)
    except (ValueError, OverflowError):  # beyond what strerror() takes
        text = f"netlink error {error}"
    return OSError(code, text)


def short_netlink_error(kind: int, length: int) -> ValueError:
    """The error of an NLMSG_ERROR or NLMSG_DONE too short for its error field."""
    return ValueError(f"netlink message of type {kind} has a {length}-byte payload, "
                      f"too short for its error code")


def netlink_attributes(data: Any, offset: int = 0) -> dict[int, bytes]:
    """The attributes (struct rtattr / nlattr: length, type, value, 4-byte aligned)
    of ``data`` from ``offset`` on (after the fixed header of the message family,
    e.g. 12 bytes of struct rtmsg, 16 of struct ifinfomsg), as ``{type: value}``
    with the flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER) masked off the type; a
    repeated type keeps its last value.  ValueError when an attribute's length does
    not fit the data.
    """
    raw = data if type(data) is bytes else bytes(memoryview(data).cast("B"))
    unpack = _RTATTR.unpack_from
    attributes: dict[int, bytes] = {}
    end = len(raw)
    offset = operator.index(offset)
    if offset < 0:
        raise ValueError("negative offset")
    while end - offset >= 4:
        length, kind = unpack(raw, offset)
        if length < 4 or length > end - offset:
            raise ValueError(f"netlink attribute at offset {offset} has length {length}, "
                             f"{end - offset} bytes left")
        attributes[kind & 0x3FFF] = raw[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return attributes


_RTATTR = struct.Struct("=HH")


class NetlinkMessage(NamedTuple):
    """One netlink message: its header's type, flags, sequence number and port id
    (nlmsg_type, nlmsg_flags, nlmsg_seq, nlmsg_pid), and the bytes after the header
    (``payload``, without the header and the padding after the message).
    """

    type: int
    flags: int
    seq: int
    pid: int
    payload: bytes


def check_netlink_request(msg_type: Any, flags: Any, payload_size: int) -> Tuple[int, int]:
    """The message type and flags of a request as header fields (16 bits each),
    and the payload's size checked against the 32-bit message length."""
    kind, bits = operator.index(msg_type), operator.index(flags)
    if not 0 <= kind <= 0xFFFF:
        raise ValueError(f"netlink message type must be 0-65535, not {kind}")
    if not 0 <= bits <= 0xFFFF:
        raise ValueError(f"netlink message flags must be 0-65535, not {bits}")
    if payload_size > 0xFFFFFFFF - NLMSG_HDRLEN:
        raise ValueError("netlink message payload too large")
    return kind, bits


def netlink_busy() -> RuntimeError:
    """The error of a second receive of netlink messages on one socket at a time:
    the two would take each other's replies."""
    return RuntimeError("another call is receiving netlink messages on this socket")


def netlink_truncated(size: int) -> OSError:
    """A datagram larger than the buffer its peeked size grew: another reader
    took the peeked one, and this one lost its end."""
    return OSError(errno.EMSGSIZE, f"netlink datagram of {size} bytes truncated")
