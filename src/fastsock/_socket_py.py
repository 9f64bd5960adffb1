"""The pure-Python implementation: the same classes and behaviour as the
compiled one, built on the stdlib ``socket`` module.

It is used when ``FASTSOCK_NO_EXTENSIONS=1`` is set or the extension cannot
be imported, and it is the reference the compiled module is tested against
(and the typed one).  Split the way the compiled source is, one module per
concern: _base_py (the base socket and its call guard), _stream_py,
_datagram_py, _netlink_py.  It never imports the compiled module.
"""

from __future__ import annotations

import os
import socket as _stdlib
from operator import index as _index
from typing import Any, Final, Literal, Optional, Tuple, overload

from . import _common, _names
from ._base_py import _c_int, _check_family, _Socket
# re-exported, written as "X as X" so type checkers see the export
from ._common import (
    IncompleteReadError as IncompleteReadError,
    LimitOverrunError as LimitOverrunError,
    MessageTooLargeError as MessageTooLargeError,
    TruncatedDatagramError as TruncatedDatagramError,
    TruncatedRecordError as TruncatedRecordError,
    VMADDR_CID_LOCAL as VMADDR_CID_LOCAL,
    iter_segments as iter_segments,
    recv_fds as recv_fds,
    send_fds as send_fds,
)
from ._common import (  # netlink
    NETLINK_SOCK_DIAG as NETLINK_SOCK_DIAG,
    NLM_F_ACK as NLM_F_ACK,
    NLM_F_DUMP as NLM_F_DUMP,
    NLM_F_MULTI as NLM_F_MULTI,
    NLM_F_REQUEST as NLM_F_REQUEST,
    NLMSG_DONE as NLMSG_DONE,
    NLMSG_ERROR as NLMSG_ERROR,
    NLMSG_NOOP as NLMSG_NOOP,
    NetlinkMessage as NetlinkMessage,
    netlink_attributes as netlink_attributes,
)
from ._datagram_py import DatagramBatch as DatagramBatch, DatagramSocket as DatagramSocket
from ._datagram_py import RawSocket as RawSocket
from ._netlink_py import NetlinkSocket as NetlinkSocket
from ._seqpacket_py import SeqPacketSocket as SeqPacketSocket
from ._stream_py import StreamSocket as StreamSocket

__all__ = list(_names.TWIN_NAMES)

IMPLEMENTATION = "python"

# the stdlib's own objects (enum members), as the stdlib's code compares them
AF_INET: Final = _stdlib.AF_INET
AF_INET6: Final = _stdlib.AF_INET6
AF_UNIX: Final = _stdlib.AF_UNIX
SOCK_STREAM: Final = _stdlib.SOCK_STREAM
SOCK_DGRAM: Final = _stdlib.SOCK_DGRAM
SOCK_SEQPACKET: Final = _stdlib.SOCK_SEQPACKET
SHUT_RD: Final = _stdlib.SHUT_RD
SHUT_WR: Final = _stdlib.SHUT_WR
SHUT_RDWR: Final = _stdlib.SHUT_RDWR


SocketType = _Socket  # what every class is, as socket.SocketType for the stdlib's

# the class of each (family, type) socket() and socketpair() make; family -1: any
CLASSES: dict[Tuple[int, int], Any] = {
    (-1, SOCK_STREAM): StreamSocket,
    (-1, SOCK_DGRAM): DatagramSocket,
    # raw IP; a family with a class of its own for SOCK_RAW has its own entry
    (-1, _common.SOCK_RAW): RawSocket,
    (AF_UNIX, SOCK_SEQPACKET): SeqPacketSocket,
}
# netlink
CLASSES[_common.AF_NETLINK, _common.SOCK_RAW] = NetlinkSocket
CLASSES[_common.AF_NETLINK, _common.SOCK_DGRAM] = NetlinkSocket


@overload
def socket(family: int = -1, type: Literal[_stdlib.SocketKind.SOCK_STREAM, -1] = -1,
           proto: int = -1, fileno: None = None) -> StreamSocket: ...
@overload
def socket(family: int, type: Literal[_stdlib.SocketKind.SOCK_DGRAM], proto: int = -1,
           fileno: None = None) -> DatagramSocket: ...
@overload
def socket(family: int, type: Literal[_stdlib.SocketKind.SOCK_RAW], proto: int = -1,
           fileno: None = None) -> RawSocket: ...
@overload
def socket(family: int, type: Literal[_stdlib.SocketKind.SOCK_SEQPACKET], proto: int = -1,
           fileno: None = None) -> SeqPacketSocket: ...
@overload
def socket(family: int = -1, type: int = -1, proto: int = -1,
           fileno: Optional[int] = None) -> StreamSocket | DatagramSocket | SeqPacketSocket: ...
