"""WeCom renderings of the neutral :class:`~cards.model.Card` (pure functions: data in, JSON out).

* :func:`render_template_card` → the ``template_card`` object of a ``button_interaction``
  card (message/send and update_template_card), respecting WeCom's limits
  (``/work/shared/platforms.md`` §1.4): at most 6 buttons with short labels, title ≤ 36
  characters, description ≤ 44, horizontal lines ≤ 6 with short keys and values, sub-title
  text ≤ 160. Fields that do not fit a horizontal line (too many, or a long value) and the
  card's free text move to the sub-title "detail" text, which is cut with an ellipsis last.
* :func:`replace_name` → the short grey label that replaces the buttons of a closed card.
* :func:`render_markdown` / :func:`render_plain` → the fallbacks (≤ 2048 bytes).
"""

from __future__ import annotations

import re
from typing import Any

from cards.model import Card, CardField
from cards.text import render_text

MAX_BUTTONS = 6
MAX_BUTTON_TEXT = 10
MAX_KEY_BYTES = 1024
MAX_TITLE = 36
MAX_DESC = 44
MAX_SUBTITLE = 160
MAX_HORIZONTAL = 6
MAX_KEYNAME = 5
MAX_VALUE = 26
MAX_TEXT_BYTES = 2048
MAX_TASK_ID_BYTES = 128
MAX_REPLACE_NAME = 10
_TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")
# WeCom button styles: 1 primary (blue), 2 default, 3 red, 4 grey.
_STYLE = {"primary": 1, "default": 2, "danger": 3}


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    text = text.strip()
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def clip_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never in the middle of a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    cut = raw[: limit - len("…".encode())].decode("utf-8", errors="ignore")
    return cut + "…"


def _is_short(f: CardField) -> bool:
    return 0 < len(f.label) <= MAX_KEYNAME and 0 < len(f.value) <= MAX_VALUE


def render_template_card(card: Card, task_id: str) -> dict[str, Any]:
    """The ``template_card`` (``button_interaction``) for ``card`` under ``task_id``.

    Raises ValueError for an invalid ``task_id`` or a button key WeCom would refuse.
    A card without actions (closed) keeps a single grey, disabled-looking button
    carrying its status, since a button card needs at least one button.
    """
    if not _TASK_ID.match(task_id):
        raise ValueError("task_id must be 1-128 chars of [0-9A-Za-z_-@]")
    horizontal: list[dict[str, str]] = []
    detail: list[str] = []
    for f in card.fields:
        if len(horizontal) < MAX_HORIZONTAL and _is_short(f):
            horizontal.append({"keyname": f.label, "value": f.value})
        else:
            detail.append(f"{f.label}：{f.value}")
    if card.text:
        detail.append(card.text)
    out: dict[str, Any] = {
        "card_type": "button_interaction",
        "task_id": task_id,
        "main_title": {"title": clip(card.title, MAX_TITLE)},
    }
    if card.status:
        out["main_title"]["desc"] = clip(card.status, MAX_DESC)
    if detail:
        out["sub_title_text"] = clip("\n".join(detail), MAX_SUBTITLE)
    if horizontal:
        out["horizontal_content_list"] = horizontal
    buttons: list[dict[str, Any]] = []
    for action in card.actions[:MAX_BUTTONS]:
        if len(action.key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValueError("button key longer than 1024 bytes")
        buttons.append({"text": clip(action.label, MAX_BUTTON_TEXT), "style": _STYLE.get(action.style, 2), "key": action.key})
    if not buttons:
        buttons.append({"text": replace_name(card), "style": 4, "key": f"closed:{task_id}"[:MAX_KEY_BYTES]})
    out["button_list"] = buttons
    return out


def replace_name(card: Card) -> str:
    """The short label for a closed card's buttons: the status up to its first ``·``."""
    head = (card.status or "已处理").split("·")[0].strip()
    return clip(head or "已处理", MAX_REPLACE_NAME)


def render_markdown(card: Card) -> str:
    """A WeCom markdown message for ``card`` (≤ 2048 bytes); buttons become a hint."""
    lines = [f"**{card.title}**"]
    lines += [f"> {f.label}：<font color=\"comment\">{f.value}</font>" for f in card.fields]
    if card.text:
        lines.append(card.text)
    if card.status:
        lines.append(f"<font color=\"info\">{card.status}</font>")
    elif card.actions:
        lines.append("请在企业微信卡片中操作：" + " / ".join(a.label for a in card.actions))
    return clip_bytes("\n".join(lines), MAX_TEXT_BYTES)


def render_plain(card: Card) -> str:
    """The plain-text fallback (≤ 2048 bytes)."""
    return clip_bytes(render_text(card), MAX_TEXT_BYTES)
