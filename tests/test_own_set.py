"""Schema checks for the independent labelled extraction set tests/data/extraction/own.jsonl.

The file is the held-out yardstick for `leadbot extract` (see tests/data/extraction/README.md), so
these tests only validate the labels themselves: every line parses, carries the eleven fields of the
spec, uses the closed label lists, ISO dates, and spans that really occur in the message text.
They never call the extractor.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

OWN_SET = Path(__file__).parent / "data" / "extraction" / "own.jsonl"

FIELDS = ["contacts", "phones", "companies", "dates", "amounts", "province", "city", "industry",
          "intents", "sentiment", "next_action"]
INDUSTRIES = {"新能源汽车", "汽车零部件", "动力电池", "电池材料", "光伏", "储能", "半导体", "电子制造", "医疗器械",
              "医疗机构", "制药", "工程机械", "机床装备", "钢铁冶金", "物流仓储", "船舶", "教育科研", "航空航天", "化工",
              "食品饮料", "轨道交通", "家电", "环保水处理", "农业机械", "通信", "能源电力"}
INTENTS = {"sign_intent", "price_agreed", "upgrade_need", "complaint", "visit_planned", "sample_request",
           "quote_request", "churn_risk"}
SENTIMENTS = {"positive", "neutral", "negative"}
# Official full names of the 34 province-level divisions.
PROVINCES = {"北京市", "天津市", "上海市", "重庆市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省", "江苏省",
             "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "海南省",
             "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "台湾省", "内蒙古自治区",
             "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区", "香港特别行政区",
             "澳门特别行政区"}
# Divisions whose city value repeats the province (municipalities and, by this set's convention, SARs).
SAME_NAME_CITY = {"北京市", "天津市", "上海市", "重庆市", "香港特别行政区", "澳门特别行政区"}
# Chinese digits as read out in phone numbers (幺 = 1, 洞 = 0).
SPOKEN_DIGITS = str.maketrans("幺一二三四五六七八九零〇洞", "1123456789000")
WEEKDAY = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 7, "天": 7}


def _rows() -> list[dict]:
    with OWN_SET.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


ROWS = _rows()
IDS = [r["id"] for r in ROWS]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text).translate(SPOKEN_DIGITS))


def test_file_size_and_unique_ids() -> None:
    assert len(ROWS) >= 320
    assert len(set(IDS)) == len(IDS)
    assert all(re.fullmatch(r"o\d{3}", i) for i in IDS)
    assert len({r["text"] for r in ROWS}) == len(ROWS), "duplicate message texts"


def test_coverage_claims_of_the_readme() -> None:
    golds = [r["gold"] for r in ROWS]
    assert {g["industry"] for g in golds if g["industry"]} == INDUSTRIES
    assert {g["province"] for g in golds if g["province"]} == PROVINCES
    assert {i for g in golds for i in g["intents"]} == INTENTS
    assert Counter(g["sentiment"] for g in golds).keys() == SENTIMENTS
    empty = [g for g in golds
             if not any(g[f] for f in FIELDS if f != "sentiment") and g["sentiment"] == "neutral"]
    assert len(empty) >= 25
    nows = [datetime.fromisoformat(r["now"]) for r in ROWS]
    assert {n.month for n in nows} == set(range(1, 13))
    assert sum(n.weekday() >= 5 for n in nows) >= 40


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_record_schema(row: dict) -> None:
    assert set(row) == {"id", "now", "text", "gold"}
    now = datetime.fromisoformat(row["now"])
    assert now.utcoffset() is not None and now.utcoffset().total_seconds() == 8 * 3600
    assert now.year == 2026
    assert isinstance(row["text"], str) and row["text"].strip()
    gold = row["gold"]
    assert list(gold) == FIELDS
    for f in ("contacts", "phones", "companies", "dates", "amounts", "intents"):
        assert isinstance(gold[f], list), f
    assert gold["sentiment"] in SENTIMENTS
    assert gold["industry"] is None or gold["industry"] in INDUSTRIES
    assert len(set(gold["intents"])) == len(gold["intents"])
    assert set(gold["intents"]) <= INTENTS
    assert gold["next_action"] is None or (isinstance(gold["next_action"], str) and gold["next_action"].strip())


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_spans_occur_in_text(row: dict) -> None:
    text, gold = row["text"], row["gold"]
    for c in gold["contacts"]:
        assert set(c) == {"name", "title"}
        assert c["name"] and c["name"] in text, c
        assert c["title"] is None or c["title"] in text, c
    surnames = [c["name"] for c in gold["contacts"]]
    assert len(set(surnames)) == len(surnames), "one entry per person"
    for company in gold["companies"]:
        assert company in text, company
    digits = _digits(text)
    for phone in gold["phones"]:
        assert re.fullmatch(r"1\d{10}|0\d{2,3}-\d{7,8}|[48]00\d{7}", phone), phone
        assert re.sub(r"\D", "", phone).lstrip("0") in digits, phone
    for d in gold["dates"]:
        assert set(d) == {"text", "date"}
        assert d["text"] in text, d
        day = date.fromisoformat(d["date"])
        assert 2025 <= day.year <= 2027
    for a in gold["amounts"]:
        assert set(a) == {"text", "yuan_min", "yuan_max"}
        assert a["text"] in text, a
        assert isinstance(a["yuan_min"], (int, float)) and isinstance(a["yuan_max"], (int, float))
        assert 0 < a["yuan_min"] <= a["yuan_max"], a


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_places_are_official_full_names(row: dict) -> None:
    province, city = row["gold"]["province"], row["gold"]["city"]
    if province is None:
        assert city is None
        return
    assert province in PROVINCES
    if province in SAME_NAME_CITY:
        assert city == province
    elif city is not None:
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,}(市|自治州|地区|盟)", city), city


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_week_expressions_follow_the_resolution_table(row: dict) -> None:
    """A cheap invariant on the labels: weekday spans land on that weekday, whole weeks on Sunday."""
    for d in row["gold"]["dates"]:
        span = unicodedata.normalize("NFKC", d["text"]).replace("週", "周").replace("禮", "礼").replace("個", "个")
        day = date.fromisoformat(d["date"])
        m = re.match(r"(?:下下|下|这|本|上)?个?(?:周|礼拜|星期)([一二三四五六日天])", span)
        if m:
            assert day.isoweekday() == WEEKDAY[m.group(1)], d
        elif re.fullmatch(r"(这|本|下|上)?个?(周|礼拜|星期)(末)?(内|之内|前|之前)?|周末(前|之前)?", span):
            assert day.isoweekday() == 7, d
