"""Face detectors. YuNet runs on OpenCV's DNN; SCRFD on onnxruntime through
insightface's model class.

Both detectors share one way of looking at an image (``_Detector.detect``):

1. the image is scaled down so its long side is at most ``max_side`` (1280):
   both models were trained on pictures of about that size, and YuNet run on a
   photo at its own size found no face in 10 of the 28 labelled calibration
   photos (all 1,200 to 2,500 px; docs/calibration.md);
2. when that finds no face, or a face whose box is at least 70 % of the image's
   width or height (a tightly cropped ID-style photo, an elder so close that the
   face fills the frame), the image is padded on every side with a plain
   border (its mean colour) of 40 % of its long side and looked at again, at most
   ``pad_side`` (640) px long. SCRFD finds no face at all in a crop that the face fills
   (issue 9: every 90×115 probe came back ``no_face``; measured here on crops of
   60 to 1,250 px: none found without a border, all with it), and YuNet finds
   none in a crop 1,250 px tall and places the landmarks of a face that fills a
   crop less well (tight crops recognised at 0.50: 25 of 28 without the second
   look when a face was found, 26 of 28 with it).
   Boxes and landmarks are mapped back to the caller's image, so a box may reach
   over its edge; the face is aligned from the caller's image (pixels outside it
   are black, which scored better than a replicated border: mean genuine score
   of tight crops 0.716 against 0.694 with SFace, 0.705 against 0.680 with ArcFace).

The padded second look is one more detection, only on frames without a face or
with a face that fills the frame (a 640×480 frame with nobody in it, measured
on the shared 2-core box under load: YuNet 38 → 67 ms, SCRFD 100 → 167 ms; a
frame with a face of ordinary size costs what it did).

Camera frames (``RecognitionPipeline``, through ``OnnxFaceEngine.observe_frame``)
are looked at differently, for speed:

* at most ``FRAME_DETECT_SIDE`` (640) px long: a face at the counter is 200–300 px
  tall at 720p, 100–150 px once scaled, far above what YuNet needs; the box and
  the landmarks are mapped back, and the quality gate, the alignment and the
  embedding use the full-resolution frame. A 1280×720 frame: YuNet 24.0 → 6.5 ms
  wall (the 2-core machine at load 1–2, 2026-11-26); the same 640 px look a 640×480
  frame gets. Landmarks move by 2–5 % of the face height against a full-size look
  (docs/benchmarks.md).
* an empty frame gets the padded look only when the previous frame's face was near
  (``pad_empty``: the pipeline knows; a face that fills the frame does not come from
  nowhere, it grows), so a camera looking at an empty counter pays one detection per
  frame, not two (a 640×480 empty frame, CPU time under load: 51.7 → 13.8 ms, `kiosk
  bench` of 2026-11-26). Photos keep both looks.

* between full looks, a lone face is looked for only in the region around where it was
  (``detect_around``; the pipeline's ``FrameLooker`` decides when): a few times fewer
  pixels, the face in its own pixels (docs/benchmarks.md, "looking only around the face").

Photos (enrolment and identification) are looked at first at ``PHOTO_DETECT_SIDE``
(640) px, the plain pipeline's size, whose landmarks align a photo's face better; only
when that finds no face, or a face under ``PHOTO_MIN_FACE`` px there, at 1,280 px.
"""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from kiosk.vision.types import Face

