"""WeCom callback: forged signatures, replayed and stale timestamps, broken ciphertexts.

Contract of :func:`check`: for any query parameters and POST body, freshness
(``check_fresh``), signature, decryption (``MessageCrypto``), the replay cache and the
decrypted-XML normaliser (``bot.wecom.normalise``) raise only ``CallbackRejected``
(a tampered button value: ``BadAction``), and each input is handled within 2 s. Besides:

* a body is accepted only with the signature WeCom's published formula gives;
* a timestamp more than 300 s from now is refused, one within is not;
* the same accepted request seen again is refused as a replay;
* a correctly signed and encrypted message decrypts to exactly what was encrypted, and
  only when that is valid UTF-8 with the right receive id and length field.

Input: one selector byte, then fields separated by 0x1E. ``selector & 7`` is the mode,
``(selector >> 3) % len(CREDENTIALS)`` the app whose credentials are used:

0. raw POST: ``msg_signature, timestamp, nonce, body``
1. GET URL verification: ``msg_signature, timestamp, nonce, echostr``
2. signed inner message: the rest is the plaintext XML, encrypted and signed correctly
3. signed plaintext layout: the rest is ``random16 || len || msg || receive_id``, padded,
   encrypted and signed (length-field and receive-id checks)
4. signed ciphertext: the rest is AES output, base64-encoded and signed (padding checks)
5. signed Encrypt value: the rest is the ``Encrypt`` text itself, signed (base64 checks)
6. freshness only: ``timestamp``
"""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.crypto import (
    REASON_REPLAY,
    CallbackRejected,
    MessageCrypto,
    ReplayCache,
    check_fresh,
    decode_encoding_aes_key,
    parse_wecom_envelope,
)
from bot.wecom import normalise
from fuzz.framing import ContractViolation, fields, text, within
from handlers.actions import ActionKey, BadAction

# (token, EncodingAESKey, receive id): the apps of the published vectors
# (/work/shared/platform-vectors), so real callbacks in the seed corpus verify.
CREDENTIALS: tuple[tuple[str, str, str], ...] = (
    ("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee"),
    ("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7"),
    ("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"),
    ("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b"),
    # the WeCom 智能机器人 has an empty receive id
    ("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", ""),
)
NOW = 1_780_000_000  # the injected clock, Unix seconds
WINDOW_S = 300
AGENT_ID = 1000002
BUTTON_SECRET = "fuzz-button-secret"
_CRYPTOS = tuple(MessageCrypto(*c) for c in CREDENTIALS)


def expected_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's formula, written out again so a bug in ours cannot hide behind itself."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()


def envelope(encrypt: str, receive_id: str) -> bytes:
    """The outer XML WeCom POSTs."""
    return (f"<xml><ToUserName><![CDATA[{escape(receive_id)}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>").encode("utf-8", "surrogateescape")


def seal(key_text: str, plaintext: bytes) -> str:
    """Pad (PKCS#7 to 32) and encrypt raw plaintext bytes as WeCom does; base64 text."""
    key = decode_encoding_aes_key(key_text)
    pad = 32 - len(plaintext) % 32
    padded = plaintext + bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def layout(message: bytes, receive_id: str) -> bytes:
    """``random16 || len4 || msg || receive_id`` (random16 fixed: the fuzzer needs determinism)."""
    return b"\x00" * 16 + struct.pack(">I", len(message)) + message + receive_id.encode()


def _after_decrypt(xml_text: str) -> None:
    """What the adapter does with a decrypted message: normalise, check a button value."""
    parsed = normalise(xml_text, datetime.fromtimestamp(NOW, UTC), AGENT_ID)
    if parsed.event is not None and parsed.event.kind == "card_action":
        try:
            ActionKey.unpack(parsed.event.action, BUTTON_SECRET)
        except BadAction:
            pass


