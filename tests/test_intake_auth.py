"""POST /api/leads per-source credentials: API key or HMAC-signed body (issue 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_app
from bot.intake_auth import sign
from bot.keys import GATEWAY
from handlers.context import FakeClock
from tests.conftest import JIANGSU_LEAD

EXTRA = """
[intake.sources.website]
label = "官网表单"
hmac_secret = "form-secret"

[intake.sources.douyin]
label = "抖音"
"""


@pytest.fixture
async def api(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> Any:
    # The API key comes from the environment, as secrets should.
    from bot.config import parse
    from tests.conftest import TEMPLATE

    text = TEMPLATE.replace('secret = ""', 'secret = "test-secret-0123456789"', 1) + EXTRA
    settings = parse(text, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": db_url, "LEADBOT_INTAKE__SOURCES__DOUYIN__API_KEY": "dy-key"})
    client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    client.app[GATEWAY].inline_answer_seconds = 0.0
    return client


async def test_api_key_source_tags_the_lead(api: Any) -> None:
    resp = await api.post("/api/leads", json=JIANGSU_LEAD, headers={"X-Leadbot-Source": "douyin", "X-Leadbot-Key": "dy-key"})
    assert resp.status == 201
    view = await (await api.get(f"/api/leads/{(await resp.json())['lead_id']}")).json()
    assert view["source"] == "抖音"  # the body said 官网表单; the credential decides


async def test_signed_body_is_accepted_and_tampering_refused(api: Any, clock: FakeClock) -> None:
    body = json.dumps(JIANGSU_LEAD, ensure_ascii=False).encode()
    stamp = str(int(__import__("time").time()))
    headers = {"X-Leadbot-Source": "website", "X-Leadbot-Timestamp": stamp, "X-Leadbot-Signature": sign("form-secret", stamp, body), "Content-Type": "application/json"}
    assert (await api.post("/api/leads", data=body, headers=headers)).status == 201
    tampered = body.replace("60万".encode(), "6万".encode())
    resp = await api.post("/api/leads", data=tampered, headers=headers)
    assert resp.status == 403 and "签名错误" in (await resp.json())["error"]
    old = str(int(stamp) - 3600)
    stale = {**headers, "X-Leadbot-Timestamp": old, "X-Leadbot-Signature": sign("form-secret", old, body)}
    assert (await api.post("/api/leads", data=body, headers=stale)).status == 401


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"X-Leadbot-Source": "nobody", "X-Leadbot-Key": "x"}, 401),
        ({"X-Leadbot-Source": "douyin", "X-Leadbot-Key": "wrong"}, 403),
        ({"X-Leadbot-Source": "douyin"}, 401),
    ],
)
async def test_unauthenticated_posts_are_refused_and_nothing_written(api: Any, headers: dict[str, str], status: int) -> None:
    resp = await api.post("/api/leads", json=JIANGSU_LEAD, headers=headers)
    assert resp.status == status
    assert (await resp.json())["error"]
    assert (await api.get("/api/leads/1")).status == 404


async def test_management_api_needs_the_token(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    from bot.config import parse
    from tests.conftest import TEMPLATE

    settings = parse(TEMPLATE, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": db_url, "LEADBOT_SERVER__API_TOKEN": "t0ken"})
    client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    created = await client.post("/api/leads", json=JIANGSU_LEAD)  # intake stays open (no sources configured)
    assert created.status == 201
    lead_id = (await created.json())["lead_id"]
    for path in (f"/api/leads/{lead_id}", "/api/metrics/summary"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer t0ken"})).status == 200
