"""Signed outbound webhooks (issue 7): domain events reach a fake ERP/MES receiver through the
outbox, mapped and signed, exactly once, with retries and dead letters as for chat messages."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.config import ConfigError, Settings, parse
from bot.keys import SETTINGS
from bot.webhooks import retry_after_seconds, sign, verify
from handlers.context import FakeClock
from handlers.webhooks import apply_mapping, event_payload, outgoing_for, parse_webhooks
from store.models import OutboxMessage
from tests.conftest import JIANGSU_LEAD, TEMPLATE, SandboxDriver

ERP_SECRET = "erp-secret-0123456789abcdef"
MES_SECRET = "mes-secret-fedcba9876543210"

STAGES = """
[[stages]]
name = "首通电话"
notify = []

[[stages]]
name = "报价"
required = ["报价金额"]

[[stages]]
name = "签约"
outcome = "won"
required = ["客户PO号", "合同金额"]
template = "{客户名称} 已签约，PO {客户PO号}"

[[stages]]
name = "输单"
outcome = "lost"
required = ["输单原因"]
"""


@dataclass
class Receiver:
    """A fake ERP/MES endpoint that checks signatures the way a receiver would (hmac, no leadbot code)."""

    clock: FakeClock
    secrets: dict[str, str]
    status: int = 200
    retry_after: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def check(self, hook: str, headers: Any, body: bytes) -> str | None:
        ts = headers.get("X-Leadbot-Timestamp", "")
        given = headers.get("X-Leadbot-Signature", "")
        expected = "sha256=" + hmac.new(self.secrets[hook].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            return "bad signature"
        if not ts.isdigit() or abs(self.clock.now().timestamp() - int(ts)) > 300:
            return "stale timestamp"
        return None

    async def handle(self, request: web.Request) -> web.Response:
        hook = request.match_info["hook"]
        body = await request.read()
        record = {"hook": hook, "headers": dict(request.headers), "body": body}
        self.attempts.append(record)
        problem = self.check(hook, request.headers, body)
        if problem:
            self.rejected.append(problem)
            return web.json_response({"error": problem}, status=401)
        if self.status != 200:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response({"error": "unavailable"}, status=self.status, headers=headers)
        self.accepted.append({**record, "json": json.loads(body)})
        return web.json_response({"ok": True})

    def got(self, hook: str) -> list[dict[str, Any]]:
        return [r["json"] for r in self.accepted if r["hook"] == hook]


@pytest.fixture
async def receiver(aiohttp_server: Any, clock: FakeClock) -> tuple[Receiver, TestServer]:
    rec = Receiver(clock, {"erp": ERP_SECRET, "mes": MES_SECRET})
    app = web.Application()
    app.router.add_post("/hooks/{hook}", rec.handle)
    server = await aiohttp_server(app)
    return rec, server


def webhook_toml(base: str) -> str:
    return f"""
[[webhooks]]
name = "erp"
url = "{base}/hooks/erp"
events = ["contract_signed"]
mapping = {{ "客户名称" = "customer_name", "客户PO号" = "订单ID", "金额" = "amount_yuan" }}
secret_env = "ERP_WEBHOOK_SECRET"

