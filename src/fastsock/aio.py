"""asyncio streams on fastsock sockets, with the framing done by the socket.

``open_connection``, ``start_server``, ``open_unix_connection`` and
``start_unix_server`` take asyncio's arguments and give a ``StreamReader`` and
a ``StreamWriter`` that behave as asyncio's (its exceptions included), so code
switches by changing the import.  On top of them the reader has the fast
methods ``read_msg``, ``read_msgs`` and ``readexactly_into``, and the writer
``write_msg`` and ``write_msgs``: the framing of the blocking ``StreamSocket``
methods, run on the socket's own receive buffer.

Every read first calls the socket (non-blocking); only when it says
``BlockingIOError`` does the coroutine wait, through ``loop.add_reader``, and
it is woken once per readiness, whatever number of messages that brings.  A
call that cannot finish leaves what it read in the socket's buffer, so a
cancelled read loses and reorders nothing.  Works on any loop with
``add_reader``/``add_writer`` (the default loop, uvloop).  ``ssl=`` is refused:
use asyncio's own streams for TLS.

Datagrams (``open_datagram_endpoint``, ``create_datagram_endpoint``) live in
``_aio_datagram``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket as _stdlib
import stat
import struct
import sys
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Optional, Sequence, TypeVar,
                    Union)

import fastsock

from . import _aio_stream_py
from ._aio_datagram import (
    DatagramEndpoint as DatagramEndpoint,
    DatagramTransport as DatagramTransport,
    create_datagram_endpoint as create_datagram_endpoint,
    open_datagram_endpoint as open_datagram_endpoint,
)
from ._aio_stream_py import (
    DEFAULT_LIMIT as _DEFAULT_LIMIT,
    DEFAULT_MAX_MESSAGE as DEFAULT_MAX_MESSAGE,
    HIGH_WATER as _HIGH_WATER,
    prefix as _prefix,
    wake as _wake,
)

__all__ = [
    "StreamReader",
    "StreamWriter",
    "Server",
    "open_connection",
    "start_server",
    "open_unix_connection",
    "start_unix_server",
    "DatagramEndpoint",
    "DatagramTransport",
    "open_datagram_endpoint",
    "create_datagram_endpoint",
]

_ACCEPT_RETRY_DELAY = 1.0  # as asyncio, after running out of descriptors

# the twins' framing errors, turned into asyncio's own at this boundary
_FastIncomplete = fastsock.IncompleteReadError
_FastOverrun = fastsock.LimitOverrunError

_Self = TypeVar("_Self")

ClientConnectedCallback = Callable[["StreamReader", "StreamWriter"], Optional[Awaitable[None]]]


# the per-request methods: the live implementation's core
if TYPE_CHECKING:  # type checkers see the pure core: it is the typed reference
    from ._aio_stream_py import (
        Connection as _Connection,
        ReaderCore as _ReaderCore,
        WriterCore as _WriterCore,
        serve as _serve_task,
    )
elif fastsock.IMPLEMENTATION == "cython":
    _compiled = sys.modules["fastsock._socket_c"]
    _Connection = _compiled.AioConnection
    _ReaderCore, _WriterCore = _compiled.AioReaderCore, _compiled.AioWriterCore
    _serve_task = _compiled._aio_serve
else:
    _Connection = _aio_stream_py.Connection
    _ReaderCore, _WriterCore = _aio_stream_py.ReaderCore, _aio_stream_py.WriterCore
    _serve_task = _aio_stream_py.serve


class _ReaderMethods:
    """What aio.StreamReader adds to its implementation's core: asyncio's
    methods that are not per request."""

    _conn: _Connection
    _sock: Any
    _limit: int
    _eof: bool
    _waiter: Optional[asyncio.Future[None]]
    _frames: list[bytes]

    if TYPE_CHECKING:  # the core's, which the methods here call
        def _unsplit(self) -> None: ...
        def _lost(self, exc: OSError) -> None: ...
        def _ended(self) -> bool: ...
        def _wait_readable(self, name: str) -> asyncio.Future[None]: ...
        async def readuntil(self, separator: Union[bytes, tuple[bytes, ...]] = b"\n") -> bytes: ...

    def __repr__(self) -> str:
        info = ["StreamReader", f"fd={self._conn.fd}"]
        if self._eof:
            info.append("eof")
        if self._waiter is not None and not self._waiter.done():
            info.append("waiting")
        return "<{}>".format(" ".join(info))

    async def _readuntil_any(self, seps: list[bytes]) -> bytes:
        if self._frames:
            self._unsplit()
        conn = self._conn
        while not conn.closing:
            try:
                found = self._find_any(seps)
            except ConnectionError as exc:
                self._lost(exc)
                raise
            if found is not None:
                return found
            await self._wait_readable("readuntil")
        self._ended()  # the error that ended the connection, if any
        raise asyncio.IncompleteReadError(b"", None)

    def _find_any(self, seps: list[bytes]) -> Optional[bytes]:
        """One try of readuntil() with several separators: the socket's search
        takes one, so the bytes are looked at without being taken (its buffer,
        then the kernel's with MSG_PEEK) and only the line is taken."""
        sock = self._sock
        limit = self._limit
        longest = len(seps[-1])
        window = limit + longest  # enough to decide, as asyncio's rules go
        held = sock.buffered
        data: bytes = sock.recv(held, _stdlib.MSG_PEEK) if held else b""
        more = b""
        ended = False
        if len(data) < window:
            # a stdlib object on the same descriptor, detached at once: a peek
            # past the socket's buffer, which its own recv() does not do
            peeker = _stdlib.socket(fileno=self._conn.fd)
            try:
                more = peeker.recv(window - len(data), _stdlib.MSG_PEEK | _stdlib.MSG_DONTWAIT)
                ended = not more
            except BlockingIOError:
                pass
            finally:
                peeker.detach()
            data += more
        start = end = -1
        for sep in seps:
            at = data.find(sep, 0, window)
            if at >= 0 and (end < 0 or at + len(sep) < end):
                start, end = at, at + len(sep)
        if end >= 0:
            if start > limit:
                raise asyncio.LimitOverrunError(
                    "Separator is found, but chunk is longer than limit", start)
            line: bytes = sock.recv_exactly(end)  # all there: does not wait
            return line
        if len(data) >= window:
            raise asyncio.LimitOverrunError(
                "Separator is not found, and chunk exceed the limit", len(data) + 1 - longest)
        if ended:
            self._eof = True
            raise asyncio.IncompleteReadError(sock.take_buffered(), None)
        if more:
            # into the socket's buffer, not taken (no separator is in them, so
            # the search up to their end fails): the next readiness is new bytes
            try:
                sock.recv_until(seps[0], len(data))
            except (_FastOverrun, BlockingIOError):
                pass
        return None

    async def readline(self) -> bytes:
        """Read one line ending with b"\\n" (or what is left at the end), as
        asyncio's readline(); ValueError, with the over-long line dropped from
        the buffer, past the limit."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            sock = self._sock
            # asyncio drops the line if its end has arrived, else all it holds;
            # it may hold up to twice the limit before it stops reading
            try:
                sock.recv_until(b"\n", sock.buffered + self._limit)
            except (_FastOverrun, BlockingIOError, _FastIncomplete):
                sock.take_buffered()
            raise ValueError(exc.args[0]) from None

    def __aiter__(self: _Self) -> _Self:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class _WriterMethods:
    """What aio.StreamWriter adds to its implementation's core: the
    transport's information and limits, closing, the rarer writes."""

    _conn: _Connection
    _reader: Optional[_ReaderCore]
    _buffer: bytearray
    _closing: bool
    _eof_pending: bool
    _eof_sent: bool
    _high: int
    _low: int

    if TYPE_CHECKING:  # the core's, which the methods here call
        def _maybe_resume(self) -> None: ...
        def _send_eof(self) -> None: ...
        def write(self, data: Any) -> None: ...

    @property
    def transport(self: _Self) -> _Self:
        """asyncio's writers expose their transport; here the writer is its own."""
        return self

    def __init__(self, conn: _Connection, reader: Optional[_ReaderCore]) -> None:
        super().__init__(conn, reader)  # type: ignore[call-arg]
        self._extra: dict[str, Any] = {"socket": conn.sock}
        for key, getter in (("sockname", conn.sock.getsockname),
                            ("peername", conn.sock.getpeername)):
            try:
                self._extra[key] = getter()
            except OSError:  # e.g. a peer already gone: asyncio says None too
                self._extra[key] = None

    def __repr__(self) -> str:
        info = ["StreamWriter", f"fd={self._conn.fd}"]
        if self._closing:
            info.append("closing")
        return "<{}>".format(" ".join(info))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket`` (the fastsock socket), ``sockname``, ``peername``."""
        if name == "socket" and self._reader is not None:
            self._reader._unsplit()  # whoever reads the socket reads every byte
        return self._extra.get(name, default)

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """(low, high) water marks."""
        return self._low, self._high

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        """As asyncio's transports: high defaults to 64 KiB (4 × low when only
        low is given), low to high // 4."""
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low
        self._maybe_resume()

    def writelines(self, data: Iterable[Any]) -> None:
        """write() of the concatenated buffers."""
        self.write(b"".join(data))

    def write_msgs(self, payloads: Iterable[Any], *, prefix_size: int = 4) -> None:
        """write_msg() of each payload, with one send."""
        pack = _prefix(prefix_size).pack
        parts = []
        for payload in payloads:
            data = payload if type(payload) is bytes else bytes(payload)
            try:
                parts.append(pack(len(data)))
            except struct.error:
                raise OverflowError(f"message of {len(data)} bytes does not fit a "
                                    f"{prefix_size}-byte length prefix") from None
            parts.append(data)
        self.write(b"".join(parts))

    def can_write_eof(self) -> bool:
        """True: a stream socket can be shut down for writing."""
        return True

    def write_eof(self) -> None:
        """Shut the sending side down once everything written is sent."""
        if self._eof_pending or self._eof_sent or self._closing or self._conn.closed:
            return
        self._eof_pending = True
        if not self._buffer:
            self._send_eof()

    # -- closing ------------------------------------------------------------

    def close(self) -> None:
        """Close once what was written is sent; a pending read sees the end
        at once."""
        if self._closing or self._conn.closed:
            return
        self._closing = True
        self._conn.closing = True
        if self._reader is not None:
            self._reader._stop()
        if not self._buffer:
            # as asyncio, the descriptor goes on the next loop pass
            self._conn.loop.call_soon(self._conn.close)

    def abort(self) -> None:
        """Close now, dropping what is not yet sent (asyncio's transport.abort())."""
        if self._reader is not None:
            self._reader._stop()
        self._closing = True
        self._conn.closing = True
        self._conn.close()

    def is_closing(self) -> bool:
        """True once close() was called or the connection is lost."""
        return self._closing or self._conn.closed

    async def wait_closed(self) -> None:
        """Wait until the socket is closed; raises the error that ended it, if any."""
        await asyncio.shield(self._conn.closed_future)


