"""Formula-driven scores: customer health (0–100) and tier, lead activity score and route,
dealer rebates to the fen; explanations; recompute on input or formula change.

``[scoring]`` in leadbot.toml (every part optional; defaults below)::

    [scoring]
    # Inputs that are not columns, stored per customer/lead (POST /api/scoring/facts);
    # a number without a value counts as 0, text as "", bool as false.
    # (TOML needs quotes around keys that are not ASCII.)
    fields = { "微信互动次数" = "number", "官网停留分钟" = "number", "白皮书下载" = "number" }

    [scoring.health]
    formula = "MIN(跟进次数*5, 30) + IF(最近跟进天数<=14, 25, 0) + ..."
    tiers = { "战略级" = 80, "重点跟进" = 60, "培育中" = 40 }   # score ≥ threshold; or [[80, "战略级"], …]
    default_tier = "暂缓"

    [scoring.lead]
    formula = "微信互动次数*0.3 + IF(官网停留分钟>=3, 0.5, 0) + 白皮书下载*1.2"
    nurture_below = 2.5        # below: tier C, the nurture pool
    sales_above = 5.0          # above: tier A, straight to sales (assignment rules: score_tier = "A")

    [scoring.rebate]
    formula = "ROUND(采购额 * IF(采购额 >= 500万, 3%, 1%), 2)"
    fields = { "采购额" = "number" }   # yuan; the result is rounded half-up to the fen

Health formula fields (besides ``[scoring] fields``): 行业, 省份, 城市 (text); 预算 (元),
跟进次数 (confirmed follow-ups in the last 90 days), 最近跟进天数 (days since the last
one; 999 when none), 未结工单, 商机金额 (元, open opportunities), 联系人数 (number).
Lead formula fields: 行业, 省份, 城市, 来源 (text), 预算 (元).

The health score is clamped to 0–100 and rounded half-up to an integer
(``Customer.health_score``); ``Customer.tier`` is its tier name. A lead's score is stored in
hundredths (``Lead.score = 370`` for 3.70) and its tier is ``A`` / ``B`` / ``C``.
Every formula is checked when loaded: unknown fields (with did-you-mean), type mismatches,
and division by zero on the all-zero record (an unguarded ``a / 跟进次数``) are refused with
the file, line and column.
"""

from __future__ import annotations

import hashlib
import json
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session

from cards.model import Card, CardField
from handlers.formula import FieldType, Formula, FormulaError, Tiering, compile_formula
from nlp.calendar import SHANGHAI
from store.models import Contact, Customer, FollowUp, Lead, Opportunity, Ticket
from store.models_sales import ScoringFacts, ScoringVersion

LEAD_SCORE_SCALE = 100  # Lead.score is an int column: hundredths of a point
# A lead score beyond this is a runaway formula or fact (1e308 interactions), not a score,
# and would not fit the column (INTEGER on PostgreSQL): it is treated like a formula error.
MAX_LEAD_SCORE = Decimal(10_000_000)


def _stored_score(score: Decimal) -> int | None:
    """``score`` as stored (hundredths), or None when it is not a storable score."""
    if not score.is_finite() or abs(score) >= MAX_LEAD_SCORE:
        return None
    return int((score * LEAD_SCORE_SCALE).quantize(Decimal(1), rounding=ROUND_HALF_UP))
NO_FOLLOWUP_DAYS = 999
FOLLOWUP_WINDOW = timedelta(days=90)
CLOSED_STAGES = ("签约", "输单")

