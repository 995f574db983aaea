"""Type checking: every node gets a type, every mistake an error that teaches the fix."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date

from handlers.formula.errors import FormulaError, SourceMap
from handlers.formula.lexer import fold_name
from handlers.formula.parser import (
    BoolLit,
    Call,
    Compare,
    FieldRef,
    Logic,
    Member,
    Negate,
    Node,
    Not,
    NumberLit,
    Product,
    Sum,
    TextLit,
)

FIELD_TYPES = ("number", "text", "date", "bool")
TYPE_ZH = {"number": "数字", "text": "文本", "date": "日期", "bool": "条件(真/假)"}
TYPE_EN = {"number": "a number", "text": "text", "date": "a date", "bool": "a condition (true/false)"}

# name -> (min args, max args or None); descriptions used in arity errors
FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "IF": (3, 3, "IF(条件, 成立时的值, 不成立时的值)"),
    "IFS": (2, None, "IFS(条件1, 值1, 条件2, 值2, …, TRUE, 默认值)"),
    "CONTAINS": (2, 2, "CONTAINS(文本, 要找的文字)"),
    "IN": (2, None, "IN(值, 候选1, 候选2, …)"),
    "ROUND": (1, 2, "ROUND(数字, 小数位数)"),
    "MIN": (1, None, "MIN(值1, 值2, …)"),
    "MAX": (1, None, "MAX(值1, 值2, …)"),
    "ABS": (1, 1, "ABS(数字)"),
    "DAYS": (2, 2, "DAYS(结束日期, 开始日期)"),
    "TODAY": (0, 0, "TODAY()"),
    "DATE": (1, 1, 'DATE("2026-11-23")'),
    "AND": (1, None, "AND(条件1, 条件2, …)"),
    "OR": (1, None, "OR(条件1, 条件2, …)"),
}
ROUND_DIGITS_LIMIT = 12


def is_plain_name(name: str) -> bool:
    """True when ``name`` can be written in a formula without backticks."""
    folded = fold_name(name)
    return (
        bool(folded)
        and (folded[0] == "_" or folded[0].isalpha())
        and all(char == "_" or char.isalnum() for char in folded)
        and folded.upper() not in ("AND", "OR", "NOT", "IN", "TRUE", "FALSE")
    )


def parse_date_literal(text: str) -> date | None:
    """Accept 2026-11-23, 2026/11/23 and 2026年11月23日; None if it is none of them."""
    cleaned = text.strip().replace("/", "-").replace("年", "-").replace("月", "-").rstrip("日")
    try:
        return date.fromisoformat("-".join(part.zfill(2) for part in cleaned.split("-")))
    except ValueError:
        return None


class Checker:
    """Annotates ``node.type`` bottom-up against the field schema."""

    def __init__(self, source: str, fields: Mapping[str, str], where: SourceMap) -> None:
        self.source = source
        self.where = where
        self.fields = dict(fields)
        self.lookup = {fold_name(name): name for name in fields}
        self.used: list[str] = []
        self.uses_today = False

    # -- helpers -------------------------------------------------------------------------
    def text(self, node: Node) -> str:
        """The node's source, on one line and shortened for messages."""
        snippet = " ".join(self.source[node.start : node.end].split())
        return snippet if len(snippet) <= 40 else snippet[:39] + "…"

    def fail(self, node: Node | int, zh: str, en: str) -> FormulaError:
        offset = node if isinstance(node, int) else node.start
        return self.where.error(offset, zh, en)

    def check(self, node: Node) -> str:
        """Type of ``node`` (also stored on it); raises FormulaError on misuse."""
        kind = self._check(node)
        node.type = kind
        return kind

    def want(self, node: Node, kind: str, zh_context: str, en_context: str) -> None:
        got = self.check(node)
        if got == kind:
            return
        zh = f"{zh_context}必须是{TYPE_ZH[kind]}，这里 `{self.text(node)}` 是{TYPE_ZH[got]}"
        en = f"{en_context} must be {TYPE_EN[kind]}, but `{self.text(node)}` is {TYPE_EN[got]}"
        if kind == "bool" and got == "number":
            zh += f"；是否想写 `{self.text(node)} > 0`?"
        elif kind == "bool" and got == "text":
            zh += f"；是否想写 `{self.text(node)} = \"某个值\"`?"
        elif kind == "number" and got == "bool":
            zh += f"；如需按条件计分，请写 IF({self.text(node)}, 分值, 0)"
        elif kind == "number" and got == "date":
            zh += "；日期相差的天数请用 DAYS(结束日期, 开始日期)"
        elif kind == "number" and got == "text":
            zh += "；文本不能做算术运算"
        raise self.fail(node, zh, en)

    # -- nodes ---------------------------------------------------------------------------
    def _check(self, node: Node) -> str:
        if isinstance(node, NumberLit):
            return "number"
        if isinstance(node, TextLit):
            return "text"
        if isinstance(node, BoolLit):
            return "bool"
        if isinstance(node, FieldRef):
            return self.field(node)
        if isinstance(node, Sum):
            for _sign, term in node.terms:
                self.want(term, "number", "加减运算的每一项", "each term of + and -")
            return "number"
        if isinstance(node, Product):
            for op, factor in node.factors:
                self.want(factor, "number", "乘除运算的每一项", "each factor of * and /")
                if op == "/" and isinstance(factor, NumberLit) and factor.value == 0:
                    raise self.fail(factor, "除数为 0: 不能除以 0", "division by a literal zero")
            return "number"
        if isinstance(node, Negate):
            assert node.operand is not None
            self.want(node.operand, "number", "负号 `-` 后面", "the operand of unary minus")
            return "number"
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Logic):
            for item in node.items:
                self.want(item, "bool", f"{node.op} 的每一边", f"each side of {node.op}")
            return "bool"
        if isinstance(node, Not):
            assert node.operand is not None
            self.want(node.operand, "bool", "NOT 后面", "the operand of NOT")
            return "bool"
        if isinstance(node, Member):
            assert node.needle is not None
            kind = self.check(node.needle)
            for option in node.options:
                got = self.check(option)
                if got != kind:
                    raise self.fail(
                        option,
                        f"IN 的候选值 `{self.text(option)}` 是{TYPE_ZH[got]}，而 `{self.text(node.needle)}` 是{TYPE_ZH[kind]}；类型必须一致",
                        f"IN option `{self.text(option)}` is {TYPE_EN[got]} but the value is {TYPE_EN[kind]}",
                    )
            return "bool"
        if isinstance(node, Call):
            return self.call(node)
        raise AssertionError(f"unknown node {type(node).__name__}")

    def field(self, node: FieldRef) -> str:
        name = self.lookup.get(node.lookup)
        if name is None:
            raise self.unknown_field(node)
        node.name = name
        if name not in self.used:
            self.used.append(name)
        return self.fields[name]

    def unknown_field(self, node: FieldRef) -> FormulaError:
        shown = node.name
        close = difflib.get_close_matches(node.lookup, list(self.lookup), n=1, cutoff=0.5)
        if close:
            suggestion = self.lookup[close[0]]
            quoting = ""
            if not is_plain_name(suggestion):
                quoting = "（该字段名含特殊字符，写在公式里要用反引号把整个字段名包起来）"
            return self.fail(
                node,
                f"字段 `{shown}` 不存在，是否指 `{suggestion}`?{quoting}",
                f"unknown field `{shown}`; did you mean `{suggestion}`?",
            )
        if node.lookup.upper() in FUNCTIONS:
            return self.fail(
                node,
                f"`{shown}` 是函数，后面需要括号，如 {FUNCTIONS[node.lookup.upper()][2]}",
                f"`{shown}` is a function and needs brackets",
            )
        known = "、".join(list(self.fields)[:8]) or "(无)"
        return self.fail(
            node,
            f"字段 `{shown}` 不存在；如果这是文字，请加引号: \"{shown}\"。可用字段: {known}",
            f"unknown field `{shown}`; quote it if it is text",
        )

    def compare(self, node: Compare) -> str:
        assert node.left is not None and node.right is not None
        left = self.check(node.left)
        right = self.check(node.right)
        op_text = self.source[node.op_start : node.op_end]
        if left != right:
            zh = (
                f"不能比较{TYPE_ZH[left]} `{self.text(node.left)}` 与{TYPE_ZH[right]} `{self.text(node.right)}`"
            )
            if "text" in (left, right) and "number" in (left, right):
                zh += "；文本字段请与带引号的文字比较，如 `行业 = \"汽车\"`"
            elif "date" in (left, right):
                zh += '；日期请与日期比较，如 `签约日期 >= DATE("2026-01-01")`'
            raise self.fail(
                node.op_start, zh, f"cannot compare {TYPE_EN[left]} with {TYPE_EN[right]} using `{op_text}`"
            )
        if left in ("text", "bool") and node.op not in ("=", "!="):
            raise self.fail(
                node.op_start,
                f"{TYPE_ZH[left]}只能用 = 或 != 比较，不能用 `{op_text}`",
                f"{TYPE_EN[left]} can only be compared with = or !=, not `{op_text}`",
            )
        return "bool"

    def call(self, node: Call) -> str:
        name = node.name
        if name not in FUNCTIONS:
            raise self.unknown_function(node)
        low, high, usage = FUNCTIONS[name]
        count = len(node.args)
        if count < low or (high is not None and count > high):
            if high is None:
                zh_need, en_need = f"至少 {low} 个", f"at least {low}"
            elif low == high:
                zh_need, en_need = f" {low} 个", f"{low}"
            else:
                zh_need, en_need = f" {low} 到 {high} 个", f"{low} to {high}"
            plural = "argument" if (high or low) == 1 else "arguments"
            raise self.fail(
                node,
                f"函数 {name} 需要{zh_need}参数，这里有 {count} 个；用法: {usage}",
                f"{name} takes {en_need} {plural}, got {count}",
            )
        args = node.args
        if name == "IF":
            self.want(args[0], "bool", "IF 的第1个参数(条件)", "the IF condition")
            return self.same_type(name, args[1:])
        if name == "IFS":
            if count % 2:
                raise self.fail(
                    node,
                    f"IFS 的参数必须成对: 条件1, 值1, 条件2, 值2, …，这里有 {count} 个；如需默认值，请在最后加 `TRUE, 默认值`",
                    f"IFS takes condition/value pairs, got {count} arguments; add `TRUE, default` for a default",
                )
            for position, condition in enumerate(args[0::2]):
                self.want(condition, "bool", f"IFS 的第{2 * position + 1}个参数(条件)", "each IFS condition")
            return self.same_type(name, args[1::2])
        if name == "CONTAINS":
            self.want(args[0], "text", "CONTAINS 的第1个参数", "the first argument of CONTAINS")
            self.want(args[1], "text", "CONTAINS 的第2个参数", "the second argument of CONTAINS")
            return "bool"
        if name == "ROUND":
            self.want(args[0], "number", "ROUND 的第1个参数", "the first argument of ROUND")
            if count == 2:
                self.want(args[1], "number", "ROUND 的小数位数", "the digits of ROUND")
                digits = args[1]
                if isinstance(digits, NumberLit) and (
                    digits.value != digits.value.to_integral_value() or abs(digits.value) > ROUND_DIGITS_LIMIT
                ):
                    raise self.fail(
                        digits,
                        f"ROUND 的小数位数必须是 -{ROUND_DIGITS_LIMIT} 到 {ROUND_DIGITS_LIMIT} 之间的整数，如 ROUND(x, 2)",
                        f"ROUND digits must be an integer between -{ROUND_DIGITS_LIMIT} and {ROUND_DIGITS_LIMIT}",
                    )
            return "number"
        if name in ("MIN", "MAX"):
            kind = self.same_type(name, args)
            if kind not in ("number", "date"):
                raise self.fail(node, f"{name} 只能比较数字或日期", f"{name} takes numbers or dates")
            return kind
        if name == "ABS":
            self.want(args[0], "number", "ABS 的参数", "the argument of ABS")
            return "number"
        if name == "DAYS":
            self.want(args[0], "date", "DAYS 的第1个参数(结束日期)", "the first argument of DAYS")
            self.want(args[1], "date", "DAYS 的第2个参数(开始日期)", "the second argument of DAYS")
            return "number"
        if name == "TODAY":
            self.uses_today = True
            return "date"
        if name == "DATE":
            literal = args[0]
            if not isinstance(literal, TextLit) or parse_date_literal(literal.value) is None:
                raise self.fail(
                    literal,
                    'DATE 的参数必须是带引号的日期，如 DATE("2026-11-23")',
                    'DATE takes a quoted date such as DATE("2026-11-23")',
                )
            literal.type = "text"
            return "date"
        # AND / OR / IN only get here with too few arguments, caught by the arity check
        raise AssertionError(name)

    def same_type(self, name: str, values: list[Node]) -> str:
        kind = self.check(values[0])
        for value in values[1:]:
            got = self.check(value)
            if got != kind:
                raise self.fail(
                    value,
                    f"{name} 的各个结果类型必须一致: `{self.text(values[0])}` 是{TYPE_ZH[kind]}，`{self.text(value)}` 是{TYPE_ZH[got]}",
                    f"{name} results must have one type: {TYPE_EN[kind]} vs {TYPE_EN[got]}",
                )
        return kind

    def unknown_function(self, node: Call) -> FormulaError:
        shown = self.source[node.start : node.name_end]
        whole = self.source[node.start : node.end]
        if fold_name(whole) in self.lookup:
            return self.fail(
                node,
                f"字段名 `{whole}` 含括号，写在公式里要用反引号把整个字段名包起来",
                f"field name `{whole}` contains brackets; wrap the whole name in backticks",
            )
        if fold_name(shown) in self.lookup:
            return self.fail(
                node.name_end,
                f"`{shown}` 是字段不是函数；字段后面不能直接跟括号，是否缺少运算符(如 `*`)?",
                f"`{shown}` is a field, not a function; missing operator before `(`?",
            )
        close = difflib.get_close_matches(node.name, list(FUNCTIONS), n=1, cutoff=0.5)
        hint_zh = f"，是否指 `{close[0]}`?" if close else f"。可用函数: {', '.join(FUNCTIONS)}"
        hint_en = f"; did you mean `{close[0]}`?" if close else ""
        return self.fail(node, f"函数 `{shown}` 不存在{hint_zh}", f"unknown function `{shown}`{hint_en}")
