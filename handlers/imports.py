"""Bulk lead intake from spreadsheets (trade-show lists, old CRM exports).

Each row is validated like a web-form lead; rejected rows are reported with the row
number and every reason, accepted rows go through the same intake (dedupe, assignment,
card) as ``POST /api/leads``. A free-text note column is run through the extractor so the
history in old spreadsheets becomes structured (dates, contacts, amounts, intents).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlmodel import Session

from handlers import leads
from handlers.context import HandlerContext, Outgoing
from nlp.extract import extract
from store.models import FollowUp

# Header names people actually use, folded to our field names.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "company": ("company", "公司", "公司名称", "客户", "客户名称", "单位", "单位名称", "企业名称"),
    "contact": ("contact", "联系人", "姓名", "客户姓名", "联系人姓名"),
    "phone": ("phone", "电话", "手机", "手机号", "联系电话", "电话号码", "联系方式"),
    "province": ("province", "省份", "省", "所在省份", "地区"),
    "city": ("city", "城市", "市", "所在城市"),
    "industry": ("industry", "行业", "所属行业"),
    "budget": ("budget", "预算", "预算金额", "采购预算"),
    "source": ("source", "来源", "线索来源", "渠道"),
    "note": ("note", "备注", "说明", "需求", "需求描述", "沟通记录", "跟进记录"),
}
_LOOKUP = {alias.lower(): name for name, aliases in HEADER_ALIASES.items() for alias in aliases}


def map_headers(headers: Iterable[str]) -> dict[str, str]:
    """Column header → our field name, for the headers we recognise."""
    mapping: dict[str, str] = {}
    for header in headers:
        key = (header or "").strip().replace(" ", "").replace("\u3000", "").lower()
        name = _LOOKUP.get(key)
        if name and name not in mapping.values():
            mapping[header] = name
    return mapping


@dataclass
class RowResult:
    """What happened to one spreadsheet row (``row`` counts the header as row 1)."""

    row: int
    lead_id: int | None = None
    owner: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportReport:
    """The per-row outcome of an import."""

    rows: list[RowResult] = field(default_factory=list)
    missing_columns: tuple[str, ...] = ()

    @property
    def accepted(self) -> list[RowResult]:
        return [r for r in self.rows if r.lead_id is not None]

    @property
    def rejected(self) -> list[RowResult]:
        return [r for r in self.rows if r.lead_id is None]

    def summary_zh(self) -> str:
        """A short Chinese report: counts, then one line per rejected row."""
        lines = [f"导入完成：共 {len(self.rows)} 行，成功 {len(self.accepted)} 行，拒绝 {len(self.rejected)} 行。"]
        if self.missing_columns:
            lines.append("缺少必需的列：" + "、".join(self.missing_columns))
        for r in self.rejected:
            reasons = "；".join(f"{k}: {v}" for k, v in r.errors.items())
            lines.append(f"第 {r.row} 行：{reasons}")
        return "\n".join(lines)


REQUIRED = ("company", "contact", "phone", "province")


def import_rows(
    session: Session,
    rows: list[Mapping[str, object]],
    ctx: HandlerContext,
    *,
    source: str | None = None,
) -> tuple[ImportReport, list[Outgoing]]:
    """Validate and take in ``rows`` (dicts keyed by the file's headers), in one transaction.

    A rejected row never stops the others; nothing of a rejected row is written.
    """
    report = ImportReport()
    out: list[Outgoing] = []
    if not rows:
        return report, out
    mapping = map_headers(rows[0].keys())
    missing = tuple(f for f in REQUIRED if f not in mapping.values())
    report.missing_columns = missing
    for index, raw in enumerate(rows, start=2):
        data: dict[str, object] = {name: raw.get(header) for header, name in mapping.items()}
        data = {k: ("" if v is None else v) for k, v in data.items()}
        if source and not data.get("source"):
            data["source"] = source
        result = RowResult(row=index)
        if all(not str(v).strip() for v in raw.values() if v is not None):
            continue  # blank lines are not rows
        try:
            form = leads.validate_form(data)
        except leads.LeadFormError as exc:
            result.errors = exc.errors
            report.rows.append(result)
            continue
        intake = leads.intake(session, form, ctx)
        result.lead_id, result.owner = intake.lead_id, intake.owner
        out.extend(intake.outgoing)
        if form.note:
            now = ctx.clock.now()
            fields = extract(form.note, now)
            session.add(
                FollowUp(
                    lead_id=intake.lead_id, member_id="import", text=form.note,
                    fields_json=json.dumps(fields, ensure_ascii=False), status="confirmed",
                    created_at=now, confirmed_at=now,
                )
            )
        report.rows.append(result)
    return report, out
