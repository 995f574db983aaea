"""Process metrics over the store: how fast and how well leads are worked.

Every figure is derived from stored events only (the lead row, its audit trail, the
follow-ups reps wrote, opportunities); nothing is estimated. The definitions (also in
``docs/metrics.zh.md``):

* **分配** (assignment): the lead's first ``assigned`` audit row.
* **首次筛选** (first screening): the owner's first judgement on the card, the first
  ``accepted`` or ``invalid`` audit row. An ``invalid`` screening ends the lead's chain
  legitimately, so "within X" follow-through rates leave such leads out of the
  denominator (they are counted in :attr:`Summary.invalid`).
* **首次触达** (first touch): the first confirmed follow-up linked to the lead and written
  by a person (the import's ``member_id = "import"`` notes are form text, not contact).
* **需求确认** (need confirmed): the first personal follow-up whose extracted intents hold a
  concrete need (:data:`NEED_INTENTS`), or the creation of an opportunity for the lead,
  whichever is earlier.
* **有效互动** (effective interaction): a personal follow-up with at least
  :attr:`MetricSettings.min_interaction_chars` characters; at most one per lead and local
  day (two notes about the same call are one interaction).

Shape: :func:`load_facts` runs one SQL statement that aggregates the audit, follow-up and
opportunity tables per lead of the cohort (leads created inside the period, in scope);
every metric is then a pure function of those facts and ``now``, so the full manager
report reads the big tables once. "Within X" rates only count leads whose window has
closed at ``now`` (a lead created an hour ago can still make its 24 hours).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from difflib import get_close_matches
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from nlp.calendar import SHANGHAI, BusinessHours, is_workday
from store.models import AuditEvent, FollowUp, Lead, Member, Opportunity, Region

IMPORT_MEMBER = "import"
# Intents of the extractor (extraction/README.md) that name a concrete need.
NEED_INTENTS: tuple[str, ...] = ("quote_request", "sample_request", "visit_planned", "upgrade_need", "sign_intent", "price_agreed")
# A follow-up that records an objection: a complaint, a churn risk, or negative sentiment.
OBJECTION_MARKERS: tuple[str, ...] = ("complaint", "churn_risk", "negative")
KEY_FIELDS_DEFAULT: tuple[str, ...] = ("company", "contact_name", "phone", "province", "city", "industry", "budget_fen")
FIELD_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(KEY_FIELDS_DEFAULT)}
FIELD_LABELS: dict[str, str] = {
    "company": "公司", "contact_name": "联系人", "phone": "电话", "province": "省份", "city": "城市",
    "industry": "行业", "budget_fen": "预算",
}
STAGES: tuple[str, ...] = ("待分配", "待筛选", "待首触", "待确认需求", "待转商机")
HEALTH_DIMENSIONS: tuple[str, ...] = ("信息完整性", "响应及时性", "需求明确度", "行业匹配度", "历史互动性")
NOT_COLLECTED = "未采集"
UTC_OFFSET_S = 8 * 3600
UNASSIGNED = "未分配"


class MetricSettingError(ValueError):
    """A bad ``[metrics]`` value: the key path (``stage_norm_hours.待首触``), why in Chinese and English."""

    def __init__(self, key: str, zh: str, en: str) -> None:
        super().__init__(f"[metrics] `{key}` {zh} / {en}")
        self.key, self.zh, self.en = key, zh, en


@dataclass(frozen=True)
class MetricSettings:
    """The knobs of the definitions; ``[metrics]`` in leadbot.toml sets them (see
    :meth:`from_mapping`), defaults are documented in docs/metrics.zh.md.

    The 24 h / 48 h / 72 h windows are not knobs: they are part of the metrics' names
    (48小时未分配率) and of the JSON and Prometheus names built on them.
    """

    black_hole_business_hours: float = 8.0
    min_interaction_chars: int = 6
    activation_days: int = 7
    activation_interactions: int = 2
    # Lead sources that are another department's hand-over (marketing channels; service
    # sources once service hands needs over as leads).
    cross_dept_sources: tuple[str, ...] = ("官网表单", "抖音", "展会", "售后", "客服", "市场活动")
    high_potential_tiers: tuple[str, ...] = ("A", "S", "KA")
    high_potential_budget_fen: int = 50 * 10_000 * 100  # 50万
    key_fields: tuple[str, ...] = KEY_FIELDS_DEFAULT
    key_fields_by_industry: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    target_industries: tuple[str, ...] = ()
    # Norm of each pipeline stage in business hours (the heatmap colours by actual / norm).
    stage_norm_hours: Mapping[str, float] = field(
        default_factory=lambda: {"待分配": 1.0, "待筛选": 2.0, "待首触": 8.0, "待确认需求": 45.0, "待转商机": 45.0}
    )

    def fields_for(self, industry: str | None) -> tuple[str, ...]:
        """The key fields a lead of ``industry`` must have."""
        return self.key_fields_by_industry.get(industry or "", self.key_fields)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> MetricSettings:
        """Settings from the ``[metrics]`` table; a bad key or value raises :class:`MetricSettingError`.

        Keys: ``black_hole_business_hours``, ``min_interaction_chars``, ``activation_days``,
        ``activation_interactions``, ``cross_dept_sources``, ``high_potential_tiers``,
        ``high_potential_budget`` (yuan, or text like ``"50万"``), ``key_fields``,
        ``target_industries``, and the tables ``[metrics.key_fields_by_industry]`` (industry →
        key fields) and ``[metrics.stage_norm_hours]`` (stage → business hours).
        """
        from handlers.assignment import parse_yuan

        raw = dict(data or {})
        default = cls()
        changes: dict[str, Any] = {}
        numbers: dict[str, tuple[bool, float]] = {
            "black_hole_business_hours": (False, 0), "min_interaction_chars": (True, 1),
            "activation_days": (True, 1), "activation_interactions": (True, 1),
        }
        for key, (integer, least) in numbers.items():
            if key in raw:
                changes[key] = _setting_number(raw.pop(key), key, integer, least)
        for key in ("cross_dept_sources", "high_potential_tiers", "target_industries"):
            if key in raw:
                changes[key] = _setting_words(raw.pop(key), key, allow_empty=key == "target_industries")
        if "high_potential_budget" in raw:
            value = raw.pop("high_potential_budget")
            fen = parse_yuan(value)
            if fen is None or fen <= 0:
                raise MetricSettingError("high_potential_budget", f"应为正整数（元）或金额文本，例如 500000 或 \"50万\"，当前是 {value!r}",
                                         f"must be positive integer yuan or an amount like \"50万\", got {value!r}")
            changes["high_potential_budget_fen"] = fen
        if "key_fields" in raw:
            changes["key_fields"] = _key_fields(raw.pop("key_fields"), "key_fields")
        if "key_fields_by_industry" in raw:
            table = raw.pop("key_fields_by_industry")
            if not isinstance(table, dict):
                raise MetricSettingError("key_fields_by_industry", "应为表 [metrics.key_fields_by_industry]，每行 行业 = [字段…]",
                                         "must be a table [metrics.key_fields_by_industry] of industry = [fields]")
            changes["key_fields_by_industry"] = {
                str(industry): _key_fields(value, f"key_fields_by_industry.{industry}") for industry, value in table.items()
            }
        if "stage_norm_hours" in raw:
            table = raw.pop("stage_norm_hours")
            if not isinstance(table, dict):
                raise MetricSettingError("stage_norm_hours", "应为表 [metrics.stage_norm_hours]，每行 阶段 = 工作小时",
                                         "must be a table [metrics.stage_norm_hours] of stage = business hours")
            norms = dict(default.stage_norm_hours)
            for stage, value in table.items():
                if stage not in STAGES:
                    hint = get_close_matches(str(stage), STAGES, n=1)
                    did = f"，是否指 `{hint[0]}`?" if hint else ""
                    raise MetricSettingError(f"stage_norm_hours.{stage}", f"阶段不存在{did}（可选: {' / '.join(STAGES)}）",
                                             f"unknown stage (one of {', '.join(STAGES)})")
                norms[stage] = _setting_number(value, f"stage_norm_hours.{stage}", False, 0)
            changes["stage_norm_hours"] = norms
        for key in raw:
            known = list(numbers) + ["cross_dept_sources", "high_potential_tiers", "target_industries", "high_potential_budget",
                                     "key_fields", "key_fields_by_industry", "stage_norm_hours"]
            hint = get_close_matches(key, known, n=1)
            raise MetricSettingError(key, f"未知的键{f'，是否指 `{hint[0]}`?' if hint else ''}",
                                     f"unknown key{f' (did you mean {hint[0]}?)' if hint else ''}")
        return replace(default, **changes)


def config_number(value: Any, key: str, error: type[ValueError], *, integer: bool) -> int | float:
    """A number from leadbot.toml (or an environment override, which arrives as text), else
    ``error(key, zh, en)``; shared by ``[metrics]`` and ``[scheduler]``."""
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            pass
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        kind = ("整数", "an integer") if integer else ("数字", "a number")
        raise error(key, f"应为{kind[0]}，当前是 {value!r}", f"must be {kind[1]}, got {value!r}")  # type: ignore[call-arg]
    return value if integer else float(value)


def _setting_number(value: Any, key: str, integer: bool, least: float) -> Any:
    """A ``[metrics]`` number: an int when ``integer``; above 0 when ``least`` is 0, else at least ``least``."""
    value = config_number(value, key, MetricSettingError, integer=integer)
    if (least == 0 and value <= 0) or value < least:
        zh, en = ("必须大于 0", "must be above 0") if least == 0 else (f"不能小于 {least:g}", f"must be at least {least:g}")
        raise MetricSettingError(key, f"{zh}，当前是 {value!r}", f"{en}, got {value!r}")
    return value


def _setting_words(value: Any, key: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """A list of non-empty strings, e.g. sources or tiers."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value) or (not value and not allow_empty):
        raise MetricSettingError(key, "应为非空文字的列表，例如 [\"官网表单\", \"展会\"]", "must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


FIELD_BY_LABEL: dict[str, str] = {label: name for name, label in FIELD_LABELS.items()}


def _key_fields(value: Any, key: str) -> tuple[str, ...]:
    """Key fields by name (``phone``) or Chinese label (``电话``)."""
    names = _setting_words(value, key)
    out: list[str] = []
    for word in names:
        name = FIELD_BY_LABEL.get(word, word)
        if name not in FIELD_BITS:
            choices = [*FIELD_LABELS.values(), *FIELD_BITS]
            hint = get_close_matches(word, choices, n=1)
            raise MetricSettingError(key, f"字段 `{word}` 不存在{f'，是否指 `{hint[0]}`?' if hint else ''}（可选: {' / '.join(FIELD_LABELS.values())}）",
                                     f"unknown field `{word}` (one of {', '.join(FIELD_BITS)})")
        if name not in out:
            out.append(name)
    return tuple(out)


def settings_of(ctx: object, fallback: MetricSettings | None = None) -> MetricSettings:
    """The metric settings in force for a handler context.

    ``ctx.metrics`` when the context carries them (the server swaps them on a rules
    reload), else ``fallback`` (the scheduler's copy from start-up), else the defaults.
    """
    found = getattr(ctx, "metrics", None)
    if isinstance(found, MetricSettings):
        return found
    return fallback if fallback is not None else DEFAULT_SETTINGS


DEFAULT_SETTINGS = MetricSettings()


# ---------------------------------------------------------------------------- period and scope


@dataclass(frozen=True)
class Period:
    """Leads created in ``[start, end)`` form the cohort; ``label`` is what people read."""

    start: datetime
    end: datetime
    label: str

    @classmethod
    def this_week(cls, now: datetime) -> "Period":
        """Monday 00:00 (Shanghai) of ``now``'s week up to ``now``."""
        local = now.astimezone(SHANGHAI)
        monday = datetime.combine(local.date() - timedelta(days=local.weekday()), time(0), SHANGHAI)
        return cls(monday, now, "本周")

    @classmethod
    def last_week(cls, now: datetime) -> "Period":
        """The whole previous Monday–Sunday week."""
        this = cls.this_week(now)
        return cls(this.start - timedelta(days=7), this.start, "上周")

    @classmethod
    def this_month(cls, now: datetime) -> "Period":
        """The 1st 00:00 (Shanghai) of ``now``'s month up to ``now``."""
        local = now.astimezone(SHANGHAI)
        return cls(datetime.combine(local.date().replace(day=1), time(0), SHANGHAI), now, "本月")

    @classmethod
    def last_month(cls, now: datetime) -> "Period":
        """The whole previous calendar month."""
        this = cls.this_month(now)
        prev = (this.start - timedelta(days=1)).date().replace(day=1)
        return cls(datetime.combine(prev, time(0), SHANGHAI), this.start, "上月")

    @classmethod
    def since(cls, day: date, now: datetime, until: date | None = None) -> "Period":
        """From ``day`` 00:00 (Shanghai) to ``until`` 24:00, or to ``now``."""
        end = datetime.combine(until + timedelta(days=1), time(0), SHANGHAI) if until else now
        label = f"{day.isoformat()} 至 {until.isoformat() if until else '今'}"
        return cls(datetime.combine(day, time(0), SHANGHAI), min(end, now), label)

    @classmethod
    def named(cls, word: str, now: datetime) -> "Period":
        """本周 / 上周 / 本月 / 上月; anything else is 本周."""
        return {"本周": cls.this_week, "上周": cls.last_week, "本月": cls.this_month, "上月": cls.last_month}.get(word, cls.this_week)(now)


@dataclass(frozen=True)
class Scope:
    """Whose leads: everyone's, one region's (by ``Lead.region``) or one rep's (current owner)."""

    region: str | None = None
    rep: str | None = None

    @property
    def label(self) -> str:
        """``全公司`` / ``华东`` / the rep id."""
        return self.rep or self.region or "全公司"


# ---------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class Rate:
    """``num`` out of ``den``; ``value`` is None when nothing qualified."""

    num: int
    den: int

    @property
    def value(self) -> float | None:
        """The share in [0, 1], or None for 0/0."""
        return self.num / self.den if self.den else None

    def pct(self) -> str:
        """``42.9%（3/7）`` or ``暂无数据``."""
        return "暂无数据" if not self.den else f"{100 * self.num / self.den:.1f}%（{self.num}/{self.den}）"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"num": self.num, "den": self.den, "value": None if self.value is None else round(self.value, 4)}


