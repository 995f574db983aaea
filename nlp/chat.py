"""Split a forwarded chat record into speaker segments with per-line reference times.

Reps paste records from WeCom, Feishu and DingTalk, e-mails and group chats. The
formats seen in practice:

- ``Name: text`` / ``Name（role）：text`` lines;
- a header line ``Name [date] time`` followed by the content lines
  (``曾少华 6月12日 09:14``, ``Eric 12-06 16:02``, ``客户(谭经理) 10:32``,
  ``张三 2026-06-12 09:14:33``), or the stamp first (``09:14 曾少华``);
- a stamp alone on a line (a day separator: ``6月12日 09:14``, ``2026/6/12``);
- e-mail headers (``From:``, ``Sent: 2026年3月24日 13:58``, ``Subject:``, ``发件人：``…).

Relative time words on a stamped line are meant relative to that stamp, not to the
moment the rep forwarded the record, so each segment carries its own ``ref``. Stamps
themselves are not part of any segment's text, so they can never be read as dates.

The input is expected to be normalised (``nlp.normalize.normalize``); offsets are
offsets into that text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta


@dataclass(frozen=True)
class Segment:
    """One utterance of a record: who said it, what, relative to when, and where it starts."""

    speaker: str | None
    text: str
    ref: datetime
    start: int


# --- stamps ----------------------------------------------------------------------------

# Whitespace runs are matched possessively (``\s*+``) and never by two quantifiers in a
# row: with several optional parts each wrapped in ``\s*``, a line of 100 spaces cost
# seconds of backtracking (found by fuzzing, fuzz/targets/extract.py). A stamp therefore
# consumes whitespace only in front of a part that follows, plus the whitespace after a
# date that has no time (as before); the patterns around it leave no other ambiguity.
_DATE = (
    r"(?:(?P<y>(?:19|20)\d{2})\s*+[-/.年]\s*+)?"
    r"(?P<m>1[0-2]|0?[1-9])\s*+(?:[-/.]|月)\s*+(?P<d>3[01]|[12]\d|0?[1-9])(?:\s*+[日号])?"
)
_WEEKDAY = r"(?:\s*+[(（]?(?:周|星期|礼拜)[一二三四五六日天][)）]?)?"
_TIME = (
    r"(?:(?P<half>上午|下午|晚上|中午|凌晨|早上)\s*+)?"
    r"(?P<H>[01]?\d|2[0-3])\s*+[:：]\s*+(?P<M>[0-5]\d)(?:\s*+[:：]\s*+[0-5]\d)?(?:\s*+(?:AM|PM|am|pm))?"
)
_RELDAY = r"(?P<rel>今天|昨天|前天)"
# Either part may be missing; _has_stamp() checks that at least one matched. After a date
# without a time, the stamp takes the whitespace that follows (the conditional groups).
_STAMP = rf"(?:(?:{_DATE}|{_RELDAY}){_WEEKDAY})?(?:\s*+{_TIME}|(?(m)\s*+|(?(rel)\s*+)))?"

# A stamp alone on a line (the whole line), with at least a date or a time.
_STAMP_LINE = re.compile(rf"^\s*+(?:[\[【(]\s*+)?{_STAMP}(?:\s*+[\]】)])?\s*+$")
# "Name stamp" or "stamp Name" header lines. A name is short and has no sentence punctuation.
_NAME = r"(?P<name>[^\s:：,，。!！?？;；\d][^:：,，。!！?？;；]{0,24}?)"
_HEADER_NAME_FIRST = re.compile(rf"^\s*+{_NAME}\s++{_STAMP}\s*+$")
_HEADER_STAMP_FIRST = re.compile(rf"^\s*+{_STAMP}\s++{_NAME}\s*$")

_STAMP_AT = re.compile(rf"\s*+{_STAMP}")

# "[stamp] Name: text" lines (exported logs put the stamp first, in brackets or not).
_STAMPED_SPEAKER_LINE = re.compile(
    rf"^\s*+(?:[\[【(]\s*+)?{_STAMP}(?:\s*+[\]】)])?\s++"
    r"(?P<name>[^\s:：,，。!！?？;；()（）\[\]【】\d][^:：,，。!！?？;；()（）\n]{0,15}?"
    r"(?:\s*[(（][^()（）\n]{1,20}[)）])?)\s*[:：]\s?"
)

# "Name: text" chat lines.
# The colon of a clock time (9:30) is not a speaker separator.
_SPEAKER_LINE = re.compile(
    r"^\s*+(?P<name>[^\s:：,，。!！?？;；()（）\[\]【】][^:：,，。!！?？;；()（）\n]{0,15}?"
    r"(?:\s*[(（][^()（）\n]{1,20}[)）])?)(?<!\d)\s*[:：]\s?"
)

# E-mail / form header keys. Stamp keys move the reference time; From keys name the author
# of the body; the others are labels, never speakers.
_TIME_KEYS = {"sent", "date", "time", "发送时间", "时间", "日期", "发送日期", "发件时间"}
_FROM_KEYS = {"from", "发件人", "寄件人"}
_LABEL_KEYS = {
    "to", "cc", "bcc", "subject", "re", "fw", "fwd", "fyi", "ps", "p.s", "note", "attachment", "attachments",
    "tel", "mob", "mobile", "phone", "fax", "email", "e-mail", "wechat", "qq", "add", "address", "web",
    "收件人", "抄送", "密送", "主题", "内容", "正文", "附件", "备注", "注", "注意", "说明", "补充",
    "群聊", "群名", "聊天记录", "邮件", "邮件转发", "转发", "地址", "电话", "手机", "座机", "传真", "邮箱",
    "微信", "联系人", "联系方式", "联系电话", "单位", "公司", "客户名称", "项目", "项目名称", "型号",
    "数量", "单价", "金额", "总价", "预算", "需求", "问题", "原因", "结果", "结论", "进展", "状态", "时间节点",
    "下一步", "待办", "计划", "派单", "工单", "单号", "订单号", "编号", "事由", "描述", "故障描述", "处理",
    "处理结果", "处理意见", "回复", "答复", "标题", "摘要", "来源", "渠道", "行业", "地区", "区域", "城市",
    "省份", "职位", "部门", "姓名", "名字", "网址", "官网", "签名", "更新", "提醒", "通知", "公告", "tips",
    "地点", "会议", "会议地点", "会议时间", "参会人", "参会人员", "议题", "人员", "负责人", "对接人", "联系人电话",
    "交期", "交货期", "付款方式", "价格", "报价", "规格", "品牌", "产品", "设备", "用途", "邮编", "客户需求",
    "客户来源", "客户类型", "跟进", "跟进记录", "跟进内容", "拜访", "拜访记录", "目的", "背景", "现状", "竞品",
    "竞争对手", "预计", "预计时间", "截止", "截止时间", "有效期", "质保", "账期", "税率", "发票", "物流", "快递",
    "运单号", "主旨", "事项", "任务", "分工", "status", "todo", "next", "budget", "contact", "company", "name",
}
# A "name" that is a time word (周三 14:00 on its own line is a schedule, not a header).
_DATE_WORD = re.compile(
    r"(?:(?:下下|下|上|这|本)个?)?(?:周|星期|礼拜|週)[一二三四五六日天末]?(?:[上下]午|晚上)?"
    r"|(?:[今明昨后前]天|[今明]早|明日)(?:[上下]午|晚上)?|[上下]午|晚上|中午|\d+[号日月](?:[上下]午)?|月底|月初"
)

# Words that show a "X: ..." prefix is a sentence, not a speaker's name.
_NOT_NAME = re.compile(
    r"[了的说讲问让叫把被在是有就都也还要会想给跟和与及]|一下|这|那|我们|他们|你们|记|请"
    r"|下来|回复|回覆|反馈|表示|透露|来电|留言|发来|转发|对比|总结|结论|更新|通知|确认|补充"
)


@dataclass(frozen=True)
class _Stamp:
    day: date | None
    tod: time | None


def _stamp_from(m: re.Match[str], ref: datetime) -> _Stamp:
    """Resolve a stamp match against the record's reference (the forwarding time)."""
    day: date | None = None
    gd = m.groupdict()
    if gd.get("rel"):
        day = ref.date() - timedelta(days={"今天": 0, "昨天": 1, "前天": 2}[gd["rel"]])
    elif gd.get("m") and gd.get("d"):
        month, dom = int(gd["m"]), int(gd["d"])
        if gd.get("y"):
            try:
                day = date(int(gd["y"]), month, dom)
            except ValueError:
                day = None
        else:
            # A record lies in the past: the latest occurrence not after the forwarding
            # day (one day of slack for clocks and time zones).
            for year in (ref.year + 1, ref.year, ref.year - 1):
                try:
                    cand = date(year, month, dom)
                except ValueError:
                    continue
                if cand <= ref.date() + timedelta(days=1):
                    day = cand
                    break
    tod: time | None = None
    if gd.get("H") is not None and gd.get("M") is not None:
        hour, minute = int(gd["H"]), int(gd["M"])
        tail = m.group(0).lower()
        if ("pm" in tail or gd.get("half") in ("下午", "晚上")) and hour < 12:
            hour += 12
        tod = time(hour, minute)
    return _Stamp(day, tod)


