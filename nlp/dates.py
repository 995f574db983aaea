"""Time expressions in sales chat, resolved to calendar days.

The resolution table is the spec's (extraction/README.md, "dates"): relative days,
weekdays (weeks run Monday–Sunday; a bare 周X is the first such day *after* the
reference day; 这周/下周 alone are that week's Sunday), X号 / X月X日 at the occurrence
closest to the reference, month parts (初/上旬 = 10th, 中旬 = 20th, 下旬/底 = last day),
quarters and half years at their last day, years at 12-31, N天内, and holiday-relative
words through the State Council calendar in ``nlp.calendar``.

Each segment of a forwarded record resolves against its own reference time (the
timestamp of its line); stamps are not in the segments, so they never become dates.

Not dates: durations (交货期30天, 试用两周), vague words (近期, 回头, 尽快), greetings
(中秋节快乐), and digits inside ids and model numbers (2号轧机, PO-2026-0611).
"""

from __future__ import annotations

import calendar as _stdcal
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from nlp import calendar as bizcal
from nlp.chat import Segment
from nlp.normalize import fold

# --- numbers -------------------------------------------------------------------------

_CN = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
       "八": 8, "九": 9}


def _num(s: str) -> int | None:
    """A small number written in digits or Chinese (十五, 二十八, 三十一, 7)."""
    if not s:
        return None
    if s.isdigit():
        return int(s)
    if s == "半":
        return None
    if "十" in s:
        head, _, tail = s.partition("十")
        if (head and head not in _CN) or (tail and tail not in _CN):
            return None
        return (_CN[head] if head else 1) * 10 + (_CN[tail] if tail else 0)
    if len(s) == 1 and s in _CN:
        return _CN[s]
    return None


# --- calendar helpers ----------------------------------------------------------------

def _month_end(y: int, m: int) -> date:
    return date(y, m, _stdcal.monthrange(y, m)[1])


def _add_months(y: int, m: int, k: int) -> tuple[int, int]:
    idx = y * 12 + (m - 1) + k
    return idx // 12, idx % 12 + 1


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _closest(cands: list[date | None], ref: date) -> date | None:
    """The candidate nearest to ``ref``; on a tie the future one."""
    best: date | None = None
    for c in cands:
        if c is None:
            continue
        if best is None or abs((c - ref).days) < abs((best - ref).days) or (
            abs((c - ref).days) == abs((best - ref).days) and c > best
        ):
            best = c
    return best


def _week_monday(ref: date, weeks: int) -> date:
    return ref - timedelta(days=ref.weekday()) + timedelta(weeks=weeks)


_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 6,
            "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}


def _week_offset(prefix: str | None) -> int | None:
    """How many weeks from the reference week a 这/下/上… prefix means (None: no prefix)."""
    if not prefix:
        return None
    p = prefix.replace("个", "")
    # 下趟 (Shanghainese: next), 迭个/搿个 (Shanghainese: this), 呢个 (Cantonese: this).
    return {"这": 0, "本": 0, "今": 0, "迭": 0, "搿": 0, "呢": 0, "下": 1, "下趟": 1, "下下": 2,
            "上": -1, "上上": -2}.get(p)


# Festival days (lunar ones looked up) for the years we may meet. Holiday *periods* come
# from the State Council tables in nlp.calendar.
_FESTIVAL_DAYS: dict[str, dict[int, date]] = {
    "春节": {2025: date(2025, 1, 29), 2026: date(2026, 2, 17), 2027: date(2027, 2, 6)},
    "除夕": {2025: date(2025, 1, 28), 2026: date(2026, 2, 16), 2027: date(2027, 2, 5)},
    "元宵": {2025: date(2025, 2, 12), 2026: date(2026, 3, 3), 2027: date(2027, 2, 20)},
    "清明": {2025: date(2025, 4, 4), 2026: date(2026, 4, 5), 2027: date(2027, 4, 5)},
    "端午": {2025: date(2025, 5, 31), 2026: date(2026, 6, 19), 2027: date(2027, 6, 9)},
    "中秋": {2025: date(2025, 10, 6), 2026: date(2026, 9, 25), 2027: date(2027, 9, 15)},
}
_FIXED_DAYS = {"元旦": (1, 1), "劳动节": (5, 1), "国庆": (10, 1), "双十一": (11, 11), "双十二": (12, 12)}
_HOLIDAY_ALIASES = {
    "元旦": "元旦", "春节": "春节", "过年": "春节", "新年": "春节", "年": "春节", "清明": "清明", "清明节": "清明",
    "五一": "劳动节", "劳动节": "劳动节", "端午": "端午", "端午节": "端午", "中秋": "中秋", "中秋节": "中秋",
    "国庆": "国庆", "国庆节": "国庆", "十一": "国庆", "元宵": "元宵", "元宵节": "元宵", "除夕": "除夕",
    "年三十": "除夕", "大年三十": "除夕", "双十一": "双十一", "双11": "双十一", "双十二": "双十二", "双12": "双十二",
}


