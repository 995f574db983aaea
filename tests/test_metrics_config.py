"""[metrics] in leadbot.toml: thresholds change what the cards say; mistakes name file, line and key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.config import ConfigError, Settings, load
from handlers import metrics, router
from handlers.context import FakeClock, HandlerContext
from handlers.events import InboundEvent
from nlp.calendar import SHANGHAI
from store.db import Database
from tests.conftest import TEMPLATE
from tests.metrics_fixture import seed_week
from tests.test_scheduler_world import World, make_world, sh

FRIDAY = datetime(2026, 3, 13, 10, 0, tzinfo=SHANGHAI)


def write_config(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The shipped template with ``edits`` (old, new) applied, as leadbot.toml."""
    text = TEMPLATE.replace('secret = ""', 'secret = "test-secret-0123456789"', 1)
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "leadbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_config(tmp_path: Path, db_url: str, *edits: tuple[str, str]) -> Settings:
    return load(write_config(tmp_path, *edits), {"LEADBOT_DATABASE_URL": db_url})


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


# ---------------------------------------------------------------- the weekly risk report


def weekly_east(world: World, thursday: int) -> dict[str, str]:
    """A lead created Thursday 10:00 and first called at 16:30 (6.5 business hours); next Monday's report for 华东."""
    world.clock.set(sh(2026, 3, thursday, 10, 0))
    lead = world.lead()
    assert lead.id is not None and lead.owner_id
    world.touch(lead.id, sh(2026, 3, thursday, 16, 30), text="电话沟通了压装机需求", member=lead.owner_id)
    world.run(sh(2026, 3, thursday + 4, 9, 0))
    card = next(o.card for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:weekly:chenjing:"))
    assert card is not None
    return {f.label: f.value for f in card.fields} | {"text": card.text}


def test_the_weekly_report_follows_the_black_hole_threshold_in_leadbot_toml(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, sh(2026, 3, 12, 10, 0), load_config(tmp_path, db_url).scheduler)
    try:
        default = weekly_east(world, 12)
        assert default["线索黑洞率（8工时未触达）"] == "0%（0/1）"  # called within a working day
        stricter = load_config(tmp_path, db_url, ("black_hole_business_hours = 8", "black_hole_business_hours = 4"))
        assert stricter.metrics.black_hole_business_hours == 4.0 and stricter.scheduler.metrics == stricter.metrics
        world.settings = stricter.scheduler
        got = weekly_east(world, 19)  # the same story a week later, under the edited file
        assert got["线索黑洞率（4工时未触达）"] == "100%（1/1）"
        assert "4 个工作小时内没有首次触达" in got["text"]
    finally:
        world.db.close()


def test_a_context_carrying_reloaded_settings_wins_over_start_up(db_url: str, tmp_path: Path) -> None:
    """What a rules reload swaps (``ctx.metrics``) is what the scans use from then on."""
    start = load_config(tmp_path, db_url)
    reloaded = load_config(tmp_path, db_url, ("black_hole_business_hours = 8", "black_hole_business_hours = 4"))
    ctx = HandlerContext(clock=FakeClock(FRIDAY), secret="s")
    assert metrics.settings_of(ctx, start.metrics).black_hole_business_hours == 8.0
    setattr(ctx, "metrics", reloaded.metrics)  # noqa: B010 - bot.app / reload_rules set this field
    assert metrics.settings_of(ctx, start.metrics).black_hole_business_hours == 4.0


# ---------------------------------------------------------------- 报表 in chat


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    db = Database(db_url)
    with db.session() as s:
        seed_week(s)
        s.commit()
        yield s
    db.close()


def report_fields(session: Session, settings: metrics.MetricSettings | None) -> dict[str, str]:
    ctx = HandlerContext(clock=FakeClock(FRIDAY), secret="test-secret-0123456789")
    if settings is not None:
        setattr(ctx, "metrics", settings)  # noqa: B010 - as bot.app.handler_context will
    event = InboundEvent(platform="sandbox", platform_user="chenjing", kind="text", received_at=FRIDAY, text="报表 上周")
    out = router.handle(session, event, ctx, "in:test:1")
    card = out[0].card
    assert card is not None
    return {f.label: f.value for f in card.fields}


def test_the_chat_report_says_what_the_configured_thresholds_give(session: Session, tmp_path: Path) -> None:
    default = report_fields(session, None)
    assert default["线索黑洞率（8工时未触达）"] == "75.0%（3/4）"  # L2 was first called after 12 business hours; L4, L6 never
    configured = load(write_config(
        tmp_path, ("black_hole_business_hours = 8", "black_hole_business_hours = 16"),
        ("activation_days = 7", "activation_days = 3"), ("activation_interactions = 2", "activation_interactions = 1"),
    ), {}).metrics
    got = report_fields(session, configured)
    assert got["线索黑洞率（16工时未触达）"] == "50.0%（2/4）"  # L2 is now in time
    assert "线索激活率（3天≥1次有效互动）" in got


# ---------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("old", "new", "key", "zh"),
    [
        ("black_hole_business_hours = 8", "black_hole_business_hours = -1", "metrics.black_hole_business_hours", "必须大于 0"),
        ("black_hole_business_hours = 8", 'black_hole_business_hours = "八小时"', "metrics.black_hole_business_hours", "应为数字"),
        ("min_interaction_chars = 6", "min_interaction_chars = 2.5", "metrics.min_interaction_chars", "应为整数"),
        ("activation_days = 7", "activation_dayz = 7", "metrics.activation_dayz", "是否指 `activation_days`"),
        ('high_potential_budget = "50万"', 'high_potential_budget = "五十万"', "metrics.high_potential_budget", "金额"),
        ('key_fields = ["公司"', 'key_fields = ["公司名"', "metrics.key_fields", "字段 `公司名` 不存在"),
        ('"待首触" = 8', '"待首处" = 8', "metrics.stage_norm_hours.待首处", "是否指 `待首触`"),
        ('"待首触" = 8', '"待首触" = 0', "metrics.stage_norm_hours.待首触", "必须大于 0"),
        ("alert_retention_days = 90", "alert_retention_days = 20", "scheduler.alert_retention_days", "至少要保留 37 天"),
        ("inbox_retention_days = 30", "inbox_retention_days = 3", "scheduler.inbox_retention_days", "至少保留 7 天"),
    ],
)
def test_a_bad_value_names_file_line_and_key(tmp_path: Path, old: str, new: str, key: str, zh: str) -> None:
    path = write_config(tmp_path, (old, new))
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    err = caught.value
    assert (err.key, err.line) == (key, line_of(path, new))
    text = str(err)
    assert f"{path} 第{err.line}行" in text and zh in text
    assert f"{path}:{err.line}: {key}:" in text  # the English line
    assert err.en.startswith(("must", "unknown"))


