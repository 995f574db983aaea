"""Run every benchmark and print one table: figure | target | met?

Run: ``python3 bench/run_all.py [--full] [--pg postgresql+psycopg://user@host:port/postgres]``

By default each bench runs with small sizes so the whole table takes a few minutes;
``--full`` uses the sizes the issues name (1M open leads, 50k leads over a year, …).
Each bench is a subprocess (its own interpreter, as it would run alone); its output is
kept under /tmp/leadbot-bench-*.log and the figures are read from its printed lines.
Targets marked "(assumed)" are not stated in an issue; they are this table's yardstick.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the table."""

    figure: str
    value: str
    target: str
    met: bool | None


def _run(name: str, args: list[str], timeout: float) -> str:
    started = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        text = out.stdout + out.stderr
    except subprocess.TimeoutExpired as exc:
        text = f"{exc.stdout or ''}\nTIMEOUT after {timeout:.0f} s"
    Path(f"/tmp/leadbot-bench-{name}.log").write_text(text, encoding="utf-8")
    print(f"  ran {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return text


def _num(pattern: str, text: str, group: int = 1) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(group).replace(",", "")) if m else None


def _row(figure: str, value: float | None, unit: str, target: str, ok: Callable[[float], bool]) -> Row:
    if value is None:
        return Row(figure, "n/a (see log)", target, None)
    return Row(figure, f"{value:,.2f} {unit}".replace(".00 ", " "), target, ok(value))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="issue-size runs (tens of minutes)")
    ap.add_argument("--pg", default="", help="PostgreSQL server URL for the PostgreSQL rows")
    args = ap.parse_args()
    full = args.full
    rows: list[Row] = []

    ingest = _run("ingest", ["bench/bench_ingest.py", "--platform", "all", "--requests", "6000" if full else "2000", "--rounds", "2"], 900)
    for name, label in (("wecom", "WeCom"), ("feishu", "Feishu"), ("dingtalk", "DingTalk robot"), ("dingtalk-event", "DingTalk event subscription")):
        ratios = re.search(rf"^\[{re.escape(name)}\] ratio ours/bare ([\d., ]+)$", ingest, re.M)
        p99s = re.search(rf"^\[{re.escape(name)}\] ours p99 ([\d., ]+) ms$", ingest, re.M)
        rows_ok = re.search(rf"^\[{re.escape(name)}\] inbox rows (ok|MISMATCH)", ingest, re.M)
        ratio = min(float(x) for x in ratios.group(1).split(",")) if ratios else None
        p99 = max(float(x) for x in p99s.group(1).split(",")) if p99s else None
        rows.append(_row(f"{label} callback ingest / bare aiohttp (worst round)", ratio, "x", ">= 0.30", lambda v: v >= 0.30))
        rows.append(_row(f"{label} callback ingest p99 (worst round)", p99, "ms", "< 100 ms", lambda v: v < 100))
        rows.append(Row(f"{label} acknowledged = stored in the inbox", rows_ok.group(1) if rows_ok else "n/a (see log)", "ok",
                        None if rows_ok is None else rows_ok.group(1) == "ok"))

    extract = _run("extract", ["bench/bench_extract.py", "--seconds", "3" if full else "1"], 300)
    rows.append(_row("extraction, 60-char messages, one core", _num(r"throughput: ([\d,]+) msgs/s", extract), "msg/s",
                     ">= 2,000 msg/s (issue 4)", lambda v: v >= 2000))

    assign = _run("assignment", ["bench/bench_assignment.py", "--seconds", "2" if full else "0.5"], 300)
    rows.append(_row("assignment decisions (pure)", _num(r"([\d,]+) /s", assign), "/s", ">= 1,000 /s (assumed)", lambda v: v >= 1000))

    scan = _run("scan", ["bench/bench_scan.py", "--leads", "1000000" if full else "100000", "--due", "1000", "--reassign", "100",
                         "--ticks", "30" if full else "10"], 1800)
    leads = "1M" if full else "100k"
    rows.append(_row(f"scheduler steady tick over {leads} open leads (median)", _num(r"nothing due: median ([\d.]+) ms", scan), "ms",
                     "<= 20 ms", lambda v: v <= 20))

    formula = _run("formula", ["bench/bench_formula.py", "--seconds", "2" if full else "0.5"], 300)
    rows.append(_row("formula recompute of 100k customers (formula only)", _num(r"100k customers, formula only: ([\d.]+) s", formula), "s",
                     "< 10 s (with DB)", lambda v: v < 10))

    recompute = _run("recompute", ["bench/bench_recompute.py", "--customers", "100000" if full else "20000"], 900)
    rows.append(_row(f"health recompute of {'100k' if full else '20k'} customers after a formula change (SQLite)",
                     _num(r"recompute after a formula change: [\d,]+ customers, [\d,]+ changed, \d+ failed, ([\d.]+) s", recompute),
                     "s", "< 10 s for 100k" if full else "< 2 s for 20k (10 s / 100k, scaled)", lambda v: v < (10 if full else 2)))

    for kind, db_args in (("SQLite", []), ("PostgreSQL", ["--db", args.pg] if args.pg else None)):
        if db_args is None:
            rows.append(Row(f"lead intake → card p99 on {kind}", "skipped (no --pg)", "< 100 ms", None))
            continue
        intake = _run(f"intake-{kind.lower()}", ["bench/bench_intake.py", "--rate", "200", "--seconds", "20" if full else "8",
                                                 "--preload", "20000" if full else "5000", *db_args], 900)
        achieved = _num(r"(\d+)/s achieved", intake)
        p50 = _num(r"latency p50 ([\d.]+) ms", intake)
        rows.append(Row(f"lead intake → card at 200/s offered, {kind}: p50", "n/a (see log)" if p50 is None else f"{p50:.1f} ms",
                        "(p99 is the target)", None))
        rows.append(_row(f"lead intake → card at 200/s offered, {kind}: p99 ({achieved or 0:.0f}/s achieved)",
                         _num(r"p99 ([\d.]+) ms", intake), "ms", "< 100 ms (issue 5)", lambda v: v < 100))
        rows.append(_row(f"lead intake server CPU per lead, {kind}", _num(r"server CPU ([\d.]+) ms per lead", intake), "ms",
                         "<= 2.5 ms (assumed: 200/s in half a core)", lambda v: v <= 2.5))

    report = _run("report", ["bench/bench_report.py", "--leads", "50000" if full else "10000", "--repeat", "2",
                             "--db", f"/tmp/leadbot-bench-report-{'full' if full else 'small'}.db"], 1800)
    rows.append(_row(f"report over a year ({'50k' if full else '10k'} leads, 60 reps, worst run)", _num(r"worst ([\d.]+) s", report), "s",
                     "< 2 s", lambda v: v < 2))

    prune = _run("prune", ["bench/bench_prune.py", "--rows", "100000" if full else "30000"], 900)
    rows.append(_row("housekeeping: prune transaction p99 (batch 500)", _num(r"prune: transaction p50 [\d.]+ ms, p99 ([\d.]+) ms", prune), "ms",
                     "< 100 ms (assumed: never a long write lock)", lambda v: v < 100))
    rows.append(_row("housekeeping: rows deleted per second", _num(r"\(([\d,]+) rows/s\)", prune), "rows/s",
                     ">= 5,000 /s (assumed)", lambda v: v >= 5000))

    requests = "4000" if full else "1500"
    for kind, extra in (("SQLite", []), ("PostgreSQL", ["--db", args.pg] if args.pg else None)):
        if extra is None:
            rows.append(Row(f"scale-out on {kind}", "skipped (no --pg)", "grows with processes", None))
            continue
        out = _run(f"scaleout-{kind.lower()}", ["bench/bench_scaleout.py", "--requests", requests, *extra], 900)
        one: float | None = None
        for m in re.finditer(r"^procs (\d+): (\d+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms, cpu ms/req gen ([\d.]+) srv ([\d.]+) pg ([\d.]+), inbox (\S+)",
                             out, re.M):
            n, rps, _p50, p99v, _gen, srv, pg, check = m.groups()
            one = one if one is not None else float(rps)
            factor = float(rps) / one
            target = "x1 (one writer)" if kind == "SQLite" else f">= x{0.8 * int(n):.1f} of 1 process, given free cores (assumed)"
            met = check == "ok" if kind == "SQLite" else (factor >= 0.8 * int(n) and check == "ok")
            rows.append(Row(f"callback acks, {kind}, {n} serve process(es)",
                            f"{rps} req/s x{factor:.2f}, p99 {p99v} ms, CPU ms/req server {srv} + PostgreSQL {pg}, inbox {check}",
                            target, met))

    width = max(len(r.figure) for r in rows)
    vwidth = max(len(r.value) for r in rows)
    print(f"{'figure':<{width}} | {'value':<{vwidth}} | target | met?")
    print(f"{'-' * width}-|-{'-' * vwidth}-|--------|-----")
    for r in rows:
        met = "?" if r.met is None else ("yes" if r.met else "NO")
        print(f"{r.figure:<{width}} | {r.value:<{vwidth}} | {r.target} | {met}")


if __name__ == "__main__":
    main()
