"""A small, realistic week of lead events with hand-computed answers (see test_metrics_fixture.py).

Week of Monday 2026-03-02 to Sunday 2026-03-08 (no holiday, no make-up day), read as of
Monday 2026-03-16 10:00 Shanghai, so every 24 h / 72 h / 7-day window has closed.

L1 官网表单 华东 张伟 60万: assigned at once, accepted 30 min later, quote request by phone
   at 11:00, a second call on Wednesday, opportunity on Thursday 10:00. The model lead.
L2 展会 华东 李娜 tier A, no city: accepted next morning, first call Wednesday 09:00 (42 h,
   12 business hours), a second note the same afternoon (same day: one interaction).
L3 抖音 华东 张伟 10万: marked invalid (空号) after 30 minutes.
L4 电话 华东, Wednesday 20:00, no budget: nobody could take it, still unassigned.
L5 官网表单 华南 刘洋 80万: Friday 17:00; accepted Monday 09:30 (64.5 h), sample request
   Monday 11:00 (66 h wall clock, but only 3 business hours), a complaint on Tuesday 10:00,
   answered Thursday 15:00 (23 business hours).
L6 转介绍 华东 张伟, no phone: Saturday, accepted at once, never contacted; the import's note
   (member "import") says 报价 but is form text, not contact.
L7 抖音 华南 刘洋 tier A, no industry: Thursday 11:00, assigned, never accepted.
Outside the week: L0 (Sunday 03-01) and L8 (Monday 03-09).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import Session

from nlp.calendar import SHANGHAI
from store.models import AuditEvent, FollowUp, Lead, Member, Opportunity, Region

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=SHANGHAI)


def t(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-03-``day`` ``hour``:``minute`` in Shanghai."""
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI)


def _lead(session: Session, lead_id: int, created: datetime, source: str, region: str, owner: str | None, status: str, **extra: object) -> Lead:
    values: dict[str, object] = dict(
        company=f"测试客户{lead_id}有限公司", contact_name="王建国", phone="13912345678", province="江苏", city="苏州市",
        industry="新能源汽车", budget_fen=20_000_000, tier=None,
    )
    values.update(extra)
    lead = Lead(id=lead_id, source=source, region=region, owner_id=owner, status=status, created_at=created, updated_at=created, **values)  # type: ignore[arg-type]
    session.add(lead)
    session.flush()  # follow-ups and opportunities reference it
    session.add(AuditEvent(entity="lead", entity_id=lead_id, actor=f"source:{source}", action="created", at=created))
    return lead


def _audit(session: Session, lead_id: int, action: str, at: datetime, actor: str = "engine") -> None:
    session.add(AuditEvent(entity="lead", entity_id=lead_id, actor=actor, action=action, at=at))


def _follow(session: Session, lead_id: int, member: str, at: datetime, text: str, intents: tuple[str, ...] = (),
            sentiment: str = "neutral", status: str = "confirmed") -> None:
    fields = {"intents": list(intents), "sentiment": sentiment, "amounts": []} if intents or sentiment != "neutral" else {}
    session.add(FollowUp(lead_id=lead_id, member_id=member, text=text, fields_json=json.dumps(fields, ensure_ascii=False),
                         status=status, created_at=at, confirmed_at=at))


def seed_org(session: Session) -> None:
    """Two regions, a manager and three reps."""
    session.add(Region(name="华东", provinces=json.dumps(["江苏"], ensure_ascii=False), manager_id="chenjing"))
    session.add(Region(name="华南", provinces=json.dumps(["广东"], ensure_ascii=False), manager_id="huangwei"))
    session.add(Member(id="admin", name="系统管理员", role="admin"))
    session.add(Member(id="chenjing", name="陈静", role="manager", region="华东"))
    session.add(Member(id="huangwei", name="黄伟", role="manager", region="华南"))
    session.add(Member(id="zhangwei", name="张伟", role="rep", region="华东", manager_id="chenjing"))
    session.add(Member(id="lina", name="李娜", role="rep", region="华东", manager_id="chenjing"))
    session.add(Member(id="liuyang", name="刘洋", role="rep", region="华南", manager_id="huangwei"))
    session.flush()


