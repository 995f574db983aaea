"""Invalid formulas: where the error points and what it says, at compile and at evaluation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from handlers.formula import MAX_SOURCE_CHARS, FieldType, FormulaError, compile_formula

FIELDS: dict[str, FieldType] = {
    "采购活跃度": "number",
    "采购额": "number",
    "行业": "text",
    "公司名称": "text",
    "签约日期": "date",
    "最近跟进日期": "date",
    "已认证": "bool",
    "a": "number",
    "b": "number",
}

# (source, line, column, Chinese fragment, English fragment)
INVALID = [
    ("采购活越度 + 1", 1, 1, "字段 `采购活越度` 不存在，是否指 `采购活跃度`?", "did you mean `采购活跃度`"),
    ("1 +\n  采购活越度", 2, 3, "是否指 `采购活跃度`", "unknown field"),
    ("行业 = 汽车", 1, 6, '如果这是文字，请加引号: "汽车"', "quote it if it is text"),
    ("ROUND + 1", 1, 1, "`ROUND` 是函数，后面需要括号", "is a function"),
    ("a + ", 1, 5, "公式不完整", "formula ends"),
    ("", 1, 1, "公式为空", "empty"),
    ("   ", 1, 1, "公式为空", "empty"),
    ("IF(a>1, 2", 1, 10, "缺少右括号 `)`，与第1行第3列的 `(` 配对", "missing `)`"),
    ("(a + 1", 1, 7, "缺少右括号", "missing `)`"),
    ("IF(a>1 2, 3)", 1, 8, "这里应是 `)` 或 `,`", "expected `)` or `,`"),
    ("a + 1)", 1, 6, "多余的右括号", "unmatched `)`"),
    ("a b", 1, 3, "多余的 `b`", "missing operator"),
    ("a > 1 > 0", 1, 7, "比较不能连写", "cannot be chained"),
    ("IF(a>1,, 2)", 1, 7, "多余的逗号", "no argument"),
    ("a * )", 1, 5, "这里缺少一个值或字段，却遇到 `)`", "expected a value"),
    ("AND", 1, 1, "关键字 `AND`", "keyword"),
    ("a IN 1", 1, 6, "IN 后面应是括号", "parenthesised list"),
    ('"abc', 1, 1, "字符串缺少结尾的引号", "unterminated string"),
    ("行业 = “汽车", 1, 6, "字符串缺少结尾的引号 ”", "unterminated"),
    ("`采购额 + 1", 1, 1, "反引号", "unterminated"),
    ("a # 1", 1, 3, "无法识别的字符 `#`", "unexpected character"),
    ("a ^ 2", 1, 3, "不支持乘方", "not supported"),
    ("a & b", 1, 3, "表示“并且”请写 AND 或 &&", "write AND"),
    ("a % 2", 1, 3, "`%` 只能紧跟在数字后面", "may only follow a number"),
    ("500万元", 1, 4, "数字 `500` 后面紧跟着 `万`", "operator is missing"),
    ("3天", 1, 2, "后面紧跟着 `天`", "operator is missing"),
    ("a。", 1, 2, "句号", "decimal point"),
    ("1" * 40, 1, 1, "位数太多", "longer than"),
    ("行业 > 80", 1, 4, "不能比较文本 `行业` 与数字 `80`；文本字段请与带引号的文字比较", "cannot compare text with a number"),
    ("签约日期 > 5", 1, 6, "日期请与日期比较", "cannot compare a date"),
    ('行业 > "a"', 1, 4, "文本只能用 = 或 != 比较，不能用 `>`", "only be compared with = or !="),
    ("已认证 ≥ TRUE", 1, 5, "只能用 = 或 != 比较，不能用 `≥`", "not `≥`"),
    ("公司名称 + 1", 1, 1, "加减运算的每一项必须是数字，这里 `公司名称` 是文本；文本不能做算术运算", "each term of + and -"),
    ("2 * 行业", 1, 5, "乘除运算的每一项必须是数字", "each factor"),
    ("-行业", 1, 2, "负号", "unary minus"),
    ("签约日期 - 最近跟进日期", 1, 1, "DAYS(结束日期, 开始日期)", "must be a number"),
    ("TRUE + 1", 1, 1, "如需按条件计分，请写 IF(TRUE, 分值, 0)", "must be a number"),
    ("IF(a, 1, 2)", 1, 4, "IF 的第1个参数(条件)必须是条件(真/假)，这里 `a` 是数字；是否想写 `a > 0`?", "IF condition"),
    ("IF(行业, 1, 2)", 1, 4, "是否想写 `行业 = \"某个值\"`?", "IF condition"),
    ('IF(a>1, 1, "x")', 1, 12, "IF 的各个结果类型必须一致", "one type"),
    ("a AND b > 1", 1, 1, "AND 的每一边必须是条件", "each side of AND"),
    ("NOT a", 1, 5, "NOT 后面必须是条件", "operand of NOT"),
    ('a IN (1, "x")', 1, 10, "IN 的候选值 `\"x\"` 是文本", "IN option"),
    ("ROUND(1, 2, 3)", 1, 1, "函数 ROUND 需要 1 到 2 个参数，这里有 3 个；用法: ROUND(数字, 小数位数)", "ROUND takes 1 to 2 arguments, got 3"),
    ("IF(a>1, 2)", 1, 1, "函数 IF 需要 3 个参数，这里有 2 个", "IF takes 3 arguments, got 2"),
    ("MIN()", 1, 1, "至少 1 个", "at least 1"),
    ("IN(a)", 1, 1, "函数 IN 需要至少 2 个参数", "at least 2"),
    ("AND()", 1, 1, "函数 AND 需要至少 1 个参数", "AND takes at least 1 argument, got 0"),
    ("TODAY(1)", 1, 1, "函数 TODAY 需要 0 个参数", "TODAY takes 0"),
    ("IFS(a>1, 1, 2)", 1, 1, "IFS 的参数必须成对", "condition/value pairs"),
    ("IFS(a, 1)", 1, 5, "IFS 的第1个参数(条件)", "each IFS condition"),
    ("ROUDN(a, 2)", 1, 1, "函数 `ROUDN` 不存在，是否指 `ROUND`?", "did you mean `ROUND`"),
    ("FOO(1)", 1, 1, "函数 `FOO` 不存在。可用函数: IF, IFS", "unknown function `FOO`"),
    ("a(1)", 1, 2, "`a` 是字段不是函数", "is a field, not a function"),
    ('CONTAINS(a, "x")', 1, 10, "CONTAINS 的第1个参数必须是文本", "CONTAINS"),
    ("DAYS(a, b)", 1, 6, "DAYS 的第1个参数(结束日期)必须是日期", "DAYS"),
    ('DATE("tomorrow")', 1, 6, 'DATE 的参数必须是带引号的日期', "quoted date"),
    ("DATE(a)", 1, 6, "DATE 的参数必须是带引号的日期", "quoted date"),
    ("ROUND(a, 1.5)", 1, 10, "ROUND 的小数位数必须是 -12 到 12 之间的整数", "ROUND digits"),
    ("ROUND(a, 20)", 1, 10, "整数", "ROUND digits"),
    ('ROUND(a, "2")', 1, 10, "ROUND 的小数位数必须是数字", "digits of ROUND"),
    ("MIN(行业, 公司名称)", 1, 1, "MIN 只能比较数字或日期", "MIN takes numbers or dates"),
    ("MAX(a, 签约日期)", 1, 8, "MAX 的各个结果类型必须一致", "one type"),
    ("a / 0", 1, 5, "除数为 0", "literal zero"),
    ("a / -0.00", 1, 5, "除数为 0", "literal zero"),
    ("a / (0)", 1, 5, "除数为 0", "literal zero"),
    ("(" * 33 + "1" + ")" * 33, 1, 33, "公式嵌套太深: 超过 32 层", "nested too deeply"),
    ("-" * 40 + "1", 1, 33, "公式嵌套太深", "nested too deeply"),
    ("NOT " * 40 + "TRUE", 1, 129, "公式嵌套太深", "nested too deeply"),
    ("+".join(["a"] * 600), 1, 1001, "公式太复杂: 超过 500 个部分", "too complex"),
    ("1+" * 1000 + "1", 1, MAX_SOURCE_CHARS + 1, "公式太长: 2001 个字符，上限 2000", "too long"),
]


@pytest.mark.parametrize(("source", "line", "column", "zh", "en"), INVALID, ids=[case[0][:30] for case in INVALID])
def test_invalid_formula_points_at_the_mistake(source: str, line: int, column: int, zh: str, en: str) -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula(source, FIELDS)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    assert zh in error.message_zh
    assert en in error.message_en
    assert str(error).startswith(f"第{line}行第{column}列: ")
    assert str(error).endswith(f" ({error.message_en})")


def test_full_message_names_file_line_and_column_in_the_config() -> None:
    # score = "IF(采购活越度>=3, 25, 0)" on line 12 of leadbot.toml; the formula starts at column 15
    with pytest.raises(FormulaError) as caught:
        compile_formula("IF(采购活越度>=3, 25, 0)", FIELDS, origin="leadbot.toml", line_offset=11, column_offset=14)
    assert str(caught.value) == (
        "leadbot.toml 第12行第18列: 字段 `采购活越度` 不存在，是否指 `采购活跃度`? "
        "(unknown field `采购活越度`; did you mean `采购活跃度`?)"
    )
    assert caught.value.origin == "leadbot.toml"
    assert isinstance(caught.value, ValueError)


def test_column_offset_applies_only_to_the_first_line() -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula("a +\nb + 采购活越度", FIELDS, origin="x.toml", line_offset=4, column_offset=10)
    assert (caught.value.line, caught.value.column) == (6, 5)


def test_result_type_is_enforced_when_asked() -> None:
    with pytest.raises(FormulaError, match="公式的结果应是数字，这里是条件"):
        compile_formula("a > 1", FIELDS, result="number")
    assert compile_formula("a > 1", FIELDS, result="bool").result_type == "bool"


def test_schema_with_unknown_type_is_refused() -> None:
    with pytest.raises(FormulaError, match="类型 `money` 不支持"):
        compile_formula("a", {"a": "money"})  # type: ignore[dict-item]


def test_non_string_source_is_refused() -> None:
    with pytest.raises(FormulaError, match="公式必须是文本"):
        compile_formula(None, FIELDS)  # type: ignore[arg-type]


# -- evaluation errors ---------------------------------------------------------------------
RECORD = {
    "采购活跃度": 3, "采购额": D("100.00"), "行业": "汽车", "公司名称": "某厂", "签约日期": date(2026, 1, 1),
    "最近跟进日期": date(2026, 1, 5), "已认证": False, "a": 2, "b": 0,
}


@pytest.mark.parametrize(
    ("source", "record", "column", "zh", "en"),
    [
        ("a / b", {}, 5, "除数为 0: `b` 的值是 0", "division by zero"),
        ("a / (b * 2)", {}, 5, "除数为 0: `(b * 2)` 的值是 0", "division by zero"),
        ("a + 1", {"a": None}, 1, "记录中缺少字段 `a` 的值", "no value"),
        ("1 + a", {"a": "12"}, 5, "字段 `a` 应是数字，记录中的值却是 str", "should be a number"),
        ("1 + a", {"a": True}, 5, "应是数字", "should be a number"),
        ("1 + a", {"a": D("NaN")}, 5, "应是数字", "should be a number"),
        ("1 + a", {"a": float("inf")}, 5, "应是数字", "should be a number"),
        ("行业 = \"x\"", {"行业": 5}, 1, "应是文本", "should be text"),
        ("已认证", {"已认证": 1}, 1, "应是条件", "should be a condition"),
        ("DAYS(签约日期, 最近跟进日期)", {"签约日期": datetime(2026, 1, 1, tzinfo=UTC)}, 6, "请先换算成上海时区的日期", "should be a date"),
        ("IFS(a > 5, 1, a > 3, 2)", {}, 1, "IFS 的条件都不成立；请在最后加一对 `TRUE, 默认值`", "no IFS condition"),
        ("DAYS(TODAY(), 签约日期)", {}, 6, "没有给出今天的日期", "no today="),
        ("ROUND(a, b - 0.5)", {}, 10, "ROUND 的小数位数必须是", "ROUND digits"),
        ("a * a * a * a", {"a": D("1e300000")}, 1, "计算结果超出范围", "overflow"),
    ],
)
def test_evaluation_errors_are_formula_errors(
    source: str, record: dict[str, object], column: int, zh: str, en: str
) -> None:
    formula = compile_formula(source, FIELDS, origin="leadbot.toml", line_offset=20)
    with pytest.raises(FormulaError) as caught:
        formula.evaluate({**RECORD, **record})
    error = caught.value
    assert (error.line, error.column) == (21, column), str(error)
    assert zh in error.message_zh
    assert en in error.message_en
    assert str(error).startswith("leadbot.toml 第21行")


def test_missing_key_is_reported_like_none() -> None:
    formula = compile_formula("采购额 * 2", FIELDS)
    with pytest.raises(FormulaError, match="缺少字段 `采购额`"):
        formula.evaluate({})
    with pytest.raises(FormulaError, match="缺少字段 `采购额`"):
        formula.explain({})
