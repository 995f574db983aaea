"""What the platform HTTP clients share: a lazily opened aiohttp session and JSON bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

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
