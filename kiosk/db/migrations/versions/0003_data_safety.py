"""data safety: audit hash chain, gallery generation, PIN lockouts in the store

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 00:45:00

The audit log gets ``seq``, ``prev_hash`` and ``entry_hash``; entries already stored
are chained in the order they were written (``at``, then id). ``audit_head`` holds the
chain's end, ``store_counters`` the gallery generation, ``pin_lockouts`` wrong-PIN counts.
"""
from alembic import op
import sqlalchemy as sa

from kiosk.db.chain import GENESIS, canonical, link, normalize_detail
from kiosk.db.models import UTCDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_head',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('seq', sa.BigInteger(), nullable=False),
                    sa.Column('last_hash', sa.String(length=64), nullable=False),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head')))
    op.create_table('store_counters',
                    sa.Column('name', sa.String(length=40), nullable=False),
                    sa.Column('value', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('name', name=op.f('pk_store_counters')))
    op.create_table('pin_lockouts',
                    sa.Column('key', sa.String(length=100), nullable=False),
                    sa.Column('failures', sa.Integer(), nullable=False),
                    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
                    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('key', name=op.f('pk_pin_lockouts')))
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('entry_hash', sa.String(length=64), nullable=True))

    # chain the entries already stored, oldest first
    conn = op.get_bind()
    log = sa.table('audit_log', sa.column('id', sa.String()), sa.column('at', UTCDateTime()),
                   sa.column('actor', sa.String()), sa.column('action', sa.String()),
                   sa.column('subject', sa.String()), sa.column('detail', sa.JSON()),
                   sa.column('seq', sa.BigInteger()), sa.column('prev_hash', sa.String()),
                   sa.column('entry_hash', sa.String()))
    rows = conn.execute(sa.select(log.c.id, log.c.at, log.c.actor, log.c.action, log.c.subject, log.c.detail)
                        .order_by(log.c.at, log.c.id)).all()
    prev, seq = GENESIS, 0
    for rid, at, actor, action, subject, detail in rows:
        seq += 1
        detail = normalize_detail(detail)
        h = link(prev, canonical(seq, rid, at, actor, action, subject, detail))
        conn.execute(sa.update(log).where(log.c.id == rid).values(seq=seq, prev_hash=prev, entry_hash=h,
                                                                  detail=detail))
        prev = h
    conn.execute(sa.text("INSERT INTO audit_head (id, seq, last_hash) VALUES (1, :seq, :h)"), {"seq": seq, "h": prev})
    conn.execute(sa.text("INSERT INTO store_counters (name, value) VALUES ('gallery', 0)"))

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('entry_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_log_seq'), ['seq'])


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_log_seq'), type_='unique')
        batch_op.drop_column('entry_hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
    op.drop_table('pin_lockouts')
    op.drop_table('store_counters')
    op.drop_table('audit_head')
