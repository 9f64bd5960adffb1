"""The pure-Python implementation: the same classes and behaviour as the
compiled one, built on the stdlib ``socket`` module.

It is used when ``FASTSOCK_NO_EXTENSIONS=1`` is set or the extension cannot
be imported, and it is the reference the compiled module is tested against.
It never imports the compiled module.
"""

from __future__ import annotations

import errno
import os
import socket as _stdlib
import warnings
from typing import Any, Optional, Tuple, TypeVar

from . import _common
from ._common import (
    AF_INET,
    AF_INET6,
    AF_UNIX,
    SOCK_DGRAM,
    SOCK_STREAM,
    SUPPORTED_FAMILIES,
)

__all__ = [
    "IMPLEMENTATION",
    "StreamSocket",
    "DatagramSocket",
    "socketpair",
    "create_connection",
    "create_server",
]

IMPLEMENTATION = "python"

SHUT_RD: int = int(_stdlib.SHUT_RD)
SHUT_WR: int = int(_stdlib.SHUT_WR)
SHUT_RDWR: int = int(_stdlib.SHUT_RDWR)

# SIGPIPE must never kill the process, whatever the embedding application
# did with the signal disposition.
_NOSIGNAL: int = int(getattr(_stdlib, "MSG_NOSIGNAL", 0))  # a plain int: enum | is slow

_Self = TypeVar("_Self", bound="_Socket")

# Bumped in a forked child, where the parent's threads and their calls in
# progress do not exist (see _Socket.close).
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def _closed_error() -> OSError:
    return OSError(errno.EBADF, os.strerror(errno.EBADF))


def _check_family(family: object) -> int:
    if not isinstance(family, int):
        raise TypeError(
            f"'{type(family).__name__}' object cannot be interpreted as an integer"
        )
    if family not in SUPPORTED_FAMILIES:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    return int(family)


