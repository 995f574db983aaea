"""Assignment rules: the TOML shape, its error messages, money parsing and rule matching."""

from __future__ import annotations

import tomllib
from datetime import time
from typing import Any

import pytest

from handlers.assignment import (
    DEFAULT_RULE_NAME,
    Condition,
    LeadFacts,
    RuleError,
    Target,
    format_fen,
    parse_assignment,
    parse_rules,
    parse_yuan,
)

DOC_TOML = """
[assignment]
accept_within_hours = 2
new_rep_days = 30
new_rep_min_share_pct = 10
default_region = "华东"
returning_to_owner = true
business_hours = ["09:00", "18:00"]

[[assignment.groups]]
name = "大客户组"
members = ["zhangwei", "sunli"]
manager = "chenjing"

[[assignment.rules]]
name = "新能源汽车大单"
when = { source = "官网表单", industry_contains = "新能源汽车", budget_gte = "50万" }
to = { pool = "province", top_n = 3 }
accept_within_hours = 1

[[assignment.rules]]
name = "展会线索"
when = { source_in = ["展会", "展会扫码"], province = ["江苏", "浙江"] }
to = { group = "大客户组", overflow = "manager" }

[[assignment.rules]]
name = "深圳客户"
when = { city = "深圳" }
to = { rep = "liuyang" }
"""

REGIONS = ["华东", "华南", "华北"]
REPS = ["zhangwei", "lina", "sunli", "liuyang"]


def _section(text: str = DOC_TOML) -> dict[str, Any]:
    return tomllib.loads(text)["assignment"]  # type: ignore[no-any-return]


def test_documented_shape_parses() -> None:
    cfg = parse_assignment(_section(), region_names=REGIONS, rep_ids=REPS)
    assert [r.name for r in cfg.rules] == ["新能源汽车大单", "展会线索", "深圳客户"]
    big = cfg.rules[0]
    assert big.when == Condition(sources=("官网表单",), industry_contains=("新能源汽车",), budget_gte_fen=50_000_000)
    assert big.to == Target(kind="province", top_n=3)
    assert big.accept_within_hours == 1.0
    fair = cfg.rules[1]
    assert fair.when.sources == ("展会", "展会扫码")
    assert fair.when.provinces == ("江苏省", "浙江省")
    assert fair.to == Target(kind="group", name="大客户组", overflow="manager")
    assert cfg.rules[2].when.cities == ("深圳",)
    assert cfg.rules[2].to == Target(kind="rep", name="liuyang")
    assert cfg.groups[0].members == ("zhangwei", "sunli") and cfg.groups[0].manager == "chenjing"
    assert cfg.default_region == "华东" and cfg.new_rep_min_share_pct == 10
    assert cfg.business_hours.opens == time(9) and cfg.business_hours.closes == time(18)


def test_module_docstring_example_parses() -> None:
    import handlers.assignment as module

    doc = module.__doc__ or ""
    block = doc.split("TOML shape (the ``[assignment]`` section of ``leadbot.toml``)::", 1)[1].split("\n`when` keys", 1)[0]
    text = "\n".join(line[4:] for line in block.splitlines())
    cfg = parse_assignment(tomllib.loads(text)["assignment"], region_names=REGIONS, rep_ids=REPS)
    assert len(cfg.rules) == 3


def test_empty_section_gives_defaults() -> None:
    cfg = parse_assignment(None)
    assert cfg.rules == () and cfg.accept_within_hours == 2.0 and cfg.returning_to_owner


def _error(toml_rules: str, **known: Any) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_assignment(_section(toml_rules), region_names=known.get("regions", REGIONS), rep_ids=known.get("reps", REPS))
    return info.value


