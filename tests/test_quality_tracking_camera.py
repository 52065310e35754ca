"""Quality gate (pure and on real pixels), per-person voting on real frames,
and frame sources that survive a dead camera."""
import cv2
import numpy as np
import pytest

from kiosk.vision import quality as Q
from kiosk.vision.camera import LIVE, LOST, RECONNECTING, FolderCapture, ResilientSource, opener_for
from kiosk.vision.pipeline import RecognitionPipeline
from kiosk.vision.tracker import PersonTracker
from kiosk.vision.types import MatchResult

from .conftest import shared_engine
from .vision_helpers import face_frame, frame_from_photo

GOOD = Q.FaceMeasurements(face_px=200, sharpness=300, brightness=120, backlight_ratio=1.0, yaw=0.0,
                          pitch=0.0, det_score=0.95, rival_area_ratio=0.0)


def with_(**kw):
    return Q.FaceMeasurements(**{**GOOD.__dict__, **kw})


@pytest.mark.parametrize("m,code,hint", [
    (with_(face_px=40), Q.TOO_SMALL, "请靠近一点"),
    (with_(sharpness=5), Q.BLURRY, "请保持不动"),
    (with_(brightness=20), Q.TOO_DARK, "光线太暗"),
    (with_(backlight_ratio=3.5), Q.BACKLIT, "光线太暗"),
    (with_(yaw=0.6), Q.POSE, "请正对屏幕"),
    (with_(rival_area_ratio=0.9), Q.MULTIPLE_FACES, "请一位一位来"),
])
def test_quality_reason_codes_and_hints(m, code, hint):
    r = Q.assess(m)
    assert not r.ok and code in r.reasons and r.hint == hint


def test_good_face_passes_and_first_reason_by_priority():
    assert Q.assess(GOOD).ok and Q.assess(GOOD).hint is None
    r = Q.assess(with_(face_px=40, sharpness=5, rival_area_ratio=0.8))
    assert r.reasons[0] == Q.MULTIPLE_FACES and r.hint == "请一位一位来"


def test_quality_on_real_pixels(obama):
    eng = shared_engine("sface")
    frame = frame_from_photo(obama[1])
    assert eng.observe(frame).quality.ok
    blurred = cv2.GaussianBlur(frame, (0, 0), 6)
    assert Q.BLURRY in eng.observe(blurred).quality.reasons
    dark = (frame * 0.12).astype(np.uint8)
    obs = eng.observe(dark)
    assert obs.primary is None or Q.TOO_DARK in obs.quality.reasons
    far = frame_from_photo(obama[1], face_scale=0.25)
    obs = eng.observe(far)
    assert obs.primary is None or Q.TOO_SMALL in obs.quality.reasons
    assert obs.embedding is None    # frames that fail the gate are not embedded


def test_primary_face_is_largest_and_central(insightface_images):
    eng = shared_engine("sface")
    img = cv2.imread(str(insightface_images / "t1.jpg"))
    obs = eng.observe(img)
    assert len(obs.faces) >= 5
    biggest = max(obs.faces, key=lambda f: f.area)
    # the customer is the largest face, wherever it is (issue 9)
    assert obs.primary is biggest
    # six people side by side: faces nearly as large as the customer's stop the decision
    assert not obs.quality.ok and obs.quality.reasons[0] == Q.MULTIPLE_FACES and obs.embedding is None


def test_person_decided_over_frames(app, obama, biden):
    from .test_gallery import _enrol

    _enrol(app, "R1", obama[0])
    pipe = RecognitionPipeline(app.engine, app.faces.match, PersonTracker(votes_needed=3, window=6))
    frame = frame_from_photo(obama[1])
    states = []
    for i in range(4):
        jitter = np.roll(frame, i * 2, axis=1)
        states.append(pipe.process(jitter, ts=i * 0.1).decision)
    assert [d.state for d in states[:2]] == ["pending", "pending"]
    assert states[2].state == "identified" and states[2].resident_id == "R1"
    # a different person walks up: a new track, nothing carried over
    pipe2 = RecognitionPipeline(app.engine, app.faces.match, PersonTracker(votes_needed=3, window=6, unknown_after=4))
    out = [pipe2.process(face_frame(biden), ts=i * 0.1).decision for i in range(5)]
    assert all(d.state != "identified" for d in out) and out[-1].state == "unknown"


def test_conflicting_votes_never_identify():
    t = PersonTracker(votes_needed=3, window=6)
    t.observe((0, 0, 100, 100), 0.0)
    for rid in ("A", "A", "B", "A", "A"):
        d = t.vote(MatchResult("matched", rid, 0.7), 1.0)
    assert d.state == "pending"
    t2 = PersonTracker(votes_needed=3, window=6)
    t2.observe((0, 0, 100, 100), 0.0)
    t2.vote(MatchResult("ambiguous", None, 0.6), 1.0)
    for _ in range(3):
        d = t2.vote(MatchResult("matched", "A", 0.7), 1.0)
    assert d.state == "pending"   # a look-alike frame in the window blocks the decision


class Flaky:
    """A capture that dies after n frames (a camera unplugged)."""

    def __init__(self, frames):
        self.frames = frames

    def read(self):
        if self.frames <= 0:
            return False, None
        self.frames -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self):
        pass


def test_camera_lost_and_back_with_backoff():
    now = [0.0]
    opens = []
    plan = iter([Flaky(2), OSError("unplugged"), OSError("unplugged"), OSError("unplugged"), Flaky(5)])

    def opener():
        opens.append(now[0])
        nxt = next(plan)
        if isinstance(nxt, Exception):
            raise nxt
        return nxt

    src = ResilientSource(opener, min_backoff_s=1.0, max_backoff_s=4.0, lost_after_s=5.0, clock=lambda: now[0])
    assert src.read() is not None and src.state == LIVE
    assert src.read() is not None
    assert src.read() is None and src.state == RECONNECTING      # the camera died
    states = []
    for _ in range(40):
        now[0] += 0.5
        f = src.read()
        states.append(src.state)
        if f is not None:
            break
    assert LOST in states and states[-1] == LIVE                  # lost for a while, then back
    gaps = np.diff(opens[1:])
    assert all(b >= a for a, b in zip(gaps, gaps[1:]))            # back-off grows


def test_dead_camera_index_does_not_crash():
    src = ResilientSource(opener_for(97), lost_after_s=0.0)
    assert src.read() is None and src.state == LOST and "97" in src.last_error


def test_folder_source_skips_corrupt_files(tmp_path, obama):
    import shutil
    shutil.copy(obama[0], tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"broken")
    shutil.copy(obama[1], tmp_path / "c.jpg")
    cap = FolderCapture(tmp_path)
    shapes = [cap.read()[1].shape for _ in range(3)]
    assert len(shapes) == 3
