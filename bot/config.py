"""``leadbot.toml``: loading, environment overrides and validation.

Environment variables override the file (secrets belong there). The naming scheme is
``LEADBOT_`` + the key path in upper case with ``__`` between levels:
``LEADBOT_PLATFORMS__WECOM__SECRET``, ``LEADBOT_SERVER__PORT``. ``LEADBOT_DATABASE_URL``
is accepted as a short alias of ``LEADBOT_DATABASE__URL``.

An invalid file is refused with :class:`ConfigError`: the file, the line, the key and the
reason in Chinese and English — never a traceback.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Mapping

from bot.intake_auth import IntakeSource, parse_sources
from handlers.assignment import AssignmentRules, RuleError, parse_assignment
from handlers.metrics import MetricSettingError, MetricSettings
from handlers.scoring import (
    FormulaSpot,
    ScoringRuleError,
    ScoringRules,
    default_scoring,
    parse_scoring,
)
from handlers.stages import Pipeline, StageRuleError, default_pipeline, parse_stages
from handlers.webhooks import Webhook, WebhookConfigError, parse_webhooks
from nlp.provinces import canonical_province
from scheduler.config import ScanSettings, SettingError

ROLES = ("rep", "manager", "admin")
PLATFORMS = ("sandbox", "wecom", "feishu", "dingtalk")
ENV_PREFIX = "LEADBOT_"


class ConfigError(Exception):
    """A config problem a person can fix: where it is and what to do, in Chinese and English."""

    def __init__(self, path: str, line: int | None, key: str, zh: str, en: str, column: int | None = None) -> None:
        self.path, self.line, self.key, self.zh, self.en = path, line, key, zh, en
        self.column = column  # 1-based, when known (formula mistakes point at the character)
        where = f"{path} 第{line}行" if line else path
        if line and column:
            where += f"第{column}列"
        pos = f":{line}" if line else ""
        pos += f":{column}" if line and column else ""
        super().__init__(f"{where}: `{key}` {zh}\n{path}{pos}: {key}: {en}")


@dataclass(frozen=True)
class RegionConfig:
    """A sales region."""

    name: str
    provinces: tuple[str, ...]
    manager: str | None


@dataclass(frozen=True)
class MemberConfig:
    """A person of the organisation."""

    id: str
    name: str
    role: str
    region: str | None = None
    manager: str | None = None
    daily_capacity: int = 20
    wecom_userid: str | None = None
    feishu_open_id: str | None = None
    dingtalk_userid: str | None = None
    preferred_platform: str | None = None
    active: bool = True
    on_leave: bool = False
    joined_on: date | None = None  # new reps get a floor share of leads for a while


@dataclass(frozen=True)
class Settings:
    """A validated configuration."""

    path: str
    database_url: str
    host: str
    port: int
    secret: str
    api_token: str
    assignment: AssignmentRules
    scheduler: ScanSettings
    intake_sources: Mapping[str, IntakeSource]
    platforms: Mapping[str, Mapping[str, Any]]
    regions: tuple[RegionConfig, ...]
    members: tuple[MemberConfig, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    scoring: ScoringRules = field(default_factory=default_scoring, repr=False)  # [scoring], compiled formulas
    stages: Pipeline = field(default_factory=default_pipeline, repr=False)  # [[stages]], the pilot pipeline when absent
    webhooks: tuple[Webhook, ...] = field(default=(), repr=False)  # [[webhooks]], secrets read via secret_env
    metrics: MetricSettings = field(default_factory=MetricSettings, repr=False)  # [metrics], the metric definitions' thresholds

    @property
    def accept_within_hours(self) -> float:
        """Default business hours a rep has to accept a lead."""
        return self.assignment.accept_within_hours

    def platform_enabled(self, name: str) -> bool:
        """Whether ``[platforms.NAME] enabled`` is true."""
        return bool(self.platforms.get(name, {}).get("enabled", False))

    def region_for_province(self, province: str) -> RegionConfig | None:
        """The region covering ``province`` (official full name)."""
        for region in self.regions:
            if province in region.provinces:
                return region
        return None

    def member(self, member_id: str) -> MemberConfig | None:
        """The member with id ``member_id``."""
        return next((m for m in self.members if m.id == member_id), None)


def _line_of(text: str, key: str, occurrence: int = 0, after: str | None = None, *, strict: bool = False) -> int | None:
    """Best-effort line number of ``key = …`` (the ``occurrence``-th after header ``after``).

    Keys inside inline tables (``when = { budgte = 1 }``) are found too. Without ``strict``
    a missing key falls back to the header's line.
    """
    lines = text.splitlines()
    start = 0
    if after is not None:
        seen = -1
        for i, line in enumerate(lines):
            if line.strip() == after:
                seen += 1
                if seen == occurrence:
                    start = i
                    break
        else:
            return None
        occurrence = 0
    pattern = re.compile(rf"(^|[\s{{,]){re.escape(key)}\s*=")
    for i in range(start, len(lines)):
        if after is not None and i > start and lines[i].strip().startswith("["):
            break
        if pattern.search(lines[i]):
            return i + 1
    return start + 1 if after is not None and not strict else None


def _header_line(text: str, section: str) -> int | None:
    """Line of the first ``[section]``, ``[section.x]`` or ``[[section]]`` header."""
    for i, line in enumerate(text.splitlines()):
        head = line.strip().lstrip("[").rstrip("]")
        if line.strip().startswith("[") and (head == section or head.startswith(section + ".")):
            return i + 1
    return None


def _set_path(data: dict[str, Any], path: list[str], value: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    old = node.get(path[-1])
    node[path[-1]] = _coerce(value, old)


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(like, int):
        try:
            return int(value)
        except ValueError:
            return value
    if isinstance(like, float):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Apply ``LEADBOT_*`` overrides to the parsed file, in place."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith("LEADBOT_TEST_"):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest == "DATABASE_URL":
            path = ["database", "url"]
        elif "__" in rest:
            path = [p.lower() for p in rest.split("__")]
        else:
            continue
        _set_path(data, path, value)


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Read, override and validate ``path``. Raises :class:`ConfigError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), None, "-", "配置文件不存在，请先运行 `leadbot init`", "file not found: run `leadbot init`") from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), None, "-", "配置文件不是 UTF-8 编码", "file is not UTF-8") from None
    return parse(text, str(p), environ if environ is not None else os.environ)


def parse(text: str, origin: str, environ: Mapping[str, str]) -> Settings:
    """Validate the TOML ``text`` (read from ``origin``) after environment overrides."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(origin, int(m.group(1)) if m else None, "-", f"TOML 语法错误: {exc}", f"TOML syntax error: {exc}") from None
    except RecursionError:
        # tomllib reads nested arrays and inline tables recursively: ~1000 levels exhaust the stack.
        raise ConfigError(origin, _deep_nesting_line(text), "-", "数组或内联表嵌套层数过多，无法读取，请检查括号是否成对",
                          "arrays or inline tables nested too deeply to read: check the brackets") from None
    apply_env(data, environ)
    return _validate(data, text, origin, environ)


