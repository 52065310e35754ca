"""Applying what terminals push: each outbox operation once, in the order pushed.

A terminal reports facts; the server decides money. An operation carries the rows the
terminal's services wrote in one unit of work. A sale is checked against the server's
own derivation (kiosk.district.domain.derive: its menu, the policy in force at the
meal, the resident, the counter's billing rules, the README's Limits); any other op
against the terminal's canteen (kiosk.district.domain.scope: its staff, its orders,
top-ups within bounds). What holds is recorded as served, with the district-wide limits
the terminal could not see (offline) flagged for reconciliation (``district_flags``,
audited). What does not hold is never applied: it waits in the quarantine list
(``quarantined_ops``, 待核查) with its reason, for an admin to accept or reject
(kiosk.district.domain.quarantine). The op id goes into ``applied_ops`` in the same
transaction as its effect, so a push repeated after a lost reply or a crash is
answered "duplicate" and changes nothing.

An operation the server cannot apply as it stands (malformed, an unknown resident or
dish, a template without consent) is kept whole in ``applied_ops`` with status
``rejected`` and its reason, and listed with the quarantined ones; the terminal keeps it
visible too. Nothing is silently dropped.
"""
from __future__ import annotations

import base64
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterator

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.orm import Session

from kiosk.billing.offline import DEFAULT_SUBSIDY_OFFLINE_S, OfflineLimits
from kiosk.billing.policy import Policy
from kiosk.db.models import (AppliedOp, BlockedId, OfflineLimit, Terminal, Canteen, DistrictFlag, FaceConsent, FaceTemplate, LedgerEntry, MenuItem,
                             Order, OrderLine, OrderVoid, PushedOrder, QuarantinedOp, Resident, SubsidyPolicy, new_id,
                             utcnow)
from kiosk.db import audit
from kiosk.services.checkout import month_bounds
from kiosk.services.template_refresh import REFRESH_SOURCE, refresh_consented
from kiosk.db import changes, rowcodec
from kiosk.district.domain import derive, scope
from kiosk.district.domain.derive import Problem
from kiosk.district.domain.terminals import TerminalIdentity, claim_terminal
from kiosk.timeutil import to_cst

log = logging.getLogger("kiosk.district.domain.push")
MAX_OPS = 500
AUDIT_RESERVED = ("session", "actor", "action", "subject")


class Rejected(Exception):
    pass


def apply_push(app, token_hash: str, ops: list[dict], *, pending: int | None = None, software: str | None = None,
               model: str | None = None) -> tuple[list[dict], int, TerminalIdentity]:
    """A push as the API receives it: the token is checked in the push's own transaction
    (``auth.claim_terminal``: a revoked terminal is refused and nothing is applied; the
    terminal's row stays locked until the commit, so one terminal's pushes never overlap),
    then the ops are applied. Returns the results, the server version and the terminal."""
    auth = {"token_hash": token_hash, "pending": pending, "software": software, "model": model}
    from kiosk.errors import StorageError

    for attempt in range(3):
        try:
            return _apply_batch_once(app, ops, auth)
        except StorageError:
            if attempt == 2:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


SIMPLE_TABLES = {"orders", "order_lines", "ledger_entries"}


def _is_simple(op: dict) -> bool:
    """A plain sale (orders, their lines and ledger entries, nothing else): applied in bulk."""
    p = op.get("payload")
    if not isinstance(p, dict):
        return False
    rows = p.get("rows")
    if not isinstance(rows, dict) or not rows.get("orders") or (set(rows) - SIMPLE_TABLES) or p.get("deleted") \
            or not all(isinstance(v, list) for v in rows.values()) or not isinstance(p.get("ops") or [], list):
        return False
    try:
        return (all(e.get("kind") != "reversal" for e in rows.get("ledger_entries", []))
                and all(m.get("kind") == "order.settle" for m in p.get("ops") or []))
    except AttributeError:          # a row that is not an object: _apply_one rejects the op with the reason
        return False


def _good_id(op_id: str) -> bool:
    """An op id the server keeps (a terminal's are UUIDs): 1-36 printable characters."""
    return bool(op_id) and len(op_id) <= 36 and op_id.isprintable()


def _apply_batch_once(app, ops: list[dict], auth: dict) -> tuple[list[dict], int, TerminalIdentity]:
    """One transaction: the terminal (its token checked, its row locked), then its ops."""
    with app.db.session(write_lock=True) as s:
        s.info[changes.APPLY] = True
        term = claim_terminal(s, **auth)
        results, version = apply_ops(app, s, term, ops)
    return results, version, term


def apply_ops(app, s: Session, term: TerminalIdentity, ops: list[dict], *,
              trusted: bool = False) -> tuple[list[dict], int]:
    """The one apply path of every op, in the caller's transaction: the residents of the
    batch's orders locked (PostgreSQL), one query for everything the batch's plain sales
    need to know (ops seen before, residents, dishes, rows already stored, the residents'
    subsidised meals this month and balances, the server version), the sales checked
    against the server's own derivation and inserted in bulk; an op that is not a sale is
    checked against the terminal's canteen and applied on its own savepoint, in its place.
    An op that does not hold waits in the quarantine list (``quarantined``), or, when it
    cannot be applied as it stands, is kept as ``rejected`` (and listed there too).
    ``trusted``: an admin's acceptance of a quarantined op (kiosk.district.domain.quarantine):
    only what can never be applied (the README's Limits, rows that do not agree) blocks it.
    Returns one result per op and the server version read before the batch."""
    ids = [str(op.get("op_id", "")) for op in ops]
    results: dict[str, dict] = {}      # op id -> result, for the ops applied or rejected here
    at: dict[int, dict] = {}           # position -> result, for duplicates and bad ids
    # the plain sales before the first other op (within the lookup's budget): their rows
    # are read with the batch's one lookup
    prefix: list[dict] = []
    limit = LOOKUP_VALUES[s.get_bind().dialect.name == "postgresql"]
    budget = limit - len(ops)
    for op, op_id in zip(ops, ids):
        if not _good_id(op_id):
            continue
        if not _is_simple(op) or (prefix and budget - _size(op) < 0):
            break
        budget -= _size(op)
        prefix.append(op)
    loaded = {id(op): _load(op) for op in prefix}
    locked = _lock_residents(s, ops, loaded)
    pre = _lookup(s, [i for i in ids if _good_id(i)], loaded, locked)
    in_prefix = set(loaded)
    known = pre.known
    facts = _SaleFacts.of(s, term)      # what sales are derived from, read once per batch
    run: list[dict] = []
    size = 0
    fresh = True            # nothing written since the lookup: the first run uses it
    for i, (op, op_id) in enumerate(zip(ops, ids)):
        if not _good_id(op_id):
            at[i] = {"op_id": op_id, "status": "rejected", "error": "bad op id"}
            continue
        if op_id in known:          # pushed before, or earlier in this batch
            at[i] = {"op_id": op_id, "status": "duplicate", "was": known[op_id]}
            continue
        known[op_id] = "applied"
        simple = _is_simple(op)
        if fresh and id(op) not in in_prefix:        # past the rows the batch's lookup read
            if run:
                results.update(_apply_run(app, s, term, run, loaded, pre, facts, trusted))
            run, size, fresh = [], 0, False
        elif run and (not simple or size + _size(op) > limit):
            results.update(_apply_run(app, s, term, run, loaded, pre if fresh else None, facts, trusted))
            run, size, fresh = [], 0, False
        if simple:
            run.append(op)
            size += _size(op)
            continue
        fresh = False
        results[op_id] = _apply_one(app, s, term, op, trusted)
    if run:
        results.update(_apply_run(app, s, term, run, loaded, pre if fresh else None, facts, trusted))
    s.flush()
    # the server version read before this batch (its own version comes at commit: the pull gets it)
    for r in at.values():               # a duplicate within the batch: what became of the first
        if r["status"] == "duplicate" and r["op_id"] in results:
            r["was"] = results[r["op_id"]]["status"]
    return [at[i] if i in at else results[op_id] for i, op_id in enumerate(ids)], pre.version


