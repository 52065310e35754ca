"""Applying what terminals push: each outbox operation once, in the order pushed.

An operation carries the rows the terminal's services wrote in one unit of work (the
same services, the same ids, prices and subsidy). The server records them as they
were served: a meal is never re-priced or dropped. It checks what only it can see,
the district-wide limits over every canteen, and flags an order that breaks one
(``district_flags``) for the reconciliation report. The op id goes into
``applied_ops`` in the same transaction as its effect, so a push repeated after a
lost reply or a crash is answered "duplicate" and changes nothing.

An operation the server cannot apply (an unknown resident or dish, a template without
consent) is kept whole in ``applied_ops`` with status ``rejected`` and its reason; the
terminal keeps it visible too. Nothing is silently dropped.
"""
from __future__ import annotations

import base64
import logging
import time
from datetime import date, datetime

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ..billing.policy import Policy
from ..db.models import (AppliedOp, DistrictFlag, FaceConsent, FaceTemplate, LedgerEntry, Order, OrderLine,
                         OrderVoid, PushedOrder, Resident, SubsidyPolicy, Terminal, new_id, utcnow)
from ..db import audit
from ..services.checkout import balance_of, month_bounds
from ..sync import changes, rowcodec
from .auth import TerminalIdentity

log = logging.getLogger("kiosk.server.push")
MAX_OPS = 500
AUDIT_RESERVED = ("session", "actor", "action", "subject")


class Rejected(Exception):
    pass


def apply_batch(app, term: TerminalIdentity, ops: list[dict], *, with_version: bool = False):
    """Apply a terminal's ops in order; returns one result per op. A deadlock or a lost
    connection rolls the whole batch back (nothing half-applied) and it is tried again;
    after three tries the error goes to the terminal, which pushes the same ops later."""
    from ..errors import StorageError

    for attempt in range(3):
        try:
            results, version = _apply_batch_once(app, term, ops)
            return (results, version) if with_version else results
        except StorageError:
            if attempt == 2:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


SIMPLE_TABLES = {"orders", "order_lines", "ledger_entries"}


def _is_simple(op: dict) -> bool:
    """A plain sale (orders, their lines and ledger entries, nothing else): applied in bulk."""
    p = op.get("payload") or {}
    rows = p.get("rows") or {}
    return (not p.get("deleted") and rows.get("orders") and not (set(rows) - SIMPLE_TABLES)
            and all(e.get("kind") != "reversal" for e in rows.get("ledger_entries", []))
            and all(m.get("kind") == "order.settle" for m in p.get("ops") or []))


def _apply_batch_once(app, term: TerminalIdentity, ops: list[dict]) -> list[dict]:
    ids = [str(op.get("op_id", "")) for op in ops]
    results: dict[str, dict] = {}
    with app.db.session(write_lock=True) as s:
        s.info[changes.APPLY] = True
        known = {}
        for i in range(0, len(ids), 900):
            known.update(dict(s.execute(select(AppliedOp.op_id, AppliedOp.status)
                                        .where(AppliedOp.op_id.in_(ids[i:i + 900]))).all()))
        _lock_residents(s, ops)
        run: list[dict] = []
        for op in ops:
            op_id = str(op.get("op_id", ""))
            if not op_id or len(op_id) > 36:
                results[op_id] = {"op_id": op_id, "status": "rejected", "error": "bad op id"}
                continue
            if op_id in known:
                results[op_id] = {"op_id": op_id, "status": "duplicate", "was": known[op_id]}
                continue
            known[op_id] = "applied"
            if _is_simple(op):
                run.append(op)
                continue
            if run:
                results.update(_apply_run(app, s, term, run))
                run = []
            results[op_id] = _apply_one(app, s, term, op)
        if run:
            results.update(_apply_run(app, s, term, run))
        t = s.get(Terminal, term.terminal_id)
        if t is not None:
            t.last_push_at = utcnow()
        s.flush()
        version = changes.current_version(s)   # this batch's own version comes at commit: the pull gets it
    return [results[i] if i in results else {"op_id": i, "status": "rejected", "error": "bad op id"}
            for i in ids], version


