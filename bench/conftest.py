"""Fixtures for the benchmarks: the three variants, the sizes of the run, the
C reference and the peer processes; plus the order in which a pass runs.

With ``--benchmark-disable`` every benchmark runs once on small sizes (the
"smoke" mode), which is how the test suite keeps them working.

Workloads with more variants than stdlib / pure / compiled parametrize
``impl`` (an :class:`Impl`) instead of using the ``variant`` fixture.

The benchmarks of each fastsock variant run in a worker process whose
environment picks that implementation, and those of the stdlib in a worker
of their own, so that every variant runs in a process alike
(bench/_workers.py); this process runs the C reference and decides the
order of all of them.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterator, Optional

import pytest
from pytest_benchmark.logger import PytestBenchmarkWarning

from . import _workers
from ._harness import (
    CREF,
    FASTSOCK_VARIANTS,
    NON_FASTSOCK_FAMILIES,
    VARIANTS,
    CBuild,
    Peers,
    Pinning,
    Sizes,
    Variant,
    build_cref,
    emit,
    sizes_for,
    udp_fill_count,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastsock-bench", "fastsock benchmarks")
    group.addoption("--bench-size", choices=["quick", "normal", "long"], default="normal",
                    help="how much work each benchmark does (ignored with --benchmark-disable)")
    group.addoption("--bench-bulk-mib", type=int, default=None,
                    help="MiB received per bulk case (all rounds together)")
    group.addoption("--bench-shift", type=int, default=0,
                    help="rotate the order of the variants within each workload "
                         "(python -m bench passes the pass index)")
    group.addoption("--bench-heavy-every", type=int, default=1, metavar="K",
                    help="run the benchmarks marked bench_heavy only when "
                         "--bench-shift is a multiple of K")
    group.addoption("--bench-peer", choices=["auto", "c", "python"], default="auto",
                    help="peer processes: the compiled C peer or bench/peer.py")
    group.addoption("--bench-pin", default=os.environ.get("FASTSOCK_BENCH_PIN"),
                    metavar="MAIN[,PEER]",
                    help="pin this process to CPU MAIN and the peers to CPU PEER")
    group.addoption("--bench-measured-only", action="store_true",
                    help="leave out the tests that record no benchmark (python -m bench: "
                         "the smoke test of bench.web belongs to the smoke run)")
    group.addoption(_workers.WORKER_OPTION, default=None, metavar="IMPLEMENTATION,FD",
                    help="(internal) run as the worker of one fastsock implementation, "
                         "taking orders on descriptor FD")


_IS_WORKER = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bench_heavy: a long workload that python -m bench runs in some passes only")
    # a selection whose benchmarks all run in workers (--only echo) leaves this
    # process none to save (its JSON is then the workers', _workers.py merges
    # them); pytest-benchmark says so at the end of the session, outside the
    # warning filters of the configuration, so the filter is the process's
    warnings.filterwarnings("ignore", message="Not saving anything",
                            category=PytestBenchmarkWarning)
    Pinning.parse(config.getoption("bench_pin")).apply_to_self()
    config.stash[_IS_WORKER] = _workers.configure(config, worker_of)


def _mode(config: pytest.Config) -> str:
    if config.getoption("benchmark_disable", False):
        return "smoke"
    return str(config.getoption("bench_size"))


# -- the order of a pass -------------------------------------------------------

def _variant_of(item: pytest.Item) -> tuple[Any, str]:
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec else {}
    name = getattr(item, "originalname", item.name)
    if name.endswith("_cref"):
        # a workload with several C variants parametrizes their ``impl``
        variant = params.pop("impl").label if "impl" in params else CREF
        name = name[: -len("_cref")]
    elif "impl" in params:
        variant = params.pop("impl").label
    else:
        variant = str(params.pop("variant", ""))
    key = (str(item.path), name, tuple(sorted((k, str(v)) for k, v in params.items())))
    return key, variant


def worker_of(item: pytest.Item) -> Optional[str]:
    """The worker that runs a benchmark: the fastsock implementation of a
    fastsock variant, "stdlib" for the stdlib (and asyncio, uvloop,
    aiofastnet) variants, None
    for what this process runs itself (the C reference, the smoke test of
    bench.web)."""
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec else {}
    family = str(params["impl"].family if "impl" in params else params.get("variant"))
    if family in FASTSOCK_VARIANTS:
        return FASTSOCK_VARIANTS[family]
    return _workers.STDLIB_WORKER if family in NON_FASTSOCK_FAMILIES else None


def _is_heavy(item: pytest.Item) -> bool:
    return item.get_closest_marker("bench_heavy") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the variants of one workload back to back, in an order rotated by
    --bench-shift, so each variant takes each position across passes.

    With --bench-heavy-every K the bench_heavy workloads run only when the
    shift is a multiple of K, and rotate by shift // K."""
    if config.stash[_IS_WORKER]:
        return  # the controller chooses what runs, and when
    shift = config.getoption("bench_shift")
    every = max(1, config.getoption("bench_heavy_every"))
    measured_only = config.getoption("bench_measured_only")

    def dropped(item: pytest.Item) -> bool:
        if measured_only and "benchmark" not in getattr(item, "fixturenames", ()):
            return True
        return bool(shift % every) and _is_heavy(item)

    if any(dropped(item) for item in items):
        config.hook.pytest_deselected(items=[item for item in items if dropped(item)])
        items[:] = [item for item in items if not dropped(item)]
    canonical = list(VARIANTS) + [CREF]
    groups: dict[Any, list[tuple[str, pytest.Item]]] = {}
    for item in items:
        key, variant = _variant_of(item)
        groups.setdefault(key, []).append((variant, item))
    items[:] = []
    for members in groups.values():
        # stdlib / pure / compiled / C; a multi-variant workload as collected
        if all(variant in canonical for variant, _ in members):
            members.sort(key=lambda m: canonical.index(m[0]))
        turn = (shift // every if _is_heavy(members[0][1]) else shift) % len(members)
        items += [item for _, item in members[turn:] + members[:turn]]


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.stash[_IS_WORKER]:
        return
    emit({"event": "collected", "count": len(session.items)})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        emit({"event": "skip", "nodeid": report.nodeid, "reason": reason})
    elif report.failed:
        emit({"event": "fail", "nodeid": report.nodeid, "when": report.when})


# -- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="session")
def sizes(pytestconfig: pytest.Config) -> Sizes:
    return sizes_for(_mode(pytestconfig), pytestconfig.getoption("bench_bulk_mib"))


@pytest.fixture(scope="session")
def pinning(pytestconfig: pytest.Config) -> Pinning:
    return Pinning.parse(pytestconfig.getoption("bench_pin"))


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> Variant:
    """The module under test: stdlib ``socket``, or ``fastsock`` in a worker
    whose environment picked the pure or the compiled implementation; the
    workload code is the same for all three."""
    try:
        return Variant(request.param)
    except ImportError as exc:
        pytest.skip(f"{request.param} not importable: {exc}")


@pytest.fixture(scope="session")
def cbuild() -> CBuild:
    """The C reference, compiled into bench/.build on first use."""
    return build_cref()


@pytest.fixture(scope="session")
def peers(pytestconfig: pytest.Config, cbuild: CBuild, pinning: Pinning) -> Peers:
    choice = pytestconfig.getoption("bench_peer")
    if choice == "c" and cbuild.binary is None:
        pytest.fail(f"--bench-peer=c but {cbuild.reason}")
    return Peers(cbuild.binary if choice != "python" else None, pinning)


@pytest.fixture(scope="session")
def udp_fill(sizes: Sizes) -> Iterator[Any]:
    """size -> how many datagrams a drain round queues (measured once per size)."""
    yield lambda size: udp_fill_count(size, sizes.udp_fill)
