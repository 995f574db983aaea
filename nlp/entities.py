"""Who and which organisations a sales message is about: contacts and companies.

Contacts are the named people on the customer side, as ``{"name", "title"}``: a surname with
its title (潘总 → 潘 / 总), a full name with the role written before it or in brackets
(质量部长段红梅, 秦思雨（恒钢采购）), a familiar 老X/小X (title null), a Latin name (Tony). A full
name and a short form of the same person merge into one record with the short form's title
(龙志刚 … 龙总 → 龙志刚 / 总). Our side is left out: the rep (我), colleagues (我们Eric, 售后-谷师傅),
the person the customer addresses as 小X, speakers of an internal sales group, and a named
speaker in a forwarded record who answers the customer and promises our action. A name the
text corrects away (之前写成龙志强) is dropped.

Companies are copied as written: place-prefixed names (宁波恒锂新能源), full legal names,
short names with an industry word (鼎巡智能), names in brackets after a person (恒钢), known
brands (西门子) and named hospitals. Generic descriptions (芜湖那家做卡钳的厂), our own company
(你们迅驰) and corrected-away names are left out.

The word lists are data (``nlp/data/lexicon/people.toml`` and ``companies.toml``), reloaded
when edited. Functions take the text already normalised by ``nlp.normalize`` and the
segments of ``nlp.chat.split_record``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from nlp.lexicon import LexiconFile, as_list, lexicon_path, to_simplified, word_alternation
from nlp.places import _TABLE as _PLACE_TABLE

_CJK = r"\u4e00-\u9fff"
_PUNCT_BOUNDARY = set(" \t\n，,。.：:；;、！!？?（(）)【】[]「」“”\"'—-－|·/")


# Time words that start like a surname + given name (明天工程师到现场 is not a Mr 明天).
_NOT_NAMES = ("明天", "今天", "昨天", "后天", "前天", "每天", "当天", "明年", "今年", "去年", "明早", "明晚", "明日", "今晚",
              "今早", "上午", "下午", "晚上", "早上", "全天", "全年", "全部", "全体", "全厂", "全线", "全套", "周末", "周一",
              "周二", "周三", "周四", "周五", "周六", "周日", "周内", "和他", "和她", "和我", "和你")

class SegmentLike(Protocol):
    """The parts of ``nlp.chat.Segment`` used here (speaker None for plain text)."""

    @property
    def speaker(self) -> str | None: ...

    @property
    def text(self) -> str: ...

    @property
    def start(self) -> int: ...


# ---------------------------------------------------------------- people rules

@dataclass(eq=False)
class PeopleRules:
    """people.toml, compiled."""

    surnames: frozenset[str]
    compounds: frozenset[str]
    attached: re.Pattern[str]
    full_titled: re.Pattern[str]
    role: re.Pattern[str]
    role_latin: re.Pattern[str]
    surname_only: re.Pattern[str]
    intro: re.Pattern[str]
    bracket: re.Pattern[str]
    familiar: re.Pattern[str]
    latin: re.Pattern[str]
    latin_prefix: re.Pattern[str]
    latin_prefix_latin: re.Pattern[str]
    correction: re.Pattern[str]
    line_person: re.Pattern[str]
    line_latin: re.Pattern[str]
    title_end: re.Pattern[str]
    title_at_start: re.Pattern[str]
    title_at_end: re.Pattern[str]
    title_before_surname: re.Pattern[str]
    title_after_sep: re.Pattern[str]
    title_field: re.Pattern[str]
    title_after_surname: re.Pattern[str]
    not_people: frozenset[str]
    not_surname_after: frozenset[str]
    title_continuations: dict[str, str]
    name_stop: frozenset[str]
    not_familiar: tuple[str, ...]
    familiar_followers: frozenset[str]
    vocative_followers: frozenset[str]
    our_prefixes: tuple[str, ...]
    internal_markers: tuple[str, ...]
    promise_markers: tuple[str, ...]
    customer_markers: tuple[str, ...]
    titles: tuple[str, ...]
    latin_names: frozenset[str]
    latin_context: re.Pattern[str]
    latin_not_names: frozenset[str]
    latin_labels: frozenset[str]
    latin_surnames: frozenset[str]
    greetings: tuple[str, ...]
    not_names: tuple[str, ...]
    short_titles: frozenset[str]
    short_followers: frozenset[str]
    hard_stop: frozenset[str]
    ambiguous_roles: frozenset[str]
    address_calls: tuple[str, ...] = ()
    address_followers: tuple[str, ...] = ()
    correction_after: tuple[str, ...] = ()


def _alt(words: Sequence[str]) -> str:
    return word_alternation(list(words))


def _starts(words: Sequence[str]) -> str:
    """A lookahead on the first characters of ``words``.

    ``re`` skips positions that fail a leading character set in C, so a big alternation
    behind it is only tried where one of the words can start (about 8x faster here).
    """
    chars = sorted({w[0] for w in words if w})
    return "(?=[" + "".join(re.escape(c) for c in chars) + "])"


_LATIN_TITLE = (r"(?:[A-Z][A-Za-z]*\.? )?(?:[A-Z][a-z]+ )?(?:Manager|Director|Engineer|Buyer|Purchaser|Officer|President|"
                r"Supervisor|Specialist|Lead|Head|Chief|CEO|CTO|CFO|COO|GM|VP|PM)(?: of [A-Z][A-Za-z ]+)?")


def _build_people(data: dict[str, Any]) -> PeopleRules:
    surnames = frozenset("".join(as_list(data["surnames"]) + as_list(data.get("rare_surnames"))
                                 + as_list(data.get("traditional_surnames"))).replace("\n", ""))
    compounds = frozenset(as_list(data["compound_surnames"]))
    surname_re = f"(?:{_alt(list(compounds))}|[{''.join(sorted(surnames))}])"
    # After 姓 or Mr./Dr. the text says a surname follows, so word-like surnames count there too.
    word_surnames = frozenset("".join(as_list(data.get("word_surnames"))).replace("\n", "")) - surnames
    said_surname_re = f"(?:{_alt(list(compounds))}|[{''.join(sorted(surnames | word_surnames))}])"
    at_surname = _starts(list(surnames) + list(compounds))
    attached_titles = as_list(data["attached_titles"])
    cores = as_list(data.get("role_cores"))
    generated = [d + c for d in as_list(data.get("role_departments")) for c in cores]
    role_titles = as_list(data["role_titles"]) + cores + generated
    depts = _alt(as_list(data.get("role_departments")))
    # 设备采购主管: any run of departments before a core title.
    stacked = f"(?:{depts}){{2,3}}(?:{_alt(cores)})"
    titles_re = f"{stacked}|{_alt(role_titles + attached_titles)}"
    latin_names = as_list(data["latin_names"])
    given = f"[{_CJK}]{{0,2}}"
    latin_roles = as_list(data.get("latin_role_titles"))
    prefix_titles = as_list(data["latin_prefix_titles"])
    attached_re = _alt(attached_titles + cores + generated + as_list(data.get("short_titles")))
    roles_re = _alt(role_titles + latin_roles)
    role_starts = _starts(role_titles + latin_roles + as_list(data.get("role_departments")))
    sep = r"[ \u3000]*(?:[｜|·•/,，]|\s)[ \u3000]*"
    return PeopleRules(
        surnames=surnames,
        compounds=compounds,
        attached=re.compile(f"{at_surname}(?P<s>{surname_re})(?P<t>{attached_re})"),
        full_titled=re.compile(
            f"{at_surname}(?P<s>{surname_re})(?P<g>[{_CJK}]{{1,2}}?)(?P<t>{_alt(attached_titles + cores)})"),
        # 代理：佘建华 / 采购 · 汪东: a labelled field or a card's dotted line puts a separator between.
        role=re.compile(f"{role_starts}(?P<t>{stacked}|{roles_re})(?:[ \u3000]*[:：·•｜|][ \u3000]*|[ \u3000]?|(?P<j>叫|名叫|是|的))"
                        f"(?P<f>[老小])?(?P<s>{surname_re})(?P<g>{given})"),
        role_latin=re.compile(f"{_starts(role_titles + latin_roles)}(?P<t>{roles_re})[ \u3000]?[:：]?[ \u3000]?"
                              r"(?P<n>[A-Z][a-z]{1,11})(?![A-Za-z])"),
        surname_only=re.compile(
            f"(?:(?P<t>{_alt(role_titles)}))?姓(?P<s>{said_surname_re})(?:的(?:那个|那位|这个|这位)?(?P<t2>{_alt(role_titles)}))?"),
        title_end=re.compile(f"(?:{titles_re})$"),
        intro=re.compile(f"(?:{_alt(as_list(data['name_intros']))})[ \u3000:：\n]*(?:是)?(?:[{_CJK}]{{2,6}}?的)?"),
        bracket=re.compile(r"[（(](?P<b>[^（()）\n]{1,24})[）)]"),
        familiar=re.compile(f"(?P<f>[老小])(?P<s>{surname_re})"),
        latin=re.compile(r"(?<![A-Za-z])(?P<n>[A-Z][a-z]{1,11})(?: (?P<l>[A-Z][a-z]{1,9}))?(?![A-Za-z])"),
        latin_prefix=re.compile(f"{_starts(prefix_titles)}(?P<t>{_alt(prefix_titles)})[ \u3000]*(?P<s>{said_surname_re})"),
        latin_prefix_latin=re.compile(f"(?P<t>{_alt(prefix_titles)})[ ]?(?P<n>[A-Z][a-z]{{1,11}})(?![A-Za-z])"),
        correction=re.compile(f"(?:{_alt(as_list(data['correction_markers']))})(?P<n>[{_CJK}A-Za-z]{{2,12}})"),
        line_person=re.compile(f"(?m)^[ \u3000]*(?:[A-Z][a-z]+(?: [A-Z][a-z]+)?[ \u3000]+)?"
                               f"(?P<s>{surname_re})(?P<g>[{_CJK}]{{1,2}})"
                               f"(?:{sep}(?:[A-Z][a-z]+(?: [A-Z][a-z]+)?|(?P<t>{titles_re}|{_LATIN_TITLE})))*[ \u3000]*$"),
        line_latin=re.compile(r"(?m)^[ \u3000]*(?P<n>[A-Z][a-z]{1,11} [A-Z][a-z]{1,11})[ \u3000]*$"),
        title_at_start=re.compile(f"^[ \u3000]*(?P<t>{_LATIN_TITLE}|{titles_re})[ \u3000]*[,，｜|·]"),
        # Contact: 邢国庆 / QA manager / 0411-…: a title after a slash or bar on the same line.
        title_after_sep=re.compile(f"[ \u3000]*[/｜|·•][ \u3000]*(?P<t>{_LATIN_TITLE}|{titles_re})(?=[ \u3000]*(?:[/｜|·•,，;；\n]|$))"),
        # 职位：采购专员 / Title: 设备主管: a card's title field, the name being on another line.
        title_field=re.compile(f"(?m)(?:^|(?<=[ \u3000，,；;]))(?:{_alt(as_list(data.get('title_labels')))})[ \u3000]*[:：][ \u3000]*"
                               f"(?P<t>{_LATIN_TITLE}|{titles_re})[ \u3000]*(?=$|[,，;；/｜|])"),
        # 女处长，姓闫 / 来的是个科长，姓贲: the title closes the clause before 姓.
        title_before_surname=re.compile(f"(?P<t>{titles_re})[，, ]?(?:他|她|此人)?$"),
        # 姓乔，是个主任 / 姓伍，是采购经理: the title is said right after.
        title_after_surname=re.compile(f"[，, ]?(?:他|她)?(?:是|当|任)(?:个|位|一个|一位|一名|名)?(?P<t>{titles_re})"),
        title_at_end=re.compile(f"(?:[ \u3000]|[｜|·•,，])[ \u3000]*(?P<t>{_LATIN_TITLE}|{titles_re})[ \u3000]*$"),
        not_people=frozenset(as_list(data["not_people"])),
        not_surname_after=frozenset(as_list(data["not_surname_after"])),
        title_continuations={k: str(v) for k, v in data.get("title_continuations", {}).items()},
        name_stop=frozenset(str(data["name_stop_chars"])),
        not_familiar=tuple(as_list(data["not_familiar"])),
        familiar_followers=frozenset(str(data["familiar_followers"])),
        vocative_followers=frozenset(str(data["vocative_followers"])),
        our_prefixes=tuple(sorted(as_list(data["our_side_prefixes"]), key=len, reverse=True)),
        internal_markers=tuple(as_list(data["internal_group_markers"])),
        promise_markers=tuple(as_list(data["promise_markers"])),
        customer_markers=tuple(as_list(data["customer_markers"])),
        titles=tuple(sorted(set(attached_titles) | set(role_titles), key=len, reverse=True)),
        latin_names=frozenset(latin_names),
        latin_context=re.compile(r"(?<![A-Za-z])(?P<n>[A-Z][a-z]{2,11})(?![A-Za-z])[ ]?(?="
                                 f"{_alt(as_list(data.get('latin_name_followers')))})"),
        latin_not_names=frozenset(as_list(data.get("latin_not_names"))),
        latin_labels=frozenset(as_list(data.get("latin_labels"))),
        latin_surnames=frozenset(as_list(data.get("latin_surnames"))),
        greetings=tuple(as_list(data.get("greetings"))),
        not_names=_NOT_NAMES + tuple(as_list(data.get("not_names"))),
        hard_stop=frozenset(str(data.get("name_hard_stop_chars", ""))),
        short_titles=frozenset(as_list(data.get("short_titles"))),
        short_followers=frozenset(str(data.get("short_title_followers", ""))),
        ambiguous_roles=frozenset(as_list(data.get("ambiguous_roles"))),
        address_calls=tuple(as_list(data.get("address_calls"))),
        address_followers=tuple(as_list(data.get("address_followers"))),
        correction_after=tuple(as_list(data.get("correction_after_markers"))),
    )


_PEOPLE: LexiconFile[PeopleRules] = LexiconFile(lexicon_path("people"), _build_people)


_LEFT_WORDS = ("与", "和", "跟", "是", "给", "找", "被", "及", "单位", "客户", "对接")
# Regex form of _is_boundary, so that finditer only tries names that start at a boundary.
_BOUNDARY_RE = "(?:^|(?<=[^\u4e00-\u9fff])|" + "|".join(f"(?<={w})" for w in _LEFT_WORDS) + ")"
# After 的 as well: 呼和浩特的蒙源乳业, 做小家电的卓越电器.
_BOUNDARY_DE_RE = _BOUNDARY_RE[:-1] + "|(?<=的))"
# …and, for a name with a strong suffix, after 这家/那家 (这家鸿泰塑胶; 那家食品厂 stays a description).
_BOUNDARY_DEMO_RE = _BOUNDARY_RE[:-1] + "|(?<=的)|(?<=这家)|(?<=那家))"

# ---------------------------------------------------------------- company rules

@dataclass
class CompanyRules:
    """companies.toml, compiled."""

    brands: re.Pattern[str]
    placed: re.Pattern[str]
    legal: re.Pattern[str]
    standalone: re.Pattern[str]
    described: re.Pattern[str]
    any_legal: re.Pattern[str]
    generic_parts: re.Pattern[str]
    any_standalone: re.Pattern[str]
    strip_tail: re.Pattern[str]
    generic: frozenset[str]
    not_in_name: frozenset[str]
    departments: tuple[str, ...]
    legal_suffixes: tuple[str, ...]
    context_brands: re.Pattern[str]
    short_name: re.Pattern[str]
    not_short_names: frozenset[str]
    called: re.Pattern[str]
    latin_customer: re.Pattern[str]
    labelled: re.Pattern[str]
    institute: re.Pattern[str]


def _build_companies(data: dict[str, Any]) -> CompanyRules:
    not_in_name = str(data["not_in_name"])
    namech = f"[{_CJK}](?<![{re.escape(not_in_name)}])"
    placed_ch = f"[{_CJK}](?<![{re.escape(str(data.get('not_in_placed_name', not_in_name)))}])"
    legal = _alt(as_list(data["legal_suffixes"]))
    suffix = _alt(as_list(data["name_suffixes"]))
    standalone = _alt(as_list(data["standalone_suffixes"]))
    place_names = [n for n, p in _PLACE_TABLE.names.items() if p is not None and len(n) >= 2]
    places = _alt(place_names)
    # A department word right after the name is not part of it (青岛海岳石化仪表科 → 青岛海岳石化).
    # …but 设备处/设备科 is the customer's department after the name (兰州陇石化工设备处).
    not_dept = r"(?![科部处室组园]|基地|产业|行业|企业|项目|工程|设备(?![处科部室])|系统|装置|车间|手|臂)"
    district = f"(?:[{_CJK}]{{1,3}}?[区县镇旗])?"
    brands = as_list(data["brands"])
    latin_brands = [b for b in brands if re.fullmatch(r"[A-Za-z+&]+", b)]
    cjk_brands = [b for b in brands if b not in latin_brands]
    brand_re = f"{_starts(cjk_brands)}(?:{_alt(cjk_brands)})"
    if latin_brands:
        brand_re += f"|(?<![A-Za-z])(?:{_alt(latin_brands)})(?![A-Za-z])"
    return CompanyRules(
        brands=re.compile(brand_re),
        # Tried only right after a place name found by the places table (宁波|恒锂新能源, 佛山|顺德美瑞家电).
        placed=re.compile(
            f"(?:{places})?{district}(?:{placed_ch}){{2,5}}?(?:(?:(?:{suffix}){not_dept})+(?:(?:{placed_ch}){{0,8}}?(?:{legal}))?|(?:{legal}))"),
        legal=re.compile(f"{_BOUNDARY_DE_RE}(?:{placed_ch}){{2,10}}?(?:(?:{suffix}))*(?:{legal})"),
        standalone=re.compile(f"{_BOUNDARY_DEMO_RE}(?P<n>(?:{namech}){{2}})(?:(?:{standalone}){not_dept})+(?:{legal})?"
                              f"(?=[^{_CJK}]|$|[的那这说在是和与跟也都已有要今明昨上下去来刚给把对向（(正确同决准计打签定订采付回反表称才又还最想约催问找让讲报送发买用换提能会很不没先前后再就]|公司|集团|方面|这边|那边)"),
        # 冀东装备（做起重机的）: a name followed by a bracket that says what the company makes.
        described=re.compile(f"{_BOUNDARY_DE_RE}(?P<n>(?:{namech}){{2,8}})(?=[（(](?:做|生产|专做|主营|是)[^（()）]{{1,16}}[）)])"),
        any_legal=re.compile(legal),
        generic_parts=re.compile(_alt(as_list(data.get("generic_parts")))),
        any_standalone=re.compile(standalone),
        strip_tail=re.compile(f"(?:{suffix}|{legal})+$"),
        generic=frozenset(as_list(data["generic_names"])),
        not_in_name=frozenset(not_in_name),
        departments=tuple(sorted(as_list(data["department_words"]), key=len, reverse=True)),
        legal_suffixes=tuple(as_list(data["legal_suffixes"])),
        # 卖给美的的, 跟美的那边: ambiguous brands need a business word on either side.
        context_brands=re.compile(
            f"(?:(?<=[跟和与是])|(?<=卖给)|(?<=发给)|(?<=客户)|(?<=供货)|(?<=合作))(?P<n>{_alt(as_list(data.get('context_brands')))})"
            f"|(?P<n2>{_alt(as_list(data.get('context_brands')))})(?=那边|这边|方面|集团|公司|的(?:采购|设备|工厂|项目|人|订单|单子))"),
        # 蓝科那边, 华锐精机这边: a short name right before 那边/这边/方面, at a boundary.
        short_name=re.compile(f"{_BOUNDARY_RE}(?P<n>(?:{namech}){{2,4}}|[A-Z][A-Za-z&]{{1,15}})"
                              f"(?={_alt(as_list(data.get('short_name_followers')))})"),
        not_short_names=frozenset(as_list(data.get("not_short_names"))),
        # 那家叫宏达的供应商 / 一家叫鼎盛的公司.
        called=re.compile(f"叫(?:做)?(?P<n>(?:{namech}){{2,6}}|[A-Z][A-Za-z&]{{1,15}})的?(?={_alt(as_list(data.get('org_nouns')))})"),
        # 客户：Foxconn / 客户是 Flex: a Latin name given as the customer.
        latin_customer=re.compile(r"(?:客户|公司|单位)(?:是|[:：])[ \u3000]*(?P<n>[A-Z][A-Za-z&]{2,15})(?![A-Za-z])"),
        # 中车株洲所, 中铁十四局, 中船七〇二所: a group's institute, bureau or branch is one name.
        institute=re.compile(f"{brand_re.split('|(?<![A-Za-z])')[0]}(?P<x>[{_CJK}〇0-9]{{1,4}}?)"
                             f"(?:研究所|研究院|设计院|分公司|分院|所|院|局)(?![有以谓属长])"),
        # 单位：鑫泰 / Account: 大连海鸿船舶工程有限公司: the whole value of a labelled field.
        labelled=re.compile(f"(?m)(?:^|(?<=[ \u3000，,；;·|｜]))(?:{_alt(as_list(data.get('company_labels')))})[ \u3000]*[:：][ \u3000]*"
                            f"(?P<n>[{_CJK}A-Za-z0-9&（）()·]{{2,30}}?)(?=[ \u3000]*(?:$|[\n（(·•/｜|,，;；。]))"),
    )


_COMPANIES: LexiconFile[CompanyRules] = LexiconFile(lexicon_path("companies"), _build_companies)


# ---------------------------------------------------------------- shared helpers

# What may follow a full name written after its role (厂长袁建华吐槽, 代理侯振东刚透露).
_AFTER_NAME = frozenset(" \t\n，,。.：:；;、！!？?（(）)说讲反表透称也就在的和与跟刚吐觉还已让叫要来去又都把对给问打回今明昨下上这那他她是发想同话人")
_OUR_COMPANY_PREFIXES = ("你们", "我们", "我司", "贵司", "咱们", "本公司", "我们的", "你们的")


def _is_boundary(text: str, pos: int) -> bool:
    """True when a name may start at ``pos`` (start, punctuation, space, Latin or a joining word)."""
    if pos == 0:
        return True
    prev = text[pos - 1]
    if prev in _PUNCT_BOUNDARY or not ("\u4e00" <= prev <= "\u9fff"):
        return True
    head = text[max(0, pos - 4):pos]
    return head.endswith(_LEFT_WORDS)


def _corrected_away(text: str, rules: PeopleRules) -> set[str]:
    """Names the text says were written wrongly (之前群里写成龙志强了 → {龙志强})."""
    out: set[str] = set()
    for m in rules.correction.finditer(text):
        name = re.split(r"[了的啦是，,。]", m.group("n"))[0]
        for cut in range(len(name), 1, -1):
            out.add(name[:cut])
    return out


# ---------------------------------------------------------------- contacts

@dataclass
class _Mention:
    pos: int
    name: str
    title: str | None
    ours: bool = False
    key: str = ""


@dataclass
class _Speakers:
    ours: set[str] = field(default_factory=set)
    mentions: list[_Mention] = field(default_factory=list)
    companies: list[tuple[int, str]] = field(default_factory=list)


def _surname_key(name: str, rules: PeopleRules) -> str:
    simp = to_simplified(name)
    if re.match(f"[{_CJK}]", simp):
        return simp[:2] if simp[:2] in rules.compounds else simp[:1]
    return name.lower()


def _given_name(simp: str, at: int, rules: PeopleRules) -> str:
    """Up to two given-name characters at ``at``, stopping before verbs, particles and titles.

    A title or time character may end a given name when a clear name end follows (侯文博说, 聂刚说).
    """
    for n in (2, 1):
        g = simp[at:at + n]
        if len(g) == n and all("\u4e00" <= ch <= "\u9fff" and ch not in rules.hard_stop for ch in g):
            nxt = simp[at + n:at + n + 1]
            if (nxt == "" or nxt in _AFTER_NAME or nxt in rules.hard_stop) and any(ch in rules.name_stop for ch in g):
                return g
    out = ""
    for ch in simp[at:at + 2]:
        if not ("\u4e00" <= ch <= "\u9fff") or ch in rules.name_stop:
            break
        out += ch
    return out


def _title_in(fragment: str, rules: PeopleRules) -> str | None:
    """The title a bracket or line ends with (邯郸那家农机厂的采购经理 → 采购经理)."""
    frag = to_simplified(fragment.strip())
    for m in (rules.title_end.search(frag),):
        if m is None:
            break
        t = m.group(0)
        if len(frag) == len(t) or not t.isascii() or " " in t or not frag[-len(t) - 1].isalpha():
            return fragment.strip()[-len(t):]
    if re.fullmatch(r"[A-Za-z][A-Za-z .&/]{1,30}", frag) and re.search(
            r"(?i)manager|engineer|director|buyer|purchas|officer|head|lead|chief|sales|QA|QC", frag):
        return fragment.strip()
    return None


def _bracket_company(fragment: str, crules: CompanyRules, rules: PeopleRules) -> str | None:
    """The organisation named in a bracket after a person (恒钢采购 → 恒钢, 精创模具 → 精创模具)."""
    frag = fragment.strip()
    simp = to_simplified(frag)
    title = _title_in(frag, rules)
    if title is not None:
        if len(title) == len(frag):
            return None
        frag, simp = frag[: -len(title)].rstrip("的 "), simp[: -len(title)].rstrip("的 ")
    for dept in crules.departments:
        if simp.endswith(dept) and len(simp) - len(dept) >= 2:
            frag, simp = frag[: -len(dept)], simp[: -len(dept)]
            break
    if not re.fullmatch(f"[{_CJK}A-Za-z0-9]{{2,12}}", simp):
        return None
    if any(ch in crules.not_in_name for ch in simp) or simp in crules.generic:
        return None
    return frag


def _ours_before(simp: str, pos: int, rules: PeopleRules) -> bool:
    head = simp[max(0, pos - 6):pos].rstrip(" ")
    return head.endswith(rules.our_prefixes)


def _attached_ok(simp: str, s: str, t: str, start: int, end: int, rules: PeopleRules) -> bool:
    if s + t in rules.not_people or simp[start:start + len(s) + len(t) + 1] in rules.not_people:
        return False
    if start > 0 and simp[start - 1] in rules.not_surname_after and len(s) == 1:
        return False
    if start > 0 and simp.startswith(rules.not_names, start - 1):
        return False  # 安全主管 is a safety supervisor, not a Mr 全
    if s in "和与及跟同" and len(t) >= 3:
        return False  # 总经理芮东和财务总监章慧: 和 joins two people
    nxt = simp[end:end + 1]
    if t in rules.short_titles and not (nxt == "" or nxt in rules.short_followers):
        return False  # 王处说 is 王处长; 何处, 全局的 are words
    if t in rules.short_titles and not _is_boundary(simp, start) and simp[start - 1] not in "的和跟找问给与及同":
        return False  # 环保局, 公安局, 医保局: the end of an office's name, not a Mr 保 the bureau chief
    cont = rules.title_continuations.get(t, "") if len(t) == 1 else ""
    if nxt and nxt in cont:
        return False
    if t.isascii() and nxt.isascii() and nxt.isalpha():
        return False
    if t == "生":
        # Cantonese 黎生 ("Mr Li"): only before speech or time words or after 嘅/的, never inside 先生/学生.
        prev = simp[start - 1:start]
        if not (nxt in ("话", "讲", "说", "佢", "哋", "琴", "今", "听", "寻", "尋", "，", ",", "")
                or prev in ("嘅", "的", "问", "同", "系", "", "，", ",", " ", "\n")):
            return False
    if t in ("哥", "姐") and start > 0 and simp[start - 1] in "大小帅美老":
        return False
    return True


def _latin_ok(name: str, rules: PeopleRules) -> bool:
    first = name.split(" ")[0]
    return first not in rules.latin_labels and name not in rules.latin_labels


def _speaker_person(spk: str, rules: PeopleRules, crules: CompanyRules) -> tuple[str, str | None, str | None] | None:
    """(name, title, company) of a chat speaker label such as 田工（恒钢设备部）, 曾少华, Tony."""
    spk = spk.strip()
    company = None
    title: str | None = None
    bm = rules.bracket.search(spk)
    if bm:
        company = _bracket_company(bm.group("b"), crules, rules)
        title = _title_in(bm.group("b"), rules)
        spk = spk[: bm.start()].strip()
    if re.fullmatch(r"[A-Z][a-z]{1,11}(?: [A-Z][a-z]{1,11})?", spk):
        return (spk, title, company) if _latin_ok(spk, rules) else None
    simp = to_simplified(spk)
    m = rules.attached.fullmatch(simp)
    if m:
        return spk[: len(m.group("s"))], spk[len(m.group("s")):], company
    if re.fullmatch(f"[{_CJK}]{{2,4}}", simp):
        key = simp[:2] if simp[:2] in rules.compounds else simp[:1]
        if key in rules.compounds or key in rules.surnames:
            return spk, title, company
    return None


def _speaker_sides(text: str, segments: Sequence[SegmentLike], rules: PeopleRules,
                   crules: CompanyRules) -> _Speakers:
    """Decide for each named speaker of a forwarded record whether they are the customer or us."""
    out = _Speakers()
    named = [s for s in segments if s.speaker]
    if not named:
        return out
    header = to_simplified(text[: min(s.start for s in named)])
    internal = any(mk in header for mk in rules.internal_markers)
    lines: dict[str, list[SegmentLike]] = {}
    for seg in named:
        lines.setdefault(seg.speaker.strip(), []).append(seg)  # type: ignore[union-attr]
    people = {spk: _speaker_person(spk, rules, crules) for spk in lines}
    others = [spk for spk in lines if not (spk in ("我", "me", "Me") or spk.startswith("我"))]
    for i, spk in enumerate(others):
        segs = lines[spk]
        person = people[spk]
        said = to_simplified("\n".join(s.text for s in segs))
        ours = internal
        if not ours and i > 0 and not any(mk in said for mk in rules.customer_markers):
            # A later speaker who promises our action, or who greets another speaker by name
            # (朱蕾: 武经理，价格我再申请一下), answers the customer for us.
            ours = any(mk in said for mk in rules.promise_markers)
            for other in others[:i]:
                op = people[other]
                if op is None:
                    continue
                key = _surname_key(op[0], rules)
                first_line = to_simplified(segs[0].text).lstrip()
                if first_line.startswith(to_simplified(op[0])) or (
                        first_line.startswith(key) and rules.attached.match(first_line)):
                    ours = True
        if person is None:
            continue
        name, title, company = person
        if ours:
            out.ours.add(name)
            continue
        out.mentions.append(_Mention(segs[0].start, name, title, key=_surname_key(name, rules)))
        if company:
            out.companies.append((segs[0].start, company))
    return out


def _familiar_ok(simp: str, at: int, surname: str, rules: PeopleRules) -> bool:
    """小麦就行 / 老阚就打来电话 are people; 小时, 两小时, 小于 are not."""
    for w in rules.not_familiar:
        if simp.startswith(w, at):
            return False
    if at > 0 and simp[at - 1] in "一二两三四五六七八九十半几多每数0123456789个":
        return False
    nxt = simp[at + 1 + len(surname):at + 2 + len(surname)]
    return nxt == "" or nxt in rules.familiar_followers


def _line_title(simp: str, text: str, line_end: int, rules: PeopleRules, with_next: bool = True) -> str | None:
    """A card's title on the next line: 新疆天钰光伏硅材料有限公司｜设备采购主管, Sales Director, 厦门…"""
    if simp[line_end:line_end + 1] != "\n":
        return None
    nl = simp.find("\n", line_end + 1)
    nl = len(simp) if nl < 0 else nl
    line = simp[line_end + 1:nl]
    for pat in (rules.title_at_start, rules.title_at_end):
        m = pat.search(line)
        if m:
            return text[line_end + 1 + m.start("t"):line_end + 1 + m.end("t")]
    if with_next and (_COMPANIES.get().any_legal.search(line) or not line.strip()):
        # 孙丽华 / 青岛海联重工机械有限公司 / 采购经理: the title on its own line below the company.
        nl2 = simp.find("\n", nl + 1)
        nl2 = len(simp) if nl2 < 0 else nl2
        below = simp[nl + 1:nl2].strip(" \u3000")
        if nl < len(simp) and rules.title_end.fullmatch(below):
            at = simp.index(below, nl + 1)
            return text[at:at + len(below)]
        return _line_title(simp, text, nl, rules, with_next=False) if nl < len(simp) else None
    return None