def _festival_day(name: str, ref: date) -> date | None:
    if name in _FIXED_DAYS:
        m, d = _FIXED_DAYS[name]
        return _closest([date(ref.year + k, m, d) for k in (-1, 0, 1)], ref)
    table = _FESTIVAL_DAYS.get(name)
    if not table:
        return None
    return _closest([table.get(ref.year + k) for k in (-1, 0, 1)], ref)


def _holiday_period(name: str, ref: date) -> bizcal.Holiday | None:
    """The official days-off run of ``name`` nearest to ``ref`` (None if not published)."""
    best: bizcal.Holiday | None = None
    best_key: tuple[int, int] | None = None
    for year in (ref.year - 1, ref.year, ref.year + 1):
        for h in bizcal.holidays(year):
            if h.name != name:
                continue
            dist = 0 if h.start <= ref <= h.end else min(abs((h.start - ref).days), abs((h.end - ref).days))
            key = (dist, 0 if h.start >= ref else 1)
            if best_key is None or key < best_key:
                best, best_key = h, key
    if best is not None:
        # A festival day known for a year whose table is missing is nearer: out of scope.
        fday = _festival_day(name, ref) if name in _FESTIVAL_DAYS or name in _FIXED_DAYS else None
        if fday is not None and not (best.start - timedelta(days=3) <= fday <= best.end + timedelta(days=3)):
            if abs((fday - ref).days) < (best_key or (0, 0))[0]:
                return None
    return best


def _context_holiday(ref: date) -> bizcal.Holiday | None:
    """The holiday an unnamed 节前/节后 means: the one in progress; else one starting
    within a week; else one that ended at most three days ago (节前说好的 said just after
    it); else the next one. When two holidays sit a few days apart (中秋 then 国庆), the
    spec reads the unnamed 节 in late September as the later, longer one."""
    runs = sorted(
        (h for y in (ref.year - 1, ref.year, ref.year + 1) for h in bizcal.holidays(y)),
        key=lambda h: h.start,
    )
    chosen: bizcal.Holiday | None = None
    past = [h for h in runs if h.end < ref]
    future = [h for h in runs if h.start > ref]
    for h in runs:
        if h.start <= ref <= h.end:
            chosen = h
            break
    else:
        if future and (future[0].start - ref).days <= 7:
            chosen = future[0]
        elif past and (ref - past[-1].end).days <= 3:
            chosen = past[-1]
        else:
            chosen = future[0] if future else None
    if chosen is not None:
        nxt = [h for h in runs if h.start > chosen.end]
        if nxt and (nxt[0].start - chosen.end).days <= 7 and ref >= chosen.start - timedelta(days=7):
            chosen = nxt[0]
    return chosen


def _just_before_holiday(ref: date) -> bool:
    """True on the last working day before a holiday (节前最后一天 said on that day)."""
    h = bizcal.holiday_on(bizcal.next_workday(ref) - timedelta(days=1))
    return h is not None and _before(h) == ref


def _just_after_holiday(ref: date) -> bool:
    """True on the first working day after a holiday (节后第一天 said on that day)."""
    h = bizcal.holiday_on(bizcal.previous_workday(ref) + timedelta(days=1))
    return h is not None and _after(h) == ref


def _before(h: bizcal.Holiday) -> date:
    return bizcal.previous_workday(h.start)


def _after(h: bizcal.Holiday) -> date:
    return bizcal.next_workday(h.end)


# --- expression rules ----------------------------------------------------------------

