"""The 1:N decision: a match needs score >= threshold AND a margin over the
best *other* resident; otherwise unknown or ambiguous."""
from __future__ import annotations

from kiosk.vision.types import Candidate, MatchResult


def decide(candidates: list[Candidate], threshold: float, margin: float) -> MatchResult:
    if not candidates:
        return MatchResult("unknown", None, None)
    best = candidates[0]
    runner = candidates[1] if len(candidates) > 1 else None
    if best.score < threshold:
        return MatchResult("unknown", None, best.score, runner, tuple(candidates))
    if runner is not None and best.score - runner.score < margin:
        return MatchResult("ambiguous", None, best.score, runner, tuple(candidates))
    return MatchResult("matched", best.resident_id, best.score, runner, tuple(candidates))
