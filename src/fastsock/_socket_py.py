"""The pure-Python implementation: the same classes and behaviour as the
compiled one, built on the stdlib ``socket`` module.

It is used when ``FASTSOCK_NO_EXTENSIONS=1`` is set or the extension cannot
be imported, and it is the reference the compiled module is tested against
(and the typed one).  Split the way the compiled source is, one module per
concern: _base_py (the base socket and its call guard), _stream_py,
_datagram_py.  It never imports the compiled module.
"""

from __future__ import annotations

import socket as _stdlib
from operator import index as _index
from typing import Any, Optional, Tuple

from . import _common, _names
from ._base_py import _check_family
# re-exported, written as "X as X" so type checkers see the export
from ._common import (
    AF_INET as AF_INET,
    AF_INET6 as AF_INET6,
    AF_UNIX as AF_UNIX,
    SOCK_DGRAM as SOCK_DGRAM,
    SOCK_STREAM as SOCK_STREAM,
    IncompleteReadError as IncompleteReadError,
    LimitOverrunError as LimitOverrunError,
    MessageTooLargeError as MessageTooLargeError,
    TruncatedDatagramError as TruncatedDatagramError,
    iter_segments as iter_segments,
)
from ._datagram_py import DatagramBatch as DatagramBatch, DatagramSocket as DatagramSocket
from ._stream_py import StreamSocket as StreamSocket

__all__ = list(_names.TWIN_NAMES)

IMPLEMENTATION = "python"

SHUT_RD: int = int(_stdlib.SHUT_RD)
SHUT_WR: int = int(_stdlib.SHUT_WR)
SHUT_RDWR: int = int(_stdlib.SHUT_RDWR)


def socketpair(family: int = AF_UNIX, type: int = SOCK_STREAM) -> Tuple[Any, Any]:
    """A pair of connected sockets, as socket.socketpair(): StreamSocket for
    SOCK_STREAM, DatagramSocket for SOCK_DGRAM, both blocking whatever
    socket.getdefaulttimeout() says.

    ValueError for another type, OSError (EAFNOSUPPORT) for a family other than AF_UNIX,
    AF_INET or AF_INET6; Linux pairs only AF_UNIX sockets (EOPNOTSUPP for the others).
    """
    fam, kind = _index(family), _index(type)  # both converted first, as in C
    cls = {SOCK_STREAM: StreamSocket, SOCK_DGRAM: DatagramSocket}.get(kind)
    if cls is None:
        raise ValueError("socketpair type must be SOCK_STREAM or SOCK_DGRAM")
    a, b = _stdlib.socketpair(_check_family(fam), kind)
    for sock in (a, b):
        if sock.gettimeout() is not None:
            sock.settimeout(None)
    return cls._adopt(a), cls._adopt(b)


def create_connection(
    address: Any,
    timeout: Optional[float] = None,
    *,
    source_address: Any = None,
) -> StreamSocket:
    """Connect a StreamSocket to ``(host, port)`` or to an AF_UNIX path, as
    socket.create_connection().

    Every address the host resolves to (IPv4, IPv6) is tried in turn; when all fail, the
    first error is raised.  ``timeout`` (default None: block, not the stdlib's default
    timeout) bounds each attempt and stays set on the socket; ``source_address`` is
    bound before connecting (not for a path).
    """
    return _common.create_connection(StreamSocket, address, timeout, source_address)


def create_server(
    address: Any = None,
    *,
    family: int = AF_INET,
    backlog: int = 128,
    reuse_port: bool = False,
) -> StreamSocket:
    """A StreamSocket bound to ``address`` and listening, as socket.create_server().

    Without an address it listens on a free port of the loopback of ``family``
    (127.0.0.1 or ::1); an AF_UNIX server needs a path (ValueError).  SO_REUSEADDR is
    set (and SO_REUSEPORT with ``reuse_port``) except for AF_UNIX; unlike the stdlib
    there is no ``dualstack_ipv6`` and IPV6_V6ONLY is left as the system sets it.
    """
    return _common.create_server(StreamSocket, address, family, backlog, reuse_port)
