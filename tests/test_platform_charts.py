"""Managers see their report charts on WeCom, Feishu and DingTalk (issue 9).

A manager (陈静) sends 报表 through each platform's fake; the chart is uploaded to the
platform's image API (bytes recorded by the fake, PNG signature checked) and the card or the
message after it references the id the upload returned. An upload failure makes the whole
delivery retry (no card without its chart, no duplicate card), and a chart over the
platform's limit is left out with a line saying so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import dingtalk as dt_bot
from bot.app import create_app
from bot.keys import GATEWAY
from cards.charts import IMAGE_LIMITS
from cards.dingtalk import render_standard_card
from cards.feishu import render_feishu_card
from cards.model import Card, CardField
from handlers.context import FakeClock
from store.models import OutboxMessage
from tests import feishu_fakes as fs
from tests.test_platform_scenarios import DRIVERS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MANAGER = "chenjing"


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


# ------------------------------------------------------------------ per-platform views


def uploads(p: Any) -> list[tuple[str, bytes]]:
    """``(id, bytes)`` of every image the platform accepted, in order."""
    if p.name == "wecom":
        return [(mid, data) for mid, kind, data in p.api.uploads if kind == "image"]
    if p.name == "feishu":
        return list(p.fake.images.items())
    return list(p.fake.media.items())


def chart_refs(p: Any, member: str) -> list[str]:
    """The image ids the member was shown: in the card (Feishu, DingTalk) or as an image message after it (WeCom)."""
    if p.name == "wecom":
        return p.api.images_to(f"wx_{member}")
    if p.name == "feishu":
        return [el["img_key"] for _mid, card in p.fake.cards_for(f"ou_{member}")
                for el in card.get("body", {}).get("elements", card.get("elements", [])) if el.get("tag") == "img"]
    return [c["image"] for _biz, card in p.fake.cards_for(f"dt_{member}") for c in card["contents"] if c["type"] == "image"]


def fail_next_upload(p: Any) -> None:
    """The next image upload answers HTTP 500."""
    if p.name == "wecom":
        p.api.upload_failures.append(500)
    elif p.name == "feishu":
        p.fake.fail("/open-apis/im/v1/images", 500)
    else:
        p.fake.fail("/media/upload", 500)


async def _drain(p: Any) -> None:
    await p.client.app[GATEWAY].drain()


async def _outbox(p: Any) -> list[OutboxMessage]:
    return await p.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(OutboxMessage)).scalars()))


# ------------------------------------------------------------------ scenarios


async def test_manager_report_chart_is_uploaded_and_referenced(platform: Any) -> None:
    assert await platform.send_text(MANAGER, "报表") == 200
    await _drain(platform)
    cards = platform.cards(MANAGER)
    assert len(cards) == 1 and "线索报表" in cards[0].text
    ups = uploads(platform)
    assert len(ups) == 1
    media_id, data = ups[0]
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) <= IMAGE_LIMITS[platform.name]
    assert chart_refs(platform, MANAGER) == [media_id]
    assert all(r.status == "sent" for r in await _outbox(platform))


@pytest.mark.parametrize("platform", ["wecom"], indirect=True)
async def test_wecom_image_message_follows_its_card(platform: Any) -> None:
    # button_interaction template cards have no image slot: the chart is the next message.
    await platform.send_text(MANAGER, "报表")
    await _drain(platform)
    kinds = [s.msgtype for s in platform.api.to(f"wx_{MANAGER}")]
    assert kinds == ["template_card", "image"]


async def test_upload_failure_retries_the_whole_delivery_once(platform: Any) -> None:
    fail_next_upload(platform)
    await platform.send_text(MANAGER, "报表")
    await _drain(platform)
    # No card without its chart: nothing was shown, the row waits for its retry.
    assert platform.cards(MANAGER) == [] and chart_refs(platform, MANAGER) == []
    rows = [r for r in await _outbox(platform) if r.kind == "card"]
    assert len(rows) == 1 and rows[0].status == "pending" and rows[0].attempts == 1
    platform.clock.advance(minutes=5)
    await _drain(platform)
    assert len(platform.cards(MANAGER)) == 1
    ups = uploads(platform)
    assert len(ups) == 1 and chart_refs(platform, MANAGER) == [ups[0][0]]
    assert [r.status for r in await _outbox(platform) if r.kind == "card"] == ["sent"]


@pytest.mark.parametrize("platform", ["wecom"], indirect=True)
async def test_wecom_image_send_failure_does_not_resend_the_card(platform: Any) -> None:
    api = platform.api
    # The fake's failures are consumed one per message/send: the card goes through (a
    # zero-second "slow"), the image message after it meets an HTTP 500.
    api.slow_seconds = 0.0
    api.failures.extend(["slow", 500])
    await platform.send_text(MANAGER, "报表")
    await _drain(platform)
    assert len(api.cards_to(f"wx_{MANAGER}")) == 1 and api.images_to(f"wx_{MANAGER}") == []
    platform.clock.advance(minutes=5)
    await _drain(platform)
    assert len(api.cards_to(f"wx_{MANAGER}")) == 1  # the retry sent only the image
    assert len(api.images_to(f"wx_{MANAGER}")) == 1
    assert len(api.uploads) == 1  # and reused the media_id it had


async def test_chart_over_the_limit_is_left_out_with_a_note(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shrink the platform's limit below any real chart instead of drawing a huge one.
    monkeypatch.setitem(IMAGE_LIMITS, platform.name, 100)
    await platform.send_text(MANAGER, "报表")
    await _drain(platform)
    cards = platform.cards(MANAGER)
    assert len(cards) == 1 and "图表过大，未能发送" in cards[0].text
    assert uploads(platform) == [] and chart_refs(platform, MANAGER) == []
    assert [r.status for r in await _outbox(platform) if r.kind == "card"] == ["sent"]


async def test_card_without_chart_uploads_nothing(platform: Any) -> None:
    await platform.send_text("zhangwei", "帮助")
    await _drain(platform)
    assert uploads(platform) == []


# ------------------------------------------------------------------ renderers


def test_feishu_renderers_place_the_image_before_buttons() -> None:
    card = Card(title="线索报表", fields=(CardField("新线索", "3"),), image_png=PNG_SIGNATURE)
    v2 = render_feishu_card(card, "c1", image_key="img_v3_1")
    assert {"tag": "img", "img_key": "img_v3_1", "alt": {"tag": "plain_text", "content": "线索报表"}} in v2["body"]["elements"]
    v1 = render_feishu_card(card, "c1", schema="1.0", image_key="img_v3_1")
    assert v1["elements"][-1]["img_key"] == "img_v3_1"
    assert "img" not in json.dumps(render_feishu_card(card, "c1"))


def test_dingtalk_renderer_image_element() -> None:
    card = Card(title="线索报表", text="本周")
    data = render_standard_card(card, "c9", image="@lADP1")
    assert data["contents"][1] == {"type": "image", "image": "@lADP1", "id": "img_c9"}
    assert all(c["type"] != "image" for c in render_standard_card(card, "c9")["contents"])


def test_dingtalk_upload_host_follows_a_custom_api_base(tmp_path: Path) -> None:
    from tests import dingtalk_fakes as dt

    settings = fs.settings_with_platform_ids("sqlite:///" + str(tmp_path / "x.db"), tmp_path, dt.dingtalk_toml("http://127.0.0.1:9"), dt.dingtalk_ids())
    assert dt_bot.DingTalkConfig.from_settings(settings).oapi_base == "http://127.0.0.1:9"
    from cards.model import CHART_TOO_LARGE

    assert CHART_TOO_LARGE == "图表过大，未能发送"  # one wording for every platform