# Nesting deeper than this is named as the culprit's line when tomllib gives up (it does so
# near the interpreter's recursion limit, ~1000 levels; no real config nests past 3).
MAX_NESTING = 100

# What each value must be, as the file spells it: the Chinese and English words used in errors.
_KINDS: dict[str, tuple[str, str]] = {
    "str": ("文本（加引号，例如 \"张伟\"）", "a string (quoted)"),
    "int": ("整数", "an integer"),
    "bool": ("true 或 false", "true or false"),
    "date": ("日期（例如 2026-03-01，不加引号）", "a TOML date like 2026-03-01"),
    "str_list": ("文本数组（例如 [\"江苏\", \"浙江\"]）", "an array of strings"),
}
# Keys whose own check below says more (port, id, role, daily_capacity, …) are not listed:
# that check already copes with any type and names the rule.
_SERVER_KINDS: dict[str, str] = {"host": "str", "secret": "str", "api_token": "str"}
_REGION_KINDS: dict[str, str] = {"provinces": "str_list", "manager": "str"}
_MEMBER_KINDS: dict[str, str] = {
    "region": "str", "manager": "str", "wecom_userid": "str", "feishu_open_id": "str", "dingtalk_userid": "str",
    "active": "bool", "on_leave": "bool",
}
# Sections that must be one table ([name]) and those that must be a list of tables ([[name]]).
# [scoring], [metrics], [[stages]] and [[webhooks]] are missing: their parsers check the shape
# themselves, with hints of their own.
_TABLE_SECTIONS = ("database", "server", "platforms", "assignment", "scheduler", "intake")
_TABLE_LIST_SECTIONS = ("regions", "members")


