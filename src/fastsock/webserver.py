"""A static-file HTTP/1.1 server on fastsock: ``python -m fastsock.webserver``.

One single-threaded readiness loop (epoll where the OS has it, the
``selectors`` module elsewhere) per worker process drives non-blocking fastsock
sockets; ``--workers N`` runs N such processes on one port with SO_REUSEPORT.
Requests are parsed by httptools (llhttp).  Small files are kept in memory
and go out together with their headers; the responses to everything one read
brought in leave in one ``send_buffers`` call.  Larger files go out with
``StreamSocket.sendfile``.

Safe by default: it binds 127.0.0.1, refuses any path that leaves the served
directory (``..``, percent-encoded dots or slashes, symlinks), limits the size
of every part of a request, times out idle and slow clients, and answers
every malformed request with a 4xx status and the connection closed.
SIGINT and SIGTERM stop it gracefully: it stops accepting, finishes the
responses in flight, then exits.
"""

from __future__ import annotations

import argparse
import email.utils
import errno
import html
import mimetypes
import os
import select
import signal
import socket as _stdlib
import stat
import sys
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from typing import (Any, Callable, Deque, Dict, List, Optional, Sequence, TextIO, Tuple, Union,
                    cast)

import fastsock

from ._web_parser import require_httptools

DEFAULT_PORT = 28333
SERVER_NAME = f"fastsock/{fastsock.__version__}"

_READ_SIZE = 65536
_MAX_IOV = 64            # buffers per send_buffers call
_JOIN_LIMIT = 256 * 1024  # queued bytes up to which responses are joined into one send
_ALLOWED = "GET, HEAD"

