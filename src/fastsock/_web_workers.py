"""The worker supervisor of the demo web server: processes and threads, not
connections.

``serve`` is one worker: a listener on the port and a ``Server`` on it, which
SIGINT/SIGTERM stop gracefully; with ``threads`` > 1, that many loops in as
many threads, each a ``Server`` on its own SO_REUSEPORT listener (on a
free-threaded CPython they run in parallel).  ``run_workers`` forks N workers,
replaces one that crashes, and forwards SIGINT/SIGTERM to them for a graceful
shutdown.
"""

from __future__ import annotations

import os
import signal
import socket as _stdlib
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, TextIO

import fastsock

from ._web_http import Limits
from ._web_loop import Server, stop_on_signals


def listen(host: str, port: int, reuse_port: bool, backlog: int) -> Any:
    """A listening fastsock socket for ``host``:``port`` (a name, IPv4 or IPv6)."""
    infos = _stdlib.getaddrinfo(host or None, port, type=_stdlib.SOCK_STREAM,
                                flags=_stdlib.AI_PASSIVE)
    last: Optional[OSError] = None
    for family, _type, _proto, _name, address in infos:
        try:
            return fastsock.create_server(address[:2] if family == _stdlib.AF_INET else address,
                                          family=int(family), backlog=backlog,
                                          reuse_port=reuse_port)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


def serve(host: str, port: int, directory: str, limits: Limits, log: Optional[TextIO],
          reuse_port: bool, ready: Optional[Callable[[Any], None]], threads: int = 1) -> int:
    """One worker: serve until SIGINT/SIGTERM; ``ready`` gets the address once it listens.

    ``threads`` > 1: that many loops, see ``_serve_threads``.
    """
    if threads > 1:
        return _serve_threads(host, port, directory, limits, log, ready, threads)
    listener = listen(host, port, reuse_port, backlog=1024)
    server = Server(listener, directory, limits=limits, log=log)
    server.install_signal_handlers()
    if ready is not None:
        ready(listener.getsockname())
    server.serve_forever()
    return 0


def _serve_threads(host: str, port: int, directory: str, limits: Limits,
                   log: Optional[TextIO], ready: Optional[Callable[[Any], None]],
                   threads: int) -> int:
    """``threads`` loops, each a Server on its own SO_REUSEPORT listener (the
    kernel spreads the connections over them), the first in this (the main)
    thread, where the signals arrive.  A loop that fails stops the others, and
    the exit status is then 1.

    Each server is made in the thread that runs it: its caches are then that
    thread's own objects, which free-threaded CPython reads fastest (a dict
    with bytes keys made by another thread was measured at 20 µs per lookup).
    """
    listeners: List[Any] = []
    try:
        listeners.append(listen(host, port, True, backlog=1024))
        port = listeners[0].getsockname()[1]  # the one the kernel picked, for port 0
        for _ in range(threads - 1):
            listeners.append(listen(host, port, True, backlog=1024))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    address = listeners[0].getsockname()
    servers: List[Server] = []
    failures: List[BaseException] = []
    lock = threading.Lock()
    built = threading.Barrier(threads)  # every server made (or one failed) before any serves

    def build(index: int) -> Optional[Server]:
        try:
            server = Server(listeners[index], directory, limits=limits, log=log)
        except BaseException as exc:
            listeners[index].close()
            with lock:
                failures.append(exc)
            built.abort()
            return None
        # the descriptors kept open for large files are shared out among the loops
        server.site.max_open_files = max(1, server.site.max_open_files // threads)
        with lock:
            servers.append(server)
        return server

    def run(server: Server) -> None:
        try:
            server.serve_forever()
        except BaseException as exc:
            with lock:
                failures.append(exc)
            for other in servers:
                other.stop()
            raise

    def run_in_thread(index: int) -> None:
        server = build(index)
        try:
            built.wait()
        except threading.BrokenBarrierError:
            if server is not None:
                server.stop()  # its loop closes what it holds and returns at once
        if server is None:
            return
        try:
            run(server)
        except BaseException as exc:  # reported here; the main thread sets the status
            print(f"fastsock.webserver: thread {index}: {exc!r}", file=sys.stderr)

    others = [threading.Thread(target=run_in_thread, args=(index,), daemon=True,
                               name=f"fastsock.webserver-{index}")
              for index in range(1, threads)]
    for thread in others:
        thread.start()
    main = build(0)
    try:
        try:
            built.wait()
        except threading.BrokenBarrierError:
            if main is not None:
                main.stop()
                main.serve_forever()
            raise failures[0] from None
        assert main is not None
        stop_on_signals([main] + [s for s in servers if s is not main])
        if ready is not None:
            ready(address)
        run(main)
    finally:
        for server in servers:
            server.stop()
        for thread in others:
            thread.join()
    return 1 if failures else 0


def run_workers(host: str, port: int, directory: str, workers: int, limits: Limits,
                log: Optional[TextIO], announce: Callable[[Any], None],
                threads: int = 1) -> int:
    """N worker processes, each with its own SO_REUSEPORT listener on one port
    (``threads`` of them each, see ``serve``).

    ``announce`` gets the address once every worker listens.
    """
    # a bound, never listening socket keeps the port for the group (and names it for --port 0)
    holder = listen(host, port, True, backlog=1)
    address = holder.getsockname()
    port = address[1]  # the one the kernel picked, for port 0
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    children: Dict[int, int] = {}
    stopping = False

    def spawn(index: int, notify: bool) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                if notify:
                    os.close(ready_r)
                if not holder.closed:
                    holder.close()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)

                def ready(_address: Any) -> None:
                    if notify:
                        os.write(ready_w, b"r")
                        os.close(ready_w)
                code = serve(host, port, directory, limits, log, True, ready, threads)
            except BaseException as exc:
                print(f"fastsock.webserver worker: {exc}", file=sys.stderr)
            finally:
                os._exit(code)
        children[pid] = index

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
            except ProcessLookupError:
                pass

    for index in range(workers):
        spawn(index, notify=True)
    os.close(ready_w)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    started = 0
    while started < workers:
        chunk = os.read(ready_r, workers)
        if not chunk:
            break
        started += len(chunk)
    os.close(ready_r)
    holder.close()
    if started < workers:
        forward(signal.SIGTERM, None)
    else:
        announce(address)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        code = os.waitstatus_to_exitcode(wait_status)
        if code == 0 or (stopping and code in (-signal.SIGINT, -signal.SIGTERM)):
            continue
        if not stopping and index >= 0 and started == workers:
            # a crashed worker is replaced; the exit status reports the shutdown
            print(f"fastsock.webserver: worker {pid} exited with {code}; restarting",
                  file=sys.stderr)
            time.sleep(0.5)
            spawn(index, notify=False)
        else:
            status = 1
    return status if started == workers else 1
