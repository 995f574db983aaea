"""Lead assignment: which rep gets a new lead, by which rule, and until when they must accept.

Pure functions over plain data and an injected ``now``: no database, no I/O. The lead
engineer's store code loads an :class:`OrgSnapshot` and the persisted
:class:`RotationState`, calls :func:`decide`, and commits the lead, the audit row and
``Assignment.rotation`` in one transaction (compare-and-swap on
``RotationState.version`` so two processes never both commit from the same state).

Money is integer **fen** everywhere inside (``LeadFacts.budget_fen``,
``Rep.won_amount_90d_fen``); the TOML file speaks **yuan** (``budget_gte = 500000``) or
a written amount (``budget_gte = "50万"``), converted once by the parser. Never float.

TOML shape (the ``[assignment]`` section of ``leadbot.toml``)::

    [assignment]
    accept_within_hours = 2        # 工作小时; default deadline to accept a lead
    new_rep_days = 30              # a rep who joined fewer days ago counts as new
    new_rep_min_share_pct = 10     # a new rep gets at least this % of their pool's leads per day
    default_region = "华东"        # pool for leads without a known province (optional)
    returning_to_owner = true      # an old customer's new enquiry goes to its owner first
    business_hours = ["09:00", "18:00"]

    [[assignment.groups]]          # named pools that cut across regions
    name = "大客户组"
    members = ["zhangwei", "sunli"]
    manager = "chenjing"           # optional; gets the lead when nobody in the group can

    # Rules in priority order; the first whose `when` matches fires. A lead no rule
    # matches goes to its province's region pool (the implicit final default).
    [[assignment.rules]]
    name = "新能源汽车大单"
    when = { source = "官网表单", industry_contains = "新能源汽车", budget_gte = "50万" }
    to = { pool = "province", top_n = 3 }
    accept_within_hours = 1        # optional; else [assignment].accept_within_hours

    [[assignment.rules]]
    name = "展会线索"
    when = { source_in = ["展会", "展会扫码"], province = ["江苏", "浙江"] }
    to = { group = "大客户组", overflow = "manager" }

    [[assignment.rules]]
    name = "深圳客户"
    when = { city = "深圳" }
    to = { rep = "liuyang" }

`when` keys (all given keys must hold; no `when` means always): ``source`` (text),
``source_in`` (list), ``industry_contains`` (text or list, any of), ``province`` and
``city`` (text or list; 江苏 = 江苏省), ``budget_gte`` / ``budget_lt`` (yuan, integer or
"50万"/"1.2亿"), ``score_tier`` (text or list, e.g. "A").

`to` is exactly one of ``pool = "province"`` (the region covering the lead's province),
``region = "华东"``, ``group = "大客户组"``, ``rep = "zhangwei"``; optionally
``top_n = 3`` (only the N reps with the highest won amount in the last 90 days) and
``overflow = "region"`` (default: when the target has nobody free, widen to the whole
pool, then the province's region pool) or ``"manager"`` (stop: the lead waits in the
manager's unassigned pool).

Inside a pool, reps are rotated by smooth weighted round robin, the weight being each
rep's free capacity today (``daily_capacity - received_today``); inactive, on-leave and
full reps are skipped; a new rep below their floor share is served first. Ties break on
fewer leads today, then rep id, so the decision is a function of the committed state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from difflib import get_close_matches
from typing import Any, Literal

from nlp.calendar import BusinessHours
from nlp.provinces import canonical_province

__all__ = [
    "Assignment",
    "AssignmentRules",
    "Condition",
    "Group",
    "LeadFacts",
    "OrgSnapshot",
    "Region",
    "Rep",
    "RotationState",
    "Rule",
    "RuleError",
    "Target",
    "decide",
    "format_fen",
    "next_rep_after_timeout",
    "parse_assignment",
    "parse_rules",
]

DEFAULT_RULE_NAME = "默认：按省份分配"
OWNER_RULE_NAME = "老客户回原负责人"

# --------------------------------------------------------------------------- plain data


@dataclass(frozen=True)
class LeadFacts:
    """What assignment needs to know about a lead.

    ``province`` is the official full name (:func:`nlp.provinces.canonical_province`);
    ``owner_id`` is the owner of the customer de-duplication matched, if any.
    """

    id: int | str
    province: str | None = None
    city: str | None = None
    industry: str | None = None
    source: str = ""
    budget_fen: int | None = None
    score_tier: str | None = None
    owner_id: str | None = None


@dataclass(frozen=True)
class Region:
    """A sales region: its provinces (official full names) and manager."""

    name: str
    provinces: tuple[str, ...]
    manager: str | None = None


@dataclass(frozen=True)
class Group:
    """A named pool of reps across regions (``[[assignment.groups]]``)."""

    name: str
    members: tuple[str, ...]
    manager: str | None = None


@dataclass(frozen=True)
class Rep:
    """A sales rep as assignment sees them today.

    ``received_today`` counts leads assigned to them since 00:00 Asia/Shanghai;
    ``won_amount_90d_fen`` is their won amount over the last 90 days, in fen.
    """

    id: str
    name: str
    region: str | None = None
    active: bool = True
    on_leave: bool = False
    daily_capacity: int = 20
    received_today: int = 0
    won_amount_90d_fen: int = 0
    joined_at: datetime | None = None

    @property
    def free(self) -> int:
        """Leads they can still take today."""
        return max(0, self.daily_capacity - self.received_today)


@dataclass(frozen=True)
class OrgSnapshot:
    """The organisation at one moment: regions, groups and reps (reps only, no managers)."""

    regions: tuple[Region, ...]
    groups: tuple[Group, ...]
    reps: tuple[Rep, ...]
    _by_id: dict[str, Rep] = field(init=False, repr=False, compare=False)
    _region_of: dict[str, Region] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {r.id: r for r in self.reps})
        object.__setattr__(self, "_region_of", {p: reg for reg in self.regions for p in reg.provinces})

    def rep(self, rep_id: str) -> Rep | None:
        """The rep with this id."""
        return self._by_id.get(rep_id)

    def region(self, name: str) -> Region | None:
        """The region called ``name``."""
        return next((r for r in self.regions if r.name == name), None)

    def group(self, name: str) -> Group | None:
        """The group called ``name``."""
        return next((g for g in self.groups if g.name == name), None)

    def region_for_province(self, province: str | None) -> Region | None:
        """The region covering ``province`` (official full name)."""
        return self._region_of.get(province) if province else None

    def with_received(self, rep_id: str, count: int = 1) -> OrgSnapshot:
        """The same organisation after ``rep_id`` received ``count`` more leads today."""
        reps = tuple(replace(r, received_today=r.received_today + count) if r.id == rep_id else r for r in self.reps)
        return OrgSnapshot(self.regions, self.groups, reps)


@dataclass(frozen=True)
class RotationState:
    """Rotation credits per pool, persisted by the store between decisions.

    ``credits[pool_key][rep_id]`` is the smooth-weighted-round-robin credit. ``version``
    grows by one per decision that touched it: commit with ``WHERE version = old`` and
    recompute on conflict.
    """

    credits: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    version: int = 0

    def to_json(self) -> str:
        """Serialise for the store."""
        return json.dumps({"version": self.version, "credits": self.credits}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None) -> RotationState:
        """Inverse of :meth:`to_json`; empty state for None or ''."""
        if not raw:
            return cls()
        data = json.loads(raw)
        credits = {str(k): {str(r): int(c) for r, c in v.items()} for k, v in data.get("credits", {}).items()}
        return cls(credits=credits, version=int(data.get("version", 0)))


# --------------------------------------------------------------------------- rules


def format_fen(fen: int) -> str:
    """A budget in fen as people say it: ``50万``, ``1.2亿``, ``8000元``."""
    yuan = Decimal(fen) / 100
    for unit, size in (("亿", Decimal(100_000_000)), ("万", Decimal(10_000))):
        if yuan >= size:
            text = f"{(yuan / size).quantize(Decimal('0.01')).normalize():f}"
            return f"{text}{unit}"
    return f"{yuan.quantize(Decimal('0.01')).normalize():f}元"


@dataclass(frozen=True)
class Condition:
    """The ``when`` of a rule; every non-empty part must hold."""

    sources: tuple[str, ...] = ()
    industry_contains: tuple[str, ...] = ()
    provinces: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()
    budget_gte_fen: int | None = None
    budget_lt_fen: int | None = None
    score_tiers: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when the rule matches every lead."""
        return self == Condition()

    def matches(self, lead: LeadFacts) -> bool:
        """Whether ``lead`` satisfies every part."""
        if self.sources and lead.source not in self.sources:
            return False
        if self.industry_contains:
            industry = (lead.industry or "").casefold()
            if not any(word.casefold() in industry for word in self.industry_contains):
                return False
        if self.provinces and lead.province not in self.provinces:
            return False
        if self.cities and _city(lead.city) not in self.cities:
            return False
        if self.budget_gte_fen is not None and (lead.budget_fen is None or lead.budget_fen < self.budget_gte_fen):
            return False
        if self.budget_lt_fen is not None and (lead.budget_fen is None or lead.budget_fen >= self.budget_lt_fen):
            return False
        return not self.score_tiers or (lead.score_tier or "").upper() in self.score_tiers

    def describe(self) -> list[str]:
        """Short Chinese phrases for the card's explanation line."""
        parts: list[str] = []
        if self.sources:
            parts.append("/".join(self.sources))
        if self.provinces:
            parts.append("/".join(_short_province(p) for p in self.provinces))
        if self.cities:
            parts.append("/".join(self.cities))
        if self.industry_contains:
            parts.append("/".join(self.industry_contains))
        if self.budget_gte_fen is not None and self.budget_lt_fen is not None:
            parts.append(f"预算{format_fen(self.budget_gte_fen)}–{format_fen(self.budget_lt_fen)}")
        elif self.budget_gte_fen is not None:
            parts.append(f"预算≥{format_fen(self.budget_gte_fen)}")
        elif self.budget_lt_fen is not None:
            parts.append(f"预算<{format_fen(self.budget_lt_fen)}")
        if self.score_tiers:
            parts.append("/".join(f"{t}级" for t in self.score_tiers))
        return parts