_N = r"(?:\d{1,2}|[一二三四五六七八九十两]{1,3})"
_YEAR = r"(?P<y>今年|明年|来年|去年|后年|前年|20\d\d年|(?<!\d)\d\d年)"
# Time of day and bound words that may trail a date: absorbed into the span only.
_TOD = (
    r"(?:上午|下午|晚上|早上|中午|傍晚|凌晨|一早|早|晚|白天|夜里)?"
    r"(?:\d{1,2}(?::\d{2}|点(?:半|\d{1,2}分?)?)|[一二三四五六七八九十]{1,3}点(?:半|[一二三四五六七八九十]{1,3}分?)?)?"
)
_BOUND = r"(?:前|之前|以前|左右|以内|之内|内|之后|以后|后)?"


@dataclass
class _Hit:
    start: int
    end: int
    day: date | None
    kind: str


_Resolver = Callable[[re.Match[str], date], date | None]
# The characters a rule's match can start with: a leading lookahead on them lets the
# regex engine skip most positions cheaply.
_FIRST_CHARS: dict[str, str] = {
    "_relative_day": "[大前昨琴寻今明后听]",
    "_holiday_day": "[元春过新清五劳端中国除大年双十]",
    "_holiday_relative": "[元春过新清五劳端中国除大年双十]",
    "_holiday_span": "[元春过新清五劳端中国除大年双十]",
    "_bare_tod": "[上下]",
    "_weekday": "[下上这本周星礼迭搿呢]",
    "_week": "[下上这本迭搿呢]",
    "_quarter": "[今明来去后前2\\dQ第一二三四]",
    "_rel_quarter": "[本这当下上季]",
    "_unnamed_holiday": "[节放收假]",
    "_within": "[\\d一二三四五六七八九十两半]",
    "_month_day": "[今明来去后前\\d一二三四五六七八九十两]",
    "_month": "[今明来去后前\\d一二三四五六七八九十两]",
    "_day_of_month": "[\\d一二三四五六七八九十两]",
    "_year": "[今明来去后前本2]",
    "_half": "[今明来去后前2\\d上下]",
    "_rel_month": "[下上这本当]",
    "_lunar_new_year_day": "[正大初元]",
}
_RULES: list[tuple[re.Pattern[str], re.Pattern[str], str, _Resolver]] = []


def _rule(pattern: str, gate: str, kind: str = "day") -> Callable[[_Resolver], _Resolver]:
    """Register a rule. ``gate`` is a cheap pattern the text must contain for the rule to
    be tried at all: most messages name no quarter or holiday, and the full patterns,
    which start with optional prefixes, are slow to scan."""
    def deco(fn: _Resolver) -> _Resolver:
        first = _FIRST_CHARS.get(fn.__name__)
        full = f"(?={first}){pattern}" if first else pattern
        _RULES.append((re.compile(gate), re.compile(full), kind, fn))
        return fn
    return deco


def _year_of(y: str | None, ref: date) -> int | None:
    if not y:
        return None
    rel = {"今年": 0, "明年": 1, "来年": 1, "去年": -1, "后年": 2, "前年": -2}
    if y in rel:
        return ref.year + rel[y]
    digits = y.rstrip("年")
    if len(digits) == 2:
        return 2000 + int(digits)
    return int(digits)


_REL_DAYS = {
    "大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "昨晚": -1, "昨儿": -1, "琴日": -1, "寻日": -1,
    "今天": 0, "今日": 0, "今早": 0, "今晚": 0, "今晨": 0, "今夜": 0, "今儿": 0, "今朝": 0, "今个": 0,
    "明天": 1, "明日": 1, "明早": 1, "明晚": 1, "明儿": 1, "听日": 1, "明朝": 1,
    "后天": 2, "后日": 2, "听朝": 1, "大后天": 3,
}


@_rule(r"(?P<w>大前天|大后天|前天|昨天|昨日|昨晚|昨儿|琴日|寻日|今天|今日|今早|今晚|今晨|今夜|今儿|今朝|今个"
       r"|明天|明日|明早|明晚|明儿|听日|听朝|明朝(?![代朝人时])|后天(?!性)|(?<![之以今前日])后日)" + _TOD + _BOUND, "[天日早晚朝儿个夜晨]")
def _relative_day(m: re.Match[str], ref: date) -> date | None:
    return ref + timedelta(days=_REL_DAYS[m.group("w")])


