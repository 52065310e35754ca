"""Reconciliation: the orders recorded as served that broke a district-wide limit
(flagged when a terminal pushed them), for the district office to accept or charge
back. The decision is recorded on the flag and in the audit log by a supervisor or
admin proven by PIN."""
from __future__ import annotations

from sqlalchemy import select

from kiosk.db.models import (FLAG_KINDS_BALANCE, FLAG_KINDS_SUBSIDY, DistrictFlag, Order, PushedOrder, Resident,
                             Terminal, utcnow)
from kiosk.errors import NotFoundError, PermissionDeniedError, ValidationError
from kiosk.db import audit
from kiosk.timeutil import CST, month_bounds, parse_month

DECISIONS = ("accept", "charge_back")
# the two lists of the reconciliation, apart: each has its own total and its own decision words
SUBSIDY, BALANCE = "subsidy_excess", "balance_overdraft"
GROUP_OF = {**{k: SUBSIDY for k in FLAG_KINDS_SUBSIDY}, **{k: BALANCE for k in FLAG_KINDS_BALANCE}}
GROUP_ZH = {SUBSIDY: "超出补贴", BALANCE: "余额透支"}
AMOUNT_ZH = {SUBSIDY: "超出补贴(元)", BALANCE: "透支金额(元)"}
KIND_ZH = {"daily_meals": "超过每日补贴次数", "monthly_amount": "超过每月补贴额度", "balance": "余额透支",
           "resident_status": "状态日期后就餐（暂停/迁出/死亡）"}
DECISION_ZH = {
    SUBSIDY: {"accept": "认可（超出的补贴照常报销）", "charge_back": "追回（超出的补贴不予报销）"},
    BALANCE: {"accept": "认可（透支额记为居民欠款，下次充值抵扣）", "charge_back": "追缴（请居民补交透支金额）"},
}


def group_of(kind: str | None) -> str:
    """Which list a flag of ``kind`` belongs to (subsidy excess unless a balance overdraft)."""
    return GROUP_OF.get(kind or "", SUBSIDY)


def decision_zh(kind: str | None, decision: str | None) -> str:
    """The decision's words for a flag of ``kind`` ("待处理" before a decision)."""
    if not decision:
        return "待处理"
    return DECISION_ZH[group_of(kind)].get(decision, decision)


def _iso(d) -> str | None:
    return d.astimezone(CST).isoformat(timespec="seconds") if d else None


def reconcile(app, month: str) -> dict:
    """The month's flags, each with ``group`` (subsidy_excess or balance_overdraft), when
    its order reached the server (``order_received_at``) and its decision's words; the
    totals of the two lists apart (``subsidy_excess``, ``balance_overdraft``), amounts in fen."""
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
            flagged_order = orders.get(f.order_id)
            received = pushed.get(f.order_id)
            out.append({
                "flag_id": f.id, "resident_id": f.resident_id, "name": names.get(f.resident_id),
                "kind": f.kind, "group": group_of(f.kind), "reason": KIND_ZH.get(f.kind, f.kind),
                "meal_date": f.meal_date.isoformat(),
                "order_id": f.order_id, "order_ids": list(f.order_ids or [f.order_id]), "over_fen": f.over_fen,
                "order_terminal_id": flagged_order.terminal_id if flagged_order else None,
                "order_received_at": _iso(received.received_at) if received else None,
                "canteens": sorted({m["canteen_id"] for m in meals}), "meals": meals,
                "terminals": [{"terminal_id": t, "canteen_id": terms[t].canteen_id if t in terms else None,
                               "last_push_at": _iso(terms[t].last_push_at) if t in terms else None,
                               "last_pull_at": _iso(terms[t].last_pull_at) if t in terms else None}
                              for t in tids],
                "flagged_at": _iso(f.created_at), "decision": f.decision,
                "decision_zh": decision_zh(f.kind, f.decision), "decided_by": f.decided_by,
                "decided_at": _iso(f.decided_at), "note": f.note})

    def totals(group: str) -> dict:
        mine = [x for x in out if x["group"] == group]
        return {"label": GROUP_ZH[group], "flags": len(mine), "undecided": sum(1 for x in mine if x["decision"] is None),
                "total_fen": sum(x["over_fen"] for x in mine),
                "accepted_fen": sum(x["over_fen"] for x in mine if x["decision"] == "accept"),
                "charged_back_fen": sum(x["over_fen"] for x in mine if x["decision"] == "charge_back")}

    return {"month": first.strftime("%Y-%m"), "flagged": out,
            SUBSIDY: totals(SUBSIDY), BALANCE: totals(BALANCE),
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
                     order_id=f.order_id, order_ids=list(f.order_ids or []), over_fen=f.over_fen, kind=f.kind, group=group_of(f.kind),
                     note=note, previous=previous)
        return {"flag_id": flag_id, "decision": decision, "decision_zh": decision_zh(f.kind, decision),
                "group": group_of(f.kind), "decided_by": actor.staff_id, "resident_id": f.resident_id,
                "over_fen": f.over_fen, "previous": previous}