def socket(family: int = -1, type: int = -1, proto: int = -1,
           fileno: Optional[int] = None) -> StreamSocket | DatagramSocket | SeqPacketSocket:
    """socket.socket()'s arguments, fastsock's classes: a StreamSocket for SOCK_STREAM
    (the default), a DatagramSocket for SOCK_DGRAM, a RawSocket for SOCK_RAW (AF_INET,
    AF_INET6; ICMP or ICMPv6 when no protocol is given), a SeqPacketSocket for AF_UNIX
    SOCK_SEQPACKET, ValueError for another type.  With ``fileno`` and no type, the
    descriptor's own type decides.  A family the class does not take, or the kernel
    lacks, raises OSError (EAFNOSUPPORT) naming it.
    """
    kind = _c_int(type)
    cls = _common.socket_class(CLASSES, _c_int(family), kind, fileno)
    made: StreamSocket | DatagramSocket | SeqPacketSocket = cls(family, kind, proto, fileno)
    return made


def fromfd(fd: int, family: int, type: int,
           proto: int = 0) -> StreamSocket | DatagramSocket | SeqPacketSocket:
    """A socket on a duplicate of descriptor ``fd`` (not inheritable), as
    socket.fromfd(); ``fd`` stays the caller's.
    """
    duplicate = os.dup(_index(fd))
    try:
        return socket(family, type, proto, duplicate)
    except BaseException:
        os.close(duplicate)
        raise


_AnyPair = Tuple[StreamSocket, StreamSocket] | Tuple[DatagramSocket, DatagramSocket] | \
    Tuple[SeqPacketSocket, SeqPacketSocket]


@overload
def socketpair(family: Optional[int] = None,
               type: Literal[_stdlib.SocketKind.SOCK_STREAM] = _stdlib.SOCK_STREAM,
               proto: int = 0) -> Tuple[StreamSocket, StreamSocket]: ...
@overload
def socketpair(family: Optional[int], type: Literal[_stdlib.SocketKind.SOCK_DGRAM],
               proto: int = 0) -> Tuple[DatagramSocket, DatagramSocket]: ...
@overload
def socketpair(family: Optional[int] = None, *, type: Literal[_stdlib.SocketKind.SOCK_DGRAM],
               proto: int = 0) -> Tuple[DatagramSocket, DatagramSocket]: ...
@overload
def socketpair(family: Optional[int], type: Literal[_stdlib.SocketKind.SOCK_SEQPACKET],
               proto: int = 0) -> Tuple[SeqPacketSocket, SeqPacketSocket]: ...
@overload
def socketpair(family: Optional[int] = None, *,
               type: Literal[_stdlib.SocketKind.SOCK_SEQPACKET],
               proto: int = 0) -> Tuple[SeqPacketSocket, SeqPacketSocket]: ...
@overload
def socketpair(family: Optional[int] = None, type: int = SOCK_STREAM,
               proto: int = 0) -> _AnyPair: ...
def socketpair(family: Optional[int] = None, type: int = SOCK_STREAM,
               proto: int = 0) -> _AnyPair:
    """A pair of connected sockets, as socket.socketpair(): StreamSocket for
    SOCK_STREAM, DatagramSocket for SOCK_DGRAM, SeqPacketSocket for SOCK_SEQPACKET
    (SOCK_NONBLOCK/SOCK_CLOEXEC may be or'ed in, as for the constructor).
    ``family`` None is AF_UNIX.  Their timeout is socket.getdefaulttimeout(), or 0.0
    with SOCK_NONBLOCK.

    ValueError for another type, OSError (EAFNOSUPPORT) for a family other than AF_UNIX,
    AF_INET or AF_INET6; Linux pairs only AF_UNIX sockets (EOPNOTSUPP for the others).
    """
    # converted first, in order, as in C
    fam = AF_UNIX if family is None else _c_int(family)
    kind, proto = _c_int(type), _c_int(proto)
    cls = CLASSES.get((fam, kind & ~_common.SOCK_TYPE_FLAGS)) or \
        CLASSES.get((-1, kind & ~_common.SOCK_TYPE_FLAGS)) or \
        next((k for (_, t), k in CLASSES.items() if t == kind & ~_common.SOCK_TYPE_FLAGS), None)
    if cls is None:
        raise ValueError("socketpair type must be SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET")
    a, b = _stdlib.socketpair(_check_family(fam, cls._FAMILIES, cls.__name__), kind, proto)
    return cls._adopt(a), cls._adopt(b)


def create_connection(
    address: Any,
    timeout: Any = _common.DEFAULT_TIMEOUT,
    source_address: Any = None,
    *,
    all_errors: bool = False,
) -> StreamSocket:
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


def create_server(
    address: Any = None,
    *,
    family: int = AF_INET,
    backlog: Optional[int] = None,
    reuse_port: bool = False,
    dualstack_ipv6: bool = False,
) -> StreamSocket:
    """A StreamSocket bound to ``address`` and listening, as socket.create_server().

    Without an address it listens on a free port of the loopback of ``family``
    (127.0.0.1 or ::1), never on every interface; an AF_UNIX server needs a path
    (ValueError).  SO_REUSEADDR is set, SO_REUSEPORT with ``reuse_port``; an AF_INET6
    server takes IPv6 only, or IPv4 too with ``dualstack_ipv6`` (ValueError where
    the system cannot).  A failed bind says the address, as the stdlib's.
    """
    return _common.create_server(StreamSocket, address, family, backlog, reuse_port,
                                 dualstack_ipv6)
