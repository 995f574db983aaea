"""Daily housekeeping: delete operational rows nothing reads any more.

What goes, and when (the reasoning is in docs/operations.zh.md, 数据保留):

* **alert ledger** (``alert``): rows decided and delivered more than ``alert_retention_days``
  ago (default 90), never below :meth:`ScanSettings.alert_retention_floor` (``lookback`` + 7
  days). Every rule that reads the ledger looks back less than that: a key can only be
  produced again by a scan reading its source rows again, which happens at most
  ``lookback`` back (a scan's first run, or a lost cursor); the weekly report counts 7
  days; the daily cap and spacing look at today. Rows still waiting for a digest stay.
  The alert's own card handle goes with it (its buttons have long stopped mattering: a
  click answers 「这张卡片已失效」).
* **inbox** (``inboxevent``): handled rows received more than ``inbox_retention_days`` ago
  (default 30, at least 7: the row's unique key is what drops a platform's redelivery).
  Pending and failed rows stay.
* **outbox** (``outboxmessage``): sent rows older than ``outbox_retention_days`` (default
  30, at least 7). Pending and dead rows stay, and so does the message of a card whose
  handle is still open (DingTalk reads a clicked card's buttons back from it).

It runs once a day, from the first tick at or after ``housekeeping_hour`` (Shanghai), one
table after another, ``prune_batch`` rows per transaction and at most ``prune_rounds``
transactions per tick: a large backlog (the first run on an old database) is worked off
over several ticks, and the inbox never waits long for SQLite's write lock. Each table's
progress is a :class:`ScanState` row (``prune_alert`` …) locked ``SKIP LOCKED``, so several
servers share the work instead of repeating it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time

from sqlalchemy import select
from sqlmodel import Session, col

from handlers.alerts import alert_card_id
from nlp.calendar import SHANGHAI
from scheduler.config import MIN_INBOX_RETENTION, MIN_OUTBOX_RETENTION, ScanSettings
from store import alerts as ledger
from store.db import Database
from store.models_schedule import ScanState
from store.retention import Pruned, delete_card_handles, prune_inbox, prune_outbox

log = logging.getLogger("leadbot.scheduler")

Pruner = Callable[[Session, datetime, int, int], Pruned]


def alert_cutoff(now: datetime, settings: ScanSettings) -> datetime:
    """Ledger rows decided and delivered before this may go (never later than the safe floor)."""
    return now - max(settings.alert_retention, settings.alert_retention_floor())


def _cutoffs(now: datetime, settings: ScanSettings) -> dict[str, datetime]:
    return {
        "alert": alert_cutoff(now, settings),
        "inbox": now - max(settings.inbox_retention, MIN_INBOX_RETENTION),
        "outbox": now - max(settings.outbox_retention, MIN_OUTBOX_RETENTION),
    }


def _prune_alerts(session: Session, cutoff: datetime, after: int, limit: int) -> Pruned:
    result = ledger.prune(session, cutoff, after, limit)
    if result.removed:
        delete_card_handles(session, [alert_card_id(key) for (key,) in result.removed])
    return result


PRUNERS: tuple[tuple[str, Pruner], ...] = (
    ("alert", _prune_alerts),
    ("inbox", prune_inbox),
    ("outbox", prune_outbox),
)
"""Each table housekeeping prunes, in order, with its batch function."""


def state_name(table: str) -> str:
    """The :class:`ScanState` row that holds ``table``'s pruning progress."""
    return f"prune_{table}"


def _due(now: datetime, settings: ScanSettings) -> datetime | None:
    """Local midnight of today when today's run may start, else None."""
    local = now.astimezone(SHANGHAI)
    if local.hour < settings.housekeeping_hour:
        return None
    return datetime.combine(local.date(), time(0, 0), SHANGHAI)


def prune_round(session: Session, now: datetime, settings: ScanSettings) -> tuple[str, int] | None:
    """One bounded batch of today's pruning, in the caller's transaction.

    Returns (table, rows deleted), or None when there is nothing (more) to do today or
    every unfinished table is being pruned by another server right now.
    """
    midnight = _due(now, settings)
    if midnight is None:
        return None
    today = midnight.date()
    names = [state_name(t) for t, _ in PRUNERS]
    finished = {
        s.name for s in session.execute(select(ScanState).where(col(ScanState.name).in_(names))).scalars()
        if s.cursor_day is not None and s.cursor_day >= today
    }
    cutoffs = _cutoffs(now, settings)
    for table, pruner in PRUNERS:
        if state_name(table) in finished:
            continue
        state = ledger.claim_scan(session, state_name(table), now)
        if state is None or (state.cursor_day is not None and state.cursor_day >= today):
            continue  # another server holds it (or just finished it)
        after = state.cursor_id if state.cursor_at == midnight else 0
        result = pruner(session, cutoffs[table], after, settings.prune_batch)
        if result.done:
            ledger.advance_cursor(session, state, None, 0, now)
            ledger.advance_day(session, state, today, now)
        else:
            ledger.advance_cursor(session, state, midnight, result.last_id, now)
        return table, result.deleted
    return None


def run_housekeeping(db: Database, now: datetime, settings: ScanSettings) -> int:
    """Today's pruning, at most ``settings.prune_rounds`` transactions; rows deleted.

    Unfinished work carries over to the next tick (the day is marked done per table only
    when that table is done).
    """
    deleted: dict[str, int] = {}
    for _ in range(settings.prune_rounds):
        with db.session() as session:
            step = prune_round(session, now, settings)
            session.commit()
        if step is None:
            break
        deleted[step[0]] = deleted.get(step[0], 0) + step[1]
    total = sum(deleted.values())
    if total:
        log.info("housekeeping at %s deleted %s", now.isoformat(), deleted)
    return total

