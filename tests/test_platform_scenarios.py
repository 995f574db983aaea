"""The same end-to-end scenarios on every real platform, one parametrised suite.

Each platform has a :class:`PlatformDriver`: it starts its fake server, contributes the
``[platforms.x]`` TOML and the members' ids, delivers a correctly signed inbound text or
card click (and a forged one), and reads back what the bot sent or updated in terms every
platform shares (:class:`CardView`). Adding a platform (WeCom) means writing one driver
class and appending it to ``DRIVERS``; the scenarios stay untouched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.keys import GATEWAY
from cards.feishu import iter_buttons
from handlers.context import FakeClock
from store.models import InboxEvent, OutboxMessage
from tests import dingtalk_fakes as dt
from tests import feishu_fakes as fs
from tests import wecom_fakes as wc
from tests.conftest import JIANGSU_LEAD


@dataclass(frozen=True)
class CardView:
    """A card as the member sees it, platform-neutral: ``ref`` is what a click needs."""

    ref: Any
    text: str  # everything visible, for substring checks
    buttons: tuple[str, ...]  # labels of clickable buttons; empty once the card is closed


class PlatformDriver(Protocol):
    """What a scenario needs from a platform. ``client``/``clock`` are set after start."""

    name: str
    client: TestClient
    clock: FakeClock

    async def start(self) -> None:
        """Start the fake platform server."""

    async def close(self) -> None:
        """Stop it."""

    def toml(self) -> str:
        """The ``[platforms.x]`` section pointing at the fake server."""

    def member_ids(self) -> dict[str, dict[str, str]]:
        """Extra keys for members (their ids on this platform)."""

    async def send_text(self, member: str, text: str, *, msg_id: str | None = None, forged: bool = False) -> int:
        """Deliver a text from ``member`` as the platform would; the HTTP status (or ack code)."""

    async def click(self, member: str, card: CardView, label: str) -> int:
        """Click button ``label`` of ``card`` as ``member``."""

    def cards(self, member: str) -> list[CardView]:
        """Cards shown to ``member``, oldest first, in their current state."""

    def texts(self, member: str) -> list[str]:
        """Text messages sent to ``member``."""

    def expire_tokens(self) -> None:
        """Invalidate every access token the platform issued."""

    def token_fetches(self) -> int:
        """How many tokens were issued."""

    def set_down(self, down: bool) -> None:
        """Make the platform API unavailable (5xx) or bring it back."""


class FeishuDriver:
    name = "feishu"

    def __init__(self) -> None:
        self.fake = fs.FakeFeishu()
        self.sender = fs.FeishuSender()

    async def start(self) -> None:
        await self.fake.start()

    async def close(self) -> None:
        await self.fake.close()

    def toml(self) -> str:
        return fs.feishu_toml(self.fake.base_url)

    def member_ids(self) -> dict[str, dict[str, str]]:
        return fs.feishu_ids()

    async def _post(self, payload: dict[str, Any], **kw: Any) -> int:
        body, headers = self.sender.request(payload, int(self.clock.now().timestamp()))
        if kw.get("forged"):
            headers["X-Lark-Signature"] = "f" * 64
        resp = await self.client.post("/callback/feishu", data=body, headers=headers)
        await self.client.app[GATEWAY].adapters["feishu"].settle()
        return resp.status

    async def send_text(self, member: str, text: str, *, msg_id: str | None = None, forged: bool = False) -> int:
        return await self._post(self.sender.text_message(f"ou_{member}", text, message_id=msg_id), forged=forged)

    async def click(self, member: str, card: CardView, label: str) -> int:
        mid, value = card.ref[0], card.ref[1][label]
        return await self._post(self.sender.card_click(f"ou_{member}", value, message_id=mid, token=self.fake.issue_callback_token(mid)))

    def cards(self, member: str) -> list[CardView]:
        out = []
        for mid, card in self.fake.cards_for(f"ou_{member}"):
            buttons = {b["text"]["content"]: b["value"] for b in iter_buttons(card)}
            out.append(CardView((mid, buttons), json.dumps(card, ensure_ascii=False), tuple(buttons)))
        return out

    def texts(self, member: str) -> list[str]:
        return self.fake.texts_for(f"ou_{member}")

    def expire_tokens(self) -> None:
        self.fake.expire_tokens()

    def token_fetches(self) -> int:
        return self.fake.token_fetches

    def set_down(self, down: bool) -> None:
        self.fake.down = down


class DingTalkDriver:
    """HTTP mode: texts through the outgoing robot, clicks through the encrypted event callback."""

    name = "dingtalk"

    def __init__(self) -> None:
        self.fake = dt.FakeDingTalk()

    async def start(self) -> None:
        await self.fake.start()

    async def close(self) -> None:
        await self.fake.close()

    def toml(self) -> str:
        return dt.dingtalk_toml(self.fake.base_url)

    def member_ids(self) -> dict[str, dict[str, str]]:
        return dt.dingtalk_ids()

    def _ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    async def send_text(self, member: str, text: str, *, msg_id: str | None = None, forged: bool = False) -> int:
        data = dt.robot_message(f"dt_{member}", text, msg_id=msg_id, created_ms=self._ms())
        body, headers = dt.robot_http_request(data, self._ms(), secret="forged" if forged else dt.APP_SECRET)
        return (await self.client.post("/callback/dingtalk", data=body, headers=headers)).status

    async def click(self, member: str, card: CardView, label: str) -> int:
        biz, ids = card.ref
        body, query = dt.event_http_request(dt.card_callback(f"dt_{member}", biz, ids[label]), self._ms())
        return (await self.client.post("/callback/dingtalk", data=body, params=query)).status

    def cards(self, member: str) -> list[CardView]:
        out = []
        for biz, card in self.fake.cards_for(f"dt_{member}"):
            ids = {b["label"]["text"]: b["id"] for c in card["contents"] if c["type"] == "action" for b in c["actions"]}
            out.append(CardView((biz, ids), json.dumps(card, ensure_ascii=False), tuple(ids)))
        return out

    def texts(self, member: str) -> list[str]:
        return self.fake.texts_for(f"dt_{member}")

    def expire_tokens(self) -> None:
        self.fake.expire_tokens()

    def token_fetches(self) -> int:
        return self.fake.token_fetches

    def set_down(self, down: bool) -> None:
        self.fake.down = down


class _DriverClock:
    """The fake WeCom needs a clock at construction; the scenario's clock is set on the driver later."""

    def __init__(self, driver: "WeComDriver") -> None:
        self.driver = driver

    def now(self) -> Any:
        return self.driver.clock.now()


