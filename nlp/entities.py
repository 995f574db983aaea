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
from dataclasses import dataclass, field
from typing import Any, Protocol

from nlp.lexicon import LexiconFile, as_list, lexicon_path
from nlp.places import _TABLE as _PLACE_TABLE

_CJK = r"\u4e00-\u9fff"
_PUNCT_BOUNDARY = set(" \t\n，,。.：:；;、！!？?（(）)【】[]「」“”\"'—-－|·/")


class SegmentLike(Protocol):
    """The parts of ``nlp.chat.Segment`` used here (speaker None for plain text)."""

    speaker: str | None
    text: str
    start: int


# ---------------------------------------------------------------- people rules

@dataclass
class PeopleRules:
    """people.toml, compiled."""

    surnames: frozenset[str]
    compounds: frozenset[str]
    attached: re.Pattern[str]
    role: re.Pattern[str]
    intro: re.Pattern[str]
    bracket: re.Pattern[str]
    familiar: re.Pattern[str]
    latin: re.Pattern[str]
    latin_prefix: re.Pattern[str]
    correction: re.Pattern[str]
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


def _alt(words: Sequence[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def _build_people(data: dict[str, Any]) -> PeopleRules:
    surnames = frozenset("".join(as_list(data["surnames"])))
    compounds = frozenset(as_list(data["compound_surnames"]))
    surname_re = f"(?:{_alt(list(compounds))}|[{''.join(sorted(surnames))}])"
    attached_titles = as_list(data["attached_titles"])
    role_titles = as_list(data["role_titles"])
    latin_names = as_list(data["latin_names"])
    given = f"[{_CJK}]{{0,2}}"
    return PeopleRules(
        surnames=surnames,
        compounds=compounds,
        attached=re.compile(f"(?P<s>{surname_re})(?P<t>{_alt(attached_titles)})"),
        role=re.compile(f"(?P<t>{_alt(role_titles)})[ \u3000]?(?P<f>[老小])?(?P<s>{surname_re})(?P<g>{given})"),
        intro=re.compile(f"(?:{_alt(as_list(data['name_intros']))})[ \u3000:：]*"),
        bracket=re.compile(r"[（(](?P<b>[^（()）\n]{1,24})[）)]"),
        familiar=re.compile(f"(?P<f>[老小])(?P<s>{surname_re})"),
        latin=re.compile(r"(?<![A-Za-z])(?P<n>[A-Z][a-z]{1,11})(?![A-Za-z])"),
        latin_prefix=re.compile(f"(?P<t>{_alt(as_list(data['latin_prefix_titles']))})[ \u3000]*(?P<s>{surname_re})"),
        correction=re.compile(f"(?:{_alt(as_list(data['correction_markers']))})(?P<n>[{_CJK}A-Za-z]{{2,12}})"),
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
    )


_PEOPLE: LexiconFile[PeopleRules] = LexiconFile(lexicon_path("people"), _build_people)


_LEFT_WORDS = ("与", "和", "跟", "是", "给", "找", "被", "及", "单位", "客户", "对接")
# Regex form of _is_boundary, so that finditer only tries names that start at a boundary.
_BOUNDARY_RE = "(?:^|(?<=[^\u4e00-\u9fff])|" + "|".join(f"(?<={w})" for w in _LEFT_WORDS) + ")"

# ---------------------------------------------------------------- company rules

@dataclass
class CompanyRules:
    """companies.toml, compiled."""

    brands: re.Pattern[str]
    placed: re.Pattern[str]
    legal: re.Pattern[str]
    standalone: re.Pattern[str]
    generic: frozenset[str]
    not_in_name: frozenset[str]
    departments: tuple[str, ...]
    legal_suffixes: tuple[str, ...]


def _build_companies(data: dict[str, Any]) -> CompanyRules:
    not_in_name = str(data["not_in_name"])
    namech = f"[{_CJK}](?<![{re.escape(not_in_name)}])"
    placed_ch = f"[{_CJK}](?<![{re.escape(str(data.get('not_in_placed_name', not_in_name)))}])"
    legal = _alt(as_list(data["legal_suffixes"]))
    suffix = _alt(as_list(data["name_suffixes"]))
    standalone = _alt(as_list(data["standalone_suffixes"]))
    places = _alt([n for n, p in _PLACE_TABLE.names.items() if p is not None and len(n) >= 2])
    # A department word right after the name is not part of it (青岛海岳石化仪表科 → 青岛海岳石化).
    not_dept = r"(?![科部处室组])"
    brands = as_list(data["brands"])
    latin_brands = [b for b in brands if re.fullmatch(r"[A-Za-z+&]+", b)]
    cjk_brands = [b for b in brands if b not in latin_brands]
    brand_re = f"(?:{_alt(cjk_brands)})"
    if latin_brands:
        brand_re += f"|(?<![A-Za-z])(?:{_alt(latin_brands)})(?![A-Za-z])"
    return CompanyRules(
        brands=re.compile(brand_re),
        placed=re.compile(
            f"(?:{places})(?:{placed_ch}){{2,4}}?(?:(?:(?:{suffix}){not_dept})+(?:{legal})?|(?:{legal}))"),
        legal=re.compile(f"{_BOUNDARY_RE}(?:{namech}){{2,8}}?(?:(?:{suffix}))*(?:{legal})"),
        standalone=re.compile(f"{_BOUNDARY_RE}(?P<n>(?:{namech}){{2}})(?:(?:{standalone}){not_dept})+(?:{legal})?"),
        generic=frozenset(as_list(data["generic_names"])),
        not_in_name=frozenset(not_in_name),
        departments=tuple(sorted(as_list(data["department_words"]), key=len, reverse=True)),
        legal_suffixes=tuple(as_list(data["legal_suffixes"])),
    )


_COMPANIES: LexiconFile[CompanyRules] = LexiconFile(lexicon_path("companies"), _build_companies)


# ---------------------------------------------------------------- shared helpers

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
        name = m.group("n")
        name = re.sub(r"(了|的|啦|是)+$", "", name)
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
    if re.match(f"[{_CJK}]", name):
        return name[:2] if name[:2] in rules.compounds else name[:1]
    return name.lower()


def _given_name(text: str, at: int, rules: PeopleRules) -> str:
    """Up to two given-name characters at ``at``, stopping before verbs, particles and titles."""
    out = ""
    for ch in text[at:at + 2]:
        if not ("\u4e00" <= ch <= "\u9fff") or ch in rules.name_stop:
            break
        out += ch
    return out


def _title_in(fragment: str, rules: PeopleRules) -> str | None:
    """The title a bracket or line ends with (邯郸那家农机厂的采购经理 → 采购经理)."""
    frag = fragment.strip()
    for t in rules.titles:
        if frag.endswith(t) and (len(frag) == len(t) or not frag[-len(t) - 1].isascii() or " " in t
                                 or not t.isascii()):
            return t
    if re.fullmatch(r"[A-Za-z][A-Za-z .&/]{1,30}", frag) and re.search(
            r"(?i)manager|engineer|director|buyer|purchas|officer|head|lead|chief|sales|QA|QC", frag):
        return frag
    return None


def _bracket_company(fragment: str, crules: CompanyRules) -> str | None:
    """The organisation named in a bracket after a person (恒钢采购 → 恒钢, 精创模具 → 精创模具)."""
    frag = fragment.strip()
    for dept in crules.departments:
        if frag.endswith(dept) and len(frag) - len(dept) >= 2:
            frag = frag[: -len(dept)]
            break
    if not re.fullmatch(f"[{_CJK}A-Za-z0-9]{{2,12}}", frag):
        return None
    if any(ch in crules.not_in_name for ch in frag) or frag in crules.generic:
        return None
    return frag


def _ours_before(text: str, pos: int, rules: PeopleRules) -> bool:
    head = text[max(0, pos - 6):pos].rstrip(" ")
    return head.endswith(rules.our_prefixes)


def _attached_ok(text: str, m: re.Match[str], rules: PeopleRules) -> bool:
    s, t = m.group("s"), m.group("t")
    start, end = m.start(), m.end()
    if s + t in rules.not_people or text[start:start + len(s) + len(t) + 1] in rules.not_people:
        return False
    if start > 0 and text[start - 1] in rules.not_surname_after and len(s) == 1:
        return False
    nxt = text[end:end + 1]
    cont = rules.title_continuations.get(t[-1:], "") if len(t) == 1 else ""
    if nxt and nxt in cont:
        return False
    if t.isascii() and nxt.isascii() and nxt.isalpha():
        return False
    if t == "生":
        # Cantonese 黎生 ("Mr Li"): only before a speech verb or after 嘅/的, never inside 先生/学生.
        prev = text[start - 1:start]
        if not (nxt in ("话", "讲", "说", "佢", "哋", "，", ",") or prev in ("嘅", "的", "问", "同")):
            return False
    if t in ("哥", "姐") and start > 0 and text[start - 1] in "大小帅美老":
        return False
    return True


def _speaker_person(spk: str, rules: PeopleRules, crules: CompanyRules) -> tuple[str, str | None, str | None] | None:
    """(name, title, company) of a chat speaker label such as 田工（恒钢设备部）, 曾少华, Tony."""
    spk = spk.strip()
    company = None
    title: str | None = None
    bm = rules.bracket.search(spk)
    if bm:
        company = _bracket_company(bm.group("b"), crules)
        title = _title_in(bm.group("b"), rules)
        spk = spk[: bm.start()].strip()
    if re.fullmatch(r"[A-Za-z][A-Za-z .'-]{0,20}", spk):
        return spk, title, company
    m = rules.attached.fullmatch(spk)
    if m:
        return m.group("s"), m.group("t"), company
    if re.fullmatch(f"[{_CJK}]{{2,4}}", spk):
        key = spk[:2] if spk[:2] in rules.compounds else spk[:1]
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
    header = text[: min(s.start for s in named)]
    internal = any(mk in header for mk in rules.internal_markers)
    lines: dict[str, list[SegmentLike]] = {}
    for seg in named:
        lines.setdefault(seg.speaker.strip(), []).append(seg)  # type: ignore[union-attr]
    for spk, segs in lines.items():
        if spk in ("我", "me", "Me") or spk.startswith("我"):
            continue
        person = _speaker_person(spk, rules, crules)
        said = "\n".join(s.text for s in segs)
        ours = internal
        if not ours and not any(mk in said for mk in rules.customer_markers):
            ours = any(mk in said for mk in rules.promise_markers)
        if person is None:
            continue
        name, title, company = person
        key = _surname_key(name, rules)
        if ours:
            out.ours.add(name)
            continue
        out.mentions.append(_Mention(segs[0].start, name, title, key=key))
        if company:
            out.companies.append((segs[0].start, company))
    return out


def _scan_people(text: str, rules: PeopleRules, crules: CompanyRules) -> tuple[list[_Mention], list[tuple[int, str]]]:
    """Every person mention in the text, with its position; plus companies seen in brackets."""
    mentions: list[_Mention] = []
    companies: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in taken)

    def add(pos: int, end: int, name: str, title: str | None, ours_at: int | None = None) -> None:
        ours = _ours_before(text, pos if ours_at is None else ours_at, rules)
        mentions.append(_Mention(pos, name, title, ours, _surname_key(name, rules)))
        taken.append((pos, end))

    def bracket_after(end: int) -> tuple[str | None, int]:
        bm = rules.bracket.match(text, end)
        if not bm:
            return None, end
        frag = bm.group("b")
        comp = _bracket_company(frag, crules)
        if comp:
            companies.append((bm.start() + 1, comp))
        return _title_in(frag, rules), bm.end()

    # Dr. 梁
    for m in rules.latin_prefix.finditer(text):
        add(m.start(), m.end(), m.group("s"), m.group("t"))

    # Role + name: 质量部长段红梅, 代理侯振东, 设备经理老阚, 采购专员 阮冬梅.
    for m in rules.role.finditer(text):
        s = m.group("s")
        s_at = m.start("s")
        if not free(m.start(), s_at + len(s)):
            continue
        if m.group("f"):
            if not _familiar_ok(text, m.start("f"), s, rules):
                continue
            add(m.start(), s_at + len(s), s, m.group("t"))
            continue
        am = rules.attached.match(text, s_at)
        if am and _attached_ok(text, am, rules):
            continue  # 经理郝经理: the attached form is handled below
        g = _given_name(text, s_at + len(s), rules)
        if not g:
            continue
        end = s_at + len(s) + len(g)
        add(m.start(), end, s + g, m.group("t"))

    # Introduced full names: 对接人皇甫静, 全名邱雅婷, From: 聂文涛, 【个人名片】毛志远.
    for m in rules.intro.finditer(text):
        at = m.end()
        am = rules.attached.match(text, at)
        if am and _attached_ok(text, am, rules):
            continue
        lm = rules.latin.match(text, at)
        if lm:
            if free(at, lm.end()):
                add(at, lm.end(), lm.group("n"), None, ours_at=m.start())
            continue
        sm = re.match(f"[{_CJK}]{{2,4}}", text[at:])
        if not sm:
            continue
        s = text[at:at + 2] if text[at:at + 2] in rules.compounds else text[at:at + 1]
        if s not in rules.surnames and s not in rules.compounds:
            continue
        g = _given_name(text, at + len(s), rules)
        if not g or not free(at, at + len(s) + len(g)):
            continue
        end = at + len(s) + len(g)
        title, _ = bracket_after(end)
        if title is None:
            title = _card_title(text, end, rules)
        add(at, end, s + g, title, ours_at=m.start())

    # Surname + title: 潘总, 诸葛董, 卓sir, 黎生.
    for m in rules.attached.finditer(text):
        if not free(m.start(), m.end()) or not _attached_ok(text, m, rules):
            continue
        bracket_after(m.end())
        add(m.start(), m.end(), m.group("s"), m.group("t"))

    # Full name + bracket: 房立新（邯郸那家农机厂的采购经理）, 秦思雨（恒钢采购）.
    for bm in rules.bracket.finditer(text):
        b0 = bm.start()
        head = text[max(0, b0 - 4):b0]
        nm = re.search(f"(?:^|(?<=[^{_CJK}]))([{_CJK}]{{2,4}})$", head) if head else None
        if nm is None and head:
            nm = re.search(f"([{_CJK}]{{2,4}})$", head)
            if nm and not _is_boundary(text, b0 - len(nm.group(1))):
                nm = None
        if nm:
            cand = nm.group(1)
            start = b0 - len(cand)
            s = cand[:2] if cand[:2] in rules.compounds else cand[:1]
            if (s in rules.surnames or s in rules.compounds) and len(cand) > len(s) and free(start, b0):
                if not any(ch in rules.name_stop for ch in cand[len(s):]):
                    title, _ = bracket_after(b0)
                    add(start, b0, cand, title)
            continue
        lm = re.search(r"([A-Z][a-z]{1,11})[ ]?$", text[max(0, b0 - 13):b0])
        if lm and free(b0 - len(lm.group(0)), b0):
            title, _ = bracket_after(b0)
            add(b0 - len(lm.group(0)), b0, lm.group(1), title)

    # Familiar 老X / 小X: 助理小麦, 设备科的小卞, 老阚.
    for m in rules.familiar.finditer(text):
        if not free(m.start(), m.end()) or not _familiar_ok(text, m.start(), m.group("s"), rules):
            continue
        nxt = text[m.end():m.end() + 1]
        prev = text[:m.start()].rstrip(" ")[-1:]
        vocative = (prev in ("", "\n", ":", "：") and nxt in rules.vocative_followers)
        add(m.start(), m.end(), m.group("s"), None)
        if vocative:
            mentions[-1].ours = True

    # Latin given names: Tony, Grace, 倍驰物流 Eric.
    for m in rules.latin.finditer(text):
        n = m.group("n")
        if n not in rules.latin_names or not free(m.start(), m.end()):
            continue
        nxt = text[m.end():m.end() + 2]
        if re.match(r"[ ]?\d{1,2}-\d{1,2}|[:：]", nxt):
            continue  # a speaker label; the record's speaker list decides about it
        add(m.start(), m.end(), n, None)
    return mentions, companies


def _card_title(text: str, end: int, rules: PeopleRules) -> str | None:
    """A contact card's title on the next line (镇江华澜船舶配套有限公司 · 采购部经理)."""
    if text[end:end + 1] != "\n":
        return None
    nl = text.find("\n", end + 1)
    line = text[end + 1: nl if nl >= 0 else len(text)]
    m = re.search(r"[·•|｜/]\s*([^·•|｜/]{1,20})$", line)
    return _title_in(m.group(1), rules) if m else None


def _familiar_ok(text: str, at: int, surname: str, rules: PeopleRules) -> bool:
    """小麦就行 / 老阚就打来电话 are people; 小时, 两小时, 小于 are not."""
    word = text[at:at + 1 + len(surname)]
    for w in rules.not_familiar:
        if text.startswith(w, at):
            return False
    if at > 0 and text[at - 1] in "一二两三四五六七八九十半几多每数0123456789个":
        return False
    nxt = text[at + len(word):at + len(word) + 1]
    return nxt == "" or nxt in rules.familiar_followers


def _merge(mentions: list[_Mention]) -> list[dict[str, str | None]]:
    """One record per person: a full name takes the short form's title (龙志刚 … 龙总 → 龙志刚 / 总)."""
    groups: dict[str, list[_Mention]] = {}
    for mt in sorted(mentions, key=lambda x: x.pos):
        groups.setdefault(mt.key, []).append(mt)
    records: list[tuple[int, dict[str, str | None]]] = []
    for key, ms in groups.items():
        fulls: list[_Mention] = []
        for mt in ms:
            if len(mt.name) > len(key) and not mt.name.isascii() and all(f.name != mt.name for f in fulls):
                fulls.append(mt)
        shorts = [mt for mt in ms if mt not in fulls and (mt.name.isascii() or len(mt.name) == len(key))]
        if mt_latin := [mt for mt in ms if mt.name.isascii()]:
            title = next((mt.title for mt in mt_latin if mt.title), None)
            records.append((mt_latin[0].pos, {"name": mt_latin[0].name, "title": title}))
            continue
        if fulls:
            short_title = next((mt.title for mt in shorts if mt.title), None)
            for i, f in enumerate(fulls):
                full_title = next((x.title for x in ms if x.name == f.name and x.title), None)
                title = short_title if (i == 0 and short_title) else full_title
                records.append((f.pos, {"name": f.name, "title": title}))
            continue
        seen_titles: list[str | None] = []
        for mt in shorts:
            if mt.title in seen_titles:
                continue
            if mt.title is None and seen_titles:
                continue
            if mt.title is not None and None in seen_titles:
                # 小卞 … 卞工: the same person, the title wins.
                idx = next(i for i, (_, r) in enumerate(records) if r["name"] == key and r["title"] is None)
                records[idx][1]["title"] = mt.title
                seen_titles.remove(None)
                seen_titles.append(mt.title)
                continue
            seen_titles.append(mt.title)
            records.append((mt.pos, {"name": key, "title": mt.title}))
    records.sort(key=lambda r: r[0])
    return [r for _, r in records]


def extract_contacts(text: str, segments: Sequence[SegmentLike]) -> list[dict[str, str | None]]:
    """The named customer-side people in ``text`` as ``[{"name", "title"}]``, in order of mention."""
    rules = _PEOPLE.get()
    crules = _COMPANIES.get()
    speakers = _speaker_sides(text, segments, rules, crules)
    mentions, _ = _scan_people(text, rules, crules)
    corrected = _corrected_away(text, rules)
    ours_names = set(speakers.ours)
    ours_keys = {_surname_key(n, rules) for n in ours_names if not n.isascii()}
    ours_latin = {n.lower() for n in ours_names if n.isascii()}
    for mt in mentions:
        if mt.ours:
            if mt.name.isascii():
                ours_latin.add(mt.name.lower())
    kept: list[_Mention] = []
    for mt in mentions + speakers.mentions:
        if mt.ours or mt.name in corrected:
            continue
        if mt.name.isascii() and mt.name.lower() in ours_latin:
            continue
        if not mt.name.isascii() and (mt.name in ours_names or (mt.key in ours_keys and len(mt.name) > len(mt.key))):
            continue
        kept.append(mt)
    return _merge(kept)


# ---------------------------------------------------------------- companies

def extract_companies(text: str, segments: Sequence[SegmentLike]) -> list[str]:
    """Organisations named in ``text`` (customer, prospect, partner, competitor), copied as written."""
    rules = _PEOPLE.get()
    crules = _COMPANIES.get()
    cands: list[tuple[int, str]] = []
    for m in crules.placed.finditer(text):
        cands.append((m.start(), m.group(0)))
    for m in crules.legal.finditer(text):
        if m.group(0) not in crules.legal_suffixes:
            cands.append((m.start(), m.group(0)))
    for m in crules.standalone.finditer(text):
        if m.group("n") not in crules.generic:
            cands.append((m.start(), m.group(0)))
    for m in crules.brands.finditer(text):
        cands.append((m.start(), m.group(0)))
    _, bracketed = _scan_people(text, rules, crules)
    cands.extend(bracketed)
    cands.extend(_speaker_sides(text, segments, rules, crules).companies)
    corrected = _corrected_away(text, rules)
    ours: set[str] = set()
    for pos, name in cands:
        if text[max(0, pos - 4):pos].rstrip(" ").endswith(_OUR_COMPANY_PREFIXES):
            ours.add(name)
    out: list[tuple[int, str]] = []
    for pos, name in sorted(cands, key=lambda c: (c[0], -len(c[1]))):
        if name in ours or name in corrected:
            continue
        if any(name in other for _, other in cands if other != name and other not in ours):
            continue
        if all(name != o for _, o in out):
            out.append((pos, name))
    return [n for _, n in out]
