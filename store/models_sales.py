"""Tables of the sales side: stage answers, stage gates, scoring inputs and versions,
decision chains.

* :class:`OpportunityState` is an opportunity's answers to stage questions (痛点, 报价金额,
  下次联系日期, 输单原因 …) and when it entered its current stage. Money answers are fen,
  dates ISO strings, so the JSON never holds a float.
* :class:`StageGate` is a conversation in progress: a rep asked to move a deal into a
  stage whose required fields are missing; the bot asks, the answers fill the gate, and
  the stage moves when nothing is missing. Its ``status`` survives restarts.
* :class:`ScoringFacts` holds formula inputs that are not columns (微信互动次数, 白皮书下载,
  官网停留分钟 …) for a customer or a lead.
* :class:`ScoringVersion` remembers which formula produced the stored scores, so a changed
  formula triggers a recompute of every record, also across restarts.
* :class:`DecisionLink` is an influence link between two contacts of one customer
  ("设备科王主任 → 影响 → 检验科李主任"); a contact's decision weight is ``Contact.decision_weight``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from store.types import UTCDateTime


def _ts(*, index: bool = False) -> object:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=True))


def _ts_required(*, index: bool = False) -> object:
    return Field(sa_column=Column(UTCDateTime(), index=index, nullable=False))


class OpportunityState(SQLModel, table=True):
    """Stage answers of one opportunity and when it entered its current stage."""

    __tablename__ = "opportunity_state"

    opportunity_id: int = Field(primary_key=True, foreign_key="opportunity.id")
    fields_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    stage_entered_at: datetime = _ts_required()  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class StageGate(SQLModel, table=True):
    """A requested stage change waiting for answers (the conversational gate).

    status: ``open`` (asking) → ``done`` (stage moved) | ``cancelled`` | ``superseded``.
    """

    __tablename__ = "stage_gate"
    __table_args__ = (Index("ix_stage_gate_member_status", "member_id", "status"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    opportunity_id: int = Field(foreign_key="opportunity.id", index=True)
    member_id: str = Field(max_length=64)
    target_stage: str = Field(max_length=32)
    status: str = Field(default="open", max_length=16)
    override_reason: Optional[str] = Field(default=None, max_length=200)
    created_at: datetime = _ts_required()  # type: ignore[assignment]
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class ScoringFacts(SQLModel, table=True):
    """Formula inputs of a customer or lead that are not table columns (JSON object)."""

    __tablename__ = "scoring_facts"

    entity: str = Field(primary_key=True, max_length=16)  # "customer" | "lead"
    entity_id: int = Field(primary_key=True)
    facts_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    updated_at: datetime = _ts_required()  # type: ignore[assignment]


class ScoringVersion(SQLModel, table=True):
    """The digest of the formula whose results are stored (``health`` / ``lead``)."""

    __tablename__ = "scoring_version"

    name: str = Field(primary_key=True, max_length=32)
    digest: str = Field(max_length=64)
    records: int = 0
    applied_at: datetime = _ts_required()  # type: ignore[assignment]


class DecisionLink(SQLModel, table=True):
    """``source`` contact influences ``target`` contact (same customer)."""

    __tablename__ = "decision_link"

    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    source_contact_id: int = Field(foreign_key="contact.id")
    target_contact_id: int = Field(foreign_key="contact.id")
    kind: str = Field(default="影响", max_length=16)
    created_at: datetime = _ts_required()  # type: ignore[assignment]
