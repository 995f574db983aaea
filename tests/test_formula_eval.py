"""Valid formulas: values, explain(), Tiering, and the dealer rebate exact to the fen."""

from __future__ import annotations

import ast
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from handlers.formula import FieldType, Formula, FormulaError, Tiering, compile_formula
from handlers.formula.examples import DEALER_REBATE, DEALER_REBATE_FIELDS, HEALTH_SCORE, HEALTH_SCORE_FIELDS

FIELDS: dict[str, FieldType] = {
    "行业潜力值": "number",
    "采购活跃度": "number",
    "微信互动次数": "number",
    "官网停留分钟": "number",
    "白皮书下载": "number",
    "行业": "text",
    "公司名称": "text",
    "签约日期": "date",
    "最近跟进日期": "date",
    "已认证": "bool",
    "a": "number",
    "b": "number",
    "x y": "number",
}
RECORD = {
    "行业潜力值": 85,
    "采购活跃度": D("3"),
    "微信互动次数": 10,
    "官网停留分钟": D("2.5"),
    "白皮书下载": 2,
    "行业": "汽车",
    "公司名称": "苏州精密机械有限公司",
    "签约日期": date(2026, 3, 1),
    "最近跟进日期": date(2026, 2, 20),
    "已认证": True,
    "a": 2,
    "b": D("4"),
    "x y": D("1.5"),
}
TODAY = date(2026, 11, 23)

VALID = [
    # arithmetic and precedence
    ("1+2*3", D(7)),
    ("(1+2)*3", D(9)),
    ("10 - 4 - 3", D(3)),
    ("24 / 4 / 2", D(3)),
    ("2 * 3 / 4", D("1.5")),
    ("0.1+0.2", D("0.3")),
    ("0.1 + 0.2 = 0.3", True),
    ("1/3*3", D("0." + "9" * 34)),
    ("-3 + 5", D(2)),
    ("--3", D(3)),
    ("-(2+3)", D(-5)),
    ("2*-3", D(-6)),
    ("+a", D(2)),
    ("-a * b", D(-8)),
    ("a / b", D("0.5")),
    (".5 + 1", D("1.5")),
    # Chinese input habits
    ("１２３＋１", D(124)),
    ("3×4÷2", D(6)),
    ("（a＋1）＊２", D(6)),
    ("IF（a＞1，1，0）", D(1)),
    ("95%", D("0.95")),
    ("3万 + 1", D(30001)),
    ("1.5亿", D(150000000)),
    ("５０％ * 10", D(5)),
    ("`x y` * 2", D("3.0")),
    ("1 +\n 2", D(3)),
    # comparisons
    ("5 ≥ 5", True),
    ("4 ≤ 3", False),
    ("4 ≠ 3", True),
    ("4 <> 4", False),
    ("4 == 4", True),
    ("4 = 4.00", True),
    ("4 != 4", False),
    ("a < b", True),
    ("a >= b", False),
    ("行业 = \"汽车\"", True),
    ("行业 = '汽车'", True),
    ("行业 = “汽车”", True),
    ("行业 = ‘汽车’", True),
    ("行业 = 「汽车」", True),
    ("行业 != \"电子\"", True),
    ("已认证 = TRUE", True),
    ("签约日期 > 最近跟进日期", True),
    ("签约日期 >= DATE(\"2026-03-02\")", False),
    ("签约日期 = DATE(\"2026年3月1日\")", True),
    ("签约日期 = DATE(\"2026/3/1\")", True),
    # logic
    ("a > 1 AND b < 3", False),
    ("a > 1 && b > 3", True),
    ("a > 5 || b = 4", True),
    ("a > 5 or b = 4", True),
    ("NOT a > 1", False),
    ("!(a > 1)", False),
    ("not (a > 5) and b = 4", True),
    ("AND(a > 1, b > 1)", True),
    ("OR(a > 5, b > 5)", False),
    ("a > 1 AND b > 1 AND 已认证", True),
    ("a > 9 OR b > 9 OR 已认证", True),
    ("a > 1 OR b > 1 AND FALSE", True),  # AND binds tighter than OR
    # functions
    ("IF(a > 1, 10, 20)", D(10)),
    ("if(a > 5, 10, 20)", D(20)),
    ("IF(已认证, 1, 0)", D(1)),
    ('IF(a > 1, "高", "低")', "高"),
    ("IFS(a > 5, 1, a > 1, 2, TRUE, 3)", D(2)),
    ("IFS(a > 5, 1, TRUE, 3)", D(3)),
    ("CONTAINS(公司名称, \"机械\")", True),
    ("CONTAINS(公司名称, \"电子\")", False),
    ("行业 IN (\"汽车\", '电子')", True),
    ("行业 NOT IN (\"汽车\", '电子')", False),
    ("IN(a, 1, 2, 3)", True),
    ("a IN (1, 3)", False),
    ("a NOT IN (1, 3)", True),
    ("a IN (b - 2, 7)", True),
    ("ROUND(2.505, 2)", D("2.51")),
    ("ROUND(2.345, 2)", D("2.35")),
    ("round(-2.5)", D(-3)),
    ("ROUND(1234, -2)", D(1200)),
    ("ROUND(a / 3, 4)", D("0.6667")),
    ("MIN(3, a, 1.5)", D("1.5")),
    ("MAX(3, a, 1.5)", D(3)),
    ("MAX(签约日期, 最近跟进日期)", date(2026, 3, 1)),
    ("ABS(-4.2)", D("4.2")),
    ("ABS(a - b)", D(2)),
    ("DAYS(签约日期, 最近跟进日期)", D(9)),
    ("DAYS(最近跟进日期, 签约日期)", D(-9)),
    ("DAYS(TODAY(), 签约日期) > 180", True),
    ("TODAY() = DATE(\"2026-11-23\")", True),
    # the examples
    ("IF(行业潜力值>80, 30, IF(行业潜力值>60, 20, 10)) + IF(采购活跃度>=3, 25, 0)", D(55)),
    ("微信互动次数*0.3 + IF(官网停留分钟>=3, 0.5, 0) + 白皮书下载*1.2", D("5.4")),
]


