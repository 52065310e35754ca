"""Frame sources: a camera index, a video file, an RTSP/HTTP URL, a folder of
images, or frames made in memory. A source that fails is reopened with
back-off and reports its state (live / reconnecting / lost); it never raises
into the caller's loop."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from kiosk.vision.image_io import check_video_capture, read_image

log = logging.getLogger(__name__)

LIVE, RECONNECTING, LOST = "live", "reconnecting", "lost"
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    ts: float
    index: int


class Capture(Protocol):
    """What a source needs from an opened device: OpenCV's VideoCapture fits."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def release(self) -> None: ...


class FolderCapture:
    """Images of a folder in name order, looping; behaves like a VideoCapture."""

    def __init__(self, folder: Path, loop: bool = True) -> None:
        self.files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXT)
        if not self.files:
            raise FileNotFoundError(f"no images in {folder}")
        self.loop, self.i = loop, 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.i >= len(self.files):
            if not self.loop:
                return False, None
            self.i = 0
        p = self.files[self.i]
        self.i += 1
        try:
            return True, read_image(p)
        except Exception:  # a corrupt file in the folder is skipped, not fatal
            log.warning("skipping unreadable image %s", p)
            return self.read() if self.i < len(self.files) else (False, None)

    def release(self) -> None:
        pass


class LoopingVideo:
    """A video file played in a loop (demo and tests)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.cap = cv2.VideoCapture(path)
        if not self.cap.isOpened():
            raise FileNotFoundError(f"cannot open video {path}")
        try:
            check_video_capture(self.cap, path)     # frame size from the header, before decoding
        except Exception:
            self.cap.release()
            raise

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, img = self.cap.read()
        if not ok:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
        return ok, img

    def release(self) -> None:
        self.cap.release()


def _video_opener(target: int | str, what: str) -> Callable[[], Capture]:
    def open_capture() -> Capture:
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"{what} cannot be opened")
        try:
            check_video_capture(cap, what)
        except Exception:
            cap.release()
            raise
        return cap
    return open_capture


def opener_for(spec: str | int) -> Callable[[], Capture]:
    """An opener for a source spec: camera index, file, folder or URL."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return _video_opener(int(spec), f"camera {spec}")
    text = str(spec)
    if "://" in text:
        return _video_opener(text, f"stream {text}")
    path = Path(text)
    if path.is_dir():
        return lambda: FolderCapture(path)
    return lambda: LoopingVideo(str(path))


class ResilientSource:
    """Reads frames from an opener; on failure closes, waits with exponential
    back-off and reopens. ``state`` is live, reconnecting, or lost (after
    ``lost_after_s`` without a frame; it keeps trying)."""

    def __init__(self, opener: Callable[[], Capture], *, min_backoff_s: float = 0.2,
                 max_backoff_s: float = 5.0, lost_after_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._opener = opener
        self._cap: Capture | None = None
        self._min, self._max, self._lost_after = min_backoff_s, max_backoff_s, lost_after_s
        self._backoff = min_backoff_s
        self._clock, self._sleep = clock, sleep
        self._last_ok = clock()
        self._retry_at = 0.0
        self._index = 0
        self.state = RECONNECTING
        self.last_error: str | None = None

    def _set_state(self, s: str) -> None:
        if s != self.state:
            log.info("frame source: %s -> %s", self.state, s)
            self.state = s

    def read(self) -> Frame | None:
        """One frame, or None when there is none now (the state says why)."""
        now = self._clock()
        if self._cap is None:
            if now < self._retry_at:
                self._update_lost(now)
                return None
            try:
                self._cap = self._opener()
            except Exception as exc:  # noqa: BLE001 - any failure to open is a reconnect
                self._fail(now, str(exc))
                return None
        try:
            ok, img = self._cap.read()
        except Exception as exc:  # noqa: BLE001
            ok, img = False, None
            self.last_error = str(exc)
        if not ok or img is None or getattr(img, "size", 0) == 0:
            self._close()
            self._fail(now, self.last_error or "no frame")
            return None
        self._last_ok = now
        self._backoff = self._min
        self._set_state(LIVE)
        self._index += 1
        return Frame(img, now, self._index)

    def _fail(self, now: float, why: str) -> None:
        self.last_error = why
        self._retry_at = now + self._backoff
        self._backoff = min(self._max, self._backoff * 2)
        self._update_lost(now)

    def _update_lost(self, now: float) -> None:
        self._set_state(LOST if now - self._last_ok >= self._lost_after else RECONNECTING)

    def _close(self) -> None:
        if self._cap is not None:
            try:
                self._cap.release()
            except Exception:  # noqa: BLE001
                pass
            self._cap = None

    def close(self) -> None:
        self._close()