def _title_near_surname(simp: str, text: str, at: int, end: int, rules: PeopleRules) -> str | None:
    """The title said next to 姓X: after it (负责人姓乔，是个主任 → 主任) or closing the clause before it
    (女处长，姓闫 → 处长). The explicit one after wins over a generic role before 姓."""
    am = rules.title_after_surname.match(simp, end)
    if am:
        return text[am.start("t"):am.end("t")]
    head_at = max(0, at - 8)
    bm = rules.title_before_surname.search(simp[head_at:at])
    if bm:
        t0 = head_at + bm.start("t")
        # 李经理，姓贲的…: a title that already belongs to a surname before it is someone else's.
        if t0 > 0 and (simp[t0 - 1] in rules.surnames or simp[t0 - 1] in "姓"):
            return None
        return text[t0:head_at + bm.end("t")]
    return None


_LAST_SCAN: dict[tuple[str, int, int], tuple[list[_Mention], list[tuple[int, str]]]] = {}


def _scan_people(text: str, rules: PeopleRules, crules: CompanyRules) -> tuple[list[_Mention], list[tuple[int, str]]]:
    """Every person mention in the text (memoised for the last message: contacts and companies share it)."""
    key = (text, id(rules), id(crules))
    hit = _LAST_SCAN.get(key)
    if hit is None:
        hit = _scan_people_uncached(text, rules, crules)
        _LAST_SCAN.clear()
        _LAST_SCAN[key] = hit
    return list(hit[0]), list(hit[1])


