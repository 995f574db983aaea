"""Throughput of the callback crypto hot path: verify + decrypt of a typical WeCom message.

Run: ``python3 bench/bench_crypto.py`` (prints figures; not a timed test).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.crypto import FeishuCrypto, MessageCrypto, ReplayCache, feishu_signature

TOKEN = "QDG6eK"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP = "ww1436e0e65a779aee"


def _typical_message(target_bytes: int = 600) -> str:
    """A text callback of about ``target_bytes`` UTF-8 bytes, as a rep would forward it."""
    head = (
        "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>"
        "<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA["
    )
    tail = "]]></Content><MsgId>7300000000000000001</MsgId><AgentID>1000002</AgentID></xml>"
    filler = "张总确认下周三看产线，预算50万。"
    content = ""
    while len((head + content + tail).encode()) < target_bytes:
        content += filler
    return head + content + tail


def _rate(fn, seconds: float = 1.5) -> float:  # type: ignore[no-untyped-def]
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            fn()
        count += 200
    return count / elapsed


def main() -> None:
    """Print operations per second for the WeCom and Feishu inbound paths."""
    message = _typical_message()
    wecom = MessageCrypto(TOKEN, KEY, CORP)
    encrypt = wecom.encrypt(message)
    sig = wecom.signature("1700000000", "1372623149", encrypt)
    assert wecom.verify_and_decrypt(sig, "1700000000", "1372623149", encrypt) == message

    feishu = FeishuCrypto("test key")
    body = json.dumps({"encrypt": feishu.encrypt(message)}).encode()
    fsig = feishu_signature("1700000000", "n0", "test key", body)

    cache = ReplayCache(ttl_s=300, max_items=100_000)
    counter = iter(range(10**12))

    print(f"message: {len(message.encode())} bytes plaintext, {len(encrypt)} chars Encrypt")
    print(f"wecom verify+decrypt:        {_rate(lambda: wecom.verify_and_decrypt(sig, '1700000000', '1372623149', encrypt)):>10,.0f} ops/s")
    print(f"wecom encrypt passive reply: {_rate(lambda: wecom.encrypt_reply_xml(message, '1700000000', 'abc123')):>10,.0f} ops/s")
    print(f"feishu verify+decrypt body:  {_rate(lambda: (feishu.verify_signature('1700000000', 'n0', body, fsig), feishu.decrypt_body(body))):>10,.0f} ops/s")
    print(f"replay cache insert:         {_rate(lambda: cache.seen_before(next(counter), 0.0)):>10,.0f} ops/s")


if __name__ == "__main__":
    main()
