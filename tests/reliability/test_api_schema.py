"""Every JSON HTTP operation fuzzed against its OpenAPI description (bot/openapi.py) with
schemathesis: no 5xx, no hang, only documented status codes and content types, bodies that
match the description (every 4xx says why), and no secret of the configuration in any log line.

The real app runs on a real port in a thread of its own (dispatcher, delivery worker and
scheduler included, as under ``leadbot serve``), configured with an API token and per-source
intake credentials taken from the environment, as production does. Generated data is
positive and negative; some cases are steered to ids and members that exist, so the success
paths are reached too. ``LEADBOT_FUZZ_LONG=1`` runs ten times as many examples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any, cast

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select
from sqlmodel import col

from bot import openapi
from bot.app import create_app
from bot.config import Settings, load
from bot.intake_auth import sign
from bot.keys import GATEWAY
from store.db import upgrade
from store.models import InboxEvent
from tests.conftest import JIANGSU_LEAD, PG_URL, TEMPLATE, _pg_database

LONG = os.environ.get("LEADBOT_FUZZ_LONG") == "1"
MAX_EXAMPLES = 400 if LONG else 30
REQUEST_TIMEOUT_S = 10.0

# Secrets come from the environment, as the README tells operators to do.
API_TOKEN = "fuzz-api-token-q8Zr4Lw1"
INTAKE_KEY = "fuzz-intake-key-Vb7nT2xc"
INTAKE_HMAC = "fuzz-intake-hmac-Kp3sY9de"
SERVER_SECRET = "fuzz-server-secret-Hq5mR0aj"
SECRETS = (API_TOKEN, INTAKE_KEY, INTAKE_HMAC, SERVER_SECRET)
ENV = {
    "LEADBOT_SERVER__API_TOKEN": API_TOKEN,
    "LEADBOT_SERVER__SECRET": SERVER_SECRET,
    "LEADBOT_INTAKE__SOURCES__WEBSITE__API_KEY": INTAKE_KEY,
    "LEADBOT_INTAKE__SOURCES__FAIR__HMAC_SECRET": INTAKE_HMAC,
}
INTAKE_SECTION = """
[intake.sources.website]
label = "官网表单"

