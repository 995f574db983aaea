"""Each metric against the hand-computed week of tests/metrics_fixture.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlmodel import Session

from handlers import metrics
from handlers.metrics import Period, Rate, Scope
from store.db import Database
from tests.metrics_fixture import NOW, seed_week, t


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    db = Database(db_url)
    with db.session() as s:
        seed_week(s)
        s.commit()
        yield s
    db.close()


WEEK = Period.since(date(2026, 3, 2), NOW, until=date(2026, 3, 8))


@pytest.fixture
def summary(session: Session) -> metrics.Summary:
    return metrics.summary(session, NOW, WEEK)


def test_cohort_is_the_week_only(session: Session) -> None:
    ids = [f.id for f in metrics.load_facts(session, WEEK, Scope())]
    assert ids == [1, 2, 3, 4, 5, 6, 7]


def test_first_steps_of_a_lead_come_from_audit_and_personal_followups(session: Session) -> None:
    facts = {f.id: f for f in metrics.load_facts(session, WEEK, Scope())}
    l6 = facts[6]
    assert l6.first_touch is None and l6.need_at is None, "the import's note is not contact"
    l1 = facts[1]
    assert metrics.when(l1.need_at) == metrics.datetime(2026, 3, 2, 3, 0, tzinfo=metrics.timezone.utc)  # 11:00 Shanghai
    assert l1.created_at == pytest.approx(t(2, 9, 30).timestamp(), abs=1e-3)
    assert facts[2].completeness == pytest.approx(6 / 7)
    assert l1.interactions_total == 2, "the draft is not an interaction"
    assert facts[2].interactions_total == 1, "two notes on one day are one interaction"
    assert facts[5].interactions_window == 3
    assert facts[3].invalid_at is not None and facts[3].first_screened == facts[3].invalid_at


def test_action_24h(summary: metrics.Summary) -> None:
    a = summary.action_24h
    # eligible: L1 L2 L4 L5 L6 L7 (L3 screened invalid); assigned: all but L4; screened in 24 h:
    # L1 L2 L6; touched in 24 h: L1; need confirmed in 24 h: L1.
    assert a.steps() == [("线索", 6), ("24h内分配", 5), ("24h内首次筛选", 3), ("24h内首次触达", 1), ("24h内需求确认", 1)]
    assert a.rate == Rate(1, 6)


def test_activation(summary: metrics.Summary) -> None:
    # L1 (Mon, Wed) and L5 (Mon, Tue, Thu) had two effective interactions on different days.
    assert summary.activation_7d == Rate(2, 6)


def test_black_holes_count_business_hours(summary: metrics.Summary) -> None:
    bh = summary.black_holes
    # L5: 66 h after creation on the wall clock, but 3 business hours (Fri 17-18, Mon 9-11): fine.
    # L2: 12 business hours: a black hole. L3 was screened out in 30 minutes: not counted.
    assert bh.overall == Rate(4, 6)
    assert bh.by_source == {"官网表单": Rate(0, 2), "展会": Rate(1, 1), "电话": Rate(1, 1), "转介绍": Rate(1, 1), "抖音": Rate(1, 1)}
    assert bh.by_region == {"华东": Rate(3, 4), "华南": Rate(1, 2)}
    assert bh.by_rep == {"zhangwei": Rate(1, 2), "lina": Rate(1, 1), "liuyang": Rate(1, 2), "未分配": Rate(1, 1)}


def test_unassigned_48h_and_untouched_72h(summary: metrics.Summary) -> None:
    assert summary.unassigned_48h == Rate(1, 7)
    # L4, L6, L7 untouched; L2 (42 h) and L5 (66 h) were reached within 72 h.
    assert summary.untouched_72h == Rate(3, 6)


def test_lead_to_opportunity_median(summary: metrics.Summary) -> None:
    assert summary.converted == 1
    assert summary.lead_to_opp_median_days == pytest.approx(3 + 0.5 / 24)


def test_cross_department_response(summary: metrics.Summary) -> None:
    # High potential from marketing sources: L1 (60万), L2 (A), L5 (80万), L7 (A); L7 never claimed.
    assert summary.cross_dept_response == Rate(3, 4)


def test_info_complete(summary: metrics.Summary) -> None:
    # L2 no city, L4 no budget, L6 no phone, L7 no industry.
    assert summary.info_complete == Rate(3, 7)


def test_info_complete_uses_the_industry_key_fields(session: Session) -> None:
    settings = metrics.MetricSettings(key_fields_by_industry={"新能源汽车": ("company", "phone")})
    s = metrics.summary(session, NOW, WEEK, settings=settings)
    # Now only L6 (no phone) fails among 新能源汽车 leads; L2/L4 pass; L7 (no industry) keeps the default list.
    assert s.info_complete == Rate(5, 7)


def test_health_radar_by_region(summary: metrics.Summary) -> None:
    east = summary.health_by_region.groups["华东"]
    south = summary.health_by_region.groups["华南"]
    assert east == pytest.approx((100 * 32 / 35, 25.0, 50.0, 100.0, 25.0))
    assert south == pytest.approx((100 * 13 / 14, 50.0, 100.0, 50.0, 50.0))


def test_dwell_heatmap(summary: metrics.Summary) -> None:
    h = summary.heatmap
    assert h.stages == ("待分配", "待筛选", "待首触", "待确认需求", "待转商机")
    rows = dict(zip(h.reps, h.hours))
    # 张伟: L1 (1 min, 29 min, 1 h, 0, 26 h), L3 (0, 30 min), L6 (0, 0 on a Saturday, then
    # 46 business hours without contact up to now).
    assert rows["zhangwei"] == pytest.approx((1 / 60 / 3, (29 / 60 + 0.5) / 3, (1 + 46) / 2, 0.0, 26.0))
    # 李娜: L2 accepted after 4 business hours, first call 8 business hours later; 待确认需求 still open (not counted).
    assert rows["lina"][:3] == pytest.approx((0.0, 4.0, 8.0)) and rows["lina"][3:] == (None, None)
    # 刘洋: L5 (0, 1.5, 1.5, 0), L7 waiting for 接受 since Thursday 11:00: 62 business hours.
    assert rows["liuyang"][:4] == pytest.approx((0.0, (1.5 + 62) / 2, 1.5, 0.0)) and rows["liuyang"][4] is None
    i = h.reps.index("lina")
    assert h.ratio(i, 1) == pytest.approx(4.0 / 2.0)


def test_rep_capabilities(summary: metrics.Summary) -> None:
    reps = {c.rep: c for c in summary.reps}
    assert set(reps) == {"zhangwei", "lina", "liuyang"}
    assert reps["zhangwei"].first_contact_conversion == Rate(1, 1)
    assert reps["lina"].first_contact_conversion == Rate(0, 1)
    assert reps["liuyang"].objections == 1
    assert reps["liuyang"].objection_median_hours == pytest.approx(23.0)  # Tue 10:00 → Thu 15:00
    assert reps["zhangwei"].objection_median_hours is None
    assert all(c.quote_open_rate == "未采集" for c in summary.reps)
    assert reps["liuyang"].activation == Rate(1, 2) and reps["zhangwei"].black_hole == Rate(1, 2)


def test_scope_region_and_rep(session: Session) -> None:
    south = metrics.summary(session, NOW, WEEK, Scope(region="华南"))
    assert south.leads == 2 and south.black_holes.overall == Rate(1, 2)
    mine = metrics.summary(session, NOW, WEEK, Scope(rep="zhangwei"))
    assert mine.leads == 3 and mine.invalid == 1


def test_windows_not_over_are_left_out(session: Session) -> None:
    # As of Friday 03-06 18:00, L5 (17:00) is an hour old and L6/L7 do not exist yet in
    # effect; L4 (Wed 20:00) has had only 46 hours: not yet counted for 48 h.
    early = metrics.datetime(2026, 3, 6, 18, 0, tzinfo=metrics.SHANGHAI)
    period = Period.since(date(2026, 3, 2), early)
    s = metrics.summary(session, early, period)
    assert s.leads == 6  # L1-L5 and L7 (created before 18:00)
    assert s.unassigned_48h.den == 3  # L1, L2, L3 only
    assert s.activation_7d.den == 0


def test_summary_json_shape(summary: metrics.Summary) -> None:
    data = summary.to_dict()
    assert data["action_24h"]["num"] == 1 and data["action_24h"]["den"] == 6
    assert data["black_hole"]["by_rep"]["未分配"] == {"num": 1, "den": 1, "value": 1.0}
    assert data["reps"][0]["quote_open_rate"] == "未采集"
    assert data["lead_to_opportunity"]["median_days"] == pytest.approx(3.02, abs=0.01)


def test_business_clock_agrees_with_the_calendar() -> None:
    hours = metrics.BusinessHours()
    clock = metrics.BusinessClock(hours, date(2026, 1, 1), date(2026, 12, 31))
    points = [metrics.datetime(2026, m, d, h, mi, tzinfo=metrics.SHANGHAI) for m, d, h, mi in
              [(2, 13, 17, 30), (2, 14, 8, 0), (2, 24, 12, 0), (3, 7, 10, 5), (3, 16, 10, 0), (4, 3, 23, 0), (5, 9, 9, 30), (10, 8, 18, 30)]]
    for a in points:
        for b in points:
            expected = hours.between(a, b).total_seconds() / 3600
            assert clock.between(a, b) == pytest.approx(expected), (a, b)
