"""Property tests: round-trips for any text, and garbage never escapes as anything but CallbackRejected."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.crypto import (
    CallbackRejected,
    FeishuCrypto,
    MessageCrypto,
    ReplayCache,
    check_fresh,
    extract_encrypt_field,
    parse_wecom_envelope,
    verify_dingtalk_robot_sign,
    verify_feishu_signature,
)

WECOM = MessageCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
ROBOT = MessageCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "")
FEISHU = FeishuCrypto("test key")

# Any Unicode text that UTF-8 can carry (lone surrogates cannot appear in real messages).
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=3000)
ids = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)


@given(message=texts, random16=st.binary(min_size=16, max_size=16))
def test_wecom_round_trip(message: str, random16: bytes) -> None:
    encrypt = WECOM.encrypt(message, random16=random16)
    assert len(base64.b64decode(encrypt)) % 32 == 0
    sig = WECOM.signature("1700000000", "n0", encrypt)
    assert WECOM.verify_and_decrypt(sig, "1700000000", "n0", encrypt) == message


@given(message=texts, receive_id=ids)
def test_round_trip_for_any_receive_id(message: str, receive_id: str) -> None:
    crypto = MessageCrypto("tok", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", receive_id)
    assert crypto.decrypt(crypto.encrypt(message)) == message


@given(message=texts)
def test_wecom_reply_envelope_round_trip(message: str) -> None:
    envelope = WECOM.encrypt_reply_xml(message, "1700000000", "abc123")
    assert WECOM.decrypt_wecom_body(envelope, *_envelope_sig(envelope)) == message


def _envelope_sig(envelope: str) -> tuple[str, str, str]:
    from bot.crypto import parse_xml

    root = parse_xml(envelope)
    return root.findtext("MsgSignature") or "", root.findtext("TimeStamp") or "", root.findtext("Nonce") or ""


@given(message=texts, iv=st.binary(min_size=16, max_size=16))
def test_feishu_round_trip(message: str, iv: bytes) -> None:
    encrypt = FEISHU.encrypt(message, iv=iv)
    assert FEISHU.decrypt(encrypt) == message
    assert FEISHU.decrypt_body(json.dumps({"encrypt": encrypt})) == message


def _only_rejected(fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """Call fn; success or CallbackRejected are fine, any other exception fails the test."""
    try:
        fn(*args, **kwargs)
    except CallbackRejected as exc:
        assert exc.reason and "/" in exc.reason


@settings(max_examples=300)
@given(blob=st.binary(max_size=600))
def test_random_bytes_as_ciphertext(blob: bytes) -> None:
    encrypt = base64.b64encode(blob).decode()
    _only_rejected(WECOM.decrypt, encrypt)
    _only_rejected(ROBOT.decrypt, encrypt)
    _only_rejected(FEISHU.decrypt, encrypt)


@settings(max_examples=300)
@given(blocks=st.integers(min_value=2, max_value=20), data=st.data())
def test_random_whole_block_ciphertext_reaches_padding_checks(blocks: int, data: st.DataObject) -> None:
    # Whole AES blocks get past the length gate, so this exercises unpadding,
    # the length field, the receive id and UTF-8 decoding on garbage.
    blob = data.draw(st.binary(min_size=16 * blocks, max_size=16 * blocks))
    encrypt = base64.b64encode(blob).decode()
    _only_rejected(WECOM.decrypt, encrypt)
    _only_rejected(ROBOT.decrypt, encrypt)
    _only_rejected(FEISHU.decrypt, encrypt)


# Include lone surrogates: a lax query-string decoder can produce them.
@settings(max_examples=200)
@given(text=st.text(alphabet=st.characters(exclude_categories=()), max_size=200))
def test_random_text_everywhere(text: str) -> None:
    _only_rejected(WECOM.verify_and_decrypt, text, text, text, text)
    _only_rejected(WECOM.verify_url, text, "1700000000", "n", text)
    _only_rejected(FEISHU.decrypt, text)
    _only_rejected(check_fresh, text, 1700000000.0, 300)
    _only_rejected(check_fresh, text, 1700000000.0, 300, millis=True)
    _only_rejected(verify_dingtalk_robot_sign, text, text, "secret", 1700000000.0)
    _only_rejected(verify_feishu_signature, text, text, "k", text.encode("utf-8", "surrogatepass"), text)


def _wecom_raw(padded: bytes) -> str:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C=")
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode()


@settings(max_examples=300)
@given(inner=st.binary(max_size=300), pad=st.integers(1, 32))
def test_validly_padded_garbage_plaintext(inner: bytes, pad: int) -> None:
    # Correct key and padding but an arbitrary layout: exercises the length
    # field, receive id and UTF-8 checks that random ciphertext rarely reaches.
    body = inner + bytes([pad]) * pad
    body += bytes([0]) * (-len(body) % 16)  # keep whole blocks; usually breaks the padding again
    _only_rejected(WECOM.decrypt, _wecom_raw(body))
    aligned = inner + b"\x00" * (-(len(inner) + pad) % 16) + bytes([pad]) * pad
    _only_rejected(WECOM.decrypt, _wecom_raw(aligned))
    _only_rejected(ROBOT.decrypt, _wecom_raw(aligned))


@settings(max_examples=200)
@given(body=st.binary(max_size=400))
def test_random_bodies(body: bytes) -> None:
    _only_rejected(parse_wecom_envelope, body)
    _only_rejected(extract_encrypt_field, body)
    _only_rejected(FEISHU.decrypt_body, body)
    _only_rejected(WECOM.decrypt_wecom_body, body, "sig", "1", "n")
    _only_rejected(WECOM.decrypt_json_body, body, "sig", "1", "n")


@given(
    events=st.lists(st.tuples(st.integers(0, 20), st.floats(0, 50, allow_nan=False)), max_size=60),
    ttl=st.floats(0.5, 20),
    cap=st.integers(1, 8),
)
def test_replay_cache_never_exceeds_bound_and_never_forgets_early(
    events: list[tuple[int, float]], ttl: float, cap: int
) -> None:
    cache = ReplayCache(ttl_s=ttl, max_items=cap)
    now = 0.0
    last_recorded: dict[int, float] = {}
    for key, step in events:
        now += step / 10  # monotonic clock
        repeat = cache.seen_before(key, now)
        assert len(cache) <= cap
        if repeat:
            # A hit means the key really was recorded within the TTL.
            assert key in last_recorded and now - last_recorded[key] < ttl
        else:
            last_recorded[key] = now
