"""The sandbox page in a real headless Chromium: send a message, click 接受, see the card change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_app
from bot.config import Settings
from handlers.context import FakeClock
from tests.conftest import JIANGSU_LEAD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium (CI installs it)"),
]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # One backend is enough for the page; the flows themselves run on both in test_lead_flow.
    from store.db import upgrade

    url = f"sqlite:///{tmp_path / 'browser.db'}"
    upgrade(url)
    return url


async def test_rep_accepts_a_lead_card_in_the_browser(aiohttp_server: Any, settings: Settings, clock: FakeClock, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    app = create_app(settings, clock=clock, start_workers=True)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 800}, locale="zh-CN")
            # A web-form lead arrives; whoever it goes to opens the sandbox as themselves.
            resp = await page.request.post(f"{base}/api/leads", data=JIANGSU_LEAD)
            assert resp.status == 201
            owner = (await resp.json())["owner"]

            await page.goto(f"{base}/sandbox/?user={owner}")
            card = page.locator(".card").first
            await card.wait_for(timeout=10_000)
            assert "苏州恒锐精密机械有限公司" in await card.inner_text()

            await page.fill("#text", "帮助")
            await page.click("#send")
            await page.locator(".msg.bot .bubble", has_text="我是 leadbot").wait_for(timeout=10_000)

            await card.locator("button", has_text="接受").click()
            await page.locator(".card-status", has_text="已接受").wait_for(timeout=10_000)
            assert await card.locator("button").count() == 0
            shot = tmp_path / "sandbox.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            keep = os.environ.get("LEADBOT_SCREENSHOT_DIR")
            if keep:
                shutil.copy(shot, Path(keep) / "sandbox.png")
        finally:
            await browser.close()
