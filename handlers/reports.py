"""Manager chat commands: 报表 / 团队看板 / 雷达图 / 热力图 [区域|销售|区域名|姓名] [本周|本月|上周|上月].

Each answers with one card: the key numbers as fields, a short reading as text, and a PNG
chart in ``Card.image_png``. Handlers run on the database thread pool (the gateway calls
``router.handle`` through ``Database.run``), so the matplotlib rendering happens off the
event loop. Only managers and admins may ask; a manager sees the regions they manage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlmodel import Session

from cards import charts
from cards.model import Card, CardField
from handlers import metrics
from handlers.context import HandlerContext, Outgoing
from handlers.events import InboundEvent
from handlers.leads import new_card_id
from store.models import Member, Region

COMMANDS: tuple[str, ...] = ("报表", "团队看板", "雷达图", "热力图")
PERIOD_WORDS: tuple[str, ...] = ("本周", "本月", "上周", "上月")
GROUP_WORDS: dict[str, str] = {"区域": "region", "按区域": "region", "销售": "rep", "按销售": "rep", "个人": "rep"}
MANAGER_ROLES: tuple[str, ...] = ("manager", "admin")
USAGE = (
    "用法：报表 / 团队看板 / 雷达图 / 热力图 [区域|销售|区域名|销售姓名] [本周|本月|上周|上月]\n"
    "例如「雷达图 销售 本月」「报表 华东 本周」「热力图 张伟」。"
)
_COMPACT = re.compile(rf"^({'|'.join(COMMANDS)})((?:{'|'.join(PERIOD_WORDS + tuple(GROUP_WORDS))})*)$")


def is_report_command(event: InboundEvent) -> bool:
    """A text whose first word is one of :data:`COMMANDS` (``报表本月`` also counts)."""
    if event.kind != "text":
        return False
    text = event.text.strip()
    if not text:
        return False
    first = text.split()[0]
    return first in COMMANDS or bool(_COMPACT.match(text.replace(" ", "")))


@dataclass(frozen=True)
class Request:
    """What the manager asked for."""

    command: str
    period_word: str
    group: str | None  # "region" | "rep" | None (the command's default)
    scope: metrics.Scope


class RequestError(ValueError):
    """The request cannot be answered; the message is the polite Chinese reply."""


def _allowed_regions(session: Session, member: Member) -> list[str] | None:
    """Regions ``member`` may look at; None = all (admins)."""
    if member.role == "admin":
        return None
    managed = session.execute(select(Region.name).where(Region.manager_id == member.id)).scalars().all()
    names = set(managed)
    if member.region:
        names.add(member.region)
    return sorted(names)


def _tokens(text: str) -> list[str]:
    """Split ``雷达图 销售 本月`` and ``雷达图销售本月`` alike."""
    out: list[str] = []
    for part in text.split():
        while part:
            for word in COMMANDS + PERIOD_WORDS + tuple(GROUP_WORDS):
                if part.startswith(word) and len(part) > len(word):
                    out.append(word)
                    part = part[len(word):]
                    break
            else:
                out.append(part)
                part = ""
    return out


def parse_request(session: Session, member: Member, text: str) -> Request:
    """Read the command and its arguments; check what ``member`` may see."""
    tokens = _tokens(text.strip())
    command, args = tokens[0], tokens[1:]
    period_word, group, region, rep = "本周", None, None, None
    region_names = set(session.execute(select(Region.name)).scalars())
    for word in args:
        if word in PERIOD_WORDS:
            period_word = word
        elif word in GROUP_WORDS:
            group = GROUP_WORDS[word]
        elif word in region_names:
            region = word
        else:
            found = session.execute(select(Member).where(or_(Member.name == word, Member.id == word))).scalars().first()
            if found is None:
                raise RequestError(f"没有找到「{word}」这个区域或同事。\n{USAGE}")
            rep = found
    allowed = _allowed_regions(session, member)
    if rep is not None:
        if allowed is not None and rep.region not in allowed:
            raise RequestError(f"{rep.name}不在您负责的区域内，无法查看。")
        return Request(command, period_word, group, metrics.Scope(rep=rep.id))
    if region is not None:
        if allowed is not None and region not in allowed:
            raise RequestError(f"您负责的区域是{'、'.join(allowed) or '（未设置）'}，无法查看{region}的数据。")
        return Request(command, period_word, group, metrics.Scope(region=region))
    if allowed is None:
        return Request(command, period_word, group, metrics.Scope())
    if len(allowed) == 1:
        return Request(command, period_word, group, metrics.Scope(region=allowed[0]))
    if not allowed:
        raise RequestError("您还没有负责的区域，请管理员在 leadbot.toml 的 [[regions]] 中设置 manager。")
    # A manager of several regions sees them all, grouped by region unless told otherwise.
    return Request(command, period_word, group or "region", metrics.Scope())


def _scope_label(req: Request, names: dict[str, str]) -> str:
    if req.scope.rep:
        return names.get(req.scope.rep, req.scope.rep)
    return req.scope.region or "全公司"


def _hours(h: float | None) -> str:
    return "暂无数据" if h is None else f"{h:.1f} 工时"


def _days(d: float | None) -> str:
    return "暂无数据" if d is None else f"{d:.1f} 天"


def _pct(rate: metrics.Rate) -> float | None:
    return None if rate.value is None else 100 * rate.value


def report_card(s: metrics.Summary, scope_label: str) -> Card:
    """报表: the key numbers and the 24-hour action funnel."""
    bh = s.black_holes
    worst_sources = sorted(((k, r) for k, r in bh.by_source.items() if r.den), key=lambda kv: -(kv[1].value or 0))[:3]
    fields = report_card_fields(s)
    text = ""
    if worst_sources:
        text = "黑洞率最高的来源：" + "；".join(f"{k} {r.pct()}" for k, r in worst_sources)
    chart = charts.funnel_png(s.action_24h.steps(), f"24小时动作漏斗 · {scope_label} · {s.period.label}", _period_text(s.period))
    return Card(title=f"线索报表 · {scope_label} · {s.period.label}", fields=fields, text=text, image_png=chart)


def _period_text(period: metrics.Period) -> str:
    start = period.start.astimezone(metrics.SHANGHAI)
    end = period.end.astimezone(metrics.SHANGHAI)
    return f"{start:%Y-%m-%d %H:%M} 至 {end:%Y-%m-%d %H:%M}"


def team_card(s: metrics.Summary, scope_label: str) -> Card:
    """团队看板: per-rep capability lines and a grouped bar chart."""
    # Worst black-hole rate first: the chart shows the top rows when the team is large.
    reps = sorted((c for c in s.reps if c.leads), key=lambda c: (-(c.black_hole.value or 0), c.rep))
    lines = [
        f"{c.name}：线索 {c.leads} · 黑洞 {c.black_hole.pct()} · 激活 {c.activation.pct()} · "
        f"首触转化 {c.first_contact_conversion.pct()} · 异议处理（中位）{_hours(c.objection_median_hours)}"
        for c in reps
    ]
    text = "\n".join(lines) if lines else "本期暂无分配到个人的线索。"
    text += f"\n报价打开率：{metrics.NOT_COLLECTED}（尚未记录报价单的打开情况）"
    fields = (
        CardField("销售人数", str(len(reps))),
        CardField("新线索", str(s.leads)),
        CardField("线索黑洞率", s.black_holes.overall.pct()),
        CardField("线索激活率", s.activation_7d.pct()),
    )
    chart = charts.bars_png(
        [c.name for c in reps],
        {"黑洞率": [_pct(c.black_hole) for c in reps], "激活率": [_pct(c.activation) for c in reps],
         "首触转化率": [_pct(c.first_contact_conversion) for c in reps]},
        f"团队看板 · {scope_label} · {s.period.label}", subtitle=_period_text(s.period),
    )
    return Card(title=f"团队看板 · {scope_label} · {s.period.label}", fields=fields, text=text, image_png=chart)


def radar_card(s: metrics.Summary, scope_label: str, group: str) -> Card:
    """雷达图: the five health dimensions per region or per rep."""
    radar = s.health_by_region if group == "region" else s.health_by_rep
    groups = {(s.names.get(k, k) if group == "rep" else k): v for k, v in radar.groups.items()}
    lines = [f"{name}：" + " / ".join("—" if v is None else f"{v:.0f}" for v in values) for name, values in groups.items()]
    text = "维度：" + " / ".join(radar.dimensions) + "（0–100）\n" + ("\n".join(lines) if lines else "本期暂无数据。")
    by = "按区域" if group == "region" else "按销售"
    chart = charts.radar_png(list(radar.dimensions), groups, f"线索健康度 · {scope_label} · {by} · {s.period.label}", subtitle=_period_text(s.period))
    fields = (CardField("新线索", str(s.leads)), CardField("分组", by))
    return Card(title=f"线索健康度雷达 · {scope_label} · {s.period.label}", fields=fields, text=text, image_png=chart)


def heatmap_card(s: metrics.Summary, scope_label: str) -> Card:
    """热力图: mean business hours in each stage per rep, coloured by the norm."""
    h = s.heatmap
    names = [s.names.get(r, r) for r in h.reps]
    over = sorted(
        ((h.ratio(i, j) or 0, names[i], h.stages[j], h.hours[i][j]) for i in range(len(h.reps)) for j in range(len(h.stages))),
        key=lambda t: -t[0],
    )
    worst = [f"{n}「{st}」平均 {hrs:.1f} 工时（标准 {h.norms[h.stages.index(st)]:g}）" for ratio, n, st, hrs in over[:3] if ratio > 1 and hrs is not None]
    text = ("超出标准最多：\n" + "\n".join(worst)) if worst else "各阶段停留时间都在标准以内。"
    chart = charts.heatmap_png(names, list(h.stages), h.hours, h.norms, f"流程热力图 · {scope_label} · {s.period.label}", subtitle=_period_text(s.period))
    fields = (CardField("销售人数", str(len(h.reps))), CardField("新线索", str(s.leads)))
    return Card(title=f"流程热力图 · {scope_label} · {s.period.label}", fields=fields, text=text, image_png=chart)


def build_card(session: Session, req: Request, ctx: HandlerContext) -> Card:
    """Compute the summary for ``req`` and draw its card."""
    now = ctx.clock.now()
    period = metrics.Period.named(req.period_word, now)
    s = metrics.summary(session, now, period, req.scope, ctx.business_hours, metrics.settings_of(ctx))
    label = _scope_label(req, s.names)
    if req.command == "团队看板":
        return team_card(s, label)
    if req.command == "雷达图":
        group = req.group or ("rep" if req.scope.region or req.scope.rep else "region")
        return radar_card(s, label, group)
    if req.command == "热力图":
        return heatmap_card(s, label)
    return report_card(s, label)


def on_report(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """Answer a manager's report command with a card (key numbers + chart)."""
    if member.role not in MANAGER_ROLES:
        return [Outgoing(member.id, "text", f"{cause}:reply", platform=event.platform,
                         text="报表和看板目前只对区域经理和管理员开放。想看自己的线索进展，可以直接问您的经理哦。")]
    try:
        req = parse_request(session, member, event.text)
    except RequestError as exc:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=str(exc), platform=event.platform)]
    card = build_card(session, req, ctx)
    return [Outgoing(member.id, "card", f"{cause}:report", card=card, card_id=new_card_id(), platform=event.platform)]