def _reject(s: Session, term: TerminalIdentity, op: dict, reason: str) -> dict:
    op_id = str(op.get("op_id"))
    log.warning("op %s from %s rejected: %s", op_id, term.terminal_id, reason)
    s.add(AppliedOp(op_id=op_id, terminal_id=term.terminal_id, kind=str(op.get("kind", ""))[:40],
                    status="rejected", error=str(reason)[:2000], payload=op, created_at=_dt(op.get("created_at"))))
    return {"op_id": op_id, "status": "rejected", "error": str(reason)[:500]}


def _apply_one(app, s: Session, term: TerminalIdentity, op: dict) -> dict:
    """Any op, on its own savepoint: applied whole or kept whole as rejected."""
    from sqlalchemy.exc import IntegrityError

    op_id = str(op["op_id"])
    sp = s.begin_nested()
    try:
        flags = apply_op(app, s, term, op_id, op.get("payload") or {})
        sp.commit()
    except (Rejected, IntegrityError, KeyError, TypeError, ValueError) as exc:
        sp.rollback()
        return _reject(s, term, op, exc.args[0] if isinstance(exc, Rejected) else f"{type(exc).__name__}: {exc}")
    s.add(AppliedOp(op_id=op_id, terminal_id=term.terminal_id, kind=str(op.get("kind", ""))[:40],
                    status="applied", created_at=_dt(op.get("created_at"))))
    return {"op_id": op_id, "status": "applied", "flags": flags}


def _in(col, values, s: Session, *cols):
    """Rows whose ``col`` is in ``values`` (chunked), as tuples of ``cols`` (default: col)."""
    out = []
    values = list(values)
    for i in range(0, len(values), 900):
        out += s.execute(select(*(cols or (col,))).where(col.in_(values[i:i + 900]))).all()
    return out


