"""The readiness loop of the demo web server: one worker process's event loop.

``Server`` runs epoll (or the ``selectors`` module where there is no epoll)
over non-blocking fastsock sockets: accepting, each connection's state,
reading and parsing (pipelined requests included), writing with ``send``,
``send_buffers`` and ``sendfile``, timeouts, and the graceful stop.  What a
request gets back is decided by ``_web_http.Site``.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket as _stdlib
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, TextIO, Tuple, cast

import fastsock

from ._web_http import (CONDITIONAL, HOST, NOTABLE_HEADERS, FileBody, Limits, Output, Reject,
                        ServerLog, Site)
from ._web_parser import require_httptools

_READ_SIZE = 65536
_MAX_IOV = 64            # buffers per send_buffers call
_JOIN_LIMIT = 256 * 1024  # queued bytes up to which responses are joined into one send


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
        self.out: Deque[Output] = deque()
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
            raise Reject(414)
        self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        self.head_bytes += len(name) + len(value) + 4
        limits = self.server.limits
        if self.head_bytes > limits.max_header_bytes or len(headers) > limits.max_headers:
            raise Reject(431)
        kind = NOTABLE_HEADERS.get(name.lower())
        if kind is not None:
            if kind == HOST:
                self.hosts += 1
            elif kind == CONDITIONAL:
                self.conditional = True
            elif value.strip().isdigit() and int(value) > limits.max_body:
                # refuse an oversized body before it arrives (llhttp checks the syntax)
                raise Reject(413)

    def on_headers_complete(self) -> None:
        self.in_head = False

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.server.limits.max_body:
            raise Reject(413)

    def on_message_complete(self) -> None:
        self.request_started = 0.0
        parser = self.parser
        version = parser.get_http_version()
        if self.hosts != 1 and (self.hosts or version == "1.1"):
            raise Reject(400)  # RFC 9112: exactly one Host in an HTTP/1.1 request
        server = self.server
        server.requests_served += 1
        # a server that is stopping closes each connection after its response
        server.site.answer(self, parser.get_method(), self.url, self.headers,
                           parser.should_keep_alive() and not server.stopping, version)


# -- readiness and the server -------------------------------------------------


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
        self.limits = limits or Limits()
        self.log = ServerLog(log)
        self.site = Site(directory, self.limits, self.log)
        self.root = self.site.root
        self.listener = listener
        listener.setblocking(False)
        self.listen_fd = listener.fileno()
        self.poller = _Poller(use_selectors)
        self.poller.register(self.listen_fd, self.poller.READ)
        self.accepting = True
        self.accept_paused_until = 0.0
        self.conns: Dict[int, _Connection] = {}
        self.now = time.monotonic()
        self.stopping = False
        self.stop_deadline = 0.0
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
        log = self.log
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
                if log.lines:
                    log.write()
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
        if self.log.lines:
            self.log.write()
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
                    self.log.note(f"accept: {exc.strerror}; pausing new connections")
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
            status = cause.status if isinstance(cause, Reject) else 500
            if status == 500:
                self.log.note(f"internal error: {cause!r}")
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

    def _fail(self, conn: _Connection, status: int) -> None:
        """Answer a request that could not be parsed, then close."""
        if conn.close_after_flush or conn.lingering_until:
            self._flush(conn)
            return
        self.site.respond_error(conn, status, b"-", conn.url or b"-", "1.1", keep_alive=False)
        self._flush(conn)

    # -- writing ------------------------------------------------------------------

    def _flush(self, conn: _Connection) -> None:
        """Send what is queued; wait for writability if the socket is full."""
        out = conn.out
        sock = conn.sock
        try:
            while out:
                first = out[0]
                if type(first) is FileBody:
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
                if len(out) == 1 or type(out[1]) is FileBody:
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
                        if type(item) is FileBody or len(buffers) == _MAX_IOV:
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
            if type(item) is FileBody:
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
