"""The sales-stage machine: pure functions over plain data and a ``now``.

A pipeline is an ordered list of stages. Open stages follow each other one step at a
time (no skipping); an outcome stage closes the deal: a *won* stage (签约) is reachable
only from the last open stage, a *lost* stage (输单) from any open stage. Going back to an
earlier open stage is allowed (the customer reopens objections). A stage cannot be
entered while its required fields are missing: the handler layer asks for exactly those
fields in chat (:func:`missing_fields`) and moves the stage when they arrive. A manager's
override (with a reason, audited) lifts the no-skip and missing-field rules and may
reopen a closed deal.

Each stage has a deadline measured from entering it, in business hours
(``due_within_hours``, nights, weekends and Chinese holidays skipped) or at the opening
of the day named by a date field (``due_from_field``, e.g. 下次联系日期), a list of who is
told when a deal enters it, and a notification template with variables.

``[[stages]]`` in leadbot.toml (the default, when absent, is the pilot pipeline
首通电话 → 需求诊断 → 方案发送 → 异议处理 → 下次联系 → 报价 → 签约 / 输单)::

    [[stages]]
    name = "需求诊断"
    required = ["痛点", "预算", "决策人"]        # fields needed to enter this stage
    due_within_hours = 16                        # business hours after entering
    notify = ["manager"]                         # owner | manager | region_manager | a member id
    template = "{客户名称} 进入{阶段}，截止 {截止日期}"
    fields = { "预算" = "amount" }               # text | amount (元→分) | date | number
    questions = { "痛点" = "客户目前最头疼的问题是什么？" }   # (TOML: quote non-ASCII keys)

    [[stages]]
    name = "下次联系"
    required = ["下次联系日期"]
    due_from_field = "下次联系日期"               # due at the opening of that day

    [[stages]]
    name = "输单"
    outcome = "lost"                             # "won" | "lost": closes the deal
    required = ["输单原因"]

Template variables: 客户名称, 商机, 阶段, 原阶段, 金额, 截止日期, 负责人, 操作人, 原因, 预计签约,
plus every field name used by any stage (报价金额, 下次联系日期 …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from difflib import get_close_matches
from typing import Any, Literal

from nlp.calendar import SHANGHAI, BusinessHours

FieldKind = Literal["text", "amount", "date", "number"]
Outcome = Literal["", "won", "lost"]
FIELD_KINDS: tuple[str, ...] = ("text", "amount", "date", "number")
NOTIFY_ROLES = ("owner", "manager", "region_manager")
MAX_TEXT_ANSWER = 200
# The largest amount answer taken (as leads.parse_budget_fen): beyond it an answer is a typo or
# hostile (``9e999992`` would build a million-digit integer), and Decimal arithmetic overflows.
MAX_AMOUNT_YUAN = Decimal("1e12")

# Questions and kinds of the fields the pilot pipeline uses; a config may name others.
KNOWN_FIELDS: Mapping[str, tuple[FieldKind, str]] = {
    "痛点": ("text", "客户目前最头疼的问题是什么？"),
    "预算": ("amount", "客户的预算大概是多少？（例如 50万）"),
    "决策人": ("text", "最终拍板的是哪位？（例如 设备科王主任）"),
    "方案名称": ("text", "发给客户的是哪份方案？"),
    "下次联系日期": ("date", "下次什么时候联系客户？（例如 下周三、3月20日）"),
    "报价金额": ("amount", "报价金额是多少？（例如 48.5万）"),
    "合同金额": ("amount", "合同金额是多少？"),
    "输单原因": ("text", "方便说一下没有成交的原因吗？（例如 价格、交期、选了竞品）"),
}
BUILTIN_VARIABLES = ("客户名称", "商机", "阶段", "原阶段", "金额", "截止日期", "负责人", "操作人", "原因", "预计签约")
DEFAULT_TEMPLATE = "{客户名称} 进入{阶段}，金额 {金额}，截止 {截止日期}"
_VARIABLE = re.compile(r"\{([^{}]*)\}")


class StageRuleError(ValueError):
    """An invalid ``[[stages]]`` entry: which one (``index``), which key, why (zh, en)."""

    def __init__(self, index: int | None, key: str, zh: str, en: str) -> None:
        self.index, self.key, self.zh, self.en = index, key, zh, en
        where = f"stages[{index}].{key}" if index is not None else f"stages.{key}"
        super().__init__(f"{where}: {zh} ({en})")


@dataclass(frozen=True)
class StageField:
    """A piece of information a stage needs, and how the bot asks for it."""

    name: str
    kind: FieldKind = "text"
    question: str = ""

    @property
    def prompt(self) -> str:
        """The question the bot asks in chat."""
        return self.question or f"请补充「{self.name}」。"


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline."""

    name: str
    required: tuple[StageField, ...] = ()
    due_within_hours: Decimal | None = None
    due_from_field: str | None = None
    notify: tuple[str, ...] = ("manager",)
    template: str = DEFAULT_TEMPLATE
    outcome: Outcome = ""

    @property
    def is_open(self) -> bool:
        """True for a stage a deal passes through (not 签约 / 输单)."""
        return self.outcome == ""


