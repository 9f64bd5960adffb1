"""What the benchmark modules share: the variants, the sizes of each mode,
the C reference build, the peer processes and how a result is recorded."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from fastsock._names import IMPLEMENTATIONS

BENCH_DIR = Path(__file__).resolve().parent
C_SOURCE = BENCH_DIR / "c" / "ref.c"
BUILD_DIR = BENCH_DIR / ".build"
C_BINARY = BUILD_DIR / "ref"
PEER_SCRIPT = BENCH_DIR / "peer.py"


def variant_label(implementation: str) -> str:
    """The benchmark variant of a fastsock implementation, named after its
    module: "fastsock-c" (cython), "fastsock-py" (python)."""
    module = IMPLEMENTATIONS[implementation][0]
    return "fastsock-" + module.rsplit("_", 1)[-1]


# variant -> the implementation it runs, chosen in a process of its own
# through the public switch (see bench/_workers.py)
FASTSOCK_VARIANTS = {variant_label(name): name for name in IMPLEMENTATIONS}
PURE, COMPILED = variant_label("python"), variant_label("cython")
FASTSOCK_FAMILIES = (PURE, COMPILED)  # in the report's order
VARIANTS = ("stdlib", *FASTSOCK_FAMILIES)
CREF = "c-ref"

# the families that need no fastsock: they run in the stdlib worker
NON_FASTSOCK_FAMILIES = ("stdlib", "asyncio", "uvloop", "aiofastnet")

PROGRESS_FD_ENV = "FASTSOCK_BENCH_PROGRESS_FD"

# Linux's SO_RCVBUFFORCE (the socket module does not export it): lets a
# privileged process go past net.core.rmem_max
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
UDP_RCVBUF = 8 << 20
UDP_RECV_BUFSIZE = 2048
BULK_WRITE_SIZE = 256 << 10
PEER_TIMEOUT = 20.0


# -- workload names: one benchmark group and one table row each ---------------

PERCALL = "per-call send+recv 1B"
RECV_FDS = "recv_fds 1 fd per 1B message"
CONNECT = "connect+accept+close"
CHUNKS = {"4K": 4 << 10, "64K": 64 << 10, "1M": 1 << 20}
UDP_SIZES = (64, 1200)


def pingpong_name(transport: str) -> str:
    return f"ping-pong 64B {transport}"


def bulk_name(method: str, chunk_label: str) -> str:
    return f"bulk {method} {chunk_label}"


def udp_drain_name(size: int) -> str:
    return f"udp drain {size}B"


def udp_send_name(size: int) -> str:
    return f"udp sendto {size}B"


# The stream fast-path workloads have more variants than stdlib / pure /
# compiled: each is one benchmark group (``workload``) whose variants carry a
# label such as "stdlib makefile" or "fastsock-c recv_msgs".  The variant
# named ``baseline`` is the stdlib idiom the others are compared with; each
# fastsock method also gets a row of the main table (``row``), where the
# baseline stands in the stdlib column.

FRAME_PAYLOAD = 64
FRAME_PREFIX = 4
FRAMING_RECV_BUFSIZE = 256 << 10
EXACT_CHUNK = 1 << 20
SEND_HEADER = 16
SEND_BODIES = {"4K": 4 << 10, "64K": 64 << 10}


LINE_SIZE = 16

# the stdlib idiom each multi-variant workload is compared with
FRAMING_BASELINE = "stdlib makefile"
LINES_BASELINE = "stdlib makefile.readline"
EXACT_BASELINE = "stdlib recv"
SENDS_BASELINE = "stdlib sendall(header + body)"


def framing_name(transport: str) -> str:
    return f"framing {FRAME_PAYLOAD}B {transport}"


def framing_row(transport: str, method: str) -> str:
    return f"{framing_name(transport)} {method}"


def lines_name() -> str:
    return f"makefile('rb').readline {LINE_SIZE}B lines unix"


def lines_row() -> str:
    return f"readline {LINE_SIZE}B lines unix"


def exact_name() -> str:
    return "bulk 1M: recv vs recv_exactly_into"


def exact_row() -> str:
    return "bulk recv_exactly_into 1M"


def sends_name(body_label: str) -> str:
    return f"send {SEND_HEADER}B header + {body_label} body"


def sends_row(body_label: str, method: str) -> str:
    return f"send hdr+{body_label} {method}"


# The datagram fast paths: 64-byte datagrams on 127.0.0.1, one multi-variant
# group each for the receive drain, the send and the end-to-end case.

UDP_BATCH_SIZE = 64         # bytes per datagram
UDP_BATCH_COUNT = 64        # datagrams per recv_many / recv_batch / send_many call
UDP_DRAIN_BASELINE = "stdlib recvfrom"
UDP_SEND_BASELINE = "stdlib sendto"
UDP_E2E_BASELINE = "stdlib sendto → recvfrom"


def udp_batch_drain_name() -> str:
    return f"udp drain {UDP_BATCH_SIZE}B: recvfrom vs batched receives"


def udp_batch_send_name() -> str:
    return f"udp send {UDP_BATCH_SIZE}B: sendto vs batched sends"


def udp_e2e_name() -> str:
    return f"udp end-to-end {UDP_BATCH_SIZE}B: sendto → recvfrom vs GSO → GRO"


def udp_batch_row(kind: str, method: str) -> str:
    return f"udp {kind} {UDP_BATCH_SIZE}B {method}"


# -- asyncio echo: request/response over many connections ---------------------

ECHO_SIZE = 1024            # bytes per request and per response
ECHO_CONNS = 50             # connections, each with one request in flight
ECHO_BASELINE = "asyncio streams"


def echo_name() -> str:
    return f"echo {ECHO_SIZE // 1024}KiB × {ECHO_CONNS} conns tcp"


def echo_row(method: str) -> str:
    return f"echo {ECHO_SIZE // 1024}KiB ×{ECHO_CONNS} {method}"


# -- SOCK_SEQPACKET records: a socketpair's queue drained per round ------------

SEQPACKET_SIZE = 64         # bytes per record
SEQPACKET_COUNT = 64        # records per recv_records / recv_batch call
SEQPACKET_BASELINE = "stdlib recv"


def seqpacket_drain_name() -> str:
    return f"seqpacket drain {SEQPACKET_SIZE}B: recv vs batched record receives"


def seqpacket_row(method: str) -> str:
    return f"seqpacket drain {SEQPACKET_SIZE}B {method}"


@dataclass(frozen=True)
class Impl:
    """One variant of a multi-variant workload: its label in the tables, the
    module family it uses ("stdlib", "asyncio", "uvloop", "aiofastnet",
    "fastsock-py", "fastsock-c"), and the method or idiom it times."""

    label: str
    family: str
    method: str

    @property
    def id(self) -> str:
        """The test id: short, and usable in a -k expression."""
        prefix = self.family.removeprefix("fastsock-") + "-" if self.is_fastsock else ""
        return prefix + self.method.replace("+", "_").replace("(", "_").replace(")", "")

    @property
    def is_fastsock(self) -> bool:
        return self.family in FASTSOCK_VARIANTS


def fastsock_impls(*methods: str) -> list[Impl]:
    """The pure and the compiled variant of each method, in that order."""
    return [Impl(f"{family} {method}", family, method)
            for method in methods for family in FASTSOCK_FAMILIES]


def fastsock_variant(impl: Impl, *needed: str, cls: str = "StreamSocket") -> Variant:
    """The fastsock module of ``impl``; skips the test when it cannot be
    imported or its ``cls`` (StreamSocket, DatagramSocket) lacks one of the
    ``needed`` methods."""
    import pytest

    try:
        variant = Variant(impl.family)
    except ImportError as exc:
        pytest.skip(f"{impl.family} not importable: {exc}")
    kind = getattr(variant.module, cls, None)
    missing = [name for name in needed if not hasattr(kind, name)]
    if missing:
        pytest.skip(f"{impl.family}: {cls} has no " + ", ".join(missing) + " yet")
    return variant


# -- sizes ---------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    """How much work one benchmark does in a mode: rounds of a batch each."""

    mode: str
    rounds: int
    warmup: int
    percall: int        # send+recv pairs per round
    pingpong: int       # round trips per round
    bulk_total: int     # bytes per bulk case (all rounds together)
    bulk_rounds: int
    connect: int        # connections per round
    udp_send: int       # datagrams per round
    udp_fill: int       # at most this many datagrams queued per drain round
    udp_rounds: int
    framing: int = 2000         # length-prefixed messages per round
    framing_rounds: int = 1
    framing_warmup: int = 0     # messages received untimed before the rounds
    sends_small: int = 50       # header + 4 KiB body messages per round
    sends_large: int = 10       # header + 64 KiB body messages per round
    sends_rounds: int = 1
    heavy_every: int = 1        # python -m bench: the framing workloads run in
                                # every heavy_every-th pass only
    udp_e2e: int = 200          # datagrams received per end-to-end round of the
                                # stdlib baseline (the GRO variants: 16 times more)
    lines: int = 2000           # lines read per round of the readline workload
    lines_rounds: int = 1
    fds: int = 200              # messages with a descriptor received per round (a
                                # Unix stream's send buffer holds about 270)
    seqpacket: int = 200        # 64-byte records queued per drain round (the sender's
                                # default send buffer holds about 270)
    seqpacket_rounds: int = 150
    echo: int = 500             # echo requests per round (all connections together)
    echo_rounds: int = 1

    @property
    def bulk_per_round(self) -> int:
        return max(1, self.bulk_total // self.bulk_rounds)


MODES = {
    # --benchmark-disable: every benchmark once, small, to show it still works
    "smoke": Sizes("smoke", rounds=1, warmup=0, percall=50, pingpong=20,
                   bulk_total=1 << 20, bulk_rounds=1, connect=5, udp_send=50,
                   udp_fill=64, udp_rounds=1, framing=2000, framing_rounds=1,
                   framing_warmup=0, sends_small=50, sends_large=10, sends_rounds=1,
                   udp_e2e=200, fds=20, seqpacket_rounds=1, echo=500, echo_rounds=1),
    "quick": Sizes("quick", rounds=12, warmup=1, percall=2000, pingpong=500,
                   bulk_total=32 << 20, bulk_rounds=8, connect=200, udp_send=2000,
                   udp_fill=2048, udp_rounds=12, framing=200_000, framing_rounds=1,
                   framing_warmup=20_000, sends_small=2000, sends_large=300,
                   sends_rounds=5, heavy_every=2, udp_e2e=4000, lines=200_000,
                   lines_rounds=3, echo=4000, echo_rounds=3),
    "normal": Sizes("normal", rounds=15, warmup=2, percall=4000, pingpong=600,
                    bulk_total=256 << 20, bulk_rounds=32, connect=300, udp_send=3000,
                    udp_fill=4096, udp_rounds=15, framing=2_000_000, framing_rounds=1,
                    framing_warmup=50_000, sends_small=4000, sends_large=600,
                    sends_rounds=5, heavy_every=3, udp_e2e=6000, lines=1_000_000,
                    lines_rounds=3, echo=4000, echo_rounds=3),
    "long": Sizes("long", rounds=30, warmup=3, percall=8000, pingpong=1000,
                  bulk_total=1 << 30, bulk_rounds=64, connect=500, udp_send=6000,
                  udp_fill=8192, udp_rounds=30, framing=2_000_000, framing_rounds=3,
                  framing_warmup=100_000, sends_small=10_000, sends_large=1500,
                  sends_rounds=15, heavy_every=4, udp_e2e=20_000, lines=1_000_000,
                  lines_rounds=7, echo=10_000, echo_rounds=7),
}


def sizes_for(mode: str, bulk_mib: Optional[int] = None) -> Sizes:
    sizes = MODES[mode]
    if bulk_mib:
        sizes = dataclasses.replace(sizes, bulk_total=bulk_mib << 20)
    return sizes


# -- variants ------------------------------------------------------------------

class Variant:
    """One implementation behind the same small factory interface.

    Everything a workload does after creating its sockets is a method call on
    the socket objects, identical for the three variants.  A fastsock variant
    is ``import fastsock`` in a process whose environment picked its
    implementation (bench/_workers.py starts it); this checks that it did.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._stdlib = name == "stdlib"
        if self._stdlib:
            self.module: ModuleType = socket
            return
        import fastsock

        wanted = FASTSOCK_VARIANTS[name]
        if fastsock.IMPLEMENTATION != wanted:
            raise ImportError(f"this process runs fastsock's {fastsock.IMPLEMENTATION} "
                              f"implementation, not {wanted} (environment "
                              f"{dict(IMPLEMENTATIONS[wanted][1])})")
        self.module = fastsock

    def stream_factory(self, family: int = socket.AF_INET) -> Callable[[], Any]:
        if self._stdlib:
            return functools.partial(socket.socket, family, socket.SOCK_STREAM)
        return functools.partial(self.module.StreamSocket, family)

    def stream(self, family: int = socket.AF_INET) -> Any:
        return self.stream_factory(family)()

    def dgram(self, family: int = socket.AF_INET) -> Any:
        if self._stdlib:
            return socket.socket(family, socket.SOCK_DGRAM)
        return self.module.DatagramSocket(family)

    def socketpair(self) -> tuple[Any, Any]:
        a, b = self.module.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return a, b

    def create_server(self, address: Any, family: int = socket.AF_INET) -> Any:
        return self.module.create_server(address, family=family, backlog=128)


