"""Full health-score recompute after a formula change, and formula evaluations per second.

    python3 bench/bench_recompute.py [--customers 100000] [--batch 5000]

Builds a SQLite file with N customers (with follow-ups, contacts, open deals and scoring
facts for a share of them), scores them with the default formula, then changes the
formula and times the recompute of every customer (target: < 10 s for 100k on SQLite).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from handlers.scoring import default_scoring, health_of, parse_scoring, recompute_all  # noqa: E402
from nlp.calendar import SHANGHAI  # noqa: E402
from store.db import Database, upgrade  # noqa: E402
from store.models import Contact, Customer, FollowUp, Opportunity  # noqa: E402
from store.models_sales import ScoringFacts  # noqa: E402

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)
CHANGED = ("IF(行业 IN (\"电子\", \"汽车零部件\"), 30, 10) + MIN(跟进次数*6, 30) + IF(最近跟进天数<=30, 20, 0)"
           " + IF(商机金额>=50万, 10, 0) + MIN(微信互动次数*0.5, 10)")


def build(db: Database, n: int) -> None:
    rng = random.Random(7)
    industries = ["电子", "机械", "汽车零部件", "医疗器械", "化工"]
    with db.engine.begin() as conn:
        conn.execute(insert(Customer.__table__), [  # type: ignore[arg-type]
            {"name": f"客户{i}", "name_norm": f"客户{i}", "industry": industries[i % 5], "budget_fen": rng.randrange(0, 10**8),
             "created_at": NOW, "updated_at": NOW} for i in range(1, n + 1)])
        conn.execute(insert(FollowUp.__table__), [  # type: ignore[arg-type]
            {"customer_id": rng.randrange(1, n + 1), "member_id": "zhangwei", "text": "x", "fields_json": "{}", "status": "confirmed",
             "created_at": NOW - timedelta(days=rng.randrange(0, 120))} for _ in range(n * 2)])
        conn.execute(insert(Contact.__table__), [  # type: ignore[arg-type]
            {"customer_id": rng.randrange(1, n + 1), "name": "王", "title": "主任"} for _ in range(n)])
        conn.execute(insert(Opportunity.__table__), [  # type: ignore[arg-type]
            {"customer_id": i, "owner_id": "zhangwei", "name": "商机", "amount_fen": rng.randrange(10**6, 10**8), "stage": "报价",
             "created_at": NOW, "updated_at": NOW} for i in range(1, n + 1, 4)])
        conn.execute(insert(ScoringFacts.__table__), [  # type: ignore[arg-type]
            {"entity": "customer", "entity_id": i, "facts_json": f'{{"微信互动次数": "{rng.randrange(0, 40)}"}}', "updated_at": NOW}
            for i in range(1, n + 1, 2)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    rules = default_scoring()

    record = {"行业": "电子", "省份": "江苏", "城市": "苏州", "预算": Decimal("600000"), "跟进次数": Decimal(3),
              "最近跟进天数": Decimal(5), "未结工单": Decimal(0), "商机金额": Decimal("480000"), "联系人数": Decimal(2),
              "微信互动次数": Decimal(12), "官网停留分钟": Decimal(4), "白皮书下载": Decimal(1)}
    today = NOW.date()
    rounds = 200_000
    started = time.perf_counter()
    for _ in range(rounds):
        health_of(rules, record, today)
    per_second = rounds / (time.perf_counter() - started)
    print(f"health formula (score + clamp + tier): {per_second:,.0f} evaluations/s")

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        db = Database(url)
        started = time.perf_counter()
        build(db, args.customers)
        print(f"built {args.customers:,} customers with follow-ups, contacts, deals, facts in {time.perf_counter() - started:.1f} s")
        first = recompute_all(db.transaction, rules, NOW, batch=args.batch, only=("health",))["health"]
        print(f"initial scoring: {first.records:,} customers, {first.changed:,} written, {first.seconds:.2f} s")
        changed = parse_scoring({"fields": {"微信互动次数": "number"}, "health": {"formula": CHANGED}})
        result = recompute_all(db.transaction, changed, NOW, batch=args.batch, only=("health",))["health"]
        verdict = "OK" if result.seconds < 10 else "over the 10 s target"
        print(f"recompute after a formula change: {result.records:,} customers, {result.changed:,} changed, "
              f"{result.failed} failed, {result.seconds:.2f} s ({result.records / result.seconds:,.0f}/s) — {verdict}")
        db.close()


if __name__ == "__main__":
    main()