def _city(name: str | None) -> str:
    return (name or "").strip().removesuffix("市")


def _short_province(full: str) -> str:
    for suffix in ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市"):
        if full.endswith(suffix):
            return full[: -len(suffix)]
    return full


TargetKind = Literal["province", "region", "group", "rep"]
Overflow = Literal["region", "manager"]


@dataclass(frozen=True)
class Target:
    """The ``to`` of a rule: which pool, optionally only its top N by 90-day won amount."""

    kind: TargetKind
    name: str | None = None
    top_n: int | None = None
    overflow: Overflow = "region"


@dataclass(frozen=True)
class Rule:
    """One ``[[assignment.rules]]`` entry."""

    name: str
    when: Condition
    to: Target
    accept_within_hours: float | None = None


@dataclass(frozen=True)
class AssignmentRules:
    """The parsed ``[assignment]`` section: rules in priority order and the defaults."""

    rules: tuple[Rule, ...] = ()
    groups: tuple[Group, ...] = ()
    accept_within_hours: float = 2.0
    new_rep_days: int = 30
    new_rep_min_share_pct: int = 10
    default_region: str | None = None
    returning_to_owner: bool = True
    business_hours: BusinessHours = field(default_factory=BusinessHours)

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``."""
        return next((r for r in self.rules if r.name == name), None)


class RuleError(ValueError):
    """An invalid assignment rule, in Chinese and English, with the rule and key at fault.

    ``index`` is the rule's position in ``[[assignment.rules]]`` (or the group's in
    ``[[assignment.groups]]``) so the config loader can point at the line.
    """

    def __init__(self, key: str, zh: str, en: str, *, rule: str | None = None, index: int | None = None) -> None:
        self.key, self.zh, self.en, self.rule, self.index = key, zh, en, rule, index
        super().__init__(f"{zh}\n{en}")

    @property
    def toml_key(self) -> str:
        """The key as written on its line: ``when`` for ``when.budgte`` (inline tables)."""
        return self.key.split(".")[0] if not self.key.startswith("groups.") else self.key.split(".")[1]


_ASSIGNMENT_KEYS = (
    "accept_within_hours", "new_rep_days", "new_rep_min_share_pct", "default_region",
    "returning_to_owner", "business_hours", "groups", "rules",
)
_RULE_KEYS = ("name", "when", "to", "accept_within_hours")
_WHEN_KEYS = ("source", "source_in", "industry_contains", "province", "city", "budget_gte", "budget_lt", "score_tier")
_TO_KEYS = ("pool", "region", "group", "rep", "top_n", "overflow")
_GROUP_KEYS = ("name", "members", "manager")


def _where(rule: str | None, index: int | None) -> tuple[str, str]:
    if rule:
        return f"规则 `{rule}` 中的", f"rule `{rule}`: "
    if index is not None:
        return f"第{index + 1}条规则中的", f"rule #{index + 1}: "
    return "[assignment] 中的", "[assignment]: "


def _unknown(key: str, path: str, allowed: Sequence[str], rule: str | None, index: int | None) -> RuleError:
    hint = get_close_matches(key, allowed, n=1, cutoff=0.5)
    zh_where, en_where = _where(rule, index)
    zh = f"{zh_where}字段 `{key}` 不存在，" + (f"是否指 `{hint[0]}`?" if hint else f"可用字段: {', '.join(allowed)}")
    en = f"{en_where}unknown key `{key}`" + (f", did you mean `{hint[0]}`?" if hint else f" (known: {', '.join(allowed)})")
    return RuleError(path, zh, en, rule=rule, index=index)


def _bad(path: str, zh: str, en: str, rule: str | None, index: int | None) -> RuleError:
    zh_where, en_where = _where(rule, index)
    return RuleError(path, f"{zh_where}字段 `{path.split('.')[-1]}`：{zh}", f"{en_where}`{path}` {en}", rule=rule, index=index)


def _texts(value: Any, path: str, rule: str | None, index: int | None) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise _bad(path, "应为文本或文本列表，例如 \"江苏\" 或 [\"江苏\", \"浙江\"]", "must be a text or a list of texts", rule, index)
    return tuple(v.strip() for v in items)


_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(亿|万|千|元)?\s*元?\s*$")


def parse_yuan(value: Any) -> int | None:
    """A TOML budget (integer yuan, or text like ``"50万"``, ``"1.2亿"``) in fen; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 100 if value >= 0 else None
    if isinstance(value, str):
        m = _AMOUNT.match(value.replace(",", "").replace("，", ""))
        if not m:
            return None
        try:
            number = Decimal(m.group(1))
        except InvalidOperation:
            return None
        scale = {"亿": 100_000_000, "万": 10_000, "千": 1_000}.get(m.group(2) or "", 1)
        fen = number * scale * 100
        return int(fen) if fen == fen.to_integral_value() else None
    return None  # floats are refused on purpose: money is never float


