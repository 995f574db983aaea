"""The formula language's front end on arbitrary text: tokenize, parse, type-check, compile.

Contract of :func:`check`: ``compile_formula`` on any text raises only ``FormulaError``,
whose line and column point inside the formula as placed in the config file, whose
Chinese and English messages are non-empty and whose ``str()`` never raises; it returns
within 1 s (the 2,000-character limit is enforced before any work). A formula that
compiles evaluates on the all-zero record (what the config loader probes) raising only
``FormulaError``, with a value of its declared type, and ``explain`` adds up to it.

Input: the formula text (UTF-8; undecodable bytes become lone surrogates).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import reduce

from fuzz.framing import ContractViolation, text, within
from handlers.formula import CONTEXT, FieldType, Formula, FormulaError, compile_formula
from handlers.formula.examples import DEALER_REBATE_FIELDS, HEALTH_SCORE_FIELDS
from handlers.scoring import DEFAULT_FACT_FIELDS, HEALTH_BUILTIN, LEAD_BUILTIN

# Every field our shipped formulas use, plus one of each remaining type.
FIELDS: dict[str, FieldType] = {
    **HEALTH_BUILTIN, **LEAD_BUILTIN, **DEFAULT_FACT_FIELDS, **HEALTH_SCORE_FIELDS, **DEALER_REBATE_FIELDS,
    "签约日期": "date", "已认证": "bool", "a": "number", "b": "number",
}
TODAY = date(2026, 5, 20)
LINE_OFFSET, COLUMN_OFFSET = 11, 10  # as if the formula sat on line 12 after `formula = "`
RESULT_TYPES: dict[str, type] = {"number": Decimal, "text": str, "date": date, "bool": bool}
ZERO: dict[str, object] = {
    name: {"number": Decimal(0), "text": "", "bool": False, "date": TODAY}[kind] for name, kind in FIELDS.items()
}


def check_error(error: FormulaError, source: str) -> None:
    """A FormulaError a manager can act on: a position inside the formula and both messages."""
    last_line = LINE_OFFSET + source.count("\n") + 1
    if not (LINE_OFFSET + 1 <= error.line <= last_line) or error.column < 1:
        raise ContractViolation(f"error position {error.line}:{error.column} outside lines {LINE_OFFSET + 1}..{last_line}")
    if not error.message_zh or not error.message_en:
        raise ContractViolation("FormulaError without a message")
    str(error)


def check_value(formula: Formula, record: dict[str, object], source: str, today: date = TODAY) -> None:
    """Evaluate and explain: only FormulaError, a value of the declared type, parts that add up."""
    try:
        value = formula.evaluate(record, today=today)
    except FormulaError as error:
        check_error(error, source)
        return
    if not isinstance(value, RESULT_TYPES[formula.result_type]):
        raise ContractViolation(f"{formula.result_type} formula gave {type(value).__name__}")
    if formula.result_type != "number":
        return
    try:
        parts = formula.explain(record, today=today)
    except FormulaError as error:
        check_error(error, source)
        return
    total = reduce(CONTEXT.add, (part for _, part in parts))
    if total != value:
        raise ContractViolation(f"explain() adds up to {total}, evaluate() gave {value}")


def _check(data: bytes) -> None:
    source = text(data)
    try:
        formula = compile_formula(source, FIELDS, origin="leadbot.toml", line_offset=LINE_OFFSET,
                                  column_offset=COLUMN_OFFSET)
    except FormulaError as error:
        check_error(error, source)
        return
    check_value(formula, ZERO, source)


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(1.0, "formula compile"):
        _check(data)
