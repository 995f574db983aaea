"""The full manager report over a year of data (a figure, not a test).

Run: python3 bench/bench_report.py [--leads 50000] [--reps 60] [--db PATH] [--repeat 3] [--charts]
Target: < 2 s on SQLite for 1 year, 60 reps, 50,000 leads (with their audit trail,
follow-ups and opportunities), from the SQL to the last figure of :class:`handlers.metrics.Summary`.

The generated database is kept (``--db``, default /tmp/leadbot-bench-report.db) so a
second run skips the seeding; delete it to start over.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from handlers import metrics, reports  # noqa: E402
from nlp.calendar import SHANGHAI  # noqa: E402
from store.db import Database, upgrade  # noqa: E402
from store.models import AuditEvent, FollowUp, Lead, Member, Opportunity, Region  # noqa: E402

YEAR_START = datetime(2025, 11, 1, tzinfo=SHANGHAI)
NOW = datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI)
REGIONS = ("华东", "华南", "华北", "华中", "西南", "西北")
SOURCES = ("官网表单", "抖音", "展会", "微信转发", "电话", "转介绍")
INTENTS = ("quote_request", "sample_request", "visit_planned", "upgrade_need", "sign_intent", "complaint", "churn_risk")
NOTES = ("电话沟通，客户要报价", "客户说下周来看样机", "发了资料，等客户回复", "客户在出差，下周再联系", "客户对价格有异议", "已约好上门拜访")


def seed(db: Database, leads: int, reps: int, rng: random.Random) -> None:
    """A year of leads spread over the reps, each with a plausible history."""
    utc = timezone.utc
    with db.session() as s:
        s.execute(insert(Region), [{"name": r, "provinces": "[]", "manager_id": f"m{i}"} for i, r in enumerate(REGIONS)])
        members = [{"id": f"m{i}", "name": f"经理{i}", "role": "manager", "region": r} for i, r in enumerate(REGIONS)]
        members += [{"id": f"r{i:02d}", "name": f"销售{i:02d}", "role": "rep", "region": REGIONS[i % len(REGIONS)]} for i in range(reps)]
        s.execute(insert(Member), members)
        lead_rows, audit_rows, follow_rows, opp_rows = [], [], [], []
        span = (NOW - YEAR_START).total_seconds()
        for lead_id in range(1, leads + 1):
            created = (YEAR_START + timedelta(seconds=rng.random() * span)).astimezone(utc)
            rep = f"r{rng.randrange(reps):02d}"
            region = REGIONS[int(rep[1:]) % len(REGIONS)]
            fate = rng.random()
            status = "unassigned" if fate < 0.03 else "invalid" if fate < 0.15 else "accepted" if fate < 0.9 else "assigned"
            owner = None if status == "unassigned" else rep
            lead_rows.append({
                "id": lead_id, "company": f"客户{lead_id}有限公司", "contact_name": "王经理" if rng.random() < 0.9 else "",
                "phone": "13912345678" if rng.random() < 0.95 else "", "province": "江苏", "city": "苏州市" if rng.random() < 0.8 else None,
                "industry": "机械" if rng.random() < 0.85 else None, "budget_fen": rng.choice((None, 20_000_000, 60_000_000)),
                "source": rng.choice(SOURCES), "note": "", "status": status, "owner_id": owner, "region": region,
                "tier": rng.choice((None, "A", "B", "C")), "explanation": "", "created_at": created, "updated_at": created,
            })
            audit_rows.append({"entity": "lead", "entity_id": lead_id, "actor": "source", "action": "created", "detail": "", "at": created})
            if owner is None:
                audit_rows.append({"entity": "lead", "entity_id": lead_id, "actor": "engine", "action": "unassigned", "detail": "", "at": created})
                continue
            assigned = created + timedelta(minutes=rng.expovariate(1 / 20))
            audit_rows.append({"entity": "lead", "entity_id": lead_id, "actor": "engine", "action": "assigned", "detail": f"→ {rep}", "at": assigned})
            if status == "assigned":
                continue
            screened = assigned + timedelta(hours=rng.expovariate(1 / 6))
            audit_rows.append({"entity": "lead", "entity_id": lead_id, "actor": rep, "action": "accepted" if status == "accepted" else "invalid",
                               "detail": "", "at": screened})
            if status == "invalid":
                continue
            at = screened
            for _ in range(rng.choice((0, 1, 2, 3, 3, 4, 6))):
                at = at + timedelta(hours=rng.expovariate(1 / 30))
                intents = [rng.choice(INTENTS)] if rng.random() < 0.5 else []
                fields = {"intents": intents, "sentiment": "negative" if "complaint" in intents else "neutral"}
                follow_rows.append({"lead_id": lead_id, "member_id": rep, "text": rng.choice(NOTES), "fields_json": json.dumps(fields),
                                    "status": "confirmed", "created_at": at, "confirmed_at": at})
            if rng.random() < 0.12:
                opp_at = at + timedelta(days=rng.expovariate(1 / 5))
                opp_rows.append({"lead_id": lead_id, "owner_id": rep, "name": f"商机{lead_id}", "stage": "首通电话",
                                 "created_at": opp_at, "updated_at": opp_at})
        s.execute(insert(Lead), lead_rows)
        for table, rows in ((AuditEvent, audit_rows), (FollowUp, follow_rows), (Opportunity, opp_rows)):
            for i in range(0, len(rows), 20_000):
                s.execute(insert(table), rows[i:i + 20_000])
        s.commit()


def main() -> int:
    """Seed (once), then time the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--db", default="/tmp/leadbot-bench-report.db")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--charts", action="store_true", help="also time the four charts")
    args = parser.parse_args()

    url = f"sqlite:///{args.db}"
    fresh = not Path(args.db).exists()
    upgrade(url)
    db = Database(url)
    try:
        if fresh:
            t0 = time.perf_counter()
            seed(db, args.leads, args.reps, random.Random(20261101))
            print(f"seeded in {time.perf_counter() - t0:.1f} s")
        with db.session() as s:
            counts = {m.__name__: s.execute(select(func.count()).select_from(m)).scalar_one() for m in (Lead, AuditEvent, FollowUp, Opportunity)}
        print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        period = metrics.Period.since(date(2025, 11, 1), NOW)
        times = []
        for _ in range(args.repeat):
            with db.session() as s:
                t0 = time.perf_counter()
                summary = metrics.summary(s, NOW, period)
                times.append(time.perf_counter() - t0)
        print("runs: " + ", ".join(f"{x:.2f}" for x in times))
        print(f"full report, 1 year, {summary.leads:,} leads, {len(summary.reps)} reps: best {min(times):.2f} s, "
              f"worst {max(times):.2f} s (target < 2 s)")
        with db.session() as s:
            t0 = time.perf_counter()
            facts = metrics.load_facts(s, period, metrics.Scope())
            t1 = time.perf_counter()
            metrics.summarise(facts, metrics.load_objections(s, period, metrics.Scope()), metrics.member_names(s), NOW, period, metrics.Scope())
            t2 = time.perf_counter()
        print(f"  of which SQL + rows: {t1 - t0:.2f} s, figures: {t2 - t1:.2f} s")
        print(f"  24h action {summary.action_24h.rate.pct()}, black hole {summary.black_holes.overall.pct()}, "
              f"activation {summary.activation_7d.pct()}")
        if args.charts:
            for chart in reports.CHARTS:
                t0 = time.perf_counter()
                png = reports.summary_chart(summary, chart)
                print(f"  chart {chart}: {time.perf_counter() - t0:.2f} s, {len(png) / 1024:.0f} KiB")
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