class StreamReader(_ReaderMethods, _ReaderCore):
    """asyncio.StreamReader over a non-blocking fastsock StreamSocket.

    The bytes not yet returned live in the socket's own receive buffer
    (``sock.buffered``), which the framing methods read in C; the per-request
    methods are the core of the live implementation (compiled or pure).
    """


class StreamWriter(_WriterMethods, _WriterCore):
    """asyncio.StreamWriter over a non-blocking fastsock StreamSocket: a write
    is tried at once, what the kernel does not take is kept and sent when the
    socket is writable; drain() waits while more than the high-water mark is
    kept, until no more than the low-water mark is."""


_PURE_CLASSES: Optional[tuple[Any, type[StreamReader], type[StreamWriter]]] = None


def _stream_classes(sock: Any) -> tuple[Any, type[StreamReader], type[StreamWriter]]:
    """The connection, reader and writer classes for a socket: the live
    implementation's core; for a socket of the pure implementation while the
    compiled one is live, the pure core under the same names (each core works
    with either socket: this keeps a twin's socket with its twin's core)."""
    global _PURE_CLASSES
    if _ReaderCore is _aio_stream_py.ReaderCore or isinstance(sock, fastsock.StreamSocket):
        return _Connection, StreamReader, StreamWriter
    if _PURE_CLASSES is None:
        _PURE_CLASSES = (
            _aio_stream_py.Connection,
            type("StreamReader", (_ReaderMethods, _aio_stream_py.ReaderCore),
                 {"__doc__": StreamReader.__doc__, "__module__": __name__}),
            type("StreamWriter", (_WriterMethods, _aio_stream_py.WriterCore),
                 {"__doc__": StreamWriter.__doc__, "__module__": __name__}))
    return _PURE_CLASSES