def _held(s: Session, term: TerminalIdentity, op: dict, reason: str, trusted: bool) -> None:
    """The op in the quarantine list (待核查), whole, with its reason (not again when an
    admin's acceptance of it failed: that transaction is rolled back)."""
    if trusted:
        return
    resident, amount = _subject_of(op)
    s.add(QuarantinedOp(op_id=str(op.get("op_id")), terminal_id=term.terminal_id, canteen_id=term.canteen_id,
                        kind=str(op.get("kind", ""))[:40], reason=reason, resident_id=resident,
                        amount_fen=amount, payload=op, created_at=_dt(op.get("created_at")), status="waiting"))


def _subject_of(op: dict) -> tuple[str | None, int | None]:
    """The resident and amount an op is about, as the terminal reported them (for the list)."""
    rows = (op.get("payload") or {}).get("rows") if isinstance(op.get("payload"), dict) else None
    if not isinstance(rows, dict):
        return None, None
    for table, key in (("orders", "total_fen"), ("ledger_entries", "amount_fen"), ("face_consents", None),
                       ("face_templates", None), ("order_voids", None)):
        r = rows.get(table)
        if isinstance(r, list) and r and isinstance(r[0], dict):
            rid = r[0].get("resident_id", r[0].get("order_id"))
            amount = r[0].get(key) if key else None
            ok = isinstance(amount, int) and not isinstance(amount, bool) and abs(amount) < 2 ** 62
            return (str(rid)[:64] if rid is not None else None), (amount if ok else None)
    return None, None


def _reject(s: Session, term: TerminalIdentity, op: dict, reason: str, trusted: bool = False) -> dict:
    """An op that cannot be applied as it stands (malformed, or naming what the server does
    not have): kept whole with its reason, and listed with the quarantined ones."""
    op_id = str(op.get("op_id"))
    log.warning("op %s from %s rejected: %s", op_id, term.terminal_id, reason)
    s.add(AppliedOp(op_id=op_id, terminal_id=term.terminal_id, kind=str(op.get("kind", ""))[:40],
                    status="rejected", error=str(reason)[:2000], payload=op, created_at=_dt(op.get("created_at"))))
    _held(s, term, op, str(reason)[:2000], trusted)
    return {"op_id": op_id, "status": "rejected", "error": str(reason)[:500]}


def _quarantine(s: Session, term: TerminalIdentity, op: dict, problems: list[Problem], trusted: bool) -> dict:
    """An op that does not hold (its amounts are not the server's, it acts outside its
    canteen): never applied; it waits in the quarantine list for an admin."""
    op_id = str(op.get("op_id"))
    reason = "；".join(dict.fromkeys(p.reason for p in problems))[:2000]
    log.warning("op %s from %s quarantined: %s", op_id, term.terminal_id, reason)
    s.add(AppliedOp(op_id=op_id, terminal_id=term.terminal_id, kind=str(op.get("kind", ""))[:40],
                    status="quarantined", error=reason, created_at=_dt(op.get("created_at"))))
    _held(s, term, op, reason, trusted)
    return {"op_id": op_id, "status": "quarantined", "error": reason[:500]}


def _blocking(problems: list[Problem], trusted: bool) -> list[Problem]:
    return [p for p in problems if p.hard or not trusted]


def _apply_one(app, s: Session, term: TerminalIdentity, op: dict, trusted: bool) -> dict:
    """An op that is not a plain sale, on its own savepoint: checked against the terminal's
    canteen (kiosk.district.domain.scope), then applied whole, quarantined or kept whole as
    rejected. A malformed payload or a value the database refuses rejects the op; a lost
    connection or a deadlock (OperationalError) ends the whole push, which is tried again."""
    from sqlalchemy.exc import InvalidRequestError, OperationalError, StatementError

    from kiosk.errors import ValidationError

    op_id = str(op["op_id"])
    sp = s.begin_nested()
    try:
        payload = op.get("payload") or {}
        if not isinstance(payload, dict):
            raise Rejected("payload is not an object")
        rows = payload.get("rows")
        if isinstance(rows, dict) and rows.get("orders"):
            problems = [Problem("一笔结算只能带订单、菜品和结算账目（订单与作废、充值、人脸等记录混在一起）", True)]
        else:
            problems = scope.check_op(s, term.canteen_id, payload)
        blocking = _blocking(problems, trusted)
        if blocking:
            sp.rollback()
            return _quarantine(s, term, op, blocking, trusted)
        apply_op(app, s, term, op_id, payload)
        sp.commit()
    except (Rejected, StatementError, InvalidRequestError, ValidationError, KeyError, TypeError, ValueError,
            AttributeError) as exc:
        if isinstance(exc, OperationalError):
            raise
        sp.rollback()
        return _reject(s, term, op, exc.args[0] if isinstance(exc, Rejected) else f"{type(exc).__name__}: {exc}",
                       trusted)
    s.add(AppliedOp(op_id=op_id, terminal_id=term.terminal_id, kind=str(op.get("kind", ""))[:40],
                    status="applied", created_at=_dt(op.get("created_at"))))
    return {"op_id": op_id, "status": "applied", "flags": []}