@_rule(r"(?<![今明昨天日早晚号周末])(?:上午|下午)" + _TOD, "午", kind="tod")
def _bare_tod(m: re.Match[str], ref: date) -> date | None:
    return ref


_SURNAME_ZHOU = re.compile(
    r"[\u4e00-\u9fff]{0,2}(?:经理|主任|老师|先生|女士|小姐|博士|院长|厂长|部长|科长|处长|总监|主管|工程师|董事长"
    r"|[总工](?=[,，。:：\s的说讲在让跟和]|$))"
)


@_rule(
    r"(?<![每隔一两几\d个])(?P<wp>下下个?|下个?|上上个?|上个?|这个?|本|下趟|迭个|搿个|呢个)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7])"
    r"(?![一二三四五六七八九十\d])(?!(?<=一)[共起样直下点些定般致切次遍])" + _TOD + _BOUND
, "[周期拜]")
def _weekday(m: re.Match[str], ref: date) -> date | None:
    wd = _WEEKDAY[m.group("wd")]
    off = _week_offset(m.group("wp"))
    if off is None:
        if m.group("wp"):
            return None
        if m.group(0).startswith("周") and m.end() == m.end("wd") and _SURNAME_ZHOU.match(m.string, m.end()):
            return None  # 周一鸣经理: the surname 周 with a given name, not Monday
        # A bare weekday is the first such day after the reference day.
        delta = (wd - ref.weekday()) % 7 or 7
        return ref + timedelta(days=delta)
    return _week_monday(ref, off) + timedelta(days=wd)


@_rule(r"(?<![每隔一两三四几\d])(?P<wp>下下个?|下个?|上上个?|上个?|这个?|本|下趟|迭个|搿个|呢个)(?:周|星期|礼拜)(?![二三四五六日天2-7年]|一(?![共起样直下点些定般致切次遍]))"
       r"(?:末)?(?:内|之内|以内|前|之前)?", "[周期拜]")
def _week(m: re.Match[str], ref: date) -> date | None:
    off = _week_offset(m.group("wp"))
    return None if off is None else _week_monday(ref, off) + timedelta(days=6)


@_rule(r"(?<![每个双一两三四几上下这本])周末(?:前|之前)?(?!愉快|快乐|好|玩|开心)", "周末")
def _weekend(m: re.Match[str], ref: date) -> date | None:
    return _week_monday(ref, 0) + timedelta(days=6)


@_rule(r"(?<![\d.\-/A-Za-z])(?P<y>20\d\d)[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})(?:日|号)?(?![\d])" + _TOD + _BOUND, "\\d[-/.年]\\d")
def _full_date(m: re.Match[str], ref: date) -> date | None:
    return _safe_date(int(m.group("y")), int(m.group("m")), int(m.group("d")))


@_rule(r"(?:" + _YEAR + r")?(?<![\d.\-/A-Za-z])(?P<m>" + _N + r")月(?P<d>" + _N + r")(?:日|号)?(?![\d万])" + _TOD + _BOUND, "月")
def _month_day(m: re.Match[str], ref: date) -> date | None:
    mo, d = _num(m.group("m")), _num(m.group("d"))
    if mo is None or d is None or not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    year = _year_of(m.group("y"), ref)
    if year is not None:
        return _safe_date(year, mo, d)
    return _closest([_safe_date(ref.year + k, mo, d) for k in (-1, 0, 1)], ref)


@_rule(r"(?P<rm>下下个?|下个?|上个?|这个?|本|当)月(?P<d>" + _N + r")(?:日|号)" + _TOD + _BOUND, "月")
def _rel_month_day(m: re.Match[str], ref: date) -> date | None:
    off = {"下下": 2, "下": 1, "上": -1, "这": 0, "本": 0, "当": 0}[m.group("rm").replace("个", "")]
    d = _num(m.group("d"))
    y, mo = _add_months(ref.year, ref.month, off)
    return _safe_date(y, mo, d) if d else None


# Words after N号 that make it a label (2号轧机, 3号线), not a day of the month.
_HAO_LABEL = ("机", "线", "楼", "车间", "门", "仓", "库", "位", "窗", "厂", "炉", "罐", "泵", "工位", "房", "院",
              "柜", "台", "件", "码", "文", "口", "桩", "站", "泊", "道", "轴", "轨", "梯", "床", "箱", "模", "槽",
              "杆", "塔", "井", "孔", "阀", "管", "缸", "桶", "料", "型", "店", "馆", "厅", "室", "地块", "标段",
              "包", "段", "产线", "货架", "区", "栋", "座", "单元", "病区", "病房", "手术", "会议室", "展位")


