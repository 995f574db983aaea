"""Lead de-duplication: normalised keys and the "is this an old customer?" decision.

Pure functions over plain data, no database. The store keeps ``phone_norm`` and
``company_norm`` (``Lead.phone_norm``, ``Customer.name_norm``) computed with
:func:`normalize_phone` and :func:`normalize_company`, queries the candidates sharing
a key, and hands them to :func:`find_duplicate`, which decides and says why.

Why normalise so hard: the same factory arrives as ``苏州恒锐精密机械有限公司`` from the
web form, ``恒锐精密机械（苏州）有限公司`` from a trade-fair scan and ``恆銳精密機械`` from
a Hong Kong distributor's spreadsheet; the same buyer's phone as ``+86 139-1234-5678``
and ``１３９１２３４５６７８``. Every miss is a second rep calling the same customer.

Traditional→simplified: zhconv is GPL-2.0+, which does not fit our Apache-2.0 licence,
so we ship our own table of the characters common in company and person names
(:data:`_TRAD_SIMP`); characters outside it pass through unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from nlp.provinces import PROVINCES
from nlp.simplify import to_simplified

__all__ = [
    "MERGE_NOTE",
    "DuplicateMatch",
    "LeadKeys",
    "MatchKey",
    "find_duplicate",
    "lead_keys",
    "normalize_company",
    "normalize_contact",
    "normalize_phone",
    "to_simplified",
    "without_merge_note",
]

# --------------------------------------------------------------------------- phones

_EXTENSION = re.compile(r"(转|轉|分机|分機|ext\.?|x|#)\s*\d*\s*$", re.IGNORECASE)
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Trunk prefixes: 400/800 service numbers are dialled without area code.
_SERVICE = re.compile(r"[48]00\d{7}")


def _landline(digits: str) -> str | None:
    """``0AREA`` + 7–8 digit local number → ``0AREA-LOCAL``; None if not that shape."""
    if len(digits) < 2 or not digits.startswith("0") or digits.startswith("00"):
        return None
    # Beijing 010 and the 02X big cities have 3-digit area codes, everyone else 4.
    area_len = 3 if digits[1] in "12" else 4
    area, local = digits[:area_len], digits[area_len:]
    if len(local) not in (7, 8) or local[0] in "01" or set(local) == {"0"}:
        return None
    return f"{area}-{local}"


def _classify(digits: str, *, international: bool, default_area: str | None) -> str | None:
    if international:
        # +86 numbers drop the trunk 0 of the area code: +86 512 6688 1234.
        if _MOBILE.fullmatch(digits):
            return digits
        return _landline("0" + digits)
    if _MOBILE.fullmatch(digits):
        return digits
    # Old habit: a leading 0 before a mobile number when calling from another city.
    if len(digits) == 12 and digits[0] == "0" and _MOBILE.fullmatch(digits[1:]):
        return digits[1:]
    if _SERVICE.fullmatch(digits):
        return digits
    if digits.startswith("0"):
        return _landline(digits)
    if default_area and len(digits) in (7, 8):
        return _landline(default_area + digits)
    return None


def normalize_phone(raw: str, *, default_area: str | None = None) -> str | None:
    """The canonical form of a Chinese phone number, or None when it is not plausibly one.

    Mobiles come out as 11 digits (``13912345678``), landlines as ``0AREA-LOCAL``
    (``0512-66881234``), 400/800 numbers as 10 digits. ``+86``/``0086``/``86``
    prefixes, spaces, dashes, dots, brackets, full-width digits and extensions
    (``转806``, ``ext. 12``, ``-806`` after a complete number) are removed. A local
    number without area code is accepted only with ``default_area`` (``"0512"``).
    """
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", raw).strip()
    text = _EXTENSION.sub("", text).strip()
    international = False
    text = text.lstrip("([ ")  # "(+86) 139…" and "(0512) 6688…"
    if text.startswith("+"):
        text = text[1:]
        if not text.lstrip(" (").startswith("86"):
            return None  # a foreign number is not a key we can compare
        international = True
    groups = [g for g in re.split(r"[\s\-.()/\[\]]+", text) if g]
    if not groups or not all(g.isdigit() for g in groups):
        return None
    digits = "".join(groups)
    if digits.startswith("0086"):
        digits, international = digits[4:], True
    elif international or (groups[0] == "86" and len(groups) > 1):
        digits, international = digits[2:], True
    if international and digits.startswith("0"):
        digits = digits[1:]  # "+86 (0)512 …": the trunk 0 written in brackets
    elif digits.startswith("86") and len(digits) == 13 and _MOBILE.fullmatch(digits[2:]):
        digits, international = digits[2:], True
    found = _classify(digits, international=international, default_area=default_area)
    if found is None and len(groups) > 1 and len(groups[-1]) <= 5:
        # "0512-66881234-806": a trailing short group after a complete number is an extension.
        shorter = digits[: len(digits) - len(groups[-1])]
        found = _classify(shorter, international=international, default_area=default_area)
    return found


# --------------------------------------------------------------------------- Chinese text

def _fold(text: str) -> str:
    """Width, case, traditional/simplified and whitespace folding shared by all keys."""
    text = unicodedata.normalize("NFKC", text or "")
    text = to_simplified(text).lower()
    return re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------- companies

# Longest first, so 股份有限公司 goes before 有限公司 before 公司.
_LEGAL_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        {
            "股份有限公司", "有限责任公司", "有限公司", "责任公司", "分公司", "子公司", "总公司", "公司",
            "集团", "股份", "控股", "实业", "总厂", "分厂", "工厂", "厂", "商行", "经营部", "经销部",
            "门市部", "工作室", "个体户", "合伙企业", "有限合伙", "普通合伙",
            # Latin forms, as they look after punctuation is removed ("Co., Ltd." -> "coltd").
            "coltd", "ltd", "limited", "inc", "corporation", "corp", "company", "group", "llc", "gmbh",
        },
        key=len,
        reverse=True,
    )
)

# Prefecture-level cities and the county-level manufacturing towns forms often lead with.
_CITIES = """
北京 上海 天津 重庆 石家庄 唐山 秦皇岛 邯郸 邢台 保定 张家口 承德 沧州 廊坊 衡水 太原 大同 阳泉 长治
晋城 朔州 晋中 运城 忻州 临汾 吕梁 呼和浩特 包头 乌海 赤峰 通辽 鄂尔多斯 呼伦贝尔 巴彦淖尔 乌兰察布
沈阳 大连 鞍山 抚顺 本溪 丹东 锦州 营口 阜新 辽阳 盘锦 铁岭 朝阳 葫芦岛 长春 吉林 四平 辽源 通化
白山 松原 白城 延边 哈尔滨 齐齐哈尔 鸡西 鹤岗 双鸭山 大庆 伊春 佳木斯 七台河 牡丹江 黑河 绥化
南京 无锡 徐州 常州 苏州 南通 连云港 淮安 盐城 扬州 镇江 泰州 宿迁 杭州 宁波 温州 嘉兴 湖州 绍兴
金华 衢州 舟山 台州 丽水 合肥 芜湖 蚌埠 淮南 马鞍山 淮北 铜陵 安庆 黄山 滁州 阜阳 宿州 六安 亳州
池州 宣城 福州 厦门 莆田 三明 泉州 漳州 南平 龙岩 宁德 南昌 景德镇 萍乡 九江 新余 鹰潭 赣州 吉安
宜春 抚州 上饶 济南 青岛 淄博 枣庄 东营 烟台 潍坊 济宁 泰安 威海 日照 临沂 德州 聊城 滨州 菏泽
郑州 开封 洛阳 平顶山 安阳 鹤壁 新乡 焦作 濮阳 许昌 漯河 三门峡 南阳 商丘 信阳 周口 驻马店 济源
武汉 黄石 十堰 宜昌 襄阳 鄂州 荆门 孝感 荆州 黄冈 咸宁 随州 恩施 长沙 株洲 湘潭 衡阳 邵阳 岳阳
常德 张家界 益阳 郴州 永州 怀化 娄底 广州 韶关 深圳 珠海 汕头 佛山 江门 湛江 茂名 肇庆 惠州 梅州
汕尾 河源 阳江 清远 东莞 中山 潮州 揭阳 云浮 南宁 柳州 桂林 梧州 北海 防城港 钦州 贵港 玉林 百色
贺州 河池 来宾 崇左 海口 三亚 儋州 成都 自贡 攀枝花 泸州 德阳 绵阳 广元 遂宁 内江 乐山 南充 眉山
宜宾 广安 达州 雅安 巴中 资阳 贵阳 六盘水 遵义 安顺 毕节 铜仁 昆明 曲靖 玉溪 保山 昭通 丽江 普洱
临沧 拉萨 西安 铜川 宝鸡 咸阳 渭南 延安 汉中 榆林 安康 商洛 兰州 嘉峪关 金昌 白银 天水 武威 张掖
平凉 酒泉 庆阳 定西 陇南 西宁 银川 石嘴山 吴忠 固原 中卫 乌鲁木齐 克拉玛依 吐鲁番 哈密 昌吉 伊犁
喀什 库尔勒 香港 澳门 台北 高雄 台中
昆山 江阴 张家港 常熟 太仓 宜兴 溧阳 丹阳 靖江 海门 启东 如皋 义乌 慈溪 余姚 诸暨 永康 乐清
瑞安 温岭 玉环 海宁 桐乡 平湖 嘉善 长兴 德清 安吉 上虞 嵊州 晋江 石狮 南安 福清 长乐 即墨 胶州
平度 莱州 龙口 寿光 诸城 邹平 顺德 南海 番禺 花都 增城 从化 宝安 龙岗 虎门 鹤山 开平 台山
萧山 余杭 富阳 临安 江宁 浦东 滨海 武进 吴江 吴中 相城 高新区 工业园区 新区 开发区
"""
_CITY_NAMES: tuple[str, ...] = tuple(sorted(set(_CITIES.split()), key=len, reverse=True))

_PROVINCE_NAMES: tuple[str, ...] = tuple(
    sorted(
        {full for full in PROVINCES} | {s for shorts in PROVINCES.values() for s in shorts if len(s) >= 2},
        key=len,
        reverse=True,
    )
)
# Administrative words that may follow a region name: 浙江省杭州市萧山区.
_ADMIN_TAIL = ("自治州", "地区", "省", "市", "区", "县")
_BRACKETS = re.compile(r"[(\[{【〔（]([^)\]}】〕）]*)[)\]}】〕）]")
_PUNCT = re.compile(r"[\s\-_.,，。·•'\"“”‘’/\\&+:：;；!！?？*@#|、]+")
_REGION_WORDS = ("中国", "国际", "china", "中国区")


_PLACES: frozenset[str] = frozenset(_CITY_NAMES) | frozenset(_PROVINCE_NAMES)
_PLACE_LENGTHS: tuple[int, ...] = tuple(sorted({len(p) for p in _PLACES | set(_REGION_WORDS)}, reverse=True))


def _is_region(text: str) -> bool:
    text = text.strip()
    if text in _PLACES or text in _REGION_WORDS:
        return True
    return any(text.endswith(tail) and text[: -len(tail)] in _PLACES for tail in _ADMIN_TAIL)


def _strip_region_prefix(name: str) -> str:
    """Drop leading 省/市/区 prefixes (浙江省杭州市萧山区恒锐 → 恒锐), keeping a real name."""
    changed = True
    while changed:
        changed = False
        for size in _PLACE_LENGTHS:
            head = name[:size]
            if head not in _PLACES and head not in _REGION_WORDS:
                continue
            rest = name[size:]
            for tail in _ADMIN_TAIL:
                if rest.startswith(tail):
                    rest = rest[len(tail):]
                    break
            # Keep at least two characters: 上海 电气 → 电气, but never an empty name.
            if len(rest) >= 2:
                name, changed = rest, True
                break
    return name


def _trailing_region(name: str) -> int:
    """Length of a region name (with its 市/区 word) ending ``name``, 0 if none."""
    for tail in ("", *_ADMIN_TAIL):
        if tail and not name.endswith(tail):
            continue
        base = name[: len(name) - len(tail)]
        for size in _PLACE_LENGTHS:
            if len(base) - size >= 2 and base[-size:] in _PLACES:
                return size + len(tail)
    return 0


def _strip_legal_suffix(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in _LEGAL_SUFFIXES:
            if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                name, changed = name[: -len(suffix)], True
                break
        if not changed:
            # 苏州分公司 / (苏州): a trailing region after the legal form is the branch's place.
            cut = _trailing_region(name)
            if cut:
                name, changed = name[:-cut], True
    return name


def normalize_company(raw: str) -> str:
    """The comparison key of a company name.

    Full/half width, traditional/simplified, case and spaces are folded; bracketed
    regions (``（苏州）``, ``(中国)``) and leading region prefixes (``江苏``, ``苏州``,
    ``浙江省杭州市``) are dropped; legal forms and branch words at the end
    (``有限公司``, ``股份``, ``集团``, ``分公司``, ``厂``, ``Co., Ltd.``) are stripped,
    repeatedly. At least two characters of the name always remain, so ``上海电气`` becomes
    ``电气`` — short keys are too generic to merge on alone, see :func:`find_duplicate`.
    """
    name = _fold(raw)

    def _bracket(m: re.Match[str]) -> str:
        inner = m.group(1)
        if not inner or _is_region(inner) or _strip_legal_suffix(inner) == "" or inner in _LEGAL_SUFFIXES:
            return ""
        return inner

    stripped = _PUNCT.sub("", _BRACKETS.sub(_bracket, name))
    # "（苏州）" alone: better a region as the key than no key at all.
    name = stripped if len(stripped) >= 2 else _PUNCT.sub("", _BRACKETS.sub(r"\1", name))
    name = _strip_region_prefix(name)
    name = _strip_legal_suffix(name)
    return name


def normalize_contact(raw: str) -> str:
    """A person's name folded for comparison (width, case, traditional, spaces)."""
    return _PUNCT.sub("", _fold(raw))


