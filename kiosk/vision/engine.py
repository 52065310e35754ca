"""One FaceEngine interface, two backends (``sface`` default, ``insightface``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from kiosk.vision.detection import (FRAME_DETECT_SIDE, MAX_DETECT_SIDE, PHOTO_DETECT_SIDE, PHOTO_MIN_FACE,
                                    ScrfdDetector, YuNetDetector)
from kiosk.vision.embedding import ArcFaceEmbedder, SFaceEmbedder
from kiosk.vision.modelpacks import get_pack, verify_pack
from kiosk.vision.quality import (IDENTIFY_THRESHOLDS, STILL_THRESHOLDS, QualityReport, QualityThresholds,
                      assess, measure, primary_face)
from kiosk.vision.types import Face, ModelContract


@dataclass(frozen=True)
class BackendDefaults:
    """Calibrated operating point of a backend (see docs/calibration.md)."""

    match_threshold: float
    match_margin: float
    duplicate_threshold: float  # enrollment: a new face this close to another resident is refused
    # the kiosk's tracker decides on 2 frames instead of 3 when both score at least this
    # (and lead the next resident by 0.20; ``tracker.PersonTracker``)
    strong_score: float | None = None


# Calibrated by `python -m kiosk.vision.calibrate` on real photos; the figures
# behind these numbers are in docs/calibration.md. strong_score: 0.15 above the
# threshold, well above every stranger measured (docs/benchmarks.md, "voting").
BACKEND_DEFAULTS: dict[str, BackendDefaults] = {
    "sface": BackendDefaults(match_threshold=0.50, match_margin=0.06, duplicate_threshold=0.45, strong_score=0.65),
    "insightface": BackendDefaults(match_threshold=0.45, match_margin=0.06, duplicate_threshold=0.33,
                                   strong_score=0.60),
}


class FaceEngine(Protocol):
    """What the rest of the code needs of a face engine (``OnnxFaceEngine`` is the one
    built from model packs); functions that are given an engine take this type."""
    name: str
    contract: ModelContract

    def detect(self, img: np.ndarray, *, max_side: int | None = None, pad_empty: bool = True) -> list[Face]: ...
    def align(self, img: np.ndarray, face: Face) -> np.ndarray: ...
    def embed_aligned(self, crop: np.ndarray) -> np.ndarray: ...
    def observe(self, img: np.ndarray, thresholds: QualityThresholds = ..., *, embed_only_if_ok: bool = True,
                detect_side: int | None = None, pad_empty: bool = True) -> FaceObservation: ...
    def observe_frame(self, img: np.ndarray, thresholds: QualityThresholds = ..., *,
                      near: bool = False, around: tuple | None = None) -> FaceObservation: ...
    def observe_still(self, img: np.ndarray) -> FaceObservation: ...
    def observe_probe(self, img: np.ndarray) -> FaceObservation: ...


@dataclass
class FaceObservation:
    """What the pipeline learned from one image or frame."""

    faces: list[Face]
    primary: Face | None
    quality: QualityReport | None
    embedding: np.ndarray | None = None
    aligned: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    region: tuple | None = None      # a camera frame looked at only around this box (observe_frame)


class OnnxFaceEngine:
    """A detector and a recognizer from one model pack."""

    def __init__(self, name: str, detector, embedder, contract: ModelContract) -> None:
        self.name = name
        self._det = detector
        self._emb = embedder
        self.contract = contract

    def detect(self, img: np.ndarray, *, max_side: int | None = None, pad_empty: bool = True) -> list[Face]:
        """Faces in ``img``; photos by default (see ``detection``: at most 1,280 px, and a
        padded second look when nothing was found)."""
        return self._det.detect(img, max_side=max_side, pad_empty=pad_empty)

    def align(self, img: np.ndarray, face: Face) -> np.ndarray:
        return self._emb.align(img, face)

    def embed_aligned(self, crop: np.ndarray) -> np.ndarray:
        return self._emb.embed_aligned(crop)

    def observe(self, img: np.ndarray, thresholds: QualityThresholds = QualityThresholds(),
                *, embed_only_if_ok: bool = True, detect_side: int | None = None,
                pad_empty: bool = True) -> FaceObservation:
        """Detect, pick the primary face, judge quality and embed when it passes.
        ``detect_side`` and ``pad_empty``: how to detect (``detect``); the quality gate,
        the alignment and the embedding always use ``img`` at its own size."""
        t0 = time.perf_counter()
        if detect_side is None:
            faces, prim = self._detect_photo(img, pad_empty)
        else:
            faces = self.detect(img, max_side=detect_side, pad_empty=pad_empty)
            prim = primary_face(faces, img.shape)
        return self._finish(img, faces, prim, thresholds, embed_only_if_ok, t0)

    def _finish(self, img: np.ndarray, faces: list[Face], prim: Face | None, thresholds: QualityThresholds,
                embed_only_if_ok: bool, t0: float, region: tuple | None = None) -> FaceObservation:
        """Quality gate, alignment and embedding of the primary face (detected since ``t0``)."""
        t1 = time.perf_counter()
        obs = FaceObservation(faces=faces, primary=prim, quality=None, region=region)
        obs.timings_ms["detect"] = (t1 - t0) * 1000
        if prim is None:
            return obs
        obs.quality = assess(measure(img, prim, faces), thresholds)
        t2 = time.perf_counter()
        obs.timings_ms["quality"] = (t2 - t1) * 1000
        if obs.quality.ok or not embed_only_if_ok:
            obs.aligned = self.align(img, prim)
            obs.embedding = self.embed_aligned(obs.aligned)
            obs.timings_ms["embed"] = (time.perf_counter() - t2) * 1000
        return obs

    def _detect_photo(self, img: np.ndarray, pad_empty: bool) -> tuple[list[Face], Face | None]:
        """A photo: first at ``PHOTO_DETECT_SIDE`` (the plain pipeline's size, better
        aligned), again at ``MAX_DETECT_SIDE`` when that finds no face or one too small
        there to place its landmarks well (detection's docstring)."""
        faces = self.detect(img, max_side=PHOTO_DETECT_SIDE, pad_empty=pad_empty)
        prim = primary_face(faces, img.shape)
        scale = min(1.0, PHOTO_DETECT_SIDE / max(img.shape[:2]))
        if prim is not None and min(prim.bbox[2], prim.bbox[3]) * scale >= PHOTO_MIN_FACE:
            return faces, prim
        if scale >= 1.0 and prim is not None:
            return faces, prim          # the image is no larger: a second look sees the same
        big = self.detect(img, max_side=MAX_DETECT_SIDE, pad_empty=pad_empty)
        big_prim = primary_face(big, img.shape)
        return (big, big_prim) if big_prim is not None else (faces, prim)

    def observe_frame(self, img: np.ndarray, thresholds: QualityThresholds = QualityThresholds(),
                      *, near: bool = False, around: tuple | None = None) -> FaceObservation:
        """A camera frame: detection on the frame scaled to at most ``FRAME_DETECT_SIDE``
        (640) px, the padded second look on an empty frame only when ``near`` (the last
        face was close enough to fill the frame next); quality, alignment and embedding
        on the frame at full resolution. ``around`` (the box of the last frame's face):
        look only in the region around it (``detection.detect_around``; ``region`` of the
        observation says where), and at the whole frame when no face is found there."""
        if around is not None:
            t0 = time.perf_counter()
            found = self._det.detect_around(img, around)
            if found:
                return self._finish(img, found, primary_face(found, img.shape), thresholds, True, t0,
                                    region=tuple(float(v) for v in around))
        return self.observe(img, thresholds, detect_side=FRAME_DETECT_SIDE, pad_empty=near)

    def observe_still(self, img: np.ndarray) -> FaceObservation:
        """For photo files given for enrolment: lenient thresholds for stills, but a
        template must be worth keeping."""
        return self.observe(img, STILL_THRESHOLDS)

    def observe_probe(self, img: np.ndarray) -> FaceObservation:
        """For photo files given for identification: refused only a face too small
        to identify, a profile, or a second face as large (``IDENTIFY_THRESHOLDS``)."""
        return self.observe(img, IDENTIFY_THRESHOLDS)


def create_engine(backend: str, model_dir: Path) -> OnnxFaceEngine:
    """Build the engine of ``backend`` from verified model files (ModelError otherwise)."""
    files = verify_pack(model_dir, backend)
    pack = get_pack(backend)
    rec = pack.file("recognizer")
    if backend == "sface":
        det, emb = YuNetDetector(files["detector"]), SFaceEmbedder(files["recognizer"])
    elif backend == "insightface":
        det, emb = ScrfdDetector(files["detector"]), ArcFaceEmbedder(files["recognizer"])
    else:  # pragma: no cover - settings validation refuses other names
        raise ValueError(backend)
    contract = ModelContract(backend=backend, recognizer=Path(rec.name).stem,
                             sha256_prefix=rec.sha256[:12], dim=emb.dim)
    return OnnxFaceEngine(backend, det, emb, contract)
