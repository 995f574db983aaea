"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 10:22:59.566252
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('auditevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entity', ['entity', 'entity_id'], unique=False)

    op.create_table('cardhandle',
    sa.Column('card_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('member_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('card_json', sa.Text(), nullable=False),
    sa.Column('platform_handle', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('response_code', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('handle_expires_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('card_id')
    )
    with op.batch_alter_table('cardhandle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cardhandle_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cardhandle_subject'), ['subject'], unique=False)

    op.create_table('customer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name_norm', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('province', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('industry', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('health_score', sa.Integer(), nullable=True),
    sa.Column('budget_fen', sa.Integer(), nullable=True),
    sa.Column('next_contact_on', sa.Date(), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_name_norm'), ['name_norm'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_owner_id'), ['owner_id'], unique=False)

    op.create_table('inboxevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('event_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('received_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('processed_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'event_key', name='uq_inbox_platform_key')
    )
    with op.batch_alter_table('inboxevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inboxevent_status'), ['status'], unique=False)

    op.create_table('member',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('manager_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('daily_capacity', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('on_leave', sa.Boolean(), nullable=False),
    sa.Column('wecom_userid', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('feishu_open_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('dingtalk_userid', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('preferred_platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('joined_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_dingtalk_userid'), ['dingtalk_userid'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_feishu_open_id'), ['feishu_open_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_region'), ['region'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_wecom_userid'), ['wecom_userid'], unique=False)

    op.create_table('outboxmessage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('member_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('card_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('next_attempt_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('outboxmessage', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outboxmessage_card_id'), ['card_id'], unique=False)

    op.create_table('region',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('provinces', sa.Text(), nullable=False),
    sa.Column('manager_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('rotationstate',
    sa.Column('pool', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('state_json', sa.Text(), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pool')
    )
    op.create_table('sandboxmessage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('card_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('card_json', sa.Text(), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('sandboxmessage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandboxmessage_card_id'), ['card_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sandboxmessage_user'), ['user'], unique=False)

    op.create_table('contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('phone_norm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('decision_weight', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_phone_norm'), ['phone_norm'], unique=False)

    op.create_table('lead',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('company', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('contact_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('phone_norm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('province', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('industry', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('budget_fen', sa.Integer(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('rule_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('explanation', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('invalid_reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('assigned_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accept_due_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_interaction_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_accept_due_at'), ['accept_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_last_interaction_at'), ['last_interaction_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_phone_norm'), ['phone_norm'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_region'), ['region'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_status'), ['status'], unique=False)

    op.create_table('ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('sla_due_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_sla_due_at'), ['sla_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_status'), ['status'], unique=False)

    op.create_table('followup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('member_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('fields_json', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('next_contact_on', sa.Date(), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('followup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followup_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_followup_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_followup_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_followup_member_id'), ['member_id'], unique=False)

    op.create_table('opportunity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=True),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('expected_close_on', sa.Date(), nullable=True),
    sa.Column('stage_due_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunity_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunity_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunity_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunity_stage_due_at'), ['stage_due_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunity_stage_due_at'))
        batch_op.drop_index(batch_op.f('ix_opportunity_owner_id'))
        batch_op.drop_index(batch_op.f('ix_opportunity_lead_id'))
        batch_op.drop_index(batch_op.f('ix_opportunity_customer_id'))

    op.drop_table('opportunity')
    with op.batch_alter_table('followup', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_followup_member_id'))
        batch_op.drop_index(batch_op.f('ix_followup_lead_id'))
        batch_op.drop_index(batch_op.f('ix_followup_customer_id'))
        batch_op.drop_index(batch_op.f('ix_followup_created_at'))

    op.drop_table('followup')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_status'))
        batch_op.drop_index(batch_op.f('ix_ticket_sla_due_at'))
        batch_op.drop_index(batch_op.f('ix_ticket_owner_id'))
        batch_op.drop_index(batch_op.f('ix_ticket_customer_id'))

    op.drop_table('ticket')
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_status'))
        batch_op.drop_index(batch_op.f('ix_lead_region'))
        batch_op.drop_index(batch_op.f('ix_lead_phone_norm'))
        batch_op.drop_index(batch_op.f('ix_lead_owner_id'))
        batch_op.drop_index(batch_op.f('ix_lead_last_interaction_at'))
        batch_op.drop_index(batch_op.f('ix_lead_customer_id'))
        batch_op.drop_index(batch_op.f('ix_lead_created_at'))
        batch_op.drop_index(batch_op.f('ix_lead_accept_due_at'))

    op.drop_table('lead')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_phone_norm'))
        batch_op.drop_index(batch_op.f('ix_contact_customer_id'))

    op.drop_table('contact')
    with op.batch_alter_table('sandboxmessage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandboxmessage_user'))
        batch_op.drop_index(batch_op.f('ix_sandboxmessage_card_id'))

    op.drop_table('sandboxmessage')
    op.drop_table('rotationstate')
    op.drop_table('region')
    with op.batch_alter_table('outboxmessage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outboxmessage_card_id'))
        batch_op.drop_index('ix_outbox_due')

    op.drop_table('outboxmessage')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_wecom_userid'))
        batch_op.drop_index(batch_op.f('ix_member_region'))
        batch_op.drop_index(batch_op.f('ix_member_feishu_open_id'))
        batch_op.drop_index(batch_op.f('ix_member_dingtalk_userid'))

    op.drop_table('member')
    with op.batch_alter_table('inboxevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inboxevent_status'))

    op.drop_table('inboxevent')
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_owner_id'))
        batch_op.drop_index(batch_op.f('ix_customer_name_norm'))

    op.drop_table('customer')
    with op.batch_alter_table('cardhandle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cardhandle_subject'))
        batch_op.drop_index(batch_op.f('ix_cardhandle_member_id'))

    op.drop_table('cardhandle')
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entity')

    op.drop_table('auditevent')