@dataclass(frozen=True)
class Pipeline:
    """The stages in order; open stages first in their order, then outcomes."""

    stages: tuple[Stage, ...]
    _by_name: Mapping[str, Stage] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {s.name: s for s in self.stages})

    @property
    def names(self) -> tuple[str, ...]:
        """Every stage name, in order."""
        return tuple(s.name for s in self.stages)

    @property
    def open_stages(self) -> tuple[Stage, ...]:
        """The stages a deal passes through, in order."""
        return tuple(s for s in self.stages if s.is_open)

    @property
    def first(self) -> Stage:
        """Where a new opportunity starts."""
        return self.open_stages[0]

    def stage(self, name: str) -> Stage | None:
        """The stage called ``name`` (also accepts 「报价阶段」 for 报价)."""
        found = self._by_name.get(name)
        if found is None and name.endswith("阶段"):
            found = self._by_name.get(name[:-2])
        return found

    def next_open(self, name: str) -> Stage | None:
        """The open stage after ``name``, or None at the last open stage / an outcome."""
        opens = self.open_stages
        for i, s in enumerate(opens):
            if s.name == name:
                return opens[i + 1] if i + 1 < len(opens) else None
        return None

    def field_names(self) -> tuple[str, ...]:
        """All field names any stage requires (the template variables besides built-ins)."""
        seen: dict[str, None] = {}
        for s in self.stages:
            for f in s.required:
                seen.setdefault(f.name, None)
            if s.due_from_field:
                seen.setdefault(s.due_from_field, None)
        return tuple(seen)


# ----------------------------------------------------------------------------- transitions
@dataclass(frozen=True)
class Verdict:
    """Whether a move is allowed; ``code`` names the rule, ``zh`` tells the rep politely."""

    allowed: bool
    code: str
    zh: str = ""


def check_transition(pipeline: Pipeline, current: str, target: str, *, override: bool = False) -> Verdict:
    """May a deal at ``current`` move to ``target``? Missing fields are checked separately.

    Codes: ``forward`` / ``back`` / ``won`` / ``lost`` / ``override`` (allowed), and
    ``unknown`` / ``same`` / ``closed`` / ``skip`` / ``won_early`` (refused).
    """
    goal = pipeline.stage(target)
    if goal is None:
        hint = get_close_matches(target, pipeline.names, n=1)
        extra = f"，是否指「{hint[0]}」？" if hint else ""
        return Verdict(False, "unknown", f"没有名为「{target}」的阶段{extra}可用阶段：{' → '.join(pipeline.names)}")
    here = pipeline.stage(current)
    if here is not None and goal.name == here.name:
        return Verdict(False, "same", f"这个商机已经在「{goal.name}」阶段了。")
    if here is None:
        # A stage that was removed from the config: only a manager can place the deal again.
        if override:
            return Verdict(True, "override")
        return Verdict(False, "closed", f"当前阶段「{current}」已不在流程中，请经理用「强制进入」调整。")
    if not here.is_open:
        if override:
            return Verdict(True, "override")
        return Verdict(False, "closed", f"这个商机已「{here.name}」，不能再变更阶段；如需重新打开，请联系经理。")
    if goal.outcome == "lost":
        return Verdict(True, "lost")
    opens = pipeline.open_stages
    position = {s.name: i for i, s in enumerate(opens)}
    if goal.outcome == "won":
        if position[here.name] == len(opens) - 1:
            return Verdict(True, "won")
        if override:
            return Verdict(True, "override")
        return Verdict(False, "won_early", f"签约前需要先走完「{opens[-1].name}」阶段（当前在「{here.name}」）。")
    step = position[goal.name] - position[here.name]
    if step == 1:
        return Verdict(True, "forward")
    if step < 0:
        return Verdict(True, "back")
    if override:
        return Verdict(True, "override")
    following = opens[position[here.name] + 1].name
    return Verdict(False, "skip", f"阶段不能跳过：「{here.name}」之后是「{following}」，请先进入「{following}」。")