[intake.sources.fair]
label = "展会"
"""
MANAGEMENT = {"Authorization": f"Bearer {API_TOKEN}"}
INTAKE = {"X-Leadbot-Source": "website", "X-Leadbot-Key": INTAKE_KEY}
MEMBERS = ("lina", "zhangwei", "chenjing", "admin")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

SCHEMA = schemathesis.openapi.from_dict(openapi.spec())


def _operations() -> dict[str, APIOperation[Any, Any, Any, Any]]:
    out: dict[str, APIOperation[Any, Any, Any, Any]] = {}
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result
        out[result.ok().label] = result.ok()
    return out


OPERATIONS = _operations()
AnyCase = Case[Any]


class LogRecorder(logging.Handler):
    """Every log line of every thread, formatted as an operator would read it (tracebacks too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class LiveServer:
    """``create_app`` behind an aiohttp runner on 127.0.0.1, its loop in a background thread
    (schemathesis calls it synchronously through requests)."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.base_url = ""
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="api-schema-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        try:
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            port = runner.addresses[0][1]
            self.base_url = f"http://127.0.0.1:{port}"
        except BaseException as exc:  # noqa: BLE001  (handed to the test thread)
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(runner.cleanup())
            self.loop.close()

    def start(self) -> None:
        """Start serving; raises what start-up raised."""
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self.base_url, "server did not start within 30 s"

    def stop(self) -> None:
        """Stop serving and run the app's cleanup."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

    def inbox_failed(self) -> int:
        """Inbox events whose handler gave up (an apology was sent instead)."""
        gateway = self.app[GATEWAY]
        fut = asyncio.run_coroutine_threadsafe(
            gateway.db.run(lambda s: s.execute(select(func.count()).select_from(InboxEvent).where(col(InboxEvent.status) == "failed")).scalar_one()),
            self.loop)
        return int(fut.result(30))


class Fuzzed:
    """The running server, a session to it, and what it logged."""

    def __init__(self, server: LiveServer, log: LogRecorder, backend: str) -> None:
        self.server, self.log, self.backend = server, log, backend
        self.http = requests.Session()
        self.base_url = server.base_url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """One live server per database backend for the whole module, seeded with a lead,
    its customer and an opportunity so that id-addressed operations can succeed."""
    pg: Generator[str, None, None] | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api-schema') / 'leadbot.db'}"
    else:
        if not PG_URL:
            pytest.skip("PostgreSQL tests need LEADBOT_TEST_POSTGRES_URL (.ci/run starts a server)")
        database = cast(Generator[str, None, None], _pg_database())  # a generator: close() drops the database
        url = next(database)
        pg = database
    upgrade(url)
    path = tmp_path_factory.mktemp("api-schema-config") / "leadbot.toml"
    path.write_text(TEMPLATE + INTAKE_SECTION, encoding="utf-8")
    recorder = LogRecorder()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    with pytest.MonkeyPatch.context() as mp:
        # os.environ, not a private mapping: rules reload re-reads the file with the process environment.
        for key, value in {**ENV, "LEADBOT_DATABASE_URL": url}.items():
            mp.setenv(key, value)
        server = LiveServer(load(path))
        server.start()
        fuzz = Fuzzed(server, recorder, request.param)
        try:
            _seed(fuzz)
            yield fuzz
        finally:
            fuzz.http.close()
            server.stop()
            root.removeHandler(recorder)
            root.setLevel(old_level)
            if pg is not None:
                pg.close()


def _seed(fuzz: Fuzzed) -> None:
    # Lead 1, its customer 1, opportunity 1, and lead 2: the same customer again (merged, so it can be split).
    for _ in range(2):
        resp = fuzz.http.post(f"{fuzz.base_url}/api/leads", json=JIANGSU_LEAD, headers=INTAKE, timeout=REQUEST_TIMEOUT_S)
        assert resp.status_code == 201, resp.text
    resp = fuzz.http.post(f"{fuzz.base_url}/api/opportunities", json={"lead_id": 1, "amount": "50万"},
                          headers=MANAGEMENT, timeout=REQUEST_TIMEOUT_S)
    assert resp.status_code == 201, resp.text


def _steer(case: AnyCase, steer: int) -> AnyCase:
    """Point some generated cases at things that exist (leads 1 and 2, customer and
    opportunity 1, real members, declared scoring facts): random ids almost never do."""
    if steer == 0:
        return case
    for name in ("lead_id", "opp_id", "customer_id"):
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = "2" if name == "lead_id" and steer % 2 == 0 else "1"
    if case.query and "user" in case.query:
        case.query["user"] = MEMBERS[steer % len(MEMBERS)]
    if isinstance(case.body, dict):
        body = case.body
        for who in ("user", "by"):
            if who in body:
                body[who] = MEMBERS[steer % len(MEMBERS)]
        if case.operation.label == "POST /api/leads" and steer >= 2:
            # Random text is rarely a phone number or a province: make it one, keep the rest.
            body.update(phone=("13912345678", "0512-66881234", "+86 138 0013 8000")[steer % 3], province=("江苏", "广东省", "京")[steer % 3])
            if steer >= 4:
                body.pop("budget", None)
                body.pop("source", None)
        if case.operation.label == "POST /api/opportunities":
            body["lead_id" if steer % 2 else "customer_id"] = 1
            body.pop("owner", None) if steer % 3 else body.update(owner="lina")
            if steer >= 4:
                body.update(amount="50万", expected_close_on="2026-06-30")
        if case.operation.label == "POST /api/scoring/facts":
            body.update(entity="customer" if steer % 2 else "lead", id=1)
            body["facts"] = {"微信互动次数": steer, "官网停留分钟": "2.5"}
    return case


def _headers(label: str, credentials: int) -> dict[str, str]:
    """Mostly valid credentials; sometimes none or wrong ones, which must be a documented 401/403."""
    if credentials == 8:
        return {}
    if credentials == 9:
        return {"Authorization": "Bearer wrong", "X-Leadbot-Source": "website", "X-Leadbot-Key": "wrong"}
    if label == "POST /api/leads":
        return dict(INTAKE)
    return dict(MANAGEMENT)


def _call_signed(fuzz: Fuzzed, case: AnyCase) -> requests.Response:
    """The HMAC variant of intake, signed over the exact bytes sent."""
    kwargs = case.as_transport_kwargs(base_url=fuzz.base_url, headers={})
    if "json" in kwargs:
        kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
    raw = kwargs.get("data") or b""
    raw = raw if isinstance(raw, bytes) else str(raw).encode()
    kwargs["data"] = raw
    stamp = str(int(time.time()))
    kwargs["headers"].update({"X-Leadbot-Source": "fair", "X-Leadbot-Timestamp": stamp,
                              "X-Leadbot-Signature": sign(INTAKE_HMAC, stamp, raw)})
    return fuzz.http.request(**kwargs, timeout=REQUEST_TIMEOUT_S)


def _json_safe(body: Any) -> bool:
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _cases(label: str) -> st.SearchStrategy[tuple[AnyCase, int, int]]:
    op = OPERATIONS[label]
    modes = [op.as_strategy(GenerationMode.POSITIVE)]
    if op.path_parameters or op.query or op.body:
        modes.append(op.as_strategy(GenerationMode.NEGATIVE))
    return st.tuples(st.one_of(modes), st.integers(0, 5), st.integers(0, 9))


def _fuzz(fuzz: Fuzzed, label: str) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=not LONG, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_cases(label))
    def run(drawn: tuple[AnyCase, int, int]) -> None:
        case, steer, credentials = drawn
        case = _steer(case, steer)
        if label == "POST /api/leads" and credentials == 7:
            case.validate_response(_call_signed(fuzz, case), checks=CHECKS)
            return
        if not _json_safe(case.body):
            # Negative data may hold NaN or Infinity, which requests will not write.
            case.validate_response(_send_raw(fuzz, case, _headers(label, credentials)), checks=CHECKS)
            return
        case.call_and_validate(base_url=fuzz.base_url, session=fuzz.http, headers=_headers(label, credentials),
                               checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

    run()


# Values that JSON (as Python reads it) or a URL can carry and that have broken handlers
# or databases before: NUL (PostgreSQL refuses it), lone surrogates (cannot be encoded),
# ids beyond INTEGER, numbers beyond any column, NaN and infinities, booleans as numbers,
# look-alike digits, and types the field does not expect.
HOSTILE_TEXT = ["\x00", "名\x00称", "\ud800", "a\udfffb", "\u202e\u200b", "9" * 400, "%00", "<script>", "𠀀" * 300, " ", ""]
HOSTILE_NUMBERS: list[Any] = [0, -1, 2**31, 2**63, 10**40, 1e308, -1e308, float("nan"), float("inf"), True, 1.5]
HOSTILE = st.sampled_from(HOSTILE_TEXT + HOSTILE_NUMBERS + [None, [], {}, {"$ne": 1}, ["a"]])
# A URL carries bytes: a lone surrogate cannot be written into one (the server sees U+FFFD).
HOSTILE_QUERY = [t for t in HOSTILE_TEXT if "\ud800" not in t and "\udfff" not in t] + ["2147483648", "0001-01-01", "9999-12-31"]
HOSTILE_IDS = ["0", "2147483648", "9223372036854775808", "999999999999999999", "00000000000000000001", "²", "١", "1.0", "-1"]


def _body_fields(op: Any) -> list[str]:
    schema = op.definition.raw.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = openapi.spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {}))