def _apply(stamp: _Stamp, current: datetime, now: datetime | None = None) -> datetime:
    """The reference time a stamp sets, given the current one.

    A time-only stamp keeps the current day; when that day is still the forwarding day
    and the time lies ahead of ``now`` (15:32 in a record forwarded at 10:00), the
    messages are from the day before.
    """
    day = stamp.day or current.date()
    tod = stamp.tod or (time(9, 0) if stamp.day else current.timetz().replace(tzinfo=None))
    when = datetime.combine(day, tod, current.tzinfo)
    if stamp.day is None and now is not None and when > now + timedelta(minutes=10):
        when -= timedelta(days=1)
    return when


def _looks_like_name(name: str, stamped: bool = False) -> bool:
    """Whether a line prefix is a speaker. ``stamped``: the prefix sits before a timestamp,
    strong evidence of a header, so longer names (company + person) are allowed."""
    core = re.sub(r"\s*[(（].*$", "", name).strip()
    if stamped and " " in core:
        core = core.split()[-1]
    if not core or len(core) > 12:
        return False
    low = core.lower().rstrip(".")
    if low in _LABEL_KEYS or low in _TIME_KEYS or low in _FROM_KEYS:
        return False
    if re.fullmatch(r"[\d\s.\-]+", core) or _DATE_WORD.fullmatch(core):
        return False
    if re.search(r"[\u4e00-\u9fff]", core):
        # Chinese speaker names are short: a name, a title, a role with a name.
        if len(core) > 8 or _NOT_NAME.search(core.replace("我们", "")) and core != "我":
            return False
    elif len(core.split()) > 3:
        return False
    return True


