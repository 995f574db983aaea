"""The neutral card: what people see, before any platform gets its hands on it.

Handlers build a :class:`Card`; each platform adapter renders it natively (WeCom
``template_card``, Feishu card JSON, DingTalk interactive card, the sandbox's HTML)
and falls back to :func:`cards.text.render_text` when a native card is refused.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Literal

ActionStyle = Literal["primary", "default", "danger"]
CHART_TOO_LARGE = "图表过大，未能发送"
CHART_REFUSED = "图表未能发送"


@dataclass(frozen=True)
class CardField:
    """One labelled line of a card: ``客户: 宁波恒锂新能源``."""

    label: str
    value: str


@dataclass(frozen=True)
class CardAction:
    """A button. ``key`` is the packed, signed payload the click brings back (see handlers.actions)."""

    label: str
    key: str
    style: ActionStyle = "default"


@dataclass(frozen=True)
class Card:
    """A platform-neutral interactive card.

    ``status`` is a short line shown after the card was acted on (``已接受 · 张伟 10:32``);
    a card with a status shows no buttons.
    """

    title: str
    fields: tuple[CardField, ...] = ()
    text: str = ""
    actions: tuple[CardAction, ...] = ()
    status: str = ""
    image_png: bytes | None = field(default=None, repr=False)

    def without_image(self, note: str = "") -> "Card":
        """The same card without its chart, saying why in a last text line when ``note`` is given."""
        text = f"{self.text}\n{note}".strip() if note else self.text
        return replace(self, image_png=None, text=text)

    def with_status(self, status: str) -> "Card":
        """The same card, closed: buttons removed, ``status`` shown."""
        return Card(
            title=self.title,
            fields=self.fields,
            text=self.text,
            actions=(),
            status=status,
            image_png=self.image_png,
        )


def card_to_dict(card: Card) -> dict[str, object]:
    """A JSON-ready dict; a chart travels base64-encoded (charts are kept under 1 MB)."""
    data: dict[str, object] = {
        "title": card.title,
        "fields": [[f.label, f.value] for f in card.fields],
        "text": card.text,
        "actions": [{"label": a.label, "key": a.key, "style": a.style} for a in card.actions],
        "status": card.status,
    }
    if card.image_png:
        data["image_png_b64"] = base64.b64encode(card.image_png).decode("ascii")
    return data


def card_from_dict(data: dict[str, object]) -> Card:
    """Inverse of :func:`card_to_dict`."""
    fields = data.get("fields") or []
    actions = data.get("actions") or []
    assert isinstance(fields, list) and isinstance(actions, list)
    return Card(
        title=str(data.get("title", "")),
        fields=tuple(CardField(str(lbl), str(val)) for lbl, val in fields),
        text=str(data.get("text", "")),
        actions=tuple(CardAction(label=a["label"], key=a["key"], style=a.get("style", "default")) for a in actions),
        status=str(data.get("status", "")),
        image_png=base64.b64decode(str(data["image_png_b64"])) if data.get("image_png_b64") else None,
    )