def _scan_people_uncached(text: str, rules: PeopleRules, crules: CompanyRules) -> tuple[list[_Mention], list[tuple[int, str]]]:
    """Every person mention in the text, with its position; plus companies seen in brackets.

    Matching runs on the simplified text; names and titles are copied from ``text`` as written.
    """
    simp = to_simplified(text)
    mentions: list[_Mention] = []
    companies: list[tuple[int, str]] = []
    taken = bytearray(len(text) + 1)  # 1 where a mention already sits

    def free(a: int, b: int) -> bool:
        return not any(taken[a:b])

    def add(pos: int, end: int, name_at: tuple[int, int], title: str | None, ours_at: int | None = None,
            name: str | None = None) -> None:
        nm = name if name is not None else text[name_at[0]:name_at[1]]
        ours = _ours_before(simp, pos if ours_at is None else ours_at, rules)
        mentions.append(_Mention(pos, nm, title, ours, _surname_key(nm, rules)))
        taken[pos:end] = b"\x01" * (end - pos)

    def bracket_after(end: int, surname: str | None = None) -> tuple[str | None, int]:
        bm = rules.bracket.match(text, end)
        if not bm:
            return None, end
        frag = bm.group("b")
        fs = to_simplified(frag.strip())
        if surname and fs.startswith(surname) and 1 <= len(fs) - len(surname) <= 2 and \
                re.fullmatch(f"[{_CJK}]+", fs) and not _title_in(fs, rules):
            # 丁总（丁建华）: the bracket spells out the person's full name.
            at = bm.start("b") + len(frag) - len(frag.lstrip())
            mentions.append(_Mention(at, text[at:at + len(fs)], None, False, _surname_key(fs, rules)))
            return None, bm.end()
        comp = _bracket_company(frag, crules, rules)
        if comp:
            companies.append((bm.start() + 1, comp))
        return _title_in(frag, rules), bm.end()

    def full_name_at(at: int) -> tuple[int, int] | None:
        s = simp[at:at + 2] if simp[at:at + 2] in rules.compounds else simp[at:at + 1]
        if s not in rules.surnames and s not in rules.compounds:
            return None
        g = _given_name(simp, at + len(s), rules)
        if not g and simp[at + len(s):at + len(s) + 1] in rules.name_stop and \
                simp[at + len(s) + 1:at + len(s) + 2] in ("说", "讲", "称", "表"):
            g = simp[at + len(s)]  # 聂刚说, 黎明说: a one-character given name that is also a word
        if not g or simp.startswith(rules.not_names, at):
            return None
        return (at, at + len(s) + len(g))

    # Dr. 梁, Mr. Tan
    for m in rules.latin_prefix.finditer(simp):
        add(m.start(), m.end(), m.span("s"), text[m.start("t"):m.end("t")])
    for m in rules.latin_prefix_latin.finditer(simp):
        if free(m.start(), m.end()):
            add(m.start(), m.end(), m.span("n"), text[m.start("t"):m.end("t")])

    # Card and signature lines: 钱卫东｜副院长, 彭雨桐 采购经理, 祁连山 Qi Lianshan, Jason Xu.
    for m in rules.line_person.finditer(simp):
        if not free(m.start(), m.end()):
            continue
        name_p = simp[m.start("s"):m.end("g")]
        if rules.attached.fullmatch(name_p) or any(ch in rules.hard_stop for ch in m.group("g")) \
                or name_p.startswith(rules.not_names):
            continue  # 潘总 on its own line is a surname and title, not a full name
        title = text[m.start("t"):m.end("t")] if m.group("t") else _line_title(simp, text, m.end(), rules)
        add(m.start(), m.end(), (m.start("s"), m.end("g")), title)
    for m in rules.line_latin.finditer(simp):
        name = m.group("n")
        if name.split(" ")[1] in rules.latin_surnames and _latin_ok(name, rules) and free(m.start("n"), m.end()):
            add(m.start("n"), m.end(), m.span("n"), _line_title(simp, text, m.end(), rules))

    # Role + name: 质量部长段红梅, 代理侯振东, 设备经理老阚, 采购专员 阮冬梅, 新董事长叫戚建国, 采购的汪莉.
    for m in rules.role.finditer(simp):
        s_at, s = m.start("s"), m.group("s")
        if not free(m.start(), s_at + len(s)) or (s in "和与及跟同" and not m.group("j")):
            continue  # 魏处长和滕工: 和 joins two people here
        before = rules.attached.match(simp, max(0, m.start() - 2)) or rules.attached.match(simp, max(0, m.start() - 1))
        if before and before.end() == m.end("t") and _attached_ok(
                simp, before.group("s"), before.group("t"), before.start(), before.end(), rules):
            continue  # the role belongs to the surname before it (魏处长…), not to a name after it
        title = text[m.start("t"):m.end("t")]
        if m.group("f"):
            if m.group("j") or any(simp.startswith(w, m.start("f")) for w in rules.not_familiar):
                continue
            add(m.start(), s_at + len(s), (s_at, s_at + len(s)), title)
            continue
        span = full_name_at(s_at)
        am = rules.attached.match(simp, s_at)
        if am and _attached_ok(simp, am.group("s"), am.group("t"), am.start(), am.end(), rules) and (
                span is None or span[1] <= am.end()):
            continue  # 经理郝经理 / 设备部的纳主任: the attached form is handled below
        if span is None:
            continue
        after = simp[span[1]:span[1] + 1]
        if m.group("t") in rules.ambiguous_roles and not (after == "" or after in _AFTER_NAME or after in rules.surnames):
            continue  # 采购计划定了 is not a buyer called 计划定
        if m.group("j") == "的" and not re.match(r"[，,。\s说讲反表透称]|$", after):
            continue  # 采购的汪莉说 yes; 经理的电话 no
        add(m.start(), span[1], span, title)
    for m in rules.role_latin.finditer(simp):
        if free(m.start(), m.end()) and _latin_ok(m.group("n"), rules):
            end = m.end()
            surname_m = re.match(r" ([A-Z][a-z]{1,9})(?![A-Za-z])", simp[end:end + 11])
            if surname_m and surname_m.group(1) in rules.latin_surnames:
                end += surname_m.end()  # PM: Kevin Zhang
            add(m.start(), end, (m.start("n"), end), text[m.start("t"):m.end("t")])

    # Introduced full names: 对接人皇甫静, 全名邱雅婷, From: 聂文涛, 寄件者：Raymond Chan.
    for m in rules.intro.finditer(simp):
        at = m.end()
        am = rules.attached.match(simp, at)
        if am and _attached_ok(simp, am.group("s"), am.group("t"), am.start(), am.end(), rules):
            continue
        lm = rules.latin.match(simp, at)
        if lm:
            end = lm.end() if (lm.group("l") is None or lm.group("l") in rules.latin_surnames
                               or simp[lm.end():lm.end() + 1] in ("\n", "")) else lm.end("n")
            if free(at, end) and _latin_ok(lm.group("n"), rules):
                add(at, end, (at, end), None, ours_at=m.start())
            continue
        span = full_name_at(at)
        if span is None or not free(*span):
            continue
        title, _ = bracket_after(span[1])
        if title is None:
            line_end = simp.find("\n", span[1])
            if line_end == span[1]:
                title = _line_title(simp, text, line_end, rules)
        if title is None:
            sm = rules.title_after_sep.match(simp, span[1])
            if sm:
                title = text[sm.start("t"):sm.end("t")]
        add(at, span[1], span, title, ours_at=m.start())

    # Full name + title: 设备科的和志强科长, 机电科的白云飞科长.
    for m in rules.full_titled.finditer(simp):
        if not free(m.start(), m.end()) or not _is_boundary(simp, m.start()) and simp[m.start() - 1] not in "的、和" \
                and not (simp[m.start() - 1] in "部科处室组" and len(m.group("g")) >= 1):  # 采购部张伟经理
            continue
        g = m.group("g")
        if len(m.group("t")) < 2 or any(ch in rules.name_stop for ch in g) or simp.startswith(rules.not_names, m.start()):
            continue
        if not _attached_ok(simp, m.group("s"), m.group("t"), m.start(), m.end(), rules):
            continue
        add(m.start(), m.end(), (m.start(), m.start("t")), text[m.start("t"):m.end("t")])

    # Surname + title: 潘总, 诸葛董, 卓sir, 黎生, 鄭主任.
    for m in rules.attached.finditer(simp):
        if not free(m.start(), m.end()):
            continue
        if not _attached_ok(simp, m.group("s"), m.group("t"), m.start(), m.end(), rules):
            continue
        title, _ = bracket_after(m.end(), m.group("s"))
        add(m.start(), m.end(), m.span("s"), text[m.start("t"):m.end("t")])

    # 他们老板姓鲍 → 鲍 / 老板.
    for m in (rules.surname_only.finditer(simp) if "姓" in simp else ()):
        if free(m.start("s"), m.end()):
            grp = "t" if m.group("t") else ("t2" if m.group("t2") else None)
            title = text[m.start(grp):m.end(grp)] if grp else None
            if grp != "t2":
                title = _title_near_surname(simp, text, m.start(), m.end(), rules) or title
            add(m.start(), m.end(), m.span("s"), title)

    # Full name + bracket: 房立新（邯郸那家农机厂的采购经理）, 秦思雨（恒钢采购）.
    for bm in rules.bracket.finditer(simp):
        b0 = bm.start()
        nm = re.search(f"([{_CJK}]{{2,4}})$", simp[max(0, b0 - 4):b0])
        if nm:
            cand = nm.group(1)
            start = b0 - len(cand)
            # The shortest plausible name that ends at the bracket and starts at a boundary.
            for cut in range(len(cand) - 2, -1, -1):
                st = start + cut
                if _is_boundary(simp, st) or simp[st - 1] in "的、":
                    span = full_name_at(st)
                    if span and span[1] == b0 and free(st, b0):
                        title = _title_in(bm.group("b"), rules)
                        comp = _bracket_company(bm.group("b"), crules, rules)
                        if title is not None or comp is not None:
                            if comp:
                                companies.append((b0 + 1, comp))
                            add(st, b0, span, title)
                    break
            continue
        lm = re.search(r"([A-Z][a-z]{1,11})[ ]?$", simp[max(0, b0 - 13):b0])
        if lm and free(b0 - len(lm.group(0)), b0) and _latin_ok(lm.group(1), rules):
            title, _ = bracket_after(b0)
            start = b0 - len(lm.group(0))
            add(start, b0, (start, start + len(lm.group(1))), title)

    # Familiar 老X / 小X: 助理小麦, 设备科的小卞, 老阚.
    for m in rules.familiar.finditer(simp):
        if not free(m.start(), m.end()) or not _familiar_ok(simp, m.start(), m.group("s"), rules):
            continue
        nxt = simp[m.end():m.end() + 1]
        prev = simp[:m.start()].rstrip(" ")[-1:]
        vocative = prev in ("", "\n", ":", "：") and nxt in rules.vocative_followers
        add(m.start(), m.end(), m.span("s"), None)
        if vocative:
            mentions[-1].ours = True

    # Latin names: Tony, Grace, 倍驰物流 Eric, Lisa Wang; the addressee of "Hi Kevin" is our rep.
    for m in rules.latin.finditer(simp):
        n, last = m.group("n"), m.group("l")
        if not free(m.start(), m.end("n")):
            continue
        if n not in rules.latin_names and not (
                n not in rules.latin_not_names and rules.latin_context.match(simp, m.start())):
            continue
        end = m.end() if last and last in rules.latin_surnames else m.end("n")
        nxt = simp[end:end + 2]
        if re.match(r"[ ]?\d{1,2}-\d{1,2}|[:：]", nxt):
            continue  # a speaker label; the record's speaker list decides about it
        head = simp[max(0, m.start() - 8):m.start()].strip(" ,，")
        greeted = head.endswith(rules.greetings) and (len(head) <= 6 or head[-7:-6] in ("\n", ""))
        add(m.start(), end, (m.start(), end), None)
        if greeted:
            mentions[-1].ours = True
    return mentions, companies


