"""Records that cross the vision boundary (frozen dataclasses)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in image pixels. ``landmarks`` is 5×2 in the order
    image-left eye, image-right eye, nose tip, image-left and image-right mouth corner."""

    bbox: tuple[float, float, float, float]  # x, y, w, h
    landmarks: np.ndarray = field(compare=False, repr=False)
    det_score: float
    raw: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def area(self) -> float:
        return max(0.0, self.bbox[2]) * max(0.0, self.bbox[3])

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2


@dataclass(frozen=True)
class ModelContract:
    """Identifies the embedding space. Templates made under one contract are
    never compared with embeddings of another."""

    backend: str
    recognizer: str
    sha256_prefix: str
    dim: int

    @property
    def id(self) -> str:
        return f"{self.backend}/{self.recognizer}@{self.sha256_prefix}/d{self.dim}"


@dataclass(frozen=True)
class Candidate:
    resident_id: str
    score: float
    template_id: str | None = None


@dataclass(frozen=True)
class MatchResult:
    """Outcome of a gallery search for one embedding.

    status: ``matched`` | ``unknown`` | ``ambiguous``."""

    status: str
    resident_id: str | None
    score: float | None
    runner_up: Candidate | None = None
    candidates: tuple[Candidate, ...] = ()