_CHECKS: dict = {}
SET_BY_SERVER = {"canteen_id", "terminal_id"}      # an order's: from the pushing terminal's token


def _column_checks(model) -> tuple:
    """For rows inserted by Core: (text columns with their length, integer columns, Python
    defaults by column, the NOT NULL columns a row must carry, boolean columns)."""
    from sqlalchemy import Boolean, Integer, String

    c = _CHECKS.get(model)
    if c is None:
        cols = list(model.__table__.columns)
        # (never an id: a row must come with the id the terminal gave it)
        defaults = {x.name: (x.default.arg if x.default.is_callable else (lambda _ctx, v=x.default.arg: v))
                    for x in cols if x.default is not None and not x.primary_key
                    and (x.default.is_scalar or x.default.is_callable)}
        c = _CHECKS[model] = ([(x.name, x.type.length) for x in cols if isinstance(x.type, String)],
                              [x.name for x in cols if isinstance(x.type, Integer) and not isinstance(x.type, Boolean)],
                              defaults,
                              [x.name for x in cols if not x.nullable and x.name not in SET_BY_SERVER],
                              [x.name for x in cols if isinstance(x.type, Boolean)])
    return c


def _checked(model, table: str, data) -> dict:
    """A row of a plain sale loaded and checked as the ORM's flush and the database would
    (Python defaults filled, NOT NULL columns present, text fits its column, no NUL,
    integers are integers, booleans booleans, times carry their zone), so a bad row rejects its op instead
    of failing the whole batch in the database."""
    if not isinstance(data, dict):
        raise ValueError(f"{table}: a row is not an object")
    d = rowcodec.load(model, data)
    texts, ints, defaults, required, bools = _column_checks(model)
    for name, make in defaults.items():
        if name not in d:
            d[name] = make(None)
    missing = [k for k in required if d.get(k) is None]
    if missing:
        raise ValueError(f"{table} row without {', '.join(missing)}")
    for name, length in texts:
        v = d.get(name)
        if v is None:
            continue
        if not isinstance(v, str):
            raise ValueError(f"{table}.{name} is not text")
        if "\x00" in v or (length is not None and len(v) > length):
            raise ValueError(f"{table}.{name}: NUL character or longer than {length}")
    for name in ints:
        v = d.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or abs(v) >= 2 ** 31):
            raise ValueError(f"{table}.{name} is not an integer")
    for name in bools:
        if d.get(name) is not None and not isinstance(d[name], bool):
            raise ValueError(f"{table}.{name} is not true or false")
    for v in d.values():
        if isinstance(v, datetime) and v.tzinfo is None:
            raise ValueError(f"{table}: a time without its time zone")
    return d


def _load(op: dict):
    """A plain sale's rows as Python values, or the error that rejects the op."""
    try:
        rows = op["payload"]["rows"]
        return ([_checked(Order, "orders", o) for o in rows.get("orders", [])],
                [_checked(OrderLine, "order_lines", x) for x in rows.get("order_lines", [])],
                [_checked(LedgerEntry, "ledger_entries", x) for x in rows.get("ledger_entries", [])])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return exc


@dataclass
class _Seen:
    """What one lookup found for a run of plain sales (see _lookup)."""
    known: dict[str, str] = field(default_factory=dict)      # op id -> status, pushed before
    residents: set[str] = field(default_factory=set)
    menu: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    keys: dict[str, str] = field(default_factory=dict)       # idempotency key -> order id
    entries: set[str] = field(default_factory=set)
    lines: set[str] = field(default_factory=set)
    day_ids: dict[tuple, list[str]] = field(default_factory=dict)   # (resident, day) -> subsidised orders
    month_sum: dict[tuple, int] = field(default_factory=dict)       # (resident, year, month) -> subsidy
    bal: dict[str, int] = field(default_factory=dict)               # balances of residents paying by balance
    version: int = 0


_STMTS: dict = {}