# ---------------------------------------------------------------------------- command line (leadbot report)

CHARTS: tuple[str, ...] = ("funnel", "team", "radar", "heatmap")


def summary_text(s: metrics.Summary) -> str:
    """``leadbot report --format text``: the report card's numbers, the per-rep lines and the definitions' caveats."""
    label = _scope_label(Request("报表", "", None, s.scope), s.names)
    card = report_card_fields(s)
    lines = [f"线索报表 · {label} · {s.period.label}（{_period_text(s.period)}）"]
    lines += [f"{f.label}：{f.value}" for f in card]
    lines.append("黑洞率（按来源）：" + ("；".join(f"{k} {r.pct()}" for k, r in s.black_holes.by_source.items()) or "暂无数据"))
    lines.append("黑洞率（按区域）：" + ("；".join(f"{k} {r.pct()}" for k, r in s.black_holes.by_region.items()) or "暂无数据"))
    lines.append("销售：")
    for c in s.reps:
        lines.append(
            f"  {c.name}：线索 {c.leads} · 黑洞 {c.black_hole.pct()} · 激活 {c.activation.pct()} · 首触转化 "
            f"{c.first_contact_conversion.pct()} · 报价打开率 {c.quote_open_rate} · 异议处理（中位）{_hours(c.objection_median_hours)}"
        )
    return "\n".join(lines) + "\n"