_HAO_THING = set(
    "机线楼车门仓库位窗厂炉罐泵房院柜台件码口桩站泊道轴轨梯床箱模槽杆塔井孔阀管缸桶料型店馆厅室区栋座"
    "包段轧工病展令球字舱柱辊池坑堆垛排列船锅釜屏卡板架刀钻电罐棚"
)


@_rule(r"(?<![\dA-Za-z第型编单账几月\-#])(?P<d>" + _N + r")(?P<u>号|日)(?![\d])" + _TOD + _BOUND, "[号日]")
def _day_of_month(m: re.Match[str], ref: date) -> date | None:
    d = _num(m.group("d"))
    if d is None or not 1 <= d <= 31:
        return None
    if m.group("u") == "日" and not re.search(r"\d|十", m.group("d")):
        return None  # 一日/三日 in prose are rarely calendar days
    after = m.string[m.end("u"):m.end("u") + 3]
    if after.startswith(_HAO_LABEL):
        return None
    # 2号轧机 / 3号线 / 5号楼: a numbered thing, not a day of the month.
    if m.end() == m.end("u") and after and after[0] in _HAO_THING:
        return None
    cands = []
    for k in (-1, 0, 1):
        y, mo = _add_months(ref.year, ref.month, k)
        cands.append(_safe_date(y, mo, d))
    return _closest(cands, ref)


@_rule(r"(?<![\d.\-/A-Za-z])(?P<m>1[0-2]|0?[1-9])[./](?P<d>3[01]|[12]\d|0?[1-9])(?![\d.%])"
       r"(?=前|之前|以前|当天|那天|上午|下午|晚上|截止|到期|发货|交货|到货|左右|之后|以后)" + _TOD + _BOUND,
       r"\d[./]\d")
def _dotted_month_day(m: re.Match[str], ref: date) -> date | None:
    """12.15前 / 3/31截止: month and day with a dot or slash, only before a time word
    (a bare 1.5 is a number, 3/4 a fraction)."""
    mo, d = int(m.group("m")), int(m.group("d"))
    return _closest([_safe_date(ref.year + k, mo, d) for k in (-1, 0, 1)], ref)


_PART = r"(?P<part>初|上中旬|中下旬|上旬|中旬|下旬|中(?![心国间层])|底|末|份)?"


def _month_part(y: int, mo: int, part: str | None) -> date:
    if part in ("初", "上旬"):
        return date(y, mo, 10)
    if part in ("中", "中旬", "上中旬"):
        return date(y, mo, 20)
    return _month_end(y, mo)


@_rule(r"(?:" + _YEAR + r")?(?<![\d.\-/A-Za-z个几])(?P<m>" + _N + r")月(?![\d一二三四五六七八九十])" + _PART + r"(?:前|之前|以前|内|之内|左右)?", "月", kind="month")
def _month(m: re.Match[str], ref: date) -> date | None:
    mo = _num(m.group("m"))
    if mo is None or not 1 <= mo <= 12:
        return None
    year = _year_of(m.group("y"), ref)
    if year is None:
        # The occurrence of that month closest to the reference month.
        # The occurrence of that month closest to the reference month, a tie going to
        # the future (the rule the spec gives for X月X日): six or more months behind is
        # next year's, seven or more ahead is last year's.
        delta = mo - ref.month
        year = ref.year + (1 if delta <= -6 else -1 if delta >= 7 else 0)
    return _month_part(year, mo, m.group("part"))


@_rule(r"(?<![\d一二三四五六七八九十])(?P<m1>[一二三四五六七八九]|1[0-1]|[1-9])(?P<m2>[二三四五六七八九十]|1[0-2]|[2-9])月份?", "月")
def _month_span(m: re.Match[str], ref: date) -> date | None:
    a, b = _num(m.group("m1")), _num(m.group("m2"))
    if a is None or b is None or not (1 <= a < b <= 12 and b - a <= 2):
        return None
    year = min((ref.year + k for k in (0, 1)), key=lambda yy: abs((yy * 12 + b) - (ref.year * 12 + ref.month)))
    return _month_end(year, b)