def test_environment_overrides_reach_the_metrics(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    got = load(path, {"LEADBOT_METRICS__BLACK_HOLE_BUSINESS_HOURS": "4", "LEADBOT_SCHEDULER__OUTBOX_RETENTION_DAYS": "14"})
    assert got.metrics.black_hole_business_hours == 4.0
    assert got.scheduler.outbox_retention.days == 14


def test_the_template_defaults_are_the_code_defaults(tmp_path: Path) -> None:
    got = load(write_config(tmp_path), {})
    assert got.metrics == metrics.MetricSettings()
    assert got.scheduler.alert_retention.days == 90 and got.scheduler.inbox_retention.days == 30


# ---------------------------------------------------------------- the server: API, /metrics, reload


async def test_the_api_and_prometheus_follow_metrics_and_a_reload(aiohttp_client: object, tmp_path: Path) -> None:
    from bot.app import create_app
    from store.db import upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    path = write_config(tmp_path, ("black_hole_business_hours = 8", "black_hole_business_hours = 4"))
    client = await aiohttp_client(create_app(load(path, {"LEADBOT_DATABASE_URL": url}), clock=FakeClock(FRIDAY), start_workers=False))  # type: ignore[operator]

    async def black_hole_hours() -> tuple[float, str]:
        summary = await (await client.get("/api/metrics/summary")).json()
        prometheus = await (await client.get("/metrics")).text()
        help_line = next(line for line in prometheus.splitlines() if line.startswith("# HELP leadbot_lead_black_hole_ratio"))
        return summary["black_hole"]["business_hours"], help_line

    assert await black_hole_hours() == (4.0, "# HELP leadbot_lead_black_hole_ratio 线索黑洞率 (no first touch within 4 business hours). Leads created in the last 30 days.")
    path.write_text(path.read_text(encoding="utf-8").replace("black_hole_business_hours = 4", "black_hole_business_hours = 12"), encoding="utf-8")
    assert (await client.post("/api/rules/reload")).status == 200
    hours, help_line = await black_hole_hours()
    assert hours == 12.0 and "within 12 business hours" in help_line
