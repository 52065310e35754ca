"""Attack sequences made from real photos: a held-up photo or a screen that is
moved, tilted, scaled or turned in front of the camera (a plane in 3-D)."""
from __future__ import annotations

import cv2
import numpy as np

from kiosk.vision.liveness import LiveFrame
from kiosk.vision.quality import primary_face


def plane_homography(w: int, h: int, yaw_deg: float = 0.0, roll_deg: float = 0.0, scale: float = 1.0,
                     dx: float = 0.0, dy: float = 0.0, pitch_deg: float = 0.0, f: float = 700.0) -> np.ndarray:
    """The image of a flat picture rotated in 3-D in front of a pinhole camera."""
    cx, cy = w / 2, h / 2
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    a, b, c = np.radians([pitch_deg, yaw_deg, roll_deg])
    Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    R = Rz @ Ry @ Rx
    d = f / scale
    # plane z = d, points (x, y) in pixels around the centre
    Kinv = np.linalg.inv(K)
    n = np.array([0, 0, 1.0])
    t = np.array([dx * d / f, dy * d / f, 0.0])
    H = K @ (R + np.outer(t - (R @ np.array([0, 0, d])) + np.array([0, 0, d]), n) / d) @ Kinv
    return H / H[2, 2]


ATTACKS = {
    "shift": lambda i, n: dict(dx=60 * i / n),
    "tilt": lambda i, n: dict(roll_deg=25 * i / n),
    "scale": lambda i, n: dict(scale=1 + 0.4 * i / n),
    "turn_left": lambda i, n: dict(yaw_deg=40 * i / n),
    "turn_right": lambda i, n: dict(yaw_deg=-40 * i / n),
    "nod": lambda i, n: dict(pitch_deg=30 * i / n),
    "turn_and_move": lambda i, n: dict(yaw_deg=35 * i / n, dx=40 * i / n, roll_deg=8 * i / n, scale=1 + 0.2 * i / n),
}


def attack_frames(frame: np.ndarray, kind: str, n: int = 10) -> list[np.ndarray]:
    h, w = frame.shape[:2]
    out = []
    for i in range(n + 1):
        H = plane_homography(w, h, **ATTACKS[kind](i, n))
        out.append(cv2.warpPerspective(frame, H, (w, h), borderValue=(110, 110, 110)))
    return out


