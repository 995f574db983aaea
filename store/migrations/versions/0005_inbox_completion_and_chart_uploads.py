"""inbox completion and chart uploads

Inbox rows may wait in status ``incomplete`` until their adapter completed them
(``complete_due_at``: next try or lease; ``complete_attempts``: failed tries), and the
``chartupload`` table keeps what a chart delivery uploaded and already sent, per outbox
message, so a delivery resumed after a restart neither re-uploads nor resends.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:57:48.917071
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chartupload',
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('card_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('media_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('image_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('expires_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('parts_json', sa.Text(), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('outbox_id')
    )
    with op.batch_alter_table('chartupload', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chartupload_card_id'), ['card_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_chartupload_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('inboxevent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complete_due_at', store.types.UTCDateTime(timezone=True), nullable=True))
        # Existing rows were all complete when stored: zero failed tries.
        batch_op.add_column(sa.Column('complete_attempts', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    # Rows still waiting for completion hold an event a handler can read as it is (the
    # degraded form), so they become ordinary pending rows rather than being lost.
    op.execute("UPDATE inboxevent SET status = 'pending' WHERE status = 'incomplete'")
    with op.batch_alter_table('inboxevent', schema=None) as batch_op:
        batch_op.drop_column('complete_attempts')
        batch_op.drop_column('complete_due_at')

    with op.batch_alter_table('chartupload', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chartupload_created_at'))
        batch_op.drop_index(batch_op.f('ix_chartupload_card_id'))

    op.drop_table('chartupload')