class _Socket:
    """What stream and datagram sockets have in common."""

    # _calls holds one entry per call in progress that may block (the
    # process's fork generation: entries copied into a forked child are
    # stale there), and
    # _pending_close the descriptor that close() left to the last of them
    # (list append/pop are atomic, so no lock is needed; see close()).
    __slots__ = ("_sock", "_calls", "_pending_close", "__weakref__")
    _KIND: int = 0

    def __init__(self, family: int = AF_INET) -> None:
        sock = _stdlib.socket(_check_family(family), self._KIND)
        if _stdlib.getdefaulttimeout() is not None:
            sock.settimeout(None)  # fastsock sockets start blocking, always
        self._sock = sock
        self._calls: list[int] = []
        self._pending_close: list[int] = []

    @classmethod
    def _adopt(cls: type[_Self], sock: _stdlib.socket) -> _Self:
        self = cls.__new__(cls)
        self._sock = sock
        self._calls = []
        self._pending_close = []
        return self

    # Calls that may block follow one pattern, written out in each hot method
    # because a generic wrapper costs more than the call itself:
    #
    #     calls = self._calls; calls.append(_fork_generation)
    #     try: result = <the stdlib call>
    #     except OSError: self._raise_if_closed(); raise
    #     finally: calls.pop(); if self._pending_close and not calls: self._finish_close()
    #
    # so that close() from another thread wakes the call, the call reports
    # EBADF, and it never touches a reused descriptor (see close()).

    def _call(self, method: Any, *args: Any) -> Any:
        """The pattern above for the calls that are not hot."""
        calls = self._calls
        calls.append(_fork_generation)
        try:
            return method(*args)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()

    def _raise_if_closed(self) -> None:
        if self._sock.fileno() == -1:
            raise _closed_error() from None

    def _finish_close(self) -> None:
        pending = self._pending_close
        while pending:
            try:
                fd = pending.pop()
            except IndexError:
                return
            os.close(fd)

    @classmethod
    def from_fd(cls: type[_Self], fd: int) -> _Self:
        """Take ownership of an open socket descriptor of this class's type.

        The timeout starts as None for a blocking descriptor and 0.0 for a
        non-blocking one.  On error the descriptor stays open and the
        caller's.
        """
        if not isinstance(fd, int):
            raise TypeError(
                f"'{type(fd).__name__}' object cannot be interpreted as an integer"
            )
        if fd < 0:
            raise ValueError("negative file descriptor")
        sock = _stdlib.socket(fileno=fd)
        if sock.type != cls._KIND or sock.family not in SUPPORTED_FAMILIES:
            sock.detach()
            raise ValueError(
                f"fd {fd} is a {_common.family_name(sock.family)} "
                f"{_common.type_name(sock.type)} socket, not what "
                f"{cls.__name__} wraps"
            )
        sock.settimeout(None if os.get_blocking(fd) else 0.0)
        return cls._adopt(sock)

    @classmethod
    def from_socket(cls: type[_Self], sock: _stdlib.socket) -> _Self:
        """Take over a stdlib socket (which is detached) keeping its timeout."""
        if not isinstance(sock, _stdlib.socket):
            raise TypeError(f"expected a socket.socket, not {type(sock).__name__}")
        timeout = sock.gettimeout()
        fd = sock.fileno()
        if fd == -1:
            raise OSError(9, os.strerror(9))
        self = cls.from_fd(fd)
        sock.detach()
        self.settimeout(timeout)
        return self

    def to_socket(self) -> _stdlib.socket:
        """Hand the descriptor over to a new stdlib socket; this one is left closed."""
        timeout = self.gettimeout()
        family, kind = self.family, self.type
        fd = self.detach()
        if fd == -1:
            raise OSError(9, os.strerror(9))
        sock = _stdlib.socket(family, kind, 0, fileno=fd)
        sock.settimeout(timeout)
        return sock

    # -- identity and lifetime ------------------------------------------------

    @property
    def family(self) -> int:
        return int(self._sock.family)

    @property
    def type(self) -> int:
        return self._KIND

    @property
    def proto(self) -> int:
        return self._sock.proto

    @property
    def closed(self) -> bool:
        return self._sock.fileno() == -1

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        """Close the socket; a no-op when already closed.

        When another thread is blocked in a call on this socket, the socket
        is shut down to wake it and the descriptor is closed by the last such
        call on its way out, so it can never act on a reused descriptor.
        """
        if _fork_generation not in self._calls:  # none in progress in this process
            self._sock.close()
            return
        fd = self._sock.detach()  # from here on the calls see the socket closed
        if fd == -1:
            return
        waker = _stdlib.socket(fileno=fd)
        try:
            waker.shutdown(SHUT_RDWR)
        except OSError:
            pass
        finally:
            waker.detach()
        # only now may a finishing call close fd, and the last one does
        self._pending_close.append(fd)
        if not self._calls:  # the last call finished meanwhile
            self._finish_close()

    def detach(self) -> int:
        return self._sock.detach()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return _common.socket_repr(self)

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is None or sock.fileno() == -1:
            return
        try:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
        finally:
            sock.close()

    # -- addresses and options ------------------------------------------------

    def _address(self, address: Any) -> Any:
        if self._sock.family == AF_UNIX:
            return _common.unix_path_bytes(address)
        return address

    def bind(self, address: Any) -> None:
        self._sock.bind(self._address(address))

    def connect(self, address: Any) -> None:
        self._call(self._sock.connect, self._address(address))

    def connect_ex(self, address: Any) -> int:
        return self._call(self._sock.connect_ex, self._address(address))  # type: ignore[no-any-return]

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def setsockopt(self, level: int, optname: int, value: Any) -> None:
        self._sock.setsockopt(level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int = 0) -> Any:
        if buflen:
            return self._sock.getsockopt(level, optname, buflen)
        return self._sock.getsockopt(level, optname)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    # -- timeouts -------------------------------------------------------------

    def settimeout(self, value: Optional[float]) -> None:
        seconds = _common.normalize_timeout(value)
        self._sock.settimeout(None if seconds < 0 else seconds)

    def gettimeout(self) -> Optional[float]:
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def getblocking(self) -> bool:
        return self._sock.getblocking()

    # -- data -----------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        calls = self._calls
        calls.append(_fork_generation)
        try:
            data = self._sock.recv(bufsize, flags)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()
        if not data and self._sock.fileno() == -1:
            raise _closed_error()  # the shutdown() that woke the call looks like EOF
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        calls = self._calls
        calls.append(_fork_generation)
        try:
            n = self._sock.recv_into(buffer, nbytes, flags)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()
        if not n and self._sock.fileno() == -1:
            raise _closed_error()  # the shutdown() that woke the call looks like EOF
        return n

    def send(self, data: Any, flags: int = 0) -> int:
        calls = self._calls
        calls.append(_fork_generation)
        try:
            n = self._sock.send(data, flags | _NOSIGNAL)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()
        return n


