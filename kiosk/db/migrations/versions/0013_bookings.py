"""meal bookings (报餐/报停)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 13:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from kiosk.db.models import UTCDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meal_bookings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("resident_id", sa.String(64), sa.ForeignKey("residents.id", name="fk_meal_bookings_resident_id_residents"),
                  nullable=False),
        sa.Column("meal_date", sa.Date(), nullable=False),
        sa.Column("meal", sa.String(10), nullable=False),
        sa.Column("canteen_id", sa.String(64), nullable=False),
        sa.Column("dish_ids", sa.JSON(), nullable=False),
        sa.Column("portions", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("staff_id", sa.String(64), nullable=True),
        sa.Column("terminal_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_meal_bookings"),
        sa.UniqueConstraint("resident_id", "meal_date", "meal", name="uq_meal_bookings_resident_id"),
    )
    op.create_index("ix_meal_bookings_day", "meal_bookings", ["meal_date", "canteen_id"])


def downgrade() -> None:
    op.drop_index("ix_meal_bookings_day", table_name="meal_bookings")
    op.drop_table("meal_bookings")