def _sent_stamp(body: str, now: datetime, ref: datetime) -> tuple[re.Match[str], datetime] | None:
    """The stamp after a ``Sent:`` / ``时间：`` key and the reference time it sets.

    A time in the future is not when something was sent: ``时间：5月28日 14:00`` in a
    meeting notice is a date to extract, not a header stamp.
    """
    st = _STAMP_AT.match(body)
    if not st or not _has_stamp(st):
        return None
    stamp = _stamp_from(st, now)
    if st.group("y") and stamp.day is not None and stamp.day > now.date():
        return None
    when = _apply(stamp, ref)
    if when > now + timedelta(hours=1):
        return None
    return st, when


def _has_stamp(m: re.Match[str]) -> bool:
    return m.group("H") is not None or m.group("m") is not None or bool(m.group("rel"))


def _header(line: str) -> tuple[str | None, re.Match[str]] | None:
    """A ``Name stamp`` / ``stamp Name`` / bare-stamp line, or None."""
    m = _STAMP_LINE.match(line)
    if m and _has_stamp(m):
        return None, m
    for rx in (_HEADER_NAME_FIRST, _HEADER_STAMP_FIRST):
        m = rx.match(line)
        if m and _has_stamp(m):
            name = m.group("name").strip()
            if _looks_like_name(name, stamped=True):
                return name, m
    return None


