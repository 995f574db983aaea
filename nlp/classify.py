"""What a sales message says about the deal: industry, intents, sentiment and our next action.

All rules are data in ``nlp/data/lexicon/`` (industry.toml, intents.toml, sentiment.toml,
actions.toml, typos.toml), reloaded within a few seconds of an edit. Matching runs on a
*prepared* copy of the text: traditional characters mapped to simplified one by one and voice
typos rewritten (报介单 → 报价单). Both mappings keep the length, so a phrase found in the
prepared text is copied from the original text at the same offsets (把合同範本發過來 stays as
written).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nlp.lexicon import LexiconFile, as_list, lexicon_path, to_simplified, word_alternation

INTENT_LABELS = ("sign_intent", "price_agreed", "upgrade_need", "complaint", "visit_planned",
                 "sample_request", "quote_request", "churn_risk")


def _alt(words: Sequence[str]) -> str:
    return word_alternation(list(words))


def _first_chars(words: list[str]) -> str:
    """A lookahead on the first characters of ``words``: ``re`` then skips other positions in C."""
    return "(?=[" + "".join(sorted({re.escape(w[0]) for w in words if w})) + "])"


def _regex_alt(patterns: list[str]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)


# ---------------------------------------------------------------- text preparation

@dataclass(eq=False)
class Typos:
    """typos.toml, compiled: same-length rewrites."""

    pattern: re.Pattern[str] | None
    rewrite: dict[str, str]


def _build_typos(data: dict[str, Any]) -> Typos:
    rewrite = {str(k): str(v) for k, v in data.get("rewrite", {}).items()}
    for k, v in rewrite.items():
        if len(k) != len(v):
            raise ValueError(f"typo rule {k!r} → {v!r} changes the length")
    return Typos(re.compile(_first_chars(list(rewrite)) + _alt(list(rewrite))) if rewrite else None, rewrite)


_TYPOS: LexiconFile[Typos] = LexiconFile(lexicon_path("typos"), _build_typos)


@lru_cache(maxsize=256)
def _prepare_cached(text: str, typos: Typos) -> str:
    out = to_simplified(text)
    if typos.pattern is not None:
        out = typos.pattern.sub(lambda m: typos.rewrite[m.group(0)], out)
    return out


def prepare(text: str) -> str:
    """The text as matched: simplified characters, typos fixed, same length as ``text``."""
    return _prepare_cached(text, _TYPOS.get())


# ---------------------------------------------------------------- industry

@dataclass
class IndustryRules:
    """industry.toml, compiled: one alternation over every cue, cue → label."""

    pattern: re.Pattern[str]
    label_of: dict[str, str | None]
    # label → (more specific label, words that may follow the cue closely)
    refine: dict[str, list[tuple[str, re.Pattern[str]]]]


_REFINE_REACH = 4


def _cue_re(cue: str) -> str:
    esc = re.escape(cue)
    # Latin cues (3C, WMS, ICU) must not sit inside a longer code or word.
    if cue[:1].isascii() and cue[:1].isalnum():
        esc = r"(?<![A-Za-z0-9])" + esc
    if cue[-1:].isascii() and cue[-1:].isalpha():
        esc += r"(?![A-Za-z])"
    return esc


def _build_industry(data: dict[str, Any]) -> IndustryRules:
    label_of: dict[str, str | None] = {}
    for label, cues in data["labels"].items():
        for cue in as_list(cues):
            label_of.setdefault(cue, None if label == "none" else label)
    cues = sorted(label_of, key=len, reverse=True)
    refine = {label: [(specific, re.compile(_alt(as_list(words)))) for specific, words in table.items()]
              for label, table in data.get("refine", {}).items()}
    return IndustryRules(re.compile(_first_chars(cues) + "(?:" + "|".join(_cue_re(c) for c in cues) + ")"),
                         label_of, refine)


_INDUSTRY: LexiconFile[IndustryRules] = LexiconFile(lexicon_path("industry"), _build_industry)
_MEASURE_BEFORE_JIA = frozenset("那这一哪每几两某")
_OURS_BEFORE = re.compile(r"(?:我们的|我们|我司|咱们的|我们家)$")


def classify_industry(text: str) -> str | None:
    """The customer's industry from the closed label list (leftmost cue wins), or None."""
    rules = _INDUSTRY.get()
    prepared = prepare(text)
    pos = 0
    while True:
        m = rules.pattern.search(prepared, pos)
        if m is None:
            return None
        pos = m.start() + 1
        if _OURS_BEFORE.search(prepared, max(0, m.start() - 4), m.start()):
            continue  # our own product line is not the customer's industry
        if m.group(0)[0] == "家" and prepared[m.start() - 1:m.start()] in _MEASURE_BEFORE_JIA:
            continue  # 那家电动车整车厂: 家 belongs to 那家, not to 家电
        label = rules.label_of.get(m.group(0))
        for specific, words in rules.refine.get(label or "", ()):
            if words.search(prepared, m.end(), m.end() + _REFINE_REACH):
                return specific
        return label


