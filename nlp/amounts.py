"""RMB money amounts in sales chat (placeholder, being filled in)."""

from __future__ import annotations


def extract_amounts(text: str) -> list[dict[str, object]]:
    """Every RMB amount in ``text`` as ``{"text", "yuan_min", "yuan_max"}``."""
    return []
