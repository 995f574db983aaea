"""The machinery every platform shares: inbox → handlers → outbox → delivery.

* :meth:`Gateway.ingest` is the fast path: the verified event is stored under its platform
  key (a redelivery is dropped) and only then may the platform be acknowledged.
* An event that needs slow work before it can be handled (a forwarded chat's messages to
  fetch, a voice note to transcribe) is stored ``incomplete`` before the ack; the
  completion worker runs the adapter's ``complete()`` from the stored row, retrying with
  backoff, and hands the result (or, when completion fails for good, the degraded event)
  to the dispatcher. A restart resumes what was incomplete.
* The dispatcher handles inbox rows one at a time, each in one transaction together with
  the outbox rows it produces, so an event is handled exactly once even across
  ``kill -9`` (pending rows are picked up again on start).
* The delivery worker drains the outbox through the platform adapters, with a lease so a
  second process never sends the same row concurrently, exponential backoff with jitter,
  per-recipient order, and a dead-letter state. Each send is counted against the
  adapter's declared ``rate_limits`` in the database, so the platforms' per-member
  limits hold for all processes together; a send over the limit waits (not a try).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from cards.model import Card, card_from_dict, card_to_dict
from handlers import router
from handlers.context import HandlerContext, Outgoing
from handlers.events import InboundEvent
from store import inbox, outbox, ratelimits
from store.db import Database
from store.models import CardHandle, InboxEvent, Member, OutboxMessage

log = logging.getLogger("leadbot.gateway")

LEASE = timedelta(seconds=60)
MAX_DELIVERY_ATTEMPTS = 8
# Transient failures are retried (backoff capped at 10 min) for at least this long.
KEEP_TRYING_FOR = timedelta(hours=6)
# Completion: a try leases its row this long; transient failures back off (2 s doubling,
# capped) until the event is this old, then it is handled in its degraded form: a member
# waiting for an answer is better served by "could not read it" than by silence.
COMPLETE_LEASE = timedelta(seconds=60)
# A try that outlived its lease would race another worker's: it is cut off well before.
COMPLETE_TIMEOUT_S = 45.0
COMPLETE_GIVE_UP_AFTER = timedelta(minutes=15)
COMPLETE_BACKOFF_CAP_S = 120.0
COMPLETE_BATCH = 8
# Rate-limit counters no rule can see any more are deleted this often (per process).
RATE_PRUNE_EVERY = timedelta(minutes=1)
# The delivery loop sleeps until the next message can be claimed, but at most this long
# (rows queued by code that does not wake it, e.g. another process that then died).
MAX_DELIVERY_SLEEP_S = 30.0
APOLOGY = "抱歉，处理您的消息时出了问题，已记录下来，管理员会跟进。您可以稍后再试一次。"


INGEST_BATCH = 256
_SET_HANDLE_PLATFORM = (
    update(CardHandle).where(CardHandle.card_id == bindparam("handle_card")).values(platform=bindparam("handle_platform"))
)


@dataclass
class _Pending:
    """An event waiting for the next group commit of the inbox."""

    platform: str
    event_key: str
    payload: str
    received_at: datetime
    future: asyncio.Future[int | None]
    incomplete: bool = False


def _record_batch(session: Session, batch: list[_Pending], is_sqlite: bool) -> list[int | None]:
    """Insert a batch of inbox rows in one statement; None for keys already stored (or repeated in the batch)."""
    first: dict[tuple[str, str], int] = {}
    for i, p in enumerate(batch):
        first.setdefault((p.platform, p.event_key), i)
    rows = [
        {"platform": p.platform, "event_key": p.event_key, "payload": p.payload,
         "status": "incomplete" if p.incomplete else "pending", "attempts": 0, "received_at": p.received_at,
         "complete_due_at": p.received_at if p.incomplete else None, "complete_attempts": 0}
        for i, p in enumerate(batch) if first[(p.platform, p.event_key)] == i
    ]
    dialect_insert = sqlite_insert if is_sqlite else pg_insert
    # One cached statement executed with a parameter list (SQLAlchemy's "insertmanyvalues"):
    # a .values(rows) statement would be compiled afresh for every batch size.
    stmt = (
        dialect_insert(InboxEvent)
        .on_conflict_do_nothing(index_elements=["platform", "event_key"])
        .returning(InboxEvent.id, InboxEvent.platform, InboxEvent.event_key)
    )
    stored = {(platform, key): int(row_id) for row_id, platform, key in session.execute(stmt, rows).all()}
    return [stored.get((p.platform, p.event_key)) if first[(p.platform, p.event_key)] == i else None for i, p in enumerate(batch)]


class DeliveryError(Exception):
    """A send that failed. ``retry_after`` overrides the backoff; ``permanent`` skips retries."""

    def __init__(self, reason: str, *, retry_after: float | None = None, permanent: bool = False, deferred: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent
        # Our own rate limiter said "not yet": nothing was attempted, so it is not a try.
        self.deferred = deferred


@dataclass(frozen=True)
class Delivered:
    """What a platform gave back for a sent card, to update it later."""

    platform_handle: str | None = None
    response_code: str | None = None
    handle_expires_at: datetime | None = None


def recipient_for(platform: str, member: Member) -> str | None:
    """The member's user id on ``platform`` (from leadbot.toml), or None."""
    return {
        "sandbox": member.id,
        "wecom": member.wecom_userid,
        "feishu": member.feishu_open_id,
        "dingtalk": member.dingtalk_userid,
    }.get(platform)