# ---------------------------------------------------------------- intents

@dataclass(eq=False)
class IntentContext:
    """intents.toml ``[context]``, compiled: when a matched cue does not state the intent.

    ``negation`` is tried on the clause text just before a cue (不打算改造, 没说要样品, 还没决定要不要下单);
    ``hypothetical`` cancels the labels in ``hypothetical_labels`` when the cue sits in a
    condition (如果以后要扩产的话…, 价格能接受的话就签: the condition is not the fact).
    """

    negation: re.Pattern[str] | None
    hypothetical_before: re.Pattern[str] | None
    hypothetical_after: re.Pattern[str] | None
    hypothetical_labels: frozenset[str]


@dataclass(eq=False)
class IntentRule:
    """One label of intents.toml, compiled."""

    label: str
    pattern: re.Pattern[str]
    exceptions: re.Pattern[str] | None
    weak: re.Pattern[str] | None
    requires: re.Pattern[str] | None
    # A cue after ``past_before`` and followed by ``past_after`` tells what already happened
    # (我们上次改造的那套, 上周去拜访过了), not what the customer needs now.
    past_before: re.Pattern[str] | None
    past_after: re.Pattern[str] | None


@dataclass(eq=False)
class IntentRules:
    """intents.toml, compiled: per label, a pattern and optional exception, weak and context patterns."""

    rules: list[IntentRule]
    context: IntentContext


def _opt_re(value: Any) -> re.Pattern[str] | None:
    pats = as_list(value) if not isinstance(value, str) else [value]
    return re.compile(_regex_alt(pats)) if pats else None


def _build_context(spec: dict[str, Any]) -> IntentContext:
    neg = _opt_re(spec.get("negation"))
    return IntentContext(
        negation=re.compile(f"(?:{neg.pattern})$") if neg else None,
        hypothetical_before=_opt_re(spec.get("hypothetical_before")),
        hypothetical_after=_opt_re(spec.get("hypothetical_after")),
        hypothetical_labels=frozenset(as_list(spec.get("hypothetical_labels"))),
    )


def _build_intents(data: dict[str, Any]) -> IntentRules:
    rules = []
    for label in INTENT_LABELS:
        spec = data.get(label, {})
        pats = as_list(spec.get("patterns"))
        if not pats:
            continue
        past_after = _opt_re(spec.get("past_after"))
        rules.append(IntentRule(label, re.compile(_regex_alt(pats)), _opt_re(spec.get("except")),
                                _opt_re(spec.get("weak")), _opt_re(spec.get("requires")),
                                _opt_re(spec.get("past_before")),
                                re.compile(past_after.pattern) if past_after else None))
    return IntentRules(rules, _build_context(data.get("context", {})))


_INTENTS: LexiconFile[IntentRules] = LexiconFile(lexicon_path("intents"), _build_intents)
# Where a clause starts or ends for the context rules (a negator never reaches over a comma).
_CONTEXT_BREAK = re.compile(r"[，,。！!？?；;：:\n]")
_CONTEXT_BEFORE = 12


def _blank(m: re.Match[str]) -> str:
    return "\u3000" * len(m.group(0))


def _clause_before(text: str, pos: int) -> str:
    """Up to ``_CONTEXT_BEFORE`` characters before ``pos``, from the last clause break on."""
    head = text[max(0, pos - _CONTEXT_BEFORE):pos]
    breaks = list(_CONTEXT_BREAK.finditer(head))
    return head[breaks[-1].end():] if breaks else head


def _clause_after(text: str, pos: int) -> str:
    m = _CONTEXT_BREAK.search(text, pos)
    return text[pos:m.start() if m else len(text)]


def cue_stands(text: str, m: re.Match[str], context: IntentContext, label: str | None = None,
               past_before: re.Pattern[str] | None = None, past_after: re.Pattern[str] | None = None) -> bool:
    """Whether the cue matched by ``m`` states what it says: not negated, not hypothetical, not past."""
    before = _clause_before(text, m.start())
    if context.negation is not None and context.negation.search(before):
        return False
    if label is not None and label in context.hypothetical_labels:
        if context.hypothetical_before is not None and context.hypothetical_before.search(before):
            return False
        if context.hypothetical_after is not None and context.hypothetical_after.search(_clause_after(text, m.end())):
            return False
    is_past = (past_before is not None and past_after is not None and past_before.search(before) is not None
               and past_after.match(_clause_after(text, m.end())) is not None)
    return not is_past


def _found(text: str, pat: re.Pattern[str], context: IntentContext, rule: IntentRule | None = None) -> bool:
    for m in pat.finditer(text):
        if rule is None:
            if cue_stands(text, m, context):
                return True
        elif cue_stands(text, m, context, rule.label, rule.past_before, rule.past_after):
            return True
    return False


# A weak cue (a fault) counts only with a ``requires`` cue (what we delivered) this close to it.
_REQUIRES_NEAR = 24


