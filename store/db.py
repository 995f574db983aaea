"""Engines, sessions and migrations.

SQLite (WAL, one writer at a time via ``BEGIN IMMEDIATE``) by default, PostgreSQL by URL.
Store functions are plain synchronous functions over a :class:`Session`; the async edge
runs them in a small thread pool with :meth:`Database.run`, so the event loop never
blocks on the database and every unit of work is one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

T = TypeVar("T")
Item = TypeVar("Item")
MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept the short forms people write (``postgresql://``) and pick our drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    """An engine with our per-backend settings."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _begin).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # A deferred transaction that later wants to write can fail with SQLITE_BUSY
            # without waiting; taking the write lock up front makes writers queue instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def alembic_config(url: str) -> AlembicConfig:
    """An Alembic config pointing at our migrations and ``url``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Apply every pending migration (``leadbot db upgrade``)."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions not yet applied to the database behind ``engine`` (empty when current)."""
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    heads = set(script.get_heads())
    if current == heads:
        return []
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in current]


class Database:
    """The engine plus a thread pool that runs store functions off the event loop."""

    def __init__(self, url: str, *, workers: int | None = None) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.is_sqlite = self.url.startswith("sqlite")
        # SQLite has one writer at a time: several threads would only take turns through
        # its sleeping busy handler, so one thread queues the work in order instead.
        workers = workers or (1 if self.is_sqlite else 8)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="leadbot-db")

    def session(self) -> Session:
        """A new session (the caller commits)."""
        return Session(self.engine, expire_on_commit=False)

    def transaction(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one transaction, synchronously: committed if it returns."""
        with self.session() as session:
            result = fn(session)
            session.commit()
            return result

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one transaction on the database thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.transaction, fn)

    def close(self) -> None:
        """Release connections and threads."""
        self._pool.shutdown(wait=True)
        self.engine.dispose()


log = logging.getLogger("leadbot.db")


class GroupCommit(Generic[Item, T]):
    """Many small writes, one transaction each batch: every caller awaits its own result.

    A transaction costs nearly the same for one row as for fifty (SQLite's single writer
    and its WAL sync, PostgreSQL's round trips and the shared locks a write takes), so
    under load the items that arrive while one batch is being written go together into
    the next. Nothing is acknowledged before its batch committed. When a batch fails,
    its items are retried one per transaction, so a bad item fails alone.

    ``apply(session, items)`` returns one result per item, in order.
    """

    def __init__(self, db: Database, apply: Callable[[Session, Sequence[Item]], Sequence[T]], *, max_batch: int = 32) -> None:
        self.db = db
        self.apply = apply
        self.max_batch = max_batch
        self._queue: list[tuple[Item, asyncio.Future[T]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> T:
        """Write ``item`` with whatever else is waiting; its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="group-commit")
        # A caller that goes away (client disconnect) must not cancel the batch its item is in.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            if len(batch) == 1:
                await self._one_by_one(batch)
                continue
            items = [item for item, _ in batch]
            try:
                results = await self.db.run(lambda s: self.apply(s, items))
            except Exception:
                log.warning("group commit of %d items failed; retrying them one per transaction", len(batch), exc_info=True)
                await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[tuple[Item, asyncio.Future[T]]]) -> None:
        for item, future in batch:
            try:
                result = (await self.db.run(lambda s, item=item: self.apply(s, [item])))[0]  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        """Wait until everything submitted is written (shutdown)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
