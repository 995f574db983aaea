"""Compile a checked syntax tree into nested closures; evaluate and explain records.

Compiling to closures (instead of walking the tree on every call) is what makes a
formula cheap enough to recompute a hundred thousand customers in seconds. Arithmetic
uses one fixed decimal context, so results never depend on the caller's context.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any, Literal

from handlers.formula.checker import (
    FIELD_TYPES,
    ROUND_DIGITS_LIMIT,
    TYPE_EN,
    TYPE_ZH,
    Checker,
    parse_date_literal,
)
from handlers.formula.errors import FormulaError, SourceMap
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
    parse,
)

FieldType = Literal["number", "text", "date", "bool"]
Value = Decimal | str | bool | date
Record = Mapping[str, object]
# Closures return Any: the checker has already proved each node's type, so the runtime
# values are known to be Decimal/str/bool/date as annotated on the node.
Compiled = Callable[[Record, "date | None"], Any]

# 34 significant digits (decimal128): sums and products of money are exact; only
# division may round, half-even at the 34th digit. Overflow and invalid operations raise.
CONTEXT = Context(
    prec=34,
    rounding=ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
_add = CONTEXT.add
_sub = CONTEXT.subtract
_mul = CONTEXT.multiply
_div = CONTEXT.divide
_minus = CONTEXT.minus
_COMPARE = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "!=": operator.ne,
}


class Formula:
    """A compiled formula: evaluate it against many records.

    Attributes: ``source``, ``origin``, ``result_type`` (a FieldType), ``fields_used``
    (frozenset of field names), ``fields_in_order`` (first appearance), ``uses_today``
    (True when TODAY() appears, so ``today=`` must be passed).
    """

    __slots__ = ("source", "origin", "result_type", "fields_used", "fields_in_order", "uses_today",
                 "_root", "_fn", "_where", "_builder")

    def __init__(self, source: str, root: Node, checker: Checker, where: SourceMap) -> None:
        self.source = source
        self.origin = where.origin
        self.result_type: FieldType = root.type  # type: ignore[assignment]
        self.fields_in_order: tuple[str, ...] = tuple(checker.used)
        self.fields_used: frozenset[str] = frozenset(checker.used)
        self.uses_today = checker.uses_today
        self._root = root
        self._where = where
        self._builder = _Builder(source, where, checker.fields)
        self._fn = self._builder.build(root)

    def __repr__(self) -> str:
        return f"Formula({self.source!r}, result_type={self.result_type!r})"

    def evaluate(self, record: Record, *, today: date | None = None) -> Value:
        """The formula's value for ``record`` (Decimal, str, bool or date).

        ``today`` is the business date for TODAY(); time is injected, never read.
        Raises FormulaError for a missing or ill-typed field value, division by zero,
        IFS without a true condition, or an overflow.
        """
        try:
            value: Value = self._fn(record, today)
            return value
        except FormulaError:
            raise
        except ArithmeticError as exc:
            raise self._where.error(
                0, f"计算结果超出范围或无效({type(exc).__name__})", f"arithmetic overflow or invalid operation: {exc!r}"
            ) from None

    def evaluate_number(self, record: Record, *, today: date | None = None) -> Decimal:
        """``evaluate`` for number formulas (scores, rebates), typed as Decimal.

        Raises FormulaError when the formula's result is not a number.
        """
        if self.result_type != "number":
            raise self._where.error(
                0,
                f"这里需要结果为数字的公式，这个公式的结果是{TYPE_ZH[self.result_type]}",
                f"a number formula is needed, this one gives {TYPE_EN[self.result_type]}",
            )
        value = self.evaluate(record, today=today)
        assert isinstance(value, Decimal)
        return value

    def explain(self, record: Record, *, today: date | None = None) -> list[tuple[str, Decimal]]:
        """Contribution of each top-level additive term, as (label, value) pairs.

        The values add up exactly to ``evaluate(record)``; a subtracted term is negative.
        For an IF/IFS term the label is the condition that decided it, e.g.
        ``[("行业潜力值>80", Decimal(30)), ("采购活跃度>=3", Decimal(25))]``.
        """
        if self.result_type != "number":
            raise self._where.error(
                0,
                f"只有结果为数字的公式才能逐项解释，这个公式的结果是{TYPE_ZH[self.result_type]}",
                f"explain() needs a number formula, this one gives {TYPE_EN[self.result_type]}",
            )
        root = self._root
        terms = root.terms if isinstance(root, Sum) else [("+", root)]
        parts: list[tuple[str, Decimal]] = []
        try:
            for sign, term in terms:
                value = self._builder.build(term)(record, today)
                assert isinstance(value, Decimal)
                parts.append((self._builder.label(term, record, today), _minus(value) if sign == "-" else value))
        except FormulaError:
            raise
        except ArithmeticError as exc:
            raise self._where.error(0, "计算结果超出范围或无效", f"arithmetic error: {exc!r}") from None
        return parts


class _Builder:
    """Turns nodes into closures ``fn(record, today) -> value``."""

    def __init__(self, source: str, where: SourceMap, fields: Mapping[str, str]) -> None:
        self.source = source
        self.where = where
        self.fields = fields
        self.cache: dict[int, Compiled] = {}

    def text(self, node: Node) -> str:
        return " ".join(self.source[node.start : node.end].split())

    def build(self, node: Node) -> Compiled:
        """Closure for ``node``, built once per node."""
        key = id(node)
        fn = self.cache.get(key)
        if fn is None:
            fn = self._build(node)
            self.cache[key] = fn
        return fn

    # -- explain labels ------------------------------------------------------------------
    def label(self, node: Node, record: Record, today: date | None) -> str:
        """What decided this term: the IF/IFS condition that held, else the term's text."""
        if isinstance(node, Call) and node.name == "IF":
            condition, then, otherwise = node.args
            if self.build(condition)(record, today):
                inner = self.label(then, record, today) if _is_choice(then) else ""
                return self.text(condition) + (f", {inner}" if inner else "")
            if _is_choice(otherwise):
                return self.label(otherwise, record, today)
            return f"{self.text(condition)} 不成立"
        if isinstance(node, Call) and node.name == "IFS":
            for condition, value in zip(node.args[0::2], node.args[1::2], strict=True):
                if self.build(condition)(record, today):
                    if isinstance(condition, BoolLit) and condition.value:
                        return "其余情况"
                    inner = self.label(value, record, today) if _is_choice(value) else ""
                    return self.text(condition) + (f", {inner}" if inner else "")
        return self.text(node)

    # -- closures ------------------------------------------------------------------------
    def _build(self, node: Node) -> Compiled:
        if isinstance(node, (NumberLit, TextLit, BoolLit)):
            constant = node.value
            return lambda record, today: constant
        if isinstance(node, FieldRef):
            return self.field(node)
        if isinstance(node, Sum):
            return self.sum(node)
        if isinstance(node, Product):
            return self.product(node)
        if isinstance(node, Negate):
            assert node.operand is not None
            operand = self.build(node.operand)
            return lambda record, today: _minus(operand(record, today))
        if isinstance(node, Compare):
            assert node.left is not None and node.right is not None
            op = _COMPARE[node.op]
            left = self.build(node.left)
            if isinstance(node.right, (NumberLit, TextLit, BoolLit)):
                constant = node.right.value
                return lambda record, today: op(left(record, today), constant)
            right = self.build(node.right)
            return lambda record, today: op(left(record, today), right(record, today))
        if isinstance(node, Logic):
            return self.logic(node)
        if isinstance(node, Not):
            assert node.operand is not None
            operand = self.build(node.operand)
            return lambda record, today: not operand(record, today)
        if isinstance(node, Member):
            return self.member(node)
        if isinstance(node, Call):
            return self.call(node)
        raise AssertionError(type(node).__name__)

    def field(self, node: FieldRef) -> Compiled:
        name = node.name
        kind = self.fields[name]
        where = self.where

        def missing() -> FormulaError:
            return where.error(
                node.start, f"记录中缺少字段 `{name}` 的值", f"the record has no value for field `{name}`"
            )

        def wrong(value: object) -> FormulaError:
            if value is None:
                return missing()
            hint = ""
            if isinstance(value, datetime):
                hint = "；请先换算成上海时区的日期(date)"
            return where.error(
                node.start,
                f"字段 `{name}` 应是{TYPE_ZH[kind]}，记录中的值却是 {type(value).__name__}: {value!r:.40}{hint}",
                f"field `{name}` should be {TYPE_EN[kind]}, got {type(value).__name__}",
            )

        if kind == "number":

            def slow_number(value: object) -> Decimal:
                if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
                    return Decimal(repr(value))  # the shortest repr: 0.1 stays 0.1, not 0.1000000000000000055…
                if isinstance(value, int) and not isinstance(value, bool):
                    return Decimal(int(value))  # IntEnum and other int subclasses
                raise wrong(value)

            def get_number(record: Record, today: date | None) -> Decimal:
                try:
                    value = record[name]
                except KeyError:
                    raise missing() from None
                if type(value) is Decimal:
                    if value.is_finite():
                        return value
                elif type(value) is int:
                    return Decimal(value)
                return slow_number(value)

            return get_number

        expected: type = {"text": str, "date": date, "bool": bool}[kind]

        def get_value(record: Record, today: date | None) -> object:
            try:
                value = record[name]
            except KeyError:
                raise missing() from None
            if type(value) is expected:
                return value
            # subclasses (a StrEnum stage name) are fine; a datetime is not a date here
            if isinstance(value, expected) and not isinstance(value, datetime):
                return value
            raise wrong(value)

        return get_value

    def sum(self, node: Sum) -> Compiled:
        parts = [(sign == "-", self.build(term)) for sign, term in node.terms]
        if len(parts) == 2:
            (_, first), (negative, second) = parts
            combine = _sub if negative else _add
            return lambda record, today: combine(first(record, today), second(record, today))
        head = parts[0][1]
        rest = parts[1:]

        def total(record: Record, today: date | None) -> Decimal:
            value = head(record, today)
            for negative, part in rest:
                value = _sub(value, part(record, today)) if negative else _add(value, part(record, today))
            return value  # type: ignore[no-any-return]

        return total

    def product(self, node: Product) -> Compiled:
        head = self.build(node.factors[0][1])
        if len(node.factors) == 2 and node.factors[1][0] == "*":
            factor = node.factors[1][1]
            if isinstance(factor, NumberLit):
                constant = factor.value
                return lambda record, today: _mul(head(record, today), constant)
            second = self.build(factor)
            return lambda record, today: _mul(head(record, today), second(record, today))
        rest = [(op == "/", self.build(factor), factor) for op, factor in node.factors[1:]]
        where = self.where
        text = self.text

        def result(record: Record, today: date | None) -> Decimal:
            value = head(record, today)
            for divide, part, factor in rest:
                operand = part(record, today)
                if not divide:
                    value = _mul(value, operand)
                elif operand:
                    value = _div(value, operand)
                else:
                    raise where.error(
                        factor.start,
                        f"除数为 0: `{text(factor)}` 的值是 0",
                        f"division by zero: `{text(factor)}` is 0",
                    )
            return value  # type: ignore[no-any-return]

        return result

    def logic(self, node: Logic) -> Compiled:
        items = [self.build(item) for item in node.items]
        if len(items) == 1:
            return items[0]
        if len(items) == 2:
            first, second = items
            if node.op == "AND":
                return lambda record, today: first(record, today) and second(record, today)
            return lambda record, today: first(record, today) or second(record, today)
        if node.op == "AND":
            return lambda record, today: all(item(record, today) for item in items)
        return lambda record, today: any(item(record, today) for item in items)

    def member(self, node: Member) -> Compiled:
        assert node.needle is not None
        needle = self.build(node.needle)
        negated = node.negated
        if all(isinstance(option, (NumberLit, TextLit, BoolLit)) for option in node.options):
            # Decimal hashes by value, so 1 and 1.0 meet in one set
            choices = frozenset(option.value for option in node.options)  # type: ignore[attr-defined]
            if negated:
                return lambda record, today: needle(record, today) not in choices
            return lambda record, today: needle(record, today) in choices
        options = [self.build(option) for option in node.options]

        def member(record: Record, today: date | None) -> bool:
            value = needle(record, today)
            found = any(value == option(record, today) for option in options)
            return not found if negated else found

        return member

    def call(self, node: Call) -> Compiled:
        name = node.name
        args = [self.build(arg) for arg in node.args] if name != "DATE" else []
        where = self.where
        if name == "IF":
            condition, then, otherwise = args
            return lambda record, today: then(record, today) if condition(record, today) else otherwise(record, today)
        if name == "IFS":
            pairs = list(zip(args[0::2], args[1::2], strict=True))

            def choose(record: Record, today: date | None) -> object:
                for condition, value in pairs:
                    if condition(record, today):
                        return value(record, today)
                raise where.error(
                    node.start,
                    "IFS 的条件都不成立；请在最后加一对 `TRUE, 默认值`",
                    "no IFS condition holds; add `TRUE, default` as the last pair",
                )

            return choose
        if name == "CONTAINS":
            haystack, needle = args
            return lambda record, today: needle(record, today) in haystack(record, today)
        if name == "ROUND":
            return self.round(node, args)
        if name in ("MIN", "MAX"):
            pick = min if name == "MIN" else max
            return lambda record, today: pick(arg(record, today) for arg in args)
        if name == "ABS":
            (operand,) = args
            return lambda record, today: CONTEXT.abs(operand(record, today))
        if name == "DAYS":
            end, start = args
            return lambda record, today: Decimal((end(record, today) - start(record, today)).days)
        if name == "TODAY":

            def business_date(record: Record, today: date | None) -> date:
                if type(today) is not date:
                    raise where.error(
                        node.start,
                        "公式用到了 TODAY()，但计算时没有给出今天的日期(today=…)",
                        "the formula uses TODAY() but evaluate() got no today= date",
                    )
                return today

            return business_date
        if name == "DATE":
            literal = node.args[0]
            assert isinstance(literal, TextLit)
            constant = parse_date_literal(literal.value)
            return lambda record, today: constant
        raise AssertionError(name)

    def round(self, node: Call, args: list[Compiled]) -> Compiled:
        operand = args[0]
        if len(node.args) == 1 or isinstance(node.args[1], NumberLit):
            digits = node.args[1].value if len(node.args) == 2 else Decimal(0)  # type: ignore[attr-defined]
            quantum = _quantum(int(digits))
            # Half-up, as in Excel and on every Chinese invoice: 2.505 → 2.51
            return lambda record, today: operand(record, today).quantize(
                quantum, rounding=ROUND_HALF_UP, context=CONTEXT
            )
        digits_fn = args[1]
        where = self.where
        digits_node = node.args[1]

        def rounded(record: Record, today: date | None) -> Decimal:
            digits = digits_fn(record, today)
            assert isinstance(digits, Decimal)
            if digits != digits.to_integral_value() or abs(digits) > ROUND_DIGITS_LIMIT:
                raise where.error(
                    digits_node.start,
                    f"ROUND 的小数位数必须是 -{ROUND_DIGITS_LIMIT} 到 {ROUND_DIGITS_LIMIT} 之间的整数，这里是 {digits}",
                    f"ROUND digits must be an integer within ±{ROUND_DIGITS_LIMIT}, got {digits}",
                )
            value = operand(record, today)
            rounded_value: Decimal = value.quantize(_quantum(int(digits)), rounding=ROUND_HALF_UP, context=CONTEXT)
            return rounded_value

        return rounded


