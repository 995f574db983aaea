"""scheduler tables: alert keys, mutes, scan cursors, ticket SLA state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:31:51.924560
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('member_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('summary', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('stake_fen', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('deliver_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.create_index('ix_alert_member_deliver', ['member_id', 'deliver_at'], unique=False)
        batch_op.create_index('ix_alert_status_member', ['status', 'member_id'], unique=False)

    op.create_table('alert_mute',
    sa.Column('member_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('until', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', 'kind')
    )
    op.create_table('scan_state',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('cursor_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cursor_id', sa.Integer(), nullable=False),
    sa.Column('cursor_day', sa.Date(), nullable=True),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('ticket_sla',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('escalated_to', sa.Text(), nullable=False),
    sa.Column('accepted_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_progress_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('remaining_seconds', sa.Float(), nullable=True),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('ticket_id')
    )


    # Indexes on lead the scans rely on (declared in store/models_schedule.py).
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.create_index('ix_lead_status_accept_due', ['status', 'accept_due_at'], unique=False)
        batch_op.create_index('ix_lead_accepted_at', ['accepted_at'], unique=False)
        batch_op.create_index('ix_lead_assigned_at_owner', ['assigned_at', 'owner_id'], unique=False)
        batch_op.create_index('ix_lead_owner_status_touch', ['owner_id', 'status', 'last_interaction_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_owner_status_touch')
        batch_op.drop_index('ix_lead_assigned_at_owner')
        batch_op.drop_index('ix_lead_accepted_at')
        batch_op.drop_index('ix_lead_status_accept_due')
    op.drop_table('ticket_sla')
    op.drop_table('scan_state')
    op.drop_table('alert_mute')
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_status_member')
        batch_op.drop_index('ix_alert_member_deliver')

    op.drop_table('alert')