@dataclass(slots=True)
class LeadFact:
    """One lead of the cohort and the first time it reached each step.

    Times are UTC epoch seconds (floats, None = not yet): the report does hundreds of
    thousands of comparisons, and numbers straight from SQL skip building datetimes.
    ``completeness`` is the share of the industry's key fields that are filled.
    """

    id: int
    created_at: float
    source: str
    region: str | None
    owner_id: str | None
    status: str
    industry: str | None
    tier: str | None
    budget_fen: int | None
    completeness: float
    first_assigned: float | None
    first_screened: float | None
    invalid_at: float | None
    accepted_at: float | None
    first_touch: float | None
    need_at: float | None
    first_opp: float | None
    interactions_window: int  # effective interactions within the activation window
    interactions_total: int


def when(epoch: float | None) -> datetime | None:
    """An epoch-seconds time of a :class:`LeadFact` as an aware UTC datetime."""
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


@dataclass(frozen=True)
class Action24h:
    """24小时动作完成率 and its funnel (counts of eligible leads reaching each step within 24 h)."""

    eligible: int
    assigned: int
    screened: int
    touched: int
    need_confirmed: int

    @property
    def rate(self) -> Rate:
        """Leads that did all four steps within 24 h."""
        return Rate(self.need_confirmed, self.eligible)

    def steps(self) -> list[tuple[str, int]]:
        """The funnel as (label, count)."""
        return [("线索", self.eligible), ("24h内分配", self.assigned), ("24h内首次筛选", self.screened),
                ("24h内首次触达", self.touched), ("24h内需求确认", self.need_confirmed)]


