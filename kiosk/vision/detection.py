"""Face detectors. YuNet runs on OpenCV's DNN; SCRFD on onnxruntime through
insightface's model class."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .types import Face

# Detection runs on an image no larger than this (long side); boxes are scaled back.
MAX_DETECT_SIDE = 1280


def _downscale(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    s = max(h, w)
    if s <= max_side:
        return img, 1.0
    scale = max_side / s
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA), scale


class YuNetDetector:
    """OpenCV Zoo YuNet (face_detection_yunet_2023mar.onnx)."""

    def __init__(self, model_path: Path, score_threshold: float = 0.7,
                 nms_threshold: float = 0.3, max_side: int = MAX_DETECT_SIDE) -> None:
        self.max_side = max_side
        self._det = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320),
                                              score_threshold, nms_threshold, 5000)
        self._size: tuple[int, int] | None = None

    def detect(self, img: np.ndarray) -> list[Face]:
        small, scale = _downscale(img, self.max_side)
        h, w = small.shape[:2]
        if self._size != (w, h):
            self._det.setInputSize((w, h))
            self._size = (w, h)
        _, rows = self._det.detect(small)
        faces: list[Face] = []
        if rows is None:
            return faces
        for r in rows:
            r = r.astype(np.float32)
            rr = r.copy()
            rr[:14] /= scale
            faces.append(Face(bbox=(float(rr[0]), float(rr[1]), float(rr[2]), float(rr[3])),
                              landmarks=rr[4:14].reshape(5, 2).copy(),
                              det_score=float(r[14]), raw=rr))
        return faces


class ScrfdDetector:
    """InsightFace SCRFD (scrfd_500m_bnkps.onnx) via insightface.model_zoo.SCRFD."""

    def __init__(self, model_path: Path, score_threshold: float = 0.5,
                 input_size: tuple[int, int] = (640, 640), max_side: int = MAX_DETECT_SIDE) -> None:
        from insightface.model_zoo.scrfd import SCRFD

        from .onnx_session import make_session

        self._model = SCRFD(model_file=str(model_path), session=make_session(model_path))
        self._model.prepare(-1, input_size=input_size, det_thresh=score_threshold)
        self._input_size = input_size
        self._threshold = score_threshold
        self.max_side = max_side

    def detect(self, img: np.ndarray) -> list[Face]:
        small, scale = _downscale(img, self.max_side)
        det, kpss = self._model.detect(small, input_size=self._input_size, det_thresh=self._threshold)
        faces: list[Face] = []
        for i in range(det.shape[0]):
            x1, y1, x2, y2, score = (float(v) / scale if j < 4 else float(v)
                                     for j, v in enumerate(det[i]))
            lm = (kpss[i] / scale).astype(np.float32) if kpss is not None else np.zeros((5, 2), np.float32)
            faces.append(Face(bbox=(x1, y1, x2 - x1, y2 - y1), landmarks=lm, det_score=score))
        return faces