def _streams(sock: Any, loop: asyncio.AbstractEventLoop,
             limit: int) -> tuple[StreamReader, StreamWriter]:
    """A reader and a writer on a new connection of ``sock``."""
    connection_class, reader_class, writer_class = _stream_classes(sock)
    conn = connection_class(sock, loop)
    reader = reader_class(conn, limit)
    return reader, writer_class(conn, reader)


def _as_fastsock(sock: Any) -> Any:
    """A fastsock StreamSocket (of either implementation) as it is; a stdlib
    socket's descriptor taken over by one of the live implementation."""
    if isinstance(sock, _stdlib.socket):
        return fastsock.StreamSocket.from_socket(sock)  # refuses an SSLSocket
    return sock


def _check_ssl(ssl: Any) -> None:
    if ssl is not None and ssl is not False:
        raise ValueError("fastsock.aio does not do TLS: use asyncio.open_connection / "
                         "asyncio.start_server with ssl=")


async def _connect(loop: asyncio.AbstractEventLoop, sock: Any, address: Any) -> None:
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass
    fut: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)
    err = sock.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_ERROR)
    if err:
        raise OSError(err, f"Connect call failed {address!r}: {os.strerror(err)}")


def _set_nodelay(sock: Any) -> None:
    if sock.family in (_stdlib.AF_INET, _stdlib.AF_INET6):
        sock.setsockopt(_stdlib.IPPROTO_TCP, _stdlib.TCP_NODELAY, 1)  # as asyncio's transports