@_rule(r"(?<![每几两三四\d])(?P<rm>下下个?|下个?|上上个?|上个?|这个?|本|当)月" + _PART.replace("份)?", "份|内|之内)?")
       + r"(?:前|之前|以前|内|之内)?", "月", kind="month")
def _rel_month(m: re.Match[str], ref: date) -> date | None:
    off = {"下下": 2, "下": 1, "上上": -2, "上": -1, "这": 0, "本": 0, "当": 0}[m.group("rm").replace("个", "")]
    y, mo = _add_months(ref.year, ref.month, off)
    part = m.group("part")
    return _month_part(y, mo, None if part in ("内", "之内", "份") else part)


@_rule(r"(?<![个几两三四五六七八九十\d年上下这本当每])(?:月(?P<part>初|底|末|内|中(?![心国间层]))|(?P<p2>上中旬|中下旬|上旬|中旬|下旬))(?:前|之前|以前)?", "[月旬]", kind="month_part")
def _bare_month_part(m: re.Match[str], ref: date) -> date | None:
    part = m.group("part") or m.group("p2")
    return _month_part(ref.year, ref.month, None if part == "内" else part)


@_rule(r"(?:" + _YEAR + r")?(?:Q(?P<q>[1-4])(?![\d])|第?(?P<qc>[一二三四1-4])季度?)(?:末|底|内|之内|初)?(?:前|之前|以前)?", "[Q季]")
def _quarter(m: re.Match[str], ref: date) -> date | None:
    q = int(m.group("q")) if m.group("q") else _num(m.group("qc"))
    if q is None or not 1 <= q <= 4:
        return None
    if m.group("qc") and "季" not in m.group(0):
        return None
    year = _year_of(m.group("y"), ref) or ref.year
    return _month_end(year, q * 3)


@_rule(r"(?P<rq>本|这个?|当|下个?|上个?)?季度(?:末|底|最后一天)(?:前|之前)?|(?P<rq2>本|这个?|下个?|上个?)季度", "季")
def _rel_quarter(m: re.Match[str], ref: date) -> date | None:
    rq = (m.group("rq") or m.group("rq2") or "本").replace("个", "")
    off = {"本": 0, "这": 0, "当": 0, "下": 1, "上": -1}[rq]
    q = (ref.month - 1) // 3 + off
    y = ref.year + q // 4
    return _month_end(y, (q % 4) * 3 + 3)


@_rule(r"(?:" + _YEAR + r")?(?P<h>上|下)半年(?:最后一天)?", "半年")
def _half(m: re.Match[str], ref: date) -> date | None:
    year = _year_of(m.group("y"), ref) or ref.year
    return date(year, 6, 30) if m.group("h") == "上" else date(year, 12, 31)


@_rule(r"(?P<y>今年|明年|来年|去年|后年|前年|本年度?|20\d\d年)(?:年底|年末|年终|底|末|内|度)?(?:前|之前|以前)?"
       r"(?![\d一二三四五六七八九十QＱ第上下]|季|月|半|初|春节|元旦|五一|清明|端午|中秋|国庆|过年|年)", "年")
def _year(m: re.Match[str], ref: date) -> date | None:
    y = m.group("y")
    year = ref.year if y.startswith("本年") else _year_of(y, ref)
    return date(year, 12, 31) if year else None


@_rule(r"(?<![今明去来后前\d])(?:年底|年末|年终|年内)(?:前|之前|以前)?", "年[底末终内]")
def _year_end(m: re.Match[str], ref: date) -> date | None:
    return date(ref.year, 12, 31)


@_rule(r"(?P<n>\d{1,3}|[一二三四五六七八九十两半]{1,3})个?(?P<u>天|日|周|星期|礼拜|工作日)(?P<w>之内|以内|内|后|之后|以后)", "[内后]")
def _within(m: re.Match[str], ref: date) -> date | None:
    n = _num(m.group("n"))
    if n is None or n > 90:
        return None
    u = m.group("u")
    if m.group("w") in ("后", "之后", "以后") and u not in ("天", "周", "星期", "礼拜"):
        return None
    if u == "工作日":
        d = ref
        for _ in range(n):
            d = bizcal.next_workday(d)
        return d
    return ref + timedelta(days=n * (7 if u in ("周", "星期", "礼拜") else 1))


