"""Platform handles of cards we sent: what a later update needs (WeCom ``response_code``).

A WeCom ``response_code`` works once and for 72 hours; a send returns one and every click
callback brings a fresh one. The click's code is stored here at ingest time (before the
platform is acknowledged), so the card update that the click causes can use it.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from store.models import CardHandle


def _ensure(session: Session, card_id: str, platform: str, member_id: str, now: datetime) -> CardHandle:
    handle = session.get(CardHandle, card_id)
    if handle is None:
        # Cards that handlers send without a handle (a follow-up question card) still
        # need one to be updatable on the platform.
        handle = CardHandle(
            card_id=card_id, platform=platform, member_id=member_id, subject="", state="open",
            card_json=json.dumps({}), created_at=now, updated_at=now,
        )
        session.add(handle)
        session.flush()
    return handle


def record_response_code(
    session: Session, card_id: str, response_code: str, expires_at: datetime, now: datetime,
    *, platform: str, member_id: str = "", platform_handle: str | None = None,
) -> None:
    """Remember the newest ``response_code`` for ``card_id`` (creating the handle if needed)."""
    handle = _ensure(session, card_id, platform, member_id, now)
    handle.platform = platform
    handle.response_code = response_code
    handle.handle_expires_at = expires_at
    if platform_handle:
        handle.platform_handle = platform_handle
    handle.updated_at = now
    session.add(handle)


def consume_response_code(session: Session, card_id: str, response_code: str, now: datetime) -> bool:
    """Mark ``response_code`` used (codes are single-use); False if a newer code replaced it."""
    result = session.execute(
        update(CardHandle)
        .where(col(CardHandle.card_id) == card_id, col(CardHandle.response_code) == response_code)
        .values(response_code=None, updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0))
