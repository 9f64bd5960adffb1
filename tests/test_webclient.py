"""The demo web client: against the demo server, Python's http.server, nginx
and deliberately broken servers; the command line on both implementations."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import pty
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import HAS_IPV6
from fastsock import webclient
from web_support import IMPL_ENV, ServerProcess, nginx_server, running_server

Site = tuple[Path, dict[str, bytes]]


def run_client(impl: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, FASTSOCK_NO_EXTENSIONS=IMPL_ENV[impl], PYTHONWARNINGS="error")
    return subprocess.run([sys.executable, "-m", "fastsock.webclient", *args],
                          capture_output=True, timeout=timeout, env=env)


# -- the command line against the demo server -----------------------------------------------


def test_host_port_path(served: ServerProcess, site: Site) -> None:
    result = run_client(served.impl, "127.0.0.1", str(served.port), "/data.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == site[1]["/data.json"]
    assert result.stderr == b""


def test_host_port_defaults_to_root(served: ServerProcess, site: Site) -> None:
    result = run_client(served.impl, "127.0.0.1", str(served.port))
    assert result.stdout == site[1]["/index.html"]


def test_several_paths_in_order(served: ServerProcess, site: Site) -> None:
    paths = ["/data.json", "/notes.txt", "/empty.txt", "/big.bin", "/image.png"]
    result = run_client(served.impl, "127.0.0.1", str(served.port), *paths)
    assert result.returncode == 0
    assert result.stdout == b"".join(site[1][p] for p in paths)


def test_url_include_headers(served: ServerProcess, site: Site) -> None:
    result = run_client(served.impl, "-i", served.url("/data.json"))
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Type: application/json; charset=utf-8" in head
    assert body == site[1]["/data.json"]


def test_head(served: ServerProcess, site: Site) -> None:
    result = run_client(served.impl, "-I", served.url("/big.bin"), served.url("/data.json"))
    assert result.returncode == 0
    heads = result.stdout.split(b"\r\n\r\n")
    assert heads[0].startswith(b"HTTP/1.1 200 OK")
    assert f"Content-Length: {len(site[1]['/big.bin'])}".encode() in heads[0]
    assert heads[1].startswith(b"HTTP/1.1 200 OK")
    assert heads[2] == b""


def test_output_file(served: ServerProcess, site: Site, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    result = run_client(served.impl, "-o", str(target), served.url("/big.bin"))
    assert result.returncode == 0
    assert result.stdout == b"" and result.stderr == b""   # no progress bar without a terminal
    assert hashlib.sha256(target.read_bytes()).digest() == \
        hashlib.sha256(site[1]["/big.bin"]).digest()


def test_progress_bar_on_a_terminal(served: ServerProcess, site: Site, tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    env = dict(os.environ, FASTSOCK_NO_EXTENSIONS=IMPL_ENV[served.impl])
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastsock.webclient", "-o", str(tmp_path / "b"),
             served.url("/big.bin")], stderr=follower, stdout=subprocess.DEVNULL, env=env)
        os.close(follower)
        follower = -1
        shown = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert b"100.0%" in shown
    assert b"3.0 MiB" in shown
    assert (tmp_path / "b").read_bytes() == site[1]["/big.bin"]


def test_follow_redirects(served: ServerProcess, site: Site) -> None:
    plain = run_client(served.impl, "-i", served.url("/withindex"))
    assert plain.stdout.startswith(b"HTTP/1.1 301")
    followed = run_client(served.impl, "-L", served.url("/withindex"))
    assert followed.stdout == site[1]["/withindex/index.html"]


def test_http_error_and_fail(served: ServerProcess) -> None:
    quiet = run_client(served.impl, served.url("/nope"))
    assert quiet.returncode == 0
    assert b"404 Not Found" in quiet.stdout
    failing = run_client(served.impl, "--fail", served.url("/nope"))
    assert failing.returncode == 22
    assert failing.stderr.decode().strip() == f"webclient: {served.url('/nope')}: HTTP 404 Not Found"


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_ipv6_literal(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--quiet", bind="::1") as server:
        by_url = run_client(web_impl, f"http://[::1]:{server.port}/data.json")
        by_host = run_client(web_impl, "::1", str(server.port), "/data.json")
    assert by_url.returncode == by_host.returncode == 0
    assert by_url.stdout == by_host.stdout == site[1]["/data.json"]


# -- failures: a one-line message and the documented status, never a traceback ------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_connection_refused(impl: str) -> None:
    port = _free_port()
    result = run_client(impl, "127.0.0.1", str(port))
    assert result.returncode == 7
    assert result.stderr.decode() == \
        f"webclient: cannot connect to 127.0.0.1 port {port}: Connection refused\n"


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_unknown_host(impl: str) -> None:
    result = run_client(impl, "http://no-such-host.invalid/")
    assert result.returncode == 6
    assert result.stderr.startswith(b"webclient: cannot resolve no-such-host.invalid")
    assert result.stderr.count(b"\n") == 1


@pytest.mark.parametrize("args, message", [
    (["127.0.0.1"], b"HOST PORT"),
    (["127.0.0.1", "http"], b"bad port"),
    (["127.0.0.1", "80", "no-slash"], b"a path starts with /"),
    (["https://127.0.0.1/"], b"only http:// URLs"),
    (["-o", "x", "http://127.0.0.1/a", "http://127.0.0.1/b"], b"-o writes one resource"),
    (["-H", "bad header", "http://127.0.0.1/"], b"a header is 'Name: value'"),
])
def test_usage_errors(args: list[str], message: bytes) -> None:
    result = run_client("python", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert b"Traceback" not in result.stderr


@contextlib.contextmanager
def fake_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection-at-a-time TCP server that runs ``answer`` per connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    accepted: list[int] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(1)
            with conn:
                conn.settimeout(10)
                with contextlib.suppress(OSError):
                    answer(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(4096)
        if not more:
            break
        data += more
    return data


def _replying(raw: bytes, then: Callable[[socket.socket], Any] = lambda c: None
              ) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(raw)
        then(conn)
    return answer


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_timeout(impl: str) -> None:
    def stall(conn: socket.socket) -> None:
        _read_request(conn)
        time.sleep(3)

    with fake_server(stall) as port:
        started = time.monotonic()
        result = run_client(impl, "--timeout", "0.5", "127.0.0.1", str(port))
        elapsed = time.monotonic() - started
    assert result.returncode == 28
    assert elapsed < 2.5
    assert result.stderr == b"webclient: timed out waiting for 127.0.0.1\n"


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_malformed_response(impl: str) -> None:
    with fake_server(_replying(b"HTTP/1.1 2xx Nope\r\n\r\n")) as port:
        result = run_client(impl, "127.0.0.1", str(port))
    assert result.returncode == 8
    assert result.stderr.startswith(b"webclient: malformed response")
    assert result.stderr.count(b"\n") == 1


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_body_cut_short(impl: str) -> None:
    with fake_server(_replying(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!!")) as port:
        result = run_client(impl, "127.0.0.1", str(port))
    assert result.returncode == 18
    assert result.stdout == b"only ten!!"
    assert result.stderr == b"webclient: the connection closed after 10 of 100 body bytes\n"


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_close_delimited_and_chunked_bodies(impl: str) -> None:
    with fake_server(_replying(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")) as port:
        result = run_client(impl, "127.0.0.1", str(port))
    assert (result.returncode, result.stdout) == (0, b"until the end")
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n")
    with fake_server(_replying(chunked)) as port:
        result = run_client(impl, "127.0.0.1", str(port))
    assert (result.returncode, result.stdout) == (0, b"hello world")


def test_interim_responses_are_skipped() -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
    with fake_server(_replying(raw)) as port, webclient.Client(timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{port}/")
    assert (response.status, response.body) == (200, b"final")


def test_reconnects_when_a_kept_connection_was_closed(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--idle-timeout", "0.3", "--quiet") as server:
        with webclient.Client(timeout=10) as client:
            assert client.get(server.url("/data.json")).body == site[1]["/data.json"]
            time.sleep(1.5)  # the server closes the idle connection meanwhile
            assert client.get(server.url("/notes.txt")).body == site[1]["/notes.txt"]


# -- against other servers ----------------------------------------------------------------------


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: list[int] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(1)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def stdlib_server(root: Path) -> Iterator[tuple[int, list[int]]]:
    counted: list[int] = []
    handler = type("Handler", (_CountingHandler,), {"connections": counted})

    def make(*args: Any, **kwargs: Any) -> Any:
        return handler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], counted
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_against_http_server_one_connection(impl: str, site: Site) -> None:
    paths = ["/data.json", "/big.bin", "/notes.txt", "/sub/file.txt"]
    with stdlib_server(site[0]) as (port, connections):
        result = run_client(impl, *[f"http://127.0.0.1:{port}{p}" for p in paths])
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"".join(site[1][p] for p in paths)
        assert len(connections) == 1   # all four on one keep-alive connection
        head = run_client(impl, "-I", f"http://127.0.0.1:{port}/big.bin",
                          f"http://127.0.0.1:{port}/data.json")
        assert head.stdout.count(b"HTTP/1.0 200 OK") + head.stdout.count(b"HTTP/1.1 200 OK") == 2


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_against_nginx(impl: str, site: Site) -> None:
    paths = ["/data.json", "/big.bin", "/image.png", "/sub/"]
    with nginx_server(site[0]) as (host, port):
        result = run_client(impl, *[f"http://{host}:{port}{p}" for p in paths[:3]])
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"".join(site[1][p] for p in paths[:3])
        head = run_client(impl, "-I", f"http://{host}:{port}/big.bin")
        assert b"Server: nginx" in head.stdout
        assert f"Content-Length: {len(site[1]['/big.bin'])}".encode() in head.stdout
        missing = run_client(impl, "--fail", f"http://{host}:{port}/nope")
        assert missing.returncode == 22
        with webclient.Client(timeout=10) as client:
            ranged = webclient.Client(timeout=10, headers=[("Range", "bytes=10-19")])
            with ranged:
                part = ranged.get(f"http://{host}:{port}/big.bin")
            assert (part.status, part.body) == (206, site[1]["/big.bin"][10:20])
            redirect = client.get(f"http://{host}:{port}/sub", follow_redirects=3)
            assert redirect.status in (200, 403)  # nginx lists nothing without autoindex


# -- hostile peers and bad input: bounded, one-line errors, nothing leaks ----------------------

IMPLS = ["cython", "python"]


def _header_values(request: bytes, name: bytes) -> list[bytes]:
    """The values of header ``name`` (any case) in one raw request."""
    lines = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [line.partition(b":")[2].strip() for line in lines
            if line.partition(b":")[0].strip().lower() == name.lower()]


def _answering(requests: list[bytes], reply: Callable[[bytes], bytes]
               ) -> Callable[[socket.socket], None]:
    """Answers each request on a connection with ``reply(request)``, recording them,
    until a reply says ``Connection: close``."""
    def answer(conn: socket.socket) -> None:
        while True:
            request = _read_request(conn)
            if not request:
                return
            requests.append(request)
            response = reply(request)
            conn.sendall(response)
            if b"\r\nConnection: close\r\n" in response.partition(b"\r\n\r\n")[0] + b"\r\n":
                return
    return answer


def _ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def _redirect(location: bytes, status: int = 302, close: bool = False) -> bytes:
    return (b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n%s\r\n"
            % (status, location, b"Connection: close\r\n" if close else b""))


CREDENTIALS = ["-H", "Authorization: Bearer secret", "-H", "Cookie: session=secret",
               "-H", "Proxy-Authorization: Basic c2VjcmV0", "-H", "X-Trace: kept"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("elsewhere", ["port", "host"])
def test_redirect_to_another_origin_drops_credentials(impl: str, elsewhere: str) -> None:
    landed: list[bytes] = []
    first: list[bytes] = []
    where: dict[str, str] = {}

    def start(request: bytes) -> bytes:
        if request.startswith(b"GET /landing"):
            return _ok(b"landed")
        # the scripted server answers one connection at a time: close this one
        return _redirect(where["location"].encode(), close=True)

    with fake_server(_answering(landed, lambda r: _ok(b"landed"))) as other_port, \
            fake_server(_answering(first, start)) as port:
        where["location"] = (f"http://127.0.0.1:{other_port}/landing" if elsewhere == "port"
                             else f"http://localhost:{port}/landing")   # same port, other host
        result = run_client(impl, "-L", *CREDENTIALS, "-H", "Host: origin.test",
                            f"http://127.0.0.1:{port}/start")
    assert (result.returncode, result.stdout) == (0, b"landed"), result.stderr
    sent = landed if elsewhere == "port" else first[1:]
    assert len(sent) == 1
    assert _header_values(first[0], b"authorization") == [b"Bearer secret"]
    assert _header_values(first[0], b"host") == [b"origin.test"]
    for name in (b"authorization", b"cookie", b"proxy-authorization"):
        assert _header_values(sent[0], name) == [], name
    assert _header_values(sent[0], b"x-trace") == [b"kept"]
    assert _header_values(sent[0], b"host") == [where["location"].split("/")[2].encode()]


@pytest.mark.parametrize("impl", IMPLS)
def test_redirect_within_the_origin_keeps_credentials(impl: str) -> None:
    requests: list[bytes] = []
    with fake_server(_answering(requests, lambda r: _ok(b"landed") if r.startswith(b"GET /landing")
                                else _redirect(b"/landing"))) as port:
        result = run_client(impl, "-L", *CREDENTIALS, f"http://127.0.0.1:{port}/start")
    assert (result.returncode, result.stdout) == (0, b"landed"), result.stderr
    assert [r.split(b" ")[1] for r in requests] == [b"/start", b"/landing"]
    for name, value in ((b"authorization", b"Bearer secret"), (b"cookie", b"session=secret"),
                        (b"proxy-authorization", b"Basic c2VjcmV0"), (b"x-trace", b"kept")):
        assert _header_values(requests[1], name) == [value], name


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("args, message", [
    (["http://[::1"], b"bad URL 'http://[::1': Invalid IPv6 URL"),
    ([f"http://{'a' * 64}.example/"], b"bad host name"),
    (["http://bad host/"], b"bad host name 'bad host'"),
    (["bad host", "80"], b"bad host name 'bad host'"),
    (["http://127.0.0.1:0/"], b"port 0 is not a port to connect to"),
    (["http://127.0.0.1:65536/"], b"bad URL"),
    (["-H", "X-Name: caf\u00e9", "http://127.0.0.1/"], b"a header value is printable ASCII"),
    (["-H", "X-Name: a\rEvil: 1", "http://127.0.0.1/"], b"a header value is printable ASCII"),
    (["-H", "Bad Name: x", "http://127.0.0.1/"], b"a header name is a token"),
    (["-H", "Content-Length: 5", "http://127.0.0.1/"], b"no Content-Length header"),
    (["-H", "Host: a", "-H", "host: b", "http://127.0.0.1/"], b"one -H 'Host: ...' at most"),
    (["--timeout", "nan", "http://127.0.0.1/"], b"--timeout: a number of seconds"),
    (["--timeout", "inf", "http://127.0.0.1/"], b"--timeout: a number of seconds"),
    (["--timeout", "-1", "http://127.0.0.1/"], b"--timeout: a number of seconds"),
    (["--timeout", "0", "http://127.0.0.1/"], b"--timeout: a number of seconds"),
    (["--timeout", "1e300", "http://127.0.0.1/"], b"--timeout: a number of seconds"),
    (["--max-time", "nan", "http://127.0.0.1/"], b"--max-time: a number of seconds"),
    (["-m", "-5", "http://127.0.0.1/"], b"-m/--max-time: a number of seconds"),
])
def test_bad_input_is_a_usage_error(impl: str, args: list[str], message: bytes) -> None:
    result = run_client(impl, *args)
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr
    error = result.stderr.decode().splitlines()[-1].encode()   # after argparse's usage line
    assert b": error: " in error and message in error, result.stderr


@pytest.mark.parametrize("impl", IMPLS)
def test_request_targets_are_percent_encoded(impl: str) -> None:
    requests: list[bytes] = []
    with fake_server(_answering(requests, lambda r: _ok())) as port:
        by_url = run_client(
            impl, f"http://127.0.0.1:{port}/caf\u00e9/\u65e5\u672c a\x0bb?q=\u00fc x%zz#frag")
        by_path = run_client(impl, "127.0.0.1", str(port), "/caf\u00e9 menu.txt", "/100%")
    assert by_url.returncode == by_path.returncode == 0, (by_url.stderr, by_path.stderr)
    assert [r.split(b"\r\n")[0] for r in requests] == [
        b"GET /caf%C3%A9/%E6%97%A5%E6%9C%AC%20a%0Bb?q=%C3%BC%20x%25zz HTTP/1.1",
        b"GET /caf%C3%A9%20menu.txt HTTP/1.1",
        b"GET /100%25 HTTP/1.1"]


@pytest.mark.parametrize("impl", IMPLS)
def test_location_is_percent_encoded(impl: str) -> None:
    requests: list[bytes] = []
    location = "/a b/\u00fc\u20ac\"<>`{}|\\^?x=1 2".encode()  # raw UTF-8, as servers send it
    with fake_server(_answering(requests, lambda r: _redirect(location)
                                if r.startswith(b"GET /start") else _ok(b"landed"))) as port:
        result = run_client(impl, "-L", f"http://127.0.0.1:{port}/start")
    assert (result.returncode, result.stdout) == (0, b"landed"), result.stderr
    assert requests[1].split(b"\r\n")[0] == (
        b"GET /a%20b/%C3%BC%E2%82%AC%22%3C%3E%60%7B%7D%7C%5C%5E?x=1%202 HTTP/1.1")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("location, message", [
    (b"http://127.0.0.1:0/", b"port 0 is not a port to connect to"),
    (b"http://[::1/", b"Invalid IPv6 URL"),
    (b"http://" + b"a" * 64 + b".example/", b"bad host name"),
])
def test_redirect_to_a_bad_url(impl: str, location: bytes, message: bytes) -> None:
    requests: list[bytes] = []
    with fake_server(_answering(requests, lambda r: _redirect(location))) as port:
        result = run_client(impl, "-L", f"http://127.0.0.1:{port}/")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(b"webclient: the redirect goes to a bad URL")
    assert message in result.stderr and result.stderr.count(b"\n") == 1
    assert len(requests) == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_header_options_replace_the_clients_own(impl: str) -> None:
    requests: list[bytes] = []
    with fake_server(_answering(requests, lambda r: _ok())) as port:
        result = run_client(impl, "-H", "Host: example.test", "-H", "user-agent: probe/1",
                            f"http://127.0.0.1:{port}/")
    assert result.returncode == 0, result.stderr
    assert _header_values(requests[0], b"host") == [b"example.test"]
    assert _header_values(requests[0], b"user-agent") == [b"probe/1"]
    assert _header_values(requests[0], b"accept") == [b"*/*"]
    assert requests[0].split(b"\r\n")[1] == b"Host: example.test"   # Host comes first


@pytest.mark.parametrize("impl", IMPLS)
def test_header_options_without_a_value_leave_the_header_out(impl: str) -> None:
    """As curl's -H 'Name:': the client's own header is not sent, nor one of
    that name given without a value."""
    requests: list[bytes] = []
    with fake_server(_answering(requests, lambda r: _ok())) as port:
        result = run_client(impl, "-H", "User-Agent:", "-H", "Accept:  ", "-H", "X-Empty:",
                            "-H", "X-Kept: 1", f"http://127.0.0.1:{port}/")
    assert result.returncode == 0, result.stderr
    for name in (b"user-agent", b"accept", b"x-empty"):
        assert _header_values(requests[0], name) == [], requests[0]
    assert _header_values(requests[0], b"x-kept") == [b"1"]
    assert _header_values(requests[0], b"host") == [f"127.0.0.1:{port}".encode()]


def _endless(start: bytes, filler: bytes) -> Callable[[socket.socket], None]:
    """Sends ``start``, then ``filler`` over and over (for at most 15 s)."""
    def answer(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(start)
        block = filler * max(1, 16384 // len(filler))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            conn.sendall(block)
    return answer


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_endless_interim_responses(impl: str, method: str) -> None:
    with fake_server(_endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n")) as port:
        started = time.monotonic()
        result = run_client(impl, *(["-I"] if method == "HEAD" else []),
                            f"http://127.0.0.1:{port}/", timeout=15)
        elapsed = time.monotonic() - started
    assert result.returncode == 8, result.stderr
    assert result.stderr == b"webclient: more than 20 interim (1xx) responses to one request\n"
    assert elapsed < 5


ENDLESS = {
    "reason": (b"HTTP/1.1 200 ", b"a", b"the response head is over 1 MiB"),
    "header-line": (b"HTTP/1.1 200 OK\r\nX-Long: ", b"a", b"the response head is over 1 MiB"),
    "header-name": (b"HTTP/1.1 200 OK\r\nX-", b"a", b"the response head is over 1 MiB"),
    "headers": (b"HTTP/1.1 200 OK\r\n", b"X-Many: yes\r\n", b"the response head is over 1 MiB"),
    "trailer": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: ",
                b"a", b"over 1 MiB of chunk framing or trailers without body data"),
    "chunk-extension": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;e=", b"a",
                        b"over 1 MiB of chunk framing or trailers without body data"),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(ENDLESS))
def test_endless_response_head(impl: str, kind: str) -> None:
    start, filler, message = ENDLESS[kind]
    with fake_server(_endless(start, filler)) as port:
        started = time.monotonic()
        result = run_client(impl, f"http://127.0.0.1:{port}/", timeout=15)
        elapsed = time.monotonic() - started
    assert result.returncode == 8, result.stderr
    assert result.stderr.startswith(b"webclient: ") and message in result.stderr, result.stderr
    assert result.stderr.count(b"\n") == 1
    assert elapsed < 8


def _trickling(head: bytes, trickled: bytes, every: float = 0.2
               ) -> Callable[[socket.socket], None]:
    """Sends ``head`` at once, then ``trickled`` a byte at a time."""
    def answer(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(head)
        for byte in trickled:
            time.sleep(every)
            conn.sendall(bytes([byte]))
    return answer


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("where", ["head", "body", "head-only"])
def test_max_time_bounds_a_trickle(impl: str, where: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
    answer = _trickling(b"", head) if where != "body" else _trickling(head, b"x" * 50)
    with fake_server(answer) as port:
        started = time.monotonic()
        result = run_client(impl, "--timeout", "5", "--max-time", "1",
                            *(["-I"] if where == "head-only" else []),
                            f"http://127.0.0.1:{port}/", timeout=15)
        elapsed = time.monotonic() - started
    assert result.returncode == 28, result.stderr
    assert result.stderr == b"webclient: the maximum time of 1 s ran out waiting for 127.0.0.1\n"
    assert 1 <= elapsed < 4


@pytest.mark.parametrize("impl", IMPLS)
def test_max_time_bounds_connect(impl: str) -> None:
    # a listener whose accept queue is full: the kernel drops further SYNs, so
    # a connect waits (retrying) far longer than the maximum time
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with contextlib.ExitStack() as fillers:
            for _ in range(3):
                filler = fillers.enter_context(socket.socket())
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            time.sleep(0.1)
            started = time.monotonic()
            result = run_client(impl, "--timeout", "10", "--max-time", "1",
                                f"http://127.0.0.1:{port}/", timeout=15)
            elapsed = time.monotonic() - started
    assert result.returncode == 28, result.stderr
    assert result.stderr == (b"webclient: the maximum time of 1 s ran out connecting to "
                             b"127.0.0.1 port %d\n" % port)
    assert 1 <= elapsed < 4


@pytest.mark.parametrize("impl", IMPLS)
def test_max_time_spans_redirects(impl: str) -> None:
    def slow_redirect(request: bytes) -> bytes:
        time.sleep(0.3)
        return _redirect(b"/again")

    requests: list[bytes] = []
    with fake_server(_answering(requests, slow_redirect)) as port:
        started = time.monotonic()
        result = run_client(impl, "-L", "--max-time", "1", f"http://127.0.0.1:{port}/",
                            timeout=15)
        elapsed = time.monotonic() - started
    assert result.returncode == 28, result.stderr
    assert result.stderr.startswith(b"webclient: the maximum time of 1 s ran out")
    assert 2 <= len(requests) <= 5
    assert elapsed < 4


@pytest.mark.parametrize("impl", IMPLS)
def test_too_many_redirects(impl: str) -> None:
    requests: list[bytes] = []
    with fake_server(_answering(requests, lambda r: _redirect(b"/again"))) as port:
        endless = run_client(impl, "-L", f"http://127.0.0.1:{port}/")
    assert endless.returncode == 47, endless.stderr
    assert endless.stderr == (b"webclient: too many redirects, the last to "
                              b"http://127.0.0.1:%d/again\n" % port)
    assert len(requests) == 11


@pytest.mark.parametrize("impl", IMPLS)
def test_max_time_is_per_url(impl: str) -> None:
    def slow(request: bytes) -> bytes:
        time.sleep(0.4)
        return _ok()

    with fake_server(_answering([], slow)) as port:
        result = run_client(impl, "--max-time", "1", "127.0.0.1", str(port), "/a", "/b", "/c")
    assert (result.returncode, result.stdout) == (0, b"okokok"), result.stderr


OUTPUT_FAILURES = {
    "cut-short": (["127.0.0.1", "{port}"], 18),
    "refused": (["127.0.0.1", "{free}"], 7),
    "http-error": (["--fail", "127.0.0.1", "{port}"], 22),
    "malformed": (["127.0.0.1", "{port}"], 8),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("failure", list(OUTPUT_FAILURES))
@pytest.mark.parametrize("existing", [False, True])
def test_output_file_on_failure(impl: str, failure: str, existing: bool, tmp_path: Path) -> None:
    def reply(request: bytes) -> bytes:
        if failure == "http-error":
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
        if failure == "malformed":   # a first chunk, then no chunk size
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\nzz\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\npartial"

    target = tmp_path / "out.bin"
    if existing:
        target.write_bytes(b"what was there")
    args, status = OUTPUT_FAILURES[failure]
    with fake_server(_answering([], reply)) as port:
        words = [w.format(port=port, free=_free_port()) for w in args]
        result = run_client(impl, "-o", str(target), *words)
    assert result.returncode == status, result.stderr
    assert b"Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.bin"] if existing else [])
    if existing:
        assert target.read_bytes() == b"what was there"


@pytest.mark.parametrize("impl", IMPLS)
def test_output_file_replaced_on_success(impl: str, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old and longer than the new body")
    target.chmod(0o640)
    with fake_server(_answering([], lambda r: _ok(b"new"))) as port:
        result = run_client(impl, "-o", str(target), f"http://127.0.0.1:{port}/")
        to_null = run_client(impl, "-o", os.devnull, f"http://127.0.0.1:{port}/")
    assert result.returncode == to_null.returncode == 0, (result.stderr, to_null.stderr)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    assert Path(os.devnull).is_char_device()
    directory = run_client(impl, "-o", str(tmp_path), f"http://127.0.0.1:{port}/")
    assert directory.returncode == 23
    assert directory.stderr == f"webclient: cannot write {tmp_path}: it is a directory\n".encode()


def test_library_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        webclient.Client(headers=[("X", "a\r\nInjected: 1")])
    with pytest.raises(ValueError, match="timeout"):
        webclient.Client(timeout=float("nan"))
    with pytest.raises(ValueError, match="max_time"):
        webclient.Client(max_time=float("inf"))
    with webclient.Client(timeout=1) as client:
        with pytest.raises(webclient.BadURL, match="Invalid IPv6 URL"):
            client.get("http://[::1")
        with pytest.raises(ValueError, match="a method is a token"):
            client.request("GET / HTTP/1.1\r\nX:", "http://127.0.0.1/")
    with pytest.raises(webclient.BadURL, match="port 0"):
        webclient.Target("127.0.0.1", 0)
    assert webclient.Target("B\u00fccher.example", 80, "/\u00e9 x").url == \
        "http://xn--bcher-kva.example/%C3%A9%20x"


def test_trailers_are_not_headers() -> None:
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\nLocation: /trailer\r\nX-Trailer: 1\r\n\r\n")
    with fake_server(_replying(raw)) as port, webclient.Client(timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{port}/", follow_redirects=3)
    assert (response.status, response.body) == (200, b"hello")
    assert response.header("location") is None and response.header("x-trailer") is None


@pytest.mark.parametrize("impl", IMPLS)
def test_started_without_stdout(impl: str, tmp_path: Path) -> None:
    env = dict(os.environ, FASTSOCK_NO_EXTENSIONS=IMPL_ENV[impl], PYTHONWARNINGS="error")
    with fake_server(_answering([], lambda r: _ok(b"body"))) as port:
        def closed_stdout(*args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, "-m",
                                   "fastsock.webclient", *args, f"http://127.0.0.1:{port}/"],
                                  capture_output=True, timeout=60, env=env)
        to_stdout = closed_stdout()
        to_file = closed_stdout("-o", str(tmp_path / "out"))
    assert to_stdout.returncode == 23
    assert to_stdout.stderr == b"webclient: cannot write the output: stdout is closed\n"
    assert to_file.returncode == 0, to_file.stderr
    assert (tmp_path / "out").read_bytes() == b"body"
