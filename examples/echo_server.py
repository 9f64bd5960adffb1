"""A TCP echo server on fastsock: every byte a client sends comes back.

Each client is served by a thread of its own; the blocking calls release the
GIL, so one slow client does not hold up the others.  The echo loop is
``StreamSocket.recv_iter``: it receives into one buffer, reused for every
chunk, and ``sendall`` sends each chunk straight from it (no copy per chunk).

Run it, then talk to it with the client (or ``nc 127.0.0.1 9090``)::

    python examples/echo_server.py [--host 127.0.0.1] [--port 9090]
    python examples/echo_client.py "hello there"

``--port 0`` picks a free port; the first line printed says which.  Ctrl-C
stops the server.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Optional, Sequence

import fastsock

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090


def handle(conn: fastsock.StreamSocket, peer: Any) -> None:
    """Echo everything ``conn`` receives until the client closes its side."""
    buffer = bytearray(64 * 1024)
    echoed = 0
    with conn:
        try:
            for chunk in conn.recv_iter(buffer):  # a view of buffer, valid until the next one
                conn.sendall(chunk)
                echoed += len(chunk)
        except OSError as exc:
            print(f"{peer[0]} port {peer[1]}: {exc.strerror or exc}", flush=True)
            return
    print(f"{peer[0]} port {peer[1]}: echoed {echoed} bytes, closed", flush=True)


def serve(server: fastsock.StreamSocket) -> None:
    """Accept clients for ever, one thread each."""
    while True:
        conn, peer = server.accept()
        print(f"{peer[0]} port {peer[1]}: connected", flush=True)
        # daemon threads: Ctrl-C ends the server even while clients are connected
        threading.Thread(target=handle, args=(conn, peer), daemon=True).start()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="A TCP echo server on fastsock.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port to listen on, 0 for a free one (default: %(default)s)")
    args = parser.parse_args(argv)
    family = fastsock.AF_INET6 if ":" in args.host else fastsock.AF_INET
    try:
        server = fastsock.create_server((args.host, args.port), family=family)
    except OSError as exc:
        print(f"echo_server: cannot listen on {args.host} port {args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    with server:
        host, port = server.getsockname()[:2]
        print(f"echo server (fastsock {fastsock.IMPLEMENTATION}) listening on "
              f"{host} port {port}", flush=True)
        # Ctrl-C raises KeyboardInterrupt even if the shell that started this
        # process had it ignored (as for background jobs)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            serve(server)
        except KeyboardInterrupt:
            print("echo server: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
