"""Tokenizer: turns formula text into tokens, forgiving of Chinese input habits.

Full-width digits, letters, brackets and commas (as typed with a Chinese IME), the signs
× ÷ ≥ ≤ ≠ −, and the quotes “…” ‘…” 「…」 are all accepted. String contents are kept as
typed; only the code around them is normalised, and every token keeps its offset in the
original text so errors point at what the manager actually wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from handlers.formula.errors import MAX_NUMBER_DIGITS, MAX_SOURCE_CHARS, SourceMap


class Kind(Enum):
    """Token kinds."""

    NUMBER = "number"
    STRING = "string"
    NAME = "name"  # a field, a function or a keyword (decided by the parser)
    OP = "op"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``start``/``end`` are offsets into the original source."""

    kind: Kind
    text: str  # normalised spelling (operators in ASCII, names with full-width folded)
    start: int
    end: int
    value: Decimal | str | None = None
    quoted: bool = False  # a `backticked` name is never a keyword or function


KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "TRUE", "FALSE"})

# Single characters that mean an ASCII operator.
_SIGN_MAP = {"×": "*", "÷": "/", "−": "-"}
# Characters that mean a two-character operator.
_WIDE_OPS = {"≥": ">=", "≤": "<=", "≠": "!="}
_TWO_CHAR_OPS = {">=", "<=", "<>", "==", "!=", "&&", "||"}
_ONE_CHAR_OPS = set("+-*/(),><=!")
_QUOTES = {
    '"': ('"', "＂"),
    "＂": ('"', "＂"),
    "'": ("'", "＇"),
    "＇": ("'", "＇"),
    "“": ("”", '"', "“"),
    "‘": ("’", "'", "‘"),
    "「": ("」",),
    "『": ("』",),
}
_MULTIPLIERS = {"%": Decimal("0.01"), "万": Decimal(10000), "亿": Decimal(100000000)}


def fold(char: str) -> str:
    """Map a full-width ASCII character (or the ideographic space) to its ASCII twin."""
    code = ord(char)
    if 0xFF01 <= code <= 0xFF5E:
        return chr(code - 0xFEE0)
    if code == 0x3000:
        return " "
    return _SIGN_MAP.get(char, char)


def fold_name(name: str) -> str:
    """The spelling under which a field or function name is looked up."""
    return "".join(fold(char) for char in name)


def _is_name_start(char: str) -> bool:
    return char == "_" or char.isalpha()


def _is_name_char(char: str) -> bool:
    return char == "_" or char.isalnum()


