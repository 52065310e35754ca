"""Head pose from the five face landmarks (eyes, nose tip, mouth corners).

``head_pose`` solves the rotation of a generic 3-D face (``FACE_5``) that best
projects onto the five landmarks (``cv2.solvePnP``), the standard way to get a
head pose from a handful of landmarks. The camera is a pinhole at ten eye
distances from the face (a kiosk user at arm's length), whatever the image
size: only the rotation is used, and at that distance perspective is mild, so
the result hardly depends on the focal length the real camera has.

Angles in degrees. ``yaw`` > 0 when the person turns to their own left (the
nose moves toward the image's right in an image that is not mirrored: the sign
of ``quality.pose_from_landmarks``), ``pitch`` > 0 when they look up,
``roll`` the in-plane tilt of the head.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The generic face in eye distances (IOD), origin between the eyes, x to the image's right,
# y down, z away from the camera (a frontal face looks down +z). Order as the detectors give
# them: eye on the image's left, eye on the image's right, nose tip, mouth corner left, right.
# x and y from the ArcFace alignment template (the five points of an average frontal face);
# depths from insightface's 68-point 3-D mean face (data/objects/meanshape_68.pkl): the nose
# tip 0.53 IOD and the mouth corners 0.12 IOD in front of the eye centres.
FACE_5 = np.array([[-0.50, 0.00, 0.00],
                   [0.50, 0.00, 0.00],
                   [0.00, 0.57, -0.53],
                   [-0.41, 1.16, -0.12],
                   [0.41, 1.16, -0.12]], np.float64)

_DIST = 10.0   # camera distance in IOD for the solve


@dataclass(frozen=True)
class HeadPose:
    yaw: float
    pitch: float
    roll: float
    error: float   # RMS reprojection error of the generic face, in eye distances


def _euler(R: np.ndarray) -> tuple[float, float, float]:
    """R = Rz(roll) @ Ry(yaw') @ Rx(pitch') (camera axes), angles in degrees."""
    sy = float(np.clip(-R[2, 0], -1.0, 1.0))
    yaw = np.degrees(np.arcsin(sy))
    pitch = np.degrees(np.arctan2(R[2, 1], R[2, 2]))
    roll = np.degrees(np.arctan2(R[1, 0], R[0, 0]))
    return float(yaw), float(pitch), float(roll)


def head_pose(landmarks: np.ndarray, prior: np.ndarray | None = None) -> HeadPose:
    """The rotation of the generic face that fits ``landmarks`` (5x2, pixels).

    ``prior``: a rotation vector to start from (the previous frame's), which keeps
    the solve on the same branch along a track."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    span = float(np.linalg.norm((lm[0] + lm[1]) / 2 - (lm[3] + lm[4]) / 2))
    scale = max(iod, span / 1.16, 1e-6)        # a turned face keeps its height, not its width
    c = lm.mean(0)
    img = ((lm - c) / scale).astype(np.float64)
    K = np.array([[_DIST, 0, 0], [0, _DIST, 0], [0, 0, 1.0]])
    obj = FACE_5 - FACE_5.mean(0)
    if prior is None:
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
    else:
        rvec, tvec = np.asarray(prior, np.float64).reshape(3, 1).copy(), np.array([[0.0], [0.0], [_DIST]])
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    R, _ = cv2.Rodrigues(rvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    err = float(np.sqrt(((proj.reshape(5, 2) - img) ** 2).sum(1).mean()))
    # camera looks down +z, the face's x points to the image's right: a turn to the person's
    # left brings the nose (z < 0) toward +x, a rotation about y by a negative angle
    yaw, pitch, roll = _euler(R)
    return HeadPose(-yaw, -pitch, roll, err)


def track_pose(landmarks: list[np.ndarray]) -> list[HeadPose]:
    """Head poses along a face track, each solve started from the previous one."""
    out: list[HeadPose] = []
    prior = None
    for lm in landmarks:
        p = head_pose(lm, prior)
        out.append(p)
        prior = cv2.Rodrigues(_rotation(p))[0]
    return out


def _rotation(p: HeadPose) -> np.ndarray:
    y, x, z = np.radians([-p.yaw, -p.pitch, p.roll])
    Rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    Ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    Rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx
