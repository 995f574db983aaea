"""The APScheduler wrapper, settings parsing and the watermark's paging."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nlp.calendar import SHANGHAI
from scheduler.config import ScanSettings
from scheduler.scans import SCANS, run_all
from scheduler.service import JOB_ID, SchedulerService
from store.models import Lead
from store.models_schedule import AlertRecord, ScanState
from tests.test_scheduler_world import World, make_world, open_world, sh


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from open_world(db_url, tmp_path)


async def test_service_ticks_from_the_database_and_stops(db_url: str, tmp_path: Path) -> None:
    w = make_world(db_url, tmp_path, sh(2026, 3, 10, 10, 0))
    lead = w.lead()
    w.clock.set(sh(2026, 3, 10, 12, 0))
    service = SchedulerService(w.db, w.ctx, w.enqueue, w.clock, replace(w.settings, interval_seconds=3600))
    service.start()
    try:
        assert service.running
        job = service._scheduler.get_job(JOB_ID)
        assert job is not None and str(job.next_run_time.tzinfo) == "Asia/Shanghai"
        for _ in range(100):  # the first tick runs at once
            if service.ticks:
                break
            await asyncio.sleep(0.05)
        assert service.ticks >= 1 and service.last_counts["unaccepted"] >= 2
        assert w.get(Lead, lead.id).owner_id != lead.owner_id
        # A restart is a new service over the same database: nothing is repeated.
        again = SchedulerService(w.db, w.ctx, w.enqueue, w.clock, w.settings)
        counts = await again.tick()
        assert counts["unaccepted"] == 0
    finally:
        service.shutdown()
        await asyncio.sleep(0)  # AsyncIOScheduler stops on the loop's next turn
        w.db.close()
    assert not service.running


def test_settings_from_the_config_table() -> None:
    s = ScanSettings.from_mapping({"daily_cap": 3, "min_spacing_minutes": 30, "stalled_hours": 72, "stalled_tiers": ["A", "B"],
                                   "first_touch_business_hours": 2, "tickets": {"supervisor": "chenjing", "vp": "admin"}})
    assert s.budget.daily_cap == 3 and s.budget.min_spacing == timedelta(minutes=30)
    assert s.stalled_hours == 72.0 and s.stalled_tiers == ("A", "B") and s.first_touch_business_hours == 2.0
    assert s.tickets.supervisor == "chenjing" and s.tickets.resolve("vp") == "admin"
    with pytest.raises(ValueError, match="stalled_hour"):
        ScanSettings.from_mapping({"stalled_hour": 1})


def test_watermark_pages_through_many_rows_with_one_timestamp(world: World) -> None:
    world.settings = replace(world.settings, batch=2, budget=replace(world.settings.budget, daily_cap=100, min_spacing=timedelta(0)))
    at = sh(2026, 3, 10, 9, 0)
    ids = [world.accepted_lead(at, company=f"同一时刻{i}").id for i in range(5)]
    later = world.accepted_lead(at + timedelta(minutes=1), company="稍后").id
    world.run(sh(2026, 3, 10, 15, 0))
    keys = {r.key for r in world.all(select(AlertRecord).where(AlertRecord.kind == "first_touch"))}
    assert keys == {f"first_touch:{i}:{int(at.timestamp()) + (60 if i == later else 0)}" for i in ids + [later]}
    cursor = world.get(ScanState, "first_touch")
    assert cursor.cursor_id == later


def test_run_all_reports_every_scan_and_survives_a_broken_one(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler import scans

    def broken(*_a: object) -> list[object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(scans, "SCANS", (("broken", broken),) + scans.SCANS)
    counts = scans.run_all(world.db, world.ctx, sh(2026, 3, 10, 10, 0), world.enqueue, world.settings)
    assert counts["broken"] == -1 and set(counts) == {"broken", "housekeeping"} | {n for n, _ in SCANS}
    assert counts["daily_todo"] == 0  # nothing on anyone's list yet
    assert run_all is scans.run_all and SHANGHAI is not None


def test_alert_keys_are_recorded_once(world: World) -> None:
    from store.alerts import insert_new, record

    def row(key: str) -> AlertRecord:
        at = sh(2026, 3, 10, 10, 0)
        return AlertRecord(key=key, kind="k", member_id="zhangwei", deliver_at=at, created_at=at)

    assert world.tx(lambda s: insert_new(s, row("a"))) is True
    assert world.tx(lambda s: insert_new(s, row("a"))) is False
    assert world.tx(lambda s: record(s, row("a"))) is False
    assert world.tx(lambda s: record(s, row("b"))) is True
    assert len(world.all(select(AlertRecord))) == 2


def test_scan_command_helpers() -> None:
    from scheduler.scans import describe, parse_now

    assert parse_now("2026-02-24T09:00") == sh(2026, 2, 24, 9, 0)
    assert parse_now("2026-02-24T01:00:00+00:00") == sh(2026, 2, 24, 9, 0)
    text = describe({"unaccepted": 3, "digests": -1, "housekeeping": 1200}, sh(2026, 2, 24, 9, 0))
    assert text.splitlines() == [
        "扫描时间 2026-02-24 09:00（上海）",
        "  unaccepted    超时未接受的线索（转派）：3 条消息",
        "  digests       提醒汇总：失败，详见日志",
        "  housekeeping  清理过期的运行记录（每天一次）：1200 行已删除",
    ]


def test_a_backlog_is_worked_off_in_bounded_transactions(world: World) -> None:
    world.settings = replace(world.settings, reassign_batch=2, todo_batch=2, batch=2)
    leads = [world.lead(company=f"积压测试{i}号机械有限公司", phone=f"1380000111{i}") for i in range(5)]
    for lead in leads:
        world.opportunity(lead.owner_id, sh(2026, 3, 10, 11, 0), name=f"积压商机{lead.id}")
    commits: list[int] = []
    from sqlalchemy import event

    @event.listens_for(world.db.engine, "commit")
    def _count(_conn: object) -> None:
        commits.append(1)

    counts = world.run(sh(2026, 3, 10, 12, 0))
    assert all(world.get(Lead, l.id).owner_id != l.owner_id for l in leads)
    assert counts["unaccepted"] >= 10 and len(commits) >= 3 + 3  # three re-assign rounds, three todo rounds…
    todo_reps = {o.member_id for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:")}
    assert todo_reps == {"zhangwei", "lina", "wangqiang"}
    assert world.get(ScanState, "daily_todo").cursor_day == sh(2026, 3, 10, 12, 0).date()
