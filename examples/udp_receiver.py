"""A UDP receiver on fastsock: print every datagram that arrives.

``DatagramSocket.recv_many`` waits for the first datagram, then takes every
other one already queued in the same call (one ``recvmmsg`` in the compiled
implementation), so a burst costs one call rather than one per datagram.

Run it, then send it datagrams::

    python examples/udp_receiver.py [--host 127.0.0.1] [--port 9091] [--count N]
    python examples/udp_sender.py --count 5

With ``--count N`` it stops after N datagrams; otherwise Ctrl-C stops it.
``--port 0`` picks a free port; the first line printed says which.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Optional, Sequence

import fastsock

DEFAULT_PORT = 9091
MAX_DATAGRAM = 2048     # longer ones are reported as cut, never silently


def show(address: Any) -> str:
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def receive(sock: fastsock.DatagramSocket, count: Optional[int]) -> int:
    """Print datagrams until ``count`` have arrived (None: for ever); return how many did."""
    received = 0
    while count is None or received < count:
        # never take more than asked for: the rest stays queued for whoever reads next
        wanted = 64 if count is None else min(64, count - received)
        try:
            batch = sock.recv_many(wanted, MAX_DATAGRAM)
            cut: list[int] = []
        except fastsock.TruncatedDatagramError as exc:
            batch, cut = exc.messages, exc.truncated
        for index, (data, address) in enumerate(batch):
            note = f" (cut to {MAX_DATAGRAM} bytes)" if index in cut else ""
            print(f"{show(address)}: {data.decode(errors='replace')}{note}")
        received += len(batch)
        sys.stdout.flush()
    return received


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Print the UDP datagrams that arrive.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port to bind, 0 for a free one (default: %(default)s)")
    parser.add_argument("--count", type=int, default=None, metavar="N",
                        help="stop after N datagrams (default: never)")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 0:
        parser.error("--count must not be negative")
    family = fastsock.AF_INET6 if ":" in args.host else fastsock.AF_INET
    with fastsock.DatagramSocket(family) as sock:
        try:
            sock.bind((args.host, args.port))
        except OSError as exc:
            print(f"udp_receiver: cannot bind {args.host} port {args.port}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        host, port = sock.getsockname()[:2]
        print(f"udp receiver (fastsock {fastsock.IMPLEMENTATION}) listening on "
              f"{host} port {port}", flush=True)
        # Ctrl-C raises KeyboardInterrupt even if the shell that started this
        # process had it ignored (as for background jobs)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            received = receive(sock, args.count)
        except KeyboardInterrupt:
            print("udp receiver: stopped", flush=True)
            return 0
    print(f"received {received} datagrams", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
