"""index order lines by menu item

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:30:11.689759
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_lines_menu_item_id'), ['menu_item_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_lines_menu_item_id'))

