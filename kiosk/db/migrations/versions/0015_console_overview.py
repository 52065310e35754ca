"""console overview: the monthly subsidy budget, an index for meals per day and canteen,
the terminal a consent or a face template came from

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 17:10:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the admin's monthly subsidy budget (fen; None: not set), shown against the month's subsidy
    with op.batch_alter_table('district_settings', schema=None) as b:
        b.add_column(sa.Column('subsidy_budget_fen', sa.BigInteger(), nullable=True))
    # the terminal that pushed a consent or a template (set by the server from the token)
    with op.batch_alter_table('face_consents', schema=None) as b:
        b.add_column(sa.Column('terminal_id', sa.String(length=64), nullable=True))
    with op.batch_alter_table('face_templates', schema=None) as b:
        b.add_column(sa.Column('terminal_id', sa.String(length=64), nullable=True))
    # the overview's meals per day and canteen and the month's subsidy, read from the index alone
    # on PostgreSQL (INCLUDE); SQLite ignores the include
    op.create_index('ix_orders_day_canteen', 'orders', ['meal_date', 'canteen_id'],
                    postgresql_include=['subsidy_fen'])


def downgrade() -> None:
    op.drop_index('ix_orders_day_canteen', table_name='orders')
    with op.batch_alter_table('face_templates', schema=None) as b:
        b.drop_column('terminal_id')
    with op.batch_alter_table('face_consents', schema=None) as b:
        b.drop_column('terminal_id')
    with op.batch_alter_table('district_settings', schema=None) as b:
        b.drop_column('subsidy_budget_fen')
