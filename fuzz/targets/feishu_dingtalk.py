"""Feishu and DingTalk callback envelopes: AES-256-CBC in base64, JSON wrappers, signatures.

Contract of :func:`check`: for any body and header values, ``FeishuCrypto`` and the
DingTalk event crypto (``MessageCrypto`` with the owner key), ``extract_encrypt_field``,
``verify_feishu_signature``, ``verify_feishu_legacy_card_signature``,
``verify_feishu_token`` and ``verify_dingtalk_robot_sign`` raise only
``CallbackRejected`` and return within 2 s. Besides:

* a signature is accepted only when it is the one the platform's formula gives;
* DingTalk's robot timestamp (ms) is refused outside one hour of now;
* whatever we encrypt decrypts to exactly itself (Feishu and DingTalk replies).

Input: one selector byte, then fields separated by 0x1E. ``selector % 10`` is the mode:

0. Feishu body ``{"encrypt": …}``: the rest is the raw request body
1. Feishu blob: the rest is ``iv || ciphertext``, base64-encoded
2. Feishu round trip: the rest (UTF-8, lossy) is encrypted, wrapped and decrypted
3. Feishu event signature: ``timestamp, nonce, body, signature``
4. Feishu legacy card signature and verification token: ``timestamp, nonce, body, signature``
5. DingTalk event body: ``msg_signature, timestamp, nonce, body``
6. DingTalk signed ciphertext: the rest is AES output, base64-encoded, wrapped and signed
7. DingTalk robot sign: ``timestamp, sign``
8. DingTalk round trip: the rest (UTF-8, lossy) as an encrypted reply, decrypted again
9. DingTalk signed inner message: the rest is the plaintext bytes, encrypted and signed
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from bot.crypto import (
    CallbackRejected,
    FeishuCrypto,
    MessageCrypto,
    extract_encrypt_field,
    verify_dingtalk_robot_sign,
    verify_feishu_legacy_card_signature,
    verify_feishu_signature,
    verify_feishu_token,
)
from fuzz.framing import ContractViolation, fields, text, within
from fuzz.targets.wecom_callback import expected_signature, layout, seal

# Credentials of the published vectors (/work/shared/platform-vectors), so real payloads
# in the seed corpus decrypt and verify.
FEISHU_KEY = "kudryavka"
FEISHU_VERIFICATION_TOKEN = "v_token_demo"
DINGTALK = ("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b")
DINGTALK_ROBOT_SECRET = "this is secret"
NOW = 1_780_000_000.0  # the injected clock, Unix seconds
_FEISHU = FeishuCrypto(FEISHU_KEY)
_DINGTALK = MessageCrypto(*DINGTALK)


def _refused(fn: object, *args: object) -> bool:
    """Run ``fn``; True when it refused with CallbackRejected (anything else propagates)."""
    try:
        fn(*args)  # type: ignore[operator]
    except CallbackRejected as exc:
        if not exc.reason:
            raise ContractViolation("a refusal without a reason") from None
        return True
    return False


def _dingtalk_body(encrypt: str) -> tuple[str, str, str, bytes]:
    timestamp, nonce = str(int(NOW * 1000)), "fuzz"
    return (expected_signature(DINGTALK[0], timestamp, nonce, encrypt), timestamp, nonce,
            json.dumps({"encrypt": encrypt}).encode())


def _check(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 10, data[1:]
    if mode == 0:
        _refused(_FEISHU.decrypt_body, rest)
    elif mode == 1:
        _refused(_FEISHU.decrypt, base64.b64encode(rest).decode("ascii"))
    elif mode == 2:
        plain = rest.decode("utf-8", "replace")
        iv = (rest + b"\x00" * 16)[:16]
        encrypt = _FEISHU.encrypt(plain, iv=iv)
        if _FEISHU.decrypt_body(json.dumps({"encrypt": encrypt})) != plain:
            raise ContractViolation("Feishu round trip changed the text")
    elif mode == 3:
        timestamp, nonce, body, signature = fields(rest, 4)
        ts, nc, sig = text(timestamp), text(nonce), text(signature)
        if not _refused(verify_feishu_signature, ts, nc, FEISHU_KEY, body, sig):
            wanted = hashlib.sha256((ts + nc + FEISHU_KEY).encode("utf-8", "surrogatepass") + body).hexdigest()
            if sig != wanted:
                raise ContractViolation("a Feishu event was accepted with a forged signature")
        _refused(extract_encrypt_field, body)
    elif mode == 4:
        timestamp, nonce, body, signature = fields(rest, 4)
        ts, nc, sig = text(timestamp), text(nonce), text(signature)
        if not _refused(verify_feishu_legacy_card_signature, ts, nc, FEISHU_VERIFICATION_TOKEN, body, sig):
            wanted = hashlib.sha1((ts + nc + FEISHU_VERIFICATION_TOKEN).encode("utf-8", "surrogatepass") + body).hexdigest()
            if sig != wanted:
                raise ContractViolation("a Feishu card action was accepted with a forged signature")
        if not _refused(verify_feishu_token, FEISHU_VERIFICATION_TOKEN, sig) and sig != FEISHU_VERIFICATION_TOKEN:
            raise ContractViolation("a wrong Feishu verification token was accepted")
    elif mode == 5:
        signature, timestamp, nonce, body = fields(rest, 4)
        sig, ts, nc = text(signature), text(timestamp), text(nonce)
        if not _refused(_DINGTALK.decrypt_json_body, body, sig, ts, nc):
            if sig != expected_signature(DINGTALK[0], ts, nc, extract_encrypt_field(body)):
                raise ContractViolation("a DingTalk event was accepted with a forged signature")
    elif mode == 6:
        _refused(_DINGTALK.decrypt_json_body, *_reorder(_dingtalk_body(base64.b64encode(rest).decode("ascii"))))
    elif mode == 7:
        timestamp, sign = (text(f) for f in fields(rest, 2))
        if not _refused(verify_dingtalk_robot_sign, timestamp, sign, DINGTALK_ROBOT_SECRET, NOW):
            digest = hmac.new(DINGTALK_ROBOT_SECRET.encode(), f"{timestamp}\n{DINGTALK_ROBOT_SECRET}".encode(), hashlib.sha256)
            if sign != base64.b64encode(digest.digest()).decode("ascii"):
                raise ContractViolation("a DingTalk robot callback was accepted with a forged sign")
            if abs(int(timestamp) / 1000 - NOW) > 3600:
                raise ContractViolation("a DingTalk robot timestamp outside one hour was accepted")
    elif mode == 8:
        plain = rest.decode("utf-8", "replace")
        reply = _DINGTALK.encrypt_reply_json(plain, str(int(NOW * 1000)), "fuzz", random16=b"\x00" * 16)
        body = json.dumps({"encrypt": reply["encrypt"]}).encode()
        got = _DINGTALK.decrypt_json_body(body, reply["msg_signature"], reply["timeStamp"], reply["nonce"])
        if got != plain:
            raise ContractViolation("DingTalk round trip changed the text")
    elif mode == 9:
        encrypt = seal(DINGTALK[1], layout(rest, DINGTALK[2]))
        refused = _refused(_DINGTALK.decrypt_json_body, *_reorder(_dingtalk_body(encrypt)))
        try:
            rest.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        if refused == valid:
            raise ContractViolation(f"signed DingTalk message refused={refused}, valid UTF-8={valid}")


def _reorder(parts: tuple[str, str, str, bytes]) -> tuple[bytes, str, str, str]:
    signature, timestamp, nonce, body = parts
    return body, signature, timestamp, nonce


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(2.0, "feishu/dingtalk envelope"):
        _check(data)
