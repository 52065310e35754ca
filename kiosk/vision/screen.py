"""What a screen adds to the picture of a face (issue 19: a phone or tablet held up to the
camera, playing a recorded video of the person turning the head). The head turn itself
is real in such a video; what is not is the device: measured here, on the camera's own
pixels (before any resizing, which would blur them), classically (OpenCV, numpy):

* the pixel grid: a screen is a grid of lit stripes, and a camera samples it with its own
  grid of pixels. What the camera records is the screen's grid (when resolved) or its beat
  with the camera's grid (moire): either way a periodic pattern over the face, i.e. sharp
  peaks in the spatial spectrum that no skin, hair or room gives. ``moire_peak`` looks for
  them in small windows (64 px) tiling the face (under perspective the beat is a chirp,
  which a small window sees as one tone) and takes the median over the windows (a screen's
  grid covers all of them, a striped collar few); ``grid_peak`` is the earlier one-window
  measure.
* the device: the screen's edge and the body around it, a rectangle with the face inside
  (``device_sides``: straight edges running past the whole face above and below it, or on
  three sides of it, on a quarter of the frames). Hough gives a tilted edge in steps; the
  steps on one line are joined across gaps up to 0.3 face heights (the head that cuts an
  edge of the room behind a person is a wider gap).

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


# the moire test: windows of this side (camera pixels) over the face and around it. Small
# windows: under perspective a screen's grid beats with the camera's into a chirp (its
# frequency drifts across the picture), which a small window sees as one tone.
MOIRE_WINDOW = 64
MOIRE_MAX_WINDOWS = 12


def _peak_ratios(patches: np.ndarray) -> np.ndarray:
    """Per square patch: how far the strongest periodic component stands above the spectrum
    around it (a ratio of powers), away from the lowest frequencies (shapes), the axes (edges,
    a sensor's rows) and the 8-pixel blocks of a JPEG/MJPEG camera."""
    n, side = patches.shape[0], patches.shape[1]
    win = _WIN.get(side)
    if win is None:
        win = _WIN[side] = _window(side).astype(np.float32)
    p = patches - patches.mean(axis=(1, 2), keepdims=True)
    P = np.abs(np.fft.fftshift(np.fft.fft2(p * win), axes=(1, 2))) ** 2
    logP = np.log(P + 1e-6).astype(np.float32)
    c = side // 2
    fy, fx = np.mgrid[-c:side - c, -c:side - c]
    r = np.hypot(fx, fy) / side
    blk = side // 8
    jpeg = ((np.abs(fx) % blk <= 1) | (np.abs(fx) % blk >= blk - 1)) & (
        (np.abs(fy) % blk <= 1) | (np.abs(fy) % blk >= blk - 1))
    keep = (r > 0.12) & (np.abs(fx) > 2) & (np.abs(fy) > 2) & ~jpeg
    out = np.empty(n)
    for k in range(n):
        ratio = logP[k] - cv2.medianBlur(logP[k], 5)
        out[k] = float(np.exp(ratio[keep].max()))
    return out


def moire_peak(gray: np.ndarray, bbox) -> float | None:
    """The median, over windows tiling the face box grown by a quarter, of the strongest
    periodic peak of each window (``_peak_ratios``): a screen's pixel grid or its moire covers
    the whole screen, so most windows show it; a striped collar or a window blind shows in
    few. None when the face is smaller than two windows."""
    x, y, w, h = (float(v) for v in bbox[:4])
    H, W = gray.shape[:2]
    side = MOIRE_WINDOW
    x0, x1 = max(0, int(x - 0.125 * w)), min(W, int(x + 1.125 * w))
    y0, y1 = max(0, int(y - 0.125 * h)), min(H, int(y + 1.125 * h))
    nx, ny = (x1 - x0) // side, (y1 - y0) // side
    if nx * ny < 2:
        return None
    cells = [(j, i) for j in range(ny) for i in range(nx)]
    if len(cells) > MOIRE_MAX_WINDOWS:
        cells = [cells[int(round(t))] for t in np.linspace(0, len(cells) - 1, MOIRE_MAX_WINDOWS)]
    ox, oy = x0 + ((x1 - x0) - nx * side) // 2, y0 + ((y1 - y0) - ny * side) // 2
    patches = np.stack([gray[oy + j * side:oy + (j + 1) * side, ox + i * side:ox + (i + 1) * side]
                        for j, i in cells]).astype(np.float32)
    return float(np.median(_peak_ratios(patches)))


# the device's frame: edges at least this many face heights long, on this many sides
FRAME_MIN_LEN = 1.0
FRAME_WORK_FACE = 80.0      # the test runs on the frame scaled so the face box is this tall
FRAME_GAP = 0.3            # gaps bridged along an edge, in face heights (a tilted edge breaks into steps;
                            # an edge of the room behind the head is cut by the head, a wider gap)
FRAME_REACH = 2.5          # the edges are looked for this many face heights around the face box
FLAT_OUTSIDE_STD = 0.5      # beyond an edge, a mid-grey region this flat is no camera's (a pasted picture)


def _pasted(band: np.ndarray) -> bool:
    """A region without any camera noise that is not clipped to black or white: a picture
    pasted into a larger one, not a camera's view (a black bezel clipped to 0 is flat too)."""
    m = float(band.mean())
    return 4.0 < m < 251.0 and float(band.std()) < FLAT_OUTSIDE_STD


def _long_edges(segs: np.ndarray, lo: float, hi: float, min_len: float, gap: float) -> list[tuple[float, float, float]]:
    """Straight edges made of collinear pieces (``segs``: rows u1, v1, u2, v2 with u along the
    edge): pieces within 2.5 degrees and 2 px of one line, joined across gaps up to ``gap``,
    that together run past [lo, hi] and are at least ``min_len`` long with 3/4 of it on edge
    pixels. (A tilted edge comes out of Hough in steps; an edge of the room behind the head
    is cut by the head, a much wider gap.) Returns (v_min, v_max, length) of each."""
    if len(segs) == 0:
        return []
    u1, v1, u2, v2 = segs.T
    swap = u1 > u2
    u1, u2 = np.where(swap, u2, u1), np.where(swap, u1, u2)
    v1, v2 = np.where(swap, v2, v1), np.where(swap, v1, v2)
    ang = np.arctan2(v2 - v1, u2 - u1)
    mid = (lo + hi) / 2
    off = v1 + (mid - u1) * np.tan(ang)          # where each piece's line crosses the face's middle
    order = np.argsort(off)
    out, used = [], np.zeros(len(segs), bool)
    for a in order:
        if used[a]:
            continue
        grp = [b for b in order if not used[b] and abs(off[b] - off[a]) <= 2.0
               and abs(ang[b] - ang[a]) <= np.radians(2.5)]
        used[grp] = True
        iv = sorted((u1[b], u2[b]) for b in grp)
        pieces, (s0, e0, cov) = [], (iv[0][0], iv[0][1], iv[0][1] - iv[0][0])
        for s1, e1 in iv[1:]:
            if s1 - e0 <= gap:
                cov += max(0.0, e1 - max(s1, e0))
                e0 = max(e0, e1)
            else:
                pieces.append((s0, e0, cov))
                s0, e0, cov = s1, e1, e1 - s1
        pieces.append((s0, e0, cov))
        for s0, e0, cov in pieces:
            if s0 <= lo and e0 >= hi and e0 - s0 >= min_len and cov >= 0.75 * (e0 - s0):
                vs = np.concatenate([v1[grp], v2[grp]])
                out.append((float(vs.min()), float(vs.max()), float(e0 - s0)))
    return out


def device_sides(gray: np.ndarray, bbox) -> frozenset:
    """On which sides of the face (left, right, above, below) a straight edge longer than the
    face runs past all of it, outside the face box: a screen's edge and its bezel around the
    face (a device is in front of everything; an edge of the room behind a person is cut by
    the head or the body). An edge with a perfectly flat mid-grey band beyond it (no camera
    noise: a picture pasted into a larger one) is not a device's and does not count."""
    x, y, w, h = (float(v) for v in bbox[:4])
    if h < 8:
        return frozenset()
    # only the region an edge that runs past the face can lie in (time: a large frame with a
    # small face costs no more than a small one)
    H0, W0 = gray.shape[:2]
    ox, oy = int(max(0, x - FRAME_REACH * h)), int(max(0, y - FRAME_REACH * h))
    ex, ey = int(min(W0, x + w + FRAME_REACH * h)), int(min(H0, y + h + FRAME_REACH * h))
    if ex - ox < 8 or ey - oy < 8:
        return frozenset()
    gray = gray[oy:ey, ox:ex]
    x, y = x - ox, y - oy
    s = min(1.0, FRAME_WORK_FACE / h)
    g = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
    x, y, w, h = x * s, y * s, w * s, h * s
    edges = cv2.Canny(g, 40, 120)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(8, int(0.25 * h)),
                            minLineLength=0.25 * h, maxLineGap=3)
    if lines is None:
        return frozenset()
    L = lines.reshape(-1, 4).astype(np.float64)
    dx, dy = L[:, 2] - L[:, 0], L[:, 3] - L[:, 1]
    horiz = L[np.abs(dy) < 0.45 * np.abs(dx)]
    vert = L[np.abs(dx) < 0.45 * np.abs(dy)][:, [1, 0, 3, 2]]      # (y, x) pairs: u along the edge
    cands = []
    for v0, v1, _ in _long_edges(horiz, x, x + w, FRAME_MIN_LEN * h, FRAME_GAP * h):
        if v1 < y:
            cands.append(("above", (v0 + v1) / 2, 0, -1))
        elif v0 > y + h:
            cands.append(("below", (v0 + v1) / 2, 0, 1))
    for v0, v1, _ in _long_edges(vert, y, y + h, FRAME_MIN_LEN * h, FRAME_GAP * h):
        if v1 < x:
            cands.append(("left", (v0 + v1) / 2, -1, 0))
        elif v0 > x + w:
            cands.append(("right", (v0 + v1) / 2, 1, 0))
    sides: set[str] = set()
    for side, at, nx, ny in cands:
        if side in sides:
            continue
        # the band just beyond the edge (away from the face) beside the face, looked at in
        # the camera's own pixels (scaling down averages the noise away)
        if nx:
            bx0, bx1 = (at + 3, at + 9) if nx > 0 else (at - 9, at - 3)
            by0, by1 = y, y + h
        else:
            by0, by1 = (at + 3, at + 9) if ny > 0 else (at - 9, at - 3)
            bx0, bx1 = x, x + w
        band = gray[int(max(0, by0 / s)):int(min(gray.shape[0], by1 / s)),
                    int(max(0, bx0 / s)):int(min(gray.shape[1], bx1 / s))]
        if band.size >= 12 and _pasted(band):
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
# ... or when the median frame's windows over the face show a periodic peak this strong
# (``moire_peak``). Measured on the 18 real clips at x0.6, x1, x2 and pasted at 9 places of a
# larger frame: at most 12.4 (the 4x-upscaled OTB clips), 10 on most; a re-captured screen
# with its grid resolved or beating with the camera's: 13-170 (docs/liveness.md "Replays").
MOIRE_PEAK = 20.0
MAX_FRAMES = 12             # frames measured per check (time: docs/liveness.md)


