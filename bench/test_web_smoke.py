"""Keeps ``python -m bench.web`` working: one short round against the demo
server and nginx (the full run is ``make bench-web``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_web_load_benchmark_runs(tmp_path: Path) -> None:
    for program in ("wrk", "nginx"):
        if shutil.which(program) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{program} is not installed (.ci/run installs it)")
            pytest.skip(f"{program} is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "bench.web", "--seconds", "1", "--rounds", "1",
         "--servers", "fastsock-c,fastsock-py,nginx-tuned,nginx-no-file-cache", "--results", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "summary.json").read_text())
    for workload in ("keep-alive", "pipelined", "large-file"):
        for server in ("fastsock-c", "fastsock-py", "nginx-tuned", "nginx-no-file-cache"):
            row = data["summary"][workload][server]
            assert row["rps"] > 0 and row["errors"] == 0, (workload, server, row)
            # CPU time comes in clock ticks (10 ms): a second of nginx on a
            # busy host can stay under one; a second of a Python server cannot
            least = 0 if server.startswith("nginx") else 1e-9
            assert row["cpu_us_per_request"] >= least, (workload, server, row)
    assert len(data["targets"]) == 4  # http.server is not in this run
    assert "**keep-alive**" in (tmp_path / "summary.md").read_text()
