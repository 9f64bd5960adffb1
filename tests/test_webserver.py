"""The demo web server over real sockets, on both implementations: static
files, headers, conditional and range requests, directories, keep-alive and
pipelining, limits and timeouts, workers, logging and graceful shutdown."""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from conftest import HAS_IPV6
from web_support import (
    ServerProcess,
    child_pids,
    exchange,
    get,
    read_head,
    read_responses,
    recv_all,
    running_server,
    status_of,
)

Site = tuple[Path, dict[str, bytes]]


# -- files and headers ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/index.html", "/data.json", "/image.png", "/big.bin",
                                  "/empty.txt", "/sub/file.txt", "/inside-link.txt"])
def test_files_are_served_whole(served: ServerProcess, site: Site, path: str) -> None:
    response = get(served.address, path)
    assert response.status == 200
    assert response.body == site[1][path]
    assert int(response.headers["content-length"]) == len(site[1][path])


def test_response_headers(served: ServerProcess, site: Site) -> None:
    response = get(served.address, "/data.json")
    headers = response.headers
    assert headers["server"].startswith("fastsock/")
    sent = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
    assert abs(sent - time.time()) < 60
    mtime = int((site[0] / "data.json").stat().st_mtime)
    assert email.utils.parsedate_to_datetime(headers["last-modified"]).timestamp() == mtime
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', headers["etag"])
    assert headers["accept-ranges"] == "bytes"
    assert "connection" not in headers  # HTTP/1.1 keeps alive without saying so


