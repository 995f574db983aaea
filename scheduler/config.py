"""The scheduler's rules: deadlines, thresholds and the notification budget.

Defaults are what a small manufacturer's sales team expects; ``[scheduler]`` in
leadbot.toml overrides them (see :meth:`ScanSettings.from_mapping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

from handlers.alerts import Budget
from handlers.tickets import TicketPolicy


@dataclass(frozen=True)
class ScanSettings:
    """Thresholds of every scan (hours are business hours where the name says so)."""

    # Rows per transaction (SQLite holds its write lock for a whole transaction, and the
    # inbox must not wait): alerts decided, leads re-assigned, reps' 今日待办 built.
    batch: int = 200
    reassign_batch: int = 20
    todo_batch: int = 50
    max_rounds: int = 1000
    interval_seconds: int = 60
    first_touch_business_hours: float = 4.0
    stalled_hours: float = 48.0
    stalled_tiers: tuple[str, ...] = ("A",)
    intent_hours: float = 24.0
    todo_size: int = 5
    # How far back a scan looks the very first time it runs (so an old database does not
    # flood people with history).
    lookback: timedelta = timedelta(days=30)
    budget: Budget = field(default_factory=Budget)
    tickets: TicketPolicy = field(default_factory=TicketPolicy)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ScanSettings:
        """Settings from the ``[scheduler]`` table; unknown keys raise ``ValueError`` naming them.

        Keys: the field names above, plus ``daily_cap``, ``min_spacing_minutes``,
        ``lookback_days`` and a ``[scheduler.tickets]`` table (see :class:`TicketPolicy`).
        """
        data = dict(data or {})
        settings = cls()
        budget = settings.budget
        if "daily_cap" in data:
            budget = replace(budget, daily_cap=int(data.pop("daily_cap")))
        if "min_spacing_minutes" in data:
            budget = replace(budget, min_spacing=timedelta(minutes=float(data.pop("min_spacing_minutes"))))
        changes: dict[str, Any] = {"budget": budget}
        if "lookback_days" in data:
            changes["lookback"] = timedelta(days=float(data.pop("lookback_days")))
        if "tickets" in data:
            changes["tickets"] = TicketPolicy.from_mapping(data.pop("tickets"))
        simple = {f.name for f in fields(cls)} - {"budget", "tickets", "lookback"}
        for key in list(data):
            if key not in simple:
                raise ValueError(f"[scheduler] 未知的键 `{key}` / unknown key `{key}`")
            value = data.pop(key)
            changes[key] = tuple(value) if key == "stalled_tiers" else type(getattr(settings, key))(value)
        return replace(settings, **changes)
