"""Contract tests: every published/derived vector from platforms.md §4 must pass.

The JSON files in tests/test_crypto_data/ are copies of
/work/shared/platform-vectors/ so CI does not depend on the shared folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.crypto import (
    REASON_BAD_SIGNATURE,
    REASON_DECRYPT,
    CallbackRejected,
    FeishuCrypto,
    MessageCrypto,
    dingtalk_robot_sign,
    dingtalk_webhook_sign_param,
    feishu_custom_bot_sign,
    feishu_legacy_card_signature,
    feishu_signature,
    verify_dingtalk_robot_sign,
    verify_feishu_legacy_card_signature,
    verify_feishu_signature,
)

DATA = Path(__file__).parent / "test_crypto_data"


def _vectors(platform: str) -> list[dict[str, Any]]:
    return list(json.loads((DATA / f"{platform}.json").read_text("utf-8"))["vectors"])


def _ids(vec: dict[str, Any]) -> str:
    return str(vec["id"])


WECOM = _vectors("wecom")
FEISHU = _vectors("feishu")
DINGTALK = _vectors("dingtalk")


def test_vector_files_are_complete() -> None:
    # Guards against a silently truncated copy: platforms.md §4 lists 18 vectors.
    assert len(WECOM) == 8
    assert len(FEISHU) == 6
    assert len(DINGTALK) == 4


@pytest.mark.parametrize("vec", [v for v in WECOM if v["kind"] in ("verify_url", "decrypt")], ids=_ids)
def test_wecom_inbound_vector(vec: dict[str, Any]) -> None:
    crypto = MessageCrypto(vec["token"], vec["encoding_aes_key"], vec["receive_id"])
    args = (vec["msg_signature"], vec["timestamp"], vec["nonce"], vec["encrypt"])
    if vec.get("expect_signature_valid") is False:
        with pytest.raises(CallbackRejected) as info:
            crypto.verify_and_decrypt(*args)
        assert info.value.reason == REASON_BAD_SIGNATURE
        return
    if vec["kind"] == "verify_url":
        plain = crypto.verify_url(*args)
    else:
        plain = crypto.verify_and_decrypt(*args)
    if "expected_plaintext" in vec:
        assert plain == vec["expected_plaintext"]
    for fragment in vec.get("expected_contains", []):
        assert fragment in plain
    assert "expected_plaintext" in vec or vec.get("expected_contains")


def test_wecom_doc_sort_string_prefix() -> None:
    vec = next(v for v in WECOM if v["id"] == "wecom-doc-90968-decrypt")
    joined = "".join(sorted([vec["token"], vec["timestamp"], vec["nonce"], vec["encrypt"]]))
    assert joined.startswith(vec["sort_str_prefix"])


@pytest.mark.parametrize("vec", [v for v in WECOM if v["kind"] == "encrypt"], ids=_ids)
def test_wecom_encrypt_vector(vec: dict[str, Any]) -> None:
    crypto = MessageCrypto(vec["token"], vec["encoding_aes_key"], vec["receive_id"])
    random16 = vec["random16"].encode("ascii")
    assert crypto.encrypt(vec["plaintext"], random16=random16) == vec["expected_encrypt"]
    envelope = crypto.encrypt_reply_xml(vec["plaintext"], vec["timestamp"], vec["nonce"], random16=random16)
    assert f"<Encrypt><![CDATA[{vec['expected_encrypt']}]]></Encrypt>" in envelope
    assert f"<MsgSignature><![CDATA[{vec['expected_msg_signature']}]]></MsgSignature>" in envelope
    assert f"<TimeStamp>{vec['timestamp']}</TimeStamp>" in envelope
    assert f"<Nonce><![CDATA[{vec['nonce']}]]></Nonce>" in envelope


@pytest.mark.parametrize("vec", [v for v in FEISHU if v["kind"] in ("decrypt", "decrypt_json")], ids=_ids)
def test_feishu_decrypt_vector(vec: dict[str, Any]) -> None:
    crypto = FeishuCrypto(vec["encrypt_key"])
    if vec.get("expect_failure"):
        with pytest.raises(CallbackRejected) as info:
            crypto.decrypt(vec["encrypt"])
        assert info.value.reason == REASON_DECRYPT
        return
    plain = crypto.decrypt(vec["encrypt"])
    if vec["kind"] == "decrypt_json":
        assert json.loads(plain) == vec["expected_json"]
    else:
        assert plain == vec["expected_plaintext"]
    # The same ciphertext arriving as a raw body.
    body = json.dumps({"encrypt": vec["encrypt"]}).encode()
    assert crypto.decrypt_body(body) == plain


def test_feishu_event_signature_vector() -> None:
    vec = next(v for v in FEISHU if v["kind"] == "event_signature")
    body = vec["body"].encode("utf-8")
    assert feishu_signature(vec["timestamp"], vec["nonce"], vec["encrypt_key"], body) == vec["expected_signature"]
    verify_feishu_signature(vec["timestamp"], vec["nonce"], vec["encrypt_key"], body, vec["expected_signature"])
    FeishuCrypto(vec["encrypt_key"]).verify_signature(vec["timestamp"], vec["nonce"], body, vec["expected_signature"])
    # One changed body byte (a space) must break it: the signature covers raw bytes.
    with pytest.raises(CallbackRejected):
        verify_feishu_signature(
            vec["timestamp"], vec["nonce"], vec["encrypt_key"], body.replace(b":", b": "), vec["expected_signature"]
        )


def test_feishu_legacy_card_signature_vector() -> None:
    vec = next(v for v in FEISHU if v["kind"] == "legacy_card_signature")
    body = vec["body"].encode("utf-8")
    expected = vec["expected_signature"]
    assert feishu_legacy_card_signature(vec["timestamp"], vec["nonce"], vec["verification_token"], body) == expected
    verify_feishu_legacy_card_signature(vec["timestamp"], vec["nonce"], vec["verification_token"], body, expected)
    with pytest.raises(CallbackRejected):
        verify_feishu_legacy_card_signature(vec["timestamp"], "other", vec["verification_token"], body, expected)


def test_feishu_custom_bot_sign_vector() -> None:
    vec = next(v for v in FEISHU if v["kind"] == "custom_bot_sign")
    assert feishu_custom_bot_sign(vec["timestamp"], vec["secret"]) == vec["expected_sign"]


def test_dingtalk_event_crypto_vector() -> None:
    vec = next(v for v in DINGTALK if v["kind"] == "event_decrypt")
    crypto = MessageCrypto(vec["token"], vec["aes_key"], vec["owner_key"])
    plain = crypto.verify_and_decrypt(vec["msg_signature"], vec["timestamp"], vec["nonce"], vec["encrypt"])
    assert plain == vec["expected_plaintext"]
    body = json.dumps({"encrypt": vec["encrypt"]}).encode()
    assert crypto.decrypt_json_body(body, vec["msg_signature"], vec["timestamp"], vec["nonce"]) == plain


@pytest.mark.parametrize("vec", [v for v in DINGTALK if v["kind"] == "robot_sign"], ids=_ids)
def test_dingtalk_robot_sign_vector(vec: dict[str, Any]) -> None:
    assert dingtalk_robot_sign(vec["timestamp"], vec["secret"]) == vec["expected_sign"]
    if "expected_sign_urlencoded" in vec:
        assert dingtalk_webhook_sign_param(vec["timestamp"], vec["secret"]) == vec["expected_sign_urlencoded"]
    now = int(vec["timestamp"]) / 1000 + 59 * 60
    verify_dingtalk_robot_sign(vec["timestamp"], vec["expected_sign"], vec["secret"], now=now)

