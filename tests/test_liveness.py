"""Liveness: photo and screen attacks made from real photos are refused (flat, bent,
cut out, on a screen with glare and moire, swapped mid-track); real recordings of
real heads turning pass the way they turn and fail the other way (when
../shared/liveness/live is there); the head pose is checked on a projected 3-D face;
the passive ONNX path runs on tiny graphs built here."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kiosk.cli.main import main
from kiosk.errors import ModelError
from kiosk.vision import liveness as lv
from kiosk.vision.headpose import FACE_5, HeadPose, _rotation, head_pose
from kiosk.vision.liveness import (REFUSED_CUT, REFUSED_ROLL, LiveFrame, PassiveLiveness, check_active,
                                   frames_from_path, nose_parallax)
from kiosk.vision.quality import pose_from_landmarks, primary_face

from tests.conftest import shared_engine
from tests.liveness_helpers import (ATTACKS, approach_frames, attack_frames, bent_print_frames, cutout_frames,
                               live_frames, screen_frames, swap_frames)
from tests.vision_helpers import face_frame


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_photo_and_screen_attacks_are_refused(backend, obama, biden, strangers):
    eng = shared_engine(backend)
    photos = obama + [biden] + strangers[:4]
    results = []
    for p in photos:
        frame = face_frame(p)
        for kind in ATTACKS:
            seq = live_frames(eng, attack_frames(frame, kind))
            for challenge in ("left", "right"):
                r = check_active(seq, challenge)
                results.append((p.name, kind, challenge, r.live, r.reason))
    passed = [r for r in results if r[3]]
    assert passed == [], passed
    assert len(results) == len(photos) * len(ATTACKS) * 2


def test_real_pose_change_shows_parallax_a_flat_photo_does_not(obama):
    """obama.jpg (yaw +0.05) and obama2.jpg (yaw -0.16) are one real head in two poses."""
    eng = shared_engine("sface")
    a = primary_face(eng.detect(face_frame(obama[0])), (480, 640))
    b = primary_face(eng.detect(face_frame(obama[1])), (480, 640))
    assert nose_parallax(a.landmarks, b.landmarks) >= 0.1
    frames = attack_frames(face_frame(obama[0]), "turn_right")
    f0 = primary_face(eng.detect(frames[0]), (480, 640))
    fk = primary_face(eng.detect(frames[-1]), (480, 640))
    assert nose_parallax(f0.landmarks, fk.landmarks) < 0.07


def synthetic_turn(n=10, turn=0.3, nose_out=0.5, roll=0.0):
    """Landmarks of a 3-D head (nose out of the eye-mouth plane) turning (``turn`` radians
    of yaw) and tilting (``roll`` radians) in front of a pinhole camera: the geometric rules
    on their own, without a detector."""
    pts3 = np.array([[-30, -30, 0], [30, -30, 0], [0, 0, -nose_out * 60], [-22, 30, 0], [22, 30, 0]], float)
    out = []
    for i in range(n + 1):
        th = -turn * i / n   # positive turn = the yaw proxy grows = a "left" turn
        c = roll * i / n
        R = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
        R = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]]) @ R
        p = pts3 @ R.T + [0, 0, 600]
        uv = p[:, :2] / p[:, 2:] * 700 + [320, 240]
        x0, y0 = uv.min(0) - 30
        x1, y1 = uv.max(0) + 30
        out.append(LiveFrame(i / 12, (x0, y0, x1 - x0, y1 - y0), uv.astype(np.float32)))
    return out


def test_geometry_of_a_turning_head_passes_and_of_a_plane_does_not():
    assert check_active(synthetic_turn(turn=0.35), "left").live
    assert not check_active(synthetic_turn(turn=0.35, nose_out=0.0), "left").live   # flat: no parallax
    assert not check_active(synthetic_turn(turn=-0.35), "left").live                # wrong way
    r = check_active(synthetic_turn(turn=0.35), "right")
    assert not r.live and "向右" in r.reason and r.code == lv.NO_TURN
    assert check_active(synthetic_turn(turn=0.35), "left").code == lv.PASSED
    assert check_active(synthetic_turn(turn=0.35, nose_out=0.0), "left").code == lv.NO_TURN   # a plane shows no yaw


def test_cut_and_jump_are_refused():
    seq = synthetic_turn(turn=0.35)
    cut = seq[:5] + [LiveFrame(seq[5].ts, (500, 300, 80, 100), seq[5].landmarks)] + seq[6:]
    assert check_active(cut, "left").reason.startswith("画面不连续")
    assert check_active(cut, "left").code == lv.CUT
    jump = seq[:1] + [LiveFrame(f.ts, seq[-1].bbox, seq[-1].landmarks) for f in seq[1:8]]
    assert "太突然" in check_active(jump, "left").reason
    assert check_active(jump, "left").code == lv.JUMP
    gone = seq[:3] + [LiveFrame(s.ts, None, None) for s in seq[3:8]] + seq[8:]
    assert check_active(gone, "left").reason == "画面中断，请再试一次"
    assert check_active(gone, "left").code == lv.GAP
    assert check_active(seq[:2], "left").code == lv.UNSEEN


def test_every_verdict_carries_a_stable_code():
    """Each refusal and pass in liveness.py names its code from CODES (no verdict without one)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(lv))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LivenessResult"]
    assert len(calls) >= 12
    for c in calls:
        kw = {k.arg: k.value for k in c.keywords}
        assert "code" in kw, f"liveness.py:{c.lineno} has no code"
        v = kw["code"]
        if isinstance(v, ast.Attribute):     # a verdict passed on (r.code)
            continue
        names = {n.id for n in ast.walk(v) if isinstance(n, ast.Name)} - {"broken", "ok", "r"}
        assert names and all(getattr(lv, n) in lv.CODES for n in names), f"liveness.py:{c.lineno}"
    assert len(set(lv.CODES)) == len(lv.CODES)