# Detection runs on an image no larger than this (long side); boxes are scaled back.
MAX_DETECT_SIDE = 1280
# ... and camera frames on one no larger than this (see the module's docstring).
FRAME_DETECT_SIDE = 640
# Between full looks a camera frame is looked at only around the face of the frame before
# (kiosk.vision.pipeline): the box widened by ROI_MARGIN of its longer side on each side,
# no larger than ROI_DETECT_SIDE px; a region above ROI_MAX_SHARE of the frame gets a full look.
ROI_MARGIN = 0.3
ROI_DETECT_SIDE = 320
ROI_MAX_SHARE = 0.6
# Photos are looked at first at this size, as the plain YuNet + SFace pipeline does: the
# landmarks found there align a photo's face better than those found at 1,280 px (SFace on
# ../shared/faces, leave one out: lowest genuine score 0.528 at 1,280 px, 0.615 at 640 px,
# best stranger 0.358 and 0.353; ArcFace unchanged, 0.423/0.425). A face smaller than
# ``PHOTO_MIN_FACE`` px at that size (a face far back in a large photo) is looked for
# again at ``MAX_DETECT_SIDE``.
PHOTO_DETECT_SIDE = 640
PHOTO_MIN_FACE = 48
# The second, padded look: border (share of the long side) and the size it runs at.
PAD_RATIO = 0.4
PAD_DETECT_SIDE = 640
# A face this large relative to the image (width or height) gets the second look too.
BIG_FACE_RATIO = 0.7


def _downscale(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    s = max(h, w)
    if s <= max_side:
        return img, 1.0
    scale = max_side / s
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA), scale


def _fills(faces: list[Face], w: int, h: int) -> bool:
    return any(f.bbox[2] >= BIG_FACE_RATIO * w or f.bbox[3] >= BIG_FACE_RATIO * h for f in faces)


def _map(face: Face, scale: float, dx: float = 0.0, dy: float = 0.0) -> Face:
    """A face found in an image that was scaled by ``scale`` and then offset by (dx, dy)."""
    x, y, w, h = face.bbox
    lm = (np.asarray(face.landmarks, np.float32) - np.float32([dx, dy])) / np.float32(scale)
    bbox = ((x - dx) / scale, (y - dy) / scale, w / scale, h / scale)
    raw = None
    if face.raw is not None:
        raw = face.raw.astype(np.float32).copy()
        raw[:4] = bbox
        raw[4:14] = lm.ravel()
    return Face(bbox=tuple(float(v) for v in bbox), landmarks=lm, det_score=face.det_score, raw=raw)


class _Detector:
    max_side: int = MAX_DETECT_SIDE
    pad_ratio: float = PAD_RATIO
    pad_side: int = PAD_DETECT_SIDE

    def _detect(self, img: np.ndarray, padded: bool = False, roi: bool = False) -> list[Face]:  # in the pixels of ``img``
        raise NotImplementedError

    def detect(self, img: np.ndarray, *, max_side: int | None = None, pad_empty: bool = True) -> list[Face]:
        """Faces in ``img`` (its pixels). ``max_side``: look at the image scaled to at
        most this long side (default ``self.max_side``). ``pad_empty`` False: no padded
        second look when nothing was found (still when a face fills the image)."""
        small, scale = _downscale(img, max_side or self.max_side)
        faces = self._detect(small)
        if (not faces and pad_empty) or _fills(faces, small.shape[1], small.shape[0]):
            faces = self._detect_padded(small) or faces
        return [_map(f, scale) for f in faces] if scale != 1.0 else faces

    def detect_around(self, img: np.ndarray, box: tuple[float, float, float, float],
                      margin: float = ROI_MARGIN, max_side: int = ROI_DETECT_SIDE) -> list[Face] | None:
        """Faces in the region of ``img`` around ``box`` (x, y, w, h: where the face was in
        the last frame), widened by ``margin`` of the box's longer side on every side and
        looked at no larger than ``max_side``; mapped to ``img``'s pixels. None when the
        region is not much smaller than the frame (a full look costs about the same)."""
        h, w = img.shape[:2]
        x, y, bw, bh = box
        m = margin * max(bw, bh)
        x0, y0 = max(0, int(x - m)), max(0, int(y - m))
        x1, y1 = min(w, int(np.ceil(x + bw + m))), min(h, int(np.ceil(y + bh + m)))
        if x1 - x0 < 16 or y1 - y0 < 16 or (x1 - x0) * (y1 - y0) > ROI_MAX_SHARE * w * h:
            return None
        small, scale = _downscale(img[y0:y1, x0:x1], max_side)
        faces = [_map(f, scale, -x0 * scale, -y0 * scale) for f in self._detect(small, roi=True)]
        # a face cut by the region's edge (moved fast, or a second person at its side) has
        # landmarks placed on half a face: such a region is not trusted, the frame gets a full look
        edge = 2.0 / scale
        for f in faces:
            fx, fy, fw, fh = f.bbox
            if ((x0 > 0 and fx < x0 + edge) or (y0 > 0 and fy < y0 + edge)
                    or (x1 < w and fx + fw > x1 - edge) or (y1 < h and fy + fh > y1 - edge)):
                return None
        return faces

    def _detect_padded(self, img: np.ndarray) -> list[Face]:
        h, w = img.shape[:2]
        p = int(round(self.pad_ratio * max(h, w)))
        border = [int(v) for v in cv2.mean(img)[:3]] if img.ndim == 3 else int(img.mean())
        big = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=border)
        small, s = _downscale(big, self.pad_side)
        return [_map(f, s, p * s, p * s) for f in self._detect(small, padded=True)]


