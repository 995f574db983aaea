"""Cross-checks of bot.crypto against the platform SDKs' own implementations.

wechatpy (WeCom) and lark-oapi (Feishu) are used only as independent oracles
here; production code does not call them. dingtalk-stream has no crypto
primitive (Stream mode has no message-level encryption), so DingTalk's event
crypto is checked through wechatpy, which implements the identical scheme.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

pytest.importorskip("wechatpy")
pytest.importorskip("lark_oapi")

from lark_oapi.card.action_handler import CardActionHandler
from lark_oapi.core.exception import AccessDeniedException
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils.decryptor import AESCipher
from lark_oapi.event.dispatcher_handler import EventDispatcherHandler
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from bot.crypto import (
    REASON_BAD_SIGNATURE,
    REASON_RECEIVE_ID,
    CallbackRejected,
    FeishuCrypto,
    MessageCrypto,
    feishu_legacy_card_signature,
    feishu_signature,
    parse_xml,
)

TOKEN = "leadbotToken"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP = "ww1436e0e65a779aee"
# Non-canonical base64 key from wechatpy's own tests: both sides must agree on it.
ODD_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"

LEAD_XML = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>"
    "<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000000</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[张总确认下周三看产线，预算50万，联系人王工 13800138000]]></Content>"
    "<MsgId>7300000000000000001</MsgId><AgentID>1000002</AgentID></xml>"
)


def _wechatpy_envelope_fields(envelope_xml: str) -> tuple[str, str, str, str]:
    root = parse_xml(envelope_xml)
    return (
        root.findtext("Encrypt") or "",
        root.findtext("MsgSignature") or "",
        root.findtext("TimeStamp") or "",
        root.findtext("Nonce") or "",
    )


@pytest.mark.parametrize("key", [KEY, ODD_KEY])
@pytest.mark.parametrize("message", [LEAD_XML, "x", "", "客户说：" + "很好" * 400])
def test_wechatpy_encrypts_we_decrypt(key: str, message: str) -> None:
    sdk = WeChatCrypto(TOKEN, key, CORP)
    envelope = sdk.encrypt_message(message, "nonce123", "1700000000")
    encrypt, signature, timestamp, nonce = _wechatpy_envelope_fields(envelope)
    ours = MessageCrypto(TOKEN, key, CORP)
    assert ours.verify_and_decrypt(signature, timestamp, nonce, encrypt) == message
    # The full POST-body path too (wechatpy's envelope has the same shape).
    assert ours.decrypt_wecom_body(envelope.encode(), signature, timestamp, nonce) == message


@pytest.mark.parametrize("key", [KEY, ODD_KEY])
def test_we_encrypt_passive_reply_wechatpy_decrypts(key: str) -> None:
    ours = MessageCrypto(TOKEN, key, CORP)
    reply = LEAD_XML.replace("text", "update_button")
    envelope = ours.encrypt_reply_xml(reply, "1700000001", "abcXYZ09")
    _, signature, timestamp, nonce = _wechatpy_envelope_fields(envelope)
    sdk = WeChatCrypto(TOKEN, key, CORP)
    assert sdk.decrypt_message(envelope, signature, timestamp, nonce) == reply
    # wechatpy rejects our envelope once the signature is off by one character.
    with pytest.raises(InvalidSignatureException):
        sdk.decrypt_message(envelope, signature[:-1] + ("0" if signature[-1] != "0" else "1"), timestamp, nonce)


def test_wechatpy_url_verification_matches_ours() -> None:
    sdk = WeChatCrypto(TOKEN, KEY, CORP)
    echostr = MessageCrypto(TOKEN, KEY, CORP).encrypt("6203791203917216011")
    signature = MessageCrypto(TOKEN, KEY, CORP).signature("1700000000", "n1", echostr)
    assert sdk.check_signature(signature, "1700000000", "n1", echostr) == "6203791203917216011"
    assert MessageCrypto(TOKEN, KEY, CORP).verify_url(signature, "1700000000", "n1", echostr) == "6203791203917216011"


def test_wechatpy_message_for_other_corp_is_rejected() -> None:
    envelope = WeChatCrypto(TOKEN, KEY, "ww_other_corp").encrypt_message(LEAD_XML, "n", "1700000000")
    encrypt, signature, timestamp, nonce = _wechatpy_envelope_fields(envelope)
    with pytest.raises(CallbackRejected) as info:
        MessageCrypto(TOKEN, KEY, CORP).verify_and_decrypt(signature, timestamp, nonce, encrypt)
    assert info.value.reason == REASON_RECEIVE_ID


def test_dingtalk_success_reply_decrypts_with_wechatpy() -> None:
    # DingTalk event subscription = WeCom scheme with owner key = app key.
    app_key = "dingabcdef123456"
    aes_key = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
    reply = MessageCrypto("mryue", aes_key, app_key).dingtalk_success_reply("1608001896814", "WL4PK6yA")
    assert set(reply) == {"msg_signature", "encrypt", "timeStamp", "nonce"}
    sdk = WeChatCrypto("mryue", aes_key, app_key)
    assert sdk.check_signature(reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"]) == "success"


# -- Feishu ------------------------------------------------------------------


@pytest.mark.parametrize("encrypt_key", ["test key", "kudryavka", "密钥-with-中文"])
@pytest.mark.parametrize("text", ["hello world", "", '{"schema":"2.0","header":{"event_id":"e1"}}', "中" * 1000])
def test_lark_aescipher_and_ours_agree(encrypt_key: str, text: str) -> None:
    ours = FeishuCrypto(encrypt_key)
    sdk = AESCipher(encrypt_key)
    encrypted = ours.encrypt(text)
    assert sdk.decrypt_str(encrypted) == text
    # lark-oapi has no encrypt; build its format by hand from its decrypt contract.
    assert ours.decrypt(encrypted) == text


def test_lark_rejects_what_we_reject_on_bad_padding() -> None:
    ours = FeishuCrypto("test key")
    blob = bytearray(base64.b64decode(ours.encrypt("hello world", iv=bytes(16))))
    blob[-17] ^= 0x01  # flips the last plaintext byte (the pad byte) via CBC malleability
    tampered = base64.b64encode(bytes(blob)).decode()
    with pytest.raises(ValueError):
        AESCipher("test key").decrypt_str(tampered)
    with pytest.raises(CallbackRejected):
        ours.decrypt(tampered)


def _raw_request(headers: dict[str, str], body: bytes) -> RawRequest:
    req = RawRequest()
    req.uri = "/callback/feishu"
    req.headers = headers
    req.body = body
    return req


@pytest.mark.parametrize("body", [b'{"encrypt":"P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="}', "{\"a\": \"中文\"}".encode()])
def test_lark_event_signature_agrees(body: bytes) -> None:
    timestamp, nonce, encrypt_key = "1700000000", "n0nce", "test key"
    signature = feishu_signature(timestamp, nonce, encrypt_key, body)
    handler = EventDispatcherHandler.builder(encrypt_key, "vtoken").build()
    headers = {
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature,
    }
    handler._verify_sign(_raw_request(headers, body), encrypt_key)  # must not raise
    headers["X-Lark-Signature"] = hashlib.sha256(b"forged").hexdigest()
    with pytest.raises(AccessDeniedException):
        handler._verify_sign(_raw_request(headers, body), encrypt_key)


def test_lark_legacy_card_signature_agrees() -> None:
    timestamp, nonce, token = "1700000000", "n0nce", "v_token_demo"
    body = json.dumps({"open_id": "ou_x", "action": {"value": {"lead": "42"}, "tag": "button"}}).encode()
    signature = feishu_legacy_card_signature(timestamp, nonce, token, body)
    handler = CardActionHandler.builder("", token).build()
    headers = {
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature,
    }
    handler._verify_sign(_raw_request(headers, body))  # must not raise
    headers["X-Lark-Signature"] = "0" * 40
    with pytest.raises(AccessDeniedException):
        handler._verify_sign(_raw_request(headers, body))


def test_our_signature_rejection_reason_is_generic() -> None:
    with pytest.raises(CallbackRejected) as info:
        MessageCrypto(TOKEN, KEY, CORP).verify_signature("0" * 40, "1700000000", "n", "abcd")
    assert info.value.reason == REASON_BAD_SIGNATURE
    assert TOKEN not in str(info.value) and KEY not in str(info.value)


def test_lark_dispatcher_accepts_our_encrypted_signed_event_end_to_end() -> None:
    # What our fake Feishu server / sandbox will send must be exactly what the
    # real SDK accepts: our encrypt + our signature through EventDispatcherHandler.do.
    import lark_oapi as lark

    received: list[str] = []
    handler = (
        lark.EventDispatcherHandler.builder("test key", "vtok")
        .register_p2_im_message_receive_v1(lambda data: received.append(data.event.message.message_id))
        .build()
    )
    event = {
        "schema": "2.0",
        "header": {"event_id": "e1", "event_type": "im.message.receive_v1", "create_time": "1700000000000",
                   "token": "vtok", "app_id": "cli_x", "tenant_key": "t"},
        "event": {"message": {"message_id": "om_1", "message_type": "text", "chat_type": "p2p",
                              "content": json.dumps({"text": "张总确认下周三看产线"})}},
    }
    body = json.dumps({"encrypt": FeishuCrypto("test key").encrypt(json.dumps(event))}).encode()
    headers = {
        "X-Lark-Request-Timestamp": "1700000000",
        "X-Lark-Request-Nonce": "n0",
        "X-Lark-Signature": feishu_signature("1700000000", "n0", "test key", body),
    }
    response = handler.do(_raw_request(headers, body))
    assert response.status_code == 200
    assert received == ["om_1"]
    # And our decryption of the same body yields the same event.
    assert json.loads(FeishuCrypto("test key").decrypt_body(body)) == event