def _parse_when(raw: Any, rule: str, index: int) -> Condition:
    if raw is None:
        return Condition()
    if not isinstance(raw, dict):
        raise _bad("when", "应为表，例如 when = { source = \"官网表单\" }", "must be a table", rule, index)
    for key in raw:
        if key not in _WHEN_KEYS:
            raise _unknown(key, f"when.{key}", _WHEN_KEYS, rule, index)
    sources: tuple[str, ...] = ()
    if "source" in raw:
        sources += _texts(raw["source"], "when.source", rule, index)
    if "source_in" in raw:
        sources += _texts(raw["source_in"], "when.source_in", rule, index)
    provinces: list[str] = []
    for name in _texts(raw["province"], "when.province", rule, index) if "province" in raw else ():
        full = canonical_province(name)
        if full is None:
            raise _bad("when.province", f"`{name}` 不是省级行政区名称", f"`{name}` is not a province-level division", rule, index)
        provinces.append(full)
    budgets: dict[str, int | None] = {}
    for key in ("budget_gte", "budget_lt"):
        if key in raw:
            fen = parse_yuan(raw[key])
            if fen is None:
                raise _bad(f"when.{key}", "应为整数（元）或金额文本，例如 500000 或 \"50万\"", "must be integer yuan or an amount like \"50万\" (no floats)", rule, index)
            budgets[key] = fen
    gte, lt = budgets.get("budget_gte"), budgets.get("budget_lt")
    if gte is not None and lt is not None and gte >= lt:
        raise _bad("when.budget_lt", "必须大于 budget_gte，否则没有线索能匹配", "must be greater than budget_gte", rule, index)
    return Condition(
        sources=sources,
        industry_contains=_texts(raw["industry_contains"], "when.industry_contains", rule, index) if "industry_contains" in raw else (),
        provinces=tuple(provinces),
        cities=tuple(_city(c) for c in _texts(raw["city"], "when.city", rule, index)) if "city" in raw else (),
        budget_gte_fen=gte,
        budget_lt_fen=lt,
        score_tiers=tuple(t.upper() for t in _texts(raw["score_tier"], "when.score_tier", rule, index)) if "score_tier" in raw else (),
    )


