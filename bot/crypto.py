"""Callback cryptography for WeCom, DingTalk and Feishu, as pure functions.

Everything here is free of I/O and of clocks: the HTTP layer passes in the
query parameters, headers, raw body bytes and ``now``; it gets back plaintext
or a :class:`CallbackRejected` whose ``reason`` it can show in a 4xx answer.

Schemes (wire formats and sources: /work/shared/platforms.md §1.1, §2.1, §3.1):

* WeCom callbacks and DingTalk's encrypted HTTP event subscription share one
  scheme (:class:`MessageCrypto`): ``sha1(sorted(token, timestamp, nonce,
  encrypt))`` signature, AES-256-CBC with ``IV = key[:16]``, PKCS#7 padding to
  32 bytes, plaintext ``random16 || len4(BE) || msg || receive_id``.
* Feishu event/callback bodies (:class:`FeishuCrypto`): AES-256-CBC with
  ``key = sha256(encrypt_key)``, the IV is the first 16 bytes of the blob,
  PKCS#7 to 16 bytes; ``X-Lark-Signature`` is a plain SHA-256 (not HMAC).
* DingTalk outgoing-robot callbacks: header ``sign`` =
  ``base64(HMAC-SHA256(app_secret, timestamp_ms + "\\n" + app_secret))``.

Signatures never bind freshness, so :func:`check_fresh` and
:class:`ReplayCache` are provided for the HTTP layer to apply.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import struct
import urllib.parse
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_xml
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException

__all__ = [
    "REASON_BAD_BODY",
    "REASON_BAD_CIPHERTEXT",
    "REASON_BAD_SIGNATURE",
    "REASON_BAD_TIMESTAMP",
    "REASON_DECRYPT",
    "REASON_MISSING",
    "REASON_RECEIVE_ID",
    "REASON_REPLAY",
    "REASON_STALE",
    "CallbackRejected",
    "DingTalkEventCrypto",
    "FeishuCrypto",
    "MessageCrypto",
    "ReplayCache",
    "WeComCrypto",
    "WeComEnvelope",
    "check_fresh",
    "decode_encoding_aes_key",
    "dingtalk_robot_sign",
    "dingtalk_webhook_sign_param",
    "extract_encrypt_field",
    "feishu_custom_bot_sign",
    "feishu_legacy_card_signature",
    "feishu_signature",
    "parse_wecom_envelope",
    "parse_xml",
    "verify_dingtalk_robot_sign",
    "verify_feishu_legacy_card_signature",
    "verify_feishu_signature",
    "verify_feishu_token",
    "wecom_signature",
]

# Reasons are short, bilingual and never echo inputs or secrets: they end up in
# HTTP responses and logs.
REASON_MISSING = "missing parameter / 缺少参数"
REASON_BAD_SIGNATURE = "bad signature / 签名错误"
REASON_BAD_TIMESTAMP = "bad timestamp / 时间戳格式错误"
REASON_STALE = "stale timestamp / 时间戳已过期"
REASON_REPLAY = "replayed request / 重复的请求"
REASON_BAD_CIPHERTEXT = "malformed ciphertext / 密文格式错误"
# Padding, length-field and UTF-8 failures share one reason on purpose: distinct
# answers would hand an attacker a padding oracle on endpoints that decrypt
# before a signature is checked (Feishu url_verification).
REASON_DECRYPT = "cannot decrypt / 解密失败"
REASON_RECEIVE_ID = "receive id mismatch / 接收方ID不匹配"
REASON_BAD_BODY = "malformed body / 请求体格式错误"


class CallbackRejected(Exception):
    """A platform callback failed authentication, freshness or decryption.

    ``reason`` is a short English / Chinese phrase (for example
    ``"bad signature / 签名错误"``) that is safe to return in a 4xx response:
    it carries no key, token or plaintext.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------

_TIMESTAMP_RE = re.compile(r"[0-9]{1,16}")
# Values we write into reply envelopes and XML CDATA: keep them boring.
_SAFE_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_B64_ALPHABET_RE = re.compile(r"[A-Za-z0-9+/]{43}")