# --------------------------------------------------------------------------- duplicates


class MatchKey(str, Enum):
    """Which key made two leads the same customer, strongest first."""

    PHONE = "phone"
    CONTACT_COMPANY = "contact_company"
    COMPANY = "company"

    @property
    def label(self) -> str:
        """The key in Chinese, for cards and audit rows."""
        return {"phone": "电话", "contact_company": "联系人+公司", "company": "公司名"}[self.value]


@dataclass(frozen=True)
class LeadKeys:
    """The de-duplication keys of one lead, already normalised (see :func:`lead_keys`)."""

    id: int | str
    customer_id: int | None
    phone_norm: str | None
    company_norm: str
    contact_name: str = ""


# Every line a merge writes (the match message below, and the engine's "… → 原负责人" step)
# starts with this, so a split can take them out of an explanation again.
MERGE_NOTE = "老客户再次咨询"
_EXPLANATION_SEP = " · "


def without_merge_note(explanation: str) -> str:
    """``explanation`` without the parts a merge put there (the "老客户再次咨询" steps).

    An explanation is a `` · ``-separated chain (``老客户再次咨询：公司名「恒锐」与客户 #1 相同 ·
    华东池 · 江苏 → 轮转 · 你今日剩余额度 4``); what is left still reads as a chain.
    """
    parts = [p for p in explanation.split(_EXPLANATION_SEP) if p and not p.startswith(MERGE_NOTE)]
    return _EXPLANATION_SEP.join(parts)


