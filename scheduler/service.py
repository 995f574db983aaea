"""The in-process scheduler: APScheduler's AsyncIOScheduler ticking :func:`scheduler.scans.run_all`.

Wrapped the python-telegram-bot ``JobQueue`` way: one registry, an explicit
``Asia/Shanghai`` time zone, and an in-memory job store. The jobs keep no state of their
own: every tick reads what is due from the database, so a restart loses nothing and
several ``leadbot serve`` processes can tick side by side (rows are claimed with
``FOR UPDATE SKIP LOCKED``; alert keys are unique). APScheduler's shared SQL job store is
not multi-process safe and is deliberately not used.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from handlers.context import Clock, HandlerContext
from nlp.calendar import SHANGHAI
from scheduler.config import ScanSettings
from scheduler.scans import Enqueue, run_all
from store.db import Database

log = logging.getLogger("leadbot.scheduler")
JOB_ID = "leadbot-scans"


class SchedulerService:
    """Runs every scan every ``settings.interval_seconds`` while the server runs."""

    def __init__(self, db: Database, ctx: HandlerContext, enqueue: Enqueue, clock: Clock,
                 settings: ScanSettings | None = None) -> None:
        self.db = db
        self.ctx = ctx
        self.enqueue = enqueue
        self.clock = clock
        self.settings = settings or ScanSettings()
        self.last_counts: dict[str, int] = {}
        self.ticks = 0
        self._scheduler = AsyncIOScheduler(
            timezone=SHANGHAI,
            jobstores={"default": MemoryJobStore()},
            executors={"default": AsyncIOExecutor()},
            # A tick that overran simply merges with the next one.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    async def tick(self) -> dict[str, int]:
        """Run every scan once as of the clock's now (off the event loop)."""
        now: datetime = self.clock.now()
        counts = await asyncio.to_thread(run_all, self.db, self.ctx, now, self.enqueue, self.settings)
        self.last_counts, self.ticks = counts, self.ticks + 1
        if any(counts.values()):
            log.info("scan at %s: %s", now.isoformat(), counts)
        return counts

    async def _job(self) -> None:
        try:
            await self.tick()
        except Exception:
            log.exception("scheduler tick failed")

    def start(self) -> None:
        """Start ticking (call inside the running event loop); the first tick is immediate."""
        if self._scheduler.running:
            return
        self._scheduler.add_job(
            self._job, "interval", seconds=self.settings.interval_seconds, id=JOB_ID,
            replace_existing=True, next_run_time=datetime.now(SHANGHAI),
        )
        self._scheduler.start()

    @property
    def running(self) -> bool:
        """Whether the scheduler is started."""
        return bool(self._scheduler.running)

    def shutdown(self) -> None:
        """Stop ticking; a tick in progress finishes its transaction.

        AsyncIOScheduler stops on the event loop's next turn (call from the loop's thread).
        """
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
