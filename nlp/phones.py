"""Customer phone numbers in sales chat, normalised.

Output forms (the spec's): a mobile is 11 digits (``13872651094``); a landline is
``area-local`` (``0571-82765530``) with any extension dropped; a 400/800 hotline is 10
digits. ``+86``/``0086``, spaces, dashes, brackets and full-width digits are removed,
and digits spoken as Chinese numerals (幺三八…) count.

Not phones: incomplete numbers, a number the text declares wrong (…作废), tracking,
order, ticket and model numbers.
"""

from __future__ import annotations

import re

from nlp.normalize import fold

_CN_DIGIT = {"幺": "1", "一": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
             "六": "6", "七": "7", "八": "8", "九": "9", "零": "0", "〇": "0", "○": "0", "洞": "0"}
# A spoken number: Chinese (or mixed) digits, optionally grouped by spaces or dashes.
_CN_RUN = re.compile(r"[幺一二两三四五六七八九零〇○洞0-9](?:[ \-,，、]?[幺一二两三四五六七八九零〇○洞0-9]){9,}")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_HOTLINE = re.compile(r"(?:400|800)\d{7}")

# A candidate: optional country code, then digits with the separators people type.
_RUN = re.compile(
    r"(?<![A-Za-z0-9_#/.\-])"
    r"(?P<cc>\(?\+\s?86\)?|0086|\+\s?0086)?[\s\-]*"
    r"(?P<body>\(?\d[\d\s\-()]{5,22}\d)"
    r"(?![A-Za-z0-9_]|\.\d)"
)
# Context right before a number that makes it something other than a phone.
_NOT_PHONE_BEFORE = re.compile(
    r"(?:单号|订单号?|运单|快递|物流|工单|编号|型号|序列号|SN|S/N|PO|合同号|发票号?|账号|帐号|卡号|税号|QQ|qq|"
    r"批号|料号|货号|件号|图号|代码|信用代码|身份证|No\.?|NO\.?|#)[\s:：号]*$"
)
# "X号：" right before a number names what the number is; only phone-ish X make it a phone.
_NUMBER_LABEL = re.compile(r"[^\s,，。;；:：]{1,6}号码?\s*[:：]?\s*$")
_PHONE_WORD = re.compile(r"手机|电话|座机|联系|微信|办公|热线|固话|分机|客服|总机|直线|移动|联通|电信|新|旧|个|的|他|她|我|你")

# Context right after a number saying it is wrong or no longer in use.
_WRONG_AFTER = re.compile(
    r"^\s*[)）]?\s*(?:这个号码?|这个|号码|这号)?\s*(?:是错的|错了|有误|不对|作废|已作废|停用|已停用|不用了|是空号|空号|"
    r"停机|已停机|打不通了|已经不用|注销)"
)


def _spoken_digits(text: str) -> str:
    """``text`` with runs of spoken Chinese digits replaced by ASCII digits (same length)."""
    if not any(ch in _CN_DIGIT for ch in text):
        return text
    out = list(text)
    for m in _CN_RUN.finditer(text):
        run = m.group(0)
        if not any(ch in _CN_DIGIT for ch in run):
            continue
        for i, ch in enumerate(run, start=m.start()):
            out[i] = " " if ch in "，,、" else _CN_DIGIT.get(ch, ch)
    return "".join(out)


def _classify(cc: str | None, body: str) -> str | None:
    """Normalised phone for one candidate, or None when it is not a complete phone number."""
    groups = [g for g in re.split(r"[\s\-()]+", body) if g]
    digits = "".join(groups)
    # _split_run tries single groups too: a lone "0" is no number (it crashed the area-code
    # lookup below; found by fuzzing).
    if len(digits) < 2:
        return None
    if cc:
        # After +86 a landline loses its leading 0; put it back.
        if digits.startswith("0"):
            pass
        elif digits.startswith("1") and not digits.startswith("10"):
            return digits if len(digits) == 11 and _MOBILE.fullmatch(digits) else None
        else:
            digits = "0" + digits
            groups = ["0" + groups[0]] + groups[1:]
    elif digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        digits = digits[2:]
    if _MOBILE.fullmatch(digits):
        return digits
    if _HOTLINE.fullmatch(digits):
        return digits
    if digits.startswith("0") and not digits.startswith("00"):
        area_len = 3 if digits[1] in "12" else 4
        area = digits[:area_len]
        # Prefer the writer's grouping when the first group is the area code.
        if groups and groups[0] in (area, digits[:3], digits[:4]) and 3 <= len(groups[0]) <= 4:
            area = groups[0]
            area_len = len(area)
            local = ""
            for g in groups[1:]:
                if len(local) >= 7 and len(local) + len(g) > 8:
                    break  # what remains is an extension
                local += g
        else:
            rest = digits[area_len:]
            local = rest[:8] if len(rest) >= 8 else rest
        if 7 <= len(local) <= 8 and local[0] not in "01":
            return f"{area}-{local}"
    return None


def extract_phones(text: str) -> list[str]:
    """Every customer phone number in ``text``, normalised, in order of appearance, once each."""
    view = _spoken_digits(fold(text))
    found: list[str] = []
    for m in _RUN.finditer(view):
        before = view[max(0, m.start() - 12):m.start()]
        if _NOT_PHONE_BEFORE.search(before):
            continue
        label = _NUMBER_LABEL.search(before)
        if label and not _PHONE_WORD.search(label.group(0)):
            continue  # 工号/流水号/合同编号…: some X号 that is not a phone
        body = m.group("body").rstrip("-( ")
        if _WRONG_AFTER.match(view[m.end():m.end() + 12]):
            continue
        phones = [p] if (p := _classify(m.group("cc"), body)) else _split_run(body)
        for phone in phones:
            if phone not in found:
                found.append(phone)
    return found


def _split_run(body: str) -> list[str]:
    """Several numbers written one after another (``138… 139…``): the longest valid
    runs of consecutive groups, left to right."""
    groups = [g for g in re.split(r"\s+", body.strip("()")) if g]
    out: list[str] = []
    i = 0
    while i < len(groups) and len(groups) > 1:
        for j in range(len(groups), i, -1):
            if j - i == len(groups):
                continue
            phone = _classify(None, " ".join(groups[i:j]))
            if phone:
                out.append(phone)
                i = j
                break
        else:
            i += 1
    return out
