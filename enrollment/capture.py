"""Guided capture from the camera: a frontal, a little-left and a little-right
frame, each through the quality gate. Qt-free; the staff screen feeds it frames."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session

from kiosk.errors import ConsentRequiredError, NotFoundError
from kiosk.db.models import Resident

from kiosk.enrollment.batch import EnrollReport, Prepared, check_people, enroll_prepared
from kiosk.enrollment.consent import active_consent, record_consent
from kiosk.enrollment.ports import EnrolmentContext

# (name, yaw range, spoken request); yaw is the landmark proxy of kiosk.vision.quality
POSES = (("frontal", (-0.12, 0.12), "请正对屏幕"),
         ("left", (0.12, 0.45), "请稍微向左转头"),
         ("right", (-0.45, -0.12), "请稍微向右转头"))


@dataclass
class CaptureSession:
    """Collects one good frame per pose. ``offer`` returns what to tell the person."""

    taken: dict[str, Prepared] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    @property
    def next_pose(self) -> tuple[str, tuple[float, float], str] | None:
        for p in POSES:
            if p[0] not in self.taken:
                return p
        return None

    @property
    def done(self) -> bool:
        return self.next_pose is None

    def offer(self, embedding: np.ndarray | None, crop: np.ndarray | None, quality_ok: bool,
              quality_score: float, yaw: float, hint: str | None) -> str | None:
        """Take the frame if it is good and shows the pose asked for; the prompt to say next."""
        pose = self.next_pose
        if pose is None:
            return None
        if not quality_ok or embedding is None:
            if hint:
                self.refused.append(hint)
            return hint or pose[2]
        lo, hi = pose[1]
        if not (lo <= yaw <= hi):
            return pose[2]
        self.taken[pose[0]] = Prepared(f"camera:{pose[0]}", embedding, crop, quality_score)
        nxt = self.next_pose
        return nxt[2] if nxt else "采集完成"


def enroll_captured(app: EnrolmentContext, resident_id: str, session_: CaptureSession, actor, *,
                    consent: str | None = None, allows_crop: bool = False,
                    override_reason: str | None = None, override_by=None) -> EnrollReport:
    """``actor`` / ``override_by``: staff proven by PIN (kiosk.services.auth)."""
    report = EnrollReport(resident_id)
    with app.db.session() as s:
        _require(s, resident_id)
        staff_id, override_staff = check_people(s, resident_id, actor, consent=bool(consent),
                                                override_reason=override_reason, override_by=override_by)
        if consent:
            record_consent(s, resident_id, consent, staff_id, allows_crop=allows_crop, source="kiosk")
    try:
        with app.db.session() as s:
            if active_consent(s, resident_id) is None:
                raise ConsentRequiredError(f"居民 {resident_id} 没有人脸授权，不能采集人脸（可以用助老卡就餐）",
                                           detail="no consent")
            enroll_prepared(app, s, resident_id, list(session_.taken.values()), report,
                            staff_id=override_staff if override_reason else staff_id,
                            override_reason=override_reason, source="enroll")
    except BaseException:
        app.faces.rebuild_later()
        raise
    app.faces.save_index()
    return report


def _require(s: Session, resident_id: str) -> None:
    r = s.get(Resident, resident_id)
    if r is None or r.status == "erased":
        raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r} not found")
