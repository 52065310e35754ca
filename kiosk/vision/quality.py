"""Face quality: measurements taken from pixels, then a pure verdict with
stable reason codes and a Chinese hint for the screen and the voice."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.vision.types import Face

# Stable reason codes (logs, tests and the UI rely on them) and their hints.
TOO_SMALL = "too_small"
BLURRY = "blurry"
TOO_DARK = "too_dark"
BACKLIT = "backlit"
POSE = "pose"
MULTIPLE_FACES = "multiple_faces"
LOW_CONFIDENCE = "low_confidence"

HINTS: dict[str, str] = {
    TOO_SMALL: "请靠近一点",
    BLURRY: "请保持不动",
    TOO_DARK: "光线太暗",
    BACKLIT: "光线太暗",
    POSE: "请正对屏幕",
    MULTIPLE_FACES: "请一位一位来",
    LOW_CONFIDENCE: "请看屏幕",
}
# When several reasons hold, the hint of the first in this order is shown.
PRIORITY = (MULTIPLE_FACES, TOO_SMALL, POSE, TOO_DARK, BACKLIT, BLURRY, LOW_CONFIDENCE)


# Two faces whose areas differ by less than this share are "the same size": no rule
# can tell which of them is the customer (detector boxes of one face jitter by a
# few per cent from frame to frame).
SAME_SIZE = 0.05


@dataclass(frozen=True)
class QualityThresholds:
    min_face_px: float = 80.0        # inter-ocular x 2.5 roughly; face box side in pixels
    min_sharpness: float = 40.0      # variance of the Laplacian on a 112-px-wide face
    min_brightness: float = 50.0     # mean grey level of the face (0-255)
    max_backlight_ratio: float = 2.2  # background mean / face mean
    max_yaw: float = 0.35            # nose offset from the eye midline / eye distance
    max_pitch: float = 0.45
    min_det_score: float = 0.6       # SCRFD scores real faces 0.59-0.88 (YuNet 0.9+): 0.75 refused 2 of 28 good insightface frames
    rival_area_ratio: float = 0.6    # a second face this large relative to the first blocks


# Photo files given for enrolment: a template is kept for years, so a soft, dark or
# small face is refused and the staff asked for a better photo. The template is made
# of the largest face; a photo with a second face as large is refused (a template of
# the wrong person would let that person eat on the resident's account).
STILL_THRESHOLDS = QualityThresholds(min_face_px=40.0, min_sharpness=8.0, min_brightness=25.0,
                                     max_backlight_ratio=4.0, max_yaw=0.6, max_pitch=0.7,
                                     min_det_score=0.6, rival_area_ratio=1.0 - SAME_SIZE)

# Photo files given for identification (`kiosk identify`): refuse only a face too
# small to identify. Measured on real photos (docs/calibration.md): faces 28 px tall,
# blurred (sigma 3 px on a 150-px face) or at a fifth of the light mostly still
# reach the calibrated threshold, and their best score against other people
# stayed far below it (sface at most 0.415 against 0.381 for clean photos, threshold
# 0.50; insightface 0.275 against 0.236, threshold 0.45), while the enrolment gate
# above refused them (a 36-px face: every one). Below ~20 px (face box side) genuine
# scores fall under the threshold. A second face as large as the first (areas within
# 5 %, SAME_SIZE) is refused: nobody can tell which of the two is the customer.
IDENTIFY_THRESHOLDS = QualityThresholds(min_face_px=20.0, min_sharpness=0.0, min_brightness=0.0,
                                        max_backlight_ratio=1e9, max_yaw=1.0, max_pitch=1.2,
                                        min_det_score=0.0, rival_area_ratio=1.0 - SAME_SIZE)


@dataclass(frozen=True)
class FaceMeasurements:
    face_px: float
    sharpness: float
    brightness: float
    backlight_ratio: float
    yaw: float
    pitch: float
    det_score: float
    rival_area_ratio: float  # area of the next largest face / this one (0 when alone)


@dataclass(frozen=True)
class QualityReport:
    ok: bool
    score: float                 # 0..1, used to weight votes
    reasons: tuple[str, ...]
    hint: str | None
    measurements: FaceMeasurements


def pose_from_landmarks(lm: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) proxies from the five landmarks; 0 when frontal."""
    lm = np.asarray(lm, dtype=np.float64)
    le, re, nose, lmouth, rmouth = lm
    eye_mid = (le + re) / 2
    mouth_mid = (lmouth + rmouth) / 2
    eye_dist = float(np.linalg.norm(re - le)) or 1.0
    # yaw: horizontal nose offset from the eye-mouth midline, relative to eye distance
    axis_x = (eye_mid[0] + mouth_mid[0]) / 2
    yaw = float((nose[0] - axis_x) / eye_dist)
    # pitch: where the nose sits between eyes and mouth (0.5 ~ frontal)
    span = float(mouth_mid[1] - eye_mid[1]) or 1.0
    pitch = float((nose[1] - eye_mid[1]) / span - 0.55) * 2
    return yaw, pitch


