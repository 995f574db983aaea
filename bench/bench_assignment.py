"""Assignment decisions per second: 60 reps in 3 regions, 10 rules (a figure, not a test).

Run: python3 bench/bench_assignment.py [--seconds 2]
Prints decisions/s for the pure ``decide`` (rotation state threaded through, as the store
would), for a simulated working day that also applies each decision to the snapshot, for
timeout re-assignment, and the de-duplication key functions for comparison.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handlers.assignment import (
    AssignmentRules,
    Group,
    LeadFacts,
    OrgSnapshot,
    Region,
    Rep,
    RotationState,
    decide,
    next_rep_after_timeout,
    parse_assignment,
)
from handlers.dedupe import (
    find_duplicate,
    lead_keys,
    normalize_company,
    normalize_phone,
)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SH)

REGIONS = (
    Region("华东", ("上海市", "江苏省", "浙江省", "安徽省", "山东省", "福建省", "江西省"), "m_east"),
    Region("华南", ("广东省", "广西壮族自治区", "海南省", "湖南省", "湖北省", "四川省", "重庆市"), "m_south"),
    Region("华北", ("北京市", "天津市", "河北省", "山西省", "辽宁省", "河南省", "陕西省"), "m_north"),
)
PROVINCES = [p for r in REGIONS for p in r.provinces] + [None]


def build_org(capacity: int) -> OrgSnapshot:
    """60 reps, 20 per region, varied 90-day results and some new joiners, on leave or inactive."""
    rng = random.Random(7)
    reps = []
    for i in range(60):
        region = REGIONS[i % 3].name
        reps.append(
            Rep(
                id=f"rep{i:02d}",
                name=f"销售{i:02d}",
                region=region,
                active=i % 29 != 0,
                on_leave=i % 17 == 5,
                daily_capacity=capacity + i % 5,
                won_amount_90d_fen=rng.randrange(0, 5_000_000) * 100,
                joined_at=NOW - timedelta(days=10 if i % 11 == 0 else 400),
            )
        )
    groups = (Group("大客户组", tuple(f"rep{i:02d}" for i in range(0, 60, 6)), "m_east"),)
    return OrgSnapshot(regions=REGIONS, groups=groups, reps=tuple(reps))


def build_rules() -> AssignmentRules:
    """Ten rules of the kinds manufacturers write, most specific first."""
    rules = [
        {"name": "新能源汽车大单", "when": {"industry_contains": "新能源汽车", "budget_gte": "50万"}, "to": {"pool": "province", "top_n": 3}},
        {"name": "光伏大单", "when": {"industry_contains": ["光伏", "储能"], "budget_gte": "100万"}, "to": {"group": "大客户组"}},
        {"name": "展会江浙沪", "when": {"source_in": ["展会", "展会扫码"], "province": ["江苏", "浙江", "上海"]}, "to": {"region": "华东"}},
        {"name": "深圳客户", "when": {"city": "深圳"}, "to": {"rep": "rep01"}},
        {"name": "A级线索", "when": {"score_tier": "A"}, "to": {"pool": "province", "top_n": 5}},
        {"name": "小单", "when": {"budget_lt": "5万"}, "to": {"pool": "province"}},
        {"name": "代理商", "when": {"source": "代理商"}, "to": {"group": "大客户组", "overflow": "manager"}},
        {"name": "北京央企", "when": {"province": "北京", "industry_contains": "军工"}, "to": {"rep": "rep02"}},
        {"name": "西南", "when": {"province": ["四川", "重庆"]}, "to": {"region": "华南"}},
        {"name": "百度推广", "when": {"source": "百度推广", "budget_gte": "10万"}, "to": {"pool": "province", "top_n": 2}},
    ]
    return parse_assignment({"accept_within_hours": 2, "groups": [{"name": "大客户组", "members": [f"rep{i:02d}" for i in range(0, 60, 6)], "manager": "m_east"}], "rules": rules})


def build_leads(count: int) -> list[LeadFacts]:
    """Varied leads so every rule and the default fire."""
    rng = random.Random(11)
    industries = ["新能源汽车零部件", "光伏支架", "储能", "机床", "纺织", "军工电子", None]
    sources = ["官网表单", "展会", "展会扫码", "代理商", "百度推广", "转介绍"]
    cities = ["深圳", "苏州", "杭州", None]
    budgets = [None, 2_000_000, 20_000_000, 60_000_000, 150_000_000]
    return [
        LeadFacts(
            id=i,
            province=rng.choice(PROVINCES),
            city=rng.choice(cities),
            industry=rng.choice(industries),
            source=rng.choice(sources),
            budget_fen=rng.choice(budgets),
            score_tier=rng.choice(["A", "B", "C", None]),
        )
        for i in range(count)
    ]


def timed(label: str, seconds: float, step: Callable[[int], object]) -> float:
    """Run ``step(i)`` for about ``seconds``; print and return calls per second."""
    done = 0
    start = time.perf_counter()
    while True:
        for _ in range(500):
            step(done)
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    rate = done / elapsed
    print(f"{label:<58} {rate:>12,.0f} /s   ({done:,} in {elapsed:.2f} s, {elapsed / done * 1e6:.1f} µs each)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    cfg = build_rules()
    leads = build_leads(10_000)
    roomy = build_org(capacity=10**9)  # nobody fills up: measures the decision itself
    print(f"org: {len(roomy.reps)} reps in {len(roomy.regions)} regions, {len(cfg.rules)} rules, {len(leads):,} distinct leads")

    state = [RotationState()]

    def one(i: int) -> None:
        a = decide(leads[i % len(leads)], cfg, roomy, state[0], NOW)
        state[0] = a.rotation

    timed("decide() (state threaded, capacity never binding)", args.seconds, one)

    day_org = [build_org(capacity=8)]
    day_state = [RotationState()]
    outcome = {"assigned": 0, "unassigned": 0}

    def day(i: int) -> None:
        a = decide(leads[i % len(leads)], cfg, day_org[0], day_state[0], NOW)
        if a.rep_id is not None:
            day_org[0] = day_org[0].with_received(a.rep_id)
            outcome["assigned"] += 1
        else:
            outcome["unassigned"] += 1
        day_state[0] = a.rotation
        if i % 600 == 599:  # a new day: counters back to zero
            day_org[0] = replace(build_org(capacity=8))

    timed("a working day: decide + apply to snapshot (capacity 8-12)", args.seconds, day)
    total = outcome["assigned"] + outcome["unassigned"]
    print(f"  of which assigned {outcome['assigned'] / total:.1%}, to a manager's unassigned pool {outcome['unassigned'] / total:.1%}")

    def timeout(i: int) -> None:
        lead = leads[i % len(leads)]
        next_rep_after_timeout(lead, cfg, roomy, state[0], NOW, excluded=("rep00", "rep03", "rep06"))

    timed("next_rep_after_timeout() with 3 excluded", args.seconds, timeout)

    companies = ["苏州恒锐精密机械有限公司", "恒锐精密机械（苏州）有限公司", "恆銳精密機械", "浙江省杭州市萧山区华兴电气股份有限公司"]
    phones = ["+86 139-1234-5678", "(0512) 6688-1234转806", "１３９１２３４５６７８", "400-820-8820"]
    timed("normalize_company()", args.seconds, lambda i: normalize_company(companies[i % 4]))
    timed("normalize_phone()", args.seconds, lambda i: normalize_phone(phones[i % 4]))
    existing = [lead_keys(i, customer_id=i, phone=f"139{i:08d}", company=f"客户{i}精密机械有限公司") for i in range(200)]
    probe = lead_keys(10_000, phone="+86 139 0000 0150", company="客户150精密机械")
    timed("find_duplicate() against 200 candidates", args.seconds, lambda i: find_duplicate(probe, existing))


if __name__ == "__main__":
    main()