def _weak_found(text: str, rule: IntentRule, context: IntentContext) -> bool:
    assert rule.weak is not None and rule.requires is not None
    for m in rule.weak.finditer(text):
        if rule.requires.search(text, max(0, m.start() - _REQUIRES_NEAR), m.end() + _REQUIRES_NEAR) \
                and cue_stands(text, m, context, rule.label, rule.past_before, rule.past_after):
            return True
    return False


@lru_cache(maxsize=256)
def _intents_cached(prepared: str, rules: IntentRules) -> tuple[str, ...]:
    out = []
    ctx = rules.context
    for rule in rules.rules:
        body = rule.exceptions.sub(_blank, prepared) if rule.exceptions is not None else prepared
        if _found(body, rule.pattern, ctx, rule) or (
                rule.weak is not None and rule.requires is not None and rule.requires.search(body)
                and _weak_found(body, rule, ctx)):
            out.append(rule.label)
    return tuple(out)


def classify_intents(text: str) -> list[str]:
    """The intents the text states about the customer side (subset of the eight labels)."""
    return list(_intents_cached(prepare(text), _INTENTS.get()))


# ---------------------------------------------------------------- sentiment

@dataclass
class SentimentRules:
    """sentiment.toml, compiled."""

    negative: re.Pattern[str]
    positive: re.Pattern[str]
    exceptions: re.Pattern[str] | None


def _build_sentiment(data: dict[str, Any]) -> SentimentRules:
    exc = as_list(data.get("except"))
    return SentimentRules(re.compile(_regex_alt(as_list(data["negative"]))),
                          re.compile(_regex_alt(as_list(data["positive"]))),
                          re.compile(_regex_alt(exc)) if exc else None)


_SENTIMENT: LexiconFile[SentimentRules] = LexiconFile(lexicon_path("sentiment"), _build_sentiment)


def classify_sentiment(text: str) -> str:
    """The customer's attitude: ``"negative"``, ``"positive"`` or ``"neutral"``."""
    rules = _SENTIMENT.get()
    prepared = prepare(text)
    body = rules.exceptions.sub(_blank, prepared) if rules.exceptions is not None else prepared
    intent_rules = _INTENTS.get()
    if _found(body, rules.negative, intent_rules.context):
        return "negative"
    if _found(body, rules.positive, intent_rules.context):
        return "positive"
    intents = _intents_cached(prepared, intent_rules)
    if "sign_intent" in intents or "price_agreed" in intents:
        return "positive"
    return "neutral"


# ---------------------------------------------------------------- next action

_DATE = (r"(?:(?:大后天|后天|今天|明天|今晚|明早|明朝|明日|今早|当天|那天|"
         r"下下(?:周|星期)[一二三四五六日天]?|下个?(?:周|星期)[一二三四五六日天末]?|这周[一二三四五六日天末]?|本周[一二三四五六日天]?|"
         r"(?:周|星期)[一二三四五六日天末]|周末|下个月(?:底|初|中旬|上旬|下旬|\d{1,2}号)?|这个月底?|月底|月初|本月|年底|年末|年前|年后|今年|明年|"
         r"(?:节后|开工后?|上班后?|年后|春节后|国庆后|五一后)?第[一二三四五\d]个工作日|节前最后一天|节后第一天|节后上班第一天|节前|节后|(?:春节|国庆|五一|清明|端午|中秋|元旦)(?:假期)?(?:前|后|当天|那天)?|"
         r"初[一二三四五六七八九十]|\d{1,2}月\d{1,2}[日号]?|\d{1,2}[日号]|"
         r"[一二三四五六七八九十]{1,3}月[一二三四五六七八九十]{1,3}[日号]|(?:\d{1,2}|[一二三四五六七八九十]{1,3})月(?:份|上旬|中旬|下旬|初|底)?|"
         r"上旬|中旬|下旬|上午|下午|晚上|早上|中午|一早|一上班|上班前|上班后|上班|开工后|\d{1,2}[点:：]\d{0,2}半?|[一二三四五六七八九十]{1,3}点半?|"
         r"[一二三四五六七八九十两\d]{1,2}(?:天|周|个工作日)(?:之内|内)|趁[^，,。]{1,8}?(?:的时候|那几天|期间|窗口|机会|空档))"
         r"(?:之前|以前|前|之内|内|后|的时候)?)")
