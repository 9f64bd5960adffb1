"""More of what one client may take of the demo web server, over real sockets
on both implementations: a pipeliner that reads nothing is no longer read
from, a keep-alive connection cannot trickle empty lines or the bytes of a
method past the request timeout, and a file named as a directory with a
trailing dot segment is not served."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from web_support import ServerProcess, get, read_responses, running_server, status_of, trickle

Site = tuple[Path, dict[str, bytes]]

GET_DATA = b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n"


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _sanitized(pid: int) -> bool:
    """Whether the server runs under AddressSanitizer (``make asan-test``),
    whose quarantine keeps freed memory resident by design."""
    with open(f"/proc/{pid}/maps") as maps:
        return "libasan" in maps.read()


def test_non_reading_pipeliner_is_no_longer_read(web_impl: str, site: Site) -> None:
    """A client pipelines small GETs as fast as it can and reads nothing: once
    the answers queued for it reach their bound, the server reads no more from
    it, so its sends stall (the kernel buffers fill) instead of the server
    parsing requests and queueing responses without end; another client is
    served meanwhile, and the pipeliner's answers are all there once it reads."""
    block = GET_DATA * (65536 // len(GET_DATA))
    with running_server(web_impl, site[0], "--quiet") as server:
        before = _rss_kib(server.proc.pid)
        with socket.socket() as greedy:
            greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            greedy.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            greedy.settimeout(10)
            greedy.connect(server.address)
            greedy.setblocking(False)
            sent = 0
            rest = memoryview(block)
            started = last_sent = time.monotonic()
            while time.monotonic() - last_sent < 1.0:  # a second with no room at all
                assert time.monotonic() - started < 15, f"still reading after {sent} bytes"
                try:
                    count = greedy.send(rest)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                sent += count
                rest = rest[count:] or memoryview(block)  # whole requests, in order
                last_sent = time.monotonic()
            assert sent < 16 * 1024 * 1024, sent  # kernel buffers and the bounded queue
            if not _sanitized(server.proc.pid):
                assert _rss_kib(server.proc.pid) - before < 32 * 1024
            served_at = time.monotonic()
            assert get(server.address, "/data.json").status == 200
            assert time.monotonic() - served_at < 2
            greedy.setblocking(True)
            responses = read_responses(greedy, 500, timeout=30)
        assert len(responses) >= 500  # (and what else the last read brought)
        assert all(r.status == 200 and r.body == site[1]["/data.json"] for r in responses)


@pytest.mark.parametrize("name, first, pieces", [
    # empty lines after a finished request on a kept-alive connection
    ("empty lines after a response", GET_DATA, [b"\r\n"]),
    ("CR and LF apart after a response", GET_DATA, [b"\r", b"\n"]),
    # a method llhttp does not know, a byte at a time (it stops at once at "F"
    # and later at "BR"), and a known one
    ("unknown method", b"", [b"F", b"O", b"O", b"O"] * 8),
    ("unknown method after a known prefix", b"", [b"B", b"R", b"E", b"W", b"W"] * 6),
    ("unknown method after a response", GET_DATA, [b"F", b"O", b"O", b"O"] * 8),
    ("empty lines then a method", b"", [b"\r\n", b"\r\n", b"F"] + [b"O"] * 20),
    ("known method", b"", [bytes([c]) for c in b"GET /data.json HTTP/1.1\r\nHost: t\r\n"]),
])
def test_byte_trickle_is_closed_at_the_request_timeout(web_impl: str, site: Site, name: str,
                                                       first: bytes,
                                                       pieces: list[bytes]) -> None:
    """With --idle-timeout 3 --request-timeout 1, bytes that never make a
    whole request, one every 0.2 s, are answered 408 (or closed) after about
    1 s: each byte does not restart the clock, and the idle timeout does not
    apply once something of a request has arrived."""
    with running_server(web_impl, site[0], "--idle-timeout", "3", "--request-timeout", "1",
                        "--quiet") as server:
        elapsed, answer = trickle(server.address, pieces, first)
        assert 0.8 < elapsed < 2.5, (name, elapsed)
        assert answer == b"" or status_of(answer) == 408, (name, answer[:200])
        assert get(server.address, "/data.json").status == 200


@pytest.mark.parametrize("path", ["/data.json/.", "/data.json/%2e", "/sub/file.txt/."])
def test_file_with_a_trailing_dot_segment_is_404(served: ServerProcess, path: str) -> None:
    """RFC 3986 section 5.2.4: "/data.json/." is "/data.json/" once its dot
    segments are removed, a file named as a directory; nginx answers 404, as
    this server does for "/data.json/"."""
    assert get(served.address, path).status == 404
