"""Turn the pytest-benchmark JSON of several passes into the summary: per
workload and variant the median throughput across passes and its spread,
the ratios between variants, a text and a Markdown table, and a chart.

Most workloads have three variants (stdlib, pure, compiled) and the C
reference: one row of the main table each.  The fast-path workloads
(framing, exact bulk reads, header + body sends, the datagram drain,
send and end-to-end cases, the seqpacket record drain, the asyncio echo)
have more: each is a
:class:`Group` of named variants with a stdlib baseline idiom.  They get a
second table listing every variant against the baseline and C, a row of the
main table per fastsock method (the baseline in the stdlib column), and
the project's targets checked against them.  A workload whose results carry
the CPU time its process spent per unit (``cpu_us_per_unit``: the asyncio
echo server's CPU µs per request) shows it in a column of that second
table, and a target may bound it."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from ._harness import (
    COMPILED,
    CREF,
    ECHO_BASELINE,
    EXACT_BASELINE,
    FRAMING_BASELINE,
    LINES_BASELINE,
    PURE,
    SEND_BODIES,
    SENDS_BASELINE,
    SEQPACKET_BASELINE,
    UDP_DRAIN_BASELINE,
    UDP_SEND_BASELINE,
    echo_name,
    exact_name,
    framing_name,
    lines_name,
    sends_name,
    seqpacket_drain_name,
    udp_batch_drain_name,
    udp_batch_send_name,
)

STDLIB = "stdlib"
COLUMNS = ("workload", "stdlib", "fastsock pure", "fastsock compiled",
           "compiled ÷ stdlib", "compiled ÷ C")
VARIANT_COLUMNS = ("workload", "variant", "throughput", "÷ baseline", "÷ C")
CPU_COLUMN = "CPU µs/unit"
NOISE_MARK = "~"
BASELINE_MARK = "*"
PEER_KINDS = {"c": "C (bench/c/ref.c)", "python": "stdlib Python (bench/peer.py)"}


# -- aggregation ---------------------------------------------------------------

def quartiles(values: Iterable[float]) -> tuple[float, float]:
    """The first and third quartile (both the value itself for one value)."""
    data = sorted(values)
    if len(data) < 2:
        return data[0], data[0]
    q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    return q1, q3


@dataclass
class Cell:
    """One workload × variant: its throughput in each pass."""

    per_pass: dict[int, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.per_pass.values())

    @property
    def low(self) -> float:
        """The first quartile across passes."""
        return quartiles(self.per_pass.values())[0]

    @property
    def high(self) -> float:
        """The third quartile across passes."""
        return quartiles(self.per_pass.values())[1]

    @property
    def spread_pct(self) -> float:
        """The interquartile range across passes, as a percentage of the median."""
        return 100.0 * (self.high - self.low) / self.median if self.median else 0.0

    def overlaps(self, other: "Cell") -> bool:
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict[str, Any]:
        values = self.per_pass.values()
        return {"median": self.median, "q1": self.low, "q3": self.high,
                "iqr_pct": round(self.spread_pct, 2), "min": min(values), "max": max(values),
                "per_pass": [self.per_pass[k] for k in sorted(self.per_pass)]}


@dataclass
class Ratio:
    value: float              # median of the per-pass ratios
    low: float                # their first and third quartile
    high: float
    of_medians: float         # the ratio of the two variants' medians
    within_noise: bool        # the two variants' interquartile ranges overlap

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "per_pass_q1": self.low, "per_pass_q3": self.high,
                "ratio_of_medians": self.of_medians, "within_noise": self.within_noise}


def _ratio(num: Optional[Cell], den: Optional[Cell]) -> Optional[Ratio]:
    """num ÷ den pass by pass (the two ran minutes apart at most, seconds
    apart within a pass), summarised by the median and quartiles."""
    if num is None or den is None or not num.per_pass or not den.per_pass:
        return None
    if not den.median:
        return None
    of_medians = num.median / den.median
    common = sorted(set(num.per_pass) & set(den.per_pass))
    per_pass = [num.per_pass[p] / den.per_pass[p] for p in common if den.per_pass[p]]
    if not per_pass:
        return Ratio(of_medians, of_medians, of_medians, of_medians, num.overlaps(den))
    q1, q3 = quartiles(per_pass)
    return Ratio(statistics.median(per_pass), q1, q3, of_medians, num.overlaps(den))


@dataclass
class Row:
    workload: str
    unit: str
    ref: str
    cells: dict[str, Cell] = field(default_factory=dict)
    c_ref: Optional[Cell] = None
    baseline: Optional[str] = None   # the stdlib column is this idiom of a Group

    def ratio(self, variant: str, base: str = STDLIB) -> Optional[Ratio]:
        num = self.c_ref if variant == CREF else self.cells.get(variant)
        den = self.c_ref if base == CREF else self.cells.get(base)
        return _ratio(num, den)

    def as_dict(self) -> dict[str, Any]:
        variants = {name: cell.as_dict() for name, cell in self.cells.items()}
        if self.c_ref is not None:
            variants[CREF] = self.c_ref.as_dict()
        ratios = {}
        for key, (num, den) in {
            "pure_vs_stdlib": (PURE, STDLIB),
            "compiled_vs_stdlib": (COMPILED, STDLIB),
            "c_vs_stdlib": (CREF, STDLIB),
            "compiled_vs_c": (COMPILED, CREF),
        }.items():
            ratio = self.ratio(num, den)
            ratios[key] = ratio.as_dict() if ratio else None
        out = {"workload": self.workload, "unit": self.unit, "c_reference": self.ref,
               "variants": variants, "ratios": ratios}
        if self.baseline:
            out["stdlib_is"] = self.baseline
        return out

    @property
    def label(self) -> str:
        mark = f" {BASELINE_MARK}" if self.baseline else ""
        return f"{self.workload}{mark}"


@dataclass
class Group:
    """A workload with named variants ("stdlib makefile", "fastsock-c
    recv_msgs", ...), one of them the baseline, plus the C reference."""

    workload: str
    unit: str
    baseline: str
    cells: dict[str, Cell] = field(default_factory=dict)
    c_ref: Optional[Cell] = None
    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # row -> {family: variant}
    # variant -> the CPU µs its process spent per unit, where measured
    cpu: dict[str, Cell] = field(default_factory=dict)

    def cell(self, variant: str, metric: str = "throughput") -> Optional[Cell]:
        if metric == "cpu":
            return self.cpu.get(variant)
        return self.c_ref if variant == CREF else self.cells.get(variant)

    def ratio(self, variant: str, base: str, metric: str = "throughput") -> Optional[Ratio]:
        return _ratio(self.cell(variant, metric), self.cell(base, metric))

    def variants(self) -> list[str]:
        return list(self.cells) + ([CREF] if self.c_ref is not None else [])

    def table_rows(self) -> list[Row]:
        """One main-table row per fastsock method: baseline, pure, compiled, C."""
        out = []
        for name, members in self.rows.items():
            cells = {STDLIB: self.cells[self.baseline]} if self.baseline in self.cells else {}
            for family, column in ((PURE, PURE), (COMPILED, COMPILED)):
                if family in members and members[family] in self.cells:
                    cells[column] = self.cells[members[family]]
            out.append(Row(name, self.unit, self.workload, cells, self.c_ref, self.baseline))
        return out

    def as_dict(self) -> dict[str, Any]:
        variants = {}
        for name in self.variants():
            cell = self.cell(name)
            assert cell is not None
            entry = cell.as_dict()
            for key, base in (("vs_baseline", self.baseline), ("vs_c", CREF)):
                ratio = self.ratio(name, base) if name != base else None
                entry[key] = ratio.as_dict() if ratio else None
            cpu = self.cpu.get(name)
            if cpu is not None:
                entry["cpu_us_per_unit"] = cpu.as_dict()
                ratio = self.ratio(name, self.baseline, "cpu") if name != self.baseline else None
                entry["cpu_vs_baseline"] = ratio.as_dict() if ratio else None
            variants[name] = entry
        return {"workload": self.workload, "unit": self.unit, "baseline": self.baseline,
                "variants": variants}


def load_passes(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in paths]


@dataclass
class Summary:
    rows: list[Row]       # the main table, multi-variant groups included
    groups: list[Group]   # the multi-variant workloads, for the second table


def aggregate(passes: list[dict[str, Any]]) -> Summary:
    """Rows in the order the workloads first ran; the C reference joins the
    row whose ``ref`` names it.  A result whose extra_info names a
    ``baseline`` belongs to a multi-variant group."""
    order: dict[str, str] = {}        # workload -> "row" or "group", first-run order
    rows: dict[str, Row] = {}
    groups: dict[str, Group] = {}
    c_cells: dict[str, Cell] = {}
    for index, data in enumerate(passes):
        for bench in data.get("benchmarks", []):
            info = bench.get("extra_info", {})
            value = info.get("throughput")
            if value is None or "workload" not in info:
                continue
            workload, variant = info["workload"], info["variant"]
            unit = info.get("throughput_unit", "")
            if info.get("baseline"):
                order.setdefault(workload, "group")
                group = groups.get(workload)
                if group is None:
                    group = groups[workload] = Group(workload, unit, info["baseline"])
                if variant == CREF:
                    group.c_ref = group.c_ref or Cell()
                    group.c_ref.per_pass[index] = float(value)
                    continue
                group.cells.setdefault(variant, Cell()).per_pass[index] = float(value)
                if info.get("cpu_us_per_unit") is not None:
                    group.cpu.setdefault(variant, Cell()).per_pass[index] = float(
                        info["cpu_us_per_unit"])
                if info.get("row") and info.get("impl"):
                    group.rows.setdefault(info["row"], {})[info["impl"]] = variant
                continue
            if variant == CREF:
                c_cells.setdefault(workload, Cell()).per_pass[index] = float(value)
                continue
            order.setdefault(workload, "row")
            row = rows.get(workload)
            if row is None:
                row = rows[workload] = Row(workload, unit, info.get("ref", workload))
            row.cells.setdefault(variant, Cell()).per_pass[index] = float(value)
    for row in rows.values():
        row.c_ref = c_cells.get(row.ref)
    table: list[Row] = []
    for workload, kind in order.items():
        if kind == "row":
            table.append(rows[workload])
        else:
            table += groups[workload].table_rows()
    return Summary(table, list(groups.values()))


# -- the project's targets -----------------------------------------------------

@dataclass(frozen=True)
class Target:
    """``variant`` of ``workload`` should reach ``at_least`` × ``against``'s
    throughput; with ``metric="cpu"``, spend at most ``at_least`` × its CPU
    time per unit."""

    what: str
    workload: str
    variant: str
    against: str
    at_least: float
    metric: str = "throughput"

    @property
    def at_most(self) -> bool:
        """The bound is an upper one (CPU time: lower is better)."""
        return self.metric == "cpu"


def _targets() -> list[Target]:
    out = []
    for transport in ("unix", "tcp"):
        name = framing_name(transport)
        out += [Target(f"{name}: recv_msgs ≥ 5× the makefile idiom", name,
                       f"{COMPILED} recv_msgs", FRAMING_BASELINE, 5.0),
                Target(f"{name}: recv_msg ≥ 1.5× the makefile idiom", name,
                       f"{COMPILED} recv_msg", FRAMING_BASELINE, 1.5),
                Target(f"{name}: aio read_msgs ≥ 20× asyncio readexactly", name,
                       f"{COMPILED} aio.read_msgs", "asyncio readexactly", 20.0),
                Target(f"{name}: aio read_msgs ≥ 5× a BufferedProtocol (default loop)", name,
                       f"{COMPILED} aio.read_msgs", "asyncio BufferedProtocol", 5.0),
                Target(f"{name}: aio read_msgs ≥ 0.9× blocking recv_msgs", name,
                       f"{COMPILED} aio.read_msgs", f"{COMPILED} recv_msgs", 0.9),
                Target(f"{name}: aio read_msg ≥ 5× asyncio readexactly", name,
                       f"{COMPILED} aio.read_msg", "asyncio readexactly", 5.0)]
    out.append(Target("makefile('rb').readline: ≥ 2× the stdlib's file", lines_name(),
                      f"{COMPILED} makefile.readline", LINES_BASELINE, 2.0))
    out += [Target("bulk 1M: recv_exactly_into ≥ 1.2× stdlib recv", exact_name(),
                   f"{COMPILED} recv_exactly_into", EXACT_BASELINE, 1.2),
            Target("bulk 1M: recv_exactly_into ≥ 0.95× C", exact_name(),
                   f"{COMPILED} recv_exactly_into", CREF, 0.95)]
    for body in SEND_BODIES:
        out.append(Target(f"{body} body: sendall_buffers ≥ 1× stdlib sendall(header + body)",
                          sends_name(body), f"{COMPILED} sendall_buffers", SENDS_BASELINE,
                          1.0))
    drain, send = udp_batch_drain_name(), udp_batch_send_name()
    out += [Target("udp drain 64B: recv_many ≥ 1.9× stdlib recvfrom", drain,
                   f"{COMPILED} recv_many", UDP_DRAIN_BASELINE, 1.9),
            Target("udp drain 64B: recv_batch ≥ 1.9× stdlib recvfrom", drain,
                   f"{COMPILED} recv_batch", UDP_DRAIN_BASELINE, 1.9),
            Target("udp drain 64B: recvfrom ≥ 1.3× stdlib recvfrom", drain,
                   f"{COMPILED} recvfrom", UDP_DRAIN_BASELINE, 1.3),
            Target("udp send 64B: send_many ≥ 1.1× stdlib sendto", send,
                   f"{COMPILED} send_many", UDP_SEND_BASELINE, 1.1),
            Target("udp send 64B: send_segments ≥ 5× stdlib sendto", send,
                   f"{COMPILED} send_segments", UDP_SEND_BASELINE, 5.0)]
    records = seqpacket_drain_name()
    out += [Target("seqpacket drain 64B: recv_records ≥ 2× stdlib recv", records,
                   f"{COMPILED} recv_records", SEQPACKET_BASELINE, 2.0),
            Target("seqpacket drain 64B: recv_batch ≥ 2× stdlib recv", records,
                   f"{COMPILED} recv_batch", SEQPACKET_BASELINE, 2.0),
            # the kernel's work per record dominates: C's recvmmsg itself is
            # about 1.3× a recv loop, so this one says how close to it we are
            Target("seqpacket drain 64B: recv_records ≥ 0.85× C recvmmsg", records,
                   f"{COMPILED} recv_records", CREF, 0.85)]
    echo = echo_name()
    uv_streams = f"{COMPILED} aio streams uvloop"
    out += [Target("echo: aio streams on uvloop ≥ 1× the uvloop Protocol's req/s", echo,
                   uv_streams, "uvloop Protocol", 1.0),
            Target("echo: aio streams on uvloop ≤ 1× the uvloop Protocol's CPU µs/req", echo,
                   uv_streams, "uvloop Protocol", 1.0, metric="cpu"),
            Target("echo: aio streams on uvloop ≥ 2.3× asyncio streams", echo,
                   uv_streams, ECHO_BASELINE, 2.3)]
    return out


TARGETS = _targets()


@dataclass
class TargetResult:
    target: Target
    ratio: Optional[Ratio]

    @property
    def status(self) -> str:
        if self.ratio is None:
            return "not measured"
        bound = self.target.at_least
        if self.target.at_most:
            met = self.ratio.value <= bound
            straddles = self.ratio.low <= bound < self.ratio.high
        else:
            met = self.ratio.value >= bound
            straddles = self.ratio.low < bound <= self.ratio.high
        if straddles:
            return ("met" if met else "not met") + " (the per-pass ratios straddle it)"
        return "met" if met else "NOT met"

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        bound = {"at_most": t.at_least} if t.at_most else {"at_least": t.at_least}
        return {"target": t.what, "workload": t.workload, "variant": t.variant,
                "against": t.against, "metric": t.metric, **bound, "status": self.status,
                "ratio": self.ratio.as_dict() if self.ratio else None}


def check_targets(groups: list[Group]) -> list[TargetResult]:
    """The targets whose workload ran (compiled fastsock against its reference)."""
    by_name = {group.workload: group for group in groups}
    return [TargetResult(t, by_name[t.workload].ratio(t.variant, t.against, t.metric))
            for t in TARGETS if t.workload in by_name]


# -- formatting ----------------------------------------------------------------

def fmt_value(value: float, unit: str) -> str:
    if unit == "MB/s":
        return f"{value:,.0f}"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def fmt_cell(cell: Optional[Cell], unit: str) -> str:
    if cell is None or not cell.per_pass:
        return "–"
    text = f"{cell.median:.3g}" if unit == "µs" else fmt_value(cell.median, unit)
    if len(cell.per_pass) > 1:
        text += f" ±{cell.spread_pct / 2:.1f}%"
    return text


def fmt_ratio(ratio: Optional[Ratio], passes: int) -> str:
    if ratio is None:
        return "–"
    text = f"{ratio.value:.2f}×"
    if passes > 1:
        text += f" ({ratio.low:.2f}–{ratio.high:.2f})"
    return f"{text} {NOISE_MARK}" if ratio.within_noise else f"{text}  "


def table_rows(rows: list[Row]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for row in rows:
        passes = max((len(c.per_pass) for c in row.cells.values()), default=0)
        out.append((
            f"{row.label} ({row.unit})",
            fmt_cell(row.cells.get(STDLIB), row.unit),
            fmt_cell(row.cells.get(PURE), row.unit),
            fmt_cell(row.cells.get(COMPILED), row.unit),
            fmt_ratio(row.ratio(COMPILED, STDLIB), passes),
            fmt_ratio(row.ratio(COMPILED, CREF), passes),
        ))
    return out


LEGEND = (
    "Throughput: the median across passes of each pass's value (units per "
    "median round time); ± is half the interquartile range across passes, as "
    "% of the median.  Ratios are taken pass by pass (the variants of a "
    "workload run back to back, so this cancels most of the machine-speed "
    "drift between passes): the median of the per-pass ratios and, in "
    "parentheses, their interquartile range.  ~ marks a ratio within noise: "
    "the two variants' interquartile ranges across passes overlap.  C is "
    "bench/c/ref.c doing the same work in C (bulk: recv into one buffer, the "
    "reference for both recv rows)."
)

BASELINE_LEGEND = (
    f"{BASELINE_MARK} A fast-path workload: its stdlib column is the stdlib "
    "idiom it is compared with (framing: makefile('rb') with read(4) + read(n); "
    "lines: makefile('rb').readline(); "
    "bulk 1M: recv(1 MiB); sends: sendall(header + body); udp: a recvfrom or "
    "sendto loop, end-to-end: sendto → recvfrom; echo: asyncio streams on the "
    "default loop); the table of every "
    "variant below lists the others, each ÷ that baseline and ÷ C, ratios taken "
    "pass by pass as above.  The framing workloads may run in fewer passes than "
    "the rest (see the run settings).  CPU µs/unit (echo): the server process's "
    "CPU time (user + system) per request, the median across passes of each "
    "pass's median round."
)


def _has_cpu(groups: list[Group]) -> bool:
    return any(group.cpu for group in groups)


def variant_columns(groups: list[Group]) -> tuple[str, ...]:
    return VARIANT_COLUMNS + ((CPU_COLUMN,) if _has_cpu(groups) else ())


def variant_table_rows(groups: list[Group]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    cpu_column = _has_cpu(groups)
    for group in groups:
        passes = max((len(c.per_pass) for c in group.cells.values()), default=0)
        for i, name in enumerate(group.variants()):
            label = "C reference" if name == CREF else name
            base = ("baseline" if name == group.baseline
                    else fmt_ratio(group.ratio(name, group.baseline), passes))
            vs_c = "–" if name == CREF else fmt_ratio(group.ratio(name, CREF), passes)
            cells: tuple[str, ...] = (f"{group.workload} ({group.unit})" if i == 0 else "",
                                      label, fmt_cell(group.cell(name), group.unit), base, vs_c)
            if cpu_column:
                cells += (fmt_cell(group.cpu.get(name), "µs"),)
            out.append(cells)
    return out


def _text(columns: tuple[str, ...], body: list[tuple[str, ...]], left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [columns, *body]) for i in range(len(columns))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(widths[i]) if i < left else c.rjust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(r) for r in body)])


