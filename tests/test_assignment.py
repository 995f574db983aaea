"""Assignment decisions: pools, top-N, rotation, overflow, deadlines, timeouts."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from handlers.assignment import (
    DEFAULT_RULE_NAME,
    OWNER_RULE_NAME,
    Assignment,
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

SH = ZoneInfo("Asia/Shanghai")
# Monday 2026-11-23 10:00 in Shanghai, a working day.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)

EAST = Region("华东", ("江苏省", "上海市", "浙江省"), "chenjing")
SOUTH = Region("华南", ("广东省",), "huangwei")


def rep(id: str, region: str = "华东", **kw: object) -> Rep:
    base: dict[str, object] = {"name": id.upper(), "region": region, "daily_capacity": 10, "joined_at": LONG_AGO}
    base.update(kw)
    return Rep(id=id, **base)  # type: ignore[arg-type]


def org(*reps: Rep, groups: tuple[Group, ...] = ()) -> OrgSnapshot:
    return OrgSnapshot(regions=(EAST, SOUTH), groups=groups, reps=reps)


def rules(**section: object) -> AssignmentRules:
    return parse_assignment(section)


def run(lead: LeadFacts, cfg: AssignmentRules, o: OrgSnapshot, n: int, now: datetime = NOW) -> tuple[list[Assignment], OrgSnapshot, RotationState]:
    """Assign ``n`` copies of ``lead``, applying each decision like the store would."""
    state = RotationState()
    out = []
    for i in range(n):
        a = decide(replace(lead, id=i), cfg, o, state, now)
        out.append(a)
        if a.rep_id:
            o = o.with_received(a.rep_id)
        state = a.rotation
    return out, o, state


JIANGSU = LeadFacts(1, province="江苏省", source="官网表单")


def test_default_rule_rotates_in_the_province_region_pool() -> None:
    o = org(rep("a"), rep("b"), rep("c"), rep("s", "华南"))
    result, _, _ = run(JIANGSU, rules(), o, 6)
    order = [a.rep_id or "" for a in result]
    # Equal free capacity: every round of three gives each rep one lead.
    assert order[:3] == ["a", "b", "c"] and sorted(order[3:]) == ["a", "b", "c"]
    first = result[0]
    assert first.rule_name == DEFAULT_RULE_NAME and first.pool == "华东池" and first.manager_id == "chenjing"
    assert first.explanation == "华东池 · 江苏 → 轮转 · 你今日剩余额度 9"
    assert first.remaining_today == 9
    assert first.due_at == datetime(2026, 11, 23, 12, 0, tzinfo=SH)


def test_rotation_is_weighted_by_free_capacity() -> None:
    o = org(rep("big", daily_capacity=20), rep("small", daily_capacity=10))
    result, after, _ = run(JIANGSU, rules(), o, 30)
    counts = Counter(a.rep_id for a in result)
    assert counts == {"big": 20, "small": 10}
    # Over the first 15 the split already follows the 2:1 free capacity, within one lead.
    early = Counter(a.rep_id for a in result[:15])
    assert abs(early["big"] - 10) <= 1
    assert all(r.received_today <= r.daily_capacity for r in after.reps)


def test_rotation_accounts_for_what_was_received_earlier_today() -> None:
    o = org(rep("busy", received_today=8), rep("fresh"))
    result, _, _ = run(JIANGSU, rules(), o, 5)
    assert Counter(a.rep_id for a in result)["fresh"] >= 4


@pytest.mark.parametrize(
    ("who", "why"),
    [
        (rep("x", active=False), "已停用"),
        (rep("x", on_leave=True), "休假中"),
        (rep("x", received_today=10), "今日额度已满"),
        (rep("x", daily_capacity=0), "今日额度已满"),
    ],
)
def test_unavailable_reps_are_skipped_with_a_reason(who: Rep, why: str) -> None:
    result, _, _ = run(JIANGSU, rules(), org(who, rep("y")), 3)
    assert [a.rep_id for a in result] == ["y", "y", "y"]
    assert ("x", why) in result[0].skipped


def test_nobody_free_goes_to_the_manager_with_a_reason() -> None:
    o = org(rep("a", received_today=10), rep("b", daily_capacity=3, received_today=3))
    a = decide(JIANGSU, rules(), o, RotationState(), NOW)
    assert a.rep_id is None and not a.assigned
    assert a.reason == "华东池今日额度已满"
    assert a.manager_id == "chenjing" and a.due_at is None
    assert a.explanation == "华东池 → 待经理分配：华东池今日额度已满"


def test_mixed_unavailability_is_spelled_out() -> None:
    o = org(rep("a", received_today=10), rep("b", on_leave=True), rep("c", active=False))
    a = decide(JIANGSU, rules(), o, RotationState(), NOW)
    assert a.reason == "华东池暂无可接单的销售（A今日额度已满，B休假中，C已停用）"


def test_unknown_province_is_unassigned_or_goes_to_default_region() -> None:
    o = org(rep("a"))
    lost = decide(LeadFacts(1), rules(), o, RotationState(), NOW)
    assert lost.rep_id is None and lost.reason == "线索省份未知，无法匹配区域"
    far = decide(LeadFacts(2, province="新疆维吾尔自治区"), rules(), o, RotationState(), NOW)
    assert far.reason == "省份「新疆维吾尔自治区」不属于任何区域"
    routed = decide(LeadFacts(3), rules(default_region="华东"), o, RotationState(), NOW)
    assert routed.rep_id == "a" and routed.pool == "华东池"


BIG = {
    "rules": [
        {
            "name": "新能源汽车大单",
            "when": {"industry_contains": "新能源汽车", "budget_gte": 500000},
            "to": {"pool": "province", "top_n": 3},
        }
    ]
}
BIG_LEAD = LeadFacts(1, province="江苏省", industry="新能源汽车电池", budget_fen=80_000_000)


def _sellers() -> tuple[Rep, ...]:
    # Won amounts: e > d > c > b > a
    return tuple(rep(x, won_amount_90d_fen=(i + 1) * 1_000_000_00) for i, x in enumerate("abcde"))


def test_top_n_only_picks_among_the_best_and_explains_it() -> None:
    o = org(*_sellers())
    result, _, _ = run(BIG_LEAD, rules(**BIG), o, 12)
    assert {a.rep_id for a in result} == {"c", "d", "e"}
    assert result[0].explanation == "华东池 · 新能源汽车 · 预算≥50万 → 近90天业绩前3 · 你今日剩余额度 9"
    assert result[0].rule_name == "新能源汽车大单"


def test_top_n_ranks_people_at_work_only() -> None:
    reps = list(_sellers())
    reps[4] = replace(reps[4], on_leave=True)  # e is on leave: b joins the top 3
    result, _, _ = run(BIG_LEAD, rules(**BIG), org(*reps), 6)
    assert {a.rep_id for a in result} == {"b", "c", "d"}


def test_top_n_overflows_to_the_pool_then_stops_when_told() -> None:
    reps = [replace(r, received_today=10) if r.id in "cde" else r for r in _sellers()]
    wide = decide(BIG_LEAD, rules(**BIG), org(*reps), RotationState(), NOW)
    assert wide.rep_id in {"a", "b"}
    assert "前3无人可接 → 华东池轮转" in wide.explanation
    strict = {"rules": [dict(BIG["rules"][0], to={"pool": "province", "top_n": 3, "overflow": "manager"})]}
    held = decide(BIG_LEAD, rules(**strict), org(*reps), RotationState(), NOW)
    assert held.rep_id is None and held.reason == "华东池前3今日额度已满" and held.manager_id == "chenjing"


def test_group_and_rep_targets_with_overflow() -> None:
    cfg = rules(
        groups=[{"name": "大客户组", "members": ["s", "a"], "manager": "boss"}],
        rules=[
            {"name": "展会", "when": {"source": "展会"}, "to": {"group": "大客户组"}},
            {"name": "指定", "when": {"source": "转介绍"}, "to": {"rep": "b"}},
        ],
    )
    o = org(rep("a"), rep("b"), rep("s", "华南"), groups=cfg.groups)
    fair, _, _ = run(LeadFacts(1, province="江苏省", source="展会"), cfg, o, 4)
    assert Counter(a.rep_id for a in fair) == {"a": 2, "s": 2}
    assert fair[0].pool == "大客户组" and fair[0].manager_id == "boss"
    named = decide(LeadFacts(2, province="江苏省", source="转介绍"), cfg, o, RotationState(), NOW)
    assert named.rep_id == "b" and "指定销售" in named.explanation
    away = org(rep("a"), rep("b", on_leave=True), rep("s", "华南"), groups=cfg.groups)
    fallback = decide(LeadFacts(2, province="江苏省", source="转介绍"), cfg, away, RotationState(), NOW)
    assert fallback.rep_id == "a" and "B无人可接 → 华东池轮转" in fallback.explanation
    assert ("b", "休假中") in fallback.skipped


def test_returning_customer_goes_to_its_owner_first() -> None:
    o = org(rep("a"), rep("b"))
    lead = replace(JIANGSU, owner_id="b")
    a = decide(lead, rules(), o, RotationState(version=4), NOW)
    assert a.rep_id == "b" and a.rule_name == OWNER_RULE_NAME
    assert a.explanation == "老客户再次咨询 → 原负责人 B · 你今日剩余额度 9"
    assert a.rotation == RotationState(version=4)  # the owner route does not consume a rotation turn
    off = decide(lead, rules(returning_to_owner=False), o, RotationState(), NOW)
    assert off.rule_name == DEFAULT_RULE_NAME
    on_leave = decide(lead, rules(), org(rep("a"), rep("b", on_leave=True)), RotationState(), NOW)
    assert on_leave.rep_id == "a" and ("b", "原负责人休假中") in on_leave.skipped


def test_new_rep_gets_the_floor_share() -> None:
    newbie = rep("new", daily_capacity=2, joined_at=NOW - timedelta(days=3))
    # With capacity 2 against 20s, plain weighting would give the new rep ~2 of 42 late in the day.
    o = org(rep("a", daily_capacity=20), rep("b", daily_capacity=20), newbie)
    cfg = rules(new_rep_min_share_pct=25)
    result, _, _ = run(JIANGSU, cfg, o, 8)
    got = [a.rep_id for a in result].count("new")
    assert got == 2  # 25% of 8, capped by capacity 2
    assert "新人保底" in result[0].explanation
    veteran = replace(newbie, joined_at=NOW - timedelta(days=31))
    plain, _, _ = run(JIANGSU, cfg, org(rep("a", daily_capacity=20), rep("b", daily_capacity=20), veteran), 8)
    assert [a.rep_id for a in plain].count("new") <= 1


def test_deadline_counts_business_hours_only() -> None:
    o = org(rep("a"))
    friday_evening = datetime(2026, 11, 20, 17, 0, tzinfo=SH)
    assert decide(JIANGSU, rules(), o, RotationState(), friday_evening).due_at == datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    before_labour_day = datetime(2026, 4, 30, 17, 0, tzinfo=SH)
    assert decide(JIANGSU, rules(), o, RotationState(), before_labour_day).due_at == datetime(2026, 5, 6, 10, 0, tzinfo=SH)
    makeup_saturday = datetime(2026, 5, 8, 17, 30, tzinfo=SH)
    assert decide(JIANGSU, rules(), o, RotationState(), makeup_saturday).due_at == datetime(2026, 5, 9, 10, 30, tzinfo=SH)
    night = datetime(2026, 11, 23, 23, 0, tzinfo=SH)
    assert decide(JIANGSU, rules(accept_within_hours=0.5), o, RotationState(), night).due_at == datetime(2026, 11, 24, 9, 30, tzinfo=SH)
    fast = rules(rules=[{"name": "快", "when": {"source": "官网表单"}, "to": {"pool": "province"}, "accept_within_hours": 1}])
    assert decide(JIANGSU, fast, o, RotationState(), NOW).due_at == NOW + timedelta(hours=1)
    custom = rules(business_hours=["08:30", "17:30"])
    # Half an hour left on Friday (until 17:30), 1.5 h on Monday from 08:30.
    assert decide(JIANGSU, custom, o, RotationState(), friday_evening).due_at == datetime(2026, 11, 23, 10, 0, tzinfo=SH)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        decide(JIANGSU, rules(), org(rep("a")), RotationState(), datetime(2026, 11, 23, 10, 0))


def test_same_committed_state_same_decision() -> None:
    o = org(rep("a", daily_capacity=7), rep("b", daily_capacity=5), rep("c", daily_capacity=9, received_today=2))
    state = RotationState()
    for i in range(15):
        lead = replace(JIANGSU, id=i)
        # Two processes: one keeps the object, the other reloads the committed JSON.
        mine = decide(lead, rules(), o, state, NOW)
        theirs = decide(lead, rules(), o, RotationState.from_json(state.to_json()), NOW)
        assert mine == theirs
        assert mine.rotation.version == state.version + 1
        state = RotationState.from_json(mine.rotation.to_json())
        o = o.with_received(mine.rep_id)  # type: ignore[arg-type]


def test_rotation_state_round_trip_and_pruning() -> None:
    assert RotationState.from_json(None) == RotationState()
    assert RotationState.from_json("") == RotationState()
    state = RotationState(credits={"region:华东": {"a": 3, "gone": 40}}, version=7)
    assert RotationState.from_json(state.to_json()) == state
    a = decide(JIANGSU, rules(), org(rep("a"), rep("b")), state, NOW)
    assert "gone" not in a.rotation.credits["region:华东"]  # people who left the pool lose their credit


def test_timeout_moves_to_the_next_rep_of_the_same_pool() -> None:
    o = org(*_sellers())
    cfg = rules(**BIG)
    first = decide(BIG_LEAD, cfg, o, RotationState(), NOW)
    o = o.with_received(first.rep_id)  # type: ignore[arg-type]
    later = NOW + timedelta(hours=2)
    second = next_rep_after_timeout(BIG_LEAD, cfg, o, first.rotation, later, excluded=[first.rep_id], rule_name=first.rule_name)  # type: ignore[list-item]
    assert second.rep_id in {"c", "d", "e"} - {first.rep_id}
    assert second.due_at == NOW + timedelta(hours=4)
    third = next_rep_after_timeout(BIG_LEAD, cfg, o, second.rotation, later, excluded=[first.rep_id, second.rep_id], rule_name=first.rule_name)  # type: ignore[list-item]
    assert {first.rep_id, second.rep_id, third.rep_id} == {"c", "d", "e"}
    # Top 3 all tried: the rule overflows to the rest of the pool.
    fourth = next_rep_after_timeout(BIG_LEAD, cfg, o, third.rotation, later, excluded=["c", "d", "e"], rule_name=first.rule_name)
    assert fourth.rep_id in {"a", "b"}
    nobody = next_rep_after_timeout(BIG_LEAD, cfg, o, third.rotation, later, excluded=list("abcde"), rule_name=first.rule_name)
    assert nobody.rep_id is None and nobody.manager_id == "chenjing"
    assert nobody.reason is not None and nobody.reason.endswith("已超时未接: A、B、C、D、E")


def test_timeout_keeps_the_recorded_rule_even_if_facts_changed() -> None:
    cfg = rules(**BIG)
    o = org(*_sellers())
    shrunk = replace(BIG_LEAD, budget_fen=100)  # edited after assignment: no longer matches
    again = next_rep_after_timeout(shrunk, cfg, o, RotationState(), NOW, excluded=["e"], rule_name="新能源汽车大单")
    assert again.rule_name == "新能源汽车大单" and again.rep_id in {"c", "d"}
    removed = next_rep_after_timeout(shrunk, cfg, o, RotationState(), NOW, excluded=["e"], rule_name="已删除的规则")
    assert removed.rule_name == DEFAULT_RULE_NAME and removed.rep_id != "e"


def test_timeout_never_returns_to_the_owner_who_let_it_lapse() -> None:
    o = org(rep("a"), rep("b"))
    lead = replace(JIANGSU, owner_id="b")
    again = next_rep_after_timeout(lead, rules(), o, RotationState(), NOW, excluded=["b"], rule_name=OWNER_RULE_NAME)
    assert again.rep_id == "a"


def test_short_province_names_are_accepted() -> None:
    a = decide(replace(JIANGSU, province="江苏"), rules(), org(rep("a")), RotationState(), NOW)
    assert a.rep_id == "a" and a.pool == "华东池"


def test_group_then_region_both_full_names_both() -> None:
    cfg = rules(
        groups=[{"name": "大客户组", "members": ["s"]}],
        rules=[{"name": "展会", "when": {"source": "展会"}, "to": {"group": "大客户组"}}],
    )
    o = org(rep("a", received_today=10), rep("s", "华南", on_leave=True), groups=cfg.groups)
    a = decide(LeadFacts(1, province="江苏省", source="展会"), cfg, o, RotationState(), NOW)
    assert a.rep_id is None and a.manager_id == "chenjing"
    assert a.reason == "大客户组、华东池暂无可接单的销售（S休假中，A今日额度已满）"


def test_missing_group_at_runtime_still_tries_the_home_region() -> None:
    cfg = rules(
        groups=[{"name": "大客户组", "members": ["a"]}],
        rules=[{"name": "展会", "when": {"source": "展会"}, "to": {"group": "大客户组"}}],
    )
    # The org snapshot was built without groups and the config's group list is gone too.
    stale = replace(cfg, groups=())
    a = decide(LeadFacts(1, province="江苏省", source="展会"), stale, org(rep("b")), RotationState(), NOW)
    assert a.rep_id == "b"
    full = decide(LeadFacts(1, province="江苏省", source="展会"), stale, org(rep("b", received_today=10)), RotationState(), NOW)
    assert full.reason == "分组「大客户组」不存在，华东池今日额度已满"