HEALTH_BUILTIN: Mapping[str, FieldType] = {
    "行业": "text", "省份": "text", "城市": "text", "预算": "number", "跟进次数": "number",
    "最近跟进天数": "number", "未结工单": "number", "商机金额": "number", "联系人数": "number",
}
LEAD_BUILTIN: Mapping[str, FieldType] = {"行业": "text", "省份": "text", "城市": "text", "来源": "text", "预算": "number"}
DEFAULT_FACT_FIELDS: Mapping[str, FieldType] = {"微信互动次数": "number", "官网停留分钟": "number", "白皮书下载": "number"}
DEFAULT_HEALTH = (
    "MIN(跟进次数*5, 30)"
    " + IF(最近跟进天数<=14, 25, IF(最近跟进天数<=30, 15, 0))"
    " + IF(商机金额>=50万, 20, IF(商机金额>0, 10, 0))"
    " + IF(未结工单>0, 0, 10)"
    " + MIN(联系人数*5, 15)"
)
DEFAULT_TIERS = (("80", "战略级"), ("60", "重点跟进"), ("40", "培育中"))
DEFAULT_LEAD = "微信互动次数*0.3 + IF(官网停留分钟>=3, 0.5, 0) + 白皮书下载*1.2"
_ZERO_DEFAULTS: Mapping[str, object] = {"number": Decimal(0), "text": "", "bool": False}


class ScoringRuleError(ValueError):
    """An invalid ``[scoring]`` section: ``key`` (e.g. ``health.formula``), line/column if known."""

    def __init__(self, key: str, zh: str, en: str, *, line: int | None = None, column: int | None = None,
                 formula_error: FormulaError | None = None) -> None:
        self.key, self.zh, self.en, self.line, self.column = key, zh, en, line, column
        self.formula_error = formula_error
        super().__init__(f"scoring.{key}: {zh} ({en})")


@dataclass(frozen=True)
class FormulaSpot:
    """Where a formula string starts in the config file, so errors point into the file."""

    origin: str = ""
    line_offset: int = 0
    column_offset: int = 0


