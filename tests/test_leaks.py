"""Leaks: descriptors and memory stay flat over many calls.

Each workload (tests/leak_workloads.py) runs in a fresh interpreter so that
what it measures is its own.  After a warm-up (a tenth of the iterations)
it takes a checkpoint; at the end:

- the number of open descriptors is back where it started,
- the resident set size grew by less than RSS_BOUND,
- the memory traced by tracemalloc grew by less than TRACED_BOUND.

The default suite runs every workload with small counts; the full counts
(100,000 connection cycles per family, 1,000,000 send and 1,000,000 receive
calls, 20,000 rounds of each error path) are marked ``leak_full`` and run
with ``make leak-test``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from types import ModuleType
from typing import Any

import pytest
from conftest import implementation_module_name

RSS_BOUND = 2 * 1024 * 1024
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
TRACED_BOUND = 256 * 1024

_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "leak_workloads.py")
# workload: (iterations in the default suite, iterations in the full run)
# "calls" makes 8 sends and 8 receives per iteration; "timeouts" spends a
# few milliseconds per iteration waiting for its deadlines, "aio_streams"
# (an event loop's round trips and a 1 ms timeout) about as much.
COUNTS = {
    "cycles_tcp": (5_000, 100_000),
    "cycles_unix": (5_000, 100_000),
    "calls": (10_000, 125_000),
    "refused": (1_000, 20_000),
    "timeouts": (200, 5_000),
    "bad_arguments": (1_000, 20_000),
    "bad_descriptor": (1_000, 20_000),
    "eof": (1_000, 20_000),
    "too_large": (1_000, 20_000),
    "truncated": (1_000, 20_000),
    "aio_streams": (300, 5_000),
}


def run_workload(module: str, workload: str, count: int, timeout: float = 900) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, _SCRIPT, module, workload, str(count)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    result["stderr"] = proc.stderr
    return result


def summary(r: dict[str, Any]) -> str:
    return (f"{r['module']} {r['workload']} x{r['count']}: "
            f"fds {r['fds_before']}->{r['fds_after']}, "
            f"RSS {r['rss_end'] - r['rss_checkpoint']:+d} B, "
            f"traced {r['traced_end'] - r['traced_checkpoint']:+d} B, "
            f"{r['seconds']:.1f} s")


def check(impl: ModuleType, workload: str, count: int) -> None:
    r = run_workload(implementation_module_name(impl.IMPLEMENTATION), workload, count)
    print(summary(r))
    assert r["stderr"] == "", r["stderr"]  # no warning, no unraisable exception
    assert r["fds_after"] == r["fds_before"], summary(r)
    # On free-threaded CPython 3.13 the resident set of the EOF workload
    # grows by a few KB per round outside tracemalloc's view, whichever
    # twin runs it (and with an extension built before fastsock declared
    # itself thread-safe); what it allocates is all freed (the traced bound
    # below holds), so only the traced bound checks it there.
    rss_unreliable = FREE_THREADED and workload == "eof"
    if not r["sanitized"] and not rss_unreliable:
        # under ASan the quarantine of freed memory grows the resident set;
        # LeakSanitizer checks the workload's process at exit instead
        assert r["rss_end"] - r["rss_checkpoint"] < RSS_BOUND, summary(r)
    assert r["traced_end"] - r["traced_checkpoint"] < TRACED_BOUND, summary(r)


@pytest.mark.parametrize("workload", list(COUNTS))
def test_no_leak(impl: ModuleType, workload: str) -> None:
    check(impl, workload, COUNTS[workload][0])


@pytest.mark.leak_full
@pytest.mark.parametrize("workload", list(COUNTS))
def test_no_leak_full_count(impl: ModuleType, workload: str) -> None:
    check(impl, workload, COUNTS[workload][1])


# -- controls: the measurement does catch leaks ----------------------------------

def test_control_memory_leak_is_caught() -> None:
    """1 KiB kept per iteration, 16,000 iterations: both memory checks fire.
    (With 4,000, about 3.7 MB kept after the checkpoint, free-threaded
    CPython's allocator grew the resident set by only 2.04 MB, under the
    2 MiB bound: the control must leak well past it.)"""
    r = run_workload(implementation_module_name("python"), "control_memory", 16_000)
    assert r["traced_end"] - r["traced_checkpoint"] > TRACED_BOUND, summary(r)
    assert r["rss_end"] - r["rss_checkpoint"] > RSS_BOUND, summary(r)


def test_control_descriptor_leak_is_caught() -> None:
    r = run_workload(implementation_module_name("python"), "control_descriptor", 10)
    assert r["fds_after"] == r["fds_before"] + 1, summary(r)
