"""Time expressions in sales chat, resolved to calendar days (placeholder, being filled in)."""

from __future__ import annotations

from nlp.chat import Segment


def extract_dates(segments: list[Segment]) -> list[dict[str, str]]:
    """Every date expression in ``segments`` as ``{"text": span, "date": "YYYY-MM-DD"}``."""
    return []
