"""A TCP echo client on fastsock: send one message, print what comes back.

``StreamSocket.recv_exactly(n)`` waits for exactly the bytes sent, however
the network splits them, in one call.

Start the server first, then::

    python examples/echo_server.py
    python examples/echo_client.py [--host 127.0.0.1] [--port 9090] [MESSAGE ...]

Without a message it sends a greeting of its own.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import fastsock

DEFAULT_MESSAGE = "Hello, fastsock!"


def echo(host: str, port: int, message: bytes, timeout: float) -> bytes:
    """Send ``message`` to the echo server at ``host``:``port`` and return its echo."""
    with fastsock.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(message)
        return sock.recv_exactly(len(message))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="A TCP echo client on fastsock.")
    parser.add_argument("message", nargs="*", metavar="MESSAGE",
                        help=f"words to send (default: {DEFAULT_MESSAGE!r})")
    parser.add_argument("--host", default="127.0.0.1", help="server (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9090, help="port (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to connect and to wait for the echo (default: %(default)s)")
    args = parser.parse_args(argv)
    message = " ".join(args.message) if args.message else DEFAULT_MESSAGE
    try:
        reply = echo(args.host, args.port, message.encode(), args.timeout)
    except fastsock.IncompleteReadError as exc:
        print(f"echo_client: the server closed the connection after {len(exc.partial)} "
              f"of {exc.expected} bytes", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"echo_client: {args.host} port {args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(reply.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