def _parse_to(
    raw: Any, rule: str, index: int, region_names: Collection[str], group_names: Collection[str], rep_ids: Collection[str]
) -> Target:
    if not isinstance(raw, dict):
        raise _bad("to", "缺失或格式错误，例如 to = { pool = \"province\" } 或 { rep = \"zhangwei\" }", "is missing or not a table", rule, index)
    for key in raw:
        if key not in _TO_KEYS:
            raise _unknown(key, f"to.{key}", _TO_KEYS, rule, index)
    kinds = [k for k in ("pool", "region", "group", "rep") if k in raw]
    if len(kinds) != 1:
        raise _bad("to", "必须且只能指定 pool / region / group / rep 其中之一", "needs exactly one of pool, region, group, rep", rule, index)
    kind = kinds[0]
    value = raw[kind]
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"to.{kind}", "应为文本", "must be a text", rule, index)
    known: dict[str, Collection[str]] = {"region": region_names, "group": group_names, "rep": rep_ids}
    if kind == "pool" and value != "province":
        raise _bad("to.pool", f"`{value}` 无效，目前只支持 \"province\"（按线索省份所属区域）", "only \"province\" is supported", rule, index)
    if kind in known and known[kind] and value not in known[kind]:
        hint = get_close_matches(value, list(known[kind]), n=1, cutoff=0.5)
        label = {"region": "区域", "group": "分组", "rep": "销售"}[kind]
        raise _bad(
            f"to.{kind}",
            f"{label} `{value}` 不存在" + (f"，是否指 `{hint[0]}`?" if hint else ""),
            f"unknown {kind} `{value}`" + (f", did you mean `{hint[0]}`?" if hint else ""),
            rule,
            index,
        )
    top_n = raw.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise _bad("to.top_n", "应为正整数", "must be a positive integer", rule, index)
    if top_n is not None and kind == "rep":
        raise _bad("to.top_n", "不能与 rep 同时使用（指定个人时没有排名）", "cannot be used with rep", rule, index)
    overflow = raw.get("overflow", "region")
    if overflow not in ("region", "manager"):
        raise _bad("to.overflow", "应为 \"region\"（扩大到区域池）或 \"manager\"（交经理待分配）", "must be \"region\" or \"manager\"", rule, index)
    if kind == "pool":
        return Target(kind="province", top_n=top_n, overflow=overflow)
    return Target(kind=kind, name=value.strip(), top_n=top_n, overflow=overflow)  # type: ignore[arg-type]