_DATE_RE = re.compile(_DATE)
_CLAUSE_END = re.compile(r"[，,。！!？?；;\n“”\"]|(?<=[\u4e00-\u9fff\d]) (?=[\u4e00-\u9fff])")
# Words that start a new thought in run-on voice transcripts; a phrase is cut there.
_PHRASE_CUT = re.compile(r"然后|另外|还有|不然|否则|(?<![给跟和帮替让带找向去到来在下访见])他们|他说|她说|但是|不过|因为|所以|第二家|我说|顺便|再说|\s")
_MAX_PHRASE = 16
_OUR_LINE = re.compile(r"(?m)^(?:我|我们[^\s:：]{0,4}|我司[^\s:：]{0,4})\s*(?:[:：]\s*|[\d月日/\-: ]{5,}\n)")
_SPEAKER_LINE = re.compile(r"(?m)^[^\s:：，,。]{1,12}[:：]")
_QUESTION = re.compile(r"能(?:不能)?来\s*(.{1,24}?)\s*吗")
_AGREE = re.compile(r"(?m)^我\s*(?:[:：]|[\d月日/\-: ]{5,}\n)\s*(?:没问题|好的|可以|行|OK|ok|收到)")
_THREAT = re.compile(r"(?:不|没)((?:补齐|补发|重开|重发|退款|赔|更换|换|整改|处理|解决|答复|回复|修好|发货|到货)[^，。,\s]{0,3}?)就")
_BARE_GO = re.compile(r"(?:再去|去)(?!了|年)")
_DEMONSTRATIVE = re.compile(r"(?:这批|那批|这个|那个|这台|那台|这些|那些|这套|那套|这份|那份|几家客户的)")
_OBJECT_NOUN = re.compile(r"(?:合同|版|报价单?|资料|方案|图纸|单子?|协议|样品|发票|清单|报告|参数|货)$")
# Speech verbs: what follows is the customer's words, often an instruction to us (说下周二前报个价).
_SAID = re.compile(r"(?:说(?![明法服话])|(?<![电笑])话|讲(?![座究解]))")
# The customer does it, or it comes to us: not our action.
_TOWARDS_US = re.compile(r"来我们(?:公司|厂|这边|工厂|展厅|办事处)|到我们(?:公司|厂|这边)|拜年|过年好|快乐|"
                         r"发我们|给我们|寄给我们|发给我们|打过来|付款|付清|回款|发我(?!一份)|我们会|"
                         r"给你|发你|告诉你|答复你|通知你")
# What happens to our goods is our to-do (我们的二十台流量计下周五之前发货).
_OUR_GOODS = re.compile(r"(?<!问)我们的[^，,。！!？?\s能吗]{1,12}?(?:要|会|将|得)?在?(?:" + _DATE + r")*(?:发货|进场|安装|交付|送到|到货|上线|调试|交货)")
_LEAD_RE = re.compile(f"(?:{_DATE}|\\s|要|先|再)*")
_DATES_LEAD_RE = re.compile(f"(?:{_DATE}|\\s)*")
# Things that come to us when the customer says them (节后第一天把订单发过来).
_INCOMING = re.compile(r"发过来|寄过来|打过来|传过来|送过来")
# 可以去接触下, 这家不妨先去摸摸底: a plan of ours with no subject.
_MAY_GO = re.compile(r"(?:可以|不妨|值得|有必要|还得)(?:先|再|抽空|找时间)?(?=(?:过)?去(?!年|了|的|过))")
# E-mail header fields are never actions (发送时间: …, 抄送: …); blanked before next_action is looked for.
_HEADER_LINE = re.compile(r"(?m)^[ \t]*(?:发件人|发送时间|发送日期|收件人|抄送|密送|主题|日期|附件|Sent|From|To|Cc|CC|Date|"
                          r"Subject|Attachments?)[ \t]*[:：][^\n]*")
# Something we delivered short (少发了两个温控模块), then a bare make-up verb (今天必须补上) → 补发两个温控模块.
_SHORTAGE = re.compile(r"(?:少发|漏发|少给|少寄|少送|少装|缺发|漏寄|缺|少)了?(?P<obj>[一二三四五六七八九十两几\d]+"
                       r"(?:个|只|台|套|根|块|箱|件|支|片|条|包|卷|袋|盒|批|颗|把|张|米|公斤|kg|pcs)(?![人工])[^，,。！!？?\s]{0,10})")
_MAKE_UP = re.compile(r"(?:必须|尽快|马上|赶紧|立刻|立即|给他们|给客户|帮他们)*补(?:上|齐|发|寄|回来|过去|到位|货)?(?:给他们|给客户|过去)?")
# A matter named in one clause (温控器报警的问题), a bare handling verb in the next (今天必须解决).
_HANDLE = re.compile(r"(?:必须|尽快|马上|赶紧|立刻|立即|抓紧)*(?P<verb>解决|处理|搞定|弄好|跟进|排查|落实|修好)(?:掉|好|一下)?")
_TOPIC_AT = re.compile(r"(?:的事情?|的问题|的情况|的毛病|的故障)(?=[，,；;])")
_TOPIC_LEAD = re.compile(r"^.{0,8}?(?:说|反映|反馈|提到|提的|讲)(?:的)?")
# A service ticket that asks for an on-site date is our on-site service (期望上门时间：3月5日上午);
# the ticket's equipment field names what we service, its service-type field what we do there.
_TICKET_VISIT = re.compile(r"(?m)(?:期望|预约|要求|希望|预计)?(?:上门|到场|到现场)(?:服务)?(?:时间|日期)[ \t]*[:：][ \t]*\S")
_TICKET_EQUIPMENT = re.compile(r"(?m)^[ \t#]*(?:设备|设备名称|产品|产品名称|故障设备|报修设备|机型|报修产品)[ \t]*[:：][ \t]*"
                               r"(?P<eq>[^\s，,。;；|/（(:：]{1,16})")
