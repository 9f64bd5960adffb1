"""The base of the pure-Python twin (pair: _base_c.pxi): what stream and
datagram sockets have in common, built on the stdlib ``socket`` module, and
the one guard every kernel call that may block goes through.

It never imports the compiled module.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket as _stdlib
import sys
import sysconfig
import threading
import time
import warnings
from _thread import get_ident as _get_ident
from operator import index as _index
from time import monotonic as _monotonic
from typing import Any, Callable, Iterable, Optional, Tuple, Type, TypeVar

from . import _common
from ._common import AF_UNIX

# SIGPIPE must never kill the process, whatever the embedding application
# did with the signal disposition.
_NOSIGNAL: int = int(getattr(_stdlib, "MSG_NOSIGNAL", 0))  # a plain int: enum | is slow
_TRUNC: int = int(_stdlib.MSG_TRUNC)
_DONTWAIT: int = int(_stdlib.MSG_DONTWAIT)
_SOCK_NONBLOCK: int = int(_stdlib.SOCK_NONBLOCK)
_SSIZE_MAX = sys.maxsize

_Self = TypeVar("_Self", bound="_Socket")
_Accepted = TypeVar("_Accepted", bound="_Socket")
_type = type  # the builtin, where a parameter is named type as in the stdlib

# Bumped in a forked child, where the parent's threads and their calls in
# progress do not exist (see _Socket.close).
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)

# close() wakes a thread blocked in a call on the socket with this signal:
# its syscall returns EINTR, and the stdlib, retrying, finds the socket
# detached and raises EBADF.  SIGURG is ignored by default and rarely used;
# a handler that does nothing makes it interrupt the syscall (only the main
# thread can install one: at import, or at the first close that needs it).
_WAKE_SIGNAL = signal.SIGURG
_WAKE_ROUNDS = 200
_WAKE_PAUSE_MAX = 0.005


def _wake_handler(signum: int, frame: object) -> None:
    """Does nothing: the signal only interrupts a blocked syscall."""


def _install_wake_handler() -> bool:
    """Whether SIGURG now interrupts blocked syscalls (a handler of the
    application's own is left as it is: it interrupts them as well)."""
    try:
        current = signal.getsignal(_WAKE_SIGNAL)
    except ValueError:
        return False
    if current not in (signal.SIG_DFL, signal.SIG_IGN):
        return True  # a Python handler, or one installed in C (None)
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        signal.signal(_WAKE_SIGNAL, _wake_handler)
    except ValueError:  # not the main interpreter
        return False
    return True


_wake_handler_installed = _install_wake_handler()


def _wake_blocked(calls: list[tuple[int, int]]) -> None:
    """Signal the threads of the calls in progress until all have left (bounded)."""
    global _wake_handler_installed
    if not _wake_handler_installed:
        _wake_handler_installed = _install_wake_handler()
    pause = 0.0001
    for _ in range(_WAKE_ROUNDS):
        tokens = [token for token in calls if token[0] == _fork_generation]
        if not tokens:
            return
        for token in tokens:
            if token in calls:  # still in its call: its thread is alive
                try:
                    signal.pthread_kill(token[1], _WAKE_SIGNAL)
                except ProcessLookupError:
                    pass
        # a signal that came just before its thread entered the syscall
        # woke nothing: let the threads run, then look again
        time.sleep(pause)
        pause = min(pause * 2, _WAKE_PAUSE_MAX)


def _flags(flags: Any) -> int:
    """Send flags with MSG_NOSIGNAL added; anything with __index__ is an int
    here, as for the stdlib."""
    return (flags if type(flags) is int else _index(flags)) | _NOSIGNAL


def _closed_error() -> OSError:
    return OSError(errno.EBADF, os.strerror(errno.EBADF))


def _check_family(family: object, families: tuple[int, ...], cls_name: str) -> int:
    if not isinstance(family, int):
        raise TypeError(
            f"'{type(family).__name__}' object cannot be interpreted as an integer"
        )
    if family not in families:
        raise _common.unsupported_family(cls_name, families, family)
    return int(family)


# -- argument checks ----------------------------------------------------------------


def _c_int(value: Any) -> int:
    """``value`` as a C int, converted and refused as the stdlib's "i" argument."""
    number: int = _index(value)
    if number > 0x7FFFFFFF:
        raise OverflowError("signed integer is greater than maximum")
    if number < -0x80000000:
        raise OverflowError("signed integer is less than minimum")
    return number


def _positive(value: Any, name: str) -> int:
    number: int = value if type(value) is int else _index(value)
    if not -_SSIZE_MAX - 1 <= number <= _SSIZE_MAX:  # first, as a C conversion
        raise OverflowError("Python int too large to convert to C ssize_t")
    if number <= 0:
        raise ValueError(f"{name} must be positive")
    return number


def _writable_bytes(buffer: Any, nbytes: Any, method: str, flags: Any = 0) -> memoryview:
    """A flat unsigned-byte view of the first ``nbytes`` (0: all) bytes of a
    writable buffer, refused with the stdlib's ``recv_into`` checks and
    messages, in its order: buffer, nbytes, flags converted, then the sizes."""
    try:
        view: Optional[memoryview] = memoryview(buffer)
    except TypeError:
        view = None
    if view is None or view.readonly or not view.c_contiguous:
        if view is not None:
            view.release()
        raise TypeError(f"{method}() argument 1 must be read-write bytes-like object, "
                        f"not {'None' if buffer is None else type(buffer).__name__}")
    try:
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        count: int = nbytes if type(nbytes) is int else _index(nbytes)
        if not -_SSIZE_MAX - 1 <= count <= _SSIZE_MAX:
            raise OverflowError("Python int too large to convert to C ssize_t")
        if type(flags) is not int:
            _index(flags)
        if count < 0:
            raise ValueError(f"negative buffersize in {method}")
        if count > len(view):
            raise ValueError("nbytes is greater than the length of the buffer"
                             if method == "recvfrom_into" else
                             "buffer too small for requested bytes")
    except BaseException:
        view.release()
        raise
    return view[:count] if count else view


_readable_bytes = _common.readable_view

_CMSG_CLOEXEC = _common.MSG_CMSG_CLOEXEC
_INT_MAX = 2**31 - 1
_RECVMSG_INTO_BUFFERS = ("recvmsg_into() argument 1 must be an iterable of single-segment "
                         "read-write buffers")


def _ssize(value: Any) -> int:
    """The stdlib's "n" argument conversion."""
    number: int = value if type(value) is int else _index(value)
    if not -_SSIZE_MAX - 1 <= number <= _SSIZE_MAX:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return number


def _cint(value: Any) -> int:
    """The stdlib's "i" argument conversion."""
    number: int = value if type(value) is int else _index(value)
    if number > _INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if number < -_INT_MAX - 1:
        raise OverflowError("signed integer is less than minimum")
    return number


def _recvmsg_args(bufsize: Any, ancbufsize: Any, flags: Any) -> Tuple[int, int, int]:
    return _ssize(bufsize), _ssize(ancbufsize), _cint(flags)


def _check_ancbufsize(ancsize: int) -> None:
    if not 0 <= ancsize <= _INT_MAX:
        raise ValueError("invalid ancillary data buffer length")


def _writable_views(buffers: Any) -> list[memoryview]:
    """Flat byte views of recvmsg_into()'s buffers, refused as the stdlib
    refuses them (the caller releases them)."""
    if type(buffers) is not list and type(buffers) is not tuple:
        try:
            iterator = iter(buffers)
        except TypeError:
            raise TypeError("recvmsg_into() argument 1 must be an iterable") from None
        buffers = list(iterator)
    views: list[memoryview] = []
    try:
        for buffer in buffers:
            try:
                view = memoryview(buffer)
            except TypeError:
                raise TypeError(_RECVMSG_INTO_BUFFERS) from None
            views.append(view)
            if view.readonly or not view.c_contiguous:
                raise TypeError(_RECVMSG_INTO_BUFFERS)
            if view.format != "B" or view.ndim != 1:
                views[-1] = view.cast("B")
                view.release()
    except BaseException:
        for view in views:
            view.release()
        raise
    return views


# The timeout of a step made once the deadline has passed, after a look said
# the socket is ready: the call goes through at once.
_STEP_AT_THE_DEADLINE = 1e-6


def _ready_now(sock: _stdlib.socket, writing: bool) -> bool:
    """Whether a call on ``sock`` would not wait now (an error or hang-up counts)."""
    fd = sock.fileno()
    if fd == -1:
        raise _closed_error()
    poller = select.poll()
    poller.register(fd, select.POLLOUT if writing else select.POLLIN)
    return bool(poller.poll(0))


class _Steps:
    """The kernel calls of one call that may take several: one deadline for all.

    The first step runs on the caller's socket with its own timeout, which
    is the whole budget; each later step runs on a private twin of the
    socket (the same descriptor) whose timeout is what is left.  The caller's
    socket object is never retimed, so calls of other threads on it keep
    their timeout, and nothing has to be restored.
    """

    __slots__ = ("_sock", "_deadline", "_twin", "_started", "_twins")

    def __init__(self, sock: _stdlib.socket, deadline: Optional[float] = None,
                 twins: Optional[list[_stdlib.socket]] = None) -> None:
        """``twins``: the owner's list of twins in use, which close() detaches."""
        self._sock = sock
        self._twin: Optional[_stdlib.socket] = None
        self._twins = twins
        if deadline is None:
            timeout = sock.gettimeout()
            self._deadline = _monotonic() + timeout if timeout else -1.0
            self._started = False
        else:
            self._deadline = deadline
            self._started = True

    @property
    def deadline(self) -> float:
        """The monotonic deadline, or -1.0 when there is none (blocking or non-blocking)."""
        return self._deadline

    def sock(self, writing: bool = False) -> _stdlib.socket:
        """The socket to make the next step on (a send when ``writing``)."""
        if self._deadline < 0.0:
            return self._sock
        if not self._started:
            self._started = True
            return self._sock
        remaining = self._deadline - _monotonic()
        if remaining <= 0.0:
            # the time is up, but a step that would not wait still runs, as the
            # compiled twin's call-first does: a reset or the rest of a frame
            # already queued is reported, not a timeout
            if not _ready_now(self._sock, writing):
                raise TimeoutError("timed out")
            remaining = _STEP_AT_THE_DEADLINE
        twin = self._twin
        if twin is None:
            fd = self._sock.fileno()
            if fd == -1:
                raise _closed_error()
            twin = self._twin = _stdlib.socket(self._sock.family, self._sock.type, 0,
                                                fileno=fd)
            if self._twins is not None:
                self._twins.append(twin)
                # close() detaches the twins it finds after detaching the
                # socket: one listed too late for it is detached here
                if self._sock.fileno() == -1:
                    self.release()
                    raise _closed_error()
        twin.settimeout(remaining)
        return twin

    def release(self) -> None:
        twin = self._twin
        if twin is not None:
            self._twin = None
            if self._twins is not None:
                self._twins.remove(twin)
            twin.detach()


def _raise_deferred(deferred: list[int]) -> None:
    """Raise (once: of racing calls, the one that pops it) the error kept for
    this call (see _Socket._deferred)."""
    try:
        err = deferred.pop()
    except IndexError:
        return
    raise OSError(err, os.strerror(err))


# On a free-threaded CPython a call's listing and close()'s look at the
# list need a lock between them (see _Socket._call); with a GIL they are
# already one step each, and the lock would only cost time.
_FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _finish_close(pending: list[int]) -> None:
    """Close the descriptors close() left to the calls in progress."""
    while pending:
        try:
            fd = pending.pop()
        except IndexError:
            return
        os.close(fd)


class _Socket:
    """What stream and datagram sockets have in common."""

    # _calls lists every call in progress that may block, as (the process's
    # fork generation, the thread): close() wakes those threads, and entries
    # copied into a forked child are stale there; _pending_close holds the
    # descriptor that close() left to the last of them (list append and
    # remove are atomic, so no lock is needed; see _call() and close()).
    # _twins holds the private stdlib sockets on the same descriptor that
    # multi-step calls use (see _Steps), which close() detaches too.
    # _deferred holds (at most) one errno the kernel reported to a call that
    # could not raise it (it had already received or sent something:
    # recv_msgs taking what else has arrived, a batch send part-way), raised
    # by the socket's next call.
    # _lock (free-threaded CPython only, else None) makes listing a call and
    # close()'s decision mutually exclusive.
    __slots__ = ("_sock", "_calls", "_pending_close", "_twins", "_deferred", "_lock",
                 "__weakref__")
    _KIND: int = 0
    _KINDS: tuple[int, ...] = ()  # other types the class also takes (NetlinkSocket)
    _FAMILIES: tuple[int, ...] = ()  # the first is the default
    _DEFAULT_PROTOS: dict[int, int] = {}  # family -> protocol when none is given (else 0)

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,
                 fileno: Optional[int] = None) -> None:
        if _type(self) is _Socket:
            raise _common.base_class_called()
        if getattr(self, "_sock", None) is not None:
            raise RuntimeError(
                f"{_type(self).__name__} already initialised: create a new socket instead")
        # converted in the stdlib's order, with its errors
        family, type, proto = _c_int(family), _c_int(type), _c_int(proto)
        if fileno is None:
            kind = self._KIND if type == -1 else type
            if kind & ~_common.SOCK_TYPE_FLAGS != self._KIND and \
                    kind & ~_common.SOCK_TYPE_FLAGS not in self._KINDS:
                raise _common.wrong_kind(_type(self).__name__, self._KIND,
                                         kind & ~_common.SOCK_TYPE_FLAGS)
            family = _check_family(self._FAMILIES[0] if family == -1 else family,
                                   self._FAMILIES, _type(self).__name__)
            if proto == -1:
                proto = self._DEFAULT_PROTOS.get(family, -1)
            try:
                sock = _stdlib.socket(family, kind, proto)
            except OSError as exc:  # the same errno, its message naming what is missing
                if exc.errno is None:
                    raise
                raise _common.open_error(exc.errno, family,
                                         kind & ~_common.SOCK_TYPE_FLAGS) from None
        else:
            sock = self._adopt_fileno(family, type, proto, fileno)
        self._setup(sock)

    def _adopt_fileno(self, family: int, type: int, proto: int,
                      fileno: Any) -> _stdlib.socket:
        """A stdlib socket on ``fileno`` after checking that it is what this class
        wraps and what ``family``/``type`` (-1: any) say; on error the descriptor
        stays open and the caller's, as with the stdlib."""
        sock = _stdlib.socket(-1, -1, proto, fileno)  # the stdlib's checks of fileno
        try:
            fd = sock.fileno()
            real_family = sock.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_DOMAIN)
            real_kind = sock.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_TYPE)
            if (real_kind != self._KIND and real_kind not in self._KINDS) or \
                    real_family not in self._FAMILIES:
                raise _common.wrong_descriptor(_type(self).__name__, fd, real_family,
                                               real_kind)
            if family != -1 and family != real_family:
                raise _common.mismatched_fileno(fd, "family", family, real_family)
            if type != -1 and type & ~_common.SOCK_TYPE_FLAGS != real_kind:
                raise _common.mismatched_fileno(fd, "type", type & ~_common.SOCK_TYPE_FLAGS,
                                                real_kind)
            if type != -1 and type & _common.SOCK_NONBLOCK:
                sock.settimeout(0.0)  # as the stdlib's: the type says non-blocking
        except BaseException:
            sock.detach()
            raise
        return sock

    def _setup(self, sock: _stdlib.socket) -> None:
        self._sock = sock
        self._calls: list[tuple[int, int]] = []
        self._pending_close: list[int] = []
        self._twins: list[_stdlib.socket] = []
        self._deferred: list[int] = []
        self._lock: Optional[threading.Lock] = threading.Lock() if _FREE_THREADED else None

    @classmethod
    def _adopt(cls: type[_Self], sock: _stdlib.socket) -> _Self:
        self = cls.__new__(cls)
        self._setup(sock)
        return self

    def _call(self, method: Any, *args: Any) -> Any:
        """``method(*args)``: every kernel call that may block goes through here
        (a stdlib method, or a loop of several under one deadline).

        While it runs, the call is listed in ``_calls``, so that close() from
        another thread can wake it and leave the descriptor to be closed by
        the last call on its way out (never a reused descriptor number); an
        OSError raised because the socket was closed meanwhile becomes EBADF;
        an error kept for this call (``_deferred``) is raised first.  One
        function call: a context manager would cost twice as much per call.
        """
        if self._deferred and self._sock.fileno() != -1:
            _raise_deferred(self._deferred)
        calls = self._calls
        token = (_fork_generation, _get_ident())
        lock = self._lock
        if lock is None:
            calls.append(token)
        else:
            # listed before close() looks, or the stdlib method finds the
            # descriptor gone (the lock orders the two)
            with lock:
                calls.append(token)
        try:
            return method(*args)
        except OSError:
            if self._sock.fileno() == -1:
                raise _closed_error() from None
            raise
        finally:
            calls.remove(token)
            if self._pending_close and not calls:
                _finish_close(self._pending_close)

    def _call_addressed(self, method: Any, *args: Any) -> Any:
        """_call() for a method that takes an address: on a socket closed
        already, the stdlib's own error stands (it checks the address first)."""
        if self._sock.fileno() == -1:
            return method(*args)
        return self._call(method, *args)

    def _defer(self, exc: OSError) -> None:
        """Keep an OSError for the socket's next call (see _deferred), as the
        kernel keeps a pending socket error; EPIPE is no such error but the
        state of a socket that can no longer send, which the next send meets
        again by itself (and a receive must not report)."""
        if exc.errno and exc.errno != errno.EPIPE:
            self._deferred[:] = [exc.errno]

    def _raise_deferred(self) -> None:
        if self._deferred:
            _raise_deferred(self._deferred)

    def _raise_if_closed(self) -> None:
        if self._sock.fileno() == -1:
            raise _closed_error() from None

    @classmethod
    def from_fd(cls: type[_Self], fd: int) -> _Self:
        """Take ownership of an open socket descriptor of this class's type.

        The timeout starts as None for a blocking descriptor and 0.0 for a non-blocking
        one.  ValueError when ``fd`` is negative or a socket of another type or family,
        OSError when it is no open socket; on error the descriptor stays open and the
        caller's.
        """
        if not isinstance(fd, int):
            raise TypeError(
                f"'{type(fd).__name__}' object cannot be interpreted as an integer"
            )
        if fd < 0:
            raise ValueError("negative file descriptor")
        sock = _stdlib.socket(fileno=fd)
        if (sock.type != cls._KIND and sock.type not in cls._KINDS) or \
                sock.family not in cls._FAMILIES:
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
        """Take over a stdlib socket.socket, keeping its timeout; ``sock`` is detached.

        TypeError for anything else, and for an ssl.SSLSocket (its bytes are TLS
        records); OSError (EBADF) when it is closed; when it is of another type or
        family (ValueError, as from_fd()) it is left as it was.
        """
        _common.check_adoptable(sock)
        timeout = sock.gettimeout()
        fd = sock.fileno()
        if fd == -1:
            raise OSError(9, os.strerror(9))
        self = cls.from_fd(fd)
        sock.detach()
        self.settimeout(timeout)
        return self

    def to_socket(self) -> _stdlib.socket:
        """Hand the descriptor over to a new stdlib socket.socket with the same timeout
        and protocol number; this socket is left closed.  OSError (EBADF) when it is
        closed already; RuntimeError, changing nothing, while a StreamSocket holds
        received bytes no call has returned: take them with take_buffered() first.
        """
        timeout = self.gettimeout()
        family, kind, proto = self.family, self.type, self.proto
        fd = self.detach()
        if fd == -1:
            raise OSError(9, os.strerror(9))
        return _common.stdlib_socket_for(fd, family, kind, proto, timeout)

    # -- identity and lifetime ------------------------------------------------

    @property
    def family(self) -> Any:
        """The address family, as socket.family: a socket.AddressFamily member
        (AF_INET, AF_INET6, AF_UNIX, AF_VSOCK).
        """
        return self._sock.family

    @property
    def type(self) -> Any:
        """The socket type, as socket.type: a socket.SocketKind member
        (SOCK_STREAM, SOCK_DGRAM), without the SOCK_NONBLOCK/SOCK_CLOEXEC flags.
        """
        return self._sock.type

    @property
    def proto(self) -> int:
        """The protocol number, as socket.proto: the one given to the constructor
        (0 by default), the kernel's (IPPROTO_TCP, ...) for a socket taken over with
        from_fd(), from_socket() or ``fileno``.
        """
        return self._sock.proto

    @property
    def timeout(self) -> Optional[float]:
        """The timeout, as socket.timeout: the same as gettimeout()."""
        return self._sock.gettimeout()

    @property
    def closed(self) -> bool:
        """True once the socket is closed or detached (fileno() is then -1)."""
        return self._sock.fileno() == -1

    def fileno(self) -> int:
        """The socket's descriptor, or -1 once it is closed or detached, as
        socket.fileno().
        """
        return self._sock.fileno()

    def close(self) -> None:
        """Close the socket, as socket.close(); a no-op when it is already closed.

        A call blocked on the socket in another thread is woken (a signal to its
        thread) and raises OSError (EBADF); the descriptor is closed when the last such
        call returns, so none acts on a reused descriptor.  Nothing is done to the
        connection itself: a forked child or a duplicated descriptor sharing it goes
        on undisturbed.  A StreamSocket's buffered bytes are dropped.  Afterwards every
        call that uses the descriptor raises OSError (EBADF), recv(0) and a recv_into()
        of 0 bytes too (the stdlib's return b"" and 0 without looking).
        """
        self._forget_received()
        calls = self._calls
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            if not any(token[0] == _fork_generation for token in calls):
                self._sock.close()  # none in progress in this process
                return
            fd = self._sock.detach()  # from here on the calls see the socket closed
        finally:
            if lock is not None:
                lock.release()
        if fd == -1:
            return
        for twin in list(self._twins):
            twin.detach()
        # only now may a finishing call close fd, and the last one does
        self._pending_close.append(fd)
        _wake_blocked(calls)
        if not calls:  # the last call finished meanwhile
            _finish_close(self._pending_close)

    def _forget_received(self) -> None:
        """At close: drop what the socket holds received (StreamSocket's buffer)."""

    def _check_handoff(self) -> None:
        """Before the descriptor leaves: refuse if received bytes would be lost."""

    def detach(self) -> int:
        """Give up the descriptor without closing it and return it (-1 when already
        closed), as socket.detach(); the socket is then closed.  RuntimeError, changing
        nothing, while a StreamSocket holds received bytes no call has returned: take
        them with take_buffered() first.
        """
        if self._sock.fileno() != -1:
            self._check_handoff()
        return self._sock.detach()

    def dup(self: _Self) -> _Self:
        """A new socket of the same class on a duplicate of the descriptor, with the
        same timeout, as socket.dup(); the duplicate is not inheritable.  Bytes a
        StreamSocket has buffered stay with this socket.  OSError (EBADF) when closed.
        """
        return self._adopt(self._sock.dup())

    def get_inheritable(self) -> bool:
        """Whether the descriptor is inherited by child processes, as
        socket.get_inheritable() (False unless set_inheritable(True) was called).
        """
        return self._sock.get_inheritable()

    def set_inheritable(self, inheritable: bool) -> None:
        """Make the descriptor inherited by child processes or not, as
        socket.set_inheritable().
        """
        self._sock.set_inheritable(inheritable)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return _common.socket_repr(self)

    def __reduce__(self) -> Any:
        # as the stdlib's socket and the compiled twin: a copy would own the
        # same descriptor (and close it twice)
        raise TypeError(f"cannot pickle '{type(self).__name__}' object")

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
        """Bind the socket to ``address``, as socket.bind(): ``(host, port)`` for
        AF_INET, ``(host, port[, flowinfo[, scope_id]])`` for AF_INET6, a str, bytes or
        path-like path for AF_UNIX, ``(cid, port)`` for AF_VSOCK.  Unlike the stdlib, a
        path with a NUL after its first byte raises ValueError (the stdlib binds it cut
        short); a leading NUL names an abstract socket.
        """
        self._sock.bind(self._address(address))

    def connect(self, address: Any) -> None:
        """Connect to ``address`` (as for bind()), as socket.connect(): with a timeout,
        TimeoutError when it passes; on a non-blocking socket, BlockingIOError
        (EINPROGRESS) while the connection goes on.  A signal handler's exception
        propagates; otherwise an interrupted connect goes on (PEP 475).
        """
        self._call_addressed(self._sock.connect, self._address(address))

    def connect_ex(self, address: Any) -> int:
        """As connect(), but a failed connection returns its errno (0 on success)
        instead of raising, as socket.connect_ex(): EWOULDBLOCK on timeout, EINPROGRESS
        on a non-blocking socket.  A bad address still raises.
        """
        return self._call_addressed(  # type: ignore[no-any-return]
            self._sock.connect_ex, self._address(address))

    def getsockname(self) -> Any:
        """The socket's own address, as socket.getsockname()."""
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        """The address of the connected peer, as socket.getpeername(); OSError
        (ENOTCONN) when not connected.
        """
        return self._sock.getpeername()

    def setsockopt(self, level: int, optname: int, value: Any, *optlen: int) -> None:
        """Set a socket option, as socket.setsockopt(): ``setsockopt(level, optname,
        value)`` with an int or a bytes-like value, or ``setsockopt(level, optname,
        None, optlen)`` to pass no value and a length (options such as
        ALG_SET_AEAD_AUTHSIZE).
        """
        self._sock.setsockopt(level, optname, value, *optlen)

    def getsockopt(self, level: int, optname: int, buflen: int = 0) -> Any:
        """An option's value, as socket.getsockopt(): an int, or with ``buflen`` (1 to
        1024) a bytes object of at most that many bytes; OSError for a ``buflen`` out of
        range.
        """
        # the stdlib takes buflen=0 as "an int option", and checks the
        # arguments in order (level, optname, then buflen)
        return self._sock.getsockopt(level, optname, buflen)

    def shutdown(self, how: int) -> None:
        """Shut down receiving (SHUT_RD), sending (SHUT_WR) or both (SHUT_RDWR), as
        socket.shutdown(); bytes a StreamSocket has buffered can still be received.
        """
        self._sock.shutdown(how)

    # -- timeouts -------------------------------------------------------------

    def settimeout(self, value: Optional[float]) -> None:
        """Set the timeout, as socket.settimeout(): None blocks, 0 never blocks
        (BlockingIOError when a call would), a positive number of seconds bounds each
        call (TimeoutError).  ValueError for a negative or NaN value.  The calls made of
        several kernel calls say how the timeout applies to them.
        """
        seconds = _common.normalize_timeout(value)
        self._sock.settimeout(None if seconds < 0 else seconds)

    def gettimeout(self) -> Optional[float]:
        """The timeout in seconds, or None when the socket blocks, as
        socket.gettimeout().
        """
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        """setblocking(True) is settimeout(None), setblocking(False) is settimeout(0.0),
        as socket.setblocking().
        """
        self._sock.setblocking(flag)

    def getblocking(self) -> bool:
        """False when the timeout is 0.0, else True (a socket with a timeout counts as
        blocking), as socket.getblocking().
        """
        return self._sock.getblocking()

    # -- data -----------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive one datagram, at most ``bufsize`` bytes of it (the rest is
        discarded), as socket.recv().

        With MSG_TRUNC the result is still only the bytes received (the stdlib's is as
        long as the whole datagram).
        """
        data: bytes = self._call(self._sock.recv, bufsize, flags)
        if not data and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        if len(data) > bufsize:
            # MSG_TRUNC on a datagram: the stdlib sizes the result by the
            # datagram's real length, past the bytes it received
            data = data[:bufsize]
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive one datagram into a writable buffer, at most ``nbytes`` bytes of it
        (0: the buffer's size), and return how many were written, as socket.recv_into()
        (with MSG_TRUNC: the datagram's real length, as the stdlib).
        """
        n: int = self._call(self._sock.recv_into, buffer, nbytes, flags)
        if not n and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        return n

    def sendto(self, data: Any, /, *args: Any) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``: send ``data``
        to ``address`` and return the bytes sent, as socket.sendto(); never raises
        SIGPIPE.  A datagram socket sends one datagram; a stream socket is connected
        already, and the kernel ignores the address (TCP) or refuses it (EISCONN).
        """
        if len(args) == 1:
            flags, address = 0, args[0]
        elif len(args) == 2:
            flags, address = args
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        # the stdlib checks the data, then the flags, then the address
        try:
            send_flags = _flags(flags)
        except TypeError:
            _readable_bytes(data).release()
            raise
        try:
            address = self._address(address)
        except (TypeError, ValueError):
            _readable_bytes(data).release()
            raise
        n: int = self._call_addressed(self._sock.sendto, data, send_flags, address)
        return n

    def send(self, data: Any, flags: int = 0) -> int:
        """Send ``data`` and return how many bytes went out (a stream socket may send
        only some), as socket.send(); never raises SIGPIPE: a stream whose peer is gone
        gives BrokenPipeError.
        """
        try:
            send_flags = _flags(flags)
        except TypeError:
            _readable_bytes(data).release()  # as the stdlib: the data is checked first
            raise
        n: int = self._call(self._sock.send, data, send_flags)
        return n



    def _accept_as(self, cls: Type[_Accepted]) -> Tuple[_Accepted, Any]:
        """accept() of a connection as a new ``cls`` (of this socket's type)."""
        fd, address = self._call(self._sock._accept)  # type: ignore[attr-defined]
        try:
            # the stdlib's own steps: the default timeout applies to the new socket
            conn = _stdlib.socket(self._sock.family, cls._KIND, self._sock.proto, fileno=fd)
        except BaseException:  # MemoryError: nothing owns the new descriptor yet
            os.close(fd)
            raise
        try:
            return cls._adopt(conn), address
        except BaseException:
            conn.close()
            raise

    def _recvfrom(self, bufsize: int, flags: int) -> Tuple[bytes, Any]:
        """recvfrom() of one datagram or record: the sender's address with it."""
        result: Tuple[bytes, Any] = self._call(self._sock.recvfrom, bufsize, flags)
        if not result[0] and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        if len(result[0]) > bufsize:
            # MSG_TRUNC: the stdlib sizes the result by the datagram's real
            # length, past the bytes it received
            result = (result[0][:bufsize], result[1])
        return result

    def _recvfrom_into(self, buffer: Any, nbytes: int, flags: int) -> Tuple[int, Any]:
        """recvfrom_into() of one datagram or record."""
        result: Tuple[int, Any] = self._call(self._sock.recvfrom_into, buffer, nbytes, flags)
        if not result[0] and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        return result

    # -- batches of messages: datagram and seqpacket sockets --------------------

    def _receive_queued(self, count: int,
                        receive: Callable[[_stdlib.socket, int, int], int]) -> int:
        """``receive(sock, k, flags)`` for message 0, waiting for it per the
        timeout, then for each message already queued, up to ``count``; returns
        how many: the loop the compiled twin's recvmmsg(MSG_WAITFORONE) makes.
        ``receive`` returns the kernel's length (MSG_TRUNC: the real one).

        Nothing here changes the socket object other threads use: on a
        socket with a timeout (where the stdlib polls before each receive,
        even with MSG_DONTWAIT) the drain runs on a private socket object
        for the same descriptor, whose timeout is 0 from birth."""
        sock = self._sock
        self._call(receive, sock, 0, _TRUNC)
        if count == 1:
            return 1

        def drain_queued() -> int:
            # listed as a call: a close() meanwhile leaves the descriptor open
            received = 1
            fd = sock.fileno()
            if fd == -1:
                return received  # closed meanwhile: the next call reports it
            drain = sock
            if sock.gettimeout():
                drain = _stdlib.socket(sock.family, int(sock.type) | _SOCK_NONBLOCK, 0,
                                       fileno=fd)
            try:
                while received < count:
                    try:
                        n = receive(drain, received, _TRUNC | _DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        break  # nothing more queued
                    except OSError as exc:
                        if sock.fileno() != -1:
                            self._defer(exc)  # the next call reports it, as recvmmsg's
                        break
                    if not n and sock.fileno() == -1:
                        break  # closed meanwhile, not a message
                    received += 1
            finally:
                if drain is not sock:
                    drain.detach()
            return received

        drained: int = self._call(drain_queued)
        return drained

    def _receive_into(self, memory: memoryview, count: int, size: int,
                      lengths: list[int], senders: list[Any]) -> int:
        """The first message (waiting per the timeout), then whatever else is
        queued, into slots of ``size`` bytes; MSG_TRUNC makes each length the
        message's real one."""

        def receive(sock: _stdlib.socket, k: int, flags: int) -> int:
            start = k * size
            n, sender = sock.recvfrom_into(memory[start:start + size], size, flags)
            lengths[k] = n
            previous = senders[k - 1] if k else None
            senders[k] = previous if sender == previous else sender
            return n

        return self._receive_queued(count, receive)

    def _send_each(self, items: Iterable[Tuple[Any, Any]]) -> int:
        """Send (data, address-or-None) items until done; the count so far
        when an error follows a partial send: the error is kept for the
        socket's next call (what fitted a non-blocking socket, or its
        deadline, is no error), as sendmmsg does."""
        sock = self._sock
        if sock.fileno() == -1:  # closed already: the stdlib's own error stands
            for data, address in items:
                if address is None:
                    sock.send(data, _NOSIGNAL)
                else:
                    sock.sendto(data, _NOSIGNAL, address)
            return 0
        steps = _Steps(sock, None, self._twins)  # one deadline for the whole call

        def send_all() -> int:
            sent = 0
            for data, address in items:
                try:
                    target = steps.sock(writing=True)
                    if address is None:
                        target.send(data, _NOSIGNAL)
                    else:
                        target.sendto(data, _NOSIGNAL, address)
                except (BlockingIOError, TimeoutError):
                    if sent:
                        return sent
                    raise
                except OSError as exc:
                    if sent:
                        self._defer(exc)
                        return sent
                    raise
                sent += 1
            return sent

        try:
            count: int = self._call(send_all)
        finally:
            steps.release()
        return count

    def _prepared(self, buffers: Iterable[Any], address: Any) -> list[Tuple[memoryview, Any]]:
        items = list(buffers)
        if not items:
            return []  # nothing to send, nothing checked
        target = None if address is None else self._address(address)
        return [(_readable_bytes(data), target) for data in items]

    # -- messages with ancillary data (docs/messages.md) ----------------------

    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any] = (), flags: int = 0,
                address: Any = None) -> int:
        """Send the bytes of ``buffers`` with the ancillary data items ``(level, type,
        data)`` of ``ancdata``, to ``address`` or (None) the connected peer, and return
        the bytes sent, as socket.sendmsg(); never raises SIGPIPE.  On a blocking stream
        the rest of the bytes goes on without the ancillary data, which went with the
        first of them.
        """
        send_flags = _flags(flags)  # converted first, then the address, as the stdlib
        if address is None:
            sent: int = self._call(self._sock.sendmsg, buffers, ancdata, send_flags)
        else:
            sent = self._call_addressed(self._sock.sendmsg, buffers, ancdata, send_flags,
                                        self._address(address))
        return sent

    def recvmsg(self, bufsize: int, ancbufsize: int = 0,
                flags: int = 0) -> Tuple[bytes, list[Tuple[int, int, bytes]], int, Any]:
        """Receive up to ``bufsize`` bytes and up to ``ancbufsize`` bytes of ancillary
        data, and return ``(data, ancdata, msg_flags, address)``, as socket.recvmsg():
        ``ancdata`` a list of ``(level, type, data)``, MSG_CTRUNC in ``msg_flags`` when
        the ancillary data did not fit.

        Received descriptors (SCM_RIGHTS) are close-on-exec, and none leaks when the
        call fails.  A StreamSocket returns the bytes it holds in its receive buffer
        first, with no ancillary data, msg_flags 0 and address None (see ``buffered``).
        """
        size, ancsize, cflags = _recvmsg_args(bufsize, ancbufsize, flags)
        if size < 0:
            raise ValueError("negative buffer size in recvmsg()")
        _check_ancbufsize(ancsize)
        data = self._buffered_bytes(size, cflags)
        if data is not None:
            return data, [], 0, None
        return self._receive_message(self._sock.recvmsg, size, ancsize, cflags)

    def recvmsg_into(self, buffers: Iterable[Any], ancbufsize: int = 0,
                     flags: int = 0) -> Tuple[int, list[Tuple[int, int, bytes]], int, Any]:
        """Receive into the writable ``buffers`` in turn, as recvmsg() does, and return
        ``(nbytes, ancdata, msg_flags, address)``, as socket.recvmsg_into().
        """
        ancsize, cflags = _ssize(ancbufsize), _cint(flags)
        if self._holds_received():
            # check what the stdlib would, in its order, before serving the buffer
            views = _writable_views(buffers)
            try:
                _check_ancbufsize(ancsize)
                copied = self._buffered_into(views, cflags)
                if copied >= 0:
                    return copied, [], 0, None
            finally:
                for view in views:
                    view.release()
        return self._receive_message(self._sock.recvmsg_into, buffers, ancsize, cflags)

    def _receive_message(self, method: Any, target: Any, ancsize: int,
                         cflags: int) -> Tuple[Any, list[Tuple[int, int, bytes]], int, Any]:
        """recvmsg()/recvmsg_into() from the kernel, always close-on-exec."""
        received, ancdata, msg_flags, address = self._call(
            method, target, ancsize, cflags | _CMSG_CLOEXEC)
        try:
            if not received and self._sock.fileno() == -1:
                raise _closed_error()  # closed meanwhile: report the close, not an end
            if not cflags & _CMSG_CLOEXEC:
                msg_flags &= ~_CMSG_CLOEXEC  # the kernel echoes the flag
            return received, ancdata, msg_flags, address
        except BaseException:
            _common.close_received(ancdata)
            raise

    def send_fds(self, buffers: Iterable[Any], fds: Iterable[int], flags: int = 0,
                 address: Any = None) -> int:
        """Send the descriptors ``fds`` (SCM_RIGHTS) with the bytes of ``buffers`` and
        return the bytes sent, as socket.send_fds(sock, ...) (which the module function
        ``send_fds`` is too).
        """
        return self.sendmsg(buffers, [_common.fds_item(fds)], flags, address)

    def recv_fds(self, bufsize: int, maxfds: int,
                 flags: int = 0) -> Tuple[bytes, list[int], int, Any]:
        """Receive up to ``bufsize`` bytes and up to ``maxfds`` descriptors and return
        ``(data, fds, msg_flags, address)``, as socket.recv_fds(sock, ...) (which the
        module function ``recv_fds`` is too).  The descriptors are close-on-exec and the
        caller's to close; MSG_CTRUNC in ``msg_flags`` says more were sent (the kernel
        closed those).
        """
        data, ancdata, msg_flags, address = self.recvmsg(
            bufsize, _common.fds_ancbufsize(maxfds), flags)
        try:
            return data, _common.received_fds(ancdata), msg_flags, address
        except BaseException:
            _common.close_received(ancdata)
            raise

    def _holds_received(self) -> bool:
        """Whether a receive must look at what the socket holds first (a
        StreamSocket's buffer, a receive in progress)."""
        return False

    def _buffered_bytes(self, size: int, flags: int) -> Optional[bytes]:
        """Up to ``size`` bytes of what a StreamSocket holds received, or None."""
        return None

    def _buffered_into(self, views: list[memoryview], flags: int) -> int:
        """Scatter what a StreamSocket holds received into ``views``."""
        raise AssertionError("only a StreamSocket holds received bytes")