class WeComDriver:
    """Texts and card clicks as encrypted XML callbacks (built with wechatpy); cards are
    ``template_card`` messages whose state follows ``update_template_card`` calls."""

    name = "wecom"

    def __init__(self) -> None:
        self.api = wc.FakeWeComApi(_DriverClock(self))  # type: ignore[arg-type]
        self._code_task: dict[str, str] = {}  # response_code a click brought -> task_id of its card
        self._cb: wc.WeComCallbacks | None = None

    async def start(self) -> None:
        await self.api.start()

    async def close(self) -> None:
        assert self.api.server is not None
        await self.api.server.close()

    def toml(self) -> str:
        return wc.section(self.api.base_url())

    def member_ids(self) -> dict[str, dict[str, str]]:
        return {m: {"wecom_userid": f"wx_{m}"} for m in fs.REPS}

    def _callbacks(self) -> wc.WeComCallbacks:
        # One builder per driver: its MsgId and nonce counters keep distinct messages distinct.
        if self._cb is None:
            self._cb = wc.WeComCallbacks(_DriverClock(self))  # type: ignore[arg-type]
        return self._cb

    async def _post(self, inner_xml: str, *, forged: bool = False) -> int:
        cb = self._callbacks()
        query, body = cb.encrypt(inner_xml)
        if forged:
            query = query.replace("msg_signature=", "msg_signature=0", 1)
        resp = await self.client.post(f"/callback/wecom?{query}", data=body, headers={"Content-Type": "text/xml"})
        return resp.status

    async def send_text(self, member: str, text: str, *, msg_id: str | None = None, forged: bool = False) -> int:
        cb = self._callbacks()
        inner = cb.text(f"wx_{member}", text) if msg_id is None else cb.text(f"wx_{member}", text, msg_id=msg_id)  # type: ignore[arg-type]
        return await self._post(inner, forged=forged)

    async def click(self, member: str, card: CardView, label: str) -> int:
        task_id, keys = card.ref
        code = self.api.issue_code()
        self._code_task[code] = task_id
        return await self._post(self._callbacks().card_click(f"wx_{member}", task_id, keys[label], code))

    def cards(self, member: str) -> list[CardView]:
        out = []
        for sent in self.api.cards_to(f"wx_{member}"):
            card = sent.body["template_card"]
            task_id = card["task_id"]
            closed_as = ""
            for upd in self.api.updates:
                if self._code_task.get(upd.get("response_code", "")) != task_id:
                    continue
                if "template_card" in upd:
                    card, closed_as = upd["template_card"], ""
                else:
                    closed_as = upd["button"]["replace_name"]
            keys = {} if closed_as else {b["text"]: b["key"] for b in card.get("button_list", [])}
            text = json.dumps(card, ensure_ascii=False) + closed_as
            out.append(CardView((task_id, keys), text, tuple(keys)))
        return out

    def texts(self, member: str) -> list[str]:
        return self.api.texts_to(f"wx_{member}")

    def expire_tokens(self) -> None:
        self.api.expire_tokens()

    def token_fetches(self) -> int:
        return self.api.token_calls

    def set_down(self, down: bool) -> None:
        self.api.outage = down


DRIVERS: dict[str, type] = {"feishu": FeishuDriver, "dingtalk": DingTalkDriver, "wecom": WeComDriver}