def live_frames(engine, images: list[np.ndarray], fps: float = 12.0) -> list[LiveFrame]:
    out = []
    for i, img in enumerate(images):
        f = primary_face(engine.detect(img), img.shape)
        out.append(LiveFrame(i / fps, f.bbox if f else None, f.landmarks if f else None,
                             cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    return out


# --------------------------------------------------------------------------- harder attacks
# Each returns the frames a camera would see; the face is the photo's face, centred as
# tests.vision_helpers.face_frame puts it (face about 200 px tall in 640x480).

def face_box(frame: np.ndarray) -> tuple[float, float, float, float]:
    """The face box of a face_frame (found once with YuNet)."""
    from tests.conftest import shared_engine

    f = primary_face(shared_engine("sface").detect(frame), frame.shape)
    assert f is not None, "no face in the attack source"
    return f.bbox


def bent_print_frames(frame: np.ndarray, radius_fw: float, yaw_deg: float, n: int = 10,
                      f: float = 700.0, dx: float = 0.0, roll: float = 0.0,
                      scale: float = 0.0) -> list[np.ndarray]:
    """A printed photo bent around a vertical cylinder (its middle toward the camera, radius
    ``radius_fw`` face widths) and turned about a vertical axis by up to ``yaw_deg``; held at
    the same place, or (``dx`` px, ``roll`` degrees, ``scale`` growth by the last frame) moved
    sideways, tilted and brought closer while it turns. Unlike a flat print it has some depth:
    the nose is in front of the eyes by r - sqrt(r^2 - (IOD/2)^2)."""
    h, w = frame.shape[:2]
    x, y, fw, fh = face_box(frame)
    fcx, fcy = x + fw / 2, y + fh / 2
    cx, cy = w / 2, h / 2
    r = radius_fw * fw
    d = f
    ox, oy = fcx - cx, fcy - cy
    U0, V0 = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    out = []
    for i in range(n + 1):
        # the print's motion in the image plane (shift, tilt, approach), undone per pixel
        q, sc = np.radians(roll * i / n), 1 + scale * i / n
        u, v = U0 - cx - dx * i / n, V0 - cy
        U = cx + (np.cos(q) * u + np.sin(q) * v) / sc
        V = cy + (-np.sin(q) * u + np.cos(q) * v) / sc
        Dx, Dy = (U - cx) / f, (V - cy) / f
        phi = np.radians(yaw_deg * i / n)
        c, s = np.cos(phi), np.sin(phi)
        # ray t*(Dx, Dy, 1) - (ox, oy, d), rotated by -phi into the print's frame
        a1, b1 = Dx * c - s, -ox * c + d * s
        a2, b2 = Dx * s + c, -ox * s - d * c
        # (a1 t + b1)^2 + (a2 t + b2 - r)^2 = r^2
        A = a1 ** 2 + a2 ** 2
        B = 2 * (a1 * b1 + a2 * (b2 - r))
        C = b1 ** 2 + (b2 - r) ** 2 - r * r
        disc = B * B - 4 * A * C
        t = (-B - np.sqrt(np.maximum(disc, 0))) / (2 * A)
        lx, lz = a1 * t + b1, a2 * t + b2
        arc = r * np.arctan2(lx, r - lz)
        ly = Dy * t - oy
        valid = (disc >= 0) & (np.abs(arc) < 2.5 * fw) & (lz < r)
        mapx = np.where(valid, fcx + arc, -1).astype(np.float32)
        mapy = np.where(valid, fcy + ly, -1).astype(np.float32)
        out.append(cv2.remap(frame, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(110, 110, 110)))
    return out


def textured_background(h: int, w: int, seed: int = 3) -> np.ndarray:
    """A still, textured scene behind a cut-out photo (shelves, posters: edges to track)."""
    rng = np.random.default_rng(seed)
    bg = np.full((h, w, 3), 150, np.uint8)
    for _ in range(120):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        col = tuple(int(c) for c in rng.integers(30, 230, 3))
        cv2.rectangle(bg, (x0, y0), (x0 + int(rng.integers(8, 60)), y0 + int(rng.integers(8, 60))), col, -1)
    return cv2.GaussianBlur(bg, (3, 3), 0)


def cutout_frames(frame: np.ndarray, kind: str, n: int = 10) -> list[np.ndarray]:
    """A photo cut out along the head (an ellipse around the face) and moved (``ATTACKS[kind]``)
    in front of a still, textured scene: the scene shows through around the face, so points
    near the face edge do not follow the photo's plane."""
    h, w = frame.shape[:2]
    x, y, fw, fh = face_box(frame)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(x + fw / 2), int(y + fh / 2)), (int(fw * 0.62), int(fh * 0.68)), 0, 0, 360, 255, -1)
    bg = textured_background(h, w)
    out = []
    for i in range(n + 1):
        H = plane_homography(w, h, **ATTACKS[kind](i, n))
        img = cv2.warpPerspective(frame, H, (w, h))
        m = cv2.warpPerspective(mask, H, (w, h)).astype(np.float32)[..., None] / 255
        out.append((img * m + bg * (1 - m)).astype(np.uint8))
    return out


