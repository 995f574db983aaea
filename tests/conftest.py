"""Shared fixtures: a real database (SQLite file, or PostgreSQL in CI), a movable clock,
the real app over HTTP, and an errbot-style sandbox driver."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Settings, parse
from bot.gateway import Gateway
from bot.keys import GATEWAY
from handlers.context import FakeClock
from nlp.calendar import SHANGHAI
from store.db import upgrade

PG_URL = os.environ.get("LEADBOT_TEST_POSTGRES_URL", "")
# ../shared beside the checkout (CI lays it there); the project never needs it to run.
SHARED = next((p for p in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")) if p.is_dir()), Path("/nonexistent/shared"))
TEMPLATE = resources.files("bot").joinpath("templates/leadbot.toml").read_text(encoding="utf-8")


def _pg_database() -> Iterator[str]:
    import psycopg

    name = f"leadbot_test_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database: a SQLite file, and PostgreSQL when CI provides one."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'leadbot.db'}"
        upgrade(url)
        yield url
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need LEADBOT_TEST_POSTGRES_URL (.ci/run starts a server)")
    gen = _pg_database()
    url = next(gen)
    upgrade(url)
    yield url
    gen.close()


@pytest.fixture
def clock() -> FakeClock:
    """Tuesday 2026-03-10 10:00 in Shanghai: a plain working morning."""
    return FakeClock(datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI))


def make_settings(db_url: str, tmp_path: Path, extra: str = "") -> Settings:
    """The template organisation on ``db_url`` with a fixed secret."""
    text = TEMPLATE.replace('secret = ""', 'secret = "test-secret-0123456789"', 1) + extra
    return parse(text, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": db_url})


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


class SandboxDriver:
    """Talk to the bot as a person would, through the sandbox HTTP API."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def gateway(self) -> Gateway:
        return self.client.app[GATEWAY]

    async def drain(self) -> None:
        await self.gateway.drain()

    async def push(self, user: str, text: str) -> None:
        resp = await self.client.post("/sandbox/api/send", json={"user": user, "text": text})
        assert resp.status == 200, await resp.text()
        await self.drain()

    async def messages(self, user: str) -> list[dict[str, Any]]:
        resp = await self.client.get("/sandbox/api/messages", params={"user": user})
        assert resp.status == 200, await resp.text()
        return (await resp.json())["messages"]

    async def cards(self, user: str) -> list[dict[str, Any]]:
        return [m["card"] for m in await self.messages(user) if "card" in m]

    async def last_text(self, user: str) -> str:
        texts = [m["text"] for m in await self.messages(user) if m["from"] == "bot" and "card" not in m]
        return texts[-1] if texts else ""

    async def click(self, user: str, card: dict[str, Any], label: str) -> dict[str, Any]:
        action = next(a["action"] for a in card["actions"] if a["label"] == label)
        resp = await self.client.post("/sandbox/api/action", json={"user": user, "card_id": card["card_id"], "action": action})
        assert resp.status == 200, await resp.text()
        await self.drain()
        return await resp.json()

    async def post_lead(self, **fields: Any) -> dict[str, Any]:
        resp = await self.client.post("/api/leads", json=fields)
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        await self.drain()
        return body


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, clock: FakeClock) -> TestClient:
    app = create_app(settings, clock=clock, start_workers=False)
    c = await aiohttp_client(app)
    c.app[GATEWAY].inline_answer_seconds = 0.0
    return c


@pytest.fixture
def bot(client: TestClient) -> SandboxDriver:
    return SandboxDriver(client)


JIANGSU_LEAD = {
    "company": "苏州恒锐精密机械有限公司", "contact": "王建国", "phone": "139 1234 5678",
    "province": "江苏", "city": "苏州市", "industry": "新能源汽车", "budget": "60万",
    "source": "官网表单", "note": "询价伺服压装机",
}