_TICKET_SERVICE = re.compile(r"(?:服务类型|服务内容|服务项目|需求类型|报修类型)[ \t]*[:：][ \t]*(?P<kind>[^\n]{1,12})")
_SERVICE_VERBS = ("安装", "调试", "保养", "巡检", "培训", "检修", "维修")

# In the customer's own words (an e-mail: 请…发给我们), 我们 is the customer.
_TO_CUSTOMER = re.compile(r"(?:发|寄|交|送|传)?给?我们")
_CUSTOMER_VOICE = re.compile(r"(?m)贵司|贵方|贵公司|你司|您|烦请|敬请|恳请|^(?:发件人|收件人|主题|From|To|Subject|Hi|Dear|你好)\b")
# A noun phrase that names a matter (…的事, …的问题): the verb that handles it follows.
_TOPIC_END = re.compile(r"(?:的事情?|的问题|的情况|的毛病|的故障)$")
# An object-first sending clause (license报价明天之前发他).
_SEND_TO_THEM = re.compile(r"(?:发|寄|给|交|送)(?:他|她|您|过去|给他|给她|到)")


@dataclass(eq=False)
class ActionRules:
    """actions.toml, compiled."""

    request: re.Pattern[str]
    self_: re.Pattern[str]
    self_verbs: re.Pattern[str]
    promise: re.Pattern[str]
    verbs: re.Pattern[str]
    starts: re.Pattern[str]
    strong_starts: re.Pattern[str]
    lead_strip: re.Pattern[str]
    not_after: tuple[str, ...]
    not_right_after: tuple[str, ...]
    can_you: re.Pattern[str]
    not_actions: frozenset[str]
    customer_subject: re.Pattern[str]
    not_yet: re.Pattern[str]


def _build_actions(data: dict[str, Any]) -> ActionRules:
    strip = _alt(as_list(data["strip_words"]))
    verbs = _regex_alt(as_list(data["action_verbs"]))
    return ActionRules(
        request=re.compile(f"(?<![申邀聘])(?:{_regex_alt(as_list(data['request_markers']))})"),
        self_=re.compile(_alt(as_list(data["self_markers"]))),
        self_verbs=re.compile(f"(?<![让叫要约给跟找带陪请])(?P<who>我们?|{_regex_alt(as_list(data.get('our_subjects')))})"
                              f"(?:[A-Za-z]{{2,12}}|[\\u4e00-\\u9fff]{{1,2}}[总工])?(?:{_DATE}|\\s)*"
                              f"(?P<gap>[^，,。！!？?\\s的]{{0,4}}?)(?:{_DATE}|\\s)*(?:{_regex_alt(as_list(data['modal_words']))})*"
                              f"(?P<verb>{_regex_alt(as_list(data['self_verbs']))})(?![的了过格嘅]|.的)"),
        promise=re.compile(_alt(as_list(data["promise_markers"]))),
        verbs=re.compile(verbs),
        starts=re.compile(f"(?:把|将|再|按|全部|工程师|技术|师傅|售后|远程|{verbs})"),
        strong_starts=re.compile(f"(?:{_regex_alt(as_list(data['clause_starts']))})"),
        lead_strip=re.compile(f"^(?:{strip}|在|{_DATE})+"),
        not_after=tuple(as_list(data.get("not_action_after"))),
        not_right_after=tuple(as_list(data.get("not_action_right_after"))),
        can_you=re.compile(f"(?:能不能|能否|可不可以|可以|能)(?:{_DATE}|先|\\s)*(?=(?:把|{verbs})[^，,。]{{0,16}}?(?:吗|么|？|\\?))"),
        not_actions=frozenset(as_list(data.get("not_actions"))),
        customer_subject=re.compile(_regex_alt(as_list(data["customer_subjects"]))),
        not_yet=re.compile(_regex_alt(as_list(data["not_yet"]))),
    )


_ACTIONS: LexiconFile[ActionRules] = LexiconFile(lexicon_path("actions"), _build_actions)


def _clause_end(prepared: str, start: int) -> int:
    m = _CLAUSE_END.search(prepared, start)
    return m.start() if m else len(prepared)


@lru_cache(maxsize=8)
def _clause_starts(prepared: str) -> list[int]:
    return [m.end() for m in _CLAUSE_END.finditer(prepared)]


def _clause_start(prepared: str, end: int) -> int:
    """Where the clause containing ``end`` starts (0 or just after a clause break)."""
    starts = _clause_starts(prepared)
    i = bisect.bisect_right(starts, end) - 1
    while i >= 0 and starts[i] > end:
        i -= 1
    return starts[i] if i >= 0 else 0


