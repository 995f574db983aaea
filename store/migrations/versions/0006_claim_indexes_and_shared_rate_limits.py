"""claim indexes and shared rate limits

Partial indexes over the pending rows only, so claims do not walk past the handled and
sent rows that make up nearly all of both tables: ``ix_inbox_pending`` (the dispatcher's
oldest pending event) and ``ix_outbox_pending_recipient`` (the per-recipient order
barrier of outbox claims). ``ratecounter`` holds per-recipient send counts per time slot,
so the platforms' per-member rate limits hold across every process on one database.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 13:45:17.437779
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.types


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ratecounter',
    sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('window_ms', sa.Integer(), nullable=False),
    sa.Column('slot', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('sends', sa.Integer(), nullable=False),
    sa.Column('expires_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'recipient', 'window_ms', 'slot')
    )
    with op.batch_alter_table('ratecounter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ratecounter_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('inboxevent', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_pending', ['id'], unique=False, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    with op.batch_alter_table('outboxmessage', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_pending_recipient', ['platform', 'recipient', 'id'], unique=False, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))



def downgrade() -> None:
    with op.batch_alter_table('outboxmessage', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending_recipient', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    with op.batch_alter_table('inboxevent', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_pending', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    with op.batch_alter_table('ratecounter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ratecounter_expires_at'))

    op.drop_table('ratecounter')