def _lookup_stmt(pg: bool, with_residents: bool):
    """The lookup's one statement (built once): a UNION ALL of small selects, each row tagged
    with what it answers. Its lists are parameters: PostgreSQL arrays (``= ANY``: one short
    statement whatever the batch), elsewhere expanding IN lists."""
    key = (pg, with_residents)
    stmt = _STMTS.get(key)
    if stmt is not None:
        return stmt
    from sqlalchemy import Date, Integer, String, any_, bindparam, cast, literal, literal_column, null, union_all
    from sqlalchemy.dialects.postgresql import ARRAY

    from kiosk.db.models import MenuItem, SyncCounter

    types = {"a": String(), "b": String(), "d": Date(), "n": Integer(), "t": Order.created_at.type}

    def row(tag: str, **cols):
        return select(literal(tag, String()).label("tag"),
                      *[(cols[k] if k in cols else cast(null(), typ)).label(k) for k, typ in types.items()])

    def among(col, name: str):
        if pg:
            return col == any_(bindparam(name, type_=ARRAY(String())))
        return col.in_(bindparam(name, expanding=True))

    parts = [row("op", a=AppliedOp.op_id, b=AppliedOp.status).where(among(AppliedOp.op_id, "op_ids")),
             row("menu", a=MenuItem.id).where(among(MenuItem.id, "menu_ids")),
             row("order", a=Order.id).where(among(Order.id, "order_ids")),
             row("key", a=Order.idempotency_key, b=Order.id).where(among(Order.idempotency_key, "keys")),
             row("entry", a=LedgerEntry.id).where(among(LedgerEntry.id, "entry_ids")),
             row("line", a=OrderLine.id).where(among(OrderLine.id, "line_ids")),
             # the district's view before this run: subsidised meals per day and month
             _live(row("use", a=Order.id, b=Order.resident_id, d=Order.meal_date, n=Order.subsidy_fen,
                       t=Order.created_at)
                   .where(among(Order.resident_id, "eaters"), Order.meal_date >= bindparam("first", type_=Date()),
                          Order.meal_date <= bindparam("last", type_=Date()), Order.subsidy_fen > 0)),
             row("bal", a=LedgerEntry.resident_id, n=func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
             .where(among(LedgerEntry.resident_id, "payers"), LedgerEntry.affects_balance.is_(True))
             .group_by(LedgerEntry.resident_id),
             row("ver", n=SyncCounter.version).where(SyncCounter.id == 1)]
    if with_residents:
        parts.append(row("res", a=Resident.id).where(among(Resident.id, "residents")))
    stmt = _STMTS[key] = union_all(*parts).order_by(literal_column("t"))
    return stmt


def _lookup(s: Session, op_ids: list[str], loaded: dict, residents: set[str] | None) -> _Seen:
    """Everything a run of plain sales needs from the store, in one round trip: ops seen
    before, dishes, rows already stored, idempotency keys in use, the residents' subsidised
    meals of the months concerned and the balances of those paying by balance, the server
    version (and the residents, unless ``residents`` already says which exist: the lock on
    PostgreSQL). Runs are kept under ``LOOKUP_VALUES`` values (``_size``)."""
    good = [x for x in loaded.values() if not isinstance(x, Exception)]
    all_o = [o for os_, _, _ in good for o in os_]
    all_e = [x for _, _, es in good for x in es]
    seen = _Seen()
    if residents is not None:
        seen.residents = residents
    first = min((month_bounds(o["meal_date"])[0] for o in all_o), default=date(2000, 1, 1))
    last = max((month_bounds(o["meal_date"])[1] for o in all_o), default=date(2000, 1, 1))
    params = {"op_ids": op_ids,
              "menu_ids": sorted({x["menu_item_id"] for _, ls, _ in good for x in ls}),
              "order_ids": sorted({o["id"] for o in all_o}),
              "keys": sorted({o["idempotency_key"] for o in all_o}),
              "entry_ids": sorted({e["id"] for e in all_e}),
              "line_ids": sorted({x["id"] for _, ls, _ in good for x in ls}),
              "eaters": sorted({o["resident_id"] for o in all_o}), "first": first, "last": last,
              "payers": sorted({o["resident_id"] for o in all_o if o["pay_method"] == "balance"})}
    if residents is None:
        params["residents"] = sorted({o["resident_id"] for o in all_o} | {e["resident_id"] for e in all_e})
    pg = s.get_bind().dialect.name == "postgresql"
    for tag, a, b, d, n_, _t in s.execute(_lookup_stmt(pg, residents is None), params):
        if tag == "use":
            seen.day_ids.setdefault((b, d), []).append(a)
            mk = (b, d.year, d.month)
            seen.month_sum[mk] = seen.month_sum.get(mk, 0) + int(n_)
        elif tag == "op":
            seen.known[a] = b
        elif tag == "res":
            seen.residents.add(a)
        elif tag == "menu":
            seen.menu.add(a)
        elif tag == "order":
            seen.orders.add(a)
        elif tag == "key":
            seen.keys[a] = b
        elif tag == "entry":
            seen.entries.add(a)
        elif tag == "line":
            seen.lines.add(a)
        elif tag == "bal":
            seen.bal[a] = int(n_)
        elif tag == "ver":
            seen.version = int(n_ or 0)
    return seen


# one lookup's lists hold at most this many values: [elsewhere, PostgreSQL]. SQLite binds
# each IN value as a parameter (32,766 at most a statement, 999 before SQLite 3.32);
# PostgreSQL gets a few arrays
LOOKUP_VALUES = (800, 20000)


def _size(op: dict) -> int:
    """How many values an op adds to a lookup (its rows, counted generously)."""
    rows = (op.get("payload") or {}).get("rows") or {}
    return 1 + sum(2 * len(rows.get(t) or []) for t in SIMPLE_TABLES)


# what a batch's sales are derived from, one statement: the canteen's district and the
# terminal's last pull before this push (the server's own account of how long it was offline)
_FACTS_STMT = (select(Canteen.district, Terminal.last_pull_at).select_from(Terminal)
               .outerjoin(Canteen, Canteen.id == bindparam("cid")).where(Terminal.id == bindparam("tid")))
_OFFLINE_STMT: list = []


def _offline_stmt():
    """The district's offline limit settings and blocked list in one statement (built once)."""
    if not _OFFLINE_STMT:
        from sqlalchemy import Integer, String, Text, cast, literal, null, union_all

        from kiosk.db.models import UTCDateTime

        def none(t):
            return cast(null(), t)
        _OFFLINE_STMT.append(union_all(
            select(literal("L", String()), none(String()), none(String()), none(Text()), OfflineLimit.set_at,
                   none(UTCDateTime()), OfflineLimit.per_sale_fen, OfflineLimit.per_day_fen,
                   OfflineLimit.subsidy_offline_s),
            select(literal("B", String()), BlockedId.kind, BlockedId.value, BlockedId.reason, BlockedId.blocked_at,
                   BlockedId.lifted_at, none(Integer()), none(Integer()), none(Integer()))))
    return _OFFLINE_STMT[0]


@dataclass
class _SaleFacts:
    """What the server derives a run's sales from: its menu rows, the residents' records,
    the canteen's district, the policies of the meals' days (kiosk.district.domain.derive)."""
    canteen_id: str
    district: str | None
    menu: dict[str, derive.MenuRow]
    residents: dict[str, derive.ResidentView]
    today: date
    policies: dict[tuple, tuple] = field(default_factory=dict)
    # the district's offline limits (kiosk.billing.offline), read once per batch when a sale needs them
    last_pull: datetime | None = None            # the terminal's last pull before this push
    offline_versions: list | None = None         # [(set_at, OfflineLimits)], oldest first
    blocks: list | None = None                   # every blocked card and resident, lifted ones too
    least_s: int = 0                             # the shortest subsidy offline time of any setting
    cards: dict[str, str | None] = field(default_factory=dict)      # resident -> card number
    spent: dict[tuple, int] = field(default_factory=dict)           # (resident, day) -> offline balance paid

    @classmethod
    def of(cls, s: Session, term: TerminalIdentity) -> "_SaleFacts":
        from kiosk.timeutil import now_cst

        row = s.execute(_FACTS_STMT, {"tid": term.terminal_id, "cid": term.canteen_id}).first()
        if row is None:          # (not a registered terminal's: its canteen alone)
            row = (s.scalar(select(Canteen.district).where(Canteen.id == term.canteen_id)), None)
        return cls(term.canteen_id, row[0], {}, {}, now_cst().date(), last_pull=row[1])

    def offline_problems(self, s: Session, term: TerminalIdentity, o: dict) -> list[Problem]:
        """The order against the district's offline limits (kiosk.district.domain.derive.check_offline),
        with what the server knows of its circumstances; nothing to check (the usual case: no
        blocked list, sold online, the terminal pulled lately) costs no more than a comparison."""
        if self.offline_versions is None:
            self.offline_versions, self.blocks = [], []
            for tag, kind, value, reason, at1, at2, per_sale, per_day, hours_s in s.execute(_offline_stmt()):
                if tag == "L":
                    self.offline_versions.append((at1, OfflineLimits(per_sale, per_day, hours_s)))
                else:
                    self.blocks.append((kind, value, reason, at1, at2))
            self.offline_versions.sort(key=lambda v: v[0])
            self.least_s = min([v[1].subsidy_offline_s for v in self.offline_versions] + [DEFAULT_SUBSIDY_OFFLINE_S])
        at = o.get("created_at") or utcnow()
        claimed = None if o.get("offline_s") is None else timedelta(seconds=int(o["offline_s"]))
        since_pull = self._since_pull(o)
        if claimed is None and not self.blocks and (since_pull is None or since_pull.total_seconds()
                                                    <= min(self.least_s, derive.SILENT_GRACE_S)):
            return []
        # when the terminal last reached the server: the server's own record of its last pull
        # before this push. The terminal's account (the sale's time less its offline seconds) is
        # its word and whole seconds: a cap changed within a second after its last sync was read
        # as known to it. Its account only where the server has none.
        if self.last_pull is not None:
            contact = self.last_pull
        else:
            contact = at - claimed if claimed is not None else at
        rid, day = o["resident_id"], o["meal_date"]
        blocked = None
        if self.blocks:
            if o.get("identified_by") == "card" and rid not in self.cards:
                self.cards[rid] = s.scalar(select(Resident.card_no).where(Resident.id == rid))
            card = self.cards.get(rid) if o.get("identified_by") == "card" else None
            for kind, value, reason, b_at, l_at in self.blocks:
                if (kind, value) not in (("resident", rid), ("card", (card or "").upper())) \
                        or b_at > at or (l_at is not None and l_at <= at):
                    continue
                who = f"助老卡 {value}" if kind == "card" else f"居民 {rid}"
                told = "终端断网前已收到" if b_at <= contact else "终端当时尚未同步到"
                blocked = f"{who}自 {to_cst(b_at):%Y-%m-%d %H:%M} 起在挂失名单上（{reason}；{told}）"
                break
        key = (rid, day)
        if self._offline_sale(o) and o["pay_method"] == "balance" and key not in self.spent:
            self.spent[key] = int(s.scalar(select(func.coalesce(func.sum(Order.to_pay_fen), 0)).where(
                Order.resident_id == rid, Order.meal_date == day, Order.pay_method == "balance",
                Order.terminal_id == term.terminal_id, Order.offline_s.is_not(None),
                ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())) or 0)
        return derive.check_offline(o, derive.OfflineSale(derive.limits_then(self.offline_versions, contact), claimed,
                                                          since_pull, self.spent.get(key, 0), blocked))

    def _since_pull(self, o: dict) -> timedelta | None:
        """The sale's time after the terminal's last pull before this push (the server's account)."""
        at = o.get("created_at") or utcnow()
        return at - self.last_pull if self.last_pull is not None and at > self.last_pull else None

    def _offline_sale(self, o: dict) -> bool:
        """Sold offline by the terminal's account, or by the server's (no pull for SILENT_GRACE_S)."""
        since = self._since_pull(o)
        return o.get("offline_s") is not None or (since is not None and since.total_seconds() > derive.SILENT_GRACE_S)

    def count_offline(self, o: dict) -> None:
        """An offline balance payment recorded: it counts for the resident's day at this terminal."""
        key = (o["resident_id"], o["meal_date"])
        if self._offline_sale(o) and o["pay_method"] == "balance" and key in self.spent:
            self.spent[key] += int(o["to_pay_fen"])

    def load(self, s: Session, sales: list[tuple[list[dict], list[dict]]]) -> "_SaleFacts":
        """The menu rows and residents of these sales not read yet (in this batch)."""
        from kiosk.billing.subsidy import ResidentFacts

        menu_ids = sorted({str(x["menu_item_id"]) for _, ls in sales for x in ls} - set(self.menu))
        rids = sorted({str(o["resident_id"]) for os_, _ in sales for o in os_} - set(self.residents))
        for i in range(0, len(menu_ids), 500):
            for row in s.execute(select(MenuItem.id, MenuItem.canteen_id, MenuItem.menu_date, MenuItem.meal,
                                        MenuItem.dish_id, MenuItem.name, MenuItem.price_fen)
                                 .where(MenuItem.id.in_(menu_ids[i:i + 500]))):
                self.menu[row.id] = derive.MenuRow(*row)
        for i in range(0, len(rids), 500):
            for r in s.execute(select(Resident.id, Resident.birth_date, Resident.hukou, Resident.categories,
                                      Resident.status).where(Resident.id.in_(rids[i:i + 500]))):
                # the roster status (暂停/迁出/死亡) is left out on purpose: a terminal that has
                # not pulled it yet sells as before, and the flag step (_status_flag) flags that
                # sale for reconciliation instead of quarantining it (issue 21)
                self.residents[r.id] = derive.ResidentView(ResidentFacts(r.id, r.birth_date, r.hukou,
                                                                         frozenset(r.categories or [])), r.status)
        return self

    def view(self, s: Session, o: dict) -> derive.SaleView:
        policy, row_id = self.policy(s, o["meal_date"], o.get("policy_row_id"))
        return derive.SaleView(self.residents.get(o["resident_id"]), self.menu, policy, row_id, self.canteen_id,
                               self.today)

    def policy(self, s: Session, day: date, named: str | None) -> tuple[Policy | None, str | None]:
        """The policy in force at the meal for the canteen's district (the counter's rule,
        kiosk.services.importing.policy_in_force); the version the terminal names instead
        when it is one of that district covering the day (a terminal offline since a newer
        version was imported priced with the one it had)."""
        key = (day, named)
        hit = self.policies.get(key)
        if hit is None:
            from kiosk.services.importing import policy_in_force

            pick = policy_in_force(s, day, self.district) or (None, None)
            if named and named != pick[1]:
                row = s.get(SubsidyPolicy, named)
                if row is not None and row.effective_from <= day <= row.effective_to \
                        and (self.district is None or row.district == self.district):
                    pick = (_policy_of(row), row.id)
            hit = self.policies[key] = pick
        return hit


def _apply_run(app, s: Session, term: TerminalIdentity, run: list[dict], loaded: dict,
               seen: _Seen | None, facts: _SaleFacts, trusted: bool = False) -> dict[str, dict]:
    """Plain sales in bulk: validated against one lookup (``seen``, made here when the
    batch's own is stale), each order checked against the server's own derivation of its
    money (kiosk.district.domain.derive: the README's Limits, the server's menu, the policy
    at the meal, the resident), inserted with multi-row INSERTs, the district limits walked
    in push order (as if applied one by one)."""
    results: dict[str, dict] = {}
    good_loaded = []
    for op in run:
        x = loaded.get(id(op))
        if x is None:
            x = loaded[id(op)] = _load(op)
        if isinstance(x, Exception):
            results[str(op["op_id"])] = _reject(s, term, op, f"{type(x).__name__}: {x}", trusted)
            continue
        good_loaded.append((op, *x))
    if seen is None:
        seen = _lookup(s, [], {id(op): (os_, ls, es) for op, os_, ls, es in good_loaded}, None)
    residents, menu, have_orders, keys, have_entries = (seen.residents, seen.menu, seen.orders, seen.keys,
                                                        seen.entries)
    day_ids, month_sum, bal = seen.day_ids, seen.month_sum, seen.bal
    facts = facts.load(s, [(os_, ls) for _, os_, ls, _ in good_loaded])

    good = []
    for op, os_, ls, es in good_loaded:
        mine = {o["id"] for o in os_}
        bad = ([f"unknown resident {o['resident_id']!r} (order {o['id']})" for o in os_ if o["resident_id"] not in residents]
               + [f"unknown resident {e['resident_id']!r} (ledger)" for e in es if e["resident_id"] not in residents]
               + [f"unknown menu item {x['menu_item_id']!r} (dish {x.get('dish_id')})" for x in ls
                  if x["menu_item_id"] not in menu]
               + [f"order line {x['id']} of an order not in this sale" for x in ls
                  if x["order_id"] not in mine and x["order_id"] not in have_orders]
               + [f"ledger entry {e['id']} of an unknown order {e.get('order_id')!r}" for e in es
                  if e.get("order_id") is not None and e["order_id"] not in mine and e["order_id"] not in have_orders])
        if bad:
            results[str(op["op_id"])] = _reject(s, term, op, bad[0], trusted)
            continue
        problems = [derive.Problem(f"账目 {e['id']}（{e.get('kind')}）不属于本次结算的订单", True) for e in es
                    if e.get("order_id") not in mine]
        for o in os_:
            problems += derive.check_bounds(o, ls, es)
        if not problems:
            for o in os_:
                problems += derive.derive(o, ls, facts.view(s, o))
                problems += facts.offline_problems(s, term, o)     # the district's offline limits
        blocking = _blocking(problems, trusted)
        if blocking:
            results[str(op["op_id"])] = _quarantine(s, term, op, blocking, trusted)
            continue
        new_o = [o for o in os_ if o["id"] not in have_orders]
        ids = {o["id"] for o in new_o}
        clash = [x["id"] for x in ls if x["order_id"] in ids and x["id"] in seen.lines]
        if clash:           # a line id already stored (or taken earlier in this run) for another order
            results[str(op["op_id"])] = _reject(s, term, op, f"order line {clash[0]} exists already", trusted)
            continue
        for o in new_o:
            facts.count_offline(o)
        for o in new_o:
            o["canteen_id"], o["terminal_id"] = term.canteen_id, term.terminal_id
            if o["idempotency_key"] in keys:
                o["idempotency_key"] = f"{o['idempotency_key'][:90]}:{o['id']}"
            keys[o["idempotency_key"]] = o["id"]
            have_orders.add(o["id"])
        new_l = [x for x in ls if x["order_id"] in ids]
        seen.lines.update(x["id"] for x in new_l)
        new_e = [e for e in es if e["id"] not in have_entries]
        have_entries.update(e["id"] for e in new_e)
        good.append((op, new_o, new_l, new_e))

    new_orders = [o for _, os_, _, _ in good for o in os_]
    entries = [e for _, _, _, es in good for e in es]
    now = utcnow()
    op_of = {o["id"]: str(op["op_id"]) for op, os_, _, _ in good for o in os_}
    if good:
        s.flush()                        # the rejected ops' rows go first, outside the pipeline
        with _writes(s):
            _insert(s, Order, new_orders)
            _insert(s, OrderLine, [x for _, _, ls, _ in good for x in ls])
            _insert(s, LedgerEntry, entries)
            _insert(s, PushedOrder, [{"order_id": o["id"], "terminal_id": term.terminal_id,
                                      "op_id": op_of[o["id"]], "received_at": now} for o in new_orders])
            _insert(s, AppliedOp, [{"op_id": str(op["op_id"]), "terminal_id": term.terminal_id,
                                    "kind": str(op.get("kind", ""))[:40], "status": "applied", "error": None,
                                    "payload": None, "created_at": _dt(op.get("created_at")), "received_at": now}
                                   for op, _, _, _ in good])

    # the limits, walked in push order
    statuses = _statuses(s, new_orders)
    for op, os_, _, es in good:
        flags = []
        for o in os_:
            rid, d = o["resident_id"], o["meal_date"]
            flags += _status_flag(s, term, o, statuses)
            if o["subsidy_fen"] > 0:
                lim = _limits(s, o.get("policy_row_id"))
                ids = day_ids.setdefault((rid, d), [])
                ids.append(o["id"])
                mk = (rid, d.year, d.month)
                month_sum[mk] = month_sum.get(mk, 0) + o["subsidy_fen"]
                if lim is not None and lim.subsidized_meals_per_day is not None \
                        and len(ids) > lim.subsidized_meals_per_day:
                    flags.append(_flag(s, term, o, "daily_meals", o["subsidy_fen"], list(ids)))
                if lim is not None and lim.amount_per_month_fen is not None and month_sum[mk] > lim.amount_per_month_fen:
                    flags.append(_flag(s, term, o, "monthly_amount",
                                       min(o["subsidy_fen"], month_sum[mk] - lim.amount_per_month_fen), [o["id"]]))
        for e in es:
            if e.get("affects_balance") and e["resident_id"] in bal:
                bal[e["resident_id"]] += int(e["amount_fen"])
        for o in os_:
            if o["pay_method"] == "balance" and o["to_pay_fen"] > 0 and bal.get(o["resident_id"], 0) < 0:
                flags.append(_flag(s, term, o, "balance", min(-bal[o["resident_id"]], o["to_pay_fen"]), [o["id"]]))
        results[str(op["op_id"])] = {"op_id": str(op["op_id"]), "status": "applied", "flags": flags}
    for rid in {o["resident_id"] for o in new_orders} | {e["resident_id"] for e in entries}:
        changes.touch(s, "account", rid)
    return results


def _insert(s: Session, model, rows: list[dict]) -> None:
    """Rows of one table in one executemany (rows grouped by their keys). PostgreSQL (inside
    ``_writes``): one short INSERT per row, prepared once per connection, all sent in the
    pipeline. The rows were checked by ``_checked`` (Core skips the ORM's flush checks)."""
    if not rows:
        return
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r), []).append(r)
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        for grp in groups.values():
            s.execute(insert(model.__table__), grp)
        return
    q = conn.dialect.identifier_preparer.quote
    for cols, grp in groups.items():
        sql = (f"INSERT INTO {q(model.__tablename__)} ({', '.join(q(c) for c in cols)}) "
               f"VALUES ({', '.join(['%s'] * len(cols))})")
        conn.exec_driver_sql(sql, [tuple(_wire(v) for v in r.values()) for r in grp])


