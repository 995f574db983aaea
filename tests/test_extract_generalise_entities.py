"""Generalisation rules for amounts, companies, contacts and dates (issue 4), as tables,
plus a floor over ``fresh_entities.jsonl`` (hand-labelled before the extractor was run on it).

Each row is one rule from the spec, phrased in a way neither dev.jsonl nor own.jsonl uses.
"""

from __future__ import annotations

import importlib.util
import io
import json
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest

from nlp.amounts import extract_amounts
from nlp.entities import extract_companies, extract_contacts
from nlp.extract import extract, run_jsonl
from tests.conftest import SHARED

FRESH = Path(__file__).parent / "data" / "extraction" / "fresh_entities.jsonl"
SCORE = SHARED / "extraction" / "score.py"


def _bounds(text: str) -> list[tuple[float, float]]:
    return [(a["yuan_min"], a["yuan_max"]) for a in extract_amounts(text)]


@pytest.mark.parametrize("text, expected", [
    ("每套预算3.5k-4.2k，要二十套", [(3500, 4200)]),  # a range whose first figure has its own unit
    ("预算100-150k之间", [(100000, 150000)]),  # k before 之间
    ("维修费大概六到八千", [(6000, 8000)]),  # magnitude said once, on the second figure
    ("报价三到五百", [(300, 500)]),
    ("定金一万块今天下午打过来", [(10000, 10000)]),  # 块 before a time word is the currency
    ("他们领导说预算整体不能超过七十个", [(700000, 700000)]),  # budget word a few words back
    ("型号AB-3k-5k的那款", []),  # a model number, not a range
    ("买了三块今天到", []),  # 三块 without a price word stays a count
    ("两块电路板", []),
])
def test_amount_rules(text: str, expected: list[tuple[float, float]]) -> None:
    assert _bounds(text) == expected


@pytest.mark.parametrize("now, text, expected", [
    ("2026-11-02T10:00:00+08:00", "双十一前后他们仓库最忙", ["2026-11-11"]),  # 前后 = around, not before
    ("2026-11-02T10:00:00+08:00", "双十一前要到货", ["2026-11-10"]),
])
def test_date_rules(now: str, text: str, expected: list[str]) -> None:
    got = sorted({d["date"] for d in extract(text, datetime.fromisoformat(now))["dates"]})
    assert got == expected


@pytest.mark.parametrize("text, expected", [
    ("蓝海精机那边让我们再报一次价", ["蓝海精机"]),  # new suffix 精机
    ("这家鸿泰塑胶下个月要来验厂", ["鸿泰塑胶"]),  # a name after 这家
    ("那家叫宏达的供应商价格比我们低", ["宏达"]),  # 叫X的供应商
    ("客户：Foxconn，联系人是 Tony", ["Foxconn"]),
    ("跟美的那边的采购约了周三", ["美的"]),  # an ambiguous brand in a business context
    ("这次是和三一重工、徐工两家在比", ["三一重工", "徐工"]),
    ("宁德恒新科技那边要测试报告", ["宁德恒新科技"]),  # 新 inside a placed name
    ("客户那边说再等等", []),
    ("宁波那边的项目", []),
    ("潘总那边还没回", []),
    ("那家食品厂（做挂面的）又来投诉", []),  # a description after 那家
    ("他们煤机厂的设备科", []),
])
def test_company_rules(text: str, expected: list[str]) -> None:
    assert extract_companies(text, []) == expected


@pytest.mark.parametrize("text, expected", [
    ("【名片】孙丽华\n青岛海联重工机械有限公司\n采购经理\n手机 138 6392 7710", [("孙丽华", "采购经理")]),
    ("采购部张伟经理说合同走完流程了", [("张伟", "经理")]),
    ("Kevin Wang是他们的IT经理", [("Kevin Wang", "IT经理")]),
    ("不是邓经理，是郑经理负责这个项目", [("郑", "经理")]),  # a surname + title corrected away
    ("客户叫我小林，说下次直接找我", []),  # the rep's own nickname
    ("姓施的那个工程师说参数不对", [("施", "工程师")]),
    ("丁总（丁建华）同意先试用一个月", [("丁建华", "总")]),
    ("这次是和三一重工、徐工两家在比", []),  # 徐工 is a brand
    ("Festo那边的人也在跟", []),
    ("潘总和他的助理小黄一起来的", [("潘", "总"), ("黄", None)]),
    ("客户那边的小吴把图纸发过来了", [("吴", None)]),
    ("代理商老范说这个区域他能搞定", [("范", "代理商")]),
])
def test_contact_rules(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert [(c["name"], c["title"]) for c in extract_contacts(text, [])] == expected


# Floors on the fresh set: the figures reached when these rules were written (2026, issue 4).
FRESH_FLOORS = {"amounts": 0.98, "dates": 0.98, "companies": 0.92, "contacts": 0.97}


def _scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extraction_score", SCORE)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not (SCORE.exists() and FRESH.exists()), reason="scorer or fresh set not available")
def test_fresh_set_floors() -> None:
    lines = FRESH.read_text(encoding="utf-8").splitlines()
    out = io.StringIO()
    run_jsonl(lines, out, default_now=None)
    preds = {row["id"]: row["pred"] for row in map(json.loads, out.getvalue().splitlines())}
    results, _, _ = _scorer().score([json.loads(x) for x in lines if x.strip()], preds)
    low = {f: round(results[f]["f1"], 3) for f, floor in FRESH_FLOORS.items() if results[f]["f1"] < floor}
    assert not low, f"below floor on fresh_entities.jsonl: {low}"
