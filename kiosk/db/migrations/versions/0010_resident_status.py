"""resident status (在册/暂停/迁出/死亡) and its date, anomaly thresholds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:05:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('residents') as b:
        b.add_column(sa.Column('roster_status', sa.String(length=12), nullable=False,
                               server_default='registered'))
        b.add_column(sa.Column('status_date', sa.Date(), nullable=True))
    with op.batch_alter_table('district_settings') as b:
        b.add_column(sa.Column('anomaly_thresholds', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('district_settings') as b:
        b.drop_column('anomaly_thresholds')
    with op.batch_alter_table('residents') as b:
        b.drop_column('status_date')
        b.drop_column('roster_status')
