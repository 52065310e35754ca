"""The quarantine list (待核查): the ops terminals pushed that the server did not apply,
each with its reason, for an admin to accept (applied then, exactly once, on the one
apply path: kiosk.district.domain.push.apply_ops, trusting the admin's word over the
server's derivation but never over the README's Limits) or reject (never applied).
Both decisions are audited, by the admin proven by PIN."""
from __future__ import annotations

from sqlalchemy import select

from kiosk.db import audit, changes
from kiosk.db.models import AppliedOp, QuarantinedOp, Resident, Terminal, utcnow
from kiosk.errors import BillingError, NotFoundError, PermissionDeniedError, ValidationError
from kiosk.limits import NOTE_MAX_CHARS, check_text
from kiosk.timeutil import CST

STATUS_ZH = {"waiting": "待核查", "accepted": "已认可入账", "rejected": "已驳回"}
DECISIONS = ("accept", "reject")
# what a terminal's op was (kiosk.db.changes names it: the event, else the table it wrote)
KIND_ZH = {"order.settle": "售餐", "order.void": "作废订单", "account.topup": "充值", "account": "账户变动",
           "faces.enroll": "人脸登记", "consent": "人脸授权", "booking.set": "报餐", "audit": "操作记录",
           "rows": "数据"}


def _iso(d) -> str | None:
    return d.astimezone(CST).isoformat(timespec="seconds") if d else None


def _row(q: QuarantinedOp, names: dict, applied: dict) -> dict:
    return {"op_id": q.op_id, "terminal_id": q.terminal_id, "canteen_id": q.canteen_id, "kind": q.kind,
            "kind_zh": KIND_ZH.get(q.kind, q.kind), "reason": q.reason, "status": q.status, "status_zh": STATUS_ZH.get(q.status, q.status),
            "applicable": applied.get(q.op_id) != "rejected",
            "resident_id": q.resident_id, "name": names.get(q.resident_id), "amount_fen": q.amount_fen,
            "created_at": _iso(q.created_at), "received_at": _iso(q.received_at),
            "decided_by": q.decided_by, "decided_at": _iso(q.decided_at), "note": q.note}


def list_quarantine(app, *, status: str | None = "waiting") -> list[dict]:
    """The list, oldest first (``status``: waiting, accepted, rejected, or None for all).
    ``applicable`` is False for an op that could not be applied as it stood when pushed
    (rejected: malformed or naming what the server lacked); accepting it tries again."""
    if status is not None and status not in STATUS_ZH:
        raise ValidationError(f"状态应为 {'/'.join(STATUS_ZH)}，不是「{status}」", detail=f"status {status!r}")
    with app.db.session(read_only=True) as s:
        q = select(QuarantinedOp).order_by(QuarantinedOp.received_at, QuarantinedOp.op_id)
        if status is not None:
            q = q.where(QuarantinedOp.status == status)
        rows = list(s.scalars(q))
        rids = {r.resident_id for r in rows if r.resident_id}
        names = dict(s.execute(select(Resident.id, Resident.name).where(Resident.id.in_(rids))).all()) if rids else {}
        ids = [r.op_id for r in rows]
        applied = dict(s.execute(select(AppliedOp.op_id, AppliedOp.status).where(AppliedOp.op_id.in_(ids))).all()) \
            if ids else {}
        return [_row(r, names, applied) for r in rows]


def _admin(actor) -> str:
    if getattr(actor, "role", None) != "admin" or not getattr(actor, "staff_id", None):
        raise PermissionDeniedError("待核查的记录只能由管理员处理（认可或驳回）",
                                    detail=f"role {getattr(actor, 'role', None)!r} may not decide quarantined ops")
    return actor.staff_id


def decide(app, op_id: str, decision: str, actor, note: str | None = None) -> dict:
    """An admin's decision on a waiting op. ``accept``: applied now on the push's own path
    (in this transaction, once: the row is locked and must still be waiting); what can
    never be applied (the README's Limits) still refuses it. ``reject``: never applied."""
    from kiosk.district.domain.push import apply_ops
    from kiosk.district.domain.terminals import TerminalIdentity

    if decision not in DECISIONS:
        raise ValidationError(f"处理结果应为 accept（认可）或 reject（驳回），不是 {decision}",
                              detail=f"decision must be one of {DECISIONS}")
    staff_id = _admin(actor)
    check_text(note, NOTE_MAX_CHARS, "备注", "note")
    with app.db.session(write_lock=True) as s:
        s.info[changes.APPLY] = True        # district records touched by hand, as a push does
        q = s.execute(select(QuarantinedOp).where(QuarantinedOp.op_id == op_id).with_for_update()).scalar_one_or_none()
        if q is None:
            raise NotFoundError(f"待核查列表中没有编号为 {op_id} 的记录", detail=f"quarantined op {op_id!r} not found")
        if q.status != "waiting":
            raise BillingError(f"这条记录已经处理过了（{STATUS_ZH.get(q.status, q.status)}，经办 {q.decided_by}）",
                               detail=f"op {op_id} is {q.status}")
        result = None
        if decision == "accept":
            t = s.get(Terminal, q.terminal_id)
            term = TerminalIdentity(q.terminal_id, q.canteen_id, t.name if t is not None else None)
            prev = s.get(AppliedOp, op_id)
            if prev is not None:
                s.delete(prev)
                s.flush()
            result = apply_ops(app, s, term, [q.payload], trusted=True)[0][0]
            if result["status"] != "applied":
                raise BillingError(f"这条记录不能入账：{result.get('error')}。只能驳回",
                                   detail=f"op {op_id} cannot be applied: {result.get('error')}")
        q.status = "accepted" if decision == "accept" else "rejected"
        q.decided_by, q.decided_at, q.note = staff_id, utcnow(), (note or None)
        if decision == "reject":
            a = s.get(AppliedOp, op_id)
            if a is not None:
                a.status = "refused"
        audit.record(s, staff_id, f"quarantine.{decision}", op_id, terminal_id=q.terminal_id,
                     canteen_id=q.canteen_id, kind=q.kind, reason=q.reason, resident_id=q.resident_id,
                     amount_fen=q.amount_fen, note=note or None,
                     flags=[f["flag_id"] for f in (result or {}).get("flags") or []])
        s.flush()
        names = {}
        if q.resident_id:
            r = s.get(Resident, q.resident_id)
            names = {r.id: r.name} if r is not None else {}
        out = _row(q, names, {})
        out["flags"] = (result or {}).get("flags") or []
        return out
