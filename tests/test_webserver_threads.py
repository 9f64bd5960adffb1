"""The web server's threaded mode (``--threads N``): N readiness loops in one
process, each on its own SO_REUSEPORT listener, stopped together."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from web_support import child_pids, get, read_head, running_server

Site = Tuple[Path, Dict[str, bytes]]

GIL_ENABLED = getattr(sys, "_is_gil_enabled", lambda: True)()


def _threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_threads_serve_one_port_and_stop_together(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--threads", "3", "--quiet") as server:
        assert "with 1 worker of 3 threads" in server.announce
        assert _threads_of(server.proc.pid) == 3
        for _ in range(30):
            response = get(server.address, "/data.json")
            assert response.status == 200 and response.body == site[1]["/data.json"]
        assert server.stop() == 0  # SIGTERM: every loop winds down, the process exits 0
        assert ("runs with the GIL" in server.log()) == GIL_ENABLED


def test_each_thread_is_a_loop_of_its_own(web_impl: str, site: Site) -> None:
    """With one connection allowed per loop, three loops hold up to three
    clients at once where one loop would hold one: the connections are spread
    over the loops' listeners (by the kernel's hash of each connection, so
    twelve make all landing on one loop a chance of about 1 in 60,000)."""
    with running_server(web_impl, site[0], "--threads", "3", "--max-connections", "1",
                        "--quiet") as server:
        clients = [socket.create_connection(server.address, timeout=10) for _ in range(12)]
        try:
            for client in clients:
                client.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
            deadline = time.monotonic() + 3
            answered: set[socket.socket] = set()
            while time.monotonic() < deadline and len(answered) < 3:
                ready, _, _ = select.select([c for c in clients if c not in answered], [], [],
                                            max(0.0, deadline - time.monotonic()))
                for client in ready:
                    assert read_head(client).status == 200
                    answered.add(client)
            # a loop holding its one connection takes no other: at most one per loop
            assert 2 <= len(answered) <= 3, len(answered)
        finally:
            for client in clients:
                client.close()


def test_workers_of_threads(web_impl: str, site: Site) -> None:
    with running_server(web_impl, site[0], "--workers", "2", "--threads", "2",
                        "--quiet") as server:
        assert "with 2 workers of 2 threads" in server.announce
        workers = child_pids(server.proc.pid)
        assert len(workers) == 2
        assert [_threads_of(pid) for pid in workers] == [2, 2]
        for _ in range(20):
            assert get(server.address, "/data.json").status == 200


def test_a_second_signal_stops_every_loop_at_once(web_impl: str, site: Site) -> None:
    """Clients in the middle of a request hold the graceful stop (in whichever
    loop they landed); a second SIGTERM ends it at once, without an error."""
    with running_server(web_impl, site[0], "--threads", "2", "--quiet") as server:
        clients = [socket.create_connection(server.address, timeout=10) for _ in range(6)]
        try:
            for client in clients:
                client.sendall(b"GET /data.json HTTP/1.1\r\nHost: t\r\n")  # no end yet
            time.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.proc.poll() is None, "the graceful stop did not wait for the clients"
            started = time.monotonic()
            assert server.stop(signal.SIGTERM) == 0
            assert time.monotonic() - started < 5
            assert "Errno" not in server.log(), server.log()
        finally:
            for client in clients:
                client.close()


@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_thread_counts(value: str) -> None:
    result = subprocess.run([sys.executable, "-m", "fastsock.webserver", "--threads", value],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--threads must be at least 1" in result.stderr
