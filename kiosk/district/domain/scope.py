"""A terminal acts only within its canteen: the checks of a pushed op that is not a sale
(a void, a top-up, a consent, an enrolment, an erasure, what the counter logged).

The terminal reports who did it (the staff id on its rows and in its audit entries);
the server checks that this person may have done it there: an active member of the
terminal's canteen's staff with the role's permission (kiosk.db.permissions), on that
canteen's own orders, with amounts within the README's Limits. Each effect must come
with the audit entry the counter's service writes for it, and an audit entry must
describe an effect of its op or be one of the counter's own notes (a login, a wrong
PIN, a misidentified face, an export). What does not hold is a ``Problem``
(kiosk.district.domain.derive): the op waits in the quarantine list, never applied."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.db import rowcodec
from kiosk.db.models import CanteenStaff, FaceConsent, FaceTemplate, LedgerEntry, Order, OrderVoid, Resident, Staff
from kiosk.db.permissions import PERMISSION_ZH, PERMISSIONS, ROLE_ZH
from kiosk.district.domain.derive import Problem
from kiosk.money import TOPUP_MAX_FEN, fen_to_yuan
from kiosk.services.template_refresh import REFRESH_SOURCE

# what a terminal's op other than a sale may carry
TABLES = {"order_voids", "ledger_entries", "face_consents", "face_templates", "audit_log", "meal_bookings"}
METAS = {"order.void", "account.topup", "faces.enroll", "faces.remove", "faces.erase", "booking.set"}
# audit actions the counter writes that describe an effect of the same op
EFFECT_ACTIONS = {"order.void", "account.topup", "consent.record", "enroll.templates",
                  "enroll.duplicate_override", "resident.erase_faces", "face.template_refresh",
                  "meal.book", "meal.cancel"}
# audit actions the counter writes on their own (nothing changes at the server)
NOTE_ACTIONS = {"staff.login", "staff.pin_wrong", "staff.pin_locked", "staff.pin_rehash",
                "face.misidentified", "orders.export"}

def row_of(s: Session, model, key):
    """``session.get`` for a key a terminal sent: None unless it is text of a sane length."""
    if not isinstance(key, str) or not key or len(key) > 200:
        return None
    return s.get(model, key)


def on_canteen_staff(s: Session, canteen_id: str, st: Staff) -> bool:
    """Is ``st`` on the canteen's staff list (``canteen_staff``, the list whose PIN hashes
    reach its terminals)?"""
    return s.get(CanteenStaff, (canteen_id, st.id)) is not None


def staff_problem(s: Session, canteen_id: str, staff_id, permission: str) -> Problem | None:
    what = PERMISSION_ZH.get(permission, permission)
    st = row_of(s, Staff, staff_id)
    if st is None:
        return Problem(f"「{what}」的经办人 {staff_id!r} 不是登记的工作人员")
    if not st.active:
        return Problem(f"「{what}」的经办人 {st.id} 已停用")
    if permission not in PERMISSIONS.get(st.role, frozenset()):
        return Problem(f"「{what}」的经办人 {st.id}（{ROLE_ZH.get(st.role, st.role)}）没有这项权限")
    if not on_canteen_staff(s, canteen_id, st):
        return Problem(f"「{what}」的经办人 {st.id} 不是食堂 {canteen_id} 的工作人员")
    return None


def check_op(s: Session, canteen_id: str, payload: dict) -> list[Problem]:
    """The problems of an op that is not a sale, pushed by a terminal of ``canteen_id``."""
    rows = payload.get("rows") or {}
    metas = payload.get("ops") or []
    deleted = payload.get("deleted") or {}
    if not isinstance(rows, dict) or not isinstance(metas, list) or not isinstance(deleted, dict) \
            or not all(isinstance(v, list) for v in rows.values()) or not all(isinstance(m, dict) for m in metas):
        return [Problem("上传的数据格式不对", True)]
    out: list[Problem] = []
    extra = sorted(set(rows) - TABLES)
    if extra:
        out.append(Problem(f"终端不能上传这些记录：{'、'.join(extra)}", True))
    odd = sorted({str(m.get("kind")) for m in metas} - METAS)
    if odd:
        out.append(Problem(f"终端不能上传这些操作：{'、'.join(odd)}", True))
    if set(deleted) - {"face_templates"}:
        out.append(Problem(f"终端不能删除这些记录：{'、'.join(sorted(set(deleted) - {'face_templates'}))}", True))
    if out:
        return out

    audits = []
    for a in rows.get("audit_log", []):
        if not isinstance(a, dict):
            return [Problem("审计记录格式不对", True)]
        audits.append(a)
    used: set[int] = set()

    def audit_for(action: str, subject, actor) -> bool:
        for i, a in enumerate(audits):
            if i not in used and a.get("action") == action and str(a.get("subject")) == str(subject) \
                    and str(a.get("actor")) == str(actor):
                used.add(i)
                return True
        return False

    def need(staff_id, permission: str, action: str, subject) -> None:
        p = staff_problem(s, canteen_id, staff_id, permission)
        if p is not None:
            out.append(p)
        if not audit_for(action, subject, staff_id):
            out.append(Problem(f"「{PERMISSION_ZH.get(permission, permission)}」（{subject}）没有经办人 {staff_id} "
                               f"的操作记录"))

    erased = {str(m.get("resident_id")) for m in metas if m.get("kind") == "faces.erase"}
    voids = [rowcodec.load(OrderVoid, v) for v in rows.get("order_voids", [])]
    voided = {}
    for v in voids:
        o = row_of(s, Order, v.get("order_id"))
        if o is None:
            out.append(Problem(f"作废的订单 {v.get('order_id')!r} 在服务器上不存在"))
            continue
        voided[o.id] = o
        if o.canteen_id != canteen_id:
            out.append(Problem(f"订单 {o.id} 是食堂 {o.canteen_id} 的，本终端属于食堂 {canteen_id}，不能作废"))
        need(v.get("staff_id"), "order.void", "order.void", o.id)

    for e in rows.get("ledger_entries", []):
        d = rowcodec.load(LedgerEntry, e)
        kind, amount = d.get("kind"), d.get("amount_fen")
        if kind == "reversal" and d.get("order_id") in voided:
            o = voided[d["order_id"]]
            bal = o.pay_method == "balance"
            if (amount != (o.to_pay_fen if bal else -o.to_pay_fen) or bool(d.get("affects_balance")) != bal
                    or d.get("resident_id") != o.resident_id):
                out.append(Problem(f"作废订单 {o.id} 的退款 {fen_to_yuan(abs(amount or 0))} 元与订单的应付 "
                                   f"{fen_to_yuan(o.to_pay_fen)} 元不符", True))
            continue
        if kind != "topup" or d.get("order_id") is not None:
            out.append(Problem(f"终端不能单独上传「{kind}」账目", True))
            continue
        if not (isinstance(amount, int) and not isinstance(amount, bool) and 1 <= amount <= TOPUP_MAX_FEN) \
                or d.get("affects_balance") is not True:
            shown = f"{amount / 100:.2f}" if isinstance(amount, int) else repr(amount)
            out.append(Problem(f"充值金额 {shown} 元超出范围（每次 0.01 至 {fen_to_yuan(TOPUP_MAX_FEN)} 元）", True))
        r = row_of(s, Resident, d.get("resident_id"))
        if r is None:
            out.append(Problem(f"充值的居民 {d.get('resident_id')!r} 不存在"))
        elif r.status != "active":
            out.append(Problem(f"充值的居民 {r.id} 的账户状态为 {r.status}"))
        need(d.get("staff_id"), "account.topup", "account.topup", d.get("resident_id"))

    for c in rows.get("face_consents", []):
        d = rowcodec.load(FaceConsent, c)
        rid = d.get("resident_id")
        existing = row_of(s, FaceConsent, d.get("id"))
        if existing is not None:         # an existing consent changes only by its withdrawal at an erasure
            if existing.resident_id != rid or rid not in erased or d.get("withdrawn_at") is None:
                out.append(Problem(f"人脸授权 {d.get('id')} 只能在删除人脸数据时撤回"))
            continue
        r = row_of(s, Resident, rid)
        if r is None or r.status == "erased":
            out.append(Problem(f"人脸授权的居民 {rid!r} 不存在或已注销"))
        need(d.get("staff_id"), "face.consent", "consent.record", rid)

    enrolled: set[str] = set()
    by_staff: set[str] = set()          # residents with templates enrolled by staff (not only refreshed)
    for t in rows.get("face_templates", []):
        if not isinstance(t, dict):
            return [Problem("人脸模板格式不对", True)]
        enrolled.add(str(t.get("resident_id")))
        if t.get("source") != REFRESH_SOURCE:
            by_staff.add(str(t.get("resident_id")))
    for rid in sorted(enrolled):
        if rid not in by_staff:         # a template that ages with the elder: the system's, on the elder's consent
            i = next((i for i, a in enumerate(audits) if i not in used and a.get("action") == "face.template_refresh"
                      and str(a.get("subject")) == rid), None)
            if i is None:
                out.append(Problem(f"居民 {rid} 的更新人脸模板没有对应的更新记录"))
            else:
                used.add(i)
            continue
        a = next((a for i, a in enumerate(audits) if i not in used and a.get("action") == "enroll.templates"
                  and str(a.get("subject")) == rid), None)
        need(a.get("actor") if a else None, "face.enroll", "enroll.templates", rid)
    gone = [str(x) for x in deleted.get("face_templates", [])]
    gone += [str(x) for m in metas if m.get("kind") == "faces.remove" for x in (m.get("template_ids") or [])]
    if gone:
        found = s.execute(select(FaceTemplate.resident_id, FaceTemplate.source).where(FaceTemplate.id.in_(gone))).all()
        owners = {r for r, _ in found}
        if owners - enrolled:
            out.append(Problem(f"删除了不在本次采集中的居民的人脸模板：{'、'.join(sorted(owners - enrolled))}"))
        if any(r not in by_staff and src != REFRESH_SOURCE for r, src in found):
            out.append(Problem("模板更新只能替换更新过的模板，不能删除登记时采集的模板"))
    for rid in sorted(erased):
        a = next((a for i, a in enumerate(audits) if i not in used and a.get("action") == "resident.erase_faces"
                  and str(a.get("subject")) == rid), None)
        need(a.get("actor") if a else None, "face.erase", "resident.erase_faces", rid)

    for b in rows.get("meal_bookings", []):      # 报餐/报停: the elder at the counter ("kiosk") or its staff
        if not isinstance(b, dict):
            return [Problem("报餐记录格式不对", True)]
        rid, action = b.get("resident_id"), "meal.cancel" if b.get("cancelled") else "meal.book"
        r = row_of(s, Resident, rid)
        if r is None or r.status == "erased":
            out.append(Problem(f"报餐的居民 {rid!r} 不存在或已注销", True))
        if b.get("canteen_id") != canteen_id:
            out.append(Problem(f"报餐的食堂 {b.get('canteen_id')!r} 不是本终端的食堂 {canteen_id}", True))
        a = next((a for i, a in enumerate(audits) if i not in used and a.get("action") == action
                  and str(a.get("subject")) == str(rid)), None)
        actor = a.get("actor") if a else None
        if actor == "kiosk":
            audit_for(action, rid, "kiosk")
        else:
            need(actor, "meal.book", action, rid)

    for i, a in enumerate(audits):
        if i in used:
            continue
        action = str(a.get("action"))
        if action == "enroll.duplicate_override" and str(a.get("subject")) in enrolled:
            continue
        if action not in NOTE_ACTIONS:
            out.append(Problem(f"终端上报的操作记录「{a.get('actor')} {action} {a.get('subject')}」没有对应的操作"
                               if action in EFFECT_ACTIONS else
                               f"终端不能上报「{a.get('actor')} {action} {a.get('subject')}」这样的操作记录"))
    return out
