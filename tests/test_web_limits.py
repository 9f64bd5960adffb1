"""What one client can take of the demo web server, over real sockets on both
implementations: descriptors and queued responses (one non-reading client
cannot starve the others), long pipelines, and the time and number of empty
lines a connection may send before a request line."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from web_support import (ServerProcess, exchange, get, read_responses, running_server, status_of,
                         trickle)

Site = tuple[Path, dict[str, bytes]]

HUGE_SIZE = 66_000  # over the in-memory size (64 KiB): served from an open file
GET_HUGE = b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n"


def _huge(site: Site) -> None:
    target = site[0] / "huge.bin"
    if not target.exists():
        target.write_bytes(b"\0" * HUGE_SIZE)


def _open_files(pid: int, name: str) -> int:
    """How many of the process's descriptors are open on a file called ``name``."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith("/" + name):
                count += 1
        except OSError:
            pass
    return count


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- descriptors and queued work -------------------------------------------------------


def test_non_reading_pipeliner_cannot_take_every_descriptor(web_impl: str, site: Site) -> None:
    """~1,100 pipelined requests for a file served from disk, from a client that
    reads nothing, under a small descriptor limit: the server keeps one file open
    for it, stops reading it, and serves another client at once; the pipeliner
    gets every answer (never a 500) once it reads."""
    _huge(site)
    count = 1100
    with running_server(web_impl, site[0], "--quiet", nofile=40) as server:
        with socket.socket() as greedy:
            greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            greedy.settimeout(30)
            greedy.connect(server.address)
            greedy.sendall(GET_HUGE * count)
            time.sleep(0.3)  # the server has read the pipeline and filled the socket
            assert _open_files(server.proc.pid, "huge.bin") <= 1
            started = time.monotonic()
            assert get(server.address, "/data.json").status == 200
            other = get(server.address, "/huge.bin")
            assert other.status == 200 and len(other.body) == HUGE_SIZE
            assert time.monotonic() - started < 2
            responses = read_responses(greedy, count, timeout=30)
        assert [r.status for r in responses] == [200] * count
        assert all(len(r.body) == HUGE_SIZE for r in responses)


def test_out_of_descriptors_is_503_never_500(web_impl: str, site: Site) -> None:
    """Clients hold every descriptor the server may have; a request that needs
    to open a file then gets 503 with Retry-After (and the connection closes,
    giving its descriptor back), and accepting backs off instead of spinning."""
    _huge(site)
    with running_server(web_impl, site[0], "--quiet", nofile=32) as server:
        clients = [socket.create_connection(server.address, timeout=10) for _ in range(40)]
        try:
            time.sleep(0.5)  # the server accepts until its descriptors run out
            before = _cpu_seconds(server.proc.pid)
            time.sleep(0.5)
            assert _cpu_seconds(server.proc.pid) - before < 0.2  # no busy accept loop
            for client in clients:
                client.sendall(GET_HUGE)
            statuses = []
            for client in clients:
                (response,) = read_responses(client, 1, timeout=10)
                statuses.append(response.status)
                if response.status == 503:
                    assert response.headers["retry-after"] == "1"
                    assert response.headers["connection"] == "close"
                else:
                    assert len(response.body) == HUGE_SIZE
                client.close()
        finally:
            for client in clients:
                client.close()
        assert set(statuses) <= {200, 503}, statuses
        assert 503 in statuses
        assert get(server.address, "/huge.bin").status == 200  # and it recovers


# -- pipelining --------------------------------------------------------------------------


def test_pipeline_longer_than_one_read_is_answered_whole(served: ServerProcess,
                                                         site: Site) -> None:
    """One sendall of 2,000 small GETs (76 KB, more than one 64 KiB read): the
    head-size limit counts only the unfinished request, so all are answered."""
    count = 2000
    with socket.create_connection(served.address, timeout=30) as sock:
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n" * count)
        responses = read_responses(sock, count, timeout=30)
        assert len(responses) == count
        assert all(r.status == 200 and r.body == site[1]["/data.json"] for r in responses)
        sock.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1)[0].status == 200


def test_unfinished_head_over_the_limit_is_431(served: ServerProcess) -> None:
    with socket.create_connection(served.address, timeout=10) as sock:
        # a header that never ends
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\nX-Long: " + b"a" * 40000)
        assert status_of(sock.recv(65536)) == 431


def test_head_after_a_long_pipeline_may_use_the_whole_limit(served: ServerProcess) -> None:
    small = b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n" * 1500
    big = b"GET /notes.txt HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 15000 + b"\r\n\r\n"
    with socket.create_connection(served.address, timeout=30) as sock:
        sock.sendall(small + big)
        responses = read_responses(sock, 1501, timeout=30)
    assert [r.status for r in responses] == [200] * 1501


# -- empty lines before a request line ----------------------------------------------------


def test_trickle_of_empty_lines_is_closed_at_the_request_timeout(web_impl: str,
                                                                 site: Site) -> None:
    """One CRLF every 0.2 s, with --idle-timeout 3 --request-timeout 1: the empty
    lines start the request's time (as nginx's client_header_timeout), so the
    connection is answered 408 and closed after about 1 s."""
    with running_server(web_impl, site[0], "--idle-timeout", "3", "--request-timeout", "1",
                        "--quiet") as server:
        elapsed, answer = trickle(server.address, [b"\r\n"])
        assert 0.8 < elapsed < 2.5, elapsed
        assert answer == b"" or status_of(answer) == 408
        assert get(server.address, "/data.json").status == 200


def test_too_many_empty_lines_is_400(served: ServerProcess) -> None:
    answer = exchange(served.address, b"\r\n" * 100)
    assert status_of(answer) == 400
    assert b"\r\nConnection: close\r\n" in answer


def test_a_few_empty_lines_before_a_request_are_ignored(served: ServerProcess) -> None:
    with socket.create_connection(served.address, timeout=10) as sock:
        for _ in range(3):
            sock.sendall(b"\r\n")
            time.sleep(0.05)
        sock.sendall(b"\r\n\r\nGET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1)[0].status == 200
