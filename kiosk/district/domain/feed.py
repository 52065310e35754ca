"""What a terminal pulls: the district records changed since a version, in pages.

A record is ``{"entity": E, "key": K, "data": {...} | None}`` (None: gone). Entities:

* ``resident``  the resident row (no ID number) and its consents;
* ``faces``     the resident's templates, decrypted here and sent only over TLS or
                loopback (the terminal encrypts them again with its own key); over
                plain http to another machine they are withheld (``withheld: true``);
* ``account``   balance as the server knows it, and the resident's orders of this month
                (every canteen: the terminal's subsidy check counts them);
* ``menu``      this canteen's menu of one day (``CANTEEN|DATE``);
* ``policy``, ``canteen`` (its own);
* ``offline``   key ``district``: the district's limits on offline sales (the newest
                setting) and the blocked cards and residents (kiosk.billing.offline);
* ``staff``     the members of this canteen's staff list (``canteen_staff``), active,
                with their PIN hashes (for PINs at the counter). Anybody else, admins and
                supervisors included, is sent as gone (``data: None``): a terminal never
                holds the hash of a person who is not on its canteen's list, and one taken
                off the list (or deactivated) disappears from it at its next sync. Console
                passwords are in a table of their own and never sent.

A new terminal (``since=0``) gets a snapshot, residents paged by id; afterwards it
follows the change log from the version the snapshot started at.
"""
from __future__ import annotations

import base64
from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import func, select

from kiosk.db.models import (Canteen, CanteenStaff, ChangeLogEntry, FaceConsent, FaceTemplate, LedgerEntry,
                         MenuItem, Order, OrderVoid, Resident, Staff, SubsidyPolicy)
from kiosk.db import rowcodec
from kiosk.db.changes import current_version
from kiosk.timeutil import now_cst

RESIDENT_EXCLUDE = ("id_number",)   # the counter never needs the ID number
MENU_DAYS_BACK = 1
MAX_LIMIT = 5000


def month_start(day: date) -> date:
    return day.replace(day=1)


