"""Upgrading a database that holds data: every migration keeps the rows and their links
(SQLite file and PostgreSQL), and the models match the migrated schema exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import store.models  # noqa: F401 - the tables the models declare
import store.models_sales  # noqa: F401
import store.models_schedule  # noqa: F401
from store.db import alembic_config, normalise_url, upgrade
from tests.conftest import PG_URL, _pg_database

ROWS = [
    "INSERT INTO customer (id, name, name_norm, budget_fen, created_at, updated_at) VALUES (1, '恒锐精密', '恒锐精密', 50000000, '2026-03-01', '2026-03-01')",
    "INSERT INTO lead (id, customer_id, company, contact_name, phone, source, note, status, explanation, created_at, updated_at, budget_fen, score) "
    "VALUES (1, 1, '恒锐精密', '张总', '13912345678', '官网表单', '', 'assigned', '', '2026-03-01', '2026-03-01', 50000000, 4200)",
    "INSERT INTO followup (lead_id, customer_id, member_id, text, fields_json, status, created_at) VALUES (1, 1, 'zhangwei', '约了看产线', '{}', 'confirmed', '2026-03-02')",
    "INSERT INTO opportunity (id, customer_id, lead_id, owner_id, name, amount_fen, stage, created_at, updated_at) "
    "VALUES (1, 1, 1, 'zhangwei', '压装机', 48000000, '报价', '2026-03-03', '2026-03-03')",
]


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield normalise_url(f"sqlite:///{tmp_path / 'old.db'}")
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need LEADBOT_TEST_POSTGRES_URL (.ci/run starts a server)")
    gen = _pg_database()
    yield normalise_url(next(gen))
    gen.close()


def test_upgrading_a_database_with_leads_keeps_them_and_takes_big_budgets(empty_url: str) -> None:
    cfg = alembic_config(empty_url)
    command.upgrade(cfg, "0006")
    engine = sa.create_engine(empty_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            for row in ROWS:
                conn.execute(sa.text(row))
        upgrade(empty_url)
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT budget_fen, score FROM lead")).one() == (50000000, 4200)
            assert conn.execute(sa.text("SELECT count(*) FROM followup WHERE lead_id = 1")).scalar_one() == 1
            conn.execute(sa.text("UPDATE opportunity SET amount_fen = 3000000000000"))  # 3 亿元 in fen
            assert conn.execute(sa.text("SELECT amount_fen FROM opportunity")).scalar_one() == 3_000_000_000_000
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
        assert diff == []
    finally:
        engine.dispose()