def _merge(mentions: list[_Mention]) -> list[dict[str, str | None]]:
    """One record per person: a full name takes the short form's title (龙志刚 … 龙总 → 龙志刚 / 总)."""
    groups: dict[str, list[_Mention]] = {}
    for mt in sorted(mentions, key=lambda x: x.pos):
        groups.setdefault(mt.key, []).append(mt)
    records: list[tuple[int, dict[str, str | None]]] = []
    for key, ms in groups.items():
        latin = [mt for mt in ms if mt.name.isascii()]
        if latin:
            best = max(latin, key=lambda mt: len(mt.name))
            title = next((mt.title for mt in latin if mt.title), None)
            records.append((latin[0].pos, {"name": best.name, "title": title}))
            continue
        fulls: list[_Mention] = []
        for mt in ms:
            if len(mt.name) > len(key) and all(f.name != mt.name for f in fulls):
                fulls.append(mt)
        shorts = [mt for mt in ms if len(mt.name) == len(key)]
        if fulls:
            short_title = next((mt.title for mt in shorts if mt.title), None)
            for i, f in enumerate(fulls):
                full_title = next((x.title for x in ms if x.name == f.name and x.title), None)
                title = short_title if (i == 0 and short_title) else full_title
                records.append((f.pos, {"name": f.name, "title": title}))
            continue
        by_title: dict[str | None, int] = {}
        for mt in shorts:
            if mt.title in by_title:
                continue
            same = next((t for t in by_title if t and mt.title and (t.endswith(mt.title) or mt.title.endswith(t))), None)
            if same is not None:
                if mt.title and len(mt.title) > len(same):  # 车间主任姓冉 … 冉主任: the fuller title
                    idx = by_title.pop(same)
                    records[idx][1]["title"] = mt.title
                    by_title[mt.title] = idx
                continue
            if mt.title is None and by_title:
                continue
            if mt.title is not None and None in by_title:
                # 小卞 … 卞工: the same person, the title wins.
                idx = by_title.pop(None)
                records[idx][1]["title"] = mt.title
                by_title[mt.title] = idx
                continue
            by_title[mt.title] = len(records)
            records.append((mt.pos, {"name": mt.name, "title": mt.title}))
    records.sort(key=lambda r: r[0])
    return [r for _, r in records]


