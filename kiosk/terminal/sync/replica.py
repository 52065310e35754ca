"""Applying pulled records to a terminal's local replica (same schema as the server).

Runs in one unit of work per page with ``session.info[APPLY]`` set, so nothing of it
goes back into the outbox. Residents, staff, policies, menus and the canteen are
upserted by id; a resident's templates are replaced by the server's set (an erasure is
an empty set) except templates enrolled here and not yet pushed; the server's account
record becomes a balance adjustment row (``kind = 'synced'``) such that the local
balance is the server's balance plus what this terminal spent since (still in its
outbox), and the resident's orders at other terminals this month are kept (without
lines) so the local subsidy check counts them.
"""
from __future__ import annotations

import base64
import uuid
from datetime import datetime

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kiosk.db.models import (BlockedId, Canteen, FaceConsent, FaceTemplate, LedgerEntry, MenuItem, OfflineLimit,
                         Order, OrderLine, OrderVoid, OutboxEntry, Resident, Staff, SubsidyPolicy)
from kiosk.db import changes, rowcodec
from kiosk.services.events import CATALOGUE_CHANGED, FACES_PULLED, Change
from kiosk.services.faces import FaceService

SYNC_NS = uuid.UUID("6f1c1f8e-52b1-4a44-9b4e-8e3c2a0d7a11")


def _insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def upsert(session: Session, model, rows: list[dict]) -> None:
    """Insert or update by primary key (one statement, executemany; only the columns given)."""
    if not rows:
        return
    ins = _insert(session)
    pk = [c.name for c in model.__table__.primary_key.columns]
    by_keys: dict[tuple, list[dict]] = {}
    for r in rows:
        by_keys.setdefault(tuple(sorted(r)), []).append(r)
    for keys, part in by_keys.items():
        stmt = ins(model.__table__)
        upd = {k: stmt.excluded[k] for k in keys if k not in pk}
        stmt = stmt.on_conflict_do_update(index_elements=pk, set_=upd) if upd else stmt.on_conflict_do_nothing()
        session.execute(stmt, part)


def insert_missing(session: Session, model, rows: list[dict]) -> None:
    if not rows:
        return
    ins = _insert(session)
    by_keys: dict[tuple, list[dict]] = {}
    for r in rows:
        by_keys.setdefault(tuple(sorted(r)), []).append(r)
    for part in by_keys.values():
        session.execute(ins(model.__table__).on_conflict_do_nothing(), part)


def pending_ledger(session: Session) -> tuple[dict[str, int], set[str]]:
    """What the outbox still holds: balance changes per resident and template ids."""
    bal: dict[str, int] = {}
    tmpl: set[str] = set()
    for (payload,) in session.execute(select(OutboxEntry.payload).where(OutboxEntry.status == "pending")):
        rows = (payload or {}).get("rows") or {}
        for e in rows.get("ledger_entries", []):
            if e.get("affects_balance"):
                bal[e["resident_id"]] = bal.get(e["resident_id"], 0) + int(e["amount_fen"])
        for t in rows.get("face_templates", []):
            tmpl.add(t["id"])
    return bal, tmpl


def apply_records(app, records: list[dict]) -> dict:
    """Apply one page; returns counts and the residents whose templates changed."""
    stats = {"records": len(records), "faces_changed": 0, "erased": 0, "withheld": 0}
    if not records:
        return stats
    by: dict[str, list[dict]] = {}
    for r in records:
        by.setdefault(r["entity"], []).append(r)
    with app.db.session(write_lock=True) as s:
        s.info[changes.APPLY] = True
        pend_bal, pend_tmpl = pending_ledger(s)
        upsert(s, Canteen, [rowcodec.load(Canteen, r["data"]) for r in by.get("canteen", []) if r["data"]])
        pol = [rowcodec.load(SubsidyPolicy, r["data"]) for r in by.get("policy", []) if r["data"]]
        upsert(s, SubsidyPolicy, pol)
        upsert(s, Staff, [rowcodec.load(Staff, r["data"]) for r in by.get("staff", []) if r["data"]])
        gone = [r["key"] for r in by.get("staff", []) if not r["data"]]   # off this canteen's list: hash dropped
        for i in range(0, len(gone), 900):
            s.execute(delete(Staff).where(Staff.id.in_(gone[i:i + 900])))
        for r in by.get("offline", []):
            _apply_offline(s, r["data"] or {})
        menus = by.get("menu", [])
        for r in menus:
            _apply_menu(s, r)
        res = [r for r in by.get("resident", []) if r["data"]]
        ids = [r["key"] for r in res]
        for i in range(0, len(ids), 900):   # a card moved from one resident to another: no unique clash
            s.execute(update(Resident).where(Resident.id.in_(ids[i:i + 900]), Resident.card_no.is_not(None))
                      .values(card_no=None))
        upsert(s, Resident, [rowcodec.load(Resident, r["data"]["row"]) for r in res])
        upsert(s, FaceConsent, [rowcodec.load(FaceConsent, c) for r in res for c in r["data"]["consents"]])
        faces = by.get("faces", [])
        changed = _apply_faces(app, s, faces, pend_tmpl, stats)
        _apply_accounts(s, by.get("account", []), pend_bal)
        if changed:
            FaceService.bump_generation(s)      # other processes: their next generation check
    # this process's caches (the face gallery, the catalogue) hear of it from the core's events
    if changed:
        app.events.notify(Change(FACES_PULLED, {"templates": stats["faces_changed"]}))
    if menus or pol or by.get("canteen") or by.get("offline"):     # the offline limits price too
        app.events.notify(Change(CATALOGUE_CHANGED, {"via": "pull"}))
    return stats


