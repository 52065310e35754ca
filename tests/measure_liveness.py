"""Measure the active liveness check on the real head-turn clips and on every rendered
attack (docs/liveness.md has the figures this prints). Not a test: a command.

    .venv/bin/python -m tests.measure_liveness [--backend sface|insightface] [--cache DIR] [--scale S]

``--placements``: each real clip pasted at the left, centre and right of a 1280x720 frame at
scales 1.0, 0.8 and 0.6 (issue 19: the turn must not depend on where the face is); prints
each placement's verdict and turn and each clip's spread. ``--replays``: each real clip played
on the simulated phones and tablets of ``tests.liveness_helpers.REPLAYS``, checked its own
way with the screen measure off and on. ``--clips a,b``: only these clips.

``--scale``: every frame resized by S first (a camera of another resolution, a face nearer or
farther); its detections are cached apart.

Detections are cached per backend in ``--cache`` (default /tmp/liveness_measure), so a
change to the check re-runs in minutes, not the detectors. The attack photos: the samples
shipped through PyPI (face_recognition's Obama x3 and Biden, the ``strangers`` samples,
insightface's Tom Hanks and its group photo ``t1.jpg``) and, when ../shared/faces is
there, the first photo of each of its people (calibration photos, never in the test suite).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from kiosk.vision.liveness import LiveFrame, check_active, frames_from_path

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the repository; KIOSK_SHARED names it elsewhere (a git worktree)
SHARED = Path(os.environ.get("KIOSK_SHARED") or REPO.parent / "shared")
LIVE = SHARED / "liveness" / "live"


def attack_photos() -> list[Path]:
    import importlib.util

    from tests.conftest import model_dir
    from kiosk.vision.modelpacks import verify_pack

    fr = model_dir() / "samples" / "face_recognition"
    out = [fr / n for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")]
    files = verify_pack(model_dir(), "strangers", section="samples")
    out += [files[r] for r in sorted(files)]
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.origin:
        img = Path(spec.origin).parent / "data" / "images"
        out += [img / "Tom_Hanks_54745.png", img / "t1.jpg"]
    faces = SHARED / "faces"
    if faces.is_dir():
        for person in sorted(p for p in faces.iterdir() if p.is_dir() and p.name.startswith("person_")):
            imgs = sorted(person.glob("*.jpg"))
            if imgs:
                out.append(imgs[0])
    return [p for p in out if p.is_file()]


def attack_sequences(photo: Path) -> dict[str, list[np.ndarray]]:
    """Every attack kind made from one photo (tests/liveness_helpers.py)."""
    from tests.liveness_helpers import (ATTACKS, approach_frames, attack_frames, bent_print_frames,
                                        cutout_frames, screen_frames)
    from tests.vision_helpers import face_frame

    frame = face_frame(photo)
    out = {f"flat_{k}": attack_frames(frame, k) for k in ATTACKS}
    out.update({f"approach_{y:+d}": approach_frames(frame, y) for y in (30, -30)})
    out.update({f"cutout_{k}": cutout_frames(frame, k) for k in ("turn_left", "turn_right", "turn_and_move")})
    out.update({f"screen_{k}": screen_frames(frame, k) for k in ("turn_left", "turn_right", "turn_and_move")})
    for r in (1.2, 0.6):
        for y in (45, -45):
            out[f"bent{r}_{y:+d}"] = bent_print_frames(frame, r, y)
    for y in (40, -40):
        out[f"bentmove0.8_{y:+d}"] = bent_print_frames(frame, 0.8, y, dx=40, roll=8, scale=0.2)
    return out


def swap_sequences() -> dict[str, list[np.ndarray]]:
    from tests.conftest import model_dir
    from tests.liveness_helpers import swap_frames
    from tests.vision_helpers import face_frame

    fr = model_dir() / "samples" / "face_recognition"
    o1, o2, o3 = (face_frame(fr / n) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg"))
    return {"obama->obama2": swap_frames(o1, [o2]), "obama2->obama": swap_frames(o2, [o1]),
            "obama2->obama->obama3": swap_frames(o2, [o1, o3]),
            "obama3->obama->obama2": swap_frames(o3, [o1, o2]),
            "flipbook2": swap_frames(o2, [o1, o3], n_each=2), "flipbook1": swap_frames(o2, [o1, o3], n_each=1)}


def _load(path: Path):
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _save(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def resized_frames(imgs: list[np.ndarray], scale: float) -> list[np.ndarray]:
    """Frames as a camera of ``scale`` times the resolution would give them (cubic up, area down)."""
    import cv2

    if scale == 1.0:
        return imgs
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return [cv2.resize(im, None, fx=scale, fy=scale, interpolation=interp) for im in imgs]


def _tag(scale: float) -> str:
    return "" if scale == 1.0 else f"x{scale:g}"


def scaled_clip(engine, folder: Path, scale: float) -> list[LiveFrame]:
    """A real clip's frames resized by ``scale``, detected as ``kiosk liveness`` does."""
    import cv2

    from kiosk.vision.camera import IMAGE_EXT
    from kiosk.vision.liveness import detect_for_liveness, folder_fps

    if scale == 1.0:
        return frames_from_path(engine, folder)
    fps = folder_fps(folder)
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXT)[:120]
    out = []
    for i, img in enumerate(resized_frames([cv2.imread(str(f)) for f in files], scale)):
        f = detect_for_liveness(engine, img)
        out.append(LiveFrame(i / fps, f.bbox if f else None, f.landmarks if f else None,
                             cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    return out


def real_clips(backend: str, cache: Path, scale: float = 1.0) -> list[tuple[str, str, list[LiveFrame]]]:
    from tests.conftest import shared_engine

    with open(LIVE / "MANIFEST.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for r in rows:
        p = cache / backend / f"live{_tag(scale)}" / f"{r['folder']}.pkl"
        if not p.is_file():
            _save(p, scaled_clip(shared_engine(backend), LIVE / r["folder"], scale))
        out.append((r["folder"], r["direction"], _load(p)))
    return out


def attack_set(backend: str, cache: Path, scale: float = 1.0):
    """(photo name, kind, frames) for every attack; frames from the cache when there."""
    from tests.conftest import shared_engine
    from tests.liveness_helpers import live_frames

    for photo in attack_photos():
        p = cache / backend / f"attacks{_tag(scale)}" / f"{photo.parent.name}_{photo.stem}.pkl"
        if p.is_file():
            seqs = _load(p)
        else:
            seqs = {k: live_frames(shared_engine(backend), resized_frames(imgs, scale))
                    for k, imgs in attack_sequences(photo).items()}
            _save(p, seqs)
        for kind, seq in seqs.items():
            yield f"{photo.parent.name}/{photo.name}", kind, seq
    p = cache / backend / f"attacks{_tag(scale)}" / "_swaps.pkl"
    if not p.is_file():
        _save(p, {k: live_frames(shared_engine(backend), resized_frames(imgs, scale))
                  for k, imgs in swap_sequences().items()})
    for kind, seq in _load(p).items():
        yield "obama x3", f"swap_{kind}", seq


def family(kind: str) -> str:
    for pre in ("flat", "approach", "cutout", "swap"):
        if kind.startswith(pre):
            return pre
    if kind.startswith("screen"):
        return "screen_moving" if kind.endswith("move") else "screen_turned"
    return kind.split("_")[0]


def placed_frame(img: np.ndarray, size: tuple[int, int], scale: float, where: str, fill: int = 110) -> np.ndarray:
    """``img`` shrunk by ``scale`` and pasted at the left, centre or right of a ``size``
    (width, height) frame of one grey, vertically centred."""
    import cv2

    W, H = size
    im = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1 else img
    h, w = im.shape[:2]
    out = np.full((H, W, 3), fill, np.uint8)
    x0 = {"left": 0, "centre": (W - w) // 2, "right": W - w}[where]
    y0 = (H - h) // 2
    out[y0:y0 + h, x0:x0 + w] = im
    return out


def _clip_images(name: str) -> list[np.ndarray]:
    import cv2

    from kiosk.vision.camera import IMAGE_EXT

    return [cv2.imread(str(f)) for f in sorted((LIVE / name).iterdir()) if f.suffix.lower() in IMAGE_EXT][:120]


def _detected(engine, imgs: list[np.ndarray], fps: float) -> list[LiveFrame]:
    import cv2

    from kiosk.vision.liveness import detect_for_liveness

    out = []
    for i, img in enumerate(imgs):
        f = detect_for_liveness(engine, img)
        out.append(LiveFrame(i / fps, f.bbox if f else None, f.landmarks if f else None,
                             cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    return out


def _manifest(only: list[str] | None) -> list[tuple[str, str]]:
    with open(LIVE / "MANIFEST.tsv", encoding="utf-8") as fh:
        rows = [(r["folder"], r["direction"]) for r in csv.DictReader(fh, delimiter="\t")]
    return [r for r in rows if not only or r[0] in only]


def _cached(path: Path, make):
    if path.is_file():
        return _load(path)
    obj = make()
    _save(path, obj)
    return obj


def _outcome(r) -> str:
    """accepted / staff (``screen_suspected``: staff are asked to confirm) / refused."""
    from kiosk.vision.liveness import SCREEN_SUSPECTED

    return "accepted" if r.live else ("staff" if r.code == SCREEN_SUSPECTED else "refused")


def measure_placements(backend: str, clips: list[str] | None, cache: Path) -> None:
    from tests.conftest import shared_engine
    from kiosk.vision.liveness import folder_fps

    own = defaultdict(int)
    other_ok = own_n = 0
    for name, direction in _manifest(clips):
        other = "right" if direction == "left" else "left"
        imgs, fps = _clip_images(name), folder_fps(LIVE / name)
        turns = []
        for scale in (1.0, 0.8, 0.6):
            for where in ("left", "centre", "right"):
                seq = _cached(cache / backend / "placements" / f"{name}_{scale:g}_{where}.pkl",
                              lambda: _detected(shared_engine(backend),
                                                [placed_frame(im, (1280, 720), scale, where) for im in imgs], fps))
                r, w = check_active(seq, direction), check_active(seq, other)
                turns.append(r.details.get("turn_deg", 0.0))
                own[_outcome(r)] += 1
                own_n, other_ok = own_n + 1, other_ok + w.live
                print(f"{backend} {name:30s} x{scale:g} {where:6s} {r.code:16s} turn {r.details.get('turn_deg')}"
                      f" screen {r.details.get('screen')} | other {w.code} {w.details.get('turn_deg')}", flush=True)
        lo, hi = min(turns), max(turns)
        print(f"{backend} {name:30s} turn {lo:.1f}-{hi:.1f} spread {(hi - lo) / max(hi, 1e-6):.0%}", flush=True)
    print(f"== {backend} placements: own way {dict(own)} of {own_n}, other way accepted {other_ok}/{own_n}")


def measure_replays(backend: str, clips: list[str] | None, cache: Path, kinds: list[str] | None = None,
                    dump: Path | None = None) -> None:
    """Each clip replayed on every device kind (``REPLAYS``), checked its own way with the screen
    measure off and on; the outcome with it on: accepted, staff asked (``screen_suspected``) or
    refused. Renders and detections are cached in ``cache``."""
    from tests.conftest import shared_engine
    from tests.liveness_helpers import HELD_OUT, REPLAYS, replay_of
    from kiosk.vision.liveness import LivenessConfig, folder_fps

    off = LivenessConfig(screen_check=False)
    tally = defaultdict(lambda: defaultdict(int))
    rows = []
    for name, direction in _manifest(clips):
        imgs, fps = _clip_images(name), folder_fps(LIVE / name)
        for kind in kinds or REPLAYS:
            seq = _cached(cache / backend / "replays" / f"{name}_{kind}.pkl",
                          lambda: _detected(shared_engine(backend), replay_of(imgs, kind, seed=len(name)), fps))
            r, s = check_active(seq, direction, off), check_active(seq, direction)
            o = _outcome(s)
            tally[kind]["turn_alone"] += r.live
            tally[kind][o] += 1
            tally[kind]["n"] += 1
            rows.append({"clip": name, "kind": kind, "turn_alone": r.live, "outcome": o, "code": s.code,
                         "screen": s.details.get("screen")})
            print(f"{backend} {name:30s} {kind:30s} turn-only {r.code:14s} -> {o:8s} {s.code:16s}"
                  f" {s.details.get('screen')}", flush=True)
    tot = defaultdict(lambda: defaultdict(int))
    for kind, t in tally.items():
        print(f"   {kind:30s} of {t['n']}: turn alone accepts {t['turn_alone']}; with the screen measure "
              f"accepted {t['accepted']}, staff {t['staff']}, refused {t['refused']}"
              f"{' (held out)' if kind in HELD_OUT else ''}")
        part = "held_out" if kind in HELD_OUT else "tuning"
        for k, v in t.items():
            tot[part][k] += v
    for part, t in tot.items():
        print(f"== {backend} replays ({part}) of {t['n']}: turn alone {t['turn_alone']}; accepted {t['accepted']}, "
              f"staff {t['staff']}, refused {t['refused']}")
    if dump:
        dump.write_text(json.dumps(rows, ensure_ascii=False, default=float, indent=0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", action="append")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/liveness_measure"))
    ap.add_argument("--json", type=Path, help="write every result here")
    ap.add_argument("--skip-attacks", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="resize every frame (clips and renders) by this factor first, as a camera "
                         "of another resolution would see it")
    ap.add_argument("--placements", action="store_true", help="the real clips placed in a 1280x720 frame")
    ap.add_argument("--replays", action="store_true", help="the real clips replayed on simulated devices")
    ap.add_argument("--clips", help="comma-separated clip folders (default: all)")
    ap.add_argument("--kinds", help="comma-separated replay kinds (default: all of REPLAYS)")
    a = ap.parse_args(argv)
    if a.placements or a.replays:
        clips = a.clips.split(",") if a.clips else None
        for backend in a.backend or ["sface"]:
            if a.placements:
                measure_placements(backend, clips, a.cache)
            if a.replays:
                measure_replays(backend, clips, a.cache, a.kinds.split(",") if a.kinds else None, a.json)
        return 0
    dump = {}
    for backend in a.backend or ["sface", "insightface"]:
        t0 = time.time()
        rows = []
        if not a.skip_live and (LIVE / "MANIFEST.tsv").is_file():
            for name, direction, seq in real_clips(backend, a.cache, a.scale):
                other = "right" if direction == "left" else "left"
                r, w = check_active(seq, direction), check_active(seq, other)
                rows.append(("live", name, direction, r.live, r.reason, r.details))
                rows.append(("live_other", name, other, w.live, w.reason, w.details))
                print(f"{backend:11s} {name:30s} {direction:5s} {'PASS' if r.live else 'fail'} {r.code} "
                      f"{r.reason} {r.details}  | other: {'PASS' if w.live else 'fail'} {w.reason} "
                      f"{w.details}", flush=True)
        if not a.skip_attacks:
            for photo, kind, seq in attack_set(backend, a.cache, a.scale):
                for c in ("left", "right"):
                    r = check_active(seq, c)
                    rows.append((family(kind), f"{photo}:{kind}", c, r.live, r.reason, r.details))
                    if r.live:
                        print(f"{backend:11s} ACCEPTED {photo}:{kind} {c} {r.details}", flush=True)
        tally = defaultdict(lambda: [0, 0])
        for fam, *_rest, live, _reason, _d in [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]:
            tally[fam][0] += live
            tally[fam][1] += 1
        print(f"== {backend} x{a.scale:g} ({time.time() - t0:.0f} s)")
        for fam, (acc, n) in tally.items():
            print(f"   {fam:16s} accepted {acc}/{n}")
        dump[backend] = [list(r[:5]) + [r[5]] for r in rows]
    if a.json:
        a.json.write_text(json.dumps(dump, ensure_ascii=False, default=float, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
