"""cards/wecom.py limits, the import boundary (platform SDKs only inside bot/), and card sends WeCom already has."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.keys import GATEWAY

from cards.model import Card, CardAction, CardField
from cards.wecom import (
    MAX_TEXT_BYTES,
    render_markdown,
    render_plain,
    render_template_card,
    replace_name,
)
from handlers.actions import ActionKey, BadAction
from handlers.context import FakeClock
from store.models import OutboxMessage
from tests.wecom_fakes import FakeWeComApi, WeComCallbacks, wecom_settings

ROOT = Path(__file__).resolve().parent.parent
SDKS = {"wechatpy", "dingtalk_stream", "lark_oapi"}
MANAGER = "ChenJing"  # 陈静's WeCom userid in tests.wecom_fakes


def _card(**kw: object) -> Card:
    base: dict[str, object] = dict(
        title="新线索 #12 · 苏州恒锐精密机械有限公司（华东区重点客户，来自展会的高意向询价）",
        fields=(CardField("公司", "苏州恒锐精密机械有限公司"), CardField("预算", "60万"), CardField("电话", "139 1234 5678")),
        text="备注：询价伺服压装机" * 30,
        actions=tuple(CardAction(f"按钮{i}号超级长的标签文字", f"k{i}") for i in range(8)),
    )
    base.update(kw)
    return Card(**base)  # type: ignore[arg-type]


def test_template_card_respects_wecom_limits() -> None:
    tc = render_template_card(_card(), "abc123")
    assert tc["card_type"] == "button_interaction" and tc["task_id"] == "abc123"
    assert len(tc["main_title"]["title"]) <= 36 and tc["main_title"]["title"].endswith("…")
    assert len(tc["button_list"]) == 6
    assert all(len(b["text"]) <= 10 for b in tc["button_list"])
    assert len(tc["sub_title_text"]) <= 160
    assert all(len(h["keyname"]) <= 5 and len(h["value"]) <= 26 for h in tc["horizontal_content_list"])


def test_long_field_values_move_to_the_detail_line() -> None:
    long_note = "客户要求三周内交付两台伺服压装机并提供现场调试与培训服务，付款方式待定"
    tc = render_template_card(_card(fields=(CardField("预算", "60万"), CardField("需求详情", long_note)), text=""), "t1")
    assert tc["horizontal_content_list"] == [{"keyname": "预算", "value": "60万"}]
    assert tc["sub_title_text"].startswith("需求详情：客户要求")
    seven = tuple(CardField(f"字段{i}", str(i)) for i in range(7))
    tc = render_template_card(_card(fields=seven, text=""), "t2")
    assert len(tc["horizontal_content_list"]) == 6 and tc["sub_title_text"] == "字段6：6"


def test_closed_card_and_styles() -> None:
    closed = _card(actions=(), status="已接受 · 张伟 · 03-10 10:00")
    assert replace_name(closed) == "已接受"
    tc = render_template_card(closed, "t3")
    assert tc["main_title"]["desc"].startswith("已接受") and tc["button_list"][0]["style"] == 4
    styled = render_template_card(_card(actions=(CardAction("接受", "a", "primary"), CardAction("无效", "b", "danger"))), "t4")
    assert [b["style"] for b in styled["button_list"]] == [1, 3]


def test_invalid_task_id_and_oversized_key_are_refused() -> None:
    with pytest.raises(ValueError):
        render_template_card(_card(), "bad task id!")
    with pytest.raises(ValueError):
        render_template_card(_card(actions=(CardAction("x", "k" * 1025),)), "ok")


def test_text_fallbacks_fit_2048_bytes() -> None:
    card = _card(text="很长的备注" * 1000)
    for rendered in (render_markdown(card), render_plain(card)):
        assert len(rendered.encode()) <= MAX_TEXT_BYTES
    assert "苏州恒锐" in render_markdown(card)


def test_button_keys_are_signed_and_tampering_is_refused() -> None:
    key = ActionKey("accept", "abcdef0123456789", "12").pack("s3cret")
    assert ActionKey.unpack(key, "s3cret") == ActionKey("accept", "abcdef0123456789", "12")
    for tampered in (key.replace(":12:", ":13:"), key.replace("accept", "invalid"), key[:-1] + "0", "accept:x"):
        with pytest.raises(BadAction):
            ActionKey.unpack(tampered, "s3cret")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("import_module", "__import__"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.split(".")[0])
    return names


def test_platform_sdks_are_imported_only_inside_bot() -> None:
    offenders = []
    checked = 0
    for package in ("handlers", "nlp", "store", "scheduler", "cards"):
        for path in sorted((ROOT / package).rglob("*.py")):
            checked += 1
            bad = _imports(path) & SDKS
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert checked > 10
    assert offenders == []


def test_the_import_walker_catches_sdk_imports(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import wechatpy.crypto\nfrom lark_oapi import Client\nimportlib.import_module('dingtalk_stream')\n")
    assert _imports(sample) & SDKS == SDKS


async def test_a_card_wecom_already_accepted_is_not_sent_again_after_a_crash(
    aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    """WeCom took the card, the process died before recording it: the retry meets 40058.

    The retry must take the card as sent (its task id is ours and unique) and go on with
    the chart image, not send a markdown copy of the card.
    """
    api = FakeWeComApi(clock)
    await api.start()
    try:
        settings = wecom_settings(db_url, tmp_path, api.base_url())
        first = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
        adapter = first.app[GATEWAY].adapters["wecom"]

        async def crash(*_args: Any) -> None:
            raise RuntimeError("killed between WeCom's answer and the 'card sent' record")

        adapter.charts.mark_part_sent = crash
        cb = WeComCallbacks(clock)
        query, body = cb.encrypt(cb.text(MANAGER, "报表"))
        assert (await first.post(f"/callback/wecom?{query}", data=body)).status == 200
        await first.app[GATEWAY].drain()
        assert [s.msgtype for s in api.to(MANAGER)] == ["template_card"]
        await first.close()
        second = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
        clock.advance(minutes=5)
        await second.app[GATEWAY].drain()
        # One card and its chart: no second card, no markdown copy of it.
        assert [s.msgtype for s in api.to(MANAGER)] == ["template_card", "image"]
        rows = await second.app[GATEWAY].db.run(
            lambda s: list(s.execute(select(OutboxMessage).where(OutboxMessage.kind == "card")).scalars()))
        assert [r.status for r in rows] == ["sent"]
    finally:
        assert api.server is not None
        await api.server.close()