def test_cli_liveness_on_a_recorded_photo_attack(env, obama, tmp_path, capsys):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, img in enumerate(attack_frames(face_frame(obama[0]), "turn_left")):
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    assert main(["liveness", str(folder), "--challenge", "left", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["live"] is False and set(out) == {"live", "code", "score", "reason"}
    assert out["code"] in lv.CODES and out["code"] != lv.PASSED
    video = tmp_path / "attack.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12, (640, 480))
    for img in attack_frames(face_frame(obama[1]), "shift"):
        w.write(img)
    w.release()
    assert main(["liveness", str(video), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["live"] is False


def tiny_model(path, value=None, softmax=False, shape=(1, 3, 80, 80)):
    """An ONNX graph that returns a constant score (or mean brightness) for an 80x80 crop."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))
    if softmax:
        y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])
        const = helper.make_tensor("c", TensorProto.FLOAT, [1, 3], list(value))
        nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
                 helper.make_node("Mul", ["m", "zero"], ["z"]),
                 helper.make_node("Add", ["c", "z"], ["out"])]
        inits = [const, helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    else:
        y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])
        nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
                 helper.make_node("Reshape", ["m", "shape"], ["out"])]
        inits = [helper.make_tensor("shape", TensorProto.INT64, [1], [1])]
    g = helper.make_graph(nodes, "tiny_liveness", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_passive_model_wiring(tmp_path, obama):
    eng = shared_engine("sface")
    img = face_frame(obama[0])
    lm = primary_face(eng.detect(img), img.shape).landmarks
    bright = PassiveLiveness(tiny_model(tmp_path / "mean.onnx"), threshold=0.3)
    s = bright.score(img, lm)
    assert 0.0 < s < 1.0                      # the mean of the aligned crop scaled to 0..1
    assert bright.check(img, lm).live == (s >= 0.3)
    assert not PassiveLiveness(tmp_path / "mean.onnx", threshold=0.99).check(img, lm).live
    soft = PassiveLiveness(tiny_model(tmp_path / "soft.onnx", value=[0.1, 3.0, 0.2], softmax=True),
                           threshold=0.8, output="softmax", live_index=1)
    assert soft.score(img, lm) > 0.8 and soft.check(img, lm).live
    spoof = PassiveLiveness(tiny_model(tmp_path / "spoof.onnx", value=[3.0, 0.1, 0.2], softmax=True),
                            output="softmax", live_index=1)
    assert not spoof.check(img, lm).live
    aligned = PassiveLiveness.align(img, lm)
    assert aligned.shape == (80, 80, 3)


def test_passive_model_errors(tmp_path):
    with pytest.raises(ModelError, match="找不到"):
        PassiveLiveness(tmp_path / "none.onnx")
    with pytest.raises(ModelError, match="80×80"):
        PassiveLiveness(tiny_model(tmp_path / "wrong.onnx", shape=(1, 3, 112, 112)))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="无法加载"):
        PassiveLiveness(bad)


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_synthetic_head_turns_of_real_photos_pass(backend, obama, biden):
    """2.5-D turns (kiosk.terminal.demo.turn_head: a real photo on an ellipsoid head with a nose)
    seen through the real detector pass the way asked, and fail the other way.
    Synthetic, not a real head: see docs/liveness.md."""
    from kiosk.terminal.demo import turn_head

    eng = shared_engine(backend)
    passed = 0
    for p in obama + [biden]:
        frame = face_frame(p)
        f = primary_face(shared_engine("sface").detect(frame), frame.shape)
        for direction, sign in (("left", 1), ("right", -1)):
            imgs = [turn_head(frame, f.bbox, f.landmarks[2], sign * np.radians(28) * i / 12) for i in range(13)]
            seq = live_frames(eng, imgs)
            ok = check_active(seq, direction)
            passed += ok.live
            assert not check_active(seq, "right" if direction == "left" else "left").live
    assert passed == 8


def test_dense_test_is_not_skipped_by_a_gap_and_a_lost_track_is_refused(obama):
    """A frame without a face between the start and the turn (a hand over the camera)
    does not switch off the flatness test; a picture swapped in (here: noise from the
    fourth frame on, with the real landmarks kept) breaks the track: the turn would only
    exist across the break, so it is refused as 画面不连续, not taken as live."""
    from kiosk.terminal.demo import turn_head

    eng = shared_engine("sface")
    frame = face_frame(obama[0])
    f = primary_face(eng.detect(frame), frame.shape)
    imgs = [turn_head(frame, f.bbox, f.landmarks[2], np.radians(28) * i / 12) for i in range(13)]
    seq = live_frames(eng, imgs)
    whole = check_active(seq, "left")
    assert whole.live and whole.details["segments"] >= 3 and whole.details["planar_share"] < 0.8
    gap = seq[:4] + [LiveFrame(seq[4].ts, None, None, seq[4].gray)] + seq[5:]
    r = check_active(gap, "left")
    assert r.live and "planar_share" in r.details
    rng = np.random.default_rng(7)
    swapped = [LiveFrame(s.ts, s.bbox, s.landmarks, rng.integers(0, 255, s.gray.shape, np.uint8) if i >= 3 else s.gray)
               for i, s in enumerate(seq)]
    lost = check_active(swapped, "left")
    assert not lost.live and lost.reason == REFUSED_CUT and lost.details["pieces"] >= 2


def test_demo_head_turns_no_faster_per_frame_on_a_slow_machine(tmp_path):
    """The demo's generated elder turns with the wall clock, but at most HEAD_STEP_S of
    the turn per frame read, so a slow kiosk still sees the turn progressively."""
    from kiosk.config import get_settings
    from kiosk.terminal.demo import DemoCapture

    now = [100.0]
    cap = DemoCapture(get_settings().model_dir, clock=lambda: now[0])
    cap.turn("left")
    angles = []
    for _ in range(40):
        now[0] += 0.5                      # two frames a second
        angles.append(cap._theta())
    steps = np.abs(np.diff([0.0] + angles))
    assert max(angles) == pytest.approx(np.radians(28))
    assert steps.max() <= np.radians(28) * cap.HEAD_STEP_S / 1.2 + 1e-9
    assert cap._turn is None                            # the turn ended, back to frontal
    cap.turn("right")
    now[0] += 0.05                                     # a fast machine: the wall clock rules
    assert cap._theta() == pytest.approx(-np.radians(28) * 0.05 / 1.2)


# --------------------------------------------------------------------------- head pose

@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (20, 0, 0), (-35, 10, 0), (15, -10, 20), (50, 5, -12)])
def test_head_pose_recovers_a_projected_generic_face(yaw, pitch, roll):
    R = _rotation(HeadPose(yaw, pitch, roll, 0.0))
    pts = (FACE_5 - FACE_5.mean(0)) @ R.T + [0, 0, 10]
    uv = pts[:, :2] / pts[:, 2:] * 400 + [320, 240]
    p = head_pose(uv)
    assert p.yaw == pytest.approx(yaw, abs=1.0)
    assert p.pitch == pytest.approx(pitch, abs=1.0)
    assert p.roll == pytest.approx(roll, abs=1.0)
    assert p.error < 0.01
    if yaw:   # the same sign as the landmark yaw proxy: a turn to the person's left is positive
        assert np.sign(pose_from_landmarks(uv)[0]) == np.sign(yaw)


def test_roll_with_a_turn_passes_a_roll_alone_is_not_a_turn():
    tilted = synthetic_turn(turn=0.35, roll=np.radians(25))
    assert check_active(tilted, "left").live                 # an elder tilts while turning
    r = check_active(synthetic_turn(turn=0.0, roll=np.radians(25)), "left")
    assert not r.live and r.reason == REFUSED_ROLL
    assert not check_active(synthetic_turn(turn=0.0, roll=np.radians(25)), "right").live
    # a fast turn: most of it between two frames, the rest on either side
    seq = synthetic_turn(turn=0.35)
    fast = seq[:3] + seq[9:]
    assert check_active(fast, "left").live


# --------------------------------------------------------------------------- harder attacks

def _accepted_ways(eng, imgs):
    """The challenges (of left, right) that accept these frames."""
    seq = live_frames(eng, imgs)
    return [(c, r.reason) for c in ("left", "right") if (r := check_active(seq, c)).live]


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_cut_out_photo_before_a_real_scene_and_a_photo_brought_closer_are_refused(backend, obama, biden, strangers):
    """A photo cut out along the head, in front of a still textured scene (the scene shows
    around the face), turned or moved; a photo brought toward the camera while turned."""
    eng = shared_engine(backend)
    accepted, n = [], 0
    for p in [obama[1], biden, strangers[0]]:
        frame = face_frame(p)
        for kind in ("turn_left", "turn_right", "turn_and_move"):
            accepted += [(p.name, "cutout", kind, a) for a in _accepted_ways(eng, cutout_frames(frame, kind))]
            n += 2
        for yaw in (30, -30):
            accepted += [(p.name, "approach", yaw, a) for a in _accepted_ways(eng, approach_frames(frame, yaw))]
            n += 2
    assert n == 30 and accepted == [], accepted


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_phone_screen_with_glare_and_moire_turned_is_refused(backend, obama, biden, strangers):
    """The photo on a phone (bezel, the screen's pixel grid beating with the camera's) with a
    lamp's reflection that stays put while the screen is turned left or right."""
    eng = shared_engine(backend)
    accepted, n = [], 0
    for p in [obama[0], biden, strangers[1]]:
        frame = face_frame(p)
        for kind in ("turn_left", "turn_right"):
            accepted += [(p.name, kind, a) for a in _accepted_ways(eng, screen_frames(frame, kind))]
            n += 2
    assert n == 12 and accepted == [], accepted


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_bent_print_turned_or_moved_is_refused(backend, obama, strangers):
    """A print bent around a vertical cylinder (radius 1.2 face widths, and 0.6: a paper
    mask), turned 45 degrees either way where it is held, and bent 0.8 while turned 40
    degrees, moved sideways, tilted and brought closer: a real 3-D surface whose landmarks
    turn like a head's, but with no nose standing out of its column (rule 6)."""
    eng = shared_engine(backend)
    accepted, n = [], 0
    for p in [obama[1], strangers[0]]:
        frame = face_frame(p)
        for radius, yaw, move in ((1.2, 45, {}), (1.2, -45, {}), (0.6, 45, {}), (0.6, -45, {}),
                                  (0.8, 40, dict(dx=40, roll=8, scale=0.2)), (0.8, -40, dict(dx=40, roll=8, scale=0.2))):
            imgs = bent_print_frames(frame, radius, yaw, **move)
            accepted += [(p.name, radius, yaw, a) for a in _accepted_ways(eng, imgs)]
            n += 2
    assert n == 24 and accepted == [], accepted


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_phone_screen_turned_while_moved_is_refused(backend, obama, biden, strangers):
    """The phone screen (moire, a lamp's reflection that stays put) turned while it is moved
    sideways, tilted and brought closer: the reflection and the moire move unlike the
    picture, which the planar test alone could take for depth."""
    eng = shared_engine(backend)
    accepted = []
    for p in [obama[1], biden, strangers[2]]:
        accepted += [(p.name, a) for a in _accepted_ways(eng, screen_frames(face_frame(p), "turn_and_move"))]
    assert accepted == [], accepted


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_photos_of_one_person_swapped_mid_track_are_refused(backend, obama):
    """Real photos of one man in different poses (yaw proxy obama2 -0.13, obama +0.03,
    obama3 +0.10), shown one after the other at the same place: the landmarks turn and
    show real parallax (two poses of a real head), but the face cannot be followed from
    one photo into the next, so the turn exists only across the breaks."""
    eng = shared_engine(backend)
    o1, o2, o3 = (face_frame(p) for p in obama)
    seqs = {"obama->obama2": swap_frames(o1, [o2]), "obama2->obama": swap_frames(o2, [o1]),
            "obama2->obama->obama3": swap_frames(o2, [o1, o3]), "obama3->obama->obama2": swap_frames(o3, [o1, o2]),
            "fast flip-book": swap_frames(o2, [o1, o3], n_each=2)}
    turned = 0
    for name, imgs in seqs.items():
        seq = live_frames(eng, imgs)
        for c in ("left", "right"):
            r = check_active(seq, c)
            assert not r.live, (name, c, r.details)
            turned += r.reason == REFUSED_CUT
    assert turned >= 4      # the way the photos turn is refused for the cut, not for a missing turn


# --------------------------------------------------------------------------- real heads

LIVE = Path(os.environ.get("KIOSK_SHARED") or Path(__file__).resolve().parents[1].parent / "shared") / "liveness" / "live"


def _live_clips() -> list[tuple[Path, str]]:
    import csv

    with open(LIVE / "MANIFEST.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [(LIVE / r["folder"], r["direction"]) for r in rows]


@pytest.mark.skipif(not (LIVE / "MANIFEST.tsv").is_file(),
                    reason=f"real head-turn clips not present ({LIVE}: ../shared/liveness/live "
                           "is not part of the repository)")
@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_real_head_turns_pass_their_way_and_fail_the_other(backend):
    """18 recordings of real people turning their heads (their MANIFEST says which way):
    each is accepted when asked for the way it turns and refused when asked the other way.
    sface passes all 18; insightface at least 17 (the issue's bound: see docs/liveness.md
    for the clip that is under the 10-degree turn with SCRFD's landmarks)."""
    eng = shared_engine(backend)
    clips = _live_clips()
    assert len(clips) == 18
    own, wrong = [], []
    for folder, direction in clips:
        seq = frames_from_path(eng, folder)
        assert len(seq) >= 10 and abs((seq[1].ts - seq[0].ts) - 1 / float((folder / "fps.txt").read_text())) < 1e-6
        other = "right" if direction == "left" else "left"
        r = check_active(seq, direction)
        own.append((folder.name, r.live, r.reason, r.details))
        wrong.append((folder.name, check_active(seq, other).live))
    failed = [o for o in own if not o[1]]
    assert [w for w in wrong if w[1]] == []                    # never accepted the other way
    assert len(failed) <= (0 if backend == "sface" else 1), failed


@pytest.mark.skipif(not (LIVE / "MANIFEST.tsv").is_file(),
                    reason=f"real head-turn clips not present ({LIVE}: ../shared/liveness/live "
                           "is not part of the repository)")
def test_real_head_turns_on_the_kiosks_camera_path_region_looks_do_no_worse_than_full_looks():
    """The counter's own path: each clip placed in a 640x480 camera frame (the clip half the
    frame's height: the face a third of it, as at a counter) and looked at as the kiosk
    does, whole one frame in FULL_LOOK_EVERY and only around the face between, and again
    with every frame looked at whole. The check accepts at least as many clips their own
    way with the region looks as with full looks (docs/benchmarks.md: 103 of 108 either way
    over six sizes), at least 17 of 18, and none the other way."""
    from kiosk.vision.pipeline import FrameLooker
    from tests.measure_liveness import placed_frame

    eng = shared_engine("sface")
    own = {True: [], False: []}
    wrong, regions, frames = [], 0, 0
    for folder, direction in _live_clips():
        fps = float((folder / "fps.txt").read_text())
        camera = [placed_frame(img, (640, 480), min(0.5 * 480 / img.shape[0], 640 / img.shape[1]), "centre")
                  for img in (cv2.imread(str(f)) for f in sorted(folder.iterdir())
                              if f.suffix.lower() in (".jpg", ".png"))]
        for follow in (True, False):
            looker = FrameLooker(eng)
            looker.follow = follow
            seq = []
            for i, frame in enumerate(camera):
                obs = looker.look(frame)
                if follow:
                    regions, frames = regions + (obs.region is not None), frames + 1
                p = obs.primary
                seq.append(LiveFrame(i / fps, p.bbox if p else None, p.landmarks if p else None,
                                     cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)))
            own[follow].append(check_active(seq, direction).live)
            if check_active(seq, "right" if direction == "left" else "left").live:
                wrong.append((folder.name, follow))
    assert wrong == []
    assert sum(own[True]) >= max(17, sum(own[False])), own
    assert regions >= 0.6 * frames, (regions, frames)        # the region looks were most of the frames


def test_grey_frames_missing_at_the_start_do_not_skip_the_surface_test(obama):
    """A flat photo turned in 3-D, with the grey image of the first frames withheld: the
    flatness test still runs on the frames that have one, it is not skipped."""
    eng = shared_engine("sface")
    seq = live_frames(eng, attack_frames(face_frame(obama[0]), "turn_left"))
    partial = [LiveFrame(f.ts, f.bbox, f.landmarks, None if i < 2 else f.gray) for i, f in enumerate(seq)]
    for c in ("left", "right"):
        assert not check_active(partial, c).live
    none_at_all = [LiveFrame(f.ts, f.bbox, f.landmarks, None) for f in seq]
    assert "planar_share" not in check_active(none_at_all, "left").details   # landmarks only: no surface test


# --------------------------------------------------------------------------- the nose (rule 6)

def _turned_surface(protrusion, yaw_deg, iod_px=70.0, dist_iod=10.0):
    """Points of a surface (``protrusion(u, v)``: eye distances toward the camera, u across,
    v down from between the eyes) seen frontal and after a turn of ``yaw_deg`` about the
    vertical axis through the eyes (head-pose sign: positive brings the nose to the image's
    right), through a pinhole camera: the SurfaceFlow the check measures."""
    from kiosk.vision.liveness import SurfaceFlow

    u, v = np.meshgrid(np.linspace(-0.75, 0.75, 16), np.linspace(-0.45, 1.45, 18))
    u, v = u.ravel(), v.ravel()
    lm_uv = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.57], [-0.41, 1.16], [0.41, 1.16]])

    def project(uu, vv, theta):
        p = protrusion(uu, vv)
        x = uu * np.cos(theta) + p * np.sin(theta)
        depth = dist_iod - (-uu * np.sin(theta) + p * np.cos(theta))
        return np.stack([320 + iod_px * dist_iod * x / depth, 240 + iod_px * dist_iod * vv / depth], axis=1)

    th = np.radians(yaw_deg)
    lm = project(lm_uv[:, 0], lm_uv[:, 1], 0.0)
    return SurfaceFlow(project(u, v, 0.0), project(u, v, th), lm)


def test_nose_lead_tells_a_nose_from_any_sheet_bent_about_one_axis():
    """Pure geometry, no detector: a face-like surface (a nose 0.5 eye distances out, on a
    rounded head) turned 12 degrees leads by about a generic nose (~1) the way it turned;
    paper bent about a vertical axis (radius 1 or 0.6 eye distances, or folded in a V along
    the nose) or a horizontal one, turned the same way, leads by ~0 - its depth is a
    function of the column (or the row) alone."""
    from kiosk.vision.liveness import nose_lead

    def head(u, v):
        nose = 0.5 * np.exp(-0.5 * (u / 0.15) ** 2 - 0.5 * ((v - 0.57) / np.where(v < 0.57, 0.3, 0.12)) ** 2)
        return nose + 0.4 * (1 - np.clip(u / 1.2, -1, 1) ** 2)

    def cylinder(r):
        return lambda u, v: np.sqrt(r * r - np.clip(u, -0.95 * r, 0.95 * r) ** 2) - r

    sheets = {"r=1": cylinder(1.0), "r=0.6": cylinder(0.6), "V fold": lambda u, v: -0.6 * np.abs(u),
              "horizontal bend": lambda u, v: np.sqrt(1.0 - np.clip(v - 0.5, -0.95, 0.95) ** 2) - 1.0,
              "flat": lambda u, v: 0.0 * u}
    for yaw in (12.0, -12.0):
        lead, se, n = nose_lead(_turned_surface(head, yaw), yaw)
        assert lead > 0.6 and n >= 200, (yaw, lead)
        wrong, _, _ = nose_lead(_turned_surface(head, -yaw), yaw)       # the nose lags: not this turn
        assert wrong < -0.6
        for name, sheet in sheets.items():
            lead, se, _ = nose_lead(_turned_surface(sheet, yaw), yaw)
            assert abs(lead) < 0.08, (name, yaw, lead)    # refused under min_nose_lead 0.1


def test_nose_leads_of_a_turn_are_pooled_by_precision_and_impossible_ones_left_out():
    from kiosk.vision.liveness import pool_leads

    lead, se = pool_leads([(0.8, 0.1, 40), (0.2, 0.05, 80)])
    assert lead == pytest.approx((0.8 / 0.01 + 0.2 / 0.0025) / (1 / 0.01 + 1 / 0.0025))
    assert se == pytest.approx((1 / 0.01 + 1 / 0.0025) ** -0.5)
    assert pool_leads([(0.02, 0.001, 150)])[1] == pytest.approx(0.02)      # no stretch decides alone
    assert pool_leads([(0.6, 0.1, 40), (-0.9, 0.1, 40)]) == pytest.approx((0.6, 0.1))   # a lost stretch
    assert pool_leads([(-0.9, 0.1, 40)]) is None


# --------------------------------------------------------------------------- camera resolution

_SCALE_CLIPS = ["lp_d3_actress_a_right", "lp_d12_eason_a_left", "sadtalker_aoc_left", "onyameakasa_selfcam_left"]


@pytest.mark.skipif(not (LIVE / "MANIFEST.tsv").is_file(),
                    reason=f"real head-turn clips not present ({LIVE}: ../shared/liveness/live "
                           "is not part of the repository)")
def test_the_answer_does_not_depend_on_the_camera_resolution(obama):
    """The same real head turns seen by a camera of twice and of 0.6 times the resolution
    (every frame resized: a close or far face, a 1280x720 camera) are accepted their way and
    refused the other way (before the check ran in the face's own scale, the first three
    clips were refused at x2); a bent print seen at x2 is still refused. The check sees
    every track at one eye distance (``face_normalised``)."""
    from kiosk.vision.liveness import NORM_IOD, face_normalised

    from tests.measure_liveness import resized_frames, scaled_clip

    eng = shared_engine("sface")
    clips = dict((f.name, d) for f, d in _live_clips())
    results = []
    for name in _SCALE_CLIPS:
        for scale in (2.0, 0.6):
            seq = scaled_clip(eng, LIVE / name, scale)
            norm = [f for f in face_normalised(seq) if f.landmarks is not None]
            iod = np.median([np.linalg.norm(f.landmarks[1] - f.landmarks[0]) for f in norm])
            assert abs(iod - NORM_IOD) < 1.0
            other = "right" if clips[name] == "left" else "left"
            results.append((name, scale, check_active(seq, clips[name]).live, check_active(seq, other).live))
    assert [r for r in results if not r[2] or r[3]] == [], results
    frame = face_frame(obama[0])
    seq = live_frames(eng, resized_frames(bent_print_frames(frame, 1.2, 45), 2.0))
    assert seq[0].gray.shape == (960, 1280)
    for c in ("left", "right"):
        r = check_active(seq, c)
        assert not r.live, (c, r.details)


# --------------------------------------------------------------------------- where the face is

def _placed(img: np.ndarray, size: tuple[int, int], scale: float, where: str, fill: int = 110) -> np.ndarray:
    """A clip's frame shrunk by ``scale`` and pasted at the left, centre or right of a larger
    frame (``size`` = width, height), vertically centred."""
    W, H = size
    im = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1 else img
    h, w = im.shape[:2]
    out = np.full((H, W, 3), fill, np.uint8)
    x0 = {"left": 0, "centre": (W - w) // 2, "right": W - w}[where]
    y0 = (H - h) // 2
    out[y0:y0 + h, x0:x0 + w] = im
    return out


def _placed_clip(eng, name: str, scale: float, where: str, size=(1280, 720)) -> list[LiveFrame]:
    from kiosk.vision.liveness import detect_for_liveness, folder_fps

    folder = LIVE / name
    fps = folder_fps(folder)
    out = []
    for i, p in enumerate(sorted(folder.glob("*.jpg"))):
        img = _placed(cv2.imread(str(p)), size, scale, where)
        f = detect_for_liveness(eng, img)
        out.append(LiveFrame(i / fps, f.bbox if f else None, f.landmarks if f else None,
                             cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    return out


@pytest.mark.skipif(not (LIVE / "MANIFEST.tsv").is_file(),
                    reason=f"real head-turn clips not present ({LIVE}: ../shared/liveness/live "
                           "is not part of the repository)")
def test_the_turn_does_not_depend_on_where_the_face_is():
    """Two real turns pasted at the left, centre and right of a 1280x720 frame, at their size
    and shrunk to 0.6: the measured turn varies by less than a quarter across the six
    placements (before the face-sized, mirrored detection and the turn measured from the
    lowest pose: eason_right 16.4-33.1 degrees, actress 10.2-17.4), never passes the other
    way, and the actress's small turn passes its own way everywhere."""
    eng = shared_engine("sface")
    clips = dict((f.name, d) for f, d in _live_clips())
    for name in ("lp_d12_eason_right", "lp_d3_actress_a_right"):
        own = clips[name]
        other = "right" if own == "left" else "left"
        turns, results = [], []
        for scale in (1.0, 0.6):
            for where in ("left", "centre", "right"):
                seq = _placed_clip(eng, name, scale, where)
                r = check_active(seq, own)
                turns.append(r.details["turn_deg"])
                results.append((scale, where, r.code, r.details.get("turn_deg")))
                assert not check_active(seq, other).live, (name, scale, where)
        assert (max(turns) - min(turns)) < 0.25 * max(turns), (name, results)
        assert min(turns) >= 12.0, (name, results)            # 10-degree threshold, 20 % to spare
        if name == "lp_d3_actress_a_right":
            assert all(c == lv.PASSED for _, _, c, _ in results), results


# --------------------------------------------------------------------------- replays

@pytest.mark.skipif(not (LIVE / "MANIFEST.tsv").is_file(),
                    reason=f"real head-turn clips not present ({LIVE}: ../shared/liveness/live "
                           "is not part of the repository)")
def test_a_replay_on_a_device_is_suspected_and_staff_are_asked():
    """A real turn played on a phone drifting before the camera and on a tablet held still
    (rendered: bezel, screen look, pixel grid sampled by the camera's pixels): the screen
    measure suspects both; the same clip seen directly is not suspected and passes; with the
    screen check on (the default), the phone replay, whose turn passes, is answered ``screen_suspected``
    (ask staff)."""
    from kiosk.vision.liveness import LivenessConfig
    from kiosk.vision.screen import screen_evidence

    from tests.liveness_helpers import live_frames, replay_of

    eng = shared_engine("sface")
    name = "onyameakasa_selfcam_left"
    clip = [cv2.imread(str(p)) for p in sorted((LIVE / name).glob("*.jpg"))]
    real = frames_from_path(eng, LIVE / name)
    assert not screen_evidence([f.gray for f in real], [f.bbox for f in real]).suspected
    assert check_active(real, "left").live
    phone = live_frames(eng, replay_of(clip[::2], "phone_drift", seed=len(name)))
    assert check_active(phone, "left", LivenessConfig(screen_check=False)).live    # the turn alone is fooled
    r = check_active(phone, "left")
    assert not r.live and r.code == lv.SCREEN_SUSPECTED and r.details["screen"]["framed_share"] >= 0.5, r.details
    tablet = live_frames(eng, replay_of(clip[::4], "tablet_still", seed=len(name)))
    assert screen_evidence([f.gray for f in tablet], [f.bbox for f in tablet]).suspected
    # a device held out of the measure's tuning: a large phone with a thin bezel, held still
    large = live_frames(eng, replay_of(clip[::2], "large_phone_still_moire_glare", seed=len(name)))
    ev = screen_evidence([f.gray for f in large], [f.bbox for f in large])
    assert ev.suspected, ev


def test_a_photo_replayed_on_a_device_is_suspected_by_its_frame_or_its_moire(obama):
    """The screen measure on its own (no ../shared needed): the Obama sample shown on a phone
    held still with no moire and no glare is found by the device's frame (bezel edges above and
    below the face, in pieces where the edge is tilted); on a tablet held so close that no edge
    is seen, by the moire of its pixel grid over the face (``moire_peak``, small windows). The
    same photos seen directly are not suspected."""
    from kiosk.vision.screen import FRAMED_SHARE, MOIRE_PEAK, screen_evidence

    from tests.liveness_helpers import replay_frames

    eng = shared_engine("sface")
    clip = [face_frame(p) for p in obama] * 2

    def evidence(images):
        seq = live_frames(eng, images)
        return screen_evidence([f.gray for f in seq], [f.bbox for f in seq])

    direct = evidence(clip)
    assert not direct.suspected and direct.framed_share == 0.0 and direct.moire < MOIRE_PEAK, direct
    phone = evidence(replay_frames(clip, "phone", 0.85, "still", moire=False, glare=False, seed=3))
    assert phone.suspected and phone.framed_share >= FRAMED_SHARE and phone.moire < MOIRE_PEAK, phone
    edge = evidence(replay_frames(clip, "tablet", 1.25, "still", moire=True, glare=False, seed=3))
    assert edge.suspected and edge.framed_share == 0.0 and edge.moire >= MOIRE_PEAK, edge


def test_device_edges_are_joined_across_steps_but_not_across_the_head():
    """A long tilted edge that Hough returns in steps still counts; an edge of the room cut
    by the head (a gap wider than the bridge) does not, nor an edge beside a flat mid-grey
    band (a picture pasted into a larger one)."""
    from kiosk.vision.screen import device_sides

    rng = np.random.default_rng(0)
    g = np.clip(rng.normal(120, 3, (480, 640)), 0, 255).astype(np.uint8)
    box = (270.0, 160.0, 100.0, 130.0)
    # a dark bezel band above and below the face, tilted by 2 degrees
    img = g.copy()
    for y0 in (60, 380):
        pts = np.array([[0, y0], [639, y0 + 22], [639, y0 + 52], [0, y0 + 30]], np.int32)
        cv2.fillConvexPoly(img, pts, 25)
    img = np.clip(img.astype(np.float64) + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    assert {"above", "below"} <= device_sides(img, box)
    # the same edges cut where the head is (the room behind a person)
    cut = img.copy()
    cut[:, 250:390] = g[:, 250:390]
    assert not ({"above", "below"} & device_sides(cut, box))
    # a clip pasted into a flat grey frame: its border is not a device's
    pasted = np.full((480, 640), 110, np.uint8)
    pasted[100:420, 160:480] = g[100:420, 160:480]
    assert device_sides(pasted, box) == frozenset()
