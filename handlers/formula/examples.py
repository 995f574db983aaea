"""Formulas shipped as examples (and used by tests and bench/bench_formula.py).

Amounts are yuan as Decimal with two places (fen); rates are fractions (95% is 0.95).
"""

from __future__ import annotations

from collections.abc import Mapping

from handlers.formula.compiler import FieldType

HEALTH_SCORE_FIELDS: Mapping[str, FieldType] = {
    "行业潜力值": "number",
    "采购活跃度": "number",
    "微信互动次数": "number",
    "官网停留分钟": "number",
    "白皮书下载": "number",
    "最近跟进日期": "date",
    "行业": "text",
}

# Lead health score, 0..~100: the two examples combined, plus recency and industry.
HEALTH_SCORE = (
    "IF(行业潜力值>80, 30, IF(行业潜力值>60, 20, 10))"
    " + IF(采购活跃度>=3, 25, 0)"
    " + MIN(微信互动次数*0.3, 15)"
    " + IF(官网停留分钟>=3, 0.5, 0)"
    " + 白皮书下载*1.2"
    " + IF(DAYS(TODAY(), 最近跟进日期) <= 30, 10, 0)"
    " + IF(行业 IN (“汽车零部件”, “电子”), 5, 0)"
)

DEALER_REBATE_FIELDS: Mapping[str, FieldType] = {
    "采购额": "number",  # yuan, two places
    "回款率": "number",  # 0..1
    "新品占比": "number",  # 0..1, share of purchases that are new products
}

# Dealer rebate in yuan, each part rounded half-up to the fen so explain() adds up:
#   volume tier: ≥500万 3%, ≥200万 2%, ≥50万 1%, otherwise none;
#   prompt payment: 回款率 ≥ 95% earns another 0.5% of purchases;
#   new products: 2% of the new-product purchases when their share reaches 30%.
DEALER_REBATE = """ROUND(采购额 * IFS(采购额 >= 500万, 3%, 采购额 >= 200万, 2%, 采购额 >= 50万, 1%, TRUE, 0), 2)
+ IF(回款率 >= 95%, ROUND(采购额 × 0.5%, 2), 0)
+ IF(新品占比 ≥ 30%, ROUND(采购额 × 新品占比 × 2%, 2), 0)"""
