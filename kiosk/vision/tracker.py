"""Decide on a person, not a frame: the primary face (the largest, the
customer's; see ``quality.primary_face``) is tracked across frames and
identified only when enough recent good-quality frames agree (quality-weighted
voting, as Frigate does per track). Other faces in the frame are not tracked.

The rule (``PersonTracker.decide``), over the track's last ``window`` gate-passing frames:

* **identified** when no frame in the window matched anybody else and none was
  ambiguous, the agreeing frames' quality weights add up to ``min_support``, and either
  ``votes_needed`` (3) frames matched the person, or ``strong_votes`` (one fewer: 2) were
  *strong*: a score at least ``strong_score`` (the backend's ``BackendDefaults.strong_score``:
  sface 0.65 against its 1:N threshold 0.50), a lead of ``strong_margin`` (0.20) over the
  best other resident and a quality weight of at least ``strong_quality`` (0.5). A clear
  match decides one frame sooner; a weak one still needs three. Measured on the bench's
  videos (2026-11-26, sface, gallery of 1,000): genuine frames scored 0.705 at the 5th
  percentile with a lead of 0.41 or more; no stranger frame of 1,465 scored over 0.361,
  and on the real calibration photos (docs/calibration.md) no stranger reached 0.42.
* **unknown** when ``unknown_after`` (6) frames passed the gate without one match *and*
  at least ``unknown_min_s`` (0.4 s) have gone by since the track's first such frame: the
  worker runs faster while a face waits for its decision (``RecognitionPipeline.hurry``),
  and an elder must not get less time to be recognised for it (6 frames at the old 12 fps
  took 0.42 s). "unknown" sends the elder to the card page; it is never decided early
  on low scores.
* otherwise **pending**."""
from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass, field

from kiosk.vision.types import MatchResult

_ids = itertools.count(1)
# ``PersonTracker(strong_score=BACKEND)``: the strong score of the engine's backend
BACKEND = "backend"


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    x1, y1 = max(ax, bx), max(ay, by)
    x2, y2 = min(ax + aw, bx + bw), min(ay + ah, by + bh)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Vote:
    status: str
    resident_id: str | None
    score: float | None
    weight: float
    runner_up: float | None = None     # the best other resident's score
    ts: float = 0.0


@dataclass
class Track:
    id: int
    bbox: tuple[float, float, float, float]
    last_ts: float
    votes: deque = field(default_factory=deque)
    first_vote_ts: float | None = None     # the track's first gate-passing frame


@dataclass(frozen=True)
class Decision:
    """``identified`` (resident_id set), ``unknown`` (enough frames, nobody), or
    ``pending`` (keep looking)."""

    state: str
    resident_id: str | None = None
    score: float | None = None
    votes: int = 0
    track_id: int | None = None


class PersonTracker:
    def __init__(self, votes_needed: int = 3, window: int = 6, unknown_after: int = 6,
                 iou_min: float = 0.25, max_gap_s: float = 1.5, min_support: float = 1.0,
                 strong_votes: int | None = None, strong_score: float | str | None = BACKEND,
                 strong_margin: float = 0.20,
                 strong_quality: float = 0.5, unknown_min_s: float = 0.4) -> None:
        """``min_support``: the quality weights of the agreeing frames must add up to this.
        ``strong_*``: the shorter way to a decision (module docstring); ``strong_score``
        ``BACKEND``: the engine's (``RecognitionPipeline`` sets it), None: off;
        ``strong_votes`` None: one fewer than ``votes_needed`` (a stricter setting stays
        stricter)."""
        self.votes_needed, self.window, self.unknown_after = votes_needed, window, unknown_after
        self.min_support = min_support
        self.strong_votes = strong_votes if strong_votes is not None else max(1, votes_needed - 1)
        self.strong_score = strong_score
        self.strong_margin, self.strong_quality = strong_margin, strong_quality
        self.unknown_min_s = unknown_min_s
        self.iou_min, self.max_gap_s = iou_min, max_gap_s
        self.track: Track | None = None

    def observe(self, bbox: tuple[float, float, float, float] | None, ts: float) -> Track | None:
        """Follow the primary face; a new face (no overlap, or a gap) starts a new track."""
        if bbox is None:
            if self.track and ts - self.track.last_ts > self.max_gap_s:
                self.track = None
            return self.track
        t = self.track
        if t is None or ts - t.last_ts > self.max_gap_s or iou(t.bbox, bbox) < self.iou_min:
            self.track = Track(next(_ids), bbox, ts, deque(maxlen=self.window))
        else:
            t.bbox, t.last_ts = bbox, ts
        return self.track

    def vote(self, result: MatchResult, weight: float) -> Decision:
        t = self.track
        if t is None:
            return Decision("pending")
        runner = result.runner_up.score if result.runner_up is not None else None
        if t.first_vote_ts is None:
            t.first_vote_ts = t.last_ts
        t.votes.append(Vote(result.status, result.resident_id, result.score, max(0.05, weight), runner, t.last_ts))
        return self.decide()

    def is_strong(self, v: Vote) -> bool:
        """A clear match: far above the threshold, far ahead of anybody else, a good frame."""
        s = self.strong_score
        return (isinstance(s, (int, float)) and not isinstance(s, bool) and v.status == "matched"
                and v.score is not None
                and v.score >= s and v.weight >= self.strong_quality
                and v.score - (v.runner_up if v.runner_up is not None else -1.0) >= self.strong_margin)

    def decide(self) -> Decision:
        t = self.track
        if t is None or not t.votes:
            return Decision("pending")
        matched = Counter(v.resident_id for v in t.votes if v.status == "matched")
        conflict = sum(1 for v in t.votes if v.status == "ambiguous")
        if matched:
            rid, n = matched.most_common(1)[0]
            others = sum(c for r, c in matched.items() if r != rid)
            mine = [v for v in t.votes if v.status == "matched" and v.resident_id == rid]
            strong = sum(1 for v in mine if self.is_strong(v))
            if (n >= self.votes_needed or strong >= self.strong_votes) and others == 0 and conflict == 0:
                w_for = sum(v.weight for v in mine)
                best = max(v.score or 0.0 for v in mine)
                if w_for >= self.min_support:
                    return Decision("identified", rid, best, n, t.id)
        if (len(t.votes) >= min(self.unknown_after, self.window) and not matched
                and t.votes[-1].ts - (t.first_vote_ts or 0.0) >= self.unknown_min_s):
            return Decision("unknown", None, None, 0, t.id)
        return Decision("pending", None, None, 0, t.id)

    def reset(self) -> None:
        self.track = None