async def open_connection(host: Optional[str] = None, port: Optional[int] = None, *,
                          limit: int = _DEFAULT_LIMIT, ssl: Any = None, family: int = 0,
                          proto: int = 0, flags: int = 0, sock: Any = None,
                          local_addr: Optional[tuple[str, int]] = None,
                          server_hostname: Optional[str] = None,
                          ) -> tuple[StreamReader, StreamWriter]:
    """Connect by TCP, as asyncio.open_connection(), and return (reader, writer).

    ``sock``: a connected stream socket to use instead (a fastsock one of either
    implementation, or a stdlib one, whose descriptor is taken over).
    """
    _check_ssl(ssl)
    if server_hostname is not None:
        raise ValueError("server_hostname is only meaningful with ssl")
    loop = asyncio.get_running_loop()
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sock = _as_fastsock(sock)
        _set_nodelay(sock)
        return _streams(sock, loop, limit)
    if host is None and port is None:
        raise ValueError("host and port was not specified and no sock specified")
    infos = await loop.getaddrinfo(host, port, family=family, type=_stdlib.SOCK_STREAM,
                                   proto=proto, flags=flags)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    errors: list[OSError] = []
    for af, kind, pr, _, address in infos:
        candidate = fastsock.StreamSocket(af, kind, pr)
        try:
            candidate.setblocking(False)
            if local_addr is not None:
                candidate.bind(local_addr)
            await _connect(loop, candidate, address)
        except OSError as exc:
            candidate.close()
            errors.append(exc)
            continue
        except BaseException:
            candidate.close()
            raise
        _set_nodelay(candidate)
        return _streams(candidate, loop, limit)
    if len(errors) == 1:
        raise errors[0]
    raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


