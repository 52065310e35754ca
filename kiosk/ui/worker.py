"""The vision pipeline on a worker thread: the UI thread never waits on a model."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, Signal, Slot

log = logging.getLogger(__name__)


@dataclass
class FrameEvent:
    image: np.ndarray
    boxes: list[tuple[float, float, float, float]]
    primary: tuple[float, float, float, float] | None
    hint: str | None
    decision: str                   # pending | identified | unknown
    resident_id: str | None
    score: float | None
    quality: float
    timings_ms: dict
    fps: float
    embedding: np.ndarray | None = None
    aligned: np.ndarray | None = None
    match_status: str | None = None
    landmarks: np.ndarray | None = None
    ts: float = 0.0
    live: bool = False
    track_id: int | None = None             # the tracker's person
    match_resident: str | None = None       # this frame's own match (before voting)


def event_from(r, image: np.ndarray, fps: float = 0.0, ts: float | None = None) -> FrameEvent:
    """A pipeline FrameResult as the event the window receives."""
    return FrameEvent(image, [x.bbox for x in r.faces], r.primary.bbox if r.primary else None, r.hint,
                      r.decision.state, r.decision.resident_id, r.decision.score,
                      r.quality.score if r.quality else 0.0, dict(r.timings_ms), fps,
                      r.embedding, r.aligned, r.match.status if r.match else None,
                      r.primary.landmarks if r.primary else None, time.monotonic() if ts is None else ts,
                      track_id=r.decision.track_id,
                      match_resident=r.match.resident_id if r.match and r.match.status == "matched" else None)


class VisionWorker(QThread):
    frame = Signal(object)          # FrameEvent
    source_state = Signal(str)      # live | reconnecting | lost
    failed = Signal(str)

    def __init__(self, source, pipeline, fps: float = 12.0, parent=None, hurry_fps: float = 30.0) -> None:
        """``fps``: the pace while nobody waits; ``hurry_fps``: while a face waits for its
        decision (``RecognitionPipeline.hurry``), every camera frame up to this rate."""
        super().__init__(parent)
        self.source, self.pipeline, self.fps, self.hurry_fps = source, pipeline, fps, hurry_fps
        self._running = True
        self._state = None

    def stop(self) -> None:
        self._running = False
        self.wait(3000)

    def reset_person(self) -> None:
        self.pipeline.reset()

    def period(self) -> float:
        """Seconds between frames now: shorter while a face waits for its decision."""
        return 1.0 / (max(self.fps, self.hurry_fps) if getattr(self.pipeline, "hurry", False) else self.fps)

    def run(self) -> None:
        last = time.monotonic()
        while self._running:
            t0 = time.monotonic()
            period = self.period()
            try:
                f = self.source.read()
                if self.source.state != self._state:
                    self._state = self.source.state
                    self.source_state.emit(self._state)
                if f is not None:
                    r = self.pipeline.process(f.image, f.ts)
                    now = time.monotonic()
                    fps = 1.0 / max(1e-3, now - last)
                    last = now
                    self.frame.emit(event_from(r, f.image, fps, f.ts))
            except Exception as exc:  # noqa: BLE001 - the loop must survive any one bad frame
                log.exception("vision worker")
                self.failed.emit(str(exc))
            time.sleep(max(0.0, period - (time.monotonic() - t0)))


class _TaskSignals(QObject):
    result = Signal(object)
    error = Signal(object)


class Task(QRunnable):
    """Run a service call on the thread pool; result / error come back as signals."""

    def __init__(self, fn, *args, **kwargs) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = _TaskSignals()

    @Slot()
    def run(self) -> None:
        try:
            out = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the UI as a signal
            self._emit(self.signals.error, exc)
        else:
            self._emit(self.signals.result, out)

    @staticmethod
    def _emit(signal, value) -> None:
        try:
            signal.emit(value)
        except RuntimeError:   # the window closed while this call ran: nobody to tell
            log.debug("task finished after its receiver was gone")