_HOLIDAY_NAMES = (r"(?P<name>元旦|春节|过年|新年|清明节?|五一|劳动节|端午节?|中秋节?|国庆节?|元宵节?|除夕|大年三十|年三十"
                  r"|双十一|双十二|双11|双12|(?<![\d一二三四五六七八九十百千万两])十一(?=前|之前|以前|后|之后|以后|假期|长假|期间|放假|黄金周|回来))")
_GREETING = r"(?!节?(?:快乐|安康|愉快|好|大吉|吉祥|如意|平安|礼|福利|红包))"


def _named(m: re.Match[str]) -> str:
    return _HOLIDAY_ALIASES.get(m.group("name"), m.group("name"))


@_rule(r"(?<![\d一二三四五六七八九十百千万两])" + _HOLIDAY_NAMES + r"节?(?:假期|长假|小长假|期间|放假期间|黄金周)"
       r"(?P<which>第一天|最后一天|头一天|结束)?" + _GREETING, "[假期黄]")
def _holiday_span(m: re.Match[str], ref: date) -> date | None:
    h = _holiday_period(_named(m), ref)
    if h is None:
        return None
    return h.start if m.group("which") in ("第一天", "头一天") else h.end


@_rule(r"(?<![\d一二三四五六七八九十百千万两])" + _HOLIDAY_NAMES + r"节?(?:放假|假期|长假|小长假|收假)?"
       r"(?P<ba>前(?!后)|之前|以前|后|之后|以后|过后|回来|过完|结束后)(?:第一天|最后一天|上班|开工)?", "[前后来完]")
def _holiday_relative(m: re.Match[str], ref: date) -> date | None:
    name = _named(m)
    h = _holiday_period(name, ref)
    before = m.group("ba") in ("前", "之前", "以前")
    if h is None:
        fday = _festival_day(name, ref)
        if fday is None or name == "春节":
            return None
        return bizcal.previous_workday(fday) if before else bizcal.next_workday(fday)
    return _before(h) if before else _after(h)


@_rule(r"(?<![\d一二三四五六七八九十百千万两几今明去来后前新跨整全半每当近多往数])年(?P<ba>前|后|之前|之后|以后)(?![天年])", "年[前后之以]")
def _lunar_year_relative(m: re.Match[str], ref: date) -> date | None:
    h = _spring_festival(ref)
    if h is None:
        return None
    return _before(h) if m.group("ba") in ("前", "之前") else _after(h)


def _spring_festival(ref: date) -> bizcal.Holiday | None:
    """The Spring Festival that 年前/年后 refer to: the coming one, or one that ended
    less than a month ago (None when that year's schedule is not published)."""
    h = _holiday_period("春节", ref)
    if h is None or (h.start - ref).days > 150 or (ref - h.end).days > 30:
        return None
    return h


@_rule(r"过完年|年过完|开年后", "年")
def _after_new_year(m: re.Match[str], ref: date) -> date | None:
    h = _spring_festival(ref)
    return _after(h) if h is not None else None


@_rule(r"(?<![\d一二三四五六七八九十百千万两])" + _HOLIDAY_NAMES + r"(?P<jie>节)?(?P<that>那天|当天|当日)?" + _GREETING, "[旦节年清五劳端中国元除十双]")
def _holiday_day(m: re.Match[str], ref: date) -> date | None:
    name = m.group("name")
    if name in ("国庆", "建国", "元旦", "五一", "清明", "中秋", "端午") and not (m.group("jie") or m.group("that")):
        # 甄国庆来电: a given name. A bare festival word follows punctuation or a function word.
        prev = m.string[m.start() - 1:m.start()]
        if prev and "\u4e00" <= prev <= "\u9fff" and prev not in "在到是等过趁从的了个年今明这那每逢到就再等于":
            return None
    return _festival_day(_named(m), ref)


@_rule(r"(?<![春中佳调季环细章情关礼音小使时脱拔])节(?P<ba>前|后)(?:最后一天|第一天|上班第一天|开工第一天|开工|上班)?"
       r"|(?<![不没])(?:放假|收假|假期结束)(?P<ba2>前|之前|后|之后|以后|回来)(?:第一天|最后一天|上班)?", "[节假]")
