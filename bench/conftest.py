"""Fixtures for the benchmarks: the three variants, the sizes of the run, the
C reference and the peer processes; plus the order in which a pass runs.

With ``--benchmark-disable`` every benchmark runs once on small sizes (the
"smoke" mode), which is how the test suite keeps them working.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from ._harness import (
    CREF,
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
                    help="rotate the order of the variants within each workload")
    group.addoption("--bench-peer", choices=["auto", "c", "python"], default="auto",
                    help="peer processes: the compiled C peer or bench/peer.py")
    group.addoption("--bench-pin", default=os.environ.get("FASTSOCK_BENCH_PIN"),
                    metavar="MAIN[,PEER]",
                    help="pin this process to CPU MAIN and the peers to CPU PEER")


def pytest_configure(config: pytest.Config) -> None:
    Pinning.parse(config.getoption("bench_pin")).apply_to_self()


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
        variant = CREF
        name = name[: -len("_cref")]
    else:
        variant = str(params.pop("variant", ""))
    key = (str(item.path), name, tuple(sorted((k, str(v)) for k, v in params.items())))
    return key, variant


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the variants of one workload back to back, in an order rotated by
    --bench-shift, so each variant takes each position across passes."""
    order = list(VARIANTS) + [CREF]
    shift = config.getoption("bench_shift") % len(order)
    order = order[shift:] + order[:shift]
    groups: dict[Any, list[tuple[str, pytest.Item]]] = {}
    for item in items:
        key, variant = _variant_of(item)
        groups.setdefault(key, []).append((variant, item))
    items[:] = [
        item
        for members in groups.values()
        for _, item in sorted(members, key=lambda m: order.index(m[0]) if m[0] in order else -1)
    ]


def pytest_collection_finish(session: pytest.Session) -> None:
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
    """The module under test: stdlib ``socket``, ``fastsock._socket_py`` or
    ``fastsock._socket_c``; the workload code is the same for all three."""
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
