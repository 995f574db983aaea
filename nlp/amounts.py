"""RMB money amounts in sales chat, as ``{"text", "yuan_min", "yuan_max"}``.

What counts (the spec's rules, in short):
- point amounts with units 元/块/万/亿/w/W/k/个W and prefixes ¥/RMB/人民币, thousands
  separators, colloquial tails (二十七万五 = 275000, 三千八 = 3800, 十六块八 = 16.8);
  约/左右/上下/来 do not widen the value;
- ranges (80-120W, 七到九个W, 30万~45万元), collapsed numerals (四五十万, 三五w, 一两个亿),
  几/多 (十几万 = 11–19万, 几十万 = 10–90万);
- one-sided bounds (以内, 不超过, 最多, 以上): the stated figure;
- budget slang 八十个 (万 understood) only right after a budget word.

What does not: foreign currency, percentages, 点, 折, 成, quantities (三万只, 200台), a
figure the text corrects away (65万是笔误), bare numbers without a money unit or price
context. The same bounds twice are one entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlp.normalize import fold

_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
          "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL = {"十": 10, "百": 100, "千": 1000}
_BIG = {"万": 10_000, "w": 10_000, "W": 10_000, "亿": 100_000_000, "k": 1000, "K": 1000, "千": 1000,
        "千万": 10_000_000, "百万": 1_000_000}

# Measure words: a number followed by one of these counts things, not money.
# (Time words 年/月/周/天 are not here: 尾款12万月底付 is money before a date.)
_MEASURE = set("只台套个件片吨米人次条张箱颗支根瓶盒包袋双批辆架份家位名斤克升亩户栋层行项本页期平方公里度秒分")
# Units after 万/亿 that make the figure a physical quantity or a class (10万级洁净,
# 1.2万转, 5万千瓦), not money.
_NON_MONEY_UNITS = ("小时", "字", "块", "级", "转", "伏", "瓦", "千瓦", "像素", "帕", "立方", "方", "人次", "步",
                    "毫", "焦", "卡", "流明", "kW", "KW", "kw", "kV", "KV", "kv", "V", "Hz", "rpm", "mAh")
# Financial numerals 伍 and 陆 are left out of ``fold`` (they are surnames); next to other
# numerals or units they are numbers.
_CAPITAL = re.compile(
    r"(?<=[零一二三四五六七八九十百千万亿两])[伍陆陸]|[伍陆陸](?=[零一二三四五六七八九十百千万亿元角分整两])"
)
_CN_NUM_CHARS = "零〇一二两三四五六七八九十百千几"

_NUMERAL = (
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+多(?=[万亿wW块元])|\d+(?:\.\d+)?"
    # A Chinese run either has 十/百/千 in it or is followed by a unit, 个 or a range
    # separator: bare 一/三 (一家, 三台) are not worth a candidate.
    r"|[零〇一二两三四五六七八九十]{1,3}点[零〇一二三四五六七八九]{1,3}(?=\s*[万亿])"
    r"|(?:[零〇一二两三四五六七八九几]{0,4}[十百千][零〇一二两三四五六七八九十百千几]{0,8}"
    r"|[零〇一二两三四五六七八九几]{1,4}(?=\s*来?\s*个?\s*[万亿wWkK元块毛角个到至\-~—]))(?:多(?=[万亿wW块元]))?)"
)
# One amount candidate: optional currency prefix, the numeral, its multiplier, a tail
# digit (二十七万五), a currency word and a 角 tail (十六块八).
_CANDIDATE = re.compile(
    # The lookahead lets the engine skip positions that cannot start an amount.
    r"(?=[¥Rr人C\d零〇一二两三四五六七八九十百千几])"
    r"(?P<pre>¥|RMB|rmb|人民币|CNY)?\s*"
    + _NUMERAL
    + r"(?P<lai>来)?"
    r"(?:\s*(?P<ge>个)?\s*(?P<unit>万|亿|[wW](?![a-zA-Z])|[kK](?![a-zA-Z])|(?<=\d)(?:千万|百万)|(?<=\d)千(?![万亿瓦克米])))?"
    r"(?P<sub>(?<=[万亿])(?:[一二两三四五六七八九]|[1-9])千(?:零?[一二三四五六七八九]百?)?)?"
    r"(?P<tail>(?:[一二三四五六七八九]|(?<=[万wW千])[1-9](?![\d.]))(?![零〇二两三四五六七八九十百千万亿个台套只件]|一(?![台套只个件次批张])))?"
    r"(?:\s*(?P<cur>元(?![旦件器素宵])|块钱|块|蚊|毛钱|毛|角|RMB|rmb|CNY|人民币))?"
    r"(?P<jiao>(?<=[块毛角])(?:[一二三四五六七八九]|[1-9](?![0-9.]))(?![十百千万亿个台套只件次批张]))?"
)
_GLUED = re.compile(r"(?:[A-Za-z_#第]|[A-Za-z][\-/.])$")
# 3.5k-4.2k / 3w~5w: the second figure of a range after a unit, not a glued model number.
_RANGE_AFTER_UNIT = re.compile(r"(?<![A-Za-z0-9_#\-/.])\d+(?:\.\d+)?\s*[kKwW]\s*[-~～]\s*$")
_RANGE_SEP = re.compile(r"\s*(?:-|~|到|至|—|～)\s*")
_FOREIGN_BEFORE = re.compile(
    r"(?:USD|US\$|\$|美元|美金|EUR|€|欧元|日元|日币|JPY|HKD|HK\$|港币|英镑|GBP|£|卢布|泰铢|新台币|台币|NT\$|TWD|韩元|"
    r"新加坡元|新币|SGD|澳元|AUD|加元|CAD|越南盾|卢比|马币|林吉特|日圆)\s*$", re.I)
_FOREIGN_AFTER = re.compile(
    r"^\s*(?:美元|美金|欧元|日元|日币|港币|港元|英镑|卢布|泰铢|新台币|台币|韩元|新加坡元|新币|澳元|加元|越南盾|卢比|马币|"
    r"林吉特|日圆|USD|EUR|JPY|HKD|GBP|TWD|SGD|AUD|CAD|刀)")
_CORRECTED_AFTER = re.compile(
    r"^\s*[，,]?\s*(?:是|也是)?(?:笔误|写错|听错|记错|说错|看错|搞错|弄错|算错|打错|错的|有误|错了|不对|作废)"
    # 四十万哦不是四十万是四十五万: a spoken self-correction followed by the right figure.
    r"|^\s*[，,]?\s*[哦噢啊呃嗯额]?\s*(?:不是|不对|不不)\s*[，,]?\s*(?=[\d零一二两三四五六七八九十])"
)
_CORRECTED_BEFORE = re.compile(r"(?:不是|误写成|写成了|错写成)\s*$")
_WATT_CONTEXT = re.compile(r"(?:功率|电机|马达|瓦|额定|光源|灯|激光|加热|风机|电源|逆变|输出)")
_PRICE_CONTEXT = re.compile(
    r"(?:价|报|卖|费|款|钱|预算|金额|成本|还价|砍到|便宜|贵|[一每单][台套只个件支根条片吨箱瓶盒桶]"
    # 最多畀一千 / 至少给八百: an offer is money even without a currency word.
    r"|(?:最多|最少|至少|顶多|只能|只肯)\s*(?:给|畀|出|付|肯给|肯出|能给))"
)
_PRICE_LABEL = re.compile(
    r"(?:价|报了|报到|预算|金额|费用|花了|付了|尾款|定金|货款|回款|总额|合计|共计|优惠到|降到|砍到|还到|压到|谈到|"
    r"做到|涨到|卖|收费|折后|到手|实付|应付|开票|付|费|租金|月租|年租|月供)[^\d号码]{0,4}$"
)
_ID_BEFORE = re.compile(r"(?:号|编号|单号|型号|码|No\.?|#)\s*[:：]?\s*$")
# 预算整体不能超过七十个: the budget word may sit a few words before the figure.
_BUDGET_BEFORE = re.compile(r"(?:预算|批了|只批|批的|批复|批下来|经费|投资|资金|拨了|只给|给了)[^\d，,。；;！!？?]{0,8}$")
_BOUND_AFTER = re.compile(r"^\s*(?:以内|之内|以下|以上|上下|左右)")
_BOUND_BEFORE = re.compile(r"(?:不超过|不高于|不低于|最多|最少|至少|最高|最低|约|大约|大概)\s*(?:只)?(?:给|畀|出|付|能给|肯给|肯出)?\s*$")


def _cn_int(s: str) -> tuple[int, int] | None:
    """(min, max) of a Chinese integer numeral without 万/亿; 几 gives 1..9.

    Handles 十/二十七/三百零五/两千/几十/十几, colloquial tails after 百/千 (三千八 = 3800,
    六百五 = 650) and collapsed neighbours (四五十 = 40..50, 三五 = 3..5, 一两 = 1..2).
    """
    if not s:
        return None
    # Collapsed neighbours: two different digits, then an optional small unit.
    m = re.fullmatch(r"(.*[十百千])?([一二两三四五六七八九])([一二两三四五六七八九])([十百千])?", s)
    if m:
        a, b = _DIGIT[m.group(2)], _DIGIT[m.group(3)]
        head_text = m.group(1) or ""
        head = _cn_int_exact(head_text) if head_text else 0
        if a >= b or head is None:
            return None
        if m.group(4):
            unit = _SMALL[m.group(4)]
            if head_text and unit >= _SMALL[head_text[-1]]:
                return None
        else:
            # 十二三 = 12..13, 三千五六 = 3500..3600: the digits count in the next unit down.
            unit = _SMALL[head_text[-1]] // 10 if head_text else 1
        return head + a * unit, head + b * unit
    if "几" in s:
        lo = _cn_int_exact(s.replace("几", "一"))
        hi = _cn_int_exact(s.replace("几", "九"))
        if lo is None or hi is None:
            return None
        if s.startswith("几") and len(s) > 1:  # 几十 = 10..90 (一十 = 10)
            return lo, hi
        return lo, hi
    v = _cn_int_exact(s)
    return (v, v) if v is not None else None


def _cn_int_exact(s: str) -> int | None:
    # Colloquial tail: a lone digit after 百/千 scales by a tenth of that unit.
    m = re.fullmatch(r"(.*[百千])([一二两三四五六七八九])", s)
    if m and m.group(1) and _cn_int_exact(m.group(1)) is not None:
        head = _cn_int_exact(m.group(1))
        unit = _SMALL[m.group(1)[-1]]
        assert head is not None
        return head + _DIGIT[m.group(2)] * unit // 10
    total, digit, last_unit = 0, None, 10_000
    for ch in s:
        if ch in _DIGIT:
            if digit is not None and _DIGIT[ch] != 0 and digit != 0:
                return None  # two digits in a row: not a numeral we know
            digit = _DIGIT[ch]
        elif ch in _SMALL:
            unit = _SMALL[ch]
            if unit >= last_unit:
                return None
            total += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
        else:
            return None
    if digit:
        total += digit
    return total if s.strip("零〇") else 0


def _numeral(text: str) -> tuple[float, float] | None:
    if "点" in text and not text[0].isdigit():
        whole, _, frac = text.partition("点")
        w = _cn_int_exact(whole)
        if w is None or not frac or any(ch not in _DIGIT for ch in frac):
            return None
        v = float(f"{w}." + "".join(str(_DIGIT[ch]) for ch in frac))
        return v, v
    if text[0].isdigit():
        if text.endswith("多"):
            # 50多万 = 51..59万, like 五十几万; 100多万 = 110..190万.
            n = int(text[:-1])
            zeros = len(text[:-1]) - len(text[:-1].rstrip("0"))
            if zeros == 0:
                return float(n), float(n)
            step = 10 ** (zeros - 1)
            return float(n + step), float(n + 9 * step)
        v = float(text.replace(",", ""))
        return v, v
    if text.endswith("多"):
        base = _cn_int(text[:-1])
        if base is None or base[0] != base[1]:
            return None
        # 十多 = 11..19 like 十几; 一百多 = 101..199.
        scale = 10 if text[-2] == "十" else _SMALL.get(text[-2], 1)
        return base[0] + 1, base[0] + scale - 1
    r = _cn_int(text)
    return (float(r[0]), float(r[1])) if r else None


@dataclass
class _Cand:
    start: int
    end: int
    lo: float
    hi: float
    has_unit: bool  # a multiplier (万/亿/w/k) or a currency word/prefix
    money: bool  # certainly money (currency word or prefix)
    unit: str | None
    ge: bool  # 个 between numeral and unit, or bare 个 slang
    chinese: bool


def _scan(t: str) -> list[_Cand]:
    cands: list[_Cand] = []
    pos = 0
    while True:
        m = _CANDIDATE.search(t, pos)
        if m is None:
            break
        pos = m.end()
        num = m.group("num")
        if not num[0].isdigit() and len(num) > 1 and _numeral(num) is None:
            # 六百五一套: the run swallowed the next word's 一; keep the longest numeral prefix.
            cut = next((k for k in range(len(num) - 1, 0, -1) if _numeral(num[:k]) is not None), 0)
            if cut:
                k = m.start("num") + cut
                m = _CANDIDATE.match(t[:k] + "\x00" + t[k + 1:], m.start())
                if m is None:
                    continue
                pos = m.end()
                num = m.group("num")
        # Digits glued to letters or other digits are ids and model numbers (LX-1204C, PO-2026).
        if not m.group("pre") and _GLUED.search(t, max(0, m.start("num") - 2), m.start("num")) \
                and not _RANGE_AFTER_UNIT.search(t, max(0, m.start("num") - 8), m.start("num")):
            continue
        if num[0] in "零〇" or num in ("十", "百", "千"):
            if not m.group("unit") and not m.group("cur"):
                continue
        if num in ("千", "百", "万") and m.group("unit") == "万" and not (m.group("cur") or m.group("pre")):
            after_unit = t[m.end("unit"):m.end("unit") + 2]
            if re.match(r"[别不要记得注小莫勿一级量富]", after_unit) or t[m.start() - 1:m.start()] in ("上", "数", "几"):
                continue  # 千万别忘了 / 百万级 / 上千万: adverbs and orders of magnitude
        if not (m.group("unit") or m.group("cur") or m.group("pre") or m.group("lai")):
            # Most bare numbers (一家, 3台, 2号) are not money: keep only those a later rule
            # may use (range starts, 八十个 slang, 一千三-style prices, labelled figures).
            nxt = t[m.end():m.end() + 3].lstrip()[:1]
            if not (
                (nxt and nxt in "-~到至—")
                or nxt == "个"
                or (not num[0].isdigit() and ("百" in num or "千" in num))
                or (num[0].isdigit() and _arabic_price_context(t, m.start(), m.end()))
            ):
                continue
        value = _numeral(num)
        if value is None:
            continue
        lo, hi = value
        unit = m.group("unit")
        mult = _BIG.get(unit or "", 1)
        tail = m.group("tail")
        cur = m.group("cur")
        end = m.end()
        sub = m.group("sub")
        if sub and unit in ("万", "亿") and lo == hi:
            sv = _cn_int(re.sub(r"\d", lambda d: "零一二三四五六七八九"[int(d.group(0))], sub))
            if sv is None:
                end = m.start("sub")
                tail = cur = None
            else:
                lo = hi = lo * mult + sv[0] * (mult // 10_000)
                mult = 1
                tail = None
        if tail and unit in ("万", "亿", "w", "W", "千") and lo == hi and num[-1] not in "几多":
            tv = int(tail) if tail.isdigit() else _DIGIT[tail]
            lo = hi = lo * mult + tv * mult / 10
            mult = 1
        elif tail:
            # A tail digit that is not a colloquial tail (e.g. 元 missing): do not swallow it.
            end = m.start("tail")
            cur = None
        lo, hi = lo * mult, hi * mult
        if cur == "元" and not num[0].isdigit() and lo < 10 and not m.group("pre") and not _PRICE_CONTEXT.search(
            t[max(0, m.start() - 6):m.start()] + t[end:end + 3]
        ):
            continue  # 三元 / 五元 in prose are usually names (三明市三元区), not prices
        if cur in ("毛", "毛钱", "角"):
            if lo >= 100 or not (t[end:end + 1] in "" or not ("\u4e00" <= t[end:end + 1] <= "\u9fff") or t[end:end + 1] in "钱一每左的"):
                continue  # 毛 as hair/wool (三毛, 羊毛), not money
            lo, hi = lo / 10, hi / 10
        if m.group("jiao"):
            j = m.group("jiao")
            step = 100 if cur in ("毛", "角") else 10
            lo = hi = lo + (int(j) if j.isdigit() else _DIGIT[j]) / step
        if cur == "块" and not m.group("jiao"):
            nxt = t[end:end + 1]
            small_cn = not num[0].isdigit() and lo < 10 and not _PRICE_CONTEXT.search(t[max(0, m.start() - 6):m.start()])
            # 定金一万块今天打: a price word before, or a time word after, makes 块 the currency.
            priced = bool(_PRICE_LABEL.search(t, max(0, m.start() - 8), m.start()) or _PRICE_CONTEXT.search(
                t[max(0, m.start() - 6):m.start()])) or nxt in ("今", "明", "昨", "已", "都", "就", "也", "还")
            measure_next = not priced and bool(nxt) and (
                "\u4e00" <= nxt <= "\u9fff" and nxt not in "钱一每左上多的洋之以吧啊呢了" or (nxt.isascii() and nxt.isalpha())
            )
            if measure_next or small_cn:
                # 两块电路板: 块 is a measure word here.
                cur = None
                end = m.start("cur")
        if cur is None and m.group("cur") and end > m.start("cur"):
            end = m.start("cur")
        cands.append(_Cand(
            start=m.start(), end=end, lo=lo, hi=hi,
            has_unit=bool(unit or cur or m.group("pre")), money=bool(cur or m.group("pre")),
            unit=unit, ge=bool(m.group("ge")), chinese=not num[0].isdigit(),
        ))
    return cands


def _is_money(c: _Cand, t: str) -> bool:
    before = t[max(0, c.start - 8):c.start]
    after = t[c.end:c.end + 6]
    if _FOREIGN_BEFORE.search(before) or _FOREIGN_AFTER.match(after):
        return False
    if after[:1] in ("%", "‰") or re.match(r"^\s*(?:折|成(?![本交])|个点|点(?![钟半]))", after):
        return False
    if _ID_BEFORE.search(before):
        return False  # 型号2000W, 编号: 300K
    if c.money:
        return True
    counted = after.lstrip("多余来 ")
    if (counted[:1] in _MEASURE or counted.startswith(_NON_MONEY_UNITS)) and not re.match(r"^(?:个[wW万亿])", counted):
        return False
    if c.unit in ("w", "W") and not c.chinese and (
        _WATT_CONTEXT.search(t[max(0, c.start - 6):c.start]) or _WATT_CONTEXT.match(after)
    ):
        return False
    if c.unit in ("万", "亿", "w", "W", "千", "千万", "百万"):
        return True
    if c.unit in ("k", "K") and re.search(r"(?:分辨率|像素|画质|显示|屏|视频|摄像|电视)", t[max(0, c.start - 6):c.start]):
        return False
    if c.unit in ("k", "K"):
        # 2.3k? / 3k左右 are prices; 4K显示器, 10kV are not.
        return not re.match(r"^[A-Za-z]", after) and not re.match(r"^[\u4e00-\u9fff](?<![左上以一每元块的吧啊呢了之到至])", after)
    return False


_PRICE_AFTER = re.compile(r"\s*(?:的)?(?:定金|订金|押金|尾款|首付|预付款|货款|运费|服务费|维保费|差价|块钱|元钱)")
_PER_UNIT = r"(?:台|套|只|个|件|支|片|米|吨|箱|根|条|张|块|瓶|盒|桶|平米|平方)"
_PER_UNIT_AFTER = re.compile(r"\s*(?:/|一|每)\s*" + _PER_UNIT)
# 一个 is also the plain article (还有一个0755开头的), so it does not mark a unit price before.
_PER_UNIT_BEFORE = re.compile(r"(?:一(?!个)|每|单)" + _PER_UNIT + r"\s*(?:是|要|卖|报|价|:|：)?\s*$")


def _arabic_price_context(t: str, start: int, end: int) -> bool:
    """Whether a bare arabic figure sits where a price is said (报价…, 一台…, …/台)."""
    return bool(
        _PRICE_LABEL.search(t, max(0, start - 8), start)
        or _PER_UNIT_AFTER.match(t, end)
        or _PER_UNIT_BEFORE.search(t, max(0, start - 8), start)
    )


def _bare_price(c: _Cand, t: str, allow_range: bool = False) -> bool:
    """A unitless figure that is a price only by its context (价格照旧一千三, 单价450).

    ``allow_range``: the figure ends a range (3000-4000一台), so the price context may
    sit before the whole range."""
    before = t[max(0, c.start - 8):c.start]
    after = t[c.end:c.end + 4]
    if after[:1] in _MEASURE or after[:1] in ("%", "点", "折", "成", "号", "月", "日", "天", "年", "周", ":", "."):
        return False
    if _FOREIGN_BEFORE.search(before) or _FOREIGN_AFTER.match(after):
        return False
    if not c.chinese:
        num = t[c.start:c.end]
        if _ID_BEFORE.search(before) or c.lo != c.hi or (num.startswith("0") and not num.startswith("0.")):
            return False  # ids, area codes (0755…)
        if _PRICE_AFTER.match(t, c.end):
            return c.lo >= 10  # 3000定金, 500运费
        if _PER_UNIT_AFTER.match(t, c.end) or _PER_UNIT_BEFORE.search(t, max(0, c.start - 8), c.start):
            return c.lo >= 10  # 一台4800 / 4800一台 / 4800/台
        if re.match(r"^\s*[A-Za-z\d年月日号点:.%/]", after):
            return False
        return bool(_PRICE_LABEL.search(before)) and c.lo >= 100
    if c.lo < 100:
        return False
    around = before + t[c.end:c.end + 4]
    if _PRICE_CONTEXT.search(around):
        return True  # 三四千一台, 价格一千三
    if c.lo != c.hi:
        return False
    # A colloquial tail (两千四, 七百八) said with 左右/上下 or "per unit" is a price.
    num = t[c.start:c.end]
    return bool(re.search(r"[千百][一二三四五六七八九]$", num)) and bool(
        re.match(r"^\s*(?:左右|上下|一[台套个只件])", after + t[c.end + 4:c.end + 6])
    )


def _bound_span(t: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span over 约/最多/以内/左右… so the reported text reads naturally."""
    mb = _BOUND_BEFORE.search(t[max(0, start - 4):start])
    if mb:
        start -= len(mb.group(0))
    ma = _BOUND_AFTER.match(t[end:end + 4])
    if ma:
        end += len(ma.group(0))
    return start, end


