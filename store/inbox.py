"""The inbox: every verified inbound event, stored once, handled once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from store.models import InboxEvent

MAX_ATTEMPTS = 3


def record(session: Session, platform: str, event_key: str, payload: str, received_at: datetime, *, incomplete: bool = False) -> int | None:
    """Store an event under its platform key; the new row id, or None for a redelivery.

    ``incomplete``: the event waits for its adapter's completion before it is handled.
    """
    existing = session.execute(
        select(InboxEvent.id).where(InboxEvent.platform == platform, InboxEvent.event_key == event_key)
    ).scalar_one_or_none()
    if existing is not None:
        return None
    row = InboxEvent(platform=platform, event_key=event_key, payload=payload, received_at=received_at,
                     status="incomplete" if incomplete else "pending", complete_due_at=received_at if incomplete else None)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # A concurrent delivery of the same event won the insert.
        return None
    return row.id


def claim_next(session: Session, *, skip_locked: bool) -> InboxEvent | None:
    """The oldest pending event, locked for this transaction (SKIP LOCKED on PostgreSQL)."""
    # The constant is inlined so the partial index ix_inbox_pending serves this under a
    # prepared statement's generic plan too (a bound parameter would not match its WHERE).
    stmt = select(InboxEvent).where(InboxEvent.status == literal_column("'pending'")).order_by(InboxEvent.id).limit(1)
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return session.execute(stmt).scalars().first()


def claim_incomplete(session: Session, now: datetime, limit: int, lease: timedelta, *, skip_locked: bool) -> list[InboxEvent]:
    """Incomplete events whose next try is due, leased for ``lease`` (another process skips them meanwhile)."""
    stmt = (
        select(InboxEvent)
        .where(col(InboxEvent.status) == "incomplete", col(InboxEvent.complete_due_at) <= now)
        .order_by(col(InboxEvent.id))
        .limit(limit)
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.execute(stmt).scalars())
    for row in rows:
        row.complete_due_at = now + lease
        session.add(row)
    return rows


def mark_completed(session: Session, event_id: int, payload: str, error: str | None = None) -> bool:
    """Store the completed (or degraded) event and hand it to the dispatcher.

    Conditional on the row still being ``incomplete``: when two workers finished the same
    row (a lease ran out), the second changes nothing, and the handlers see it once.
    """
    values: dict[str, object] = {"payload": payload, "status": "pending", "complete_due_at": None}
    if error is not None:
        values["error"] = error[:500]
    result = session.execute(
        update(InboxEvent).where(col(InboxEvent.id) == event_id, col(InboxEvent.status) == "incomplete").values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_completion(session: Session, event_id: int, error: str, due_at: datetime) -> None:
    """A try failed for a reason that may pass: count it and try again at ``due_at``."""
    session.execute(
        update(InboxEvent)
        .where(col(InboxEvent.id) == event_id, col(InboxEvent.status) == "incomplete")
        .values(complete_attempts=col(InboxEvent.complete_attempts) + 1, complete_due_at=due_at, error=error[:500])
    )


def mark_done(session: Session, event_id: int, now: datetime) -> None:
    """The event was handled; its effects commit with this."""
    session.execute(update(InboxEvent).where(InboxEvent.id == event_id).values(status="done", processed_at=now))


def mark_attempt_failed(session: Session, event_id: int, error: str, now: datetime) -> bool:
    """Count a failed attempt; True when the event is given up on (status ``failed``)."""
    row = session.get(InboxEvent, event_id)
    if row is None:
        return False
    row.attempts += 1
    row.error = error[:500]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        row.processed_at = now
    session.add(row)
    return row.status == "failed"


def pending_count(session: Session) -> int:
    """How many events wait to be handled."""
    from sqlalchemy import func

    return int(session.execute(select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "pending")).scalar_one())
