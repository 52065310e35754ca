"""What a unit of work changed, seen once for every session (SQLAlchemy events).

On the district server (and on a single machine, which is a server with no terminals)
every commit that changed a district record writes change-log rows: (entity, key) at
one new version. The version is taken from a one-row counter at the end of the commit
(``UPDATE ... RETURNING``: a row lock on PostgreSQL, the write lock on SQLite), so
versions become visible in order and a terminal that pulls "since V" never skips one.

On a terminal (its replica has ``sync_state.role = terminal``) the same hook instead
turns the unit of work into one outbox row: the rows it wrote (orders, order lines,
ledger entries, voids, consents, templates, audit entries) and the operations the
services published (``app.events.publish``, kiosk.services.events); the row is written in the same
transaction as the sale itself. Writes of records only the server owns (residents,
menus, policies, staff, canteens) are refused on a terminal: imports run on the server.

The sync's own writes (applying a pull, applying a push on the server) set
``session.info[APPLY]`` and are tracked by hand (``touch``).
"""
from __future__ import annotations

import weakref
from typing import Callable

from sqlalchemy import event, insert, inspect, select, text
from sqlalchemy.orm import Session

from kiosk.db.models import (AuditEntry, BlockedId, Canteen, CanteenStaff, ChangeLogEntry, FaceConsent, FaceTemplate,
                         LedgerEntry, MealBooking, MenuItem, OfflineLimit, Order, OrderLine, OrderVoid, OutboxEntry,
                         Resident, Staff, StaffPassword, SubsidyPolicy, SyncCounter, SyncState)
from kiosk.errors import ServerOnlyError
from kiosk.db import rowcodec

APPLY = "kiosk_sync_apply"       # session.info flag: the sync itself is writing
TOUCHED = "kiosk_touched"        # set of (entity, key)
ROWS = "kiosk_rows"              # {(table, pk): obj} written in this unit (terminal capture)
DELETED = "kiosk_deleted"        # {table: [pk]} deleted through the ORM
OPS = "kiosk_ops"                # [(kind, meta)] named by the services
TERMINAL = "kiosk_terminal"      # the services know this store is a terminal's

# which district record an ORM object belongs to (what a terminal pulls)
ENTITY_OF: dict[type, Callable[[object], tuple[str, str]]] = {
    Resident: lambda o: ("resident", o.id),
    FaceConsent: lambda o: ("resident", o.resident_id),
    FaceTemplate: lambda o: ("faces", o.resident_id),
    MenuItem: lambda o: ("menu", f"{o.canteen_id}|{o.menu_date.isoformat()}"),
    SubsidyPolicy: lambda o: ("policy", o.id),
    Staff: lambda o: ("staff", o.id),
    CanteenStaff: lambda o: ("staff", o.staff_id),      # on or off a canteen's list: its terminals re-pull
    Canteen: lambda o: ("canteen", o.id),
    LedgerEntry: lambda o: ("account", o.resident_id),
    Order: lambda o: ("account", o.resident_id),
    OfflineLimit: lambda o: ("offline", "district"),     # the offline limits and the blocked list: one record
    BlockedId: lambda o: ("offline", "district"),
}

# what a terminal pushes: the rows of these tables written by its units of work
CAPTURED = (Order, OrderLine, LedgerEntry, OrderVoid, FaceConsent, FaceTemplate, AuditEntry, MealBooking)
CAPTURED_TABLES = {m.__tablename__ for m in CAPTURED}

# what only the server may create or change (a terminal gets them by pulling)
SERVER_OWNED_NEW = (Resident, MenuItem, SubsidyPolicy, Staff, Canteen, CanteenStaff, StaffPassword, OfflineLimit,
                    BlockedId)
SERVER_OWNED_DIRTY = (MenuItem, SubsidyPolicy, Canteen, OfflineLimit, BlockedId)
STAFF_FIELDS = ("name", "role", "active")   # a PIN re-hash at login stays local (the next pull replaces it)

_ROLE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def touch(session: Session, entity: str, key: str) -> None:
    """Note by hand that a district record changed (Core writes, bulk deletes)."""
    session.info.setdefault(TOUCHED, set()).add((entity, key))


def current_version(session: Session) -> int:
    return int(session.scalar(select(SyncCounter.version).where(SyncCounter.id == 1)) or 0)


def mark_terminal(engine) -> None:
    _ROLE[engine] = "terminal"


def role_of(session: Session) -> str:
    """``terminal`` when this store is a terminal's replica, else ``server``."""
    if session.info.get(TERMINAL):
        return "terminal"
    bind = session.get_bind()
    eng = getattr(bind, "engine", bind)
    r = _ROLE.get(eng)
    if r is None:
        row = session.execute(select(SyncState.value).where(SyncState.key == "role")).first()
        r = "terminal" if row is not None and row[0] == "terminal" else "server"
        _ROLE[eng] = r        # a store becomes a terminal's only by ensure_terminal, which marks it
    return r


