"""The camera at the counter and who stands in front of it.

``Presence`` keeps the plain facts of each frame (a face or none, the tracker's person,
the decision, the frame's own match); the queue-safety rule reads it: a face bill is
settled only while its elder is in front. ``CounterCamera`` opens the camera and the
recognition pipeline and answers the screens' questions about who is there."""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

PRESENT_S = 2.0             # a face seen this recently counts as "still in front"


class Presence:
    """Who stands in front of the camera, from the frames the kiosk sees (plain facts of
    each frame: a face or none, the tracker's person, the decision, the frame's own match).
    The queue-safety rule reads it: a face bill is settled only while its elder is in front."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_face_at: float | None = None
        self.track_id: int | None = None
        self.who: str | None = None
        self.recent: deque = deque(maxlen=3)     # the person's latest per-frame matches (id or None)

    def note(self, has_face: bool, track_id: int | None, decision: str, resident_id: str | None,
             match_status: str | None, match_resident: str | None) -> None:
        if not has_face:
            return
        self.last_face_at = self.clock()
        if track_id != self.track_id:
            self.track_id, self.who = track_id, None
            self.recent.clear()
        if decision == "identified" and resident_id:
            self.who = resident_id
        if match_status is not None:
            self.recent.append(match_resident if match_status == "matched" else None)

    def absent_for(self) -> float:
        return float("inf") if self.last_face_at is None else self.clock() - self.last_face_at

    def in_front(self, resident_id: str, within_s: float = PRESENT_S) -> bool:
        if self.absent_for() > within_s or self.who != resident_id:
            return False
        r = list(self.recent)
        if sum(1 for x in r if x not in (None, resident_id)) >= 2:
            return False                     # somebody else stands there now
        return not (len(r) == 3 and all(x is None for x in r))

    def someone_else(self, resident_id: str) -> bool:
        """Another recognised resident is in front now."""
        return self.absent_for() <= PRESENT_S and self.who not in (None, resident_id)

    def reset(self) -> None:
        self.track_id, self.who = None, None
        self.recent.clear()


class CounterCamera:
    """The camera, the recognition pipeline and the presence of the person in front."""

    def __init__(self, app) -> None:
        self.app = app
        self.tracker = Presence()

    def open_source(self, spec: Any = None, capture: Any = None):
        """The camera (or a file, folder, URL, or a given capture), reconnecting by itself."""
        from kiosk.vision.camera import ResilientSource, opener_for

        opener = (lambda: capture) if capture is not None else opener_for(spec if spec is not None else 0)
        return ResilientSource(opener)

    def recognition_pipeline(self):
        from kiosk.vision.pipeline import RecognitionPipeline
        from kiosk.vision.tracker import PersonTracker

        s = self.app.settings
        pipe = RecognitionPipeline(self.app.engine, self.app.faces.match,
                                   PersonTracker(votes_needed=s.votes_needed, window=s.vote_window))
        self.app.faces.gallery()            # load the index before the first frame
        return pipe

    def note_frame(self, has_face: bool, track_id: int | None, decision: str, resident_id: str | None,
                   match_status: str | None, match_resident: str | None) -> None:
        """Each frame's plain facts, for the queue-safety rule."""
        self.tracker.note(has_face, track_id, decision, resident_id, match_status, match_resident)

    def still_in_front(self, resident_id: str) -> bool:
        """Re-checked at the tap on 确认: the recognised elder's face is in front now."""
        return self.tracker.in_front(resident_id)

    def absent_for(self) -> float:
        """Seconds since any face was in front of the camera."""
        return self.tracker.absent_for()

    def same_face(self, a, b) -> bool:
        """Two embeddings of the camera's faces are one person's (the backend's match
        threshold): a card sale remembers the face that stood there, so the same unrecognised
        face is not sent to the card page again while it stays."""
        from kiosk.vision.engine import BACKEND_DEFAULTS

        d = BACKEND_DEFAULTS.get(getattr(self.app.engine, "name", ""))
        return a is not None and b is not None and d is not None and float(a @ b) >= d.match_threshold

    def someone_else_in_front(self, resident_id: str) -> bool:
        return self.tracker.someone_else(resident_id)

    def forget_person(self) -> None:
        self.tracker.reset()
