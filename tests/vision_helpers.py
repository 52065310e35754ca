"""Helpers for vision tests: put a real photo into a camera-sized frame."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kiosk.vision.image_io import read_image


def frame_from_photo(path: Path, size: tuple[int, int] = (640, 480), face_scale: float = 1.0) -> np.ndarray:
    """Letterbox a photo into a ``size`` frame (grey background), optionally smaller."""
    img = read_image(path)
    w, h = size
    s = min(w / img.shape[1], h / img.shape[0]) * face_scale
    small = cv2.resize(img, (max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 110, np.uint8)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return frame


def face_frame(path: Path, size: tuple[int, int] = (640, 480), face_height: int = 200) -> np.ndarray:
    """A camera-like frame of the photo's main face: cropped around it and scaled so
    the face is ``face_height`` pixels tall, centred on a grey background."""
    from kiosk.vision.quality import primary_face
    from tests.conftest import shared_engine

    img = read_image(path)
    face = primary_face(shared_engine("sface").detect(img), img.shape)
    assert face is not None, f"no face in {path}"
    x, y, fw, fh = face.bbox
    s = face_height / fh
    img = cv2.resize(img, (max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
    cx, cy = (x + fw / 2) * s, (y + fh / 2) * s
    w, h = size
    frame = np.full((h, w, 3), 110, np.uint8)
    x0, y0 = int(cx - w / 2), int(cy - h / 2)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(img.shape[1], x0 + w), min(img.shape[0], y0 + h)
    frame[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return frame


# -- identification on real photos (issue 9) --------------------------------------------
def main_face(backend: str, img: np.ndarray):
    """The primary face of a real photo as ``backend`` finds it (asserted to exist)."""
    from kiosk.vision.quality import primary_face
    from tests.conftest import shared_engine

    face = primary_face(shared_engine(backend).detect(img), img.shape)
    assert face is not None, "no face in the photo"
    return face


def tight_photo(backend: str, path: Path, size: tuple[int, int] = (90, 115)) -> np.ndarray:
    """An ID-style probe cut from a real photo: the face box alone, ``size`` px, the face filling it."""
    from kiosk.vision.calibrate import tight_crop

    img = read_image(path)
    return tight_crop(img, main_face(backend, img), size)


def two_face_photo(backend: str, big: Path, small: Path, **kw) -> np.ndarray:
    """Two real faces on one frame: ``big`` larger and off to the side, ``small`` in the
    middle (kiosk.vision.calibrate.two_face_composite; keyword arguments go to it)."""
    from kiosk.vision.calibrate import two_face_composite

    a, b = read_image(big), read_image(small)
    return two_face_composite(a, main_face(backend, a), b, main_face(backend, b), **kw)


def templates(backend: str, people: dict[str, list[Path]]) -> dict[str, np.ndarray]:
    """Residents' templates made from real photos as enrolment makes them (observe_still)."""
    from tests.conftest import shared_engine

    eng = shared_engine(backend)
    out = {}
    for rid, paths in people.items():
        vecs = [eng.observe_still(read_image(p)).embedding for p in paths]
        assert all(v is not None for v in vecs), f"enrolment refused a photo of {rid}"
        out[rid] = np.vstack(vecs)
    return out


def matcher(backend: str, gallery: dict[str, np.ndarray]):
    """The kiosk's 1:N decision (threshold and margin of the backend) over ``gallery``."""
    from kiosk.vision.calibrate import best_per_identity
    from kiosk.vision.engine import BACKEND_DEFAULTS
    from kiosk.vision.matching import decide

    d = BACKEND_DEFAULTS[backend]
    return lambda emb: decide(best_per_identity(emb, gallery), d.match_threshold, d.match_margin)
