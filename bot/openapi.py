"""The OpenAPI 3.1 description of leadbot's JSON HTTP API, served at ``GET /api/openapi.json``.

It describes the API as the handlers really behave (bodies, status codes, the error shape),
so ``tests/reliability/test_api_schema.py`` can fuzz every operation with schemathesis and
hold the server to it. Limits come from the code that enforces them (``handlers.leads``,
``bot.http``, ``bot.sandbox``), so the description cannot drift from them silently.

Platform callbacks (``/callback/*``) are signed platform formats, not JSON APIs of ours:
they are described in docs/platforms.zh.md, not here. The spec holds no secrets: it is meant
to be read without the management token (an entry in ``bot.app.OPEN_API``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import metadata
from typing import Any

from aiohttp import web

from bot.http import MAX_JSON_BODY
from bot.sandbox import MAX_BODY as SANDBOX_MAX_BODY
from bot.sandbox import MAX_TEXT as SANDBOX_MAX_TEXT
from handlers.leads import INVALID_REASONS, MAX_TEXT, SOURCES

PATH = "/api/openapi.json"
Schema = dict[str, Any]

LEAD_STATUSES = ("unassigned", "assigned", "accepted", "invalid")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json(_ref("Error"), description)


# The guard in bot.app.management_guard answers these before any handler runs.
GUARDED: dict[str, Schema] = {
    "401": _error("需要管理接口令牌（`Authorization: Bearer <[server] api_token>`）/ API token required"),
    "403": _error("未配置 api_token 时只允许本机调用 / loopback only"),
}
BAD_JSON = _error("请求体不是 JSON 对象，或字段有误（`error` 说明原因）/ not a JSON object, or a bad field")
TOO_LARGE = _error("请求体过大 / body too large")
ID_PATTERN = "^[0-9]{1,18}$"


def _id_param(name: str, what: str) -> Schema:
    # Any string reaches the handler: a non-number is a 400 there, not a 404 of the router.
    return {"name": name, "in": "path", "required": True, "description": f"{what}（数字）",
            "schema": {"type": "string", "pattern": ID_PATTERN, "examples": ["1"]}}


def _audit() -> Schema:
    return {"type": "array", "items": {
        "type": "object", "required": ["at", "actor", "action", "detail"],
        "properties": {"at": {"type": "string", "format": "date-time"}, "actor": {"type": "string"},
                       "action": {"type": "string"}, "detail": {"type": "string"}}}}


def _rate() -> Schema:
    return {"type": "object", "required": ["num", "den", "value"], "properties": {
        "num": {"type": "integer", "minimum": 0}, "den": {"type": "integer", "minimum": 0},
        "value": _nullable({"type": "number"})}}


def _components() -> Schema:
    text = {"type": "string"}
    nullable_text = _nullable(text)
    dt = {"type": "string", "format": "date-time"}
    form_text: dict[str, Schema] = {
        key: {"type": "string", "maxLength": MAX_TEXT.get(key, 64)} for key in ("company", "contact", "phone", "province", "city", "industry", "note")
    }
    return {
        "securitySchemes": {
            "apiToken": {"type": "http", "scheme": "bearer",
                         "description": "`[server] api_token`（建议用 LEADBOT_SERVER__API_TOKEN 设置）。未配置时只允许本机调用。"},
            "intakeSource": {"type": "apiKey", "in": "header", "name": "X-Leadbot-Source",
                             "description": "`[intake.sources.<id>]` 的 id"},
            "intakeKey": {"type": "apiKey", "in": "header", "name": "X-Leadbot-Key", "description": "该来源的 api_key"},
            "intakeTimestamp": {"type": "apiKey", "in": "header", "name": "X-Leadbot-Timestamp",
                                "description": "Unix 秒，与服务器时间相差不超过 300 秒"},
            "intakeSignature": {"type": "apiKey", "in": "header", "name": "X-Leadbot-Signature",
                                "description": "hex(HMAC-SHA256(hmac_secret, timestamp + \"\\n\" + 请求体))"},
        },
        "schemas": {
            "Error": {
                "type": "object", "required": ["error"],
                "description": "所有 4xx 的响应体：`error` 是给人看的原因（中文 / English）；线索表单有误时 `fields` 逐项给出中文原因。",
                "properties": {
                    "error": {"type": "string", "minLength": 1},
                    "fields": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                               "description": "字段名 → 原因，例如 {\"phone\": \"`123` 不是有效的手机或座机号码\"}"},
                    "code": {"type": "string", "description": "供程序判断的原因代码（如拆分线索的 not_merged）"},
                },
            },
            "LeadForm": {
                "type": "object", "required": ["company", "contact", "phone", "province"],
                "description": "文本字段也接受整数（按文本处理）；未知字段被忽略。配置了来源鉴权时 `source` 以来源配置的 label 为准。",
                "properties": {
                    **form_text,
                    "phone": {**form_text["phone"], "description": "手机或座机，可带 +86、空格、分机"},
                    "province": {**form_text["province"], "description": "省份全称或简称，如 江苏"},
                    "budget": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1e12},
                                         {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(万|w|W|元)?\\s*$"},
                                         {"type": "null"}],
                               "description": "元，或 \"60万\" 这样的文本"},
                    "source": {"type": "string", "enum": list(SOURCES), "default": SOURCES[0]},
                },
                "examples": [{"company": "苏州恒锐精密机械有限公司", "contact": "王建国", "phone": "13912345678",
                              "province": "江苏", "city": "苏州市", "industry": "新能源汽车", "budget": "60万",
                              "source": "官网表单", "note": "询价伺服压装机"}],
            },
            "LeadCreated": {
                "type": "object", "required": ["lead_id", "status", "owner"],
                "properties": {"lead_id": {"type": "integer", "minimum": 1},
                               "status": {"type": "string", "enum": ["assigned", "unassigned"],
                                          "description": "unassigned：没人能接，进入区域经理的待分配池"},
                               "owner": nullable_text},
            },
            "Lead": {
                "type": "object",
                "required": ["lead_id", "status", "owner", "owner_name", "company", "contact", "phone", "province", "city",
                             "industry", "budget_fen", "source", "region", "rule", "explanation", "invalid_reason",
                             "created_at", "accept_due_at", "accepted_at", "audit"],
                "properties": {
                    "lead_id": {"type": "integer"}, "status": {"type": "string", "enum": list(LEAD_STATUSES)},
                    "owner": nullable_text, "owner_name": nullable_text, "company": text, "contact": text, "phone": text,
                    "province": nullable_text, "city": nullable_text, "industry": nullable_text,
                    "budget_fen": _nullable({"type": "integer"}), "source": text, "region": nullable_text,
                    "rule": _nullable({"type": "string", "description": "命中的分配规则"}), "explanation": text,
                    "invalid_reason": _nullable({"type": "string", "description": " / ".join(INVALID_REASONS)}),
                    "created_at": dt, "accept_due_at": _nullable(dt), "accepted_at": _nullable(dt), "audit": _audit(),
                },
            },
            "Rate": _rate(),
            "MetricsSummary": {
                "type": "object",
                "description": "口径见 docs/metrics.zh.md。比例的 `value` 在没有可计数的线索时为 null。",
                "required": ["period", "scope", "leads", "invalid", "action_24h", "activation_7d", "black_hole",
                             "unassigned_48h", "untouched_72h", "lead_to_opportunity", "cross_dept_response_72h",
                             "info_complete", "health", "heatmap", "reps"],
                "properties": {
                    "period": {"type": "object", "required": ["label", "start", "end"],
                               "properties": {"label": text, "start": dt, "end": dt}},
                    "scope": {"type": "object", "required": ["region", "rep"],
                              "properties": {"region": nullable_text, "rep": nullable_text}},
                    "leads": {"type": "integer", "minimum": 0}, "invalid": {"type": "integer", "minimum": 0},
                    "action_24h": {"allOf": [_ref("Rate"), {"type": "object", "required": ["funnel"], "properties": {
                        "funnel": {"type": "object", "additionalProperties": {"type": "integer"}}}}]},
                    "activation_7d": _ref("Rate"),
                    "black_hole": {"allOf": [_ref("Rate"), {"type": "object", "required": ["business_hours", "by_source", "by_region", "by_rep"],
                                                            "properties": {"business_hours": {"type": "number"},
                                                                           "by_source": {"type": "object", "additionalProperties": _ref("Rate")},
                                                                           "by_region": {"type": "object", "additionalProperties": _ref("Rate")},
                                                                           "by_rep": {"type": "object", "additionalProperties": _ref("Rate")}}}]},
                    "unassigned_48h": _ref("Rate"), "untouched_72h": _ref("Rate"),
                    "lead_to_opportunity": {"type": "object", "required": ["converted", "median_days"],
                                            "properties": {"converted": {"type": "integer"}, "median_days": _nullable({"type": "number"})}},
                    "cross_dept_response_72h": _ref("Rate"), "info_complete": _ref("Rate"),
                    "health": {"type": "object", "required": ["dimensions", "by_region", "by_rep"], "properties": {
                        "dimensions": {"type": "array", "items": text},
                        "by_region": {"type": "object", "additionalProperties": {"type": "array", "items": _nullable({"type": "number"})}},
                        "by_rep": {"type": "object", "additionalProperties": {"type": "array", "items": _nullable({"type": "number"})}}}},
                    "heatmap": {"type": "object", "required": ["stages", "norm_hours", "reps"], "properties": {
                        "stages": {"type": "array", "items": text}, "norm_hours": {"type": "array", "items": {"type": "number"}},
                        "reps": {"type": "object", "additionalProperties": {"type": "array", "items": _nullable({"type": "number"})}}}},
                    "reps": {"type": "array", "items": {"type": "object", "required": ["rep", "name", "leads"], "properties": {
                        "rep": text, "name": text, "leads": {"type": "integer"}, "first_contact_conversion": _ref("Rate"),
                        "quote_open_rate": {"anyOf": [{"type": "number"}, {"type": "string", "description": "未采集"}, {"type": "null"}]}, "objections": {"type": "integer"},
                        "objection_median_hours": _nullable({"type": "number"}), "black_hole": _ref("Rate"),
                        "activation_7d": _ref("Rate")}}},
                },
            },
            "OpportunityForm": {
                "type": "object",
                "description": "`lead_id` 与 `customer_id` 至少给一个；负责人默认为线索或客户的负责人；名称默认为「公司 商机」。",
                "properties": {
                    "lead_id": {"type": "integer", "minimum": 1}, "customer_id": {"type": "integer", "minimum": 1},
                    "name": {"type": "string", "maxLength": 200}, "owner": {"type": "string", "maxLength": 64, "description": "成员 id"},
                    "amount": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1e12}, {"type": "string"}, {"type": "null"}],
                               "description": "元，或 \"50万\" 这样的文本"},
                    "expected_close_on": _nullable({"type": "string", "format": "date"}),
                },
                "examples": [{"lead_id": 1, "amount": "50万", "expected_close_on": "2026-06-30"}],
            },
            "Opportunity": {
                "type": "object",
                "required": ["opportunity_id", "name", "customer_id", "customer", "lead_id", "owner", "owner_name", "stage",
                             "stages", "amount_fen", "expected_close_on", "stage_entered_at", "stage_due_at", "fields",
                             "created_at", "updated_at", "audit"],
                "properties": {
                    "opportunity_id": {"type": "integer"}, "name": text, "customer_id": _nullable({"type": "integer"}),
                    "customer": nullable_text, "lead_id": _nullable({"type": "integer"}), "owner": nullable_text,
                    "owner_name": nullable_text, "stage": text, "stages": {"type": "array", "items": text},
                    "amount_fen": _nullable({"type": "integer"}), "expected_close_on": _nullable({"type": "string", "format": "date"}),
                    "stage_entered_at": _nullable(dt), "stage_due_at": _nullable(dt),
                    "fields": {"type": "object", "description": "阶段要求填写并已填写的信息"},
                    "created_at": dt, "updated_at": dt, "audit": _audit(),
                },
            },
            "ScoringFacts": {
                "type": "object", "required": ["entity", "id", "facts"],
                "properties": {"entity": {"type": "string", "enum": ["customer", "lead"]}, "id": {"type": "integer", "minimum": 1},
                               "facts": {"type": "object", "description": "`[scoring] fields` 中声明的字段 → 值（数字、文字、true/false 或日期）",
                                         "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}}},
                "examples": [{"entity": "customer", "id": 1, "facts": {"微信互动次数": 12}}],
            },
            "Score": {
                "type": "object", "required": ["score", "tier"],
                "description": "客户：0–100 的整数与分级；线索：活跃度（精确小数的文本）与 A/B/C。公式无法计算时两者为 null。",
                "properties": {"score": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}, "tier": nullable_text},
            },
            "Health": {
                "type": "object", "required": ["customer_id"],
                "description": "公式无法计算时只有 `customer_id` 与 `error`。",
                "properties": {"customer_id": {"type": "integer"}, "score": {"type": "integer", "minimum": 0, "maximum": 100},
                               "tier": text, "formula": text, "error": text,
                               "terms": {"type": "array", "items": {"type": "object", "required": ["term", "points"],
                                                                    "properties": {"term": text, "points": {"type": "string"}}}}},
            },
            "Reload": {"type": "object", "required": ["ok", "message"],
                       "properties": {"ok": {"type": "boolean"}, "message": text}},
            "HealthCheck": {"type": "object", "required": ["status"],
                             "properties": {"status": {"type": "string", "enum": ["ok", "error"]},
                                            "database": {"type": "string", "description": "数据库异常的类型名"}}},
            "SandboxMessage": {
                "type": "object", "required": ["id", "from", "text", "at"],
                "properties": {
                    "id": {"type": "integer"}, "from": {"type": "string", "enum": ["user", "bot"]}, "text": text, "at": dt,
                    "card": {"type": "object", "required": ["card_id", "title", "fields", "text", "status", "actions", "html"],
                             "properties": {"card_id": text, "title": text,
                                            "fields": {"type": "array", "items": {"type": "array", "items": text, "minItems": 2, "maxItems": 2}},
                                            "text": text, "status": nullable_text,
                                            "actions": {"type": "array", "items": {"type": "object", "required": ["label", "action"],
                                                                                   "properties": {"label": text, "action": text}}},
                                            "html": text}},
                },
            },
            "SandboxAccepted": {"type": "object", "required": ["ok", "duplicate"],
                                "properties": {"ok": {"const": True}, "duplicate": {"type": "boolean"},
                                               "handled": {"type": "boolean", "description": "仅 action：3 秒内是否已处理完"}}},
        },
    }


def _paths() -> Schema:
    management: list[dict[str, list[str]]] = [{"apiToken": []}]
    guarded = dict(GUARDED)
    member_id = {"type": "string", "minLength": 1, "maxLength": 64, "description": "成员 id，见 /sandbox/api/members"}
    return {
        "/api/leads": {"post": {
            "operationId": "createLead", "tags": ["线索"], "summary": "提交一条表单线索（去重、打分、分配、推送卡片）",
            "description": "全部成功或全部不写入。配置了 `[intake.sources]` 时需要来源鉴权（API key，或对请求体的 HMAC 签名）。",
            "security": [{}, {"intakeSource": [], "intakeKey": []},
                         {"intakeSource": [], "intakeTimestamp": [], "intakeSignature": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("LeadForm")}}},
            "responses": {
                "201": _json(_ref("LeadCreated"), "已保存并分配（或进入待分配池）"),
                "400": _error("请求体不是 JSON 对象，或字段有误：`fields` 逐项给出中文原因，什么都不写入"),
                "401": _error("未知来源、缺少凭据或时间戳过期 / unknown source, missing credentials, stale timestamp"),
                "403": _error("密钥或签名错误 / wrong key or signature"),
                "413": _error(f"请求体超过 {MAX_JSON_BODY // 1024} KiB / body too large"),
            },
        }},
        "/api/leads/{lead_id}": {"get": {
            "operationId": "getLead", "tags": ["线索"], "summary": "线索的状态、负责人、命中的分配规则与审计记录",
            "security": management, "parameters": [_id_param("lead_id", "线索编号")],
            "responses": {"200": _json(_ref("Lead"), "线索"), "400": _error("编号不是数字"), **guarded,
                          "404": _error("线索不存在")},
        }},
        "/api/leads/{lead_id}/unmerge": {"post": {
            "operationId": "unmergeLead", "tags": ["线索"], "summary": "把误合并的线索从客户中拆分出来",
            "description": "请求体可省略。`by` 是代为操作的经理或管理员（按其区域权限判断）；不填时以接口的管理员身份操作。重复拆分返回 `already_split`。",
            "security": management, "parameters": [_id_param("lead_id", "线索编号")],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "reason": {"type": "string", "maxLength": 200, "description": "拆分原因（写入审计记录）"},
                    "by": {"type": "string", "minLength": 1, "maxLength": 64, "description": "成员 id"}}}}}},
            "responses": {
                "200": _json({"type": "object",
                              "required": ["lead_id", "status", "customer_id", "from_customer_id", "owner", "reassigned", "moved", "message"],
                              "properties": {"lead_id": {"type": "integer"}, "status": {"type": "string", "enum": ["split", "already_split"]},
                                             "customer_id": _nullable({"type": "integer"}), "from_customer_id": _nullable({"type": "integer"}),
                                             "owner": _nullable({"type": "string"}), "reassigned": {"type": "boolean"},
                                             "moved": {"type": "object", "required": ["followups", "opportunities"],
                                                       "properties": {"followups": {"type": "integer"}, "opportunities": {"type": "integer"}}},
                                             "message": {"type": "string"}}}, "已拆分（或早已拆分）"),
                "400": _error("编号不是数字、reason 或 by 有误、成员不存在"),
                "401": GUARDED["401"],
                "403": _error("未配置 api_token 时只允许本机调用；或 `by` 无权处理该区域的线索（`code`: forbidden）"),
                "404": _error("线索不存在（`code`: not_found）"),
                "409": _error("线索没有被合并过，或它是该客户的第一条线索（`code`: not_merged / first_lead）"),
                "413": TOO_LARGE,
            },
        }},
        "/api/metrics/summary": {"get": {
            "operationId": "metricsSummary", "tags": ["指标"], "summary": "过程指标（JSON）",
            "description": "`period` 与 `since`/`until` 二选一；默认本周。",
            "security": management,
            "parameters": [
                {"name": "period", "in": "query", "schema": {"type": "string", "enum": ["week", "month", "last_week", "last_month"]}},
                {"name": "since", "in": "query", "schema": {"type": "string", "format": "date"}, "description": "YYYY-MM-DD（上海时间 0 点起），2000-01-01 至 2099-12-31"},
                {"name": "until", "in": "query", "schema": {"type": "string", "format": "date"}, "description": "YYYY-MM-DD（含当天），需同时给出 since；晚于现在时算到现在"},
                {"name": "region", "in": "query", "schema": {"type": "string", "maxLength": 64}, "description": "区域名"},
                {"name": "rep", "in": "query", "schema": {"type": "string", "maxLength": 64}, "description": "成员 id"},
            ],
            "responses": {"200": _json(_ref("MetricsSummary"), "各项指标"), "400": _error("参数有误（日期格式、未知 period、参数过长）"), **guarded},
        }},
        "/api/opportunities": {"post": {
            "operationId": "createOpportunity", "tags": ["商机"], "summary": "在第一个阶段建一个商机",
            "security": management,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("OpportunityForm")}}},
            "responses": {"201": _json(_ref("Opportunity"), "已建档"), "400": _error("请求体有误、线索或客户不存在、负责人不存在"),
                          **guarded, "413": TOO_LARGE},
        }},
        "/api/opportunities/{opp_id}": {"get": {
            "operationId": "getOpportunity", "tags": ["商机"], "summary": "商机、阶段时钟、阶段信息与审计记录",
            "security": management, "parameters": [_id_param("opp_id", "商机编号")],
            "responses": {"200": _json(_ref("Opportunity"), "商机"), "400": _error("编号不是数字"), **guarded, "404": _error("商机不存在")},
        }},
        "/api/scoring/facts": {"post": {
            "operationId": "postScoringFacts", "tags": ["评分"], "summary": "更新评分输入并重算该客户或线索",
            "security": management,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ScoringFacts")}}},
            "responses": {"200": _json(_ref("Score"), "重算后的分数"), "400": _error("请求体有误，或字段未声明、类型不符"),
                          **guarded, "404": _error("客户或线索不存在"), "413": TOO_LARGE},
        }},
        "/api/customers/{customer_id}/health": {"get": {
            "operationId": "getCustomerHealth", "tags": ["评分"], "summary": "客户健康分与每一项的贡献",
            "security": management, "parameters": [_id_param("customer_id", "客户编号")],
            "responses": {"200": _json(_ref("Health"), "健康分"), "400": _error("编号不是数字"), **guarded, "404": _error("客户不存在")},
        }},
        "/api/rules/reload": {"post": {
            "operationId": "reloadRules", "tags": ["规则"], "summary": "重新读取 leadbot.toml 的规则（只允许本机）",
            "description": "有误时继续使用上一版规则，`message` 指出文件、行号与原因。",
            "security": management,
            "responses": {"200": _json(_ref("Reload"), "已更新"), **guarded, "409": _json(_ref("Reload"), "修改有误，仍用上一版规则")},
        }},
        PATH: {"get": {
            "operationId": "openapi", "tags": ["运维"], "summary": "本接口描述（OpenAPI 3.1，公开，不含密钥）",
            "security": [{}],
            "responses": {"200": {"description": "OpenAPI 文档", "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}}}},
        }},
        "/healthz": {"get": {
            "operationId": "healthz", "tags": ["运维"], "summary": "存活检查（含一次数据库往返）", "security": [{}],
            "responses": {"200": _json(_ref("HealthCheck"), "正常"), "503": _json(_ref("HealthCheck"), "数据库不可用")},
        }},
        "/metrics": {"get": {
            "operationId": "prometheusMetrics", "tags": ["运维"], "summary": "Prometheus 文本：收件箱、发件箱（含死信）与业务指标", "security": [{}],
            "responses": {"200": {"description": "Prometheus text exposition format 0.0.4",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/sandbox/api/members": {"get": {
            "operationId": "sandboxMembers", "tags": ["沙盒"], "summary": "沙盒里可以扮演的成员", "security": [{}],
            "responses": {"200": _json({"type": "object", "required": ["members"], "properties": {"members": {"type": "array", "items": {
                "type": "object", "required": ["id", "name", "role", "region"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string", "enum": ["rep", "manager", "admin"]},
                               "region": _nullable({"type": "string"})}}}}}, "成员列表")},
        }},
        "/sandbox/api/messages": {"get": {
            "operationId": "sandboxMessages", "tags": ["沙盒"], "summary": "某成员与机器人的对话（由旧到新）", "security": [{}],
            "parameters": [{"name": "user", "in": "query", "required": True, "schema": member_id}],
            "responses": {"200": _json({"type": "object", "required": ["user", "messages"], "properties": {
                "user": {"type": "string"}, "messages": {"type": "array", "items": _ref("SandboxMessage")}}}, "对话"),
                "400": _error("未知用户")},
        }},
        "/sandbox/api/send": {"post": {
            "operationId": "sandboxSend", "tags": ["沙盒"], "summary": "以某成员身份发一条消息（进入收件箱，与真实平台同一路径）", "security": [{}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["user", "text"],
                "properties": {"user": member_id, "text": {"type": "string", "minLength": 1, "maxLength": SANDBOX_MAX_TEXT},
                               "client_msg_id": {"type": "string", "maxLength": 64, "description": "重复提交同一 id 只处理一次"}},
                "examples": [{"user": "lina", "text": "帮助"}]}}}},
            "responses": {"200": _json(_ref("SandboxAccepted"), "已收下"), "400": _error("未知用户、内容为空或过长"),
                          "413": _error(f"请求体超过 {SANDBOX_MAX_BODY // 1024} KiB")},
        }},
        "/sandbox/api/action": {"post": {
            "operationId": "sandboxAction", "tags": ["沙盒"], "summary": "点击卡片按钮（最多等 3 秒处理结果）", "security": [{}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["user", "card_id", "action"],
                "properties": {"user": member_id, "card_id": {"type": "string", "minLength": 1, "maxLength": 64},
                               "action": {"type": "string", "minLength": 1, "maxLength": 256, "description": "按钮的签名载荷"},
                               "click_id": {"type": "string", "maxLength": 64, "description": "重复提交同一 id 只处理一次"}}}}}},
            "responses": {"200": _json(_ref("SandboxAccepted"), "已收下（`handled` 表示是否已处理完）"),
                          "400": _error("未知用户、缺少 card_id 或 action"), "413": _error(f"请求体超过 {SANDBOX_MAX_BODY // 1024} KiB")},
        }},
    }


def _version() -> str:
    try:
        return metadata.version("leadbot")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@lru_cache(maxsize=1)
def spec_json() -> str:
    """The description, serialised once (it depends on nothing but the code)."""
    return json.dumps(spec(), ensure_ascii=False, indent=1)


def spec() -> Schema:
    """The OpenAPI 3.1 description as a dict (a fresh copy: callers may modify it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "leadbot HTTP API", "version": _version(),
            "description": (
                "leadbot 的 JSON 接口。所有 4xx 响应体都是 `{\"error\": \"原因\"}`（线索表单另有 `fields`）。"
                "`/api/*` 中除线索提交与本文档外都是管理接口：需要 `Authorization: Bearer <[server] api_token>`，"
                "未配置令牌时只允许本机调用。沙盒接口只在 `[platforms.sandbox] enabled = true` 时存在。"
                "平台回调（/callback/*）见 docs/platforms.zh.md。中文说明见 docs/api.zh.md。"),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": n} for n in ("线索", "商机", "评分", "指标", "规则", "运维", "沙盒")],
        "paths": _paths(),
        "components": _components(),
    }


async def serve(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``."""
    return web.Response(text=spec_json(), content_type="application/json", charset="utf-8")


def add_routes(app: web.Application) -> None:
    """Mount ``GET /api/openapi.json``."""
    app.router.add_get(PATH, serve)