@dataclass(frozen=True)
class BlackHoles:
    """线索黑洞率: leads untouched after N business hours, overall and by source, region and rep."""

    business_hours: float
    overall: Rate
    by_source: dict[str, Rate]
    by_region: dict[str, Rate]
    by_rep: dict[str, Rate]


@dataclass(frozen=True)
class HealthRadar:
    """线索健康度五维雷达: per group (region or rep), each dimension 0–100 or None."""

    dimensions: tuple[str, ...]
    groups: dict[str, tuple[float | None, ...]]


@dataclass(frozen=True)
class DwellHeatmap:
    """流程热力图: mean business hours spent in each stage, per rep, and the norms."""

    stages: tuple[str, ...]
    reps: tuple[str, ...]
    hours: tuple[tuple[float | None, ...], ...]
    counts: tuple[tuple[int, ...], ...]
    norms: tuple[float, ...]

    def ratio(self, i: int, j: int) -> float | None:
        """Actual over norm for rep ``i``, stage ``j`` (1.0 = on the norm)."""
        value = self.hours[i][j]
        return None if value is None else value / self.norms[j]


@dataclass(frozen=True)
class RepCapability:
    """One rep's craft: first-contact conversion, quote opening (not collected), objection handling."""

    rep: str
    name: str
    leads: int
    first_contact_conversion: Rate
    quote_open_rate: str  # NOT_COLLECTED until quote tracking exists
    objections: int
    objection_median_hours: float | None
    black_hole: Rate
    activation: Rate