def stamp_spans(text: str, now: datetime) -> list[tuple[int, int]]:
    """Offsets of every timestamp that stamps a record line or an e-mail header.

    Extractors that scan the whole text (rather than the segments) mask these out.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for raw in text.split("\n"):
        hit = _header(raw)
        ssm = _STAMPED_SPEAKER_LINE.match(raw)
        if hit is not None:
            _, m = hit
            spans.append((pos + m.start(), pos + m.end()))
        elif ssm and _has_stamp(ssm):
            spans.append((pos, pos + ssm.start("name")))
        else:
            sm = _SPEAKER_LINE.match(raw)
            if sm and sm.group("name").strip().lower() in _TIME_KEYS:
                sent = _sent_stamp(raw[sm.end():], now, now)
                if sent is not None:
                    spans.append((pos + sm.end() + sent[0].start(), pos + sm.end() + sent[0].end()))
        pos += len(raw) + 1
    return spans


def split_record(text: str, now: datetime) -> list[Segment]:
    """Split ``text`` into segments; a plain message is one segment (speaker None, ref ``now``).

    Header and stamp lines produce no segment of their own: they set the speaker and the
    reference time of the content lines that follow them. ``Name: text`` lines give a
    segment whose text is what follows the colon. Lines with neither keep the current
    speaker of a stamped block (continuation lines) or have speaker None.
    """
    lines = text.split("\n")
    segments: list[Segment] = []
    structured = False
    ref = now
    speaker: str | None = None  # speaker of a stamped block or an e-mail's From
    pos = 0
    for raw in lines:
        start = pos
        pos += len(raw) + 1
        if not raw.strip():
            continue
        hit = _header(raw) if len(lines) > 1 else None
        if hit is not None:
            structured = True
            name, m = hit
            ref = _apply(_stamp_from(m, now), ref, now)
            speaker = name if name is not None else speaker
            continue
        ssm = _STAMPED_SPEAKER_LINE.match(raw)
        if ssm and _has_stamp(ssm) and _looks_like_name(ssm.group("name").strip(), stamped=True):
            structured = True
            ref = _apply(_stamp_from(ssm, now), ref, now)
            speaker = ssm.group("name").strip()
            segments.append(Segment(speaker, text[start + ssm.end():pos - 1], ref, start + ssm.end()))
            continue
        sm = _SPEAKER_LINE.match(raw)
        if sm:
            key = sm.group("name").strip()
            low = key.lower().rstrip(".")
            body_start = start + sm.end()
            body = text[body_start:pos - 1]
            if low in _TIME_KEYS:
                sent = _sent_stamp(body, now, ref)
                if sent is not None:
                    st, ref = sent
                    structured = True
                    rest = body[st.end():]
                    if rest.strip():
                        segments.append(Segment(speaker, rest, ref, body_start + st.end()))
                    continue
            if low in _FROM_KEYS:
                structured = True
                speaker = body.strip() or None
                segments.append(Segment(None, raw, ref, start))
                continue
            if _looks_like_name(key):
                structured = True
                segments.append(Segment(key, body, ref, body_start))
                continue
        segments.append(Segment(speaker, raw, ref, start))
    if not structured:
        return [Segment(None, text, now, 0)]
    return segments