_TITLE_AFTER: dict[int, re.Pattern[str]] = {}


def _title_after(simp: str, text: str, mt: _Mention, rules: PeopleRules) -> str | None:
    """Kevin Wang是他们的IT经理 / 韩梅是对方采购: a role given right after the name."""
    end = mt.pos + len(mt.name)
    if simp[mt.pos:end] != to_simplified(mt.name):
        return None
    pat = _TITLE_AFTER.get(id(rules))
    if pat is None:
        pat = re.compile(r"[ ]?是(?:他们|她们|对方|客户|厂里|那边|公司|厂家)?(?:的|那边的)?[ ]?"
                         f"(?P<t>{_alt(list(rules.titles))})(?=[，,。；;！!？?\s]|$)")
        _TITLE_AFTER.clear()
        _TITLE_AFTER[id(rules)] = pat
    m = pat.match(simp, end)
    return text[m.start("t"):m.end("t")] if m else None


def extract_contacts(text: str, segments: Sequence[SegmentLike]) -> list[dict[str, str | None]]:
    """The named customer-side people in ``text`` as ``[{"name", "title"}]``, in order of mention."""
    rules = _PEOPLE.get()
    crules = _COMPANIES.get()
    speakers = _speaker_sides(text, segments, rules, crules)
    mentions, _ = _scan_people(text, rules, crules)
    corrected = _corrected_away(to_simplified(text), rules)
    ours_names = set(speakers.ours)
    ours_keys = {_surname_key(n, rules) for n in ours_names if not n.isascii()}
    ours_latin = {n.lower() for n in ours_names if n.isascii()}
    ours_latin |= {mt.name.lower() for mt in mentions if mt.ours and mt.name.isascii()}
    simp = to_simplified(text)
    # 徐工, Festo: a brand is a company, not a Mr 徐 the engineer.
    brand_spans = [m.span() for m in crules.brands.finditer(simp)]
    kept: list[_Mention] = []
    for mt in mentions + speakers.mentions:
        if mt.ours or to_simplified(mt.name) in corrected or to_simplified(mt.name + (mt.title or "")) in corrected:
            continue  # 不是邓经理，是郑经理
        if any(a <= mt.pos < b for a, b in brand_spans):
            continue
        if simp[max(0, mt.pos - 2):mt.pos] in ("叫我", "喊我", "我是", "叫俺") and simp[mt.pos:mt.pos + 1] in "小老":
            continue  # 客户叫我小林: the rep's own nickname
        end = mt.pos + len(mt.name) + len(mt.title or "")
        if simp[end:end + 8].lstrip(" ，,、").startswith(rules.correction_after):
            continue  # 姚部长，不对是饶部长: taken back at once
        if not speakers.mentions and not speakers.ours and _addressed(simp, mt, rules):
            continue  # 喂王哥我跟你说: the rep talks to a colleague
        if mt.title is None:
            after = _title_after(simp, text, mt, rules)
            if after is not None:
                mt = replace(mt, title=after)  # a copy: scanned mentions are memoised
        if mt.name.isascii():
            if mt.name.lower() in ours_latin or mt.name.split(" ")[0].lower() in ours_latin:
                continue
        elif mt.name in ours_names or (mt.key in ours_keys and len(mt.name) > len(mt.key)):
            continue
        kept.append(mt)
    _title_fields(simp, text, kept, rules)
    return _merge(kept)


