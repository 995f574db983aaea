"""HTTP routes of the sales side, the rules book's lifecycle, and rules reload.

Routes:

* ``GET /api/opportunities/{id}`` — the deal, its stage clock, answers and audit trail.
* ``POST /api/opportunities`` — ``{lead_id | customer_id, name?, owner?, amount?, expected_close_on?}``
  creates a deal at the first stage (``amount`` in yuan or text such as ``"50万"``).
* ``POST /api/scoring/facts`` — ``{entity: "customer"|"lead", id, facts: {微信互动次数: 12}}``:
  an input changed, the record's score is recomputed and returned.
* ``GET /api/customers/{id}/health`` — the score and each term's contribution.
* ``POST /api/rules/reload`` (loopback only) — re-read leadbot.toml's ``[scoring]`` and
  ``[[stages]]``; on error the last good rules stay and the error is returned (409).

On start-up, scores made by another formula than the one in force are recomputed (in
batches, one transaction each), so a formula edited while the server was down applies.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from aiohttp import web
from sqlmodel import Session

from bot.config import Settings, load
from bot.http import MAX_ID, json_object_body, path_id
from bot.keys import DATABASE, GATEWAY, SETTINGS
from handlers import opportunities
from handlers.leads import parse_budget_fen
from handlers.opportunities import RulesBook, SalesRules
from handlers.scoring import customer_record, recompute_all, set_facts, stale_formulas
from store.models import Customer, Lead, Member

log = logging.getLogger("leadbot.sales")
RULES = web.AppKey("sales_rules", RulesBook)


def rules_of(settings: Settings) -> SalesRules:
    """The sales rules validated with ``settings``."""
    return SalesRules(settings.scoring, settings.stages)


def make_book(settings: Settings) -> RulesBook:
    """A rules book whose reload re-reads ``settings.path`` (environment overrides applied)."""
    return RulesBook(rules_of(settings), loader=lambda: rules_of(load(settings.path)))


def _error(status: int, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": reason, **extra}, status=status)


MAX_NAME = 200  # Opportunity.name


def _body_id(value: Any) -> int | None:
    """A JSON id: an integer (not true/false) that a row can have, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def _text_ok(value: str, limit: int) -> bool:
    # VARCHAR(n) on PostgreSQL refuses longer values (bot.http has refused unstorable text).
    return len(value) <= limit


async def get_opportunity(request: web.Request) -> web.Response:
    """``GET /api/opportunities/{id}``."""
    gateway = request.app[GATEWAY]
    opp_id = path_id(request.match_info["opp_id"])
    if opp_id is None:
        return _error(400, "商机编号应为数字 / opportunity id must be a number")
    pipeline = request.app[RULES].current.pipeline
    view = await gateway.db.run(lambda s: opportunities.opportunity_view(s, opp_id, pipeline))
    if view is None:
        return _error(404, "商机不存在 / no such opportunity")
    return web.json_response(view)


async def create_opportunity(request: web.Request) -> web.Response:
    """``POST /api/opportunities``."""
    gateway = request.app[GATEWAY]
    data = await json_object_body(request)
    if isinstance(data, web.Response):
        return data
    try:
        amount_fen = parse_budget_fen(data.get("amount"))
        close_on = date.fromisoformat(data["expected_close_on"]) if data.get("expected_close_on") else None
    except (ArithmeticError, ValueError, TypeError):
        # ArithmeticError: an amount of NaN (Python's JSON reader accepts it) fails the range check.
        return _error(400, "金额或预计签约日期格式有误 / bad amount or expected_close_on")
    raw_lead, raw_customer = data.get("lead_id"), data.get("customer_id")
    if raw_lead is None and raw_customer is None:
        return _error(400, "需要 lead_id 或 customer_id / lead_id or customer_id required")
    lead_id, customer_id = _body_id(raw_lead), _body_id(raw_customer)
    if (raw_lead is not None and lead_id is None) or (raw_customer is not None and customer_id is None):
        return _error(400, "lead_id 与 customer_id 应为正整数 / lead_id and customer_id must be positive integers")
    name, owner_given = data.get("name"), data.get("owner")
    if name is not None and not (isinstance(name, str) and _text_ok(name, MAX_NAME)):
        return _error(400, f"name 应为不超过 {MAX_NAME} 字的文本 / name must be text of at most {MAX_NAME} characters")
    if owner_given is not None and not (isinstance(owner_given, str) and _text_ok(owner_given, 64)):
        return _error(400, "负责人不存在 / unknown owner")

    def store(session: Session) -> dict[str, Any] | str:
        lead = session.get(Lead, lead_id) if lead_id is not None else None
        customer = session.get(Customer, customer_id if customer_id is not None else (lead.customer_id if lead else None) or -1)
        if lead is None and customer is None:
            return "线索或客户不存在 / no such lead or customer"
        owner = owner_given or (lead.owner_id if lead else None) or (customer.owner_id if customer else None)
        if not isinstance(owner, str) or session.get(Member, owner) is None:
            return "负责人不存在 / unknown owner"
        title = name or f"{(lead.company if lead else customer.name if customer else '')[:MAX_NAME - 3]} 商机"
        opp = opportunities.create_opportunity(
            session, gateway.ctx, owner_id=owner, name=title, actor="api", why="接口建档",
            customer_id=customer.id if customer else None, lead_id=lead.id if lead else None,
            amount_fen=amount_fen, expected_close_on=close_on,
            entered_at=lead.accepted_at if lead and lead.accepted_at else None,
        )
        assert opp.id is not None
        view = opportunities.opportunity_view(session, opp.id, request.app[RULES].current.pipeline)
        assert view is not None
        return view

    result = await gateway.db.run(store)
    if isinstance(result, str):
        return _error(400, result)
    return web.json_response(result, status=201)


