"""Separate consent for face data (PIPL art. 28). No consent, no template."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import FaceConsent
from kiosk.errors import ConsentRequiredError, ValidationError

CONSENT_TEXT_VERSION = "face-consent-2026.1"
GIVERS = ("self", "guardian")


def active_consent(session: Session, resident_id: str) -> FaceConsent | None:
    return session.scalars(select(FaceConsent).where(
        FaceConsent.resident_id == resident_id, FaceConsent.withdrawn_at.is_(None))
        .order_by(FaceConsent.created_at.desc())).first()


def withdrawn_before(session: Session, resident_id: str) -> bool:
    """The resident withdrew a consent before (their face data was erased)."""
    return session.scalar(select(FaceConsent.id).where(
        FaceConsent.resident_id == resident_id, FaceConsent.withdrawn_at.is_not(None)).limit(1)) is not None


def record_consent(session: Session, resident_id: str, given_by: str, staff_id: str, *,
                   guardian_name: str | None = None, allows_crop: bool = False,
                   source: str = "desk", text_version: str = CONSENT_TEXT_VERSION) -> FaceConsent:
    if given_by not in GIVERS:
        raise ValidationError(f"授权人只能是本人（self）或监护人（guardian），不是 {given_by}",
                              detail=f"consent given_by must be one of {GIVERS}, got {given_by!r}")
    if source == "roster" and withdrawn_before(session, resident_id):
        # the roster's 人脸授权 column is the paper form signed long ago; after an erasure
        # only a consent given anew, in person, brings face data back
        raise ConsentRequiredError(
            f"居民 {resident_id} 曾撤回人脸授权（人脸数据已删除），花名册中的授权不能代替新的授权。"
            f"请本人（或监护人）重新签署授权书，由工作人员用 kiosk enroll --consent 登记",
            detail=f"{resident_id} withdrew consent before; a roster row does not renew it")
    c = FaceConsent(resident_id=resident_id, given_by=given_by, guardian_name=guardian_name,
                    staff_id=staff_id, text_version=text_version, allows_crop=allows_crop, source=source)
    session.add(c)
    audit.record(session, staff_id, "consent.record", resident_id, given_by=given_by,
                 source=source, text_version=text_version, allows_crop=allows_crop)
    return c