@dataclass(frozen=True)
class Summary:
    """The manager report's key numbers for one period and scope."""

    period: Period
    scope: Scope
    leads: int
    invalid: int
    action_24h: Action24h
    activation_7d: Rate
    black_holes: BlackHoles
    unassigned_48h: Rate
    untouched_72h: Rate
    converted: int
    lead_to_opp_median_days: float | None
    cross_dept_response: Rate
    info_complete: Rate
    health_by_region: HealthRadar
    health_by_rep: HealthRadar
    heatmap: DwellHeatmap
    reps: tuple[RepCapability, ...]
    names: dict[str, str]
    # The [metrics] thresholds these figures were computed under (cards name them).
    definitions: MetricSettings = DEFAULT_SETTINGS

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /api/metrics/summary`` and ``leadbot report --format json``."""
        return {
            "period": {"label": self.period.label, "start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "scope": {"region": self.scope.region, "rep": self.scope.rep},
            "leads": self.leads,
            "invalid": self.invalid,
            "action_24h": {**self.action_24h.rate.to_dict(), "funnel": dict(self.action_24h.steps())},
            "activation_7d": self.activation_7d.to_dict(),
            "black_hole": {
                "business_hours": self.black_holes.business_hours,
                **self.black_holes.overall.to_dict(),
                "by_source": {k: v.to_dict() for k, v in self.black_holes.by_source.items()},
                "by_region": {k: v.to_dict() for k, v in self.black_holes.by_region.items()},
                "by_rep": {k: v.to_dict() for k, v in self.black_holes.by_rep.items()},
            },
            "unassigned_48h": self.unassigned_48h.to_dict(),
            "untouched_72h": self.untouched_72h.to_dict(),
            "lead_to_opportunity": {"converted": self.converted, "median_days": _round(self.lead_to_opp_median_days)},
            "cross_dept_response_72h": self.cross_dept_response.to_dict(),
            "info_complete": self.info_complete.to_dict(),
            "health": {
                "dimensions": list(HEALTH_DIMENSIONS),
                "by_region": {k: [_round(x) for x in v] for k, v in self.health_by_region.groups.items()},
                "by_rep": {k: [_round(x) for x in v] for k, v in self.health_by_rep.groups.items()},
            },
            "heatmap": {
                "stages": list(self.heatmap.stages),
                "norm_hours": list(self.heatmap.norms),
                "reps": {r: [_round(h) for h in self.heatmap.hours[i]] for i, r in enumerate(self.heatmap.reps)},
            },
            "reps": [
                {
                    "rep": c.rep, "name": c.name, "leads": c.leads,
                    "first_contact_conversion": c.first_contact_conversion.to_dict(),
                    "quote_open_rate": c.quote_open_rate,
                    "objections": c.objections, "objection_median_hours": _round(c.objection_median_hours),
                    "black_hole": c.black_hole.to_dict(), "activation_7d": c.activation.to_dict(),
                }
                for c in self.reps
            ],
        }


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


# ---------------------------------------------------------------------------- business time, fast


class BusinessClock:
    """Business hours between two instants in O(1), from a calendar precomputed over a span.

    :meth:`nlp.calendar.BusinessHours.between` walks day by day; a year's report asks
    hundreds of thousands of such questions, so we keep the cumulative business seconds at
    each local midnight and answer with two look-ups. Instants outside the span fall back
    to the walking version (same answer, slower).
    """

    def __init__(self, hours: BusinessHours, first: date, last: date) -> None:
        self.hours = hours
        self._open = hours.opens.hour * 3600 + hours.opens.minute * 60 + hours.opens.second
        self._close = hours.closes.hour * 3600 + hours.closes.minute * 60 + hours.closes.second
        self._first, self._last = first, last
        self._span = float(self._close - self._open)
        self._origin = (first - date(1970, 1, 1)).days * 86400.0  # local midnight of ``first``, as local epoch
        self._cum: list[float] = []
        self._work: list[bool] = []
        running = 0.0
        day = first
        while day <= last:
            work = is_workday(day)
            self._cum.append(running)
            self._work.append(work)
            if work:
                running += self._close - self._open
            day += timedelta(days=1)

    def _seconds(self, epoch: float) -> float | None:
        # Asia/Shanghai has been UTC+8 all year since 1991: local time is plain arithmetic.
        local = epoch + UTC_OFFSET_S - self._origin
        index = int(local // 86400)
        if index < 0 or index >= len(self._cum):
            return None
        base = self._cum[index]
        if not self._work[index]:
            return base
        tod = local - index * 86400
        return base + min(max(tod - self._open, 0.0), self._span)

    def between_epoch(self, a: float, b: float) -> float:
        """Business hours from epoch second ``a`` to ``b`` (0 when ``b`` is not after ``a``)."""
        if b <= a:
            return 0.0
        sa, sb = self._seconds(a), self._seconds(b)
        if sa is None or sb is None:
            return self.hours.between(datetime.fromtimestamp(a, timezone.utc), datetime.fromtimestamp(b, timezone.utc)).total_seconds() / 3600
        return max(sb - sa, 0.0) / 3600

    def between(self, a: datetime, b: datetime) -> float:
        """Business hours from ``a`` to ``b`` (0 when ``b`` is not after ``a``)."""
        return self.between_epoch(a.timestamp(), b.timestamp())


# ---------------------------------------------------------------------------- SQL over the store


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _local_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The Shanghai calendar day of a UTC column, in SQL (China has no DST: +8 h)."""
    if _dialect(session) == "sqlite":
        return func.date(column, "+8 hours")
    return func.date(func.timezone("Asia/Shanghai", column))


