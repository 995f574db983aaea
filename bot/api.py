"""The HTTP API: lead intake, lead view, health and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
from sqlalchemy import text as sql_text
from sqlmodel import Session

from bot import metrics_api
from bot.gateway import inbox_counts
from bot.http import error_response, parse_object, path_id, read_body
from bot.intake_auth import IntakeDenied, authenticate
from bot.keys import GATEWAY, SETTINGS
from handlers import leads, merges
from handlers.metrics import settings_of as metric_settings
from store import outbox
from store.db import GroupCommit
from store.models import Member

log = logging.getLogger("leadbot.api")


_error = error_response
INTAKES = web.AppKey("intakes", GroupCommit)


async def create_lead(request: web.Request) -> web.Response:
    """``POST /api/leads``: validate, store, assign and queue the card; all or nothing."""
    gateway = request.app[GATEWAY]
    raw = await read_body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        source = authenticate(request.app[SETTINGS].intake_sources, request.headers, raw, time.time())
    except IntakeDenied as exc:
        log.warning("lead intake refused from %s: %s", request.remote, exc.reason)
        return _error(exc.status, exc.reason)
    data = parse_object(raw)
    if isinstance(data, web.Response):
        return data
    if source is not None:
        data["source"] = source.label  # a caller cannot claim another source's tag
    try:
        form = leads.validate_form(data)
    except leads.LeadFormError as exc:
        return _error(400, "线索信息有误 / invalid lead", fields=exc.errors)

    result = await request.app[INTAKES].submit(form)
    gateway.notify_outbox()
    return web.json_response({"lead_id": result.lead_id, "status": result.status, "owner": result.owner}, status=201)


def _lead_id(request: web.Request) -> int | web.Response:
    """The ``{lead_id}`` of the path, or the 4xx that says why it names no lead."""
    lead_id = path_id(request.match_info["lead_id"])
    if lead_id is None:
        return _error(400, "线索编号应为数字 / lead id must be a number")
    if lead_id == 0:
        return _error(404, "线索不存在 / no such lead")
    return lead_id


async def get_lead(request: web.Request) -> web.Response:
    """``GET /api/leads/{id}``: status, owner, the rule that fired, the audit trail."""
    gateway = request.app[GATEWAY]
    lead_id = _lead_id(request)
    if isinstance(lead_id, web.Response):
        return lead_id
    view = await gateway.db.run(lambda s: leads.lead_view(s, lead_id))
    if view is None:
        return _error(404, "线索不存在 / no such lead")
    return web.json_response(view)


SPLIT_STATUS = {"not_found": 404, "forbidden": 403, "not_merged": 409, "first_lead": 409}


async def unmerge_lead(request: web.Request) -> web.Response:
    """``POST /api/leads/{id}/unmerge`` ``{"reason"?, "by"?}``: split a wrongly merged lead off
    its customer (see :mod:`handlers.merges`). ``by`` names the manager or admin it is done
    for (their region rights apply); without it the API's own admin credential acts."""
    gateway = request.app[GATEWAY]
    lead_id = _lead_id(request)
    if isinstance(lead_id, web.Response):
        return lead_id
    raw = await read_body(request)
    if isinstance(raw, web.Response):
        return raw
    data = parse_object(raw) if raw.strip() else {}
    if isinstance(data, web.Response):
        return data
    reason, by = data.get("reason", ""), data.get("by")
    if not isinstance(reason, str) or len(reason) > merges.MAX_REASON:
        return _error(400, f"reason 应为不超过 {merges.MAX_REASON} 字的文本 / reason must be text", fields={"reason": "应为文本"})
    if by is not None and (not isinstance(by, str) or not by or len(by) > 64):
        return _error(400, "by 应为成员 id / by must be a member id", fields={"by": "应为成员 id"})

    def split(session: Session) -> merges.SplitResult | web.Response:
        asker = session.get(Member, by) if by is not None else None
        if by is not None and asker is None:
            return _error(400, f"成员 `{by}` 不存在 / no such member", fields={"by": "成员不存在"})
        try:
            result = merges.split_lead(session, lead_id, asker, reason.strip() or merges.DEFAULT_REASON, gateway.ctx, f"unmerge:{lead_id}")
        except merges.SplitRefused as refused:
            return _error(SPLIT_STATUS[refused.code], refused.reason, code=refused.code)
        gateway.enqueue(session, result.outgoing, gateway.ctx.clock.now())
        return result

    result = await gateway.db.run(split)
    if isinstance(result, web.Response):
        return result
    gateway.notify_outbox()
    return web.json_response({
        "lead_id": result.lead_id, "status": result.status, "customer_id": result.customer_id,
        "from_customer_id": result.from_customer_id, "owner": result.owner, "reassigned": result.reassigned,
        "moved": {"followups": result.moved_followups, "opportunities": result.moved_opportunities},
        "message": result.message,
    })


async def healthz(request: web.Request) -> web.Response:
    """Liveness plus a database round trip."""
    gateway = request.app[GATEWAY]
    try:
        await gateway.db.run(lambda s: s.execute(sql_text("SELECT 1")).scalar_one())
    except Exception as exc:  # noqa: BLE001
        return web.json_response({"status": "error", "database": type(exc).__name__}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: inbox and outbox by status."""
    gateway = request.app[GATEWAY]

    def read(session: Session) -> tuple[dict[str, int], dict[str, int], list[str]]:
        now = gateway.ctx.clock.now()
        return inbox_counts(session), outbox.backlog(session), metrics_api.business_gauges(session, now, gateway.ctx.business_hours, metric_settings(gateway.ctx))

    inbox_by, outbox_by, business = await gateway.db.run(read)
    lines = ["# HELP leadbot_inbox_events Inbound events by status.", "# TYPE leadbot_inbox_events gauge"]
    lines += [f'leadbot_inbox_events{{status="{k}"}} {v}' for k, v in sorted(inbox_by.items())]
    lines += ["# HELP leadbot_outbox_messages Outbound messages by status.", "# TYPE leadbot_outbox_messages gauge"]
    lines += [f'leadbot_outbox_messages{{status="{k}"}} {v}' for k, v in sorted(outbox_by.items())]
    lines += business
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


async def intake_ctx(app: web.Application) -> AsyncIterator[None]:
    """Lead posts are group-committed: the ones arriving while a batch is written share the next."""
    gateway = app[GATEWAY]

    def take_in(session: Session, forms: Sequence[leads.LeadForm]) -> list[leads.IntakeResult]:
        results = leads.intake_many(session, forms, gateway.ctx)
        now = gateway.ctx.clock.now()
        for result in results:
            gateway.enqueue(session, result.outgoing, now)
        return results

    intakes: GroupCommit[leads.LeadForm, leads.IntakeResult] = GroupCommit(gateway.db, take_in)
    app[INTAKES] = intakes
    try:
        yield
    finally:
        await intakes.close()


def add_routes(app: web.Application) -> None:
    """Mount the API (after the gateway's cleanup context: the intake queue needs it)."""
    app.cleanup_ctx.append(intake_ctx)
    app.router.add_post("/api/leads", create_lead)
    app.router.add_get("/api/leads/{lead_id}", get_lead)
    app.router.add_post("/api/leads/{lead_id}/unmerge", unmerge_lead)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
