"""HTTP for the process metrics: ``GET /api/metrics/summary`` (JSON) and the business gauges
that ``GET /metrics`` appends to its Prometheus text.

Wiring (bot/app.py and bot/api.py): ``metrics_api.add_routes(app)``; in ``bot.api.metrics``
read ``business_gauges(session, now, hours)`` inside the same ``gateway.db.run`` and append
the lines.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from aiohttp import web
from sqlmodel import Session

from bot.keys import GATEWAY
from handlers import metrics
from nlp.calendar import BusinessHours

GAUGE_WINDOW_DAYS = 30
PERIODS = {"week": metrics.Period.this_week, "month": metrics.Period.this_month,
           "last_week": metrics.Period.last_week, "last_month": metrics.Period.last_month}


def _label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(x: float | None) -> str:
    return "NaN" if x is None else f"{x:.6g}"


GAUGES: tuple[tuple[str, str, str], ...] = (
    ("leadbot_lead_action_24h_ratio", "24小时动作完成率 (assigned, screened, touched, need confirmed within 24 h).", "action_24h"),
    ("leadbot_lead_activation_7d_ratio", "线索激活率 (>= {interactions} effective interactions within {days} days).", "activation"),
    ("leadbot_lead_black_hole_ratio", "线索黑洞率 (no first touch within {hours:g} business hours).", "black_hole"),
    ("leadbot_lead_unassigned_48h_ratio", "48小时未分配率.", "unassigned_48h"),
    ("leadbot_lead_untouched_72h_ratio", "72小时未触达率.", "untouched_72h"),
    ("leadbot_lead_cross_dept_response_72h_ratio", "跨部门需求响应率 (high-potential hand-overs claimed within 72 h).", "cross_dept"),
    ("leadbot_lead_info_complete_ratio", "客户信息完整率 (every key field of the industry filled).", "info_complete"),
)


def _values(s: metrics.Summary) -> dict[str, float | None]:
    return {
        "action_24h": s.action_24h.rate.value, "activation": s.activation_7d.value, "black_hole": s.black_holes.overall.value,
        "unassigned_48h": s.unassigned_48h.value, "untouched_72h": s.untouched_72h.value,
        "cross_dept": s.cross_dept_response.value, "info_complete": s.info_complete.value,
    }


def business_gauges(session: Session, now: datetime, hours: BusinessHours = BusinessHours(),
                    settings: metrics.MetricSettings = metrics.DEFAULT_SETTINGS) -> list[str]:
    """Prometheus text lines for the business gauges over leads created in the last 30 days,
    for the whole company (``region="all"``) and per region. Ratios with nothing to count are NaN."""
    period = metrics.Period(now - timedelta(days=GAUGE_WINDOW_DAYS), now, f"近{GAUGE_WINDOW_DAYS}天")
    facts = metrics.load_facts(session, period, metrics.Scope(), settings)
    names = metrics.member_names(session)
    scopes: dict[str, list[metrics.LeadFact]] = {"all": facts}
    for f in facts:
        scopes.setdefault(f.region or "未知区域", []).append(f)
    summaries = {k: metrics.summarise(v, [], names, now, period, metrics.Scope(region=None if k == "all" else k), hours, settings)
                 for k, v in scopes.items()}
    lines: list[str] = []
    for name, help_text, key in GAUGES:
        help_text = help_text.format(
            interactions=settings.activation_interactions, days=settings.activation_days, hours=settings.black_hole_business_hours,
        )
        lines += [f"# HELP {name} {help_text} Leads created in the last {GAUGE_WINDOW_DAYS} days.", f"# TYPE {name} gauge"]
        lines += [f'{name}{{region="{_label(k)}"}} {_num(_values(s)[key])}' for k, s in sorted(summaries.items())]
    name = "leadbot_leads_created"
    lines += [f"# HELP {name} Leads created in the last {GAUGE_WINDOW_DAYS} days.", f"# TYPE {name} gauge"]
    lines += [f'{name}{{region="{_label(k)}"}} {s.leads}' for k, s in sorted(summaries.items())]
    name = "leadbot_lead_to_opportunity_median_days"
    lines += [f"# HELP {name} 线索到商机转化时效 (median days), leads of the last {GAUGE_WINDOW_DAYS} days.", f"# TYPE {name} gauge"]
    lines += [f'{name}{{region="{_label(k)}"}} {_num(s.lead_to_opp_median_days)}' for k, s in sorted(summaries.items())]
    return lines


class BadQuery(ValueError):
    """A query parameter we cannot use; the message is the bilingual reason."""


# Before 1901 Shanghai is on local mean time (+08:05:43, not an RFC 3339 offset), and near
# date.max the day after ``until`` does not exist: neither is a period anyone reports on.
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)


def period_from_query(query: dict[str, str] | object, now: datetime) -> metrics.Period:
    """``period=week|month|last_week|last_month`` or ``since=YYYY-MM-DD[&until=YYYY-MM-DD]``; default this week."""
    get = getattr(query, "get")
    since, until, word = get("since"), get("until"), get("period")
    if since:
        try:
            start = date.fromisoformat(since)
            end = date.fromisoformat(until) if until else None
        except ValueError:
            raise BadQuery("日期格式应为 YYYY-MM-DD / dates must be YYYY-MM-DD") from None
        if not all(EARLIEST <= d <= LATEST for d in (start, end) if d is not None):
            raise BadQuery(f"日期应在 {EARLIEST} 至 {LATEST} 之间 / dates must be within {EARLIEST}..{LATEST}")
        if end is not None and end < start:
            raise BadQuery("until 早于 since / until is before since")
        return metrics.Period.since(start, now, end)
    if word and word not in PERIODS:
        raise BadQuery(f"period 应为 {' / '.join(PERIODS)} / unknown period")
    return PERIODS[word or "week"](now)


async def summary(request: web.Request) -> web.Response:
    """``GET /api/metrics/summary?period=week|month|…&since=&until=&region=&rep=``: every metric as JSON."""
    gateway = request.app[GATEWAY]
    now = gateway.ctx.clock.now()
    try:
        period = period_from_query(request.query, now)
    except BadQuery as exc:
        return web.json_response({"error": str(exc)}, status=400)
    region = request.query.get("region") or None
    rep = request.query.get("rep") or None
    if (region and len(region) > 64) or (rep and len(rep) > 64):
        return web.json_response({"error": "参数过长 / parameter too long"}, status=400)
    if "\x00" in (region or "") + (rep or ""):
        # "%00" decodes to NUL, which PostgreSQL refuses even in a comparison.
        return web.json_response({"error": "参数含有 NUL 字符 / parameter holds NUL"}, status=400)
    scope = metrics.Scope(region=region, rep=rep)
    hours = gateway.ctx.business_hours
    settings = metrics.settings_of(gateway.ctx)
    result = await gateway.db.run(lambda s: metrics.summary(s, now, period, scope, hours, settings))
    return web.json_response(result.to_dict(), dumps=_dumps)


def _dumps(obj: object) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)


def add_routes(app: web.Application) -> None:
    """Mount ``GET /api/metrics/summary``."""
    app.router.add_get("/api/metrics/summary", summary)
