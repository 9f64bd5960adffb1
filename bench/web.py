"""python -m bench.web: the demo web server under load from wrk.

Seven servers serve the same small file and a 1 MiB file (--no-large leaves it
out) on loopback: fastsock.webserver on the compiled and on the pure
implementation (tuned as the anchor nginx: ``--cache-valid 60``), the compiled
one with its defaults (a stat per request), Python's http.server (HTTP/1.1 keep-alive, Nagle off), a
minimal asyncio + httptools server on uvloop, and nginx with one worker twice:
tuned as users tune it for static files (``open_file_cache``; the anchor of
the ratios) and without the file cache.  Each workload runs
against every server in turn, the order rotating from round to round, so the
machine's noise falls on all of them alike.

Per run: requests/s, latency p50/p99 over the latencies wrk measured (per
request; with --pipeline, per batch: until the last response of the batch
arrived; wrk's coordinated-omission samples, which assume one request in
flight per connection, are taken out again), and the server's CPU time per
request from /proc (user + system, all of its processes).  The summary takes the median
over rounds and reports ratios to the tuned nginx and to http.server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .web_nginx import nginx_command

REPO = Path(__file__).resolve().parent.parent
SMALL = "index.html"
LARGE = "large.bin"

LUA = """
local pipeline = tonumber(os.getenv("WRK_PIPELINE") or "1")
local connections = tonumber(os.getenv("WRK_CONNECTIONS") or "1")
local path = os.getenv("WRK_PATH") or "/"
local batch
init = function(args)
  local parts = {}
  for i = 1, pipeline do parts[i] = wrk.format("GET", path) end
  batch = table.concat(parts)
end
request = function() return batch end

-- Before done() runs, wrk adds coordinated-omission samples: for every
-- latency n >= 2E it adds samples at n-E, n-2E, ... (> E), where
-- E = duration / (requests / connections) assumes one request in flight per
-- connection.  Under pipelining E is too small by the pipeline depth, the
-- invented samples swamp the measured ones and wrk's own p99 comes out as 0.
-- Undo it: walking down from the largest bucket, the samples added to bucket
-- m are exactly the measured ones at m+E, m+2E, ..., summed per residue mod
-- E.  The histogram is read through LuaJIT's FFI (wrk's Lua API walks it in
-- quadratic time); the layout is that of wrk 4's stats.h.
local ffi_ok, ffi = pcall(require, "ffi")
if ffi_ok then
  ffi_ok = pcall(ffi.cdef, "typedef struct { uint64_t count, limit, min, max; "
                 .. "uint64_t data[?]; } wrk_stats;")
end

local function measured_percentiles(latency, duration, requests)
  if not ffi_ok then return latency:percentile(50), latency:percentile(99), -1, 0 end
  local stats = ffi.cast("wrk_stats **", latency)[0]
  local min, max = tonumber(stats.min), tonumber(stats.max)
  if max < min then return 0, 0, 0, 0 end
  local per_connection = math.floor(requests / connections)
  local expected = per_connection > 0 and math.floor(duration / per_connection) or 0
  local counts, added, total, inconsistent = {}, {}, 0, 0
  for m = max, min, -1 do
    local c = tonumber(stats.data[m])
    if c > 0 then
      local r = expected > 0 and m % expected or 0
      if expected > 0 and m > expected then c = c - (added[r] or 0) end
      if c < 0 then inconsistent = inconsistent + 1; c = 0 end
      if c > 0 then
        counts[m] = c
        total = total + c
        if expected > 0 then added[r] = (added[r] or 0) + c end
      end
    end
  end
  local function percentile(p)
    local rank, seen = math.max(1, math.ceil(p / 100 * total)), 0
    for m = min, max do
      seen = seen + (counts[m] or 0)
      if seen >= rank then return m end
    end
    return max
  end
  return percentile(50), percentile(99), total, inconsistent
end

done = function(summary, latency, requests)
  local errors = summary.errors
  local p50, p99, samples, negative = measured_percentiles(latency, summary.duration,
                                                          summary.requests)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"samples": %d, "inconsistent_buckets": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, p50, p99, samples, negative,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
