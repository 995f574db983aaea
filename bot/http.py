"""What the platform HTTP clients share: a lazily opened aiohttp session and JSON bodies."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


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