@contextmanager
def _writes(s: Session) -> Iterator[None]:
    """PostgreSQL (psycopg): the inserts of a run go in one pipeline (one round trip for
    every table) as prepared statements; an error there comes out as the SQLAlchemy error
    the session maps (kiosk.db.session.map_db_error). Elsewhere: nothing to do."""
    conn = s.connection()
    dbapi = conn.connection.driver_connection
    if conn.dialect.name != "postgresql" or not hasattr(dbapi, "pipeline"):
        yield
        return
    import psycopg
    from sqlalchemy.exc import DBAPIError

    before = dbapi.prepare_threshold
    dbapi.prepare_threshold = 5          # executemany prepares its statement (None: never)
    try:
        with dbapi.pipeline():
            yield
    except psycopg.Error as exc:
        raise DBAPIError.instance("push inserts", None, exc, psycopg.Error, dialect=conn.dialect) from exc
    finally:
        dbapi.prepare_threshold = before


def _wire(v):
    """A value for the driver as the column types would bind it (JSON columns as text)."""
    if isinstance(v, (dict, list)):
        import json

        return json.dumps(v, ensure_ascii=False)
    return v


def _dt(v) -> datetime | None:
    try:
        return datetime.fromisoformat(v) if v else None
    except (TypeError, ValueError):
        return None


