"""What a screen adds to the picture of a face (issue 19: a phone or tablet held up to the
camera, playing a recorded video of the person turning the head). The head turn itself
is real in such a video; what is not is the device: measured here, on the camera's own
pixels (before any resizing, which would blur them), classically (OpenCV, numpy):

* the pixel grid: a screen is a grid of lit stripes, and a camera samples it with its own
  grid of pixels. What the camera records is the screen's grid (when resolved) or its beat
  with the camera's grid (moire): either way a periodic pattern over the face, i.e. sharp
  peaks in the spatial spectrum of the face's region that no skin, hair or room gives
  (``grid_peak``: the highest peak of the spectrum over its local level).
* the device: the screen's edge and the body around it, a rectangle with the face inside
  that the face moves within (``device_sides``: straight edges running past the whole face
  above and below it, or on three sides of it, on a quarter of the frames).

Neither is certain (a door frame, a striped shirt; a screen too fine and too blurred to
show its grid, held so close that no edge is seen), so the verdict they give is
``screen_suspected``: staff are asked to confirm, the elder is not refused outright.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# the window of the spectrum test: the face box grown by this share, cut to a power of two
GRID_WINDOW = 128


def _window(n: int) -> np.ndarray:
    w = np.hanning(n)
    return np.outer(w, w)


_WIN = {}


def grid_peak(gray: np.ndarray, bbox) -> float | None:
    """How far the strongest periodic component of the face's region stands above the
    spectrum around it (ratio of powers; ~10-20 for natural pictures, hundreds for a
    screen's pixel grid or its moire). None when the region is too small."""
    x, y, w, h = (float(v) for v in bbox[:4])
    side = int(min(GRID_WINDOW, 2 ** int(np.log2(max(8.0, min(w, h))))))
    if side < 32:
        return None
    cx, cy = x + w / 2, y + h / 2
    H, W = gray.shape[:2]
    x0 = int(np.clip(round(cx - side / 2), 0, max(0, W - side)))
    y0 = int(np.clip(round(cy - side / 2), 0, max(0, H - side)))
    patch = gray[y0:y0 + side, x0:x0 + side].astype(np.float32)
    if patch.shape != (side, side):
        return None
    win = _WIN.get(side)
    if win is None:
        win = _WIN[side] = _window(side).astype(np.float32)
    p = patch - patch.mean()
    P = np.abs(np.fft.fftshift(np.fft.fft2(p * win))) ** 2
    # the local level: the median of the spectrum over a neighbourhood (a smooth 1/f falloff,
    # which a peak a few bins wide does not move)
    logP = np.log(P + 1e-6).astype(np.float32)
    level = cv2.medianBlur(logP, 5) if side <= 128 else cv2.blur(logP, (7, 7))
    ratio = logP - level
    c = side // 2
    fy, fx = np.mgrid[-c:side - c, -c:side - c]
    r = np.hypot(fx, fy) / side
    # away from the lowest frequencies (the face's shape) and from the axes (the picture's
    # edges, the blocks of a compressed video, a row or column of the sensor)
    keep = (r > 0.12) & (np.abs(fx) > 2) & (np.abs(fy) > 2)
    return float(np.exp(ratio[keep].max()))


# the device's frame: edges at least this many face heights long, on this many sides
FRAME_MIN_LEN = 1.0
FRAME_WORK_FACE = 80.0      # the test runs on the frame scaled so the face box is this tall
FLAT_OUTSIDE_STD = 1.0      # beyond an edge, a region this flat is no camera's (a pasted picture)


def device_sides(gray: np.ndarray, bbox) -> int:
    """On how many sides of the face (left, right, above, below) a straight edge longer than
    the face runs past it, outside the face box: a screen's edge and its bezel around the
    face. An edge with a perfectly flat region beyond it (no camera noise: a picture pasted
    into a larger one) is not a device's and does not count."""
    x, y, w, h = (float(v) for v in bbox[:4])
    if h < 8:
        return frozenset()
    s = min(1.0, FRAME_WORK_FACE / h)
    g = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
    x, y, w, h = x * s, y * s, w * s, h * s
    edges = cv2.Canny(g, 40, 120)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=int(0.6 * h),
                            minLineLength=FRAME_MIN_LEN * h, maxLineGap=4)
    if lines is None:
        return frozenset()
    H, W = g.shape[:2]
    sides: set[str] = set()
    for x1, y1, x2, y2 in lines.reshape(-1, 4).astype(np.float64):
        dx, dy = x2 - x1, y2 - y1
        vertical = abs(dx) < 0.45 * abs(dy)
        horizontal = abs(dy) < 0.45 * abs(dx)
        # an edge counts when it runs past the whole face (a device's edge is in front of
        # everything; an edge of the room behind a person is cut by the head or the body)
        if vertical and min(y1, y2) <= y and max(y1, y2) >= y + h:
            side = "left" if max(x1, x2) < x else ("right" if min(x1, x2) > x + w else None)
            nx, ny = (-1, 0) if side == "left" else (1, 0)
        elif horizontal and min(x1, x2) <= x and max(x1, x2) >= x + w:
            side = "above" if max(y1, y2) < y else ("below" if min(y1, y2) > y + h else None)
            nx, ny = (0, -1) if side == "above" else (0, 1)
        else:
            continue
        if side is None or side in sides:
            continue
        # the band just beyond the edge (away from the face)
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        half = 0.25 * np.hypot(dx, dy)
        if nx:
            bx0, bx1 = (mx + nx * 3, mx + nx * 9) if nx > 0 else (mx + nx * 9, mx + nx * 3)
            by0, by1 = my - half, my + half
        else:
            by0, by1 = (my + ny * 3, my + ny * 9) if ny > 0 else (my + ny * 9, my + ny * 3)
            bx0, bx1 = mx - half, mx + half
        band = g[int(max(0, by0)):int(min(H, by1)), int(max(0, bx0)):int(min(W, bx1))]
        if band.size >= 12 and float(band.std()) < FLAT_OUTSIDE_STD:
            continue
        sides.add(side)
    return frozenset(sides)