def screen_frames(frame: np.ndarray, kind: str, n: int = 10) -> list[np.ndarray]:
    """The photo on a phone screen (black bezel, the screen's pixel grid beating with the
    camera's: moire) moved as ``ATTACKS[kind]``, with a glare: a reflection of a lamp that
    stays where it is in the camera image while the screen turns under it."""
    h, w = frame.shape[:2]
    x, y, fw, fh = face_box(frame)
    X, Y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = (0.88 + 0.12 * np.cos(2 * np.pi * X / 2.6) * np.cos(2 * np.pi * Y / 2.6))[..., None]
    phone = np.zeros_like(frame)
    px0, py0, px1, py1 = int(x - 0.5 * fw), int(y - 0.6 * fh), int(x + 1.5 * fw), int(y + 1.6 * fh)
    phone[max(0, py0):py1, max(0, px0):px1] = frame[max(0, py0):py1, max(0, px0):px1]
    phone = (phone * grid).astype(np.uint8)
    screen = np.zeros((h, w), np.uint8)
    screen[max(0, py0):py1, max(0, px0):px1] = 255
    gx, gy = x + 0.75 * fw, y + 0.35 * fh
    glare = (150 * np.exp(-(((X - gx) / (0.28 * fw)) ** 2 + ((Y - gy) / (0.18 * fh)) ** 2)))[..., None]
    out = []
    for i in range(n + 1):
        H = plane_homography(w, h, **ATTACKS[kind](i, n))
        img = cv2.warpPerspective(phone, H, (w, h), borderValue=(40, 40, 40)).astype(np.float32)
        on = cv2.warpPerspective(screen, H, (w, h)).astype(np.float32)[..., None] / 255
        out.append(np.clip(img + glare * on, 0, 255).astype(np.uint8))
    return out


def swap_frames(first: np.ndarray, then: list[np.ndarray], n_each: int = 4) -> list[np.ndarray]:
    """Photos of one person in different poses shown one after another, each held still for
    ``n_each`` frames with its face moved onto the first photo's face box (a flip-book)."""
    x0, y0, w0, h0 = face_box(first)
    out = [first] * n_each
    for img in then:
        x, y, w, h = face_box(img)
        s = h0 / h
        M = np.array([[s, 0, x0 + w0 / 2 - s * (x + w / 2)], [0, s, y0 + h0 / 2 - s * (y + h / 2)]])
        out += [cv2.warpAffine(img, M, (first.shape[1], first.shape[0]), borderValue=(110, 110, 110))] * n_each
    return out


def approach_frames(frame: np.ndarray, yaw_deg: float, n: int = 10) -> list[np.ndarray]:
    """A photo brought toward the camera (1.8 times larger) while turned by ``yaw_deg``."""
    h, w = frame.shape[:2]
    return [cv2.warpPerspective(frame, plane_homography(w, h, yaw_deg=yaw_deg * i / n, scale=1 + 0.8 * i / n),
                                (w, h), borderValue=(110, 110, 110)) for i in range(n + 1)]


# --------------------------------------------------------------------------- replays
# A recorded video of a real head turning, played on a phone or a tablet held up to the
# kiosk's camera (issue 19). Rendered per camera pixel: where each pixel of the camera falls
# on the device (a homography of the device's plane), what the screen shows there (the clip,
# fitted into the screen), the screen's pixel grid sampled by the camera's pixels (moire:
# the beat of the two grids, from sampling the grid at each camera pixel's centre), the
# screen's own look (raised blacks, compressed whites, a cold tint, the camera's blur of a
# re-capture), a reflection of a lamp, the refresh's bands, and the device's body and bezel
# before a still room.

