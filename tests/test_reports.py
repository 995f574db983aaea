"""Manager commands in chat, GET /api/metrics/summary, the business gauges and ``leadbot report``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlmodel import Session

from bot import cli, metrics_api
from bot.keys import GATEWAY
from cards.html import render_html
from handlers import metrics, reports, router
from handlers.context import FakeClock, HandlerContext
from handlers.events import InboundEvent
from nlp.calendar import SHANGHAI
from store.db import Database
from tests.conftest import SandboxDriver
from tests.metrics_fixture import NOW, seed_week

# Friday of the week after the fixture's week: "上周" is the fixture's week.
FRIDAY = datetime(2026, 3, 13, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    db = Database(db_url)
    with db.session() as s:
        seed_week(s)
        s.commit()
        yield s
    db.close()


def _say(session: Session, user: str, text: str, now: datetime = FRIDAY) -> list:
    ctx = HandlerContext(clock=FakeClock(now), secret="test-secret-0123456789")
    event = InboundEvent(platform="sandbox", platform_user=user, kind="text", received_at=now, text=text)
    return router.handle(session, event, ctx, "in:test:1")


def _png_ok(data: bytes | None) -> None:
    assert data is not None and Image.open(io.BytesIO(data)).format == "PNG"
    assert len(data) <= min(reports.charts.IMAGE_LIMITS.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("报表", True), ("报表 本月", True), ("报表本月", True), ("雷达图 销售 本月", True), ("热力图 张伟", True),
     ("团队看板", True), ("报表已经发给客户了，等回复", False), ("客户要看报表", False), ("", False)],
)
def test_which_texts_are_report_commands(text: str, expected: bool) -> None:
    event = InboundEvent(platform="sandbox", platform_user="x", kind="text", received_at=FRIDAY, text=text)
    assert reports.is_report_command(event) is expected


def test_manager_gets_the_report_card_for_their_region(session: Session) -> None:
    out = _say(session, "chenjing", "报表 上周")
    assert len(out) == 1 and out[0].kind == "card"
    card = out[0].card
    assert card.title == "线索报表 · 华东 · 上周"
    fields = dict((f.label, f.value) for f in card.fields)
    # 华东 of the fixture week: L1 L2 L3 L4 L6; L3 invalid.
    assert fields["新线索"] == "5 条（无效 1）"
    # 24 h: eligible L1 L2 L4 L6; only L1 did all four steps.
    assert fields["24小时动作完成率"] == "25.0%（1/4）"
    assert fields["48小时未分配率"] == "20.0%（1/5）"
    assert "展会" in card.text  # the worst black-hole sources are named
    _png_ok(card.image_png)


def test_rep_is_politely_refused(session: Session) -> None:
    out = _say(session, "zhangwei", "报表")
    assert out[0].kind == "text" and "经理" in out[0].text and out[0].card is None


def test_manager_cannot_look_at_another_region(session: Session) -> None:
    out = _say(session, "chenjing", "报表 华南")
    assert out[0].kind == "text" and "华东" in out[0].text and "华南" in out[0].text
    out = _say(session, "chenjing", "热力图 刘洋")
    assert out[0].kind == "text" and "刘洋" in out[0].text


def test_unknown_argument_gets_the_usage(session: Session) -> None:
    out = _say(session, "chenjing", "报表 火星")
    assert out[0].kind == "text" and "火星" in out[0].text and "用法" in out[0].text


def test_admin_radar_by_region(session: Session) -> None:
    card = _say(session, "admin", "雷达图 区域 上周")[0].card
    assert card.title == "线索健康度雷达 · 全公司 · 上周"
    assert "华东：" in card.text and "华南：" in card.text
    _png_ok(card.image_png)


def test_radar_by_rep_within_a_region(session: Session) -> None:
    card = _say(session, "huangwei", "雷达图销售上周")[0].card
    assert card.title == "线索健康度雷达 · 华南 · 上周"
    assert "刘洋：" in card.text and "张伟" not in card.text


def test_team_dashboard_and_heatmap(session: Session) -> None:
    team = _say(session, "chenjing", "团队看板 上周")[0].card
    assert "张伟：线索 3" in team.text and "李娜：线索 1" in team.text
    assert "报价打开率：未采集" in team.text
    _png_ok(team.image_png)
    heat = _say(session, "chenjing", "热力图 张伟 上周")[0].card
    assert heat.title == "流程热力图 · 张伟 · 上周"
    assert "待首触" in heat.text  # L6 waits for its first contact far beyond the 8-hour norm
    _png_ok(heat.image_png)


def test_report_card_renders_its_chart_in_html(session: Session) -> None:
    card = _say(session, "chenjing", "报表 上周")[0].card
    html = render_html(card, "c1")
    assert 'src="data:image/png;base64,iVBORw0KGgo' in html


async def test_manager_asks_in_the_sandbox(bot: SandboxDriver, clock: FakeClock) -> None:
    def seed(s: Session) -> None:
        seed_week(s, with_org=False)

    await bot.gateway.db.run(seed)
    clock.set(FRIDAY)
    await bot.push("chenjing", "报表 上周")
    cards = await bot.cards("chenjing")
    assert cards and cards[-1]["title"] == "线索报表 · 华东 · 上周"
    await bot.push("zhangwei", "团队看板")
    assert "经理" in await bot.last_text("zhangwei")


async def test_summary_api(bot: SandboxDriver, clock: FakeClock) -> None:
    # The lead mounts these routes in bot/app.py; here they sit on a small app sharing the gateway.
    await bot.gateway.db.run(lambda s: seed_week(s, with_org=False))
    clock.set(NOW)
    app = web.Application()
    app[GATEWAY] = bot.gateway
    metrics_api.add_routes(app)
    async with TestClient(TestServer(app)) as c:
        resp = await c.get("/api/metrics/summary", params={"since": "2026-03-02", "until": "2026-03-08"})
        assert resp.status == 200
        data = await resp.json()
        assert data["leads"] == 7 and data["action_24h"]["num"] == 1 and data["action_24h"]["den"] == 6
        assert data["black_hole"]["by_source"]["展会"]["value"] == 1.0
        resp = await c.get("/api/metrics/summary", params={"since": "2026-03-02", "until": "2026-03-08", "region": "华南"})
        assert (await resp.json())["leads"] == 2
        for bad in ({"since": "03/02/2026"}, {"period": "year"}, {"since": "2026-03-08", "until": "2026-03-01"}):
            resp = await c.get("/api/metrics/summary", params=bad)
            assert resp.status == 400 and "error" in await resp.json()
        resp = await c.get("/api/metrics/summary", params={"period": "month"})
        assert (await resp.json())["period"]["label"] == "本月"


def test_business_gauges(session: Session) -> None:
    lines = metrics_api.business_gauges(session, NOW)
    assert "# TYPE leadbot_lead_black_hole_ratio gauge" in lines
    values = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in lines if not line.startswith("#")}
    period = metrics.Period(NOW - metrics.timedelta(days=30), NOW, "")
    s = metrics.summary(session, NOW, period)
    assert float(values['leadbot_lead_unassigned_48h_ratio{region="all"}']) == pytest.approx(s.unassigned_48h.value)
    assert float(values['leadbot_lead_black_hole_ratio{region="华南"}']) == pytest.approx(
        metrics.summary(session, NOW, period, metrics.Scope(region="华南")).black_holes.overall.value)
    assert values['leadbot_leads_created{region="all"}'] == "9"
    assert float(values['leadbot_lead_to_opportunity_median_days{region="华东"}']) == pytest.approx(3 + 0.5 / 24, abs=1e-4)
    # Exactly one sample per label set, every sample preceded by its HELP and TYPE.
    assert len(values) == sum(1 for line in lines if not line.startswith("#"))


def test_business_gauges_on_an_empty_database(db_url: str) -> None:
    db = Database(db_url)
    try:
        lines = db.transaction(lambda s: metrics_api.business_gauges(s, NOW))
    finally:
        db.close()
    assert 'leadbot_lead_black_hole_ratio{region="all"} NaN' in lines
    assert 'leadbot_leads_created{region="all"} 0' in lines


def _config(tmp_path: Path, db_url: str) -> str:
    from tests.conftest import TEMPLATE

    cfg = tmp_path / "leadbot.toml"
    cfg.write_text(TEMPLATE.replace('secret = ""', 'secret = "test-secret-0123456789"', 1)
                   .replace('url = "sqlite:///leadbot.db"', f'url = "{db_url}"', 1), encoding="utf-8")
    return str(cfg)


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "png"])
def test_leadbot_report(session: Session, db_url: str, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"report.{fmt}"
    args = ["report", "--since", "2026-03-02", "--until", "2026-03-08", "--now", "2026-03-16T10:00+08:00",
            "--format", fmt, "--out", str(out), "-c", _config(tmp_path, db_url)]
    assert cli.main(args) == 0
    if fmt == "json":
        data = json.loads(out.read_text(encoding="utf-8"))
        assert data["untouched_72h"] == {"num": 3, "den": 6, "value": 0.5}
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
        assert rows[0]["name"] == "合计" and rows[0]["leads"] == "7"
        liuyang = next(r for r in rows if r["rep"] == "liuyang")
        assert liuyang["objection_median_hours"] == "23.00" and liuyang["quote_open_rate"] == "未采集"
    elif fmt == "png":
        _png_ok(out.read_bytes())
    else:
        text = out.read_text(encoding="utf-8")
        assert "24小时动作完成率：16.7%（1/6）" in text and "刘洋" in text


def test_leadbot_report_refuses_bad_input(session: Session, db_url: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, db_url)
    assert cli.main(["report", "--since", "2026/03/02", "-c", cfg]) == 2
    assert cli.main(["report", "--since", "2026-03-02", "--format", "png", "-c", cfg]) == 2
    assert cli.main(["report", "--since", "2026-03-02", "--now", "2026-03-16T10:00", "-c", cfg]) == 2


def test_text_report_to_stdout(session: Session, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--since", "2026-03-02", "--until", "2026-03-08", "--now", "2026-03-16T10:00+08:00",
                     "--region", "华南", "-c", _config(tmp_path, db_url)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("线索报表 · 华南") and "新线索：2 条（无效 0）" in out
    assert date(2026, 3, 2).isoformat() in out
