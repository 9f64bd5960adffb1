"""The names fastsock is made of, written once.

``TWIN_NAMES`` is what each twin (``_socket_c``, ``_socket_py``) exports (its
``__all__``): what it defines itself and the exceptions and helpers written
once in ``_common``, which both re-export.  The dispatcher
(``fastsock/__init__.py``) re-exports the live twin's, plus the kernel
capabilities that ``_common`` probes on first use (``PROBED_NAMES``).
``IMPLEMENTATIONS`` maps the name of each implementation to its module and to
the environment that selects it through the public switch; tests, benchmarks
and fuzz targets take the list from here.
"""

from __future__ import annotations

import socket as _stdlib
from typing import Mapping

# what each twin module defines
IMPLEMENTATION_NAMES: tuple[str, ...] = (
    "IMPLEMENTATION",
    "StreamSocket",
    "DatagramSocket",
    "DatagramBatch",
    "SeqPacketSocket",
    "SocketType",
    "socket",
    "fromfd",
    "socketpair",
    "create_connection",
    "create_server",
    "AF_INET",
    "AF_INET6",
    "AF_UNIX",
    "SOCK_STREAM",
    "SOCK_DGRAM",
    "SOCK_SEQPACKET",
    "SHUT_RD",
    "SHUT_WR",
    "SHUT_RDWR",
    # raw IP sockets
    "RawSocket",
    # netlink
    "NetlinkSocket",
)

# written once in _common: the same objects in both twins
COMMON_NAMES: tuple[str, ...] = (
    "IncompleteReadError",
    "LimitOverrunError",
    "MessageTooLargeError",
    "TruncatedDatagramError",
    "TruncatedRecordError",
    "iter_segments",
    "send_fds",
    "recv_fds",
    # vsock: the one VMADDR_ constant the stdlib may lack
    "VMADDR_CID_LOCAL",
    # netlink
    "NetlinkMessage",
    "netlink_attributes",
    "NETLINK_SOCK_DIAG",
    "NLM_F_REQUEST",
    "NLM_F_MULTI",
    "NLM_F_ACK",
    "NLM_F_DUMP",
    "NLMSG_NOOP",
    "NLMSG_ERROR",
    "NLMSG_DONE",
)

TWIN_NAMES: tuple[str, ...] = (*IMPLEMENTATION_NAMES, *COMMON_NAMES)

# kernel capabilities, probed on first use (not at import)
PROBED_NAMES: tuple[str, ...] = ("UDP_GSO", "UDP_GRO")

# the rest of the stdlib socket module's names, re-exported unchanged by the
# dispatcher (constants, exceptions, name resolution and conversions), so that
# code written for the stdlib runs with only the import changed
STDLIB_NAMES: tuple[str, ...] = tuple(
    name for name in _stdlib.__all__ if name not in TWIN_NAMES and name not in PROBED_NAMES)

PUBLIC_NAMES: tuple[str, ...] = (*TWIN_NAMES, *PROBED_NAMES, *STDLIB_NAMES, "__version__")

# implementation name -> (module, environment that makes the dispatcher pick it)
IMPLEMENTATIONS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "cython": ("fastsock._socket_c", {"FASTSOCK_NO_EXTENSIONS": "0"}),
    "python": ("fastsock._socket_py", {"FASTSOCK_NO_EXTENSIONS": "1"}),
}
