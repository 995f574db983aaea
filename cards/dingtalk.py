"""Neutral :class:`~cards.model.Card` → DingTalk interactive card (普通版 ``StandardCard``).

Pure functions: data in, dict out. The dict is JSON-encoded into ``cardData`` of
``POST /v1.0/im/v1.0/robot/interactiveCards/send`` and ``PUT /v1.0/im/robots/interactiveCards``
(shape: dingtalk-stream's ``interactive_card.py`` samples, /work/shared/platforms.md §2.4).

Buttons use ``actionType: "request"`` so a click calls back (ActionCard buttons are links
only). DingTalk echoes the pressed button's ``id`` in the callback's
``cardPrivateData.actionIds``; ids are ``act_<index>`` and :func:`action_index` maps them back
to the card's actions (the signed key itself stays on our side, in the stored card).
"""

from __future__ import annotations

import re
from typing import Any

from cards.model import Card

MAX_TITLE = 60
MAX_TEXT = 3000
MAX_BUTTONS = 6  # more do not fit a phone screen row-wise; DingTalk's own limit is UNCONFIRMED
_STATUS = {"primary": "primary", "danger": "warning", "default": "normal"}
_ACTION_ID = re.compile(r"^act_([0-9]{1,2})$")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def action_id(index: int) -> str:
    """The button id for the card's ``index``-th action."""
    return f"act_{index}"


def action_index(button_id: object) -> int | None:
    """Inverse of :func:`action_id`; None for anything we did not issue."""
    if not isinstance(button_id, str):
        return None
    match = _ACTION_ID.match(button_id)
    return int(match.group(1)) if match else None


def markdown_of(card: Card) -> str:
    """The card body as DingTalk markdown (also the text-message fallback)."""
    lines = [f"**{f.label}**：{f.value}" for f in card.fields]
    if card.text:
        lines.append(card.text)
    if card.status:
        lines.append(f"<font color=#999999>{card.status}</font>")
    return _cut("\n\n".join(lines), MAX_TEXT)


def render_standard_card(card: Card, card_id: str, *, image: str | None = None) -> dict[str, Any]:
    """The StandardCard ``cardData`` for ``card``; a closed card (with a status) has no buttons.

    ``image`` is the media_id of an uploaded chart (``@lA…``), shown below the text as the
    SDK samples' ``{"type": "image", "image": <media id>}`` element.
    """
    contents: list[dict[str, Any]] = [{"type": "markdown", "text": markdown_of(card) or " ", "id": f"md_{card_id}"}]
    if image:
        contents.append({"type": "image", "image": image, "id": f"img_{card_id}"})
    actions = [] if card.status else list(card.actions[:MAX_BUTTONS])
    if actions:
        contents.append(
            {
                "type": "action",
                "id": f"actions_{card_id}",
                "actions": [
                    {
                        "type": "button",
                        "id": action_id(i),
                        "label": {"type": "text", "text": _cut(a.label, 12), "id": f"label_{i}"},
                        "actionType": "request",
                        "status": _STATUS.get(a.style, "normal"),
                    }
                    for i, a in enumerate(actions)
                ],
            }
        )
    return {
        "config": {"autoLayout": True, "enableForward": False},
        "header": {"title": {"type": "text", "text": _cut(card.title, MAX_TITLE)}},
        "contents": contents,
    }


def markdown_message(card: Card) -> dict[str, str]:
    """``sampleMarkdown`` msgParam / sessionWebhook markdown body: the card as text."""
    return {"title": _cut(card.title, MAX_TITLE), "text": f"### {card.title}\n\n{markdown_of(card)}"}
