"""console sessions in the database (shared by every server process)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 13:20:00

The console's logins were kept in the memory of the server process that made them: with
`kiosk server --workers 2`, or several servers over one PostgreSQL, a request reaching
another process found no login. They are rows now (``console_sessions``), keyed by the
SHA-256 of the cookie's token. Logins open before the upgrade were in memory and are
gone with the restart anyway: nothing to carry over.
"""
from alembic import op
import sqlalchemy as sa

from kiosk.db.models import UTCDateTime

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_sessions',
                    sa.Column('token_hash', sa.String(length=64), nullable=False),
                    sa.Column('staff_id', sa.String(length=64), nullable=False),
                    sa.Column('csrf', sa.String(length=64), nullable=False),
                    sa.Column('created_at', UTCDateTime(), nullable=False),
                    sa.Column('last_seen_at', UTCDateTime(), nullable=False),
                    sa.Column('expires_at', UTCDateTime(), nullable=False),
                    sa.Column('flash', sa.JSON(), nullable=True),
                    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_console_sessions')))
    op.create_index(op.f('ix_console_sessions_staff_id'), 'console_sessions', ['staff_id'], unique=False)
    op.create_index(op.f('ix_console_sessions_expires_at'), 'console_sessions', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_console_sessions_expires_at'), table_name='console_sessions')
    op.drop_index(op.f('ix_console_sessions_staff_id'), table_name='console_sessions')
    op.drop_table('console_sessions')
