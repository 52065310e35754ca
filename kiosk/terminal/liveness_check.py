"""Liveness at the counter: the head-turn challenge or the passive anti-spoofing model."""
from __future__ import annotations

import random

from kiosk.db import audit


class LivenessCheck:
    def __init__(self, app) -> None:
        self.app = app
        self._passive = None

    def mode(self) -> str:
        """off, active (a head turn asked for) or passive (an anti-spoofing model)."""
        return self.app.settings.liveness

    def new_challenge(self) -> tuple[str, str]:
        """A random head-turn direction and its spoken request."""
        from kiosk.vision.liveness import CHALLENGES

        d = random.choice(sorted(CHALLENGES))
        return d, CHALLENGES[d][0]

    def live_frame(self, ts: float, bbox, landmarks, image):
        """What the head-turn check keeps of one frame."""
        import cv2

        from kiosk.vision.liveness import LiveFrame

        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image is not None and image.ndim == 3 else image
        return LiveFrame(ts, bbox, landmarks, gray)

    def check_head_turn(self, frames: list, direction: str):
        from kiosk.vision.liveness import check_active

        return check_active(frames, direction)

    def turn_progress(self, first_landmarks, landmarks, direction: str) -> float:
        """The yaw reached the way asked against the yaw the check needs, 0..1 (the progress
        bar): the head pose in degrees, as the check measures it (kiosk.vision.headpose)."""
        from kiosk.vision.headpose import head_pose
        from kiosk.vision.liveness import CHALLENGES, LivenessConfig

        if first_landmarks is None or landmarks is None:
            return 0.0
        turned = (head_pose(landmarks).yaw - head_pose(first_landmarks).yaw) * CHALLENGES[direction][1]
        return max(0.0, min(1.0, turned / LivenessConfig().min_turn_deg))

    def passive(self, image, landmarks):
        """The configured ONNX anti-spoofing model on one frame."""
        from kiosk.vision.liveness import PassiveLiveness

        if self._passive is None:
            s = self.app.settings
            if s.liveness_model is None:
                from kiosk.errors import ConfigError
                raise ConfigError("未配置活体检测模型", detail="KIOSK_LIVENESS=passive needs KIOSK_LIVENESS_MODEL")
            path = s.liveness_model if s.liveness_model.is_absolute() else s.model_dir / s.liveness_model
            self._passive = PassiveLiveness(path, s.liveness_threshold)
        return self._passive.check(image, landmarks)

    def record_failure(self, resident_id: str | None, reason: str, **detail) -> None:
        """A face that failed the check (audited: the office sees attempts at fraud)."""
        with self.app.db.session() as s:
            audit.record(s, "kiosk", "liveness.failed", resident_id, reason=reason, **detail)