def _hostile_cases(label: str) -> st.SearchStrategy[AnyCase]:
    """A valid (steered) case with one field, path id or query value made hostile."""
    op = OPERATIONS[label]

    @st.composite
    def build(draw: st.DrawFn) -> AnyCase:
        case = _steer(draw(op.as_strategy(GenerationMode.POSITIVE)), draw(st.integers(1, 5)))
        # Schemathesis would re-validate the edited case against the schema, and its validator
        # cannot encode a lone surrogate; the checks of the response do not need it.
        case.freeze_metadata()
        if case.path_parameters:
            name = draw(st.sampled_from(sorted(case.path_parameters)))
            case.path_parameters[name] = draw(st.sampled_from(HOSTILE_IDS))
        elif isinstance(case.body, dict):
            fields, target = _body_fields(op), case.body
            facts = target.get("facts")
            if label == "POST /api/scoring/facts" and isinstance(facts, dict) and draw(st.booleans()):
                fields, target = ["微信互动次数", "官网停留分钟"], facts
            target[draw(st.sampled_from(fields))] = draw(HOSTILE)
        elif op.query:
            params = [p.name for p in op.query]
            case.query = {**(case.query or {}), draw(st.sampled_from(params)): draw(st.sampled_from(HOSTILE_QUERY))}
        return case

    return build()