def _chunks(seq: list, n: int = 900):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class Feed:
    def __init__(self, app, session, canteen_id: str, send_templates: bool) -> None:
        self.app = app
        self.s = session
        self.canteen_id = canteen_id
        self.send_templates = send_templates
        self.today = now_cst().date()

    # -- records -------------------------------------------------------------------
    def residents(self, ids: list[str]) -> list[dict]:
        rows = {}
        cons: dict[str, list] = defaultdict(list)
        for part in _chunks(ids):
            rt, ct = Resident.__table__, FaceConsent.__table__
            for r in self.s.execute(select(rt).where(rt.c.id.in_(part))):
                rows[r.id] = rowcodec.dump_row(Resident, r, RESIDENT_EXCLUDE)
            for c in self.s.execute(select(ct).where(ct.c.resident_id.in_(part))):
                cons[c.resident_id].append(rowcodec.dump_row(FaceConsent, c))
        out = []
        for rid in ids:
            d = rows.get(rid)
            out.append({"entity": "resident", "key": rid,
                        "data": None if d is None else {"row": d, "consents": cons.get(rid, [])}})
        return out

    def faces(self, ids: list[str]) -> list[dict]:
        if not self.send_templates:
            return [{"entity": "faces", "key": rid, "data": {"withheld": True}} for rid in ids]
        by: dict[str, list] = defaultdict(list)
        cipher = self.app.cipher
        cols = (FaceTemplate.id, FaceTemplate.resident_id, FaceTemplate.contract_id, FaceTemplate.backend,
                FaceTemplate.embedding_enc, FaceTemplate.quality, FaceTemplate.source, FaceTemplate.created_at)
        # plain IN look-ups, no join: a prepared statement's generic plan for a join over a
        # long IN list was measured at 17 s a page on PostgreSQL (a seq scan per page)
        for part in _chunks(ids):
            erased = set(self.s.scalars(select(Resident.id).where(Resident.id.in_(part),
                                                                 Resident.status == "erased")))
            for t in self.s.execute(select(*cols).where(FaceTemplate.resident_id.in_(part))):
                if t.resident_id in erased:
                    continue
                by[t.resident_id].append({
                    "id": t.id, "contract_id": t.contract_id, "backend": t.backend, "quality": t.quality,
                    "source": t.source, "created_at": t.created_at.isoformat() if t.created_at else None,
                    "embedding": base64.b64encode(cipher.decrypt(t.embedding_enc)).decode()})
        return [{"entity": "faces", "key": rid, "data": {"templates": by.get(rid, [])}} for rid in ids]

    def accounts(self, ids: list[str]) -> list[dict]:
        first = month_start(self.today)
        bal: dict[str, int] = {}
        orders: dict[str, list] = defaultdict(list)
        for part in _chunks(ids):
            for rid, total in self.s.execute(
                    select(LedgerEntry.resident_id, func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
                    .where(LedgerEntry.resident_id.in_(part), LedgerEntry.affects_balance.is_(True))
                    .group_by(LedgerEntry.resident_id)):
                bal[rid] = int(total)
            ot = Order.__table__
            rows = self.s.execute(select(ot).where(ot.c.resident_id.in_(part), ot.c.meal_date >= first)).all()
            voided: set[str] = set()
            oids = [r.id for r in rows]
            for opart in _chunks(oids):
                voided.update(self.s.scalars(select(OrderVoid.order_id).where(OrderVoid.order_id.in_(opart))))
            for r in rows:
                d = rowcodec.dump_row(Order, r)
                d["voided"] = r.id in voided
                orders[r.resident_id].append(d)
        return [{"entity": "account", "key": rid,
                 "data": {"balance_fen": bal.get(rid, 0), "orders": orders.get(rid, [])}} for rid in ids]

    def menus(self, keys: list[str]) -> list[dict]:
        out = []
        for k in keys:
            canteen, _, day = k.partition("|")
            if canteen != self.canteen_id:
                continue
            items = self.s.scalars(select(MenuItem).where(MenuItem.canteen_id == canteen,
                                                          MenuItem.menu_date == date.fromisoformat(day)))
            out.append({"entity": "menu", "key": k, "data": {"items": [rowcodec.dump(m) for m in items]}})
        return out

    def staff(self, keys: list[str]) -> list[dict]:
        """This canteen's active staff; anyone else as gone (the terminal deletes them)."""
        got = {}
        for part in _chunks(keys):
            for r in self.s.scalars(select(Staff).join(CanteenStaff, CanteenStaff.staff_id == Staff.id)
                                    .where(CanteenStaff.canteen_id == self.canteen_id, Staff.id.in_(part),
                                           Staff.active.is_(True))):
                got[r.id] = rowcodec.dump(r)
        return [{"entity": "staff", "key": k, "data": got.get(k)} for k in keys]

    def simple(self, entity: str, model, keys: list[str]) -> list[dict]:
        got = {}
        for part in _chunks(keys):
            for r in self.s.scalars(select(model).where(model.id.in_(part))):
                got[str(r.id)] = rowcodec.dump(r)
        return [{"entity": entity, "key": k, "data": got.get(k)} for k in keys]

    def records(self, keys: list[tuple[str, str]]) -> list[dict]:
        by: dict[str, list[str]] = defaultdict(list)
        for e, k in keys:
            by[e].append(k)
        out: list[dict] = []
        # order matters on the terminal: canteen, policies, staff, menus, then residents before their faces
        if by.get("canteen"):
            out += self.simple("canteen", Canteen, [k for k in by["canteen"] if k == self.canteen_id])
        if by.get("policy"):
            out += self.simple("policy", SubsidyPolicy, by["policy"])
        if by.get("staff"):
            out += self.staff(by["staff"])
        if by.get("offline"):
            from kiosk.services.offline_limits import feed_record

            out.append({"entity": "offline", "key": "district", "data": feed_record(self.s)})
        if by.get("menu"):
            out += self.menus(by["menu"])
        if by.get("resident"):
            out += self.residents(by["resident"])
        if by.get("faces"):
            out += self.faces(by["faces"])
        if by.get("account"):
            out += self.accounts(by["account"])
        return out

    # -- pages ---------------------------------------------------------------------
    def changes_since(self, since: int, limit: int) -> tuple[list[dict], int, bool]:
        rows = self.s.execute(select(ChangeLogEntry.version, ChangeLogEntry.entity, ChangeLogEntry.key)
                              .where(ChangeLogEntry.version > since)
                              .order_by(ChangeLogEntry.version, ChangeLogEntry.id).limit(limit + 1)).all()
        more = len(rows) > limit
        if more:
            last_v = rows[limit - 1].version
            if rows[0].version == last_v:      # one version larger than a page: send it whole
                rows = self.s.execute(select(ChangeLogEntry.version, ChangeLogEntry.entity, ChangeLogEntry.key)
                                      .where(ChangeLogEntry.version == last_v)).all()
            else:
                rows = [r for r in rows[:limit] if r.version != last_v]
        if not rows:
            return [], since, False
        keys = list(dict.fromkeys((r.entity, r.key) for r in rows))
        return self.records(keys), max(r.version for r in rows), more

    def snapshot_page(self, after: str | None, limit: int) -> tuple[list[dict], str | None]:
        out: list[dict] = []
        if after is None:        # the first page: everything that is not per resident
            out += self.records([("canteen", self.canteen_id)])
            out += self.records([("policy", i) for i in self.s.scalars(select(SubsidyPolicy.id))])
            out += self.records([("offline", "district")])
            out += self.records([("staff", i) for i in self.s.scalars(
                select(CanteenStaff.staff_id).where(CanteenStaff.canteen_id == self.canteen_id)
                .order_by(CanteenStaff.staff_id))])
            days = self.s.scalars(select(MenuItem.menu_date).distinct().where(
                MenuItem.canteen_id == self.canteen_id,
                MenuItem.menu_date >= self.today - timedelta(days=MENU_DAYS_BACK))).all()
            out += self.menus([f"{self.canteen_id}|{d.isoformat()}" for d in sorted(days)])
        q = select(Resident.id).order_by(Resident.id).limit(limit)
        if after:
            q = q.where(Resident.id > after)
        ids = list(self.s.scalars(q))
        if ids:   # an account with nothing on it tells a new terminal nothing: left out of the snapshot
            out += self.residents(ids) + self.faces(ids) + [
                a for a in self.accounts(ids) if a["data"]["balance_fen"] or a["data"]["orders"]]
        return out, (ids[-1] if len(ids) == limit else None)


def page(app, session, canteen_id: str, since: int, cursor: str | None, limit: int,
         send_templates: bool) -> dict:
    """One page of the feed. ``cursor`` continues a snapshot: ``V0:AFTER_ID``."""
    limit = max(1, min(limit, MAX_LIMIT))
    f = Feed(app, session, canteen_id, send_templates)
    now_v = current_version(session)
    if since == 0 or cursor is not None:
        if cursor is None:
            v0, after = now_v, None
        else:
            v0s, _, after = cursor.partition(":")
            v0 = int(v0s)
        records, last = f.snapshot_page(after, limit)
        if last is not None:
            return {"changes": records, "since": 0, "cursor": f"{v0}:{last}", "more": True,
                    "server_version": now_v, "templates_withheld": not send_templates}
        return {"changes": records, "since": v0, "cursor": None, "more": now_v > v0,
                "server_version": now_v, "templates_withheld": not send_templates}
    records, v, more = f.changes_since(since, limit)
    return {"changes": records, "since": v, "cursor": None, "more": more, "server_version": now_v,
            "templates_withheld": not send_templates}

