"""The outbox: everything we send, delivered by a worker with retries and a dead-letter state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from store.models import OutboxMessage

PENDING = "pending"
# Inlined, not bound: the partial index ``ix_outbox_pending_recipient`` (status = 'pending')
# can only serve a query whose condition the planner sees as that constant, and a prepared
# statement's generic plan (psycopg prepares repeated queries) would not.
IS_PENDING = OutboxMessage.status == literal_column("'pending'")


def enqueue(
    session: Session,
    *,
    platform: str,
    recipient: str,
    member_id: str | None,
    kind: str,
    payload: str,
    dedupe_key: str,
    now: datetime,
    card_id: str | None = None,
) -> bool:
    """Queue a message; False when ``dedupe_key`` was queued before (nothing is sent twice)."""
    # One statement: a concurrent enqueue of the same key (another process) waits for the
    # first and then inserts nothing, without a savepoint or an IntegrityError to catch.
    stmt = _ENQUEUE["sqlite" if session.get_bind().dialect.name == "sqlite" else "postgresql"]
    row = {"platform": platform, "recipient": recipient, "member_id": member_id, "kind": kind, "payload": payload,
           "card_id": card_id, "dedupe_key": dedupe_key, "status": PENDING, "attempts": 0,
           "next_attempt_at": now, "created_at": now}
    return session.execute(stmt, row).first() is not None


# Built once (the values come as parameters): building and cache-keying the statement for
# every message cost about as much as running it.
_ENQUEUE = {
    name: dialect_insert(OutboxMessage).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(OutboxMessage.id)
    for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))
}


def _first_blocked(now: datetime) -> Any:
    """Per recipient, the oldest pending message that is not due (backing off, or leased)."""
    return (
        select(OutboxMessage.platform, OutboxMessage.recipient, func.min(OutboxMessage.id).label("first_blocked"))
        .where(IS_PENDING, OutboxMessage.next_attempt_at > now)
        .group_by(OutboxMessage.platform, OutboxMessage.recipient)
        .subquery("barrier")
    )


def claim_due(session: Session, now: datetime, limit: int, *, skip_locked: bool) -> list[OutboxMessage]:
    """Pending messages whose time has come, oldest first, locked for this transaction.

    Per-person order: a message waits while an earlier one to the same recipient is still
    pending and not due (backing off, or leased by another worker); otherwise the later one
    would overtake it during an outage. The barrier is computed once per recipient (one
    grouped pass over the not-due pending rows) instead of once per candidate row, which
    was quadratic in the backlog.
    """
    barrier = _first_blocked(now)
    stmt = (
        select(OutboxMessage)
        .outerjoin(barrier, and_(barrier.c.platform == OutboxMessage.platform, barrier.c.recipient == OutboxMessage.recipient))
        .where(
            IS_PENDING, OutboxMessage.next_attempt_at <= now,
            or_(barrier.c.first_blocked.is_(None), OutboxMessage.id < barrier.c.first_blocked),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True, of=OutboxMessage)
    return list(session.execute(stmt).scalars())


def mark_sent(session: Session, msg: OutboxMessage, now: datetime) -> None:
    """Delivered."""
    msg.status = "sent"
    msg.sent_at = now
    msg.attempts += 1
    session.add(msg)


def mark_retry(
    session: Session,
    msg: OutboxMessage,
    error: str,
    retry_at: datetime,
    *,
    max_attempts: int,
    keep_trying_for: timedelta = timedelta(0),
) -> None:
    """Failed this time: try again at ``retry_at``, or give up (``dead``).

    A message is given up only after ``max_attempts`` tries *and* once it is older than
    ``keep_trying_for``, so a platform outage of an hour does not dead-letter every card
    that happened to be queued in it.
    """
    msg.attempts += 1
    msg.last_error = error[:500]
    if msg.attempts >= max_attempts and retry_at - msg.created_at >= keep_trying_for:
        msg.status = "dead"
    else:
        msg.next_attempt_at = retry_at
    session.add(msg)


def backlog(session: Session) -> dict[str, int]:
    """Counts by status, for /metrics and admins."""
    rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    return {status: int(n) for status, n in rows}


def next_due(session: Session) -> datetime | None:
    """When the next pending message can be claimed (None: nothing pending).

    Only the oldest pending message of each recipient counts: a later one that is due
    but waits behind it (per-recipient order) cannot be claimed before it.
    """
    first = (
        select(func.min(OutboxMessage.id).label("id"))
        .where(IS_PENDING)
        .group_by(OutboxMessage.platform, OutboxMessage.recipient)
        .subquery("first")
    )
    stmt = select(func.min(OutboxMessage.next_attempt_at)).join(first, first.c.id == OutboxMessage.id)
    return session.execute(stmt).scalar_one_or_none()


def backoff(attempt: int, *, base_s: float = 2.0, cap_s: float = 600.0, jitter: float = 0.0) -> timedelta:
    """Exponential backoff with jitter in [0, 1) as a fraction of the step."""
    step = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return timedelta(seconds=step * (1 + jitter * 0.5))
