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

Exit status (curl's numbers): 0 success, 2 usage, 6 host not found, 7 cannot
connect, 8 malformed response, 18 body cut short, 22 HTTP status >= 400 with
``--fail``, 23 cannot write the output, 28 timed out.  Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import socket as _stdlib
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
_MAX_HEAD = 1 << 20          # response head bytes before we call it malformed
_REDIRECTS = (301, 302, 303, 307, 308)


class ClientError(Exception):
    """A request that could not be completed; ``exit_status`` follows curl."""

    exit_status = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HostNotFound(ClientError):
    exit_status = 6


class ConnectFailed(ClientError):
    exit_status = 7


class MalformedResponse(ClientError):
    exit_status = 8


class IncompleteBody(ClientError):
    exit_status = 18


class RequestTimedOut(ClientError):
    exit_status = 28


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
        return int(value) if value is not None and value.isdigit() else None

    def head_text(self) -> str:
        """The status line and headers as the server sent them (CRLF lines)."""
        lines = [f"HTTP/{self.version} {self.status} {self.reason}"]
        lines += [f"{key}: {value}" for key, value in self.headers]
        return "\r\n".join(lines) + "\r\n\r\n"


@dataclass
class Target:
    """Where a request goes: host, port and the request target (path?query)."""

    host: str
    port: int
    path: str = "/"

    @classmethod
    def from_url(cls, url: str) -> "Target":
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() != "http":
            raise ClientError(f"only http:// URLs are supported, not {url!r}")
        try:
            port = parts.port or 80
        except ValueError:
            raise ClientError(f"bad port in {url!r}") from None
        if not parts.hostname:
            raise ClientError(f"no host in {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname, port, path)

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
        self.head_bytes = 0
        self.headers_done = False
        self.complete = False
        self.on_headers: Optional[Callable[[Response], None]] = None
        self.sink: Optional[Callable[[bytes], None]] = None
        self.parts: List[bytes] = []

    def start(self, response: Response, on_headers: Optional[Callable[[Response], None]],
              sink: Optional[Callable[[bytes], None]]) -> None:
        self.response = response
        self.on_headers = on_headers
        self.sink = sink
        self.parts = []
        self.head_bytes = 0
        self.headers_done = False
        self.complete = False

    def on_message_begin(self) -> None:
        assert self.response is not None
        self.response.headers = []
        self.response.reason = ""

    def on_status(self, reason: bytes) -> None:
        assert self.response is not None
        self.response.reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.head_bytes += len(name) + len(value)
        if self.head_bytes > _MAX_HEAD:
            raise MalformedResponse("the response headers are too large")
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
            return  # an interim 1xx response: the final one follows
        response.keep_alive = self.parser.should_keep_alive()
        response.body = b"".join(self.parts)
        self.complete = True


class Connection:
    """One keep-alive connection to ``host``:``port``."""

    def __init__(self, host: str, port: int, timeout: Optional[float]) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock: Any = None
        self.reader: Optional[_Reader] = None
        self.pending = b""
        self.used = False

    def _connect(self) -> None:
        try:
            self.sock = fastsock.create_connection((self.host, self.port), self.timeout)
        except _stdlib.gaierror as exc:
            raise HostNotFound(f"cannot resolve {self.host}: {exc.strerror}") from None
        except TimeoutError:
            raise RequestTimedOut(
                f"timed out connecting to {self.host} port {self.port}") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host} port {self.port}: "
                                f"{exc.strerror or exc}") from None
        self.reader = _Reader()
        self.pending = b""
        self.used = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, target: Target, headers: Sequence[Tuple[str, str]] = (),
                on_headers: Optional[Callable[[Response], None]] = None,
                sink: Optional[Callable[[bytes], None]] = None) -> Response:
        """Send one request and read its response (reconnecting once if a
        kept-alive connection turns out to be closed)."""
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
        lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}",
                 f"User-Agent: {USER_AGENT}", "Accept: */*"]
        lines += [f"{name}: {value}" for name, value in headers]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.sock.sendall(request)
        except TimeoutError:
            raise RequestTimedOut(f"timed out sending to {target.host}") from None
        except OSError:
            if self.used:
                raise _StaleConnection() from None
            raise

    def _recv(self, target_host: str) -> bytes:
        try:
            return bytes(self.sock.recv(_READ_SIZE))
        except TimeoutError:
            raise RequestTimedOut(f"timed out waiting for {target_host}") from None
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def _read(self, response: Response, head_only: bool,
              on_headers: Optional[Callable[[Response], None]],
              sink: Optional[Callable[[bytes], None]]) -> None:
        reader = self.reader
        assert reader is not None
        reader.start(response, on_headers, sink)
        parse = require_httptools()
        data, self.pending = self.pending, b""
        got_any = bool(data)
        while not reader.complete:
            if head_only:
                # a HEAD response announces a body it does not carry, so the
                # parser only sees the head and is renewed after it
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    if len(data) > _MAX_HEAD:
                        raise MalformedResponse("the response headers are too large")
                    more = self._recv(self.host)
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
                data = self._recv(self.host)
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
            self._feed(reader, data)
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


