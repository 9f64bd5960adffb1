"""Keeps ``python -m bench.netlink`` working: a few hundred routes, one dump
per contender (the full run is ``make bench-netlink``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_netlink_benchmark_runs(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the benchmark makes a network namespace: it needs root")
    contenders = ["fastsock-c", "fastsock-py", "fastsock-c+attrs", "stdlib"]
    if importlib.util.find_spec("pyroute2") is not None:
        contenders.append("pyroute2")
    result = subprocess.run(
        [sys.executable, "-m", "bench.netlink", "--routes", "300", "--rounds", "1",
         "--seconds", "0", "--contenders", ",".join(contenders), "--results", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = json.loads((tmp_path / "summary.json").read_text())["runs"]
    counts = {name: runs[name]["routes"] for name in contenders}
    assert len(set(counts.values())) == 1 and counts["stdlib"] >= 300, counts
    assert all(runs[name]["peak_rss_kib"] > 0 for name in contenders)
