"""Liveness.

Active (the default, no model needed): during a spoken challenge (请慢慢向左转头 /
向右) the head must rotate the asked way, and what the camera sees must be a
solid head, not a picture:

* the rotation is the head pose solved from the five landmarks of every frame
  against a generic 3-D face (``headpose.track_pose``, ``cv2.solvePnP``),
  smoothed over the track; the yaw must change by ``min_turn_deg`` the asked
  way from the pose at the start. Roll and pitch that come with the turn are
  allowed; a roll alone is not a turn.
* parallax of the landmarks: a flat picture, however it is moved, maps the eyes
  and mouth corners of one frame onto another by one homography, and the nose
  follows it; a real nose stands out of that plane.
* the face's surface is not flat: points of the middle of the face (eyes, nose,
  mouth) are followed by optical flow over short stretches of the turn, each
  seeded afresh (``segment_deg`` of yaw), and a single homography must not
  explain most of them. A detector's landmarks on a tilted photo can look like
  a turned head; the flow of the photo's texture cannot.
* the nose: paper is developable, so a print bent about a vertical axis and turned
  moves every point of one column alike, whatever the bend; a head's nose moves
  ahead of the bridge and the lip of its own column, the way the head turns. The
  horizontal motion of the followed points is fitted with every motion a sheet can
  make plus a generic nose (``nose_lead``), after the flow is measured again on the
  last frame warped back by the sheet-like motion (optical flow errs by up to a pixel
  on a surface seen more and more obliquely, enough to fake a nose); a turn whose
  nose leads by less than 0.1 of a generic nose, with two standard errors to spare,
  is a sheet.
* all of it in the face's own scale (``face_normalised``): the frames are cropped to where
  the face moved and resized to 64 px between the eyes first, so the pixel sizes of the
  flow and corner steps mean the same on any camera, near or far.
* one continuous face: a frame whose face points cannot be followed into the next
  frame splits the track (without grey frames: a jump of the face box or a long
  gap), and the turn must happen within one piece (a photo swapped for another is
  two pieces). Time between frames alone does not split it: a slow terminal is
  not a cut.

* a replay (a phone or tablet playing a recorded turn): once a turn passes, the camera's
  own frames are looked at for a device around the face (``kiosk.vision.screen``); when
  one is suspected the verdict is ``screen_suspected``: staff confirm, the elder is not
  refused outright. It finds a device whose edges or moire are in the picture; a screen
  held so close that neither is seen still passes.

docs/liveness.md has what was measured, on real recordings and on rendered attacks,
and what is not covered (replays the screen measure misses, paper folded about a
slanted line).

Passive (when an ONNX anti-spoofing model is configured): an 80x80 aligned crop
scored by the model (insightface's liveness add-on and MiniFASNet-style models
both take 80x80)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import ModelError
from kiosk.vision.headpose import track_pose
from kiosk.vision.tracker import iou

if TYPE_CHECKING:
    from kiosk.vision.engine import FaceEngine

CHALLENGES = {"left": ("请慢慢向左转头", +1), "right": ("请慢慢向右转头", -1)}

# Stable reason codes of a verdict (logs, the JSON of `kiosk liveness`, the UI and the tests
# rely on them); the Chinese sentence beside each is what the screen and the voice say.
PASSED = "passed"
UNSEEN = "face_unseen"          # too few frames with a face
ROLL = "head_rolled"            # the head was tilted, not turned
NO_TURN = "no_turn"             # no turn the asked way (or not far enough)
JUMP = "turn_jumped"            # the turn came in one jump (a swap of pictures)
FLAT = "flat_parallax"          # the nose did not move apart from the face's plane
BLUR = "surface_unseen"         # nothing on the face could be followed over the turn
PLANAR = "planar_surface"       # the face's surface moved as one plane (a picture)
NO_NOSE = "no_nose_lead"        # what turned showed no nose ahead of its column (a sheet)
CUT = "cut"                     # the clip was cut in the middle of the turn
GAP = "gap"                     # frames missing in the middle of the turn
PASSIVE_SPOOF = "passive_spoof"  # the anti-spoofing model saw a photo or screen
SCREEN_SUSPECTED = "screen_suspected"  # the turn passed but the face may be on a device's screen
CODES = (PASSED, UNSEEN, ROLL, NO_TURN, JUMP, FLAT, BLUR, PLANAR, NO_NOSE, CUT, GAP, PASSIVE_SPOOF,
         SCREEN_SUSPECTED)

REFUSED_FLAT = "检测到照片或屏幕，请本人到场"
REFUSED_CUT = "画面不连续，请再试一次"
REFUSED_GAP = "画面中断，请再试一次"
REFUSED_UNSEEN = "没有看清您的脸，请再试一次"
REFUSED_ROLL = "请不要歪头，慢慢向一边转头"
REFUSED_BLUR = "画面太模糊，请在亮一点的地方慢慢转头"
ASK_STAFF_SCREEN = "请工作人员确认是本人在场"


@dataclass(frozen=True)
class LiveFrame:
    """What the check needs from one frame (None: no face in that frame)."""

    ts: float
    bbox: tuple[float, float, float, float] | None
    landmarks: np.ndarray | None
    gray: np.ndarray | None = None   # the frame in grey levels, for the optical-flow tests


@dataclass(frozen=True)
class LivenessConfig:
    # the turn (head-pose yaw, degrees). At 10 degrees a real nose (0.5 eye distances in front
    # of the eyes) moves 0.09 eye distances against the eyes: the least a detector's landmarks
    # (noise 0.02-0.04) show reliably. The old yaw-proxy threshold 0.12 was about 13 degrees.
    min_turn_deg: float = 10.0
    min_parallax: float = 0.07      # nose off the eyes/mouth homography, in eye distances
    max_jump_share: float = 0.9     # one frame may carry at most this share of the turn
    min_frames: int = 5
    max_gap_frames: int = 3
    max_gap_s: float = 0.6
    min_iou: float = 0.2            # face boxes of consecutive frames overlap at least this much
    min_flow: float = 0.1           # share of face points followed into the next frame (else a cut)
    segment_deg: float = 12.0       # each flatness test spans this much yaw ...
    segment_share: float = 0.8      # ... or this share of a smaller turn
    plane_tolerance: float = 0.025  # a point within this many eye distances fits the plane
    max_planar_share: float = 0.8   # median share of mid-face points on one homography = flat
    min_points: int = 12            # a flatness test needs this many points followed
    # the nose (rule 6): what turned must show a nose moving ahead of its own column. Refused
    # when the turn shows, with 2 standard errors to spare, less than 0.1 of a generic nose
    # (0.03 eye distances, 2 mm, in front of its bridge and lip): paper, however bent, shows 0
    min_nose_lead: float = 0.1
    nose_lead_sigmas: float = 2.0
    max_segments: int = 10          # flatness tests per check (time)
    # the check runs on frames scaled so that the face's eye distance is this many pixels
    # (``face_normalised``): the same face gives the same answer at any camera resolution
    face_iod: float | None = 64.0
    # the replay measure (``kiosk.vision.screen``: a device's frame around the face, a screen's
    # pixel grid over it), on a turn that passed: when it suspects a screen the verdict is
    # ``screen_suspected`` (staff confirm). Measured: no real clip suspected; replays with the
    # device's edges or its moire in the picture caught, edge-to-edge ones without moire not
    # (docs/liveness.md "Replays")
    screen_check: bool = True

    # names kept for callers of the earlier version
    @property
    def min_turn(self) -> float:
        return self.min_turn_deg


@dataclass(frozen=True)
class LivenessResult:
    live: bool
    score: float | None
    reason: str                         # the Chinese sentence for the screen and the voice
    details: dict = field(default_factory=dict)
    code: str = field(kw_only=True)     # the stable reason code (one of CODES)

    def to_json(self) -> dict:
        return {"live": self.live, "code": self.code,
                "score": None if self.score is None else round(self.score, 4), "reason": self.reason}


def nose_parallax(ref: np.ndarray, cur: np.ndarray) -> float:
    """Distance of the nose from where the homography of the four (near-)planar
    points (eyes, mouth corners) puts it, in eye distances of ``cur``."""
    ref = np.asarray(ref, np.float64)
    cur = np.asarray(cur, np.float64)
    quad = [0, 1, 3, 4]
    H = cv2.getPerspectiveTransform(ref[quad].astype(np.float32), cur[quad].astype(np.float32))
    p = H @ np.array([ref[2, 0], ref[2, 1], 1.0])
    if abs(p[2]) < 1e-9:
        return float("inf")
    pred = p[:2] / p[2]
    iod = float(np.linalg.norm(cur[1] - cur[0])) or 1.0
    return float(np.linalg.norm(cur[2] - pred) / iod)


_LK = dict(winSize=(21, 21), maxLevel=4,
           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
_FB_PX = 1.0    # forward-backward error a followed point may have


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(lm[1], np.float64) - np.asarray(lm[0], np.float64))) or 1.0


def _corners(gray: np.ndarray, lm: np.ndarray, n: int = 150) -> np.ndarray | None:
    """Corners of the whole face (brow to chin, cheeks included) to follow for the
    continuity test."""
    lm = np.asarray(lm, np.float64)
    iod = _iod(lm)
    x0, x1 = lm[:, 0].min() - 0.3 * iod, lm[:, 0].max() + 0.3 * iod
    y0, y1 = lm[:2, 1].min() - 0.45 * iod, lm[3:, 1].max() + 0.3 * iod
    mask = np.zeros_like(gray)
    cv2.rectangle(mask, (int(x0), int(y0)), (int(x1), int(y1)), 255, -1)
    return cv2.goodFeaturesToTrack(gray, n, 0.001, max(2.0, iod / 20), mask=mask, blockSize=5)


def _follow(grays: list[np.ndarray], p0: np.ndarray, win: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points followed frame to frame (pyramidal Lucas-Kanade, ``win`` px windows), each
    step checked forward-backward. Returns the end points and which survived."""
    lk = _LK if win is None else {**_LK, "winSize": (win, win)}
    pts = p0.copy()
    ok = np.ones(len(p0), bool)
    for a, b in zip(grays, grays[1:]):
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, pts, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, nxt, pts.copy(), **lk)
        ok &= (st.ravel() == 1) & (st2.ravel() == 1) & (
            np.linalg.norm((back - pts).reshape(-1, 2), axis=1) < _FB_PX)
        pts = nxt
    return pts, ok


