"""Customer phone numbers in sales chat (placeholder, being filled in)."""

from __future__ import annotations


def extract_phones(text: str) -> list[str]:
    """Every customer phone number in ``text``, normalised (mobile 11 digits, landline area-local)."""
    return []