def _require_str(value: object) -> str:
    """Return ``value`` if it is a non-empty string, else reject the callback."""
    if not isinstance(value, str) or value == "":
        raise CallbackRejected(REASON_MISSING)
    return value


def _utf8(text: str) -> bytes:
    """UTF-8 bytes that never raise: lone surrogates from a sloppy query decoder
    must become a signature mismatch, not a 500."""
    return text.encode("utf-8", errors="surrogatepass")


def _equal(expected: str, received: str) -> bool:
    """Constant-time comparison that also copes with non-ASCII input.

    ``hmac.compare_digest`` raises TypeError for non-ASCII ``str``, which would
    surface as a 500; comparing UTF-8 bytes keeps it a plain mismatch.
    """
    return hmac.compare_digest(_utf8(expected), _utf8(received))


def _b64decode_strict(text: str) -> bytes:
    """Decode standard base64, rejecting any character outside the alphabet."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CallbackRejected(REASON_BAD_CIPHERTEXT) from None


def _aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _pkcs7_pad(data: bytes, block: int) -> bytes:
    pad = block - len(data) % block  # a full block of padding when aligned
    return data + bytes([pad]) * pad


def _pkcs7_unpad(data: bytes, block: int) -> bytes:
    """Strip PKCS#7 padding: pad byte in 1..block and all pad bytes equal."""
    if not data:
        raise CallbackRejected(REASON_DECRYPT)
    pad = data[-1]
    if pad < 1 or pad > block or pad > len(data):
        raise CallbackRejected(REASON_DECRYPT)
    if not hmac.compare_digest(data[-pad:], bytes([pad]) * pad):
        raise CallbackRejected(REASON_DECRYPT)
    return data[:-pad]


def check_fresh(timestamp: str, now: float, window: int, *, millis: bool = False) -> int:
    """Reject a request whose timestamp is more than ``window`` seconds from ``now``.

    ``timestamp`` is the decimal string from the request (WeCom and Feishu send
    seconds; DingTalk sends milliseconds, pass ``millis=True``). ``now`` is Unix
    time in seconds from the injected clock. Both directions are checked, so a
    sender clock running ahead is tolerated only within the same window.
    Returns the timestamp in whole seconds.
    """
    timestamp = _require_str(timestamp)
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise CallbackRejected(REASON_BAD_TIMESTAMP)
    value = int(timestamp)
    seconds = value / 1000.0 if millis else float(value)
    if abs(now - seconds) > window:
        raise CallbackRejected(REASON_STALE)
    return int(seconds)


class ReplayCache:
    """Bounded set of recently seen request keys, expiring by an injected clock.

    Use a key such as ``(timestamp, nonce, signature)``. Entries live ``ttl_s``
    seconds (keep it at least as long as the freshness window, so a replay is
    caught by one check or the other); beyond ``max_items`` the oldest entries
    are dropped first, which only weakens protection when more than
    ``max_items`` distinct requests arrive within ``ttl_s``.

    Platform retries may reuse the same key; whether a hit becomes a 4xx or an
    idempotent empty 200 is the HTTP layer's decision.
    """

    def __init__(self, ttl_s: float, max_items: int) -> None:
        if ttl_s <= 0 or max_items <= 0:
            raise ValueError("ttl_s and max_items must be positive")
        self.ttl_s = ttl_s
        self.max_items = max_items
        # key -> first-seen time; insertion order == age order (see _expire).
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen:
            first_seen = next(iter(self._seen.values()))
            # A clock that went backwards leaves newer entries in front; they
            # are then dropped by the size bound rather than by age.
            if now - first_seen < self.ttl_s:
                break
            self._seen.popitem(last=False)

    def seen_before(self, key: Hashable, now: float) -> bool:
        """Record ``key`` and return True if it was already seen within the TTL."""
        self._expire(now)
        first_seen = self._seen.get(key)
        if first_seen is not None and now - first_seen < self.ttl_s:
            return True
        self._seen.pop(key, None)
        self._seen[key] = now
        while len(self._seen) > self.max_items:
            self._seen.popitem(last=False)
        return False

    def forget(self, key: Hashable) -> None:
        """Drop ``key``: the request it belonged to was not stored, so its retry must pass."""
        self._seen.pop(key, None)

    def reject_replay(self, key: Hashable, now: float) -> None:
        """Like :meth:`seen_before`, but raise :class:`CallbackRejected` on a repeat."""
        if self.seen_before(key, now):
            raise CallbackRejected(REASON_REPLAY)