@pytest.mark.parametrize(
    ("toml", "zh", "en", "key"),
    [
        (
            '[assignment]\n[[assignment.rules]]\nname = "新能源汽车大单"\nwhen = { budgte = 500000 }\nto = { pool = "province" }',
            "规则 `新能源汽车大单` 中的字段 `budgte` 不存在，是否指 `budget_gte`?",
            "rule `新能源汽车大单`: unknown key `budgte`, did you mean `budget_gte`?",
            "when.budgte",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nacept_within_hours = 2\nto = { pool = "province" }',
            "规则 `A` 中的字段 `acept_within_hours` 不存在，是否指 `accept_within_hours`?",
            "did you mean `accept_within_hours`?",
            "acept_within_hours",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { pool = "province", topn = 3 }',
            "字段 `topn` 不存在，是否指 `top_n`?",
            "unknown key `topn`",
            "to.topn",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { region = "华东区" }',
            "规则 `A` 中的字段 `region`：区域 `华东区` 不存在，是否指 `华东`?",
            "unknown region `华东区`, did you mean `华东`?",
            "to.region",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { rep = "zhangwie" }',
            "销售 `zhangwie` 不存在，是否指 `zhangwei`?",
            "unknown rep",
            "to.rep",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { group = "大客户" }',
            "分组 `大客户` 不存在",
            "unknown group",
            "to.group",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { region = "华东", rep = "lina" }',
            "必须且只能指定 pool / region / group / rep 其中之一",
            "exactly one of",
            "to",
        ),
        ('[assignment]\n[[assignment.rules]]\nname = "A"', "缺失或格式错误", "missing", "to"),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { pool = "city" }',
            "只支持 \"province\"",
            "only \"province\"",
            "to.pool",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nwhen = { budget_gte = 500000.0 }\nto = { pool = "province" }',
            "应为整数（元）或金额文本",
            "no floats",
            "when.budget_gte",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nwhen = { budget_gte = "50万", budget_lt = "10万" }\nto = { pool = "province" }',
            "必须大于 budget_gte",
            "greater than",
            "when.budget_lt",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nwhen = { province = "江南" }\nto = { pool = "province" }',
            "`江南` 不是省级行政区名称",
            "not a province-level division",
            "when.province",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nwhen = { source_in = [] }\nto = { pool = "province" }',
            "应为文本或文本列表",
            "list of texts",
            "when.source_in",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { rep = "lina", top_n = 2 }',
            "不能与 rep 同时使用",
            "cannot be used with rep",
            "to.top_n",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { pool = "province", top_n = 0 }',
            "应为正整数",
            "positive integer",
            "to.top_n",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { pool = "province", overflow = "nobody" }',
            "应为 \"region\"",
            "must be \"region\" or \"manager\"",
            "to.overflow",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nto = { pool = "province" }',
            "第1条规则缺少 name",
            "rule #1 needs a name",
            "name",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\nto = { pool = "province" }\n[[assignment.rules]]\nname = "A"\nto = { rep = "lina" }',
            "规则名称 `A` 重复",
            "duplicate rule name",
            "name",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "兜底"\nto = { pool = "province" }\n[[assignment.rules]]\nname = "B"\nwhen = { city = "深圳" }\nto = { rep = "lina" }',
            "规则 `B` 永远不会生效：前面的规则 `兜底` 没有 when 条件",
            "unreachable",
            "when",
        ),
        (
            '[assignment]\n[[assignment.rules]]\nname = "A"\naccept_within_hours = 0\nto = { pool = "province" }',
            "应为正数（工作小时）",
            "positive number of business hours",
            "accept_within_hours",
        ),
        ('[assignment]\nacept_within_hours = 2', "[assignment] 中的字段 `acept_within_hours` 不存在，是否指 `accept_within_hours`?", "did you mean", "acept_within_hours"),
        ('[assignment]\nbusiness_hours = ["18:00", "09:00"]', "开始、结束时间", "opening before closing", "business_hours"),
        ('[assignment]\nnew_rep_min_share_pct = 150', "0–100 的整数", "0-100", "new_rep_min_share_pct"),
        ('[assignment]\ndefault_region = "华中"', "不是已配置的区域", "not a configured region", "default_region"),
        ('[assignment]\nreturning_to_owner = "yes"', "应为 true 或 false", "true or false", "returning_to_owner"),
        (
            '[assignment]\n[[assignment.groups]]\nname = "G"\nmembrs = ["lina"]',
            "分组 `G` 中的字段 `membrs` 不存在，是否指 `members`?",
            "unknown key `membrs`",
            "groups.membrs",
        ),
        ('[assignment]\n[[assignment.groups]]\nname = "G"\nmembers = ["nobody"]', "成员 `nobody` 不存在", "unknown member", "groups.members"),
    ],
)
def test_errors_name_rule_and_key_in_both_languages(toml: str, zh: str, en: str, key: str) -> None:
    err = _error(toml)
    assert zh in err.zh, err.zh
    assert en in err.en, err.en
    assert err.key == key
    assert zh in str(err) and en in str(err)


def test_error_carries_rule_index_for_the_line_number() -> None:
    err = _error('[assignment]\n[[assignment.rules]]\nname = "A"\nto = { pool = "province" }\n'
                 '[[assignment.rules]]\nname = "B"\nwhen = { cty = "深圳" }\nto = { rep = "lina" }')
    assert err.rule == "B" and err.index == 1 and "是否指 `city`?" in err.zh