class StreamSocket(_Socket):
    """A TCP (AF_INET, AF_INET6) or Unix stream (AF_UNIX) socket."""

    __slots__ = ()
    _KIND = SOCK_STREAM

    def listen(self, backlog: int = 128) -> None:
        self._sock.listen(backlog)

    def accept(self) -> Tuple["StreamSocket", Any]:
        fd, address = self._call(self._sock._accept)  # type: ignore[attr-defined]
        conn = _stdlib.socket(self._sock.family, SOCK_STREAM, 0, fileno=fd)
        if conn.gettimeout() is not None:
            conn.settimeout(None)  # accepted sockets start blocking, as in C
        return StreamSocket._adopt(conn), address

    def sendall(self, data: Any, flags: int = 0) -> None:
        calls = self._calls
        calls.append(_fork_generation)
        try:
            self._sock.sendall(data, flags | _NOSIGNAL)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()


class DatagramSocket(_Socket):
    """A UDP (AF_INET, AF_INET6) or Unix datagram (AF_UNIX) socket."""

    __slots__ = ()
    _KIND = SOCK_DGRAM

    def sendto(self, data: Any, *args: Any) -> int:
        if len(args) == 1:
            flags, address = 0, args[0]
        elif len(args) == 2:
            flags, address = args
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        address = self._address(address)
        calls = self._calls
        calls.append(_fork_generation)
        try:
            n = self._sock.sendto(data, flags | _NOSIGNAL, address)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()
        return n

    def recvfrom(self, bufsize: int, flags: int = 0) -> Tuple[bytes, Any]:
        calls = self._calls
        calls.append(_fork_generation)
        try:
            result = self._sock.recvfrom(bufsize, flags)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()
        if not result[0] and self._sock.fileno() == -1:
            raise _closed_error()  # the shutdown() that woke the call looks like EOF
        return result

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Tuple[int, Any]:
        calls = self._calls
        calls.append(_fork_generation)
        try:
            result = self._sock.recvfrom_into(buffer, nbytes, flags)
        except OSError:
            self._raise_if_closed()
            raise
        finally:
            calls.pop()
            if self._pending_close and not calls:
                self._finish_close()
        if not result[0] and self._sock.fileno() == -1:
            raise _closed_error()  # the shutdown() that woke the call looks like EOF
        return result


def socketpair(family: int = AF_UNIX, type: int = SOCK_STREAM) -> Tuple[Any, Any]:
    """A pair of connected sockets: StreamSocket for SOCK_STREAM, else DatagramSocket."""
    cls = {SOCK_STREAM: StreamSocket, SOCK_DGRAM: DatagramSocket}.get(type)
    if cls is None:
        raise ValueError("socketpair type must be SOCK_STREAM or SOCK_DGRAM")
    a, b = _stdlib.socketpair(_check_family(family), type)
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
    return _common.create_connection(StreamSocket, address, timeout, source_address)


def create_server(
    address: Any = None,
    *,
    family: int = AF_INET,
    backlog: int = 128,
    reuse_port: bool = False,
) -> StreamSocket:
    return _common.create_server(StreamSocket, address, family, backlog, reuse_port)


__all__ += ["AF_INET", "AF_INET6", "AF_UNIX", "SOCK_STREAM", "SOCK_DGRAM",
            "SHUT_RD", "SHUT_WR", "SHUT_RDWR"]