class WriteFailed(ClientError):
    exit_status = 23


class Client:
    """Fetches URLs, keeping one connection per host and port alive."""

    def __init__(self, timeout: Optional[float] = 30.0,
                 headers: Sequence[Tuple[str, str]] = ()) -> None:
        require_httptools()
        self.timeout = timeout
        self.headers = list(headers)
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
        target = url if isinstance(url, Target) else Target.from_url(url)
        hops_left = follow_redirects
        while True:
            key = (target.host, target.port)
            connection = self._connections.get(key)
            if connection is None:
                connection = self._connections[key] = Connection(
                    target.host, target.port, self.timeout)
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

            response = connection.request(method, target, self.headers, on_headers=headers_seen,
                                          sink=body_seen if sink is not None else None)
            if not redirected:
                return response
            if hops_left == 0:
                raise ClientError(f"too many redirects, the last to {target.url}")
            hops_left -= 1
            location = response.header("location") or "/"
            target = Target.from_url(urllib.parse.urljoin(target.url, location))
            if response.status == 303 and method != "HEAD":
                method = "GET"

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
    host, port_text, paths = words[0].strip("[]"), words[1], words[2:] or ["/"]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        parser.error(f"bad port: {port_text!r}")
    for path in paths:
        if not path.startswith("/") or any(c in path for c in " \r\n"):
            parser.error(f"a path starts with / and has no spaces: {path!r}")
    return [Target(host, int(port_text), path) for path in paths]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=program_name("fastsock.webclient", __file__),
        description="Fetch resources over HTTP/1.1 with fastsock.",
        epilog="Exit status: 0 ok, 6 host not found, 7 cannot connect, 8 malformed "
               "response, 18 body cut short, 22 HTTP error with --fail, 23 write error, "
               "28 timeout.")
    parser.add_argument("words", nargs="*", metavar="HOST PORT [PATH ...] | URL [URL ...]")
    parser.add_argument("-I", "--head", action="store_true", help="send HEAD, show the headers")
    parser.add_argument("-i", "--include", action="store_true",
                        help="write the status line and headers before each body")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the body to FILE")
    parser.add_argument("-L", "--location", action="store_true", help="follow redirects")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="an extra request header (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to connect and for each read (default: %(default)s)")
    parser.add_argument("--fail", "-f", action="store_true",
                        help="exit 22 when a response has a status of 400 or more")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    targets = _targets(parser, args.words)
    if args.output and len(targets) > 1:
        parser.error("-o writes one resource; give one URL or path")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    extra = []
    for line in args.header:
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or any(c in line for c in "\r\n"):
            parser.error(f"a header is 'Name: value', not {line!r}")
        extra.append((name.strip(), value.strip()))
    require_httptools()

    stdout = sys.stdout.buffer
    output: Optional[BinaryIO] = None
    status = 0
    try:
        if args.output:
            try:
                output = open(args.output, "wb")
            except OSError as exc:
                raise WriteFailed(f"cannot write {args.output}: {exc.strerror}") from None
        body_out: BinaryIO = output if output is not None else stdout
        method = "HEAD" if args.head else "GET"
        with Client(timeout=args.timeout, headers=extra) as client:
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
            output.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