def _post(crypto: MessageCrypto, token: str, signature: str, timestamp: str, nonce: str, body: bytes) -> str | None:
    """One POST through signature, decryption and the replay cache; None when refused."""
    try:
        xml_text = crypto.decrypt_wecom_body(body, signature, timestamp, nonce)
    except CallbackRejected:
        return None
    encrypt = parse_wecom_envelope(body).encrypt
    if signature != expected_signature(token, timestamp, nonce, encrypt):
        raise ContractViolation("a body was accepted with a signature WeCom would not have sent")
    cache = ReplayCache(ttl_s=WINDOW_S * 2, max_items=16)
    cache.reject_replay((timestamp, nonce, signature), NOW)
    try:
        cache.reject_replay((timestamp, nonce, signature), NOW + 1)
    except CallbackRejected as exc:
        if exc.reason != REASON_REPLAY:
            raise
    else:
        raise ContractViolation("the same request was accepted twice")
    return xml_text


def _signed(crypto: MessageCrypto, token: str, receive_id: str, encrypt: str) -> str | None:
    timestamp, nonce = str(NOW), "fuzz"
    signature = expected_signature(token, timestamp, nonce, encrypt)
    return _post(crypto, token, signature, timestamp, nonce, envelope(encrypt, receive_id))


def _fresh(timestamp: str) -> None:
    try:
        check_fresh(timestamp, NOW, WINDOW_S)
        accepted = True
    except CallbackRejected:
        accepted = False
    digits = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16
    should = digits and abs(int(timestamp) - NOW) <= WINDOW_S
    if accepted != should:
        raise ContractViolation(f"timestamp {timestamp[:40]!r}: accepted={accepted}, expected {should}")


def _check(data: bytes) -> None:
    if not data:
        return
    mode, index = data[0] & 7, (data[0] >> 3) % len(CREDENTIALS)
    rest = data[1:]
    token, key_text, receive_id = CREDENTIALS[index]
    crypto = _CRYPTOS[index]
    if mode == 0:
        signature, timestamp, nonce, body = fields(rest, 4)
        _fresh(text(timestamp))
        xml_text = _post(crypto, token, text(signature), text(timestamp), text(nonce), body)
        if xml_text is not None:
            try:
                _after_decrypt(xml_text)
            except CallbackRejected:
                pass
    elif mode == 1:
        signature, timestamp, nonce, echostr = (text(f) for f in fields(rest, 4))
        try:
            echo = crypto.verify_url(signature, timestamp, nonce, echostr)
        except CallbackRejected:
            return
        if signature != expected_signature(token, timestamp, nonce, echostr.replace(" ", "+")):
            raise ContractViolation("an echostr was accepted with a signature WeCom would not have sent")
        assert isinstance(echo, str)
    elif mode == 2:
        xml_text = _signed(crypto, token, receive_id, seal(key_text, layout(rest, receive_id)))
        try:
            wanted: str | None = rest.decode("utf-8")
        except UnicodeDecodeError:
            wanted = None
        if xml_text != wanted:
            raise ContractViolation(f"signed message decrypted to {xml_text!r:.80}, expected {wanted!r:.80}")
        if xml_text is not None:
            try:
                _after_decrypt(xml_text)
            except CallbackRejected:
                pass
    elif mode == 3:
        plain = _signed(crypto, token, receive_id, seal(key_text, rest))
        if plain is not None:
            (length,) = struct.unpack(">I", rest[16:20])
            if rest[20 + length:] != receive_id.encode() or rest[20:20 + length].decode("utf-8") != plain:
                raise ContractViolation("a plaintext with a wrong length field or receive id was accepted")
    elif mode == 4:
        _signed(crypto, token, receive_id, base64.b64encode(rest).decode("ascii"))
    elif mode == 5:
        _signed(crypto, token, receive_id, text(rest))
    elif mode == 6:
        _fresh(text(rest))


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(2.0, "wecom callback"):
        _check(data)
