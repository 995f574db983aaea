"""Aggregated cards: 今日待办 TOP5, the weekly risk report, and the roll-up of over-budget alerts.

Pure builders over plain data: the scheduler gathers the rows, these decide the words.
The tone is quiet and non-blaming: what is at stake, never who is late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from cards.model import Card, CardField


def fmt_money(fen: int | None) -> str:
    """``约50万`` / ``约8000元`` from integer fen; empty when unknown."""
    if not fen:
        return ""
    yuan = Decimal(fen) / 100
    if yuan >= 10000:
        wan = (yuan / 10000).quantize(Decimal(1) if yuan >= 100000 else Decimal("0.1"))
        return f"约{wan.normalize():f}万"
    return f"约{yuan.quantize(Decimal(1)):f}元"


@dataclass(frozen=True)
class TodoItem:
    """One thing a rep could do today, and what it costs to leave it."""

    title: str
    impact: str
    stake_fen: int = 0
    urgency: int = 0  # breaks ties: deadlines already past first


def rank_todo(items: list[TodoItem], size: int = 5) -> list[TodoItem]:
    """The ``size`` items with the most at stake (past deadlines first among equals)."""
    return sorted(items, key=lambda i: (-i.stake_fen, -i.urgency, i.title))[:size]


def todo_card(day: date, items: list[TodoItem], total: int) -> Card:
    """今日待办 TOP5: each item with what is at stake if it is left."""
    lines = [f"{n}. {item.title}\n   不处理影响：{item.impact}" for n, item in enumerate(items, 1)]
    more = f"\n另有 {total - len(items)} 项，可稍后处理。" if total > len(items) else ""
    return Card(title=f"今日待办 TOP{len(items)} · {day.month}月{day.day}日", text="\n".join(lines) + more)


def digest_card(summaries: list[str]) -> Card:
    """The roll-up of alerts that would otherwise have been a stream of pings."""
    shown = summaries[:10]
    more = f"\n……另有 {len(summaries) - len(shown)} 条" if len(summaries) > len(shown) else ""
    return Card(title=f"提醒汇总 · {len(summaries)} 条", text="\n".join(f"· {s}" for s in shown) + more)


@dataclass(frozen=True)
class RiskFigures:
    """One region's week: what slipped, as counts (no names)."""

    region: str
    leads_created: int
    black_holes: int
    accept_timeouts: int
    first_touch_overdue: int
    stalled_opportunities: int
    stalled_amount_fen: int
    open_p0: int
    open_p1: int

    @property
    def black_hole_rate(self) -> float:
        """Share of last week's leads that never got a first touch."""
        return self.black_holes / self.leads_created if self.leads_created else 0.0


def weekly_card(week_label: str, f: RiskFigures) -> Card:
    """The Monday risk report for a region manager."""
    money = fmt_money(f.stalled_amount_fen)
    return Card(
        title=f"每周风险报告 · {f.region} · {week_label}",
        fields=(
            CardField("超时未接受（已自动转派）", f"{f.accept_timeouts} 条"),
            CardField("接受后未按时首通", f"{f.first_touch_overdue} 条"),
            CardField("线索黑洞率", f"{f.black_hole_rate:.0%}（{f.black_holes}/{f.leads_created}）"),
            CardField("停滞商机", f"{f.stalled_opportunities} 个" + (f"，{money}" if money else "")),
            CardField("未结 P0/P1 工单", f"{f.open_p0} / {f.open_p1}"),
        ),
        text="黑洞率 = 上周新线索中至今没有任何跟进记录的比例。数字供排期参考，需要支援的地方可以直接在群里说。",
    )