REASONS = {
    200: "OK", 206: "Partial Content", 301: "Moved Permanently", 304: "Not Modified",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
    416: "Range Not Satisfiable", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


@dataclass
class Limits:
    """What one client may ask of the server; every limit has a status code."""

    max_uri: int = 8192                 # 414 beyond this
    max_header_bytes: int = 16384       # 431 beyond this (request line included)
    max_headers: int = 100              # 431 beyond this many header fields
    max_body: int = 1 << 20             # 413 beyond this (bodies are read and dropped)
    max_connections: int = 1024         # per worker; beyond it new clients wait in the backlog
    idle_timeout: float = 30.0          # a keep-alive connection with nothing to do
    request_timeout: float = 10.0       # first byte of a request to its last (slowloris)
    send_timeout: float = 30.0          # a client that stops reading its response
    linger_timeout: float = 2.0         # reading what a client still sends after we close
    shutdown_grace: float = 10.0        # SIGINT/SIGTERM: time to finish responses in flight
    cache_file_size: int = 65536        # files up to this size are served from memory
    cache_bytes: int = 32 << 20         # memory for those files, per worker


class _Reject(Exception):
    """A request the server refuses; the connection closes after the answer."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# -- HTTP helpers -------------------------------------------------------------

_HOST, _CONDITIONAL, _CONTENT_LENGTH = 1, 2, 3
_NOTABLE_HEADERS = {
    b"host": _HOST, b"content-length": _CONTENT_LENGTH, b"if-none-match": _CONDITIONAL,
    b"if-modified-since": _CONDITIONAL, b"range": _CONDITIONAL, b"if-range": _CONDITIONAL,
}


class _DateCache:
    """The ``Date`` header value, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self.value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self.value = email.utils.formatdate(second, usegmt=True)
        return self.value


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def _parse_http_date(value: bytes) -> Optional[int]:
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None  # pragma: no cover - older Pythons return None
    return int(parsed.timestamp())


def _etag_matches(header: bytes, etag: str, weak: bool) -> bool:
    """``If-None-Match`` (weak comparison) or ``If-Range`` (strong) against ``etag``."""
    wanted = etag.encode("ascii")
    for candidate in header.split(b","):
        candidate = candidate.strip()
        if candidate == b"*" and weak:
            return True
        if weak and candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == wanted:
            return True
    return False


def parse_range(header: bytes, size: int) -> Union[None, Tuple[int, int], str]:
    """One byte range of a ``Range`` header as (start, end inclusive).

    None means "ignore the header and send everything" (malformed, not bytes,
    or several ranges); "unsatisfiable" means 416.
    """
    unit, _, spec = header.partition(b"=")
    if unit.strip().lower() != b"bytes" or not spec:
        return None
    parts = [p.strip() for p in spec.split(b",")]
    if len(parts) != 1:
        return None
    first, dash, last = parts[0].partition(b"-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not (first.isdigit() or first == b"") or not (last.isdigit() or last == b""):
        return None
    if first == b"":
        if last == b"":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return (max(size - suffix, 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, min(end, size - 1))


def _log_escape(raw: bytes) -> str:
    """Request-line bytes for the access log, with nothing that could forge a line."""
    out = []
    for byte in raw:
        if 0x20 <= byte < 0x7F and byte not in (0x22, 0x5C):
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def _content_type(path: str) -> str:
    kind, encoding = mimetypes.guess_type(path, strict=False)
    if encoding == "gzip":
        return "application/gzip"
    if encoding is not None:
        return "application/octet-stream"
    if kind is None:
        return "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json",
                                           "image/svg+xml", "application/xml"):
        return kind + "; charset=utf-8"
    return kind


# -- responses ----------------------------------------------------------------


class _FileBody:
    """A byte range of an open file still to be sent with sendfile."""

    __slots__ = ("file", "offset", "remaining")

    def __init__(self, file: Any, offset: int, count: int) -> None:
        self.file = file
        self.offset = offset
        self.remaining = count


_Output = Union[bytes, memoryview, _FileBody]


class _CachedFile:
    """A small file kept in memory with the parts of its response headers."""

    __slots__ = ("path", "key", "body", "etag", "last_modified", "mtime", "fixed_headers",
                 "date", "head_200")

    def __init__(self, path: str, key: Tuple[int, int, int], body: bytes, mtime: int) -> None:
        self.path = path
        self.key = key
        self.body = body
        self.mtime = mtime
        self.etag = f'"{key[0]:x}-{key[1]:x}"'
        self.last_modified = _http_date(mtime)
        self.fixed_headers = (
            f"Server: {SERVER_NAME}\r\n"
            f"Content-Type: {_content_type(path)}\r\n"
            f"Last-Modified: {self.last_modified}\r\n"
            f"ETag: {self.etag}\r\n"
            "Accept-Ranges: bytes\r\n")
        self.date = ""
        self.head_200 = b""

    def head(self, date: str) -> bytes:
        """The 200 response head for keep-alive, rebuilt once a second."""
        if date != self.date:
            self.date = date
            self.head_200 = (
                f"HTTP/1.1 200 OK\r\nDate: {date}\r\n{self.fixed_headers}"
                f"Content-Length: {len(self.body)}\r\n\r\n").encode("latin-1")
        return self.head_200


def _stat_key(info: os.stat_result) -> Tuple[int, int, int]:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


# -- one connection -----------------------------------------------------------


class _Connection:
    """A client: its socket, its parser and what is still to be sent.

    The parser calls the ``on_*`` methods; a completed request is answered at
    once and its response queued, so responses stay in request order.
    """

    def __init__(self, server: "Server", sock: Any, peer: str, now: float) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.parser = server._httptools.HttpRequestParser(self)
        self.out: Deque[_Output] = deque()
        self.out_bytes = 0              # bytes queued in out, files not counted
        self.files = 0                  # file bodies queued in out
        self.writing = False            # registered for writability instead of reads
        self.close_after_flush = False  # a response said "Connection: close"
        self.eof = False                # the client will send nothing more
        self.lingering_until = 0.0      # > 0: write side shut, discarding input
        self.last_progress = now
        self.request_started = 0.0      # > 0 while a request is being received
        self.in_head = False
        self.head_bytes = 0
        self.url = b""
        self.headers: List[Tuple[bytes, bytes]] = []
        self.hosts = 0
        self.conditional = False        # a header that can change the answer to a GET
        self.body_bytes = 0

    # parser callbacks
    def on_message_begin(self) -> None:
        self.request_started = self.server.now
        self.in_head = True
        self.head_bytes = 0
        self.url = b""
        self.headers = []
        self.hosts = 0
        self.conditional = False
        self.body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.server.limits.max_uri:
            raise _Reject(414)
        self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        self.head_bytes += len(name) + len(value) + 4
        limits = self.server.limits
        if self.head_bytes > limits.max_header_bytes or len(headers) > limits.max_headers:
            raise _Reject(431)
        kind = _NOTABLE_HEADERS.get(name.lower())
        if kind is not None:
            if kind == _HOST:
                self.hosts += 1
            elif kind == _CONDITIONAL:
                self.conditional = True
            elif value.strip().isdigit() and int(value) > limits.max_body:
                # refuse an oversized body before it arrives (llhttp checks the syntax)
                raise _Reject(413)

    def on_headers_complete(self) -> None:
        self.in_head = False

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.server.limits.max_body:
            raise _Reject(413)

    def on_message_complete(self) -> None:
        self.request_started = 0.0
        parser = self.parser
        version = parser.get_http_version()
        if self.hosts != 1 and (self.hosts or version == "1.1"):
            raise _Reject(400)  # RFC 9112: exactly one Host in an HTTP/1.1 request
        self.server._answer(self, parser.get_method(), self.url, self.headers,
                            parser.should_keep_alive(), version)


# -- the server ---------------------------------------------------------------


class _Poller:
    """Readiness for descriptors: epoll where there is one, selectors elsewhere."""

    READ = 1
    WRITE = 4

    def __init__(self, use_selectors: bool = False) -> None:
        self._epoll: Any = None
        if hasattr(select, "epoll") and not use_selectors:
            self._epoll = select.epoll()
            self.READ, self.WRITE = select.EPOLLIN, select.EPOLLOUT
            self.register = self._epoll.register
            self.modify = self._epoll.modify
            self.unregister = self._epoll.unregister
            self.poll = self._epoll.poll
        else:
            import selectors
            self._selector = selectors.DefaultSelector()
            self.READ, self.WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
            self.register = self._sel_register
            self.modify = self._sel_modify
            self.unregister = self._selector.unregister
            self.poll = self._sel_poll

    def _sel_register(self, fd: int, events: int) -> None:
        self._selector.register(fd, events)

    def _sel_modify(self, fd: int, events: int) -> None:
        self._selector.modify(fd, events)

    def _sel_poll(self, timeout: float) -> List[Tuple[int, int]]:
        return [(key.fd, events) for key, events in self._selector.select(timeout)]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        else:
            self._selector.close()


class Server:
    """Serves the files under ``directory`` to clients of ``listener``.

    ``listener`` is a listening fastsock ``StreamSocket``; the server makes it
    non-blocking and owns it from then on.  ``serve_forever()`` runs until
    ``stop()`` (or SIGINT/SIGTERM with ``install_signal_handlers()``) and then
    finishes what is in flight.
    """

    def __init__(self, listener: Any, directory: str, *, limits: Optional[Limits] = None,
                 log: Optional[TextIO] = None, use_selectors: bool = False) -> None:
        self._httptools = require_httptools()
        self.root = os.path.realpath(directory)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", directory)
        self.limits = limits or Limits()
        self.log = log
        self.listener = listener
        listener.setblocking(False)
        self.listen_fd = listener.fileno()
        self.poller = _Poller(use_selectors)
        self.poller.register(self.listen_fd, self.poller.READ)
        self.accepting = True
        self.accept_paused_until = 0.0
        self.conns: Dict[int, _Connection] = {}
        self.cache: Dict[bytes, _CachedFile] = {}
        self.cache_size = 0
        self.dates = _DateCache()
        self.now = time.monotonic()
        self.stopping = False
        self.stop_deadline = 0.0
        self._log_lines: List[str] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.poller.register(self._wake_r, self.poller.READ)
        self._tcp = listener.family in (fastsock.AF_INET, fastsock.AF_INET6)
        self.requests_served = 0

    # -- control ---------------------------------------------------------------

    def stop(self) -> None:
        """Stop accepting and finish the responses in flight (any thread, or a signal)."""
        self.stopping = True
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM stop the server gracefully; a second one stops it at once."""
        def handler(signum: int, frame: Any) -> None:
            if self.stopping:
                self.stop_deadline = time.monotonic()
            self.stop()
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    # -- the loop ----------------------------------------------------------------

    def serve_forever(self) -> None:
        poller = self.poller
        conns = self.conns
        listen_fd, wake_fd = self.listen_fd, self._wake_r
        READ = poller.READ
        tick = min(1.0, self.limits.request_timeout / 4, self.limits.idle_timeout / 4,
                   self.limits.linger_timeout / 2)
        next_sweep = time.monotonic() + tick
        try:
            while True:
                if self.stopping and not self._wind_down():
                    break
                events = poller.poll(tick)
                self.now = now = time.monotonic()
                for fd, mask in events:
                    conn = conns.get(fd)
                    if conn is not None:
                        if mask & READ:
                            self._on_readable(conn)
                        else:
                            self._flush(conn)
                    elif fd == listen_fd:
                        self._accept()
                    elif fd == wake_fd:
                        try:
                            os.read(wake_fd, 512)
                        except OSError:
                            pass
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + tick
                if self._log_lines:
                    self._write_log()
        finally:
            self._close_everything()

    def _wind_down(self) -> bool:
        """Graceful stop: False once nothing is left in flight (or the grace is over)."""
        now = time.monotonic()
        if self.accepting or self.listener is not None:
            if self.stop_deadline == 0.0:
                self.stop_deadline = now + self.limits.shutdown_grace
            self._stop_accepting()
            if self.listener is not None:
                self.listener.close()
                self.listener = None
            for conn in list(self.conns.values()):
                conn.close_after_flush = True
                if not conn.out and conn.request_started == 0.0:
                    self._close(conn)
        if now >= self.stop_deadline:
            return False
        return bool(self.conns)

    def _close_everything(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn)
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self._log_lines:
            self._write_log()
        self.poller.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- accepting ----------------------------------------------------------------

    def _stop_accepting(self) -> None:
        if self.accepting:
            self.accepting = False
            self.poller.unregister(self.listen_fd)

    def _start_accepting(self) -> None:
        if not self.accepting and not self.stopping and self.listener is not None:
            self.accepting = True
            self.poller.register(self.listen_fd, self.poller.READ)

    def _accept(self) -> None:
        listener = self.listener
        limit = self.limits.max_connections
        for _ in range(64):
            if len(self.conns) >= limit:
                self._stop_accepting()      # the backlog holds the rest
                return
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                return
            except (ConnectionAbortedError, ConnectionResetError):
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # out of descriptors: back off instead of spinning on accept
                    self._stop_accepting()
                    self.accept_paused_until = self.now + 0.25
                    self._note(f"accept: {exc.strerror}; pausing new connections")
                    return
                raise
            sock.setblocking(False)
            if self._tcp:
                try:
                    sock.setsockopt(_stdlib.IPPROTO_TCP, _stdlib.TCP_NODELAY, 1)
                except OSError:
                    pass
                peer = str(address[0])
            else:
                peer = "unix"
            conn = _Connection(self, sock, peer, self.now)
            self.conns[conn.fd] = conn
            self.poller.register(conn.fd, self.poller.READ)

    # -- reading ------------------------------------------------------------------

    def _on_readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.last_progress = self.now
        if conn.lingering_until:
            if not data:
                self._close(conn)
            return
        if not data:
            conn.eof = True
            if conn.out:
                conn.close_after_flush = True
                self._want_write(conn)
            else:
                self._close(conn)
            return
        try:
            conn.parser.feed_data(data)
        except self._httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            status = cause.status if isinstance(cause, _Reject) else 500
            if status == 500:
                self._note(f"internal error: {cause!r}")
            self._fail(conn, status)
            return
        except self._httptools.HttpParserUpgrade:
            # no protocol switching here: what was asked before is answered,
            # then the connection closes
            conn.close_after_flush = True
        except self._httptools.HttpParserError as exc:
            self._fail(conn, 505 if str(exc) == "Invalid HTTP version" else 400)
            return
        if conn.in_head:
            # a header still arriving: httptools holds it until it ends, so
            # bound what one unfinished head may take (pipelined data before
            # it counts too, which only makes the bound a little stricter)
            conn.head_bytes += len(data)
            if conn.head_bytes > 2 * self.limits.max_header_bytes:
                self._fail(conn, 431)
                return
        if conn.out:
            self._flush(conn)

    # -- answering ----------------------------------------------------------------

    def _answer(self, conn: _Connection, method: bytes, target: bytes,
                headers: List[Tuple[bytes, bytes]], keep_alive: bool, version: str) -> None:
        """Queue the response to one complete request."""
        self.requests_served += 1
        if conn.close_after_flush:
            return  # a response before said Connection: close
        if self.stopping:
            keep_alive = False
        if version not in ("1.1", "1.0"):
            self._respond_error(conn, 505, method, target, version, keep_alive=False)
            return
        head_only = method == b"HEAD"
        if method != b"GET" and not head_only:
            self._respond_error(conn, 405, method, target, version, keep_alive,
                                extra=f"Allow: {_ALLOWED}\r\n")
            return
        path, _, query = target.partition(b"?")
        entry = self.cache.get(path)
        if entry is not None and not conn.conditional and keep_alive and version == "1.1":
            # the hot path: a cached small file, revalidated with one stat
            try:
                key = _stat_key(os.stat(entry.path))
            except OSError:
                key = None
            if key == entry.key:
                head = entry.head(self.dates.now())
                conn.out.append(head)
                size = len(entry.body)
                if not head_only and size:
                    conn.out.append(entry.body)
                    conn.out_bytes += len(head) + size
                else:
                    conn.out_bytes += len(head)
                    size = 0
                if self.log is not None:
                    self._access(conn, method, target, version, 200, size)
                return
            self._uncache(path)
        try:
            self._serve_path(conn, method, path, query, headers, keep_alive, version)
        except _Reject as exc:
            self._respond_error(conn, exc.status, method, target, version, keep_alive)
        except OSError as exc:
            status = {errno.ENOENT: 404, errno.ENOTDIR: 404, errno.EACCES: 403,
                      errno.EPERM: 403, errno.ELOOP: 404, errno.ENAMETOOLONG: 414,
                      errno.EISDIR: 403}.get(exc.errno or 0, 500)
            if status == 500:
                self._note(f"{exc!r} serving {target!r}")
            self._respond_error(conn, status, method, target, version, keep_alive)

    def _resolve(self, path: bytes) -> str:
        """The file system path for a request path, or _Reject/OSError."""
        if not path.startswith(b"/"):
            if path == b"*":
                raise _Reject(400)
            try:
                path = self._httptools.parse_url(path).path or b"/"
            except self._httptools.HttpParserInvalidURLError:
                raise _Reject(400) from None
            if not path.startswith(b"/"):
                raise _Reject(400)
        lowered = path.lower()
        if b"%2f" in lowered or b"%5c" in lowered or b"%00" in lowered:
            raise _Reject(400)  # an encoded separator or NUL never names a file here
        decoded = urllib.parse.unquote_to_bytes(path)
        if b"\0" in decoded or b"\\" in decoded:
            raise _Reject(400)
        parts = []
        for segment in decoded.split(b"/"):
            if segment in (b"", b"."):
                continue
            if segment == b"..":
                raise _Reject(400)
            parts.append(os.fsdecode(segment))
        candidate = os.path.join(self.root, *parts)
        real = os.path.realpath(candidate)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise _Reject(403)  # a symlink that leads outside the served directory
        return real

    def _serve_path(self, conn: _Connection, method: bytes, path: bytes, query: bytes,
                    headers: List[Tuple[bytes, bytes]], keep_alive: bool, version: str) -> None:
        real = self._resolve(path)
        info = os.stat(real)
        if stat.S_ISDIR(info.st_mode):
            if not path.endswith(b"/"):
                location = path + b"/" + (b"?" + query if query else b"")
                self._respond_error(conn, 301, method, path, version, keep_alive,
                                    extra=f"Location: {location.decode('latin-1')}\r\n")
                return
            index = os.path.join(real, "index.html")
            try:
                index_info = os.stat(index)
            except FileNotFoundError:
                self._send_listing(conn, method, path, real, keep_alive, version)
                return
            if not stat.S_ISREG(index_info.st_mode):
                self._send_listing(conn, method, path, real, keep_alive, version)
                return
            self._send_file(conn, method, path, index, headers, keep_alive, version)
            return
        if not stat.S_ISREG(info.st_mode):
            raise _Reject(403)  # never open a FIFO, socket or device
        self._send_file(conn, method, path, real, headers, keep_alive, version)

    def _send_file(self, conn: _Connection, method: bytes, target: bytes, real: str, headers: List[Tuple[bytes, bytes]], keep_alive: bool,
                   version: str) -> None:
        file: Any = open(
            os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb", buffering=0)
        try:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _Reject(403)
            size = info.st_size
            key = _stat_key(info)
            mtime = int(info.st_mtime)
            entry: Optional[_CachedFile] = None
            if size <= self.limits.cache_file_size:
                body = file.read(size + 1)
                if body is None or len(body) != size:
                    raise OSError(errno.EAGAIN, "file changed while being read")
                entry = _CachedFile(real, key, body, mtime)
                self._cache(target, entry)
            etag = f'"{key[0]:x}-{key[1]:x}"'
            last_modified = _http_date(mtime)
            request = {name.lower(): value for name, value in headers}
            status = 200
            start, length = 0, size
            inm = request.get(b"if-none-match")
            if inm is not None:
                if _etag_matches(inm, etag, weak=True):
                    status = 304
            else:
                ims = request.get(b"if-modified-since")
                if ims is not None:
                    since = _parse_http_date(ims)
                    if since is not None and mtime <= since:
                        status = 304
            extra = ""
            range_header = request.get(b"range")
            if status == 200 and range_header is not None and method == b"GET":
                if_range = request.get(b"if-range")
                honour = True
                if if_range is not None:
                    if if_range.startswith(b'"'):
                        honour = _etag_matches(if_range, etag, weak=False)
                    else:
                        honour = _parse_http_date(if_range) == mtime
                wanted = parse_range(range_header, size) if honour else None
                if wanted == "unsatisfiable":
                    self._respond_error(conn, 416, method, target, version, keep_alive,
                                        extra=f"Content-Range: bytes */{size}\r\n")
                    return
                if isinstance(wanted, tuple):
                    status = 206
                    start, length = wanted[0], wanted[1] - wanted[0] + 1
                    extra = f"Content-Range: bytes {wanted[0]}-{wanted[1]}/{size}\r\n"
            head = self._head(status, keep_alive, version,
                              f"Content-Type: {_content_type(real)}\r\n"
                              f"Last-Modified: {last_modified}\r\n"
                              f"ETag: {etag}\r\nAccept-Ranges: bytes\r\n" + extra,
                              length if status != 304 else None)
            conn.out.append(head)
            conn.out_bytes += len(head)
            sent = 0
            if status != 304 and method == b"GET" and length:
                sent = length
                if entry is not None:
                    conn.out.append(memoryview(entry.body)[start:start + length]
                                    if length != size else entry.body)
                    conn.out_bytes += length
                else:
                    conn.out.append(_FileBody(file, start, length))
                    conn.files += 1
                    file = None  # the queue owns it now
            if not keep_alive:
                conn.close_after_flush = True
            self._access(conn, method, target, version, status, sent)
        finally:
            if file is not None:
                file.close()

    def _send_listing(self, conn: _Connection, method: bytes, path: bytes, real: str,
                      keep_alive: bool, version: str) -> None:
        shown = urllib.parse.unquote(path.decode("latin-1"), errors="surrogateescape")
        title = html.escape(f"Index of {shown}", quote=False)
        rows = []
        if real != self.root:
            rows.append('<tr><td><a href="../">../</a></td><td></td><td></td></tr>')
        with os.scandir(real) as entries:
            listed = sorted(entries, key=lambda e: e.name)
        for entry in listed:
            try:
                is_dir = entry.is_dir()
                info = entry.stat()
            except OSError:
                continue
            name = entry.name + ("/" if is_dir else "")
            href = urllib.parse.quote(os.fsencode(entry.name)) + ("/" if is_dir else "")
            size = "-" if is_dir else str(info.st_size)
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.st_mtime))
            rows.append(f'<tr><td><a href="{html.escape(href)}">{html.escape(name)}</a></td>'
                        f'<td>{when}</td><td align="right">{size}</td></tr>')
        body = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title></head>\n<body><h1>{title}</h1>\n<table>\n"
            "<tr><th>Name</th><th>Modified (UTC)</th><th>Size</th></tr>\n"
            + "\n".join(rows) + f"\n</table>\n<hr><address>{SERVER_NAME}</address>\n"
            "</body></html>\n").encode("utf-8", "surrogateescape")
        self._queue(conn, 200, method, path, version, keep_alive,
                    "Content-Type: text/html; charset=utf-8\r\n", body)

    def _head(self, status: int, keep_alive: bool, version: str, headers: str,
              length: Optional[int]) -> bytes:
        connection = ""
        if not keep_alive:
            connection = "Connection: close\r\n"
        elif version == "1.0":
            connection = "Connection: keep-alive\r\n"
        length_line = f"Content-Length: {length}\r\n" if length is not None else ""
        return (f"HTTP/1.1 {status} {REASONS[status]}\r\nDate: {self.dates.now()}\r\n"
                f"Server: {SERVER_NAME}\r\n{headers}{length_line}{connection}\r\n"
                ).encode("latin-1")

    def _queue(self, conn: _Connection, status: int, method: bytes, target: bytes,
               version: str, keep_alive: bool, headers: str, body: bytes) -> None:
        head = self._head(status, keep_alive, version, headers, len(body))
        conn.out.append(head)
        conn.out_bytes += len(head)
        sent = 0
        if method != b"HEAD" and body:
            conn.out.append(body)
            conn.out_bytes += len(body)
            sent = len(body)
        if not keep_alive:
            conn.close_after_flush = True
        self._access(conn, method, target, version, status, sent)

    def _respond_error(self, conn: _Connection, status: int, method: bytes, target: bytes,
                       version: str, keep_alive: bool, extra: str = "") -> None:
        reason = REASONS[status]
        body = (f"<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>"
                f"<body><h1>{status} {reason}</h1></body></html>\n").encode("ascii")
        if status >= 400 and status not in (404, 403, 405, 416):
            keep_alive = False
        self._queue(conn, status, method, target, version, keep_alive,
                    extra + "Content-Type: text/html; charset=utf-8\r\n", body)

    def _fail(self, conn: _Connection, status: int) -> None:
        """Answer a request that could not be parsed, then close."""
        if conn.close_after_flush or conn.lingering_until:
            self._flush(conn)
            return
        self._respond_error(conn, status, b"-", conn.url or b"-", "1.1", keep_alive=False)
        self._flush(conn)

    def _cache(self, key: bytes, entry: _CachedFile) -> None:
        self._uncache(key)
        budget = self.limits.cache_bytes
        size = len(entry.body) + 512
        while self.cache and self.cache_size + size > budget:
            oldest = next(iter(self.cache))
            self._uncache(oldest)
        if size <= budget:
            self.cache[key] = entry
            self.cache_size += size

    def _uncache(self, key: bytes) -> None:
        old = self.cache.pop(key, None)
        if old is not None:
            self.cache_size -= len(old.body) + 512

    # -- writing ------------------------------------------------------------------

    def _flush(self, conn: _Connection) -> None:
        """Send what is queued; wait for writability if the socket is full."""
        out = conn.out
        sock = conn.sock
        try:
            while out:
                first = out[0]
                if type(first) is _FileBody:
                    sent = sock.sendfile(first.file, first.offset, first.remaining)
                    if sent == 0:
                        # the file shrank under us: the promised length cannot be kept
                        self._close(conn)
                        return
                    conn.last_progress = self.now
                    first.offset += sent
                    first.remaining -= sent
                    if first.remaining:
                        self._want_write(conn)
                        return
                    first.file.close()
                    out.popleft()
                    conn.files -= 1
                    continue
                if len(out) == 1 or type(out[1]) is _FileBody:
                    sent = sock.send(first)
                    buffers: Sequence[Any] = (first,)
                elif conn.out_bytes <= _JOIN_LIMIT and conn.files == 0:
                    # many small responses (pipelining): one copy beats a long iovec
                    buffers = (b"".join(cast("Deque[bytes]", out)),)  # no files queued
                    out.clear()
                    out.append(buffers[0])
                    sent = sock.send(buffers[0])
                else:
                    buffers = []
                    for item in out:
                        if type(item) is _FileBody or len(buffers) == _MAX_IOV:
                            break
                        buffers.append(item)
                    sent = sock.send_buffers(buffers)
                conn.last_progress = self.now
                conn.out_bytes -= sent
                for item in buffers:
                    size = len(item)
                    if sent >= size:
                        out.popleft()
                        sent -= size
                    else:
                        out[0] = memoryview(item)[sent:]
                        self._want_write(conn)
                        return
        except (BlockingIOError, InterruptedError):
            self._want_write(conn)
            return
        except OSError:
            self._close(conn)
            return
        # everything is out
        if conn.close_after_flush or conn.eof:
            self._linger(conn)
        elif conn.writing:
            conn.writing = False
            self.poller.modify(conn.fd, self.poller.READ)

    def _want_write(self, conn: _Connection) -> None:
        if not conn.writing:
            conn.writing = True
            self.poller.modify(conn.fd, self.poller.WRITE)

    def _linger(self, conn: _Connection) -> None:
        """Close after a last response without losing it to a reset.

        Closing with unread input makes the kernel send RST, which can destroy
        the response before the client reads it; so shut the write side and
        read what the client still sends, for a short while.
        """
        if conn.eof:
            self._close(conn)
            return
        try:
            conn.sock.shutdown(fastsock.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering_until = self.now + self.limits.linger_timeout
        if conn.writing:
            conn.writing = False
            self.poller.modify(conn.fd, self.poller.READ)

    def _close(self, conn: _Connection) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        try:
            self.poller.unregister(conn.fd)
        except (OSError, KeyError, ValueError):
            pass
        for item in conn.out:
            if type(item) is _FileBody:
                item.file.close()
        conn.out.clear()
        conn.sock.close()
        if not self.accepting and not self.stopping and self.now >= self.accept_paused_until:
            self._start_accepting()

    # -- timers -------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        limits = self.limits
        for conn in list(self.conns.values()):
            if conn.lingering_until:
                if now >= conn.lingering_until:
                    self._close(conn)
            elif conn.out:
                if now - conn.last_progress > limits.send_timeout:
                    self._close(conn)
            elif conn.request_started:
                if now - conn.request_started > limits.request_timeout:
                    self._fail(conn, 408)
            elif now - conn.last_progress > limits.idle_timeout:
                self._close(conn)
        if (not self.accepting and not self.stopping and now >= self.accept_paused_until
                and len(self.conns) < limits.max_connections):
            self._start_accepting()

    # -- logging ------------------------------------------------------------------

    def _access(self, conn: _Connection, method: bytes, target: bytes, version: str,
                status: int, size: int) -> None:
        if self.log is None:
            return
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        line = _log_escape(method + b" " + target + b" HTTP/" + version.encode("ascii"))
        self._log_lines.append(
            f'{conn.peer} - - [{when}] "{line}" {status} {size if size else "-"}\n')

    def _note(self, message: str) -> None:
        if self.log is not None:
            self._log_lines.append(f"fastsock.webserver: {message}\n")

    def _write_log(self) -> None:
        lines, self._log_lines = self._log_lines, []
        if self.log is None:
            return
        try:
            self.log.write("".join(lines))
            self.log.flush()
        except (OSError, ValueError):
            pass


# -- command line ---------------------------------------------------------------


def _listen(host: str, port: int, reuse_port: bool, backlog: int) -> Any:
    """A listening fastsock socket for ``host``:``port`` (a name, IPv4 or IPv6)."""
    infos = _stdlib.getaddrinfo(host or None, port, type=_stdlib.SOCK_STREAM,
                                flags=_stdlib.AI_PASSIVE)
    last: Optional[OSError] = None
    for family, _type, _proto, _name, address in infos:
        try:
            return fastsock.create_server(address[:2] if family == _stdlib.AF_INET else address,
                                          family=int(family), backlog=backlog,
                                          reuse_port=reuse_port)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


def _url_host(address: Any) -> str:
    host = str(address[0])
    return f"[{host}]" if ":" in host else host


def _worker(host: str, port: int, directory: str, limits: Limits, log: Optional[TextIO],
            reuse_port: bool, ready: Optional[Callable[[Any], None]]) -> int:
    listener = _listen(host, port, reuse_port, backlog=1024)
    server = Server(listener, directory, limits=limits, log=log)
    server.install_signal_handlers()
    if ready is not None:
        ready(listener.getsockname())
    server.serve_forever()
    return 0


def _run_workers(args: argparse.Namespace, limits: Limits, log: Optional[TextIO]) -> int:
    """N worker processes, each with its own SO_REUSEPORT listener on one port."""
    # a bound, never listening socket keeps the port for the group (and names it for --port 0)
    holder = _listen(args.bind, args.port, True, backlog=1)
    address = holder.getsockname()
    port = address[1]
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    children: Dict[int, int] = {}
    stopping = False

    def spawn(index: int, notify: bool) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                if notify:
                    os.close(ready_r)
                if not holder.closed:
                    holder.close()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)

                def ready(_address: Any) -> None:
                    if notify:
                        os.write(ready_w, b"r")
                        os.close(ready_w)
                code = _worker(args.bind, port, args.directory, limits, log, True, ready)
            except BaseException as exc:
                print(f"fastsock.webserver worker: {exc}", file=sys.stderr)
            finally:
                os._exit(code)
        children[pid] = index

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
            except ProcessLookupError:
                pass

    for index in range(args.workers):
        spawn(index, notify=True)
    os.close(ready_w)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    started = 0
    while started < args.workers:
        chunk = os.read(ready_r, args.workers)
        if not chunk:
            break
        started += len(chunk)
    os.close(ready_r)
    holder.close()
    if started < args.workers:
        forward(signal.SIGTERM, None)
    else:
        _announce(address, args)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        code = os.waitstatus_to_exitcode(wait_status)
        if code == 0 or (stopping and code in (-signal.SIGINT, -signal.SIGTERM)):
            continue
        if not stopping and index >= 0 and started == args.workers:
            # a crashed worker is replaced; the exit status reports the shutdown
            print(f"fastsock.webserver: worker {pid} exited with {code}; restarting",
                  file=sys.stderr)
            time.sleep(0.5)
            spawn(index, notify=False)
        else:
            status = 1
    return status if started == args.workers else 1


def _announce(address: Any, args: argparse.Namespace) -> None:
    print(f"Serving HTTP on {address[0]} port {address[1]} "
          f"(http://{_url_host(address)}:{address[1]}/) from {os.path.abspath(args.directory)} "
          f"with {args.workers} worker{'s' if args.workers != 1 else ''} ...", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastsock.webserver",
        description="Serve a directory over HTTP/1.1 with fastsock.")
    parser.add_argument("--bind", "-b", default="127.0.0.1", metavar="ADDRESS",
                        help="address to listen on (default: 127.0.0.1; "
                             "0.0.0.0 or :: serve every interface)")
    parser.add_argument("--port", "-p", type=int, default=DEFAULT_PORT,
                        help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--directory", "-d", default=os.curdir,
                        help="directory to serve (default: the current one)")
    parser.add_argument("--workers", "-w", type=int, default=1,
                        help="worker processes sharing the port (default: 1)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no access log")
    parser.add_argument("--max-connections", type=int, default=Limits.max_connections,
                        help="open connections per worker (default: %(default)s)")
    parser.add_argument("--idle-timeout", type=float, default=Limits.idle_timeout,
                        help="seconds a keep-alive connection may sit idle (default: %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=Limits.request_timeout,
                        help="seconds to receive a whole request (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0-65535")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    for name in ("max_connections", "idle_timeout", "request_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not os.path.isdir(args.directory):
        parser.error(f"not a directory: {args.directory}")
    require_httptools()
    if args.bind in ("", "0.0.0.0", "::", "[::]"):
        print(f"fastsock.webserver: warning: serving {os.path.abspath(args.directory)} on "
              "every network interface; anyone who can reach this machine can read it",
              file=sys.stderr)
    args.bind = args.bind.strip("[]")
    limits = Limits(max_connections=args.max_connections, idle_timeout=args.idle_timeout,
                    request_timeout=args.request_timeout)
    log = None if args.quiet else sys.stderr
    try:
        if args.workers > 1:
            return _run_workers(args, limits, log)
        return _worker(args.bind, args.port, args.directory, limits, log, False,
                       lambda address: _announce(address, args))
    except OSError as exc:
        print(f"fastsock.webserver: cannot serve on {args.bind} port {args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
