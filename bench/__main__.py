"""python -m bench: run the benchmark suite in several passes and summarise.

Each pass is one pytest run over every variant of every workload (the order
of the variants rotates from pass to pass), writing pytest-benchmark JSON to
the results folder; the stdlib variants and each fastsock implementation
run in worker processes of their own, a fastsock one with the environment
that picks its implementation (bench/_workers.py).  The summary takes, per workload and variant, the median
throughput across passes and its spread, and writes a table (printed, and in
summary.md), summary.json and bench.png.

The framing workloads (2,000,000 messages a round, some variants taking
seconds) run in every K-th pass only (K per mode, or --heavy-every), unless
--only narrows the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Optional

from . import report
from ._harness import (
    FASTSOCK_VARIANTS,
    PROGRESS_FD_ENV,
    build_cref,
    live_implementation,
    sizes_for,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = "results"  # relative to the repository root
PASSES = {"quick": 4, "normal": 4, "long": 20}


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark fastsock (pure and compiled) against the stdlib socket "
                    "module and a C reference, in interleaved passes.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="mode", const="quick",
                      help="a rough run in about a minute")
    size.add_argument("--long", action="store_const", dest="mode", const="long",
                      help="more passes and bigger sizes, for a more precise run")
    parser.set_defaults(mode="normal")
    parser.add_argument("--passes", type=int, metavar="N",
                        help="number of passes (default: quick 4, normal 4, long 20)")
    parser.add_argument("--only", metavar="PATTERN",
                        help="run only the benchmarks matching this pytest -k expression")
    parser.add_argument("--pin", type=int, metavar="CPU",
                        help="pin the benchmark process to CPU and the peer processes "
                             "to another CPU")
    parser.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR",
                        help="where the JSON, summary and chart go (relative to the "
                             "repository root unless absolute; default: results)")
    parser.add_argument("--bulk-mib", type=int, metavar="N",
                        help="MiB received per bulk case and pass "
                             "(default: quick 32, normal 256, long 1024)")
    parser.add_argument("--peer", choices=["auto", "c", "python"], default="auto",
                        help="peer processes: compiled C (auto when a compiler exists) "
                             "or bench/peer.py")
    parser.add_argument("--heavy-every", type=int, metavar="K",
                        help="run the framing workloads in every K-th pass only "
                             "(default: quick 2, normal 3, long 4; 1 with --only)")
    args = parser.parse_args(argv)
    if args.passes is not None and args.passes < 1:
        parser.error("--passes must be at least 1")
    if args.bulk_mib is not None and args.bulk_mib < 1:
        parser.error("--bulk-mib must be at least 1")
    if args.heavy_every is not None and args.heavy_every < 1:
        parser.error("--heavy-every must be at least 1")
    return args


def display_path(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def choose_pinning(cpu: Optional[int]) -> Optional[str]:
    if cpu is None:
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if cpu not in allowed:
        sys.exit(f"--pin {cpu}: this process may only run on CPUs {allowed}")
    others = [c for c in allowed if c != cpu]
    if not others:
        print(f"note: only CPU {cpu} is usable; the peers share it", flush=True)
        return f"{cpu},{cpu}"
    return f"{cpu},{others[0]}"


class Progress:
    """Prints each workload's results as its group of variants finishes, and a
    transient status line on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.total = 0
        self.done = 0
        self.skips: list[str] = []
        self.failures: list[str] = []
        self.group: Optional[str] = None
        self.group_results: list[str] = []
        self.group_unit = ""
        self.tty = sys.stdout.isatty()

    def _status(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r\033[K" + text)
            sys.stdout.flush()

    def _print(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r\033[K")
        print(text, flush=True)

    def flush_group(self) -> None:
        if self.group is not None and self.group_results:
            self._print(f"  {self.label} [{self.done:>3}/{self.total}] {self.group}: "
                        + ", ".join(self.group_results) + f" {self.group_unit}")
        self.group = None
        self.group_results = []

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "collected":
            self.total = int(event["count"])
            self._status(f"  {self.label} [  0/{self.total}] starting")
            return
        if kind == "result":
            if event["workload"] != self.group:
                self.flush_group()
                self.group = event["workload"]
            self.done += 1
            value = event.get("throughput")
            unit = event.get("unit", "")
            shown = report.fmt_value(value, unit) if value is not None else "?"
            self.group_results.append(f"{event['variant']} {shown}")
            self.group_unit = unit
            self._status(f"  {self.label} [{self.done:>3}/{self.total}] "
                         f"{event['workload']} · {event['variant']} {shown} {unit}")
        elif kind == "skip":
            self.done += 1
            reason = str(event.get("reason", "")).strip().splitlines()
            note = f"{event['nodeid']}: {reason[0] if reason else 'skipped'}"
            if note not in self.skips:
                self.skips.append(note)
        elif kind == "fail":
            self.done += 1
            self.failures.append(f"{event['nodeid']} ({event.get('when')})")
            self._print(f"  {self.label} FAILED: {event['nodeid']}")


def run_pass(index: int, passes: int, args: argparse.Namespace, results: Path,
             pin: Optional[str], heavy_every: int) -> tuple[Path, Progress]:
    json_path = results / f"pass-{index + 1:02d}.json"
    log_path = results / f"pass-{index + 1:02d}.log"
    # (the hypothesis plugin costs a second at the end of a session; no benchmark uses it)
    cmd = [sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider",
           "-p", "no:hypothesispytest", "-q",
           f"--benchmark-json={json_path}", f"--bench-size={args.mode}",
           f"--bench-shift={index}", f"--bench-heavy-every={heavy_every}",
           f"--bench-peer={args.peer}", "--bench-measured-only",
           "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=fullname"]
    if args.bulk_mib:
        cmd.append(f"--bench-bulk-mib={args.bulk_mib}")
    if args.only:
        cmd += ["-k", args.only]
    if pin:
        cmd.append(f"--bench-pin={pin}")
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, **{PROGRESS_FD_ENV: str(write_fd)})
    env.pop("FASTSOCK_BENCH_PIN", None)
    progress = Progress(f"pass {index + 1}/{passes}")
    started = time.monotonic()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env=env, pass_fds=(write_fd,))
    os.close(write_fd)
    with os.fdopen(read_fd) as events:
        for line in events:
            try:
                progress.handle(json.loads(line))
            except (ValueError, KeyError):
                continue
    rc = proc.wait()
    progress.flush_group()
    elapsed = time.monotonic() - started
    if rc != 0:
        tail = log_path.read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        what = "nothing was collected" if rc == 5 else f"pytest exited {rc}"
        sys.exit(f"pass {index + 1} failed ({what}); full output in {display_path(log_path)}")
    print(f"  pass {index + 1}/{passes} done: {progress.done} benchmarks in {elapsed:.1f} s",
          flush=True)
    return json_path, progress


def main(argv: Optional[list[str]] = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    passes = args.passes or PASSES[args.mode]
    results = Path(args.results)
    if not results.is_absolute():
        results = REPO / results
    results.mkdir(parents=True, exist_ok=True)
    for stale in [*results.glob("pass-*.json"), *results.glob("pass-*.log")]:
        stale.unlink()
    pin = choose_pinning(args.pin)
    machine = report.machine_description()
    sizes = sizes_for(args.mode, args.bulk_mib)
    heavy_every = args.heavy_every or (1 if args.only else sizes.heavy_every)
    heavy_passes = [i + 1 for i in range(passes) if i % heavy_every == 0]

    print(f"fastsock benchmark: {args.mode} run, {passes} pass{'es' if passes != 1 else ''}, "
          f"results in {display_path(results)}/", flush=True)
    print(f"machine: {report.machine_line(machine)}", flush=True)
    if pin:
        print(f"pinned: benchmark on CPU {pin.split(',')[0]}, peers on CPU {pin.split(',')[1]}")
    if len(heavy_passes) < passes:
        print(f"framing workloads ({sizes.framing:,} messages a round): passes "
              f"{', '.join(map(str, heavy_passes))} of {passes}", flush=True)
    for label, implementation in FASTSOCK_VARIANTS.items():
        live = live_implementation(implementation)
        if live != implementation:
            print(f"warning: asking fastsock for its {implementation} implementation gives "
                  f"{live}; the {label} variant will be skipped", flush=True)
    build = build_cref()
    if build.binary:
        print(f"C reference: {display_path(build.binary)} ({build.compiler or 'cc'})", flush=True)
    else:
        print(f"warning: {build.reason}", flush=True)
        print("  results are not shown as a fraction of C; peers run bench/peer.py",
              flush=True)
    peer_kind = args.peer if args.peer != "auto" else ("c" if build.binary else "python")

    json_paths = []
    skips: list[str] = []
    for index in range(passes):
        path, progress = run_pass(index, passes, args, results, pin, heavy_every)
        json_paths.append(path)
        skips += [s for s in progress.skips if s not in skips]
    for note in skips:
        print(f"skipped: {note}")

    summary = report.aggregate(report.load_passes(json_paths))
    if not summary.rows:
        sys.exit("no benchmark produced a result")
    settings = {
        "command": shlex.join(["python", "-m", "bench",
                               *(argv if argv is not None else sys.argv[1:])]),
        "mode": args.mode,
        "passes": passes,
        "only": args.only,
        "pin": pin,
        "peer": peer_kind,
        "c_reference": build.compiler if build.binary else build.reason,
        "sizes": dataclasses.asdict(sizes),
        "heavy_passes": heavy_passes if len(heavy_passes) < passes else None,
        "pass_files": [display_path(p) for p in json_paths],
    }
    print()
    print(report.text_table(summary.rows))
    print()
    print(textwrap.fill(report.LEGEND, width=100))
    if summary.groups:
        print()
        print(textwrap.fill(report.BASELINE_LEGEND, width=100))
        print()
        print(report.variants_text_table(summary.groups))
        targets = report.check_targets(summary.groups)
        if targets:
            print()
            print("targets (compiled fastsock):")
            for line in report.targets_lines(targets):
                print(f"  {line}")

    settings["wall_time_s"] = round(time.monotonic() - started, 1)
    md_path, json_path, png_path = (results / "summary.md", results / "summary.json",
                                    results / "bench.png")
    md_path.write_text(report.summary_markdown(summary, machine, settings))
    report.write_summary_json(json_path, summary, machine, settings)
    report.chart(png_path, summary.rows, machine, passes)
    print()
    print(f"wrote {display_path(md_path)}, {display_path(json_path)}, {display_path(png_path)} "
          f"and {len(json_paths)} pass files")
    print(f"total wall time {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
