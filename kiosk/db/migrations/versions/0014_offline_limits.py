"""offline limits: caps on offline balance payments, the subsidy's offline time, blocked
cards and residents; orders say whether they were sold offline

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 17:10:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from kiosk.db.models import UTCDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as b:
        b.add_column(sa.Column('offline_s', sa.Integer(), nullable=True))
    op.create_table(
        "offline_limits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("per_sale_fen", sa.Integer(), nullable=True),
        sa.Column("per_day_fen", sa.Integer(), nullable=True),
        sa.Column("subsidy_offline_s", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_offline_limits"),
    )
    op.create_index("ix_offline_limits_set_at", "offline_limits", ["set_at"])
    op.create_table(
        "blocked_ids",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("blocked_by", sa.String(64), nullable=False),
        sa.Column("blocked_at", UTCDateTime(), nullable=False),
        sa.Column("lifted_by", sa.String(64), nullable=True),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_blocked_ids"),
    )
    op.create_index("ix_blocked_ids_value", "blocked_ids", ["value"])


def downgrade() -> None:
    op.drop_index("ix_blocked_ids_value", table_name="blocked_ids")
    op.drop_table("blocked_ids")
    op.drop_index("ix_offline_limits_set_at", table_name="offline_limits")
    op.drop_table("offline_limits")
    with op.batch_alter_table('orders') as b:
        b.drop_column('offline_s')