def _days_between(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    """``b - a`` in days (a float), in SQL."""
    if _dialect(session) == "sqlite":
        return func.julianday(b) - func.julianday(a)
    return func.extract("epoch", b - a) / 86400.0


def _epoch(session: Session, column: Any) -> ColumnElement[Any]:
    """A UTC time column as epoch seconds (float), in SQL."""
    if _dialect(session) == "sqlite":
        # Stored as naive UTC text; julianday() reads it, 2440587.5 is 1970-01-01 00:00 UTC.
        return (func.julianday(column) - 2440587.5) * 86400.0
    return cast(func.extract("epoch", column), Float)


def _any_like(column: Any, words: Iterable[str]) -> ColumnElement[bool]:
    # fields_json is the extractor's JSON; intent and sentiment labels are quoted values
    # that appear nowhere else, so a LIKE on '"label"' is exact and portable.
    return or_(*(column.like(f'%"{w}"%') for w in words))


def _cohort_filter(period: Period, scope: Scope) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Lead.created_at >= period.start, Lead.created_at < period.end]
    if scope.region:
        conditions.append(Lead.region == scope.region)
    if scope.rep:
        conditions.append(Lead.owner_id == scope.rep)
    return conditions


def load_facts(session: Session, period: Period, scope: Scope, settings: MetricSettings = DEFAULT_SETTINGS) -> list[LeadFact]:
    """The cohort's leads with their first steps, from one aggregated SQL statement.

    Audit, follow-up and opportunity rows are grouped per lead inside the database (on
    the ``ix_audit_entity``, ``followup.lead_id`` and ``opportunity.lead_id`` indexes), so
    the client receives one row per lead however long the history is.
    """
    cohort = select(Lead.id).where(*_cohort_filter(period, scope)).scalar_subquery()
    audit = (
        select(
            AuditEvent.entity_id.label("lead_id"),
            func.min(case((AuditEvent.action == "assigned", AuditEvent.at))).label("first_assigned"),
            func.min(case((AuditEvent.action.in_(("accepted", "invalid")), AuditEvent.at))).label("first_screened"),
            func.min(case((AuditEvent.action == "invalid", AuditEvent.at))).label("invalid_at"),
            func.min(case((AuditEvent.action == "accepted", AuditEvent.at))).label("accepted_at"),
        )
        .where(AuditEvent.entity == "lead", AuditEvent.action.in_(("assigned", "accepted", "invalid")), AuditEvent.entity_id.in_(cohort))
        .group_by(AuditEvent.entity_id)
        .subquery()
    )
    effective = func.length(FollowUp.text) >= settings.min_interaction_chars
    in_window = _days_between(session, Lead.created_at, FollowUp.created_at) <= settings.activation_days
    day = _local_day(session, FollowUp.created_at)
    follow = (
        select(
            FollowUp.lead_id.label("lead_id"),
            func.min(FollowUp.created_at).label("first_touch"),
            func.min(case((_any_like(FollowUp.fields_json, NEED_INTENTS), FollowUp.created_at))).label("need_at"),
            func.count(func.distinct(case((and_(effective, in_window), day)))).label("eff_window"),
            func.count(func.distinct(case((effective, day)))).label("eff_total"),
        )
        .join(Lead, Lead.id == FollowUp.lead_id)
        .where(FollowUp.status == "confirmed", FollowUp.member_id != IMPORT_MEMBER, FollowUp.lead_id.in_(cohort))
        .group_by(FollowUp.lead_id)
        .subquery()
    )
    opp = (
        select(Opportunity.lead_id.label("lead_id"), func.min(Opportunity.created_at).label("first_opp"))
        .where(Opportunity.lead_id.in_(cohort))
        .group_by(Opportunity.lead_id)
        .subquery()
    )
    ep = lambda column: _epoch(session, column)  # noqa: E731
    # Which key fields are filled, as a bit mask computed in SQL: one small integer per lead
    # instead of seven text columns on the wire.
    mask = sum(
        (case((_filled(name), bit), else_=0) for name, bit in FIELD_BITS.items()),
        start=literal(0),
    )
    stmt = (
        select(
            Lead.id, ep(Lead.created_at), Lead.source, Lead.region, Lead.owner_id, Lead.status, Lead.industry, Lead.tier,
            Lead.budget_fen, mask,
            ep(audit.c.first_assigned), ep(audit.c.first_screened), ep(audit.c.invalid_at), ep(audit.c.accepted_at),
            ep(follow.c.first_touch), ep(follow.c.need_at), follow.c.eff_window, follow.c.eff_total, ep(opp.c.first_opp),
        )
        .outerjoin(audit, audit.c.lead_id == Lead.id)
        .outerjoin(follow, follow.c.lead_id == Lead.id)
        .outerjoin(opp, opp.c.lead_id == Lead.id)
        .where(*_cohort_filter(period, scope))
        .order_by(Lead.id)
    )
    wanted_masks: dict[str | None, tuple[int, int]] = {}
    facts: list[LeadFact] = []
    for (lead_id, created, source, region, owner, status, industry, tier, budget, filled,
         assigned, screened, invalid, accepted, touch, need, eff_window, eff_total, opp_at) in session.execute(stmt).tuples():
        wanted = wanted_masks.get(industry)
        if wanted is None:
            bits = sum(FIELD_BITS[k] for k in settings.fields_for(industry))
            wanted = wanted_masks[industry] = (bits, bits.bit_count())
        complete = (int(filled) & wanted[0]).bit_count() / wanted[1] if wanted[1] else 1.0
        if opp_at is not None and (need is None or opp_at < need):
            need = opp_at
        facts.append(
            LeadFact(
                lead_id, created, source, region, owner, status, industry, tier, budget, complete,
                assigned, screened, invalid, accepted, touch, need, opp_at, int(eff_window or 0), int(eff_total or 0),
            )
        )
    return facts


