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
    # 线索黑洞率 as 报表 defines it ([metrics] black_hole_business_hours): of the week's
    # leads whose N business hours are over (and not screened invalid within them).
    black_hole_base: int = 0
    black_hole_hours: float = 8.0

    @property
    def black_hole_rate(self) -> float | None:
        """Share of the week's judged leads without a first touch within N business hours."""
        return self.black_holes / self.black_hole_base if self.black_hole_base else None


def weekly_card(week_label: str, f: RiskFigures) -> Card:
    """The Monday risk report for a region manager."""
    money = fmt_money(f.stalled_amount_fen)
    hours = f"{f.black_hole_hours:g}"
    rate = f.black_hole_rate
    black = "暂无数据" if rate is None else f"{rate:.0%}（{f.black_holes}/{f.black_hole_base}）"
    return Card(
        title=f"每周风险报告 · {f.region} · {week_label}",
        fields=(
            CardField("超时未接受（已自动转派）", f"{f.accept_timeouts} 条"),
            CardField("接受后未按时首通", f"{f.first_touch_overdue} 条"),
            CardField(f"线索黑洞率（{hours}工时未触达）", black),
            CardField("停滞商机", f"{f.stalled_opportunities} 个" + (f"，{money}" if money else "")),
            CardField("未结 P0/P1 工单", f"{f.open_p0} / {f.open_p1}"),
        ),
        text=f"黑洞率 = 近7天的 {f.leads_created} 条新线索中，创建后 {hours} 个工作小时内没有首次触达的比例"
        f"（口径同「报表」，未满 {hours} 个工作小时的线索暂不计入）。数字供排期参考，需要支援的地方可以直接在群里说。",
    )
