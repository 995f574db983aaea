"""Neutral :class:`~cards.model.Card` → Feishu interactive card JSON (2.0, or 1.0 as a fallback).

Pure functions: data in, dict out. The caller JSON-encodes the dict into the ``content``
string of an ``interactive`` message, or puts it under ``card.data`` of a callback answer.

Limits respected here (open.feishu.cn card-json-structure / v2 release notes):
* a whole card must stay under 30 KB; we cap texts well below that;
* JSON 2.0 refuses unknown attributes, so only documented ones are emitted;
* ``update_multi`` must be true in 2.0 so an update shows for everyone.

A button's callback ``value`` is ``{"k": <signed action key>, "c": <our card id>}``: the key
is what :mod:`handlers.actions` verifies, the card id tells which card was clicked.
"""

from __future__ import annotations

from typing import Any, Literal

from cards.model import Card

Schema = Literal["2.0", "1.0"]

MAX_TITLE = 100
MAX_FIELD_VALUE = 500
MAX_TEXT = 4000
MAX_BUTTONS = 10
MAX_FIELDS = 30

_BUTTON_TYPE = {"primary": "primary", "danger": "danger", "default": "default"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_escape(text: str) -> str:
    # Feishu markdown treats these as markup; values come from customers and forms.
    for ch in ("\\", "*", "_", "~", "`", "[", "]", "<", ">"):
        text = text.replace(ch, "\\" + ch)
    return text


def button_value(key: str, card_id: str) -> dict[str, str]:
    """What a button carries back in ``event.action.value``."""
    return {"k": key, "c": card_id}


def _body_markdown(card: Card) -> list[str]:
    lines = [f"**{_md_escape(f.label)}**：{_md_escape(_cut(f.value, MAX_FIELD_VALUE))}" for f in card.fields[:MAX_FIELDS]]
    blocks = ["\n".join(lines)] if lines else []
    if card.text:
        blocks.append(_md_escape(_cut(card.text, MAX_TEXT)))
    if card.status:
        blocks.append(f"<font color='grey'>{_md_escape(_cut(card.status, MAX_FIELD_VALUE))}</font>")
    return blocks


def image_element(image_key: str, card: Card) -> dict[str, Any]:
    """An ``img`` element for an uploaded chart (same shape in JSON 1.0 and 2.0)."""
    return {"tag": "img", "img_key": image_key, "alt": {"tag": "plain_text", "content": _cut(card.title, MAX_TITLE)}}


def render_feishu_card(card: Card, card_id: str, *, schema: Schema = "2.0", image_key: str | None = None) -> dict[str, Any]:
    """The Feishu card JSON for ``card``; a card with a status has no buttons (it is closed).

    ``image_key`` (from ``im/v1/images``) puts the card's chart below its text.
    """
    header = {
        "title": {"tag": "plain_text", "content": _cut(card.title, MAX_TITLE)},
        "template": "grey" if card.status else "blue",
    }
    actions = [] if card.status else list(card.actions[:MAX_BUTTONS])
    buttons = [
        {
            "tag": "button",
            "text": {"tag": "plain_text", "content": _cut(a.label, 20)},
            "type": _BUTTON_TYPE.get(a.style, "default"),
            "value": button_value(a.key, card_id),
        }
        for a in actions
    ]
    if schema == "1.0":
        elements: list[dict[str, Any]] = [
            {"tag": "div", "text": {"tag": "lark_md", "content": block}} for block in _body_markdown(card)
        ]
        if image_key:
            elements.append(image_element(image_key, card))
        if buttons:
            elements.append({"tag": "action", "actions": buttons})
        return {"config": {"wide_screen_mode": True, "update_multi": True}, "header": header, "elements": elements}
    body: list[dict[str, Any]] = [{"tag": "markdown", "content": block} for block in _body_markdown(card)]
    if image_key:
        body.append(image_element(image_key, card))
    if buttons:
        # Several buttons on one row: a column_set, as JSON 2.0 has no `action` container.
        body.append(
            {
                "tag": "column_set",
                "flex_mode": "flow",
                "columns": [{"tag": "column", "width": "auto", "elements": [b]} for b in buttons],
            }
        )
    return {
        "schema": "2.0",
        "config": {"update_multi": True, "summary": {"content": _cut(card.title, MAX_TITLE)}},
        "header": header,
        "body": {"elements": body},
    }


def iter_buttons(card_json: dict[str, Any]) -> list[dict[str, Any]]:
    """Every button of a rendered card, in order (tests and the fake server read them)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("tag") == "button":
                found.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card_json)
    return found