class CompletionError(Exception):
    """``complete()`` could not finish an event this time.

    ``permanent``: it never will (the message was recalled, access refused): the event is
    handled at once in its degraded form. Otherwise the gateway tries again with backoff
    (``retry_after`` overrides the step) and degrades only after
    :data:`COMPLETE_GIVE_UP_AFTER`. ``degraded`` is what the handlers should get then; by
    default the event as it was stored.
    """

    def __init__(self, reason: str, *, permanent: bool = False, degraded: InboundEvent | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.degraded = degraded
        self.retry_after = retry_after


class PlatformAdapter(Protocol):
    """One per platform, in ``bot/<platform>.py``.

    Optional:

    * ``async def complete(self, event: InboundEvent) -> InboundEvent`` (see
      :class:`CompletingAdapter`), for adapters that store some events ``incomplete``;
    * ``rate_limits: tuple[RateRule, ...]``: the platform's per-recipient send limits; the
      gateway counts every delivery against them, across processes, before ``deliver``;
    * ``def sends_for(self, msg, card, handle) -> int``: how many platform messages this
      delivery sends (default 1; 0 sends none that count), when it can be more than one.
    """

    name: str

    async def deliver(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> Delivered:
        """Send one outbox message; raise :class:`DeliveryError` on failure."""
        ...


class CompletingAdapter(PlatformAdapter, Protocol):
    """An adapter whose events may need slow work after the ack (``ingest(..., incomplete=True)``)."""

    async def complete(self, event: InboundEvent) -> InboundEvent:
        """The event ready for the handlers, built from the stored one.

        Called from the stored row, possibly in another process or after a restart, and
        possibly more than once for one event (a lease ran out): it must only read from the
        platform. Raise :class:`CompletionError` when it cannot finish.
        """
        ...


class Gateway:
    """Inbox, dispatcher and delivery worker of one process."""

    def __init__(self, db: Database, ctx: HandlerContext, adapters: Iterable[PlatformAdapter]) -> None:
        self.db = db
        self.ctx = ctx
        self.adapters: dict[str, PlatformAdapter] = {a.name: a for a in adapters}
        self._inbox_wakeup = asyncio.Event()
        self._complete_wakeup = asyncio.Event()
        self._ingest_queue: list[_Pending] = []
        self._ingest_writer: asyncio.Task[None] | None = None
        self._outbox_wakeup = asyncio.Event()
        self._processed: dict[int, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random()
        self._rate_pruned_at: datetime | None = None
        self.poll_seconds = 1.0
        # Card clicks are answered in-line when handled within this time (platforms allow ~3 s).
        self.inline_answer_seconds = 2.5

    # ---------------------------------------------------------------- fast path
    async def ingest(self, event_key: str, event: InboundEvent, *, incomplete: bool = False) -> int | None:
        """Store ``event`` durably; the inbox id, or None for a duplicate. Ack only after this.

        ``incomplete``: the adapter's ``complete()`` must run before the handlers see the
        event; ``event`` itself is what they get if completion fails for good, so store it
        in a form they can answer.

        Group commit: callbacks arriving while a transaction is being written wait for the
        next one, so one commit (one fsync, one trip to the database thread) covers many
        requests and every caller still returns only once its row is durable.
        """
        if incomplete and not callable(getattr(self.adapters.get(event.platform), "complete", None)):
            raise TypeError(f"adapter {event.platform} has no complete(); cannot store an incomplete event")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int | None] = loop.create_future()
        self._ingest_queue.append(_Pending(event.platform, event_key, event.to_json(), event.received_at, fut, incomplete))
        if self._ingest_writer is None or self._ingest_writer.done():
            self._ingest_writer = asyncio.create_task(self._write_ingested(), name="leadbot-ingest")
        row_id = await fut
        if row_id is not None:
            (self._complete_wakeup if incomplete else self._inbox_wakeup).set()
        return row_id

    async def _write_ingested(self) -> None:
        while self._ingest_queue:
            batch = self._ingest_queue[:INGEST_BATCH]
            del self._ingest_queue[:INGEST_BATCH]
            try:
                ids = await self.db.run(lambda s: _record_batch(s, batch, self.db.is_sqlite))
            except Exception as exc:  # noqa: BLE001 - every waiter learns it was not stored
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, row_id in zip(batch, ids):
                if not p.future.done():
                    p.future.set_result(row_id)

    async def wait_handled(self, inbox_id: int, timeout: float) -> bool:
        """Wait until this process has handled ``inbox_id`` (for card clicks that answer in-line)."""
        ev = self._processed.setdefault(inbox_id, asyncio.Event())
        try:
            await asyncio.wait_for(ev.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self._processed.pop(inbox_id, None)

    # ---------------------------------------------------------------- completion
    async def complete_due(self, limit: int = COMPLETE_BATCH) -> int:
        """Run ``complete()`` for incomplete events that are due; how many became ready to handle.

        The adapters work outside any transaction (they call platform APIs); each row is
        leased while they do, so a second process leaves it alone, and a process killed
        mid-way leaves a lease that simply runs out.
        """
        now = self.ctx.clock.now()
        rows = await self.db.run(lambda s: inbox.claim_incomplete(s, now, limit, COMPLETE_LEASE, skip_locked=not self.db.is_sqlite))
        if not rows:
            return 0
        results = await asyncio.gather(*(self._complete_one(row) for row in rows))
        ready = sum(results)
        if ready:
            self._inbox_wakeup.set()
        return ready

    async def _complete_one(self, row: InboxEvent) -> bool:
        assert row.id is not None
        row_id = row.id
        try:
            stored = InboundEvent.from_json(row.payload)
        except (ValueError, TypeError, KeyError) as exc:
            # The dispatcher records an unreadable payload as failed, visibly.
            reason = f"unreadable payload: {exc}"
            await self.db.run(lambda s: inbox.mark_completed(s, row_id, row.payload, reason))
            return True
        complete = getattr(self.adapters.get(row.platform), "complete", None)
        error: CompletionError
        try:
            if not callable(complete):
                raise CompletionError(f"platform {row.platform} cannot complete events (not enabled?)", permanent=True)
            event: InboundEvent = await asyncio.wait_for(complete(stored), COMPLETE_TIMEOUT_S)
        except CompletionError as exc:
            error = exc
        except asyncio.TimeoutError:
            error = CompletionError(f"no answer within {COMPLETE_TIMEOUT_S:.0f} s")
        except Exception as exc:  # noqa: BLE001 - an adapter bug is retried, then degraded, never lost
            log.exception("completing inbox %s (%s) crashed", row_id, row.platform)
            error = CompletionError(f"{type(exc).__name__}: {exc}")
        else:
            return await self.db.run(lambda s: inbox.mark_completed(s, row_id, event.to_json()))
        now = self.ctx.clock.now()
        step = outbox.backoff(row.complete_attempts + 1, cap_s=COMPLETE_BACKOFF_CAP_S, jitter=self._rng.random())
        retry_at = now + (timedelta(seconds=error.retry_after) if error.retry_after is not None else step)
        if not error.permanent and retry_at - row.received_at < COMPLETE_GIVE_UP_AFTER:
            log.warning("completing inbox %s failed (try %d), again at %s: %s", row_id, row.complete_attempts + 1,
                        retry_at.isoformat(timespec="seconds"), error.reason)
            await self.db.run(lambda s: inbox.retry_completion(s, row_id, error.reason, retry_at))
            return False
        log.warning("completing inbox %s failed for good, handled degraded: %s", row_id, error.reason)
        degraded = error.degraded or stored
        # Handlers can tell a degraded event from a complete one, and say so to the member.
        degraded = replace(degraded, extra={**degraded.extra, "completion_error": error.reason[:200]})
        return await self.db.run(lambda s: inbox.mark_completed(s, row_id, degraded.to_json(), error.reason))

    # ---------------------------------------------------------------- dispatcher
    def _process_one(self, session: Session) -> int | None:
        row = inbox.claim_next(session, skip_locked=not self.db.is_sqlite)
        if row is None:
            return None
        assert row.id is not None
        now = self.ctx.clock.now()
        cause = f"in:{row.platform}:{row.id}"
        try:
            event = InboundEvent.from_json(row.payload)
        except (ValueError, TypeError, KeyError) as exc:
            inbox.mark_attempt_failed(session, row.id, f"unreadable payload: {exc}", now)
            row.status = "failed"
            return row.id
        try:
            with session.begin_nested():
                out = router.handle(session, event, self.ctx, cause)
                self._enqueue(session, out, event, now)
                inbox.mark_done(session, row.id, now)
        except Exception as exc:  # noqa: BLE001 - any handler bug must not lose the event
            log.exception("handler failed for inbox %s (%s)", row.id, type(exc).__name__)
            gave_up = inbox.mark_attempt_failed(session, row.id, f"{type(exc).__name__}: {exc}", now)
            if gave_up:
                member = router.identify(session, event)
                apology = Outgoing(member.id if member else "", "text", f"{cause}:apology", text=APOLOGY,
                                   platform=event.platform, recipient=None if member else event.platform_user)
                self._enqueue(session, [apology], event, now)
        return row.id

    async def dispatch_pending(self) -> int:
        """Handle every pending inbox row; returns how many were handled."""
        count = 0
        while True:
            row_id = await self.db.run(self._process_one)
            if row_id is None:
                if count:
                    # Once per batch: the delivery worker claims everything queued so far.
                    self._outbox_wakeup.set()
                return count
            count += 1
            ev = self._processed.get(row_id)
            if ev is not None:
                ev.set()

    def enqueue(self, session: Session, out: Iterable[Outgoing], now: datetime) -> None:
        """Queue handler output produced outside an inbound event (API intake, scheduler)."""
        self._enqueue(session, out, None, now)

    def _enqueue(self, session: Session, out: Iterable[Outgoing], event: InboundEvent | None, now: datetime) -> None:
        # Who sent the event, looked up once: their replies go back to the same platform.
        sender = router.identify(session, event) if event is not None and event.platform_user else None
        for o in out:
            platform, recipient, member_id = self._route(session, o, event, sender)
            payload: dict[str, object] = {"text": o.text}
            if o.card is not None:
                payload["card"] = card_to_dict(o.card)
            status_error = None
            if platform is None or recipient is None:
                status_error = "成员在已启用的平台上没有账号 / member has no account on an enabled platform"
            queued = outbox.enqueue(
                session, platform=platform or "-", recipient=recipient or "-", member_id=member_id,
                kind=o.kind, payload=json.dumps(payload, ensure_ascii=False), dedupe_key=o.dedupe_key,
                now=now, card_id=o.card_id,
            )
            if queued and status_error:
                # Kept as a dead letter so an admin sees what could not be delivered.
                session.execute(
                    update(OutboxMessage).where(OutboxMessage.dedupe_key == o.dedupe_key).values(status="dead", last_error=status_error)
                )
            if queued and o.kind == "card" and o.card_id and platform:
                # One statement, no load: the handle is usually flushed and gone from the session
                # (a handle still in it is updated in memory too).
                session.execute(_SET_HANDLE_PLATFORM, {"handle_card": o.card_id, "handle_platform": platform})

    def _route(self, session: Session, o: Outgoing, event: InboundEvent | None, sender: Member | None) -> tuple[str | None, str | None, str | None]:
        if o.recipient is not None and o.platform is not None:
            return o.platform, o.recipient, o.member_id or None
        member = session.get(Member, o.member_id) if o.member_id else None
        if member is None:
            return None, None, o.member_id or None
        preferred: list[str] = []
        if o.platform:
            preferred.append(o.platform)
        elif o.kind == "card_update" and o.card_id:
            handle = session.get(CardHandle, o.card_id)
            if handle is not None and handle.platform:
                preferred.append(handle.platform)
        if event is not None and sender is not None and sender.id == member.id:
            preferred.append(event.platform)
        if member.preferred_platform:
            preferred.append(member.preferred_platform)
        preferred += [p for p in ("wecom", "feishu", "dingtalk", "sandbox") if p not in preferred]
        for name in preferred:
            if name not in self.ctx.enabled_platforms:
                continue
            recipient = recipient_for(name, member)
            if recipient:
                return name, recipient, member.id
        return None, None, member.id

    # ---------------------------------------------------------------- delivery
    def _claim(self, session: Session, now: datetime, limit: int) -> list[OutboxMessage]:
        rows = outbox.claim_due(session, now, limit, skip_locked=not self.db.is_sqlite)
        for row in rows:
            # The lease: another worker will not pick this row up until it expires.
            row.next_attempt_at = now + LEASE
            session.add(row)
        return rows

    async def deliver_due(self, limit: int = 100) -> int:
        """Deliver what is due now; returns how many were sent."""
        now = self.ctx.clock.now()
        rows = await self.db.run(lambda s: self._claim(s, now, limit))
        if not rows:
            return 0
        by_recipient: dict[tuple[str, str], list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            by_recipient[(row.platform, row.recipient)].append(row)
        results = await asyncio.gather(*(self._deliver_in_order(msgs) for msgs in by_recipient.values()))
        return sum(results)

    async def _deliver_in_order(self, msgs: list[OutboxMessage]) -> int:
        sent = 0
        for i, msg in enumerate(msgs):
            ok = await self._deliver_one(msg)
            if not ok:
                # Keep per-person order: the rest wait until the failed one went out.
                rest = [m.id for m in msgs[i + 1 :]]
                if rest:
                    retry_at = self.ctx.clock.now() + timedelta(seconds=1)
                    await self.db.run(lambda s: s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(rest)).values(next_attempt_at=retry_at)))
                break
            sent += 1
        return sent

    async def _deliver_one(self, msg: OutboxMessage) -> bool:
        adapter = self.adapters.get(msg.platform)
        payload = json.loads(msg.payload)
        card = card_from_dict(payload["card"]) if payload.get("card") else None
        handle = await self.db.run(lambda s: s.get(CardHandle, msg.card_id) if msg.card_id else None)
        try:
            if adapter is None:
                raise DeliveryError(f"platform {msg.platform} is not enabled", permanent=True)
            wait = await self._rate_wait(adapter, msg, card, handle)
            if wait > 0:
                raise DeliveryError(f"per-recipient rate limit of {msg.platform} / 发送频率限制", retry_after=wait, deferred=True)
            result = await adapter.deliver(msg, card, handle)
        except DeliveryError as exc:
            await self._record_failure(msg, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - a bug in an adapter must not kill the worker
            log.exception("adapter %s crashed delivering outbox %s", msg.platform, msg.id)
            await self._record_failure(msg, DeliveryError(f"{type(exc).__name__}: {exc}"))
            return False
        now = self.ctx.clock.now()

        def done(session: Session) -> None:
            row = session.get(OutboxMessage, msg.id)
            if row is None:
                return
            outbox.mark_sent(session, row, now)
            if msg.card_id and (result.platform_handle or result.response_code):
                h = session.get(CardHandle, msg.card_id)
                if h is not None:
                    h.platform = msg.platform
                    h.platform_handle = result.platform_handle or h.platform_handle
                    h.response_code = result.response_code or h.response_code
                    h.handle_expires_at = result.handle_expires_at or h.handle_expires_at
                    session.add(h)

        await self.db.run(done)
        return True

    async def _rate_wait(self, adapter: PlatformAdapter, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> float:
        """Count this delivery against the platform's limits: 0.0, or the seconds to wait."""
        rules: tuple[ratelimits.RateRule, ...] = tuple(getattr(adapter, "rate_limits", ()))
        if not rules:
            return 0.0
        sends_for = getattr(adapter, "sends_for", None)
        cost = int(sends_for(msg, card, handle)) if callable(sends_for) else 1
        if cost <= 0:
            return 0.0
        now = self.ctx.clock.now()
        prune = self._rate_pruned_at is None or now - self._rate_pruned_at >= RATE_PRUNE_EVERY
        if prune:
            self._rate_pruned_at = now
        platform, recipient = msg.platform, msg.recipient

        def check(session: Session) -> float:
            if prune:
                ratelimits.prune(session, now)
            return ratelimits.acquire(session, platform, recipient, rules, now, cost=cost)

        return await self.db.run(check)

    async def _record_failure(self, msg: OutboxMessage, exc: DeliveryError) -> None:
        now = self.ctx.clock.now()
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else outbox.backoff(msg.attempts + 1, jitter=self._rng.random())
        attempts = MAX_DELIVERY_ATTEMPTS if not exc.permanent else msg.attempts + 1
        if not exc.deferred:
            log.warning("delivery of outbox %s to %s failed: %s", msg.id, msg.platform, exc.reason)

        def fail(session: Session) -> None:
            row = session.get(OutboxMessage, msg.id)
            if row is None:
                return
            if exc.deferred:
                row.next_attempt_at = now + delay
                session.add(row)
            else:
                keep = timedelta(0) if exc.permanent else KEEP_TRYING_FOR
                outbox.mark_retry(session, row, exc.reason, now + delay, max_attempts=attempts, keep_trying_for=keep)

        await self.db.run(fail)

    # ---------------------------------------------------------------- lifecycle
    async def drain(self, rounds: int = 20) -> None:
        """Complete, handle and deliver until nothing is left that is due now (tests and CLI use this)."""
        for _ in range(rounds):
            completed = await self.complete_due()
            handled = await self.dispatch_pending()
            sent = await self.deliver_due()
            if not completed and not handled and not sent:
                return

    async def _completion_loop(self) -> None:
        while True:
            self._complete_wakeup.clear()
            try:
                while await self.complete_due():
                    pass
            except Exception:  # noqa: BLE001 - keep the loop alive; the rows stay incomplete
                log.exception("completion round failed")
            try:
                await asyncio.wait_for(self._complete_wakeup.wait(), self.poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def _dispatcher_loop(self) -> None:
        while True:
            try:
                await self.dispatch_pending()
            except Exception:  # noqa: BLE001 - keep the loop alive; the row stays pending
                log.exception("dispatcher round failed")
            self._inbox_wakeup.clear()
            try:
                await asyncio.wait_for(self._inbox_wakeup.wait(), self.poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def _idle_seconds(self) -> float:
        """How long the delivery worker may sleep: until the next row can be claimed."""
        due = await self.db.run(outbox.next_due)
        if due is None:
            return self.poll_seconds
        # Rows that are all waiting (rate limit, backoff, another worker's lease) are not
        # polled every second; a short floor keeps a just-due row from busy-looping.
        return min(MAX_DELIVERY_SLEEP_S, max(0.05, (due - self.ctx.clock.now()).total_seconds()))

    async def _delivery_loop(self) -> None:
        while True:
            self._outbox_wakeup.clear()
            sleep_s = self.poll_seconds
            try:
                while await self.deliver_due():
                    pass
                sleep_s = await self._idle_seconds()
            except Exception:  # noqa: BLE001
                log.exception("delivery round failed")
            try:
                await asyncio.wait_for(self._outbox_wakeup.wait(), sleep_s)
            except asyncio.TimeoutError:
                pass

    def notify_outbox(self) -> None:
        """Something was queued outside the dispatcher: wake the delivery worker."""
        self._outbox_wakeup.set()

    def start(self) -> None:
        """Start the dispatcher and delivery worker tasks."""
        self._tasks = [
            asyncio.create_task(self._completion_loop(), name="leadbot-completion"),
            asyncio.create_task(self._dispatcher_loop(), name="leadbot-dispatcher"),
            asyncio.create_task(self._delivery_loop(), name="leadbot-delivery"),
        ]

    async def stop(self) -> None:
        """Stop the workers; what they had not finished stays in the database."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []


def inbox_counts(session: Session) -> dict[str, int]:
    """Inbox rows by status, for /metrics."""
    from sqlalchemy import func, select

    rows = session.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status)).all()
    return {status: int(n) for status, n in rows}
