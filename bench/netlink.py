"""python -m bench.netlink: dumping a routing table of many routes over netlink.

The benchmark moves itself into a network namespace of its own (it needs
root; the namespace ends with the process), adds ``--routes`` routes there
with one ``ip -batch`` (10.a.b.0/24 dev lo), and dumps the IPv4 routes
(RTM_GETROUTE, every table) again and again with each contender, each in a
process of its own:

- fastsock-c, fastsock-py: ``NetlinkSocket().dump(RTM_GETROUTE, rtmsg)``, the
  messages split in C (compiled) or in Python (pure);
- fastsock-c+attrs: the same, and each route's attributes decoded with
  ``netlink_attributes`` (what a caller that reads the routes pays);
- stdlib: a plain ``socket.socket(AF_NETLINK)``: the request, then a
  ``recv_into`` loop splitting the datagrams with ``struct.unpack_from`` into
  the same (type, flags, seq, pid, payload) tuples, until NLMSG_DONE;
- pyroute2: ``IPRoute().get_routes(family=AF_INET)``, every route parsed
  into pyroute2's message objects.

Per contender: the routes each dump returned, the median time of a dump over
up to ``--rounds`` dumps after one warm-up dump (at least 3, fewer than
``--rounds`` once ``--seconds`` have passed: pyroute2 takes seconds a dump;
the median, because a large dump's time varies with the garbage collector's
passes over the previous dump's objects), routes per second, and the
process's peak RSS (VmHWM) after the dumps and its RSS before the first.  The
target: fastsock-c dumps at least 5× as many routes per second as pyroute2.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from fastsock._names import IMPLEMENTATIONS

REPO = Path(__file__).resolve().parent.parent
CLONE_NEWNET = 0x40000000
RTM_GETROUTE = 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
HEADER = struct.Struct("=IHHII")
# struct rtmsg for an IPv4 dump: family, then zeros (every table, every type)
RTMSG = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
TARGET = 5.0  # fastsock-c routes/s over pyroute2's

# contender -> the implementation its process selects (None: fastsock not used)
CONTENDERS: dict[str, Optional[str]] = {
    "fastsock-c": "cython",
    "fastsock-py": "python",
    "fastsock-c+attrs": "cython",
    "stdlib": None,
    "pyroute2": None,
}


# -- the contenders (each runs in a worker process) ----------------------------------


def fastsock_dump(decode: bool) -> Callable[[], int]:
    import fastsock

    sock = fastsock.NetlinkSocket()
    sock.settimeout(60)

    def dump() -> int:
        messages = sock.dump(RTM_GETROUTE, RTMSG)
        if decode:
            for message in messages:
                fastsock.netlink_attributes(message.payload, 12)
        return len(messages)
    return dump


def stdlib_dump() -> Callable[[], int]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.settimeout(60)
    sock.bind((0, 0))
    pid = sock.getsockname()[0]
    buffer = bytearray(65536)  # more than the 32 KiB the kernel puts in a dump datagram
    view = memoryview(buffer)
    unpack = HEADER.unpack_from
    seq = 0

    def dump() -> int:
        nonlocal seq
        seq += 1
        sock.send(HEADER.pack(HEADER.size + len(RTMSG), RTM_GETROUTE,
                              NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + RTMSG)
        messages = []
        while True:
            size = sock.recv_into(buffer)
            offset = 0
            while offset < size:
                length, kind, flags, mseq, mpid = unpack(buffer, offset)
                if length < 16 or length > size - offset:
                    raise ValueError(f"bad netlink length {length} at {offset}")
                if mseq == seq and mpid == pid:
                    if kind == NLMSG_DONE:
                        return len(messages)
                    if kind == NLMSG_ERROR:
                        code = struct.unpack_from("=i", buffer, offset + 16)[0]
                        raise OSError(-code, os.strerror(-code))
                    messages.append((kind, flags, mseq, mpid,
                                     bytes(view[offset + 16:offset + length])))
                offset += (length + 3) & ~3
    return dump


def pyroute2_dump() -> Callable[[], int]:
    from pyroute2 import IPRoute

    ipr = IPRoute()

    def dump() -> int:
        return len(list(ipr.get_routes(family=socket.AF_INET)))
    return dump


def vm_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def worker(name: str, rounds: int, budget: float) -> dict[str, Any]:
    dump = {"fastsock-c": lambda: fastsock_dump(False),
            "fastsock-py": lambda: fastsock_dump(False),
            "fastsock-c+attrs": lambda: fastsock_dump(True),
            "stdlib": stdlib_dump, "pyroute2": pyroute2_dump}[name]()
    rss_before = vm_kib("VmRSS")
    routes = dump()  # warm-up
    times: list[float] = []
    first = time.perf_counter()
    while len(times) < rounds and (len(times) < 3 or time.perf_counter() - first < budget):
        started = time.perf_counter()
        count = dump()
        times.append(time.perf_counter() - started)
        if count != routes:
            raise RuntimeError(f"{name}: {count} routes, then {routes}")
    if name.startswith("fastsock"):
        import fastsock
        implementation = fastsock.IMPLEMENTATION
    else:
        implementation = "-"
    return {"routes": routes, "times": times, "rss_before_kib": rss_before,
            "peak_rss_kib": vm_kib("VmHWM"), "implementation": implementation}


# -- the driver ---------------------------------------------------------------------


def enter_new_netns() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise SystemExit(f"cannot make a network namespace: {os.strerror(err)} "
                         f"(the benchmark needs root)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)


def add_routes(count: int) -> float:
    started = time.perf_counter()
    script = "".join(f"route add 10.{i >> 8 & 0xFF}.{i & 0xFF}.0/24 dev lo\n"
                     for i in range(count))
    subprocess.run(["ip", "-batch", "-"], input=script, text=True, check=True, timeout=300)
    return time.perf_counter() - started


def run_worker(name: str, rounds: int, budget: float) -> dict[str, Any]:
    env = dict(os.environ)
    implementation = CONTENDERS[name]
    if implementation is not None:
        env.update(IMPLEMENTATIONS[implementation][1])
    done = subprocess.run([sys.executable, "-m", "bench.netlink", "--worker", name,
                           "--rounds", str(rounds), "--seconds", str(budget)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    if implementation is not None and result["implementation"] != implementation:
        raise SystemExit(f"{name} ran on {result['implementation']}, not {implementation}")
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    base = results.get("pyroute2")
    stdlib = results.get("stdlib")
    lines = ["| contender | routes | median dump | routes/s | × pyroute2 | × stdlib | "
             "RSS before | peak RSS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in results.items():
        rate = row["routes"] / statistics.median(row["times"])
        row["routes_per_s"] = rate
        versus = f"{rate / (base['routes'] / statistics.median(base['times'])):.1f}×" \
            if base else "-"
        versus_stdlib = f"{rate / (stdlib['routes'] / statistics.median(stdlib['times'])):.2f}×" \
            if stdlib else "-"
        lines.append(f"| {name} | {row['routes']:,} | {statistics.median(row['times']) * 1e3:,.1f} ms "
                     f"| {rate:,.0f} | {versus} | {versus_stdlib} | "
                     f"{row['rss_before_kib'] / 1024:.1f} MiB | {row['peak_rss_kib'] / 1024:.1f} MiB |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.netlink",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=20000, help="routes added (default 20000)")
    parser.add_argument("--rounds", type=int, default=20,
                        help="timed dumps per contender, at most (default 20)")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="no more dumps after this long, once 3 are done (default 8)")
    parser.add_argument("--contenders", help="comma-separated subset of " + ",".join(CONTENDERS))
    parser.add_argument("--results", default="results/netlink", metavar="DIR")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.rounds, args.seconds)))
        return 0
    names = args.contenders.split(",") if args.contenders else list(CONTENDERS)
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        raise SystemExit(f"unknown contenders: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    enter_new_netns()
    seconds = add_routes(args.routes)
    print(f"{args.routes:,} routes added in {seconds:.1f} s (ip -batch), in a new network "
          f"namespace; up to {args.rounds} timed dumps per contender", flush=True)
    results = {}
    for name in names:
        results[name] = run_worker(name, args.rounds, args.seconds)
        print(f"{name:17} {results[name]['routes']:>7,} routes  "
              f"{len(results[name]['times']):2} dumps, median "
              f"{statistics.median(results[name]['times']) * 1e3:8.1f} ms", flush=True)
    text = table(results)
    checks = []
    if "fastsock-c" in results and "pyroute2" in results:
        ratio = results["fastsock-c"]["routes_per_s"] / results["pyroute2"]["routes_per_s"]
        checks.append({"target": f"fastsock-c dumps >= {TARGET:.0f}x the routes/s of pyroute2",
                       "measured": ratio, "met": ratio >= TARGET})
        text += f"\n**Target**: {'met' if ratio >= TARGET else 'NOT met'}: fastsock-c dumps " \
                f"{ratio:.1f}× the routes per second of pyroute2 (target ≥ {TARGET:.0f}×)\n"
    text += f"\n(the whole run took {time.perf_counter() - started:.0f} s)\n"
    print(text)
    results_dir = Path(args.results)
    if not results_dir.is_absolute():
        results_dir = REPO / results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "summary.md").write_text(text)
    (results_dir / "summary.json").write_text(json.dumps(
        {"settings": {"routes": args.routes, "rounds": args.rounds, "seconds": args.seconds},
         "runs": results,
         "targets": checks}, indent=2))
    print(f"written to {results_dir}/summary.md and summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