# --------------------------------------------------------------------------
# WeCom-style message crypto (WeCom callbacks, DingTalk event subscription)
# --------------------------------------------------------------------------


def decode_encoding_aes_key(encoding_aes_key: str) -> bytes:
    """Turn a 43-character EncodingAESKey into the 32-byte AES key.

    Decoding is lenient about the two unused low bits of the last character:
    real keys such as wechatpy's test key ``…S1aR`` are non-canonical base64
    and strict decoders reject them, while the platforms accept them. A key of
    the wrong length or alphabet is a configuration error (ValueError), not a
    rejected callback.
    """
    if not isinstance(encoding_aes_key, str) or not _B64_ALPHABET_RE.fullmatch(encoding_aes_key):
        raise ValueError("EncodingAESKey must be 43 base64 characters (企业微信/钉钉后台的 EncodingAESKey)")
    # Python's decoder ignores the stray bits, which is exactly the leniency
    # needed; the fixed length guarantees 32 bytes.
    key = base64.b64decode(encoding_aes_key + "=", validate=True)
    if len(key) != 32:  # pragma: no cover - impossible for 43 alphabet chars
        raise ValueError("EncodingAESKey does not decode to 32 bytes")
    return key


def wecom_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """``sha1`` hex of the four strings sorted and concatenated (WeCom/DingTalk)."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(_utf8(joined)).hexdigest()


@dataclass(frozen=True)
class WeComEnvelope:
    """The outer, unencrypted part of a WeCom POST body."""

    to_user: str
    agent_id: str
    encrypt: str


def parse_xml(body: bytes | str) -> Element:
    """Parse untrusted XML with defusedxml (no entities, no DTDs, no network)."""
    try:
        root: Element = safe_xml.fromstring(body)
    except (ParseError, DefusedXmlException, ValueError, TypeError, LookupError):
        # LookupError: expat asks Python for the codec an XML declaration names
        # (encoding="UTFF-16"), and an unknown name surfaces as LookupError.
        raise CallbackRejected(REASON_BAD_BODY) from None
    return root


def parse_wecom_envelope(body: bytes | str) -> WeComEnvelope:
    """Extract ``Encrypt`` (plus ``ToUserName``/``AgentID``) from a WeCom POST body."""
    root = parse_xml(body)
    if root.tag != "xml":
        raise CallbackRejected(REASON_BAD_BODY)
    encrypt = (root.findtext("Encrypt") or "").strip()
    if not encrypt:
        raise CallbackRejected(REASON_BAD_BODY)
    return WeComEnvelope(
        to_user=(root.findtext("ToUserName") or "").strip(),
        agent_id=(root.findtext("AgentID") or "").strip(),
        encrypt=encrypt,
    )


def extract_encrypt_field(body: bytes | str) -> str:
    """Return the ``encrypt`` string of a JSON body ``{"encrypt": "…"}`` (DingTalk, Feishu)."""
    try:
        data: Any = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        # RecursionError: json's C decoder gives up on ``[[[[…`` a few thousand deep; that
        # is a malformed body, not a server error.
        raise CallbackRejected(REASON_BAD_BODY) from None
    if not isinstance(data, dict):
        raise CallbackRejected(REASON_BAD_BODY)
    encrypt = data.get("encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise CallbackRejected(REASON_BAD_BODY)
    return encrypt


_WECOM_REPLY_XML = (
    "<xml>\n"
    "<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
    "<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
    "<TimeStamp>{timestamp}</TimeStamp>\n"
    "<Nonce><![CDATA[{nonce}]]></Nonce>\n"
    "</xml>"
)


class MessageCrypto:
    """WeCom-style callback crypto for one (token, EncodingAESKey, receive id).

    ``receive_id`` is the corp id for a WeCom self-built app, the suite id for
    suite commands, ``""`` for the WeCom 智能机器人, and the owner key (app key,
    corp id or suite key) for DingTalk's HTTP event subscription.

    Construction validates the configuration (ValueError); every method that
    handles request data raises only :class:`CallbackRejected`.
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        if not isinstance(receive_id, str):
            raise TypeError("receive_id must be a string (may be empty for the WeCom 智能机器人)")
        self._token = token
        self._key = decode_encoding_aes_key(encoding_aes_key)
        self._receive_id = receive_id.encode("utf-8")

    def __repr__(self) -> str:
        # Never show the token or key in logs or tracebacks.
        return f"{type(self).__name__}(receive_id={self._receive_id.decode('utf-8')!r})"

    # -- inbound -----------------------------------------------------------

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """The expected ``msg_signature`` for these request values."""
        return wecom_signature(self._token, timestamp, nonce, encrypt)

    def verify_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Check ``msg_signature`` in constant time; raise on mismatch."""
        for value in (msg_signature, timestamp, nonce, encrypt):
            _require_str(value)
        if not _equal(self.signature(timestamp, nonce, encrypt), msg_signature):
            raise CallbackRejected(REASON_BAD_SIGNATURE)

    def decrypt(self, encrypt: str) -> str:
        """Decrypt an ``Encrypt``/``echostr``/``encrypt`` value WITHOUT checking its signature.

        Enforces: base64 alphabet, a whole number of AES blocks (at least two),
        strict PKCS#7 (pad byte 1..32, all equal), a length field that fits,
        the exact receive id and UTF-8 text.
        """
        raw = _b64decode_strict(_require_str(encrypt))
        if len(raw) < 32 or len(raw) % 16:
            raise CallbackRejected(REASON_BAD_CIPHERTEXT)
        plain = _pkcs7_unpad(_aes_cbc_decrypt(self._key, self._key[:16], raw), 32)
        if len(plain) < 20:
            raise CallbackRejected(REASON_DECRYPT)
        (msg_len,) = struct.unpack(">I", plain[16:20])
        if msg_len > len(plain) - 20:
            raise CallbackRejected(REASON_DECRYPT)
        msg = plain[20 : 20 + msg_len]
        received_id = plain[20 + msg_len :]
        if not hmac.compare_digest(received_id, self._receive_id):
            raise CallbackRejected(REASON_RECEIVE_ID)
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRejected(REASON_DECRYPT) from None

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Signature check, then decryption: the normal path for a POST callback."""
        self.verify_signature(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Answer WeCom's GET URL verification: return the plaintext to send back as the body.

        A query parser that decodes ``+`` as a space (form encoding) would break
        an ``echostr`` sent with a raw ``+``; base64 never contains spaces, so
        they are mapped back before the signature check.
        """
        echostr = _require_str(echostr).replace(" ", "+")
        return self.verify_and_decrypt(msg_signature, timestamp, nonce, echostr)

    def decrypt_wecom_body(self, body: bytes | str, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Parse a WeCom POST body, verify and decrypt it; returns the inner XML text."""
        envelope = parse_wecom_envelope(body)
        return self.verify_and_decrypt(msg_signature, timestamp, nonce, envelope.encrypt)

    def decrypt_json_body(self, body: bytes | str, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Verify and decrypt a JSON ``{"encrypt": …}`` body (DingTalk events, WeCom 智能机器人)."""
        return self.verify_and_decrypt(msg_signature, timestamp, nonce, extract_encrypt_field(body))

    # -- outbound ----------------------------------------------------------

    def encrypt(self, plaintext: str, *, random16: bytes | None = None) -> str:
        """Encrypt ``plaintext`` to the base64 ``Encrypt`` value.

        ``random16`` (16 bytes) is injectable so tests can reproduce published
        ciphertexts; by default it comes from ``os.urandom``.
        """
        prefix = os.urandom(16) if random16 is None else random16
        if len(prefix) != 16:
            raise ValueError("random16 must be exactly 16 bytes")
        msg = plaintext.encode("utf-8")
        body = prefix + struct.pack(">I", len(msg)) + msg + self._receive_id
        cipher = _aes_cbc_encrypt(self._key, self._key[:16], _pkcs7_pad(body, 32))
        return base64.b64encode(cipher).decode("ascii")

    def encrypt_reply_xml(self, reply_xml: str, timestamp: str, nonce: str, *, random16: bytes | None = None) -> str:
        """Wrap a passive reply in WeCom's encrypted envelope (Encrypt, MsgSignature, TimeStamp, Nonce).

        ``timestamp`` (seconds) and ``nonce`` are chosen by the caller; both must
        be short alphanumerics since they go into the XML verbatim.
        """
        if not _TIMESTAMP_RE.fullmatch(timestamp) or not _SAFE_TOKEN_RE.fullmatch(nonce):
            raise ValueError("timestamp must be digits and nonce alphanumeric")
        encrypt = self.encrypt(reply_xml, random16=random16)
        return _WECOM_REPLY_XML.format(
            encrypt=encrypt,
            signature=self.signature(timestamp, nonce, encrypt),
            timestamp=timestamp,
            nonce=nonce,
        )

    def encrypt_reply_json(
        self, plaintext: str, timestamp: str, nonce: str, *, random16: bytes | None = None
    ) -> dict[str, str]:
        """DingTalk's encrypted reply map ``{msg_signature, encrypt, timeStamp, nonce}``."""
        if not _TIMESTAMP_RE.fullmatch(timestamp) or not _SAFE_TOKEN_RE.fullmatch(nonce):
            raise ValueError("timestamp must be digits and nonce alphanumeric")
        encrypt = self.encrypt(plaintext, random16=random16)
        return {
            "msg_signature": self.signature(timestamp, nonce, encrypt),
            "encrypt": encrypt,
            "timeStamp": timestamp,
            "nonce": nonce,
        }

    def dingtalk_success_reply(
        self, timestamp: str, nonce: str, *, random16: bytes | None = None
    ) -> dict[str, str]:
        """The encrypted ``"success"`` every DingTalk event callback (including check_url) must answer."""
        return self.encrypt_reply_json("success", timestamp, nonce, random16=random16)


# Names that read well at the call sites; the scheme is one and the same.
WeComCrypto = MessageCrypto
DingTalkEventCrypto = MessageCrypto


# --------------------------------------------------------------------------
# Feishu / Lark
# --------------------------------------------------------------------------


class FeishuCrypto:
    """Feishu event/callback body encryption with the app's Encrypt Key."""

    def __init__(self, encrypt_key: str) -> None:
        if not isinstance(encrypt_key, str) or not encrypt_key:
            raise ValueError("encrypt_key must be a non-empty string (飞书后台的 Encrypt Key)")
        self._encrypt_key = encrypt_key
        self._key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()

    def __repr__(self) -> str:
        return "FeishuCrypto(<key hidden>)"

    def decrypt(self, encrypt: str) -> str:
        """Decrypt the ``encrypt`` field: ``base64(iv16 || AES-CBC(PKCS#7/16(text)))``."""
        raw = _b64decode_strict(_require_str(encrypt))
        # IV plus at least one block, whole blocks only.
        if len(raw) < 32 or len(raw) % 16:
            raise CallbackRejected(REASON_BAD_CIPHERTEXT)
        plain = _pkcs7_unpad(_aes_cbc_decrypt(self._key, raw[:16], raw[16:]), 16)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRejected(REASON_DECRYPT) from None

    def decrypt_body(self, body: bytes | str) -> str:
        """Decrypt a raw ``{"encrypt": "…"}`` request body; returns the JSON text inside."""
        return self.decrypt(extract_encrypt_field(body))

    def verify_signature(self, timestamp: str, nonce: str, body: bytes, signature: str) -> None:
        """Check ``X-Lark-Signature`` over the raw body bytes exactly as received."""
        verify_feishu_signature(timestamp, nonce, self._encrypt_key, body, signature)

    def encrypt(self, plaintext: str, *, iv: bytes | None = None) -> str:
        """Produce an ``encrypt`` value as Feishu would (for tests and the sandbox)."""
        iv = os.urandom(16) if iv is None else iv
        if len(iv) != 16:
            raise ValueError("iv must be exactly 16 bytes")
        cipher = _aes_cbc_encrypt(self._key, iv, _pkcs7_pad(plaintext.encode("utf-8"), 16))
        return base64.b64encode(iv + cipher).decode("ascii")


def feishu_signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """``sha256((timestamp + nonce + encrypt_key).encode() + body)`` hex — plain SHA-256, not HMAC.

    Covers event subscriptions and the new ``card.action.trigger`` callbacks.
    """
    return hashlib.sha256(_utf8(timestamp + nonce + encrypt_key) + body).hexdigest()


def _check_body_signature(expected: str, signature: str) -> None:
    if not _equal(expected, signature):
        raise CallbackRejected(REASON_BAD_SIGNATURE)


def verify_feishu_signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes, signature: str) -> None:
    """Check the ``X-Lark-Signature`` header of an event or card.action.trigger request."""
    for value in (timestamp, nonce, signature):
        _require_str(value)
    if not isinstance(body, bytes):
        raise CallbackRejected(REASON_MISSING)
    _check_body_signature(feishu_signature(timestamp, nonce, encrypt_key, body), signature)


def feishu_legacy_card_signature(timestamp: str, nonce: str, verification_token: str, body: bytes) -> str:
    """Old message-card request URL: ``sha1((timestamp + nonce + verification_token).encode() + body)`` hex."""
    return hashlib.sha1(_utf8(timestamp + nonce + verification_token) + body).hexdigest()


def verify_feishu_legacy_card_signature(
    timestamp: str, nonce: str, verification_token: str, body: bytes, signature: str
) -> None:
    """Check ``X-Lark-Signature`` of an old-style message-card action request."""
    for value in (timestamp, nonce, signature):
        _require_str(value)
    if not isinstance(body, bytes):
        raise CallbackRejected(REASON_MISSING)
    _check_body_signature(feishu_legacy_card_signature(timestamp, nonce, verification_token, body), signature)


def verify_feishu_token(expected_token: str, received_token: object) -> None:
    """Compare the Verification Token in a (decrypted) body in constant time.

    The only check available for ``url_verification`` and for apps without an
    Encrypt Key (Feishu does not sign those).
    """
    if not isinstance(received_token, str) or not received_token:
        raise CallbackRejected(REASON_BAD_SIGNATURE)
    if not _equal(expected_token, received_token):
        raise CallbackRejected(REASON_BAD_SIGNATURE)


def feishu_custom_bot_sign(timestamp: str, secret: str) -> str:
    """Outbound group custom-bot webhook sign: ``base64(HMAC-SHA256(key=ts + "\\n" + secret, msg=b""))``."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


# --------------------------------------------------------------------------
# DingTalk outgoing robot
# --------------------------------------------------------------------------


def dingtalk_robot_sign(timestamp: str, app_secret: str) -> str:
    """``base64(HMAC-SHA256(key=app_secret, msg=timestamp + "\\n" + app_secret))``.

    Used for the ``sign`` header of outgoing-robot callbacks and, URL-encoded,
    for custom-robot webhook calls (with the ``SEC…`` secret).
    """
    digest = hmac.new(_utf8(app_secret), _utf8(f"{timestamp}\n{app_secret}"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def verify_dingtalk_robot_sign(
    timestamp: str, sign: str, app_secret: str, now: float, window_s: int = 3600
) -> None:
    """Check the ``timestamp`` (ms) and ``sign`` headers of an outgoing-robot callback.

    DingTalk documents a one-hour window. The sign covers only the timestamp,
    not the body, so a captured pair can be replayed with any body inside the
    window: dedupe on ``msgId`` as well.
    """
    _require_str(sign)
    check_fresh(timestamp, now, window_s, millis=True)
    if not _equal(dingtalk_robot_sign(timestamp, app_secret), sign):
        raise CallbackRejected(REASON_BAD_SIGNATURE)


def dingtalk_webhook_sign_param(timestamp: str, secret: str) -> str:
    """The URL-encoded ``sign`` query value for a custom-robot webhook call."""
    return urllib.parse.quote_plus(dingtalk_robot_sign(timestamp, secret))
