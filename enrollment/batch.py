"""Enrol a resident from photo files (the CLI, the roster import and the staff screen)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import FaceTemplate, Resident
from kiosk.errors import ConsentRequiredError, DuplicateFaceError, ImageError, NotFoundError
from kiosk.db.permissions import require

from kiosk.enrollment.consent import active_consent, record_consent
from kiosk.enrollment.dedupe import check_against_others, check_capture_consistency
from kiosk.enrollment.ports import EnrolmentContext


@dataclass
class EnrollReport:
    resident_id: str
    enrolled: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    templates_total: int = 0
    duplicate_of: str | None = None

    def to_json(self) -> dict:
        d = {"resident_id": self.resident_id, "enrolled": self.enrolled, "refused": self.refused,
             "templates_total": self.templates_total}
        if self.duplicate_of:
            d["duplicate_of"] = self.duplicate_of
        return d


@dataclass
class Prepared:
    image: str
    embedding: np.ndarray
    crop: np.ndarray
    quality: float


def prepare_images(app: EnrolmentContext, paths: list[str | Path], report: EnrollReport) -> list[Prepared]:
    """Detect, check quality and embed each photo; refusals go into the report."""
    out: list[Prepared] = []
    for p in paths:
        try:
            obs = app.faces.observe_file(p)
        except ImageError as exc:
            report.refused.append({"image": str(p), "reason": "error", "message": exc.user_message})
            continue
        if obs.primary is None:
            report.refused.append({"image": str(p), "reason": "no_face", "message": "照片里没有找到人脸"})
            continue
        if obs.embedding is None:
            q = obs.quality
            report.refused.append({"image": str(p), "reason": "low_quality",
                                   "reasons": list(q.reasons) if q else [],
                                   "message": (q.hint if q else None) or "照片质量不够"})
            continue
        out.append(Prepared(str(p), obs.embedding, obs.aligned, obs.quality.score if obs.quality else 0.0))
    return out


def enroll_prepared(app: EnrolmentContext, session: Session, resident_id: str, prepared: list[Prepared],
                    report: EnrollReport, *, staff_id: str = "system",
                    override_reason: str | None = None, source: str = "enroll") -> EnrollReport:
    """Duplicate and consistency checks, then the templates. Raises DuplicateFaceError
    (nothing stored) unless a supervisor override is given."""
    faces = app.faces
    consent = active_consent(session, resident_id)
    if consent is None:
        raise ConsentRequiredError(f"居民 {resident_id} 没有人脸授权记录，不能采集人脸（可以用助老卡就餐）",
                                   detail=f"no active face consent for {resident_id}; pass --consent self|guardian")
    best_other = []
    for item in prepared:
        cands = faces.search(item.embedding)
        verdict = check_against_others(cands, resident_id, faces.duplicate_threshold)
        others = [c for c in cands if c.resident_id != resident_id]
        best_other.append(others[0] if others else None)
        if not verdict.ok and not override_reason:
            _raise_duplicate(session, resident_id, verdict.other_resident_id, verdict.score, item.image)
        if not verdict.ok:
            audit.record(session, staff_id, "enroll.duplicate_override", resident_id,
                         other_resident_id=verdict.other_resident_id, score=verdict.score,
                         reason=override_reason, image=item.image)
    consistency = check_capture_consistency([p.embedding for p in prepared], best_other)
    if not consistency.ok and not override_reason:
        _raise_duplicate(session, resident_id, consistency.other_resident_id, consistency.score,
                         None, inconsistent=True)
    keep_crop = bool(consent.allows_crop)
    for item in prepared:
        t = faces.add_template(session, resident_id, item.embedding,
                               crop=item.crop if keep_crop else None, quality=item.quality, source=source)
        report.enrolled.append({"image": item.image, "template_id": t.id, "quality": round(item.quality, 3)})
    rotate_templates(app, session, resident_id)
    report.templates_total = faces.template_count(session, resident_id)
    if report.enrolled:
        audit.record(session, staff_id, "enroll.templates", resident_id, count=len(report.enrolled),
                     source=source, contract=faces.contract_id)
    return report


def rotate_templates(app: EnrolmentContext, session: Session, resident_id: str) -> None:
    """Keep at most max_templates_per_resident; the oldest go first."""
    limit = app.settings.max_templates_per_resident
    rows = session.scalars(select(FaceTemplate.id).where(
        FaceTemplate.resident_id == resident_id, FaceTemplate.contract_id == app.faces.contract_id)
        .order_by(FaceTemplate.created_at.desc(), FaceTemplate.id)).all()
    if len(rows) > limit:
        app.faces.remove_templates(session, list(rows[limit:]))


def _raise_duplicate(session: Session, resident_id: str, other_id: str | None, score: float | None,
                     image: str | None, inconsistent: bool = False) -> None:
    other = session.get(Resident, other_id) if other_id else None
    name = other.name if other else "?"
    what = "这组照片更像另一位居民" if inconsistent else "这张脸已登记在另一位居民名下"
    raise DuplicateFaceError(
        f"{what}：{other_id}（{name}），相似度 {score:.2f}。如确认无误，请主管授权后重试。",
        detail=f"{'inconsistent capture' if inconsistent else 'duplicate'} for {resident_id}: "
               f"{other_id} score={score:.4f} image={image}",
        other_resident_id=other_id, other_name=name, score=score)


def check_people(session: Session, resident_id: str, actor, *, consent: bool,
                 override_reason: str | None, override_by) -> tuple[str, str | None]:
    """The resident exists; the acting staff (proven by PIN) may enrol and, with a
    consent, record it; an override needs a supervisor or admin (``override_by``, or
    the actor when that role is theirs). Returns (staff id, overriding staff id)."""
    resident = session.get(Resident, resident_id)
    if resident is None or resident.status == "erased":
        raise NotFoundError(f"没有编号为 {resident_id} 的居民，请先导入花名册",
                            detail=f"resident {resident_id!r} not found")
    staff_id = require(session, actor, "face.consent" if consent else "face.enroll").id
    sup = None
    if override_reason:
        sup = require(session, override_by if override_by is not None else actor, "face.override").id
    return staff_id, sup


def enroll_files(app: EnrolmentContext, resident_id: str, paths: list[str | Path], *, consent: str | None = None,
                 actor=None, guardian_name: str | None = None,
                 allows_crop: bool = False, override_reason: str | None = None,
                 override_by=None, source: str = "enroll") -> EnrollReport:
    """Consent (when given), then the templates in one unit of work: no template is
    stored when any photo is refused as a duplicate. ``actor`` / ``override_by``:
    staff proven by PIN (kiosk.services.auth.StaffAuth.verify; checked by kiosk.db.permissions.require)."""
    report = EnrollReport(resident_id)
    with app.db.session() as session:
        staff_id, sup = check_people(session, resident_id, actor, consent=bool(consent),
                                     override_reason=override_reason, override_by=override_by)
        if consent:
            # the signed consent is a fact of its own: it stays even if the photos are refused
            record_consent(session, resident_id, consent, staff_id, guardian_name=guardian_name,
                           allows_crop=allows_crop)
    actor = sup or staff_id
    try:
        with app.db.session() as session:
            if active_consent(session, resident_id) is None:
                raise ConsentRequiredError(
                    f"居民 {resident_id} 没有人脸授权记录，不能采集人脸。请先签署授权书，再用 --consent self|guardian --staff 工号 登记",
                    detail=f"no face consent on record for {resident_id} and no --consent given")
            prepared = prepare_images(app, paths, report)
            if prepared:
                enroll_prepared(app, session, resident_id, prepared, report, staff_id=actor,
                                override_reason=override_reason, source=source)
            else:
                report.templates_total = app.faces.template_count(session, resident_id)
    except BaseException:
        app.faces.rebuild_later()   # the in-memory gallery may hold templates that were rolled back
        raise
    app.faces.save_index()
    return report
