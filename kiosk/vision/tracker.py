"""Decide on a person, not a frame: the primary face (the largest, the
customer's; see ``quality.primary_face``) is tracked across frames and
identified only when enough recent good-quality frames agree (quality-weighted
voting, as Frigate does per track). Other faces in the frame are not tracked."""
from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass, field

from .types import MatchResult

_ids = itertools.count(1)


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


@dataclass
class Track:
    id: int
    bbox: tuple[float, float, float, float]
    last_ts: float
    votes: deque = field(default_factory=deque)


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
                 iou_min: float = 0.25, max_gap_s: float = 1.5, min_support: float = 1.0) -> None:
        """``min_support``: the quality weights of the agreeing frames must add up to this."""
        self.votes_needed, self.window, self.unknown_after = votes_needed, window, unknown_after
        self.min_support = min_support
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
        t.votes.append(Vote(result.status, result.resident_id, result.score, max(0.05, weight)))
        return self.decide()

    def decide(self) -> Decision:
        t = self.track
        if t is None or not t.votes:
            return Decision("pending")
        matched = Counter(v.resident_id for v in t.votes if v.status == "matched")
        conflict = sum(1 for v in t.votes if v.status == "ambiguous")
        if matched:
            rid, n = matched.most_common(1)[0]
            others = sum(c for r, c in matched.items() if r != rid)
            if n >= self.votes_needed and others == 0 and conflict == 0:
                w_for = sum(v.weight for v in t.votes if v.resident_id == rid)
                best = max(v.score or 0.0 for v in t.votes if v.resident_id == rid)
                if w_for >= self.min_support:
                    return Decision("identified", rid, best, n, t.id)
        if len(t.votes) >= min(self.unknown_after, self.window) and not matched:
            return Decision("unknown", None, None, 0, t.id)
        return Decision("pending", None, None, 0, t.id)

    def reset(self) -> None:
        self.track = None
