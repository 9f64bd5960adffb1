"""A static-file HTTP/1.1 server on fastsock: ``python -m fastsock.webserver``.

One single-threaded readiness loop (epoll where the OS has it, the
``selectors`` module elsewhere) drives non-blocking fastsock sockets;
``--workers N`` runs N such processes on one port with SO_REUSEPORT, and
``--threads N`` N such loops in one process (in parallel on a free-threaded
CPython; with the GIL they take turns, and processes are the way to scale).
Requests are parsed by httptools (llhttp).  Small files are kept in memory
and go out together with their headers; the responses to everything one read
brought in leave in one ``send_buffers`` call.  Larger files go out with
``StreamSocket.sendfile``.

Safe by default: it binds 127.0.0.1, refuses any path that leaves the served
directory (``..``, percent-encoded dots or slashes, symlinks), limits the size
of every part of a request and the work one connection may queue (one open
file, 256 KiB of responses, about 100 parsed requests; then it stops reading
that client until it reads), times out idle and slow clients (empty lines
before a request count), answers every malformed request with a 4xx status
and the connection closed, and answers 503, never 500, when descriptors run
out.
SIGINT and SIGTERM stop it gracefully: it stops accepting, finishes the
responses in flight, then exits.

This module is the command line and the public names; the server lives in
``_web_http`` (what a request gets back), ``_web_loop`` (the readiness loop
and its connections) and ``_web_workers`` (the worker processes).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional, Sequence

from ._demo import program_name
from ._web_http import REASONS, SERVER_NAME, Limits, parse_range
from ._web_loop import Server
from ._web_parser import require_httptools
from ._web_workers import run_workers, serve

__all__ = ["DEFAULT_PORT", "REASONS", "SERVER_NAME", "Limits", "Server", "main", "parse_range"]

DEFAULT_PORT = 28333


# -- command line ---------------------------------------------------------------


def _url_host(address: Any) -> str:
    host = str(address[0])
    return f"[{host}]" if ":" in host else host


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _announce(address: Any, args: argparse.Namespace) -> None:
    threads = f" of {_plural(args.threads, 'thread')}" if args.threads > 1 else ""
    print(f"Serving HTTP on {address[0]} port {address[1]} "
          f"(http://{_url_host(address)}:{address[1]}/) from {os.path.abspath(args.directory)} "
          f"with {_plural(args.workers, 'worker')}{threads} ...", flush=True)


def _gil_enabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=program_name("fastsock.webserver", __file__),
        description="Serve a directory over HTTP/1.1 with fastsock.")
    parser.add_argument("--bind", "-b", default="127.0.0.1", metavar="ADDRESS",
                        help="address to listen on (default: 127.0.0.1; "
                             "0.0.0.0 or :: serve every interface)")
    parser.add_argument("--port", "-p", type=int, default=DEFAULT_PORT,
                        help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--directory", "-d", default=os.curdir,
                        help="directory to serve (default: the current one)")
    parser.add_argument("--workers", "-w", type=int, default=1,
                        help="worker processes sharing the port (default: 1)")
    parser.add_argument("--threads", "-t", type=int, default=1,
                        help="readiness loops per worker, one thread each, in parallel "
                             "on a free-threaded CPython (default: 1)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no access log")
    parser.add_argument("--max-connections", type=int, default=Limits.max_connections,
                        help="open connections per loop (default: %(default)s)")
    parser.add_argument("--idle-timeout", type=float, default=Limits.idle_timeout,
                        help="seconds a keep-alive connection may sit idle (default: %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=Limits.request_timeout,
                        help="seconds to receive a whole request (default: %(default)s)")
    parser.add_argument("--cache-valid", type=int, default=Limits.cache_valid, metavar="SECONDS",
                        help="serve a small file from memory, and keep a larger one open, "
                             "for up to SECONDS before checking it on disk again, as "
                             "nginx's open_file_cache_valid (default: %(default)s, check "
                             "on every request)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0-65535")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    for name in ("max_connections", "idle_timeout", "request_timeout"):
        if not getattr(args, name) > 0:  # (not "<= 0": NaN is no timeout either)
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.cache_valid < 0:
        parser.error("--cache-valid must be 0 or more")
    if not os.path.isdir(args.directory):
        parser.error(f"not a directory: {args.directory}")
    require_httptools()
    if args.bind in ("", "0.0.0.0", "::", "[::]"):
        print(f"fastsock.webserver: warning: serving {os.path.abspath(args.directory)} on "
              "every network interface; anyone who can reach this machine can read it",
              file=sys.stderr)
    if args.threads > 1 and _gil_enabled():
        print("fastsock.webserver: warning: this Python runs with the GIL, so the "
              f"{args.threads} threads take turns on one core; --workers scales here",
              file=sys.stderr)
    args.bind = args.bind.strip("[]")
    limits = Limits(max_connections=args.max_connections, idle_timeout=args.idle_timeout,
                    request_timeout=args.request_timeout, cache_valid=args.cache_valid)
    log = None if args.quiet else sys.stderr
    try:
        if args.workers > 1:
            return run_workers(args.bind, args.port, args.directory, args.workers, limits, log,
                               lambda address: _announce(address, args), args.threads)
        return serve(args.bind, args.port, args.directory, limits, log, False,
                     lambda address: _announce(address, args), args.threads)
    except OSError as exc:
        print(f"fastsock.webserver: cannot serve on {args.bind} port {args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
