"""An HTTP/1.1 client on fastsock: ``python -m fastsock.webclient``.

``python -m fastsock.webclient HOST PORT [PATH ...]`` or
``python -m fastsock.webclient URL [URL ...]`` fetches each resource with
``GET`` (``-I``: ``HEAD``) and writes the body to stdout (``-o FILE``: to a
file, with a progress bar on a terminal).  Responses are parsed by httptools
(llhttp): ``Content-Length``, chunked and close-delimited bodies.  Several
resources on one host share one keep-alive connection.

As a library::

    with Client(timeout=10) as client:
        response = client.get("http://127.0.0.1:28333/")
        print(response.status, response.header("content-type"), len(response.body))

Exit status (curl's numbers): 0 success, 1 a redirect to another scheme, 2
usage, 3 a redirect to a malformed URL, 6 host not found, 7 cannot connect, 8
malformed response, 18 body cut short, 22 HTTP status >= 400 with ``--fail``,
23 cannot write the output, 28 timed out, 47 too many redirects.  Errors are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import re
import secrets
import socket as _stdlib
import stat
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple

import fastsock

from ._demo import program_name
from ._web_parser import require_httptools

USER_AGENT = f"fastsock-webclient/{fastsock.__version__}"
_READ_SIZE = 65536
# response bytes in a row that carry no body: the status line and headers,
# interim responses, chunk framing and trailers
_MAX_HEAD = 1 << 20
_MAX_INTERIM = 20            # interim (1xx) responses before the final one
MAX_SECONDS = 1e6            # the largest timeout and maximum time, in seconds
_REDIRECTS = (301, 302, 303, 307, 308)
# request headers that go to the origin of the first URL only, as curl does
_ORIGIN_ONLY = frozenset({"authorization", "cookie", "proxy-authorization", "host"})
# no request of this client has a body: these headers would make a server wait for one
_NO_BODY = frozenset({"content-length", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOST_NAME = re.compile(r"[0-9A-Za-z._-]+")
# what a request target carries as is, beside letters, digits and -._~
_TARGET_SAFE = "!$&'()*+,;=:@/?%"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class ClientError(Exception):
    """A request that could not be completed; ``exit_status`` follows curl."""

    exit_status = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadURL(ClientError):
    """A URL (or a redirect's ``Location``) that names nothing to connect to."""

    exit_status = 3


class HostNotFound(ClientError):
    exit_status = 6


class ConnectFailed(ClientError):
    exit_status = 7


class MalformedResponse(ClientError):
    exit_status = 8


class IncompleteBody(ClientError):
    exit_status = 18


class WriteFailed(ClientError):
    exit_status = 23


class RequestTimedOut(ClientError):
    exit_status = 28


class TooManyRedirects(ClientError):
    exit_status = 47


def check_header(name: str, value: str) -> None:
    """ValueError unless ``name: value`` is a request header the client can send:
    a token for a name, printable ASCII for a value (no CR or LF to smuggle a
    line in), and no ``Content-Length`` or ``Transfer-Encoding``, as no request
    carries a body."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"a header name is a token (letters, digits, !#$%&'*+-.^_`|~), "
                         f"not {name!r}")
    if not value.isascii() or any(c < " " and c != "\t" or c == "\x7f" for c in value):
        raise ValueError(f"a header value is printable ASCII, not {value!r}")
    if name.lower() in _NO_BODY:
        raise ValueError(f"a request of this client has no body, so no {name} header")


def _checked_seconds(label: str, seconds: Optional[float]) -> Optional[float]:
    if seconds is not None and not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ValueError(f"{label} is a number of seconds above 0 and at most "
                         f"{MAX_SECONDS:.0f}, not {seconds!r}")
    return seconds


def _checked_host(host: str) -> str:
    """``host`` as the client sends and resolves it: an IPv6 literal (without
    brackets) or an ASCII name (IDNA for a name in other letters), lower-cased."""
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise BadURL(f"{host!r} is not an IPv6 address") from None
        if address.scope_id is not None:
            raise BadURL(f"IPv6 zone identifiers are not supported: {host!r}")
        return host.lower()
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise BadURL(f"bad host name {host!r}: {exc.__cause__ or exc} (IDNA)") from None
    if not _HOST_NAME.fullmatch(name):
        raise BadURL(f"bad host name {host!r}")
    return name.lower()


def _request_target(target: str) -> str:
    """``target`` (path?query) with every byte a request target cannot carry
    percent-encoded: spaces, controls, non-ASCII (as UTF-8), and a ``%`` that
    does not start an escape."""
    try:
        raw = target.encode("utf-8", "surrogateescape")
    except UnicodeError:
        raise BadURL(f"cannot encode {target!r}") from None
    return _STRAY_PERCENT.sub("%25", urllib.parse.quote(raw, safe=_TARGET_SAFE))


@dataclass
class Response:
    """One HTTP response; ``body`` is empty when a sink took the bytes."""

    url: str
    status: int = 0
    reason: str = ""
    version: str = "1.1"
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    received: int = 0                   # body bytes, whether kept or sunk
    keep_alive: bool = False

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive)."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    @property
    def content_length(self) -> Optional[int]:
        value = self.header("content-length")
        if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
            return None
        return int(value)

    def head_text(self) -> str:
        """The status line and headers as the server sent them (CRLF lines)."""
        lines = [f"HTTP/{self.version} {self.status} {self.reason}"]
        lines += [f"{key}: {value}" for key, value in self.headers]
        return "\r\n".join(lines) + "\r\n\r\n"


@dataclass
class Target:
    """Where a request goes: host, port and the request target (path?query).

    The host is checked (an IPv6 literal or a host name, IDNA-encoded), the port
    is 1-65535, and bytes a request target cannot carry are percent-encoded;
    BadURL otherwise."""

    host: str
    port: int
    path: str = "/"

    def __post_init__(self) -> None:
        self.host = _checked_host(self.host)
        if not 0 < self.port < 65536:
            raise BadURL(f"port {self.port} is not a port to connect to (1-65535)")
        if not self.path.startswith("/"):
            raise BadURL(f"a request target starts with /, not {self.path!r}")
        self.path = _request_target(self.path)

    @classmethod
    def from_url(cls, url: str) -> "Target":
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BadURL(f"bad URL {url!r}: {exc}") from None
        if parts.scheme.lower() != "http":
            raise ClientError(f"only http:// URLs are supported, not {url!r}")
        if not parts.hostname:
            raise BadURL(f"no host in {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            return cls(parts.hostname, 80 if port is None else port, path)
        except BadURL as exc:
            raise BadURL(f"bad URL {url!r}: {exc.message}") from None

    @property
    def origin(self) -> Tuple[str, int]:
        return self.host, self.port

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_header}{self.path}"


class _Reader:
    """The httptools protocol: collects one response at a time."""

    def __init__(self) -> None:
        self.parser = require_httptools().HttpResponseParser(self)
        self.response: Optional[Response] = None
        self.headers_done = False
        self.complete = False
        self.interim = 0
        self.on_headers: Optional[Callable[[Response], None]] = None
        self.sink: Optional[Callable[[bytes], None]] = None
        self.parts: List[bytes] = []

    def start(self, response: Response, on_headers: Optional[Callable[[Response], None]],
              sink: Optional[Callable[[bytes], None]]) -> None:
        self.response = response
        self.on_headers = on_headers
        self.sink = sink
        self.parts = []
        self.headers_done = False
        self.complete = False
        self.interim = 0

    def on_message_begin(self) -> None:
        assert self.response is not None
        self.response.headers = []
        self.response.reason = ""

    def on_status(self, reason: bytes) -> None:
        assert self.response is not None
        self.response.reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        if self.headers_done:
            return  # a trailer: not merged into the headers (RFC 9110 section 6.5.1)
        self.response.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        response.status = self.parser.get_status_code()
        response.version = self.parser.get_http_version()
        if response.status >= 200 or response.status == 101:
            self.headers_done = True
            if self.on_headers is not None:
                self.on_headers(response)

    def on_body(self, chunk: bytes) -> None:
        response = self.response
        assert response is not None
        response.received += len(chunk)
        if self.sink is not None:
            self.sink(chunk)
        else:
            self.parts.append(chunk)

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        if not self.headers_done:
            # an interim 1xx response: the final one follows, unless they never end
            self.interim += 1
            if self.interim > _MAX_INTERIM:
                raise MalformedResponse(
                    f"more than {_MAX_INTERIM} interim (1xx) responses to one request")
            return
        response.keep_alive = self.parser.should_keep_alive()
        response.body = b"".join(self.parts)
        self.complete = True


class Connection:
    """One keep-alive connection to ``host``:``port``.

    ``timeout`` bounds connecting and each send and read; ``max_time`` (with the
    ``deadline`` a request passes) bounds a whole transfer."""

    def __init__(self, host: str, port: int, timeout: Optional[float],
                 max_time: Optional[float] = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_time = max_time
        self.deadline: Optional[float] = None
        self.capped = False             # the deadline, not the timeout, bounds this wait
        self.armed: Optional[float] = timeout
        self.sock: Any = None
        self.reader: Optional[_Reader] = None
        self.pending = b""
        self.used = False

    def _wait(self, doing: str) -> Optional[float]:
        """How long the next blocking call may take: the timeout, or what is
        left until the deadline when that is less."""
        wait, self.capped = self.timeout, False
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.capped = True
                raise self._timed_out(doing)
            if wait is None or left < wait:
                wait, self.capped = left, True
        return wait

    def _arm(self, doing: str) -> None:
        wait = self._wait(doing)
        if wait != self.armed:
            self.sock.settimeout(wait)
            self.armed = wait

    def _timed_out(self, doing: str) -> RequestTimedOut:
        if self.capped:
            return RequestTimedOut(f"the maximum time of {self.max_time:g} s ran out {doing}")
        return RequestTimedOut(f"timed out {doing}")

    def _connect(self) -> None:
        doing = f"connecting to {self.host} port {self.port}"
        wait = self._wait(doing)
        try:
            self.sock = fastsock.create_connection((self.host, self.port), wait)
        except _stdlib.gaierror as exc:
            raise HostNotFound(f"cannot resolve {self.host}: {exc.strerror}") from None
        except TimeoutError:
            raise self._timed_out(doing) from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host} port {self.port}: "
                                f"{exc.strerror or exc}") from None
        self.armed = wait
        self.reader = _Reader()
        self.pending = b""
        self.used = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, target: Target, headers: Sequence[Tuple[str, str]] = (),
                on_headers: Optional[Callable[[Response], None]] = None,
                sink: Optional[Callable[[bytes], None]] = None,
                deadline: Optional[float] = None) -> Response:
        """Send one request and read its response (reconnecting once if a
        kept-alive connection turns out to be closed), all before ``deadline``
        (a ``time.monotonic()`` value) if one is given."""
        self.deadline = deadline
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            reused = self.used
            response = Response(target.url)
            try:
                self._send(method, target, headers)
                self._read(response, method == "HEAD", on_headers, sink)
            except _StaleConnection:
                self.close()
                if reused and attempt == 0:
                    continue
                raise IncompleteBody(f"{target.host} closed the connection "
                                     "without answering") from None
            except OSError as exc:
                self.close()
                raise ConnectFailed(f"connection to {self.host} port {self.port} failed: "
                                    f"{exc.strerror or exc}") from None
            except BaseException:
                self.close()
                raise
            self.used = True
            if not response.keep_alive:
                self.close()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, target: Target, headers: Sequence[Tuple[str, str]]) -> None:
        # a header given for Host, User-Agent or Accept replaces the client's own;
        # one given with no value is not sent at all (as curl's -H 'Name:')
        given = {name.lower(): (name, value) for name, value in headers}
        host = given.get("host", ("Host", target.host_header))
        lines = [f"{method} {target.path} HTTP/1.1"]
        if host[1]:
            lines.append(f"{host[0]}: {host[1]}")
        for name, value in (("User-Agent", USER_AGENT), ("Accept", "*/*")):
            if name.lower() not in given:
                lines.append(f"{name}: {value}")
        lines += [f"{name}: {value}" for name, value in headers
                  if name.lower() != "host" and value]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        doing = f"sending to {target.host}"
        self._arm(doing)
        try:
            self.sock.sendall(request)
        except TimeoutError:
            raise self._timed_out(doing) from None
        except OSError:
            if self.used:
                raise _StaleConnection() from None
            raise

    def _recv(self) -> bytes:
        doing = f"waiting for {self.host}"
        self._arm(doing)
        try:
            return bytes(self.sock.recv(_READ_SIZE))
        except TimeoutError:
            raise self._timed_out(doing) from None
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def _read(self, response: Response, head_only: bool,
              on_headers: Optional[Callable[[Response], None]],
              sink: Optional[Callable[[bytes], None]]) -> None:
        reader = self.reader
        assert reader is not None
        reader.start(response, on_headers, sink)
        data, self.pending = self.pending, b""
        got_any = bool(data)
        without_body = 0        # bytes read in a row that carried no body data
        while not reader.complete:
            if head_only:
                # a HEAD response announces a body it does not carry, so the
                # parser only sees the head and is renewed after it
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    if len(data) > _MAX_HEAD:
                        raise MalformedResponse(
                            f"the response head is over {_MAX_HEAD >> 20} MiB")
                    more = self._recv()
                    if not more:
                        raise (_StaleConnection() if not got_any else
                               IncompleteBody("the connection closed in the response headers"))
                    got_any = True
                    data += more
                    continue
                head, data = data[:end + 4], data[end + 4:]
                self._feed(reader, head)
                if reader.headers_done:
                    response.keep_alive = reader.parser.should_keep_alive()
                    reader.complete = True
                self.reader = reader = self._renew(reader, response, on_headers, sink)
                continue
            if not data:
                data = self._recv()
                if not data:
                    if not got_any:
                        raise _StaleConnection()
                    if reader.headers_done and response.header("content-length") is None \
                            and "chunked" not in (response.header("transfer-encoding") or ""):
                        response.body = b"".join(reader.parts)   # close-delimited body
                        response.keep_alive = False
                        return
                    expected = response.content_length
                    raise IncompleteBody(
                        "the connection closed after "
                        f"{response.received} of {expected if expected is not None else '?'} "
                        "body bytes" if reader.headers_done else
                        "the connection closed in the response headers")
                got_any = True
            received = response.received
            self._feed(reader, data)
            if response.received != received:
                without_body = 0
            else:
                # the parser keeps a line it has not seen the end of: bound it
                without_body += len(data)
                if without_body > _MAX_HEAD and not reader.complete:
                    raise MalformedResponse(
                        f"the response head is over {_MAX_HEAD >> 20} MiB"
                        if not reader.headers_done else
                        f"over {_MAX_HEAD >> 20} MiB of chunk framing or trailers without "
                        "body data")
            data = b""
        self.pending = data
        if not response.keep_alive:
            self.close()

    @staticmethod
    def _renew(reader: _Reader, response: Response,
               on_headers: Optional[Callable[[Response], None]],
               sink: Optional[Callable[[bytes], None]]) -> _Reader:
        fresh = _Reader()
        fresh.start(response, on_headers, sink)
        fresh.complete = reader.complete
        fresh.interim = reader.interim
        return fresh

    @staticmethod
    def _feed(reader: _Reader, data: bytes) -> None:
        parse = require_httptools()
        try:
            reader.parser.feed_data(data)
        except parse.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientError):
                raise cause from None
            if isinstance(cause, OSError):
                raise WriteFailed(f"cannot write the output: {cause.strerror or cause}") from None
            if cause is not None and not isinstance(cause, Exception):
                raise cause  # KeyboardInterrupt and friends pass through
            raise
        except parse.HttpParserUpgrade:
            reader.complete = True
        except parse.HttpParserError as exc:
            raise MalformedResponse(f"malformed response: {exc}") from None


class _StaleConnection(Exception):
    """The server closed a connection before any byte of the response."""


class Client:
    """Fetches URLs, keeping one connection per host and port alive.

    ``timeout`` bounds connecting and each read; ``max_time`` bounds each
    request as a whole, its redirects included (RequestTimedOut).  ``headers``
    go with every request (see check_header), but ``Authorization``, ``Cookie``,
    ``Proxy-Authorization`` and ``Host`` only to the origin of the URL asked for,
    not to another one a redirect leads to."""

    def __init__(self, timeout: Optional[float] = 30.0,
                 headers: Sequence[Tuple[str, str]] = (),
                 max_time: Optional[float] = None) -> None:
        require_httptools()
        self.timeout = _checked_seconds("timeout", timeout)
        self.max_time = _checked_seconds("max_time", max_time)
        self.headers = list(headers)
        for name, value in self.headers:
            check_header(name, value)
        if sum(name.lower() == "host" for name, _ in self.headers) > 1:
            raise ValueError("one Host header at most")
        self._connections: Dict[Tuple[str, int], Connection] = {}

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def request(self, method: str, url: "str | Target", *, follow_redirects: int = 0,
                on_headers: Optional[Callable[[Response], None]] = None,
                sink: Optional[Callable[[bytes], None]] = None) -> Response:
        """``method`` ``url``; with ``follow_redirects`` > 0, up to that many
        redirects are followed and only the last response reaches the callbacks."""
        if not _TOKEN.fullmatch(method):
            raise ValueError(f"a method is a token, not {method!r}")
        target = url if isinstance(url, Target) else Target.from_url(url)
        origin = target.origin
        deadline = None if self.max_time is None else time.monotonic() + self.max_time
        hops_left = follow_redirects
        while True:
            connection = self._connections.get(target.origin)
            if connection is None:
                connection = self._connections[target.origin] = Connection(
                    target.host, target.port, self.timeout, self.max_time)
            headers = self.headers if target.origin == origin else [
                (name, value) for name, value in self.headers
                if name.lower() not in _ORIGIN_ONLY]
            redirected = False

            def headers_seen(response: Response) -> None:
                nonlocal redirected
                redirected = (follow_redirects > 0 and response.status in _REDIRECTS
                              and response.header("location") is not None)
                if not redirected and on_headers is not None:
                    on_headers(response)

            def body_seen(chunk: bytes) -> None:
                if not redirected and sink is not None:
                    sink(chunk)

            response = connection.request(method, target, headers, on_headers=headers_seen,
                                          sink=body_seen if sink is not None else None,
                                          deadline=deadline)
            if not redirected:
                return response
            if hops_left == 0:
                raise TooManyRedirects(f"too many redirects, the last to {target.url}")
            hops_left -= 1
            target = self._redirect(target, response.header("location") or "/")
            if response.status == 303 and method != "HEAD":
                method = "GET"

    @staticmethod
    def _redirect(target: Target, location: str) -> Target:
        """Where ``location`` (as the header's bytes, read as Latin-1) leads from
        ``target``; its bytes are read as UTF-8 and percent-encoded as such."""
        location = location.encode("latin-1").decode("utf-8", "surrogateescape")
        try:
            url = urllib.parse.urljoin(target.url, location)
        except ValueError as exc:
            raise BadURL(f"the redirect goes to a bad URL {location!r}: {exc}") from None
        try:
            return Target.from_url(url)
        except BadURL as exc:
            raise BadURL(f"the redirect goes to a {exc.message}") from None

    def get(self, url: "str | Target", **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: "str | Target", **kwargs: Any) -> Response:
        return self.request("HEAD", url, **kwargs)


# -- command line ---------------------------------------------------------------


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.total: Optional[int] = None
        self.done = 0
        self.started = time.monotonic()
        self.drawn = 0.0

    def start(self, response: Response) -> None:
        self.total = response.content_length
        self.started = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.drawn >= 0.1:
            self.drawn = now
            self._draw(now)

    def finish(self) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-6)
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = (f"\r[{bar:<30}] {share * 100:5.1f}%  {_size(self.done)} / "
                    f"{_size(self.total)}  {_size(rate)}/s ")
        else:
            text = f"\r{_size(self.done)}  {_size(rate)}/s "
        self.stream.write(text)
        self.stream.flush()


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover


class _OutputFile:
    """``-o FILE``: the body goes to a new file beside FILE, which replaces FILE
    only once the transfer succeeded; a failure leaves no file, or FILE as it
    was.  A FILE that is not a regular file (``/dev/null``, a pipe) is written
    directly."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.temporary: Optional[str] = None
        try:
            mode: Optional[int] = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise WriteFailed(f"cannot write {path}: {exc.strerror}") from None
        if mode is not None and stat.S_ISDIR(mode):
            raise WriteFailed(f"cannot write {path}: it is a directory")
        try:
            if mode is not None and not stat.S_ISREG(mode):
                self.file: BinaryIO = open(path, "wb")
                return
            fd, self.temporary = self._create_beside(path, mode)
        except OSError as exc:
            raise WriteFailed(f"cannot write {path}: {exc.strerror or exc}") from None
        self.file = os.fdopen(fd, "wb")

    @staticmethod
    def _create_beside(path: str, mode: Optional[int]) -> Tuple[int, str]:
        """A new file in the directory of ``path``, with the permissions of
        ``path`` if it exists (``mode``), else as umask says."""
        directory, name = os.path.split(path)
        for _ in range(100):
            temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.part")
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o666)
            except FileExistsError:
                continue
            if mode is not None:
                try:
                    os.fchmod(fd, stat.S_IMODE(mode))
                except OSError:
                    os.close(fd)
                    os.unlink(temporary)
                    raise
            return fd, temporary
        raise FileExistsError(f"no free name for a file beside {path}")  # pragma: no cover

    def commit(self) -> None:
        """The transfer succeeded: FILE becomes what was written."""
        self.file.close()
        if self.temporary is not None:
            os.replace(self.temporary, self.path)
            self.temporary = None

    def discard(self) -> None:
        """The transfer failed: remove what was written (no-op after commit)."""
        with contextlib.suppress(OSError):
            self.file.close()
        if self.temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temporary)
            self.temporary = None


