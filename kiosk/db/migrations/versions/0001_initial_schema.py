"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 10:15:55.114080
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('canteens',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('district', sa.String(length=100), nullable=True),
    sa.Column('meal_windows', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canteens'))
    )
    op.create_table('menu_items',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('canteen_id', sa.String(length=64), nullable=False),
    sa.Column('menu_date', sa.Date(), nullable=False),
    sa.Column('meal', sa.String(length=10), nullable=False),
    sa.Column('dish_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('allergens', sa.JSON(), nullable=False),
    sa.Column('portions', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_menu_items')),
    sa.UniqueConstraint('canteen_id', 'menu_date', 'meal', 'dish_id', name=op.f('uq_menu_items_canteen_id'))
    )
    with op.batch_alter_table('menu_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_menu_items_menu_date'), ['menu_date'], unique=False)

    op.create_table('residents',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('id_number', sa.String(length=18), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('sex', sa.String(length=4), nullable=True),
    sa.Column('hukou', sa.String(length=100), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('diet_tags', sa.JSON(), nullable=False),
    sa.Column('allergies', sa.JSON(), nullable=False),
    sa.Column('card_no', sa.String(length=64), nullable=True),
    sa.Column('emergency_contact', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_residents')),
    sa.UniqueConstraint('card_no', name=op.f('uq_residents_card_no')),
    sa.UniqueConstraint('id_number', name=op.f('uq_residents_id_number'))
    )
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_residents_phone'), ['phone'], unique=False)

    op.create_table('staff',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('pin_hash', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff'))
    )
    op.create_table('subsidy_policies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('policy_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('district', sa.String(length=100), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('effective_to', sa.Date(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subsidy_policies')),
    sa.UniqueConstraint('policy_id', 'version', name=op.f('uq_subsidy_policies_policy_id'))
    )
    with op.batch_alter_table('subsidy_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subsidy_policies_policy_id'), ['policy_id'], unique=False)

    op.create_table('face_consents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('resident_id', sa.String(length=64), nullable=False),
    sa.Column('given_by', sa.String(length=20), nullable=False),
    sa.Column('guardian_name', sa.String(length=100), nullable=True),
    sa.Column('staff_id', sa.String(length=64), nullable=False),
    sa.Column('text_version', sa.String(length=40), nullable=False),
    sa.Column('allows_crop', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_face_consents_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_face_consents'))
    )
    with op.batch_alter_table('face_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_face_consents_resident_id'), ['resident_id'], unique=False)

    op.create_table('face_templates',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('resident_id', sa.String(length=64), nullable=False),
    sa.Column('contract_id', sa.String(length=200), nullable=False),
    sa.Column('backend', sa.String(length=40), nullable=False),
    sa.Column('embedding_enc', sa.LargeBinary(), nullable=False),
    sa.Column('crop_enc', sa.LargeBinary(), nullable=True),
    sa.Column('quality', sa.Double(), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_face_templates_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_face_templates'))
    )
    with op.batch_alter_table('face_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_face_templates_contract_id'), ['contract_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_face_templates_resident_id'), ['resident_id'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('resident_id', sa.String(length=64), nullable=False),
    sa.Column('canteen_id', sa.String(length=64), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=True),
    sa.Column('meal_date', sa.Date(), nullable=False),
    sa.Column('meal', sa.String(length=10), nullable=False),
    sa.Column('total_fen', sa.Integer(), nullable=False),
    sa.Column('subsidy_fen', sa.Integer(), nullable=False),
    sa.Column('to_pay_fen', sa.Integer(), nullable=False),
    sa.Column('pay_method', sa.String(length=20), nullable=False),
    sa.Column('tier', sa.String(length=100), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('policy_row_id', sa.String(length=36), nullable=True),
    sa.Column('identified_by', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_orders_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_orders_idempotency_key'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_resident_day', ['resident_id', 'meal_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_resident_id'), ['resident_id'], unique=False)

    op.create_table('terminals',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('canteen_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['canteen_id'], ['canteens.id'], name=op.f('fk_terminals_canteen_id_canteens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_terminals'))
    )
    op.create_table('ledger_entries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('resident_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=True),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('affects_balance', sa.Boolean(), nullable=False),
    sa.Column('payer', sa.String(length=100), nullable=True),
    sa.Column('staff_id', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_ledger_entries_order_id_orders')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_ledger_entries_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_resident_id'), ['resident_id'], unique=False)

    op.create_table('order_lines',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('menu_item_id', sa.String(length=36), nullable=False),
    sa.Column('dish_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['menu_item_id'], ['menu_items.id'], name=op.f('fk_order_lines_menu_item_id_menu_items')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines'))
    )
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_lines_order_id'), ['order_id'], unique=False)

    op.create_table('order_voids',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('staff_id', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_voids_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_voids')),
    sa.UniqueConstraint('order_id', name=op.f('uq_order_voids_order_id'))
    )


def downgrade() -> None:
    op.drop_table('order_voids')
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_lines_order_id'))

    op.drop_table('order_lines')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_resident_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_order_id'))

    op.drop_table('ledger_entries')
    op.drop_table('terminals')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_resident_id'))
        batch_op.drop_index('ix_orders_resident_day')

    op.drop_table('orders')
    with op.batch_alter_table('face_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_face_templates_resident_id'))
        batch_op.drop_index(batch_op.f('ix_face_templates_contract_id'))

    op.drop_table('face_templates')
    with op.batch_alter_table('face_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_face_consents_resident_id'))

    op.drop_table('face_consents')
    with op.batch_alter_table('subsidy_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subsidy_policies_policy_id'))

    op.drop_table('subsidy_policies')
    op.drop_table('staff')
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_residents_phone'))

    op.drop_table('residents')
    with op.batch_alter_table('menu_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_menu_items_menu_date'))

    op.drop_table('menu_items')
    op.drop_table('canteens')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
