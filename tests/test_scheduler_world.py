"""A small world for scheduler tests: the template organisation on a real database, a fake
clock, helpers to create leads/opportunities/follow-ups, and an enqueue that records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from bot.app import org_rows
from handlers.context import FakeClock, HandlerContext, Outgoing
from handlers.leads import intake, validate_form
from nlp.calendar import SHANGHAI
from scheduler.config import ScanSettings
from scheduler.scans import run_all
from store import outbox
from store.db import Database
from store.models import FollowUp, Lead, Opportunity
from store.org import sync_org
from tests.conftest import JIANGSU_LEAD, make_settings

DIGEST_KEYS = ("alert:todo:", "alert:weekly:")


def sh(*args: int) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


@dataclass
class World:
    """Database, context, clock and what the scans queued (``(deliver_at, Outgoing)``)."""

    db: Database
    ctx: HandlerContext
    clock: FakeClock
    settings: ScanSettings = field(default_factory=ScanSettings)
    queued: list[tuple[datetime, Outgoing]] = field(default_factory=list)

    def enqueue(self, session: Session, out: list[Outgoing], when: datetime) -> None:
        """Record and write outbox rows (as the gateway would), in the scan's transaction."""
        for o in out:
            self.queued.append((when, o))
            outbox.enqueue(session, platform="sandbox", recipient=o.member_id, member_id=o.member_id, kind=o.kind,
                           payload=json.dumps({"text": o.text}, ensure_ascii=False), dedupe_key=o.dedupe_key,
                           now=when, card_id=o.card_id)

    def run(self, at: datetime | None = None) -> dict[str, int]:
        """One scheduler tick at ``at`` (or the clock's now)."""
        if at is not None:
            self.clock.set(at)
        return run_all(self.db, self.ctx, self.clock.now(), self.enqueue, self.settings)

    def take(self, *, everything: bool = False) -> list[tuple[datetime, Outgoing]]:
        """What was queued since the last take (without the daily/weekly digests unless ``everything``)."""
        out, self.queued = self.queued, []
        if everything:
            return out
        return [(w, o) for w, o in out if not o.dedupe_key.startswith(DIGEST_KEYS)]

    def tx(self, fn: Any) -> Any:
        return self.db.transaction(fn)

    def lead(self, **overrides: Any) -> Lead:
        """A web-form lead through the real intake (assigned by the real rules)."""
        data = {**JIANGSU_LEAD, **overrides}

        def go(s: Session) -> Lead:
            res = intake(s, validate_form(data), self.ctx)
            lead = s.get(Lead, res.lead_id)
            assert lead is not None
            return lead

        return self.tx(go)

    def accepted_lead(self, at: datetime, *, tier: str | None = None, owner: str = "zhangwei", budget_fen: int | None = 60_000_000, company: str = "恒锐精密") -> Lead:
        """A lead already accepted by ``owner`` at ``at`` (no first touch yet)."""

        def go(s: Session) -> Lead:
            lead = Lead(company=company, status="accepted", owner_id=owner, region="华东", province="江苏", tier=tier,
                        budget_fen=budget_fen, created_at=at, assigned_at=at, accepted_at=at, last_interaction_at=at, updated_at=at)
            s.add(lead)
            s.flush()
            return lead

        return self.tx(go)

    def touch(self, lead_id: int, at: datetime, text: str = "电话沟通", fields: dict[str, Any] | None = None,
              next_contact_on: date | None = None, member: str = "zhangwei") -> FollowUp:
        """A follow-up on the lead at ``at``."""

        def go(s: Session) -> FollowUp:
            lead = s.get(Lead, lead_id)
            assert lead is not None
            lead.last_interaction_at = at
            s.add(lead)
            f = FollowUp(lead_id=lead_id, customer_id=lead.customer_id, member_id=member, text=text,
                         fields_json=json.dumps(fields or {}), next_contact_on=next_contact_on, created_at=at, confirmed_at=at)
            s.add(f)
            s.flush()
            return f

        return self.tx(go)

    def opportunity(self, owner: str, due: datetime | None, amount_fen: int = 50_000_000, name: str = "恒锐压装线", **kw: Any) -> Opportunity:
        def go(s: Session) -> Opportunity:
            o = Opportunity(owner_id=owner, name=name, amount_fen=amount_fen, stage="方案报价", stage_due_at=due,
                            created_at=self.clock.now(), updated_at=self.clock.now(), **kw)
            s.add(o)
            s.flush()
            return o

        return self.tx(go)

    def get(self, model: Any, ident: Any) -> Any:
        with self.db.session() as s:
            return s.get(model, ident)

    def all(self, stmt: Any) -> list[Any]:
        with self.db.session() as s:
            return list(s.execute(stmt).scalars())


def to(member: str, items: list[tuple[datetime, Outgoing]], kind: str | None = None) -> list[tuple[datetime, Outgoing]]:
    """Items for ``member`` (optionally only of Outgoing kind)."""
    return [(w, o) for w, o in items if o.member_id == member and (kind is None or o.kind == kind)]


def make_world(db_url: str, tmp_path: Path, start: datetime, settings: ScanSettings | None = None) -> World:
    app_settings = make_settings(db_url, tmp_path)
    db = Database(db_url)
    regions, members = org_rows(app_settings)
    db.transaction(lambda s: sync_org(s, regions, members, start))
    clock = FakeClock(start)
    ctx = HandlerContext(clock=clock, secret=app_settings.secret, rules=app_settings.assignment)
    return World(db, ctx, clock, settings or ScanSettings())


def open_world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """The body of each test module's ``world`` fixture: Tuesday 2026-03-10 10:00 in Shanghai."""
    w = make_world(db_url, tmp_path, sh(2026, 3, 10, 10, 0))
    yield w
    w.db.close()


def outbox_rows(w: World) -> list[Any]:
    from store.models import OutboxMessage

    return w.all(select(OutboxMessage).order_by(OutboxMessage.id))


