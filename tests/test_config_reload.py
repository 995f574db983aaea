"""Editing leadbot.toml takes effect without a restart; a bad edit keeps the last good rules
and the admins are told in chat why (issues 5 and 7)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import bot.app as app_module
from bot.app import create_app
from bot.config import load
from bot.keys import GATEWAY
from handlers.context import FakeClock
from tests.conftest import TEMPLATE

RULE = '\n[[assignment.rules]]\nname = "深圳客户"\nwhen = { city = "深圳" }\nto = { rep = "liuyang" }\n'


async def _until(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_rules_reload_on_edit_and_a_bad_edit_is_reported(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "CONFIG_POLL_SECONDS", 0.05)
    monkeypatch.setenv("LEADBOT_DATABASE_URL", db_url)
    cfg = tmp_path / "leadbot.toml"
    cfg.write_text(TEMPLATE.replace('secret = ""', 'secret = "s"', 1), encoding="utf-8")
    client = await aiohttp_client(create_app(load(cfg), clock=clock, start_workers=True))
    ctx = client.app[GATEWAY].ctx
    assert ctx.rules.rule("深圳客户") is None

    cfg.write_text(cfg.read_text(encoding="utf-8") + RULE, encoding="utf-8")

    async def has_rule() -> bool:
        return ctx.rules.rule("深圳客户") is not None

    await _until(has_rule)

    cfg.write_text(cfg.read_text(encoding="utf-8").replace("city = \"深圳\"", "cty = \"深圳\""), encoding="utf-8")

    async def admin_told() -> bool:
        msgs = (await (await client.get("/sandbox/api/messages", params={"user": "admin"})).json())["messages"]
        return any("仍在使用上一版规则" in m["text"] and "cty" in m["text"] for m in msgs)

    await _until(admin_told)
    assert ctx.rules.rule("深圳客户") is not None  # the last good rules stay in force
