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