"""

SMALL_PAGE = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fastsock</title>"
              "</head>\n<body>\n<h1>Served by fastsock</h1>\n"
              + "<p>A small page of the size most static pages have.</p>\n" * 10
              + "</body></html>\n")


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: Optional[subprocess.Popen[bytes]] = None
    port: int = 0
    workdir: Optional[Path] = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, **self.env), start_new_session=True)
        if self.port:
            _wait_for_port(self.port, self.proc, self.name)
            return
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        found = re.search(r"port (\d+)", line)
        if not found:
            self.stop()
            raise SystemExit(f"{self.name} did not start: {line!r}")
        self.port = int(found.group(1))

    def cpu_seconds(self) -> float:
        """User + system time of the server and all its descendants so far."""
        assert self.proc is not None
        return _tree_cpu(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start")
            time.sleep(0.05)


_TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants (threads included)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    total = 0.0
    for pid, seconds in times.items():
        walk = pid
        while walk in parents and walk != root:
            walk = parents[walk]
        if walk == root:
            total += seconds
    return total


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


ANCHOR = "nginx-tuned"


def _nginx(site: Path) -> list[Server]:
    """nginx with one worker, tuned (the anchor) and without its file cache."""
    nginx = shutil.which("nginx")
    if nginx is None:
        return []
    servers = []
    for name, file_cache in ((ANCHOR, True), ("nginx-no-file-cache", False)):
        work = Path(tempfile.mkdtemp(prefix="fs-bench-nginx-"))
        port = _free_port()
        servers.append(Server(name, nginx_command(nginx, work, port, site,
                                                  open_file_cache=file_cache),
                              port=port, workdir=work))
    return servers


def make_servers(site: Path, which: Optional[set[str]]) -> list[Server]:
    py = sys.executable
    webserver = [py, "-m", "fastsock.webserver", "--port", "0", "--quiet", "--directory", str(site)]
    # tuned as the anchor nginx is: a cached file served for up to 60 s without a
    # stat (open_file_cache_valid 60s); -default looks at the file on every request
    tuned = ["--cache-valid", "60"]
    servers = [
        Server("fastsock-c", webserver + tuned, {"FASTSOCK_NO_EXTENSIONS": "0"}),
        Server("fastsock-py", webserver + tuned, {"FASTSOCK_NO_EXTENSIONS": "1"}),
        Server("fastsock-c-default", webserver, {"FASTSOCK_NO_EXTENSIONS": "0"}),
        Server("http.server", [py, "-m", "bench.web_peers", "stdlib", "--directory", str(site)]),
        Server("uvloop-httptools", [py, "-m", "bench.web_peers", "uvloop",
                                    "--directory", str(site)]),
    ]
    nginx = _nginx(site)
    if nginx:
        servers.extend(nginx)
    else:
        print("nginx is not installed: measuring without it", file=sys.stderr)
    if which:
        servers = [s for s in servers if s.name in which]
    return servers


@dataclass
class Workload:
    name: str
    path: str
    connections: int
    pipeline: int = 1


def run_wrk(wrk: str, script: Path, port: int, workload: Workload, seconds: float,
            threads: int) -> dict[str, Any]:
    env = dict(os.environ, WRK_PIPELINE=str(workload.pipeline), WRK_PATH=workload.path,
               WRK_CONNECTIONS=str(workload.connections))
    result = subprocess.run(
        [wrk, f"-t{threads}", f"-c{workload.connections}", f"-d{max(seconds, 1):.0f}s",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{workload.path}"],
        capture_output=True, text=True, env=env, timeout=seconds + 60)
    found = re.search(r"^WRK_JSON (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not found:
        raise SystemExit(f"wrk failed: {result.stdout}\n{result.stderr}")
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def measure(server: Server, wrk: str, script: Path, workload: Workload, seconds: float,
            threads: int) -> dict[str, Any]:
    before = server.cpu_seconds()
    data = run_wrk(wrk, script, server.port, workload, seconds, threads)
    cpu = server.cpu_seconds() - before
    requests = data["requests"]
    if data["samples"] < 0:
        print("  (wrk without LuaJIT's FFI: latencies include wrk's coordinated-omission "
              "samples)", file=sys.stderr)
    elif data["inconsistent_buckets"]:
        print(f"  (warning: {data['inconsistent_buckets']} latency buckets did not match "
              "wrk's coordinated-omission model)", file=sys.stderr)
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": requests,
        "rps": requests / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "latency_samples": data["samples"],
        "cpu_us_per_request": cpu * 1e6 / requests if requests else float("nan"),
        "errors": errors,
    }


def summarise(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for workload, per_server in results.items():
        rows = {}
        for server, runs in per_server.items():
            rows[server] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "rps_min": min(r["rps"] for r in runs),
                "rps_max": max(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "rounds": len(runs),
            }
        summary[workload] = rows
    return summary


TARGETS = [
    # (workload, what, threshold, description); nginx is the tuned one
    ("keep-alive", "rps_vs_nginx", 1.0, "requests/s >= 1x nginx-tuned"),
    ("keep-alive", "cpu_vs_nginx", 1.0, "CPU per request <= 1x nginx-tuned's"),
    ("keep-alive", "rps_vs_stdlib", 10.0, "requests/s >= 10x http.server"),
    ("pipelined", "rps_vs_nginx", 1.5, "pipelined requests/s >= 1.5x nginx-tuned"),
    ("large-file", "rps_vs_nginx", 1.0, "1 MiB file over 10 connections: requests/s >= 1x nginx-tuned"),
]


def table(summary: dict[str, Any]) -> str:
    lines = []
    for workload, rows in summary.items():
        nginx = rows.get(ANCHOR)
        stdlib = rows.get("http.server")
        lines.append(f"\n**{workload}**\n")
        lines.append("| server | requests/s | range | p50 ms | p99 ms | CPU µs/request "
                     "| ÷ nginx-tuned (req/s) | ÷ nginx-tuned (CPU/req) | ÷ http.server (req/s) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, row in rows.items():
            vs_nginx = f"{row['rps'] / nginx['rps']:.2f}×" if nginx else "–"
            cpu_nginx = (f"{row['cpu_us_per_request'] / nginx['cpu_us_per_request']:.2f}×"
                         if nginx else "–")
            vs_stdlib = f"{row['rps'] / stdlib['rps']:.1f}×" if stdlib else "–"
            errors = f" ({row['errors']} errors)" if row["errors"] else ""
            lines.append(
                f"| {name}{errors} | {row['rps']:,.0f} | {row['rps_min']:,.0f}–"
                f"{row['rps_max']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{row['cpu_us_per_request']:.1f} | {vs_nginx} | {cpu_nginx} | {vs_stdlib} |")
    return "\n".join(lines) + "\n"


def targets(summary: dict[str, Any], subject: str = "fastsock-c") -> list[tuple[str, float, bool]]:
    checks = []
    for workload, what, threshold, description in TARGETS:
        rows = summary.get(workload, {})
        mine, nginx, stdlib = rows.get(subject), rows.get(ANCHOR), rows.get("http.server")
        if mine is None:
            continue
        if what == "rps_vs_nginx" and nginx:
            value = mine["rps"] / nginx["rps"]
            checks.append((description, value, value >= threshold))
        elif what == "cpu_vs_nginx" and nginx:
            value = mine["cpu_us_per_request"] / nginx["cpu_us_per_request"]
            checks.append((description, value, value <= threshold))
        elif what == "rps_vs_stdlib" and stdlib:
            value = mine["rps"] / stdlib["rps"]
            checks.append((description, value, value >= threshold))
    return checks


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per run (default: 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: 3)")
    parser.add_argument("--quick", action="store_true", help="2-second runs, 1 round")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--no-large", dest="large", action="store_false",
                        help="leave out the 1 MiB file over 10 connections (the sendfile path)")
    parser.add_argument("--servers", help="comma-separated subset of the servers")
    parser.add_argument("--threads", type=int, default=1,
                        help="wrk threads (default 1: the other core is the server's)")
    parser.add_argument("--results", default="results/web", metavar="DIR")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 2, 1
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    results_dir = Path(args.results)
    if not results_dir.is_absolute():
        results_dir = REPO / results_dir
    results_dir.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="fs-bench-web-"))
    site = work / "site"
    site.mkdir()
    (site / SMALL).write_text(SMALL_PAGE)
    (site / LARGE).write_bytes(os.urandom(1 << 20))
    script = work / "bench.lua"
    script.write_text(LUA)
    workloads = [
        Workload("keep-alive", f"/{SMALL}", args.connections),
        Workload("pipelined", f"/{SMALL}", args.connections, args.pipeline),
    ]
    if args.large:
        workloads.append(Workload("large-file", f"/{LARGE}", 10))
    servers = make_servers(site, set(args.servers.split(",")) if args.servers else None)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        w.name: {s.name: [] for s in servers} for w in workloads}
    try:
        for server in servers:
            server.start()
        print(f"wrk: {args.connections} connections, {args.seconds:.0f} s a run, "
              f"{args.rounds} round(s); page of {len(SMALL_PAGE)} bytes", flush=True)
        for server in servers:  # warm-up: caches, JITs of the kernel, ...
            for workload in workloads:
                run_wrk(wrk, script, server.port, workload, 1, args.threads)
        for round_number in range(args.rounds):
            order = servers[round_number % len(servers):] + servers[:round_number % len(servers)]
            for workload in workloads:
                for server in order:
                    row = measure(server, wrk, script, workload, args.seconds, args.threads)
                    results[workload.name][server.name].append(row)
                    print(f"round {round_number + 1} {workload.name:11} {server.name:17} "
                          f"{row['rps']:>10,.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
                          f"p99 {row['p99_ms']:6.2f} ms  {row['cpu_us_per_request']:6.1f} "
                          f"CPU µs/req", flush=True)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    summary = summarise(results)
    text = table(summary)
    checks = targets(summary)
    text += "\n**Targets** (fastsock-c):\n\n" + "\n".join(
        f"- {'met' if ok else 'NOT met'}: {description} (measured {value:.2f}×)"
        for description, value, ok in checks) + "\n"
    print(text)
    (results_dir / "summary.md").write_text(text)
    (results_dir / "summary.json").write_text(json.dumps(
        {"settings": {"seconds": args.seconds, "rounds": args.rounds,
                      "connections": args.connections, "pipeline": args.pipeline,
                      "wrk_threads": args.threads, "page_bytes": len(SMALL_PAGE)},
         "runs": results, "summary": summary,
         "targets": [{"target": d, "measured": v, "met": ok} for d, v, ok in checks]},
        indent=2))
    print(f"written to {results_dir}/summary.md and summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