def _phrase(original: str, prepared: str, start: int, end: int, rules: ActionRules,
            must_start: bool = False, strong: bool = False, customer_voice: bool = False,
            said: bool = False) -> str | None:
    """The action phrase of prepared[start:end], copied from ``original`` without dates and fillers.

    ``customer_voice``: the clause is the customer's own request (请于…把合同发给我们), so 给我们
    names the customer, not us.
    """
    cut = _PHRASE_CUT.search(prepared, start + 1, end)
    if cut:
        end = cut.start()
    if end - start < 2 or not rules.verbs.search(prepared, start, end):
        return None
    keep = [True] * (end - start)
    for m in _DATE_RE.finditer(prepared, start, end):
        for i in range(m.start(), m.end()):
            keep[i - start] = False
    for m in _DEMONSTRATIVE.finditer(prepared, start, end):
        for i in range(m.start(), m.end()):
            keep[i - start] = False
    kept_idx = [start + i for i, k in enumerate(keep) if k]
    text_p = "".join(prepared[i] for i in kept_idx)
    lead_m = rules.lead_strip.match(text_p)
    lead = lead_m.end() if lead_m else 0
    tail = len(text_p)
    while tail > lead and text_p[tail - 1] in "的了吧啊呢哈嘛就行吗么 ":
        tail -= 1
    if text_p[lead:tail].endswith(("一下", "一哈")):
        tail -= 2
    idx = kept_idx[lead:tail][:_MAX_PHRASE]
    phrase_p = "".join(prepared[i] for i in idx)
    if len(phrase_p) < 2 or phrase_p in rules.not_actions or not rules.verbs.search(phrase_p):
        return None
    if must_start and not rules.starts.match(phrase_p):
        return None
    if rules.not_yet.search(text_p[lead:]):
        return None  # 发过去的阀门, 发成了DN65, 安装完以后, 已经发过去: a description, not a to-do
    if strong and (not rules.strong_starts.match(phrase_p) or "的" in phrase_p[1:3] or _INCOMING.search(phrase_p)
                   or re.search("过了|了$", text_p)
                   or text_p[lead - 1:lead] == "要" and text_p[lead - 2:lead] != "需要"
                   and (said or not phrase_p.startswith(("把", "将", "安排")))):
        return None  # 送去的测试件 is what happened, not what we will do
    if strong and _TOPIC_END.search(phrase_p):
        return None  # 开票信息的事: a topic, its verb comes in the next clause
    if _TOWARDS_US.search(_TO_CUSTOMER.sub(_blank, phrase_p) if customer_voice else phrase_p):
        return None
    return "".join(original[i] for i in idx).strip()


