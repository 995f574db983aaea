"""What every handler is given (clock, signing secret, rules) and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal, Protocol

from cards.model import Card
from handlers.assignment import AssignmentRules
from nlp.calendar import BusinessHours

if TYPE_CHECKING:
    from handlers.metrics import MetricSettings
    from handlers.opportunities import RulesBook
    from handlers.tickets import TicketPolicy
    from handlers.webhooks import Webhook


class Clock(Protocol):
    """Where "now" comes from. Tests pass a clock they can move."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        self._now = when

    def advance(self, **delta: float) -> None:
        """Move forward by ``timedelta(**delta)``."""
        from datetime import timedelta

        self._now += timedelta(**delta)


@dataclass(frozen=True)
class Outgoing:
    """One thing to send to a member; the gateway turns it into an outbox row.

    ``dedupe_key`` must be derived from what caused it (inbox row, lead id, alert key),
    so replaying the cause never sends twice. ``platform`` pins the platform (a reply goes
    back where the message came from); None lets the member's preference decide.
    """

    member_id: str
    kind: Literal["text", "card", "card_update"]
    dedupe_key: str
    text: str = ""
    card: Card | None = None
    card_id: str | None = None
    platform: str | None = None
    recipient: str | None = None  # a platform user id, for people who are not members yet


@dataclass
class HandlerContext:
    """Dependencies of handlers: injected, never global."""

    clock: Clock
    secret: str
    rules: AssignmentRules = field(default_factory=AssignmentRules)
    enabled_platforms: tuple[str, ...] = ("sandbox",)
    # Scoring formulas and stages (handlers.opportunities.RulesBook), swapped on reload.
    sales_rules: "RulesBook | None" = None
    # Service-ticket SLA chain ([scheduler.tickets]); None means the built-in default.
    ticket_policy: "TicketPolicy | None" = None
    # Outbound webhooks ([[webhooks]]): domain events are queued for them with the change.
    webhooks: "tuple[Webhook, ...]" = ()
    # Metric definitions and thresholds ([metrics]); None means the built-in defaults.
    metrics: "MetricSettings | None" = None

    @property
    def business_hours(self) -> BusinessHours:
        """Working hours (from ``[assignment] business_hours``)."""
        return self.rules.business_hours

    @property
    def accept_within_hours(self) -> float:
        """Default business hours a rep has to accept a lead."""
        return self.rules.accept_within_hours