NUMERIC_FIELDS = frozenset({"budget_fen"})


def _filled(name: str) -> ColumnElement[bool]:
    column = getattr(Lead, name)
    if name in NUMERIC_FIELDS:
        return column.is_not(None)
    return func.coalesce(column, "") != ""


@dataclass(frozen=True)
class Objection:
    """A follow-up that recorded an objection, and when the lead was next worked on (epoch seconds)."""

    lead_id: int
    member_id: str
    at: float
    answered_at: float | None


def load_objections(session: Session, period: Period, scope: Scope) -> list[Objection]:
    """Objection follow-ups (complaint / churn risk / negative) on the cohort's leads, each
    with the time of the next personal follow-up on the same lead."""
    later = FollowUp.__table__.alias("later")  # type: ignore[attr-defined]
    next_at = (
        select(func.min(later.c.created_at))
        .where(later.c.lead_id == FollowUp.lead_id, later.c.created_at > FollowUp.created_at,
               later.c.status == "confirmed", later.c.member_id != IMPORT_MEMBER)
        .scalar_subquery()
    )
    stmt = (
        select(FollowUp.lead_id, FollowUp.member_id, _epoch(session, FollowUp.created_at), _epoch(session, next_at))
        .join(Lead, Lead.id == FollowUp.lead_id)
        .where(FollowUp.status == "confirmed", FollowUp.member_id != IMPORT_MEMBER,
               _any_like(FollowUp.fields_json, OBJECTION_MARKERS), *_cohort_filter(period, scope))
    )
    return [Objection(lead_id, member, at, answered) for lead_id, member, at, answered in session.execute(stmt).tuples()]


def member_names(session: Session) -> dict[str, str]:
    """Member id → display name."""
    return dict(session.execute(select(Member.id, Member.name)).all())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- pure metrics over facts


H = 3600.0


def _within(start: float | None, end: float | None, hours: float) -> bool:
    return start is not None and end is not None and end - start <= hours * H


def _matured(fact: LeadFact, now: float, hours: float) -> bool:
    return fact.created_at + hours * H <= now


def _screened_invalid_within(fact: LeadFact, hours: float) -> bool:
    return _within(fact.created_at, fact.invalid_at, hours)


def action_24h(facts: Sequence[LeadFact], now: datetime) -> Action24h:
    """24小时动作完成率: of leads whose first 24 h are over (invalid-screened ones left out),
    how many were assigned, screened, touched and had their need confirmed within 24 h."""
    n = now.timestamp()
    eligible = [f for f in facts if _matured(f, n, 24) and not _screened_invalid_within(f, 24)]
    assigned = [f for f in eligible if _within(f.created_at, f.first_assigned, 24)]
    screened = [f for f in assigned if _within(f.created_at, f.first_screened, 24)]
    touched = [f for f in screened if _within(f.created_at, f.first_touch, 24)]
    need = [f for f in touched if _within(f.created_at, f.need_at, 24)]
    return Action24h(len(eligible), len(assigned), len(screened), len(touched), len(need))


def activation(facts: Sequence[LeadFact], now: datetime, settings: MetricSettings = DEFAULT_SETTINGS) -> Rate:
    """线索激活率: leads with ≥ 2 effective interactions within 7 days of creation (among
    leads whose 7 days are over and that were not screened invalid within them)."""
    n, hours = now.timestamp(), settings.activation_days * 24
    eligible = [f for f in facts if _matured(f, n, hours) and not _screened_invalid_within(f, hours)]
    return Rate(sum(1 for f in eligible if f.interactions_window >= settings.activation_interactions), len(eligible))


def black_hole_flags(facts: Sequence[LeadFact], now: datetime, clock: BusinessClock, hours: float) -> dict[int, bool]:
    """Lead id → True when it fell into the black hole, for leads whose N business hours are over
    (leads screened invalid within them are handled, not forgotten, and left out)."""
    n = now.timestamp()
    between = clock.between_epoch
    out: dict[int, bool] = {}
    for f in facts:
        if between(f.created_at, n) < hours:
            continue
        if f.invalid_at is not None and between(f.created_at, f.invalid_at) <= hours:
            continue
        out[f.id] = not (f.first_touch is not None and between(f.created_at, f.first_touch) <= hours)
    return out


def _rates_by(pairs: Iterable[tuple[str, bool]]) -> dict[str, Rate]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, hit in pairs:
        counts[key][0] += int(hit)
        counts[key][1] += 1
    return {k: Rate(v[0], v[1]) for k, v in sorted(counts.items())}


def _flagged(facts: Sequence[LeadFact], flags: Mapping[int, bool]) -> list[tuple[LeadFact, bool]]:
    return [(f, flags[f.id]) for f in facts if f.id in flags]


