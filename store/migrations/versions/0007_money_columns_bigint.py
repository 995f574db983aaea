"""money columns 64-bit

Budgets and amounts are integer fen: a 32-bit INTEGER on PostgreSQL stops at
2147.48万 yuan, which real B2B deals exceed (found by the API fuzzing: a lead with
budget "3000万" answered 500). ``customer.budget_fen``, ``lead.budget_fen``,
``lead.score``, ``opportunity.amount_fen`` and ``alert.stake_fen`` become BIGINT.
SQLite's INTEGER already holds 64 bits, and the models keep that declared type there
(``store.types.BIG_INT``): nothing changes on SQLite, where rebuilding ``lead`` would be
refused by the foreign keys that point at it.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

COLUMNS = (
    ("customer", "budget_fen"),
    ("lead", "budget_fen"),
    ("lead", "score"),
    ("opportunity", "amount_fen"),
    ("alert", "stake_fen"),
)


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    # Values beyond 32 bits would not fit back; PostgreSQL refuses the downgrade then.
    _retype(sa.BigInteger(), sa.Integer())


def _retype(old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, existing_type=old, type_=new, existing_nullable=True)