def allowed_targets(pipeline: Pipeline, current: str) -> tuple[str, ...]:
    """Every stage a rep (no override) may move a deal at ``current`` to."""
    return tuple(s.name for s in pipeline.stages if check_transition(pipeline, current, s.name).allowed)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def missing_fields(stage: Stage, answers: Mapping[str, Any]) -> tuple[StageField, ...]:
    """The required fields of ``stage`` with no answer yet, in the order they are asked."""
    return tuple(f for f in stage.required if _blank(answers.get(f.name)))


def deadline(stage: Stage, entered_at: datetime, answers: Mapping[str, Any], hours: BusinessHours) -> datetime | None:
    """When the deal should leave ``stage`` (aware UTC), or None when the stage has no clock.

    ``due_from_field``: the business opening of that date (a date on a holiday moves to the
    next working morning); else ``due_within_hours`` business hours after ``entered_at``.
    """
    if entered_at.tzinfo is None:
        raise ValueError("entered_at must be timezone-aware")
    if stage.due_from_field:
        raw = answers.get(stage.due_from_field)
        if isinstance(raw, str) and raw:
            day = date.fromisoformat(raw)
            opening = hours.next_open(datetime.combine(day, time(0, 0), SHANGHAI))
            return opening.astimezone(timezone.utc)
    if stage.due_within_hours is not None:
        return hours.add(entered_at, float(stage.due_within_hours)).astimezone(timezone.utc)
    return None


# ----------------------------------------------------------------------------- answers
def parse_answer(stage_field: StageField, text: str, now: datetime) -> tuple[object, str]:
    """Turn a chat answer into a stored value: (value, "") or (None, a polite hint).

    amount → integer fen (``50万`` → 5000000_00), date → ISO date (``下周三`` relative to
    ``now`` in Shanghai), number → decimal string, text → trimmed text.
    """
    answer = text.strip().strip("。.！!")
    if not answer:
        return None, f"没有收到内容。{stage_field.prompt}"
    if stage_field.kind == "text":
        return answer[:MAX_TEXT_ANSWER], ""
    if stage_field.kind == "number":
        try:
            value = Decimal(answer.replace(",", ""))
        except InvalidOperation:
            return None, f"「{stage_field.name}」需要一个数字，例如 3。"
        if not value.is_finite():
            return None, f"「{stage_field.name}」需要一个数字，例如 3。"
        return str(value), ""
    if stage_field.kind == "amount":
        from nlp.amounts import extract_amounts

        found = extract_amounts(answer)
        if not found:
            try:
                yuan = Decimal(answer.replace(",", "").rstrip("元"))
            except InvalidOperation:
                return None, f"没能识别金额，请写成「48万」或「480000元」这样的形式。{stage_field.prompt}"
        else:
            yuan = Decimal(str(found[0]["yuan_max"]))
        # NaN and Infinity parse as Decimals; compare only finite ones (NaN < 0 raises).
        if not yuan.is_finite():
            return None, f"没能识别金额，请写成「48万」或「480000元」这样的形式。{stage_field.prompt}"
        if yuan < 0:
            return None, "金额不能为负数。"
        if yuan > MAX_AMOUNT_YUAN:
            return None, f"金额过大（上限 1 万亿元），请填写一个合理的金额，例如「48万」。{stage_field.prompt}"
        return int((yuan * 100).to_integral_value()), ""
    # date
    try:
        return date.fromisoformat(answer).isoformat(), ""
    except ValueError:
        pass
    from nlp.extract import extract

    dates = extract(answer, now)["dates"]
    if not dates:
        return None, f"没能识别日期，请写成「下周三」或「3月20日」这样的形式。{stage_field.prompt}"
    return str(dates[0]["date"]), ""


def labelled_answers(pipeline_fields: Sequence[str], text: str) -> dict[str, str]:
    """Answers written as ``预算：50万`` lines, by field name (any order, several at once)."""
    out: dict[str, str] = {}
    names = "|".join(re.escape(n) for n in sorted(pipeline_fields, key=len, reverse=True))
    if not names:
        return out
    pattern = re.compile(rf"(?P<name>{names})\s*(?:[:：=]|是|为)\s*(?P<value>[^\n；;]+)")
    for m in pattern.finditer(text):
        out[m.group("name")] = m.group("value").strip(" ，,。")
    return out


# ----------------------------------------------------------------------------- templates
def template_variables(template: str) -> tuple[str, ...]:
    """The ``{变量}`` names a template uses, in order."""
    return tuple(m.group(1).strip() for m in _VARIABLE.finditer(template))