async def open_unix_connection(path: Optional[str] = None, *, limit: int = _DEFAULT_LIMIT,
                               ssl: Any = None, sock: Any = None,
                               ) -> tuple[StreamReader, StreamWriter]:
    """Connect to a Unix stream socket, as asyncio.open_unix_connection()."""
    _check_ssl(ssl)
    loop = asyncio.get_running_loop()
    if sock is not None:
        if path is not None:
            raise ValueError("path and sock can not be specified at the same time")
        return _streams(_as_fastsock(sock), loop, limit)
    if path is None:
        raise ValueError("no path and sock were specified")
    candidate = fastsock.StreamSocket(_stdlib.AF_UNIX)
    try:
        candidate.setblocking(False)
        await _connect(loop, candidate, os.fspath(path))
    except BaseException:
        candidate.close()
        raise
    return _streams(candidate, loop, limit)


class Server:
    """What start_server() returns: asyncio.Server's methods over listening
    fastsock sockets."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[Any],
                 callback: ClientConnectedCallback, limit: int, backlog: int,
                 unix_path: Optional[str] = None) -> None:
        self._loop = loop
        self._sockets = sockets
        self._callback = callback
        self._limit = limit
        self._backlog = backlog
        self._serving = False
        self._closed = False
        self._unix_path = unix_path
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving_forever: Optional[asyncio.Future[None]] = None
        self._idle: Optional[asyncio.Future[None]] = None
        self._shut: asyncio.Future[None] = loop.create_future()  # done by close()
        for sock in sockets:
            sock.setblocking(False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets (empty once closed)."""
        return tuple(self._sockets)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the server runs on."""
        return self._loop

    def is_serving(self) -> bool:
        """Whether connections are being accepted."""
        return self._serving

    async def start_serving(self) -> None:
        """Start accepting connections (start_server() does unless told not to)."""
        self._start()
        await asyncio.sleep(0)

    def _start(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: Any) -> None:
        # a bounded batch per readiness, as asyncio: the loop's other work goes on
        for _ in range(self._backlog):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # out of descriptors: stop listening a while rather than spin
                self._loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": exc, "socket": listener})
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(_ACCEPT_RETRY_DELAY, self._resume_accepting, listener)
                return
            self._serve(conn)

    def _resume_accepting(self, listener: Any) -> None:
        if self._serving and listener in self._sockets:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _serve(self, sock: Any) -> None:
        _set_nodelay(sock)
        reader, writer = _streams(sock, self._loop, self._limit)
        conn = reader._conn
        self._connections.add(conn)
        conn.on_close = lambda: self._forget(conn)
        result = self._callback(reader, writer)
        if asyncio.iscoroutine(result):
            task = _serve_task(self._loop, reader, result)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._handler_done(t, writer))

    def _handler_done(self, task: "asyncio.Task[None]", writer: StreamWriter) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            writer.close()
            return
        exc = task.exception()
        if exc is not None:
            # as asyncio 3.12: reported, and the connection closed
            self._loop.call_exception_handler({
                "message": "Unhandled exception in client_connected_cb",
                "exception": exc, "transport": writer})
            writer.close()

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def close(self) -> None:
        """Stop listening and close the listening sockets; connections go on."""
        if self._closed:
            return
        self._closed = True
        self._serving = False
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []
        self._shut.set_result(None)
        if self._unix_path is not None:
            try:
                os.unlink(self._unix_path)
            except FileNotFoundError:
                pass
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()

    def close_clients(self) -> None:
        """Close every connection accepted by this server."""
        for conn in list(self._connections):
            if conn.writer is not None:
                conn.writer.close()

    def abort_clients(self) -> None:
        """Close every connection now, dropping what is not sent."""
        for conn in list(self._connections):
            conn.close()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections are (asyncio 3.12)."""
        await asyncio.shield(self._shut)
        if not self._connections:
            return
        if self._idle is None or self._idle.done():
            self._idle = self._loop.create_future()
        await asyncio.shield(self._idle)

    async def serve_forever(self) -> None:
        """Accept connections until cancelled (closes the server then)."""
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _listener(family: int, address: Any, backlog: int, reuse_address: Optional[bool],
              reuse_port: Optional[bool], proto: int = 0) -> Any:
    sock = fastsock.StreamSocket(family, _stdlib.SOCK_STREAM, proto)
    try:
        if family != _stdlib.AF_UNIX:
            if reuse_address is None or reuse_address:
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEPORT, 1)
            if family == _stdlib.AF_INET6:
                # as asyncio: an IPv6 listener does not take the IPv4 port too
                sock.setsockopt(_stdlib.IPPROTO_IPV6, _stdlib.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_server(client_connected_cb: ClientConnectedCallback,
                       host: Union[str, Sequence[str], None] = None,
                       port: Optional[int] = None, *, limit: int = _DEFAULT_LIMIT,
                       family: int = _stdlib.AF_UNSPEC, flags: int = _stdlib.AI_PASSIVE,
                       sock: Any = None, backlog: int = 100, ssl: Any = None,
                       reuse_address: Optional[bool] = None, reuse_port: Optional[bool] = None,
                       start_serving: bool = True) -> Server:
    """Start a TCP server, as asyncio.start_server(): ``client_connected_cb(reader,
    writer)`` is called (a coroutine function's result run as a task) for each
    connection.  ``sock``: a listening socket to use instead (fastsock or stdlib)."""
    _check_ssl(ssl)
    loop = asyncio.get_running_loop()
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sockets = [_as_fastsock(sock)]
    else:
        hosts: list[Optional[str]] = (
            [host] if host is None or isinstance(host, str) else list(host))
        infos = []
        for name in hosts:
            infos.extend(await loop.getaddrinfo(name, port, family=family,
                                                type=_stdlib.SOCK_STREAM, flags=flags))
        sockets = []
        seen = set()
        try:
            for af, _, pr, _, address in infos:
                if (af, address) in seen:
                    continue
                seen.add((af, address))
                sockets.append(_listener(af, address, backlog, reuse_address, reuse_port, pr))
        except BaseException:
            for made in sockets:
                made.close()
            raise
    server = Server(loop, sockets, client_connected_cb, limit, backlog)
    if start_serving:
        await server.start_serving()
    return server


async def start_unix_server(client_connected_cb: ClientConnectedCallback,
                            path: Optional[str] = None, *, limit: int = _DEFAULT_LIMIT,
                            sock: Any = None, backlog: int = 100, ssl: Any = None,
                            start_serving: bool = True, cleanup_socket: bool = True) -> Server:
    """Start a Unix stream server, as asyncio.start_unix_server(); a stale
    socket file at ``path`` is replaced, and removed when the server closes."""
    _check_ssl(ssl)
    loop = asyncio.get_running_loop()
    unix_path = None
    if sock is not None:
        if path is not None:
            raise ValueError("path and sock can not be specified at the same time")
        listener = _as_fastsock(sock)
    else:
        if path is None:
            raise ValueError("path was not specified, and no sock specified")
        path = os.fspath(path)
        if path[0] not in ("\0", "\x00"):
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.remove(path)
            except FileNotFoundError:
                pass
            if cleanup_socket:
                unix_path = path
        listener = _listener(_stdlib.AF_UNIX, path, backlog, None, None)
    server = Server(loop, [listener], client_connected_cb, limit, backlog, unix_path)
    if start_serving:
        await server.start_serving()
    return server
