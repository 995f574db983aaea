"""Schema checks for the blind extraction set (bench/data/blind_extraction.jsonl).

The set estimates held-out performance, so these tests never run the extractor: they only check
that every record follows the labelling contract in the extraction spec (record format, closed
label lists, normalised phones and dates, spans that occur in the text) and that the set keeps
the mix it was written to have.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

BLIND_SET = Path(__file__).resolve().parent.parent / "bench" / "data" / "blind_extraction.jsonl"

FIELDS = ("contacts", "phones", "companies", "dates", "amounts", "province", "city", "industry",
          "intents", "sentiment", "next_action")
INTENTS = {"sign_intent", "price_agreed", "upgrade_need", "complaint", "visit_planned",
           "sample_request", "quote_request", "churn_risk"}
INDUSTRIES = {
    "新能源汽车", "汽车零部件", "动力电池", "电池材料", "光伏", "储能", "半导体", "电子制造", "医疗器械",
    "医疗机构", "制药", "工程机械", "机床装备", "钢铁冶金", "物流仓储", "船舶", "教育科研", "航空航天",
    "化工", "食品饮料", "轨道交通", "家电", "环保水处理", "农业机械", "通信", "能源电力"}
SENTIMENTS = {"positive", "neutral", "negative"}
MUNICIPALITIES = {"北京市", "上海市", "天津市", "重庆市"}
PHONE_RE = re.compile(r"1\d{10}|0\d{2,3}-\d{7,8}|[48]00\d{7}")
CST = timedelta(hours=8)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _load() -> list[dict[str, Any]]:
    with BLIND_SET.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


ROWS = _load()


def test_ids_are_unique_and_sequential() -> None:
    ids = [row["id"] for row in ROWS]
    assert ids == [f"b{k:03d}" for k in range(1, len(ids) + 1)]


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_record_follows_the_spec(row: dict[str, Any]) -> None:
    assert set(row) == {"id", "now", "text", "gold"}
    now = datetime.fromisoformat(row["now"])
    assert now.utcoffset() == CST and now.year == 2026
    text: str = row["text"]
    gold = row["gold"]
    assert tuple(gold) == FIELDS

    for contact in gold["contacts"]:
        assert set(contact) == {"name", "title"}
        assert contact["name"] and contact["name"] in text
        assert contact["title"] is None or _nfkc(contact["title"]) in _nfkc(text)
    surnames = [c["name"].lower() for c in gold["contacts"]]
    assert len(surnames) == len(set(surnames)), "one entry per person"

    digits = re.sub(r"\D", "", _nfkc(text))
    for phone in gold["phones"]:
        assert PHONE_RE.fullmatch(phone), phone
        bare = phone.replace("-", "")
        # spoken digits (幺三八…) are the one case where the digits are not in the text
        assert bare in digits or bare.lstrip("0") in digits or re.search("[幺零一二三四五六七八九]{3}", text)

    for company in gold["companies"]:
        assert company and company in text

    for mention in gold["dates"]:
        assert set(mention) == {"text", "date"}
        assert mention["text"] in text
        resolved = date.fromisoformat(mention["date"])
        assert abs((resolved - now.date()).days) < 800

    for amount in gold["amounts"]:
        assert set(amount) == {"text", "yuan_min", "yuan_max"}
        assert amount["text"] in text
        assert 0 < amount["yuan_min"] <= amount["yuan_max"]

    assert gold["city"] is None or gold["province"] is not None, "a city implies its province"
    if gold["province"] in MUNICIPALITIES:
        assert gold["city"] == gold["province"]
    assert gold["industry"] is None or gold["industry"] in INDUSTRIES
    assert len(set(gold["intents"])) == len(gold["intents"]) and set(gold["intents"]) <= INTENTS
    assert gold["sentiment"] in SENTIMENTS
    assert gold["next_action"] is None or (isinstance(gold["next_action"], str) and gold["next_action"].strip())


def test_set_keeps_its_mix() -> None:
    """The set is meant to be varied: empties, records, every closed label used somewhere."""
    empties = [r for r in ROWS if not any(r["gold"][f] for f in FIELDS if f != "sentiment")]
    assert len(empties) >= len(ROWS) // 10
    multi_line = [r for r in ROWS if "\n" in r["text"]]
    assert len(multi_line) >= len(ROWS) // 10
    sentiments = Counter(r["gold"]["sentiment"] for r in ROWS)
    assert all(sentiments[s] for s in SENTIMENTS)
    intents = Counter(i for r in ROWS for i in r["gold"]["intents"])
    assert set(intents) == INTENTS
    if len(ROWS) >= 160:
        industries = {r["gold"]["industry"] for r in ROWS} - {None}
        assert industries == INDUSTRIES
    nows = [r["now"] for r in ROWS]
    assert nows == sorted(nows), "ids follow the clock"
