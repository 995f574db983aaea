"""next contact indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:15:11.937665
"""
from alembic import op





revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_next_contact_on'), ['next_contact_on'], unique=False)

    with op.batch_alter_table('followup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followup_next_contact_on'), ['next_contact_on'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('followup', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_followup_next_contact_on'))

    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_next_contact_on'))

