"""What the platform HTTP clients share: a lazily opened aiohttp session and JSON bodies."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import delete, select
from sqlmodel import Session, col

from cards.model import CHART_REFUSED, CHART_TOO_LARGE, Card
from handlers.context import Clock
from store.db import Database
from store.models import ChartUpload, OutboxMessage

log = logging.getLogger("leadbot.charts")


class LazyHttp:
    """An aiohttp session opened on first use (inside the running loop) and closed with its client."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (re-opened if it was closed)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or {} for an empty, non-JSON or non-object body."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


MAX_JSON_BODY = 64 * 1024


def error_response(status: int, reason: str, **extra: Any) -> web.Response:
    """A 4xx with a reason a person can act on (Chinese / English)."""
    return web.json_response({"error": reason, **extra}, status=status)


async def read_body(request: web.Request, max_body: int = MAX_JSON_BODY) -> bytes | web.Response:
    """The raw body, or a 413 when it is larger than ``max_body``."""
    if request.content_length is not None and request.content_length > max_body:
        return error_response(413, "请求体过大 / body too large")
    raw = await request.content.read(max_body + 1)
    if len(raw) > max_body:
        return error_response(413, "请求体过大 / body too large")
    return raw


# Ids are INTEGER columns on PostgreSQL: a larger number cannot name a row, and asking the
# database about it fails (SQLite cannot even bind it) instead of finding nothing.
MAX_ID = 2**31 - 1


def path_id(raw: str) -> int | None:
    """An id from a URL path: ASCII digits only, else None (a 400); beyond MAX_ID it is 0,
    which no row has (a 404)."""
    # isascii: "²".isdigit() is true, but int("²") raises.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    value = int(raw)
    return value if value <= MAX_ID else 0


def storable(value: str) -> bool:
    """Text a database can hold: PostgreSQL refuses NUL, and a lone surrogate (JSON's
    ``"\\ud800"``) cannot be encoded at all."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


UNSTORABLE = "含有无法保存的字符（NUL 或不成对的代理项）/ text holds NUL or a lone surrogate"


def _unstorable_at(value: Any, path: str) -> str | None:
    """The path of the first string in ``value`` that no database could store, if any."""
    if isinstance(value, str):
        return None if storable(value) else path or "body"
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not storable(str(key)):
                return path or "body"
            found = _unstorable_at(item, where)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _unstorable_at(item, f"{path}[{i}]")
            if found:
                return found
    return None


def parse_object(raw: bytes) -> dict[str, Any] | web.Response:
    """``raw`` as a JSON object, or a 400 saying why not.

    Strings no database can store are refused here, for every JSON endpoint at once, so
    no handler fails on them later (and nothing half-written is left behind)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: deeply nested arrays ("[[[[…") exhaust the decoder's stack.
        return error_response(400, "请求体不是合法的 JSON / body is not valid JSON")
    if not isinstance(data, dict):
        return error_response(400, "请求体应为 JSON 对象 / body must be a JSON object")
    try:
        bad = _unstorable_at(data, "")
    except RecursionError:
        return error_response(400, "请求体嵌套过深 / body is nested too deeply")
    if bad is not None:
        return error_response(400, f"{bad}: {UNSTORABLE}", fields={bad.split(".")[0].split("[")[0]: UNSTORABLE})
    return data


async def json_object_body(request: web.Request, max_body: int = MAX_JSON_BODY) -> dict[str, Any] | web.Response:
    """Read and parse a JSON-object request body; a ready 4xx response when it is not one."""
    raw = await read_body(request, max_body)
    return raw if isinstance(raw, web.Response) else parse_object(raw)


# Charts uploaded for a card are kept this long (Feishu cards can be updated for 14 days,
# and an update keeps its chart).
CHART_RECORDS_KEPT = timedelta(days=30)
# A media id this close to its expiry is uploaded afresh rather than sent.
CHART_EXPIRY_MARGIN = timedelta(minutes=10)


def _own_record(session: Session, msg: OutboxMessage) -> ChartUpload | None:
    """The chart record of ``msg``, if there is one."""
    rec = session.get(ChartUpload, msg.id)
    if rec is not None and (rec.platform != msg.platform or rec.created_at < msg.created_at):
        # Older than the message itself: a record of a pruned message whose id SQLite
        # handed out again. Nothing in it is about this delivery.
        session.delete(rec)
        session.flush()
        return None
    return rec


