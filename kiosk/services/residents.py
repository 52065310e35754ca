"""Residents, staff and the non-face ways to find a resident."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from kiosk.db import audit
from kiosk.db.models import FaceConsent, FaceTemplate, Resident
from kiosk.db.permissions import require
from kiosk.errors import NotFoundError, ValidationError
from kiosk.timeutil import age_on, now_cst, to_cst


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
        from kiosk.billing.offline import blocked_card
        from kiosk.errors import BlockedCardError
        from kiosk.services.offline_limits import current_limits

        with self.app.db.session() as s:
            if blocked_card(current_limits(s), card_no):      # 挂失: the district's list, at every terminal
                raise BlockedCardError(detail=f"card {card_no.strip()[:64]!r} is on the district's blocked list")
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

    def erase_faces(self, resident_id: str, actor) -> dict:
        """Erase face data at once: templates, crops, index entries; consent is withdrawn
        (enrolling again needs a new consent). ``actor``: a supervisor or admin proven by
        PIN (kiosk.services.auth). Orders and the ledger stay, with the resident id.

        Every running process of the store stops matching within GALLERY_CHECK_S (the
        gallery counter), the index file is rewritten from the store, and on SQLite the
        deleted bytes are overwritten (secure_delete) and the WAL truncated."""
        with self.app.db.session(write_lock=True) as s:
            st = require(s, actor, "face.erase")
            r = s.execute(select(Resident).where(Resident.id == resident_id).with_for_update()).scalar_one_or_none()
            if r is None:
                raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r} not found")
            n = self.app.faces.erase_resident_faces(s, resident_id)
            withdrawn = 0
            for c in s.scalars(select(FaceConsent).where(FaceConsent.resident_id == resident_id,
                                                         FaceConsent.withdrawn_at.is_(None))):
                c.withdrawn_at = now_cst()
                withdrawn += 1
            audit.record(s, st.id, "resident.erase_faces", resident_id, templates=n, consents_withdrawn=withdrawn)
        self.app.faces.purge_index()
        scrub = self.app.db.scrub()
        return {"resident_id": resident_id, "templates_removed": n, "erased": True,
                "consents_withdrawn": withdrawn, "wal_truncated": scrub["wal_truncated"]}

    # -- staff (kiosk.services.auth holds the rules) ---------------------------------------
    def add_staff(self, staff_id: str, name: str, role: str, pin: str, *, actor=None) -> dict:
        return self.app.auth.add_staff(staff_id, name, role, pin, actor=actor)

    def authenticate(self, pin: str, *, min_role: str = "staff", staff_id: str | None = None) -> dict:
        """The staff screen's PIN login (or, with ``staff_id``, that staff member's PIN),
        at least ``min_role``. The dict's ``actor`` is the proven staff member to pass
        to the services that change money, consent, faces or staff."""
        if staff_id:
            actor = self.app.auth.verify(staff_id, pin, min_role=min_role)
        else:
            actor = self.app.auth.login(pin, min_role=min_role)
        return {**actor.to_dict(), "actor": actor}