def black_holes(
    facts: Sequence[LeadFact], now: datetime, clock: BusinessClock, settings: MetricSettings = DEFAULT_SETTINGS,
    flags: Mapping[int, bool] | None = None,
) -> BlackHoles:
    """线索黑洞率: leads with no first touch within N business hours of creation (nights,
    weekends and holidays not counted), overall and by source, region and current owner."""
    if flags is None:
        flags = black_hole_flags(facts, now, clock, settings.black_hole_business_hours)
    pairs = _flagged(facts, flags)
    return BlackHoles(
        business_hours=settings.black_hole_business_hours,
        overall=Rate(sum(hit for _, hit in pairs), len(pairs)),
        by_source=_rates_by((f.source, hit) for f, hit in pairs),
        by_region=_rates_by((f.region or "未知区域", hit) for f, hit in pairs),
        by_rep=_rates_by((f.owner_id or UNASSIGNED, hit) for f, hit in pairs),
    )


def unassigned_48h(facts: Sequence[LeadFact], now: datetime) -> Rate:
    """48小时未分配率: leads not assigned to anyone within 48 h of creation."""
    n = now.timestamp()
    eligible = [f for f in facts if _matured(f, n, 48)]
    return Rate(sum(1 for f in eligible if not _within(f.created_at, f.first_assigned, 48)), len(eligible))


def untouched_72h(facts: Sequence[LeadFact], now: datetime) -> Rate:
    """72小时未触达率: leads without a first touch within 72 h (invalid-screened ones left out)."""
    n = now.timestamp()
    eligible = [f for f in facts if _matured(f, n, 72) and not _screened_invalid_within(f, 72)]
    return Rate(sum(1 for f in eligible if not _within(f.created_at, f.first_touch, 72)), len(eligible))


def lead_to_opportunity(facts: Sequence[LeadFact]) -> tuple[int, float | None]:
    """线索到商机转化时效: (leads converted, median days from lead creation to its first opportunity)."""
    days = [(f.first_opp - f.created_at) / 86400 for f in facts if f.first_opp is not None]
    return len(days), (statistics.median(days) if days else None)


def is_high_potential(fact: LeadFact, settings: MetricSettings = DEFAULT_SETTINGS) -> bool:
    """A-tier (or S/KA) by scoring, or a budget of at least 50万."""
    return (fact.tier in settings.high_potential_tiers) or (fact.budget_fen or 0) >= settings.high_potential_budget_fen


def cross_dept_response(facts: Sequence[LeadFact], now: datetime, settings: MetricSettings = DEFAULT_SETTINGS) -> Rate:
    """跨部门需求响应率: high-potential leads handed over by marketing or service (by source)
    that a rep accepted (claimed) within 72 h."""
    n = now.timestamp()
    eligible = [f for f in facts if f.source in settings.cross_dept_sources and is_high_potential(f, settings) and _matured(f, n, 72)]
    return Rate(sum(1 for f in eligible if _within(f.created_at, f.accepted_at, 72)), len(eligible))


def info_complete(facts: Sequence[LeadFact]) -> Rate:
    """客户信息完整率: leads with every key field of their industry filled."""
    return Rate(sum(1 for f in facts if f.completeness >= 1.0), len(facts))


def _industry_match(fact: LeadFact, settings: MetricSettings) -> bool:
    if settings.target_industries:
        return fact.industry in settings.target_industries
    return bool(fact.industry)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def health_radar(
    facts: Sequence[LeadFact], now: datetime, clock: BusinessClock, group: Callable[[LeadFact], str | None],
    settings: MetricSettings = DEFAULT_SETTINGS, flags: Mapping[int, bool] | None = None,
) -> HealthRadar:
    """五维雷达 per group, each 0–100: 信息完整性 (mean share of key fields filled), 响应及时性
    (share touched within N business hours), 需求明确度 (touched leads with a confirmed need),
    行业匹配度 (industry in the target list; filled when no list is set), 历史互动性 (mean of
    effective interactions, capped at 3, over 3)."""
    if flags is None:
        flags = black_hole_flags(facts, now, clock, settings.black_hole_business_hours)
    buckets: dict[str, list[LeadFact]] = defaultdict(list)
    for f in facts:
        key = group(f)
        if key is not None:
            buckets[key].append(f)
    groups: dict[str, tuple[float | None, ...]] = {}
    for key in sorted(buckets):
        items = buckets[key]
        pairs = _flagged(items, flags)
        touched = [f for f in items if f.first_touch is not None]
        live = [f for f in items if f.invalid_at is None]
        dims = (
            _mean([f.completeness for f in items]),
            _mean([0.0 if hit else 1.0 for _, hit in pairs]),
            _mean([1.0 if f.need_at is not None else 0.0 for f in touched]),
            _mean([1.0 if _industry_match(f, settings) else 0.0 for f in items]),
            _mean([min(f.interactions_total, 3) / 3 for f in live]),
        )
        groups[key] = tuple(None if d is None else 100 * d for d in dims)
    return HealthRadar(HEALTH_DIMENSIONS, groups)


# Stages whose open time (lead still sitting there) counts: the ones a rep controls outright.
# Later stages wait on the customer as much as on the rep, so only finished spans count.
OPEN_DWELL_STAGES = 3


def _stage_spans(f: LeadFact) -> list[tuple[float | None, float | None]]:
    """(entered, left) of 待分配, 待筛选, 待首触, 待确认需求, 待转商机 (None = not yet)."""
    return [
        (f.created_at, f.first_assigned),
        (f.first_assigned, f.first_screened),
        (f.accepted_at, f.first_touch),
        (f.first_touch, f.need_at),
        (f.need_at, f.first_opp),
    ]


