"""Extraction benchmark: messages per second on one core, and per-field scores.

    python3 bench/bench_extract.py [--seconds 3]

Throughput uses 60-character messages (a mix of dev-style sentences cut or padded to
60 characters), measured after warm-up in this single process. Scores use the spec's
scorer (extraction/score.py) on the dev set and on tests/data/extraction/*.jsonl.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlp.extract import extract, run_jsonl  # noqa: E402

DEV_CANDIDATES = [Path("/work/shared/extraction/dev.jsonl"), ROOT / "extraction" / "dev.jsonl"]
SAMPLES = [
    "宁波那边的潘总说下周四上午去看现场，预算大概四五十万，电话13957812345，记得带图纸",
    "客户说上次的报价单写错了，单价应该是六百五一套，叫我明天再发一份，春节后能不能交货",
    "Tony: 这个 price 我们 OK\nTony: 200台以上能不能做到 2.3k？\n我: 我去申请一下",
    "山西一家煤机厂今天来电，想把电液控制系统国产化，明年二季度末之前完成，预算五十来万",
    "曾少华 6月12日 09:14\n明天上午能来调试吗？昨天装的那台冷水机一直报低压，月底前要好",
]


def _sixty(s: str) -> str:
    return (s * 2)[:60]


def throughput(seconds: float) -> float:
    """Messages per second for 60-character messages in this process."""
    msgs = [_sixty(s) for s in SAMPLES]
    now = datetime.fromisoformat("2026-06-17T10:00:00+08:00")
    for m in msgs * 20:  # warm-up: regex caches, lazy imports
        extract(m, now)
    # CPU time of this process, so other work on a shared machine does not count
    # against the extractor (the target is per core).
    n = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for m in msgs:
            extract(m, now)
        n += len(msgs)
    return n / (time.process_time() - start)


def per_extractor(reps: int = 200) -> list[tuple[str, float]]:
    """Microseconds per 60-character message spent in each extractor (best of 5 runs)."""
    from nlp import amounts, classify, dates, entities, phones, places
    from nlp.chat import split_record
    from nlp.normalize import normalize

    now = datetime.fromisoformat("2026-06-17T10:00:00+08:00")
    msgs = [normalize(_sixty(s)) for s in SAMPLES]
    segs = {m: split_record(m, now) for m in msgs}
    calls: list[tuple[str, Any]] = [
        ("normalize", lambda m: normalize(m)),
        ("split_record", lambda m: split_record(m, now)),
        ("contacts", lambda m: entities.extract_contacts(m, cast(Any, segs[m]))),
        ("phones", lambda m: phones.extract_phones(m)),
        ("companies", lambda m: entities.extract_companies(m, cast(Any, segs[m]))),
        ("dates", lambda m: dates.extract_dates(segs[m], m)),
        ("amounts", lambda m: amounts.extract_amounts(m)),
        ("place", lambda m: places.extract_place(m)),
        ("industry", lambda m: classify.classify_industry(m)),
        ("intents", lambda m: classify.classify_intents(m)),
        ("sentiment", lambda m: classify.classify_sentiment(m)),
        ("next_action", lambda m: classify.extract_next_action(m)),
    ]
    out = []
    for name, fn in calls:
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for _ in range(max(1, reps // 5)):
                for m in msgs:
                    fn(m)
            best = min(best, (time.process_time() - start) / (max(1, reps // 5) * len(msgs)))
        out.append((name, best * 1e6))
    return out


def _scorer(gold: Path):  # type: ignore[no-untyped-def]
    for cand in (gold.parent / "score.py", Path("/work/shared/extraction/score.py"), ROOT / "extraction" / "score.py"):
        if cand.exists():
            spec = importlib.util.spec_from_file_location("extraction_score", cand)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod
    return None


def score_file(gold: Path) -> tuple[dict[str, dict[str, float]], float] | None:
    """Per-field results and macro-F1 of ``extract`` on a labelled JSONL file."""
    scorer = _scorer(gold)
    if scorer is None:
        return None
    lines = gold.read_text(encoding="utf-8").splitlines()
    out = io.StringIO()
    run_jsonl(lines, out, default_now=None)
    preds = {}
    for row in map(json.loads, out.getvalue().splitlines()):
        preds[row["id"]] = row["pred"]
    gold_rows = [json.loads(x) for x in lines if x.strip()]
    results, macro, _ = scorer.score(gold_rows, preds)
    return results, macro


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    rate = throughput(args.seconds)
    print(f"throughput: {rate:,.0f} msgs/s (60-char messages, one core, CPU time)")
    print("time per message by extractor (µs, best of 5):")
    for name, us in per_extractor():
        print(f"  {name:12} {us:8.1f}")
    files = [p for p in DEV_CANDIDATES if p.exists()][:1]
    files += sorted((ROOT / "tests" / "data" / "extraction").glob("*.jsonl"))
    for path in files:
        res = score_file(path)
        if res is None:
            print(f"{path}: scorer not found")
            continue
        results, macro = res
        print(f"\n{path} ({sum(1 for _ in path.open(encoding='utf-8'))} messages)")
        for field, r in results.items():
            print(f"  {field:12} P={r['p']:.3f} R={r['r']:.3f} F1={r['f1']:.3f}")
        print(f"  macro_f1={macro:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