DEVICES = {
    # screen (width, height) in mm, bezel (mm), screen pixels per mm
    "phone": ((68.0, 148.0), 4.0, 16.0),
    "tablet": ((197.0, 148.0), 10.0, 10.4),
    # held out of the tuning of kiosk.vision.screen (docs/liveness.md "Replays")
    "small_phone": ((62.0, 132.0), 3.0, 17.7),
    "large_phone": ((77.0, 166.0), 2.5, 18.9),
    "small_tablet": ((160.0, 120.0), 8.0, 12.6),
}
def _fit(img: np.ndarray, w: int, h: int, cover: bool) -> np.ndarray:
    """``img`` fitted into w x h (letterboxed in black, or ``cover``: filling it, cropped)."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih) if cover else min(w / iw, h / ih)
    r = cv2.resize(img, (max(1, round(iw * s)), max(1, round(ih * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    out = np.zeros((h, w, 3), np.uint8)
    rh, rw = r.shape[:2]
    x0, y0 = (w - rw) // 2, (h - rh) // 2
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    cw, ch = min(w - dx0, rw - sx0), min(h - dy0, rh - sy0)
    out[dy0:dy0 + ch, dx0:dx0 + cw] = r[sy0:sy0 + ch, sx0:sx0 + cw]
    return out


def replay_frames(clip: list[np.ndarray], device: str = "phone", fill: float = 0.8,
                  motion: str = "still", moire: bool = True, glare: bool = True, banding: bool = False,
                  size: tuple[int, int] = (640, 480), seed: int = 0) -> list[np.ndarray]:
    """A clip's frames played on a ``device`` held before a camera of ``size``: the screen's
    height is ``fill`` of the frame's (above 1: so close that the screen fills the picture,
    no bezel seen); ``motion`` "still" (a hand's tremor only) or "drift" (moved sideways,
    tilted and brought nearer over the clip). ``moire``: the screen's pixel grid as the
    camera samples it (else a grid too fine and too blurred to show); ``glare``: a lamp's
    reflection fixed in the camera image; ``banding``: the backlight's flicker as rolling
    bands."""
    rng = np.random.default_rng(seed)
    W, H = size
    (sw_mm, sh_mm), bezel_mm, ppmm = DEVICES[device]
    landscape_clip = clip[0].shape[1] >= clip[0].shape[0]
    if sw_mm < sh_mm and landscape_clip and fill <= 1.0:
        sw_mm, sh_mm = sh_mm, sw_mm              # a landscape video on a phone turned sideways
    # screen content at 4 canvas px per mm (the clip, letterboxed; edge to edge: cropped)
    cpm = 4.0
    cw, ch = int(sw_mm * cpm), int(sh_mm * cpm)
    bg = textured_background(H, W, seed=seed + 11)
    bg = cv2.GaussianBlur(bg, (0, 0), 1.5)
    n = len(clip)
    px_per_mm0 = fill * H / sh_mm
    yaw0, pitch0 = rng.uniform(-12, 12), rng.uniform(-10, 10)
    phase = rng.uniform(0, 2 * np.pi, 4)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
    gx, gy = W * rng.uniform(0.35, 0.65), H * rng.uniform(0.25, 0.45)
    lamp = 170 * np.exp(-(((xs - gx) / (0.16 * W)) ** 2 + ((ys - gy) / (0.09 * H)) ** 2))
    out = []
    for i, frame in enumerate(clip):
        t = i / max(1, n - 1)
        tremor = 1.2 * np.sin(2 * np.pi * (0.9 * i / 12) + phase[:2])
        dx, dy = tremor
        roll, scale = 0.4 * np.sin(phase[2] + i / 3), 1.0
        if motion == "drift":
            dx += 60 * t - 30
            dy += 15 * np.sin(np.pi * t)
            roll += 6 * t
            scale = 1 + 0.15 * t
        # the device's plane: mm -> camera pixels (rotation in 3-D, then a pinhole)
        ppm = px_per_mm0 * scale
        f = 1.2 * W
        d = f / ppm                                   # distance in mm that gives ppm at the centre
        a, b, c = np.radians([pitch0, yaw0 + 2 * np.sin(phase[3] + i / 5), roll])
        Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
        Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
        R = Rz @ Ry @ Rx
        K = np.array([[f, 0, W / 2 + dx], [0, f, H / 2 + dy], [0, 0, 1.0]])
        # plane point (X, Y) mm from the screen's centre -> K (R [X, Y, 0] + [0, 0, d])
        Hmm = K @ np.column_stack([R[:, 0], R[:, 1], np.array([0, 0, d])])
        Hinv = np.linalg.inv(Hmm)
        q = np.column_stack([pts, np.ones(len(pts))]) @ Hinv.T
        X, Y = (q[:, 0] / q[:, 2]).reshape(H, W), (q[:, 1] / q[:, 2]).reshape(H, W)
        on_screen = (np.abs(X) < sw_mm / 2) & (np.abs(Y) < sh_mm / 2)
        on_body = (np.abs(X) < sw_mm / 2 + bezel_mm) & (np.abs(Y) < sh_mm / 2 + bezel_mm)
        content = _fit(frame, cw, ch, cover=fill > 1.0)
        mapx = ((X + sw_mm / 2) * cpm - 0.5).astype(np.float32)
        mapy = ((Y + sh_mm / 2) * cpm - 0.5).astype(np.float32)
        scr = cv2.remap(content, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
        # the screen's look: blacks raised, whites compressed, a cold tint
        scr = 18 + scr * (215 / 255) * np.array([1.04, 0.98, 0.92])
        if moire:
            # RGB stripes of the screen's pixels, sampled at the camera pixels' centres
            u, v = X * ppmm, Y * ppmm
            stripes = 0.5 + 0.5 * np.cos(2 * np.pi * u)
            rows = 0.75 + 0.25 * np.cos(2 * np.pi * v)
            scr *= (0.7 + 0.3 * stripes * rows)[..., None]
        if banding:
            scr *= (1 + 0.06 * np.sin(2 * np.pi * (ys / (H / 3.5) + 0.37 * i)))[..., None]
        if glare:
            scr += lamp[..., None]
        img = bg.astype(np.float64).copy()
        img[on_body] = np.array([26.0, 24.0, 24.0])
        img[on_screen] = scr[on_screen]
        img = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.float32), (0, 0), 0.7)
        img += rng.normal(0, 2.0, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


REPLAYS = {
    # name: (device, fill, motion, moire, glare). The first ten are the tuning set of
    # kiosk.vision.screen; HELD_OUT were rendered only to check it afterwards.
    "phone_still": ("phone", 0.85, "still", True, True),
    "phone_still_plain": ("phone", 0.85, "still", False, False),
    "phone_drift": ("phone", 0.7, "drift", True, False),
    "phone_drift_glare": ("phone", 0.7, "drift", False, True),
    "tablet_still": ("tablet", 0.75, "still", True, False),
    "tablet_drift_plain": ("tablet", 0.6, "drift", False, False),
    "tablet_edge_to_edge": ("tablet", 1.25, "still", True, True),
    "tablet_edge_to_edge_plain": ("tablet", 1.25, "drift", False, False),
    "phone_fills_picture": ("phone", 1.6, "still", True, False),
    "phone_fills_picture_glare": ("phone", 1.6, "drift", False, True),
    # held out: other devices, sizes and distances
    "small_phone_still_glare": ("small_phone", 0.6, "still", False, True),
    "small_phone_drift_moire": ("small_phone", 0.95, "drift", True, False),
    "large_phone_still_moire_glare": ("large_phone", 0.9, "still", True, True),
    "large_phone_edge_to_edge": ("large_phone", 1.15, "drift", False, False),
    "small_tablet_drift_moire_glare": ("small_tablet", 0.7, "drift", True, True),
    "small_tablet_fills_picture": ("small_tablet", 1.4, "still", False, False),
}
HELD_OUT = tuple(k for k in REPLAYS if k.startswith(("small_", "large_")))


def replay_of(clip: list[np.ndarray], kind: str, seed: int = 0) -> list[np.ndarray]:
    device, fill, motion, moire, glare = REPLAYS[kind]
    return replay_frames(clip, device, fill, motion, moire, glare, banding=kind.endswith("plain") is False and seed % 2 == 1,
                         seed=seed)
