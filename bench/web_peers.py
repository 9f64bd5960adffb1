"""The servers the demo web server is measured against, on the same files.

``python -m bench.web_peers stdlib --port N --directory D``
    Python's ``http.server`` (ThreadingHTTPServer, SimpleHTTPRequestHandler)
    speaking HTTP/1.1 keep-alive, with ``disable_nagle_algorithm = True``: as
    shipped it writes the head and the body separately and stalls about
    40 ms per request on Nagle's algorithm and delayed ACKs.
``python -m bench.web_peers uvloop --port N --directory D``
    A minimal asyncio + httptools static-file server on uvloop: one stat per
    request, small files kept in memory, the same headers as the demo server.

Both print ``Serving HTTP on HOST port N`` once they listen.
"""

from __future__ import annotations

import argparse
import email.utils
import http.server
import mimetypes
import os
import sys
import time
import urllib.parse
from functools import partial
from typing import Any, Optional


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_stdlib(port: int, directory: str) -> None:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), partial(_QuietHandler, directory=directory))
    server.daemon_threads = True
    print(f"Serving HTTP on 127.0.0.1 port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_uvloop(port: int, directory: str) -> None:
    import asyncio

    import httptools
    import uvloop

    root = os.path.realpath(directory)
    cache: dict[str, tuple[tuple[int, int], bytes, str]] = {}
    date = ["", 0]

    def now() -> str:
        second = int(time.time())
        if second != date[1]:
            date[0], date[1] = email.utils.formatdate(second, usegmt=True), second
        return str(date[0])

    def respond(url: bytes, keep_alive: bool) -> bytes:
        path = urllib.parse.unquote(url.split(b"?", 1)[0].decode("latin-1"))
        if ".." in path.split("/"):
            return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        full = os.path.join(root, path.lstrip("/"))
        if full.endswith("/"):
            full += "index.html"
        try:
            info = os.stat(full)
        except OSError:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        key = (info.st_mtime_ns, info.st_size)
        entry = cache.get(full)
        if entry is None or entry[0] != key:
            with open(full, "rb") as file:
                body = file.read()
            kind = mimetypes.guess_type(full)[0] or "application/octet-stream"
            fixed = (f"Server: uvloop-httptools\r\nContent-Type: {kind}\r\n"
                     f"Last-Modified: {email.utils.formatdate(info.st_mtime, usegmt=True)}\r\n"
                     f'ETag: "{key[0]:x}-{key[1]:x}"\r\nContent-Length: {len(body)}\r\n')
            entry = cache[full] = (key, body, fixed)
        connection = "" if keep_alive else "Connection: close\r\n"
        return (f"HTTP/1.1 200 OK\r\nDate: {now()}\r\n{entry[2]}{connection}\r\n"
                ).encode("latin-1") + entry[1]

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                     b"Connection: close\r\n\r\n")
                self.transport.close()

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_message_complete(self) -> None:
            keep_alive = self.parser.should_keep_alive()
            self.transport.write(respond(self.url, keep_alive))
            if not keep_alive:
                self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Protocol, "127.0.0.1", port, backlog=1024)
        bound = server.sockets[0].getsockname()
        print(f"Serving HTTP on 127.0.0.1 port {bound[1]}", flush=True)
        async with server:
            await server.serve_forever()

    uvloop.install()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_peers")
    parser.add_argument("kind", choices=["stdlib", "uvloop"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--directory", default=os.curdir)
    args = parser.parse_args(argv)
    if args.kind == "stdlib":
        serve_stdlib(args.port, args.directory)
    else:
        serve_uvloop(args.port, args.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