def implementation_env(implementation: str) -> dict[str, str]:
    """This process's environment, with the switch that picks ``implementation``."""
    return dict(os.environ, **IMPLEMENTATIONS[implementation][1])


def live_implementation(implementation: str) -> str:
    """What ``import fastsock`` picks in a process asking for ``implementation``
    (or why it cannot be imported)."""
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import fastsock; print(fastsock.IMPLEMENTATION)"],
        env=implementation_env(implementation), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return f"an error: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return proc.stdout.strip()


# -- the C reference -----------------------------------------------------------

@dataclass
class CBuild:
    binary: Optional[Path]
    reason: str = ""
    compiler: str = ""


def compiler_path() -> Optional[str]:
    return shutil.which("cc")


def build_cref() -> CBuild:
    """Compile bench/c/ref.c with the system ``cc -O2`` unless up to date."""
    cc = compiler_path()
    if cc is None:
        return CBuild(None, "C reference skipped: no C compiler (`cc`) on PATH")
    version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        version = (out.stdout.splitlines() or [""])[0].strip()
    if C_BINARY.exists() and C_BINARY.stat().st_mtime >= C_SOURCE.stat().st_mtime:
        return CBuild(C_BINARY, compiler=version)
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    tmp = BUILD_DIR / f"ref.{os.getpid()}.tmp"
    try:
        proc = subprocess.run(
            [cc, "-O2", "-Wall", "-o", str(tmp), str(C_SOURCE)],
            capture_output=True, text=True, timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return CBuild(None, f"C reference skipped: running {cc} failed: {exc}")
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return CBuild(None, "C reference skipped: compiling bench/c/ref.c failed:\n"
                      + "\n".join(detail))
    os.replace(tmp, C_BINARY)
    return CBuild(C_BINARY, compiler=version)


# -- CPU pinning ---------------------------------------------------------------

@dataclass(frozen=True)
class Pinning:
    main: Optional[int] = None
    peer: Optional[int] = None

    @classmethod
    def parse(cls, text: Optional[str]) -> "Pinning":
        if not text:
            return cls()
        main, _, peer = text.partition(",")
        return cls(int(main), int(peer) if peer else None)

    def apply_to_self(self) -> None:
        if self.main is not None:
            os.sched_setaffinity(0, {self.main})

    def peer_args(self) -> list[str]:
        return [f"cpu={self.peer}"] if self.peer is not None else []


# -- peers: the other end of ping-pong and bulk, in another process -----------

class Peers:
    """Starts the echo and source peers: the compiled C peer when there is one,
    else bench/peer.py on stdlib sockets."""

    def __init__(self, binary: Optional[Path], pinning: Pinning) -> None:
        self.binary = binary
        self.pinning = pinning
        self.kind = "c" if binary else "python"

    def argv(self, *args: str) -> list[str]:
        if self.binary:
            head = [str(self.binary), "peer"]
        else:
            head = [sys.executable, str(PEER_SCRIPT)]
        return head + list(args) + self.pinning.peer_args()

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def _peer_error(proc: subprocess.Popen[bytes], what: str) -> RuntimeError:
    err = b""
    if proc.poll() is not None and proc.stderr is not None:
        err = proc.stderr.read()
    return RuntimeError(f"{what} (peer {proc.args!r}, exit {proc.returncode}): "
                        f"{err.decode(errors='replace').strip()}")


def _stop_peer(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=PEER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"peer {proc.args!r} exited {proc.returncode}: "
                           f"{err.decode(errors='replace').strip()}")


@contextlib.contextmanager
def served_peer(variant: Variant, peers: Peers, transport: str,
                *peer_args: str) -> Iterator[Any]:
    """A connected socket of ``variant`` whose other end is a peer process.

    The variant listens, the peer connects; the accepted socket is the one
    the workload uses.  ``transport`` is "tcp" or "unix"; ``peer_args`` is
    the peer mode ("echo", "frames", "sink", or "source", TCP only) plus extra
    arguments after the address.
    """
    tmpdir = None
    proc = None
    conn = None
    if transport == "unix":
        tmpdir = tempfile.mkdtemp(prefix="fsb-", dir="/tmp")
        address: Any = os.path.join(tmpdir, "s")
        listener = variant.create_server(address, family=socket.AF_UNIX)
    else:
        listener = variant.create_server(("127.0.0.1", 0))
    try:
        mode, *extra = peer_args
        if transport == "unix":
            where = [address] if mode == "source" else ["unix", address]
        else:
            port = str(listener.getsockname()[1])
            where = ["127.0.0.1", port] if mode == "source" else ["tcp", "127.0.0.1", port]
        proc = peers.spawn(mode, *where, *extra)
        ready, _, _ = select.select([listener.fileno()], [], [], PEER_TIMEOUT)
        if not ready:
            failed, proc = proc, None
            failed.kill()
            failed.wait()
            raise _peer_error(failed, "peer never connected")
        conn, _ = listener.accept()
        listener.close()
        if transport == "tcp":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield conn
    finally:
        listener.close()
        if conn is not None:
            conn.close()
        if proc is not None:
            _stop_peer(proc)
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


# -- UDP helpers ---------------------------------------------------------------

def set_large_rcvbuf(sock: Any) -> None:
    """A receive queue big enough to hold a drain round (forced when privileged)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, UDP_RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)


@functools.lru_cache(maxsize=None)
def udp_fill_count(size: int, most: int) -> int:
    """How many ``size``-byte datagrams a drain round queues: ``most`` when
    they all fit in the receive queue, else 90% of what fits."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        set_large_rcvbuf(rx)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        addr = rx.getsockname()
        payload = b"c" * size
        for _ in range(most):
            tx.sendto(payload, addr)
        got = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                rx.recvfrom(UDP_RECV_BUFSIZE)
                got += 1
    finally:
        rx.close()
        tx.close()
    return most if got >= most else max(1, got * 9 // 10)


# -- recording -----------------------------------------------------------------

_UNITS = {
    # unit: (throughput key, display unit, scale from units to display units)
    "msgs": ("msgs_per_s", "msgs/s", 1.0),
    "lines": ("lines_per_s", "lines/s", 1.0),
    "conns": ("conns_per_s", "conns/s", 1.0),
    "bytes": ("MB_per_s", "MB/s", 1e-6),
    "reqs": ("req_per_s", "req/s", 1.0),
}


def emit(event: dict[str, Any]) -> None:
    """One JSON line of progress for ``python -m bench``, when it is listening."""
    fd = os.environ.get(PROGRESS_FD_ENV)
    if not fd:
        return
    with contextlib.suppress(OSError, ValueError):
        os.write(int(fd), (json.dumps(event) + "\n").encode())


def _record(benchmark: Any, per_s: Optional[float]) -> None:
    info = benchmark.extra_info
    key, display, scale = _UNITS[info["unit"]]
    if per_s is not None:
        info[key] = per_s * scale
        info["throughput"] = per_s * scale
        info["throughput_unit"] = display
    emit({"event": "result", "nodeid": benchmark.fullname, "workload": info["workload"],
          "variant": info["variant"], "throughput": info.get("throughput"),
          "unit": display})


def measure(
    benchmark: Any,
    sizes: Sizes,
    *,
    workload: str,
    variant: str,
    unit: str,
    units: Union[float, Callable[[], float]],
    run: Callable[[], Any],
    setup: Optional[Callable[[], Any]] = None,
    rounds: Optional[int] = None,
    warmup: Optional[int] = None,
    ref: Optional[str] = None,
    **info: Any,
) -> None:
    """Time ``run`` (one round: ``units`` of work) with pytest-benchmark and
    record the throughput, units per median round time, in extra_info."""
    benchmark.group = workload
    benchmark.extra_info.update(workload=workload, variant=variant, unit=unit,
                                ref=ref or workload, mode=sizes.mode, **info)
    benchmark.pedantic(run, setup=setup, rounds=rounds or sizes.rounds,
                       warmup_rounds=sizes.warmup if warmup is None else warmup,
                       iterations=1)
    per_round = float(units() if callable(units) else units)
    benchmark.extra_info["units_per_round"] = per_round
    per_s = None
    if not benchmark.disabled and benchmark.stats:
        median = benchmark.stats.stats.median
        per_s = per_round / median if median > 0 else None
    _record(benchmark, per_s)


def measure_cref(
    benchmark: Any,
    sizes: Sizes,
    build: CBuild,
    pinning: Pinning,
    *,
    workload: str,
    cworkload: str,
    unit: str,
    params: dict[str, int],
    variant: str = CREF,
    **info: Any,
) -> None:
    """Run the C reference for one workload.  It times itself; the time
    pytest-benchmark shows for it is the whole process, start-up included.
    ``variant`` names a second C variant of a multi-variant workload (the
    one named CREF is what the ÷ C ratios divide by)."""
    import pytest

    if build.binary is None:
        pytest.skip(build.reason)
    benchmark.group = workload
    benchmark.extra_info.update(workload=workload, variant=variant, unit=unit, ref=workload,
                                mode=sizes.mode, self_timed=True, **info)
    argv = [str(build.binary), "run", cworkload]
    argv += [f"{key}={value}" for key, value in params.items()]
    if pinning.main is not None:
        argv.append(f"cpu={pinning.main}")
    if pinning.peer is not None:
        argv.append(f"peer_cpu={pinning.peer}")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=600)

    proc = benchmark.pedantic(run, rounds=1, iterations=1)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    benchmark.extra_info["units_per_round"] = result["units_per_round"]
    benchmark.extra_info["c_median_s"] = result["median_s"]
    benchmark.extra_info["c_rounds"] = result["rounds"]
    _record(benchmark, float(result["per_s"]))


def mean_of_last(values: Sequence[int], n: int) -> float:
    tail = list(values[-n:]) if n else list(values)
    return statistics.fmean(tail) if tail else 0.0
