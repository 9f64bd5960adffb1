"""Echo: 1 KiB requests over 50 TCP connections on 127.0.0.1, each with one
request in flight, answered by an asyncio server in the benchmark's worker.

The servers: asyncio streams on the default loop (``readexactly(1024)``,
``write``, ``drain``: the baseline), the same streams code on uvloop, a
plain ``asyncio.Protocol`` writing back what ``data_received`` got, on
uvloop, and the same streams code on fastsock.aio (pure and compiled), on
the default loop and on uvloop.

The load generator is ``ref peer load`` (bench/c/ref.c): one process, one
blocking ``epoll_wait`` over its 50 non-blocking connections, a new request
on a connection as soon as its response is complete, every response checked
against its request (it needs a C compiler: without one the workload is
skipped).  It sleeps whenever the server is the slower side.  Its own CPU
time per request, recorded as ``load_cpu_us_per_unit`` in the JSON, is
nearly all the kernel's TCP send and receive (about 6 µs on a 2-core VM):
below every server's, but at the uvloop Protocol's rate it takes most of a
core, so on a 2-core machine that variant's req/s is partly the generator's
limit; the CPU time per request is not affected.

A round: the worker asks the generator for ``sizes.echo`` requests over its
control pipe and runs the event loop until it reports them done.  The
throughput is requests per median round time (req/s); the server's CPU time
per request is the worker process's CPU time (user + system,
``time.process_time``) over a round divided by its requests, the median
over the timed rounds (the report's "CPU µs/unit" column).  It runs in every
pass: in the default mode one warm-up round and 3 timed rounds of 4,000
requests per variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import time
from typing import Any, Callable, Optional

import pytest

from ._harness import (
    ECHO_BASELINE,
    ECHO_CONNS,
    ECHO_SIZE,
    FASTSOCK_FAMILIES,
    PEER_TIMEOUT,
    CBuild,
    Impl,
    Pinning,
    Sizes,
    echo_name,
    echo_row,
    fastsock_variant,
    measure,
)

BASELINE = Impl(ECHO_BASELINE, "asyncio", "streams")
IMPLS = [
    BASELINE,
    Impl("uvloop streams", "uvloop", "uvloop-streams"),
    Impl("uvloop Protocol", "uvloop", "uvloop-protocol"),
    *[Impl(f"{family} aio streams{suffix}", family, f"aio-streams{suffix.replace(' ', '-')}")
      for suffix in ("", " uvloop") for family in FASTSOCK_FAMILIES],
]


async def _echo_streams(reader: Any, writer: Any) -> None:
    """The streams handler, the same for asyncio's and fastsock.aio's."""
    readexactly, write, drain = reader.readexactly, writer.write, writer.drain
    try:
        while True:
            write(await readexactly(ECHO_SIZE))
            await drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class _EchoProtocol(asyncio.Protocol):
    transport: Any  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def _new_loop(uses_uvloop: bool) -> asyncio.AbstractEventLoop:
    if not uses_uvloop:
        return asyncio.new_event_loop()
    uvloop = pytest.importorskip("uvloop")
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _server_starter(impl: Impl) -> tuple[bool, Callable[[], Any]]:
    """(on uvloop?, a coroutine function starting the server on the running loop)."""
    uses_uvloop = "uvloop" in impl.method
    if impl.is_fastsock:
        fastsock_variant(impl, "recv_exactly")
        try:
            import fastsock.aio as aio
        except ImportError as exc:
            pytest.skip(f"{impl.family}: fastsock.aio not importable: {exc}")
        return uses_uvloop, lambda: aio.start_server(_echo_streams, "127.0.0.1", 0,
                                                     backlog=128)
    if impl.method == "uvloop-protocol":
        async def protocol_server() -> Any:
            loop = asyncio.get_running_loop()
            return await loop.create_server(_EchoProtocol, "127.0.0.1", 0, backlog=128)
        return True, protocol_server
    return uses_uvloop, lambda: asyncio.start_server(_echo_streams, "127.0.0.1", 0,
                                                     backlog=128)


def _cpu_ns(pid: int) -> int:
    """The CPU time a single-threaded process has had so far, in ns (its
    schedstat: unlike utime/stime, not in clock ticks)."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


async def _line(fd: int) -> bytes:
    """The generator's next line, waited for on the running loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(fut, PEER_TIMEOUT)
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 64)


async def _stop(server: Any) -> None:
    """Close the server; the handlers end at the generator's EOF."""
    server.close()
    me = asyncio.current_task()
    for _ in range(200):
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        if not tasks:
            break
        await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    await asyncio.sleep(0)


@pytest.mark.parametrize("impl", IMPLS, ids=[impl.id for impl in IMPLS])
def test_aio_echo(benchmark: Any, sizes: Sizes, cbuild: CBuild, pinning: Pinning,
                  impl: Impl) -> None:
    if cbuild.binary is None:
        pytest.skip(f"the echo load generator is C: {cbuild.reason}")
    uses_uvloop, start = _server_starter(impl)
    loop = _new_loop(uses_uvloop)
    proc: Optional[subprocess.Popen[bytes]] = None
    server: Any = None
    n = sizes.echo
    cpu: list[float] = []
    load_cpu: list[float] = []
    try:
        server = loop.run_until_complete(start())
        port = server.sockets[0].getsockname()[1]
        proc = subprocess.Popen(
            [str(cbuild.binary), "peer", "load", "tcp", "127.0.0.1", str(port),
             str(ECHO_CONNS), str(ECHO_SIZE), *pinning.peer_args()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        command, answers = proc.stdin.fileno(), proc.stdout.fileno()
        if loop.run_until_complete(_line(answers)) != b"ready\n":
            raise RuntimeError("the load generator did not start")
        order = b"%d\n" % n

        async def one_round() -> None:
            os.write(command, order)
            if await _line(answers) != b"done\n":
                raise RuntimeError("the load generator stopped mid-round")

        generator = proc.pid

        def run() -> None:
            load_started = _cpu_ns(generator)
            started = time.process_time()
            loop.run_until_complete(one_round())
            cpu.append(time.process_time() - started)
            load_cpu.append((_cpu_ns(generator) - load_started) * 1e-9)

        rounds = sizes.echo_rounds
        measure(benchmark, sizes, workload=echo_name(), variant=impl.label, unit="reqs",
                units=n, run=run, rounds=rounds, warmup=min(sizes.warmup, 1),
                baseline=ECHO_BASELINE, impl=impl.family,
                method=impl.method,
                row=echo_row(impl.method.replace("-", " ")) if impl.is_fastsock else None,
                connections=ECHO_CONNS, size=ECHO_SIZE, peer="c")
        benchmark.extra_info["cpu_us_per_unit"] = statistics.median(cpu[-rounds:]) / n * 1e6
        benchmark.extra_info["cpu_unit"] = "µs/req"
        # the generator's own, to show it is not what limits the rate
        benchmark.extra_info["load_cpu_us_per_unit"] = (
            statistics.median(load_cpu[-rounds:]) / n * 1e6)
    finally:
        if proc is not None:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=PEER_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if server is not None:
            loop.run_until_complete(_stop(server))
        loop.close()
        if proc is not None:
            assert proc.stderr is not None and proc.stdout is not None
            err = proc.stderr.read()
            proc.stderr.close()
            proc.stdout.close()
            if proc.returncode != 0:
                raise RuntimeError(f"the load generator exited {proc.returncode}: "
                                   f"{err.decode(errors='replace').strip()}")
