"""Follow-up extraction (``nlp.extract.extract``) on arbitrary unicode and long run-ons.

Contract of :func:`check`: ``extract`` never raises, returns exactly the eleven spec
fields, no field extractor fails (``extract`` hides a failing rule behind an empty field,
so the target counts those failures and treats any as a crash), the result survives
``json.dumps`` as the ``leadbot extract`` CLI writes it, and the time is bounded per
character: at most 1 s + 1 ms per character (generous: instrumented code on a shared
runner), on messages up to the 8,000 characters ``extract`` reads.

Input: one selector byte, then the text:

0. UTF-8 (undecodable bytes become lone surrogates)
1. UTF-16-LE code units: any BMP code point, lone surrogates included
2. a run-on: the UTF-8 text repeated up to 8,000 characters (quadratic rules show here)
3. a forwarded chat: the UTF-8 text repeated as ``Name 10:0N`` / text record lines
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime, timedelta, timezone

from fuzz.framing import ContractViolation, text, wide_text, within
from nlp import extract as extract_module
from nlp.extract import FIELDS, MAX_CHARS, extract

NOW = datetime(2026, 5, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))


class _Failures(logging.Handler):
    """Collects the errors ``extract`` logs instead of raising (a rule that crashed)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_LOGGED = _Failures()
logging.getLogger("nlp").addHandler(_LOGGED)
# The lexicons load on first use (seconds); keep that out of the first input's budget.
extract("苏州恒锐的王经理说下周三来看设备，预算50万", NOW)


def message(data: bytes) -> str:
    """The message the selector byte describes (see the module docstring)."""
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        return text(rest)
    if mode == 1:
        return wide_text(rest)
    unit = text(rest) or " "
    if mode == 2:
        return (unit * (MAX_CHARS // len(unit) + 1))[:MAX_CHARS]
    lines: list[str] = []
    minute = 0
    while sum(len(line) + 1 for line in lines) < MAX_CHARS:
        lines += [f"王经理 10:{minute % 60:02d}", unit]
        minute += 1
    return "\n".join(lines)[:MAX_CHARS]


def _check(data: bytes) -> None:
    if not data:
        return
    msg = message(data)
    _LOGGED.records.clear()
    # _safe logs a field's first failure only and counts the rest: watch both.
    counted = dict(extract_module._FAILURES)
    with within(1.0 + 0.001 * min(len(msg), MAX_CHARS), f"extract of {len(msg)} characters"):
        result = extract(msg, NOW)
    if _LOGGED.records:
        record = _LOGGED.records[0]
        where = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        raise ContractViolation(f"extract swallowed a failure: {record.getMessage()}\n{where}")
    if extract_module._FAILURES != counted:
        fields = sorted(k for k, v in extract_module._FAILURES.items() if v != counted.get(k))
        raise ContractViolation(f"the extractor(s) for {fields} failed (logged once per process, earlier)")
    if tuple(result) != FIELDS:
        raise ContractViolation(f"fields {tuple(result)}")
    json.dumps(result, ensure_ascii=False)


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    _check(data)