def _markdown(columns: tuple[str, ...], body: list[tuple[str, ...]], left: int = 1) -> str:
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join(["---"] * left + ["---:"] * (len(columns) - left)) + "|"]
    lines += ["| " + " | ".join(c.strip().replace("|", "\\|") for c in r) + " |"
              for r in body]
    return "\n".join(lines)


def variants_text_table(groups: list[Group]) -> str:
    return _text(variant_columns(groups), variant_table_rows(groups), left=2)


def variants_markdown_table(groups: list[Group]) -> str:
    return _markdown(variant_columns(groups), variant_table_rows(groups), left=2)


def targets_lines(results: list[TargetResult]) -> list[str]:
    out = []
    for result in results:
        ratio = result.ratio
        shown = (f"{ratio.value:.2f}× (per-pass {ratio.low:.2f}–{ratio.high:.2f})"
                 if ratio else "–")
        out.append(f"{result.target.what}: {shown} — {result.status}")
    return out


def text_table(rows: list[Row]) -> str:
    return _text(COLUMNS, table_rows(rows))


def markdown_table(rows: list[Row]) -> str:
    return _markdown(COLUMNS, table_rows(rows))


# -- the machine ---------------------------------------------------------------

def machine_description() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
            f"{machine['kernel']}, {machine['python']}, {machine['date']}")