def _lock_residents(s: Session, ops: list[dict], loaded: dict) -> set[str] | None:
    """PostgreSQL: lock the residents of the batch's orders (and of the plain sales' ledger
    entries), sorted, so two terminals never deadlock and the limit check sees every other
    canteen's committed meals of those residents. Returns the residents that exist (the
    lock is also the check). SQLite: None (BEGIN IMMEDIATE serialises pushes)."""
    if s.get_bind().dialect.name != "postgresql":
        return None
    rids: set[str] = set()
    for op in ops:
        p = op.get("payload")
        rows = p.get("rows") if isinstance(p, dict) else None
        if isinstance(rows, dict) and isinstance(rows.get("orders"), list):
            rids |= {str(r.get("resident_id")) for r in rows["orders"] if isinstance(r, dict)}
    for x in loaded.values():
        if not isinstance(x, Exception):
            rids |= {e["resident_id"] for e in x[2]}
    found: set[str] = set()
    ordered = sorted(rids)
    for i in range(0, len(ordered), 5000):
        found.update(s.scalars(select(Resident.id).where(Resident.id.in_(ordered[i:i + 5000]))
                               .order_by(Resident.id).with_for_update()))
    return found


def apply_op(app, s: Session, term: TerminalIdentity, op_id: str, payload: dict) -> None:
    """An op that is not a sale (checked by kiosk.district.domain.scope): voids and their
    refunds, top-ups, consents, templates, erasures, and the audit entries the terminal
    wrote, recorded as reported by that terminal."""
    rows = payload.get("rows") or {}
    deleted = payload.get("deleted") or {}
    metas = payload.get("ops") or []
    touched_res: set[str] = set()

    for c in rows.get("face_consents", []):
        d = rowcodec.load(FaceConsent, c)
        if scope.row_of(s, Resident, d.get("resident_id")) is None:
            raise Rejected(f"unknown resident {d.get('resident_id')!r} (consent)")
        existing = scope.row_of(s, FaceConsent, d["id"])
        if existing is None:
            d["terminal_id"] = term.terminal_id        # who pushed it, from its token (never as reported)
            s.add(FaceConsent(**d))
        else:
            existing.withdrawn_at = d.get("withdrawn_at")
        changes.touch(s, "resident", d["resident_id"])
    s.flush()

    voided_before: set[str] = set()
    voids = []
    for v in rows.get("order_voids", []):
        d = rowcodec.load(OrderVoid, v)
        if scope.row_of(s, Order, d.get("order_id")) is None:
            raise Rejected(f"void of unknown order {d.get('order_id')!r}")
        if s.scalar(select(OrderVoid.id).where(OrderVoid.order_id == d["order_id"])) is not None:
            voided_before.add(d["order_id"])   # voided already (at the server or another terminal)
            continue
        voids.append(d)
    if voids:
        s.execute(insert(OrderVoid), voids)

    entries = []
    for e in rows.get("ledger_entries", []):
        d = rowcodec.load(LedgerEntry, e)
        if d.get("kind") == "reversal" and d.get("order_id") in voided_before:
            continue
        if scope.row_of(s, LedgerEntry, d["id"]) is not None:
            continue
        if scope.row_of(s, Resident, d.get("resident_id")) is None:
            raise Rejected(f"unknown resident {d.get('resident_id')!r} (ledger)")
        entries.append(d)
        touched_res.add(d["resident_id"])
    if entries:
        s.execute(insert(LedgerEntry), entries)
    for d in voids:
        touched_res.add(scope.row_of(s, Order, d["order_id"]).resident_id)

    # faces: templates arrive decrypted (over TLS or loopback) and are encrypted with the server's key
    tmpl_res: set[str] = set()
    for t in rows.get("face_templates", []):
        if scope.row_of(s, FaceTemplate, t["id"]) is not None:
            continue
        rid = t.get("resident_id")
        r = scope.row_of(s, Resident, rid)
        if r is None or r.status == "erased":
            raise Rejected(f"template for unknown or erased resident {rid!r}")
        if s.scalar(select(FaceConsent.id).where(FaceConsent.resident_id == rid,
                                                 FaceConsent.withdrawn_at.is_(None)).limit(1)) is None:
            raise Rejected(f"template for {rid} without a face consent in force")
        if t.get("source") == REFRESH_SOURCE and not refresh_consented(s, rid):
            raise Rejected(f"refreshed template for {rid} without a consent whose text covers refreshes")
        if "embedding" not in t:
            raise Rejected(f"template {t['id']} without its embedding")
        emb = np.frombuffer(base64.b64decode(t["embedding"]), dtype=np.float32)
        crop = base64.b64decode(t["crop"]) if t.get("crop") else None
        d = rowcodec.load(FaceTemplate, {k: v for k, v in t.items() if k not in ("embedding", "crop",
                                                                                  "embedding_enc", "crop_enc")})
        d["embedding_enc"] = app.cipher.encrypt(emb.tobytes())
        d["crop_enc"] = app.cipher.encrypt(crop) if crop is not None else None
        d["terminal_id"] = term.terminal_id
        s.add(FaceTemplate(**d))
        tmpl_res.add(rid)
    gone = [str(x) for x in deleted.get("face_templates", [])]
    for m in metas:
        if m.get("kind") == "faces.remove":
            gone += [str(x) for x in m.get("template_ids") or []]
    if gone:
        for rid in s.scalars(select(FaceTemplate.resident_id).where(FaceTemplate.id.in_(gone))):
            tmpl_res.add(rid)
        s.execute(delete(FaceTemplate).where(FaceTemplate.id.in_(gone)))
    for m in metas:
        if m.get("kind") == "faces.erase" and m.get("resident_id"):
            rid = str(m["resident_id"])
            s.execute(delete(FaceTemplate).where(FaceTemplate.resident_id == rid))
            tmpl_res.add(rid)
    s.flush()
    if tmpl_res:
        _bump_gallery(app, s)
    for rid in tmpl_res:
        changes.touch(s, "faces", rid)
    for rid in touched_res:
        changes.touch(s, "account", rid)

    if rows.get("meal_bookings"):       # 报餐/报停 at the counter (kiosk.district.domain.bookings)
        from kiosk.district.domain.bookings import apply_pushed_bookings
        apply_pushed_bookings(s, term, rows["meal_bookings"])

    # what the terminal says its staff did: recorded as that terminal's report, never as if
    # the server had seen the staff member act
    for a in rows.get("audit_log", []):
        detail = {k: v for k, v in (a.get("detail") or {}).items() if k not in AUDIT_RESERVED}
        audit.record(s, f"terminal:{term.terminal_id}"[:64], str(a.get("action") or "terminal")[:64],
                     a.get("subject"), **detail, reported_by=str(a.get("actor") or "kiosk"),
                     terminal_id=term.terminal_id, canteen_id=term.canteen_id, at_terminal=a.get("at"))