def _deep_nesting_line(text: str) -> int | None:
    """Line where bracket depth first passes :data:`MAX_NESTING` (strings are not skipped: a hint)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            if char in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    return number
            elif char in "]}":
                depth = max(0, depth - 1)
    return None


def _is_kind(value: Any, kind: str) -> bool:
    """Whether a parsed TOML value is of ``kind`` (a bool is no integer; a datetime is no date)."""
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "date":
        return isinstance(value, date) and not isinstance(value, datetime)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    raise AssertionError(kind)


def _check_kinds(table: Mapping[str, Any], kinds: Mapping[str, str], text: str, origin: str, prefix: str,
                 occurrence: int = 0, header: str | None = None) -> None:
    """Every known key of ``table`` holds the kind of value it must (unknown keys are checked elsewhere)."""
    for key, kind in kinds.items():
        if key in table and not _is_kind(table[key], kind):
            zh, en = _KINDS[kind]
            got_zh, got_en = _toml_type(table[key])
            line = (_line_of(text, key, occurrence, header) if header else None) or _line_of(text, key)
            raise ConfigError(origin, line, f"{prefix}{key}",
                              f"应为{zh}，而不是{got_zh}", f"must be {en}, not {got_en}")


def _toml_type(value: Any) -> tuple[str, str]:
    """The TOML name of a parsed value's type, in Chinese and English, for error messages."""
    if isinstance(value, bool):
        return "布尔值", "a boolean"
    if isinstance(value, int):
        return "整数", "an integer"
    if isinstance(value, float):
        return "小数", "a float"
    if isinstance(value, str):
        return "文本", "a string"
    if isinstance(value, list):
        return "数组", "an array"
    if isinstance(value, dict):
        return "表", "a table"
    if isinstance(value, datetime):
        return "日期时间", "a datetime"
    if isinstance(value, date):
        return "日期", "a date"
    return "时间", "a time"