@pytest.fixture(params=sorted(DRIVERS))
async def platform(request: pytest.FixtureRequest, aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Any]:
    driver = DRIVERS[request.param]()
    await driver.start()
    settings = fs.settings_with_platform_ids(db_url, tmp_path, driver.toml(), driver.member_ids())
    driver.client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    driver.client.app[GATEWAY].inline_answer_seconds = 0.0
    driver.clock = clock
    try:
        yield driver
    finally:
        await driver.close()


async def _drain(p: Any) -> None:
    await p.client.app[GATEWAY].drain()


async def _post_lead(p: Any) -> dict[str, Any]:
    resp = await p.client.post("/api/leads", json=JIANGSU_LEAD)
    assert resp.status == 201
    body = await resp.json()
    await _drain(p)
    return dict(body)


async def _count(p: Any, model: Any) -> int:
    return int(await p.client.app[GATEWAY].db.run(lambda s: s.execute(select(func.count()).select_from(model)).scalar_one()))


async def test_lead_card_click_accepted_card_updated(platform: Any) -> None:
    lead = await _post_lead(platform)
    owner = lead["owner"]
    (card,) = platform.cards(owner)
    assert "苏州恒锐精密机械有限公司" in card.text and card.buttons == ("接受", "转派", "无效")
    assert await platform.click(owner, card, "接受") == 200
    await _drain(platform)
    view = await (await platform.client.get(f"/api/leads/{lead['lead_id']}")).json()
    assert view["status"] == "accepted" and view["owner"] == owner
    (updated,) = platform.cards(owner)
    assert updated.buttons == () and "已接受" in updated.text
    # Follow-up typed afterwards lands on the lead.
    assert await platform.send_text(owner, "今天和恒锐精密王总通了电话，下周三去现场看产线") == 200
    await _drain(platform)
    # The bot answers on the same platform (a text or a confirmation card, whichever the handler chose).
    said = platform.texts(owner) + [c.text for c in platform.cards(owner)[1:]]
    assert any("跟进" in t for t in said), said


async def test_duplicate_deliveries_are_handled_once(platform: Any) -> None:
    for _ in range(3):
        assert await platform.send_text("lina", "帮助", msg_id="dup-1") == 200
    await _drain(platform)
    assert await _count(platform, InboxEvent) == 1
    assert len(platform.texts("lina")) == 1


async def test_forged_signature_is_refused_and_nothing_is_stored(platform: Any) -> None:
    status = await platform.send_text("lina", "帮助", forged=True)
    assert 400 <= status < 500
    assert await _count(platform, InboxEvent) == 0
    await _drain(platform)
    assert platform.texts("lina") == []


async def test_token_expiry_is_recovered_transparently(platform: Any) -> None:
    await platform.send_text("lina", "帮助")
    await _drain(platform)
    first = platform.token_fetches()
    platform.expire_tokens()
    await platform.send_text("lina", "帮助")
    await _drain(platform)
    assert platform.token_fetches() == first + 1
    assert len(platform.texts("lina")) == 2


async def test_outage_then_recovery_delivers_in_order(platform: Any) -> None:
    platform.set_down(True)
    lead = await _post_lead(platform)
    owner = lead["owner"]
    await platform.send_text(owner, "帮助")
    await _drain(platform)
    assert platform.cards(owner) == [] and platform.texts(owner) == []
    rows = await platform.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(OutboxMessage)).scalars()))
    assert rows and all(r.status == "pending" for r in rows)
    platform.set_down(False)
    platform.clock.advance(minutes=5)
    await _drain(platform)
    assert len(platform.cards(owner)) == 1 and len(platform.texts(owner)) == 1
    assert await _count(platform, OutboxMessage) == 2


async def test_card_goes_to_the_platform_the_member_prefers(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    feishu, ding = FeishuDriver(), DingTalkDriver()
    await feishu.start()
    await ding.start()
    try:
        ids = {m: {**fs.feishu_ids()[m], **dt.dingtalk_ids()[m]} for m in fs.REPS}
        ids["zhangwei"]["preferred_platform"] = "dingtalk"
        settings = fs.settings_with_platform_ids(db_url, tmp_path, feishu.toml() + ding.toml(), ids)
        client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
        for d in (feishu, ding):
            d.client, d.clock = client, clock
        owners = []
        for i in range(3):  # round robin reaches every East rep
            resp = await client.post("/api/leads", json={**JIANGSU_LEAD, "company": f"测试公司{i}号", "phone": f"1391234567{i}"})
            owners.append((await resp.json())["owner"])
        await client.app[GATEWAY].drain()
        assert "zhangwei" in owners
        assert len(ding.cards("zhangwei")) == 1 and feishu.cards("zhangwei") == []
        other = next(o for o in owners if o != "zhangwei")
        assert len(feishu.cards(other)) == 1 and ding.cards(other) == []
        # A click comes back on the platform the card went to and updates it there.
        assert await ding.click("zhangwei", ding.cards("zhangwei")[0], "接受") == 200
        await client.app[GATEWAY].drain()
        assert ding.cards("zhangwei")[0].buttons == ()
    finally:
        await feishu.close()
        await ding.close()
