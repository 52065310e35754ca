"""Separate consent for face data (PIPL art. 28). No consent, no template."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.db.models import FaceConsent
from kiosk.errors import ValidationError
from kiosk.services import audit

CONSENT_TEXT_VERSION = "face-consent-2026.1"
GIVERS = ("self", "guardian")


def active_consent(session: Session, resident_id: str) -> FaceConsent | None:
    return session.scalars(select(FaceConsent).where(
        FaceConsent.resident_id == resident_id, FaceConsent.withdrawn_at.is_(None))
        .order_by(FaceConsent.created_at.desc())).first()


def record_consent(session: Session, resident_id: str, given_by: str, staff_id: str, *,
                   guardian_name: str | None = None, allows_crop: bool = False,
                   source: str = "desk", text_version: str = CONSENT_TEXT_VERSION) -> FaceConsent:
    if given_by not in GIVERS:
        raise ValidationError(f"授权人只能是本人（self）或监护人（guardian），不是 {given_by}",
                              detail=f"consent given_by must be one of {GIVERS}, got {given_by!r}")
    c = FaceConsent(resident_id=resident_id, given_by=given_by, guardian_name=guardian_name,
                    staff_id=staff_id, text_version=text_version, allows_crop=allows_crop, source=source)
    session.add(c)
    audit.record(session, staff_id, "consent.record", resident_id, given_by=given_by,
                 source=source, text_version=text_version, allows_crop=allows_crop)
    return c