# -- outputs -------------------------------------------------------------------

def summary_markdown(summary: Summary, machine: dict[str, Any],
                     settings: dict[str, Any]) -> str:
    rows = summary.rows
    lines = [
        "# fastsock benchmark summary",
        "",
        f"- CPU: {machine['cpu']}",
        f"- Cores: {machine['cores']} ({machine['usable_cores']} usable by the run)",
        f"- Kernel: {machine['kernel']}",
        f"- Python: {machine['python']}",
        f"- Date: {machine['date']}",
        f"- Run: `{settings['command']}` — mode {settings['mode']}, "
        f"{settings['passes']} passes; peer processes of the Python variants: "
        f"{PEER_KINDS.get(settings['peer'], settings['peer'])}; "
        f"C reference: {settings['c_reference']}"
        + (f", pinned: {settings['pin']}" if settings.get("pin") else ""),
    ]
    if settings.get("heavy_passes"):
        lines.append("- Framing workloads: passes "
                     + ", ".join(map(str, settings["heavy_passes"])) + " only")
    lines += ["", markdown_table(rows), "", LEGEND, ""]
    if summary.groups:
        lines += [BASELINE_LEGEND, "", "## Every variant of the fast-path workloads",
                  "", variants_markdown_table(summary.groups), ""]
        results = check_targets(summary.groups)
        if results:
            lines += ["## Targets", ""] + [f"- {line}" for line in targets_lines(results)]
            lines.append("")
    lines += ["![throughput relative to stdlib](bench.png)", ""]
    return "\n".join(lines)


