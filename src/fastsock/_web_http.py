"""HTTP semantics of the demo web server: what one request gets back.

The limits on a request, status lines and headers, dates, byte ranges, ETags
and conditional requests, MIME types, the small-file cache, directory
listings, the containment of request paths in the served directory, and the
access log.  Nothing here touches a socket: ``Site`` queues each response on
the connection's ``out``, and the loop (``_web_loop``) sends it.
"""

from __future__ import annotations

import email.utils
import errno
import html
import mimetypes
import os
import resource
import stat
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Protocol, TextIO, Tuple, Union

import fastsock

from ._web_parser import require_httptools

SERVER_NAME = f"fastsock/{fastsock.__version__}"
_ALLOWED = "GET, HEAD"

REASONS = {
    100: "Continue", 200: "OK", 206: "Partial Content", 301: "Moved Permanently", 304: "Not Modified",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
    416: "Range Not Satisfiable", 417: "Expectation Failed",
    431: "Request Header Fields Too Large",
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
    max_empty_lines: int = 16           # 400 beyond this many empty lines before a request line
    max_pipeline: int = 100             # requests parsed ahead of their answers, per connection
    max_queued_bytes: int = 256 * 1024  # response bytes queued per connection before it stops
                                        # answering (and reading) until the client reads
    max_connections: int = 1024         # per loop; beyond it new clients wait in the backlog
    idle_timeout: float = 30.0          # a keep-alive connection with nothing to do
    request_timeout: float = 10.0       # first byte of a request to its last (slowloris)
    send_timeout: float = 30.0          # a client that stops reading its response
    linger_timeout: float = 2.0         # reading what a client still sends after we close
    shutdown_grace: float = 10.0        # SIGINT/SIGTERM: time to finish responses in flight
    cache_file_size: int = 65536        # files up to this size are served from memory
    cache_bytes: int = 32 << 20         # memory for those files, per loop
    cache_valid: int = 0                # seconds a cached file is served without a stat
                                        # (0: checked on every request)


class Reject(Exception):
    """A request the server refuses; the connection closes after the answer."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# -- HTTP helpers -------------------------------------------------------------

HOST, CONDITIONAL, CONTENT_LENGTH, SPECIAL, CONNECTION = 1, 2, 3, 4, 5
# Keyed by str, looked up with the name decoded: on free-threaded CPython 3.13,
# finding a bytes key in a dict made by another thread took about 20 µs (the
# lookup contends for the dict's lock with itself); str keys are found
# without the lock.
NOTABLE_HEADERS = {
    "host": HOST, "content-length": CONTENT_LENGTH, "connection": CONNECTION,
    "if-none-match": CONDITIONAL,
    "if-modified-since": CONDITIONAL, "range": CONDITIONAL, "if-range": CONDITIONAL,
    # looked at once the head is complete (Expect, and an Upgrade that llhttp acts on)
    "expect": SPECIAL, "upgrade": SPECIAL,
}

# the characters of a Host value (RFC 9112 section 3.2: uri-host [ ":" port ], where a
# uri-host is an IP literal in brackets, an IPv4 address or a reg-name)
HOST_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
              b"-._~!$&'()*+,;=:[]%")
# the characters of a request method the server recognises as one (as nginx does:
# upper-case letters, "_" and "-"); anything else where a method belongs is a 400
METHOD_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
MAX_METHOD = 32

# an offset in a file can have up to 18 digits (2**63 has 19); a longer number (leading
# zeros aside) is past the end of any file
_MAX_DIGITS = 18

# a backslash is an ordinary character of a file name where it separates nothing
_BACKSLASH_SEPARATES = "\\" in (os.sep, os.altsep or "")


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

    @property
    def second(self) -> int:
        """The second of the last ``now()``."""
        return self._second


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


def _etag_matches(header: bytes, etag: str) -> bool:
    """``If-None-Match`` (a list, ``*``, weak comparison) against ``etag``."""
    wanted = etag.encode("ascii")
    for candidate in header.split(b","):
        candidate = candidate.strip()
        if candidate == b"*":
            return True
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == wanted:
            return True
    return False


def _offset(digits: bytes) -> Optional[int]:
    """A byte offset of a range, or None when it has more digits than any offset."""
    if len(digits) > _MAX_DIGITS:
        digits = digits.lstrip(b"0") or b"0"
        if len(digits) > _MAX_DIGITS:
            return None
    return int(digits)


def parse_range(header: bytes, size: int) -> Union[None, Tuple[int, int], str]:
    """One byte range of a ``Range`` header as (start, end inclusive).

    None means "ignore the header and send everything" (malformed, not bytes,
    several ranges, or a suffix range of an empty file); "unsatisfiable" means 416.
    A number too long for any file offset is unsatisfiable, as nginx has it.
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
        suffix = _offset(last)
        if suffix is None or suffix == 0:
            return "unsatisfiable"
        if size == 0:
            # RFC 9110 section 14.1.2: against an empty representation a suffix range
            # is the one satisfiable form, but a 206 cannot describe its zero bytes
            # (Content-Range has first-last); section 14.2 lets a server ignore Range
            return None
        return (max(size - suffix, 0), size - 1)
    start = _offset(first)
    end = _offset(last) if last else size - 1
    if start is None or end is None:
        return "unsatisfiable"
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


class FileBody:
    """A byte range of an open file still to be sent with sendfile: the
    response's own file, or one the site keeps open (``shared``)."""

    __slots__ = ("file", "offset", "remaining", "shared")

    def __init__(self, file: Any, offset: int, count: int,
                 shared: Optional["_OpenFile"] = None) -> None:
        self.file = file
        self.offset = offset
        self.remaining = count
        self.shared = shared

    def close(self) -> None:
        """Done with the file (sent, or the connection is gone)."""
        if self.shared is not None:
            self.shared.release()
        else:
            self.file.close()


class _OpenFile:
    """A file too large to keep in memory, kept open with what its responses
    need while ``cache_valid`` allows (nginx's open_file_cache): no path
    resolution, open, fstat or close per request.  Every sendfile() names its
    offset, so one descriptor serves any number of connections at once; it is
    closed once it has left the cache and the last response using it is done."""

    __slots__ = ("file", "real", "key", "size", "mtime", "checked", "users", "retired")

    def __init__(self, file: Any, real: str, key: Tuple[int, int, int], mtime: int,
                 checked: int) -> None:
        self.file = file
        self.real = real
        self.key = key
        self.size = key[1]
        self.mtime = mtime
        self.checked = checked  # the second of the last look at the file on disk
        self.users = 0          # FileBody objects queued with it
        self.retired = False    # out of the cache

    def acquire(self) -> None:
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.retired and not self.users:
            self.file.close()

    def retire(self) -> None:
        self.retired = True
        if not self.users:
            self.file.close()


Output = Union[bytes, memoryview, FileBody]


class _CachedFile:
    """A small file kept in memory with the parts of its response headers."""

    __slots__ = ("path", "key", "body", "etag", "last_modified", "mtime", "fixed_headers",
                 "date", "head_200", "response_200", "checked")

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
        self.response_200 = b""
        self.checked = -1       # the second of the last look at the file on disk

    def head(self, date: str) -> bytes:
        """The 200 response head for keep-alive, rebuilt once a second."""
        if date != self.date:
            self._rebuild(date)
        return self.head_200

    def response(self, date: str) -> bytes:
        """The whole 200 response, head and body, for keep-alive: one buffer to
        queue and send, rebuilt once a second."""
        if date != self.date:
            self._rebuild(date)
        return self.response_200

    def _rebuild(self, date: str) -> None:
        self.date = date
        self.head_200 = (
            f"HTTP/1.1 200 OK\r\nDate: {date}\r\n{self.fixed_headers}"
            f"Content-Length: {len(self.body)}\r\n\r\n").encode("latin-1")
        self.response_200 = self.head_200 + self.body


def _cached_size(entry: _CachedFile) -> int:
    """What a cached file counts against the cache's memory: its body, the
    response that holds a copy of it, and the headers."""
    return 2 * len(entry.body) + 512


def _stat_key(info: os.stat_result) -> Tuple[int, int, int]:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


# what a failed file system call answers; a name too long for the file system is
# a file that is not there (414 is for a request target over the limit), and
# running out of descriptors or memory is the server's moment, not the
# client's fault: 503 with Retry-After
# files kept open at most (each a descriptor of every worker), when cache_valid
# allows: 64, or an eighth of the descriptor limit when that is lower
_MAX_OPEN_FILES = 64

_ERRNO_STATUS = {
    errno.ENOENT: 404, errno.ENOTDIR: 404, errno.EACCES: 403, errno.EPERM: 403,
    errno.ELOOP: 404, errno.ENAMETOOLONG: 404, errno.EISDIR: 403,
    errno.EMFILE: 503, errno.ENFILE: 503, errno.ENOMEM: 503, errno.ENOBUFS: 503,
}


class Exchange(Protocol):
    """A connection as responses see it: where they are queued, in order."""

    peer: str                # the client, for the access log
    out: Deque[Output]       # what is still to be sent
    out_bytes: int           # bytes queued in out, files not counted
    files: int               # file bodies queued in out
    close_after_flush: bool  # a response said "Connection: close"
    conditional: bool        # the request has a header that can change the answer to a GET


# -- the log ------------------------------------------------------------------


class ServerLog:
    """The access log and the server's notes, written once per turn of the loop."""

    def __init__(self, stream: Optional[TextIO]) -> None:
        self.stream = stream
        self.lines: List[str] = []

    def access(self, peer: str, method: bytes, target: bytes, version: str,
               status: int, size: int) -> None:
        if self.stream is None:
            return
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        line = _log_escape(method + b" " + target + b" HTTP/" + version.encode("ascii"))
        self.lines.append(
            f'{peer} - - [{when}] "{line}" {status} {size if size else "-"}\n')

    def note(self, message: str) -> None:
        if self.stream is not None:
            self.lines.append(f"fastsock.webserver: {message}\n")

    def write(self) -> None:
        lines, self.lines = self.lines, []
        if self.stream is None:
            return
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):
            pass


