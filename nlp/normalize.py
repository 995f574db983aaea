"""Length-preserving text normalisation for extraction.

Every function here maps one character to exactly one character, so an offset in the
normalised text is the same offset in the original: spans found on the normalised text
can be cut out of what the rep actually wrote.
"""

from __future__ import annotations

import unicodedata

# Characters whose NFKC form is longer than one character (…, ㎡, ½) are left alone:
# expanding them would shift every offset after them.
_EXTRA: dict[str, str] = {
    "\u3000": " ",  # ideographic space
    "\u00a0": " ",
    "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u200b": " ", "\u200c": " ", "\u200d": " ",
    "\ufeff": " ", "\u2060": " ",
    "\u2028": "\n", "\u2029": "\n",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-", "\ufe63": "-",
    "\u301c": "~", "\u223c": "~",
    "\u3002": "\u3002",  # keep the Chinese full stop: it is a sentence boundary, not a dot
}


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    # Full-width ASCII block (！ … ～) to ASCII.
    for cp in range(0xFF01, 0xFF5F):
        table[cp] = chr(cp - 0xFEE0)
    # Other compatibility characters whose NFKC form is a single character
    # (circled digits stay: their NFKC is one char but they are list bullets, keep them readable).
    for cp in list(range(0x2070, 0x20A0)) + list(range(0xF900, 0xFB00)) + list(range(0xFF61, 0xFFEF)):
        ch = chr(cp)
        n = unicodedata.normalize("NFKC", ch)
        if len(n) == 1 and n != ch:
            table[cp] = n
    for k, v in _EXTRA.items():
        table[ord(k)] = v
    # Control characters other than tab/newline/CR become spaces so regexes never see them.
    for cp in list(range(0, 32)) + list(range(0x7F, 0xA0)):
        if chr(cp) not in "\t\n\r":
            table[cp] = " "
    return table


_TABLE = _build_table()

# Traditional characters that matter to the rule-based extractors (dates, amounts, phones),
# plus financial numerals. Applied by ``fold`` only, never by ``normalize``: names and
# titles must stay as written (經理 is scored as written). 伍 and 陆 are left alone
# because they are common surnames.
_FOLD_PAIRS = (
    "週周禮礼號号萬万億亿塊块兩两後后個个幾几這这開开節节點点內内來来約约價价錢钱報报"
    "單单幣币圓圆電电話话機机碼码轉转聽听鐘钟時时間间會会對对為为從从請请發发過过給给"
    "區区縣县廠厂鄉乡歲岁號号貨货款款額额預预算算臺台隻只張张套套"
    "尋寻朝朝後后國国慶庆勞劳動动雙双總总費费貴贵歐欧條条噸吨項项當当農农曆历傳传際际"
    "壹一贰二貳二叁三參三肆四柒七捌八玖九拾十佰百仟千"
)
_FOLD: dict[int, str] = dict(_TABLE)
for _i in range(0, len(_FOLD_PAIRS), 2):
    _FOLD[ord(_FOLD_PAIRS[_i])] = _FOLD_PAIRS[_i + 1]


def normalize(text: str) -> str:
    """Full-width letters, digits and punctuation to ASCII, odd spaces and controls to spaces.

    The result has exactly the length of ``text`` and character ``i`` of the result
    comes from character ``i`` of ``text``.
    """
    return text.translate(_TABLE)


def fold(text: str) -> str:
    """``normalize`` plus traditional-to-simplified for the characters the number, date and
    phone rules look at (週→周, 萬→万, 兩→两 …). Same length guarantee as ``normalize``;
    meant for matching, not for copying spans."""
    return text.translate(_FOLD)
