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