def test_references_are_not_checked_without_known_names() -> None:
    rules = parse_rules([{"name": "A", "when": {"source": "展会"}, "to": {"rep": "anyone"}}, {"name": "B", "when": {"city": "深圳"}, "to": {"region": "任意"}}])
    assert [r.to.name for r in rules] == ["anyone", "任意"]


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        (500000, 50_000_000),
        (0, 0),
        ("50万", 50_000_000),
        ("50 万元", 50_000_000),
        ("12.5万", 12_500_000),
        ("1.2亿", 12_000_000_000),
        ("8000元", 800_000),
        ("8000", 800_000),
        ("3千", 300_000),
        ("1,000,000", 100_000_000),
        ("0.015元", None),  # fractions of a fen do not exist
        (500000.0, None),
        (True, None),
        (-1, None),
        ("五十万", None),
        ("abc", None),
        (None, None),
    ],
)
def test_parse_yuan(value: Any, fen: int | None) -> None:
    assert parse_yuan(value) == fen


@pytest.mark.parametrize(
    ("fen", "text"),
    [(50_000_000, "50万"), (12_500_000, "12.5万"), (12_000_000_000, "1.2亿"), (800_000, "8000元"), (12_345, "123.45元"), (0, "0元")],
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


RULES = parse_rules(
    [
        {"name": "大单", "when": {"industry_contains": ["新能源汽车", "光伏"], "budget_gte": "50万"}, "to": {"pool": "province", "top_n": 3}},
        {"name": "展会江浙", "when": {"source_in": ["展会"], "province": ["江苏", "浙江"]}, "to": {"region": "华东"}},
        {"name": "深圳", "when": {"city": "深圳市"}, "to": {"rep": "liuyang"}},
        {"name": "A级小单", "when": {"score_tier": "a", "budget_lt": 100000}, "to": {"pool": "province"}},
    ]
)


def _first(lead: LeadFacts) -> str:
    return next((r.name for r in RULES if r.when.matches(lead)), DEFAULT_RULE_NAME)


@pytest.mark.parametrize(
    ("lead", "rule"),
    [
        (LeadFacts(1, province="江苏省", industry="新能源汽车零部件", budget_fen=50_000_000), "大单"),
        (LeadFacts(2, province="江苏省", industry="光伏支架", budget_fen=90_000_000), "大单"),
        (LeadFacts(3, province="江苏省", industry="新能源汽车", budget_fen=49_999_999), DEFAULT_RULE_NAME),
        (LeadFacts(4, province="江苏省", industry="新能源汽车"), DEFAULT_RULE_NAME),  # unknown budget never matches a budget rule
        (LeadFacts(5, province="浙江省", source="展会"), "展会江浙"),
        (LeadFacts(6, province="山东省", source="展会"), DEFAULT_RULE_NAME),
        (LeadFacts(7, province="江苏省", source="官网表单"), DEFAULT_RULE_NAME),
        (LeadFacts(8, province="广东省", city="深圳"), "深圳"),
        (LeadFacts(9, province="广东省", city="深圳市"), "深圳"),
        (LeadFacts(10, province="广东省", city="东莞"), DEFAULT_RULE_NAME),
        (LeadFacts(11, score_tier="A", budget_fen=9_999_999), "A级小单"),
        (LeadFacts(12, score_tier="A", budget_fen=10_000_000), DEFAULT_RULE_NAME),
        (LeadFacts(13, score_tier="B", budget_fen=100), DEFAULT_RULE_NAME),
        (LeadFacts(14, province="浙江省", source="展会", industry="光伏", budget_fen=60_000_000), "大单"),  # priority order
        (LeadFacts(15, industry="新能源汽车", budget_fen=60_000_000), "大单"),
    ],
)
def test_first_matching_rule_wins(lead: LeadFacts, rule: str) -> None:
    assert _first(lead) == rule


def test_condition_description() -> None:
    assert RULES[0].when.describe() == ["新能源汽车/光伏", "预算≥50万"]
    assert RULES[1].when.describe() == ["展会", "江苏/浙江"]
    assert RULES[3].when.describe() == ["预算<10万", "A级"]
    both = parse_rules([{"name": "x", "when": {"budget_gte": "10万", "budget_lt": "50万"}, "to": {"pool": "province"}}])
    assert both[0].when.describe() == ["预算10万–50万"]


def test_toml_key_points_at_the_line_to_fix() -> None:
    assert _error('[assignment]\n[[assignment.rules]]\nname = "A"\nwhen = { budgte = 5 }\nto = { pool = "province" }').toml_key == "when"
    assert _error('[assignment]\n[[assignment.groups]]\nname = "G"\nmembrs = ["lina"]').toml_key == "membrs"
    assert _error('[assignment]\nacept_within_hours = 2').toml_key == "acept_within_hours"