class ChartUploads:
    """Upload each card's chart once and remember the platform's id for it, in the database.

    A record per outbox message (:class:`store.models.ChartUpload`) keeps the media id and
    which parts of the delivery already went out, so a delivery retried after a failure or
    resumed after a restart reuses the upload while it is valid and does not resend a part.
    Over the platform's size limit, or refused for good, the card goes without its chart
    and says so; a transient failure propagates, so the whole delivery is retried and
    nothing is shown half-done.
    """

    def __init__(self, platform: str, limits: Mapping[str, int], upload: Callable[[bytes], Awaitable[str]],
                 errors: tuple[type[Exception], ...], transient: Callable[[Any], bool], *,
                 db: Database, clock: Clock, valid_for: timedelta | None = None) -> None:
        # The limits table is read at each upload, so a changed limit applies at once.
        self.platform, self._limits, self._upload = platform, limits, upload
        self._errors, self._transient = errors, transient
        self.db, self.clock, self.valid_for = db, clock, valid_for
        # card id -> (media id, expiry): saves a database read for card updates.
        self._by_card: dict[str, tuple[str, datetime | None]] = {}

    def _usable(self, expires_at: datetime | None, now: datetime) -> bool:
        return expires_at is None or expires_at - now > CHART_EXPIRY_MARGIN

    async def get(self, card_id: str) -> str | None:
        """The chart id last uploaded for card ``card_id`` and still valid (card updates keep their chart)."""
        now = self.clock.now()
        cached = self._by_card.get(card_id)
        if cached is not None and self._usable(cached[1], now):
            return cached[0]

        def latest(session: Session) -> tuple[str, datetime | None] | None:
            row = session.execute(
                select(col(ChartUpload.media_id), col(ChartUpload.expires_at))
                .where(col(ChartUpload.platform) == self.platform, col(ChartUpload.card_id) == card_id,
                       col(ChartUpload.media_id).is_not(None))
                .order_by(col(ChartUpload.created_at).desc()).limit(1)
            ).first()
            return (str(row[0]), row[1]) if row is not None else None

        found = await self.db.run(latest)
        if found is None or not self._usable(found[1], now):
            return None
        self._by_card[card_id] = found
        return found[0]

    async def prepare(self, msg: OutboxMessage, card: Card) -> tuple[Card, str | None]:
        """The card to render and its chart's platform id (None when it has no chart)."""
        if not card.image_png:
            return card, None
        if len(card.image_png) > self._limits[self.platform]:
            return card.without_image(CHART_TOO_LARGE), None
        assert msg.id is not None
        outbox_id, card_id = msg.id, msg.card_id
        digest = hashlib.sha256(card.image_png).hexdigest()
        now = self.clock.now()

        def reusable(session: Session) -> tuple[str, datetime | None, bool] | None:
            # This delivery's own upload, or the same picture uploaded for the same card.
            mine = _own_record(session, msg)
            candidates = [mine] if mine is not None else []
            if card_id:
                candidates += session.execute(
                    select(ChartUpload).where(col(ChartUpload.platform) == self.platform, col(ChartUpload.card_id) == card_id,
                                              col(ChartUpload.image_sha256) == digest)
                    .order_by(col(ChartUpload.created_at).desc()).limit(1)
                ).scalars().all()
            for rec in candidates:
                if rec.media_id and rec.image_sha256 == digest and self._usable(rec.expires_at, now):
                    return rec.media_id, rec.expires_at, rec is mine
            return None

        found = await self.db.run(reusable)
        if found is None:
            try:
                media = await self._upload(card.image_png)
            except self._errors as exc:
                if self._transient(exc):
                    raise
                log.warning("%s refused the chart of %s (%s); card sent without it", self.platform, card_id or outbox_id, exc)
                return card.without_image(CHART_REFUSED), None
            expires = now + self.valid_for if self.valid_for is not None else None
        else:
            media, expires, own = found
            if own:
                return card, media  # recorded when it was uploaded

        def remember(session: Session) -> None:
            rec = _own_record(session, msg)
            if rec is None:
                rec = ChartUpload(outbox_id=outbox_id, platform=self.platform, card_id=card_id, created_at=now, updated_at=now)
                # Old records go as new ones come: the table stays small without a job.
                session.execute(delete(ChartUpload).where(col(ChartUpload.created_at) < now - CHART_RECORDS_KEPT))
            if rec.media_id != media:
                rec.media_id, rec.image_sha256, rec.expires_at, rec.updated_at = media, digest, expires, now
                session.add(rec)

        await self.db.run(remember)
        if card_id:
            self._by_card.pop(card_id, None)
        return card, media

    async def sent_parts(self, msg: OutboxMessage) -> dict[str, dict[str, Any]]:
        """What this delivery already sent (``{part: info}``), from before a failure or a restart."""
        rec = await self.db.run(lambda s: _own_record(s, msg))
        if rec is None:
            return {}
        parts = json_object(rec.parts_json.encode())
        return {k: v for k, v in parts.items() if isinstance(v, dict)}

    async def mark_part_sent(self, msg: OutboxMessage, part: str, info: dict[str, Any]) -> None:
        """Record durably that ``part`` of this delivery went out, before sending the next one."""
        assert msg.id is not None
        outbox_id, card_id, now = msg.id, msg.card_id, self.clock.now()

        def mark(session: Session) -> None:
            rec = _own_record(session, msg) or ChartUpload(
                outbox_id=outbox_id, platform=self.platform, card_id=card_id, created_at=now, updated_at=now)
            parts = json_object(rec.parts_json.encode()) if rec.parts_json else {}
            parts[part] = info
            rec.parts_json, rec.updated_at = json.dumps(parts, ensure_ascii=False), now
            session.add(rec)

        await self.db.run(mark)