class YuNetDetector(_Detector):
    """OpenCV Zoo YuNet (face_detection_yunet_2023mar.onnx)."""

    KEEP_NETS = 3   # camera frames, their padded look, and one more size (photos)

    def __init__(self, model_path: Path, score_threshold: float = 0.7,
                 nms_threshold: float = 0.3, max_side: int = MAX_DETECT_SIDE) -> None:
        self.max_side = max_side
        self._args = (str(model_path), "", (320, 320), score_threshold, nms_threshold, 5000)
        # one network per input size: changing the size re-plans the network, and camera
        # frames, their padded look and photos come in different sizes
        self._nets: dict[tuple[int, int], cv2.FaceDetectorYN] = {}
        self._lock = threading.Lock()    # one engine serves the vision worker and service calls

    def _net(self, w: int, h: int) -> cv2.FaceDetectorYN:
        net = self._nets.pop((w, h), None)
        if net is None:
            if len(self._nets) >= self.KEEP_NETS:      # the least recently used one is re-sized
                net = self._nets.pop(next(iter(self._nets)))
            else:
                net = cv2.FaceDetectorYN.create(*self._args)
            net.setInputSize((w, h))
        self._nets[(w, h)] = net                        # most recently used last
        return net

    def _detect(self, img: np.ndarray, padded: bool = False, roi: bool = False) -> list[Face]:
        h, w = img.shape[:2]
        with self._lock:
            _, rows = self._net(w, h).detect(img)
        faces: list[Face] = []
        if rows is None:
            return faces
        for r in rows:
            r = r.astype(np.float32)
            faces.append(Face(bbox=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                              landmarks=r[4:14].reshape(5, 2).copy(),
                              det_score=float(r[14]), raw=r.copy()))
        return faces


class ScrfdDetector(_Detector):
    """InsightFace SCRFD (scrfd_500m_bnkps.onnx) via insightface.model_zoo.SCRFD."""

    def __init__(self, model_path: Path, score_threshold: float = 0.5,
                 input_size: tuple[int, int] = (640, 640), max_side: int = MAX_DETECT_SIDE) -> None:
        from insightface.model_zoo.scrfd import SCRFD

        from kiosk.vision.onnx_session import make_session

        self._model = SCRFD(model_file=str(model_path), session=make_session(model_path))
        self._model.prepare(-1, input_size=input_size, det_thresh=score_threshold)
        self._input_size = input_size
        self._threshold = score_threshold
        self.max_side = max_side

    def _detect(self, img: np.ndarray, padded: bool = False, roi: bool = False) -> list[Face]:
        # SCRFD letterboxes into its input size: a region around a face gets a smaller one
        size = (ROI_DETECT_SIDE, ROI_DETECT_SIDE) if roi else self._input_size
        det, kpss = self._model.detect(img, input_size=size, det_thresh=self._threshold)
        faces: list[Face] = []
        for i in range(det.shape[0]):
            x1, y1, x2, y2, score = (float(v) for v in det[i])
            lm = kpss[i].astype(np.float32) if kpss is not None else np.zeros((5, 2), np.float32)
            faces.append(Face(bbox=(x1, y1, x2 - x1, y2 - y1), landmarks=lm, det_score=score))
        return faces
