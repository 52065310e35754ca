"""Reconciliation: the orders recorded as served that broke a district-wide limit
(flagged when a terminal pushed them), for the district office to accept or charge
back. The decision is recorded on the flag and in the audit log by a supervisor or
admin proven by PIN."""
from __future__ import annotations

from sqlalchemy import select

from kiosk.db.models import DistrictFlag, Order, PushedOrder, Resident, Terminal, utcnow
from kiosk.errors import NotFoundError, PermissionDeniedError, ValidationError
from kiosk.db import audit
from kiosk.services.checkout import month_bounds
from kiosk.timeutil import CST, parse_month

DECISIONS = ("accept", "charge_back")
DECISION_ZH = {"accept": "认可（照常报销）", "charge_back": "追回（不予报销超出部分）"}
KIND_ZH = {"daily_meals": "超过每日补贴餐次", "monthly_amount": "超过每月补贴额度", "balance": "余额透支"}


def _iso(d) -> str | None:
    return d.astimezone(CST).isoformat(timespec="seconds") if d else None


def reconcile(app, month: str) -> dict:
    first, last = month_bounds(parse_month(month))
    with app.db.session(read_only=True) as s:
        flags = s.scalars(select(DistrictFlag).where(DistrictFlag.meal_date >= first, DistrictFlag.meal_date <= last)
                          .order_by(DistrictFlag.meal_date, DistrictFlag.created_at)).all()
        ids = sorted({i for f in flags for i in (f.order_ids or [])} | {f.order_id for f in flags})
        orders = {o.id: o for o in s.scalars(select(Order).where(Order.id.in_(ids)))} if ids else {}
        pushed = {p.order_id: p for p in s.scalars(select(PushedOrder).where(PushedOrder.order_id.in_(ids)))} if ids else {}
        terms = {t.id: t for t in s.scalars(select(Terminal))}
        names = dict(s.execute(select(Resident.id, Resident.name)
                               .where(Resident.id.in_({f.resident_id for f in flags}))).all()) if flags else {}
        out = []
        for f in flags:
            meals = []
            for oid in f.order_ids or [f.order_id]:
                o = orders.get(oid)
                if o is None:
                    continue
                p = pushed.get(oid)
                meals.append({"order_id": o.id, "canteen_id": o.canteen_id, "terminal_id": o.terminal_id,
                              "meal_date": o.meal_date.isoformat(), "meal": o.meal, "sold_at": _iso(o.created_at),
                              "synced_at": _iso(p.received_at) if p else None, "subsidy_fen": o.subsidy_fen,
                              "to_pay_fen": o.to_pay_fen, "pay": o.pay_method})
            tids = sorted({m["terminal_id"] for m in meals if m["terminal_id"]})
            out.append({
                "flag_id": f.id, "resident_id": f.resident_id, "name": names.get(f.resident_id),
                "kind": f.kind, "reason": KIND_ZH.get(f.kind, f.kind), "meal_date": f.meal_date.isoformat(),
                "order_id": f.order_id, "order_ids": list(f.order_ids or [f.order_id]), "over_fen": f.over_fen,
                "canteens": sorted({m["canteen_id"] for m in meals}), "meals": meals,
                "terminals": [{"terminal_id": t, "canteen_id": terms[t].canteen_id if t in terms else None,
                               "last_push_at": _iso(terms[t].last_push_at) if t in terms else None,
                               "last_pull_at": _iso(terms[t].last_pull_at) if t in terms else None}
                              for t in tids],
                "flagged_at": _iso(f.created_at), "decision": f.decision, "decided_by": f.decided_by,
                "decided_at": _iso(f.decided_at), "note": f.note})
    return {"month": first.strftime("%Y-%m"), "flagged": out,
            "over_fen": sum(x["over_fen"] for x in out),
            "undecided": sum(1 for x in out if x["decision"] is None)}


def decide(app, flag_id: str, decision: str, actor, note: str | None = None) -> dict:
    """Record the office's decision on a flag (``actor``: a supervisor or admin proven by PIN)."""
    if decision not in DECISIONS:
        raise ValidationError(f"处理结果应为 accept（认可）或 charge_back（追回），不是 {decision}",
                              detail=f"decision must be one of {DECISIONS}")
    role = getattr(actor, "role", None)
    if role not in ("supervisor", "admin"):
        raise PermissionDeniedError("对账处理需要主管或管理员", detail=f"role {role!r} may not decide reconciliation")
    with app.db.session() as s:
        f = s.get(DistrictFlag, flag_id)
        if f is None:
            raise NotFoundError(f"没有编号为 {flag_id} 的对账记录", detail=f"flag {flag_id!r} not found")
        previous = f.decision
        f.decision, f.decided_by, f.decided_at, f.note = decision, actor.staff_id, utcnow(), (note or None)
        audit.record(s, actor.staff_id, f"reconcile.{decision}", flag_id, resident_id=f.resident_id,
                     order_id=f.order_id, order_ids=list(f.order_ids or []), over_fen=f.over_fen, kind=f.kind,
                     note=note, previous=previous)
        return {"flag_id": flag_id, "decision": decision, "decided_by": actor.staff_id,
                "resident_id": f.resident_id, "over_fen": f.over_fen, "previous": previous}
