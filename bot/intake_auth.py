"""Who may post leads: per-source API keys or HMAC-signed bodies for ``POST /api/leads``.

Configured in leadbot.toml (secrets from the environment)::

    [intake.sources.website]          # the id is what the caller sends in X-Leadbot-Source
    label = "官网表单"                 # the source tag every lead from it gets
    api_key = ""                      # LEADBOT_INTAKE__SOURCES__WEBSITE__API_KEY
    hmac_secret = ""                  # LEADBOT_INTAKE__SOURCES__WEBSITE__HMAC_SECRET

A request names its source with ``X-Leadbot-Source`` and proves it either with
``X-Leadbot-Key: <api_key>`` or with ``X-Leadbot-Timestamp: <unix seconds>`` and
``X-Leadbot-Signature: hex(HMAC-SHA256(hmac_secret, timestamp + "\\n" + raw body))``
(±300 s; the body is covered, so it cannot be altered in transit). The lead's source tag is
the configured label, whatever the body says. With no ``[intake.sources]`` at all the API
is open, as in the demo — ``leadbot serve`` warns about that at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WINDOW_S = 300


@dataclass(frozen=True)
class IntakeSource:
    """A configured lead source and its credentials."""

    id: str
    label: str
    api_key: str = ""
    hmac_secret: str = ""


class IntakeDenied(Exception):
    """The caller is not a configured source; ``status`` is 401 or 403."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_sources(section: Mapping[str, Any] | None, known_labels: tuple[str, ...]) -> dict[str, IntakeSource]:
    """``[intake.sources.*]`` as :class:`IntakeSource` by id; raises ValueError with a Chinese reason."""
    out: dict[str, IntakeSource] = {}
    for source_id, raw in dict((section or {}).get("sources", {})).items():
        if not isinstance(raw, Mapping):
            raise ValueError(f"intake.sources.{source_id} 应为表 / must be a table")
        label = str(raw.get("label", ""))
        if label not in known_labels:
            raise ValueError(f"intake.sources.{source_id}.label `{label}` 应为 {' / '.join(known_labels)} 之一")
        key, secret = str(raw.get("api_key", "") or ""), str(raw.get("hmac_secret", "") or "")
        if not key and not secret:
            raise ValueError(f"intake.sources.{source_id} 需要 api_key 或 hmac_secret（建议用环境变量设置）")
        out[source_id] = IntakeSource(source_id, label, key, secret)
    return out


def authenticate(sources: Mapping[str, IntakeSource], headers: Mapping[str, str], body: bytes, now: float) -> IntakeSource | None:
    """The source a request comes from; None when the API is open (no sources configured)."""
    if not sources:
        return None
    source = sources.get(headers.get("X-Leadbot-Source", ""))
    if source is None:
        raise IntakeDenied(401, "未知的线索来源，请在 X-Leadbot-Source 中填写已配置的来源 / unknown source")
    key = headers.get("X-Leadbot-Key", "")
    if key:
        if source.api_key and hmac.compare_digest(key.encode(), source.api_key.encode()):
            return source
        raise IntakeDenied(403, "密钥错误 / wrong key")
    signature, stamp = headers.get("X-Leadbot-Signature", ""), headers.get("X-Leadbot-Timestamp", "")
    if not signature or not stamp:
        raise IntakeDenied(401, "缺少 X-Leadbot-Key 或 X-Leadbot-Signature / credentials required")
    if not source.hmac_secret:
        raise IntakeDenied(403, "该来源未配置签名密钥 / this source has no hmac_secret")
    try:
        ts = int(stamp)
    except ValueError:
        raise IntakeDenied(401, "时间戳格式错误 / bad timestamp") from None
    if abs(now - ts) > WINDOW_S:
        raise IntakeDenied(401, "请求已过期（时间戳超出 ±300 秒）/ stale timestamp")
    expected = sign(source.hmac_secret, stamp, body)
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        raise IntakeDenied(403, "签名错误 / bad signature")
    return source


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Leadbot-Signature`` of ``body`` sent at ``timestamp`` (for callers and tests)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