def _check_sections(data: Mapping[str, Any], text: str, origin: str) -> None:
    """Each known section has the shape the rest of the validation reads: a table, or a list of tables.

    Without this a wrong shape (``members = 5``, ``regions = [1]``, ``server = "x"``)
    escaped deep inside the validation as a TypeError or AttributeError.
    """
    for name in _TABLE_SECTIONS:
        if name in data and not isinstance(data[name], dict):
            got_zh, got_en = _toml_type(data[name])
            raise ConfigError(origin, _header_line(text, name) or _line_of(text, name), name,
                              f"应为表 [{name}]，而不是{got_zh}", f"must be a table [{name}], not {got_en}")
    for name in _TABLE_LIST_SECTIONS:
        if name not in data:
            continue
        value = data[name]
        line = _header_line(text, name) or _line_of(text, name)
        if not isinstance(value, list):
            got_zh, got_en = _toml_type(value)
            # LEADBOT_MEMBERS__X=… overrides turn the array into a table: say so.
            env_zh = f"；数组不能用 LEADBOT_{name.upper()}__… 环境变量覆盖" if isinstance(value, dict) else ""
            env_en = f"; LEADBOT_{name.upper()}__… variables cannot override an array" if isinstance(value, dict) else ""
            raise ConfigError(origin, line, name, f"应为 [[{name}]] 表的列表（每项以 [[{name}]] 开头），而不是{got_zh}{env_zh}",
                              f"must be a list of [[{name}]] tables, not {got_en}{env_en}")
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                got_zh, got_en = _toml_type(entry)
                raise ConfigError(origin, line, f"{name}[{i}]", f"应为 [[{name}]] 表的列表（每项以 [[{name}]] 开头），第{i + 1}项却是{got_zh}",
                                  f"must be a list of [[{name}]] tables; item {i + 1} is {got_en}")
    for name, platform in data.get("platforms", {}).items():
        if not isinstance(platform, dict):
            got_zh, got_en = _toml_type(platform)
            raise ConfigError(origin, _header_line(text, f"platforms.{name}") or _line_of(text, name), f"platforms.{name}",
                              f"应为表 [platforms.{name}]，而不是{got_zh}", f"must be a table [platforms.{name}], not {got_en}")
    sources = data.get("intake", {}).get("sources", {})
    if not isinstance(sources, dict):
        raise ConfigError(origin, _line_of(text, "sources") or _header_line(text, "intake"), "intake.sources",
                          "应为表 [intake.sources.ID]", "must be tables [intake.sources.ID]")
    url = data.get("database", {}).get("url")
    if url is not None and not isinstance(url, str):
        raise ConfigError(origin, _line_of(text, "url", 0, "[database]") or _line_of(text, "url"), "database.url",
                          "数据库地址应为文本，例如 \"sqlite:///leadbot.db\"", "database URL must be a string")
    _check_kinds(data.get("server", {}), _SERVER_KINDS, text, origin, "server.", 0, "[server]")
    for i, region in enumerate(data.get("regions", [])):
        _check_kinds(region, _REGION_KINDS, text, origin, f"regions[{i}].", i, "[[regions]]")
    for i, member in enumerate(data.get("members", [])):
        _check_kinds(member, _MEMBER_KINDS, text, origin, f"members[{i}].", i, "[[members]]")


def _expect(cond: bool, origin: str, line: int | None, key: str, zh: str, en: str) -> None:
    if not cond:
        raise ConfigError(origin, line, key, zh, en)