def _addressed(simp: str, mt: _Mention, rules: PeopleRules) -> bool:
    """Whether the rep calls this person at the start of a voice note (喂，张哥 / 李姐你听我讲 / 刘姐啊，你帮我)."""
    head = simp[:mt.pos].rstrip(" ，,")
    called = False
    for call in rules.address_calls:
        if head.endswith(call):
            head, called = head[: -len(call)].rstrip(" ，,"), True
            break
    if head and head[-1] not in "\n。.！!？?":
        return False  # only at the start of the message or of a sentence
    end = mt.pos + len(mt.name) + len(mt.title or "")
    rest = simp[end:end + 12].lstrip(" ，,")
    rest = rest[1:].lstrip(" ，,") if rest[:1] in ("啊", "呀", "哈", "呢") else rest
    if rest.startswith(rules.address_followers):
        return True
    # 喂潘总您好 opens a call with the customer; 喂王哥 / 喂小李 calls a colleague.
    return called and mt.title in (None, "哥", "姐") and not rest.startswith(("您好", "你好"))


def _title_fields(simp: str, text: str, kept: list[_Mention], rules: PeopleRules) -> None:
    """职位：采购专员 on a card: the title goes to the nearest untitled person, preferring one above it."""
    if ":" not in simp and "：" not in simp:
        return
    for fm in rules.title_field.finditer(simp):
        untitled = [i for i, mt in enumerate(kept) if mt.title is None and abs(mt.pos - fm.start()) <= 80]
        if not untitled:
            continue
        above = [i for i in untitled if kept[i].pos < fm.start()]
        best = max(above, key=lambda i: kept[i].pos) if above else min(untitled, key=lambda i: kept[i].pos)
        kept[best] = replace(kept[best], title=text[fm.start("t"):fm.end("t")])


