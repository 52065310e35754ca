"""Liveness.

Active (the default, no model needed): during a spoken challenge (请慢慢向左转头 /
向右) the face must turn the asked way, progressively, in one continuous track,
and its landmarks must show *parallax*: a flat picture (a held photo or a phone
screen), however it is moved, tilted or warped, maps the eyes and mouth corners
of one frame onto another by a single homography, and the nose tip follows the
same homography because it lies in the same plane. A real nose stands out of
the plane of the eyes and mouth, so when a real head turns, the nose lands away
from where that homography puts it.

Passive (when an ONNX anti-spoofing model is configured): an 80x80 aligned crop
scored by the model (insightface's liveness add-on and MiniFASNet-style models
both take 80x80)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError
from .quality import pose_from_landmarks
from .tracker import iou

CHALLENGES = {"left": ("请慢慢向左转头", +1), "right": ("请慢慢向右转头", -1)}


@dataclass(frozen=True)
class LiveFrame:
    """What the check needs from one frame (None: no face in that frame)."""

    ts: float
    bbox: tuple[float, float, float, float] | None
    landmarks: np.ndarray | None
    gray: np.ndarray | None = None   # the frame in grey levels, for the dense planarity test


@dataclass(frozen=True)
class LivenessConfig:
    min_turn: float = 0.12          # yaw proxy change the challenge needs
    min_parallax: float = 0.07      # nose off the eyes/mouth homography, in eye distances
    max_jump_share: float = 0.7     # one frame may carry at most this share of the turn
    min_frames: int = 5
    max_gap_frames: int = 3
    min_iou: float = 0.3
    max_gap_s: float = 0.6
    plane_tolerance: float = 0.04   # a tracked point within this many eye distances fits the plane
    max_planar_share: float = 0.85  # this share of face points on one homography = a flat picture
    max_roll_deg: float = 15.0      # a head turning left or right keeps its eye line about level
    min_tracked: int = 20           # face points the dense test must follow from the first frame to the turn


@dataclass(frozen=True)
class LivenessResult:
    live: bool
    score: float | None
    reason: str
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"live": self.live, "score": None if self.score is None else round(self.score, 4),
                "reason": self.reason}


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


_LK = dict(winSize=(15, 15), maxLevel=3,
           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))


def planar_share(grays: list[np.ndarray], bbox, iod: float, tolerance: float) -> tuple[float, int]:
    """Track corners of the face from the first frame to the last (a chain of small
    steps, then one direct refinement, forward-backward checked) and return the share
    of them that one homography explains, and how many were tracked."""
    g0 = grays[0]
    x, y, w, h = (int(v) for v in bbox)
    mask = np.zeros_like(g0)
    mask[max(0, y):y + h, max(0, x):x + w] = 255
    p0 = cv2.goodFeaturesToTrack(g0, 300, 0.005, 3, mask=mask)
    if p0 is None or len(p0) < 12:
        return 0.0, 0 if p0 is None else len(p0)
    pts = p0.copy()
    ok = np.ones(len(p0), bool)
    for a, b in zip(grays, grays[1:]):
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, pts, None, **_LK)
        ok &= st.ravel() == 1
        pts = nxt
    ref, st, _ = cv2.calcOpticalFlowPyrLK(g0, grays[-1], p0, pts.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(grays[-1], g0, ref, p0.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK)
    ok &= (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 0.7)
    a, b = p0[ok].reshape(-1, 2), ref[ok].reshape(-1, 2)
    if len(a) < 12:
        return 0.0, len(a)
    H, _ = cv2.findHomography(a, b, cv2.RANSAC, tolerance * iod)
    if H is None:
        return 0.0, len(a)
    res = np.linalg.norm(cv2.perspectiveTransform(a[None].astype(np.float64), H)[0] - b, axis=1) / iod
    return float((res < tolerance).mean()), len(a)


def check_active(frames: list[LiveFrame], challenge: str,
                 cfg: LivenessConfig = LivenessConfig()) -> LivenessResult:
    if challenge not in CHALLENGES:
        raise ValueError(f"challenge must be one of {sorted(CHALLENGES)}")
    sign = CHALLENGES[challenge][1]
    seen = [f for f in frames if f.bbox is not None and f.landmarks is not None]
    if len(seen) < cfg.min_frames:
        return LivenessResult(False, None, "没有看清您的脸，请再试一次", {"frames": len(seen)})
    # one continuous track: no cut, no jump, no long gap
    gap = 0
    prev = None
    for f in frames:
        if f.bbox is None:
            gap += 1
            if gap > cfg.max_gap_frames:
                return LivenessResult(False, None, "画面中断，请再试一次", {"gap_frames": gap})
            continue
        if prev is not None:
            if iou(prev.bbox, f.bbox) < cfg.min_iou or f.ts - prev.ts > cfg.max_gap_s + gap * cfg.max_gap_s:
                return LivenessResult(False, None, "画面不连续，请再试一次", {"cut_at": f.ts})
        prev, gap = f, 0
    ref = seen[0]
    yaw0 = pose_from_landmarks(ref.landmarks)[0]
    yaws = np.array([pose_from_landmarks(f.landmarks)[0] for f in seen])
    turn = (yaws - yaw0) * sign
    k = int(np.argmax(turn))
    best_turn = float(turn[k])
    if best_turn < cfg.min_turn:
        return LivenessResult(False, 0.0, f"没有看到{'向左' if sign > 0 else '向右'}转头，请慢慢转头",
                              {"turn": best_turn})
    rolls = np.array([np.degrees(np.arctan2(*(f.landmarks[1] - f.landmarks[0])[::-1])) for f in seen])
    if np.abs(rolls - rolls[0]).max() > cfg.max_roll_deg:
        return LivenessResult(False, 0.0, "请不要歪头，慢慢向一边转头", {"roll": float(np.abs(rolls - rolls[0]).max())})
    steps = np.abs(np.diff(turn[: k + 1])) if k > 0 else np.array([best_turn])
    if steps.max() > cfg.max_jump_share * best_turn:
        return LivenessResult(False, 0.0, "转头太突然，请慢慢转头", {"turn": best_turn, "jump": float(steps.max())})
    par = [nose_parallax(ref.landmarks, f.landmarks) for f in seen]
    best_par = max(par[j] for j in range(len(seen)) if turn[j] >= 0.6 * best_turn)
    score = best_par / cfg.min_parallax
    details = {"turn": round(best_turn, 4), "parallax": round(best_par, 4), "frames": len(seen)}
    if best_par < cfg.min_parallax:
        return LivenessResult(False, score, "检测到照片或屏幕，请本人到场", details)
    # dense test over the face, from the first frame to the frame of the largest turn. It runs
    # whenever the caller gave grey frames (the kiosk and the CLI always do): a frame without a
    # face in between does not skip it, and a track that cannot be followed is not taken as live.
    # Callers with landmarks only (geometry tests) get the landmark tests alone.
    if any(f.gray is not None for f in frames):
        i0, ik = frames.index(ref), frames.index(seen[k])
        span = frames[i0:ik + 1]
        grays = [f.gray for f in span if f.gray is not None]
        if span[0].gray is None or span[-1].gray is None or len(grays) < 2:
            return LivenessResult(False, 0.0, "画面不连续，请再试一次", {**details, "grey_frames": len(grays)})
        iod = float(np.linalg.norm(ref.landmarks[1] - ref.landmarks[0])) or 1.0
        share, tracked = planar_share(grays, ref.bbox, iod, cfg.plane_tolerance)
        details.update(planar_share=round(share, 3), tracked=tracked)
        if tracked < cfg.min_tracked:
            return LivenessResult(False, 0.0, "画面不连续，请再试一次", details)
        if share >= cfg.max_planar_share:
            return LivenessResult(False, min(score, (1 - share) / (1 - cfg.max_planar_share)),
                                  "检测到照片或屏幕，请本人到场", details)
        score = min(score, (1 - share) / (1 - cfg.max_planar_share))
    return LivenessResult(True, score, "活体检测通过", details)


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
        from .onnx_session import make_session

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
        return LivenessResult(ok, s, "活体检测通过" if ok else "检测到照片或屏幕，请本人到场")


def frames_from_path(engine, path: Path, max_frames: int = 120, fps: float = 12.0) -> list[LiveFrame]:
    """A recorded sequence (video file or folder of images) as LiveFrames."""
    from .camera import IMAGE_EXT, FolderCapture
    from .quality import primary_face

    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXT)
        cap = FolderCapture(p, loop=False)
        count = min(len(files), max_frames)
        ts_of = lambda i: i / fps  # noqa: E731
    elif p.is_file():
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise ModelError(f"无法打开视频：{p}", detail=f"cv2.VideoCapture failed for {p}")
        rate = cap.get(cv2.CAP_PROP_FPS) or fps
        count = min(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or max_frames), max_frames)
        ts_of = lambda i: i / rate  # noqa: E731
    else:
        raise ModelError(f"找不到：{p}", detail=f"no such file or folder: {p}")
    out = []
    for i in range(count):
        ok, img = cap.read()
        if not ok or img is None:
            break
        f = primary_face(engine.detect(img), img.shape)
        out.append(LiveFrame(ts_of(i), f.bbox if f else None, f.landmarks if f else None,
                             cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    cap.release()
    return out


def check_recording(engine, frames: list[LiveFrame], challenge: str | None) -> LivenessResult:
    """``challenge`` None: either direction (a recording of a disputed meal)."""
    if challenge:
        return check_active(frames, challenge)
    results = [check_active(frames, c) for c in CHALLENGES]
    live = [r for r in results if r.live]
    return live[0] if live else max(results, key=lambda r: r.score or 0.0)
