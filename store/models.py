"""The tables of the whole domain, as far as it is known.

Conventions: time columns are aware UTC (:class:`store.types.UTCDateTime`); money is
integer fen (``*_fen``), never float; deadlines live in indexed ``*_due_at`` columns so
scheduler scans read only what is due. Schema changes go through Alembic
(``store/migrations``), never ``create_all`` on a live database.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from store.types import BIG_INT, UTCDateTime


def _ts(*, index: bool = False, nullable: bool = True) -> object:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


def _ts_required(*, index: bool = False) -> object:
    return Field(sa_column=Column(UTCDateTime(), index=index, nullable=False))


class Region(SQLModel, table=True):
    """A sales region: the provinces it covers and its manager (from leadbot.toml)."""

    name: str = Field(primary_key=True, max_length=64)
    provinces: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list
    manager_id: Optional[str] = Field(default=None, max_length=64)


class Member(SQLModel, table=True):
    """A person of the organisation: rep, manager or admin, with their ids on each platform."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=64)
    role: str = Field(default="rep", max_length=16)
    region: Optional[str] = Field(default=None, max_length=64, index=True)
    manager_id: Optional[str] = Field(default=None, max_length=64)
    daily_capacity: int = 20
    active: bool = True
    on_leave: bool = False
    wecom_userid: Optional[str] = Field(default=None, max_length=128, index=True)
    feishu_open_id: Optional[str] = Field(default=None, max_length=128, index=True)
    dingtalk_userid: Optional[str] = Field(default=None, max_length=128, index=True)
    preferred_platform: Optional[str] = Field(default=None, max_length=16)
    joined_at: Optional[datetime] = _ts()  # type: ignore[assignment]


