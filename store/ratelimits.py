"""Per-recipient send limits shared by every process on one database.

A platform silently drops what goes past its per-member limit (WeCom: 30 a minute), so
the limit must hold for all ``leadbot serve`` processes together, not for each one.

A rule "at most ``limit`` sends in any ``per_s`` seconds" is counted in slots of
``slot_s`` seconds (``ratecounter`` rows keyed by recipient, rule and slot number). A send
in slot *k* is allowed only while the slots *k-n … k* together (``n = per_s / slot_s``)
hold fewer than ``limit`` sends, the new one included.

Why this never exceeds the rule: any ``per_s``-long window touches at most ``n + 1``
consecutive slots, the last of them some *k*; every send in that window lies in *k-n … k*,
and the last send admitted in slot *k* saw all of them counted (the earlier slots were
already over) and kept the total at ``limit`` or below. A plain fixed window would allow
``2 × limit`` across its boundary; the price here is that a full burst waits
``per_s + slot_s`` instead of ``per_s`` before the next send (61 s for WeCom's minute with
1 s slots).

Concurrency: earlier slots are no longer written (they are in the past), so reading them
needs no lock; the current slot is counted with one atomic ``INSERT … ON CONFLICT DO
UPDATE SET sends = sends + n WHERE sends + n <= allowance RETURNING`` (SQLite ≥ 3.35,
PostgreSQL), which two processes cannot both pass past the limit. Clocks of different
hosts must agree to well under a slot (NTP does: milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from store.models import RateCounter

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class RateRule:
    """At most ``limit`` sends to one recipient in any ``per_s`` seconds, counted per ``slot_s``.

    ``per_s`` must be a whole number of slots; a smaller slot wastes less of the limit
    after a burst but writes more rows.
    """

    limit: int
    per_s: float
    slot_s: float = 1.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.per_s <= 0 or self.slot_s <= 0:
            raise ValueError("a rate rule needs limit >= 1, per_s > 0 and slot_s > 0")
        if self.window_ms % self.slot_ms:
            raise ValueError(f"per_s ({self.per_s}) must be a whole number of slots ({self.slot_s} s)")

    @property
    def window_ms(self) -> int:
        """The rule's window in milliseconds (also its key in ``ratecounter``)."""
        return round(self.per_s * 1000)

    @property
    def slot_ms(self) -> int:
        """One slot in milliseconds."""
        return round(self.slot_s * 1000)

    @property
    def slots(self) -> int:
        """Earlier slots that count together with the current one."""
        return self.window_ms // self.slot_ms


def _ms(now: datetime) -> int:
    return (now - EPOCH) // timedelta(milliseconds=1)


def _wait_ms(rule: RateRule, counts: dict[int, int], current: int, now_ms: int, cost: int) -> int:
    """Milliseconds until a send of ``cost`` fits, given the counts seen (later slots empty)."""
    n = rule.slots
    for slot in range(current + 1, current + n + 2):
        if sum(counts.get(s, 0) for s in range(slot - n, current + 1)) + cost <= rule.limit:
            return slot * rule.slot_ms - now_ms
    return (current + n + 1) * rule.slot_ms - now_ms  # unreachable: cost <= limit


def acquire(session: Session, platform: str, recipient: str, rules: Sequence[RateRule], now: datetime, *, cost: int = 1) -> float:
    """Count ``cost`` sends to ``recipient`` now if every rule allows them: 0.0.

    Otherwise nothing is counted and the result is the seconds to wait (> 0). ``cost`` above
    a rule's limit is taken as the limit (such a delivery could never go otherwise).
    """
    if not rules or cost <= 0:
        return 0.0
    now_ms = _ms(now)
    current = {rule: now_ms // rule.slot_ms for rule in rules}
    ranges = [
        and_(RateCounter.window_ms == rule.window_ms, RateCounter.slot >= current[rule] - rule.slots, RateCounter.slot <= current[rule])
        for rule in rules
    ]
    seen = session.execute(
        select(RateCounter.window_ms, RateCounter.slot, RateCounter.sends)
        .where(RateCounter.platform == platform, RateCounter.recipient == recipient, or_(*ranges))
    ).all()
    counts: dict[int, dict[int, int]] = {}
    for window_ms, slot, sends in seen:
        counts.setdefault(int(window_ms), {})[int(slot)] = int(sends)
    wait_ms = 0
    for rule in rules:
        c = min(cost, rule.limit)
        mine = counts.get(rule.window_ms, {})
        if sum(mine.values()) + c > rule.limit:
            wait_ms = max(wait_ms, _wait_ms(rule, mine, current[rule], now_ms, c))
    if wait_ms:
        return wait_ms / 1000
    dialect_insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    taken: list[tuple[RateRule, int]] = []
    for rule in rules:
        c = min(cost, rule.limit)
        slot = current[rule]
        earlier = sum(n for s, n in counts.get(rule.window_ms, {}).items() if s < slot)
        allowance = rule.limit - earlier
        expires = EPOCH + timedelta(milliseconds=(slot + 1) * rule.slot_ms + rule.window_ms)
        stmt = dialect_insert(RateCounter).values(
            platform=platform, recipient=recipient, window_ms=rule.window_ms, slot=slot, sends=c, expires_at=expires,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["platform", "recipient", "window_ms", "slot"],
            set_={"sends": RateCounter.sends + c},
            where=RateCounter.sends + c <= allowance,
        ).returning(RateCounter.sends)
        if session.execute(stmt).first() is None:
            # Another process took the rest of this slot between our read and write: give
            # back what this call counted under the other rules (same transaction) and wait.
            for done, n in taken:
                session.execute(
                    update(RateCounter)
                    .where(RateCounter.platform == platform, RateCounter.recipient == recipient,
                           RateCounter.window_ms == done.window_ms, RateCounter.slot == current[done])
                    .values(sends=RateCounter.sends - n)
                )
            return ((slot + 1) * rule.slot_ms - now_ms) / 1000
        taken.append((rule, c))
    return 0.0


def prune(session: Session, now: datetime) -> int:
    """Delete counters no rule can see any more; how many went."""
    result = session.execute(delete(RateCounter).where(RateCounter.expires_at < now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
