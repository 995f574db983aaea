"""sales tables: stage answers and gates, scoring inputs and versions, decision links

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:03:49.546373
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.types


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scoring_facts',
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('facts_json', sa.Text(), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('entity', 'entity_id')
    )
    op.create_table('scoring_version',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('applied_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('decision_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('source_contact_id', sa.Integer(), nullable=False),
    sa.Column('target_contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['source_contact_id'], ['contact.id'], ),
    sa.ForeignKeyConstraint(['target_contact_id'], ['contact.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('decision_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_link_customer_id'), ['customer_id'], unique=False)

    op.create_table('opportunity_state',
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('fields_json', sa.Text(), nullable=False),
    sa.Column('stage_entered_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunity.id'], ),
    sa.PrimaryKeyConstraint('opportunity_id')
    )
    op.create_table('stage_gate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('target_stage', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('override_reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunity.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stage_gate', schema=None) as batch_op:
        batch_op.create_index('ix_stage_gate_member_status', ['member_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_gate_opportunity_id'), ['opportunity_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('stage_gate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_gate_opportunity_id'))
        batch_op.drop_index('ix_stage_gate_member_status')

    op.drop_table('stage_gate')
    op.drop_table('opportunity_state')
    with op.batch_alter_table('decision_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_link_customer_id'))

    op.drop_table('decision_link')
    op.drop_table('scoring_version')
    op.drop_table('scoring_facts')