def report_card_fields(s: metrics.Summary) -> tuple[CardField, ...]:
    """The key numbers of 报表 as card fields."""
    bh = s.black_holes
    return (
        CardField("新线索", f"{s.leads} 条（无效 {s.invalid}）"),
        CardField("24小时动作完成率", s.action_24h.rate.pct()),
        CardField(f"线索激活率（{s.definitions.activation_days}天≥{s.definitions.activation_interactions}次有效互动）", s.activation_7d.pct()),
        CardField(f"线索黑洞率（{bh.business_hours:g}工时未触达）", bh.overall.pct()),
        CardField("48小时未分配率", s.unassigned_48h.pct()),
        CardField("72小时未触达率", s.untouched_72h.pct()),
        CardField("线索到商机时效（中位）", f"{_days(s.lead_to_opp_median_days)}，已转 {s.converted} 条"),
        CardField("跨部门需求响应率（72h）", s.cross_dept_response.pct()),
        CardField("客户信息完整率", s.info_complete.pct()),
    )


CSV_COLUMNS: tuple[str, ...] = (
    "scope", "rep", "name", "leads", "black_hole_num", "black_hole_den", "activation_num", "activation_den",
    "first_contact_conversion_num", "first_contact_conversion_den", "quote_open_rate", "objections", "objection_median_hours",
)