def _stated(original: str, prepared: str, rules: ActionRules) -> list[tuple[int, str]]:
    """First tier: to-dos of the rep, requests of the customer, our promises in chat lines."""
    first: list[tuple[int, str]] = []

    def add(bucket: list[tuple[int, str]], pos: int, start: int, end: int, must_start: bool = False) -> None:
        ph = _phrase(original, prepared, start, end, rules, must_start)
        if ph:
            bucket.append((pos, ph))

    # The customer asks us (让我们…, 请…, 希望…, 约我们…), possibly with the object first (合同让我们…发过去).
    voice = _CUSTOMER_VOICE.search(original) is not None or _CUSTOMER_VOICE.search(prepared) is not None
    for m in rules.request.finditer(prepared):
        c0 = _clause_start(prepared, m.start())
        head = prepared[c0:m.start()]
        if any(head.endswith(w) or w in head for w in rules.not_after) or head.endswith(rules.not_right_after):
            continue
        if m.group(0).startswith("要求") and not m.group(0).startswith("要求我们") and head.strip() \
                and not rules.customer_subject.search(head[-6:]):
            continue  # 改造要求换一批阀门: what the project needs, not a request to us
        end = _clause_end(prepared, m.end())
        if prepared[:end].rstrip().endswith("的") and m.group(0) == "要":
            continue  # 要换新的: the customer wants new ones
        ph = _phrase(original, prepared, m.end(), end, rules, must_start=True,
                     customer_voice="请" in m.group(0) and voice)
        if not ph:
            continue
        if 0 < len(head) <= 6 and _OBJECT_NOUN.search(head):
            ph = original[c0:m.start()].strip() + ph
        first.append((m.start(), ph))
    # The rep's own to-do (记得…, 我们得…, 说好…的).
    for m in rules.self_.finditer(prepared):
        head = prepared[_clause_start(prepared, m.start()):m.start()]
        if m.group(0) in ("答应", "承诺", "保证") and "我" not in head and rules.customer_subject.search(head):
            continue  # 李经理答应下个月续签: the customer promises, we have nothing to do
        at = m.end() - 1 if m.group(0).endswith("把") else m.end()  # 得把发票开出来 → 把发票开出来
        add(first, m.start(), at, _clause_end(prepared, m.end()))
    # 我说物流初七才恢复，初七一早安排发货: the first clause of what the rep said that is an action.
    for m in re.finditer("我说", prepared):
        pos = m.end()
        sentence_end = re.compile("[。！!？?\n]").search(prepared, pos)
        stop = sentence_end.start() if sentence_end else len(prepared)
        while pos < stop:
            end = min(_clause_end(prepared, pos), stop)
            dm = _DATES_LEAD_RE.match(prepared, pos, end)
            body = dm.end() if dm else pos
            if rules.verbs.match(prepared, body):
                add(first, m.start(), body, end)
                break
            pos = end + 1
    # 下周我再去拜访一次, 下下周三我们带技术过去, 明天我过去续签借用单.
    for m in rules.self_verbs.finditer(prepared):
        clause_end = _clause_end(prepared, m.end())
        if "已" in prepared[m.start():m.end()] or prepared[m.end():clause_end].rstrip().endswith("了"):
            continue  # 我已经把报价发过去了: done, not to do
        verb_at = m.end("who")
        dates = _DATES_LEAD_RE.match(prepared, m.end("gap"))
        if len(m.group("gap")) >= 2 or m.start("verb") > m.end("gap") + 1 + (dates.end() - dates.start() if dates else 0):
            verb_at = m.start("verb")  # 我们老板下周想去拜访: start at the verb, not at 老板
        add(first, m.start(), verb_at, _clause_end(prepared, m.end()))
    # Our chat lines (我: …) and named speakers promising for us (周凯: …我带两个工程师过去装).
    for m in _OUR_LINE.finditer(prepared):
        line_end = prepared.find("\n", m.end())
        line_end = len(prepared) if line_end < 0 else line_end
        pos = m.end()
        while pos < line_end:
            end = min(_clause_end(prepared, pos), line_end)
            ph = _phrase(original, prepared, pos, end, rules)
            if ph:
                first.append((pos, ph))
                break
            pos = end + 1
    for m in _SPEAKER_LINE.finditer(prepared):
        line_end = prepared.find("\n", m.end())
        line_end = len(prepared) if line_end < 0 else line_end
        pm = rules.promise.search(prepared, m.end(), line_end)
        if pm:
            c0 = max(_clause_start(prepared, pm.start()), m.end())
            add(first, pm.start(), c0, min(_clause_end(prepared, pm.end()), line_end))
    # What happens to our goods (我们的二十台流量计下周五之前发货, 我们的天花要在8月中旬进场安装).
    for m in _OUR_GOODS.finditer(prepared):
        add(first, m.start(), m.start() + 3, _clause_end(prepared, m.end()))
    # A condition the customer sets (这周不补齐就扣货款 → 补齐).
    for m in _THREAT.finditer(prepared):
        first.append((m.start(), original[m.start(1):m.end(1)]))
    first.extend(_completed(original, prepared, rules))
    first.extend(_ticket_visit(original, prepared))
    return first


def _next_clause_body(prepared: str, pos: int, rules: ActionRules) -> tuple[int, int] | None:
    """The clause after the break at ``pos``, without leading dates and fillers, as (start, end)."""
    if pos >= len(prepared) or prepared[pos] not in "，,；;":
        return None
    start = pos + 1
    end = _clause_end(prepared, start)
    lead = rules.lead_strip.match(prepared[start:end])  # anchored at ^, so on the slice
    start += lead.end() if lead else 0
    while start < end and prepared[start].isspace():
        start += 1
    return start, end


def _made_up(prepared: str, start: int, end: int) -> bool:
    while end > start and prepared[end - 1] in "了吧啊呢哈的 ":
        end -= 1
    return _MAKE_UP.fullmatch(prepared, start, end) is not None


def _completed(original: str, prepared: str, rules: ActionRules) -> list[tuple[int, str]]:
    """Bare completion verbs given their object from the clause before: 少发了两个温控模块，今天必须补上
    → 补发两个温控模块; 温控器报警的问题，今天必须解决 → 解决温控器报警的问题."""
    out: list[tuple[int, str]] = []
    if "补" in prepared:
        for m in _SHORTAGE.finditer(prepared):
            end = _clause_end(prepared, m.end())
            body = _next_clause_body(prepared, end, rules)
            if body and _made_up(prepared, *body):
                obj = original[m.start("obj"):end].strip()
                out.append((m.start(), "补发" + obj))
    for m in _TOPIC_AT.finditer(prepared):
        end = m.end()
        body = _next_clause_body(prepared, end, rules)
        if body is None:
            continue
        b0, b1 = body
        while b1 > b0 and prepared[b1 - 1] in "了吧啊呢哈的 ":
            b1 -= 1
        h = _HANDLE.fullmatch(prepared, b0, b1)
        if h is None:
            continue
        c0 = _clause_start(prepared, m.start())
        lead = _TOPIC_LEAD.match(prepared, c0, m.start())
        c0 = max(lead.end() if lead else c0, end - 14)
        topic = original[c0:end].strip()
        if len(topic) >= 3:
            out.append((c0, prepared[h.start("verb"):h.end("verb")] + topic))
    return out