def write_summary_json(path: Path, summary: Summary, machine: dict[str, Any],
                       settings: dict[str, Any]) -> None:
    data = {"machine": machine, "settings": settings, "legend": LEGEND,
            "rows": [row.as_dict() for row in summary.rows],
            "groups": [group.as_dict() for group in summary.groups],
            "targets": [result.as_dict() for result in check_targets(summary.groups)]}
    path.write_text(json.dumps(data, indent=2) + "\n")


def chart(path: Path, rows: list[Row], machine: dict[str, Any], passes: int) -> None:
    """One bar group per workload: pure, compiled and C, each ÷ stdlib, on a
    log scale (so 0.5× and 2× are as far from 1× as each other).

    The title, the legend and the axis label sit outside the axes; the image
    is saved with its bounding box fitted to every drawn element, so none of
    them is cut at an edge however long the workload names or the machine
    description are."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    series = [(PURE, "fastsock pure ÷ stdlib", "#9dbfe3"),
              (COMPILED, "fastsock compiled ÷ stdlib", "#1f5fa6"),
              (CREF, "C reference ÷ stdlib", "#a8a8a8")]
    shown = [row for row in rows if row.cells.get(STDLIB)]
    height = 0.27
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.36 * len(shown)), dpi=110)
    extremes: list[float] = [1.0]
    for s_index, (variant, label, color) in enumerate(series):
        ys, xs, lo, hi = [], [], [], []
        for r_index, row in enumerate(shown):
            ratio = row.ratio(variant, STDLIB)
            if ratio is None:
                continue
            ys.append((len(shown) - 1 - r_index) + (1 - s_index) * height)
            xs.append(ratio.value)
            lo.append(max(0.0, ratio.value - ratio.low))
            hi.append(max(0.0, ratio.high - ratio.value))
        if not xs:
            continue
        whiskers = passes > 1
        # bars grow from 1× (left for slower than stdlib, right for faster)
        ax.barh(ys, [x - 1.0 for x in xs], left=1.0, height=height * 0.92, color=color,
                label=label, xerr=[lo, hi] if whiskers else None,
                error_kw={"elinewidth": 0.7, "capsize": 1.5, "ecolor": "#444444"})
        for y, x, below, above in zip(ys, xs, lo, hi):
            left, right = (x - below, x + above) if whiskers else (x, x)
            extremes += [left, right]
            if x >= 1.0:
                ax.text(right * 1.02, y, f"{x:.2f}×", va="center", ha="left", fontsize=6.5)
            else:
                ax.text(left / 1.02, y, f"{x:.2f}×", va="center", ha="right", fontsize=6.5)
    low = max(min(extremes) / 1.45, 1e-3)
    high = max(extremes) * 1.45
    ax.set_xscale("log", base=2)
    ax.set_xlim(min(low, 0.5), max(high, 2.0))
    first, last = ax.get_xlim()
    # the in-between ticks only where the scale is wide enough to print them apart
    steps = ((1 / 16, 1 / 8, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64) if last / first > 32
             else (1 / 16, 1 / 8, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 16, 32, 64))
    ticks = [t for t in steps if first <= t <= last]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}×" for t in ticks], fontsize=8)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([textwrap.fill(row.label, 34) for row in reversed(shown)], fontsize=8)
    ax.set_ylim(-0.6, len(shown) - 0.4)
    xlabel = ("throughput relative to the stdlib socket module (log scale; higher is better; "
              "whiskers: interquartile range of the per-pass ratios)")
    xlabel = textwrap.fill(xlabel, 80)
    if any(row.baseline for row in shown):
        xlabel += f"\n{BASELINE_MARK} relative to the stdlib baseline idiom of the workload"
    ax.set_xlabel(xlabel, fontsize=8)
    fig.suptitle(f"fastsock vs stdlib socket — median of {passes} pass"
                 f"{'es' if passes != 1 else ''}\n"
                 + textwrap.fill(machine_line(machine), 90), fontsize=9)
    ax.grid(axis="x", linestyle=":", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=7.5,
              frameon=False)
    fig.tight_layout()
    # fit the saved image to everything drawn: the title, the legend above the
    # axes and the long tick labels reach past the axes' own box
    fig.savefig(path, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)


def redraw(results: Path, output: Optional[Path] = None) -> Path:
    """Draw the chart again from a finished run's files in ``results``: the
    raw pass files (``pass-NN.json``) and the machine and settings recorded
    in ``summary.json``.  Nothing is measured."""
    summary_json = json.loads((results / "summary.json").read_text())
    settings = summary_json["settings"]
    # the pass files the run listed, looked up in this folder (the run may
    # have written them elsewhere and the folder been copied since)
    names = [Path(p).name for p in settings.get("pass_files") or []]
    paths = [results / name for name in names] or sorted(results.glob("pass-*.json"))
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"pass files missing: {', '.join(map(str, missing))}")
    summary = aggregate(load_passes(paths))
    if not summary.rows:
        raise ValueError(f"no benchmark results in {results}")
    target = output if output is not None else results / "bench.png"
    chart(target, summary.rows, summary_json["machine"], settings.get("passes", len(paths)))
    return target


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m bench.report``: redraw a finished run's chart."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description="Redraw the chart of a finished `python -m bench` run from the "
                    "pass files and summary.json it wrote; nothing is measured.")
    parser.add_argument("results", nargs="?", default="results", type=Path,
                        help="the run's results folder (default: results)")
    parser.add_argument("-o", "--output", type=Path, metavar="PNG",
                        help="where to write the chart (default: RESULTS/bench.png)")
    args = parser.parse_args(argv)
    try:
        written = redraw(args.results, args.output)
    except (OSError, ValueError, KeyError) as exc:
        parser.exit(1, f"python -m bench.report: {exc}\n")
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