def _send_raw(fuzz: Fuzzed, case: AnyCase, headers: dict[str, str]) -> requests.Response:
    """Send the case's body as Python's JSON writer spells it (NaN, Infinity and lone
    surrogates included, as a hostile client may), which requests refuses to do."""
    kwargs: dict[str, Any] = {"method": case.method, "url": fuzz.base_url + case.formatted_path,
                              "params": case.query, "headers": dict(headers)}
    if isinstance(case.body, dict):
        kwargs["data"] = json.dumps(case.body).encode()
        kwargs["headers"]["Content-Type"] = "application/json"
    return fuzz.http.request(**kwargs, timeout=REQUEST_TIMEOUT_S)


HOSTILE_OPERATIONS = sorted(label for label, op in OPERATIONS.items() if op.path_parameters or op.query or op.body)


@pytest.mark.parametrize("label", HOSTILE_OPERATIONS)
def test_hostile_values_get_a_reason(fuzzed: Fuzzed, label: str) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=not LONG, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_hostile_cases(label))
    def run(case: AnyCase) -> None:
        case.validate_response(_send_raw(fuzzed, case, _headers(label, 5)), checks=CHECKS)

    run()
    leaked = [line for line in fuzzed.log.lines if any(s in line for s in SECRETS)]
    assert not leaked, leaked[:3]


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_conforms(fuzzed: Fuzzed, label: str) -> None:
    _fuzz(fuzzed, label)
    leaked = [line for line in fuzzed.log.lines if any(s in line for s in SECRETS)]
    assert not leaked, leaked[:3]


def test_spec_describes_every_json_route(fuzzed: Fuzzed) -> None:
    """A route added without a description would escape the fuzzing: every JSON route of the
    app (platform callbacks and the sandbox page aside) is in the spec, and the spec is served."""
    described = {(m.upper(), p) for p, item in openapi.spec()["paths"].items() for m in item}
    routes = {(r.method, r.resource.canonical) for r in fuzzed.server.app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    undocumented = {(m, p) for m, p in routes
                    if not p.startswith("/callback/") and p not in ("/sandbox", "/sandbox/")} - described
    assert not undocumented, sorted(undocumented)
    resp = fuzzed.http.get(f"{fuzzed.base_url}{openapi.PATH}", headers=MANAGEMENT, timeout=REQUEST_TIMEOUT_S)
    assert resp.status_code == 200 and resp.json()["paths"].keys() == openapi.spec()["paths"].keys()


def test_no_handler_gave_up_on_fuzzed_chat(fuzzed: Fuzzed) -> None:
    """Fuzzed sandbox messages and clicks reach the handlers through the inbox; none of them
    may make a handler fail for good (the member would get an apology instead of an answer)."""
    deadline = time.monotonic() + 20
    gateway = fuzzed.server.app[GATEWAY]
    while time.monotonic() < deadline:
        fut = asyncio.run_coroutine_threadsafe(
            gateway.db.run(lambda s: s.execute(select(func.count()).select_from(InboxEvent).where(col(InboxEvent.status) == "pending")).scalar_one()),
            fuzzed.server.loop)
        if fut.result(30) == 0:
            break
        time.sleep(0.1)
    assert fuzzed.server.inbox_failed() == 0