def _ticket_visit(original: str, prepared: str) -> list[tuple[int, str]]:
    """A service ticket's requested on-site date: 上门 + the service (维修 unless the ticket says
    安装/调试/保养…) + the equipment the ticket names (上门维修离心泵; 上门维修 when none is named)."""
    m = _TICKET_VISIT.search(prepared)
    if m is None:
        return []
    kind = "维修"
    sm = _TICKET_SERVICE.search(prepared)
    if sm:
        kind = next((v for v in _SERVICE_VERBS if v in sm.group("kind")), kind)
    em = _TICKET_EQUIPMENT.search(prepared)
    equipment = original[em.start("eq"):em.end("eq")] if em else ""
    return [(m.start(), "上门" + kind + equipment)]


def _asked(original: str, prepared: str, rules: ActionRules) -> list[tuple[int, str]]:
    """Second tier: questions to us (能不能把选型手册发我一份？ 下周能安排演示吗？)."""
    asked: list[tuple[int, str]] = []
    for m in rules.can_you.finditer(prepared):
        ph = _phrase(original, prepared, m.end(), _clause_end(prepared, m.end()), rules)
        if ph:
            asked.append((m.start(), ph))
    return asked


def _hinted(original: str, prepared: str, rules: ActionRules) -> list[tuple[int, str]]:
    """Third tier: subject-less clauses that start with an action, object-first sending clauses,
    the customer asking us over when we agree, a bare 去… plan."""
    fallback: list[tuple[int, str]] = []

    def add(bucket: list[tuple[int, str]], pos: int, start: int, end: int) -> None:
        ph = _phrase(original, prepared, start, end, rules)
        if ph:
            bucket.append((pos, ph))

    # Second tier: a clause with no subject that starts with an action (本周内把方案发过去, 说下周二前报个价),
    # an object-first sending clause (license报价明天之前发他), the customer asking us over, a bare 去… plan.
    said_at = {m.end() for m in _SAID.finditer(prepared)}
    starts = [0] + [m.end() for m in _CLAUSE_END.finditer(prepared)] + list(said_at)
    for pos in sorted(set(starts)):
        end = _clause_end(prepared, pos)
        said = _SAID.search(prepared, pos + 1, end)
        if said:
            end = said.start()
        if end - pos < 2:
            continue
        if not rules.strong_starts.search(prepared, pos, min(end, pos + 14)) and not _SEND_TO_THEM.search(prepared, pos, end):
            continue  # cheap test first: most clauses start with no action at all
        ph = _phrase(original, prepared, pos, end, rules, must_start=True, strong=True, said=pos in said_at)
        if ph and not _BARE_GO.match(to_simplified(ph)):
            fallback.append((pos, ph))
        elif _SEND_TO_THEM.search(prepared, pos, end) and not re.match(r"\s*(?:他|她|客户|对方|我)", prepared[pos:end]):
            add(fallback, pos, pos, end)
    if _AGREE.search(prepared):
        for m in _QUESTION.finditer(prepared):
            fallback.append((m.start(), "去" + original[m.start(1):m.end(1)].strip()))
    if not fallback:
        pos = 0
        while pos < len(prepared):
            end = _clause_end(prepared, pos)
            dm = _LEAD_RE.match(prepared, pos, end)
            body_at = dm.end() if dm else pos
            may = _MAY_GO.search(prepared, pos, end)
            if _BARE_GO.match(prepared, body_at):
                add(fallback, body_at, body_at, end)
            elif may and (not rules.customer_subject.search(prepared, pos, may.start())
                          or _DEMONSTRATIVE.match(prepared, pos)):  # 这个客户可以去接触下: the customer is the topic
                add(fallback, may.end(), may.end(), end)
            pos = end + 1
    return fallback


_TIERS = (_stated, _asked, _hinted)


def extract_next_action(text: str) -> str | None:
    """The first concrete action of our side as a short verb phrase, or None.

    None when only the customer acts, when the customer merely wants something, or when the
    instruction is to the bot itself.
    """
    rules = _ACTIONS.get()
    prepared = prepare(text)
    if _HEADER_LINE.search(prepared):
        prepared = _HEADER_LINE.sub(lambda m: "\n" * len(m.group(0)), prepared)
    chosen: str | None = None
    for tier in _TIERS:
        pool = sorted(tier(text, prepared, rules), key=lambda c: c[0])
        if chosen is None and pool:
            chosen = pool[0][1]
            if len(_bare(chosen)) > 2:
                return chosen
        # A bare 1-2 character verb (补上, 处理) gives way to a fuller phrase, from any tier.
        fuller = [ph for _, ph in pool if len(_bare(ph)) > 2]
        if chosen is not None and fuller:
            return fuller[0]
    return chosen


def _bare(phrase: str) -> str:
    return re.sub(r"[\s\W]", "", phrase)