# -- the site -----------------------------------------------------------------


class Site:
    """The files under ``directory``, answered as HTTP/1.1 responses.

    ``answer`` queues the response to one complete request; the small files
    it served are kept in memory, up to ``limits.cache_bytes``.
    """

    def __init__(self, directory: str, limits: Limits, log: ServerLog) -> None:
        self._httptools = require_httptools()
        self.root = os.path.realpath(directory)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", directory)
        # what every path under the root starts with ("/" itself ends with the separator)
        self.inside = self.root if self.root.endswith(os.sep) else self.root + os.sep
        self.limits = limits
        self.log = log
        self.cache: Dict[bytes, _CachedFile] = {}
        self.cache_size = 0
        # larger files kept open, when cache_valid allows (request path → file)
        self.open_files: Dict[bytes, _OpenFile] = {}
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.max_open_files = _MAX_OPEN_FILES if soft_limit == resource.RLIM_INFINITY \
            else max(1, min(_MAX_OPEN_FILES, soft_limit // 8))
        self.dates = _DateCache()

    def close_files(self) -> None:
        """Let go of the files kept open (each closes once no response uses it)."""
        for opened in self.open_files.values():
            opened.retire()
        self.open_files.clear()

    def answer(self, conn: Exchange, method: bytes, target: bytes,
               headers: List[Tuple[bytes, bytes]], keep_alive: bool, version: str) -> None:
        """Queue the response to one complete request."""
        if conn.close_after_flush:
            return  # a response before said Connection: close
        if version not in ("1.1", "1.0"):
            self.respond_error(conn, 505, method, target, version, keep_alive=False)
            return
        head_only = method == b"HEAD"
        if method != b"GET" and not head_only:
            # every other method, known or not, as nginx answers for static files; what
            # follows a CONNECT is tunnel data, so the connection closes after it
            self.respond_error(conn, 405, method, target, version,
                               keep_alive and method != b"CONNECT")
            return
        path, _, query = target.partition(b"?")
        entry = self.cache.get(path)
        if entry is not None and not conn.conditional and keep_alive and version == "1.1":
            # the hot path: a cached small file, revalidated with one stat (or
            # once in cache_valid seconds)
            dates = self.dates
            date = dates.now()
            key: Optional[Tuple[int, int, int]] = entry.key
            if dates.second - entry.checked >= self.limits.cache_valid:
                try:
                    key = _stat_key(os.stat(entry.path))
                except OSError:
                    key = None
                entry.checked = dates.second
            if key == entry.key:
                if head_only:
                    response = entry.head(date)
                    size = 0
                else:
                    response = entry.response(date)
                    size = len(entry.body)
                conn.out.append(response)
                conn.out_bytes += len(response)
                if self.log.stream is not None:
                    self.log.access(conn.peer, method, target, version, 200, size)
                return
            self._uncache(path)
        opened = self.open_files.get(path)
        if opened is not None and not self._still_valid(opened):
            del self.open_files[path]
            opened.retire()
            opened = None
        try:
            if opened is not None:
                self._send_file(conn, method, path, opened.real, headers, keep_alive, version,
                                opened)
            else:
                self._serve_path(conn, method, path, query, headers, keep_alive, version)
        except Reject as exc:
            self.respond_error(conn, exc.status, method, target, version, keep_alive)
        except OSError as exc:
            status = _ERRNO_STATUS.get(exc.errno or 0, 500)
            if status == 500:
                self.log.note(f"{exc!r} serving {target!r}")
            self.respond_error(conn, status, method, target, version, keep_alive)

    def _still_valid(self, opened: _OpenFile) -> bool:
        """Whether a file kept open may answer: looked at within cache_valid
        seconds, or unchanged on disk now."""
        dates = self.dates
        dates.now()
        if dates.second - opened.checked < self.limits.cache_valid:
            return True
        try:
            key = _stat_key(os.stat(opened.real))
        except OSError:
            return False
        opened.checked = dates.second
        return key == opened.key

    def _keep_open(self, path: bytes, opened: _OpenFile) -> None:
        old = self.open_files.pop(path, None)
        if old is not None:
            old.retire()
        while len(self.open_files) >= self.max_open_files:
            oldest = next(iter(self.open_files))
            self.open_files.pop(oldest).retire()
        self.open_files[path] = opened

    def _resolve(self, path: bytes) -> Tuple[str, bytes, bool]:
        """The file system path for a request path, the path in origin form
        (``http://host/x`` is ``/x``), and whether it names a directory (it
        ends with "/" once its dot segments are removed: "/x/", "/x/.",
        "/x/%2e"), or Reject/OSError."""
        if not path.startswith(b"/"):
            if path == b"*":
                raise Reject(400)
            try:
                path = self._httptools.parse_url(path).path or b"/"
            except self._httptools.HttpParserInvalidURLError:
                raise Reject(400) from None
            if not path.startswith(b"/"):
                raise Reject(400)
        if b"\\" in path:
            raise Reject(400)  # not a character of a URI path
        lowered = path.lower()
        if b"%2f" in lowered or b"%00" in lowered or (_BACKSLASH_SEPARATES and b"%5c" in lowered):
            raise Reject(400)  # an encoded separator or NUL never names a file here
        decoded = urllib.parse.unquote_to_bytes(path)
        if b"\0" in decoded or (_BACKSLASH_SEPARATES and b"\\" in decoded):
            raise Reject(400)
        parts = []
        for segment in decoded.split(b"/"):
            if segment in (b"", b"."):
                continue
            if segment == b"..":
                raise Reject(400)
            parts.append(os.fsdecode(segment))
        candidate = os.path.join(self.root, *parts)
        real = os.path.realpath(candidate)
        if real != self.root and not real.startswith(self.inside):
            raise Reject(403)  # a symlink that leads outside the served directory
        return real, path, decoded.endswith((b"/", b"/."))

    def _serve_path(self, conn: Exchange, method: bytes, path: bytes, query: bytes,
                    headers: List[Tuple[bytes, bytes]], keep_alive: bool, version: str) -> None:
        real, origin, names_directory = self._resolve(path)
        info = os.stat(real)
        if stat.S_ISDIR(info.st_mode):
            if not names_directory:
                # "//host/" would name another host (a scheme-relative reference), so
                # the redirect starts with one slash however many the request had
                location = b"/" + origin.lstrip(b"/") + b"/" + (b"?" + query if query else b"")
                self.respond_error(conn, 301, method, path, version, keep_alive,
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
            raise Reject(403)  # never open a FIFO, socket or device
        if names_directory:
            raise Reject(404)  # a file is not a directory ("/file.txt/", "/file.txt/.")
        self._send_file(conn, method, path, real, headers, keep_alive, version)

    def _send_file(self, conn: Exchange, method: bytes, target: bytes, real: str,
                   headers: List[Tuple[bytes, bytes]], keep_alive: bool, version: str,
                   opened: Optional[_OpenFile] = None) -> None:
        file: Any = None  # this response's own file, closed at the end unless queued
        if opened is None:
            file = open(
                os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb", buffering=0)
        try:
            if opened is not None:
                key, size, mtime = opened.key, opened.size, opened.mtime
            else:
                info = os.fstat(file.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise Reject(403)
                size = info.st_size
                key = _stat_key(info)
                mtime = int(info.st_mtime)
                if size > self.limits.cache_file_size and self.limits.cache_valid:
                    self.dates.now()
                    opened = _OpenFile(file, real, key, mtime, self.dates.second)
                    self._keep_open(target, opened)
                    file = None  # the site's now
            entry: Optional[_CachedFile] = None
            if opened is None and size <= self.limits.cache_file_size:
                body = file.read(size + 1)
                if body is None or len(body) != size:
                    raise OSError(errno.EAGAIN, "file changed while being read")
                entry = _CachedFile(real, key, body, mtime)
                self.dates.now()
                entry.checked = self.dates.second   # key was read from the file just now
                self._cache(target, entry)
            etag = f'"{key[0]:x}-{key[1]:x}"'
            last_modified = _http_date(mtime)
            # a field sent on several lines is one comma-separated list (RFC 9110
            # section 5.3); for a field that is not a list, the result is invalid and ignored
            request: Dict[bytes, bytes] = {}
            for name, value in headers:
                name = name.lower()
                seen = request.get(name)
                request[name] = value if seen is None else seen + b", " + value
            status = 200
            start, length = 0, size
            inm = request.get(b"if-none-match")
            if inm is not None:
                if _etag_matches(inm, etag):
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
                    # one strong entity tag (a list, or a weak tag, never matches) or a date
                    if_range = if_range.strip()
                    if if_range.startswith(b'"'):
                        honour = if_range == etag.encode("ascii")
                    elif if_range.startswith(b"W/"):
                        honour = False
                    else:
                        honour = _parse_http_date(if_range) == mtime
                wanted = parse_range(range_header, size) if honour else None
                if wanted == "unsatisfiable":
                    self.respond_error(conn, 416, method, target, version, keep_alive,
                                       extra=f"Content-Range: bytes */{size}\r\n")
                    return
                if isinstance(wanted, tuple):
                    status = 206
                    start, length = wanted[0], wanted[1] - wanted[0] + 1
                    extra = f"Content-Range: bytes {wanted[0]}-{wanted[1]}/{size}\r\n"
            if status == 304:
                # RFC 9110 section 15.4.5: the validators, and no representation
                # metadata (Content-Type, Content-Length) besides (nginx's fields too)
                head = self._head(304, keep_alive, version,
                                  f"Last-Modified: {last_modified}\r\nETag: {etag}\r\n", None)
            else:
                head = self._head(status, keep_alive, version,
                                  f"Content-Type: {_content_type(real)}\r\n"
                                  f"Last-Modified: {last_modified}\r\n"
                                  f"ETag: {etag}\r\nAccept-Ranges: bytes\r\n" + extra, length)
            conn.out.append(head)
            conn.out_bytes += len(head)
            sent = 0
            if status != 304 and method == b"GET" and length:
                sent = length
                if entry is not None:
                    conn.out.append(memoryview(entry.body)[start:start + length]
                                    if length != size else entry.body)
                    conn.out_bytes += length
                elif opened is not None:
                    opened.acquire()
                    conn.out.append(FileBody(opened.file, start, length, opened))
                    conn.files += 1
                else:
                    conn.out.append(FileBody(file, start, length))
                    conn.files += 1
                    file = None  # the queue owns it now
            if not keep_alive:
                conn.close_after_flush = True
            self.log.access(conn.peer, method, target, version, status, sent)
        finally:
            if file is not None:
                file.close()

    def _send_listing(self, conn: Exchange, method: bytes, path: bytes, real: str,
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

    def _queue(self, conn: Exchange, status: int, method: bytes, target: bytes,
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
        self.log.access(conn.peer, method, target, version, status, sent)

    def respond_error(self, conn: Exchange, status: int, method: bytes, target: bytes,
                      version: str, keep_alive: bool, extra: str = "") -> None:
        reason = REASONS[status]
        if status == 405:
            extra += f"Allow: {_ALLOWED}\r\n"
        elif status == 503:
            extra += "Retry-After: 1\r\n"
        body = (f"<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>"
                f"<body><h1>{status} {reason}</h1></body></html>\n").encode("ascii")
        if status >= 400 and status not in (404, 403, 405, 416):
            keep_alive = False
        self._queue(conn, status, method, target, version, keep_alive,
                    extra + "Content-Type: text/html; charset=utf-8\r\n", body)

    def _cache(self, key: bytes, entry: _CachedFile) -> None:
        self._uncache(key)
        budget = self.limits.cache_bytes
        size = _cached_size(entry)
        while self.cache and self.cache_size + size > budget:
            oldest = next(iter(self.cache))
            self._uncache(oldest)
        if size <= budget:
            self.cache[key] = entry
            self.cache_size += size

    def _uncache(self, key: bytes) -> None:
        old = self.cache.pop(key, None)
        if old is not None:
            self.cache_size -= _cached_size(old)