async def post_facts(request: web.Request) -> web.Response:
    """``POST /api/scoring/facts``: store scoring inputs and recompute that record."""
    gateway = request.app[GATEWAY]
    data = await json_object_body(request)
    if isinstance(data, web.Response):
        return data
    entity, entity_id, facts = data.get("entity"), _body_id(data.get("id")), data.get("facts")
    if entity not in ("customer", "lead") or entity_id is None or not isinstance(facts, dict):
        return _error(400, "需要 entity（customer|lead）、id（正整数）和 facts 对象 / entity, id and facts required")
    rules = request.app[RULES].current.scoring

    def store(session: Session) -> dict[str, Any] | str:
        try:
            return set_facts(session, str(entity), entity_id, facts, rules, gateway.ctx.clock.now())
        except LookupError as exc:
            return f"404:{exc}"
        except ValueError as exc:
            return str(exc)

    result = await gateway.db.run(store)
    if isinstance(result, str):
        if result.startswith("404:"):
            return _error(404, result[4:])
        return _error(400, result)
    return web.json_response(result)


async def get_health(request: web.Request) -> web.Response:
    """``GET /api/customers/{id}/health``: score, tier and each term's contribution."""
    gateway = request.app[GATEWAY]
    customer_id = path_id(request.match_info["customer_id"])
    if customer_id is None:
        return _error(400, "客户编号应为数字 / customer id must be a number")
    rules = request.app[RULES].current.scoring
    now = gateway.ctx.clock.now()

    def read(session: Session) -> dict[str, Any] | None:
        from handlers.formula import FormulaError
        from handlers.scoring import business_date, health_of

        customer = session.get(Customer, customer_id)
        if customer is None:
            return None
        record = customer_record(session, customer, rules, now)
        try:
            score, tier = health_of(rules, record, business_date(now))
            parts = rules.health.explain(record, today=business_date(now))
        except FormulaError as exc:
            return {"customer_id": customer_id, "error": str(exc)}
        return {"customer_id": customer_id, "score": score, "tier": tier, "formula": rules.health.source,
                "terms": [{"term": label, "points": str(value)} for label, value in parts]}

    view = await gateway.db.run(read)
    if view is None:
        return _error(404, "客户不存在 / no such customer")
    return web.json_response(view)


async def reload_rules(app: web.Application) -> tuple[bool, str]:
    """Re-validate and swap the rules; recompute scores when a formula changed.

    Returns (ok, text for the admin). On error the last good rules stay in force.
    """
    book = app[RULES]
    ok, message, previous = book.reload()
    if not ok:
        log.warning("rules reload refused: %s", message.splitlines()[-1][:200])
        return False, message
    # The same file validated: assignment rules and the ticket chain follow the formulas.
    fresh_settings = load(app[SETTINGS].path)
    ctx = app[GATEWAY].ctx
    ctx.rules, ctx.ticket_policy, ctx.webhooks = fresh_settings.assignment, fresh_settings.scheduler.tickets, fresh_settings.webhooks
    ctx.metrics = fresh_settings.metrics
    fresh = book.current.scoring
    changed = [name for name, old, new in (("health", previous.scoring.health_digest, fresh.health_digest),
                                           ("lead", previous.scoring.lead_digest, fresh.lead_digest)) if old != new]
    if changed:
        db = app[DATABASE]
        now = app[GATEWAY].ctx.clock.now()
        loop_result = await _in_pool(app, lambda: recompute_all(db.transaction, fresh, now, only=changed))
        message += "".join(f"\n已重算 {r.records} 条（{'客户健康分' if n == 'health' else '线索活跃度'}，{r.changed} 条有变化，{r.seconds:.1f} 秒）。"
                           for n, r in loop_result.items())
    return True, message


async def _in_pool(app: web.Application, fn: Any) -> Any:
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn)


async def post_reload(request: web.Request) -> web.Response:
    """``POST /api/rules/reload`` from the server itself (an admin's shell or a deploy hook)."""
    if request.remote not in ("127.0.0.1", "::1"):
        return _error(403, "只允许本机调用 / loopback only")
    ok, message = await reload_rules(request.app)
    return web.json_response({"ok": ok, "message": message}, status=200 if ok else 409)


def add_routes(app: web.Application) -> None:
    """Mount the routes and the rules book (attached to the gateway's handler context)."""
    book = make_book(app[SETTINGS])
    app[RULES] = book

    async def rules_ctx(app: web.Application) -> AsyncIterator[None]:
        gateway = app[GATEWAY]
        opportunities.attach(gateway.ctx, book)
        db = app[DATABASE]
        rules = book.current.scoring
        stale = await db.run(lambda s: stale_formulas(s, rules))
        if stale:
            now = gateway.ctx.clock.now()
            results = await _in_pool(app, lambda: recompute_all(db.transaction, rules, now, only=stale))
            for name, r in results.items():
                log.info("recomputed %s scores: %d records, %d changed, %.1fs", name, r.records, r.changed, r.seconds)
        yield

    app.cleanup_ctx.append(rules_ctx)
    app.router.add_get("/api/opportunities/{opp_id}", get_opportunity)
    app.router.add_post("/api/opportunities", create_opportunity)
    app.router.add_post("/api/scoring/facts", post_facts)
    app.router.add_get("/api/customers/{customer_id}/health", get_health)
    app.router.add_post("/api/rules/reload", post_reload)