class Customer(SQLModel, table=True):
    """A company we sell to (a lead becomes, or is merged into, a customer)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    name_norm: str = Field(default="", max_length=200, index=True)
    province: Optional[str] = Field(default=None, max_length=32)
    city: Optional[str] = Field(default=None, max_length=32)
    industry: Optional[str] = Field(default=None, max_length=32)
    owner_id: Optional[str] = Field(default=None, max_length=64, index=True)
    tier: Optional[str] = Field(default=None, max_length=8)
    health_score: Optional[int] = None
    budget_fen: Optional[int] = Field(default=None, sa_type=BIG_INT)  # type: ignore[call-overload]
    next_contact_on: Optional[date] = Field(default=None, index=True)
    created_at: datetime = _ts_required()  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class Contact(SQLModel, table=True):
    """A person on the customer side."""

    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    name: str = Field(max_length=64)
    title: Optional[str] = Field(default=None, max_length=32)
    phone: Optional[str] = Field(default=None, max_length=32)
    phone_norm: Optional[str] = Field(default=None, max_length=32, index=True)
    decision_weight: Optional[int] = None


class Lead(SQLModel, table=True):
    """A sales lead from a form, an import or a chat, and where it is in its life.

    status: ``unassigned`` (nobody could take it: manager's pool) → ``assigned`` (card sent,
    waiting for 接受 until ``accept_due_at``) → ``accepted`` | ``invalid``.
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: Optional[int] = Field(default=None, foreign_key="customer.id", index=True)
    company: str = Field(max_length=200)
    contact_name: str = Field(default="", max_length=64)
    phone: str = Field(default="", max_length=32)
    phone_norm: Optional[str] = Field(default=None, max_length=32, index=True)
    province: Optional[str] = Field(default=None, max_length=32)
    city: Optional[str] = Field(default=None, max_length=32)
    industry: Optional[str] = Field(default=None, max_length=32)
    budget_fen: Optional[int] = Field(default=None, sa_type=BIG_INT)  # type: ignore[call-overload]
    source: str = Field(default="官网表单", max_length=32)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(default="unassigned", max_length=16, index=True)
    owner_id: Optional[str] = Field(default=None, max_length=64, index=True)
    region: Optional[str] = Field(default=None, max_length=64, index=True)
    rule_name: Optional[str] = Field(default=None, max_length=128)
    explanation: str = Field(default="", max_length=500)
    invalid_reason: Optional[str] = Field(default=None, max_length=64)
    score: Optional[int] = Field(default=None, sa_type=BIG_INT)  # type: ignore[call-overload]
    tier: Optional[str] = Field(default=None, max_length=8)
    created_at: datetime = _ts_required(index=True)  # type: ignore[assignment]
    assigned_at: Optional[datetime] = _ts()  # type: ignore[assignment]
    accept_due_at: Optional[datetime] = _ts(index=True)  # type: ignore[assignment]
    accepted_at: Optional[datetime] = _ts()  # type: ignore[assignment]
    last_interaction_at: Optional[datetime] = _ts(index=True)  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class FollowUp(SQLModel, table=True):
    """A record of an interaction with a customer, written from chat."""

    id: Optional[int] = Field(default=None, primary_key=True)
    lead_id: Optional[int] = Field(default=None, foreign_key="lead.id", index=True)
    customer_id: Optional[int] = Field(default=None, foreign_key="customer.id", index=True)
    member_id: str = Field(max_length=64, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    fields_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    status: str = Field(default="confirmed", max_length=16)
    next_contact_on: Optional[date] = Field(default=None, index=True)
    created_at: datetime = _ts_required(index=True)  # type: ignore[assignment]
    confirmed_at: Optional[datetime] = _ts()  # type: ignore[assignment]


class Opportunity(SQLModel, table=True):
    """A deal in the pipeline."""

    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: Optional[int] = Field(default=None, foreign_key="customer.id", index=True)
    lead_id: Optional[int] = Field(default=None, foreign_key="lead.id", index=True)
    owner_id: Optional[str] = Field(default=None, max_length=64, index=True)
    name: str = Field(max_length=200)
    amount_fen: Optional[int] = Field(default=None, sa_type=BIG_INT)  # type: ignore[call-overload]
    stage: str = Field(default="首通电话", max_length=32)
    expected_close_on: Optional[date] = None
    stage_due_at: Optional[datetime] = _ts(index=True)  # type: ignore[assignment]
    created_at: datetime = _ts_required()  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class Ticket(SQLModel, table=True):
    """A service ticket with its SLA clock."""

    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: Optional[int] = Field(default=None, foreign_key="customer.id", index=True)
    owner_id: Optional[str] = Field(default=None, max_length=64, index=True)
    priority: str = Field(default="P2", max_length=4)
    status: str = Field(default="open", max_length=16, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    sla_due_at: Optional[datetime] = _ts(index=True)  # type: ignore[assignment]
    created_at: datetime = _ts_required()  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class AuditEvent(SQLModel, table=True):
    """Who changed what, when, and why (which rule)."""

    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    entity: str = Field(max_length=16)
    entity_id: int
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    at: datetime = _ts_required()  # type: ignore[assignment]


class InboxEvent(SQLModel, table=True):
    """A verified inbound event, stored before the platform is acknowledged.

    ``(platform, event_key)`` is unique: a redelivery is acknowledged and dropped.
    status: ``incomplete`` → ``pending`` → ``done`` | ``failed`` (handler raised N times;
    kept for an admin). ``incomplete`` rows still need their adapter's ``complete()``
    (fetch a forwarded record's messages, transcribe a voice note) before any handler may
    see them; ``complete_due_at`` is when the next try may start (a try in progress leases
    the row by moving it forward), ``complete_attempts`` counts the tries that failed.
    """

    __table_args__ = (
        UniqueConstraint("platform", "event_key", name="uq_inbox_platform_key"),
        # The dispatcher takes the oldest pending row; handled rows (nearly all of them)
        # stay out of this index, so the claim does not walk past them.
        Index("ix_inbox_pending", "id", sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    event_key: str = Field(max_length=255)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16, index=True)
    attempts: int = 0
    error: Optional[str] = Field(default=None, max_length=500)
    received_at: datetime = _ts_required()  # type: ignore[assignment]
    processed_at: Optional[datetime] = _ts()  # type: ignore[assignment]
    complete_due_at: Optional[datetime] = _ts()  # type: ignore[assignment]
    # server_default: rows stored before migration 0005 count as never tried.
    complete_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class OutboxMessage(SQLModel, table=True):
    """Something to send to a person on a platform; the delivery worker drains it.

    status: ``pending`` → ``sent`` | ``dead`` (gave up after N tries; visible to admins).
    ``kind``: ``card`` (new card), ``card_update`` (update card ``card_id``), ``text``.
    """

    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # Per-recipient order in claims: the first blocked row of each recipient among the
        # pending ones only (store/outbox.claim_due).
        Index("ix_outbox_pending_recipient", "platform", "recipient", "id",
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    recipient: str = Field(max_length=128)
    member_id: Optional[str] = Field(default=None, max_length=64)
    kind: str = Field(max_length=16)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    card_id: Optional[str] = Field(default=None, max_length=64, index=True)
    dedupe_key: str = Field(max_length=128, unique=True)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    last_error: Optional[str] = Field(default=None, max_length=500)
    next_attempt_at: datetime = _ts_required()  # type: ignore[assignment]
    created_at: datetime = _ts_required()  # type: ignore[assignment]
    sent_at: Optional[datetime] = _ts()  # type: ignore[assignment]


class RateCounter(SQLModel, table=True):
    """Sends to one recipient in one time slot, shared by every process on this database.

    A rule "at most N per W seconds" is counted in slots of ``slot_ms`` (``window_ms`` names
    the rule); ``slot`` is ``epoch_ms // slot_ms``. See ``store/ratelimits.py``. Rows are
    useless after ``expires_at`` and are deleted as new ones are made.
    """

    platform: str = Field(primary_key=True, max_length=16)
    recipient: str = Field(primary_key=True, max_length=128)
    window_ms: int = Field(primary_key=True)
    slot: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    sends: int = 0
    expires_at: datetime = _ts_required(index=True)  # type: ignore[assignment]


class CardHandle(SQLModel, table=True):
    """A card we sent, what it is about, and the platform's handle to update it."""

    card_id: str = Field(primary_key=True, max_length=64)
    platform: str = Field(max_length=16)
    member_id: str = Field(max_length=64, index=True)
    subject: str = Field(max_length=64, index=True)  # "lead:12"
    state: str = Field(default="open", max_length=16)
    card_json: str = Field(sa_column=Column(Text, nullable=False))
    platform_handle: Optional[str] = Field(default=None, max_length=255)
    response_code: Optional[str] = Field(default=None, max_length=255)
    handle_expires_at: Optional[datetime] = _ts()  # type: ignore[assignment]
    created_at: datetime = _ts_required()  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class ChartUpload(SQLModel, table=True):
    """A chart uploaded to a platform for one outbox message, and which parts of that
    delivery already went out, so a retried or resumed delivery (after a restart) reuses the
    upload while it is valid and never sends a part twice.

    ``media_id``: the platform's id for the image (WeCom ``media_id``, 3 days; Feishu
    ``image_key``; DingTalk ``media_id``), valid until ``expires_at`` (None: no limit);
    another delivery of the same card reuses it when ``image_sha256`` matches.
    ``parts_json``: ``{part: {...}}`` for each part sent (WeCom sends the card, then the
    image as its own message; ``card`` keeps what the send returned).
    """

    outbox_id: int = Field(primary_key=True)
    platform: str = Field(max_length=16)
    card_id: Optional[str] = Field(default=None, max_length=64, index=True)
    media_id: Optional[str] = Field(default=None, max_length=255)
    image_sha256: Optional[str] = Field(default=None, max_length=64)  # same picture, same upload
    expires_at: Optional[datetime] = _ts()  # type: ignore[assignment]
    parts_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = _ts_required(index=True)  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class RotationState(SQLModel, table=True):
    """Where each assignment pool's rotation stands, so it survives restarts."""

    pool: str = Field(primary_key=True, max_length=128)
    state_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class SandboxMessage(SQLModel, table=True):
    """The sandbox platform's chat history (the sandbox is a platform like the others)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    user: str = Field(max_length=64, index=True)
    dedupe_key: Optional[str] = Field(default=None, max_length=128, unique=True)  # as a real platform dedupes
    direction: str = Field(max_length=4)  # "in" (member → bot) | "out" (bot → member)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    card_id: Optional[str] = Field(default=None, max_length=64, index=True)
    card_json: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts_required()  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]