def _bump_gallery(app, s: Session) -> None:
    """Every process of this store reloads its gallery (the data-safety generation counter)."""
    from kiosk.services.faces import FaceService

    bump = getattr(FaceService, "bump_generation", None)
    if bump is not None:
        bump(s)


_POLICIES: dict[str, Policy] = {}


def _policy_of(row: SubsidyPolicy) -> Policy:
    p = _POLICIES.get(row.id)
    if p is None:
        p = _POLICIES[row.id] = Policy.model_validate(row.body)
    return p


def _limits(s: Session, policy_row_id: str | None):
    if not policy_row_id:
        return None
    p = _POLICIES.get(policy_row_id)
    if p is None:
        row = s.get(SubsidyPolicy, policy_row_id)
        if row is None:
            return None
        p = _policy_of(row)
    return p.limits


def _live(q):
    return q.where(~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())


def _statuses(s: Session, orders: list[dict]) -> dict[str, tuple[str, date]]:
    """The roster status (not 在册, with its date) of these orders' residents."""
    rids = sorted({o["resident_id"] for o in orders})
    out: dict[str, tuple[str, date]] = {}
    for i in range(0, len(rids), 500):
        out.update((r, (st, d)) for r, st, d in s.execute(
            select(Resident.id, Resident.roster_status, Resident.status_date)
            .where(Resident.id.in_(rids[i:i + 500]), Resident.status_date.is_not(None))))
    return out