def render(template: str, variables: Mapping[str, str]) -> str:
    """Fill ``{变量}``; a variable without a value reads 「未填写」 rather than failing."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(1).strip()) or "未填写", template)


def format_fen(fen: int | None) -> str:
    """Money for people: 485000_00 → 「48.5万」, 98000 → 「980元」."""
    if fen is None:
        return "未填写"
    yuan = Decimal(fen) / 100
    if abs(yuan) >= 10000:
        return f"{(yuan / 10000).quantize(Decimal('0.01')).normalize():f}万"
    return f"{yuan.quantize(Decimal('0.01')).normalize():f}元"


def format_local(when: datetime | None) -> str:
    """A deadline for people: 「03-10 14:00」 in Shanghai time."""
    if when is None:
        return "无"
    return when.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


# ----------------------------------------------------------------------------- config
def _field(name: str, kinds: Mapping[str, Any], questions: Mapping[str, Any], index: int) -> StageField:
    known_kind, known_question = KNOWN_FIELDS.get(name, ("text", ""))
    kind = kinds.get(name, known_kind)
    if kind not in FIELD_KINDS:
        raise StageRuleError(index, "fields", f"字段「{name}」的类型 `{kind}` 不支持；可选 {' / '.join(FIELD_KINDS)}",
                             f"field `{name}` has unsupported kind `{kind}` (one of {', '.join(FIELD_KINDS)})")
    question = questions.get(name, known_question)
    if not isinstance(question, str):
        raise StageRuleError(index, "questions", f"字段「{name}」的问题应为文字", f"question of `{name}` must be a string")
    return StageField(name=name, kind=kind, question=question)


_STAGE_KEYS = ("name", "required", "due_within_hours", "due_from_field", "notify", "template", "fields", "questions", "outcome")


def parse_stages(raw: object, *, member_ids: Sequence[str] = ()) -> Pipeline:
    """Validate ``[[stages]]`` (a list of tables) into a :class:`Pipeline`.

    ``None`` or an empty list gives :func:`default_pipeline`. Raises :class:`StageRuleError`.
    """
    if raw is None or raw == []:
        return default_pipeline()
    if not isinstance(raw, list):
        raise StageRuleError(None, "stages", "应写成 [[stages]] 表数组", "must be an array of tables [[stages]]")
    stages: list[Stage] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise StageRuleError(i, "name", "每个阶段应是一个表 [[stages]]", "each stage must be a table")
        for key in entry:
            if key not in _STAGE_KEYS:
                hint = get_close_matches(key, _STAGE_KEYS, n=1)
                raise StageRuleError(i, key, f"未知的键{f'，是否指 `{hint[0]}`?' if hint else ''}", f"unknown key{f' (did you mean {hint[0]}?)' if hint else ''}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 32:
            raise StageRuleError(i, "name", "阶段需要一个名称（不超过32个字）", "stage needs a name (at most 32 characters)")
        name = name.strip()
        if name in seen:
            raise StageRuleError(i, "name", f"阶段「{name}」重复", f"duplicate stage `{name}`")
        seen.add(name)
        kinds = entry.get("fields", {})
        questions = entry.get("questions", {})
        if not isinstance(kinds, dict) or not isinstance(questions, dict):
            raise StageRuleError(i, "fields" if not isinstance(kinds, dict) else "questions", "应写成 { 字段 = \"…\" } 表", "must be an inline table")
        required_raw = entry.get("required", [])
        if not isinstance(required_raw, list) or not all(isinstance(x, str) and x.strip() for x in required_raw):
            raise StageRuleError(i, "required", "必填字段应写成文字列表，例如 [\"报价金额\"]", "required must be a list of field names")
        required = tuple(_field(x.strip(), kinds, questions, i) for x in required_raw)
        for extra in list(kinds) + list(questions):
            if extra not in required_raw and extra != entry.get("due_from_field"):
                raise StageRuleError(i, "fields", f"字段「{extra}」不在 required 中", f"field `{extra}` is not in required")
        hours = entry.get("due_within_hours")
        due_hours: Decimal | None = None
        if hours is not None:
            if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 2000:
                raise StageRuleError(i, "due_within_hours", "时限应为大于 0 的工作小时数（不超过2000）", "due_within_hours must be business hours > 0 (≤ 2000)")
            due_hours = Decimal(str(hours))
        due_field = entry.get("due_from_field")
        if due_field is not None:
            kind = next((f.kind for f in required if f.name == due_field), kinds.get(due_field, KNOWN_FIELDS.get(due_field, ("text", ""))[0]))
            if due_field not in [f.name for f in required] or kind != "date":
                raise StageRuleError(i, "due_from_field", f"「{due_field}」必须是本阶段 required 中的日期字段", f"`{due_field}` must be a required date field of this stage")
        notify = entry.get("notify", ["manager"])
        if not isinstance(notify, list) or not all(isinstance(x, str) for x in notify):
            raise StageRuleError(i, "notify", "通知对象应为列表，例如 [\"owner\", \"manager\"]", "notify must be a list")
        for who in notify:
            if who not in NOTIFY_ROLES and who not in member_ids:
                raise StageRuleError(i, "notify", f"通知对象 `{who}` 不是 owner / manager / region_manager，也不是已配置的成员 id",
                                     f"notify target `{who}` is neither a role nor a member id")
        outcome = entry.get("outcome", "")
        if outcome not in ("", "won", "lost"):
            raise StageRuleError(i, "outcome", "outcome 只能是 \"won\"（签约）或 \"lost\"（输单）", "outcome must be \"won\" or \"lost\"")
        template = entry.get("template", DEFAULT_TEMPLATE)
        if not isinstance(template, str) or not template.strip():
            raise StageRuleError(i, "template", "通知模板应为非空文字", "template must be a non-empty string")
        stages.append(Stage(name=name, required=required, due_within_hours=due_hours, due_from_field=due_field,
                            notify=tuple(notify), template=template, outcome=outcome))
    opens = [s for s in stages if s.is_open]
    if not opens:
        raise StageRuleError(None, "stages", "至少需要一个进行中的阶段（没有 outcome 的阶段）", "at least one open stage (without outcome) is needed")
    for i, s in enumerate(stages):
        if s.is_open and i >= len(opens):
            raise StageRuleError(i, "name", f"「{s.name}」写在了结束阶段之后；签约/输单等结束阶段应写在最后",
                                 "outcome stages must come after all open stages")
    if sum(1 for s in stages if s.outcome == "won") > 1 or sum(1 for s in stages if s.outcome == "lost") > 1:
        raise StageRuleError(None, "outcome", "最多一个签约阶段和一个输单阶段", "at most one won and one lost stage")
    pipeline = Pipeline(tuple(stages))
    known = set(BUILTIN_VARIABLES) | set(pipeline.field_names())
    for i, s in enumerate(stages):
        for var in template_variables(s.template):
            if var not in known:
                hint = get_close_matches(var, sorted(known), n=1)
                raise StageRuleError(i, "template", f"模板变量 {{{var}}} 不存在{f'，是否指 {{{hint[0]}}}?' if hint else ''}",
                                     f"unknown template variable {{{var}}}{f' (did you mean {{{hint[0]}}}?)' if hint else ''}")
    return pipeline


def default_pipeline() -> Pipeline:
    """The pilot customer's pipeline: 首通电话 → 需求诊断 → 方案发送 → 异议处理 → 下次联系 → 报价 → 签约 / 输单."""

    def f(name: str) -> StageField:
        kind, question = KNOWN_FIELDS[name]
        return StageField(name, kind, question)

    return Pipeline((
        Stage("首通电话", due_within_hours=Decimal(4), notify=()),
        Stage("需求诊断", required=(f("痛点"), f("预算"), f("决策人")), due_within_hours=Decimal(16),
              template="{客户名称} 进入需求诊断：痛点 {痛点}，预算 {预算}，决策人 {决策人}，截止 {截止日期}"),
        Stage("方案发送", due_within_hours=Decimal(16), template="{客户名称} 进入方案发送，截止 {截止日期}"),
        Stage("异议处理", due_within_hours=Decimal(40), template="{客户名称} 进入异议处理，截止 {截止日期}"),
        Stage("下次联系", required=(f("下次联系日期"),), due_from_field="下次联系日期",
              template="{客户名称} 约定 {下次联系日期} 再联系"),
        Stage("报价", required=(f("报价金额"),), due_within_hours=Decimal(24), notify=("manager",),
              template="{客户名称} 进入方案报价，金额 {报价金额}，截止 {截止日期}"),
        Stage("签约", outcome="won", notify=("manager", "region_manager"), template="{客户名称} 已签约，金额 {金额}，负责人 {负责人}"),
        Stage("输单", required=(f("输单原因"),), outcome="lost", notify=("manager",), template="{客户名称} 输单，原因：{输单原因}"),
    ))

