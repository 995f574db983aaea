"""Per-field floors for contacts, companies, places, industry, intents, sentiment and next action.

The labelled sets go through ``normalize`` + ``split_record`` and the functions of
``nlp.entities``, ``nlp.places`` and ``nlp.classify`` directly (not through ``extract``), and
are scored by the spec's scorer, so a regression in these fields fails here whatever state
the rest of the extractor is in. The floors sit a little below the figures reached when the
rules were written. own.jsonl served as a regression set while these rules were tuned, so its
figures are not an independent estimate; the held-out set is.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from nlp.chat import split_record
from nlp.classify import (
    classify_industry,
    classify_intents,
    classify_sentiment,
    extract_next_action,
)
from nlp.entities import extract_companies, extract_contacts
from nlp.normalize import normalize
from nlp.places import extract_place
from tests.conftest import SHARED

DEV = SHARED / "extraction" / "dev.jsonl"
OWN = Path(__file__).parent / "data" / "extraction" / "own.jsonl"

DEV_FLOORS = {"contacts": 0.97, "companies": 0.95, "province": 0.98, "city": 0.98, "industry": 0.97,
              "intents": 0.97, "sentiment": 0.95, "next_action": 0.93}
OWN_FLOORS = {"contacts": 0.95, "companies": 0.93, "province": 0.96, "city": 0.96, "industry": 0.94,
              "intents": 0.92, "sentiment": 0.95, "next_action": 0.85}


def _scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extraction_score_a2", DEV.parent / "score.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _predict(text: str, now: datetime) -> dict[str, Any]:
    t = normalize(text)
    segments = split_record(t, now)
    province, city = extract_place(t)
    return {"contacts": extract_contacts(t, segments), "companies": extract_companies(t, segments),
            "province": province, "city": city, "industry": classify_industry(t),
            "intents": classify_intents(t), "sentiment": classify_sentiment(t),
            "next_action": extract_next_action(t)}


def _f1(path: Path) -> dict[str, float]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    preds = {}
    for row in rows:
        pred = _predict(row["text"], datetime.fromisoformat(row["now"]))
        # Fields of other extractors are copied from the labels so they do not enter the figures.
        for field in ("phones", "dates", "amounts"):
            pred[field] = row["gold"][field]
        preds[row["id"]] = pred
    results, _, _ = _scorer().score(rows, preds)
    return {field: results[field]["f1"] for field in DEV_FLOORS}


@pytest.mark.skipif(not DEV.exists(), reason="shared dev set not available")
def test_dev_floors() -> None:
    got = _f1(DEV)
    low = {f: round(v, 3) for f, v in got.items() if v < DEV_FLOORS[f]}
    assert not low, f"below floor on dev.jsonl: {low}"


@pytest.mark.skipif(not (DEV.exists() and OWN.exists()), reason="labelled sets not available")
def test_own_set_floors() -> None:
    got = _f1(OWN)
    low = {f: round(v, 3) for f, v in got.items() if v < OWN_FLOORS[f]}
    assert not low, f"below floor on own.jsonl: {low}"
