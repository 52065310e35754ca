"""`kiosk demo`: a demo canteen in a temporary KIOSK_HOME, built through the
real importers from the format examples and real sample photos, and a
generated camera that plays a known elder, then a stranger."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.config import Settings, load_settings
from kiosk.services.security import write_key_file
from kiosk.timeutil import now_cst
from kiosk.vision.image_io import read_image
from kiosk.vision.modelpacks import verify_pack

# the district's example files (copies of ../shared/formats), shipped with the package
FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"


def make_demo_home(base: Path | None = None) -> tuple[Settings, Path]:
    """A fresh home with its key file outside it. Returns (settings, base folder)."""
    base = Path(base or tempfile.mkdtemp(prefix="kiosk-demo-"))
    key = base / "keys" / "template.key"
    write_key_file(key)
    s = load_settings(home=base / "home", template_key_file=key, canteen_name="玉林社区长寿食堂")
    return s, base


def seed_demo(app) -> dict:
    from kiosk.services.canteen import configure_canteen
    from kiosk.services.importing import import_menu, import_policy, import_roster

    src = FORMATS
    samples = app.settings.model_dir / "samples"
    work = app.settings.home / "demo-import"
    photos = work / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    # the roster's photo names, filled with real sample photos
    shutil.copy(samples / "face_recognition" / "obama.jpg", photos / "zhang_1.jpg")
    shutil.copy(samples / "face_recognition" / "obama3.jpg", photos / "zhang_2.jpg")
    shutil.copy(samples / "face_recognition" / "biden.jpg", photos / "wang_1.jpg")
    shutil.copy(samples / "strangers" / "grace_hopper.jpg", photos / "liu_1.jpg")
    # today's menu for every meal, from the example dishes
    today = now_cst().date().isoformat()
    lines = (src / "menu.example.csv").read_text(encoding="utf-8-sig").splitlines()
    out = [lines[0]]
    for meal in ("早餐", "午餐", "晚餐"):
        for ln in lines[1:]:
            cols = ln.split(",")
            cols[0], cols[1] = today, meal
            out.append(",".join(cols))
    (work / "menu.csv").write_text("\n".join(out) + "\n", encoding="utf-8")
    configure_canteen(app, name=app.settings.canteen_name, district="武侯区",
                      windows={"午餐": ["00:00", "23:59"]})   # lunch all day: the same flow at any hour
    app.residents.add_staff("A01", "王站长", "admin", "888888")       # the first staff member: an admin
    admin = app.auth.verify("A01", "888888")
    app.residents.add_staff("S01", "李姐", "staff", "1234", actor=admin)
    # the admin imports: the roster's face consent and photos are recorded as theirs
    import_policy(app, src / "policy.example.yaml", staff_id=admin.staff_id)
    import_menu(app, work / "menu.csv", staff_id=admin.staff_id)
    rep = import_roster(app, src / "roster.example.csv", photos_dir=photos, staff_id=admin.staff_id)
    app.billing.topup("R0001", 5000, payer="子女 李明", actor=app.auth.verify("S01", "1234"))
    return {"roster": rep.to_json()}


def turn_head(img: np.ndarray, bbox, nose, theta: float) -> np.ndarray:
    """A 2.5-D head turn of a photo, for the demo and the tests (not a real head): the
    face is given an ellipsoid depth with a nose, rotated by ``theta`` radians about
    the vertical axis (theta > 0 turns the head to its left) and redrawn."""
    h, w = img.shape[:2]
    x, y, fw, fh = bbox
    cx, cy = x + fw / 2, y + fh * 0.55
    X, Y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    q = np.clip(1 - ((X - cx) / (0.7 * fw)) ** 2 - ((Y - cy) / (0.85 * fh)) ** 2, 0, 1)
    z = 0.7 * fw * q ** 0.7
    s = 0.11 * fw
    z += 0.22 * fw * np.exp(-(((X - nose[0]) ** 2) / (2 * s * s) + ((Y - nose[1]) ** 2) / (2 * (1.4 * s) ** 2)))
    z = z.astype(np.float32)
    c, sn = np.cos(theta), np.sin(theta)
    xs = X.copy()
    for _ in range(6):   # inverse mapping: find the source column that lands on each output column
        xs = (cx + (X - cx - cv2.remap(z, xs, Y, cv2.INTER_LINEAR) * sn) / c).astype(np.float32)
    return cv2.remap(img, xs, Y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class Scene:
    photo: Path | None
    seconds: float
    grow: bool = False


class DemoCapture:
    """A generated camera (a Capture): scenes of real photos on a counter-like
    background, looping. A known elder walks up (growing face), then nobody,
    then a stranger."""

    def __init__(self, model_dir: Path, size=(640, 480), clock=time.monotonic) -> None:
        self.model_dir = Path(model_dir)
        fr, st = self.model_dir / "samples" / "face_recognition", self.model_dir / "samples" / "strangers"
        self.scenes = [Scene(None, 2.5), Scene(fr / "obama2.jpg", 2.0, grow=True), Scene(fr / "obama2.jpg", 16.0),
                       Scene(None, 4.0), Scene(st / "eileen_collins.png", 12.0), Scene(None, 14.0)]
        self.size, self.clock = size, clock
        self.t0 = clock()
        self._crops = {}
        self.bg = self._background()
        self._turn: list[float] | None = None   # [+1 left / -1 right, head clock, wall clock at last frame]
        self._detector = None

    # The head's own clock runs with the wall clock but at most HEAD_STEP_S per frame read: on a
    # slow machine the person turns as slowly as the camera needs to see the turn progressively
    # (the liveness check refuses a turn that happens between two frames).
    HEAD_STEP_S = 0.1

    def turn(self, direction: str) -> None:
        """Make the person on camera turn their head as asked (the demo autopilot)."""
        self._turn = [1.0 if direction == "left" else -1.0, 0.0, self.clock()]

    def _theta(self) -> float:
        if self._turn is None:
            return 0.0
        now = self.clock()
        self._turn[1] += min(self.HEAD_STEP_S, max(0.0, now - self._turn[2]))
        self._turn[2] = now
        dt = self._turn[1]
        if dt > 3.2:
            self._turn = None
            return 0.0
        ramp = min(1.0, dt / 1.2) if dt < 2.0 else max(0.0, 1 - (dt - 2.0) / 1.2)
        return self._turn[0] * np.radians(28) * ramp

    def _background(self) -> np.ndarray:
        w, h = self.size
        y = np.linspace(0, 1, h)[:, None]
        bg = np.empty((h, w, 3), np.uint8)
        bg[:] = (np.array([200, 215, 225]) * (1 - 0.25 * y[..., None])).astype(np.uint8)
        cv2.rectangle(bg, (0, int(h * 0.82)), (w, h), (120, 140, 160), -1)
        return bg

    def _crop(self, photo: Path) -> np.ndarray:
        if photo not in self._crops:
            img = read_image(photo)
            files = verify_pack(self.model_dir, "sface", full_hash=False)
            yn = cv2.FaceDetectorYN.create(str(files["detector"]), "", (img.shape[1], img.shape[0]), 0.7, 0.3, 50)
            _, rows = yn.detect(img)
            x, y, fw, fh = rows[0][:4] if rows is not None else (0, 0, img.shape[1], img.shape[0])
            cx, cy, half = x + fw / 2, y + fh / 2, max(fw, fh) * 1.3
            x0, y0 = int(max(0, cx - half)), int(max(0, cy - half * 1.1))
            x1, y1 = int(min(img.shape[1], cx + half)), int(min(img.shape[0], cy + half * 1.2))
            self._crops[photo] = img[y0:y1, x0:x1].copy()
        return self._crops[photo]

    def read(self):
        total = sum(s.seconds for s in self.scenes)
        t = (self.clock() - self.t0) % total
        for sc in self.scenes:
            if t < sc.seconds:
                break
            t -= sc.seconds
        frame = self.bg.copy()
        if sc.photo is not None:
            crop = self._crop(sc.photo)
            w, h = self.size
            frac = (0.35 + 0.4 * t / sc.seconds) if sc.grow else 0.8
            th = int(h * frac)
            tw = int(crop.shape[1] * th / crop.shape[0])
            face = cv2.resize(crop, (tw, th))
            x0, y0 = (w - tw) // 2 + (0 if self._turn else int(4 * np.sin(t * 3))), max(0, int(h * 0.82) - th)
            x1, y1 = min(w, x0 + tw), min(h, y0 + th)
            frame[y0:y1, max(0, x0):x1] = face[: y1 - y0, max(0, -x0): x1 - x0]
            theta = self._theta()
            if theta:
                frame = self._turned(frame, theta)
        return True, frame

    def _turned(self, frame: np.ndarray, theta: float) -> np.ndarray:
        if self._detector is None:
            files = verify_pack(self.model_dir, "sface", full_hash=False)
            self._detector = cv2.FaceDetectorYN.create(str(files["detector"]), "", self.size, 0.7, 0.3, 50)
        _, rows = self._detector.detect(frame)
        if rows is None:
            return frame
        r = rows[0]
        return turn_head(frame, r[:4], r[8:10], theta)

    def release(self) -> None:
        pass
