"""The sandbox: a web chat served by the app itself, and the first platform adapter.

It goes through exactly the same path as the real platforms: a message becomes an
:class:`InboundEvent`, lands in the inbox under a unique key, is handled from there, and
what the bot says comes back through the outbox and :meth:`SandboxAdapter.deliver`.

JSON API (contract): ``POST /sandbox/api/send {"user","text"}``,
``GET /sandbox/api/messages?user=ID``, ``POST /sandbox/api/action {"user","card_id","action"}``.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlmodel import Session

from bot.gateway import Delivered, DeliveryError, Gateway
from bot.http import json_object_body, storable
from bot.keys import GATEWAY
from cards.html import render_html
from cards.model import Card, card_from_dict, card_to_dict
from handlers.context import Clock
from handlers.events import InboundEvent
from store.models import CardHandle, Member, OutboxMessage, SandboxMessage

MAX_TEXT = 20_000
MAX_BODY = 256 * 1024  # room for MAX_TEXT characters of Chinese in JSON


class SandboxAdapter:
    """Delivers outbox messages into the sandbox chat history."""

    name = "sandbox"

    def __init__(self, db: Any, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def deliver(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> Delivered:
        payload = json.loads(msg.payload)
        text = payload.get("text", "")
        now = self.clock.now()

        def write(session: Session) -> None:
            if session.execute(select(SandboxMessage.id).where(SandboxMessage.dedupe_key == msg.dedupe_key)).first():
                return  # already shown: the platform-side dedupe every real platform has too
            card_json = json.dumps(card_to_dict(card), ensure_ascii=False) if card else None
            if msg.kind == "card_update" and msg.card_id:
                row = session.execute(select(SandboxMessage).where(SandboxMessage.card_id == msg.card_id)).scalars().first()
                if row is not None:
                    row.card_json = card_json
                    row.updated_at = now
                    session.add(row)
                    return
            session.add(
                SandboxMessage(
                    user=msg.recipient, dedupe_key=msg.dedupe_key, direction="out", text=text,
                    card_id=msg.card_id, card_json=card_json, created_at=now, updated_at=now,
                )
            )

        try:
            await self.db.run(write)
        except Exception as exc:
            raise DeliveryError(f"sandbox write failed: {type(exc).__name__}") from exc
        return Delivered(platform_handle=msg.card_id)


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)




async def _member(gateway: Gateway, user: Any) -> Member | None:
    # JSON bodies are checked by bot.http; the messages page passes ``user`` in its query.
    if not isinstance(user, str) or not user or len(user) > 64 or not storable(user):
        return None
    return await gateway.db.run(lambda s: s.get(Member, user))


async def send(request: web.Request) -> web.Response:
    """A member types in the sandbox chat."""
    gateway = request.app[GATEWAY]
    data = await json_object_body(request, MAX_BODY)
    if isinstance(data, web.Response):
        return data
    member = await _member(gateway, data.get("user"))
    if member is None:
        return _bad_request("未知用户 / unknown user")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        return _bad_request("消息内容不能为空 / text is required")
    if len(text) > MAX_TEXT:
        return _bad_request(f"消息过长（最多 {MAX_TEXT} 字）/ text too long")
    msg_id = str(data.get("client_msg_id") or uuid.uuid4().hex)[:64]
    now = gateway.ctx.clock.now()
    event = InboundEvent(platform="sandbox", platform_user=member.id, kind="text", received_at=now, conversation=member.id, text=text)

    def echo(session: Session) -> None:
        session.add(SandboxMessage(user=member.id, dedupe_key=f"in:{msg_id}", direction="in", text=text, created_at=now, updated_at=now))

    inbox_id = await gateway.ingest(f"msg:{msg_id}", event)
    if inbox_id is not None:
        await gateway.db.run(echo)
    return web.json_response({"ok": True, "duplicate": inbox_id is None})


async def action(request: web.Request) -> web.Response:
    """A member clicks a card button; answered once handled (or after 3 s, still accepted)."""
    gateway = request.app[GATEWAY]
    data = await json_object_body(request, MAX_BODY)
    if isinstance(data, web.Response):
        return data
    member = await _member(gateway, data.get("user"))
    if member is None:
        return _bad_request("未知用户 / unknown user")
    card_id, key = data.get("card_id"), data.get("action")
    if not isinstance(card_id, str) or not card_id or len(card_id) > 64 or not isinstance(key, str) or not key or len(key) > 256:
        return _bad_request("缺少 card_id 或 action / card_id and action are required")
    click_id = str(data.get("click_id") or uuid.uuid4().hex)[:64]
    now = gateway.ctx.clock.now()
    event = InboundEvent(platform="sandbox", platform_user=member.id, kind="card_action", received_at=now, conversation=member.id, card_id=card_id, action=key)
    inbox_id = await gateway.ingest(f"click:{click_id}", event)
    handled = False
    if inbox_id is not None:
        handled = await gateway.wait_handled(inbox_id, gateway.inline_answer_seconds)
    return web.json_response({"ok": True, "handled": handled, "duplicate": inbox_id is None})


async def messages(request: web.Request) -> web.Response:
    """A member's chat with the bot, oldest first; cards with ``card_id``, actions and HTML."""
    gateway = request.app[GATEWAY]
    member = await _member(gateway, request.query.get("user"))
    if member is None:
        return _bad_request("未知用户 / unknown user")

    def load(session: Session) -> list[dict[str, Any]]:
        rows = session.execute(select(SandboxMessage).where(SandboxMessage.user == member.id).order_by(SandboxMessage.id)).scalars()
        out = []
        for row in rows:
            item: dict[str, Any] = {"id": row.id, "from": "user" if row.direction == "in" else "bot", "text": row.text, "at": row.created_at.isoformat()}
            if row.card_json and row.card_id:
                card = card_from_dict(json.loads(row.card_json))
                item["card"] = {
                    "card_id": row.card_id,
                    "title": card.title,
                    "fields": [[f.label, f.value] for f in card.fields],
                    "text": card.text,
                    "status": card.status,
                    "actions": [{"label": a.label, "action": a.key} for a in card.actions],
                    "html": render_html(card, row.card_id),
                }
            out.append(item)
        return out

    return web.json_response({"user": member.id, "messages": await gateway.db.run(load)})


async def members(request: web.Request) -> web.Response:
    """Who one can be in the sandbox."""
    gateway = request.app[GATEWAY]
    rows = await gateway.db.run(lambda s: list(s.execute(select(Member).order_by(Member.role, Member.id)).scalars()))
    return web.json_response({"members": [{"id": m.id, "name": m.name, "role": m.role, "region": m.region} for m in rows]})


async def page(request: web.Request) -> web.Response:
    """The chat page."""
    html = resources.files("bot").joinpath("static/sandbox.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/sandbox/")


def add_routes(app: web.Application) -> None:
    """Mount the sandbox under /sandbox/."""
    app.router.add_get("/sandbox", redirect)
    app.router.add_get("/sandbox/", page)
    app.router.add_get("/sandbox/api/members", members)
    app.router.add_get("/sandbox/api/messages", messages)
    app.router.add_post("/sandbox/api/send", send)
    app.router.add_post("/sandbox/api/action", action)