def summary_csv(s: metrics.Summary) -> str:
    """``leadbot report --format csv``: one row for the scope, one per rep (UTF-8 with BOM, for Excel)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow([s.scope.label, "", "合计", s.leads, s.black_holes.overall.num, s.black_holes.overall.den,
                     s.activation_7d.num, s.activation_7d.den, "", "", metrics.NOT_COLLECTED, sum(c.objections for c in s.reps), ""])
    for c in s.reps:
        writer.writerow([s.scope.label, c.rep, c.name, c.leads, c.black_hole.num, c.black_hole.den, c.activation.num, c.activation.den,
                         c.first_contact_conversion.num, c.first_contact_conversion.den, c.quote_open_rate, c.objections,
                         "" if c.objection_median_hours is None else f"{c.objection_median_hours:.2f}"])
    return "\ufeff" + buf.getvalue()


def summary_chart(s: metrics.Summary, chart: str = "funnel") -> bytes:
    """``leadbot report --format png``: one of :data:`CHARTS` as PNG bytes."""
    label = _scope_label(Request("报表", "", None, s.scope), s.names)
    card = {"funnel": lambda: report_card(s, label), "team": lambda: team_card(s, label),
            "radar": lambda: radar_card(s, label, "rep" if s.scope.region or s.scope.rep else "region"),
            "heatmap": lambda: heatmap_card(s, label)}[chart]()
    assert card.image_png is not None
    return card.image_png