@dataclass(frozen=True)
class ScreenEvidence:
    framed_share: float       # share of frames with the face inside a device-like frame (``device_sides``)
    grid_peak: float | None   # median over frames of ``grid_peak``
    frames: int
    moire: float | None = None  # median over frames of ``moire_peak``

    @property
    def suspected(self) -> bool:
        return self.frames > 0 and ((self.framed_share >= FRAMED_SHARE
                                     and self.framed_share * self.frames >= FRAMED_MIN - 1e-9)
                                    or (self.grid_peak is not None and self.grid_peak >= GRID_PEAK)
                                    or (self.moire is not None and self.moire >= MOIRE_PEAK))

    def to_json(self) -> dict:
        return {"framed_share": round(self.framed_share, 2),
                "grid_peak": None if self.grid_peak is None else round(self.grid_peak, 1), "frames": self.frames,
                "moire": None if self.moire is None else round(self.moire, 1)}


def screen_evidence(grays: list[np.ndarray], boxes: list) -> ScreenEvidence:
    """The screen measures on up to ``MAX_FRAMES`` frames of a track (camera pixels)."""
    idx = [i for i, (g, b) in enumerate(zip(grays, boxes)) if g is not None and b is not None]
    if len(idx) > MAX_FRAMES:
        idx = [idx[int(round(t))] for t in np.linspace(0, len(idx) - 1, MAX_FRAMES)]
    framed, peaks, moire = 0, [], []
    for i in idx:
        m = moire_peak(grays[i], boxes[i])
        if m is not None:
            moire.append(m)
        sides = device_sides(grays[i], boxes[i])
        framed += ({"above", "below"} <= sides) or len(sides) >= 3
        p = grid_peak(grays[i], boxes[i])
        if p is not None:
            peaks.append(p)
    n = len(idx)
    return ScreenEvidence(framed / n if n else 0.0, float(np.median(peaks)) if peaks else None, n,
                          float(np.median(moire)) if moire else None)
