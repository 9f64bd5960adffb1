"""Real clients against the demo server: curl and Python's urllib."""

from __future__ import annotations

import hashlib
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from web_support import ServerProcess, require_program

Site = tuple[Path, dict[str, bytes]]


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_program("curl"), "--silent", "--show-error",
                           "--max-time", "30", *args], capture_output=True, timeout=60)


def test_curl_get_several_on_one_connection(served: ServerProcess, site: Site) -> None:
    paths = ["/data.json", "/big.bin", "/image.png"]
    result = curl("--verbose", *[served.url(p) for p in paths])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"".join(site[1][p] for p in paths)
    assert result.stderr.count(b"Re-using existing connection") >= 2 or \
        result.stderr.count(b"Reusing existing connection") >= 2


def test_curl_head_range_and_conditional(served: ServerProcess, site: Site) -> None:
    head = curl("--head", served.url("/big.bin"))
    assert head.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"Content-Length: {len(site[1]['/big.bin'])}".encode() in head.stdout
    part = curl("--range", "100-199", served.url("/big.bin"))
    assert part.stdout == site[1]["/big.bin"][100:200]
    etag = [line.split(b": ", 1)[1] for line in head.stdout.split(b"\r\n")
            if line.lower().startswith(b"etag:")][0]
    cached = curl("--include", "--header", b"If-None-Match: ".decode() + etag.decode(),
                  served.url("/big.bin"))
    assert cached.stdout.startswith(b"HTTP/1.1 304 Not Modified\r\n")


def test_curl_http10_and_fail(served: ServerProcess, site: Site) -> None:
    old = curl("--http1.0", served.url("/notes.txt"))
    assert old.stdout == site[1]["/notes.txt"]
    missing = curl("--fail", served.url("/nope"))
    assert missing.returncode == 22


def test_curl_download_to_file(served: ServerProcess, site: Site, tmp_path: Path) -> None:
    target = tmp_path / "download"
    result = curl("--output", str(target), served.url("/big.bin"))
    assert result.returncode == 0
    assert hashlib.sha256(target.read_bytes()).digest() == \
        hashlib.sha256(site[1]["/big.bin"]).digest()


def test_urllib(served: ServerProcess, site: Site) -> None:
    with urllib.request.urlopen(served.url("/data.json"), timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.read() == site[1]["/data.json"]
    request = urllib.request.Request(served.url("/big.bin"), headers={"Range": "bytes=-10"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206
        assert response.read() == site[1]["/big.bin"][-10:]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(served.url("/nope"), timeout=10)
    assert missing.value.code == 404
    missing.value.close()
    with urllib.request.urlopen(served.url("/sub"), timeout=10) as response:  # follows the 301
        assert response.url.endswith("/sub/")
        assert b"file.txt" in response.read()