def _apply_offline(s: Session, data: dict) -> None:
    """The district's offline limits and blocked list replace the terminal's copy whole (the
    checkout reads them there: kiosk.services.offline_limits)."""
    s.execute(delete(OfflineLimit))
    s.execute(delete(BlockedId))
    lim = data.get("limits")
    if lim:
        s.add(OfflineLimit(per_sale_fen=lim.get("per_sale_fen"), per_day_fen=lim.get("per_day_fen"),
                           subsidy_offline_s=int(lim["subsidy_offline_s"]), set_by=str(lim.get("set_by") or "server"),
                           set_at=datetime.fromisoformat(lim["set_at"])))
    for b in data.get("blocked") or []:
        s.add(BlockedId(kind=b["kind"], value=b["value"], reason=b.get("reason") or "", blocked_by=b.get("blocked_by")
                        or "server", blocked_at=datetime.fromisoformat(b["blocked_at"])))
    s.flush()


def _apply_menu(s: Session, r: dict) -> None:
    canteen, _, day = r["key"].partition("|")
    items = [rowcodec.load(MenuItem, m) for m in (r["data"] or {}).get("items", [])]
    upsert(s, MenuItem, items)
    keep = {m["id"] for m in items}
    from datetime import date as _date
    local = s.scalars(select(MenuItem.id).where(MenuItem.canteen_id == canteen,
                                                MenuItem.menu_date == _date.fromisoformat(day))).all()
    gone = [i for i in local if i not in keep]
    if gone:
        used = set(s.scalars(select(OrderLine.menu_item_id).where(OrderLine.menu_item_id.in_(gone))))
        drop = [i for i in gone if i not in used]
        if drop:
            s.execute(delete(MenuItem).where(MenuItem.id.in_(drop)))


def _local_templates(s: Session, rids: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for i in range(0, len(rids), 900):
        for tid, rid in s.execute(select(FaceTemplate.id, FaceTemplate.resident_id)
                                  .where(FaceTemplate.resident_id.in_(rids[i:i + 900]))):
            out.setdefault(rid, set()).add(tid)
    return out


def _apply_faces(app, s: Session, faces: list[dict], pending: set[str], stats: dict) -> bool:
    cipher = app.cipher
    new_rows, gone_all = [], []
    local_by = _local_templates(s, [r["key"] for r in faces])
    for r in faces:
        rid, data = r["key"], r["data"] or {}
        if data.get("withheld"):
            stats["withheld"] += 1
            continue
        server = {t["id"]: t for t in data.get("templates", [])}
        local = local_by.get(rid, set())
        gone = [t for t in local if t not in server and t not in pending]
        if gone:
            gone_all += gone
            if not server:
                stats["erased"] += 1
        added = False
        for tid, t in server.items():
            if tid in local:
                continue
            added = True
            emb = np.frombuffer(base64.b64decode(t["embedding"]), dtype=np.float32)
            new_rows.append({"id": tid, "resident_id": rid, "contract_id": t["contract_id"],
                             "backend": t["backend"], "embedding_enc": cipher.encrypt(emb.tobytes()),
                             "crop_enc": None, "quality": t.get("quality"), "source": t.get("source") or "enroll",
                             "created_at": datetime.fromisoformat(t["created_at"]) if t.get("created_at") else None})
        if gone or added:
            stats["faces_changed"] += 1
    for i in range(0, len(gone_all), 900):
        s.execute(delete(FaceTemplate).where(FaceTemplate.id.in_(gone_all[i:i + 900])))
    if new_rows:
        insert_missing(s, FaceTemplate, new_rows)
    return bool(new_rows or gone_all)


def _apply_accounts(s: Session, accounts: list[dict], pending: dict[str, int]) -> None:
    if not accounts:
        return
    orders, voids, adjust = [], [], []
    rids = [r["key"] for r in accounts]
    sids = {rid: str(uuid.uuid5(SYNC_NS, "balance:" + rid)) for rid in rids}
    local: dict[str, int] = {}
    have_sync: set[str] = set()
    for i in range(0, len(rids), 900):
        part = rids[i:i + 900]
        for rid, total in s.execute(select(LedgerEntry.resident_id, func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
                                    .where(LedgerEntry.resident_id.in_(part), LedgerEntry.affects_balance.is_(True),
                                           LedgerEntry.kind != "synced")
                                    .group_by(LedgerEntry.resident_id)):
            local[rid] = int(total)
        have_sync.update(s.scalars(select(LedgerEntry.resident_id).where(
            LedgerEntry.id.in_([sids[r] for r in part]))))
    for r in accounts:
        rid, data = r["key"], r["data"] or {}
        for o in data.get("orders", []):
            voided = o.pop("voided", False)
            orders.append(rowcodec.load(Order, o))
            if voided:
                voids.append({"id": str(uuid.uuid5(SYNC_NS, "void:" + o["id"])), "order_id": o["id"],
                              "staff_id": "server", "reason": "（区服务器记录的作废）"})
        amount = int(data.get("balance_fen", 0)) + pending.get(rid, 0) - local.get(rid, 0)
        if amount == 0 and rid not in have_sync:
            continue
        adjust.append({"id": sids[rid], "resident_id": rid, "order_id": None, "kind": "synced", "method": None,
                       "amount_fen": amount, "affects_balance": True, "payer": None, "staff_id": None,
                       "note": "区服务器余额（同步）"})
    insert_missing(s, Order, orders)
    insert_missing(s, OrderVoid, voids)
    upsert(s, LedgerEntry, adjust)