# ---------------------------------------------------------------- companies

_DESCRIBED_BRACKET = re.compile(r"[（(](?:做|生产|专做|主营|是)")


def _generic_company(name: str, crules: CompanyRules) -> bool:
    """True for 医疗器械公司, 化工集团: industry words and a legal suffix with no name of its own."""
    core = crules.strip_tail.sub("", name)
    if len(core) < 2 or core in crules.generic:
        return True
    if name.endswith(("厂", "局")) and not name.endswith("总厂") and len(name) < 5:
        return True  # 煤机厂, 热电厂, 供电局: a kind of plant or office, not a name

    rest = crules.generic_parts.sub("", core)
    return len(rest) < 2


def _short_name_ok(simp: str, at: int, name: str, rules: PeopleRules, crules: CompanyRules) -> bool:
    """Whether ``name`` before 那边/这边 is an organisation (蓝科那边) rather than a place, a
    person (潘总那边, 老周这边), a department or an ordinary word (客户那边, 财务那边)."""
    if name in crules.not_short_names or name in crules.generic or name in _NOT_NAMES:
        return False
    if name.endswith(("厂", "局", "所", "站")) and _generic_company(name, crules):
        return False  # 食品厂那边, 晶圆厂那边: a kind of plant
    if name.isascii():
        return name not in rules.latin_names and name not in rules.latin_not_names and _latin_ok(name, rules)
    if any(name.endswith(w) for w in crules.not_short_names) or crules.generic_parts.fullmatch(name):
        return False
    if _PLACE_TABLE.pattern.match(name) or any(p in name for p in ("省", "市", "区", "县")):
        return False  # 宁波那边, 杭州萧山那边: places
    if name[0] in "老小" or name.startswith(("我", "你", "他", "她", "它", "咱")):
        return False
    am = rules.attached.match(name)
    if am and am.end() == len(name):
        return False  # 潘总那边, 王工这边
    if any(name.endswith(t) for t in rules.titles):
        return False  # 采购经理那边
    if re.search(r"[\d一二三四五六七八九十百千万几两]", name):
        return False
    return True


