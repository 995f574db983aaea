"""Regression floor: the whole development set through ``extract``, scored by the spec's scorer.

The floors are the figures reached when the rules were written (dev: 1.0 for dates,
amounts and phones); a rule change that loses ground fails here. Skipped when the
shared extraction folder is not on this machine.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType

import pytest

from nlp.extract import run_jsonl
from tests.conftest import SHARED

DEV = SHARED / "extraction" / "dev.jsonl"
OWN = Path(__file__).parent / "data" / "extraction" / "own.jsonl"

# Fields owned by the core extractor, with the floor each must keep.
DEV_FLOORS = {"dates": 0.99, "amounts": 0.99, "phones": 0.99}
OWN_FLOORS = {"dates": 0.97, "amounts": 0.97, "phones": 0.97}


def _scorer() -> ModuleType:
    path = DEV.parent / "score.py"
    spec = importlib.util.spec_from_file_location("extraction_score", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _scores(gold: Path) -> dict[str, dict[str, float]]:
    lines = gold.read_text(encoding="utf-8").splitlines()
    out = io.StringIO()
    assert run_jsonl(lines, out, default_now=None) == sum(1 for x in lines if x.strip())
    preds = {row["id"]: row["pred"] for row in map(json.loads, out.getvalue().splitlines())}
    results, _, _ = _scorer().score([json.loads(x) for x in lines if x.strip()], preds)
    return results


@pytest.mark.skipif(not DEV.exists(), reason="shared dev set not available")
def test_dev_set_floors() -> None:
    results = _scores(DEV)
    low = {f: round(results[f]["f1"], 3) for f, floor in DEV_FLOORS.items() if results[f]["f1"] < floor}
    assert not low, f"below floor on dev.jsonl: {low}"


@pytest.mark.skipif(not (DEV.exists() and OWN.exists()), reason="labelled sets not available")
def test_own_set_floors() -> None:
    results = _scores(OWN)
    low = {f: round(results[f]["f1"], 3) for f, floor in OWN_FLOORS.items() if results[f]["f1"] < floor}
    assert not low, f"below floor on own.jsonl: {low}"
