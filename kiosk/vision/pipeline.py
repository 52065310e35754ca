"""Per-frame recognition: detect -> quality gate -> embed -> match -> vote.
Qt-free; the UI runs it on a worker thread.

Several faces in a frame: only the customer's is used, the largest
(``quality.primary_face``). The others are never embedded or matched; a second
face at least ``QualityThresholds.rival_area_ratio`` (60 %) of the customer's
area makes the frame fail the gate with ``multiple_faces`` (请一位一位来), so
nobody is decided while two people stand side by side. The tracker follows the
customer's face; when the largest face becomes someone else's (no overlap), a
new track starts and earlier votes do not count for it.

Speed (docs/benchmarks.md): a camera frame is detected at 640 px at most
(``OnnxFaceEngine.observe_frame``; quality, alignment and embedding at full size),
and the padded second look of an empty frame is taken only when the last face was
near (``NEAR_FACE_RATIO`` of the frame). While one face, and only one, is in front of
the camera, the frames between full looks (one in ``FULL_LOOK_EVERY``) are looked at
only around where that face was (``around``: a region a few times smaller than the
frame); a frame whose region shows no face gets a full look at once, and so does every
frame after a full look that found no face or more than one, so a second person is seen
within ``FULL_LOOK_EVERY`` frames of stepping in (a third of a second at 12 fps), and from
then on every frame is looked at whole while the two stand together. The same holds
through the head-turn check after the decision: its landmarks come from both kinds of
look, which the check was measured on (docs/benchmarks.md: the 18 live clips in a 640x480
frame at six sizes, 103 of 108 accepted their own way with the region looks and 103 with
full looks only, none the other way). ``hurry`` tells the vision worker that a face waits for its
decision: it then takes every camera frame instead of its idle pace."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kiosk.vision.engine import BACKEND_DEFAULTS, FaceEngine, FaceObservation
from kiosk.vision.quality import QualityReport, QualityThresholds
from kiosk.vision.tracker import BACKEND, Decision, PersonTracker
from kiosk.vision.types import Face, MatchResult


@dataclass
class FrameResult:
    faces: list[Face]
    primary: Face | None
    quality: QualityReport | None
    match: MatchResult | None
    decision: Decision
    timings_ms: dict[str, float] = field(default_factory=dict)
    embedding: np.ndarray | None = None
    aligned: np.ndarray | None = None

    @property
    def hint(self) -> str | None:
        return self.quality.hint if self.quality else None


# A face at least this share of the frame's width or height is near: when the next frame
# shows no face, it gets the padded second look (a face grown to fill the frame).
NEAR_FACE_RATIO = 0.5
# ``hurry`` for at most this long per person (seconds since the face's track began)
HURRY_S = 3.0
# one frame in this many is looked at whole while a single face is followed (the module's docstring)
FULL_LOOK_EVERY = 4


class FrameLooker:
    """How the kiosk looks at its camera's frames, one after another (the module's
    docstring): the padded look only after a near face, and around the one face in front
    between full looks. The pipeline and `kiosk bench` look through it."""

    def __init__(self, engine: FaceEngine, thresholds: QualityThresholds = QualityThresholds()) -> None:
        self.engine, self.thresholds = engine, thresholds
        self.reset()

    def look(self, image: np.ndarray) -> FaceObservation:
        around = self._around if self.follow and self._since_full < FULL_LOOK_EVERY - 1 else None
        obs = self.engine.observe_frame(image, self.thresholds, near=self._near, around=around)
        p = obs.primary
        h, w = image.shape[:2]
        self._near = p is not None and (p.bbox[2] >= NEAR_FACE_RATIO * w or p.bbox[3] >= NEAR_FACE_RATIO * h)
        self._since_full = 0 if obs.region is None else self._since_full + 1
        self._around = p.bbox if p is not None and len(obs.faces) == 1 else None   # alone: follow it
        return obs

    def reset(self) -> None:
        self.follow = True                      # False: every frame looked at whole (to compare the two)
        self._near = False
        self._around: tuple | None = None       # where the one face in front was (None: look at the whole frame)
        self._since_full = 0                    # frames looked at around a face since the last full look


class RecognitionPipeline:
    def __init__(self, engine: FaceEngine, match: Callable[[np.ndarray], MatchResult],
                 tracker: PersonTracker | None = None,
                 thresholds: QualityThresholds = QualityThresholds()) -> None:
        self.engine, self._match = engine, match
        self.tracker = tracker or PersonTracker()
        if self.tracker.strong_score == BACKEND:
            d = BACKEND_DEFAULTS.get(getattr(engine, "name", ""))
            self.tracker.strong_score = d.strong_score if d else None
        self.thresholds = thresholds
        self.looker = FrameLooker(engine, thresholds)
        self._track_id, self._track_since = None, 0.0
        self.hurry = False      # a face is in front and its decision is pending

    def process(self, image: np.ndarray, ts: float | None = None) -> FrameResult:
        ts = time.monotonic() if ts is None else ts
        obs = self.looker.look(image)
        p = obs.primary
        track = self.tracker.observe(p.bbox if p else None, ts)
        match = None
        decision = self.tracker.decide() if track else Decision("pending")
        if obs.embedding is not None:   # only frames that passed the quality gate are embedded
            t0 = time.perf_counter()
            match = self._match(obs.embedding)
            obs.timings_ms["search"] = (time.perf_counter() - t0) * 1000
            decision = self.tracker.vote(match, obs.quality.score if obs.quality else 0.0)
        if track is not None and track.id != self._track_id:
            self._track_id, self._track_since = track.id, ts
        # a face stuck pending (too small, a poster on the wall) stops hurrying after HURRY_S
        self.hurry = p is not None and decision.state == "pending" and ts - self._track_since < HURRY_S
        obs.timings_ms["total"] = sum(obs.timings_ms.values())
        return FrameResult(obs.faces, obs.primary, obs.quality, match, decision, obs.timings_ms,
                           obs.embedding, obs.aligned)

    def reset(self) -> None:
        self.tracker.reset()
        self.looker.reset()
        self.hurry = False
        self._track_id = None