@pytest.mark.parametrize(("source", "expected"), VALID, ids=[source for source, _ in VALID])
def test_valid_formula_value(source: str, expected: object) -> None:
    formula = compile_formula(source, FIELDS)
    value = formula.evaluate(RECORD, today=TODAY)
    assert value == expected
    assert type(value) is type(expected)


def test_decimal_results_are_exact_not_merely_equal() -> None:
    assert str(compile_formula("0.1 + 0.2", {}).evaluate({})) == "0.3"
    assert str(compile_formula("ROUND(2.505, 2)", {}).evaluate({})) == "2.51"
    total = compile_formula("a + b + a + b + a + b", {"a": "number", "b": "number"})
    assert total.evaluate({"a": D("0.1"), "b": D("0.2")}) == D("0.9")


def test_float_field_values_are_taken_by_their_shortest_repr() -> None:
    formula = compile_formula("a + b", {"a": "number", "b": "number"})
    assert formula.evaluate({"a": 0.1, "b": 0.2}) == D("0.3")


def test_result_does_not_depend_on_callers_decimal_context() -> None:
    import decimal

    formula = compile_formula("1 / 3 + a", {"a": "number"})
    expected = formula.evaluate({"a": 1})
    with decimal.localcontext() as context:
        context.prec = 3
        assert formula.evaluate({"a": 1}) == expected
    assert str(expected) == "1." + "3" * 33


def test_formula_metadata() -> None:
    formula = compile_formula("IF(b > 1, a, a * 2) + DAYS(TODAY(), 签约日期)", FIELDS)
    assert isinstance(formula, Formula)
    assert formula.fields_used == frozenset({"a", "b", "签约日期"})
    assert formula.fields_in_order == ("b", "a", "签约日期")
    assert formula.result_type == "number"
    assert formula.uses_today
    assert not compile_formula("a", FIELDS).uses_today
    assert compile_formula("a > 1", FIELDS).result_type == "bool"
    assert compile_formula("行业", FIELDS).result_type == "text"


def test_full_width_field_names_match_schema() -> None:
    formula = compile_formula("ＡＢ + 1", {"AB": "number"})
    assert formula.evaluate({"AB": 1}) == 2


def test_compiled_formula_is_reusable_across_records() -> None:
    formula = compile_formula(HEALTH_SCORE, HEALTH_SCORE_FIELDS, result="number")
    base = {
        "行业潜力值": 85, "采购活跃度": 3, "微信互动次数": 7, "官网停留分钟": D("3.5"),
        "白皮书下载": 2, "最近跟进日期": date(2026, 11, 1), "行业": "电子",
    }
    # 30 + 25 + 2.1 + 0.5 + 2.4 + 10 + 5
    assert formula.evaluate(base, today=TODAY) == D("75.0")
    cold = dict(base, 行业潜力值=61, 采购活跃度=1, 微信互动次数=100, 官网停留分钟=0, 白皮书下载=0,
                最近跟进日期=date(2026, 9, 1), 行业="纺织")
    # 20 + 0 + MIN(30, 15) + 0 + 0 + 0 + 0
    assert formula.evaluate(cold, today=TODAY) == D(35)
    assert formula.evaluate(base, today=TODAY) == D("75.0")