class _ClosedStdout:
    """Stands for the stdout of a program started without one: writing to it
    fails as writing to a closed pipe does (exit 23), and nothing else does."""

    def write(self, data: bytes) -> int:
        raise WriteFailed("cannot write the output: stdout is closed")

    def flush(self) -> None:
        pass


def _seconds(text: str) -> float:
    """argparse's type for --timeout and --max-time."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(
            f"a number of seconds above 0 and at most {MAX_SECONDS:.0f}, not {text!r}")
    return value


def _targets(parser: argparse.ArgumentParser, words: List[str]) -> List[Target]:
    if not words:
        parser.error("give HOST PORT [PATH ...] or URL [URL ...]")
    if "://" in words[0]:
        bad = [w for w in words if "://" not in w]
        if bad:
            parser.error(f"mixing URLs and paths: {bad[0]!r}")
        try:
            return [Target.from_url(word) for word in words]
        except ClientError as exc:
            parser.error(exc.message)
    if len(words) < 2:
        parser.error("give HOST PORT [PATH ...] or URL [URL ...]")
    host, port_text, paths = words[0], words[1], words[2:] or ["/"]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        parser.error(f"bad port: {port_text!r}")
    for path in paths:
        if not path.startswith("/"):
            parser.error(f"a path starts with /: {path!r}")
    try:
        return [Target(host, int(port_text), path) for path in paths]
    except ClientError as exc:
        parser.error(exc.message)


def _header_pairs(parser: argparse.ArgumentParser, lines: List[str]) -> List[Tuple[str, str]]:
    pairs = []
    for line in lines:
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip(" \t")
        if not colon or not name:
            parser.error(f"a header is 'Name: value', not {line!r}")
        try:
            check_header(name, value)
        except ValueError as exc:
            parser.error(f"-H {line!r}: {exc}")
        pairs.append((name, value))
    if sum(name.lower() == "host" for name, _ in pairs) > 1:
        parser.error("one -H 'Host: ...' at most")
    return pairs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=program_name("fastsock.webclient", __file__),
        description="Fetch resources over HTTP/1.1 with fastsock.",
        epilog="Exit status: 0 ok, 1 redirect to another scheme, 2 usage error, 3 redirect "
               "to a malformed URL, 6 host not found, 7 cannot connect, 8 malformed "
               "response, 18 body cut short, 22 HTTP error with --fail, 23 write error, "
               "28 timeout, 47 too many redirects.")
    parser.add_argument("words", nargs="*", metavar="HOST PORT [PATH ...] | URL [URL ...]")
    parser.add_argument("-I", "--head", action="store_true", help="send HEAD, show the headers")
    parser.add_argument("-i", "--include", action="store_true",
                        help="write the status line and headers before each body")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the body to FILE (only once it is complete)")
    parser.add_argument("-L", "--location", action="store_true", help="follow redirects")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="an extra request header (repeatable); Host, User-Agent and "
                             "Accept replace the client's own, and 'NAME:' with no value "
                             "leaves NAME out; Authorization, Cookie, "
                             "Proxy-Authorization and Host are not sent to another host "
                             "or port a redirect leads to")
    parser.add_argument("--timeout", type=_seconds, default=30.0, metavar="SECONDS",
                        help="seconds to connect and for each read (default: %(default)s)")
    parser.add_argument("-m", "--max-time", type=_seconds, metavar="SECONDS",
                        help="seconds for each URL in all, redirects included (default: "
                             "no limit)")
    parser.add_argument("--fail", "-f", action="store_true",
                        help="exit 22 when a response has a status of 400 or more")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    targets = _targets(parser, args.words)
    if args.output and len(targets) > 1:
        parser.error("-o writes one resource; give one URL or path")
    extra = _header_pairs(parser, args.header)
    require_httptools()

    stdout: Any = sys.stdout.buffer if sys.stdout is not None else _ClosedStdout()
    output: Optional[_OutputFile] = None
    status = 0
    try:
        if args.output:
            output = _OutputFile(args.output)
        body_out: Any = output.file if output is not None else stdout
        method = "HEAD" if args.head else "GET"
        with Client(timeout=args.timeout, headers=extra, max_time=args.max_time) as client:
            for target in targets:
                progress = (_Progress(sys.stderr) if output is not None and not args.no_progress
                            and sys.stderr.isatty() else None)

                def on_headers(response: Response) -> None:
                    if args.include or args.head:
                        stdout.write(response.head_text().encode("latin-1"))
                        stdout.flush()
                    if progress is not None:
                        progress.start(response)

                def sink(chunk: bytes) -> None:
                    body_out.write(chunk)
                    if progress is not None:
                        progress.advance(len(chunk))

                response = client.request(method, target,
                                          follow_redirects=10 if args.location else 0,
                                          on_headers=on_headers, sink=sink)
                if progress is not None:
                    progress.finish()
                body_out.flush()
                if response.status >= 400 and args.fail:
                    print(f"webclient: {target.url}: HTTP {response.status} {response.reason}",
                          file=sys.stderr)
                    status = 22
        if output is not None and status == 0:
            output.commit()
    except ClientError as exc:
        print(f"webclient: {exc.message}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        print(f"webclient: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return WriteFailed.exit_status
    except KeyboardInterrupt:
        print("webclient: interrupted", file=sys.stderr)
        return 130
    finally:
        if output is not None:
            output.discard()
    return status


if __name__ == "__main__":
    sys.exit(main())
