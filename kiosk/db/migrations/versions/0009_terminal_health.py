"""terminal health reports (version, face model, disk, camera, last sale)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:40:00
"""
from alembic import op
import sqlalchemy as sa

from kiosk.db.models import UTCDateTime

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # what a terminal reports in its X-Kiosk-* headers (software_version and model since 0004)
    with op.batch_alter_table('terminals', schema=None) as b:
        b.add_column(sa.Column('disk_free_bytes', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('camera_state', sa.String(length=20), nullable=True))
        b.add_column(sa.Column('camera_since', UTCDateTime(), nullable=True))
        b.add_column(sa.Column('last_sale_at', UTCDateTime(), nullable=True))
        b.add_column(sa.Column('health_at', UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('terminals', schema=None) as b:
        for col in ('health_at', 'last_sale_at', 'camera_since', 'camera_state', 'disk_free_bytes'):
            b.drop_column(col)
