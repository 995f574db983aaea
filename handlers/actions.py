"""Typed, signed button payloads.

A button carries ``verb:card_id:arg:signature``. The signature (HMAC-SHA256 over the
rest, truncated) proves we issued it, so a tampered or invented payload is refused
before anything is looked up. Payloads stay short (WeCom button keys allow 1024 bytes,
DingTalk and Feishu values less in practice) and never contain the separator.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

MAX_LEN = 128
_PART = re.compile(r"^[A-Za-z0-9_\-\u4e00-\u9fff]{0,40}$")


class BadAction(ValueError):
    """A button payload we did not issue, or one that was tampered with."""


@dataclass(frozen=True)
class ActionKey:
    """What a button means: ``verb`` on card ``card_id`` with an optional ``arg``."""

    verb: str
    card_id: str
    arg: str = ""

    def pack(self, secret: str) -> str:
        """The signed payload to put on the button."""
        for part in (self.verb, self.card_id, self.arg):
            if not _PART.match(part):
                raise ValueError(f"action part {part!r} has a separator or is too long")
        body = f"{self.verb}:{self.card_id}:{self.arg}"
        packed = f"{body}:{_sign(secret, body)}"
        if len(packed.encode()) > MAX_LEN:
            raise ValueError("action payload too long")
        return packed

    @classmethod
    def unpack(cls, packed: str, secret: str) -> "ActionKey":
        """Verify and decode a payload; raises :class:`BadAction`."""
        # Platform JSON can carry a lone surrogate (\ud800): surrogatepass measures it instead
        # of raising UnicodeEncodeError; such a payload was never issued and fails below.
        if not isinstance(packed, str) or len(packed.encode("utf-8", "surrogatepass")) > MAX_LEN:
            raise BadAction("按钮数据无效 / malformed action")
        parts = packed.split(":")
        if len(parts) != 4:
            raise BadAction("按钮数据无效 / malformed action")
        verb, card_id, arg, sig = parts
        body = f"{verb}:{card_id}:{arg}"
        if not all(_PART.match(part) for part in (verb, card_id, arg)):
            raise BadAction("按钮数据无效 / malformed action")
        # Bytes, not str: compare_digest refuses non-ASCII strings with TypeError.
        if not hmac.compare_digest(sig.encode("utf-8", "surrogatepass"), _sign(secret, body).encode("ascii")):
            raise BadAction("按钮签名无效 / action signature mismatch")
        return cls(verb=verb, card_id=card_id, arg=arg)


def _sign(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:20]
