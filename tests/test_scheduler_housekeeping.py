"""Daily housekeeping: what is pruned, when, in what batches, and that no alert is sent twice."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from handlers.alerts import Budget, alert_card_id
from scheduler import housekeeping
from scheduler.config import ScanSettings, SettingError
from store import inbox
from store.models import CardHandle, InboxEvent, OutboxMessage
from store.models_schedule import AlertRecord, ScanState
from tests.test_scheduler_world import World, make_world, sh

WATERMARK_SCANS = ("first_touch", "stage_due", "stalled", "sign_intent", "ticket_new")
# A short look-back keeps the simulated span short: the ledger floor is then 14 days.
SHORT = replace(ScanSettings(), lookback=timedelta(days=2), alert_retention=timedelta(days=14),
                inbox_retention=timedelta(days=7), outbox_retention=timedelta(days=7), prune_batch=7)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    w = make_world(db_url, tmp_path, sh(2026, 3, 2, 8, 0), SHORT)
    yield w
    w.db.close()


def deliver_due(world: World) -> None:
    """Mark what is due as sent, as the delivery worker would (only sent rows are pruned)."""
    now = world.clock.now()
    world.tx(lambda s: s.execute(
        update(OutboxMessage).where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .values(status="sent", sent_at=now)
    ))


def alert_rows(world: World) -> list[AlertRecord]:
    return world.all(select(AlertRecord).order_by(AlertRecord.id))


def old_alert(key: str, at: datetime, status: str = "queued", deliver_at: datetime | None = None) -> AlertRecord:
    return AlertRecord(key=key, kind="first_touch", member_id="zhangwei", status=status,
                       deliver_at=deliver_at or at, created_at=at)


def test_the_ledger_floor_follows_the_lookback() -> None:
    assert SHORT.alert_retention_floor() == timedelta(days=14)
    assert ScanSettings().alert_retention_floor() == timedelta(days=37)
    assert ScanSettings.from_mapping({"lookback_days": 60, "alert_retention_days": 67}).alert_retention == timedelta(days=67)
    with pytest.raises(SettingError, match="67") as bad:
        ScanSettings.from_mapping({"lookback_days": 60, "alert_retention_days": 60})
    assert bad.value.key == "alert_retention_days"
    with pytest.raises(SettingError, match="7"):
        ScanSettings.from_mapping({"inbox_retention_days": 3})


def test_alerts_are_sent_exactly_once_across_the_retention_boundary(world: World) -> None:
    """Three and a half weeks of leads, deadlines and stalls (the ledger keeps 14 days), housekeeping
    every night; then every cursor is lost."""
    pruned = 0
    day = sh(2026, 3, 2, 0, 0)
    for n in range(25):
        today = day + timedelta(days=n)
        for hour, minute in ((3, 30), (9, 30), (14, 0)):
            at = today.replace(hour=hour, minute=minute)
            if (hour, minute) == (9, 30) and world.ctx.business_hours.is_open(at):
                world.clock.set(at)
                world.accepted_lead(at, tier="A", owner="zhangwei" if n % 2 else "lina", company=f"客户{n}")
                world.opportunity("wangqiang", at + timedelta(hours=4), name=f"商机{n}")
            counts = world.run(at)
            assert all(c >= 0 for c in counts.values()), counts
            pruned += counts["housekeeping"]
            deliver_due(world)
    sent = Counter(o.dedupe_key for _, o in world.queued)
    assert sent and max(sent.values()) == 1
    kinds = Counter(k.split(":")[1] for k in sent)
    assert kinds["first_touch"] >= 15 and kinds["stalled"] >= 5 and kinds["stage_due"] >= 15 and kinds["todo"] >= 15
    assert pruned > 0
    # Exactly the rows past retention are gone: nothing older than the cutoff is left but
    # the newest row, digest items still waiting, and rows delivered after the cutoff.
    cutoff = housekeeping.alert_cutoff(world.clock.now().replace(hour=3, minute=30), SHORT)
    rows = alert_rows(world)
    newest = rows[-1].id
    assert [r.key for r in rows if r.created_at < cutoff and r.deliver_at < cutoff and r.status != "digest" and r.id != newest] == []
    assert len(rows) < len([k for k in sent if k.startswith("alert:")])
    # Sent messages older than a week are gone too, but for cards whose handle is still open.
    night = world.clock.now().replace(hour=3, minute=30)
    messages = world.all(select(OutboxMessage).order_by(OutboxMessage.id))
    open_cards = {h.card_id for h in world.all(select(CardHandle)) if h.state == "open"}
    stale = [m.dedupe_key for m in messages[:-1] if m.status == "sent" and m.created_at < night - timedelta(days=7)
             and not (m.kind == "card" and m.card_id in open_cards)]
    assert stale == [] and len(messages) < len(sent)
    # A second server starting fresh (or a lost cursor) re-reads the look-back window: the
    # ledger still remembers everything in it, so nothing is decided twice.
    tomorrow = night + timedelta(days=1)
    world.run(tomorrow)  # tonight's housekeeping first
    world.tx(lambda s: s.execute(delete(ScanState).where(ScanState.name.in_(WATERMARK_SCANS))))
    world.queued.clear()
    for hour in (8, 15):  # at 08:00 the look-back reaches the day-before-yesterday's 09:30 lead
        world.run(tomorrow.replace(hour=hour, minute=0))
    again = {o.dedupe_key for _, o in world.queued}
    assert not again & set(sent)


def test_pruning_inside_the_look_back_would_resend(world: World) -> None:
    """Why the floor exists: forget keys the look-back can still reach and a lost cursor resends."""
    world.settings = replace(SHORT, budget=Budget(daily_cap=100, min_spacing=timedelta(0)))
    world.accepted_lead(sh(2026, 3, 2, 9, 0), company="甲")
    world.accepted_lead(sh(2026, 3, 2, 9, 5), company="乙")
    world.run(sh(2026, 3, 2, 15, 0))
    first = [o.dedupe_key for _, o in world.queued if o.dedupe_key.startswith("alert:first_touch:")]
    assert len(first) == 2
    # The real housekeeping, two days later, keeps them (younger than the 14-day floor)…
    assert housekeeping.run_housekeeping(world.db, sh(2026, 3, 4, 4, 0), SHORT) == 0
    # …while deleting them anyway (a 1-day retention) and losing the cursor sends one again.
    world.tx(lambda s: housekeeping._prune_alerts(s, sh(2026, 3, 4, 0, 0), 0, 100))
    world.tx(lambda s: s.execute(delete(ScanState).where(ScanState.name == "first_touch")))
    world.queued.clear()
    world.run(sh(2026, 3, 4, 8, 0))  # the look-back (2 days) reaches back to Monday 08:00
    again = [o.dedupe_key for _, o in world.queued if o.dedupe_key.startswith("alert:first_touch:")]
    assert again == first


def test_batches_are_bounded_and_the_day_finishes_over_several_ticks(world: World) -> None:
    settings = replace(SHORT, prune_batch=10, prune_rounds=2)
    old = sh(2026, 1, 5, 10, 0)
    world.tx(lambda s: s.add_all([old_alert(f"old:{i}", old + timedelta(minutes=i)) for i in range(25)]))
    world.tx(lambda s: s.add(old_alert("waiting", old, status="digest")))
    world.tx(lambda s: s.add(old_alert("fresh", sh(2026, 3, 1, 10, 0))))
    world.tx(lambda s: s.add(CardHandle(card_id=alert_card_id("old:0"), platform="", member_id="zhangwei", subject="alert:first_touch",
                                        card_json="{}", created_at=old, updated_at=old)))
    ids = {r.key: r.id for r in alert_rows(world)}
    night = sh(2026, 3, 2, 3, 30)
    assert housekeeping.run_housekeeping(world.db, sh(2026, 3, 2, 2, 59), settings) == 0  # before housekeeping_hour
    with world.db.session() as s:  # one transaction deletes one batch at most
        assert housekeeping.prune_round(s, night, settings) == ("alert", 10)
        s.rollback()
    assert housekeeping.run_housekeeping(world.db, night, settings) == 20  # two batches this tick
    state = world.get(ScanState, "prune_alert")
    assert state.cursor_day is None and state.cursor_id == ids["old:19"]
    assert housekeeping.run_housekeeping(world.db, night + timedelta(minutes=1), settings) == 5  # the rest, next tick
    assert {r.key for r in alert_rows(world)} == {"waiting", "fresh"}  # a digest item waits whatever its age
    assert world.get(CardHandle, alert_card_id("old:0")) is None  # the alert's card went with it
    assert world.get(ScanState, "prune_alert").cursor_day == night.date()
    assert housekeeping.run_housekeeping(world.db, night + timedelta(minutes=2), settings) == 0
    done = {s.name for s in world.all(select(ScanState)) if s.name.startswith("prune_") and s.cursor_day == night.date()}
    assert done == {"prune_alert", "prune_inbox", "prune_outbox"}


def test_inbox_and_outbox_keep_what_is_still_needed(world: World) -> None:
    now = sh(2026, 3, 20, 4, 0)
    old, recent = now - timedelta(days=40), now - timedelta(days=6)

    def seed(s):  # type: ignore[no-untyped-def]
        for key, status, at in (("a", "done", old), ("b", "failed", old), ("c", "pending", old), ("d", "done", recent), ("e", "done", recent)):
            s.add(InboxEvent(platform="wecom", event_key=key, payload="{}", status=status, received_at=at,
                             processed_at=at if status != "pending" else None))
        for key, status, kind, card in (("sent-text", "sent", "text", None), ("sent-open-card", "sent", "card", "c-open"),
                                        ("sent-closed-card", "sent", "card", "c-closed"), ("dead", "dead", "text", None),
                                        ("pending", "pending", "text", None)):
            s.add(OutboxMessage(platform="dingtalk", recipient="u1", member_id="zhangwei", kind=kind, payload="{}", card_id=card,
                                dedupe_key=key, status=status, next_attempt_at=old, created_at=old,
                                sent_at=old if status == "sent" else None))
        s.add(OutboxMessage(platform="dingtalk", recipient="u1", kind="text", payload="{}", dedupe_key="newest", status="sent",
                            next_attempt_at=recent, created_at=recent, sent_at=recent))
        for card, state in (("c-open", "open"), ("c-closed", "closed")):
            s.add(CardHandle(card_id=card, platform="dingtalk", member_id="zhangwei", subject="lead:1", state=state,
                             card_json="{}", created_at=old, updated_at=old))

    world.tx(seed)
    assert housekeeping.run_housekeeping(world.db, now, SHORT) == 1 + 2
    assert sorted(e.event_key for e in world.all(select(InboxEvent))) == ["b", "c", "d", "e"]
    assert sorted(m.dedupe_key for m in world.all(select(OutboxMessage))) == ["dead", "newest", "pending", "sent-open-card"]
    # A platform redelivering an event handled six days ago is still recognised.
    assert world.tx(lambda s: inbox.record(s, "wecom", "d", "{}", now)) is None
    # Ids are never handed out again: the newest row of each table stays.
    highest = world.tx(lambda s: s.execute(select(func.max(InboxEvent.id))).scalar_one())
    assert world.tx(lambda s: inbox.record(s, "wecom", "f", "{}", now)) == highest + 1


def test_two_servers_share_the_pruning(db_url: str, tmp_path: Path) -> None:
    w = make_world(db_url, tmp_path, sh(2026, 3, 2, 8, 0), SHORT)
    try:
        old = sh(2026, 1, 5, 10, 0)
        w.tx(lambda s: s.add_all([old_alert(f"old:{i}", old + timedelta(seconds=i)) for i in range(300)]))
        settings = replace(SHORT, prune_batch=20, prune_rounds=100)
        night = sh(2026, 3, 2, 3, 30)
        results: list[int] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                results.append(housekeeping.run_housekeeping(w.db, night, settings))
            except BaseException as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and sum(results) == 299
        assert [r.key for r in alert_rows(w)] == ["old:299"]
    finally:
        w.db.close()