def _pk(obj) -> str:
    ident = inspect(obj).identity
    return "|".join(str(x) for x in ident) if ident else str(id(obj))


@event.listens_for(Session, "before_flush")
def _guard(session: Session, _ctx, _instances) -> None:
    if session.info.get(APPLY):
        return
    new = [o for o in session.new if isinstance(o, SERVER_OWNED_NEW)]
    dirty = [o for o in session.dirty if isinstance(o, SERVER_OWNED_DIRTY) and session.is_modified(o)]
    staff = [o for o in session.dirty if isinstance(o, Staff)
             and any(inspect(o).attrs[f].history.has_changes() for f in STAFF_FIELDS)]
    if not (new or dirty or staff):
        return
    if role_of(session) == "terminal":
        what = sorted({type(o).__tablename__ for o in new + dirty + staff})
        raise ServerOnlyError("这是区服务器的终端：花名册、菜单、补贴政策、工作人员和食堂设置只能在区服务器上导入或修改，"
                              "终端会在下次同步时收到",
                              detail=f"refused on a terminal: writes to {', '.join(what)}")


@event.listens_for(Session, "after_flush")
def _track(session: Session, _ctx) -> None:
    if session.info.get(APPLY):
        return
    touched = session.info.setdefault(TOUCHED, set())
    rows = session.info.setdefault(ROWS, {})
    for obj in list(session.new) + [o for o in session.dirty if session.is_modified(o)]:
        f = ENTITY_OF.get(type(obj))
        if f is not None:
            touched.add(f(obj))
        if type(obj).__tablename__ in CAPTURED_TABLES:
            rows[(type(obj).__tablename__, _pk(obj))] = obj
    for obj in session.deleted:
        f = ENTITY_OF.get(type(obj))
        if f is not None:
            touched.add(f(obj))
        if type(obj).__tablename__ in CAPTURED_TABLES:
            session.info.setdefault(DELETED, {}).setdefault(type(obj).__tablename__, []).append(_pk(obj))
            rows.pop((type(obj).__tablename__, _pk(obj)), None)


@event.listens_for(Session, "before_commit")
def _on_commit(session: Session) -> None:
    if session.in_nested_transaction():      # a SAVEPOINT: the outermost commit writes for the whole unit
        return
    info = session.info
    if info.get(APPLY):
        if info.get(TOUCHED):
            session.flush()
            _write_changelog(session, info.pop(TOUCHED))
        return
    if not (info.get(TOUCHED) or info.get(ROWS) or info.get(OPS) or info.get(DELETED)):
        return
    session.flush()
    if role_of(session) == "terminal":
        _write_outbox(session)
    elif info.get(TOUCHED):
        _write_changelog(session, info[TOUCHED])
    _clear(session)


def _write_changelog(session: Session, touched: set) -> None:
    if not touched:
        return
    conn = session.connection()
    v = conn.execute(text("UPDATE sync_counter SET version = version + 1 WHERE id = 1 RETURNING version")).scalar_one()
    conn.execute(insert(ChangeLogEntry), [{"version": v, "entity": e, "key": k} for e, k in sorted(touched)])


def _write_outbox(session: Session) -> None:
    info = session.info
    ops = info.get(OPS) or []
    rows: dict[str, list[dict]] = {}
    for (table, _pk_), obj in (info.get(ROWS) or {}).items():
        rows.setdefault(table, []).append(rowcodec.dump(obj))
    if not rows and not ops and not info.get(DELETED):
        return
    kind = ops[0][0] if ops else _infer_kind(rows)
    payload = {"ops": [{"kind": k, **m} for k, m in ops], "rows": rows, "deleted": info.get(DELETED) or {}}
    session.info[APPLY] = True          # the outbox row itself is not tracked
    try:
        session.add(OutboxEntry(kind=kind, payload=payload))
        session.flush()
    finally:
        session.info.pop(APPLY, None)


def _infer_kind(rows: dict) -> str:
    for table, kind in (("orders", "order.settle"), ("order_voids", "order.void"),
                        ("face_templates", "faces.enroll"), ("face_consents", "consent"),
                        ("ledger_entries", "account"), ("meal_bookings", "booking.set"),
                        ("audit_log", "audit")):
        if table in rows:
            return kind
    return "rows"


def _clear(session: Session) -> None:
    for k in (TOUCHED, ROWS, DELETED, OPS, TERMINAL):
        session.info.pop(k, None)


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    if not session.in_nested_transaction():    # a SAVEPOINT's end is not the unit's end
        _clear(session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        _clear(session)
