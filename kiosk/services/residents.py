"""Residents, staff and the non-face ways to find a resident."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..db.models import FaceConsent, FaceTemplate, Resident, Staff
from ..errors import NotFoundError, PermissionDeniedError, ValidationError
from ..timeutil import age_on, now_cst, to_cst
from . import audit
from .security import hash_pin, verify_pin

ROLES = ("staff", "supervisor", "admin")
MAX_PIN_FAILURES = 5       # wrong PINs in a row before staff login locks ...
PIN_LOCK_S = 300.0         # ... for this long (the public can reach the staff button)
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class ResidentCard:
    """What the kiosk may show about a resident (no ID number)."""

    resident_id: str
    name: str
    sex: str | None
    age: int | None
    categories: tuple[str, ...]
    diet_tags: tuple[str, ...]
    allergies: tuple[str, ...]

    @property
    def honorific(self) -> str:
        return {"女": "阿姨", "男": "叔叔"}.get(self.sex or "", "")


def card_of(r: Resident, when: datetime | None = None) -> ResidentCard:
    day = to_cst(when or now_cst()).date()
    return ResidentCard(r.id, r.name, r.sex, age_on(r.birth_date, day) if r.birth_date else None,
                        tuple(r.categories or []), tuple(r.diet_tags or []), tuple(r.allergies or []))


class ResidentService:
    def __init__(self, app) -> None:
        self.app = app
        self._pin_failures = 0
        self._locked_until = 0.0

    def get(self, resident_id: str) -> ResidentCard:
        with self.app.db.session() as s:
            r = s.get(Resident, resident_id)
            if r is None or r.status == "erased":
                raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r} not found")
            return card_of(r)

    def show(self, resident_id: str, *, at: datetime | None = None) -> dict:
        with self.app.db.session() as s:
            r = s.get(Resident, resident_id)
            if r is None:
                raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r} not found")
            c = card_of(r, at)
            n_templates = len(s.scalars(select(FaceTemplate.id).where(FaceTemplate.resident_id == r.id)).all())
            consent = s.scalars(select(FaceConsent).where(FaceConsent.resident_id == r.id,
                                                          FaceConsent.withdrawn_at.is_(None))).first()
            info = {"resident_id": r.id, "name": r.name, "sex": r.sex, "age": c.age,
                    "birth_date": r.birth_date.isoformat() if r.birth_date else None, "hukou": r.hukou,
                    "categories": list(r.categories or []), "diet_tags": list(r.diet_tags or []),
                    "allergies": list(r.allergies or []), "card_no": r.card_no, "phone": r.phone,
                    "status": r.status, "face_templates": n_templates, "face_consent": consent is not None}
        summary = self.app.billing.today_summary(resident_id, at=at, meal="午餐")
        info.update({"tier": summary["tier"], "subsidy_fen": summary["subsidy_fen"],
                     "subsidy_reason": summary["reason"], "month_left_fen": summary["month_left_fen"],
                     "balance_fen": summary["balance_fen"]})
        return info

    def by_card(self, card_no: str) -> ResidentCard:
        with self.app.db.session() as s:
            r = s.scalars(select(Resident).where(Resident.card_no == card_no.strip(),
                                                 Resident.status == "active")).first()
            if r is None:
                raise NotFoundError("没有找到这张助老卡，请找工作人员", detail=f"card {card_no!r} not found")
            return card_of(r)

    def by_phone_last4(self, last4: str) -> list[ResidentCard]:
        last4 = last4.strip()
        if len(last4) != 4 or not last4.isdigit():
            raise ValidationError("请输入手机号后四位数字", detail=f"bad last4 {last4!r}")
        with self.app.db.session() as s:
            rows = s.scalars(select(Resident).where(Resident.phone.like(f"%{last4}"),
                                                    Resident.status == "active").order_by(Resident.name)).all()
            return [card_of(r) for r in rows[:8]]

    def erase_faces(self, resident_id: str, staff_id: str) -> dict:
        """Erase face data at once: templates, crops, index entries; consent is withdrawn.
        Orders and the ledger stay, with the resident id and no face data."""
        with self.app.db.session() as s:
            st = s.get(Staff, staff_id)
            if st is None:
                raise NotFoundError(f"没有工号为 {staff_id} 的工作人员", detail=f"staff {staff_id!r} not found")
            r = s.get(Resident, resident_id)
            if r is None:
                raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r} not found")
            n = self.app.faces.erase_resident_faces(s, resident_id)
            for c in s.scalars(select(FaceConsent).where(FaceConsent.resident_id == resident_id,
                                                         FaceConsent.withdrawn_at.is_(None))):
                c.withdrawn_at = now_cst()
            audit.record(s, staff_id, "resident.erase_faces", resident_id, templates=n)
        self.app.faces.save_index()
        return {"resident_id": resident_id, "templates_removed": n, "erased": True}

    # -- staff ---------------------------------------------------------------------------
    def add_staff(self, staff_id: str, name: str, role: str, pin: str, *, actor: str = "system") -> dict:
        if role not in ROLES:
            raise ValidationError(f"角色应为 {'/'.join(ROLES)}", detail=f"role {role!r}")
        if not (pin.isdigit() and 4 <= len(pin) <= 8):
            raise ValidationError("PIN 应为4到8位数字", detail="pin must be 4-8 digits")
        with self.app.db.session() as s:
            existing = s.get(Staff, staff_id)
            if existing:
                existing.name, existing.role, existing.pin_hash, existing.active = name, role, hash_pin(pin), True
                action = "staff.update"
            else:
                s.add(Staff(id=staff_id, name=name, role=role, pin_hash=hash_pin(pin)))
                action = "staff.add"
            audit.record(s, actor, action, staff_id, role=role)
        return {"staff_id": staff_id, "name": name, "role": role}

    def authenticate(self, pin: str, *, min_role: str = "staff", staff_id: str | None = None,
                     clock=time.monotonic) -> dict:
        """Find the active staff member with this PIN (and at least ``min_role``).
        After MAX_PIN_FAILURES wrong PINs, logins are refused for PIN_LOCK_S."""
        now = clock()
        if now < self._locked_until:
            raise PermissionDeniedError(f"PIN 错误次数过多，请 {int(self._locked_until - now) // 60 + 1} 分钟后再试",
                                        detail="staff login locked after repeated wrong PINs")
        with self.app.db.session() as s:
            q = select(Staff).where(Staff.active.is_(True))
            if staff_id:
                q = q.where(Staff.id == staff_id)
            for st in s.scalars(q):
                if verify_pin(pin, st.pin_hash):
                    if ROLE_RANK[st.role] < ROLE_RANK[min_role]:
                        raise PermissionDeniedError(f"需要{ {'supervisor': '主管', 'admin': '管理员'}.get(min_role, '工作人员') }权限",
                                                    detail=f"{st.id} is {st.role}, needs {min_role}")
                    audit.record(s, st.id, "staff.login", None, min_role=min_role)
                    self._pin_failures = 0
                    return {"staff_id": st.id, "name": st.name, "role": st.role}
            self._pin_failures += 1
            if self._pin_failures >= MAX_PIN_FAILURES:
                self._locked_until, self._pin_failures = now + PIN_LOCK_S, 0
                audit.record(s, "kiosk", "staff.login_locked", None, seconds=PIN_LOCK_S)
        raise PermissionDeniedError("PIN 不正确", detail="no active staff with that PIN")
