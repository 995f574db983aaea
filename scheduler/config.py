"""The scheduler's rules: deadlines, thresholds, the notification budget and retention.

Defaults are what a small manufacturer's sales team expects; ``[scheduler]`` in
leadbot.toml overrides them (see :meth:`ScanSettings.from_mapping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

from handlers.alerts import Budget
from handlers.metrics import MetricSettings, config_number
from handlers.tickets import TicketPolicy

# Platforms redeliver an unacknowledged callback for minutes to hours (WeCom three times
# within seconds, Feishu over about six hours, DingTalk Stream until acknowledged); a
# handled inbox row is what drops such a redelivery, so it is kept a week at the least.
MIN_INBOX_RETENTION = timedelta(days=7)
MIN_OUTBOX_RETENTION = timedelta(days=7)
# Margin on top of the longest window that reads the alert ledger (see alert_retention_floor).
ALERT_RETENTION_MARGIN = timedelta(days=7)


class SettingError(ValueError):
    """A bad ``[scheduler]`` value: which key, and why in Chinese and English."""

    def __init__(self, key: str, zh: str, en: str) -> None:
        super().__init__(f"[scheduler] `{key}` {zh} / {en}")
        self.key, self.zh, self.en = key, zh, en


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
    # Housekeeping (scheduler/housekeeping.py): how long operational rows are kept, when
    # the daily run starts (local hour), and how much it deletes per transaction and tick.
    alert_retention: timedelta = timedelta(days=90)
    inbox_retention: timedelta = timedelta(days=30)
    outbox_retention: timedelta = timedelta(days=30)
    housekeeping_hour: int = 3
    # 500 rows hold SQLite's write lock for ~13 ms (bench/bench_prune.py); 40 rounds = 20k rows a tick.
    prune_batch: int = 500
    prune_rounds: int = 40
    # The metric definitions ([metrics]); the weekly risk report uses them, so its
    # 黑洞率 says what 报表 says.
    metrics: MetricSettings = field(default_factory=MetricSettings)

    def alert_retention_floor(self) -> timedelta:
        """The shortest safe ledger retention for these settings.

        A scan that runs for the first time (or whose cursor was lost) reads ``lookback``
        back, so a key must outlive its event by that much or the alert would be sent
        again; the weekly report counts the last 7 days of first-touch alerts; the daily
        cap and the spacing look at today's deliveries. A margin covers the rest.
        """
        return max(self.lookback, timedelta(days=7), timedelta(days=1) + self.budget.min_spacing) + ALERT_RETENTION_MARGIN

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, metrics: MetricSettings | None = None) -> ScanSettings:
        """Settings from the ``[scheduler]`` table; a bad key or value raises :class:`SettingError`.

        Keys: the field names above, plus ``daily_cap``, ``min_spacing_minutes``,
        ``lookback_days``, ``alert_retention_days``, ``inbox_retention_days``,
        ``outbox_retention_days`` and a ``[scheduler.tickets]`` table (see :class:`TicketPolicy`).
        """
        data = dict(data or {})
        settings = cls() if metrics is None else cls(metrics=metrics)
        budget = settings.budget
        if "daily_cap" in data:
            budget = replace(budget, daily_cap=_number(data.pop("daily_cap"), "daily_cap", integer=True, least=1))
        if "min_spacing_minutes" in data:
            budget = replace(budget, min_spacing=timedelta(minutes=_number(data.pop("min_spacing_minutes"), "min_spacing_minutes", least=0)))
        changes: dict[str, Any] = {"budget": budget}
        days = {"lookback_days": "lookback", "alert_retention_days": "alert_retention",
                "inbox_retention_days": "inbox_retention", "outbox_retention_days": "outbox_retention"}
        for key, name in days.items():
            if key in data:
                changes[name] = timedelta(days=_number(data.pop(key), key, least=1))
        if "tickets" in data:
            changes["tickets"] = TicketPolicy.from_mapping(data.pop("tickets"))
        simple = {f.name for f in fields(cls)} - {"budget", "tickets", "metrics"} - set(days.values())
        for key in list(data):
            if key not in simple:
                raise SettingError(key, "未知的键", "unknown key")
            value = data.pop(key)
            if key == "stalled_tiers":
                if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                    raise SettingError(key, "应为非空的等级列表，例如 [\"A\"]", "must be a non-empty list of tiers, e.g. [\"A\"]")
                changes[key] = tuple(v.strip() for v in value)
                continue
            integer = isinstance(getattr(settings, key), int)
            least = 0 if key == "housekeeping_hour" or not integer else 1
            changes[key] = _number(value, key, integer=integer, least=least)
        result = replace(settings, **changes)
        _check(result)
        return result


def _number(value: Any, key: str, *, integer: bool = False, least: float = 0) -> Any:
    """``value`` as an int (or float) not below ``least``; SettingError otherwise."""
    value = config_number(value, key, SettingError, integer=integer)
    if value < least:
        raise SettingError(key, f"不能小于 {least:g}", f"must be at least {least:g}")
    return value


def _days(span: timedelta) -> str:
    return f"{span / timedelta(days=1):g}"


def _check(s: ScanSettings) -> None:
    """Rules between keys: retention long enough for everything that reads the rows."""
    floor = s.alert_retention_floor()
    if s.alert_retention < floor:
        raise SettingError(
            "alert_retention_days",
            f"提醒记录至少要保留 {_days(floor)} 天（lookback_days {_days(s.lookback)} 天 + 7 天余量）："
            "更早删除的话，首次运行或游标丢失的扫描会把同一条提醒再发一次",
            f"must be at least {_days(floor)} days (lookback_days {_days(s.lookback)} + 7): a scan that looks back "
            "further than the ledger remembers would send an alert again",
        )
    if s.inbox_retention < MIN_INBOX_RETENTION:
        raise SettingError("inbox_retention_days", "至少保留 7 天：平台可能在此期间重发同一条消息，收件箱记录用来去重",
                           "must be at least 7 days: inbox rows drop platform redeliveries")
    if s.outbox_retention < MIN_OUTBOX_RETENTION:
        raise SettingError("outbox_retention_days", "至少保留 7 天", "must be at least 7 days")
    if not 0 <= s.housekeeping_hour <= 23:
        raise SettingError("housekeeping_hour", "应为 0–23 的整数（北京时间的小时）", "must be an hour 0-23 (Shanghai time)")
    if s.prune_batch > 10_000:
        raise SettingError("prune_batch", "每批最多删除 10000 行（批次越大，SQLite 写锁占用越久）",
                           "at most 10000 rows per batch (SQLite holds its write lock for the whole batch)")
