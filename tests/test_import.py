"""`leadbot import`: spreadsheets in, leads assigned, a per-row report of rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from store.db import Database
from store.models import FollowUp, Lead, OutboxMessage
from tests.conftest import TEMPLATE

ROWS = [
    ["公司名称", "联系人", "手机", "省份", "城市", "行业", "预算", "备注"],
    ["杭州中泰阀门有限公司", "周立", "13588889999", "浙江", "杭州市", "化工", "30万", "展会上聊过，下周三去现场看管路，要DN150球阀报价"],
    ["", "无名", "13500000000", "浙江", "", "", "", ""],
    ["广州精工传感", "李明", "020-12345", "广东", "", "", "", ""],
    ["成都蓉创科技", "张三", "028-86001234", "四川", "成都市", "电子制造", "很多钱", ""],
    ["", "", "", "", "", "", "", ""],
    ["西安航瑞测控", "赵工", "029-88776655", "陕西省", "西安市", "航空航天", "", ""],
]


@pytest.fixture
def config(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "leadbot.toml"
    cfg.write_text(TEMPLATE, encoding="utf-8")
    monkeypatch.setenv("LEADBOT_DATABASE_URL", db_url)
    return cfg


def _write_csv(path: Path, encoding: str) -> None:
    import csv

    with path.open("w", encoding=encoding, newline="") as fh:
        csv.writer(fh).writerows(ROWS)


@pytest.mark.parametrize("kind", ["utf-8-sig", "gb18030", "xlsx"])
def test_import_reports_each_rejected_row_and_assigns_the_rest(kind: str, tmp_path: Path, config: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    if kind == "xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        for row in ROWS:
            wb.active.append(row)
        path = tmp_path / "展会名单.xlsx"
        wb.save(path)
    else:
        path = tmp_path / "展会名单.csv"
        _write_csv(path, kind)

    code = main(["import", str(path), "--source", "展会", "-c", str(config)])
    out = capsys.readouterr().out
    assert code == 0
    assert "共 5 行，成功 2 行，拒绝 3 行" in out
    assert "第 3 行：company: 必填" in out
    assert "第 4 行：phone:" in out and "020-12345" in out
    assert "第 5 行：budget:" in out

    db = Database(db_url)
    try:
        with db.session() as s:
            leads = list(s.execute(select(Lead).order_by(Lead.id)).scalars())
            assert [(l.company, l.source, l.region) for l in leads] == [
                ("杭州中泰阀门有限公司", "展会", "华东"),
                ("西安航瑞测控", "展会", "华北"),
            ]
            assert all(l.owner_id for l in leads)
            # The cards wait in the outbox for the server's delivery worker.
            assert len(list(s.execute(select(OutboxMessage)).scalars())) == 2
            # The note became a structured follow-up: the extractor found the visit and the quote request.
            note = s.execute(select(FollowUp)).scalars().one()
            fields = json.loads(note.fields_json)
            assert note.lead_id == leads[0].id
            assert fields["dates"] and fields["dates"][0]["text"].startswith("下周三")
            assert "quote_request" in fields["intents"]
    finally:
        db.close()


def test_import_refuses_unknown_files_clearly(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "leads.txt"
    bad.write_text("hello", encoding="utf-8")
    assert main(["import", str(bad), "-c", str(config)]) == 2
    assert "只支持 .csv 和 .xlsx" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.csv"), "-c", str(config)]) == 2
    assert "文件不存在" in capsys.readouterr().err


def test_import_without_required_columns_says_which(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.csv"
    path.write_text("公司,备注\n某某公司,无\n", encoding="utf-8")
    assert main(["import", str(path), "-c", str(config)]) == 1
    assert "缺少必需的列：contact、phone、province" in capsys.readouterr().out
