"""The Chinese business calendar: public holidays, make-up working days and business hours.

Pure functions over dates and aware datetimes. The holiday tables are data
(``nlp/data/holidays/YYYY.toml``, one file per year) so that a new year's State
Council schedule is a file drop, not a code change. Years without a table fall back
to Monday–Friday.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOLIDAY_DIR = Path(__file__).parent / "data" / "holidays"


@dataclass(frozen=True)
class Holiday:
    """A run of public-holiday days off, with the make-up working days that pay for it."""

    name: str
    start: date
    end: date
    workdays: tuple[date, ...] = ()

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


@lru_cache(maxsize=None)
def holidays(year: int) -> tuple[Holiday, ...]:
    """The holidays of ``year`` from its table, or () when no table is published yet."""
    path = HOLIDAY_DIR / f"{year}.toml"
    if not path.exists():
        return ()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return tuple(
        Holiday(
            name=h["name"],
            start=h["start"],
            end=h["end"],
            workdays=tuple(h.get("workdays", ())),
        )
        for h in data.get("holiday", ())
    )


def known_years() -> list[int]:
    """Years that have a holiday table."""
    return sorted(int(p.stem) for p in HOLIDAY_DIR.glob("*.toml"))


def holiday_on(day: date) -> Holiday | None:
    """The holiday ``day`` falls in, if any (tables of the neighbouring years are checked too)."""
    for year in (day.year, day.year - 1):
        for h in holidays(year):
            if day in h:
                return h
    return None


def _makeup_days(year: int) -> frozenset[date]:
    return frozenset(d for h in holidays(year) for d in h.workdays)


def is_workday(day: date) -> bool:
    """True on an ordinary weekday that is not a holiday, and on a make-up working day."""
    if day in _makeup_days(day.year):
        return True
    if holiday_on(day) is not None:
        return False
    return day.weekday() < 5


def next_workday(day: date, *, include_today: bool = False) -> date:
    """The first working day after ``day`` (or ``day`` itself if allowed and working)."""
    d = day if include_today else day + timedelta(days=1)
    while not is_workday(d):
        d += timedelta(days=1)
    return d


def previous_workday(day: date, *, include_today: bool = False) -> date:
    """The last working day before ``day`` (or ``day`` itself if allowed and working)."""
    d = day if include_today else day - timedelta(days=1)
    while not is_workday(d):
        d -= timedelta(days=1)
    return d


@dataclass(frozen=True)
class BusinessHours:
    """Working hours of a working day, in Asia/Shanghai local time.

    SLA clocks run only inside these hours; quiet hours are everything outside them.
    """

    opens: time = time(9, 0)
    closes: time = time(18, 0)

    def __post_init__(self) -> None:
        if self.opens >= self.closes:
            raise ValueError("working hours must open before they close")

    def _window(self, day: date) -> tuple[datetime, datetime]:
        return (
            datetime.combine(day, self.opens, SHANGHAI),
            datetime.combine(day, self.closes, SHANGHAI),
        )

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` lies inside working hours of a working day."""
        local = at.astimezone(SHANGHAI)
        if not is_workday(local.date()):
            return False
        start, end = self._window(local.date())
        return start <= local < end

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself if inside working hours, else the next opening (as UTC-aware)."""
        local = at.astimezone(SHANGHAI)
        day = local.date()
        if is_workday(day):
            start, end = self._window(day)
            if local < start:
                return start
            if local < end:
                return local
        return self._window(next_workday(day))[0]

    def add(self, start: datetime, hours: float) -> datetime:
        """The moment ``hours`` business hours after ``start`` (nights and holidays skipped)."""
        if hours < 0:
            raise ValueError("hours must be >= 0")
        remaining = timedelta(hours=hours)
        cursor = self.next_open(start)
        while True:
            _, end = self._window(cursor.astimezone(SHANGHAI).date())
            left_today = end - cursor
            if remaining <= left_today:
                return cursor + remaining
            remaining -= left_today
            cursor = self.next_open(end)

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Business time elapsed from ``a`` to ``b`` (zero if ``b`` is not after ``a``)."""
        if b <= a:
            return timedelta(0)
        total = timedelta(0)
        cursor = self.next_open(a)
        while cursor < b:
            _, end = self._window(cursor.astimezone(SHANGHAI).date())
            total += min(end, b) - cursor
            cursor = self.next_open(end)
        return total