[[webhooks]]
name = "mes"
url = "{base}/hooks/mes"
events = ["stage_changed", "ticket_escalated"]
secret_env = "MES_WEBHOOK_SECRET"
"""


def settings_with(db_url: str, tmp_path: Path, extra: str, environ: dict[str, str] | None = None) -> Settings:
    """Like conftest.make_settings, with the webhook secrets in the environment given to the parser."""
    text = TEMPLATE.replace('secret = ""', 'secret = "test-secret-0123456789"', 1) + extra
    env = {"LEADBOT_DATABASE_URL": db_url, "ERP_WEBHOOK_SECRET": ERP_SECRET, "MES_WEBHOOK_SECRET": MES_SECRET}
    if environ is not None:
        env = {"LEADBOT_DATABASE_URL": db_url, **environ}
    return parse(text, str(tmp_path / "leadbot.toml"), env)


@pytest.fixture
def settings(db_url: str, tmp_path: Path, receiver: tuple[Receiver, TestServer]) -> Settings:
    # Overrides conftest's `settings`, so conftest's `client`/`bot` run with webhooks configured.
    base = str(receiver[1].make_url("")).rstrip("/")
    return settings_with(db_url, tmp_path, STAGES + webhook_toml(base))


async def _to_quote(bot: SandboxDriver) -> str:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "接受")
    await bot.push(owner, "恒锐 进入 报价")
    await bot.push(owner, "48.5万")
    assert "已进入「报价」" in await bot.last_text(owner)
    return owner


async def _sign(bot: SandboxDriver, owner: str) -> None:
    await bot.push(owner, "恒锐 签约")
    await bot.push(owner, "客户PO号：PO-2026-0311；合同金额：50万")
    assert "已签约" in await bot.last_text(owner)


async def _outbox(bot: SandboxDriver) -> list[OutboxMessage]:
    return await bot.gateway.db.run(lambda s: list(s.execute(select(OutboxMessage).where(OutboxMessage.platform == "webhook")).scalars()))


# ----------------------------------------------------------------------------- end to end
async def test_stage_change_and_signing_reach_receivers_once_mapped_and_signed(bot: SandboxDriver, receiver: tuple[Receiver, TestServer]) -> None:
    rec, _ = receiver
    owner = await _to_quote(bot)
    # 首通电话 → 报价: MES (stage_changed, no mapping) hears it, ERP (contract_signed only) does not.
    mes = rec.got("mes")
    assert len(mes) == 1 and rec.got("erp") == []
    event = mes[0]
    assert event["kind"] == "stage_changed" and event["occurred_at"] == "2026-03-10T02:00:00Z"
    assert event["data"]["原阶段"] == "首通电话" and event["data"]["阶段"] == "报价"
    assert event["data"]["客户名称"] == "苏州恒锐精密机械有限公司" and event["data"]["报价金额"] == 485000
    assert event["data"]["金额"] == 485000 and event["data"]["负责人ID"] == owner

    await _sign(bot, owner)
    erp = rec.got("erp")
    assert erp == [{
        "event_id": erp[0]["event_id"], "kind": "contract_signed", "occurred_at": "2026-03-10T02:00:00Z",
        "data": {"customer_name": "苏州恒锐精密机械有限公司", "订单ID": "PO-2026-0311", "amount_yuan": 500000},
    }]
    headers = next(r["headers"] for r in rec.accepted if r["hook"] == "erp")
    assert headers["X-Leadbot-Event"] == "contract_signed"
    assert headers["X-Leadbot-Delivery"] == erp[0]["event_id"]
    assert headers["X-Leadbot-Signature"].startswith("sha256=")
    assert [e["data"]["阶段"] for e in rec.got("mes")] == ["报价", "签约"]
    assert rec.rejected == []

    # Draining again (and a later round) sends nothing more: exactly once.
    bot.gateway.ctx.clock.advance(hours=1)  # type: ignore[attr-defined]
    await bot.drain()
    assert len(rec.got("erp")) == 1 and len(rec.got("mes")) == 2
    assert {m.status for m in await _outbox(bot)} == {"sent"}


async def test_receiver_down_then_up_is_delivered_once_after_recovery(bot: SandboxDriver, receiver: tuple[Receiver, TestServer], clock: FakeClock) -> None:
    rec, _ = receiver
    owner = await _to_quote(bot)
    rec.status, rec.retry_after = 503, "120"
    await _sign(bot, owner)
    erp_attempts = [a for a in rec.attempts if a["hook"] == "erp"]
    assert len(erp_attempts) == 1 and rec.got("erp") == []
    row = next(m for m in await _outbox(bot) if m.recipient == "erp")
    assert row.status != "sent" and "503" in (row.last_error or "")

    clock.advance(seconds=60)  # Retry-After: 120 is honoured: not yet
    await bot.drain()
    assert len([a for a in rec.attempts if a["hook"] == "erp"]) == 1

    clock.advance(seconds=30)
    rec.status, rec.retry_after = 503, None
    clock.advance(seconds=31)
    await bot.drain()  # still down: a second try, backoff without Retry-After
    assert len([a for a in rec.attempts if a["hook"] == "erp"]) == 2

    rec.status = 200
    clock.advance(minutes=30)
    await bot.drain()
    erp = rec.got("erp")
    assert len(erp) == 1 and erp[0]["data"]["订单ID"] == "PO-2026-0311"
    ids = {a["headers"]["X-Leadbot-Delivery"] for a in rec.attempts if a["hook"] == "erp"}
    assert ids == {erp[0]["event_id"]}  # the same delivery id on every try: receivers can dedupe
    clock.advance(hours=2)
    await bot.drain()
    assert len(rec.got("erp")) == 1


async def test_client_error_is_a_dead_letter_on_metrics(bot: SandboxDriver, receiver: tuple[Receiver, TestServer], clock: FakeClock) -> None:
    rec, _ = receiver
    owner = await _to_quote(bot)
    rec.status = 400
    await _sign(bot, owner)
    rows = {m.recipient: m for m in await _outbox(bot) if m.recipient == "erp"}
    assert rows["erp"].status == "dead" and "400" in (rows["erp"].last_error or "")
    clock.advance(hours=1)
    rec.status = 200
    await bot.drain()
    assert rec.got("erp") == [] and len([a for a in rec.attempts if a["hook"] == "erp"]) == 1
    metrics = await (await bot.client.get("/metrics")).text()
    assert 'leadbot_outbox_messages{status="dead"} 2' in metrics  # erp's contract + mes's 签约 stage change


async def test_altered_body_or_timestamp_fails_the_receivers_check(bot: SandboxDriver, receiver: tuple[Receiver, TestServer]) -> None:
    rec, server = receiver
    owner = await _to_quote(bot)
    await _sign(bot, owner)
    genuine = next(r for r in rec.accepted if r["hook"] == "erp")
    headers = {k: v for k, v in genuine["headers"].items() if k.startswith("X-Leadbot-")}
    forged = genuine["body"].replace(b"500000", b"5000000")
    assert forged != genuine["body"]
    async with bot.client.session.post(server.make_url("/hooks/erp"), data=forged, headers=headers) as resp:
        assert resp.status == 401
    moved = dict(headers, **{"X-Leadbot-Timestamp": str(int(headers["X-Leadbot-Timestamp"]) + 1)})
    async with bot.client.session.post(server.make_url("/hooks/erp"), data=genuine["body"], headers=moved) as resp:
        assert resp.status == 401
    async with bot.client.session.post(server.make_url("/hooks/erp"), data=genuine["body"], headers=headers) as resp:
        assert resp.status == 200  # the genuine request still verifies (a receiver dedupes on X-Leadbot-Delivery)
    assert rec.rejected == ["bad signature", "bad signature"]


# ----------------------------------------------------------------------------- pure parts
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def test_signature_covers_body_and_timestamp_and_expires() -> None:
    body = b'{"data":{"amount_yuan":500000}}'
    sig = sign(ERP_SECRET, "1773108000", body)
    assert sig == "sha256=" + hmac.new(ERP_SECRET.encode(), b"1773108000." + body, hashlib.sha256).hexdigest()
    now = datetime.fromtimestamp(1773108000 + 10, UTC)
    assert verify(ERP_SECRET, "1773108000", body, sig, now)
    assert not verify(ERP_SECRET, "1773108000", body.replace(b"5", b"6"), sig, now)
    assert not verify(ERP_SECRET, "1773108001", body, sig, now)
    assert not verify(MES_SECRET, "1773108000", body, sig, now)
    assert not verify(ERP_SECRET, "1773108000", body, sig, now + timedelta(minutes=10))


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_seconds("120", NOW) == 120
    assert retry_after_seconds("Tue, 10 Mar 2026 02:05:00 GMT", NOW) == 300
    assert retry_after_seconds("soon", NOW) is None and retry_after_seconds(None, NOW) is None
    assert retry_after_seconds("999999", NOW) == 3600


def test_payload_is_stable_and_mapping_drops_unmapped_fields() -> None:
    hooks = parse_webhooks([
        {"name": "erp", "url": "https://erp.example.com/x", "events": ["contract_signed"], "secret_env": "S",
         "mapping": {"客户PO号": "订单ID", "金额": "amount_yuan"}},
        {"name": "bi", "url": "https://bi.example.com/x", "events": ["stage_changed"], "secret_env": "S"},
    ], {"S": ERP_SECRET})
    data = {"客户PO号": "PO-1", "金额": 12.5, "负责人": "李雷"}
    out = outgoing_for(hooks, "contract_signed", data, NOW, "in:sandbox:7:opp1")
    assert len(out) == 1 and out[0].platform == "webhook" and out[0].recipient == "erp" and out[0].member_id == ""
    again = outgoing_for(hooks, "contract_signed", data, NOW, "in:sandbox:7:opp1")
    assert again == out  # a replayed cause gives the same event id and dedupe key
    payload = json.loads(out[0].text)
    assert out[0].dedupe_key == f"hook:erp:{payload['event_id']}"
    assert payload["occurred_at"] == "2026-03-10T02:00:00Z" and payload["data"]["负责人"] == "李雷"
    assert apply_mapping(payload, hooks[0].mapping)["data"] == {"订单ID": "PO-1", "amount_yuan": 12.5}
    assert apply_mapping(payload, hooks[1].mapping) == payload
    assert outgoing_for(hooks, "ticket_escalated", data, NOW, "x") == []
    assert event_payload("stage_changed", data, NOW) == event_payload("stage_changed", data, NOW)
    with pytest.raises(ValueError):
        event_payload("lead_created", data, NOW)


@pytest.mark.parametrize("entry, env, key, words", [
    ('name = "erp hook"\nurl = "https://e.example.com"\nevents = ["stage_changed"]\nsecret_env = "S"', {"S": ERP_SECRET}, "webhooks[0].name", "名称只能包含"),
    ('name = "erp"\nurl = "https://e.example.com"\nevents = ["stage_change"]\nsecret_env = "S"', {"S": ERP_SECRET}, "webhooks[0].events", "stage_changed"),
    ('name = "erp"\nurl = "https://e.example.com"\nevents = ["stage_changed"]\nsecret_env = "ERP_WEBHOOK_SECRET"', {}, "webhooks[0].secret_env", "ERP_WEBHOOK_SECRET 未设置"),
    ('name = "erp"\nurl = "https://e.example.com"\nevents = ["stage_changed"]\nsecret_env = "S"', {"S": "short"}, "webhooks[0].secret_env", "太短"),
    ('name = "erp"\nurl = "ftp://e.example.com"\nevents = ["stage_changed"]\nsecret_env = "S"', {"S": ERP_SECRET}, "webhooks[0].url", "https://"),
    ('name = "erp"\nurl = "https://e.example.com"\nevents = ["stage_changed"]\nsecret = "inline"', {"S": ERP_SECRET}, "webhooks[0].secret", "secret_env"),
    ('name = "erp"\nurl = "https://e.example.com"\nevents = ["stage_changed"]\nsecret_env = "S"\nmapping = { "a" = "x", "b" = "x" }', {"S": ERP_SECRET}, "webhooks[0].mapping", "同一个字段"),
])
def test_config_errors_are_refused_with_line_and_reason(db_url: str, tmp_path: Path, entry: str, env: dict[str, str], key: str, words: str) -> None:
    extra = "\n[[webhooks]]\n" + entry + "\n"
    with pytest.raises(ConfigError) as err:
        settings_with(db_url, tmp_path, extra, env)
    assert err.value.key == key and words in str(err.value)
    header = TEMPLATE.count("\n") + 2  # the line of [[webhooks]] in the appended text
    assert err.value.line is not None and header <= err.value.line <= header + entry.count("\n") + 1


def test_env_override_of_the_array_is_refused_with_a_hint(db_url: str, tmp_path: Path) -> None:
    extra = '\n[[webhooks]]\nname = "erp"\nurl = "https://e.example.com"\nevents = ["stage_changed"]\nsecret_env = "S"\n'
    with pytest.raises(ConfigError) as err:
        settings_with(db_url, tmp_path, extra, {"S": ERP_SECRET, "LEADBOT_WEBHOOKS__ERP__SECRET": "x"})
    assert "secret_env" in str(err.value)


def test_no_webhooks_means_none(db_url: str, tmp_path: Path) -> None:
    assert settings_with(db_url, tmp_path, "").webhooks == ()


async def test_ticket_escalation_reaches_the_subscribed_receiver_once(bot: SandboxDriver, receiver: tuple[Receiver, TestServer], clock: FakeClock) -> None:
    from scheduler.scans import scan_tickets
    from store.models import Ticket

    rec, _ = receiver
    gateway = bot.gateway
    settings = bot.client.app[SETTINGS]
    now = clock.now()

    def open_overdue(session: Any) -> int:
        ticket = Ticket(owner_id="chenjing", priority="P1", status="open", text="恒锐压装机报错 E04，客户催修",
                        sla_due_at=now - timedelta(minutes=1), created_at=now - timedelta(hours=3), updated_at=now)
        session.add(ticket)
        session.flush()
        assert ticket.id is not None
        return ticket.id

    ticket_id = await gateway.db.run(open_overdue)

    def scan(session: Any) -> None:
        gateway.enqueue(session, scan_tickets(session, gateway.ctx, clock.now(), settings.scheduler), clock.now())

    await gateway.db.run(scan)
    await gateway.db.run(scan)  # the step already moved: no second event
    await bot.drain()
    events = rec.got("mes")
    assert [e["kind"] for e in events] == ["ticket_escalated"]
    data = events[0]["data"]
    assert data["负责人"] == "陈静" and data["工单ID"] == ticket_id and data["升级步骤"] == 1 and data["优先级"] == "P1" and data["升级原因"] == "未接单"
    assert rec.got("erp") == []  # not subscribed to ticket_escalated


async def test_adapter_timeouts_and_429_are_retried_other_4xx_permanent(aiohttp_server: Any, clock: FakeClock) -> None:
    import asyncio

    from bot.gateway import DeliveryError
    from bot.webhooks import WebhookAdapter
    from handlers.webhooks import Webhook

    answers = {"slow": 200, "busy": 429, "gone": 410}

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["hook"]
        if name == "slow":
            await asyncio.sleep(1.0)
        return web.Response(status=answers[name], headers={"Retry-After": "42"} if name == "busy" else {})

    app = web.Application()
    app.router.add_post("/{hook}", handle)
    server = await aiohttp_server(app)
    hooks = [Webhook(n, str(server.make_url(f"/{n}")), ("stage_changed",), secret=ERP_SECRET, timeout_seconds=0.2) for n in answers]
    adapter = WebhookAdapter(hooks, clock)
    await adapter.start()
    try:
        text = outgoing_for(hooks[:1], "stage_changed", {"商机": "x"}, clock.now(), "c")[0].text
        for name, permanent, retry_after in (("slow", False, None), ("busy", False, 42), ("gone", True, None), ("unknown", True, None)):
            msg = OutboxMessage(platform="webhook", recipient=name, kind="text", payload=json.dumps({"text": text}),
                                dedupe_key=name, next_attempt_at=clock.now(), created_at=clock.now())
            with pytest.raises(DeliveryError) as err:
                await adapter.deliver(msg, None, None)
            assert (err.value.permanent, err.value.retry_after) == (permanent, retry_after), name
    finally:
        await adapter.close()