def tokenize(source: str, where: SourceMap) -> list[Token]:
    """Split ``source`` into tokens, ending with an END token.

    Raises FormulaError on characters and literals the language does not know.
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise where.error(
            MAX_SOURCE_CHARS,
            f"公式太长: {len(source)} 个字符，上限 {MAX_SOURCE_CHARS}；请拆成几个较短的规则",
            f"formula too long: {len(source)} characters, limit {MAX_SOURCE_CHARS}",
        )
    tokens: list[Token] = []
    index = 0
    length = len(source)
    while index < length:
        raw = source[index]
        char = fold(raw)
        if char.isspace():
            index += 1
            continue
        start = index
        if char in "0123456789" or (char == "." and index + 1 < length and fold(source[index + 1]) in "0123456789"):
            tokens.append(_number(source, index, where))
            index = tokens[-1].end
            continue
        if raw in _QUOTES or char in _QUOTES:
            closers = _QUOTES.get(raw) or _QUOTES[char]
            end = index + 1
            while end < length and source[end] not in closers:
                end += 1
            if end >= length:
                raise where.error(
                    start,
                    f"字符串缺少结尾的引号 {closers[0]}",
                    f"unterminated string, expected closing {closers[0]}",
                )
            text = source[index + 1 : end]
            tokens.append(Token(Kind.STRING, text, start, end + 1, value=text))
            index = end + 1
            continue
        if char == "`":
            end = source.find("`", index + 1)
            if end < 0:
                raise where.error(start, "字段名缺少结尾的反引号 `", "unterminated `quoted` field name")
            name = source[index + 1 : end].strip()
            if not name:
                raise where.error(start, "反引号中的字段名为空", "empty `quoted` field name")
            tokens.append(Token(Kind.NAME, fold_name(name), start, end + 1, value=name, quoted=True))
            index = end + 1
            continue
        if _is_name_start(char):
            end = index + 1
            while end < length and _is_name_char(fold(source[end])):
                end += 1
            name = source[index:end]
            tokens.append(Token(Kind.NAME, fold_name(name), start, end, value=name))
            index = end
            continue
        if raw in _WIDE_OPS:
            tokens.append(Token(Kind.OP, _WIDE_OPS[raw], start, index + 1))
            index += 1
            continue
        pair = char + fold(source[index + 1]) if index + 1 < length else char
        if pair in _TWO_CHAR_OPS:
            op = {"==": "=", "<>": "!=", "&&": "AND", "||": "OR"}.get(pair, pair)
            tokens.append(Token(Kind.OP, op, start, index + 2))
            index += 2
            continue
        if char in _ONE_CHAR_OPS:
            tokens.append(Token(Kind.OP, "NOT" if char == "!" else char, start, index + 1))
            index += 1
            continue
        raise where.error(start, *_unknown_char_message(raw))
    tokens.append(Token(Kind.END, "", length, length))
    return tokens


def _unknown_char_message(raw: str) -> tuple[str, str]:
    hints = {
        "&": ("`&` 不是运算符；表示“并且”请写 AND 或 &&", "`&` is not an operator; write AND or &&"),
        "|": ("`|` 不是运算符；表示“或者”请写 OR 或 ||", "`|` is not an operator; write OR or ||"),
        "^": ("不支持乘方 `^`，请写成连乘，如 x*x", "`^` is not supported; write x*x"),
        "%": ("`%` 只能紧跟在数字后面表示百分比，如 95%", "`%` may only follow a number, as in 95%"),
        "。": ("句号 `。` 不能出现在公式中；小数点请用 `.`", "`。` is not allowed; use `.` as decimal point"),
        "、": ("顿号 `、` 不能出现在公式中；参数之间请用逗号", "`、` is not allowed; separate arguments with commas"),
    }
    if raw in hints:
        return hints[raw]
    return (f"无法识别的字符 `{raw}`", f"unexpected character `{raw}` (U+{ord(raw):04X})")


def _number(source: str, index: int, where: SourceMap) -> Token:
    """Read digits [. digits] with an optional % / 万 / 亿 suffix."""
    start = index
    length = len(source)
    digits: list[str] = []
    seen_point = False
    while index < length:
        char = fold(source[index])
        if char in "0123456789":
            digits.append(char)
        elif char == "." and not seen_point and index + 1 < length and fold(source[index + 1]) in "0123456789":
            seen_point = True
            digits.append(".")
        else:
            break
        index += 1
    text = "".join(digits)
    if sum(1 for char in text if char != ".") > MAX_NUMBER_DIGITS:
        raise where.error(
            start,
            f"数字 `{text[:20]}…` 位数太多，上限 {MAX_NUMBER_DIGITS} 位",
            f"number literal longer than {MAX_NUMBER_DIGITS} digits",
        )
    value = Decimal(text)
    if index < length:
        suffix = fold(source[index])
        if suffix in _MULTIPLIERS and not (index + 1 < length and _is_name_char(fold(source[index + 1]))):
            value = value * _MULTIPLIERS[suffix]
            index += 1
        elif _is_name_start(suffix):
            raise where.error(
                index,
                f"数字 `{text}` 后面紧跟着 `{source[index]}`: 数字和字段名之间需要运算符，如 `*`；"
                "如果这是以数字开头的字段名，请用反引号把整个字段名包起来",
                f"number `{text}` is directly followed by `{source[index]}`; an operator is missing",
            )
        elif suffix == ".":
            raise where.error(index, f"数字 `{text}` 后面多了一个小数点", f"stray decimal point after `{text}`")
    return Token(Kind.NUMBER, source[start:index], start, index, value=value)
