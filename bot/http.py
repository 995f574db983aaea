"""What the platform HTTP clients share: a lazily opened aiohttp session and JSON bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from cards.model import CHART_REFUSED, CHART_TOO_LARGE, Card

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


def parse_object(raw: bytes) -> dict[str, Any] | web.Response:
    """``raw`` as a JSON object, or a 400 saying why not."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: deeply nested arrays ("[[[[…") exhaust the decoder's stack.
        return error_response(400, "请求体不是合法的 JSON / body is not valid JSON")
    if not isinstance(data, dict):
        return error_response(400, "请求体应为 JSON 对象 / body must be a JSON object")
    return data


async def json_object_body(request: web.Request, max_body: int = MAX_JSON_BODY) -> dict[str, Any] | web.Response:
    """Read and parse a JSON-object request body; a ready 4xx response when it is not one."""
    raw = await read_body(request, max_body)
    return raw if isinstance(raw, web.Response) else parse_object(raw)


class ChartUploads:
    """Upload each card's chart once and remember the platform's id for it.

    Over the platform's size limit, or refused for good, the card goes without its chart
    and says so; a transient failure propagates, so the whole delivery is retried and
    nothing is shown half-done.
    """

    def __init__(self, platform: str, limits: Mapping[str, int], upload: Callable[[bytes], Awaitable[str]],
                 errors: tuple[type[Exception], ...], transient: Callable[[Any], bool]) -> None:
        # The limits table is read at each upload, so a changed limit applies at once.
        self.platform, self._limits, self._upload = platform, limits, upload
        self._errors, self._transient = errors, transient
        self._ids: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        """The id already uploaded for ``key`` (card updates keep their chart)."""
        return self._ids.get(key)

    def forget(self, key: str) -> None:
        """Drop what was remembered for ``key`` once it is delivered."""
        self._ids.pop(key, None)

    async def prepare(self, key: str, card: Card) -> tuple[Card, str | None]:
        """The card to render and its chart's platform id (None when it has no chart)."""
        if not card.image_png:
            return card, None
        if len(card.image_png) > self._limits[self.platform]:
            return card.without_image(CHART_TOO_LARGE), None
        media = self._ids.get(key)
        if media is None:
            try:
                media = await self._upload(card.image_png)
            except self._errors as exc:
                if self._transient(exc):
                    raise
                log.warning("%s refused the chart of %s (%s); card sent without it", self.platform, key, exc)
                return card.without_image(CHART_REFUSED), None
            self._ids[key] = media
        return card, media