# a sequence is suspected of being on a screen when, on at least this share of its frames
# (and two frames), the face is framed by edges running past it above and below it, or on
# three sides: a device's frame. (Left and right alone are not enough: a window's or a door's
# frame behind a person gives them - the OTB clips' blinds do; an edge below the face that
# runs past all of it is in front of the person's body.)
FRAMED_SHARE = 0.25
FRAMED_MIN = 2
# ... or when the median frame shows a periodic pattern over the face this strong
GRID_PEAK = 45.0
MAX_FRAMES = 12             # frames measured per check (time: docs/liveness.md)


@dataclass(frozen=True)
class ScreenEvidence:
    framed_share: float       # share of frames with the face inside a device-like frame (``device_sides``)
    grid_peak: float | None   # median over frames of ``grid_peak``
    frames: int

    @property
    def suspected(self) -> bool:
        return self.frames > 0 and ((self.framed_share >= FRAMED_SHARE
                                     and self.framed_share * self.frames >= FRAMED_MIN - 1e-9)
                                    or (self.grid_peak is not None and self.grid_peak >= GRID_PEAK))

    def to_json(self) -> dict:
        return {"framed_share": round(self.framed_share, 2),
                "grid_peak": None if self.grid_peak is None else round(self.grid_peak, 1), "frames": self.frames}


def screen_evidence(grays: list[np.ndarray], boxes: list) -> ScreenEvidence:
    """The screen measures on up to ``MAX_FRAMES`` frames of a track (camera pixels)."""
    idx = [i for i, (g, b) in enumerate(zip(grays, boxes)) if g is not None and b is not None]
    if len(idx) > MAX_FRAMES:
        idx = [idx[int(round(t))] for t in np.linspace(0, len(idx) - 1, MAX_FRAMES)]
    framed, peaks = 0, []
    for i in idx:
        sides = device_sides(grays[i], boxes[i])
        framed += ({"above", "below"} <= sides) or len(sides) >= 3
        p = grid_peak(grays[i], boxes[i])
        if p is not None:
            peaks.append(p)
    n = len(idx)
    return ScreenEvidence(framed / n if n else 0.0, float(np.median(peaks)) if peaks else None, n)
