"""A UDP sender on fastsock: send N datagrams in one call.

``DatagramSocket.send_many`` sends a whole list of buffers, one datagram
each (one ``sendmmsg`` in the compiled implementation), and returns how many
went out.  On a blocking socket that is all of them unless an error stops
it part-way: then it returns the count so far and the next call raises the
error, so the loop below either finishes or reports what stopped it.

Start a receiver first, then::

    python examples/udp_receiver.py --count 5
    python examples/udp_sender.py [--host 127.0.0.1] [--port 9091] [--count 5] [MESSAGE]

Datagram i (from 1) carries ``MESSAGE i``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import fastsock

DEFAULT_PORT = 9091


def send_datagrams(sock: fastsock.DatagramSocket, datagrams: Sequence[bytes]) -> int:
    """Send every one of ``datagrams``; return how many ``send_many`` calls it took."""
    sent = calls = 0
    while sent < len(datagrams):
        sent += sock.send_many(datagrams[sent:])
        calls += 1
    return calls


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Send numbered UDP datagrams.")
    parser.add_argument("message", nargs="?", default="datagram", metavar="MESSAGE",
                        help="text of each datagram, before its number (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="receiver (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="receiver's port (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, metavar="N",
                        help="how many datagrams (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    datagrams = [f"{args.message} {i}".encode() for i in range(1, args.count + 1)]
    family = fastsock.AF_INET6 if ":" in args.host else fastsock.AF_INET
    with fastsock.DatagramSocket(family) as sock:
        try:
            sock.connect((args.host, args.port))
            calls = send_datagrams(sock, datagrams)
        except OSError as exc:
            print(f"udp_sender: {args.host} port {args.port}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    print(f"sent {len(datagrams)} datagrams to {args.host} port {args.port} in {calls} "
          f"send_many call{'s' if calls != 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
