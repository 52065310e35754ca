"""the district: terminal tokens, change log, applied ops, flags, terminal outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:45:00
"""
from alembic import op
import sqlalchemy as sa

from kiosk.db.models import UTCDateTime

# chained after 0003_data_safety (revision '0003' was taken by the data-safety migration)
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('terminals', schema=None) as b:
        b.add_column(sa.Column('token_hash', sa.String(length=64), nullable=True))
        b.add_column(sa.Column('revoked_at', UTCDateTime(), nullable=True))
        b.add_column(sa.Column('last_seen_at', UTCDateTime(), nullable=True))
        b.add_column(sa.Column('last_push_at', UTCDateTime(), nullable=True))
        b.add_column(sa.Column('last_pull_at', UTCDateTime(), nullable=True))
        b.add_column(sa.Column('pulled_version', sa.Integer(), nullable=True))
        b.add_column(sa.Column('pending', sa.Integer(), nullable=True))
        b.add_column(sa.Column('software_version', sa.String(length=40), nullable=True))
        b.add_column(sa.Column('model', sa.String(length=200), nullable=True))
        b.create_unique_constraint(b.f('uq_terminals_token_hash'), ['token_hash'])

    op.create_table('change_log',
                    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
                    sa.Column('version', sa.Integer(), nullable=False),
                    sa.Column('entity', sa.String(length=20), nullable=False),
                    sa.Column('key', sa.String(length=200), nullable=False),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_log')))
    op.create_index(op.f('ix_change_log_version'), 'change_log', ['version'], unique=False)

    op.create_table('sync_counter',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('version', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_counter')))
    op.execute("INSERT INTO sync_counter (id, version) VALUES (1, 0)")

    op.create_table('applied_ops',
                    sa.Column('op_id', sa.String(length=36), nullable=False),
                    sa.Column('terminal_id', sa.String(length=64), nullable=False),
                    sa.Column('kind', sa.String(length=40), nullable=False),
                    sa.Column('status', sa.String(length=20), nullable=False),
                    sa.Column('error', sa.Text(), nullable=True),
                    sa.Column('payload', sa.JSON(), nullable=True),
                    sa.Column('created_at', UTCDateTime(), nullable=True),
                    sa.Column('received_at', UTCDateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('op_id', name=op.f('pk_applied_ops')))
    op.create_index(op.f('ix_applied_ops_terminal_id'), 'applied_ops', ['terminal_id'], unique=False)

    op.create_table('pushed_orders',
                    sa.Column('order_id', sa.String(length=36), nullable=False),
                    sa.Column('terminal_id', sa.String(length=64), nullable=False),
                    sa.Column('op_id', sa.String(length=36), nullable=False),
                    sa.Column('received_at', UTCDateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_pushed_orders')))

    op.create_table('district_flags',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('order_id', sa.String(length=36), nullable=False),
                    sa.Column('resident_id', sa.String(length=64), nullable=False),
                    sa.Column('meal_date', sa.Date(), nullable=False),
                    sa.Column('kind', sa.String(length=20), nullable=False),
                    sa.Column('over_fen', sa.Integer(), nullable=False),
                    sa.Column('order_ids', sa.JSON(), nullable=False),
                    sa.Column('created_at', UTCDateTime(), nullable=False),
                    sa.Column('decision', sa.String(length=20), nullable=True),
                    sa.Column('decided_by', sa.String(length=64), nullable=True),
                    sa.Column('decided_at', UTCDateTime(), nullable=True),
                    sa.Column('note', sa.Text(), nullable=True),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_district_flags')))
    op.create_index(op.f('ix_district_flags_order_id'), 'district_flags', ['order_id'], unique=False)
    op.create_index(op.f('ix_district_flags_resident_id'), 'district_flags', ['resident_id'], unique=False)
    op.create_index(op.f('ix_district_flags_meal_date'), 'district_flags', ['meal_date'], unique=False)

    op.create_table('sync_outbox',
                    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('kind', sa.String(length=40), nullable=False),
                    sa.Column('payload', sa.JSON(), nullable=False),
                    sa.Column('created_at', UTCDateTime(), nullable=False),
                    sa.Column('status', sa.String(length=20), nullable=False),
                    sa.Column('error', sa.Text(), nullable=True),
                    sa.PrimaryKeyConstraint('seq', name=op.f('pk_sync_outbox')),
                    sa.UniqueConstraint('id', name=op.f('uq_sync_outbox_id')))

    op.create_table('sync_state',
                    sa.Column('key', sa.String(length=40), nullable=False),
                    sa.Column('value', sa.JSON(), nullable=True),
                    sa.PrimaryKeyConstraint('key', name=op.f('pk_sync_state')))


def downgrade() -> None:
    for t in ('sync_state', 'sync_outbox', 'district_flags', 'pushed_orders', 'applied_ops',
              'sync_counter', 'change_log'):
        op.drop_table(t)
    with op.batch_alter_table('terminals', schema=None) as b:
        b.drop_constraint(b.f('uq_terminals_token_hash'), type_='unique')
        for c in ('model', 'software_version', 'pending', 'pulled_version', 'last_pull_at', 'last_push_at',
                  'last_seen_at', 'revoked_at', 'token_hash'):
            b.drop_column(c)
