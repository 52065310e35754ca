"""the district console: proof of life on orders, welfare visits, district settings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 01:20:00
"""
from alembic import op
import sqlalchemy as sa

from kiosk.db.models import UTCDateTime

# chained after 0004_district (0003 is data safety, 0004 the district server)
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as b:
        b.add_column(sa.Column('face_verified', sa.Boolean(), nullable=True))
        b.add_column(sa.Column('liveness_passed', sa.Boolean(), nullable=True))
    op.create_table('welfare_visits',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('resident_id', sa.String(length=64), nullable=False),
                    sa.Column('staff_id', sa.String(length=64), nullable=False),
                    sa.Column('note', sa.Text(), nullable=False),
                    sa.Column('visited_at', UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'],
                                            name=op.f('fk_welfare_visits_resident_id_residents')),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_welfare_visits')))
    op.create_index(op.f('ix_welfare_visits_resident_id'), 'welfare_visits', ['resident_id'], unique=False)
    op.create_index(op.f('ix_welfare_visits_visited_at'), 'welfare_visits', ['visited_at'], unique=False)
    op.create_table('district_settings',
                    sa.Column('district', sa.String(length=100), nullable=False),
                    sa.Column('welfare_days', sa.Integer(), nullable=False),
                    sa.Column('updated_by', sa.String(length=64), nullable=True),
                    sa.Column('updated_at', UTCDateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('district', name=op.f('pk_district_settings')))


def downgrade() -> None:
    op.drop_table('district_settings')
    op.drop_index(op.f('ix_welfare_visits_visited_at'), table_name='welfare_visits')
    op.drop_index(op.f('ix_welfare_visits_resident_id'), table_name='welfare_visits')
    op.drop_table('welfare_visits')
    with op.batch_alter_table('orders', schema=None) as b:
        b.drop_column('liveness_passed')
        b.drop_column('face_verified')