@pytest.mark.parametrize("path, content_type", [
    ("/index.html", "text/html; charset=utf-8"),
    ("/data.json", "application/json; charset=utf-8"),
    ("/image.png", "image/png"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/notes.txt", "text/plain; charset=utf-8"),
    ("/blob.unknownext", "application/octet-stream"),
])
def test_content_types(served: ServerProcess, path: str, content_type: str) -> None:
    assert get(served.address, path).headers["content-type"] == content_type


def test_javascript_content_type(served: ServerProcess) -> None:
    kind = get(served.address, "/app.js").headers["content-type"]
    assert kind in ("text/javascript; charset=utf-8", "application/javascript; charset=utf-8")


def test_percent_encoded_names(served: ServerProcess, site: Site) -> None:
    assert get(served.address, "/caf%C3%A9%20menu.txt").body == site[1]["/caf\u00e9 menu.txt"]
    assert get(served.address, "/%3Cb%3E%26%22odd.txt").body == site[1]['/<b>&"odd.txt']
    assert get(served.address, "/index.html?query=ignored#x").status == 200


def test_head_has_headers_and_no_body(served: ServerProcess, site: Site) -> None:
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        head = read_head(sock)
        assert head.status == 200
        assert int(head.headers["content-length"]) == len(site[1]["/big.bin"])
        # the connection is clean: the next response starts right after the head
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        (after,) = read_responses(sock, 1)
    assert after.body == site[1]["/data.json"]


def test_missing_file_is_404_and_keeps_the_connection(served: ServerProcess) -> None:
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        first, second = read_responses(sock, 2)
    assert (first.status, second.status) == (404, 200)
    assert b"404 Not Found" in first.body


def test_other_methods_are_405_with_allow(served: ServerProcess) -> None:
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                     b"DELETE /index.html HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        post, delete, after = read_responses(sock, 3)
    assert post.status == delete.status == 405
    assert post.headers["allow"] == "GET, HEAD"
    assert after.status == 200  # the body of the POST was read and dropped


def test_unknown_methods_are_405_and_keep_the_connection(served: ServerProcess,
                                                         site: Site) -> None:
    """nginx answers any method it does not serve for a static file with 405,
    known (POST, PUT) or not (FOO, BREW), and keeps the connection; so does this
    server, with Allow.  A body is read by its framing, whatever the method."""
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"FOO /data.json HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"BREW /pot HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\n\r\nGET /x HTTP/"
                     b"GET /notes.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        responses = read_responses(sock, 4)
        assert [r.status for r in responses] == [200, 405, 405, 200]
        for response in responses[1:3]:
            assert response.headers["allow"] == "GET, HEAD"
            assert response.keep_alive and "connection" not in response.headers
        assert responses[3].body == site[1]["/notes.txt"]
        # a method cut across reads, where llhttp stops at once ("F") or later ("BR")
        for first, rest in ((b"F", b"OO"), (b"B", b"REW"), (b"PRO", b"PX")):
            sock.sendall(first)
            time.sleep(0.05)
            sock.sendall(rest + b" /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
            (response,) = read_responses(sock, 1)
            assert response.status == 405, first + rest
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1)[0].status == 200


@pytest.mark.parametrize("raw", [
    b"get /data.json HTTP/1.1\r\nHost: t\r\n\r\n",            # methods are case-sensitive
    b"G\xc3\x89T /data.json HTTP/1.1\r\nHost: t\r\n\r\n",
    b"A" * 40 + b" /data.json HTTP/1.1\r\nHost: t\r\n\r\n",     # longer than any method
])
def test_what_is_not_a_method_is_400(served: ServerProcess, raw: bytes) -> None:
    answer = exchange(served.address, raw)
    assert status_of(answer) == 400
    assert b"\r\nConnection: close\r\n" in answer


def test_connect_is_refused_and_the_connection_closed(served: ServerProcess) -> None:
    """What follows a CONNECT is tunnel data: the answer says Connection: close,
    and nothing after it is read as a request."""
    answer = exchange(served.address, b"CONNECT t:443 HTTP/1.1\r\nHost: t\r\n\r\n"
                      b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status_of(answer) == 405
    head = answer.partition(b"\r\n\r\n")[0]
    assert b"\r\nConnection: close" in head and b"\r\nAllow: GET, HEAD" in head
    assert answer.count(b"HTTP/1.1 ") == 1


def test_upgrade_is_ignored(served: ServerProcess, site: Site) -> None:
    """No protocol is switched: a request with Upgrade is served as any other,
    keep-alive and all, and the pipelined requests after it are answered."""
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\n\r\nGET /notes.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        first, second = read_responses(sock, 2)
        assert (first.status, second.status) == (200, 200)
        assert first.body == site[1]["/data.json"] and second.body == site[1]["/notes.txt"]
        assert first.keep_alive and "connection" not in first.headers
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1)[0].status == 200


def test_upgrade_with_a_body_is_answered_then_closed(served: ServerProcess) -> None:
    """llhttp leaves the body of an upgrade request unread; rather than guess at
    it, the answer says Connection: close and nothing after it is read."""
    answer = exchange(served.address,
                      b"GET /data.json HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\nContent-Length: 5\r\n\r\nhello"
                      b"GET /notes.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status_of(answer) == 200
    assert b"\r\nConnection: close" in answer.partition(b"\r\n\r\n")[0]
    assert answer.count(b"HTTP/1.1 ") == 1


def _recv_exactly(sock: socket.socket, size: int, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        more = sock.recv(size - len(data))
        if not more:
            break
        data += more
    return data


def test_expect_100_continue_is_answered_at_once(served: ServerProcess, site: Site) -> None:
    """RFC 9110 section 10.1.1: a server that will read the content answers
    100 (Continue) as soon as the head is in, without waiting for the body."""
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")
        assert _recv_exactly(sock, 25, timeout=2) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        (response,) = read_responses(sock, 1)
        assert response.status == 200 and response.body == site[1]["/data.json"]
        sock.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1)[0].body == site[1]["/notes.txt"]


@pytest.mark.parametrize("head, status", [
    # an expectation the server cannot meet
    (b"GET /data.json HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\n\r\n", 417),
    # requests that fail whatever their content: the final status at once
    (b"POST /data.json HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
     b"Content-Length: 5\r\n\r\n", 405),
    (b"GET /data.json HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
     b"Content-Length: 2000000\r\n\r\n", 413),
])
def test_expectation_gets_a_final_status_at_once(served: ServerProcess, head: bytes,
                                                 status: int) -> None:
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(head)  # and no body: the answer must not wait for it
        sock.settimeout(2)
        answer = sock.recv(65536)
    assert status_of(answer) == status
    assert b"\r\nConnection: close\r\n" in answer  # the body the client may still send is not read


def test_expect_is_ignored_in_http10(served: ServerProcess, site: Site) -> None:
    answer = exchange(served.address, b"GET /data.json HTTP/1.0\r\nExpect: 200-ok\r\n\r\n")
    assert status_of(answer) == 200 and answer.endswith(site[1]["/data.json"])


# -- the request target and Host ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/data.json/", "/sub/file.txt/", "/empty.txt/"])
def test_file_with_a_trailing_slash_is_404(served: ServerProcess, path: str) -> None:
    assert get(served.address, path).status == 404
    assert get(served.address, path.rstrip("/")).status == 200  # and its cache is not confused


@pytest.mark.parametrize("host", ["a b/c", "a/c", "a\\b", "t?x", "t#x", "u@t", "caf\u00e9"])
def test_invalid_host_is_400(served: ServerProcess, host: str) -> None:
    """RFC 9112 section 3.2: a Host with an invalid value is a 400."""
    answer = exchange(served.address, b"GET /data.json HTTP/1.1\r\nHost: " + host.encode()
                      + b"\r\n\r\n")
    assert status_of(answer) == 400


@pytest.mark.parametrize("host", ["t", "127.0.0.1:28333", "[::1]:80", "xn--caf-dma.example",
                                  "a_b.example", ""])
def test_valid_hosts_are_served(served: ServerProcess, host: str) -> None:
    answer = exchange(served.address, b"GET /data.json HTTP/1.1\r\nHost: " + host.encode()
                      + b"\r\n\r\n")
    assert status_of(answer) == 200


def test_long_path_segment_is_404_long_target_414(served: ServerProcess) -> None:
    """A name longer than the file system allows is a file that is not there
    (404, as nginx); 414 is for a request target over the 8 KiB limit."""
    assert get(served.address, "/" + "a" * 5000).status == 404
    assert get(served.address, "/sub/" + "b" * 300 + ".txt").status == 404
    answer = exchange(served.address, b"GET /" + b"a/" * 4500 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status_of(answer) == 414


# -- conditional requests ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/data.json", "/big.bin"])
def test_if_none_match(served: ServerProcess, path: str) -> None:
    etag = get(served.address, path).headers["etag"]
    for value in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        response = get(served.address, path, [f"If-None-Match: {value}"])
        assert response.status == 304, value
        assert response.body == b""
        assert response.headers["etag"] == etag
    assert get(served.address, path, ['If-None-Match: "other"']).status == 200


def test_if_none_match_on_several_lines_is_one_list(served: ServerProcess) -> None:
    """RFC 9110 section 5.3: field lines of one name combine into one list, so
    the entity tag on the first line counts as much as the one on the last."""
    etag = get(served.address, "/notes.txt").headers["etag"]
    response = get(served.address, "/notes.txt", [f"If-None-Match: {etag}",
                                                 'If-None-Match: "other"'])
    assert response.status == 304


@pytest.mark.parametrize("path", ["/data.json", "/big.bin"])
def test_304_has_validators_and_no_representation_metadata(served: ServerProcess,
                                                           path: str) -> None:
    """RFC 9110 section 15.4.5: a 304 carries the Date, ETag (and other fields)
    a 200 would, but a sender SHOULD NOT generate representation metadata such
    as Content-Type or Content-Length beyond those; nginx sends neither."""
    full = get(served.address, path)
    response = get(served.address, path, [f"If-None-Match: {full.headers['etag']}"])
    assert response.status == 304
    assert response.headers["etag"] == full.headers["etag"]
    assert response.headers["last-modified"] == full.headers["last-modified"]
    assert "date" in response.headers
    assert "content-type" not in response.headers
    assert "content-length" not in response.headers


def test_if_modified_since(served: ServerProcess, site: Site) -> None:
    mtime = (site[0] / "notes.txt").stat().st_mtime
    same = email.utils.formatdate(mtime, usegmt=True)
    before = email.utils.formatdate(mtime - 3600, usegmt=True)
    assert get(served.address, "/notes.txt", [f"If-Modified-Since: {same}"]).status == 304
    assert get(served.address, "/notes.txt", [f"If-Modified-Since: {before}"]).status == 200
    assert get(served.address, "/notes.txt", ["If-Modified-Since: garbage"]).status == 200
    # If-None-Match wins over If-Modified-Since
    response = get(served.address, "/notes.txt",
                   ['If-None-Match: "other"', f"If-Modified-Since: {same}"])
    assert response.status == 200


def test_changed_file_is_served_fresh(served: ServerProcess, site: Site) -> None:
    target = site[0] / "changing.txt"
    target.write_bytes(b"first version\n")
    try:
        assert get(served.address, "/changing.txt").body == b"first version\n"
        target.write_bytes(b"the second, longer version\n")
        assert get(served.address, "/changing.txt").body == b"the second, longer version\n"
        target.unlink()
        assert get(served.address, "/changing.txt").status == 404
    finally:
        target.unlink(missing_ok=True)


def test_cache_valid_serves_a_cached_file_without_looking_at_the_disk(
        web_impl: str, site: Site) -> None:
    # --cache-valid trades freshness for a stat per request, as nginx's
    # open_file_cache_valid; within the time a change is not seen
    target = site[0] / "cached-for-a-while.txt"
    target.write_bytes(b"first version\n")
    try:
        with running_server(web_impl, site[0], "--cache-valid", "3600") as server:
            assert get(server.address, "/cached-for-a-while.txt").body == b"first version\n"
            target.write_bytes(b"the second, longer version\n")
            assert get(server.address, "/cached-for-a-while.txt").body == b"first version\n"
    finally:
        target.unlink(missing_ok=True)


def _descriptors_of(pid: int, path: Path) -> int:
    """How many of process ``pid``'s descriptors are open on ``path`` (or on
    the file that had that name before it was replaced or removed)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            name = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if name in (str(path), f"{path} (deleted)"):
            count += 1
    return count


def test_cache_valid_shares_one_descriptor_for_a_large_file(web_impl: str, site: Site) -> None:
    # a file too large for memory is kept open (nginx's open_file_cache): every
    # response, on any connection and at any offset, reads through one descriptor
    path = site[0] / "shared-large.bin"
    body = hashlib.shake_256(b"shared").digest(700_000)
    path.write_bytes(body)
    ranges = [(0, len(body) - 1), (5, 100_000), (650_000, len(body) - 1), (123_456, 123_456)]
    try:
        with running_server(web_impl, site[0], "--cache-valid", "3600") as server:
            connections = [socket.create_connection(server.address, timeout=10) for _ in range(3)]
            try:
                for sock in connections:  # every connection pipelines every range
                    sock.sendall(b"".join(
                        f"GET /shared-large.bin HTTP/1.1\r\nHost: t\r\n"
                        f"Range: bytes={a}-{b}\r\n\r\n".encode() for a, b in ranges))
                for sock in connections:
                    responses = read_responses(sock, len(ranges))
                    assert [r.status for r in responses] == [206] * len(ranges)
                    assert [r.body for r in responses] == [body[a:b + 1] for a, b in ranges]
                assert _descriptors_of(server.proc.pid, path) == 1
            finally:
                for sock in connections:
                    sock.close()
            assert get(server.address, "/shared-large.bin").body == body
            assert _descriptors_of(server.proc.pid, path) == 1
    finally:
        path.unlink(missing_ok=True)


def test_without_cache_valid_a_large_file_is_closed_after_its_response(
        web_impl: str, site: Site) -> None:
    path = site[0] / "unshared-large.bin"
    path.write_bytes(b"u" * 300_000)
    try:
        with running_server(web_impl, site[0]) as server:
            for _ in range(3):
                assert get(server.address, "/unshared-large.bin").body == b"u" * 300_000
            # the client may have the last bytes a moment before the server closes
            deadline = time.monotonic() + 5
            while _descriptors_of(server.proc.pid, path):
                assert time.monotonic() < deadline, "the file is still open"
                time.sleep(0.05)
    finally:
        path.unlink(missing_ok=True)


def test_a_large_file_replaced_is_served_fresh_after_cache_valid(web_impl: str,
                                                                  site: Site) -> None:
    path = site[0] / "replaced-large.bin"
    path.write_bytes(b"1" * 200_000)
    try:
        with running_server(web_impl, site[0], "--cache-valid", "1") as server:
            assert get(server.address, "/replaced-large.bin").body == b"1" * 200_000
            staged = site[0] / "replaced-large.bin.new"
            staged.write_bytes(b"2" * 250_000)
            staged.rename(path)  # a new file under the old name
            deadline = time.monotonic() + 5
            while get(server.address, "/replaced-large.bin").body != b"2" * 250_000:
                assert time.monotonic() < deadline, "the old file is still served"
                time.sleep(0.2)
            # the old file's descriptor is closed once nothing sends it
            assert _descriptors_of(server.proc.pid, path) == 1
            path.unlink()
            response = get(server.address, "/replaced-large.bin")
            deadline = time.monotonic() + 5
            while response.status != 404:
                assert time.monotonic() < deadline, "a removed file is still served"
                time.sleep(0.2)
                response = get(server.address, "/replaced-large.bin")
            assert _descriptors_of(server.proc.pid, path) == 0
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("nofile, bound", [(None, 64), (160, 20)])
def test_large_files_kept_open_are_bounded(web_impl: str, site: Site, nofile: Any,
                                           bound: int) -> None:
    # at most 64, and never more than an eighth of the descriptor limit
    folder = site[0] / "many-large"
    folder.mkdir()
    try:
        for i in range(70):
            (folder / f"{i}.bin").write_bytes(bytes([i]) * 70_000)
        with running_server(web_impl, site[0], "--cache-valid", "3600",
                            nofile=nofile) as server:
            with socket.create_connection(server.address, timeout=10) as sock:
                for i in range(70):
                    sock.sendall(f"GET /many-large/{i}.bin HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                    (response,) = read_responses(sock, 1)
                    assert response.body == bytes([i]) * 70_000
            held = sum(_descriptors_of(server.proc.pid, folder / f"{i}.bin") for i in range(70))
            assert held == bound
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()


# -- ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/notes.txt", "/big.bin"])
@pytest.mark.parametrize("spec, start, end", [
    ("bytes=5-9", 5, 9), ("bytes=0-0", 0, 0), ("bytes=7-", 7, None),
    ("bytes=-4", -4, None), ("bytes=3-99999999", 3, None), ("bytes=-999999999", 0, None),
])
def test_single_range(served: ServerProcess, site: Site, path: str, spec: str,
                      start: int, end: Any) -> None:
    body = site[1][path]
    size = len(body)
    expected = body[start:] if end is None else body[start:end + 1]
    first = start % size if start < 0 else start
    response = get(served.address, path, [f"Range: {spec}"])
    assert response.status == 206
    assert response.body == expected
    assert response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{size}"


@pytest.mark.parametrize("spec", ["bytes=999999999-", "bytes=-0"])
def test_unsatisfiable_range_is_416(served: ServerProcess, site: Site, spec: str) -> None:
    response = get(served.address, "/notes.txt", [f"Range: {spec}"])
    assert response.status == 416
    assert response.headers["content-range"] == f"bytes */{len(site[1]['/notes.txt'])}"


@pytest.mark.parametrize("spec", ["bytes=0-1,4-5", "items=0-3", "bytes=5-2", "bytes=x-y", "bytes"])
def test_ranges_we_ignore_get_everything(served: ServerProcess, site: Site, spec: str) -> None:
    response = get(served.address, "/notes.txt", [f"Range: {spec}"])
    assert response.status == 200
    assert response.body == site[1]["/notes.txt"]


def test_if_range(served: ServerProcess, site: Site) -> None:
    etag = get(served.address, "/notes.txt").headers["etag"]
    assert get(served.address, "/notes.txt", ["Range: bytes=0-3", f"If-Range: {etag}"]).status == 206
    stale = get(served.address, "/notes.txt", ["Range: bytes=0-3", 'If-Range: "stale"'])
    assert stale.status == 200 and stale.body == site[1]["/notes.txt"]


@pytest.mark.parametrize("value", ['"stale", {etag}', '{etag}, "stale"', "W/{etag}", "*"])
def test_if_range_is_one_strong_entity_tag(served: ServerProcess, site: Site,
                                           value: str) -> None:
    """RFC 9110 section 13.1.5: If-Range holds one entity tag (or a date), not a
    list, compared strongly: a list, a weak tag or * never matches, and the whole
    file is sent."""
    etag = get(served.address, "/notes.txt").headers["etag"]
    response = get(served.address, "/notes.txt",
                   ["Range: bytes=0-3", "If-Range: " + value.format(etag=etag)])
    assert response.status == 200 and response.body == site[1]["/notes.txt"]


def test_suffix_range_of_an_empty_file_is_the_empty_file(served: ServerProcess) -> None:
    """RFC 9110 section 14.1.2: "When a selected representation has zero length,
    the only satisfiable form of range-spec in a GET request is a suffix-range
    with a non-zero suffix-length."  So `bytes=-3` on an empty file is
    satisfiable and must not get 416.  Its part is the whole (empty)
    representation, which a 206 cannot describe: Content-Range's incl-range is
    first-last, with at least one byte.  Section 14.2 lets a server ignore a
    Range header, so the answer is 200 with the empty body, as nginx gives.
    (`bytes=0-` is an int-range whose first-pos is not below the length: 416.)"""
    response = get(served.address, "/empty.txt", ["Range: bytes=-3"])
    assert response.status == 200
    assert response.body == b"" and response.headers["content-length"] == "0"
    assert "content-range" not in response.headers
    assert get(served.address, "/empty.txt", ["Range: bytes=0-"]).status == 416


@pytest.mark.parametrize("path", ["/notes.txt", "/big.bin"])
@pytest.mark.parametrize("spec", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000,
                                  "bytes=-" + "9" * 5000, "bytes=" + "1" * 19 + "-"])
def test_range_numbers_of_any_length_are_416(served: ServerProcess, path: str,
                                             spec: str) -> None:
    """A number longer than any file offset is past the end (nginx: 416), never
    a 500 from Python's limit on converting long digit strings."""
    response = get(served.address, path, [f"Range: {spec}"])
    assert response.status == 416
    assert get(served.address, "/data.json").status == 200


def test_range_numbers_with_many_leading_zeros(served: ServerProcess, site: Site) -> None:
    response = get(served.address, "/notes.txt", ["Range: bytes=" + "0" * 5000 + "5-" + "0" * 5000 + "9"])
    assert response.status == 206 and response.body == site[1]["/notes.txt"][5:10]


# -- directories ----------------------------------------------------------------------------------


def test_directory_without_slash_redirects(served: ServerProcess) -> None:
    response = get(served.address, "/sub")
    assert response.status == 301
    assert response.headers["location"] == "/sub/"
    assert get(served.address, "/sub?a=1").headers["location"] == "/sub/?a=1"


@pytest.mark.parametrize("target", ["//evil.example", "///evil.example", "/%2e/evil.example",
                                    "http://t//evil.example", "//evil.example?q=1"])
def test_redirect_never_names_another_host(served: ServerProcess, target: str) -> None:
    """A directory named like a host: "//evil.example/" in Location would be a
    reference to another host (the bug of CVE-2021-28861 in http.server)."""
    (served.directory / "evil.example").mkdir(exist_ok=True)
    answer = exchange(served.address, f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert status_of(answer) == 301
    location = re.search(rb"\r\nLocation: ([^\r]*)\r\n", answer)
    assert location is not None
    assert not location.group(1).startswith(b"//")
    assert location.group(1) in (b"/evil.example/", b"/%2e/evil.example/", b"/evil.example/?q=1")


def test_serves_the_root_directory(web_impl: str, site: Site) -> None:
    """`--directory /`: every path is under "/", and the containment check knows it."""
    with running_server(web_impl, Path("/"), "--quiet") as server:
        path = urllib.parse.quote(str((site[0] / "data.json").resolve()))
        response = get(server.address, path)
        assert response.status == 200 and response.body == site[1]["/data.json"]
        assert get(server.address, "/").status == 200  # the listing of /
        assert get(server.address, path + "/../x").status == 400


def test_directory_index_html(served: ServerProcess, site: Site) -> None:
    assert get(served.address, "/").body == site[1]["/index.html"]
    assert get(served.address, "/withindex/").body == site[1]["/withindex/index.html"]


def test_directory_listing_links_and_escapes(served: ServerProcess) -> None:
    response = get(served.address, "/sub/")
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert b'<a href="file.txt">file.txt</a>' in response.body
    assert b'href="../"' in response.body
    (served.directory / "list-me").mkdir(exist_ok=True)
    (served.directory / "list-me" / '<i>"x".txt').write_bytes(b"x")
    listing = get(served.address, "/list-me/").body
    assert b'<i>"x".txt' not in listing           # names are escaped in HTML
    assert b"&lt;i&gt;&quot;x&quot;.txt" in listing
    assert b'href="%3Ci%3E%22x%22.txt"' in listing  # and percent-encoded in links


def test_listed_name_with_a_backslash_links_to_the_file(served: ServerProcess) -> None:
    """A backslash is an ordinary character of a POSIX file name; the listing
    percent-encodes it, and the link serves the file."""
    (served.directory / "bs").mkdir(exist_ok=True)
    (served.directory / "bs" / "a\\b.txt").write_bytes(b"backslash\n")
    listing = get(served.address, "/bs/").body
    href = re.search(rb'<a href="([^"]*)">a\\b\.txt</a>', listing)
    assert href is not None and href.group(1) == b"a%5Cb.txt"
    response = get(served.address, "/bs/" + href.group(1).decode())
    assert response.status == 200 and response.body == b"backslash\n"


# -- keep-alive, pipelining, HTTP/1.0 -------------------------------------------------------------


def test_many_requests_on_one_connection(served: ServerProcess, site: Site) -> None:
    paths = ["/data.json", "/notes.txt", "/image.png", "/sub/file.txt"] * 25
    with socket.create_connection(served.address, timeout=10) as sock:
        for path in paths:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            (response,) = read_responses(sock, 1)
            assert response.body == site[1][path]


def test_pipelined_requests_are_answered_in_order(served: ServerProcess, site: Site) -> None:
    paths = ["/data.json", "/nope", "/big.bin", "/notes.txt", "/sub", "/image.png"] * 8
    batch = b"".join(f"GET {p} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for p in paths)
    with socket.create_connection(served.address, timeout=20) as sock:
        sock.sendall(batch)
        responses = read_responses(sock, len(paths), timeout=30)
    assert len(responses) == len(paths)
    for path, response in zip(paths, responses):
        if path in site[1]:
            assert response.status == 200 and response.body == site[1][path], path
        else:
            assert response.status in (301, 404), path


def test_http10_closes_unless_asked_to_keep_alive(served: ServerProcess, site: Site) -> None:
    raw = exchange(served.address, b"GET /data.json HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in raw
    assert raw.endswith(site[1]["/data.json"])
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"GET /data.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        (first,) = read_responses(sock, 1)
        assert first.headers["connection"] == "keep-alive"
        sock.sendall(b"GET /notes.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        (second,) = read_responses(sock, 1)
    assert second.body == site[1]["/notes.txt"]


def test_connection_close_is_honoured(served: ServerProcess, site: Site) -> None:
    raw = exchange(served.address,
                   b"GET /data.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                   b"GET /notes.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.count(b"HTTP/1.1 ") == 1  # nothing after the response that closed
    assert raw.endswith(site[1]["/data.json"])


def test_client_half_close_still_gets_its_answers(served: ServerProcess, site: Site) -> None:
    raw = exchange(served.address, b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n" * 3)
    assert raw.count(site[1]["/data.json"]) == 3


def test_large_body_to_a_slow_reader_is_complete(served: ServerProcess, site: Site) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.settimeout(20)
        sock.connect(served.address)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)  # let the server fill the socket and wait for writability
        (response,) = read_responses(sock, 1, timeout=30)
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(site[1]["/big.bin"]).digest()


# -- paths that must not escape ---------------------------------------------------------------


@pytest.mark.parametrize("path, status", [
    ("/escape", 403), ("/escape-dir/", 403), ("/escape-dir/secret.txt", 403),
    ("/fifo", 403),
])
def test_links_out_and_special_files_are_refused(served: ServerProcess, path: str,
                                                  status: int) -> None:
    assert get(served.address, path).status == status
    assert get(served.address, "/data.json").status == 200  # and nothing got stuck


# -- logging, binding, workers ------------------------------------------------------------------


def test_access_log_in_common_log_format(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0]) as server:
        get(server.address, "/data.json")
        get(server.address, "/nope")
        exchange(server.address, b"GET /a\x1b[31m\"b HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + 10
        while server.log().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = server.log().splitlines()
    pattern = r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(.*)" (\d{3}) (\d+|-)'
    entries = [re.fullmatch(pattern, line) for line in lines]
    assert all(entries), lines
    assert entries[0] and entries[0].groups() == ("GET /data.json HTTP/1.1", "200",
                                                  str(len(site[1]["/data.json"])))
    assert entries[1] and entries[1].group(2) == "404"
    # control characters and quotes cannot forge log lines or fields
    assert "\x1b" not in "".join(lines)


def test_access_log_of_failed_requests_names_the_method_seen(web_impl: str,
                                                             site: Site) -> None:
    with running_server(web_impl, site[0]) as server:
        exchange(server.address, b"GET /bad HTTP/1.1\r\nHost: t\r\nNo colon\r\n\r\n")
        exchange(server.address, b"HEAD /data.json HTTP/1.1\r\nHost: a b\r\n\r\n")
        exchange(server.address, b"\x00\x01\x02 garbage\r\n\r\n")
        exchange(server.address, b"FOO /pot HTTP/1.1\r\nHost: t\r\nX\r\n\r\n")
        deadline = time.monotonic() + 10
        while server.log().count("\n") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log()
    assert '"GET /bad HTTP/1.1" 400' in log, log
    assert '"HEAD /data.json HTTP/1.1" 400' in log, log
    assert '"- - HTTP/1.1" 400' in log, log  # no method: the request had none
    assert '"FOO /pot HTTP/1.1" 400' in log, log


def test_quiet_has_no_access_log(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--quiet") as server:
        get(server.address, "/data.json")
        log = server.log()
    assert log == ""


def test_binds_loopback_by_default(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0]) as server:
        assert server.host == "127.0.0.1"
        assert "every network interface" not in server.log()


def test_warns_when_binding_every_interface(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], bind="0.0.0.0") as server:
        assert get(("127.0.0.1", server.port), "/data.json").status == 200
        assert "every network interface" in server.log()


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_serves_ipv6(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], bind="::1") as server:
        assert server.host == "::1"
        assert get(("::1", server.port), "/data.json").body == site[1]["/data.json"]


def test_workers_share_the_port(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--workers", "3", "--quiet") as server:
        workers = child_pids(server.proc.pid)
        assert len(workers) == 3
        for _ in range(30):
            assert get(server.address, "/data.json").status == 200
        code = server.stop()
        assert code == 0
        assert all(not os.path.exists(f"/proc/{pid}/stat") or _is_zombie(pid) for pid in workers)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_crashed_worker_is_replaced(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--workers", "2", "--quiet") as server:
        first = child_pids(server.proc.pid)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = child_pids(server.proc.pid)
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.1)
        assert len(child_pids(server.proc.pid)) == 2
        for _ in range(10):
            assert get(server.address, "/data.json").status == 200


def test_port_in_use_is_a_clear_error(web_impl: str, site: Site) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "fastsock.webserver", "--port", str(port), "-d", str(site[0])],
            capture_output=True, text=True, timeout=30,
            env=dict(os.environ, FASTSOCK_NO_EXTENSIONS="1" if web_impl == "python" else "0"))
    assert result.returncode == 1
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port must be 0-65535"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--directory", "/nonexistent/dir"], "not a directory"),
    (["--idle-timeout", "nan"], "--idle-timeout must be positive"),
    (["--cache-valid", "-1"], "--cache-valid must be 0 or more"),
])
def test_bad_arguments(args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "fastsock.webserver", *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr


# -- limits and timeouts ------------------------------------------------------------------------


def test_idle_keep_alive_connection_is_closed(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--idle-timeout", "0.5", "--quiet") as server:
        with socket.create_connection(server.address, timeout=10) as sock:
            sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
            read_responses(sock, 1)
            started = time.monotonic()
            assert recv_all(sock, timeout=10) == b""
            assert time.monotonic() - started < 8


def test_slow_request_gets_408(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--request-timeout", "1", "--quiet") as server:
        with socket.create_connection(server.address, timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\n")
            raw = b""
            for i in range(40):  # one header byte every 0.1 s: never finishes in time
                try:
                    sock.sendall(b"X"[:1] if i else b"X-Slow: ")
                except OSError:
                    break
                time.sleep(0.1)
                sock.settimeout(0.001)
                try:
                    raw += sock.recv(65536)
                except (TimeoutError, BlockingIOError):
                    pass
                except ConnectionResetError:
                    break
                if raw:
                    break
            sock.settimeout(10)
            raw += recv_all(sock, 10)
        assert status_of(raw) == 408
        assert time.monotonic() - started < 8
        assert get(server.address, "/data.json").status == 200


def test_connection_limit_makes_clients_wait(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--max-connections", "2", "--quiet") as server:
        first = socket.create_connection(server.address, timeout=10)
        second = socket.create_connection(server.address, timeout=10)
        try:
            for sock in (first, second):
                sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
                assert read_responses(sock, 1)[0].status == 200
            with socket.create_connection(server.address, timeout=10) as third:
                third.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
                third.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    third.recv(1)      # waits in the backlog
                first.close()
                assert read_responses(third, 1, timeout=10)[0].status == 200
        finally:
            first.close()
            second.close()


# -- graceful shutdown --------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_finishes_responses_in_flight(web_impl: str, site: Site, sig: int) -> None:
    server = ServerProcess(web_impl, site[0], "--quiet")
    try:
        with socket.socket() as slow, socket.create_connection(server.address, 10) as idle:
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            slow.settimeout(20)
            slow.connect(server.address)
            slow.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            first = slow.recv(4096)  # the response has started
            server.proc.send_signal(sig)
            time.sleep(0.3)
            with pytest.raises(OSError):  # no longer accepting
                socket.create_connection(server.address, timeout=2).close()
            assert recv_all(idle, 10) == b""  # idle keep-alive connections are closed
            rest = recv_all(slow, 30)
            raw = first + rest
            head, _, body = raw.partition(b"\r\n\r\n")
            assert b"200 OK" in head
            assert body == site[1]["/big.bin"]
        assert server.proc.wait(20) == 0
    finally:
        server.close()


@pytest.mark.parametrize("module", ["fastsock.webserver", "fastsock.webclient"])
def test_missing_httptools_is_a_clear_message(tmp_path: Path, module: str) -> None:
    blocker = tmp_path / "httptools"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('httptools is not installed')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", module, "http://127.0.0.1:1/"
                             if module.endswith("client") else "--port=0"],
                            capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == \
        "fastsock's web demo needs httptools: pip install 'fastsock[web]'"


# -- in process: the Server class on either implementation and either poller -------------------


@pytest.mark.parametrize("use_selectors", [False, True], ids=["epoll", "selectors"])
def test_server_class_in_process(impl: Any, site: Site, use_selectors: bool) -> None:
    import io
    import threading

    from fastsock import webserver

    log = io.StringIO()
    listener = impl.create_server(("127.0.0.1", 0))
    server = webserver.Server(listener, str(site[0]), log=log, use_selectors=use_selectors)
    address = listener.getsockname()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        paths = ["/data.json", "/big.bin", "/nope", "/image.png"] * 3
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for p in paths))
            responses = read_responses(sock, len(paths), timeout=30)
        assert [r.status for r in responses] == [200, 200, 404, 200] * 3
        assert responses[1].body == site[1]["/big.bin"]
    finally:
        server.stop()
        thread.join(20)
    assert not thread.is_alive()
    assert listener.closed
    assert log.getvalue().count('"GET /big.bin HTTP/1.1" 200') == 3