# -- explain -------------------------------------------------------------------------------
def test_explain_names_the_deciding_conditions() -> None:
    formula = compile_formula("IF(行业潜力值>80, 30, IF(行业潜力值>60, 20, 10)) + IF(采购活跃度>=3, 25, 0)", FIELDS)
    assert formula.explain(RECORD) == [("行业潜力值>80", D(30)), ("采购活跃度>=3", D(25))]
    middling = dict(RECORD, 行业潜力值=70, 采购活跃度=1)
    assert formula.explain(middling) == [("行业潜力值>60", D(20)), ("采购活跃度>=3 不成立", D(0))]
    low = dict(RECORD, 行业潜力值=10)
    assert formula.explain(low)[0] == ("行业潜力值>60 不成立", D(10))


def test_explain_plain_terms_negative_terms_and_ifs_default() -> None:
    formula = compile_formula("微信互动次数 * 0.3 - ABS(a - b) + IFS(a > 5, 1, TRUE, 3) - IFS(a > 1, 2, TRUE, 0)", FIELDS)
    parts = formula.explain(RECORD)
    assert parts == [
        ("微信互动次数 * 0.3", D("3.0")),
        ("ABS(a - b)", D(-2)),
        ("其余情况", D(3)),
        ("a > 1", D(-2)),
    ]
    assert sum((value for _, value in parts), D(0)) == formula.evaluate(RECORD)


def test_explain_of_a_single_term_and_nested_if_in_then_branch() -> None:
    formula = compile_formula("IF(a > 1, IF(b > 3, 7, 5), 0)", FIELDS)
    assert formula.explain(RECORD) == [("a > 1, b > 3", D(7))]
    assert compile_formula("(a + b) * 2", FIELDS).explain(RECORD) == [("(a + b) * 2", D(12))]


def test_explain_refuses_non_number_formula() -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula("a > 1", FIELDS).explain(RECORD)
    assert "逐项解释" in caught.value.message_zh


# -- tiering -------------------------------------------------------------------------------
TIERS = Tiering.of([(80, "战略级"), (60, "重点跟进"), (40, "培育中")], default="暂缓")


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (100, "战略级"),
        (80, "战略级"),
        (D("79.99"), "重点跟进"),
        (60, "重点跟进"),
        ("59.999", "培育中"),
        (D("40.00"), "培育中"),
        (D("39.9999999999"), "暂缓"),
        (0, "暂缓"),
        (-5, "暂缓"),
    ],
)
def test_tiering_thresholds_are_inclusive_and_exact(score: object, tier: str) -> None:
    assert TIERS.tier(score) == tier  # type: ignore[arg-type]
    assert TIERS(score) == tier  # type: ignore[arg-type]


def test_tiering_validates_its_thresholds() -> None:
    assert TIERS.names == ("战略级", "重点跟进", "培育中", "暂缓")
    with pytest.raises(ValueError, match="从高到低"):
        Tiering.of([(60, "重点跟进"), (80, "战略级")], default="暂缓")
    with pytest.raises(ValueError, match="从高到低"):
        Tiering.of([(60, "a"), (60, "b")], default="暂缓")
    with pytest.raises(ValueError, match="float"):
        Tiering.of([(79.5, "a")], default="b")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="float"):
        TIERS.tier(80.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="不是数字"):
        Tiering.of([("八十", "a")], default="b")
    with pytest.raises(ValueError):
        Tiering.of([(80, "a")], default="")


def test_tiering_of_a_health_score() -> None:
    formula = compile_formula("IF(行业潜力值>80, 30, IF(行业潜力值>60, 20, 10)) + IF(采购活跃度>=3, 25, 0) + 25", FIELDS)
    assert TIERS.tier(formula.evaluate_number(RECORD)) == "战略级"  # 80
    assert TIERS.tier(formula.evaluate_number(dict(RECORD, 采购活跃度=2))) == "培育中"  # 55
    with pytest.raises(FormulaError, match="需要结果为数字的公式"):
        compile_formula("a > 1", FIELDS).evaluate_number(RECORD)