def _quantum(digits: int) -> Decimal:
    """1E-digits: the step ROUND(x, digits) rounds to."""
    return Decimal(1).scaleb(-digits)


def _is_choice(node: Node) -> bool:
    return isinstance(node, Call) and node.name in ("IF", "IFS")


def compile_formula(
    source: str,
    fields: Mapping[str, FieldType],
    *,
    origin: str = "",
    line_offset: int = 0,
    column_offset: int = 0,
    result: FieldType | None = None,
) -> Formula:
    """Parse, type-check and compile ``source`` over the field schema ``fields``.

    ``origin`` (a file name), ``line_offset`` (lines before the formula's first line in
    that file) and ``column_offset`` (columns before its first character on that line)
    make error positions point into the config file. ``result``, when given, is the
    type the formula must produce (a score must be a number).
    Raises FormulaError, whose str() is the full bilingual message.
    """
    if not isinstance(source, str):
        raise FormulaError("公式必须是文本", "formula must be a string", line=line_offset + 1, origin=origin)
    where = SourceMap(source, origin, line_offset, column_offset)
    for name, declared in fields.items():
        if declared not in FIELD_TYPES:
            raise where.error(
                0,
                f"字段 `{name}` 的类型 `{declared}` 不支持；可用类型: number、text、date、bool",
                f"field `{name}` has unsupported type `{declared}`",
            )
    root = parse(source, where)
    checker = Checker(source, fields, where)
    kind = checker.check(root)
    if result is not None and kind != result:
        raise where.error(
            0,
            f"公式的结果应是{TYPE_ZH[result]}，这里是{TYPE_ZH[kind]}",
            f"the formula must give {TYPE_EN[result]}, it gives {TYPE_EN[kind]}",
        )
    return Formula(source, root, checker, where)