@dataclass(frozen=True)
class ScoringRules:
    """Compiled scoring rules (see the module docstring for the TOML)."""

    fact_fields: Mapping[str, FieldType]
    health: Formula
    tiers: Tiering
    lead: Formula
    nurture_below: Decimal = Decimal("2.5")
    sales_above: Decimal = Decimal("5.0")
    rebate: Formula | None = None

    @property
    def health_digest(self) -> str:
        """Identifies the health formula and tiers, so stored scores know what made them."""
        text = json.dumps([self.health.source, [[str(m), n] for m, n in self.tiers.thresholds], self.tiers.default,
                           sorted(self.fact_fields.items())], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def lead_digest(self) -> str:
        """Identifies the lead formula and its thresholds."""
        text = json.dumps([self.lead.source, str(self.nurture_below), str(self.sales_above),
                           sorted(self.fact_fields.items())], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def lead_tier(self, score: Decimal) -> str:
        """``A`` above ``sales_above`` (straight to sales), ``C`` below ``nurture_below``, else ``B``."""
        if score > self.sales_above:
            return "A"
        if score < self.nurture_below:
            return "C"
        return "B"


# ----------------------------------------------------------------------------- loading
def _probe(formula: Formula, fields: Mapping[str, FieldType], key: str, today: date) -> None:
    """Evaluate on the all-zero record: an unguarded division by a field fails here, at load."""
    record = {name: (today if kind == "date" else _ZERO_DEFAULTS[kind]) for name, kind in fields.items()}
    try:
        formula.evaluate(record, today=today)
    except FormulaError as exc:
        if "除数为 0" in exc.message_zh:
            raise ScoringRuleError(
                key,
                f"{exc.message_zh}；字段为 0 时会出现这种情况，请写成 IF(字段=0, 0, …/字段)",
                f"{exc.message_en}; happens when a field is 0, guard it with IF(field=0, 0, …/field)",
                line=exc.line, column=exc.column, formula_error=exc,
            ) from None


def _compile(source: object, fields: Mapping[str, FieldType], key: str, spot: FormulaSpot) -> Formula:
    if not isinstance(source, str) or not source.strip():
        raise ScoringRuleError(key, "公式应为非空文字", "formula must be a non-empty string", line=spot.line_offset + 1 if spot.line_offset else None)
    try:
        formula = compile_formula(source, fields, origin=spot.origin, line_offset=spot.line_offset,
                                  column_offset=spot.column_offset, result="number")
    except FormulaError as exc:
        raise ScoringRuleError(key, exc.message_zh, exc.message_en, line=exc.line, column=exc.column, formula_error=exc) from None
    _probe(formula, fields, key, date(2026, 1, 1))
    return formula


def _decimal(value: object, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ScoringRuleError(key, "应为数字", "must be a number")
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        raise ScoringRuleError(key, "应为数字", "must be a number") from None
    if not result.is_finite():
        raise ScoringRuleError(key, "应为有限的数字", "must be finite")
    return result


def _field_types(raw: object, key: str, reserved: Iterable[str] = ()) -> dict[str, FieldType]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScoringRuleError(key, "应写成 { 字段名 = \"number\" } 表", "must be a table of field = type")
    out: dict[str, FieldType] = {}
    for name, kind in raw.items():
        if kind not in ("number", "text", "date", "bool"):
            raise ScoringRuleError(f"{key}.{name}", f"类型 `{kind}` 不支持；可选 number / text / date / bool",
                                   f"unsupported type `{kind}`")
        if name in reserved:
            raise ScoringRuleError(f"{key}.{name}", f"「{name}」是内置字段，不需要声明", f"`{name}` is built in")
        out[name] = kind
    return out


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    from difflib import get_close_matches

    for key in table:
        if key not in allowed:
            hint = get_close_matches(key, allowed, n=1)
            raise ScoringRuleError(f"{prefix}{key}", f"未知的键{f'，是否指 `{hint[0]}`?' if hint else ''}",
                                   f"unknown key{f' (did you mean {hint[0]}?)' if hint else ''}")


def parse_scoring(raw: object, spots: Mapping[str, FormulaSpot] | None = None) -> ScoringRules:
    """Validate and compile ``[scoring]``; ``None`` gives the defaults.

    ``spots`` maps ``health`` / ``lead`` / ``rebate`` to where each formula string starts in
    the file. Raises :class:`ScoringRuleError` (with line/column for formula mistakes).
    """
    spots = spots or {}
    data: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    if raw is not None and not isinstance(raw, dict):
        raise ScoringRuleError("scoring", "应写成 [scoring] 表", "must be a table")
    _check_keys(data, ("fields", "health", "lead", "rebate"), "")
    facts = {**DEFAULT_FACT_FIELDS, **_field_types(data.get("fields"), "fields", reserved=HEALTH_BUILTIN)}
    health_raw = data.get("health", {})
    lead_raw = data.get("lead", {})
    for name, table in (("health", health_raw), ("lead", lead_raw)):
        if not isinstance(table, dict):
            raise ScoringRuleError(name, f"应写成 [scoring.{name}] 表", f"must be a table [scoring.{name}]")
    _check_keys(health_raw, ("formula", "tiers", "default_tier"), "health.")
    _check_keys(lead_raw, ("formula", "nurture_below", "sales_above"), "lead.")

    health = _compile(health_raw.get("formula", DEFAULT_HEALTH), {**HEALTH_BUILTIN, **facts}, "health.formula",
                      spots.get("health", FormulaSpot()) if "formula" in health_raw else FormulaSpot("默认健康分公式"))
    tiers_raw = health_raw.get("tiers")
    if tiers_raw is None:
        pairs: list[tuple[Decimal, str]] = [(Decimal(m), n) for m, n in DEFAULT_TIERS]
    else:
        if isinstance(tiers_raw, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[1], str) for p in tiers_raw):
            tiers_raw = {name: minimum for minimum, name in tiers_raw}
        if not isinstance(tiers_raw, dict) or not tiers_raw:
            raise ScoringRuleError("health.tiers", "应写成 { \"档位名\" = 门槛分 } 表，例如 { \"战略级\" = 80, \"重点跟进\" = 60 }",
                                   "must be a table of tier = minimum score, or a list of [minimum, tier]")
        pairs = [(_decimal(v, f"health.tiers.{k}"), k) for k, v in tiers_raw.items()]
        for minimum, name in pairs:
            if len(name) > 8:
                raise ScoringRuleError(f"health.tiers.{name}", "档位名最多8个字", "tier names are at most 8 characters")
        pairs.sort(key=lambda p: p[0], reverse=True)
        if len({m for m, _ in pairs}) != len(pairs):
            raise ScoringRuleError("health.tiers", "两个档位的门槛分相同", "two tiers share a threshold")
    default_tier = health_raw.get("default_tier", "暂缓")
    if not isinstance(default_tier, str) or not default_tier or len(default_tier) > 8:
        raise ScoringRuleError("health.default_tier", "默认档位应为1–8个字", "default_tier must be 1-8 characters")
    tiers = Tiering(tuple(pairs), default_tier)

    lead = _compile(lead_raw.get("formula", DEFAULT_LEAD), {**LEAD_BUILTIN, **facts}, "lead.formula",
                    spots.get("lead", FormulaSpot()) if "formula" in lead_raw else FormulaSpot("默认线索活跃度公式"))
    nurture = _decimal(lead_raw.get("nurture_below", "2.5"), "lead.nurture_below")
    sales = _decimal(lead_raw.get("sales_above", "5.0"), "lead.sales_above")
    if nurture > sales:
        raise ScoringRuleError("lead.nurture_below", "培育池门槛不能高于直通销售门槛", "nurture_below must not exceed sales_above")

    rebate: Formula | None = None
    if "rebate" in data:
        rebate_raw = data["rebate"]
        if not isinstance(rebate_raw, dict):
            raise ScoringRuleError("rebate", "应写成 [scoring.rebate] 表", "must be a table [scoring.rebate]")
        _check_keys(rebate_raw, ("formula", "fields"), "rebate.")
        rebate_fields = _field_types(rebate_raw.get("fields"), "rebate.fields")
        if not rebate_fields:
            raise ScoringRuleError("rebate.fields", "返利公式需要声明字段，例如 { 采购额 = \"number\" }", "rebate needs its fields")
        rebate = _compile(rebate_raw.get("formula"), rebate_fields, "rebate.formula", spots.get("rebate", FormulaSpot()))
    return ScoringRules(fact_fields=facts, health=health, tiers=tiers, lead=lead, nurture_below=nurture,
                        sales_above=sales, rebate=rebate)


@lru_cache(maxsize=1)
def default_scoring() -> ScoringRules:
    """The rules when leadbot.toml has no ``[scoring]``."""
    return parse_scoring(None)


# ----------------------------------------------------------------------------- pure scoring
def business_date(now: datetime) -> date:
    """Today in Shanghai: what TODAY() means in a formula."""
    return now.astimezone(SHANGHAI).date()


def health_of(rules: ScoringRules, record: Mapping[str, object], today: date) -> tuple[int, str]:
    """(score 0–100 rounded half-up, tier name) for one customer record."""
    raw = rules.health.evaluate_number(record, today=today)
    score = int(min(max(raw, Decimal(0)), Decimal(100)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return score, rules.tiers.tier(score)


def lead_score_of(rules: ScoringRules, record: Mapping[str, object], today: date) -> tuple[Decimal, str]:
    """(activity score, tier A/B/C) for one lead record."""
    score = rules.lead.evaluate_number(record, today=today)
    return score, rules.lead_tier(score)


def rebate_fen(rules: ScoringRules, record: Mapping[str, object], today: date | None = None) -> int:
    """A dealer's rebate in integer fen (the formula gives yuan; half-up to the fen)."""
    if rules.rebate is None:
        raise ValueError("未配置返利公式 [scoring.rebate] (no rebate formula configured)")
    yuan = rules.rebate.evaluate_number(record, today=today)
    return int((yuan * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _facts_record(facts_json: str | None, fields: Mapping[str, FieldType]) -> dict[str, object]:
    record: dict[str, object] = {name: _ZERO_DEFAULTS[kind] for name, kind in fields.items() if kind != "date"}
    if facts_json:
        for name, value in json.loads(facts_json).items():
            kind = fields.get(name)
            if kind == "number" and isinstance(value, (int, str)) and not isinstance(value, bool):
                record[name] = Decimal(value)
            elif kind == "date" and isinstance(value, str):
                record[name] = date.fromisoformat(value)
            elif kind is not None:
                record[name] = value
    return record


def coerce_facts(values: Mapping[str, Any], fields: Mapping[str, FieldType]) -> dict[str, Any]:
    """Validate facts posted for scoring: known names, right types; numbers kept as exact strings."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = fields.get(name)
        if kind is None:
            from difflib import get_close_matches

            hint = get_close_matches(name, list(fields), n=1)
            raise ValueError(f"字段 `{name}` 未在 [scoring] fields 中声明{f'，是否指 `{hint[0]}`?' if hint else ''}")
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"字段 `{name}` 应为数字")
            try:
                number = Decimal(str(value))
            except ArithmeticError:
                raise ValueError(f"字段 `{name}` 应为数字") from None
            if not number.is_finite():
                raise ValueError(f"字段 `{name}` 应为有限的数字")
            out[name] = str(number)
        elif kind == "text":
            if not isinstance(value, str):
                raise ValueError(f"字段 `{name}` 应为文字")
            out[name] = value[:200]
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"字段 `{name}` 应为 true/false")
            out[name] = value
        else:
            try:
                out[name] = date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise ValueError(f"字段 `{name}` 应为日期，例如 2026-03-01") from None
    return out


# ----------------------------------------------------------------------------- records from the store
@dataclass
class _Aggregates:
    followups: dict[int, tuple[int, datetime | None]] = field(default_factory=dict)
    tickets: dict[int, int] = field(default_factory=dict)
    pipeline: dict[int, int] = field(default_factory=dict)
    contacts: dict[int, int] = field(default_factory=dict)
    facts: dict[int, str] = field(default_factory=dict)


def _aggregates(session: Session, rules: ScoringRules, lo: int, hi: int, now: datetime) -> _Aggregates:
    """Per-customer inputs for ids lo..hi, reading only what the formula uses."""
    used = rules.health.fields_used
    agg = _Aggregates()
    if used & {"跟进次数", "最近跟进天数"}:
        rows = session.execute(
            select(FollowUp.customer_id, func.count(), func.max(FollowUp.created_at))
            .where(FollowUp.customer_id.between(lo, hi), FollowUp.status == "confirmed",
                   FollowUp.created_at >= now - FOLLOWUP_WINDOW)
            .group_by(FollowUp.customer_id)
        ).all()
        agg.followups = {cid: (n, last) for cid, n, last in rows}
        if "最近跟进天数" in used:
            # The last follow-up may be older than the window: days since it still count.
            older = session.execute(
                select(FollowUp.customer_id, func.max(FollowUp.created_at))
                .where(FollowUp.customer_id.between(lo, hi), FollowUp.status == "confirmed",
                       FollowUp.created_at < now - FOLLOWUP_WINDOW)
                .group_by(FollowUp.customer_id)
            ).all()
            for cid, last in older:
                agg.followups.setdefault(cid, (0, last))
    if "未结工单" in used:
        agg.tickets = dict(session.execute(  # type: ignore[arg-type]
            select(Ticket.customer_id, func.count()).where(Ticket.customer_id.between(lo, hi), Ticket.status != "closed")
            .group_by(Ticket.customer_id)).all())
    if "商机金额" in used:
        agg.pipeline = dict(session.execute(  # type: ignore[arg-type]
            select(Opportunity.customer_id, func.coalesce(func.sum(Opportunity.amount_fen), 0))
            .where(Opportunity.customer_id.between(lo, hi), Opportunity.stage.not_in(CLOSED_STAGES))
            .group_by(Opportunity.customer_id)).all())
    if "联系人数" in used:
        agg.contacts = dict(session.execute(  # type: ignore[arg-type]
            select(Contact.customer_id, func.count()).where(Contact.customer_id.between(lo, hi)).group_by(Contact.customer_id)).all())
    if used & set(rules.fact_fields):
        agg.facts = dict(session.execute(  # type: ignore[arg-type]
            select(ScoringFacts.entity_id, ScoringFacts.facts_json)
            .where(ScoringFacts.entity == "customer", ScoringFacts.entity_id.between(lo, hi))).all())
    return agg


def _customer_record(cid: int, industry: str | None, province: str | None, city: str | None, budget_fen: int | None,
                     agg: _Aggregates, rules: ScoringRules, now: datetime) -> dict[str, object]:
    count, last = agg.followups.get(cid, (0, None))
    record: dict[str, object] = _facts_record(agg.facts.get(cid), rules.fact_fields) if agg.facts or rules.fact_fields else {}
    record.update({
        "行业": industry or "", "省份": province or "", "城市": city or "",
        "预算": Decimal(budget_fen or 0) / 100,
        "跟进次数": Decimal(count),
        "最近跟进天数": Decimal((now - last).days if last is not None else NO_FOLLOWUP_DAYS),
        "未结工单": Decimal(agg.tickets.get(cid, 0)),
        "商机金额": Decimal(agg.pipeline.get(cid, 0)) / 100,
        "联系人数": Decimal(agg.contacts.get(cid, 0)),
    })
    return record


def customer_record(session: Session, customer: Customer, rules: ScoringRules, now: datetime) -> dict[str, object]:
    """The formula inputs of one customer (for explain cards and single recomputes)."""
    assert customer.id is not None
    agg = _aggregates(session, rules, customer.id, customer.id, now)
    return _customer_record(customer.id, customer.industry, customer.province, customer.city, customer.budget_fen, agg, rules, now)


def lead_record(session: Session, lead: Lead, rules: ScoringRules) -> dict[str, object]:
    """The formula inputs of one lead."""
    facts = session.get(ScoringFacts, ("lead", lead.id))
    return _lead_record(lead, rules, facts.facts_json if facts else None)


def _lead_record(lead: Lead, rules: ScoringRules, facts_json: str | None) -> dict[str, object]:
    record = _facts_record(facts_json, rules.fact_fields)
    record.update({"行业": lead.industry or "", "省份": lead.province or "", "城市": lead.city or "",
                   "来源": lead.source or "", "预算": Decimal(lead.budget_fen or 0) / 100})
    return record


# ----------------------------------------------------------------------------- recompute
@dataclass
class RecomputeResult:
    """What a recompute did."""

    records: int = 0
    changed: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


_UPDATE_HEALTH = (
    update(Customer.__table__)  # type: ignore[arg-type]
    .where(Customer.__table__.c.id == bindparam("cid"))  # type: ignore[attr-defined]
    .values(health_score=bindparam("hs"), tier=bindparam("ht"))
)


def recompute_health_batch(session: Session, rules: ScoringRules, now: datetime, *, after_id: int = 0,
                           limit: int = 5000, result: RecomputeResult | None = None) -> tuple[int, RecomputeResult]:
    """Recompute up to ``limit`` customers with id > ``after_id``; returns (last id seen, result).

    Only changed scores are written, in one executemany; a record whose formula fails
    (e.g. a missing date input) keeps its old score and is counted in ``failed``.
    """
    result = result or RecomputeResult()
    rows = session.execute(
        select(Customer.id, Customer.industry, Customer.province, Customer.city, Customer.budget_fen,
               Customer.health_score, Customer.tier)
        .where(Customer.id > after_id).order_by(Customer.id).limit(limit)
    ).all()
    if not rows:
        return after_id, result
    lo, hi = rows[0][0], rows[-1][0]
    agg = _aggregates(session, rules, lo, hi, now)
    today = business_date(now)
    changes: list[dict[str, object]] = []
    for cid, industry, province, city, budget_fen, old_score, old_tier in rows:
        record = _customer_record(cid, industry, province, city, budget_fen, agg, rules, now)
        try:
            score, tier = health_of(rules, record, today)
        except FormulaError as exc:
            result.failed += 1
            if len(result.errors) < 5:
                result.errors.append(f"客户 #{cid}: {exc.message_zh}")
            continue
        if score != old_score or tier != old_tier:
            changes.append({"cid": cid, "hs": score, "ht": tier})
    if changes:
        session.execute(_UPDATE_HEALTH, changes)
    result.records += len(rows)
    result.changed += len(changes)
    return hi, result


def recompute_customer(session: Session, customer_id: int, rules: ScoringRules, now: datetime) -> tuple[int, str] | None:
    """Recompute one customer after one of its inputs changed; returns (score, tier) or None."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    try:
        score, tier = health_of(rules, customer_record(session, customer, rules, now), business_date(now))
    except FormulaError:
        return None
    customer.health_score, customer.tier = score, tier
    session.add(customer)
    return score, tier


def recompute_lead(session: Session, lead: Lead, rules: ScoringRules, now: datetime) -> tuple[Decimal, str] | None:
    """Recompute one lead's activity score and tier (``Lead.score`` in hundredths)."""
    scored = _score_lead(lead, rules, lead_record(session, lead, rules), now)
    if scored is not None:
        session.add(lead)
    return scored


def score_new_lead(lead: Lead, rules: ScoringRules, now: datetime) -> tuple[Decimal, str] | None:
    """Score a lead that is being created: no facts can be stored for it yet."""
    return _score_lead(lead, rules, _lead_record(lead, rules, None), now)


def _score_lead(lead: Lead, rules: ScoringRules, record: dict[str, object], now: datetime) -> tuple[Decimal, str] | None:
    try:
        score, tier = lead_score_of(rules, record, business_date(now))
    except FormulaError:
        return None
    stored = _stored_score(score)
    if stored is None:
        return None
    lead.score, lead.tier = stored, tier
    return score, tier


_UPDATE_LEAD = (
    update(Lead.__table__)  # type: ignore[arg-type]
    .where(Lead.__table__.c.id == bindparam("lid"))  # type: ignore[attr-defined]
    .values(score=bindparam("ls"), tier=bindparam("lt"))
)


def recompute_leads_batch(session: Session, rules: ScoringRules, now: datetime, *, after_id: int = 0,
                          limit: int = 5000, result: RecomputeResult | None = None) -> tuple[int, RecomputeResult]:
    """Recompute open leads (not invalid) with id > ``after_id``, like :func:`recompute_health_batch`."""
    result = result or RecomputeResult()
    rows = session.execute(
        select(Lead.id, Lead.industry, Lead.province, Lead.city, Lead.source, Lead.budget_fen, Lead.score, Lead.tier)
        .where(Lead.id > after_id, Lead.status != "invalid").order_by(Lead.id).limit(limit)
    ).all()
    if not rows:
        return after_id, result
    lo, hi = rows[0][0], rows[-1][0]
    facts = dict(session.execute(select(ScoringFacts.entity_id, ScoringFacts.facts_json)
                                 .where(ScoringFacts.entity == "lead", ScoringFacts.entity_id.between(lo, hi))).all())
    today = business_date(now)
    changes: list[dict[str, object]] = []
    for lid, industry, province, city, source, budget_fen, old_score, old_tier in rows:
        record = _facts_record(facts.get(lid), rules.fact_fields)
        record.update({"行业": industry or "", "省份": province or "", "城市": city or "", "来源": source or "",
                       "预算": Decimal(budget_fen or 0) / 100})
        try:
            score, tier = lead_score_of(rules, record, today)
        except FormulaError:
            result.failed += 1
            continue
        stored = _stored_score(score)
        if stored is None:
            result.failed += 1
            continue
        if stored != old_score or tier != old_tier:
            changes.append({"lid": lid, "ls": stored, "lt": tier})
    if changes:
        session.execute(_UPDATE_LEAD, changes)
    result.records += len(rows)
    result.changed += len(changes)
    return hi, result


def stale_formulas(session: Session, rules: ScoringRules) -> tuple[str, ...]:
    """Which stored scores (``health`` / ``lead``) were made by another formula than ``rules``."""
    stale: list[str] = []
    for name, digest in (("health", rules.health_digest), ("lead", rules.lead_digest)):
        row = session.get(ScoringVersion, name)
        if row is None or row.digest != digest:
            stale.append(name)
    return tuple(stale)


def mark_applied(session: Session, name: str, digest: str, records: int, now: datetime) -> None:
    """Remember that every record's ``name`` score now comes from formula ``digest``."""
    row = session.get(ScoringVersion, name) or ScoringVersion(name=name, digest=digest, applied_at=now)
    row.digest, row.records, row.applied_at = digest, records, now
    session.add(row)


def recompute_all(transaction: Callable[[Callable[[Session], Any]], Any], rules: ScoringRules, now: datetime, *,
                  batch: int = 5000, only: Iterable[str] = ("health", "lead")) -> dict[str, RecomputeResult]:
    """Recompute every customer and/or lead after a formula change, one transaction per batch.

    ``transaction`` runs a function in one committed transaction (``Database.transaction``,
    or ``lambda fn: fn(session)`` inside a caller's transaction). The version row is
    written last, so an interrupted recompute is redone at the next start.
    """
    out: dict[str, RecomputeResult] = {}
    for name in only:
        started = _time.perf_counter()
        result = RecomputeResult()
        step = recompute_health_batch if name == "health" else recompute_leads_batch
        last = 0
        while True:
            before = result.records
            last, result = transaction(lambda s, last=last: step(s, rules, now, after_id=last, limit=batch, result=result))
            if result.records == before:
                break
        digest = rules.health_digest if name == "health" else rules.lead_digest
        transaction(lambda s, name=name, digest=digest, n=result.records: mark_applied(s, name, digest, n, now))
        result.seconds = _time.perf_counter() - started
        out[name] = result
    return out


def set_facts(session: Session, entity: str, entity_id: int, values: Mapping[str, Any], rules: ScoringRules,
              now: datetime) -> dict[str, Any]:
    """Merge scoring inputs of a customer or lead and recompute that record (input changed).

    Returns ``{"score": …, "tier": …}``. Raises ValueError for unknown entities or facts.
    """
    if entity not in ("customer", "lead"):
        raise ValueError("entity 应为 customer 或 lead")
    target = session.get(Customer if entity == "customer" else Lead, entity_id)
    if target is None:
        raise LookupError(f"{entity} #{entity_id} 不存在")
    clean = coerce_facts(values, rules.fact_fields)
    row = session.get(ScoringFacts, (entity, entity_id))
    if row is None:
        row = ScoringFacts(entity=entity, entity_id=entity_id, facts_json="{}", updated_at=now)
    merged = {**json.loads(row.facts_json), **clean}
    row.facts_json = json.dumps(merged, ensure_ascii=False, sort_keys=True)
    row.updated_at = now
    session.add(row)
    session.flush()
    if entity == "customer":
        got = recompute_customer(session, entity_id, rules, now)
        return {"score": got[0] if got else None, "tier": got[1] if got else None}
    assert isinstance(target, Lead)
    lead_got = recompute_lead(session, target, rules, now)
    return {"score": str(lead_got[0]) if lead_got else None, "tier": lead_got[1] if lead_got else None}


# ----------------------------------------------------------------------------- explain card
def _points(value: Decimal) -> str:
    text = f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP).normalize():f}"
    return text if value < 0 else f"+{text}"


def health_card(session: Session, customer: Customer, rules: ScoringRules, now: datetime) -> Card:
    """The customer's health score with each term's contribution (why the score is what it is)."""
    record = customer_record(session, customer, rules, now)
    today = business_date(now)
    try:
        score, tier = health_of(rules, record, today)
        parts = rules.health.explain(record, today=today)
    except FormulaError as exc:
        return Card(title=f"{customer.name} · 健康分", text=f"暂时无法计算：{exc.message_zh}")
    lines = tuple(CardField(label[:40], _points(value)) for label, value in parts)
    raw = sum((v for _, v in parts), Decimal(0))
    note = "" if Decimal(0) <= raw <= 100 else f"（公式结果 {raw.normalize():f}，按 0–100 计）"
    inputs = "、".join(f"{name}={_show(record.get(name))}" for name in rules.health.fields_in_order)
    return Card(title=f"{customer.name} · 健康分 {score}（{tier}）", fields=lines,
                text=f"各项得分合计 {score}{note}\n依据：{inputs}")


def _show(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value) if value not in (None, "") else "空"
