"""The application factory: one cleanup context per resource, so a failed start cleans up
exactly what started."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, time
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlmodel import Session

from bot import api, metrics_api, openapi, opportunities_api, sandbox
from bot.config import Settings
from bot.gateway import Gateway, PlatformAdapter
from bot.keys import DATABASE, GATEWAY, SCHEDULER, SETTINGS
from handlers.context import Clock, HandlerContext, Outgoing, SystemClock
from nlp.calendar import SHANGHAI
from scheduler.service import SchedulerService
from store.db import Database, pending_migrations
from store.models import Member
from store.org import MemberRow, RegionRow, sync_org

log = logging.getLogger("leadbot")

# Each real platform lives in one module exposing
#   create_adapter(settings, db, ctx) -> PlatformAdapter   (optionally with async start()/close())
#   add_routes(app) -> None
PLATFORM_MODULES = {"wecom": "bot.wecom", "feishu": "bot.feishu", "dingtalk": "bot.dingtalk"}


class SchemaOutOfDate(RuntimeError):
    """The database needs ``leadbot db upgrade`` before the server may start."""


def org_rows(settings: Settings) -> tuple[list[RegionRow], list[MemberRow]]:
    """The organisation of ``settings`` as store rows."""
    regions = [RegionRow(r.name, r.provinces, r.manager) for r in settings.regions]
    members = [
        MemberRow(
            id=m.id, name=m.name, role=m.role, region=m.region, manager_id=m.manager,
            daily_capacity=m.daily_capacity, active=m.active, on_leave=m.on_leave,
            wecom_userid=m.wecom_userid, feishu_open_id=m.feishu_open_id,
            dingtalk_userid=m.dingtalk_userid, preferred_platform=m.preferred_platform,
            joined_at=datetime.combine(m.joined_on, time(9, 0), SHANGHAI) if m.joined_on else None,
        )
        for m in settings.members
    ]
    return regions, members


OPEN_API = {
    ("POST", "/api/leads"),  # lead intake has its own per-source credentials
    ("GET", "/api/openapi.json"),  # the API's description holds no secret
}


def management_guard(token: str) -> Any:
    """``/api/*`` (but lead intake) needs ``Authorization: Bearer <[server] api_token>``;
    without a configured token only the machine itself may call it."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/") and (request.method, request.path) not in OPEN_API:
            if token:
                given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if not hmac.compare_digest(given.encode(), token.encode()):
                    return web.json_response({"error": "需要管理接口令牌（Authorization: Bearer …）/ API token required"}, status=401)
            elif request.remote not in ("127.0.0.1", "::1"):
                return web.json_response({"error": "未配置 [server] api_token，管理接口只允许本机调用 / loopback only"}, status=403)
        return await handler(request)

    return guard


def handler_context(settings: Settings, clock: Clock) -> HandlerContext:
    """What handlers get from ``settings``: clock, signing secret, rules, enabled platforms."""
    enabled = tuple(name for name in settings.platforms if settings.platform_enabled(name))
    return HandlerContext(
        clock=clock, secret=settings.secret, rules=settings.assignment, enabled_platforms=enabled,
        ticket_policy=settings.scheduler.tickets, webhooks=settings.webhooks, metrics=settings.metrics,
    )


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    start_workers: bool = True,
    extra_adapters: Callable[[Database, HandlerContext], list[PlatformAdapter]] | None = None,
) -> web.Application:
    """Build the aiohttp application for ``settings``.

    ``start_workers=False`` leaves the dispatcher, the delivery worker and the scheduler
    to the caller (tests drive them with :meth:`Gateway.drain` and the scans directly).
    """
    app = web.Application(client_max_size=1024 * 1024, middlewares=[management_guard(settings.api_token)])
    app[SETTINGS] = settings
    the_clock = clock or SystemClock()

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        try:
            missing = pending_migrations(db.engine)
            if missing:
                raise SchemaOutOfDate(f"数据库结构需要升级，请先运行 `leadbot db upgrade`（待执行迁移: {', '.join(missing)}）")
            regions, members = org_rows(settings)
            await db.run(lambda s: sync_org(s, regions, members, the_clock.now()))
            app[DATABASE] = db
            yield
        finally:
            db.close()

    async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
        db = app[DATABASE]
        ctx = handler_context(settings, the_clock)
        adapters: list[PlatformAdapter] = []
        if settings.platform_enabled("sandbox"):
            adapters.append(sandbox.SandboxAdapter(db, the_clock))
        for name, module in platform_modules(settings):
            adapters.append(module.create_adapter(settings, db, ctx))
        if settings.webhooks:
            from bot import webhooks

            adapters.append(webhooks.create_adapter(settings, db, ctx))
        if extra_adapters is not None:
            adapters += extra_adapters(db, ctx)
        started: list[PlatformAdapter] = []
        gateway = Gateway(db, ctx, adapters)
        app[GATEWAY] = gateway
        try:
            for adapter in adapters:
                start = getattr(adapter, "start", None)
                if start is not None:
                    await start()
                started.append(adapter)
            if start_workers:
                gateway.start()
            yield
        finally:
            await gateway.stop()
            for adapter in reversed(started):
                close = getattr(adapter, "close", None)
                if close is not None:
                    await close()

    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        if not start_workers:
            yield
            return
        gateway = app[GATEWAY]

        def enqueue(session: Session, out: list[Outgoing], now: datetime) -> None:
            gateway.enqueue(session, out, now)
            gateway.notify_outbox()

        service = SchedulerService(gateway.db, gateway.ctx, enqueue, the_clock, settings.scheduler)
        service.start()
        app[SCHEDULER] = service
        try:
            yield
        finally:
            service.shutdown()

    async def config_watch_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_watch_config(app)) if start_workers and settings.path.endswith(".toml") else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(gateway_ctx)
    app.cleanup_ctx.append(scheduler_ctx)
    app.cleanup_ctx.append(config_watch_ctx)
    api.add_routes(app)
    metrics_api.add_routes(app)
    openapi.add_routes(app)
    # Opportunities, scores and rules reload; its cleanup ctx attaches the rules book to the gateway's ctx.
    opportunities_api.add_routes(app)
    if settings.platform_enabled("sandbox"):
        sandbox.add_routes(app)
    for _name, module in platform_modules(settings):
        module.add_routes(app)
    return app


CONFIG_POLL_SECONDS = 5.0


async def _watch_config(app: web.Application) -> None:
    """Reload the rules when leadbot.toml changes; a bad edit keeps the last good rules and
    the admins are told in chat why."""
    from bot.opportunities_api import reload_rules

    path = Path(app[SETTINGS].path)
    stamp = path.stat().st_mtime_ns if path.exists() else 0
    while True:
        await asyncio.sleep(CONFIG_POLL_SECONDS)
        try:
            current = path.stat().st_mtime_ns
        except OSError:
            continue
        if current == stamp:
            continue
        stamp = current
        ok, message = await reload_rules(app)
        log.info("leadbot.toml changed: rules %s", "reloaded" if ok else "kept (invalid edit)")
        gateway = app[GATEWAY]
        now = gateway.ctx.clock.now()
        text = ("规则已更新：" if ok else "leadbot.toml 的修改有误，仍在使用上一版规则：\n") + message

        def tell_admins(session: Session) -> None:
            admins = session.execute(select(Member).where(Member.role == "admin", Member.active.is_(True))).scalars()
            gateway.enqueue(session, [Outgoing(a.id, "text", f"config:{current}:{a.id}", text=text[:1500]) for a in admins], now)

        await gateway.db.run(tell_admins)
        gateway.notify_outbox()


def platform_modules(settings: Settings) -> list[tuple[str, object]]:
    """The platform modules enabled in ``settings``, imported."""
    return [(name, importlib.import_module(path)) for name, path in PLATFORM_MODULES.items() if settings.platform_enabled(name)]
