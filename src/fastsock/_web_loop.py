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
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, TextIO, Tuple, Union, cast

import fastsock

from ._web_http import (CONDITIONAL, CONNECTION, HOST, HOST_CHARS, MAX_METHOD, METHOD_CHARS,
                        NOTABLE_HEADERS, SPECIAL, FileBody, Limits, Output, Reject, ServerLog,
                        Site)
from ._web_parser import require_httptools

_READ_SIZE = 65536
_SLICE = 8192             # bytes fed to the parser at a time (a read can bring 64 KiB)
_MAX_IOV = 64            # buffers per send_buffers call
_JOIN_LIMIT = 512 * 1024  # queued bytes up to which responses are joined into one send
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# a request parsed while the connection's queue was full: (method, target,
# headers, keep_alive, version); an interim response (bytes); or a failure that
# ends the connection: (None, status, method, target)
Pending = Union[Tuple[bytes, bytes, List[Tuple[bytes, bytes]], bool, str],
                Tuple[None, int, bytes, bytes], bytes]


# -- one connection -----------------------------------------------------------


class _Connection:
    """A client: its socket, its parser and what is still to be sent.

    The parser calls the ``on_*`` methods.  A completed request is answered at
    once and its response queued, so responses stay in request order; while
    the queue holds a file or ``max_queued_bytes``, requests wait in
    ``pending`` instead, and the server reads nothing more from the client.
    """

    def __init__(self, server: "Server", sock: Any, peer: str, now: float) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.parser = server._httptools.HttpRequestParser(self)
        self.out: Deque[Output] = deque()
        self.out_bytes = 0              # bytes queued in out, files not counted
        self.files = 0                  # file bodies queued in out (one at most)
        self.queue_limit = server.limits.max_queued_bytes
        self.pending: Deque[Pending] = deque()  # parsed, waiting for room in out
        self.unparsed = b""             # input not yet fed to the parser (a backlog)
        self.stash = b""                # the start of an unknown method, waiting for the rest
        self.method_head = b""          # a method's start that an earlier read ended in
        self.method_override: Optional[bytes] = None  # the unknown method of this request
        self.writing = False            # registered for writability instead of reads
        self.close_after_flush = False  # a response said "Connection: close"
        self.must_close = False         # the next response says "Connection: close"
        self.eof = False                # the client will send nothing more
        self.closed = False
        self.lingering_until = 0.0      # > 0: write side shut, discarding input
        self.last_progress = now
        self.request_started = 0.0      # > 0 while a request is being received
        self.blank_since = 0.0          # > 0: empty lines arrived, and no request yet
        self.empty_lines = 0
        self.in_head = False
        self.head_bytes = 0             # the head's fields as the parser reported them
        self.head_raw = 0               # bytes fed since the head began (an upper bound)
        self.url = b""
        self.headers: List[Tuple[bytes, bytes]] = []
        self.hosts = 0
        self.conditional = False        # a header that can change the answer to a GET
        self.special = False            # Expect or Upgrade: looked at when the head ends
        self.connection_header = False  # the request has a Connection field
        self.body_bytes = 0

    # parser callbacks
    def on_message_begin(self) -> None:
        blank = self.blank_since
        if blank:
            # the empty lines before the request line count toward its timeout
            self.request_started = blank
            self.blank_since = 0.0
            self.empty_lines = 0
        else:
            self.request_started = self.server.now
        self.in_head = True
        self.head_bytes = 0
        self.head_raw = 0
        self.url = b""
        self.headers = []
        self.hosts = 0
        self.conditional = False
        self.connection_header = False
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
        kind = NOTABLE_HEADERS.get(name.decode("latin-1").lower())
        if kind is not None:
            if kind == HOST:
                self.hosts += 1
                if value.translate(None, HOST_CHARS):
                    raise Reject(400)  # RFC 9112 section 3.2: an invalid Host is a 400
            elif kind == CONDITIONAL:
                self.conditional = True
            elif kind == SPECIAL:
                self.special = True
            elif kind == CONNECTION:
                self.connection_header = True
            else:
                # refuse an oversized body before it arrives (llhttp checks the syntax
                # and that the number fits in 64 bits)
                length = value.strip().lstrip(b"0")
                if length.isdigit() and (len(length) > 18 or int(length) > limits.max_body):
                    raise Reject(413)

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.special:
            self._special_headers()

    def _special_headers(self) -> None:
        """Expect and Upgrade, once the head is complete."""
        self.special = False
        expect: Optional[bytes] = None
        body = False
        for name, value in self.headers:
            name = name.lower()
            if name == b"expect":
                expect = value if expect is None else expect + b", " + value
            elif name == b"transfer-encoding":
                body = True
            elif name == b"content-length":
                body = body or bool(value.strip().lstrip(b"0"))
        parser = self.parser
        if body and parser.should_upgrade():
            # llhttp leaves the body of an upgrade request unread, as the start of
            # the other protocol; the server switches to none, so the request is
            # answered, with Connection: close, and nothing after it is read
            self.must_close = True
        if expect is None or parser.get_http_version() != "1.1":
            return  # RFC 9110 section 10.1.1: HTTP/1.0 ignores Expect
        if expect.strip().lower() != b"100-continue":
            raise Reject(417)
        if not body:
            return  # no content to wait for, no 100 to send
        method = self.method_override or parser.get_method()
        if method != b"GET" and method != b"HEAD":
            raise Reject(405)  # the final status, at once: the request fails anyway
        # the client waits for this before it sends the body
        if self.pending:
            self.pending.append(_CONTINUE)
        else:
            self.out.append(_CONTINUE)
            self.out_bytes += len(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.server.limits.max_body:
            raise Reject(413)

    def on_message_complete(self) -> None:
        self.request_started = 0.0
        parser = self.parser
        should_keep_alive = parser.should_keep_alive()
        if should_keep_alive and not self.connection_header:
            # llhttp keeps an HTTP/1.0 connection open only when a Connection
            # field asks, and refuses 1.x above 1.1: this is 1.1, known without
            # formatting the version for every request
            version = "1.1"
        else:
            version = parser.get_http_version()
        if self.hosts != 1 and (self.hosts or version == "1.1"):
            raise Reject(400)  # RFC 9112: exactly one Host in an HTTP/1.1 request
        server = self.server
        server.requests_served += 1
        method = self.method_override
        if method is None:
            method = parser.get_method()
        else:
            self.method_override = None
        # a server that is stopping closes each connection after its response
        keep_alive = should_keep_alive and not self.must_close
        if self.pending or self.files or self.out_bytes >= self.queue_limit:
            self.pending.append((method, self.url, self.headers, keep_alive, version))
        else:
            server.site.answer(self, method, self.url, self.headers, keep_alive, version)


# -- readiness and the server -------------------------------------------------


class _RequestCounter:
    """Counts the requests a parser completes (to find where one ends)."""

    def __init__(self) -> None:
        self.count = 0

    def on_message_complete(self) -> None:
        self.count += 1


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
        # stop() never writes to a closed pipe's number (reentrant: a signal
        # handler in the closing thread may call stop())
        self._wake_lock = threading.RLock()
        self.poller.register(self._wake_r, self.poller.READ)
        self._tcp = listener.family in (fastsock.AF_INET, fastsock.AF_INET6)
        self.requests_served = 0

    # -- control ---------------------------------------------------------------

    def stop(self) -> None:
        """Stop accepting and finish the responses in flight (any thread, or a signal)."""
        self.stopping = True
        try:
            with self._wake_lock:
                if self._wake_w >= 0:
                    os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM stop the server gracefully; a second one stops it at once."""
        stop_on_signals([self])

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
                conn.must_close = True  # the responses still to come say Connection: close
                if not (conn.out or conn.pending or conn.unparsed or conn.request_started):
                    self._close(conn)
        if now >= self.stop_deadline:
            return False
        return bool(self.conns)

    def _close_everything(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn)
        self.site.close_files()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.log.lines:
            self.log.write()
        self.poller.close()
        self._forget_signals()
        with self._wake_lock:
            wake_r, wake_w = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = -1
            os.close(wake_r)
            os.close(wake_w)

    def _forget_signals(self) -> None:
        """A signal after the wake pipe is closed must not write to its number
        (another file may have it by then): the wakeup descriptor goes."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread sets it, and it is never this server's here
        previous = signal.set_wakeup_fd(-1)
        if previous != self._wake_w:
            signal.set_wakeup_fd(previous)  # someone else's: keep it

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
            if conn.out or conn.pending or conn.unparsed:
                self._flush(conn)  # what was asked is still answered
            else:
                self._close(conn)
            return
        if conn.stash:
            data = conn.stash + data
            conn.stash = b""
        self._feed(conn, data)
        if not (conn.request_started or conn.out or conn.pending or conn.stash or conn.closed):
            # nothing started and nothing to answer: the read was empty lines
            self._empty_lines(conn, data)
        if conn.out or conn.pending:
            self._flush(conn)

    def _feed(self, conn: _Connection, data: Any) -> None:
        """Parse ``data``; requests it completes are answered or wait in ``pending``.

        The parser gets at most ``_SLICE`` bytes at a time, cut after the end of a
        head where there is one, so that a pipeline stops being parsed once
        ``max_pipeline`` requests wait (the rest stays in ``unparsed``), and so
        that an unfinished head is measured without the requests before it.
        """
        httptools = self._httptools
        size = len(data)
        view = memoryview(data) if size > _SLICE else data
        pos = 0
        prefix = b""  # a placeholder method, fed before the slice
        served_before, started_before = self.requests_served, conn.request_started
        while pos < size:
            end = size
            if size - pos > _SLICE:
                cut = data.rfind(b"\r\n\r\n", pos, pos + _SLICE)
                end = cut + 4 if cut >= pos else pos + _SLICE
            piece: Any
            if prefix:
                piece = prefix + bytes(view[pos:end])
            else:
                piece = view[pos:end] if pos or end != size else data
            served, mid = self.requests_served, conn.request_started
            try:
                conn.parser.feed_data(piece)
            except httptools.HttpParserCallbackError as exc:
                cause = exc.__context__
                status = cause.status if isinstance(cause, Reject) else 500
                if status == 500:
                    self.log.note(f"internal error: {cause!r}")
                self._fail(conn, status)
                return
            except httptools.HttpParserUpgrade as exc:
                # llhttp stops after a request with Upgrade (and Connection: upgrade)
                # or a CONNECT: no protocol is switched, so an Upgrade request was
                # served as any other and the requests after it are read as HTTP;
                # after a CONNECT (or an upgrade request with a body) nothing is
                if conn.must_close or conn.parser.get_method() == b"CONNECT":
                    conn.must_close = True
                    conn.unparsed = b""
                    return
                pos += exc.args[0] - len(prefix)
                prefix = b""
                continue
            except httptools.HttpParserInvalidMethodError:
                pos, prefix = self._unknown_method(conn, data, pos, end, served, mid, prefix)
                if pos < 0:
                    return
                continue
            except httptools.HttpParserError as exc:
                self._fail(conn, 505 if str(exc) == "Invalid HTTP version" else 400)
                return
            if conn.in_head:
                # a header still arriving: httptools holds it until it ends, so
                # bound what one unfinished head may take (the slice it began in
                # counts whole, which makes the bound at most _SLICE stricter)
                conn.head_raw += end - pos
                if conn.head_raw > 2 * self.limits.max_header_bytes:
                    self._fail(conn, 431)
                    return
            pos = end
            prefix = b""
            if pos < size and len(conn.pending) >= self.limits.max_pipeline:
                conn.unparsed = bytes(view[pos:])  # parsed once the answers catch up
                return
        if conn.request_started and not conn.url:
            # the input ended inside a request's method: keep what of it is known,
            # in case the rest makes a method llhttp does not know
            head = b""
            if self.requests_served == served_before:
                head = conn.method_head + data if started_before else data.lstrip(b"\r\n")
            conn.method_head = bytes(head) if len(head) <= MAX_METHOD else b""

    def _unknown_method(self, conn: _Connection, data: Any, pos: int, end: int,
                        served: int, mid: float, prefix: bytes) -> Tuple[int, bytes]:
        """Recover from a method llhttp does not know, where the input allows.

        The request that failed starts after the requests this slice (after
        ``prefix``) completed; its method, if it is one (``METHOD_CHARS``), is
        remembered, and the rest of the request goes to a new parser behind a
        placeholder method, so its framing is read as for any request and it is
        answered 405.  Returns where to go on feeding and the placeholder to
        feed first, or -1 after answering 400.
        """
        completed = self.requests_served - served
        start, known = -1, b""
        if not mid:  # the slice began between requests: a parser can start there
            skip = self._skip_requests(prefix + data[pos:end], completed)
            start = pos + skip - len(prefix) if skip >= 0 else -1
            size = len(data)
            while 0 <= start < size and data[start] in (13, 10):
                start += 1  # the empty lines a request line may follow
        elif not completed and not conn.url and conn.method_head and pos == 0:
            start, known = 0, conn.method_head  # the method began in the read before
        if start < 0:
            # the slice began inside a request, and where the failed one starts is unknown
            self._fail(conn, 400)
            return -1, b""
        size = len(data)
        space = data.find(b" ", start, start + MAX_METHOD + 1)
        method = known + (data[start:space] if space >= 0 else data[start:])
        if not method or len(method) > MAX_METHOD or method.translate(None, METHOD_CHARS):
            self._fail(conn, 400)
            return -1, b""
        conn.parser = self._httptools.HttpRequestParser(conn)
        # between requests again, with the failed one's time still running
        conn.blank_since = conn.request_started or self.now
        conn.request_started = 0.0
        if space < 0:
            # the method goes on in the next read: keep its start for then
            conn.stash = bytes(method)
            return size, b""
        conn.method_override = bytes(method)
        return space, b"GET"  # a method llhttp knows, in its place

    def _skip_requests(self, data: Any, count: int) -> int:
        """The offset just past the first ``count`` requests in ``data`` (which
        starts between two requests), or -1 if it holds fewer."""
        if count == 0:
            return 0
        low, high = 1, len(data)
        while low < high:
            middle = (low + high) // 2
            if self._count_requests(data[:middle]) >= count:
                high = middle
            else:
                low = middle + 1
        return low if self._count_requests(data[:low]) >= count else -1

    def _count_requests(self, data: Any) -> int:
        counter = _RequestCounter()
        parser = self._httptools.HttpRequestParser(counter)
        try:
            parser.feed_data(data)
        except self._httptools.HttpParserError:
            pass
        return counter.count

    def _empty_lines(self, conn: _Connection, data: bytes) -> None:
        """Empty lines before a request line: RFC 9112 section 2.2 has a server
        ignore some, so they are allowed, a few, and their time counts."""
        if not conn.blank_since:
            conn.blank_since = self.now
        conn.empty_lines += data.count(b"\n") or 1
        if conn.empty_lines > self.limits.max_empty_lines:
            self._fail(conn, 400, begun=False)

    def _fail(self, conn: _Connection, status: int, begun: bool = True) -> None:
        """Queue the answer to a request that could not be parsed (after the
        answers to the requests before it), which closes the connection;
        ``begun`` is False when no request had started.  The caller flushes."""
        conn.unparsed = conn.stash = b""
        if conn.close_after_flush or conn.lingering_until:
            return  # closing already
        method = target = b"-"
        if begun and conn.url:
            # the request line got as far as the target: the method is known
            method = conn.method_override or conn.parser.get_method()
            target = conn.url
        if conn.pending:
            conn.pending.append((None, status, method, target))
        else:
            self.site.respond_error(conn, status, method, target, "1.1", keep_alive=False)

    # -- writing ------------------------------------------------------------------

    def _flush(self, conn: _Connection) -> None:
        """Send what is queued, answering waiting requests as room frees up; wait
        for writability if the socket is full."""
        while True:
            if conn.out and not self._send(conn):
                return  # the socket is full (or the connection closed)
            if not (conn.pending or conn.unparsed) or conn.closed:
                break
            self._refill(conn)
            if not conn.out:
                break
        if conn.closed or conn.lingering_until:
            return
        # everything is out
        if conn.close_after_flush or conn.eof or conn.must_close:
            self._linger(conn)
        elif conn.writing:
            conn.writing = False
            self.poller.modify(conn.fd, self.poller.READ)

    def _refill(self, conn: _Connection) -> None:
        """Answer waiting requests while the queue has room, then parse more input."""
        pending = conn.pending
        site = self.site
        limit = conn.queue_limit
        while pending and not conn.files and conn.out_bytes < limit:
            item = pending.popleft()
            if type(item) is bytes:  # an interim response
                conn.out.append(item)
                conn.out_bytes += len(item)
            elif item[0] is None:  # a request that failed: answered, and the end
                _, status, method, target = cast("Tuple[None, int, bytes, bytes]", item)
                pending.clear()
                if not conn.close_after_flush:
                    site.respond_error(conn, status, method, target, "1.1", keep_alive=False)
            else:
                method, target, headers, keep_alive, version = cast(
                    "Tuple[bytes, bytes, List[Tuple[bytes, bytes]], bool, str]", item)
                site.answer(conn, method, target, headers, keep_alive and not conn.must_close,
                            version)
        if not pending and conn.unparsed:
            data, conn.unparsed = conn.unparsed, b""
            if not conn.close_after_flush:
                self._feed(conn, data)

    def _send(self, conn: _Connection) -> bool:
        """Send what is queued: True once all of it is out."""
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
                        return False
                    conn.last_progress = self.now
                    first.offset += sent
                    first.remaining -= sent
                    if first.remaining:
                        self._want_write(conn)
                        return False
                    first.close()
                    out.popleft()
                    conn.files -= 1
                    continue
                if len(out) == 1:
                    sent = sock.send(first)
                    buffers: Sequence[Any] = (first,)
                elif type(out[1]) is FileBody:
                    # the head goes out in the first segment of the file's bytes,
                    # which the sendfile() right after pushes
                    sent = sock.send(first, _stdlib.MSG_MORE)
                    buffers = (first,)
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
                        return False
        except (BlockingIOError, InterruptedError):
            self._want_write(conn)
            return False
        except OSError:
            self._close(conn)
            return False
        return True

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
        conn.closed = True
        for item in conn.out:
            if type(item) is FileBody:
                item.close()
        conn.out.clear()
        conn.pending.clear()
        conn.unparsed = conn.stash = b""
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
            elif conn.out or conn.pending:
                if now - conn.last_progress > limits.send_timeout:
                    self._close(conn)
            elif conn.request_started:
                if now - conn.request_started > limits.request_timeout:
                    self._fail(conn, 408)
                    self._flush(conn)
            elif conn.blank_since or conn.stash:
                # empty lines (or a method's start) and no request: the same timeout
                started = conn.blank_since or conn.last_progress
                if now - started > limits.request_timeout:
                    self._fail(conn, 408, begun=False)
                    self._flush(conn)
            elif now - conn.last_progress > limits.idle_timeout:
                self._close(conn)
        if (not self.accepting and not self.stopping and now >= self.accept_paused_until
                and len(self.conns) < limits.max_connections):
            self._start_accepting()


def stop_on_signals(servers: Sequence[Server]) -> None:
    """SIGINT/SIGTERM stop ``servers`` gracefully; a second one stops them at once.

    Python runs signal handlers in the main thread: the first server's loop
    should run there (its wake pipe gets the signal's byte, so its poll returns
    at once); the others are woken by ``stop()``.
    """
    def handler(signum: int, frame: Any) -> None:
        for server in servers:
            if server.stopping:
                server.stop_deadline = time.monotonic()
            server.stop()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    signal.set_wakeup_fd(servers[0]._wake_w, warn_on_full_buffer=False)
