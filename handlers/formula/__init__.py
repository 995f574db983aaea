"""A small, safe formula language for lead scores, tiers and dealer rebates.

Sales managers write formulas in leadbot.toml, e.g.
``IF(行业潜力值>80, 30, IF(行业潜力值>60, 20, 10)) + IF(采购活跃度>=3, 25, 0)``;
the server compiles them once and evaluates them per record. Our own tokenizer,
recursive-descent parser, type checker and closure compiler: no eval/exec, no attribute
access, bounded size and depth, exact decimal arithmetic. See parser.py for the grammar.

    formula = compile_formula(source, {"行业潜力值": "number", ...}, origin="leadbot.toml", line_offset=11)
    formula.evaluate(record)            # Decimal | str | bool | date
    formula.explain(record)             # [("行业潜力值>80", Decimal("30")), ...]
    Tiering.of([(80, "战略级"), (60, "重点跟进"), (40, "培育中")], default="暂缓").tier(score)
"""

from handlers.formula.compiler import (
    CONTEXT,
    FieldType,
    Formula,
    Value,
    compile_formula,
)
from handlers.formula.errors import MAX_DEPTH, MAX_NODES, MAX_SOURCE_CHARS, FormulaError
from handlers.formula.tiering import Tiering

__all__ = [
    "CONTEXT",
    "FieldType",
    "Formula",
    "FormulaError",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SOURCE_CHARS",
    "Tiering",
    "Value",
    "compile_formula",
]
