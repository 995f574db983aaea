"""The outbox: everything we send, delivered by a worker with retries and a dead-letter state."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from store.models import OutboxMessage


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
    if session.execute(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)).first():
        return False
    try:
        with session.begin_nested():
            session.add(
                OutboxMessage(
                    platform=platform, recipient=recipient, member_id=member_id, kind=kind,
                    payload=payload, card_id=card_id, dedupe_key=dedupe_key,
                    next_attempt_at=now, created_at=now,
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def claim_due(session: Session, now: datetime, limit: int, *, skip_locked: bool) -> list[OutboxMessage]:
    """Pending messages whose time has come, oldest first, locked for this transaction."""
    earlier = aliased(OutboxMessage)
    # Per-person order: a message waits while an earlier one to the same recipient is still
    # pending and not due (backing off, or leased by another worker); otherwise the later
    # one would overtake it during an outage.
    blocked = exists().where(
        earlier.platform == OutboxMessage.platform, earlier.recipient == OutboxMessage.recipient,
        earlier.status == "pending", earlier.id < OutboxMessage.id, earlier.next_attempt_at > now,
    )
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now, ~blocked)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
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
    """When the next pending message becomes due."""
    return session.execute(select(func.min(OutboxMessage.next_attempt_at)).where(OutboxMessage.status == "pending")).scalar_one_or_none()


def backoff(attempt: int, *, base_s: float = 2.0, cap_s: float = 600.0, jitter: float = 0.0) -> timedelta:
    """Exponential backoff with jitter in [0, 1) as a fraction of the step."""
    step = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return timedelta(seconds=step * (1 + jitter * 0.5))