def seed_week(session: Session, *, with_org: bool = True) -> None:
    """The week described in the module docstring (``with_org=False`` when the app already
    synced the template organisation, which has the same people)."""
    if with_org:
        seed_org(session)
    # L0: the Sunday before (outside the period) — would otherwise be a black hole.
    _lead(session, 100, t(1, 12), "官网表单", "华东", "zhangwei", "assigned")
    _audit(session, 100, "assigned", t(1, 12))

    _lead(session, 1, t(2, 9, 30), "官网表单", "华东", "zhangwei", "accepted", budget_fen=60_000_000)
    _audit(session, 1, "assigned", t(2, 9, 31))
    _audit(session, 1, "accepted", t(2, 10, 0), "zhangwei")
    _follow(session, 1, "zhangwei", t(2, 11), "电话沟通，客户要伺服压装机报价", ("quote_request",))
    _follow(session, 1, "zhangwei", t(2, 12), "好", status="draft")  # an unconfirmed draft is not contact
    _follow(session, 1, "zhangwei", t(4, 14), "发了报价单，客户下周来看样机", ("visit_planned",))
    session.add(Opportunity(lead_id=1, owner_id="zhangwei", name="伺服压装机", created_at=t(5, 10), updated_at=t(5, 10)))

    _lead(session, 2, t(2, 15), "展会", "华东", "lina", "accepted", city=None, tier="A")
    _audit(session, 2, "assigned", t(2, 15))
    _audit(session, 2, "accepted", t(3, 10), "lina")
    _follow(session, 2, "lina", t(4, 9), "客户说考虑一下，再联系")
    _follow(session, 2, "lina", t(4, 16), "又打了一次电话，客户在出差")

    _lead(session, 3, t(3, 10), "抖音", "华东", "zhangwei", "invalid", budget_fen=10_000_000, invalid_reason="空号")
    _audit(session, 3, "assigned", t(3, 10))
    _audit(session, 3, "invalid", t(3, 10, 30), "zhangwei")

    _lead(session, 4, t(4, 20), "电话", "华东", None, "unassigned", budget_fen=None)
    _audit(session, 4, "unassigned", t(4, 20))

    _lead(session, 5, t(6, 17), "官网表单", "华南", "liuyang", "accepted", budget_fen=80_000_000, province="广东", city="深圳市")
    _audit(session, 5, "assigned", t(6, 17))
    _audit(session, 5, "accepted", t(9, 9, 30), "liuyang")
    _follow(session, 5, "liuyang", t(9, 11), "电话沟通，客户确认要样品测试", ("sample_request",))
    _follow(session, 5, "liuyang", t(10, 10), "客户投诉上次样品包装破损", ("complaint",), sentiment="negative")
    _follow(session, 5, "liuyang", t(12, 15), "寄出新样品，客户确认收到")

    _lead(session, 6, t(7, 10), "转介绍", "华东", "zhangwei", "accepted", phone="")
    _audit(session, 6, "assigned", t(7, 10))
    _audit(session, 6, "accepted", t(7, 10, 5), "zhangwei")
    _follow(session, 6, "import", t(7, 10), "客户要报价，下周联系", ("quote_request",))

    _lead(session, 7, t(5, 11), "抖音", "华南", "liuyang", "assigned", industry=None, tier="A", province="广东", city="广州市")
    _audit(session, 7, "assigned", t(5, 11))

    # L8: the Monday after (outside the period).
    _lead(session, 108, t(9, 9), "抖音", "华南", "liuyang", "assigned")
    _audit(session, 108, "assigned", t(9, 9))
    session.flush()