def primary_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The customer: the largest face (the one nearest the image centre only when
    two are exactly as large).

    At a counter the customer stands closest to the camera, so their face is the
    largest; the next in the queue, a carer behind them or a face on a poster is
    smaller. Size decides, not position: a smaller face in the centre never takes
    the place of a larger one beside it (before issue 9 the area was weighted by
    the distance from the centre, and a smaller central face won). Every other
    face is ignored: it is never embedded or matched. When another face is nearly
    as large, ``assess`` refuses the frame or photo with ``multiple_faces``
    (请一位一位来) rather than guess: live frames at 60 % of the area
    (``QualityThresholds.rival_area_ratio``), photos given to ``kiosk identify``
    or for enrolment at ``1 - SAME_SIZE`` (``IDENTIFY_THRESHOLDS``,
    ``STILL_THRESHOLDS``). README: "Several faces in front of the camera"."""
    if not faces:
        return None
    h, w = image_shape[:2]
    cx, cy = w / 2, h / 2
    return max(faces, key=lambda f: (f.area, -((f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)))


def measure(img: np.ndarray, face: Face, others: list[Face] | None = None) -> FaceMeasurements:
    h, w = img.shape[:2]
    x, y, fw, fh = face.bbox
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, int(x + fw)), min(h, int(y + fh))
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    roi = gray[y0:y1, x0:x1]
    if roi.size == 0:
        sharp, bright = 0.0, 0.0
    else:
        scale = 112.0 / max(1, roi.shape[1])
        small = cv2.resize(roi, (112, max(1, int(roi.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        sharp = float(cv2.Laplacian(small, cv2.CV_64F).var())
        bright = float(roi.mean())
    # background: a band around the face box
    pad = int(max(fw, fh) * 0.6)
    bx0, by0 = max(0, x0 - pad), max(0, y0 - pad)
    bx1, by1 = min(w, x1 + pad), min(h, y1 + pad)
    band = gray[by0:by1, bx0:bx1].astype(np.float64)
    if band.size and roi.size:
        total = band.sum() - roi.astype(np.float64).sum()
        n = band.size - roi.size
        bg = total / n if n > 0 else bright
    else:
        bg = bright
    backlight = float(bg / max(bright, 1.0))
    yaw, pitch = pose_from_landmarks(face.landmarks)
    rival = 0.0
    for o in others or []:
        if o is not face and face.area > 0:
            rival = max(rival, o.area / face.area)
    return FaceMeasurements(face_px=float(min(fw, fh)), sharpness=sharp, brightness=bright,
                            backlight_ratio=backlight, yaw=yaw, pitch=pitch,
                            det_score=float(face.det_score), rival_area_ratio=rival)


def assess(m: FaceMeasurements, t: QualityThresholds = QualityThresholds()) -> QualityReport:
    """Pure verdict from measurements."""
    reasons = []
    if m.rival_area_ratio >= t.rival_area_ratio:
        reasons.append(MULTIPLE_FACES)
    if m.face_px < t.min_face_px:
        reasons.append(TOO_SMALL)
    if abs(m.yaw) > t.max_yaw or abs(m.pitch) > t.max_pitch:
        reasons.append(POSE)
    if m.brightness < t.min_brightness:
        reasons.append(TOO_DARK)
    elif m.backlight_ratio > t.max_backlight_ratio:
        reasons.append(BACKLIT)
    if m.sharpness < t.min_sharpness:
        reasons.append(BLURRY)
    if m.det_score < t.min_det_score:
        reasons.append(LOW_CONFIDENCE)
    ordered = tuple(r for r in PRIORITY if r in reasons)
    # a soft score in 0..1 for weighting votes
    parts = [min(1.0, m.face_px / max(1e-6, 2 * t.min_face_px)),
             min(1.0, m.sharpness / max(1e-6, 3 * t.min_sharpness)),
             max(0.0, 1.0 - abs(m.yaw) / max(1e-6, 2 * t.max_yaw)),
             min(1.0, m.det_score)]
    score = float(np.clip(np.prod(parts), 0.0, 1.0))
    return QualityReport(ok=not ordered, score=score, reasons=ordered,
                         hint=HINTS[ordered[0]] if ordered else None, measurements=m)