def _hours(value: Any, path: str, rule: str | None, index: int | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or value > 24 * 30:
        raise _bad(path, "应为正数（工作小时）", "must be a positive number of business hours", rule, index)
    return float(value)


def parse_rules(
    raw: Any,
    *,
    region_names: Collection[str] = (),
    group_names: Collection[str] = (),
    rep_ids: Collection[str] = (),
) -> tuple[Rule, ...]:
    """Parse the ``[[assignment.rules]]`` array.

    References to regions, groups and reps are checked when the known names are given.
    Raises :class:`RuleError` naming the rule and key.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RuleError("rules", "assignment.rules 应为 [[assignment.rules]] 数组", "assignment.rules must be an array of tables")
    rules: list[Rule] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise RuleError("rules", f"第{index + 1}条规则应为表", f"rule #{index + 1} must be a table", index=index)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RuleError("name", f"第{index + 1}条规则缺少 name（规则名称，用于审计和卡片）", f"rule #{index + 1} needs a name", index=index)
        name = name.strip()
        for key in entry:
            if key not in _RULE_KEYS:
                raise _unknown(key, key, _RULE_KEYS, name, index)
        if any(r.name == name for r in rules):
            raise RuleError("name", f"规则名称 `{name}` 重复", f"duplicate rule name `{name}`", rule=name, index=index)
        when = _parse_when(entry.get("when"), name, index)
        catch_all = next((r for r in rules if r.when.is_empty()), None)
        if catch_all is not None:
            raise RuleError(
                "when",
                f"规则 `{name}` 永远不会生效：前面的规则 `{catch_all.name}` 没有 when 条件，会匹配所有线索",
                f"rule `{name}` is unreachable: rule `{catch_all.name}` before it has no `when` and matches every lead",
                rule=name,
                index=index,
            )
        to = _parse_to(entry.get("to"), name, index, region_names, group_names, rep_ids)
        hours = entry.get("accept_within_hours")
        rules.append(Rule(name=name, when=when, to=to, accept_within_hours=None if hours is None else _hours(hours, "accept_within_hours", name, index)))
    return tuple(rules)


def _parse_groups(raw: Any, rep_ids: Collection[str]) -> tuple[Group, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RuleError("groups", "assignment.groups 应为 [[assignment.groups]] 数组", "assignment.groups must be an array of tables")
    groups: list[Group] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise RuleError("groups.name", f"第{index + 1}个分组缺少 name", f"group #{index + 1} needs a name", index=index)
        name = entry["name"].strip()
        for key in entry:
            if key not in _GROUP_KEYS:
                hint = get_close_matches(key, _GROUP_KEYS, n=1, cutoff=0.5)
                raise RuleError(
                    f"groups.{key}",
                    f"分组 `{name}` 中的字段 `{key}` 不存在" + (f"，是否指 `{hint[0]}`?" if hint else ""),
                    f"group `{name}`: unknown key `{key}`" + (f", did you mean `{hint[0]}`?" if hint else ""),
                    index=index,
                )
        members = entry.get("members")
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise RuleError("groups.members", f"分组 `{name}` 的 members 应为成员 id 列表", f"group `{name}`: members must be a list of member ids", index=index)
        unknown = [m for m in members if rep_ids and m not in rep_ids]
        if unknown:
            raise RuleError("groups.members", f"分组 `{name}` 中的成员 `{unknown[0]}` 不存在", f"group `{name}`: unknown member `{unknown[0]}`", index=index)
        if any(g.name == name for g in groups):
            raise RuleError("groups.name", f"分组名称 `{name}` 重复", f"duplicate group name `{name}`", index=index)
        manager = entry.get("manager")
        groups.append(Group(name=name, members=tuple(members), manager=manager if isinstance(manager, str) else None))
    return tuple(groups)


def _clock(value: Any) -> time | None:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        h, m = (int(x) for x in value.strip().split(":"))
        if 0 <= h < 24 and 0 <= m < 60:
            return time(h, m)
    return None


def parse_assignment(
    section: Mapping[str, Any] | None,
    *,
    region_names: Collection[str] = (),
    rep_ids: Collection[str] = (),
) -> AssignmentRules:
    """Parse the whole ``[assignment]`` table (defaults, groups, rules).

    Pass the configured region names and rep ids to have references checked (with a
    did-you-mean). Raises :class:`RuleError`.
    """
    data = dict(section or {})
    for key in data:
        if key not in _ASSIGNMENT_KEYS:
            raise _unknown(key, key, _ASSIGNMENT_KEYS, None, None)
    hours = _hours(data.get("accept_within_hours", 2), "accept_within_hours", None, None)
    days = data.get("new_rep_days", 30)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise _bad("new_rep_days", "应为非负整数（天）", "must be a non-negative integer (days)", None, None)
    pct = data.get("new_rep_min_share_pct", 10)
    if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
        raise _bad("new_rep_min_share_pct", "应为 0–100 的整数（百分比）", "must be an integer 0-100 (percent)", None, None)
    default_region = data.get("default_region")
    if default_region is not None and (not isinstance(default_region, str) or (region_names and default_region not in region_names)):
        hint = get_close_matches(str(default_region), list(region_names), n=1, cutoff=0.5)
        raise _bad("default_region", "不是已配置的区域" + (f"，是否指 `{hint[0]}`?" if hint else ""), "is not a configured region", None, None)
    owner = data.get("returning_to_owner", True)
    if not isinstance(owner, bool):
        raise _bad("returning_to_owner", "应为 true 或 false", "must be true or false", None, None)
    business_hours = BusinessHours()
    if "business_hours" in data:
        raw = data["business_hours"]
        clocks = [_clock(v) for v in raw] if isinstance(raw, list) and len(raw) == 2 else [None]
        if None in clocks or clocks[0] >= clocks[1]:  # type: ignore[operator]
            raise _bad("business_hours", "应为 [\"09:00\", \"18:00\"] 这样的开始、结束时间", "must be [\"HH:MM\", \"HH:MM\"], opening before closing", None, None)
        business_hours = BusinessHours(opens=clocks[0], closes=clocks[1])  # type: ignore[arg-type]
    groups = _parse_groups(data.get("groups"), rep_ids)
    rules = parse_rules(data.get("rules"), region_names=region_names, group_names=[g.name for g in groups], rep_ids=rep_ids)
    # Group rules are checked against the parsed groups even without region/rep names.
    for index, rule in enumerate(rules):
        if rule.to.kind == "group" and not any(g.name == rule.to.name for g in groups):
            hint = get_close_matches(rule.to.name or "", [g.name for g in groups], n=1, cutoff=0.5)
            raise _bad("to.group", f"分组 `{rule.to.name}` 不存在" + (f"，是否指 `{hint[0]}`?" if hint else "（请在 [[assignment.groups]] 中定义）"), f"unknown group `{rule.to.name}`", rule.name, index)
    return AssignmentRules(
        rules=rules,
        groups=groups,
        accept_within_hours=hours,
        new_rep_days=days,
        new_rep_min_share_pct=pct,
        default_region=default_region,
        returning_to_owner=owner,
        business_hours=business_hours,
    )


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Assignment:
    """The decision for one lead.

    ``rep_id`` None means nobody could take it: the lead goes to ``manager_id``'s
    unassigned pool with ``reason`` — never lost. ``skipped`` lists (rep id, why) for
    the audit row. Persist ``rotation`` together with the lead.
    """

    rep_id: str | None
    rep_name: str | None
    rule_name: str
    pool: str
    pool_key: str
    manager_id: str | None
    due_at: datetime | None
    explanation: str
    reason: str | None
    rotation: RotationState
    remaining_today: int | None = None
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def assigned(self) -> bool:
        """True when a rep got the lead."""
        return self.rep_id is not None


@dataclass(frozen=True)
class _Pool:
    key: str
    label: str
    members: tuple[Rep, ...]
    manager: str | None


def _region_pool(region: Region, org: OrgSnapshot) -> _Pool:
    return _Pool(f"region:{region.name}", f"{region.name}池", tuple(r for r in org.reps if r.region == region.name), region.manager)


def _home_region(lead: LeadFacts, org: OrgSnapshot, cfg: AssignmentRules) -> Region | None:
    region = org.region_for_province(lead.province)
    if region is None and cfg.default_region:
        region = org.region(cfg.default_region)
    return region


def _pool_for(target: Target, lead: LeadFacts, org: OrgSnapshot, cfg: AssignmentRules) -> _Pool | str:
    """The pool a target designates, or a Chinese reason why there is none."""
    if target.kind == "province":
        region = _home_region(lead, org, cfg)
        if region is None:
            return f"省份「{lead.province}」不属于任何区域" if lead.province else "线索省份未知，无法匹配区域"
        return _region_pool(region, org)
    if target.kind == "region":
        region = org.region(target.name or "")
        return _region_pool(region, org) if region else f"区域「{target.name}」不存在"
    if target.kind == "group":
        group = org.group(target.name or "") or next((g for g in cfg.groups if g.name == target.name), None)
        if group is None:
            return f"分组「{target.name}」不存在"
        members = tuple(r for r in (org.rep(m) for m in group.members) if r is not None)
        home = _home_region(lead, org, cfg)
        return _Pool(f"group:{group.name}", group.name, members, group.manager or (home.manager if home else None))
    rep = org.rep(target.name or "")
    home = _home_region(lead, org, cfg)
    manager = home.manager if home else None
    if rep is None:
        return f"销售「{target.name}」不存在"
    if rep.region and org.region(rep.region):
        manager = org.region(rep.region).manager  # type: ignore[union-attr]
    return _Pool(f"rep:{rep.id}", rep.name, (rep,), manager)


def _why_not(rep: Rep, excluded: Collection[str]) -> str | None:
    if not rep.active:
        return "已停用"
    if rep.on_leave:
        return "休假中"
    if rep.id in excluded:
        return "已超时未接"
    if rep.free <= 0:
        return "今日额度已满"
    return None


def _top_n(pool: _Pool, n: int) -> _Pool:
    # Rank among people at work: someone on leave does not hold a top slot.
    working = [r for r in pool.members if r.active and not r.on_leave]
    ranked = sorted(working, key=lambda r: (-r.won_amount_90d_fen, r.id))[:n]
    return _Pool(f"{pool.key}|top{n}", pool.label, tuple(ranked), pool.manager)


def _is_new(rep: Rep, now: datetime, cfg: AssignmentRules) -> bool:
    return rep.joined_at is not None and now - rep.joined_at < timedelta(days=cfg.new_rep_days)


def _pick(
    pool: _Pool, state: RotationState, excluded: Collection[str], now: datetime, cfg: AssignmentRules
) -> tuple[Rep | None, RotationState, list[tuple[str, str]], bool]:
    """Smooth weighted round robin over free capacity, with a floor for new reps."""
    skipped: list[tuple[str, str]] = []
    eligible: list[Rep] = []
    for rep in pool.members:
        why = _why_not(rep, excluded)
        if why:
            skipped.append((rep.id, why))
        else:
            eligible.append(rep)
    if not eligible:
        return None, state, skipped, False

    old = state.credits.get(pool.key, {})
    member_ids = {r.id for r in pool.members}
    # Drop credits of people who left the pool so they don't come back with a windfall.
    credits = {rid: c for rid, c in old.items() if rid in member_ids}
    total = 0
    for rep in eligible:
        free = rep.daily_capacity - rep.received_today
        credits[rep.id] = credits.get(rep.id, 0) + free
        total += free

    chosen: Rep | None = None
    floor_used = False
    pct = cfg.new_rep_min_share_pct
    if pct > 0:
        pool_today = sum(r.received_today for r in pool.members)
        # Floor: after this lead, each new rep should hold >= pct% of the pool's leads today.
        behind = [r for r in eligible if _is_new(r, now, cfg) and r.received_today * 100 < pct * (pool_today + 1)]
        if behind:
            chosen = min(behind, key=lambda r: (r.received_today * 100 - pct * (pool_today + 1), r.id))
            floor_used = True
    if chosen is None:
        chosen = min(eligible, key=lambda r: (-credits[r.id], r.received_today, r.id))
    credits[chosen.id] -= total
    new_credits = dict(state.credits)
    new_credits[pool.key] = credits
    return chosen, RotationState(credits=new_credits, version=state.version + 1), skipped, floor_used


def _unassigned_reason(label: str, skipped: Sequence[tuple[str, str]], org: OrgSnapshot) -> str:
    if not skipped:
        return f"{label}没有销售成员"
    if all(why == "今日额度已满" for _, why in skipped):
        return f"{label}今日额度已满"
    names = [f"{org.rep(rid).name if org.rep(rid) else rid}{why}" for rid, why in skipped[:4]]  # type: ignore[union-attr]
    more = f"等{len(skipped)}人" if len(skipped) > 4 else ""
    return f"{label}暂无可接单的销售（{'，'.join(names)}{more}）"


def _target_phrase(rule: Rule | None, top_n: int | None) -> str:
    if top_n:
        return f"近90天业绩前{top_n}"
    if rule is not None and rule.to.kind == "rep":
        return "指定销售"
    return "轮转"


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _matching_rule(lead: LeadFacts, cfg: AssignmentRules, pinned: str | None) -> Rule | None:
    if pinned:
        rule = cfg.rule(pinned)
        if rule is not None:
            return rule
    return next((r for r in cfg.rules if r.when.matches(lead)), None)


def _assign(
    lead: LeadFacts,
    cfg: AssignmentRules,
    org: OrgSnapshot,
    rotation: RotationState,
    now: datetime,
    excluded: Collection[str],
    pinned_rule: str | None,
    allow_owner: bool,
) -> Assignment:
    _check_now(now)
    if lead.province and lead.province not in org._region_of:
        # Accept "江苏" as well as "江苏省" from callers that did not canonicalise.
        lead = replace(lead, province=canonical_province(lead.province) or lead.province)
    skipped_all: list[tuple[str, str]] = []

    def done(rep: Rep, rule_name: str, pool: _Pool, state: RotationState, expl: str, hours: float | None) -> Assignment:
        remaining = rep.free - 1
        return Assignment(
            rep_id=rep.id,
            rep_name=rep.name,
            rule_name=rule_name,
            pool=pool.label,
            pool_key=pool.key,
            manager_id=pool.manager,
            due_at=cfg.business_hours.add(now, hours if hours is not None else cfg.accept_within_hours),
            explanation=f"{expl} · 你今日剩余额度 {remaining}",
            reason=None,
            rotation=state,
            remaining_today=remaining,
            skipped=tuple(skipped_all),
        )

    home = _home_region(lead, org, cfg)
    if allow_owner and cfg.returning_to_owner and lead.owner_id:
        owner = org.rep(lead.owner_id)
        if owner is not None:
            why = _why_not(owner, excluded)
            if why is None:
                pool = _Pool(f"rep:{owner.id}", owner.name, (owner,), org.region(owner.region).manager if owner.region and org.region(owner.region) else (home.manager if home else None))  # type: ignore[union-attr]
                return done(owner, OWNER_RULE_NAME, pool, rotation, f"老客户再次咨询 → 原负责人 {owner.name}", None)
            skipped_all.append((owner.id, f"原负责人{why}"))

    rule = _matching_rule(lead, cfg, pinned_rule)
    target = rule.to if rule else Target(kind="province")
    rule_name = rule.name if rule else DEFAULT_RULE_NAME
    conditions = rule.when.describe() if rule else ([_short_province(lead.province)] if lead.province else [])
    hours = rule.accept_within_hours if rule else None

    first = _pool_for(target, lead, org, cfg)
    attempts: list[tuple[_Pool, int | None]] = []
    if isinstance(first, _Pool):
        if target.top_n:
            attempts.append((_top_n(first, target.top_n), target.top_n))
        attempts.append((first, None))
    if target.overflow == "region" and home is not None and target.kind in ("group", "rep", "region"):
        region_pool = _region_pool(home, org)
        if not any(p.key == region_pool.key for p, _ in attempts):
            attempts.append((region_pool, None))
    if target.overflow == "manager":
        attempts = attempts[:1]

    state = rotation
    tried: list[str] = []
    for pool, top_n in attempts:
        rep, state, skipped, floor_used = _pick(pool, state, excluded, now, cfg)
        for item in skipped:
            if item not in skipped_all:
                skipped_all.append(item)
        if rep is not None:
            head = " · ".join([pool.label, *conditions])
            phrase = _target_phrase(rule if not tried else None, top_n)
            if tried:
                phrase = f"{'、'.join(tried)}无人可接 → {pool.label}{phrase}"
            if floor_used:
                phrase += "（新人保底）"
            return done(rep, rule_name, pool, state, f"{head} → {phrase}", hours)
        tried.append(f"前{top_n}" if top_n else pool.label)

    if not attempts:
        reason = first if isinstance(first, str) else f"{first.label}没有销售成员"
        manager = home.manager if home else None
        label, key = (home.name + "池", f"region:{home.name}") if home else ("待分配", "unassigned")
    else:
        main, last = attempts[0][0], attempts[-1][0]
        label, key = main.label, main.key
        manager = last.manager or main.manager
        keys = {p.key for p, _ in attempts}
        # "华东池前3、华东池" says the same as "华东池": name only the widest pool tried.
        labels = [f"{p.label}前{n}" if n else p.label for p, n in attempts if not (n and p.key.split("|")[0] in keys)]
        in_pools = {r.id for p, _ in attempts for r in p.members}
        pool_skips = [s for s in skipped_all if s[0] in in_pools]
        reason = _unassigned_reason("、".join(dict.fromkeys(labels)), pool_skips, org)
        if isinstance(first, str):
            reason = f"{first}，{reason}"
    return Assignment(
        rep_id=None,
        rep_name=None,
        rule_name=rule_name,
        pool=label,
        pool_key=key,
        manager_id=manager,
        due_at=None,
        explanation=f"{label} → 待经理分配：{reason}",
        reason=reason,
        rotation=rotation,
        skipped=tuple(skipped_all),
    )


def decide(lead: LeadFacts, rules: AssignmentRules, org: OrgSnapshot, rotation: RotationState, now: datetime) -> Assignment:
    """Decide who gets ``lead`` at ``now`` (aware datetime).

    Order: an old customer's owner (if ``returning_to_owner`` and they can take it);
    the first rule whose ``when`` matches; else the province's region pool. Within the
    pool: the top N by 90-day won amount if the rule says so, then rotation weighted by
    free capacity with a floor share for new reps; overflow per the rule. The deadline
    is ``now`` plus the rule's accept hours in business hours.
    """
    return _assign(lead, rules, org, rotation, now, excluded=(), pinned_rule=None, allow_owner=True)


def next_rep_after_timeout(
    lead: LeadFacts,
    rules: AssignmentRules,
    org: OrgSnapshot,
    rotation: RotationState,
    now: datetime,
    *,
    excluded: Iterable[str],
    rule_name: str | None = None,
) -> Assignment:
    """Re-assign a lead nobody accepted in time to the next eligible rep of the same pool.

    ``excluded`` are the reps who already had it (the one who just timed out included);
    ``rule_name`` is the rule recorded on the lead, so the same pool is used even if
    the lead's facts would now match another rule (ignored if that rule was removed).
    """
    tried = frozenset(excluded)
    result = _assign(lead, rules, org, rotation, now, excluded=tried, pinned_rule=rule_name, allow_owner=False)
    if result.assigned or not tried:
        return result
    names = "、".join(sorted((org.rep(r).name if org.rep(r) else r) for r in tried))  # type: ignore[union-attr]
    reason = f"{result.reason}；已超时未接: {names}"
    return replace(result, reason=reason, explanation=f"{result.pool} → 待经理分配：{reason}")
