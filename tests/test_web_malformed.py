"""Hostile and broken requests get an exact status code (or a quiet close),
never a 500, and the server keeps answering afterwards; on both
implementations."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from web_support import ServerProcess, exchange, get, read_responses, status_of

H = b"Host: t\r\n"


def still_serving(server: ServerProcess) -> None:
    response = get(server.address, "/data.json")
    assert response.status == 200
    assert b"hello from data.json" in response.body
    assert "internal error" not in server.log()
    assert "Traceback" not in server.log()


CASES = {
    # syntax
    "garbage": (b"\x00\x01\x02\x03\r\n\r\n", 400),
    "unknown method": (b"HELLO / HTTP/1.1\r\n" + H + b"\r\n", 405),  # as nginx
    "lower-case method": (b"get / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "space in target": (b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    "bare LF": (b"GET / HTTP/1.1\nHost: t\n\n", 400),
    "CR without LF": (b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400),
    "space before colon": (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "obsolete line folding": (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400),
    "NUL in a header": (b"GET / HTTP/1.1\r\nHost: t\x00u\r\n\r\n", 400),
    "no Host in HTTP/1.1": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two Hosts": (b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    # versions
    "HTTP/2.0 on HTTP/1": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "HTTP/1.2": (b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    "HTTP/0.9": (b"GET /\r\n\r\n", 505),
    # sizes
    "URI too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "header too large": (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 20000 + b"\r\n\r\n", 431),
    "too many headers": (b"GET / HTTP/1.1\r\n" + H
                         + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    "declared body too large": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2000000\r\n\r\n",
                                413),
    "chunked body too large": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                               + b"100000\r\n" + b"x" * 0x100000 + b"\r\n" + b"10\r\n"
                               + b"y" * 16 + b"\r\n0\r\n\r\n", 413),
    # smuggling
    "Content-Length with Transfer-Encoding": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n", 400),
    "two different Content-Lengths": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    "Content-Length not a number": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\n", 400),
    "unknown transfer coding": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    "chunked not last": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n", 400),
    "bad chunk size": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                       400),
    # traversal in every spelling
    "dot dot": (b"GET /../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    "dot dot deeper": (b"GET /sub/../../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    "encoded dots": (b"GET /%2e%2e/etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    "encoded dots upper": (b"GET /%2E%2E/%2E%2E/etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    "encoded slash": (b"GET /..%2fetc%2fpasswd HTTP/1.1\r\n" + H + b"\r\n", 400),
    "encoded slash alone": (b"GET /sub%2Ffile.txt HTTP/1.1\r\n" + H + b"\r\n", 400),
    "backslashes": (b"GET /..\\..\\etc\\passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    # on POSIX a backslash separates nothing: this names a file "..\..\etc" that is not there
    "encoded backslash": (b"GET /..%5c..%5cetc/passwd HTTP/1.1\r\n" + H + b"\r\n", 404),
    "encoded NUL": (b"GET /index.html%00.txt HTTP/1.1\r\n" + H + b"\r\n", 400),
    "absolute form dot dot": (b"GET http://t/../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    "overlong UTF-8 dots": (b"GET /%c0%ae%c0%ae/etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 404),
    "double slash root": (b"GET //etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 404),
    "asterisk": (b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    "symlink out": (b"GET /escape HTTP/1.1\r\n" + H + b"\r\n", 403),
    "symlinked directory out": (b"GET /escape-dir/secret.txt HTTP/1.1\r\n" + H + b"\r\n", 403),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_status(served: ServerProcess, name: str) -> None:
    raw, status = CASES[name]
    answer = exchange(served.address, raw)
    assert status_of(answer) == status, answer[:300]
    assert b"passwd" not in answer.partition(b"\r\n\r\n")[2] or status == 200
    assert b"root:" not in answer
    if status not in (403, 404, 405):
        assert b"\r\nConnection: close\r\n" in answer
    still_serving(served)


@pytest.mark.parametrize("cut", [1, 5, 16, 30])
def test_truncated_request_then_close_gets_no_answer(served: ServerProcess, cut: int) -> None:
    raw = b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n"[:cut]
    assert exchange(served.address, raw) == b""
    still_serving(served)


def test_truncated_body_then_close(served: ServerProcess) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly a little"
    assert exchange(served.address, raw) == b""
    still_serving(served)


def test_reset_in_the_middle_of_a_response(served: ServerProcess) -> None:
    for _ in range(5):
        sock = socket.create_connection(served.address, timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n" * 4)
        sock.recv(1000)
        sock.close()  # RST while the server is sending
    still_serving(served)


def test_upgrade_then_another_protocol_is_a_bad_request(served: ServerProcess) -> None:
    # no protocol is switched, so what follows is read as HTTP, and is not
    raw = exchange(served.address, b"GET /data.json HTTP/1.1\r\n" + H
                   + b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")
    assert status_of(raw) == 200
    statuses = [int(part[:3]) for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 400]
    assert raw.endswith(b"\r\n\r\n" + b"<!DOCTYPE html>\n<html><head><title>400 Bad Request</title>"
                        b"</head><body><h1>400 Bad Request</h1></body></html>\n")
    still_serving(served)


def test_errors_after_good_pipelined_requests_keep_order(served: ServerProcess) -> None:
    raw = exchange(served.address, b"GET /data.json HTTP/1.1\r\n" + H + b"\r\n"
                   + b"GET /../x HTTP/1.1\r\n" + H + b"\r\n"
                   + b"GET /data.json HTTP/1.1\r\n" + H + b"\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK")
    statuses = [int(part[:3]) for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 400]  # the bad request closes the connection
    still_serving(served)


def test_many_bad_connections_at_once(served: ServerProcess) -> None:
    socks = [socket.create_connection(served.address, timeout=10) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nX: " + b"y" * 100)  # never finished
        still_serving(served)
        for i, sock in enumerate(socks):
            if i % 2:
                sock.sendall(b"\r\n\r\n")  # no Host: 400
        for i, sock in enumerate(socks):
            if i % 2:
                assert status_of(sock.recv(65536)) == 400
    finally:
        for sock in socks:
            sock.close()
    still_serving(served)


TOKENS = [b"GET", b"HEAD", b"POST", b"/", b"/data.json", b"/../", b"%2e", b"%", b"HTTP/1.1",
          b"HTTP/1.0", b"HTTP/9.9", b" ", b"\r\n", b"\n", b"\r", b":", b"Host: t",
          b"Content-Length: 3", b"Content-Length: -1", b"Transfer-Encoding: chunked",
          b"Range: bytes=0-", b"Range: bytes=-", b"If-None-Match: *", b"Connection: close",
          b"0\r\n\r\n", b"\x00", b"\xff", b"abc", b"?", b"#", b"*"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(TOKENS) | st.binary(max_size=8), max_size=24))
def test_random_requests_never_get_500(served: ServerProcess, parts: list[bytes]) -> None:
    raw = b"".join(parts)
    answer = exchange(served.address, raw, timeout=10)
    for chunk in answer.split(b"HTTP/1.1 ")[1:]:
        if chunk[:3].isdigit():
            assert int(chunk[:3]) != 500, raw
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1)[0].status == 200


def test_slowloris_crowd_does_not_block_others(web_impl: str, site: tuple[Any, Any]) -> None:
    from web_support import running_server
    with running_server(web_impl, site[0], "--request-timeout", "1", "--quiet") as server:
        crowd = [socket.create_connection(server.address, timeout=10) for _ in range(40)]
        try:
            for sock in crowd:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
            started = time.monotonic()
            assert get(server.address, "/data.json").status == 200
            assert time.monotonic() - started < 5
            # each of them is timed out with 408
            for sock in crowd:
                sock.settimeout(10)
                assert status_of(sock.recv(65536)) == 408
        finally:
            for sock in crowd:
                sock.close()


# -- header values: any of them, of any size, is a 4xx or ignored --------------------------

# the fields the server (or llhttp for it) reads, each with values of its own shape and
# of any shape; and fields of any name
OTHER_PARSED = [b"If-None-Match", b"If-Modified-Since", b"Host", b"Connection", b"Expect",
                b"Transfer-Encoding", b"Upgrade", b"HOST", b"range", b"if-range"]
# lengths on either side of what matters: an offset's 18-19 digits, and the 4,300
# digits beyond which Python refuses to convert a string to an int
_LENGTH = st.sampled_from([1, 2, 18, 19, 20, 4300, 4301, 6000]) | st.integers(0, 6000)
_NUMBER = st.builds(lambda digit, count, tail: digit * count + tail,
                    st.sampled_from([b"9", b"0", b"1", b"12345", b"-", b","]), _LENGTH,
                    st.sampled_from([b"", b"7", b" ", b"x"]))
_ANY = st.one_of(
    st.binary(max_size=48),
    _NUMBER,
    st.builds(lambda piece, count: piece * count, st.binary(min_size=1, max_size=6), _LENGTH),
    st.sampled_from([b'"1-2"', b"W/\"1-2\"", b"*", b"100-continue", b"chunked", b"websocket",
                     b"Upgrade", b"close", b"Sun, 06 Nov 1994 08:49:37 GMT",
                     b"Sun, 06 Nov 99999999999 08:49:37 GMT", b"[::1]:80", b"t:99999999999"]),
)
_RANGE = st.builds(lambda unit, first, last, more: unit + first + b"-" + last + more,
                   st.sampled_from([b"bytes=", b"bytes = ", b"BYTES=", b"items="]),
                   _NUMBER | st.just(b""), _NUMBER | st.just(b""),
                   st.sampled_from([b"", b",0-1", b", -5"]))
_FIELD = st.one_of(
    st.tuples(st.just(b"Range"), _RANGE | _ANY),
    st.tuples(st.just(b"If-Range"), _ANY),
    st.tuples(st.just(b"Content-Length"), _NUMBER | _ANY),
    st.tuples(st.sampled_from(OTHER_PARSED), _ANY),
    st.tuples(st.binary(min_size=1, max_size=12), _ANY),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([b"GET", b"HEAD"]),
       st.sampled_from([b"/notes.txt", b"/medium.bin", b"/empty.txt", b"/sub", b"/sub/"]),
       st.lists(_FIELD, min_size=1, max_size=4))
@example(b"GET", b"/notes.txt", [(b"Range", b"bytes=" + b"9" * 5000 + b"-")])
@example(b"GET", b"/medium.bin", [(b"Range", b"bytes=0-" + b"1" * 4301)])
@example(b"GET", b"/notes.txt", [(b"Content-Length", b"0" * 5000 + b"3")])
def test_header_values_never_get_500(served: ServerProcess, method: bytes, path: bytes,
                                     headers: list[tuple[bytes, bytes]]) -> None:
    """No header value of any size produces a 500, and the server still
    answers a normal request afterwards."""
    medium = served.directory / "medium.bin"
    if not medium.exists():
        medium.write_bytes(b"\0" * 70_000)  # served from an open file, not memory
    raw = (method + b" " + path + b" HTTP/1.1\r\nHost: t\r\n"
           + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n")
    answer = exchange(served.address, raw, timeout=10)
    for chunk in answer.split(b"HTTP/1.1 ")[1:]:
        if chunk[:3].isdigit():
            assert int(chunk[:3]) != 500, raw[:300]
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1)[0].status == 200
    assert "internal error" not in served.log()
