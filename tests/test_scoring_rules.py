"""[scoring] in leadbot.toml: valid and invalid sections with the exact file/line/column,
scores, tiers, lead routing, rebates to the fen, explanations, recompute and reload."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import ConfigError, parse
from handlers.context import FakeClock, HandlerContext
from handlers.opportunities import RulesBook, SalesRules
from handlers.scoring import (
    default_scoring,
    health_card,
    lead_score_of,
    parse_scoring,
    rebate_fen,
    recompute_all,
    set_facts,
    stale_formulas,
)
from handlers.stages import default_pipeline
from nlp.calendar import SHANGHAI
from store.db import Database, upgrade
from store.models import Contact, Customer, FollowUp, Lead

TEMPLATE = resources.files("bot").joinpath("templates/leadbot.toml").read_text(encoding="utf-8")
BASE_LINES = TEMPLATE.count("\n")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)


def _parse(extra: str) -> object:
    return parse(TEMPLATE + extra, "leadbot.toml", {})


def test_valid_scoring_section_compiles() -> None:
    settings = _parse('''
[scoring]
fields = { "行业潜力值" = "number" }

[scoring.health]
formula = "IF(行业潜力值>80, 30, 10) + MIN(跟进次数*5, 30)"
tiers = [[30, "重点跟进"], [50, "战略级"]]
default_tier = "暂缓"

[scoring.lead]
formula = "微信互动次数*0.3 + IF(官网停留分钟>=3, 0.5, 0) + 白皮书下载*1.2"
nurture_below = 2.5
sales_above = 5.0
''')
    rules = settings.scoring  # type: ignore[attr-defined]
    assert rules.tiers.names == ("战略级", "重点跟进", "暂缓")  # sorted highest first
    assert "行业潜力值" in rules.health.fields_used


@pytest.mark.parametrize(
    ("extra", "line", "column", "words"),
    [
        # unknown field with did-you-mean: line 3 of the extra, column of the field
        ('\n[scoring.health]\nformula = "MIN(跟进此数*5, 30)"\n', 3, 16, "是否指 `跟进次数`"),
        # type mismatch: text compared with a number
        ('\n[scoring.lead]\nformula = "IF(行业 > 3, 1, 0)"\n', 3, 18, "行业"),  # at the operator
        # division by zero on a path (a field that may be 0)
        ('\n[scoring.lead]\nformula = """\n微信互动次数*0.3\n  + 白皮书下载 / 官网停留分钟"""\n', 5, 13, "除数为 0"),
        # division by a literal zero
        ("\n[scoring.health]\nformula = '跟进次数 / 0'\n", 3, 19, "不能除以 0"),
        # a syntax error at the end
        ('\n[scoring.health]\nformula = "跟进次数 * (2 + 3"\n', 3, None, ""),
    ],
)
def test_invalid_formula_names_file_line_and_column(extra: str, line: int, column: int | None, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(extra)
    err = info.value
    assert err.path == "leadbot.toml"
    assert err.line == BASE_LINES + line
    if column is not None:
        assert err.column == column
    assert words in err.zh
    assert f"leadbot.toml 第{BASE_LINES + line}行第{err.column}列" in str(err)


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ('\n[scoring.health]\nformla = "1"\n', "scoring.health.formla", "是否指 `formula`"),
        ('\n[scoring.health]\ntiers = { "战略级" = "高" }\n', "scoring.health.tiers.战略级", "数字"),
        ('\n[scoring.lead]\nnurture_below = 6\nsales_above = 5\n', "scoring.lead.nurture_below", "不能高于"),
        ('\n[scoring]\nfields = { "跟进次数" = "number" }\n', "scoring.fields.跟进次数", "内置"),
        ('\n[scoring]\nfields = { "积分" = "money" }\n', "scoring.fields.积分", "money"),
    ],
)
def test_invalid_scoring_keys_name_the_line(extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(extra)
    assert info.value.key == key and words in info.value.zh
    assert info.value.line is not None and info.value.line > BASE_LINES


def test_stage_config_errors_name_the_line() -> None:
    extra = '\n[[stages]]\nname = "初访"\n\n[[stages]]\nname = "报价"\nnotify = ["nobody"]\n'
    with pytest.raises(ConfigError) as info:
        _parse(extra)
    assert info.value.key == "stages[1].notify" and info.value.line == BASE_LINES + 7


def test_lead_routing_thresholds_and_rebate_to_the_fen() -> None:
    rules = parse_scoring({"rebate": {"formula": "ROUND(采购额 * IF(采购额 >= 500万, 3%, 1%), 2) + 采购额 * 0.0005",
                                      "fields": {"采购额": "number"}}})
    base = {"行业": "", "省份": "", "城市": "", "来源": "", "预算": Decimal(0), "官网停留分钟": Decimal(0)}
    assert lead_score_of(rules, {**base, "微信互动次数": Decimal(5), "白皮书下载": Decimal(0)}, NOW.date()) == (Decimal("1.5"), "C")
    assert lead_score_of(rules, {**base, "微信互动次数": Decimal(5), "白皮书下载": Decimal(1)}, NOW.date())[1] == "B"
    assert lead_score_of(rules, {**base, "微信互动次数": Decimal(10), "白皮书下载": Decimal(2)}, NOW.date())[1] == "A"  # 5.4
    # 1,234,567.89 × 1% = 12,345.6789 → 12,345.68; + × 0.05% = 617.283945 → total 12,962.963945 → 1,296,296 fen
    assert rebate_fen(rules, {"采购额": Decimal("1234567.89")}) == 1296296


@pytest.fixture
def db(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    database = Database(url)
    yield database  # type: ignore[misc]
    database.close()


def _world(db: Database, n: int) -> None:
    def fill(session: object) -> None:
        for i in range(n):
            c = Customer(name=f"客户{i}", industry="电子" if i % 2 else "机械", created_at=NOW, updated_at=NOW)
            session.add(c)  # type: ignore[attr-defined]
            session.flush()  # type: ignore[attr-defined]
            for k in range(i % 4):
                session.add(FollowUp(customer_id=c.id, member_id="zhangwei", text="x", status="confirmed",  # type: ignore[attr-defined]
                                     created_at=NOW - timedelta(days=3 + k)))
            if i % 3 == 0:
                session.add(Contact(customer_id=c.id, name="王", title="主任"))  # type: ignore[attr-defined]
    db.transaction(fill)


def test_recompute_all_after_formula_change_and_explain_card(db: Database) -> None:
    _world(db, 30)
    rules = default_scoring()
    assert db.transaction(lambda s: stale_formulas(s, rules)) == ("health", "lead")
    results = recompute_all(db.transaction, rules, NOW, batch=7)
    assert results["health"].records == 30 and results["health"].failed == 0
    assert db.transaction(lambda s: stale_formulas(s, rules)) == ()
    scores = db.transaction(lambda s: dict(s.execute(select(Customer.name, Customer.health_score)).all()))
    # 客户3: 3 follow-ups (15) + recent (25) + no tickets (10) + 1 contact (5) = 55
    assert scores["客户3"] == 55 and scores["客户0"] == 0 + 0 + 10 + 5
    card = db.transaction(lambda s: health_card(s, s.get(Customer, 4), rules, NOW))
    assert card.title == "客户3 · 健康分 55（培育中）"
    assert [f.value for f in card.fields] == ["+15", "+25", "+0", "+10", "+5"]
    assert card.fields[1].label.startswith("最近跟进天数<=14")
    # A new formula: every record is recomputed, in batches.
    changed = parse_scoring({"health": {"formula": "IF(行业 = \"电子\", 90, 20)"}})
    assert db.transaction(lambda s: stale_formulas(s, changed)) == ("health",)  # the lead formula is unchanged
    results = recompute_all(db.transaction, changed, NOW, batch=4, only=("health",))
    assert results["health"].records == 30
    tiers = db.transaction(lambda s: dict(s.execute(select(Customer.name, Customer.tier)).all()))
    assert tiers["客户1"] == "战略级" and tiers["客户2"] == "暂缓"


def test_an_input_change_recomputes_that_record(db: Database) -> None:
    def make(session: object) -> int:
        lead = Lead(company="恒锐", created_at=NOW, updated_at=NOW, status="accepted")
        session.add(lead)  # type: ignore[attr-defined]
        session.flush()  # type: ignore[attr-defined]
        assert lead.id is not None
        return lead.id

    lead_id = db.transaction(make)
    rules = default_scoring()
    got = db.transaction(lambda s: set_facts(s, "lead", lead_id, {"微信互动次数": 10, "白皮书下载": "2"}, rules, NOW))
    assert got == {"score": "5.4", "tier": "A"}
    lead = db.transaction(lambda s: s.get(Lead, lead_id))
    assert lead.score == 540 and lead.tier == "A"
    got = db.transaction(lambda s: set_facts(s, "lead", lead_id, {"白皮书下载": 0}, rules, NOW))
    assert got == {"score": "3.0", "tier": "B"}  # merged: 微信互动次数 kept
    with pytest.raises(ValueError, match="微信互动次数"):
        db.transaction(lambda s: set_facts(s, "lead", lead_id, {"微信互动数": 1}, rules, NOW))


def test_reload_keeps_last_good_rules_and_reports_the_error() -> None:
    texts = {"now": TEMPLATE}
    book = RulesBook(SalesRules(default_scoring(), default_pipeline()),
                     loader=lambda: (lambda s: SalesRules(s.scoring, s.stages))(parse(texts["now"], "leadbot.toml", {})))
    good = book.current
    texts["now"] = TEMPLATE + '\n[scoring.health]\nformula = "跟进此数"\n'
    ok, message, _ = book.reload()
    assert not ok and book.current is good
    assert "仍在使用上一版有效规则" in message and f"第{BASE_LINES + 3}行" in message and "跟进次数" in message
    texts["now"] = TEMPLATE + '\n[scoring.health]\nformula = "跟进次数 * 10"\n'
    ok, message, previous = book.reload()
    assert ok and previous is good and "健康分公式" in message
    assert book.current.scoring.health.source == "跟进次数 * 10"
