"""the server's derivation of money and the quarantine list (待核查)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 12:40:00
"""
from alembic import op
import sqlalchemy as sa

from kiosk.db.models import UTCDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quarantined_ops',
                    sa.Column('op_id', sa.String(length=36), nullable=False),
                    sa.Column('terminal_id', sa.String(length=64), nullable=False),
                    sa.Column('canteen_id', sa.String(length=64), nullable=False),
                    sa.Column('kind', sa.String(length=40), nullable=False),
                    sa.Column('reason', sa.Text(), nullable=False),
                    sa.Column('resident_id', sa.String(length=64), nullable=True),
                    sa.Column('amount_fen', sa.BigInteger(), nullable=True),
                    sa.Column('payload', sa.JSON(), nullable=False),
                    sa.Column('created_at', UTCDateTime(), nullable=True),
                    sa.Column('received_at', UTCDateTime(), nullable=False),
                    sa.Column('status', sa.String(length=20), nullable=False),
                    sa.Column('decided_by', sa.String(length=64), nullable=True),
                    sa.Column('decided_at', UTCDateTime(), nullable=True),
                    sa.Column('note', sa.Text(), nullable=True),
                    sa.PrimaryKeyConstraint('op_id', name=op.f('pk_quarantined_ops')))
    op.create_index(op.f('ix_quarantined_ops_terminal_id'), 'quarantined_ops', ['terminal_id'], unique=False)
    op.create_index(op.f('ix_quarantined_ops_received_at'), 'quarantined_ops', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_quarantined_ops_received_at'), table_name='quarantined_ops')
    op.drop_index(op.f('ix_quarantined_ops_terminal_id'), table_name='quarantined_ops')
    op.drop_table('quarantined_ops')
