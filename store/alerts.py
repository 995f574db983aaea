"""Queries over the scheduler's tables: the alert ledger, mutes and scan cursors.

Plain synchronous functions over a :class:`Session`, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from store.models_schedule import AlertMute, AlertRecord, ScanState
from store.retention import Pruned, prune_prefix


def skip_locked(session: Session) -> bool:
    """True when the database can skip rows another transaction locked (PostgreSQL).

    SQLite needs no row locks: every transaction there takes the write lock up front.
    """
    return session.get_bind().dialect.name == "postgresql"


def record(session: Session, alert: AlertRecord) -> bool:
    """Insert ``alert`` under its unique key; False when the key was recorded before.

    The savepoint keeps the caller's transaction usable after a duplicate; on PostgreSQL a
    second server inserting the same key waits for the first to commit, then gets False.
    """
    if session.execute(select(col(AlertRecord.id)).where(col(AlertRecord.key) == alert.key)).first():
        return False
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        return False
    return True


def insert_new(session: Session, alert: AlertRecord) -> bool:
    """Like :func:`record` but one ``INSERT … ON CONFLICT DO NOTHING`` (no savepoint, no object).

    This is the hot path of a scan that decides thousands of alerts; False on a duplicate key.
    """
    table: Table = AlertRecord.__table__  # type: ignore[attr-defined]
    values = {c.name: getattr(alert, c.name) for c in table.columns if c.name != "id"}
    dialect = session.get_bind().dialect.name
    # RETURNING, not rowcount: drivers report -1 for some inserts, which would read as True.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
        return session.execute(pg).first() is not None
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
        return session.execute(lite).first() is not None
    return record(session, alert)


def existing_keys(session: Session, keys: Collection[str]) -> set[str]:
    """Which of ``keys`` were decided already (one query per 500 keys)."""
    found: set[str] = set()
    ordered = list(keys)
    for i in range(0, len(ordered), 500):
        found.update(session.execute(select(col(AlertRecord.key)).where(col(AlertRecord.key).in_(ordered[i : i + 500]))).scalars())
    return found


def exists(session: Session, key: str) -> bool:
    """Whether an alert with ``key`` was decided already."""
    return session.execute(select(col(AlertRecord.id)).where(col(AlertRecord.key) == key)).first() is not None


def queued_between(session: Session, member_id: str, start: datetime, end: datetime,
                   exempt: Collection[str] = ()) -> int:
    """How many alerts reach ``member_id`` with delivery in ``[start, end)`` (the daily cap).

    Alerts of ``exempt`` kinds (the digests themselves) are not counted.
    """
    stmt = select(func.count()).select_from(AlertRecord).where(
        col(AlertRecord.member_id) == member_id,
        col(AlertRecord.status) == "queued",
        col(AlertRecord.deliver_at) >= start,
        col(AlertRecord.deliver_at) < end,
    )
    if exempt:
        stmt = stmt.where(col(AlertRecord.kind).not_in(tuple(exempt)))
    return int(session.execute(stmt).scalar_one())


def last_delivery_before(session: Session, member_id: str, before: datetime, exempt: Collection[str] = ()) -> datetime | None:
    """The latest delivery time of a queued alert to ``member_id`` not after ``before``."""
    stmt = select(func.max(col(AlertRecord.deliver_at))).where(
        col(AlertRecord.member_id) == member_id,
        col(AlertRecord.status) == "queued",
        col(AlertRecord.deliver_at) <= before,
    )
    if exempt:
        stmt = stmt.where(col(AlertRecord.kind).not_in(tuple(exempt)))
    return session.execute(stmt).scalar_one_or_none()


def waiting_digest(session: Session, member_id: str | None = None, limit: int = 1000) -> list[AlertRecord]:
    """Alerts rolled into the next digest (of one member, or everyone), oldest first."""
    stmt = select(AlertRecord).where(col(AlertRecord.status) == "digest")
    if member_id is not None:
        stmt = stmt.where(col(AlertRecord.member_id) == member_id)
    return list(session.execute(stmt.order_by(col(AlertRecord.id)).limit(limit)).scalars())


def mark_digested(session: Session, ids: list[int]) -> None:
    """These digest items went out inside a digest."""
    if ids:
        session.execute(update(AlertRecord).where(col(AlertRecord.id).in_(ids)).values(status="digested"))


def is_muted(session: Session, member_id: str, kind: str, now: datetime) -> bool:
    """Whether ``member_id`` muted ``kind`` and the mute still runs."""
    row = session.get(AlertMute, (member_id, kind))
    return row is not None and row.until > now


def mute(session: Session, member_id: str, kind: str, until: datetime, now: datetime) -> None:
    """Mute ``kind`` for ``member_id`` until ``until`` (a later mute extends, never shortens)."""
    row = session.get(AlertMute, (member_id, kind))
    if row is None:
        try:
            with session.begin_nested():
                session.add(AlertMute(member_id=member_id, kind=kind, until=until, created_at=now))
                session.flush()
            return
        except IntegrityError:
            row = session.get(AlertMute, (member_id, kind))
            assert row is not None
    if row.until < until:
        row.until = until
        session.add(row)


def claim_scan(session: Session, name: str, now: datetime) -> ScanState | None:
    """Lock the scan's state row for this transaction; None when another process holds it.

    The row is created on first use. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` makes a second
    server skip a scan the first is running rather than wait for it and repeat it.
    """
    if session.get(ScanState, name) is None:
        try:
            with session.begin_nested():
                session.add(ScanState(name=name, updated_at=now))
                session.flush()
        except IntegrityError:
            pass  # another process created it first: fine, we lock theirs below
    stmt = select(ScanState).where(col(ScanState.name) == name)
    if skip_locked(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return session.execute(stmt).scalars().first()


def advance_cursor(session: Session, state: ScanState, at: datetime | None, row_id: int, now: datetime) -> None:
    """Move a watermark scan past ``(at, row_id)``."""
    state.cursor_at, state.cursor_id, state.updated_at = at, row_id, now
    session.add(state)


def advance_day(session: Session, state: ScanState, day: date, now: datetime) -> None:
    """Record that a once-a-day scan has run for ``day``."""
    state.cursor_day, state.updated_at = day, now
    session.add(state)


def prune(session: Session, cutoff: datetime, after_id: int, limit: int) -> Pruned:
    """Delete ledger rows decided and delivered before ``cutoff``, at most ``limit`` (after ``after_id``).

    A row goes only when both its decision (``created_at``) and its delivery time
    (``deliver_at``, which quiet hours can push days later) are older than ``cutoff``;
    ``digest`` rows are waiting to be rolled up and stay whatever their age. The caller
    chooses ``cutoff`` so that no scan can produce the row's key again (see
    :func:`scheduler.housekeeping.alert_cutoff`). ``Pruned.removed`` holds the deleted keys.
    """
    table: Table = AlertRecord.__table__  # type: ignore[attr-defined]
    keep = (table.c.status == "digest") | (table.c.deliver_at >= cutoff)
    return prune_prefix(session, table, "created_at", cutoff, after_id, limit, keep, ("key",))