def _status_flag(s: Session, term: TerminalIdentity, o: dict, statuses: dict) -> list[dict]:
    """An order sold on or after the resident's status date (a terminal that had not synced
    it yet): flagged ``resident_status`` with its subsidy as the amount over. 暂停 only when it
    was subsidised (a suspended elder may eat, without subsidy); 迁出 / 死亡 always."""
    from kiosk.billing.status import ENDS_CHECKOUT, status_in_effect

    st, since = statuses.get(o["resident_id"], (None, None))
    st = status_in_effect(st, since, o["meal_date"])
    if st is None or (st not in ENDS_CHECKOUT and o["subsidy_fen"] <= 0):
        return []
    return [_flag(s, term, o, "resident_status", o["subsidy_fen"], [o["id"]])]


def _flag(s: Session, term: TerminalIdentity, o: dict, kind: str, over: int, order_ids: list[str]) -> dict:
    """A district flag on an order recorded as served, and its audit entry (by the server:
    ``system``, with the terminal that pushed the order)."""
    f = DistrictFlag(id=new_id(), order_id=o["id"], resident_id=o["resident_id"], meal_date=o["meal_date"], kind=kind,
                     over_fen=int(over), order_ids=order_ids)
    s.add(f)
    audit.record(s, "system", "district.flag", f.id, kind=kind, order_id=o["id"], order_ids=list(order_ids),
                 resident_id=o["resident_id"], meal_date=o["meal_date"].isoformat(), over_fen=int(over),
                 terminal_id=term.terminal_id, canteen_id=term.canteen_id)
    return {"flag_id": f.id, "kind": kind, "order_id": o["id"], "over_fen": int(over)}