def _validate(data: dict[str, Any], text: str, origin: str, environ: Mapping[str, str] | None = None) -> Settings:
    known_top = {"database", "server", "platforms", "regions", "members", "assignment", "rules", "scheduler", "scoring", "stages", "intake", "webhooks", "metrics"}
    for key in data:
        if key not in known_top:
            hint = get_close_matches(key, known_top, n=1)
            did = f"，是否指 `{hint[0]}`?" if hint else ""
            raise ConfigError(origin, _header_line(text, key) or _line_of(text, key), key, f"未知的配置节{did}", f"unknown section{f' (did you mean {hint[0]}?)' if hint else ''}")

    _check_sections(data, text, origin)

    base_dir = Path(origin).resolve().parent
    db = data.get("database", {})
    url = db.get("url") or f"sqlite:///{base_dir / 'leadbot.db'}"
    _expect(isinstance(url, str) and ("://" in url), origin, _line_of(text, "url"), "database.url", "数据库地址格式错误，例如 sqlite:///leadbot.db 或 postgresql+psycopg://user@host/db", "malformed database URL")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and not url.endswith(":memory:"):
        url = f"sqlite:///{(base_dir / url[len('sqlite:///'):]).resolve()}"

    server = data.get("server", {})
    port = server.get("port", 8080)
    _expect(isinstance(port, int) and not isinstance(port, bool) and 0 <= port < 65536, origin, _line_of(text, "port"), "server.port", "端口必须是 0–65535 的整数", "port must be an integer 0-65535")
    secret = server.get("secret") or ""
    if not secret:
        # Without a configured secret, card buttons are signed with a per-process key:
        # fine for a demo, but buttons of cards sent before a restart stop working.
        secret = secrets.token_hex(32)

    platforms = data.get("platforms", {})
    _expect(isinstance(platforms, dict), origin, _line_of(text, "platforms"), "platforms", "应为表 [platforms.NAME]", "must be tables [platforms.NAME]")
    for name in platforms:
        if name not in PLATFORMS:
            hint = get_close_matches(name, PLATFORMS, n=1)
            raise ConfigError(origin, _line_of(text, f"[platforms.{name}]") or None, f"platforms.{name}", f"未知平台{f'，是否指 `{hint[0]}`?' if hint else ''}（可选: {', '.join(PLATFORMS)}）", f"unknown platform (one of {', '.join(PLATFORMS)})")

    regions: list[RegionConfig] = []
    for i, r in enumerate(data.get("regions", [])):
        line = _line_of(text, "name", i, "[[regions]]")
        _expect(isinstance(r.get("name"), str) and r["name"].strip() != "", origin, line, f"regions[{i}].name", "区域缺少名称", "region needs a name")
        provs: list[str] = []
        for prov in r.get("provinces", []):
            full = canonical_province(str(prov))
            _expect(full is not None, origin, _line_of(text, "provinces", i, "[[regions]]"), f"regions[{i}].provinces", f"`{prov}` 不是省级行政区名称", f"`{prov}` is not a province-level division")
            assert full is not None
            for other in regions:
                _expect(full not in other.provinces, origin, _line_of(text, "provinces", i, "[[regions]]"), f"regions[{i}].provinces", f"`{full}` 已属于区域 `{other.name}`，一个省只能属于一个区域", f"`{full}` already belongs to region `{other.name}`")
            provs.append(full)
        regions.append(RegionConfig(name=r["name"], provinces=tuple(provs), manager=r.get("manager")))
    region_names = {r.name for r in regions}

    members: list[MemberConfig] = []
    allowed = set(MemberConfig.__dataclass_fields__)
    for i, m in enumerate(data.get("members", [])):
        header = "[[members]]"
        for key in m:
            if key not in allowed:
                hint = get_close_matches(key, allowed, n=1)
                raise ConfigError(origin, _line_of(text, key, i, header), f"members[{i}].{key}", f"字段不存在{f'，是否指 `{hint[0]}`?' if hint else ''}", f"unknown key{f' (did you mean {hint[0]}?)' if hint else ''}")
        _expect(isinstance(m.get("id"), str) and re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", m.get("id", "")) is not None, origin, _line_of(text, "id", i, header), f"members[{i}].id", "成员 id 只能包含字母、数字、_ . -", "member id must be 1-64 of [A-Za-z0-9_.-]")
        _expect(isinstance(m.get("name"), str) and m["name"].strip() != "", origin, _line_of(text, "name", i, header), f"members[{i}].name", "成员缺少姓名", "member needs a name")
        role = m.get("role", "rep")
        _expect(role in ROLES, origin, _line_of(text, "role", i, header), f"members[{i}].role", f"角色必须是 {' / '.join(ROLES)}", f"role must be one of {', '.join(ROLES)}")
        region = m.get("region")
        _expect(region is None or region in region_names, origin, _line_of(text, "region", i, header), f"members[{i}].region", f"区域 `{region}` 不存在（已知区域: {', '.join(sorted(region_names)) or '无'}）", f"unknown region `{region}`")
        cap = m.get("daily_capacity", 20)
        _expect(isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0, origin, _line_of(text, "daily_capacity", i, header), f"members[{i}].daily_capacity", "每日额度必须是非负整数", "daily_capacity must be a non-negative integer")
        joined = m.get("joined_on")
        _expect(joined is None or (isinstance(joined, date) and not hasattr(joined, "hour")), origin, _line_of(text, "joined_on", i, header), f"members[{i}].joined_on", "入职日期应写成 2026-03-01 这样的日期（不加引号）", "joined_on must be a TOML date like 2026-03-01")
        pref = m.get("preferred_platform")
        _expect(pref is None or pref in PLATFORMS, origin, _line_of(text, "preferred_platform", i, header), f"members[{i}].preferred_platform", f"平台必须是 {' / '.join(PLATFORMS)}", f"must be one of {', '.join(PLATFORMS)}")
        _expect(all(x.id != m["id"] for x in members), origin, _line_of(text, "id", i, header), f"members[{i}].id", f"成员 id `{m['id']}` 重复", f"duplicate member id `{m['id']}`")
        members.append(MemberConfig(**{**m, "role": role}))
    ids = {m.id for m in members}
    for i, m in enumerate(members):
        _expect(m.manager is None or m.manager in ids, origin, _line_of(text, "manager", i, "[[members]]"), f"members[{i}].manager", f"上级 `{m.manager}` 不是已配置的成员", f"manager `{m.manager}` is not a member")
    for i, r in enumerate(regions):
        _expect(r.manager is None or r.manager in ids, origin, _line_of(text, "manager", i, "[[regions]]"), f"regions[{i}].manager", f"区域经理 `{r.manager}` 不是已配置的成员", f"manager `{r.manager}` is not a member")

    try:
        rules = parse_assignment(
            data.get("assignment"),
            region_names=region_names,
            rep_ids=[m.id for m in members if m.role == "rep"],
        )
    except RuleError as exc:
        # The key that starts a line in the file (``when`` for a typo inside ``when = {…}``).
        leaf = getattr(exc, "toml_key", None) or re.sub(r"\[\d+\]$", "", exc.key.rpartition(".")[2])
        line = None
        if exc.index is not None:
            for header in ("[[assignment.rules]]", "[[assignment.groups]]"):
                line = line or _line_of(text, leaf, exc.index, header, strict=True)
        line = line or _line_of(text, leaf)
        raise ConfigError(origin, line, f"assignment.{exc.key}", exc.zh, exc.en) from None

    scoring = _scoring(data.get("scoring"), text, origin)
    try:
        stages = parse_stages(data.get("stages"), member_ids=sorted(ids))
    except StageRuleError as exc:
        line = _line_of(text, exc.key, exc.index, "[[stages]]", strict=True) if exc.index is not None else None
        if line is None and exc.index is not None:
            line = _line_of(text, "name", exc.index, "[[stages]]")
        raise ConfigError(origin, line or _header_line(text, "stages"), f"stages[{exc.index}].{exc.key}" if exc.index is not None else "stages", exc.zh, exc.en) from None

    metric_settings = _metrics(data.get("metrics"), text, origin)
    try:
        scan_settings = ScanSettings.from_mapping(data.get("scheduler"), metric_settings)
    except SettingError as exc:
        line = _line_of(text, exc.key, 0, "[scheduler]", strict=True) or _header_line(text, "scheduler")
        raise ConfigError(origin, line, f"scheduler.{exc.key}", exc.zh, exc.en) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(origin, _header_line(text, "scheduler"), "scheduler", f"定时任务配置有误: {exc}", f"invalid [scheduler]: {exc}") from None

    try:
        from handlers.leads import SOURCES

        intake_sources = parse_sources(data.get("intake"), SOURCES)
    except ValueError as exc:
        raise ConfigError(origin, _header_line(text, "intake"), "intake", str(exc), "invalid [intake.sources]") from None

    try:
        # Webhook secrets come from the variable each entry names (secret_env), not the file.
        webhooks = parse_webhooks(data.get("webhooks"), environ if environ is not None else os.environ)
    except WebhookConfigError as exc:
        line = _line_of(text, exc.key, exc.index, "[[webhooks]]", strict=True) if exc.index is not None else None
        line = line or (_line_of(text, "name", exc.index, "[[webhooks]]") if exc.index is not None else None)
        key = f"webhooks[{exc.index}].{exc.key}" if exc.index is not None else "webhooks"
        raise ConfigError(origin, line or _header_line(text, "webhooks"), key, exc.zh, exc.en) from None

    return Settings(
        path=origin,
        database_url=url,
        host=str(server.get("host", "127.0.0.1")),
        port=port,
        secret=secret,
        api_token=str(server.get("api_token") or ""),
        assignment=rules,
        scheduler=scan_settings,
        intake_sources=intake_sources,
        platforms={k: dict(v) for k, v in platforms.items()},
        regions=tuple(regions),
        members=tuple(members),
        raw=data,
        scoring=scoring,
        stages=stages,
        webhooks=webhooks,
        metrics=metric_settings,
    )


def _metrics(raw: Any, text: str, origin: str) -> MetricSettings:
    """``[metrics]`` validated; a mistake names the key's line (in a sub-table, that table's)."""
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(origin, _line_of(text, "metrics"), "metrics", "应为表 [metrics]", "must be a table [metrics]")
    try:
        return MetricSettings.from_mapping(raw)
    except MetricSettingError as exc:
        table, _, leaf = exc.key.partition(".")
        line = None
        if leaf:
            # A key inside [metrics.stage_norm_hours] may be quoted: 待首触 = 8 or "待首触" = 8.
            for spelled in (leaf, f'"{leaf}"'):
                line = line or _line_of(text, spelled, 0, f"[metrics.{table}]", strict=True)
            line = line or _header_line(text, f"metrics.{table}") or _line_of(text, table, 0, "[metrics]", strict=True)
        else:
            line = _line_of(text, exc.key, 0, "[metrics]", strict=True)
        raise ConfigError(origin, line or _header_line(text, "metrics"), f"metrics.{exc.key}", exc.zh, exc.en) from None


def _formula_spot(text: str, section: str, origin: str) -> FormulaSpot:
    """Where the ``formula = "…"`` string of ``[section]`` starts, so formula errors name the
    file's line and column (a multi-line ``\"\"\"`` string starts on the next line)."""
    lines = text.splitlines()
    header = f"[{section}]"
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == header)
    except StopIteration:
        return FormulaSpot(origin)
    key = re.compile(r"^\s*formula\s*=\s*")
    for i in range(start + 1, len(lines)):
        if lines[i].strip().startswith("["):
            break
        m = key.match(lines[i])
        if m is None:
            continue
        rest = lines[i][m.end():]
        for quote in ('\"\"\"', "'''", '"', "'"):
            if rest.startswith(quote):
                after = m.end() + len(quote)
                if len(quote) == 3 and not lines[i][after:].strip():
                    return FormulaSpot(origin, i + 1, 0)  # TOML drops the newline right after the quotes
                return FormulaSpot(origin, i, after)
        return FormulaSpot(origin, i, m.end())
    return FormulaSpot(origin)


def _scoring(raw: Any, text: str, origin: str) -> ScoringRules:
    """``[scoring]`` compiled; formula mistakes become ConfigError with line and column."""
    spots = {name: _formula_spot(text, f"scoring.{name}", origin) for name in ("health", "lead", "rebate")}
    try:
        return parse_scoring(raw, spots)
    except ScoringRuleError as exc:
        line = exc.line
        if line is None:
            leaf = exc.key.split(".")[-1]
            section = "scoring." + exc.key.split(".")[0] if "." in exc.key else "scoring"
            line = _line_of(text, leaf, 0, f"[{section}]", strict=True) or _header_line(text, "scoring")
        raise ConfigError(origin, line, f"scoring.{exc.key}", exc.zh, exc.en, column=exc.column) from None
