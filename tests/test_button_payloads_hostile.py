"""Button values we never issued are refused as forged buttons, whatever their characters.

Found by fuzzing (fuzz/corpus/chat_commands/regress-actionkey-*, fuzz/corpus/wecom_callback/
regress-card-event-non-ascii-signature): ``ActionKey.unpack`` raised UnicodeEncodeError for a
lone surrogate (Feishu, DingTalk and sandbox JSON can deliver ``\\ud800``) and TypeError from
``hmac.compare_digest`` for a non-ASCII signature part (a WeCom EventKey ``accept:c1::签名``),
instead of the BadAction that every caller turns into 「这个按钮无效或已过期」 or a 400.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from handlers.actions import ActionKey, BadAction
from store.models import InboxEvent
from tests.conftest import JIANGSU_LEAD, SandboxDriver
from tests.wecom_fakes import (
    USERIDS,
    WeComHarness,
    wecom_harness,  # noqa: F401  (the ``wecom`` fixture)
)

SECRET = "test-secret-0123456789"


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        ("accept:\udfff", "按钮数据无效"),                      # the fuzzer's input: a lone low surrogate
        ("accept:c1:\ud800:0123456789abcdef0123", "按钮数据无效"),  # a surrogate in a part
        ("accept:c1::签名签名", "按钮签名无效"),                    # non-ASCII signature
        ("accept:c1::\ud800", "按钮签名无效"),                      # surrogate signature
        ("接受:c1::0123456789abcdef0123", "按钮签名无效"),          # Chinese parts are allowed, not forged ones
        ("accept:c1:x y:0123456789abcdef0123", "按钮数据无效"),      # a part pack() would never write
    ],
)
def test_forged_payloads_of_any_characters_are_bad_actions(packed: str, reason: str) -> None:
    with pytest.raises(BadAction, match=reason):
        ActionKey.unpack(packed, SECRET)


def test_issued_payloads_still_verify_and_a_changed_character_does_not() -> None:
    packed = ActionKey("stgo", "opp12", "报价").pack(SECRET)
    assert ActionKey.unpack(packed, SECRET) == ActionKey("stgo", "opp12", "报价")
    with pytest.raises(BadAction, match="按钮签名无效"):
        ActionKey.unpack(packed[:-1] + "签", SECRET)


async def test_a_sandbox_button_with_a_non_ascii_signature_is_answered_as_an_invalid_button(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    card = (await bot.cards(owner))[0]
    resp = await bot.client.post("/sandbox/api/action", json={"user": owner, "card_id": card["card_id"], "action": f"accept:{card['card_id']}::签名"})
    assert resp.status == 200
    await bot.drain()
    assert await bot.last_text(owner) == "这个按钮无效或已过期。"
    # A lone surrogate never reaches the handlers: the sandbox refuses what it cannot store.
    resp = await bot.client.post("/sandbox/api/action", json={"user": owner, "card_id": card["card_id"], "action": "accept:\ud800"})
    assert resp.status == 400


async def test_a_wecom_card_click_with_a_non_ascii_signature_is_refused_as_a_forged_button(wecom: WeComHarness) -> None:
    userid = USERIDS["zhangwei"]
    inner = wecom.cb.card_click(userid, "c0123456789@1", "accept:c0123456789::签名", wecom.api.issue_code())
    resp = await wecom.post(inner)
    assert resp.status == 400 and "按钮签名无效" in await resp.text()
    stored = await wecom.gateway.db.run(lambda s: s.execute(select(func.count()).select_from(InboxEvent)).scalar_one())
    assert stored == 0