def _apply_run(app, s: Session, term: TerminalIdentity, run: list[dict]) -> dict[str, dict]:
    """Plain sales in bulk: validated with a few queries, inserted with executemany, the
    district limits walked in push order (as if applied one by one)."""
    from ..db.models import MenuItem

    results: dict[str, dict] = {}
    loaded = []
    for op in run:
        try:
            rows = op["payload"]["rows"]
            loaded.append((op, [rowcodec.load(Order, o) for o in rows.get("orders", [])],
                           [rowcodec.load(OrderLine, x) for x in rows.get("order_lines", [])],
                           [rowcodec.load(LedgerEntry, x) for x in rows.get("ledger_entries", [])]))
        except (KeyError, TypeError, ValueError) as exc:
            results[str(op["op_id"])] = _reject(s, term, op, f"{type(exc).__name__}: {exc}")
    all_o = [o for _, os_, _, _ in loaded for o in os_]
    all_l = [x for _, _, ls, _ in loaded for x in ls]
    all_e = [x for _, _, _, es in loaded for x in es]
    residents = {r for (r,) in _in(Resident.id, {o["resident_id"] for o in all_o} | {e["resident_id"] for e in all_e}, s)}
    menu = {m for (m,) in _in(MenuItem.id, {x["menu_item_id"] for x in all_l}, s)}
    have_orders = {o for (o,) in _in(Order.id, {o["id"] for o in all_o}, s)}
    keys = dict(_in(Order.idempotency_key, {o["idempotency_key"] for o in all_o}, s, Order.idempotency_key, Order.id))
    have_entries = {e for (e,) in _in(LedgerEntry.id, {e["id"] for e in all_e}, s)}

    good = []
    for op, os_, ls, es in loaded:
        bad = ([f"unknown resident {o['resident_id']!r} (order {o['id']})" for o in os_ if o["resident_id"] not in residents]
               + [f"unknown resident {e['resident_id']!r} (ledger)" for e in es if e["resident_id"] not in residents]
               + [f"unknown menu item {x['menu_item_id']!r} (dish {x.get('dish_id')})" for x in ls
                  if x["menu_item_id"] not in menu])
        if bad:
            results[str(op["op_id"])] = _reject(s, term, op, bad[0])
            continue
        new_o = [o for o in os_ if o["id"] not in have_orders]
        ids = {o["id"] for o in new_o}
        for o in new_o:
            o["canteen_id"], o["terminal_id"] = term.canteen_id, term.terminal_id
            if o["idempotency_key"] in keys:
                o["idempotency_key"] = f"{o['idempotency_key'][:90]}:{o['id']}"
            keys[o["idempotency_key"]] = o["id"]
            have_orders.add(o["id"])
        new_l = [x for x in ls if x["order_id"] in ids]
        new_e = [e for e in es if e["id"] not in have_entries]
        have_entries.update(e["id"] for e in new_e)
        good.append((op, new_o, new_l, new_e))

    # the district's view before this run: subsidised meals per day and month, balances
    rids = sorted({o["resident_id"] for _, os_, _, _ in good for o in os_})
    days = [o["meal_date"] for _, os_, _, _ in good for o in os_]
    day_ids: dict[tuple, list[str]] = {}
    month_sum: dict[tuple, int] = {}
    bal: dict[str, int] = {}
    if rids:
        first = min(month_bounds(d)[0] for d in days)
        last = max(month_bounds(d)[1] for d in days)
        for i in range(0, len(rids), 900):
            q = _live(select(Order.id, Order.resident_id, Order.meal_date, Order.subsidy_fen)
                      .where(Order.resident_id.in_(rids[i:i + 900]), Order.meal_date >= first,
                             Order.meal_date <= last, Order.subsidy_fen > 0)).order_by(Order.created_at)
            for oid, rid, d, sub in s.execute(q):
                day_ids.setdefault((rid, d), []).append(oid)
                mk = (rid, d.year, d.month)
                month_sum[mk] = month_sum.get(mk, 0) + sub
        payers = sorted({o["resident_id"] for _, os_, _, _ in good for o in os_ if o["pay_method"] == "balance"})
        for i in range(0, len(payers), 900):
            for rid, total in s.execute(select(LedgerEntry.resident_id, func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
                                        .where(LedgerEntry.resident_id.in_(payers[i:i + 900]),
                                               LedgerEntry.affects_balance.is_(True))
                                        .group_by(LedgerEntry.resident_id)):
                bal[rid] = int(total)

    new_orders = [o for _, os_, _, _ in good for o in os_]
    if new_orders:
        s.execute(insert(Order.__table__), new_orders)
    lines = [x for _, _, ls, _ in good for x in ls]
    if lines:
        s.execute(insert(OrderLine.__table__), lines)
    entries = [e for _, _, _, es in good for e in es]
    if entries:
        s.execute(insert(LedgerEntry.__table__), entries)
    now = utcnow()
    if new_orders:
        op_of = {o["id"]: str(op["op_id"]) for op, os_, _, _ in good for o in os_}
        s.execute(insert(PushedOrder.__table__), [{"order_id": o["id"], "terminal_id": term.terminal_id,
                                         "op_id": op_of[o["id"]], "received_at": now} for o in new_orders])
    if good:
        s.execute(insert(AppliedOp.__table__), [{"op_id": str(op["op_id"]), "terminal_id": term.terminal_id,
                                       "kind": str(op.get("kind", ""))[:40], "status": "applied", "error": None,
                                       "payload": None, "created_at": _dt(op.get("created_at")), "received_at": now}
                                      for op, _, _, _ in good])

    # the limits, walked in push order
    for op, os_, _, es in good:
        flags = []
        for o in os_:
            rid, d = o["resident_id"], o["meal_date"]
            if o["subsidy_fen"] > 0:
                lim = _limits(s, o.get("policy_row_id"))
                ids = day_ids.setdefault((rid, d), [])
                ids.append(o["id"])
                mk = (rid, d.year, d.month)
                month_sum[mk] = month_sum.get(mk, 0) + o["subsidy_fen"]
                if lim is not None and lim.subsidized_meals_per_day is not None \
                        and len(ids) > lim.subsidized_meals_per_day:
                    flags.append(_flag(s, o, "daily_meals", o["subsidy_fen"], list(ids)))
                if lim is not None and lim.amount_per_month_fen is not None and month_sum[mk] > lim.amount_per_month_fen:
                    flags.append(_flag(s, o, "monthly_amount",
                                       min(o["subsidy_fen"], month_sum[mk] - lim.amount_per_month_fen), [o["id"]]))
        for e in es:
            if e.get("affects_balance") and e["resident_id"] in bal:
                bal[e["resident_id"]] += int(e["amount_fen"])
        for o in os_:
            if o["pay_method"] == "balance" and o["to_pay_fen"] > 0 and bal.get(o["resident_id"], 0) < 0:
                flags.append(_flag(s, o, "balance", min(-bal[o["resident_id"]], o["to_pay_fen"]), [o["id"]]))
        results[str(op["op_id"])] = {"op_id": str(op["op_id"]), "status": "applied", "flags": flags}
    for rid in {o["resident_id"] for o in new_orders} | {e["resident_id"] for e in entries}:
        changes.touch(s, "account", rid)
    return results


def _dt(v) -> datetime | None:
    try:
        return datetime.fromisoformat(v) if v else None
    except (TypeError, ValueError):
        return None


def _lock_residents(s: Session, ops: list[dict]) -> None:
    """PostgreSQL: lock the residents of the batch's orders (sorted: no deadlock between
    two terminals), so the limit check sees every other canteen's committed meals."""
    if s.get_bind().dialect.name != "postgresql":
        return      # SQLite: the write lock taken at BEGIN IMMEDIATE serialises pushes
    rids = sorted({str(r.get("resident_id")) for op in ops
                   for r in ((op.get("payload") or {}).get("rows") or {}).get("orders", [])})
    if rids:
        s.execute(select(Resident.id).where(Resident.id.in_(rids)).order_by(Resident.id).with_for_update()).all()


def apply_op(app, s: Session, term: TerminalIdentity, op_id: str, payload: dict) -> list[dict]:
    rows = payload.get("rows") or {}
    deleted = payload.get("deleted") or {}
    metas = payload.get("ops") or []
    touched_res: set[str] = set()
    flags: list[dict] = []

    for c in rows.get("face_consents", []):
        d = rowcodec.load(FaceConsent, c)
        if s.get(Resident, d.get("resident_id")) is None:
            raise Rejected(f"unknown resident {d.get('resident_id')!r} (consent)")
        existing = s.get(FaceConsent, d["id"])
        if existing is None:
            s.add(FaceConsent(**d))
        else:
            existing.withdrawn_at = d.get("withdrawn_at")
        changes.touch(s, "resident", d["resident_id"])
    s.flush()

    new_orders = []
    for o in rows.get("orders", []):
        d = rowcodec.load(Order, o)
        if s.get(Resident, d.get("resident_id")) is None:
            raise Rejected(f"unknown resident {d.get('resident_id')!r} (order {d.get('id')})")
        if s.get(Order, d["id"]) is not None:
            continue        # recorded already (the terminal re-sent a row with another op)
        d["canteen_id"] = term.canteen_id
        d["terminal_id"] = term.terminal_id
        clash = s.scalar(select(Order.id).where(Order.idempotency_key == d["idempotency_key"]))
        if clash is not None:
            d["idempotency_key"] = f"{d['idempotency_key'][:90]}:{d['id']}"
        new_orders.append(d)
    if new_orders:
        s.execute(insert(Order), new_orders)
    new_ids = {d["id"] for d in new_orders}
    lines = [rowcodec.load(OrderLine, r) for r in rows.get("order_lines", [])]
    lines = [ln for ln in lines if ln.get("order_id") in new_ids]
    if lines:
        s.execute(insert(OrderLine), lines)

    voided_before: set[str] = set()
    voids = []
    for v in rows.get("order_voids", []):
        d = rowcodec.load(OrderVoid, v)
        if s.get(Order, d.get("order_id")) is None:
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
        if s.get(LedgerEntry, d["id"]) is not None:
            continue
        if s.get(Resident, d.get("resident_id")) is None:
            raise Rejected(f"unknown resident {d.get('resident_id')!r} (ledger)")
        entries.append(d)
        touched_res.add(d["resident_id"])
    if entries:
        s.execute(insert(LedgerEntry), entries)

    for d in new_orders:
        touched_res.add(d["resident_id"])
    if new_orders:
        s.execute(insert(PushedOrder), [{"order_id": d["id"], "terminal_id": term.terminal_id, "op_id": op_id,
                                         "received_at": utcnow()} for d in new_orders])
    for d in voids:
        o = s.get(Order, d["order_id"])
        touched_res.add(o.resident_id)

    # faces: templates arrive decrypted (over TLS or loopback) and are encrypted with the server's key
    tmpl_res: set[str] = set()
    for t in rows.get("face_templates", []):
        if s.get(FaceTemplate, t["id"]) is not None:
            continue
        rid = t.get("resident_id")
        r = s.get(Resident, rid)
        if r is None or r.status == "erased":
            raise Rejected(f"template for unknown or erased resident {rid!r}")
        if s.scalar(select(FaceConsent.id).where(FaceConsent.resident_id == rid,
                                                 FaceConsent.withdrawn_at.is_(None)).limit(1)) is None:
            raise Rejected(f"template for {rid} without a face consent in force")
        if "embedding" not in t:
            raise Rejected(f"template {t['id']} without its embedding")
        emb = np.frombuffer(base64.b64decode(t["embedding"]), dtype=np.float32)
        crop = base64.b64decode(t["crop"]) if t.get("crop") else None
        d = rowcodec.load(FaceTemplate, {k: v for k, v in t.items() if k not in ("embedding", "crop",
                                                                                  "embedding_enc", "crop_enc")})
        d["embedding_enc"] = app.cipher.encrypt(emb.tobytes())
        d["crop_enc"] = app.cipher.encrypt(crop) if crop is not None else None
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

    for a in rows.get("audit_log", []):
        detail = {k: v for k, v in (a.get("detail") or {}).items() if k not in AUDIT_RESERVED}
        audit.record(s, str(a.get("actor") or "kiosk"), str(a.get("action") or "terminal"), a.get("subject"),
                     **detail, terminal_id=term.terminal_id, at_terminal=a.get("at"))

    for d in new_orders:
        flags += check_limits(s, d)
    return flags


def _bump_gallery(app, s: Session) -> None:
    """Every process of this store reloads its gallery (the data-safety generation counter)."""
    from ..services.faces import FaceService

    bump = getattr(FaceService, "bump_generation", None)
    if bump is not None:
        bump(s)


_POLICIES: dict[str, Policy] = {}


def _limits(s: Session, policy_row_id: str | None):
    if not policy_row_id:
        return None
    p = _POLICIES.get(policy_row_id)
    if p is None:
        row = s.get(SubsidyPolicy, policy_row_id)
        if row is None:
            return None
        p = _POLICIES[policy_row_id] = Policy.model_validate(row.body)
    return p.limits


def _live(q):
    return q.where(~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())


def check_limits(s: Session, o: dict) -> list[dict]:
    """Flags for an order recorded as served that breaks a district-wide limit."""
    out: list[dict] = []
    rid, day = o["resident_id"], o["meal_date"]
    if o["subsidy_fen"] > 0:
        lim = _limits(s, o.get("policy_row_id"))
        if lim is not None and lim.subsidized_meals_per_day is not None:
            same_day = s.execute(_live(select(Order.id).where(Order.resident_id == rid, Order.meal_date == day,
                                                               Order.subsidy_fen > 0))
                                 .order_by(Order.created_at)).scalars().all()
            if len(same_day) > lim.subsidized_meals_per_day:
                out.append(_flag(s, o, "daily_meals", o["subsidy_fen"], list(same_day)))
        if lim is not None and lim.amount_per_month_fen is not None:
            first, last = month_bounds(day)
            used = int(s.scalar(_live(select(func.coalesce(func.sum(Order.subsidy_fen), 0))
                                      .where(Order.resident_id == rid, Order.meal_date >= first,
                                             Order.meal_date <= last))) or 0)
            if used > lim.amount_per_month_fen:
                ids = s.execute(_live(select(Order.id).where(Order.resident_id == rid, Order.meal_date >= first,
                                                             Order.meal_date <= last, Order.subsidy_fen > 0))
                                .order_by(Order.created_at)).scalars().all()
                out.append(_flag(s, o, "monthly_amount", min(o["subsidy_fen"], used - lim.amount_per_month_fen),
                                 list(ids)))
    if o["pay_method"] == "balance" and o["to_pay_fen"] > 0:
        bal = balance_of(s, rid)
        if bal < 0:
            out.append(_flag(s, o, "balance", min(-bal, o["to_pay_fen"]), [o["id"]]))
    return out


def _flag(s: Session, o: dict, kind: str, over: int, order_ids: list[str]) -> dict:
    f = DistrictFlag(id=new_id(), order_id=o["id"], resident_id=o["resident_id"], meal_date=o["meal_date"], kind=kind,
                     over_fen=int(over), order_ids=order_ids)
    s.add(f)
    return {"flag_id": f.id, "kind": kind, "order_id": o["id"], "over_fen": int(over)}


def _as_date(v) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v))
