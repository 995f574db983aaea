"""Property tests: token soups and random text only ever give FormulaError; well-formed
random arithmetic matches an independent evaluation; limits hold; nothing hangs."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal as D
from functools import reduce

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.formula import CONTEXT, MAX_DEPTH, MAX_SOURCE_CHARS, FieldType, FormulaError, compile_formula

FIELDS: dict[str, FieldType] = {
    "a": "number",
    "b": "number",
    "zero": "number",
    "行业": "text",
    "签约日期": "date",
    "已认证": "bool",
}
RECORD = {"a": D(2), "b": D("0.5"), "zero": 0, "行业": "汽车", "签约日期": date(2026, 3, 1), "已认证": True}
TODAY = date(2026, 11, 23)
RESULT_TYPES = {"number": D, "text": str, "date": date, "bool": bool}

VOCAB = [
    "a", "b", "zero", "行业", "签约日期", "已认证", "采购活越度", "`a`", "`行业`",
    "0", "1", "2.5", "95%", "3万", "１２", ".5", "1e5", '"汽车"', "“电子”", "'x'", "「y」",
    "(", ")", "（", "）", ",", "，", "+", "-", "*", "/", "×", "÷", "−",
    ">", ">=", "<", "<=", "=", "==", "!=", "<>", "≥", "≤", "≠",
    "AND", "OR", "NOT", "&&", "||", "!", "IN", "TRUE", "FALSE", "and", "not",
    "IF", "IFS", "CONTAINS", "ROUND", "MIN", "MAX", "ABS", "DAYS", "TODAY", "DATE", "FOO", "__import__",
    '"', "'", "“", "`", "%", "万", ".", "#", "^", "&", "\n", "。", "、", "[", "]", ";", ":", "\\",
]
PROPERTY_SETTINGS = settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


def compile_and_run(source: str) -> None:
    """Compile and, if that works, evaluate and explain; only FormulaError may escape."""
    try:
        formula = compile_formula(source, FIELDS)
    except FormulaError as error:
        assert error.line >= 1 and error.column >= 1
        assert error.message_zh and error.message_en
        return
    try:
        value = formula.evaluate(RECORD, today=TODAY)
    except FormulaError:
        return
    assert isinstance(value, RESULT_TYPES[formula.result_type])
    if formula.result_type == "number":
        parts = formula.explain(RECORD, today=TODAY)
        assert reduce(CONTEXT.add, (part for _, part in parts)) == value


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(VOCAB), max_size=40), st.sampled_from(["", " ", "  "]))
def test_token_soup_gives_only_formula_errors(tokens: list[str], glue: str) -> None:
    compile_and_run(glue.join(tokens))


@PROPERTY_SETTINGS
@given(st.text(max_size=300))
def test_random_text_gives_only_formula_errors(source: str) -> None:
    compile_and_run(source)


@PROPERTY_SETTINGS
@given(st.text(alphabet="()-+NOT IF,1a!", max_size=2100))
def test_bracket_and_sign_storms_give_only_formula_errors(source: str) -> None:
    started = time.perf_counter()
    compile_and_run(source)
    assert time.perf_counter() - started < 1


# -- well-formed expressions against an independent evaluation -------------------------------
FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")


@st.composite
def number_leaf(draw: st.DrawFn) -> tuple[str, D]:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        name = draw(st.sampled_from(["a", "b", "zero"]))
        raw = RECORD[name]
        assert isinstance(raw, D | int)
        return name, D(raw)
    value = draw(st.decimals(min_value=-10**6, max_value=10**6, places=draw(st.integers(0, 3)), allow_nan=False))
    text = str(abs(value))
    if "E" in text or "e" in text:
        text = format(abs(value), "f")
    if draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    if value < 0:
        text = f"(-{text})" if draw(st.booleans()) else f"-{text}"
    return text, D(format(value, "f"))


def combine(kind: int, left: tuple[str, D], right: tuple[str, D], third: tuple[str, D], times_sign: str) -> tuple[str, D]:
    (ls, lv), (rs, rv), (ts, tv) = left, right, third
    if kind == 0:
        return f"({ls} + {rs})", CONTEXT.add(lv, rv)
    if kind == 1:
        return f"({ls} - {rs})", CONTEXT.subtract(lv, rv)
    if kind == 2:
        return f"({ls} {times_sign} {rs})", CONTEXT.multiply(lv, rv)
    if kind == 3 and rv != 0:
        return f"({ls} / {rs})", CONTEXT.divide(lv, rv)
    if kind == 4:
        # precedence without brackets: * binds tighter than +, - is left-associative
        return f"({ls} + {rs} * {ts} - {ls})", CONTEXT.subtract(CONTEXT.add(lv, CONTEXT.multiply(rv, tv)), lv)
    if kind == 5:
        return f"IF({ls} >= {rs}, {ts}, {ls})", tv if lv >= rv else lv
    if kind == 6:
        return f"MIN({ls}, {rs}, {ts})", min(lv, rv, tv)
    if kind == 7:
        return f"ABS({ls})", CONTEXT.abs(lv)
    if kind == 8:
        return f"ROUND({ls}, 2)", lv.quantize(D("0.01"), rounding="ROUND_HALF_UP", context=CONTEXT)
    if kind == 9:
        return f"IFS({ls} < {rs}, {rs}, {ls} ≠ {ts}, {ts}, TRUE, 0)", rv if lv < rv else (tv if lv != tv else D(0))
    return f"-{ls}" if not ls.startswith("-") else f"-({ls})", CONTEXT.minus(lv)


expressions = st.recursive(
    number_leaf(),
    lambda children: st.builds(
        combine, st.integers(0, 10), children, children, children, st.sampled_from(["*", "×", "＊"])
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_well_formed_arithmetic_matches_independent_evaluation(case: tuple[str, D]) -> None:
    source, expected = case
    if len(source) > MAX_SOURCE_CHARS:
        with pytest.raises(FormulaError, match="公式太长"):
            compile_formula(source, FIELDS)
        return
    try:
        formula = compile_formula(source, FIELDS)
    except FormulaError as error:
        # a random tree may legitimately nest past the limit; nothing else may fail
        assert "嵌套太深" in error.message_zh or "太复杂" in error.message_zh, str(error)
        return
    value = formula.evaluate(RECORD)
    assert value == expected, source
    parts = formula.explain(RECORD)
    assert reduce(CONTEXT.add, (part for _, part in parts)) == value


@settings(max_examples=200, deadline=1000)
@given(st.lists(number_leaf(), min_size=1, max_size=60), st.lists(st.sampled_from(["+", "-"]), min_size=60, max_size=60))
def test_long_flat_sums_explain_term_by_term(leaves: list[tuple[str, D]], signs: list[str]) -> None:
    source = leaves[0][0] + "".join(f" {sign} {text}" for sign, (text, _) in zip(signs, leaves[1:], strict=False))
    expected = leaves[0][1]
    for sign, (_, value) in zip(signs, leaves[1:], strict=False):
        expected = CONTEXT.add(expected, value) if sign == "+" else CONTEXT.subtract(expected, value)
    formula = compile_formula(source, FIELDS)
    assert formula.evaluate(RECORD) == expected
    assert len(formula.explain(RECORD)) == len(leaves)


# -- limits ----------------------------------------------------------------------------------
NESTERS = [
    ("(", ")"),
    ("IF(TRUE, ", ", 0)"),
    ("ABS(", ")"),
    ("MIN(1, ", ")"),
    ("-", ""),
    ("- (", ")"),
]


@settings(max_examples=200, deadline=1000)
@given(st.integers(MAX_DEPTH + 1, 5000), st.sampled_from(NESTERS))
def test_deep_nesting_is_refused_quickly(depth: int, nester: tuple[str, str]) -> None:
    opener, closer = nester
    source = opener * depth + "1" + closer * depth
    started = time.perf_counter()
    with pytest.raises(FormulaError) as caught:
        compile_formula(source, FIELDS)
    assert time.perf_counter() - started < 0.5
    assert "嵌套太深" in caught.value.message_zh or "公式太长" in caught.value.message_zh


@pytest.mark.parametrize("nester", NESTERS)
def test_nesting_up_to_the_limit_is_fine(nester: tuple[str, str]) -> None:
    opener, closer = nester
    depth = MAX_DEPTH if opener != "- (" else MAX_DEPTH // 2
    formula = compile_formula(opener * depth + "1" + closer * depth, FIELDS)
    assert formula.evaluate(RECORD) in (D(1), D(-1))


@settings(max_examples=100, deadline=1000)
@given(st.text(min_size=MAX_SOURCE_CHARS + 1, max_size=MAX_SOURCE_CHARS + 500))
def test_sources_over_the_length_limit_are_refused(source: str) -> None:
    with pytest.raises(FormulaError, match="公式太长"):
        compile_formula(source, FIELDS)


@settings(max_examples=200, deadline=1000)
@given(st.decimals(min_value=-10**9, max_value=10**9, places=2), st.decimals(min_value=-10**9, max_value=10**9, places=2))
def test_money_sums_are_exact_to_the_fen(first: D, second: D) -> None:
    formula = compile_formula("a + b - a * 1 + ROUND(b, 2)", FIELDS)
    value = formula.evaluate_number({**RECORD, "a": first, "b": second})
    assert value == second + second
    assert value * 100 == (value * 100).to_integral_value()
