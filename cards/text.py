"""Plain-text rendering: the fallback every platform accepts."""

from __future__ import annotations

from cards.model import Card


def render_text(card: Card) -> str:
    """The card as a few lines of text; buttons become a hint line."""
    lines = [f"【{card.title}】"]
    lines += [f"{f.label}：{f.value}" for f in card.fields]
    if card.text:
        lines.append(card.text)
    if card.status:
        lines.append(f"— {card.status}")
    elif card.actions:
        lines.append("可操作：" + " / ".join(a.label for a in card.actions))
    return "\n".join(lines)
