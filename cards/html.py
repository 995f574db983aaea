"""HTML rendering for the sandbox chat page."""

from __future__ import annotations

import base64
from html import escape

from cards.model import Card


def render_html(card: Card, card_id: str) -> str:
    """The card as an HTML fragment; buttons carry ``data-card`` and ``data-action``."""
    parts = [f'<div class="card" data-card-id="{escape(card_id)}">', f'<div class="card-title">{escape(card.title)}</div>']
    if card.fields:
        parts.append('<dl class="card-fields">')
        for f in card.fields:
            parts.append(f"<dt>{escape(f.label)}</dt><dd>{escape(f.value)}</dd>")
        parts.append("</dl>")
    if card.text:
        parts.append(f'<div class="card-text">{escape(card.text)}</div>')
    if card.image_png:
        # Our own PNG bytes, inlined: base64 has no characters that could break out of the attribute.
        data = base64.b64encode(card.image_png).decode("ascii")
        parts.append(f'<img class="card-image" alt="{escape(card.title)}" style="max-width:100%" src="data:image/png;base64,{data}">')
    if card.status:
        parts.append(f'<div class="card-status">{escape(card.status)}</div>')
    elif card.actions:
        parts.append('<div class="card-actions">')
        for a in card.actions:
            parts.append(
                f'<button class="btn btn-{escape(a.style)}" data-card="{escape(card_id)}" '
                f'data-action="{escape(a.key)}">{escape(a.label)}</button>'
            )
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)
