"""Helpers for the web demo tests: a site on disk, the server in a subprocess
(on either implementation), raw HTTP exchanges, and the system programs the
tests drive (curl, nginx, Chromium)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import httptools
import pytest

from bench.web_nginx import nginx_command

IMPL_ENV = {"cython": "0", "python": "1"}

INDEX_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>fastsock demo</title></head>
<body>
<h1 id="title">Served by fastsock</h1>
<img id="pic" src="image.png" width="96" height="96" alt="a red square">
<p id="out">waiting for data.json</p>
<script src="app.js"></script>
</body></html>
"""

APP_JS = """fetch("data.json")
  .then(function (r) { return r.json(); })
  .then(function (d) { document.getElementById("out").textContent = d.message + " " + d.count; });
"""

DATA_JSON = '{"message": "hello from data.json", "count": 42}\n'
PIC_COLOR = (224, 48, 30)


def png(width: int, height: int, color: Tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\0" + bytes(color) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def make_site(root: Path) -> Dict[str, bytes]:
    """A directory to serve; returns {url path: contents} of its files."""
    files: Dict[str, bytes] = {
        "/index.html": INDEX_HTML.encode(),
        "/app.js": APP_JS.encode(),
        "/data.json": DATA_JSON.encode(),
        "/image.png": png(96, 96, PIC_COLOR),
        "/style.css": b"body { color: #123456; }\n",
        "/notes.txt": b"plain text\n" * 10,
        "/blob.unknownext": b"\x00\x01binary",
        "/empty.txt": b"",
        "/big.bin": hashlib.shake_256(b"fastsock").digest(3 * 1024 * 1024 + 17),
        "/sub/file.txt": b"in a subdirectory\n",
        "/withindex/index.html": b"<p>the index of withindex</p>\n",
        "/caf\u00e9 menu.txt": "caf\u00e9\n".encode(),
        '/<b>&"odd.txt': b"odd name\n",
    }
    for path, body in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    (root.parent / "secret.txt").write_bytes(b"outside the served directory\n")
    os.symlink("/etc/passwd", root / "escape")
    os.symlink(root.parent, root / "escape-dir")
    os.symlink("notes.txt", root / "inside-link.txt")
    os.mkfifo(root / "fifo")
    files["/inside-link.txt"] = files["/notes.txt"]
    return files


class ServerProcess:
    """``python -m fastsock.webserver`` in a subprocess on one implementation."""

    def __init__(self, impl: str, directory: Path, *args: str, port: int = 0,
                 bind: Optional[str] = None, nofile: Optional[int] = None) -> None:
        self.impl = impl
        self.directory = directory
        self.log_file = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "fastsock.webserver", "--port", str(port),
                   "--directory", str(directory), *args]
        if bind is not None:
            command += ["--bind", bind]
        env = dict(os.environ, FASTSOCK_NO_EXTENSIONS=IMPL_ENV[impl], PYTHONWARNINGS="error")

        def limit_descriptors() -> None:  # runs in the child, before exec
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log_file,
                                     env=env, preexec_fn=limit_descriptors)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        found = re.search(r"^Serving HTTP on (\S+) port (\d+)", line)
        if not found:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the server did not start: {line!r} {self.log()!r}")
        self.host = found.group(1)
        self.port = int(found.group(2))
        self.announce = line

    @property
    def address(self) -> Tuple[str, int]:
        return (self.host, self.port)

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def log(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the server did not stop within {timeout} s")
        return code

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.stop()
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.log_file.close()


@contextlib.contextmanager
def running_server(impl: str, directory: Path, *args: str, **kwargs: Any
                   ) -> Iterator[ServerProcess]:
    server = ServerProcess(impl, directory, *args, **kwargs)
    try:
        yield server
        assert server.stop() == 0, server.log()
        assert "Traceback" not in server.log(), server.log()
        assert "internal error" not in server.log(), server.log()
    finally:
        server.close()


class Message:
    """A response as the tests see it."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: Dict[str, str] = {}
        self.header_list: List[Tuple[str, str]] = []
        self.body = b""
        self.keep_alive = True


class _Collector:
    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: List[Message] = []
        self.current = Message()

    def on_message_begin(self) -> None:
        self.current = Message()

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        self.current.headers[key.lower()] = text
        self.current.header_list.append((key, text))

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.current.keep_alive = self.parser.should_keep_alive()
        self.done.append(self.current)


def read_responses(sock: socket.socket, count: int, timeout: float = 10.0) -> List[Message]:
    """Read ``count`` responses (none to HEAD) from ``sock``."""
    collector = _Collector(head_only=False)
    deadline = time.monotonic() + timeout
    while len(collector.done) < count:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        data = sock.recv(65536)
        if not data:
            break
        collector.parser.feed_data(data)
    return collector.done


def read_head(sock: socket.socket, timeout: float = 10.0) -> Message:
    """One response head (for HEAD requests): status and headers, no body."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        more = sock.recv(1)
        if not more:
            raise AssertionError(f"closed before a full head: {data!r}")
        data += more
    collector = _Collector(head_only=True)
    collector.parser.feed_data(data)
    return collector.current


def exchange(address: Tuple[str, int], raw: bytes, timeout: float = 10.0) -> bytes:
    """Send ``raw`` on a new connection, half-close, and return all the server sends."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(raw)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        return recv_all(sock, timeout)


def recv_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return out


def child_pids(pid: int) -> List[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def trickle(address: Tuple[str, int], pieces: Sequence[bytes], first: bytes = b"",
            every: float = 0.2, limit: float = 6.0) -> Tuple[float, bytes]:
    """Send ``first`` (and read its answer), then one of ``pieces`` every
    ``every`` seconds until the server answers or closes; returns the seconds
    the trickle lasted and what the server sent."""
    with socket.create_connection(address, timeout=10) as sock:
        if first:
            sock.sendall(first)
            assert read_responses(sock, 1)[0].status == 200
        started = time.monotonic()
        answer = b""
        i = 0
        while time.monotonic() - started < limit:
            try:
                sock.sendall(pieces[i % len(pieces)])
            except OSError:
                break
            i += 1
            sock.settimeout(every)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            break
        return time.monotonic() - started, answer


def status_of(raw: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert match, f"not an HTTP response: {raw[:200]!r}"
    return int(match.group(1))


def get(address: Tuple[str, int], path: str, headers: Sequence[str] = ()) -> Message:
    """One GET on its own connection."""
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers, "", ""]
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode("utf-8"))
        responses = read_responses(sock, 1)
    assert len(responses) == 1
    return responses[0]


def require_program(name: str) -> str:
    """The path of a system program; missing is a failure on CI, a skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return path


@contextlib.contextmanager
def nginx_server(root: Path) -> Iterator[Tuple[str, int]]:
    """nginx with one worker serving ``root`` on a free loopback port (configured as
    for the load benchmark)."""
    nginx = require_program("nginx")
    work = Path(tempfile.mkdtemp(prefix="fs-nginx-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(nginx_command(nginx, work, port, root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start: {proc.stderr.read()!r}"
                                         if proc.stderr else "nginx did not start")
                time.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(work, ignore_errors=True)