def _labelled_company_ok(name: str, rules: PeopleRules, crules: CompanyRules) -> bool:
    """Whether the value of a 客户：/单位：/Account: field names an organisation (鑫泰, 远航精密)
    rather than a person (张伟, 潘总), a place or a description (老客户, 一家化工厂)."""
    if crules.any_legal.search(name) or crules.any_standalone.search(name):
        return not _generic_company(name, crules)
    if name.isascii():
        return name[:1].isupper() and name not in rules.latin_names and _latin_ok(name, rules)
    if not re.fullmatch(f"[{_CJK}]{{2,6}}", name) or any(ch in crules.not_in_name for ch in name):
        return False
    if name in crules.generic or name in crules.not_short_names or _PLACE_TABLE.pattern.fullmatch(name):
        return False
    if rules.attached.fullmatch(name) or (len(name) <= 3 and (name[0] in rules.surnames or name[:2] in rules.compounds)):
        return False  # 客户：张伟 is a person
    return not any(name.endswith(t) for t in rules.titles)


def extract_companies(text: str, segments: Sequence[SegmentLike]) -> list[str]:
    """Organisations named in ``text`` (customer, prospect, partner, competitor), copied as written."""
    rules = _PEOPLE.get()
    crules = _COMPANIES.get()
    simp = to_simplified(text)
    cands: list[tuple[int, str]] = []

    def span(m: re.Match[str], group: int | str = 0) -> tuple[int, str]:
        return m.start(group), text[m.start(group):m.end(group)]

    for pm in _PLACE_TABLE.pattern.finditer(simp):
        if _PLACE_TABLE.names.get(pm.group(0)) is None or len(pm.group(0)) < 2:
            continue
        m = crules.placed.match(simp, pm.end())
        if m:
            cands.append((pm.start(), text[pm.start():m.end()]))
    # The wide patterns run only in small windows before the suffix or bracket that anchors them.
    seen: set[tuple[int, int]] = set()
    for anchor in crules.any_legal.finditer(simp):
        for m in crules.legal.finditer(simp, max(0, anchor.start() - 16), anchor.end()):
            if m.end() == anchor.end() and m.span() not in seen and m.group(0) not in crules.legal_suffixes \
                    and not _generic_company(m.group(0), crules):
                seen.add(m.span())
                cands.append(span(m))
                break
    for anchor in crules.any_standalone.finditer(simp):
        for m in crules.standalone.finditer(simp, max(0, anchor.start() - 2), min(len(simp), anchor.end() + 12)):
            if m.span() not in seen and m.group("n") not in crules.generic:
                seen.add(m.span())
                cands.append(span(m))
    for anchor in _DESCRIBED_BRACKET.finditer(simp):
        for m in crules.described.finditer(simp, max(0, anchor.start() - 8), min(len(simp), anchor.start() + 20)):
            if m.end("n") == anchor.start() and m.group("n") not in crules.generic:
                cands.append(span(m, "n"))
    for m in crules.brands.finditer(simp):
        cands.append(span(m))
        im = crules.institute.match(simp, m.start())
        if im and (re.fullmatch(r"[〇零一二三四五六七八九十百0-9]+", im.group("x")) or (
                not any(ch in crules.not_in_name for ch in im.group("x")) and im.group("x") not in crules.generic)):
            cands.append(span(im))
    for m in crules.context_brands.finditer(simp):
        cands.append(span(m, "n" if m.group("n") else "n2"))
    for m in crules.short_name.finditer(simp):
        n = m.group("n")
        if _short_name_ok(simp, m.start("n"), n, rules, crules):
            cands.append(span(m, "n"))
    for m in crules.called.finditer(simp):
        if m.group("n") not in crules.generic and m.group("n") not in crules.not_short_names:
            cands.append(span(m, "n"))
    for m in crules.labelled.finditer(simp):
        if _labelled_company_ok(m.group("n"), rules, crules):
            cands.append(span(m, "n"))
    for m in crules.latin_customer.finditer(simp):
        if m.group("n") not in rules.latin_names and _latin_ok(m.group("n"), rules):
            cands.append(span(m, "n"))
    _, bracketed = _scan_people(text, rules, crules)
    cands.extend(bracketed)
    cands.extend(_speaker_sides(text, segments, rules, crules).companies)
    corrected = _corrected_away(simp, rules)
    for pos, name in cands:
        tail = simp[pos + len(name):pos + len(name) + 8].lstrip(" ，,、")
        if tail.startswith(rules.correction_after):
            corrected.add(to_simplified(name))  # 鑫源，不对，是鑫垣机电
    ours: set[str] = set()
    for pos, name in cands:
        if simp[max(0, pos - 4):pos].rstrip(" ").endswith(_OUR_COMPANY_PREFIXES):
            ours.add(name)
    out: list[tuple[int, str]] = []
    for pos, name in sorted(cands, key=lambda c: (c[0], -len(c[1]))):
        if name in ours or to_simplified(name) in corrected:
            continue
        if any(name in other for _, other in cands if other != name and other not in ours):
            continue
        if all(name != o for _, o in out):
            if out and out[-1][0] + len(out[-1][1]) == pos:
                # 中石化 + 镇海炼化分公司 written together are one name.
                out[-1] = (out[-1][0], out[-1][1] + name)
            else:
                out.append((pos, name))
    return [n for _, n in out]