# -- dealer rebate, exact to the fen -------------------------------------------------------
REBATE_CASES = [
    # (采购额, 回款率, 新品占比, [volume part, payment part, new-product part], total) — by hand:
    # 2345678.91×2% = 46913.5782 → 46913.58; ×0.5% = 11728.39455 → 11728.39;
    # ×35%×2% = 16419.75237 → 16419.75; total 75061.72
    (D("2345678.91"), D("0.96"), D("0.35"), ["46913.58", "11728.39", "16419.75"], "75061.72"),
    # below every volume tier; 501×0.5% = 2.505 → 2.51 (half-up; binary float gives 2.50);
    # 501×30%×2% = 3.006 → 3.01; boundaries 95% and 30% included
    (D("501.00"), D("0.95"), D("0.30"), ["0.00", "2.51", "3.01"], "5.52"),
    # exactly 500万 reaches the 3% tier; 94.99% and 29.99% just miss
    (D("5000000.00"), D("0.9499"), D("0.2999"), ["150000.00", "0", "0"], "150000.00"),
    # 1999999.99×1% = 19999.9999 → 20000.00; ×0.5% = 9999.99995 → 10000.00; ×50%×2% → 20000.00
    (D("1999999.99"), D(1), D("0.5"), ["20000.00", "10000.00", "20000.00"], "50000.00"),
    # integer yuan: 123456×0.5% = 617.28; 123456×40%×2% = 987.648 → 987.65
    (123456, D("0.97"), D("0.4"), ["0.00", "617.28", "987.65"], "1604.93"),
    (D(0), D(0), D(0), ["0.00", "0", "0"], "0.00"),
]


@pytest.mark.parametrize(("volume", "paid", "new_share", "parts", "total"), REBATE_CASES)
def test_dealer_rebate_is_exact_to_the_fen(
    volume: object, paid: D, new_share: D, parts: list[str], total: str
) -> None:
    rebate = compile_formula(DEALER_REBATE, DEALER_REBATE_FIELDS, origin="leadbot.toml", result="number")
    record = {"采购额": volume, "回款率": paid, "新品占比": new_share}
    value = rebate.evaluate(record)
    assert isinstance(value, D)
    assert value == D(total)
    assert str(value) == total
    explained = rebate.explain(record)
    assert [str(part) for _, part in explained] == parts
    assert sum((part for _, part in explained), D(0)) == value
    fen = value * 100
    assert fen == fen.to_integral_value()  # nothing below the fen


def test_rebate_explain_labels_read_like_the_rules() -> None:
    rebate = compile_formula(DEALER_REBATE, DEALER_REBATE_FIELDS)
    labels = [label for label, _ in rebate.explain({"采购额": D(600000), "回款率": D("0.9"), "新品占比": D("0.3")})]
    assert labels[1:] == ["回款率 >= 95% 不成立", "新品占比 ≥ 30%"]


# -- safety --------------------------------------------------------------------------------
def test_formula_package_never_calls_eval_exec_compile_or_getattr() -> None:
    banned = {"eval", "exec", "compile", "__import__", "getattr", "setattr", "globals", "locals", "vars"}
    package = Path(__file__).resolve().parents[1] / "handlers" / "formula"
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in banned, f"{path.name}:{node.lineno} calls {node.func.id}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = getattr(node, "module", None) or ""
                names = [alias.name for alias in node.names]
                assert not {"os", "subprocess", "importlib", "builtins"} & {module, *names}


@pytest.mark.parametrize(
    "source",
    ['__import__("os")', "a.__class__", "().__class__", "a.real", "open(\"x\")", "lambda: 1", "a; b", "[a]"],
)
def test_python_escapes_are_just_errors(source: str) -> None:
    with pytest.raises(FormulaError):
        compile_formula(source, {"a": "number", "b": "number"})


def test_field_names_with_brackets_or_leading_digits_use_backticks() -> None:
    fields: dict[str, FieldType] = {"采购额（万元）": "number", "2025销量": "number"}
    formula = compile_formula("`采购额（万元）` * 2 + `2025销量`", fields)
    assert formula.evaluate({"采购额（万元）": 3, "2025销量": 4}) == 10
    with pytest.raises(FormulaError, match="含括号，写在公式里要用反引号"):
        compile_formula("采购额（万元） * 2", fields)
    with pytest.raises(FormulaError, match="是否指 `采购额（万元）`\\?（该字段名含特殊字符"):
        compile_formula("采购额 * 2", fields)
    with pytest.raises(FormulaError, match="以数字开头的字段名"):
        compile_formula("2025销量 + 1", fields)


def test_enum_values_are_accepted_as_their_base_type() -> None:
    from enum import IntEnum, StrEnum

    class Stage(StrEnum):
        WON = "赢单"

    class Level(IntEnum):
        HIGH = 3

    formula = compile_formula('IF(阶段 = "赢单", 级别 * 10, 0)', {"阶段": "text", "级别": "number"})
    assert formula.evaluate({"阶段": Stage.WON, "级别": Level.HIGH}) == 30