def extract_amounts(text: str) -> list[dict[str, object]]:
    """Every RMB amount in ``text`` as ``{"text": span, "yuan_min": n, "yuan_max": n}``."""
    t = fold(text)
    if "伍" in t or "陆" in t or "陸" in t:
        t = _CAPITAL.sub(lambda m: "五" if m.group(0) == "伍" else "六", t)
    cands = _scan(t)
    out: list[dict[str, object]] = []
    seen: set[tuple[float, float]] = set()
    i = 0
    while i < len(cands):
        c = cands[i]
        lo, hi, start, end = c.lo, c.hi, c.start, c.end
        money = _is_money(c, t)
        # A range: this figure, a separator, then a figure with a unit (80-120W, 七到九个W).
        if i + 1 < len(cands):
            n = cands[i + 1]
            sep = _RANGE_SEP.fullmatch(t[c.end:n.start])
            n_money = _is_money(n, t) or (not n.has_unit and not c.has_unit and _bare_price(n, t, allow_range=True))
            if sep and n_money and (money or not c.has_unit):
                if not c.has_unit and n.unit:
                    mult = _BIG[n.unit]
                    lo, hi = c.lo * mult, c.hi * mult
                elif not c.has_unit and c.lo < 10 and re.fullmatch(r"[一二两三四五六七八九][十百千]", t[n.start:n.start + 2]):
                    # 六到八千 / 三到五百: the magnitude is said once, on the second figure.
                    mult = _SMALL[t[n.start + 1]]
                    lo, hi = c.lo * mult, c.hi * mult
                if lo <= n.hi:
                    lo, hi, end, money = lo, n.hi, n.end, True
                    i += 1
        if not money and _is_slang_budget(c, t):
            lo, hi, money = c.lo * 10_000, c.hi * 10_000, True
            end = c.end + (1 if t[c.end:c.end + 1] == "个" else 0)
        if not money and not c.has_unit and _bare_price(c, t):
            money = True
        i += 1
        if not money or hi <= 0:
            continue
        if _CORRECTED_AFTER.match(t[end:end + 6]) or _CORRECTED_BEFORE.search(t[max(0, start - 4):start]):
            continue
        key = (round(lo, 2), round(hi, 2))
        if key in seen:
            continue
        seen.add(key)
        s, e = _bound_span(t, start, end)
        out.append({"text": text[s:e].strip(), "yuan_min": _num(lo), "yuan_max": _num(hi)})
    return out


def _is_slang_budget(c: _Cand, t: str) -> bool:
    """领导只批了八十个: 万 left unsaid after a budget word (never for counted things)."""
    if c.has_unit or c.lo < 1 or c.lo > 9999:
        return False
    if t[c.end:c.end + 1] != "个":
        return False
    nxt = t[c.end + 1:c.end + 2]
    if nxt and "\u4e00" <= nxt <= "\u9fff" and nxt not in "吧啊呢了的左上":
        return False
    return bool(_BUDGET_BEFORE.search(t[max(0, c.start - 8):c.start]))


def _num(v: float) -> int | float:
    r = round(v, 2)
    return int(r) if r == int(r) else r
