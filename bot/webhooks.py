"""Signed outbound webhooks: the delivery side of ``[[webhooks]]`` (see handlers/webhooks.py).

The gateway treats a webhook as a platform called ``webhook`` whose recipients are the
webhook names, so events get the outbox's guarantees: queued with the change, retried
with backoff (``Retry-After`` honoured), delivered in order per webhook, dead-lettered on
a permanent refusal. Each POST carries::

    X-Leadbot-Event:      stage_changed | contract_signed | ticket_escalated
    X-Leadbot-Delivery:   the event id (the same on every retry: receivers dedupe on it)
    X-Leadbot-Timestamp:  Unix seconds when this attempt was signed
    X-Leadbot-Signature:  sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))

2xx is delivered; 408, 429 and 5xx, timeouts and connection errors are retried; any other
status is permanent (a dead letter on /metrics, visible to the admin).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.gateway import Delivered, DeliveryError
from cards.model import Card
from handlers.context import Clock, HandlerContext
from handlers.webhooks import PLATFORM, Webhook, apply_mapping, dumps
from store.models import CardHandle, OutboxMessage

log = logging.getLogger("leadbot.webhooks")

SIGNATURE_PREFIX = "sha256="
# Receivers should refuse signatures older than this (replays of a captured request).
DEFAULT_TOLERANCE_SECONDS = 300
RETRYABLE = frozenset({408, 429})
MAX_RETRY_AFTER = 3600.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: datetime,
           tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """What a receiver does: a fresh timestamp and a signature over exactly ``body``."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), capped; None when absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


class WebhookAdapter:
    """POSTs queued events to their webhook, mapped and signed."""

    name = PLATFORM

    def __init__(self, webhooks: Sequence[Webhook], clock: Clock) -> None:
        self.webhooks = {w.name: w for w in webhooks}
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session (one connection pool for every webhook)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30, connect=5),
                headers={"User-Agent": "leadbot-webhook/1"},
            )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def request_for(self, hook: Webhook, event_text: str) -> tuple[bytes, dict[str, str]]:
        """The body (mapped, stable JSON) and headers (signed now) of one attempt."""
        payload: dict[str, Any] = json.loads(event_text)
        body = dumps(apply_mapping(payload, hook.mapping)).encode("utf-8")
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Leadbot-Event": str(payload.get("kind", "")),
            "X-Leadbot-Delivery": str(payload.get("event_id", "")),
            "X-Leadbot-Timestamp": timestamp,
            "X-Leadbot-Signature": sign(hook.secret, timestamp, body),
        }
        return body, headers

    async def deliver(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> Delivered:
        """POST one event; raise :class:`DeliveryError` (retry or permanent) on failure."""
        hook = self.webhooks.get(msg.recipient)
        if hook is None:
            raise DeliveryError(f"webhook `{msg.recipient}` 已不在配置中 / no longer configured", permanent=True)
        try:
            event_text = json.loads(msg.payload)["text"]
            body, headers = self.request_for(hook, event_text)
        except (ValueError, KeyError, TypeError) as exc:
            raise DeliveryError(f"unreadable webhook payload: {type(exc).__name__}", permanent=True) from None
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with self._session.post(hook.url, data=body, headers=headers, allow_redirects=False,
                                          timeout=aiohttp.ClientTimeout(total=hook.timeout_seconds)) as resp:
                status = resp.status
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"), self.clock.now())
                await resp.read()  # release the connection back to the pool
        except TimeoutError:
            raise DeliveryError(f"webhook {hook.name}: timed out after {hook.timeout_seconds:g}s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"webhook {hook.name}: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return Delivered(response_code=str(status))
        reason = f"webhook {hook.name}: HTTP {status}"
        if status >= 500 or status in RETRYABLE:
            raise DeliveryError(reason, retry_after=retry_after if status in (429, 503) else None)
        raise DeliveryError(reason, permanent=True)


def create_adapter(settings: Any, db: Any, ctx: HandlerContext) -> WebhookAdapter:
    """The adapter for ``settings.webhooks`` (bot.app adds it when any webhook is configured)."""
    return WebhookAdapter(settings.webhooks, ctx.clock)
