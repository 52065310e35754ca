"""Duplicate-face rules, pure: one person must not hold two accounts."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kiosk.vision.types import Candidate


@dataclass(frozen=True)
class DuplicateVerdict:
    ok: bool
    reason: str | None = None           # "duplicate" | "inconsistent"
    other_resident_id: str | None = None
    score: float | None = None


def check_against_others(candidates: list[Candidate], resident_id: str,
                         duplicate_threshold: float) -> DuplicateVerdict:
    """A face at or above ``duplicate_threshold`` to another resident is a duplicate."""
    for c in candidates:
        if c.resident_id != resident_id and c.score >= duplicate_threshold:
            return DuplicateVerdict(False, "duplicate", c.resident_id, c.score)
    return DuplicateVerdict(True)


def check_capture_consistency(embeddings: list[np.ndarray],
                              best_other: list[Candidate | None]) -> DuplicateVerdict:
    """Refuse a capture whose frames look more like someone else than like each other."""
    if len(embeddings) < 2:
        return DuplicateVerdict(True)
    e = np.vstack([np.asarray(v, np.float32) for v in embeddings])
    sims = e @ e.T
    np.fill_diagonal(sims, -1.0)
    for i, other in enumerate(best_other):
        own = float(sims[i].max())
        if other is not None and other.score > own:
            return DuplicateVerdict(False, "inconsistent", other.resident_id, other.score)
    return DuplicateVerdict(True)
