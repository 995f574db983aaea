"""Compiled-formula evaluations per second for the lead health score (a figure, not a test).

Run: python3 bench/bench_formula.py [--seconds 2]
Target: well over 100k evaluations/s, so 100k customers recompute in < 10 s with the DB.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handlers.formula import FieldType, compile_formula  # noqa: E402
from handlers.formula.examples import (  # noqa: E402
    DEALER_REBATE,
    DEALER_REBATE_FIELDS,
    HEALTH_SCORE,
    HEALTH_SCORE_FIELDS,
)

TODAY = date(2026, 11, 23)


def health_records(count: int) -> list[dict[str, object]]:
    """Varied customers so every branch of the score is taken."""
    industries = ["汽车零部件", "电子", "纺织", "机械"]
    return [
        {
            "行业潜力值": 40 + (index * 7) % 60,
            "采购活跃度": index % 6,
            "微信互动次数": Decimal(index % 40),
            "官网停留分钟": Decimal(index % 9) / 2,
            "白皮书下载": index % 4,
            "最近跟进日期": TODAY - timedelta(days=index % 90),
            "行业": industries[index % 4],
        }
        for index in range(count)
    ]


def rebate_records(count: int) -> list[dict[str, object]]:
    """Dealers across the volume tiers."""
    return [
        {
            "采购额": Decimal(137_913 * (index % 50 + 1)) / 100 * 37,
            "回款率": Decimal(90 + index % 10) / 100,
            "新品占比": Decimal(index % 50) / 100,
        }
        for index in range(count)
    ]


def measure(label: str, source: str, fields: dict[str, FieldType], records: list[dict[str, object]], seconds: float,
            explain: bool = False) -> float:
    """Evaluate over ``records`` repeatedly for about ``seconds``; print and return evals/s."""
    formula = compile_formula(source, fields)
    run = formula.explain if explain else formula.evaluate
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for record in records:
            run(record, today=TODAY)
        done += len(records)
    elapsed = time.perf_counter() - started
    rate = done / elapsed
    print(f"{label:<28} {rate:>12,.0f} evals/s  ({done} evals in {elapsed:.2f} s)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    started = time.perf_counter()
    compiles = 0
    while time.perf_counter() - started < 0.5:
        compile_formula(HEALTH_SCORE, HEALTH_SCORE_FIELDS)
        compiles += 1
    print(f"{'compile health score':<28} {compiles / (time.perf_counter() - started):>12,.0f} compiles/s")
    health = health_records(1000)
    rate = measure("health score evaluate", HEALTH_SCORE, dict(HEALTH_SCORE_FIELDS), health, args.seconds)
    measure("health score explain", HEALTH_SCORE, dict(HEALTH_SCORE_FIELDS), health, args.seconds / 2, explain=True)
    measure("dealer rebate evaluate", DEALER_REBATE, dict(DEALER_REBATE_FIELDS), rebate_records(1000), args.seconds)
    print(f"100k customers, formula only: {100_000 / rate:.2f} s")


if __name__ == "__main__":
    main()