def dwell_heatmap(facts: Sequence[LeadFact], now: datetime, clock: BusinessClock, settings: MetricSettings = DEFAULT_SETTINGS) -> DwellHeatmap:
    """流程热力图: mean business hours leads spent in each stage, per current owner.

    Stage j runs from its entry (created, first assigned, accepted, first touch, need
    confirmed) to the next one's. A finished stage counts its span. An open lead
    (assigned / accepted) still sitting in one of the first three stages counts the time
    until ``now``, so a forgotten lead weighs on its rep's row instead of vanishing.
    """
    n, now_s = len(STAGES), now.timestamp()
    between = clock.between_epoch
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    for f in facts:
        if not f.owner_id:
            continue
        spans = _stage_spans(f)
        entered = [j for j in range(n) if spans[j][0] is not None]
        current = max(entered)
        for j in entered:
            start, end = spans[j]
            assert start is not None
            if end is None:
                if j != current or j >= OPEN_DWELL_STAGES or f.status not in ("assigned", "accepted"):
                    continue
                end = now_s
            sums[f.owner_id][j] += between(start, end)
            counts[f.owner_id][j] += 1
    reps = tuple(sorted(sums))
    hours = tuple(tuple((sums[r][j] / counts[r][j]) if counts[r][j] else None for j in range(n)) for r in reps)
    norms = tuple(float(settings.stage_norm_hours.get(s, 8.0)) for s in STAGES)
    return DwellHeatmap(STAGES, reps, hours, tuple(tuple(counts[r]) for r in reps), norms)


def rep_capabilities(
    facts: Sequence[LeadFact], objections: Sequence[Objection], now: datetime, clock: BusinessClock,
    names: Mapping[str, str], settings: MetricSettings = DEFAULT_SETTINGS, flags: Mapping[int, bool] | None = None,
) -> tuple[RepCapability, ...]:
    """Per-rep capability: 首触转化率 (touched leads that became opportunities), 报价打开率
    (未采集: no quote tracking yet), 异议处理时长 (median business hours from an objection
    follow-up to the next follow-up on that lead), plus black-hole and activation rates."""
    if flags is None:
        flags = black_hole_flags(facts, now, clock, settings.black_hole_business_hours)
    by_rep: dict[str, list[LeadFact]] = defaultdict(list)
    for f in facts:
        if f.owner_id:
            by_rep[f.owner_id].append(f)
    obj_by: dict[str, list[Objection]] = defaultdict(list)
    for o in objections:
        obj_by[o.member_id].append(o)
    out = []
    for rep in sorted(set(by_rep) | set(obj_by)):
        items = by_rep.get(rep, [])
        touched = [f for f in items if f.first_touch is not None]
        answered = [clock.between_epoch(o.at, o.answered_at) for o in obj_by.get(rep, []) if o.answered_at is not None]
        pairs = _flagged(items, flags)
        bh = Rate(sum(hit for _, hit in pairs), len(pairs))
        out.append(
            RepCapability(
                rep=rep, name=names.get(rep, rep), leads=len(items),
                first_contact_conversion=Rate(sum(1 for f in touched if f.first_opp is not None), len(touched)),
                quote_open_rate=NOT_COLLECTED, objections=len(obj_by.get(rep, [])),
                objection_median_hours=statistics.median(answered) if answered else None,
                black_hole=bh, activation=activation(items, now, settings),
            )
        )
    return tuple(out)


# ---------------------------------------------------------------------------- the report


def business_clock(hours: BusinessHours, period: Period, now: datetime) -> BusinessClock:
    """A :class:`BusinessClock` covering the period up to ``now``."""
    first = period.start.astimezone(SHANGHAI).date() - timedelta(days=1)
    last = max(now, period.end).astimezone(SHANGHAI).date() + timedelta(days=1)
    return BusinessClock(hours, first, last)


def summary(
    session: Session, now: datetime, period: Period, scope: Scope = Scope(),
    hours: BusinessHours = BusinessHours(), settings: MetricSettings = DEFAULT_SETTINGS,
) -> Summary:
    """Every metric of the manager report for ``period`` and ``scope``, as of ``now``."""
    facts = load_facts(session, period, scope, settings)
    objections = load_objections(session, period, scope)
    names = member_names(session)
    return summarise(facts, objections, names, now, period, scope, hours, settings)


def summarise(
    facts: Sequence[LeadFact], objections: Sequence[Objection], names: Mapping[str, str], now: datetime,
    period: Period, scope: Scope, hours: BusinessHours = BusinessHours(), settings: MetricSettings = DEFAULT_SETTINGS,
) -> Summary:
    """:func:`summary` over facts already loaded (pure)."""
    clock = business_clock(hours, period, now)
    flags = black_hole_flags(facts, now, clock, settings.black_hole_business_hours)
    converted, median_days = lead_to_opportunity(facts)
    return Summary(
        period=period, scope=scope, leads=len(facts), invalid=sum(1 for f in facts if f.invalid_at is not None),
        action_24h=action_24h(facts, now), activation_7d=activation(facts, now, settings),
        black_holes=black_holes(facts, now, clock, settings, flags), unassigned_48h=unassigned_48h(facts, now),
        untouched_72h=untouched_72h(facts, now), converted=converted, lead_to_opp_median_days=median_days,
        cross_dept_response=cross_dept_response(facts, now, settings), info_complete=info_complete(facts),
        health_by_region=health_radar(facts, now, clock, lambda f: f.region, settings, flags),
        health_by_rep=health_radar(facts, now, clock, lambda f: f.owner_id, settings, flags),
        heatmap=dwell_heatmap(facts, now, clock, settings),
        reps=rep_capabilities(facts, objections, now, clock, names, settings, flags),
        names=dict(names), definitions=settings,
    )


def regions(session: Session) -> list[Region]:
    """The configured regions, by name."""
    return list(session.execute(select(Region).order_by(Region.name)).scalars())
