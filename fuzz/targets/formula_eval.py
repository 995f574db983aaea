"""Compiled formulas evaluated on fuzzed facts: bounded time, only FormulaError.

Contract of :func:`check`: for a formula that compiles and any record (huge, tiny,
non-finite or ill-typed values, missing fields, datetimes for dates), ``evaluate`` and
``explain`` raise only ``FormulaError``, return a value of the formula's type, agree
with each other, give the same answer twice, and take at most 1 s.

Input: ``formula 0x1E today 0x1E facts``. ``today`` is an ISO date (empty: 2026-05-20).
``facts`` has one line per field of ``fields_in_order``; the first character says what
the value is, the rest is its text:

``d`` Decimal (NaN, Infinity, 1E+999999 …), ``i`` int, ``f`` float, ``s`` text,
``D`` date (ISO), ``T`` datetime (ISO), ``b`` bool (``1`` is true), ``n`` None,
``-`` field missing; an empty or unknown line is the type's zero.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from fuzz.framing import ContractViolation, fields, text, within
from fuzz.targets.formula_compile import FIELDS, TODAY, ZERO, check_error, check_value
from handlers.formula import FormulaError, compile_formula

_MISSING = object()


def fact(line: str, zero: object) -> object:
    """One fact value from its line (see the module docstring)."""
    kind, value = line[:1], line[1:]
    try:
        if kind == "d":
            return Decimal(value)
        if kind == "i":
            return int(value)
        if kind == "f":
            return float(value)
        if kind == "s":
            return value
        if kind == "D":
            return date.fromisoformat(value)
        if kind == "T":
            return datetime.fromisoformat(value)
        if kind == "b":
            return value == "1"
        if kind == "n":
            return None
        if kind == "-":
            return _MISSING
    except (ValueError, InvalidOperation, OverflowError):
        return value
    return zero


def _check(data: bytes) -> None:
    source_raw, today_raw, facts_raw = fields(data, 3)
    source = text(source_raw)
    try:
        formula = compile_formula(source, FIELDS, origin="leadbot.toml", line_offset=11, column_offset=10)
    except FormulaError:
        return
    try:
        today = date.fromisoformat(text(today_raw)) if today_raw else TODAY
    except ValueError:
        today = TODAY
    lines = text(facts_raw).split("\n")
    record: dict[str, object] = dict(ZERO)
    for index, name in enumerate(formula.fields_in_order):
        value = fact(lines[index], ZERO[name]) if index < len(lines) else ZERO[name]
        if value is _MISSING:
            del record[name]
        else:
            record[name] = value
    check_value(formula, record, source, today)
    try:
        first = formula.evaluate(record, today=today)
    except FormulaError as error:
        check_error(error, source)
        return
    if formula.evaluate(record, today=today) != first:
        raise ContractViolation("the same record evaluated twice gave two answers")


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(1.0, "formula evaluate"):
        _check(data)
