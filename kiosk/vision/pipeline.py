"""Per-frame recognition: detect -> quality gate -> embed -> match -> vote.
Qt-free; the UI runs it on a worker thread.

Several faces in a frame: only the customer's is used, the largest
(``quality.primary_face``). The others are never embedded or matched; a second
face at least ``QualityThresholds.rival_area_ratio`` (60 %) of the customer's
area makes the frame fail the gate with ``multiple_faces`` (请一位一位来), so
nobody is decided while two people stand side by side. The tracker follows the
customer's face; when the largest face becomes someone else's (no overlap), a
new track starts and earlier votes do not count for it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .engine import OnnxFaceEngine
from .quality import QualityReport, QualityThresholds
from .tracker import Decision, PersonTracker
from .types import Face, MatchResult


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


class RecognitionPipeline:
    def __init__(self, engine: OnnxFaceEngine, match: Callable[[np.ndarray], MatchResult],
                 tracker: PersonTracker | None = None,
                 thresholds: QualityThresholds = QualityThresholds()) -> None:
        self.engine, self._match = engine, match
        self.tracker = tracker or PersonTracker()
        self.thresholds = thresholds

    def process(self, image: np.ndarray, ts: float | None = None) -> FrameResult:
        ts = time.monotonic() if ts is None else ts
        obs = self.engine.observe(image, self.thresholds)
        track = self.tracker.observe(obs.primary.bbox if obs.primary else None, ts)
        match = None
        decision = self.tracker.decide() if track else Decision("pending")
        if obs.embedding is not None:   # only frames that passed the quality gate are embedded
            t0 = time.perf_counter()
            match = self._match(obs.embedding)
            obs.timings_ms["search"] = (time.perf_counter() - t0) * 1000
            decision = self.tracker.vote(match, obs.quality.score if obs.quality else 0.0)
        obs.timings_ms["total"] = sum(obs.timings_ms.values())
        return FrameResult(obs.faces, obs.primary, obs.quality, match, decision, obs.timings_ms,
                           obs.embedding, obs.aligned)

    def reset(self) -> None:
        self.tracker.reset()