def _unnamed_holiday(m: re.Match[str], ref: date) -> date | None:
    before = (m.group("ba") or m.group("ba2")) in ("前", "之前")
    if not before and "第一天" in m.group(0) and _just_after_holiday(ref):
        return ref  # 节后第一天 said on that very day
    if before and "最后一天" in m.group(0) and _just_before_holiday(ref):
        return ref
    h = _context_holiday(ref)
    if h is None:
        return None
    return _before(h) if before else _after(h)


@_rule(r"(?:节后)?开工第一天|复工第一天|上班第一天(?=.{0,2}$)", "第一天")
def _first_workday_back(m: re.Match[str], ref: date) -> date | None:
    if _just_after_holiday(ref):
        return ref
    h = _context_holiday(ref)
    return _after(h) if h is not None else None


@_rule(r"(?<![月年当最起])(?:正月|大年)?初(?P<n>[一二三四五六七八九十])(?![步版稿期次中始级心衷见识赛])"
       r"(?:一早|早上|上午|下午|晚上)?|正月十五|元宵", "[初宵]")
def _lunar_new_year_day(m: re.Match[str], ref: date) -> date | None:
    sf = _festival_day("春节", ref)
    if sf is None or abs((sf - ref).days) > 60:
        return None
    n = _num(m.group("n")) if m.group("n") else 15
    return sf + timedelta(days=(n or 1) - 1)


_TRIGGERS = re.compile(
    r"[天日早晚朝午周星拜月号季半年Q节假初旦五一清端中国元宵除双内后前底末旬开]|\d[-/.]\d"
)


def _hits(text: str, ref: date) -> list[_Hit]:
    """Every rule match, then the longest non-overlapping ones (leftmost first)."""
    raw: list[_Hit] = []
    for gate, rx, kind, fn in _RULES:
        if not gate.search(text):
            continue
        for m in rx.finditer(text):
            if m.end() == m.start():
                continue
            try:
                day = fn(m, ref)
            except (ValueError, OverflowError):
                day = None
            raw.append(_Hit(m.start(), m.end(), day, kind))
    # Prefer longer spans; between equal spans, a resolved one.
    raw.sort(key=lambda h: (-(h.end - h.start), h.day is None, h.start))
    taken: list[_Hit] = []
    for h in raw:
        if all(h.end <= t.start or h.start >= t.end for t in taken):
            taken.append(h)
    taken.sort(key=lambda h: h.start)
    return taken


_SENTENCE = re.compile(r"[。;；!！?？\n]")


def extract_dates(segments: list[Segment], original: str | None = None) -> list[dict[str, str]]:
    """Every date expression in ``segments`` as ``{"text": span, "date": "YYYY-MM-DD"}``.

    Each segment resolves against ``segment.ref`` (its line's timestamp in a record).
    ``original``, the text as written before normalisation (same length), is where the
    spans are cut from when given; otherwise from the segments' own text.
    """
    out: list[dict[str, str]] = []
    for seg in segments:
        text = seg.text
        if not text:
            continue
        folded = fold(text)
        if not _TRIGGERS.search(folded):
            continue
        ref = seg.ref.date()
        hits = _hits(folded, ref)
        month_ctx: date | None = None  # the month a 下个月初… named, for a following bare 中旬
        for h in hits:
            if h.day is None:
                continue
            if h.kind == "month":
                month_ctx = h.day
            elif h.kind == "month_part" and month_ctx is not None:
                # 下个月初发货，中旬到货: the bare part continues the month just named.
                part = folded[h.start:h.end]
                key = next((p for p in ("上中旬", "中下旬", "上旬", "中旬", "下旬", "月初", "月中", "月底", "月末") if p in part), "")
                h.day = _month_part(month_ctx.year, month_ctx.month, key.replace("月", "") or None)
            if h.kind == "tod":
                # 上午/下午 alone mean today, unless a day was named before them in the same
                # sentence (明天过去，上午到): then they are that day's morning/afternoon.
                lo = max((mm.end() for mm in _SENTENCE.finditer(folded, 0, h.start)), default=0)
                if any(o is not h and o.day is not None and o.kind != "tod" and lo <= o.start < h.start for o in hits):
                    continue
            if original is not None:
                span = original[seg.start + h.start:seg.start + h.end]
            else:
                span = text[h.start:h.end]
            out.append({"text": span, "date": h.day.isoformat()})
    return out
