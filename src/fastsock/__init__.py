"""fastsock: fast, pleasant sockets for Python.

``StreamSocket`` (TCP, Unix stream) and ``DatagramSocket`` (UDP, Unix
datagram) over IPv4, IPv6, Unix domain sockets and vsock, ``RawSocket``
(raw IP: ICMP, ICMPv6) and ``SeqPacketSocket`` (Unix SOCK_SEQPACKET:
connected, records kept whole).  The compiled
implementation calls the POSIX API directly with the GIL released around
blocking calls; a pure-Python twin with the same behaviour is used when
``FASTSOCK_NO_EXTENSIONS=1`` is set or the extension cannot be imported.
``fastsock.IMPLEMENTATION`` says which one is live.
"""

from __future__ import annotations

import os as _os
import warnings as _warnings
from typing import TYPE_CHECKING, Any

import socket as _stdlib

from . import _common, _names

__version__ = "0.1.0"

# the stdlib's constants, exceptions and helpers, the very same objects
# (type checkers see them through __getattr__ below, as Any)
globals().update((_name, getattr(_stdlib, _name)) for _name in _names.STDLIB_NAMES)

_NO_EXTENSIONS = _os.environ.get("FASTSOCK_NO_EXTENSIONS", "") not in ("", "0")

if TYPE_CHECKING:
    # type checkers see the pure module: it is the typed reference
    from ._common import UDP_GRO as UDP_GRO, UDP_GSO as UDP_GSO
    from ._socket_py import (
        AF_INET as AF_INET,
        AF_INET6 as AF_INET6,
        AF_UNIX as AF_UNIX,
        IMPLEMENTATION as IMPLEMENTATION,
        SHUT_RD as SHUT_RD,
        SHUT_RDWR as SHUT_RDWR,
        SHUT_WR as SHUT_WR,
        SOCK_DGRAM as SOCK_DGRAM,
        SOCK_SEQPACKET as SOCK_SEQPACKET,
        SOCK_STREAM as SOCK_STREAM,
        DatagramBatch as DatagramBatch,
        SocketType as SocketType,
        fromfd as fromfd,
        socket as socket,
        DatagramSocket as DatagramSocket,
        RawSocket as RawSocket,
        VMADDR_CID_LOCAL as VMADDR_CID_LOCAL,
        IncompleteReadError as IncompleteReadError,
        LimitOverrunError as LimitOverrunError,
        MessageTooLargeError as MessageTooLargeError,
        SeqPacketSocket as SeqPacketSocket,
        StreamSocket as StreamSocket,
        TruncatedDatagramError as TruncatedDatagramError,
        TruncatedRecordError as TruncatedRecordError,
        create_connection as create_connection,
        create_server as create_server,
        iter_segments as iter_segments,
        recv_fds as recv_fds,
        send_fds as send_fds,
        socketpair as socketpair,
    )
elif _NO_EXTENSIONS:
    from ._socket_py import *  # noqa: F403
else:
    try:
        from ._socket_c import *  # noqa: F403
    except ImportError as _exc:
        # installed without the extension (no compiler at build time, or
        # FASTSOCK_NO_EXTENSIONS=1 then): the build said so, pure is expected;
        # an extension file that is there but cannot load is worth a word
        if _common.extension_was_built(_os.path.dirname(__file__)):
            _warnings.warn(
                f"fastsock: the compiled extension could not be imported ({_exc}); "
                "using the pure-Python implementation",
                RuntimeWarning,
                stacklevel=2,
            )
        from ._socket_py import *  # noqa: F403

__all__ = list(_names.PUBLIC_NAMES)


def __getattr__(name: str) -> Any:
    # UDP_GSO and UDP_GRO: probed on first use, not when fastsock is imported
    # (for type checkers, also the stdlib's names set above)
    if name in _names.PROBED_NAMES:
        return getattr(_common, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
