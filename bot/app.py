"""The application factory: one cleanup context per resource, so a failed start cleans up
exactly what started."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from bot import api, sandbox
from bot.config import Settings
from bot.gateway import Gateway, PlatformAdapter
from bot.keys import DATABASE, GATEWAY, SETTINGS
from handlers.context import Clock, HandlerContext, SystemClock
from store.db import Database, pending_migrations
from store.org import MemberRow, RegionRow, sync_org

log = logging.getLogger("leadbot")


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
        )
        for m in settings.members
    ]
    return regions, members


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    start_workers: bool = True,
    extra_adapters: Callable[[Database, HandlerContext], list[PlatformAdapter]] | None = None,
) -> web.Application:
    """Build the aiohttp application for ``settings``.

    ``start_workers=False`` leaves the dispatcher and delivery worker to the caller
    (tests drive them with :meth:`Gateway.drain`).
    """
    app = web.Application(client_max_size=1024 * 1024)
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
        enabled = tuple(name for name in settings.platforms if settings.platform_enabled(name))
        ctx = HandlerContext(clock=the_clock, secret=settings.secret, accept_within_hours=settings.accept_within_hours, enabled_platforms=enabled)
        adapters: list[PlatformAdapter] = []
        if settings.platform_enabled("sandbox"):
            adapters.append(sandbox.SandboxAdapter(db, the_clock))
        if extra_adapters is not None:
            adapters += extra_adapters(db, ctx)
        gateway = Gateway(db, ctx, adapters)
        app[GATEWAY] = gateway
        if start_workers:
            gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(gateway_ctx)
    api.add_routes(app)
    if settings.platform_enabled("sandbox"):
        sandbox.add_routes(app)
    return app
