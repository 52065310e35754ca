"""console passwords (Argon2id) and login back-off, apart from PINs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 12:40:00

Also each canteen's staff list (``canteen_staff``): a terminal receives the PIN hashes
of its canteen's staff only. On a district server being upgraded, every active member
of role ``staff`` is put on every canteen's list (the counters keep working as before;
admins trim the lists with ``kiosk staff canteen remove``); supervisors and admins are
put on none. Every staff record is then marked changed, so that each terminal drops, at
its next sync, the hashes it may no longer hold.
"""
from alembic import op
import sqlalchemy as sa

from kiosk.db.models import UTCDateTime

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('canteen_staff',
                    sa.Column('canteen_id', sa.String(length=64), nullable=False),
                    sa.Column('staff_id', sa.String(length=64), nullable=False),
                    sa.Column('added_by', sa.String(length=64), nullable=True),
                    sa.Column('added_at', UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['canteen_id'], ['canteens.id'],
                                            name=op.f('fk_canteen_staff_canteen_id_canteens')),
                    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'],
                                            name=op.f('fk_canteen_staff_staff_id_staff')),
                    sa.PrimaryKeyConstraint('canteen_id', 'staff_id', name=op.f('pk_canteen_staff')))
    op.create_index(op.f('ix_canteen_staff_staff_id'), 'canteen_staff', ['staff_id'], unique=False)
    op.create_table('staff_passwords',
                    sa.Column('staff_id', sa.String(length=64), nullable=False),
                    sa.Column('password_hash', sa.String(length=200), nullable=False),
                    sa.Column('set_by', sa.String(length=64), nullable=True),
                    sa.Column('set_at', UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'],
                                            name=op.f('fk_staff_passwords_staff_id_staff')),
                    sa.PrimaryKeyConstraint('staff_id', name=op.f('pk_staff_passwords')))
    op.create_table('login_throttle',
                    sa.Column('key', sa.String(length=120), nullable=False),
                    sa.Column('failures', sa.Integer(), nullable=False),
                    sa.Column('last_failure_at', UTCDateTime(), nullable=True),
                    sa.Column('locked_until', UTCDateTime(), nullable=True),
                    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle')))
    _lists_and_changes()


def _lists_and_changes() -> None:
    conn = op.get_bind()
    role = conn.execute(sa.text("SELECT value FROM sync_state WHERE key = 'role'")).first()
    if role is not None and role[0] in ('terminal', '"terminal"'):
        return                      # a terminal's replica: its staff come from the server
    staff = conn.execute(sa.text("SELECT id, role, active FROM staff ORDER BY id")).all()
    if not staff:
        return
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    canteens = [r[0] for r in conn.execute(sa.text("SELECT id FROM canteens ORDER BY id"))]
    members = [{"canteen_id": c, "staff_id": s.id, "added_by": "system", "added_at": now}
               for c in canteens for s in staff if s.role == "staff" and s.active]
    cs = sa.table('canteen_staff', sa.column('canteen_id', sa.String), sa.column('staff_id', sa.String),
                  sa.column('added_by', sa.String), sa.column('added_at', UTCDateTime()))
    if members:
        conn.execute(sa.insert(cs), members)
    v = conn.execute(sa.text("UPDATE sync_counter SET version = version + 1 WHERE id = 1 RETURNING version")).scalar()
    if v is None:
        return
    cl = sa.table('change_log', sa.column('version', sa.Integer), sa.column('entity', sa.String),
                  sa.column('key', sa.String))
    conn.execute(sa.insert(cl), [{"version": v, "entity": "staff", "key": s.id} for s in staff])


def downgrade() -> None:
    op.drop_table('login_throttle')
    op.drop_table('staff_passwords')
    op.drop_index(op.f('ix_canteen_staff_staff_id'), table_name='canteen_staff')
    op.drop_table('canteen_staff')
