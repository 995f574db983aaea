"""Follow-up extraction: one forwarded message in, the eleven fields of the spec out.

The spec is ``extraction/README.md`` (contacts, phones, companies, dates, amounts,
province, city, industry, intents, sentiment, next_action). This module only
assembles: it normalises the text once, splits forwarded records into segments with
their own reference times, and calls the field extractors. ``extract`` never raises:
a failing extractor yields that field's empty value, so one bad rule cannot cost the
rep the whole confirmation card.

Run as a module for batch use: ``python3 -m nlp.extract [--now ISO] < in.jsonl > out.jsonl``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from nlp.amounts import extract_amounts
from nlp.chat import Segment, split_record
from nlp.classify import classify_industry, classify_intents, classify_sentiment, extract_next_action
from nlp.dates import extract_dates
from nlp.entities import extract_companies, extract_contacts
from nlp.normalize import normalize
from nlp.phones import extract_phones
from nlp.places import extract_place

log = logging.getLogger(__name__)

CST = timezone(timedelta(hours=8), "CST")
FIELDS: tuple[str, ...] = (
    "contacts", "phones", "companies", "dates", "amounts", "province", "city",
    "industry", "intents", "sentiment", "next_action",
)
# Messages longer than this are cut before the rules run: a pasted 100 KB log is not a
# follow-up, and the rules must stay fast on whatever arrives.
MAX_CHARS = 8_000


def empty_result() -> dict[str, Any]:
    """The prediction for a message with nothing to extract."""
    return {
        "contacts": [], "phones": [], "companies": [], "dates": [], "amounts": [],
        "province": None, "city": None, "industry": None, "intents": [],
        "sentiment": "neutral", "next_action": None,
    }


# Fields whose extractor raised at least once in this process, and how often: a bug
# in one rule must be visible without flooding the log on every message.
_FAILED: set[str] = set()
_FAILURES: dict[str, int] = {}


def _safe(field: str, fn: Callable[..., Any] | None, *args: Any) -> Any:
    default = empty_result()[field]
    if fn is None:
        return default
    try:
        value = fn(*args)
    except Exception:  # a rule bug must not lose the other fields
        if field not in _FAILED:
            _FAILED.add(field)
            log.exception("extractor for %s failed (further failures of this field are counted, not logged)", field)
        _FAILURES[field] = _FAILURES.get(field, 0) + 1
        return default
    return default if value is None and default is not None else value


def extract(text: str, now: datetime) -> dict[str, Any]:
    """Extract the eleven spec fields from one message sent to the bot at ``now``.

    ``now`` should be timezone-aware (a naive value is taken as China Standard Time).
    Never raises; returns exactly the keys of ``FIELDS``.
    """
    result = empty_result()
    try:
        if not isinstance(text, str) or not text:
            return result
        if now.tzinfo is None:
            now = now.replace(tzinfo=CST)
        raw = text[:MAX_CHARS]
        norm = normalize(raw)
        try:
            segments: list[Segment] = split_record(norm, now)
        except Exception:
            log.exception("split_record failed")
            segments = [Segment(None, norm, now, 0)]
        result["contacts"] = _safe("contacts", extract_contacts, norm, segments)
        result["phones"] = _safe("phones", extract_phones, norm)
        # Amount and date spans are cut from the text as written (offsets are shared).
        result["companies"] = _safe("companies", extract_companies, norm, segments)
        result["dates"] = _safe("dates", extract_dates, segments, raw)
        result["amounts"] = _safe("amounts", extract_amounts, raw)
        place = _safe("province", extract_place, norm)
        if isinstance(place, tuple) and len(place) == 2:
            result["province"], result["city"] = place
        result["industry"] = _safe("industry", classify_industry, norm)
        result["intents"] = _safe("intents", classify_intents, norm)
        result["sentiment"] = _safe("sentiment", classify_sentiment, norm)
        result["next_action"] = _safe("next_action", extract_next_action, norm)
    except Exception:  # last line of defence: never fail the caller
        log.exception("extract failed")
        return empty_result()
    return result


def _parse_now(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("缺少 now 字段 (ISO 时间, 如 2026-03-01T10:00:00+08:00)")
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=CST)


def run_jsonl(lines: Iterable[str], out: TextIO, default_now: datetime | None) -> int:
    """Batch extraction: one JSON line (``{"id","now","text"}``) or plain text line in, one
    ``{"id", "pred"}`` line out. Returns the number of lines written.

    Plain text lines take their line number as id and ``default_now`` as time. A bad line
    (invalid JSON, no time, no text) still produces a line with empty fields, and a
    reason on stderr; the run never stops early.
    """
    written = 0
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        ident: Any = lineno
        pred = empty_result()
        try:
            record: Any = None
            if line.lstrip().startswith("{"):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = None
            if isinstance(record, dict):
                ident = record.get("id", lineno)
                text = record.get("text")
                if not isinstance(text, str):
                    raise ValueError("缺少 text 字段")
                now = _parse_now(record["now"]) if record.get("now") is not None else default_now
            else:
                text = line
                now = default_now
            if now is None:
                raise ValueError("没有时间基准: 输入行缺少 now, 请用 --now 指定 (如 --now 2026-03-01T10:00:00+08:00)")
            pred = extract(text, now)
        except Exception as exc:
            print(f"第{lineno}行 (id={ident}): {exc}", file=sys.stderr)
        out.write(json.dumps({"id": ident, "pred": pred}, ensure_ascii=False) + "\n")
        written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    """``python3 -m nlp.extract [--now ISO]``: stdin JSON lines to stdout prediction lines."""
    import argparse

    ap = argparse.ArgumentParser(prog="python3 -m nlp.extract", description="跟进消息信息抽取 (JSON lines)")
    ap.add_argument("--now", help="plain-text lines use this time, e.g. 2026-03-01T10:00:00+08:00")
    args = ap.parse_args(argv)
    default_now = _parse_now(args.now) if args.now else None
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    run_jsonl(sys.stdin, sys.stdout, default_now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
