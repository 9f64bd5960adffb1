"""python -m bench.ft: fastsock on free-threaded CPython against the GIL build.

Two workloads, each variant a fresh process of the interpreter it measures
(bench/_ft_worker.py), the variants interleaved: every round runs each once,
in an order rotated from round to round, and the table gives the median over
the rounds with the spread (min–max as a share of the median).

- Thread-per-connection echo: 1 KiB requests over 32 TCP connections from
  the C load generator (``ref peer load``), each connection served by a
  thread of blocking sockets; fastsock and the stdlib ``socket`` module on
  free-threaded CPython (the GIL off), and both on each GIL build given.
  Requests per second and the server's CPU µs per request.
- Framing in threads: 1 and 2 threads, each sending 64-byte messages to
  itself over a connection of its own and receiving them with
  ``recv_msgs``: messages per second, the speedup from 1 to 2 threads, and
  the single-thread rate against the GIL builds' (the target is against
  the GIL build of the same CPython version: 3.13 makes and frees small
  objects slower than 3.11 whether or not it has a GIL).
- The demo web server: ``--threads 2`` on free-threaded CPython against
  ``--workers 2`` processes (on it and on each GIL build), and ``--threads
  2`` on a GIL build; wrk, one thread and 50 connections, on the 691-byte page
  of ``make bench-web``, keep-alive and 16 requests pipelined: requests per
  second, the server's CPU µs per request, and its memory (proportional set
  size, so pages the worker processes share count once).

It writes summary.md and summary.json to the results folder (default
results/ft).  ``make bench-ft`` builds the free-threaded interpreter and its
venv first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from . import web
from ._harness import build_cref

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_ft_worker.py"
# targets of the free-threading work, checked in the summary
SCALING_TARGET = 1.8
SINGLE_THREAD_TARGET = 0.9


def run_worker(python: str, args: list[str], gil_off: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("FASTSOCK_NO_EXTENSIONS", None)
    if gil_off:
        env["PYTHON_GIL"] = "0"
    proc = subprocess.run([python, str(WORKER), *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO)
    if proc.returncode:
        raise RuntimeError(f"{python} {' '.join(args)} failed:\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["implementation"] != "cython":
        raise RuntimeError(f"{python}: fastsock's extension did not load")
    if gil_off and result["gil"]:
        raise RuntimeError(f"{python}: the GIL was on")
    return result


def tree_pss_kib(root: int) -> int:
    """Proportional set size of ``root`` and its children, in KiB: a page that
    forked workers share counts once over them (RSS would count it in each)."""
    total = 0
    for pid in [root] + [int(p) for p in _children(root)]:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def _children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return children.read().split()
    except OSError:
        return []


def measure_web(interpreters: dict[str, tuple[str, bool]], rounds: int,
                seconds: float) -> Optional[dict[str, Any]]:
    """The web server's threaded mode against worker processes, interleaved."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed: the web server rows are left out", file=sys.stderr)
        return None
    work = Path(tempfile.mkdtemp(prefix="fs-bench-ft-web-"))
    try:
        site = work / "site"
        site.mkdir()
        (site / web.SMALL).write_text(web.SMALL_PAGE)
        script = work / "bench.lua"
        script.write_text(web.LUA)
        workloads = [web.Workload("keep-alive", f"/{web.SMALL}", 50),
                     web.Workload("pipelined", f"/{web.SMALL}", 50, 16)]
        servers = []
        for name, (python, gil_off) in interpreters.items():
            modes = (["--threads", "--workers"] if gil_off or name == min(interpreters)
                     else ["--workers"])  # threads on one GIL build show what they cost there
            for mode in modes:
                env = {"PYTHON_GIL": "0"} if gil_off else {}
                servers.append(web.Server(
                    f"{mode} 2 {name}",
                    [python, "-m", "fastsock.webserver", "--port", "0", "--quiet",
                     "--cache-valid", "60", "--directory", str(site), mode, "2"],
                    dict(env, FASTSOCK_NO_EXTENSIONS="0")))
        results: dict[str, dict[str, list[dict[str, Any]]]] = {
            w.name: {s.name: [] for s in servers} for w in workloads}
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for server in order:
                server.port = 0  # a fresh process picks a port of its own
                server.start()
                try:
                    for workload in workloads:
                        web.run_wrk(wrk, script, server.port, workload, 1, 1)  # warm-up
                        row = web.measure(server, wrk, script, workload, seconds, 1)
                        assert server.proc is not None
                        row["pss_mib"] = tree_pss_kib(server.proc.pid) / 1024
                        results[workload.name][server.name].append(row)
                        print(f"round {r + 1}/{rounds} web {workload.name} {server.name}: "
                              f"{row['rps']:,.0f} req/s, {row['cpu_us_per_request']:.1f} µs CPU, "
                              f"{row['pss_mib']:.1f} MiB", flush=True)
                finally:
                    server.stop()
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def spread(values: list[float]) -> float:
    """max - min as a share of the median."""
    return (max(values) - min(values)) / statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ft", required=True, help="the free-threaded interpreter")
    parser.add_argument("--gil", action="append", default=[],
                        help="a GIL build to compare with (repeatable; default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--echo-requests", type=int, default=20000)
    parser.add_argument("--framing-messages", type=int, default=2_000_000,
                        help="messages per thread")
    parser.add_argument("--web-rounds", type=int, default=3,
                        help="rounds of the web server rows (0: none)")
    parser.add_argument("--web-seconds", type=float, default=5)
    parser.add_argument("--results", default=str(REPO / "results" / "ft"))
    args = parser.parse_args(argv)
    cref = build_cref()
    if cref.binary is None:
        raise SystemExit(f"bench.ft needs the C load generator: {cref.reason}")
    interpreters = {"3.13t": (args.ft, True)}
    for python in args.gil or [sys.executable]:
        minor = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, check=True).stdout.strip()
        interpreters[minor] = (python, False)
    gil_builds = [name for name in interpreters if name != "3.13t"]
    # the single-thread target compares with the same CPython version
    same_version = "3.13" if "3.13" in gil_builds else gil_builds[0]
    variants: list[tuple[str, str, list[str]]] = []
    for name in interpreters:
        for lib in ("fastsock", "stdlib"):
            variants.append(("echo", f"{lib} {name}",
                             ["echo", lib, str(cref.binary), str(args.echo_requests), "3"]))
        for threads in (1, 2):
            variants.append(("framing", f"{threads} thread{'s' * (threads > 1)} {name}",
                             ["framing", str(threads), str(args.framing_messages)]))
    results: dict[str, list[dict[str, Any]]] = {label: [] for _, label, _ in variants}
    versions: dict[str, str] = {}
    for r in range(args.rounds):
        shift = r % len(variants)
        for workload, label, worker_args in variants[shift:] + variants[:shift]:
            name = label.rsplit(" ", 1)[1]
            python, gil_off = interpreters[name]
            result = run_worker(python, worker_args, gil_off)
            versions[name] = result["python"]
            results[label].append(result)
            print(f"round {r + 1}/{args.rounds} {workload} {label}: "
                  f"{result['rate']:,.0f} {result['unit']}, {result['cpu_us']:.3f} µs CPU",
                  flush=True)

    web_results = measure_web(interpreters, args.web_rounds, args.web_seconds) \
        if args.web_rounds > 0 else None

    def med(label: str, key: str = "rate") -> float:
        return statistics.median(x[key] for x in results[label])

    rows = []
    for workload, label, _ in variants:
        rates = [x["rate"] for x in results[label]]
        rows.append({"workload": workload, "variant": label, "rate": med(label),
                     "unit": results[label][0]["unit"], "cpu_us": med(label, "cpu_us"),
                     "spread": spread(rates)})
    ratios = {
        "echo: fastsock / stdlib on 3.13t (req/s)":
            med("fastsock 3.13t") / med("stdlib 3.13t"),
        "echo: fastsock / stdlib on 3.13t (CPU per request)":
            med("fastsock 3.13t", "cpu_us") / med("stdlib 3.13t", "cpu_us"),
    }
    for name in gil_builds:
        ratios[f"echo: fastsock 3.13t / fastsock {name} (req/s)"] = (
            med("fastsock 3.13t") / med(f"fastsock {name}"))
        ratios[f"echo: fastsock 3.13t / fastsock {name} (CPU per request)"] = (
            med("fastsock 3.13t", "cpu_us") / med(f"fastsock {name}", "cpu_us"))
    for name in interpreters:
        ratios[f"framing: 2 threads / 1 thread on {name}"] = (
            med(f"2 threads {name}") / med(f"1 thread {name}"))
    for name in gil_builds:
        ratios[f"framing: 1 thread, 3.13t / {name} (msgs/s)"] = (
            med("1 thread 3.13t") / med(f"1 thread {name}"))
    targets = {
        "framing: 2 threads / 1 thread on 3.13t": SCALING_TARGET,
        f"framing: 1 thread, 3.13t / {same_version} (msgs/s)": SINGLE_THREAD_TARGET,
    }
    builds = ", ".join(f"{name} = CPython {versions.get(name)}" for name in gil_builds)
    lines = [f"# fastsock without the GIL ({os.cpu_count()} CPUs; 3.13t = CPython "
             f"{versions.get('3.13t')} free-threaded; GIL builds: {builds})", "",
             f"Medians of {args.rounds} interleaved rounds; spread = (max - min) / median.", "",
             "| workload | variant | rate | CPU µs/unit | spread |", "|---|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['workload']} | {row['variant']} | {row['rate']:,.0f} {row['unit']} "
                     f"| {row['cpu_us']:.3f} | {row['spread']:.0%} |")
    lines += ["", "| ratio | value | target |", "|---|---:|---|"]
    for name, value in ratios.items():
        target = targets.get(name)
        verdict = "" if target is None else (f"≥ {target} " + ("met" if value >= target
                                                                else "**not met**"))
        lines.append(f"| {name} | {value:.2f}× | {verdict} |")
    if web_results:
        lines += ["", "The demo web server (wrk -t1 -c50, the 691-byte page; "
                  f"medians of {args.web_rounds} interleaved rounds of {args.web_seconds:.0f} s):",
                  "", "| workload | server | requests/s | CPU µs/request | memory (PSS) | spread |",
                  "|---|---|---:|---:|---:|---:|"]
        for workload, per_server in web_results.items():
            for name, runs in per_server.items():
                rps = [x["rps"] for x in runs]
                lines.append(
                    f"| {workload} | {name} | {statistics.median(rps):,.0f} | "
                    f"{statistics.median(x['cpu_us_per_request'] for x in runs):.1f} | "
                    f"{statistics.median(x['pss_mib'] for x in runs):.1f} MiB | "
                    f"{spread(rps):.0%} |")
            threads = per_server.get("--threads 2 3.13t")
            workers = per_server.get("--workers 2 3.13t")
            if threads and workers:
                ratio = (statistics.median(x["rps"] for x in threads)
                         / statistics.median(x["rps"] for x in workers))
                ratios[f"web {workload}: --threads 2 / --workers 2 on 3.13t (req/s)"] = ratio
                lines.append(f"| {workload} | threads ÷ processes on 3.13t | {ratio:.2f}× | | | |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(
        {"rows": rows, "ratios": ratios, "targets": targets, "rounds": results,
         "versions": versions, "web": web_results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
