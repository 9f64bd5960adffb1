"""fastsock: fast, pleasant sockets for Python.

``StreamSocket`` (TCP, Unix stream) and ``DatagramSocket`` (UDP, Unix
datagram) over IPv4, IPv6 and Unix domain sockets.  The compiled
implementation calls the POSIX API directly with the GIL released around
blocking calls; a pure-Python twin with the same behaviour is used when
``FASTSOCK_NO_EXTENSIONS=1`` is set or the extension cannot be imported.
``fastsock.IMPLEMENTATION`` says which one is live.
"""

from __future__ import annotations

import os as _os
import warnings as _warnings
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from ._common import (
    UDP_GRO,
    UDP_GSO,
    IncompleteReadError,
    LimitOverrunError,
    MessageTooLargeError,
    TruncatedDatagramError,
    iter_segments,
)

_NO_EXTENSIONS = _os.environ.get("FASTSOCK_NO_EXTENSIONS", "") not in ("", "0")

if TYPE_CHECKING:
    # type checkers see the pure module: it is the typed reference
    from ._socket_py import (
        DatagramBatch,
        AF_INET, AF_INET6, AF_UNIX, IMPLEMENTATION, SHUT_RD, SHUT_RDWR, SHUT_WR,
        SOCK_DGRAM, SOCK_STREAM, DatagramSocket, StreamSocket, create_connection,
        create_server, socketpair,
    )
elif _NO_EXTENSIONS:
    from ._socket_py import *  # noqa: F403
else:
    try:
        from ._socket_c import *  # noqa: F403
    except ImportError as _exc:
        _warnings.warn(
            f"fastsock: the compiled extension could not be imported ({_exc}); "
            "using the pure-Python implementation",
            RuntimeWarning,
            stacklevel=2,
        )
        from ._socket_py import *  # noqa: F403

__all__ = [
    "IMPLEMENTATION",
    "StreamSocket",
    "DatagramSocket",
    "socketpair",
    "create_connection",
    "create_server",
    "AF_INET",
    "AF_INET6",
    "AF_UNIX",
    "SOCK_STREAM",
    "SOCK_DGRAM",
    "SHUT_RD",
    "SHUT_WR",
    "SHUT_RDWR",
    "IncompleteReadError",
    "LimitOverrunError",
    "MessageTooLargeError",
    "DatagramBatch",
    "TruncatedDatagramError",
    "iter_segments",
    "UDP_GSO",
    "UDP_GRO",
    "__version__",
]
