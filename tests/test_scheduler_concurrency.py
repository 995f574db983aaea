"""Two scheduler instances on one database for a simulated week: every alert is sent exactly once.

On SQLite the write lock serialises the two; on PostgreSQL (``LEADBOT_TEST_POSTGRES_URL``)
they really overlap, claiming rows with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from handlers.context import Outgoing
from handlers.tickets import TicketPolicy, open_ticket
from scheduler.config import ScanSettings
from scheduler.scans import run_all
from store.db import upgrade
from store.models import AuditEvent, Member
from store.models_schedule import AlertRecord
from tests.test_scheduler_world import World, make_world, sh

START = sh(2026, 3, 9, 9, 0)  # a Monday
SETTINGS = ScanSettings(tickets=TicketPolicy(owner="wangqiang", supervisor="chenjing", vp="admin"))
# Alerts about one entity each, whatever the interleaving. (Who has a 今日待办 depends on
# which rep the rotation gave a re-assigned lead, which may differ between runs.)
PER_ENTITY_KINDS = ("first_touch", "stage_due", "sign_intent", "next_contact", "weekly", "ticket")


def seed(w: World) -> list[str]:
    """Leads to time out, leads to touch or not, deadlines, intents, dates and tickets.

    Returns the alert keys the ticket handler sent at once (the P0 owner's card).
    """
    for i in range(6):
        w.clock.set(START + timedelta(minutes=7 * i))
        w.lead(company=f"苏州并发测试{i}号有限公司", phone=f"1391111000{i}")
        w.lead(company=f"广州并发测试{i}号有限公司", phone=f"1392222000{i}", province="广东", city="广州市")
    for i in range(5):
        lead = w.accepted_lead(START + timedelta(hours=i), tier="A" if i % 2 else "B", owner=["zhangwei", "lina"][i % 2],
                               company=f"老客户{i}")
        if i % 3 == 0:
            w.touch(lead.id, START + timedelta(hours=i, minutes=30), fields={"intents": ["sign_intent"]},
                    next_contact_on=date(2026, 3, 11 + i), member=lead.owner_id)
        w.opportunity(lead.owner_id, START + timedelta(days=i, hours=3), name=f"商机{i}")
    w.clock.set(START + timedelta(hours=2))
    sent: list[str] = []
    for text in ("客户反馈 XX 设备报错 E04，产线停了", "客户反馈设备报警 F12"):
        _, out = w.tx(lambda s, text=text: open_ticket(s, s.get(Member, "zhangwei"), text, w.ctx, SETTINGS.tickets, "seed"))
        sent += [o.dedupe_key for o in out if o.dedupe_key.startswith("alert:")]
    return sent


def ticks() -> list[datetime]:
    """Every 30 minutes for a week, plus a few odd minutes."""
    out, t = [], START
    while t <= START + timedelta(days=7):
        out.append(t)
        t += timedelta(minutes=30)
    return out


def per_entity(w: World) -> tuple[Counter[str], int]:
    with w.db.session() as s:
        kinds = Counter(dict(s.execute(
            select(AlertRecord.kind, func.count()).where(AlertRecord.kind.in_(PER_ENTITY_KINDS)).group_by(AlertRecord.kind)
        ).all()))
        timeouts = s.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "accept_timeout")).scalar_one()
    return kinds, int(timeouts)


def test_two_instances_for_a_week_send_every_alert_exactly_once(db_url: str, tmp_path: Path) -> None:
    a = make_world(db_url, tmp_path, START, SETTINGS)
    b = make_world(db_url, tmp_path, START, SETTINGS)
    sent: list[str] = seed(a)
    lock = threading.Lock()

    def recording(world: World):  # type: ignore[no-untyped-def]
        def enqueue(session: Session, out: list[Outgoing], when: datetime) -> None:
            world.enqueue(session, out, when)
            # Recorded only when the transaction commits: a rolled-back scan sent nothing.
            keys = [o.dedupe_key for o in out]
            from sqlalchemy import event

            @event.listens_for(session, "after_commit", once=True)
            def _done(_s: Session) -> None:
                with lock:
                    sent.extend(keys)

        return enqueue

    enqueue_a, enqueue_b = recording(a), recording(b)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for t in ticks():
            fa = pool.submit(run_all, a.db, a.ctx, t, enqueue_a, SETTINGS)
            fb = pool.submit(run_all, b.db, b.ctx, t + timedelta(seconds=1), enqueue_b, SETTINGS)
            assert -1 not in fa.result().values() and -1 not in fb.result().values()
    duplicates = [k for k, n in Counter(sent).items() if n > 1]
    assert duplicates == []
    alert_keys = [k for k in sent if k.startswith("alert:")]
    with a.db.session() as s:
        queued = set(s.execute(select(AlertRecord.key).where(AlertRecord.status == "queued")).scalars())
    assert {k[len("alert:"):] for k in alert_keys} == queued
    two_kinds, two_timeouts = per_entity(a)
    todos = a.all(select(AlertRecord.key).where(AlertRecord.kind == "todo"))
    a.db.close()
    b.db.close()

    # The same week with one instance (on a SQLite file of its own) decides the same
    # per-entity alerts and the same timeouts.
    solo_url = f"sqlite:///{tmp_path / 'solo.db'}"
    upgrade(solo_url)
    solo = make_world(solo_url, tmp_path, START, SETTINGS)
    seed(solo)
    for t in ticks():
        run_all(solo.db, solo.ctx, t, solo.enqueue, SETTINGS)
    one_kinds, one_timeouts = per_entity(solo)
    solo.db.close()
    assert two_kinds == one_kinds and two_timeouts == one_timeouts
    assert two_kinds["first_touch"] >= 1 and two_kinds["weekly"] == 6 and two_kinds["ticket"] >= 2
    assert len(todos) >= 5  # one per rep with work, per working day (keys are unique)
    assert two_timeouts >= 12