def flow_continuity(a: LiveFrame, b: LiveFrame) -> float | None:
    """Share of the face points of frame ``a`` followed into frame ``b`` (None: no grey
    frames or nothing to follow). A real head, even turning fast, keeps most of them from
    one frame to the next; a photo swapped for another keeps few."""
    if a.gray is None or b.gray is None or a.landmarks is None:
        return None
    p0 = _corners(a.gray, a.landmarks)
    if p0 is None or len(p0) < 8:
        return None
    _, ok = _follow([a.gray, b.gray], p0)
    return float(ok.mean())


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    S, _ = cv2.estimateAffinePartial2D(np.asarray(src, np.float32), np.asarray(dst, np.float32))
    return S


def stabilised(seq: list[LiveFrame], rolls: list[float] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The grey frames of ``seq``, each turned about the face centre by the head's roll
    since the first frame (``rolls``, degrees) so that optical flow, which follows small
    shifts but not rotations, is left with the turn; and the warps. Frames that rolled
    less than ``ROLL_WARP_DEG`` are left as they are (resampling blurs). A rotation is a
    homography: a flat picture stays exactly flat."""
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    grays, warps = [seq[0].gray], [ident]
    h, w = seq[0].gray.shape[:2]
    for i, f in enumerate(seq[1:], 1):
        d = 0.0 if rolls is None else rolls[i] - rolls[0]
        if abs(d) < ROLL_WARP_DEG:
            grays.append(f.gray)
            warps.append(ident)
            continue
        c = np.asarray(f.landmarks, np.float64).mean(0)
        S = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), d, 1.0)
        grays.append(cv2.warpAffine(f.gray, S, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        warps.append(S)
    return grays, warps


ROLL_WARP_DEG = 3.0


def face_frame_coords(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's own axes in an image: origin between the eyes, ``ex`` along the eyes (to
    the image's right), ``ey`` down the face, in pixels per eye distance."""
    lm = np.asarray(lm, np.float64)
    o = (lm[0] + lm[1]) / 2
    iod = _iod(lm)
    ex = (lm[1] - lm[0]) / iod
    return o, np.stack([ex, np.array([-ex[1], ex[0]])]), iod


# the region where surface points are seeded, in the face's axes (eye distances): from the
# brows to below the mouth, a little wider than the eyes
_SEED_U, _SEED_V = (-0.75, 0.75), (-0.45, 1.45)


def _seed_surface(gray: np.ndarray, lm: np.ndarray, n: int = 220) -> np.ndarray | None:
    o, axes, iod = face_frame_coords(lm)
    corners = np.array([[u, v] for u, v in ((_SEED_U[0], _SEED_V[0]), (_SEED_U[1], _SEED_V[0]),
                                             (_SEED_U[1], _SEED_V[1]), (_SEED_U[0], _SEED_V[1]))])
    poly = (o + iod * corners @ axes).astype(np.int32)
    mask = np.zeros_like(gray)
    cv2.fillConvexPoly(mask, poly, 255)
    return cv2.goodFeaturesToTrack(gray, n, 0.001, max(2.0, iod / 22), mask=mask, blockSize=5)


SURFACE_WINDOW_IOD = 0.15


def surface_window(iod: float) -> int:
    """The optical-flow window for following the face's surface: 0.15 eye distances (about
    1 cm), odd, 7 to 21 px. A window follows the average motion of what it covers; one
    wider than the nose (0.3 eye distances) averages the nose with the cheek beside it,
    which flattens a real face and makes a bent sheet look uneven."""
    return int(np.clip(2 * round(SURFACE_WINDOW_IOD / 2 * iod) + 1, 7, 21))


@dataclass(frozen=True)
class SurfaceFlow:
    """Points of the face followed over one stretch of the turn: where they were in its
    first frame (``a``) and where they are in its last (``b``), both in the first frame's
    stabilised image, with the first frame's landmarks; ``fine``: ``b`` measured again
    after the stretch's last frame was warped onto its first by the motion any bent sheet
    could make (None when not measured)."""

    a: np.ndarray
    b: np.ndarray
    landmarks: np.ndarray
    fine: np.ndarray | None = None


def _sheet_model(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Basis of the smooth motion of a sheet bent about a vertical axis (both coordinates:
    any function of the column, times 1 and times the row, plus a smooth function of the
    row), in eye distances from between the eyes."""
    hx = _hats(x, _KNOTS_X)
    X = np.column_stack([hx, hx * y[:, None], y * y, y ** 3])
    return X


def refine_on_sheet(g0: np.ndarray, g1: np.ndarray, a: np.ndarray, b: np.ndarray,
                    origin: np.ndarray, iod: float, win: int) -> np.ndarray | None:
    """Measure the motion ``a`` -> ``b`` again, free of the error optical flow makes on a
    surface seen more and more obliquely: Lucas-Kanade assumes a window only shifts, and
    where the picture is squeezed across the window (a sheet turning away, a cheek) it
    follows the texture's centre of weight, not the point - up to a pixel, enough to fake
    or hide a nose. So the smooth motion of a bent sheet (``_sheet_model``) is fitted to
    the followed points, the last frame is warped back onto the first with it, and the
    points are followed again over what is left (a few pixels, no squeeze). Returns the
    end points in the last frame, or None when the fit fails."""
    if len(a) < 40:
        return None
    xa, xb = (a - origin) / iod, (b - origin) / iod
    X = _sheet_model(xa[:, 0], xa[:, 1])
    keep = X.any(axis=0)
    X = X[:, keep]
    coef, *_ = np.linalg.lstsq(X, xb - xa, rcond=None)
    # the warp only where the face is (brows to chin, a margin each side): a crop of the
    # first frame and the last frame warped onto it
    h, w = g0.shape[:2]
    x0, x1 = int(max(0, origin[0] - 1.3 * iod)), int(min(w, origin[0] + 1.3 * iod + 1))
    y0, y1 = int(max(0, origin[1] - 0.9 * iod)), int(min(h, origin[1] + 1.9 * iod + 1))
    if x1 - x0 < 2 * win or y1 - y0 < 2 * win:
        return None
    # the model is h(x) . (c1 + c2 y) + c3 y^2 + c4 y^3: evaluated per column and per row
    full = np.zeros((len(keep), 2))
    full[keep] = coef
    k = len(_KNOTS_X)
    gx = (np.arange(x0, x1, dtype=np.float64) - origin[0]) / iod
    gy = (np.arange(y0, y1, dtype=np.float64) - origin[1]) / iod
    hx = _hats(gx, _KNOTS_X)
    c1, c2 = hx @ full[:k], hx @ full[k:2 * k]                        # per column
    rows = np.outer(gy ** 2, full[2 * k]) + np.outer(gy ** 3, full[2 * k + 1])   # per row
    d = (c1[None] + c2[None] * gy[:, None, None] + rows[:, None]) * iod
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    back = cv2.remap(g1, xs + d[..., 0].astype(np.float32), ys + d[..., 1].astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lk = {**_LK, "winSize": (win, win), "maxLevel": 1}
    corner = np.array([x0, y0], np.float64)
    p0 = (a - corner).astype(np.float32).reshape(-1, 1, 2)
    r, st, _ = cv2.calcOpticalFlowPyrLK(np.ascontiguousarray(g0[y0:y1, x0:x1]), back, p0, p0.copy(),
                                        flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk)
    r = r.reshape(-1, 2).astype(np.float64) + corner
    xr = (r - origin) / iod
    out = r + (_sheet_model(xr[:, 0], xr[:, 1])[:, keep] @ coef) * iod
    bad = (st.ravel() != 1) | (np.linalg.norm(r - a, axis=1) > 0.1 * iod)
    out[bad] = np.nan
    return out


def surface_flow(seq: list[LiveFrame], rolls: list[float] | None = None,
                 min_points: int = 12) -> SurfaceFlow | None:
    """Follow the face (brows to chin) from the first frame of ``seq`` to the last (frames
    with a face, stabilised). When the face moved, points that stayed where they were in
    the camera image are not on the face (a reflection on a screen, a mark on the lens) and
    are left out."""
    ref = seq[0]
    p0 = _seed_surface(ref.gray, ref.landmarks)
    if p0 is None:
        return None
    grays, warps = stabilised(seq, rolls)
    iod = _iod(ref.landmarks)
    pts, ok = _follow(grays, p0, surface_window(iod))
    if ok.sum() < min_points and surface_window(iod) < _LK["winSize"][0]:
        # too little detail at the nose's scale (a blurred or upscaled picture): the wider
        # window of the continuity test is the best this picture allows
        pts, ok = _follow(grays, p0)
    a, b = p0[ok].reshape(-1, 2).astype(np.float64), pts[ok].reshape(-1, 2).astype(np.float64)
    face = _similarity(ref.landmarks, seq[-1].landmarks)     # how the face moved in the image
    if face is not None and len(a):
        back = cv2.invertAffineTransform(warps[-1])
        b_cam = b @ back[:, :2].T + back[:, 2]                # where the points are in the camera image
        moved = np.linalg.norm(a @ face[:, :2].T + face[:, 2] - a, axis=1)
        keep = ~((moved > 0.1 * iod) & (np.linalg.norm(b_cam - a, axis=1) < 0.3 * moved))
        a, b = a[keep], b[keep]
    o, _, _ = face_frame_coords(ref.landmarks)
    fine = refine_on_sheet(grays[0], grays[-1], a, b, o, iod, surface_window(iod))
    return SurfaceFlow(a, b, np.asarray(ref.landmarks, np.float64), fine)


def _mid_face(flow: SurfaceFlow) -> np.ndarray:
    """Which points lie in the middle of the face (between and around the eyes, nose, mouth)."""
    lm = flow.landmarks
    iod = _iod(lm)
    x0, x1 = min(lm[0, 0], lm[3, 0]) - 0.1 * iod, max(lm[1, 0], lm[4, 0]) + 0.1 * iod
    y0, y1 = min(lm[0, 1], lm[1, 1]) - 0.15 * iod, max(lm[3, 1], lm[4, 1]) + 0.1 * iod
    a = flow.a
    return (a[:, 0] >= x0) & (a[:, 0] <= x1) & (a[:, 1] >= y0) & (a[:, 1] <= y1)


def planar_share_of(flow: SurfaceFlow, tolerance: float, min_points: int = 12) -> tuple[float | None, int]:
    """The share of the mid-face points that one homography explains (None: fewer than
    ``min_points``)."""
    m = _mid_face(flow)
    a, b = flow.a[m], flow.b[m]
    n = len(a)
    if n < min_points:
        return None, n
    iod = _iod(flow.landmarks)
    H, _ = cv2.findHomography(a, b, cv2.RANSAC, tolerance * iod)
    if H is None:
        return 0.0, n
    res = np.linalg.norm(cv2.perspectiveTransform(a[None].astype(np.float64), H)[0] - b, axis=1) / iod
    return float((res < tolerance).mean()), n


def nose_depth(u: np.ndarray, v: np.ndarray, lm_face: np.ndarray) -> np.ndarray:
    """A generic nose as depth in front of the rest of its column (eye distances), at face
    coordinates (``u`` along the eyes, ``v`` down, eye distances from between the eyes): the
    tip (at the nose landmark ``lm_face[2]``) 0.3 in front of the bridge above it and of
    the upper lip below it (adult faces: about 2 cm, 0.3 of the 6.3 cm between the eyes),
    falling off along the ridge toward the eyes and quickly under the tip."""
    un, vn = float(lm_face[2, 0]), max(float(lm_face[2, 1]), 0.3)
    sig_v = np.where(v <= vn, 0.3, 0.12)
    xc = un * np.clip(v / vn, 0.0, 1.0)
    return 0.3 * np.exp(-0.5 * ((v - vn) / sig_v) ** 2 - 0.5 * ((u - xc) / 0.15) ** 2)


def _hats(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Piecewise-linear basis (one column per knot) of a smooth function of ``x``."""
    step = knots[1] - knots[0]
    return np.clip(1 - np.abs(x[:, None] - knots[None, :]) / step, 0.0, 1.0)


def _nuisance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What any sheet of paper can do to the horizontal motion of its points (``x``, ``y``:
    image axes of the stabilised first frame, eye distances): the motion of a plane (affine
    and perspective terms) plus any bend about a vertical axis (any function of the column:
    piecewise linear, knots every 0.2 eye distances) or a smooth one about a horizontal axis."""
    X = np.column_stack([_hats(x, _KNOTS_X), y, x * y, y * y, y ** 3, y ** 4])
    return X[:, X.any(axis=0)]


_KNOTS_X = np.arange(-1.2, 1.21, 0.2)


def _lead_fit(X: np.ndarray, y: np.ndarray, min_points: int) -> tuple[float, float, int] | None:
    """Least squares of ``y`` on ``X`` (twice, leaving out points more than 3 robust standard
    deviations off); the last coefficient, its standard error and the points kept."""
    keep = np.ones(len(y), bool)
    for _ in range(2):     # fit, leave out points whose flow failed (moire, an occluded edge), refit
        if keep.sum() < max(min_points, X.shape[1] + 5):
            return None
        coef, *_ = np.linalg.lstsq(X[keep], y[keep], rcond=None)
        res = y - X @ coef
        mad = 1.4826 * float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        keep = np.abs(res) <= max(3 * mad, 0.005)
    if keep.sum() < max(min_points, X.shape[1] + 5):
        return None
    coef, *_ = np.linalg.lstsq(X[keep], y[keep], rcond=None)
    res = y[keep] - X[keep] @ coef
    dof = max(1, int(keep.sum()) - X.shape[1])
    sigma2 = float(res @ res) / dof
    cov = np.linalg.pinv(X[keep].T @ X[keep]) * sigma2
    return float(coef[-1]), float(np.sqrt(max(cov[-1, -1], 0.0))), int(keep.sum())


def nose_lead(flow: SurfaceFlow, yaw_change_deg: float, min_points: int = 12) -> tuple[float, float, int] | None:
    """How far the nose moved ahead of the rest of its column during a turn of
    ``yaw_change_deg`` (signed, head-pose convention), as a share of what a generic nose
    (``nose_depth``) would do: (lead, standard error, points), None when too few points.

    Paper is developable: bent about a vertical axis, however bent, its depth is a function
    of the column alone, and turned about a vertical axis every point of one column moves
    sideways alike (exactly, through a pinhole camera too). So the horizontal motion of the
    followed points is fitted with every motion a sheet can make (``_nuisance``: any
    function of the column, a smooth one of the row, the plane's perspective) plus the
    generic nose times the sine of the turn; the nose's coefficient is the lead. A sheet
    leads by 0; a head's nose, 1.5-2.5 cm in front of the bridge above it and the lip below
    it in its own column, leads in the direction of the turn by about 1 (more or less as the
    nose is larger or smaller than the generic one), and the wrong way when the turn was not
    this way. When the flow was measured again on the sheet-warped frame
    (``SurfaceFlow.fine``), that measure is used."""
    o, axes, iod = face_frame_coords(flow.landmarks)
    if flow.fine is not None:
        ok = np.isfinite(flow.fine).all(axis=1)
        flow = SurfaceFlow(flow.a[ok], flow.fine[ok], flow.landmarks)
    if len(flow.a) < min_points:
        return None
    s = np.sin(np.radians(yaw_change_deg))
    if abs(s) < 1e-3:
        return None
    lm_face = (flow.landmarks - o) @ axes.T / iod
    uv = (flow.a - o) @ axes.T / iod                      # face axes: where the nose is
    xy = (flow.a - o) / iod                               # image axes: how a sheet moves
    dx = (flow.b[:, 0] - flow.a[:, 0]) / iod
    tmpl = nose_depth(uv[:, 0], uv[:, 1], lm_face) * s
    best = _lead_fit(np.column_stack([_nuisance(xy[:, 0], xy[:, 1]), tmpl]), dx, min_points)
    if best is not None and abs(np.degrees(np.arctan2(axes[0, 1], axes[0, 0]))) >= TILTED_SHEET_DEG:
        # the face is tilted in the picture: a print held tilted is bent along the portrait,
        # its columns along the face's vertical, not the image's - the smaller lead counts
        tilted = _lead_fit(np.column_stack([_nuisance(uv[:, 0], uv[:, 1]), tmpl]), dx, min_points)
        if tilted is not None and tilted[0] < best[0]:
            best = tilted
    return best


TILTED_SHEET_DEG = 8.0   # a face rolled this much: its columns are tried as the sheet's too
LEAD_SE_FLOOR = 0.02
IMPOSSIBLE_LEAD = -0.5


def pool_leads(leads: list[tuple[float, float, int]]) -> tuple[float, float] | None:
    """The nose leads of the stretches of one turn pooled, each weighted by how precisely it
    was measured (a standard error under ``LEAD_SE_FLOOR`` counts as that: no single stretch
    decides alone): (lead, standard error). A stretch whose nose fell behind its column by
    more than half a generic nose (``IMPOSSIBLE_LEAD``) measured neither a head turning this
    way nor a sheet (whose lead is 0): the points were lost to an expression, a hand or blur,
    and it is left out. None when no stretch is left."""
    leads = [x for x in leads if x[0] >= IMPOSSIBLE_LEAD]
    if not leads:
        return None
    w = np.array([1 / max(se, LEAD_SE_FLOOR) ** 2 for _, se, _ in leads])
    vals = np.array([v for v, _, _ in leads])
    return float((w * vals).sum() / w.sum()), float(1 / np.sqrt(w.sum()))


def _smooth(v: np.ndarray) -> np.ndarray:
    """Median of three along the track (one frame's landmark glitch does not make a turn)."""
    if len(v) < 3:
        return v.copy()
    p = np.concatenate([v[:1], v, v[-1:]])
    return np.median(np.stack([p[:-2], p[1:-1], p[2:]]), axis=0)


def _pieces(frames: list[LiveFrame], cfg: LivenessConfig) -> tuple[list[list[int]], str | None]:
    """Split the frames (indices of frames with a face) into continuous pieces of one face.
    Returns the pieces and the kind of the first break (``gap`` or ``cut``)."""
    pieces: list[list[int]] = [[]]
    gap, prev, first_break = 0, None, None
    for i, f in enumerate(frames):
        if f.bbox is None or f.landmarks is None:
            gap += 1
            continue
        if prev is not None:
            p = frames[prev]
            late = gap > cfg.max_gap_frames or f.ts - p.ts > cfg.max_gap_s * (1 + gap)
            share = flow_continuity(p, f)
            if share is not None:
                # the picture decides: a slow or overloaded camera (frames far apart, a few
                # without a face) is not a cut while the face can still be followed
                broken = None if share >= cfg.min_flow else ("gap" if late else "cut")
            else:
                broken = "gap" if late else ("cut" if iou(p.bbox, f.bbox) < cfg.min_iou else None)
            if broken:
                first_break = first_break or broken
                pieces.append([])
        pieces[-1].append(i)
        prev, gap = i, 0
    return [p for p in pieces if p], first_break


def _check_piece(frames: list[LiveFrame], idx: list[int], sign: int,
                 cfg: LivenessConfig) -> LivenessResult:
    seen = [frames[i] for i in idx]
    poses = track_pose([f.landmarks for f in seen])
    yaw = _smooth(np.array([p.yaw for p in poses]))
    roll_raw = [p.roll for p in poses]
    roll = _smooth(np.array(roll_raw))
    # the turn at each frame is measured from the lowest pose before it (the asked way) among
    # the frames of the start, those until the head first moved a quarter of the threshold
    # the other way: a head whose first frame's landmarks are off by a degree or two has
    # turned from the frames after it; a head (or a picture) that went the other way and came
    # back has not turned the asked way
    rise = yaw * sign
    away = np.nonzero(rise < rise[0] - cfg.min_turn_deg / 4)[0]
    start = int(away[0]) if len(away) else len(rise)
    low = np.minimum.accumulate(rise)
    low[start:] = low[start - 1] if start > 0 else rise[0]
    turn = rise - low
    k = int(np.argmax(turn))
    j0 = int(np.argmin(rise[:min(k, start - 1) + 1]))   # where that turn started
    best_turn = float(turn[k])
    d_roll = float(np.abs(roll - roll[0]).max())
    details = {"turn_deg": round(best_turn, 1), "roll_deg": round(d_roll, 1), "frames": len(seen)}
    if best_turn < cfg.min_turn_deg:
        if d_roll >= cfg.min_turn_deg and d_roll > abs(float(np.ptp(yaw))):
            return LivenessResult(False, 0.0, REFUSED_ROLL, details, code=ROLL)
        return LivenessResult(False, max(0.0, best_turn) / cfg.min_turn_deg,
                              f"没有看到{'向左' if sign > 0 else '向右'}转头，请慢慢转头", details, code=NO_TURN)
    steps = np.diff(rise[j0: k + 1]) if k > j0 else np.array([best_turn])
    details["jump"] = round(float(steps.max()) / best_turn, 2)
    if steps.max() > cfg.max_jump_share * best_turn:
        return LivenessResult(False, 0.0, "转头太突然，请慢慢转头", details, code=JUMP)
    par = [nose_parallax(seen[j0].landmarks, f.landmarks) for f in seen]
    best_par = max(par[j] for j in range(j0, len(seen)) if rise[j] - rise[j0] >= 0.6 * best_turn)
    details["parallax"] = round(best_par, 3)
    score = min(best_par / cfg.min_parallax, best_turn / cfg.min_turn_deg)
    if best_par < cfg.min_parallax:
        return LivenessResult(False, best_par / cfg.min_parallax, REFUSED_FLAT, details, code=FLAT)
    # the surface test runs whenever the caller gave grey frames (the kiosk and the CLI always
    # do), on the stretches that start and end on one; callers with landmarks only (geometry
    # tests) get the landmark tests alone
    if all(f.gray is None for f in frames):
        return LivenessResult(True, score, "活体检测通过", details, code=PASSED)
    shares, points, leads = [], [], []
    seg = min(cfg.segment_deg, cfg.segment_share * best_turn)
    starts = [j for j in range(k) if any(abs(yaw[m] - yaw[j]) >= seg for m in range(j + 1, k + 1))]
    if len(starts) > cfg.max_segments:
        starts = [starts[int(round(t))] for t in np.linspace(0, len(starts) - 1, cfg.max_segments)]
    for j in starts:
        m = next(m for m in range(j + 1, k + 1) if abs(yaw[m] - yaw[j]) >= seg)
        span = [(f, r) for f, r in zip(seen[j:m + 1], roll_raw[j:m + 1]) if f.gray is not None]
        if len(span) < 2 or span[0][0] is not seen[j] or span[-1][0] is not seen[m]:
            continue
        flow = surface_flow([f for f, _ in span], [r for _, r in span], cfg.min_points)
        if flow is None:
            points.append(0)
            continue
        share, n = planar_share_of(flow, cfg.plane_tolerance, cfg.min_points)
        points.append(n)
        if share is not None:
            shares.append(share)
        lead = nose_lead(flow, float(yaw[m] - yaw[j]), cfg.min_points)
        if lead is not None:
            leads.append(lead)
    details.update(segments=len(shares), points=int(np.median(points)) if points else 0)
    lead_bound = None
    pooled = pool_leads(leads) if leads else None
    if pooled is not None:
        lead, lead_se = pooled
        lead_bound = lead + cfg.nose_lead_sigmas * lead_se
        details.update(nose_lead=round(lead, 3), nose_lead_se=round(lead_se, 3))
    elif leads and all(v + cfg.nose_lead_sigmas * se < IMPOSSIBLE_LEAD for v, se, _ in leads):
        # every stretch moved, beyond doubt, in a way neither a head turning this way nor a
        # sheet does (moire or a reflection moving over a screen): nothing showed a nose.
        # (When that is only uncertain - a blurred clip - the nose rule has nothing to judge.)
        lead_bound = IMPOSSIBLE_LEAD
    if leads:
        details["nose_leads"] = [round(float(v), 2) for v, _, _ in leads]
    if not shares:
        # nothing on the face could be followed over a turn: too blurred or too dark to tell a
        # head from a picture (with segments of 12 degrees every real clip measured had some)
        return LivenessResult(False, 0.0, REFUSED_BLUR, details, code=BLUR)
    planar = float(np.median(shares))
    details["planar_share"] = round(planar, 3)
    score = min(score, (1 - planar) / (1 - cfg.max_planar_share))
    if planar >= cfg.max_planar_share:
        return LivenessResult(False, score, REFUSED_FLAT, details, code=PLANAR)
    if lead_bound is not None:
        score = min(score, max(0.0, lead_bound) / cfg.min_nose_lead)
        if lead_bound < cfg.min_nose_lead:
            # what turned has no nose standing out of its column: a sheet, bent or not
            return LivenessResult(False, score, REFUSED_FLAT, details, code=NO_NOSE)
    return LivenessResult(True, score, "活体检测通过", details, code=PASSED)


# the check's scale: eye distance in pixels (a typical face of a 640x480 kiosk camera at arm's
# length), and the margin kept around the face's track (eye distances)
NORM_IOD = 64.0
NORM_MARGIN_IOD = 1.5


def face_normalised(frames: list[LiveFrame], iod: float | None = NORM_IOD) -> list[LiveFrame]:
    """The frames in the face's own scale: every grey frame cropped to the region the face
    moved in (the union of its boxes and landmarks, with room for the flow around it) and
    resized so that the track's median eye distance is ``iod`` pixels; boxes and landmarks
    mapped with it. Every pixel-sized step of the check (corner spacing, flow windows and
    pyramid, the forward-backward error, the blur of small detail) then sees the same face
    at any camera resolution or distance, and a large frame costs no more than a small one.
    One crop and one scale for the whole track: a flat picture stays flat, a cut stays a
    cut. ``iod`` None: the frames as they are."""
    faced = [f for f in frames if f.bbox is not None and f.landmarks is not None]
    if iod is None or not faced or all(f.gray is None for f in frames):
        return frames
    iods = np.array([_iod(f.landmarks) for f in faced])
    s = iod / float(np.median(iods))
    x0 = y0 = np.inf
    x1 = y1 = -np.inf
    for f, d in zip(faced, iods):
        lm = np.asarray(f.landmarks, np.float64)
        bx, by, bw, bh = (float(v) for v in f.bbox[:4])
        m = NORM_MARGIN_IOD * d
        x0, y0 = min(x0, bx, lm[:, 0].min() - m), min(y0, by, lm[:, 1].min() - m)
        x1, y1 = max(x1, bx + bw, lm[:, 0].max() + m), max(y1, by + bh, lm[:, 1].max() + m)
    h, w = next(f.gray for f in frames if f.gray is not None).shape[:2]
    x0, y0 = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
    x1, y1 = int(min(w, np.ceil(x1))), int(min(h, np.ceil(y1)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return frames
    ow, oh = max(1, int(round((x1 - x0) * s))), max(1, int(round((y1 - y0) * s)))
    sx, sy = ow / (x1 - x0), oh / (y1 - y0)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR

    def pt(p: np.ndarray) -> np.ndarray:    # pixel centres map onto pixel centres
        p = np.asarray(p, np.float64)
        return np.column_stack([(p[:, 0] - x0 + 0.5) * sx - 0.5, (p[:, 1] - y0 + 0.5) * sy - 0.5])

    out = []
    for f in frames:
        g = f.gray
        if g is not None:
            g = cv2.resize(np.ascontiguousarray(g[y0:y1, x0:x1]) if g.shape[:2] == (h, w) else g,
                           (ow, oh), interpolation=interp)
        bbox = lm = None
        if f.bbox is not None and f.landmarks is not None:
            bx, by, bw, bh = (float(v) for v in f.bbox[:4])
            c = pt(np.array([[bx, by]]))[0]
            bbox = (float(c[0]), float(c[1]), bw * sx, bh * sy)
            lm = pt(np.asarray(f.landmarks, np.float64).reshape(-1, 2)).astype(np.float32)
        out.append(LiveFrame(f.ts, bbox, lm, g))
    return out


def check_active(frames: list[LiveFrame], challenge: str,
                 cfg: LivenessConfig = LivenessConfig()) -> LivenessResult:
    if challenge not in CHALLENGES:
        raise ValueError(f"challenge must be one of {sorted(CHALLENGES)}")
    sign = CHALLENGES[challenge][1]
    raw = frames
    frames = face_normalised(frames, cfg.face_iod)
    seen = [f for f in frames if f.bbox is not None and f.landmarks is not None]
    if len(seen) < cfg.min_frames:
        return LivenessResult(False, None, REFUSED_UNSEEN, {"frames": len(seen)}, code=UNSEEN)
    pieces, broken = _pieces(frames, cfg)
    results = [_check_piece(frames, p, sign, cfg) for p in pieces if len(p) >= cfg.min_frames]
    for r in results:
        if r.live:
            if len(pieces) > 1:
                r = LivenessResult(True, r.score, r.reason, {**r.details, "pieces": len(pieces)}, code=r.code)
            return _screen_verdict(raw, r) if cfg.screen_check else r
    if broken:
        # a turn that only appears across a break (a cut, a swap, a long gap) does not count
        yaw = _smooth(np.array([p.yaw for p in track_pose([f.landmarks for f in seen])]))
        whole = float(((yaw - yaw[0]) * sign).max())
        if whole >= cfg.min_turn_deg or not results:
            return LivenessResult(False, 0.0, REFUSED_GAP if broken == "gap" else REFUSED_CUT,
                                  {"turn_deg": round(whole, 1), "frames": len(seen), "pieces": len(pieces)},
                                  code=GAP if broken == "gap" else CUT)
    return max(results, key=lambda r: r.details.get("turn_deg", 0.0))


def _screen_verdict(frames: list[LiveFrame], passed: LivenessResult) -> LivenessResult:
    """A turn that passed, looked at once more for a device around the face (on the camera's
    own pixels): when suspected, staff are asked to confirm (``screen_suspected``); the
    elder is not refused outright."""
    from kiosk.vision.screen import screen_evidence

    ev = screen_evidence([f.gray for f in frames], [f.bbox for f in frames])
    details = {**passed.details, "screen": ev.to_json()}
    if ev.suspected:
        return LivenessResult(False, passed.score, ASK_STAFF_SCREEN, details, code=SCREEN_SUSPECTED)
    return LivenessResult(True, passed.score, passed.reason, details, code=passed.code)


# --------------------------------------------------------------------------- passive
# insightface's liveness add-on aligns the five landmarks onto these points of an 80x80 crop
DEST_80 = np.array([[32.03, 38.06], [47.89, 37.98], [40.01, 47.08], [33.50, 56.36], [46.63, 56.29]],
                   dtype=np.float32)


class PassiveLiveness:
    """An ONNX anti-spoofing model on an 80x80 aligned crop.

    ``output``: ``prob`` (one live probability) or ``softmax`` (class logits;
    ``live_index`` is the live class, 1 for MiniFASNet)."""

    def __init__(self, model_path: Path, threshold: float = 0.8, output: str = "prob",
                 live_index: int = 1, rgb: bool = True, scale: float = 1 / 255.0) -> None:
        from kiosk.vision.onnx_session import make_session

        if not 0.0 <= threshold <= 1.0:
            raise ModelError("活体检测阈值应在0到1之间", detail=f"threshold {threshold}")
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"找不到活体检测模型：{path.name}", detail=f"missing {path}")
        try:
            self.session = make_session(path)
        except Exception as exc:  # onnxruntime raises several kinds for a bad file
            raise ModelError(f"活体检测模型无法加载：{path.name}", detail=str(exc)) from None
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3) or any(
                isinstance(d, int) and d != 80 for d in shape[2:]):
            raise ModelError("活体检测模型的输入不是 80×80 彩色图", detail=f"input shape {shape}")

        self.input_name = inp.name
        self.threshold, self.output, self.live_index = threshold, output, live_index
        self.rgb, self.scale = rgb, scale

    @staticmethod
    def align(img: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        M, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), DEST_80, method=cv2.LMEDS)
        if M is None:
            raise ValueError("alignment failed")
        return cv2.warpAffine(img, M, (80, 80), borderValue=0)

    def score(self, img: np.ndarray, landmarks: np.ndarray) -> float:
        crop = self.align(img, landmarks)
        x = crop[:, :, ::-1] if self.rgb else crop
        blob = (x.astype(np.float32) * self.scale).transpose(2, 0, 1)[None]
        out = np.asarray(self.session.run(None, {self.input_name: blob})[0], np.float64).ravel()
        if self.output == "softmax":
            e = np.exp(out - out.max())
            return float((e / e.sum())[self.live_index])
        return float(out[0])

    def check(self, img: np.ndarray, landmarks: np.ndarray) -> LivenessResult:
        s = self.score(img, landmarks)
        ok = s >= self.threshold
        return LivenessResult(ok, s, "活体检测通过" if ok else REFUSED_FLAT, code=PASSED if ok else PASSIVE_SPOOF)


def folder_fps(folder: Path, default: float = 12.0) -> float:
    """The frame rate of a folder of frames: its ``fps.txt`` (one number) when there is one."""
    f = Path(folder) / "fps.txt"
    if not f.is_file():
        return default
    try:
        rate = float(f.read_text(encoding="utf-8").split()[0])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise ModelError(f"帧率文件无法读取：{f}",
                         detail=f"{f} should hold one number (frames per second)") from None
    if not 0.5 <= rate <= 240:
        raise ModelError(f"帧率不合理：{f}", detail=f"{f}: {rate} frames per second")
    return rate


# the detectors' landmarks are good on faces of the size they were trained on; on a large face
# (a close face, a large frame: YuNet on a 270-px eye distance misplaces them by 5-13 degrees
# of yaw) they are taken again from the frame scaled so that the eye distance is DETECT_IOD.
# Every face more than 10 % above it is, so a face gives the same landmarks at any resolution
# above that.
DETECT_IOD = 80.0
DETECT_CROP_IOD = 5.0      # the crop's side, in eye distances


def detect_for_liveness(engine: FaceEngine, img: np.ndarray):
    """The primary face of ``img`` (its pixels) with landmarks from a face-sized detection:
    the detector looks again at a crop around the face scaled so that the eye distance is
    ``DETECT_IOD`` pixels, whatever the face's size and wherever it is in the frame."""
    from kiosk.vision.quality import primary_face

    f = primary_face(engine.detect(img), img.shape)
    if f is None or f.landmarks is None:
        return f
    g = face_sized_detection(engine, img, f)
    return g if g is not None else f


def face_sized_detection(engine: FaceEngine, img: np.ndarray, face):
    """``face`` detected again on a crop of ``img`` around it, resized so that its eye
    distance is ``DETECT_IOD`` px (None when the detector does not find it there). The
    detectors' landmarks depend on the face's size in pixels (small faces: biased toward
    frontal; large ones: misplaced) and on where the face falls on their grid of anchors;
    a crop at one scale gives the same face the same landmarks anywhere in any frame."""
    from kiosk.vision.quality import primary_face

    lm = np.asarray(face.landmarks, np.float64)
    d = _iod(lm)
    s = DETECT_IOD / d
    c = lm.mean(0)
    half = DETECT_CROP_IOD / 2 * d
    h, w = img.shape[:2]
    x0, y0 = int(max(0, np.floor(c[0] - half))), int(max(0, np.floor(c[1] - half)))
    x1, y1 = int(min(w, np.ceil(c[0] + half))), int(min(h, np.ceil(c[1] + half)))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    ow, oh = max(16, int(round((x1 - x0) * s))), max(16, int(round((y1 - y0) * s)))
    crop = cv2.resize(np.ascontiguousarray(img[y0:y1, x0:x1]), (ow, oh),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    g = primary_face(engine.detect(crop, max_side=max(ow, oh), pad_empty=False), crop.shape)
    if g is None or g.landmarks is None:
        return None
    gl = np.asarray(g.landmarks, np.float64)
    # and on the crop mirrored: the landmarks of the mirrored face, mirrored back (left and
    # right swapped), averaged with the first: a detector's errors that lean one way
    # (toward a frontal face, toward one side of its anchors) cancel, and the noise halves
    m = primary_face(engine.detect(np.ascontiguousarray(crop[:, ::-1]), max_side=max(ow, oh),
                                   pad_empty=False), crop.shape)
    if m is not None and m.landmarks is not None:
        ml = np.asarray(m.landmarks, np.float64)[[1, 0, 2, 4, 3]]
        ml[:, 0] = ow - 1 - ml[:, 0]
        if np.abs(ml - gl).max() < 0.25 * DETECT_IOD:
            gl = (gl + ml) / 2
    sx, sy = ow / (x1 - x0), oh / (y1 - y0)
    lmo = np.column_stack([(gl[:, 0] + 0.5) / sx - 0.5 + x0, (gl[:, 1] + 0.5) / sy - 0.5 + y0]).astype(np.float32)
    bx, by, bw, bh = (float(v) for v in g.bbox[:4])
    bbox = (bx / sx + x0, by / sy + y0, bw / sx, bh / sy)
    return type(g)(bbox=bbox, landmarks=lmo, det_score=g.det_score, raw=None)


def frames_from_path(engine: FaceEngine, path: Path, max_frames: int = 120, fps: float | None = None) -> list[LiveFrame]:
    """A recorded sequence (video file or folder of images) as LiveFrames. A folder's
    frame rate is ``fps``, else its ``fps.txt``, else 12 (the kiosk's)."""
    from kiosk.vision.camera import IMAGE_EXT, FolderCapture
    from kiosk.vision.image_io import check_video_capture

    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXT)
        fps = fps or folder_fps(p)
        cap = FolderCapture(p, loop=False)
        count = min(len(files), max_frames)
        ts_of = lambda i: i / fps  # noqa: E731
    elif p.is_file():
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise ModelError(f"无法打开视频：{p}", detail=f"cv2.VideoCapture failed for {p}")
        try:
            check_video_capture(cap, str(p))     # frame size from the header, before decoding
        except Exception:
            cap.release()
            raise
        rate = cap.get(cv2.CAP_PROP_FPS) or fps or 12.0
        count = min(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or max_frames), max_frames)
        ts_of = lambda i: i / rate  # noqa: E731
    else:
        raise ModelError(f"找不到：{p}", detail=f"no such file or folder: {p}")
    out = []
    for i in range(count):
        ok, img = cap.read()
        if not ok or img is None:
            break
        f = detect_for_liveness(engine, img)
        out.append(LiveFrame(ts_of(i), f.bbox if f else None, f.landmarks if f else None,
                             cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    cap.release()
    return out


def check_recording(engine: FaceEngine, frames: list[LiveFrame], challenge: str | None) -> LivenessResult:
    """``challenge`` None: either direction (a recording of a disputed meal)."""
    if challenge:
        return check_active(frames, challenge)
    results = [check_active(frames, c) for c in CHALLENGES]
    live = [r for r in results if r.live]
    return live[0] if live else max(results, key=lambda r: r.score or 0.0)
