"""Tables of the scheduler: alert keys, mutes, scan cursors and ticket SLA state.

* :class:`AlertRecord` is the idempotency ledger: one row per alert key, inserted in the
  same transaction that queues the message (or rolls it into a digest), so a crash or a
  second server never sends an alert twice.
* :class:`ScanState` holds each scan's cursor (a watermark over an indexed ``due``
  column), so a tick reads only what became due since the last one; its row is also the
  scan's lock (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
* :class:`AlertMute` is a person's「本周不再提醒」for one kind of alert.
* :class:`TicketSla` is a ticket's position on its escalation chain and its paused time.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from store.models import Lead
from store.types import BIG_INT, UTCDateTime

# Indexes the scans need on the lead table, so a tick reads only what is due even over
# millions of leads: open cards by deadline (status + accept_due_at, instead of every
# historical deadline), first-touch deadlines by accepted_at, and today's assignments
# (the assignment engine's capacity count) by assigned_at, and a rep's open leads by
# status and last touch (今日待办). Declared here, bound to the
# lead table's columns, so they are part of the metadata; created by migration 0002.
LEAD_SCAN_INDEXES = (
    Index("ix_lead_status_accept_due", Lead.__table__.c.status, Lead.__table__.c.accept_due_at),  # type: ignore[attr-defined]
    Index("ix_lead_accepted_at", Lead.__table__.c.accepted_at),  # type: ignore[attr-defined]
    Index("ix_lead_assigned_at_owner", Lead.__table__.c.assigned_at, Lead.__table__.c.owner_id),  # type: ignore[attr-defined]
    Index("ix_lead_owner_status_touch", Lead.__table__.c.owner_id, Lead.__table__.c.status,  # type: ignore[attr-defined]
          Lead.__table__.c.last_interaction_at),  # type: ignore[attr-defined]
)


def _ts(*, index: bool = False) -> object:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=True))


def _ts_required(*, index: bool = False) -> object:
    return Field(sa_column=Column(UTCDateTime(), index=index, nullable=False))


class AlertRecord(SQLModel, table=True):
    """One alert that was decided: queued to the outbox, rolled into a digest, or muted.

    status: ``queued`` (an outbox row exists, due at ``deliver_at``) | ``digest`` (over the
    person's budget: waits for the next digest) | ``digested`` | ``muted``.
    """

    __tablename__ = "alert"
    __table_args__ = (
        Index("ix_alert_member_deliver", "member_id", "deliver_at"),
        Index("ix_alert_status_member", "status", "member_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=160, unique=True)
    kind: str = Field(max_length=32)
    member_id: str = Field(max_length=64)
    priority: str = Field(default="P2", max_length=4)
    subject: str = Field(default="", max_length=64)
    summary: str = Field(default="", max_length=300)
    stake_fen: int | None = Field(default=None, sa_type=BIG_INT)  # type: ignore[call-overload]
    status: str = Field(default="queued", max_length=16)
    deliver_at: datetime = _ts_required()  # type: ignore[assignment]
    created_at: datetime = _ts_required()  # type: ignore[assignment]


class AlertMute(SQLModel, table=True):
    """``member_id`` asked not to get ``kind`` alerts until ``until``."""

    __tablename__ = "alert_mute"

    member_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=32)
    until: datetime = _ts_required()  # type: ignore[assignment]
    created_at: datetime = _ts_required()  # type: ignore[assignment]


class ScanState(SQLModel, table=True):
    """Where a scan stands: a ``(cursor_at, cursor_id)`` watermark or the last day it ran."""

    __tablename__ = "scan_state"

    name: str = Field(primary_key=True, max_length=64)
    cursor_at: datetime | None = _ts()  # type: ignore[assignment]
    cursor_id: int = 0
    cursor_day: date | None = None
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class TicketSla(SQLModel, table=True):
    """A ticket's SLA chain: which step is next, and the clock paused while waiting for the customer.

    ``step`` indexes the policy's escalation steps; ``remaining_seconds`` keeps what was left
    of the running step when the clock was paused (business or wall seconds, per policy).
    """

    __tablename__ = "ticket_sla"

    ticket_id: int = Field(primary_key=True, foreign_key="ticket.id")
    step: int = 0
    escalated_to: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # JSON list
    accepted_at: datetime | None = _ts()  # type: ignore[assignment]
    last_progress_at: datetime | None = _ts()  # type: ignore[assignment]
    paused_at: datetime | None = _ts()  # type: ignore[assignment]
    remaining_seconds: float | None = None
    updated_at: datetime = _ts_required()  # type: ignore[assignment]
