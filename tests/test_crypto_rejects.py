"""Every way a callback can be forged, stale, replayed or malformed ends in CallbackRejected."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.crypto import (
    REASON_BAD_BODY,
    REASON_BAD_CIPHERTEXT,
    REASON_BAD_SIGNATURE,
    REASON_BAD_TIMESTAMP,
    REASON_DECRYPT,
    REASON_MISSING,
    REASON_RECEIVE_ID,
    REASON_REPLAY,
    REASON_STALE,
    CallbackRejected,
    FeishuCrypto,
    MessageCrypto,
    ReplayCache,
    check_fresh,
    decode_encoding_aes_key,
    dingtalk_robot_sign,
    extract_encrypt_field,
    feishu_signature,
    parse_wecom_envelope,
    verify_dingtalk_robot_sign,
    verify_feishu_signature,
    verify_feishu_token,
)

TOKEN = "QDG6eK"
ENCODING_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP = "wx5823bf96d3bd56c7"
AES_KEY = base64.b64decode(ENCODING_KEY + "=")
TS, NONCE = "1700000000", "1372623149"


@pytest.fixture
def crypto() -> MessageCrypto:
    return MessageCrypto(TOKEN, ENCODING_KEY, CORP)


def _raw_wecom_encrypt(plain_padded: bytes) -> str:
    """AES-CBC with the WeCom key/IV and NO padding logic: lets tests build any padding."""
    assert len(plain_padded) % 16 == 0
    enc = Cipher(algorithms.AES(AES_KEY), modes.CBC(AES_KEY[:16])).encryptor()
    return base64.b64encode(enc.update(plain_padded) + enc.finalize()).decode()


def _layout(msg: bytes, receive_id: bytes = CORP.encode(), length: int | None = None) -> bytes:
    n = len(msg) if length is None else length
    return b"R" * 16 + struct.pack(">I", n) + msg + receive_id


def _signed(crypto: MessageCrypto, encrypt: str) -> tuple[str, str, str, str]:
    return crypto.signature(TS, NONCE, encrypt), TS, NONCE, encrypt


def _reason(fn: object, *args: object) -> str:
    with pytest.raises(CallbackRejected) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.reason


# -- signature ---------------------------------------------------------------


def test_valid_message_passes(crypto: MessageCrypto) -> None:
    encrypt = crypto.encrypt("<xml>ok</xml>")
    assert crypto.verify_and_decrypt(*_signed(crypto, encrypt)) == "<xml>ok</xml>"


@pytest.mark.parametrize("field", [0, 1, 2, 3])
def test_tampering_any_signed_field_is_rejected(crypto: MessageCrypto, field: int) -> None:
    args = list(_signed(crypto, crypto.encrypt("<xml>ok</xml>")))
    original = args[field]
    args[field] = original[:-1] + ("A" if original[-1] != "A" else "B")
    reason = _reason(crypto.verify_and_decrypt, *args)
    assert reason == REASON_BAD_SIGNATURE


def test_uppercase_hex_signature_is_rejected(crypto: MessageCrypto) -> None:
    # The platforms send lowercase hex; accepting variants only widens the surface.
    sig, ts, nonce, enc = _signed(crypto, crypto.encrypt("x"))
    assert _reason(crypto.verify_and_decrypt, sig.upper(), ts, nonce, enc) == REASON_BAD_SIGNATURE


def test_non_ascii_signature_is_a_mismatch_not_a_crash(crypto: MessageCrypto) -> None:
    _, ts, nonce, enc = _signed(crypto, crypto.encrypt("x"))
    assert _reason(crypto.verify_and_decrypt, "签名" * 20, ts, nonce, enc) == REASON_BAD_SIGNATURE
    assert _reason(crypto.verify_and_decrypt, "\udcff" * 40, ts, nonce, enc) == REASON_BAD_SIGNATURE


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_parameters(crypto: MessageCrypto, missing: object) -> None:
    sig, ts, nonce, enc = _signed(crypto, crypto.encrypt("x"))
    assert _reason(crypto.verify_and_decrypt, missing, ts, nonce, enc) == REASON_MISSING
    assert _reason(crypto.verify_and_decrypt, sig, missing, nonce, enc) == REASON_MISSING
    assert _reason(crypto.verify_url, sig, ts, nonce, missing) == REASON_MISSING


def test_wrong_token_is_rejected() -> None:
    sender = MessageCrypto("otherToken", ENCODING_KEY, CORP)
    encrypt = sender.encrypt("x")
    receiver = MessageCrypto(TOKEN, ENCODING_KEY, CORP)
    assert _reason(receiver.verify_and_decrypt, *_signed(sender, encrypt)) == REASON_BAD_SIGNATURE


# -- receive id --------------------------------------------------------------


@pytest.mark.parametrize("other", ["wx5823bf96d3bd56c8", "wx5823bf96d3bd56c", "wx5823bf96d3bd56c7x", "", "WX5823BF96D3BD56C7"])
def test_wrong_corp_id_is_rejected(other: str) -> None:
    sender = MessageCrypto(TOKEN, ENCODING_KEY, other)
    receiver = MessageCrypto(TOKEN, ENCODING_KEY, CORP)
    encrypt = sender.encrypt("<xml/>")
    assert _reason(receiver.verify_and_decrypt, *_signed(receiver, encrypt)) == REASON_RECEIVE_ID


def test_empty_receive_id_for_wecom_smart_robot() -> None:
    robot = MessageCrypto(TOKEN, ENCODING_KEY, "")
    encrypt = robot.encrypt('{"msgtype":"text"}')
    assert robot.verify_and_decrypt(*_signed(robot, encrypt)) == '{"msgtype":"text"}'
    # …and a corp-addressed message is not accepted by the robot endpoint.
    corp_msg = MessageCrypto(TOKEN, ENCODING_KEY, CORP).encrypt("x")
    assert _reason(robot.verify_and_decrypt, *_signed(robot, corp_msg)) == REASON_RECEIVE_ID


# -- padding and layout ------------------------------------------------------


def _pad_to_32(body: bytes) -> bytes:
    pad = 32 - len(body) % 32
    return body + bytes([pad]) * pad


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: _pad_to_32(b)[:-1] + b"\x00", id="pad-byte-zero"),
        pytest.param(lambda b: (b + b"\x00" * 64)[: (len(b) // 32 + 2) * 32 - 1] + b"\x21", id="pad-byte-33"),
        pytest.param(lambda b: (b + b"\xff" * 64)[: (len(b) // 32 + 2) * 32], id="pad-byte-255"),
        pytest.param(lambda b: _pad_to_32(b)[:-2] + bytes([_pad_to_32(b)[-1] ^ 1, _pad_to_32(b)[-1]]), id="pad-bytes-unequal"),
        pytest.param(lambda b: b"\x20" * 32, id="all-padding-no-body"),
    ],
)
def test_bad_padding_is_rejected(crypto: MessageCrypto, mangle: object) -> None:
    body = _layout(b"<xml>lead</xml>")
    padded = mangle(body)  # type: ignore[operator]
    encrypt = _raw_wecom_encrypt(padded)
    assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) == REASON_DECRYPT


def test_valid_16_byte_padding_is_accepted(crypto: MessageCrypto) -> None:
    # PKCS#7 with any pad 1..32 is valid; only the byte values are checked.
    body = _layout(b"x" * 11)  # 16+4+11+18 = 49 bytes -> pad 15 to 64
    pad = 64 - len(body)
    encrypt = _raw_wecom_encrypt(body + bytes([pad]) * pad)
    assert crypto.verify_and_decrypt(*_signed(crypto, encrypt)) == "x" * 11


@pytest.mark.parametrize("length", [10_000, 2**32 - 1, 17 + len(CORP)])
def test_length_field_overrun_is_rejected(crypto: MessageCrypto, length: int) -> None:
    encrypt = _raw_wecom_encrypt(_pad_to_32(_layout(b"hello", length=length)))
    assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) == REASON_DECRYPT


def test_short_length_field_shifts_into_receive_id(crypto: MessageCrypto) -> None:
    encrypt = _raw_wecom_encrypt(_pad_to_32(_layout(b"hello", length=4)))
    assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) == REASON_RECEIVE_ID


def test_plaintext_shorter_than_header_is_rejected(crypto: MessageCrypto) -> None:
    encrypt = _raw_wecom_encrypt(b"R" * 10 + bytes([22]) * 22)
    assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) == REASON_DECRYPT


def test_non_utf8_message_is_rejected(crypto: MessageCrypto) -> None:
    encrypt = _raw_wecom_encrypt(_pad_to_32(_layout(b"\xff\xfe\xfd")))
    assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) == REASON_DECRYPT


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda raw: raw[:-16], id="drop-last-block"),
        pytest.param(lambda raw: raw[:-1], id="drop-one-byte"),
        pytest.param(lambda raw: raw[:16], id="one-block"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: raw[16:], id="drop-first-block"),
    ],
)
def test_truncated_blob_is_rejected(crypto: MessageCrypto, cut: object) -> None:
    raw = base64.b64decode(crypto.encrypt("<xml>" + "线索" * 30 + "</xml>"))
    encrypt = base64.b64encode(cut(raw)).decode()  # type: ignore[operator]
    if encrypt == "":
        assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) == REASON_MISSING
        return
    assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) in (
        REASON_BAD_CIPHERTEXT,
        REASON_DECRYPT,
        REASON_RECEIVE_ID,
    )


@pytest.mark.parametrize(
    "encrypt",
    ["not base64!", "abc", "YWJj\nZGVm", "中文密文", "QUJD====", "A" * 43, "AAAA AAAA"],
)
def test_non_base64_is_rejected(crypto: MessageCrypto, encrypt: str) -> None:
    assert _reason(crypto.verify_and_decrypt, *_signed(crypto, encrypt)) == REASON_BAD_CIPHERTEXT


def test_verify_url_restores_plus_decoded_as_space(crypto: MessageCrypto) -> None:
    # Find a ciphertext containing '+', as a form-style query decoder would mangle it.
    for i in range(200):
        echostr = crypto.encrypt(f"echo{i}", random16=bytes([i]) * 16)
        if "+" in echostr:
            break
    else:  # pragma: no cover - astronomically unlikely
        pytest.skip("no '+' produced")
    sig = crypto.signature(TS, NONCE, echostr)
    assert crypto.verify_url(sig, TS, NONCE, echostr.replace("+", " ")) == f"echo{i}"


# -- envelopes and bodies ----------------------------------------------------


def test_wecom_envelope_parsing() -> None:
    env = parse_wecom_envelope(
        b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt><AgentID>7</AgentID></xml>"
    )
    assert (env.to_user, env.agent_id, env.encrypt) == ("ww1", "7", "abc=")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<xml><Encrypt>abc",
        b"<xml><ToUserName>x</ToUserName></xml>",
        b"<other><Encrypt>abc</Encrypt></other>",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
        b'<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Encrypt>&b;</Encrypt></xml>',
        b'{"encrypt": "abc"}',
    ],
)
def test_bad_wecom_bodies_are_rejected(body: bytes) -> None:
    assert _reason(parse_wecom_envelope, body) == REASON_BAD_BODY


@pytest.mark.parametrize("body", [b"", b"[]", b'{"encrypt": 5}', b'{"encrypt": ""}', b"{", b'{"Encrypt": "x"}', b"\xff"])
def test_bad_json_bodies_are_rejected(body: bytes) -> None:
    assert _reason(extract_encrypt_field, body) == REASON_BAD_BODY


def test_decrypt_wecom_body_checks_signature_over_envelope_value(crypto: MessageCrypto) -> None:
    envelope = crypto.encrypt_reply_xml("<xml>in</xml>", TS, NONCE)
    encrypt = parse_wecom_envelope(envelope).encrypt
    sig = crypto.signature(TS, NONCE, encrypt)
    assert crypto.decrypt_wecom_body(envelope, sig, TS, NONCE) == "<xml>in</xml>"
    assert _reason(crypto.decrypt_wecom_body, envelope, sig, TS, "other") == REASON_BAD_SIGNATURE


# -- freshness and replay ----------------------------------------------------


def test_check_fresh_window() -> None:
    assert check_fresh("1700000000", now=1700000300.0, window=300) == 1700000000
    assert check_fresh("1700000000", now=1699999700.0, window=300) == 1700000000
    assert _reason(check_fresh, "1700000000", 1700000300.5, 300) == REASON_STALE
    assert _reason(check_fresh, "1700000000", 1699999699.0, 300) == REASON_STALE  # from the future


def test_check_fresh_millis() -> None:
    assert check_fresh("1700000000123", now=1700003600.0, window=3600, millis=True) == 1700000000
    assert _reason(check_fresh, "1700000000123", 1700003601.0, 3600) == REASON_STALE
    # Milliseconds read as seconds would be far in the future: also stale, never accepted.
    with pytest.raises(CallbackRejected):
        check_fresh("1700000000123", now=1700000000.0, window=300)


@pytest.mark.parametrize("ts", ["", "abc", "-1", "1.5", " 1700000000", "１７００", "1" * 17, "1e9"])
def test_check_fresh_bad_timestamp(ts: str) -> None:
    assert _reason(check_fresh, ts, 1700000000.0, 300) in (REASON_BAD_TIMESTAMP, REASON_MISSING)


def test_replay_cache_detects_repeats_and_expires() -> None:
    cache = ReplayCache(ttl_s=300, max_items=100)
    key = ("1700000000", "n1", "sig")
    assert cache.seen_before(key, now=1000.0) is False
    assert cache.seen_before(key, now=1001.0) is True
    assert cache.seen_before(("1700000000", "n2", "sig"), now=1001.0) is False
    assert cache.seen_before(key, now=1299.9) is True
    assert cache.seen_before(key, now=1300.0) is False  # expired, recorded afresh
    assert cache.seen_before(key, now=1300.1) is True
    with pytest.raises(CallbackRejected) as info:
        cache.reject_replay(key, now=1301.0)
    assert info.value.reason == REASON_REPLAY


def test_replay_cache_is_bounded() -> None:
    cache = ReplayCache(ttl_s=1e9, max_items=3)
    for i in range(10):
        assert cache.seen_before(i, now=float(i)) is False
    assert len(cache) == 3
    assert cache.seen_before(9, now=11.0) is True
    assert cache.seen_before(0, now=11.0) is False  # evicted oldest-first


def test_replay_cache_expiry_shrinks_memory() -> None:
    cache = ReplayCache(ttl_s=10, max_items=1000)
    for i in range(500):
        cache.seen_before(i, now=0.0)
    cache.seen_before("late", now=100.0)
    assert len(cache) == 1


def test_replay_cache_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        ReplayCache(ttl_s=0, max_items=1)
    with pytest.raises(ValueError):
        ReplayCache(ttl_s=1, max_items=0)


# -- Feishu ------------------------------------------------------------------


def test_feishu_tampered_signature_and_body() -> None:
    body = b'{"encrypt":"abc"}'
    sig = feishu_signature(TS, NONCE, "k", body)
    verify_feishu_signature(TS, NONCE, "k", body, sig)
    assert _reason(verify_feishu_signature, TS, NONCE, "k", body + b" ", sig) == REASON_BAD_SIGNATURE
    assert _reason(verify_feishu_signature, TS, NONCE, "other", body, sig) == REASON_BAD_SIGNATURE
    assert _reason(verify_feishu_signature, TS, "x", "k", body, sig) == REASON_BAD_SIGNATURE
    assert _reason(verify_feishu_signature, TS, NONCE, "k", body, "") == REASON_MISSING
    assert _reason(verify_feishu_signature, TS, NONCE, "k", "str body", sig) == REASON_MISSING


def test_feishu_signature_is_not_hmac() -> None:
    import hashlib
    import hmac

    body = b"{}"
    hmac_variant = hmac.new(b"k", (TS + NONCE).encode() + body, hashlib.sha256).hexdigest()
    assert feishu_signature(TS, NONCE, "k", body) != hmac_variant
    assert _reason(verify_feishu_signature, TS, NONCE, "k", body, hmac_variant) == REASON_BAD_SIGNATURE


def _feishu_raw(key: str, iv: bytes, padded: bytes) -> str:
    import hashlib

    aes = hashlib.sha256(key.encode()).digest()
    enc = Cipher(algorithms.AES(aes), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(padded) + enc.finalize()).decode()


@pytest.mark.parametrize(
    "padded",
    [
        pytest.param(b"hello world\x00\x00\x00\x00\x00", id="pad-zero"),
        pytest.param(b"hello world" + b"\x11" * 5, id="pad-17"),
        pytest.param(b"hello world\x05\x05\x05\x04\x05", id="pad-unequal"),
        pytest.param(b"\x10" * 15 + b"\x20", id="pad-32-over-16"),
        pytest.param(b"\xff\xfe hello worl\x03\x03\x03", id="not-utf8"),
    ],
)
def test_feishu_bad_padding_and_text(padded: bytes) -> None:
    encrypt = _feishu_raw("test key", b"\x01" * 16, padded)
    assert _reason(FeishuCrypto("test key").decrypt, encrypt) == REASON_DECRYPT


@pytest.mark.parametrize(
    "encrypt",
    [
        "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk",  # padding '=' removed
        "P37w+VZImNgPEO1RBhJ6Rg==",  # IV only
        base64.b64encode(b"\x00" * 40).decode(),  # not whole blocks
        "P37w-VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=",  # urlsafe alphabet
    ],
)
def test_feishu_malformed_ciphertext(encrypt: str) -> None:
    assert _reason(FeishuCrypto("test key").decrypt, encrypt) == REASON_BAD_CIPHERTEXT


def test_feishu_token_check() -> None:
    verify_feishu_token("GzhQEyfUcx7eEungQFWtXgCbxSpUOJIb", "GzhQEyfUcx7eEungQFWtXgCbxSpUOJIb")
    for bad in (None, "", "GzhQEyfUcx7eEungQFWtXgCbxSpUOJIc", 42, "令牌"):
        assert _reason(verify_feishu_token, "GzhQEyfUcx7eEungQFWtXgCbxSpUOJIb", bad) == REASON_BAD_SIGNATURE


def test_feishu_decrypt_body_rejects_non_json() -> None:
    assert _reason(FeishuCrypto("k").decrypt_body, b"encrypt=abc") == REASON_BAD_BODY


# -- DingTalk robot ----------------------------------------------------------


def test_dingtalk_robot_sign_window_and_tamper() -> None:
    ts, secret = "1577262236757", "this is secret"
    sign = dingtalk_robot_sign(ts, secret)
    base = int(ts) / 1000
    verify_dingtalk_robot_sign(ts, sign, secret, now=base + 3600)
    verify_dingtalk_robot_sign(ts, sign, secret, now=base - 3600)
    assert _reason(verify_dingtalk_robot_sign, ts, sign, secret, base + 3601) == REASON_STALE
    assert _reason(verify_dingtalk_robot_sign, ts, sign, "other secret", base) == REASON_BAD_SIGNATURE
    assert _reason(verify_dingtalk_robot_sign, str(int(ts) + 1), sign, secret, base) == REASON_BAD_SIGNATURE
    assert _reason(verify_dingtalk_robot_sign, ts, "", secret, base) == REASON_MISSING
    assert _reason(verify_dingtalk_robot_sign, "soon", sign, secret, base) == REASON_BAD_TIMESTAMP
    # Tighter window chosen by the caller.
    assert _reason(verify_dingtalk_robot_sign, ts, sign, secret, base + 301, 300) == REASON_STALE


def test_dingtalk_event_reply_is_verifiable_by_us() -> None:
    app_key = "dingoa8cxyzapp"
    crypto = MessageCrypto("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", app_key)
    reply = crypto.dingtalk_success_reply("1608001896814", "WL4PK6yA", random16=b"0" * 16)
    assert crypto.verify_and_decrypt(reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"]) == "success"
    again = crypto.dingtalk_success_reply("1608001896814", "WL4PK6yA", random16=b"0" * 16)
    assert again == reply  # deterministic once the randomness is injected
    assert json.dumps(reply)  # JSON-serialisable as the HTTP answer


# -- configuration errors are not CallbackRejected ---------------------------


@pytest.mark.parametrize("bad", ["", "short", ENCODING_KEY + "A", ENCODING_KEY[:-1] + "!", ENCODING_KEY[:-1] + "="])
def test_bad_encoding_aes_key_is_a_config_error(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_encoding_aes_key(bad)
    with pytest.raises(ValueError):
        MessageCrypto(TOKEN, bad, CORP)


def test_non_canonical_key_decodes_like_canonical() -> None:
    assert decode_encoding_aes_key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR") == decode_encoding_aes_key(
        "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aQ"
    )


def test_repr_hides_secrets(crypto: MessageCrypto) -> None:
    assert TOKEN not in repr(crypto) and ENCODING_KEY not in repr(crypto)
    assert "test key" not in repr(FeishuCrypto("test key"))


def test_reply_envelope_refuses_unsafe_nonce(crypto: MessageCrypto) -> None:
    with pytest.raises(ValueError):
        crypto.encrypt_reply_xml("<xml/>", TS, "]]><x>")
    with pytest.raises(ValueError):
        crypto.encrypt_reply_xml("<xml/>", "now", NONCE)
    with pytest.raises(ValueError):
        crypto.encrypt("x", random16=b"short")