@dataclass(frozen=True)
class DuplicateMatch:
    """An earlier lead the new one duplicates, and why."""

    existing: LeadKeys
    key: MatchKey
    value: str
    ignored_phones: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """The "老客户再次咨询" line for the rep's card and the audit row."""
        shown = _mask_phone(self.value) if self.key is MatchKey.PHONE else self.value
        who = f"客户 #{self.existing.customer_id}" if self.existing.customer_id is not None else f"线索 #{self.existing.id}"
        return f"{MERGE_NOTE}：{self.key.label}「{shown}」与{who}相同"


def _mask_phone(phone: str) -> str:
    # Cards may land in group chats: show enough to recognise, not to dial.
    if len(phone) == 11 and phone.isdigit():
        return f"{phone[:3]}****{phone[7:]}"
    return phone


def lead_keys(
    id: int | str,
    *,
    customer_id: int | None = None,
    phone: str = "",
    company: str = "",
    contact_name: str = "",
) -> LeadKeys:
    """Build :class:`LeadKeys` from raw form values, normalising each key."""
    return LeadKeys(
        id=id,
        customer_id=customer_id,
        phone_norm=normalize_phone(phone),
        company_norm=normalize_company(company),
        contact_name=normalize_contact(contact_name),
    )


def find_duplicate(
    lead: LeadKeys,
    existing: Iterable[LeadKeys],
    *,
    broad_threshold: int = 5,
    min_company_len: int = 4,
) -> DuplicateMatch | None:
    """The earlier lead that ``lead`` duplicates, or None.

    Keys, strongest first: the normalised phone; the contact name together with the
    company; the company alone when its key has at least ``min_company_len``
    characters (``电气`` alone is too generic). A phone shared by more than
    ``broad_threshold`` different customers is a switchboard or an agent's number and is
    ignored as a key (reported in ``ignored_phones``) instead of merging everyone. Among
    several matches of the same key the oldest record (smallest id, customers first)
    wins, so repeated enquiries all point at the original.
    """
    rows = [row for row in existing if row.id != lead.id]
    owners: dict[str, set[object]] = {}
    for row in rows:
        if row.phone_norm:
            # A lead not yet tied to a customer counts as its own customer.
            owner = ("c", row.customer_id) if row.customer_id is not None else ("l", row.id)
            owners.setdefault(row.phone_norm, set()).add(owner)
    broad = tuple(sorted(p for p, who in owners.items() if len(who) > broad_threshold))
    phone = lead.phone_norm if lead.phone_norm and lead.phone_norm not in broad else None
    ignored = (lead.phone_norm,) if lead.phone_norm and lead.phone_norm in broad else ()
    contact = normalize_contact(lead.contact_name)
    company = lead.company_norm

    best: tuple[int, tuple[int, str], LeadKeys, MatchKey, str] | None = None
    for row in rows:
        found: tuple[MatchKey, str] | None = None
        if phone and row.phone_norm == phone:
            found = (MatchKey.PHONE, phone)
        elif company and row.company_norm == company and contact and normalize_contact(row.contact_name) == contact:
            found = (MatchKey.CONTACT_COMPANY, f"{lead.contact_name} @ {company}")
        elif company and len(company) >= min_company_len and row.company_norm == company:
            found = (MatchKey.COMPANY, company)
        if found is None:
            continue
        rank = list(MatchKey).index(found[0])
        order = (0 if row.customer_id is not None else 1, _sortable(row.id))
        if best is None or (rank, order) < (best[0], best[1]):
            best = (rank, order, row, found[0], found[1])
    if best is None:
        return None
    return DuplicateMatch(existing=best[2], key=best[3], value=best[4], ignored_phones=ignored)


def _sortable(value: int | str) -> str:
    # Ids may be ints (database) or strings (imports); compare numbers numerically.
    return f"{value:020d}" if isinstance(value, int) else f"~{value}"
