"""orders by day and by terminal (a district of 3x10^6 orders a month)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 17:35:00

A month's or a day's orders (reports, anomaly scan, no-shows) without reading every
order ever stored, and each terminal's last order (the terminals page, the overview)
from the index's end instead of a scan of all orders: docs/benchmarks.md.
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_terminal_at', ['terminal_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_terminal_at')
