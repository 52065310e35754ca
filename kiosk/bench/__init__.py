"""`kiosk bench`: figures, not tests. Prints one JSON object with --json.

* backends: every backend of the manifest is benchmarked when it is installed
  (its model pack and its Python libraries); the others are listed with the reason.
* frame_ms: one camera frame with one real face through detect, quality, embed and
  search against a gallery of 1,000 residents, per backend, at 640x480 and 1280x720,
  as the kiosk's pipeline looks at a camera frame (``OnnxFaceEngine.observe_frame``);
  also an empty frame, and (for comparison) the frame detected as a photo is.
* identity_decided_ms: the figure an elder feels, from a face entering a recorded
  video until the kiosk has decided who it is (identified, or unknown), through the
  kiosk's own RecognitionPipeline, PersonTracker and voting, with the frames paced as
  a camera and the kiosk's vision worker pace them (see ``bench_identity``); what-ifs
  with the older voting (3 frames) and the older pace (12 frames/s throughout).
* search_ms: FAISS search for galleries of 10^4, 10^5, 10^6 templates, the index
  type picked by size, recall@1 against exact search.
* billing: quotes per second over a store of 10,000 residents and 200,000 past orders.
* gallery_rebuild_ms: decrypting templates and building the index from the store.
"""
from __future__ import annotations

import math
import random
import statistics
import tempfile
import time
import uuid
from typing import TYPE_CHECKING
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from kiosk.config import load_settings

if TYPE_CHECKING:
    from kiosk.vision.engine import FaceEngine


def _pct(xs: list[float]) -> dict:
    """Median and the 95th percentile (nearest rank: the smallest value with at least
    95 % of the values at or below it)."""
    xs = sorted(xs)
    return {"p50": round(statistics.median(xs), 3), "p95": round(xs[max(0, math.ceil(0.95 * len(xs)) - 1)], 3),
            "n": len(xs)}


def _unit(rng, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# The kiosk's vision worker (kiosk.ui.worker.VisionWorker as kiosk.ui.app.build_window
# starts it) processes at most this many frames per second while nobody waits for a
# decision, and every camera frame (up to HURRY_FPS) while a face does; the camera
# delivers CAMERA_FPS.
WORKER_FPS = 12.0
HURRY_FPS = 30.0
CAMERA_FPS = 25.0
SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
LIVE_CLIPS = Path(__file__).resolve().parents[2].parent / "shared" / "liveness" / "live"


def installed_backends(model_dir: Path) -> tuple[dict, dict[str, str]]:
    """Engines of the backends that are installed here, and why each other one is not."""
    from kiosk.errors import ModelError
    from kiosk.vision.engine import create_engine
    from kiosk.vision.modelpacks import load_manifest

    engines, skipped = {}, {}
    for name in load_manifest():
        try:
            engines[name] = create_engine(name, model_dir)    # verifies the pack, imports its libraries
        except ModelError as exc:
            skipped[name] = f"model pack not installed or damaged: {exc.detail}"
        except ImportError as exc:
            package = (exc.name or str(exc)).split(".")[0]
            skipped[name] = f"Python package {package} is not installed ({exc})"
    return engines, skipped


def _face_crop(engine: FaceEngine, photo: Path) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The photo and its primary face box."""
    from kiosk.vision.image_io import read_image
    from kiosk.vision.quality import primary_face

    img = read_image(photo)
    f = primary_face(engine.detect(img), img.shape)
    if f is None:
        raise ValueError(f"no face in {photo}")
    return img, f.bbox


def _background(w: int, h: int) -> np.ndarray:
    """A plain counter-like scene: a wall with a gradient and a counter edge."""
    import cv2

    y = np.linspace(0, 1, h)[:, None, None]
    bg = (np.array([200, 215, 225]) * (1 - 0.25 * y) * np.ones((1, w, 1))).astype(np.uint8)
    cv2.rectangle(bg, (0, int(h * 0.82)), (w, h), (120, 140, 160), -1)
    return bg


def _place(bg: np.ndarray, img: np.ndarray, bbox, face_h: float, cx: float, cy: float):
    """The photo scaled so its face is ``face_h`` px tall, the face centred at (cx, cy);
    returns the frame and the face box in it."""
    import cv2

    s = face_h / bbox[3]
    big = cv2.resize(img, (max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    fx, fy = (bbox[0] + bbox[2] / 2) * s, (bbox[1] + bbox[3] / 2) * s
    x0, y0 = int(round(cx - fx)), int(round(cy - fy))
    frame = bg.copy()
    H, W = frame.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(W, x0 + big.shape[1]), min(H, y0 + big.shape[0])
    if dx1 > dx0 and dy1 > dy0:
        frame[dy0:dy1, dx0:dx1] = big[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
    face = (cx - bbox[2] * s / 2, cy - face_h / 2, bbox[2] * s, face_h)
    return frame, face


def _camera_frame(engine: FaceEngine, photo: Path, size=(640, 480)) -> np.ndarray:
    """A frame with the photo's face 0.42 of the frame height tall (~200 px at 640x480),
    as a counter camera sees it."""
    w, h = size
    img, bbox = _face_crop(engine, photo)
    frame, _ = _place(_background(w, h), img, bbox, 0.42 * h, w / 2, h * 0.45)
    return frame


class _Video:
    """Frames made when asked for (a long 1280x720 video would not fit in memory kept whole)."""

    def __init__(self, n: int, make) -> None:
        self._n, self._make = n, make

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> np.ndarray:
        return self._make(i)


def entering_scene(engine: FaceEngine, photo: Path, size=(640, 480), motion: str = "left", fps: float = CAMERA_FPS,
                   enter_s: float = 0.6, stay_s: float = 3.0):
    """A recorded video of a face entering the scene: empty scene for 0.3 s, then the
    person comes in from the left or the right (or walks up from afar: ``motion`` "walk",
    the face growing from 0.2 to 0.42 of the frame height) over ``enter_s`` and stays
    (a small sway). Returns (frames, timestamps, entered_ts): the face has *entered*
    at the first frame whose face box lies wholly inside the picture (for "walk": from
    its first frame)."""
    w, h = size
    img, bbox = _face_crop(engine, photo)
    bg = _background(w, h)
    fh_final, cx_final, cy = 0.42 * h, w / 2, h * 0.45
    n_empty, n_enter, n_stay = int(0.3 * fps), max(2, int(enter_s * fps)), int(stay_s * fps)
    n = n_empty + n_enter + n_stay
    stamps = [i / fps for i in range(n)]

    def geometry(i: int):
        ts = stamps[i]
        k = min(1.0, (i - n_empty) / n_enter)
        ease = 1 - (1 - k) ** 2
        sway = 3.0 * np.sin(2 * np.pi * 0.7 * ts) * (k >= 1.0)
        if motion == "walk":
            return (0.2 + 0.22 * ease) * h, cx_final + sway
        start = -0.5 * fh_final * 1.2 if motion == "left" else w + 0.5 * fh_final * 1.2
        return fh_final, start + (cx_final - start) * ease + sway

    def make(i: int) -> np.ndarray:
        if i < n_empty:
            return bg.copy()
        fh, cx = geometry(i)
        return _place(bg, img, bbox, fh, cx, cy)[0]

    entered = None
    for i in range(n_empty, n):
        fh, cx = geometry(i)
        fw = bbox[2] * fh / bbox[3]
        if cx - fw / 2 >= 0 and cx + fw / 2 <= w and cy - fh / 2 >= 0 and cy + fh / 2 <= h:
            entered = stamps[i]
            break
    return _Video(n, make), stamps, entered


def live_clips(folder: Path = LIVE_CLIPS) -> list[dict]:
    """The real head-turn recordings (../shared/liveness/live) with their fps and a person
    key (the folder name without direction and take), when they are present."""
    import csv

    manifest = folder / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    out = []
    with open(manifest, encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            d = folder / row["folder"]
            frames = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".png")) if d.is_dir() else []
            if frames:
                person = row["folder"].rsplit("_", 1)[0]
                if person.endswith(("_a", "_b")):
                    person = person[:-2]
                out.append({"name": row["folder"], "person": person, "fps": float(row["fps"]), "frames": frames})
    return out


def simulate_kiosk(pipeline, frames: list, stamps: list[float], entered: float,
                   worker_fps: float = WORKER_FPS, clock=time.perf_counter, hurry_fps: float | None = HURRY_FPS) -> dict:
    """Play a recorded video to the kiosk's pipeline as a live camera and the vision
    worker would: the worker takes the newest frame the camera has delivered, processes
    it (the real time it takes is measured and moves the clock), then waits out the rest
    of its period: 1/``worker_fps``, or 1/``hurry_fps`` while the pipeline says a face
    waits for its decision (``RecognitionPipeline.hurry``; None: never). Returns when the tracker decides: the decision, its time after the
    face entered (ms), how many frames were processed and how much of the time since
    the face entered was processing (the rest is waiting for frames: the worker's pace).
    ``clock=time.process_time`` counts the CPU time this process used instead of the
    wall time: on a machine shared with other work that is what the processing would
    take on its own (an upper bound where a model runs on two threads at once)."""
    pipeline.reset()
    period = 1.0 / worker_fps
    t, n, i, last, busy = stamps[0], 0, 0, -1, 0.0
    while True:
        while i + 1 < len(stamps) and stamps[i + 1] <= t + 1e-9:
            i += 1
        if i == last:              # nothing new yet: a camera read waits for the next frame
            if i + 1 >= len(stamps):
                return {"state": "pending", "resident_id": None, "ms": None, "frames": n, "processing_ms": busy * 1000}
            i += 1
        t = max(t, stamps[i])
        last = i
        start = t
        frame = frames[i]          # (making a frame of a generated video is not the kiosk's time)
        t0 = clock()
        r = pipeline.process(frame, stamps[i])
        dt = clock() - t0
        t += dt
        n += 1
        if stamps[i] >= entered:
            busy += dt
        if r.decision.state in ("identified", "unknown") and stamps[i] >= entered:
            return {"state": r.decision.state, "resident_id": r.decision.resident_id,
                    "ms": (t - entered) * 1000, "frames": n, "processing_ms": busy * 1000}
        if i == len(stamps) - 1:
            return {"state": "pending", "resident_id": None, "ms": None, "frames": n, "processing_ms": busy * 1000}
        hurry = hurry_fps is not None and getattr(pipeline, "hurry", False)
        t = max(t, start + (1.0 / max(worker_fps, hurry_fps) if hurry else period))


def _filler_gallery(engine: FaceEngine, enrolled: dict[str, list[np.ndarray]], residents: int = 1000):
    """1,000 residents x 3 templates: the enrolled people's real templates, the others
    fill the index to size (search cost depends on size, not content)."""
    from kiosk.vision.gallery import FaissGallery

    rng = np.random.default_rng(0)
    d = engine.contract.dim
    vecs = list(_unit(rng, 3 * residents, d))
    rids = [f"R{i // 3:04d}" for i in range(3 * residents)]
    for rid, embs in enrolled.items():
        for e in embs:
            vecs.append(e)
            rids.append(rid)
    ids = [str(uuid.uuid4()) for _ in rids]
    return FaissGallery.build(d, engine.contract.id, ids, rids, np.vstack(vecs).astype(np.float32))


def _matcher(gallery, backend: str):
    from kiosk.vision.engine import BACKEND_DEFAULTS
    from kiosk.vision.matching import decide

    t = BACKEND_DEFAULTS[backend]
    return lambda emb: decide(gallery.search(emb, 6), t.match_threshold, t.match_margin)


def bench_frames(backend: str, engine: FaceEngine, photo: Path, n: int = 60, sizes=("640x480", "1280x720"),
                 profile: bool = True) -> dict:
    import faiss

    from kiosk.vision.pipeline import FrameLooker

    faiss.omp_set_num_threads(1)     # as the kiosk runs it (kiosk.services.faces)
    out = {}
    for size in sizes:
        frame = _camera_frame(engine, photo, SIZES[size])
        own = engine.observe_frame(frame).embedding
        if own is None:
            out[size] = {"error": "the face did not pass the quality gate"}
            continue
        g = _filler_gallery(engine, {"ME": [own]})
        match = _matcher(g, backend)
        total, cpu, stages = [], [], {"detect": [], "quality": [], "embed": [], "search": []}
        status = None
        looker = FrameLooker(engine)            # as the kiosk's RecognitionPipeline looks at its frames
        for i in range(n + 5):
            c0 = time.process_time()
            t0 = time.perf_counter()
            obs = looker.look(frame)
            t1 = time.perf_counter()
            m = match(obs.embedding)
            t2 = time.perf_counter()
            c2 = time.process_time()
            if i >= 5:   # warm-up frames are not counted
                total.append((t2 - t0) * 1000)
                cpu.append((c2 - c0) * 1000)
                for k in ("detect", "quality", "embed"):
                    stages[k].append(obs.timings_ms.get(k, 0.0))
                stages["search"].append((t2 - t1) * 1000)
            status = m.status
        out[size] = {**_pct(total), "cpu_p50_ms": round(statistics.median(cpu), 3),
                     "stages_p50_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
                     "gallery_templates": len(g), "match_status": status, "dim": engine.contract.dim}
        if profile:
            # an empty counter (nobody in front): what the idle camera costs per frame; and,
            # for comparison, the frame detected as a photo is (full size up to 1,280 px, the
            # padded second look on an empty frame): what camera frames cost before 2026-11-26
            empty = _background(*SIZES[size])
            for key, fn in (("empty_frame", lambda: engine.observe_frame(empty)),
                            ("empty_frame_as_photo", lambda: engine.observe(empty)),
                            ("detect_as_photo", lambda: engine.detect(frame))):
                fn()
                t, c = [], []
                for _ in range(max(5, n // 3)):
                    c0, t0 = time.process_time(), time.perf_counter()
                    fn()
                    t.append((time.perf_counter() - t0) * 1000)
                    c.append((time.process_time() - c0) * 1000)
                out[size][f"{key}_p50_ms"] = round(statistics.median(t), 3)
                out[size][f"{key}_cpu_p50_ms"] = round(statistics.median(c), 3)
    return out


def bench_vs_plain(engine: FaceEngine, model_dir: Path, photo: Path, n: int = 60) -> dict:
    """Issue 19: the kiosk's camera path against a plain YuNet + SFace pipeline on the
    same 640x480 frame, interleaved in one run (the order alternates every frame).
    Kiosk: the pipeline's ``FrameLooker`` (one full look at 640 px in
    ``FULL_LOOK_EVERY`` frames, the region around the face between; the quality gate,
    alignment, SFace), then the FAISS gallery of 3,000 templates and ``decide``. Plain
    (``kiosk.vision.compare.PlainSFace``): YuNet on the frame, the largest face,
    ``alignCrop``, ``feature``, a search of a flat FAISS index of the same size.
    Returns both p50s, the ratio and the kiosk's stage p50s."""
    import os

    import faiss

    from kiosk.vision.compare import PlainSFace
    from kiosk.vision.pipeline import FrameLooker

    faiss.omp_set_num_threads(1)
    frame = _camera_frame(engine, photo, SIZES["640x480"])
    own = engine.observe_frame(frame).embedding
    g = _filler_gallery(engine, {"ME": [own]})
    match = _matcher(g, engine.name)
    plain = PlainSFace(model_dir)
    rng = np.random.default_rng(1)
    flat = faiss.IndexFlatIP(engine.contract.dim)
    flat.add(np.vstack([_unit(rng, len(g) - 1, engine.contract.dim), plain.embed(frame)[None, :]]).astype(np.float32))
    stages: dict[str, list[float]] = {"detect": [], "quality": [], "embed": [], "search": []}
    regions: list[bool] = []
    looker = FrameLooker(engine)       # full looks and looks around the face, as the pipeline takes them

    def kiosk() -> None:
        obs = looker.look(frame)
        regions.append(obs.region is not None)
        t = time.perf_counter()
        match(obs.embedding)
        for k in ("detect", "quality", "embed"):
            stages[k].append(obs.timings_ms.get(k, 0.0))
        stages["search"].append((time.perf_counter() - t) * 1000)

    def plain_path() -> None:
        v = plain.embed(frame)
        flat.search(v[None, :], 1)

    load = os.getloadavg()[0]
    for _ in range(5):
        kiosk()
        plain_path()
    times: dict[str, list[float]] = {"kiosk": [], "plain": []}
    for i in range(n):
        order = (("kiosk", kiosk), ("plain", plain_path)) if i % 2 == 0 else (("plain", plain_path), ("kiosk", kiosk))
        for name, fn in order:
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    k, p = statistics.median(times["kiosk"]), statistics.median(times["plain"])
    return {"kiosk": _pct(times["kiosk"]), "plain": _pct(times["plain"]), "ratio_p50": round(k / p, 3),
            "kiosk_stages_p50_ms": {x: round(statistics.median(v[5:]), 3) for x, v in stages.items()},
            "looked_around_the_face": f"{sum(regions)} of {len(regions)} frames",
            "gallery_templates": len(g), "frame": "640x480", "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def bench_identity(backend: str, engine: FaceEngine, samples: Path, strangers: list[Path], *, quick: bool = False,
                   clips: list[dict] | None = None) -> dict:
    """Identity decided: p50/p95 ms from the face entering to the kiosk's decision.

    Residents: Obama enrolled from obama.jpg and obama3.jpg, Biden from biden.jpg, in a
    gallery of 1,000. Videos: obama2.jpg (a photo not enrolled) and biden.jpg entering a
    640x480 and a 1280x720 scene from the left, the right and walking up, at 25 fps;
    the strangers (not enrolled) the same way, where the right decision is "unknown".
    With ../shared/liveness/live present, each real head-turn clip too: its person is
    enrolled from the first frame of another clip of the same person where there is
    one (the decision should be that person), else not enrolled ("unknown").

    The kiosk as it runs: the settings' votes, the backend's strong score (two strong
    frames decide), the worker at 12 frames/s and at camera rate while a face waits.
    ``cpu_clock``: the same runs timed by CPU time. ``what_if`` (not with ``quick``):
    ``three_votes_worker_at_12_fps`` (the voting and pace before 2026-11-26, on every
    video), ``three_votes_only`` and ``worker_at_12_fps`` (one of the two changes
    undone, enrolled sample videos)."""
    import faiss

    from kiosk.config import load_settings
    from kiosk.vision.image_io import read_image
    from kiosk.vision.pipeline import RecognitionPipeline
    from kiosk.vision.tracker import PersonTracker

    faiss.omp_set_num_threads(1)
    settings = load_settings()
    fr = samples / "face_recognition"
    enrolled = {"OBAMA": [engine.observe_still(read_image(fr / n)).embedding for n in ("obama.jpg", "obama3.jpg")],
                "BIDEN": [engine.observe_still(read_image(fr / "biden.jpg")).embedding]}
    clips = clips or []
    by_person: dict[str, list[dict]] = {}
    for c in clips:
        by_person.setdefault(c["person"], []).append(c)
    for person, cs in by_person.items():
        if len(cs) > 1:
            embs = [engine.observe_still(read_image(c["frames"][0])).embedding for c in cs]
            for c, e in zip(cs, embs):
                c["enrol"] = [x for other, x in zip(cs, embs) if other is not c and x is not None]
    runs: list[tuple[str, str, Path | dict, str | None]] = []
    motions = ("left", "walk") if quick else ("left", "right", "walk")
    sizes = ("640x480",) if quick else ("640x480", "1280x720")
    for size in sizes:
        for m in motions:
            runs.append((f"obama2.jpg {size} {m}", size, fr / "obama2.jpg", "OBAMA"))
            runs.append((f"biden.jpg {size} {m}", size, fr / "biden.jpg", "BIDEN"))
            for p in (strangers[:1] if quick else strangers):
                runs.append((f"{p.name} {size} {m}", size, p, None))
    results, cpu_clock = [], []
    what_if: dict[str, list] = {"three_votes_worker_at_12_fps": [], "three_votes_only": [], "worker_at_12_fps": []}
    base_gallery = _filler_gallery(engine, enrolled)

    def pipeline(gallery, strong: bool = True):
        tracker = PersonTracker(votes_needed=settings.votes_needed, window=settings.vote_window)
        if not strong:
            tracker.strong_score = None     # 3 agreeing frames, whatever their scores
        return RecognitionPipeline(engine, _matcher(gallery, backend), tracker)

    for label, size, photo, want in runs:
        frames, stamps, entered = entering_scene(engine, photo, SIZES[size], motion=label.rsplit(" ", 1)[1])
        row = {"video": label, "expected": want or "unknown", "source": "sample photo"}
        pipe = pipeline(base_gallery)
        results.append({**row, **simulate_kiosk(pipe, frames, stamps, entered)})
        if quick:
            continue
        # the same video timed by this process's CPU time (see simulate_kiosk)
        cpu_clock.append({**row, **simulate_kiosk(pipe, frames, stamps, entered, clock=time.process_time)})
        # what-ifs: what each part of the kiosk's speed-up brings (worker at camera rate
        # while a face waits; two strong frames decide)
        old = pipeline(base_gallery, strong=False)
        what_if["three_votes_worker_at_12_fps"].append(
            {**row, **simulate_kiosk(old, frames, stamps, entered, hurry_fps=None)})
        if want:
            what_if["three_votes_only"].append({**row, **simulate_kiosk(old, frames, stamps, entered)})
            what_if["worker_at_12_fps"].append({**row, **simulate_kiosk(pipe, frames, stamps, entered,
                                                                          hurry_fps=None)})
    for c in ([] if quick else clips):
        frames = [read_image(p) for p in c["frames"]]
        stamps = [i / c["fps"] for i in range(len(frames))]
        extra = {"CLIP:" + c["person"]: c["enrol"]} if c.get("enrol") else {}
        g = _filler_gallery(engine, {**enrolled, **extra}) if extra else base_gallery
        row = {"video": c["name"], "expected": "CLIP:" + c["person"] if extra else "unknown", "source": "live clip"}
        pipe = pipeline(g)
        results.append({**row, **simulate_kiosk(pipe, frames, stamps, 0.0)})
        cpu_clock.append({**row, **simulate_kiosk(pipe, frames, stamps, 0.0, clock=time.process_time)})
        what_if["three_votes_worker_at_12_fps"].append(
            {**row, **simulate_kiosk(pipeline(g, strong=False), frames, stamps, 0.0, hurry_fps=None)})

    def summary(rows):
        done = [x["ms"] for x in rows if x["ms"] is not None]
        out = {**(_pct(done) if done else {"p50": None, "p95": None, "n": 0}), "runs": len(rows),
               "undecided": sum(x["ms"] is None for x in rows),
               "wrong": sum(x["state"] != "pending" and (x["resident_id"] or "unknown") != x["expected"] for x in rows),
               "frames_p50": statistics.median(x["frames"] for x in rows) if rows else None,
               "processing_ms_p50": round(statistics.median(x["processing_ms"] for x in rows), 1) if rows else None}
        return out

    for x in results + cpu_clock + [y for v in what_if.values() for y in v]:
        x["ms"] = None if x["ms"] is None else round(x["ms"], 1)
        x["processing_ms"] = round(x["processing_ms"], 1)
    probe = pipeline(base_gallery).tracker
    return {"worker_fps": WORKER_FPS, "worker_hurry_fps": HURRY_FPS, "camera_fps": CAMERA_FPS,
            "votes_needed": settings.votes_needed, "vote_window": settings.vote_window,
            "strong_votes": probe.strong_votes, "strong_score": probe.strong_score,
            "strong_margin": probe.strong_margin, "unknown_after": probe.unknown_after,
            "unknown_min_s": probe.unknown_min_s,
            "enrolled_identified": summary([x for x in results if x["expected"] != "unknown"]),
            "stranger_unknown": summary([x for x in results if x["expected"] == "unknown"]),
            "sample_videos": summary([x for x in results if x["source"] == "sample photo"]),
            "sample_enrolled": summary([x for x in results if x["source"] == "sample photo" and x["expected"] != "unknown"]),
            "sample_strangers": summary([x for x in results if x["source"] == "sample photo" and x["expected"] == "unknown"]),
            "clips_enrolled": summary([x for x in results if x["source"] == "live clip" and x["expected"] != "unknown"]),
            "clips_strangers": summary([x for x in results if x["source"] == "live clip" and x["expected"] == "unknown"]),
            "what_if": ({name: {"enrolled_identified": summary([x for x in rows if x["expected"] != "unknown"]),
                                "stranger_unknown": summary([x for x in rows if x["expected"] == "unknown"])
                                if any(x["expected"] == "unknown" for x in rows) else None,
                                "sample_enrolled": summary([x for x in rows if x["source"] == "sample photo"
                                                            and x["expected"] != "unknown"])}
                         for name, rows in what_if.items()} if not quick else None),
            "cpu_clock": ({k: summary([x for x in cpu_clock if f(x)]) for k, f in (
                ("sample_enrolled", lambda x: x["source"] == "sample photo" and x["expected"] != "unknown"),
                ("sample_strangers", lambda x: x["source"] == "sample photo" and x["expected"] == "unknown"),
                ("clips_enrolled", lambda x: x["source"] == "live clip" and x["expected"] != "unknown"),
                ("clips_strangers", lambda x: x["source"] == "live clip" and x["expected"] == "unknown"),
                ("enrolled_identified", lambda x: x["expected"] != "unknown"),
                ("stranger_unknown", lambda x: x["expected"] == "unknown"))} if cpu_clock else None),
            "live_clips": (summary([x for x in results if x["source"] == "live clip"]) if clips and not quick
                           else {"skipped": "--quick" if quick else f"{LIVE_CLIPS} not present"}),
            "runs": results}


def bench_search(sizes: list[int], dim: int = 128, queries: int = 500, seed: int = 0) -> dict:
    """Templates cluster by resident (4 each, like real enrolments); queries are new
    noisy views of enrolled residents. The gallery as the kiosk builds and searches it
    (index type and parameters picked by size, FAISS on one thread as
    ``kiosk.services.faces`` sets it): build time (wall and CPU), p50/p95 of a search
    (the best template per resident, exact scores), recall@1 = the best template found
    is the exact best of the whole gallery (measured on the same searches)."""
    import os

    import faiss

    from kiosk.vision.gallery import FaissGallery

    out = {}
    rng = np.random.default_rng(seed)
    threads = faiss.omp_get_max_threads()
    for n in sizes:
        residents = n // 4
        centers = _unit(rng, residents, dim)
        owner = np.repeat(np.arange(residents), 4)
        vecs = centers[owner] + rng.normal(scale=0.045, size=(n, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        qo = rng.integers(0, residents, size=queries)
        q = centers[qo] + rng.normal(scale=0.045, size=(queries, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(n)]
        faiss.omp_set_num_threads(1)   # as the kiosk runs it
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        g = FaissGallery.build(dim, "bench", ids, [str(o) for o in owner], vecs)
        build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        faiss.omp_set_num_threads(threads)
        exact = faiss.IndexFlatIP(dim)
        exact.add(vecs)
        _, truth = exact.search(q, 1)
        del exact
        faiss.omp_set_num_threads(1)   # one query at a time, as at the counter
        times, hits = [], 0
        for i in range(queries):
            t0 = time.perf_counter()
            best = g.search(q[i], 5)
            times.append((time.perf_counter() - t0) * 1000)
            hits += best[0].template_id == ids[truth[i, 0]]
        faiss.omp_set_num_threads(threads)
        out[str(n)] = {"p50": round(statistics.median(times), 4), "p95": round(sorted(times)[int(0.95 * (queries - 1))], 4),
                       "recall_at_1": round(hits / queries, 4), "index": g.kind, "nprobe": g.nprobe,
                       "nlist": int(g._index.nlist) if g.kind == "ivf" else None,
                       "build_s": round(build_s, 2), "build_cpu_s": round(build_cpu_s, 2),
                       "load_at_build": round(load, 2), "load_after": round(os.getloadavg()[0], 2), "dim": dim}
    return out


def bench_billing(residents: int = 10_000, orders: int = 200_000, quotes: int = 2000) -> dict:
    from sqlalchemy import insert

    from kiosk.db.models import LedgerEntry, MenuItem, Order, OrderLine, Resident
    from kiosk.services.context import App
    from kiosk.services.importing import import_policy
    from kiosk.services.security import generate_key

    tmp = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    s = load_settings(home=tmp / "home", template_key=generate_key())
    app = App(s)
    from kiosk.terminal.demo import FORMATS

    policy = FORMATS / "policy.example.yaml"
    rnd = random.Random(0)
    t0 = time.perf_counter()
    day0 = date(2026, 11, 23)
    with app.db.engine.begin() as c:
        c.execute(insert(Resident), [{
            "id": f"R{i:05d}", "name": f"居民{i}", "birth_date": date(1930 + i % 40, 1 + i % 12, 1 + i % 28),
            "sex": "女" if i % 2 else "男", "hukou": "武侯区" if i % 5 else "锦江区",
            "categories": ["低保"] if i % 7 == 0 else [], "diet_tags": [], "allergies": [], "status": "active",
            "created_at": datetime.now(timezone.utc), "updated_at": datetime.now(timezone.utc)} for i in range(residents)])
        menu = []
        for d in range(60):
            for j in range(8):
                menu.append({"id": str(uuid.uuid4()), "canteen_id": s.canteen_id, "menu_date": day0 - timedelta(days=d),
                             "meal": "午餐", "dish_id": f"D{j}", "name": f"菜{j}", "price_fen": 500 + 100 * j,
                             "category": ["荤菜", "素菜", "主食", "汤"][j % 4], "tags": [], "allergens": [],
                             "portions": None})
        c.execute(insert(MenuItem), menu)
        today_items = [m for m in menu if m["menu_date"] == day0]
        now = datetime.now(timezone.utc)
        batch_o, batch_l, batch_e = [], [], []
        for k in range(orders):
            oid = str(uuid.uuid4())
            m = menu[rnd.randrange(len(menu))]
            batch_o.append({"id": oid, "idempotency_key": oid, "resident_id": f"R{rnd.randrange(residents):05d}",
                            "canteen_id": s.canteen_id, "meal_date": m["menu_date"], "meal": "午餐",
                            "total_fen": m["price_fen"], "subsidy_fen": 300, "to_pay_fen": m["price_fen"] - 300,
                            "pay_method": "cash", "tier": "t", "reason": "r", "identified_by": "face", "created_at": now})
            batch_l.append({"id": str(uuid.uuid4()), "order_id": oid, "menu_item_id": m["id"], "dish_id": m["dish_id"],
                            "name": m["name"], "quantity": 1, "price_fen": m["price_fen"]})
            batch_e.append({"id": str(uuid.uuid4()), "resident_id": batch_o[-1]["resident_id"], "order_id": oid,
                            "kind": "charge", "amount_fen": m["price_fen"], "affects_balance": False, "created_at": now})
            if len(batch_o) == 20000:
                c.execute(insert(Order), batch_o)
                c.execute(insert(OrderLine), batch_l)
                c.execute(insert(LedgerEntry), batch_e)
                batch_o, batch_l, batch_e = [], [], []
        if batch_o:
            c.execute(insert(Order), batch_o)
            c.execute(insert(OrderLine), batch_l)
            c.execute(insert(LedgerEntry), batch_e)
    import_policy(app, policy)
    setup_s = time.perf_counter() - t0
    at = datetime(2026, 11, 23, 12, 0, tzinfo=timezone(timedelta(hours=8)))
    dishes = [m["dish_id"] for m in today_items]
    for _ in range(20):
        app.billing.quote("R00001", dishes[:3], at=at)
    t0, c0 = time.perf_counter(), time.process_time()
    lat = []
    for _ in range(quotes):
        q0 = time.perf_counter()
        app.billing.quote(f"R{rnd.randrange(residents):05d}", rnd.sample(dishes, 3), at=at)
        lat.append((time.perf_counter() - q0) * 1000)
    el, cpu = time.perf_counter() - t0, time.process_time() - c0
    # per CPU-second too: on a shared machine the wall-clock rate also counts waiting for a core
    return {"residents": residents, "orders": orders, "quotes": quotes, "quotes_per_s": round(quotes / el, 1),
            "quotes_per_cpu_s": round(quotes / cpu, 1) if cpu > 0 else None,
            "quote_ms": _pct(lat), "setup_s": round(setup_s, 1), "store": "sqlite-wal"}


def bench_rebuild(model_dir: Path, sizes: list[int], backend: str = "sface") -> dict:
    """The gallery rebuilt from the store, as a start without a usable index file does
    (``FaceService``): one SELECT of the templates (SQLite store of N templates, 4 per
    resident, encrypted as the kiosk stores them), bulk decryption, index build;
    ``restart_ms``: a new process's first gallery when the index file is up to date
    (the ids read and checked, the file decrypted and loaded). FAISS on one thread, as
    the kiosk runs it."""
    import os

    import faiss
    from sqlalchemy import insert

    from kiosk.db.models import FaceConsent, FaceTemplate, Resident
    from kiosk.services.context import App
    from kiosk.services.security import generate_key
    from kiosk.vision.engine import create_engine
    from kiosk.vision.gallery import FaissGallery, fingerprint

    engine = create_engine(backend, model_dir)
    dim = engine.contract.dim
    rng = np.random.default_rng(0)
    out = {}
    threads = faiss.omp_get_max_threads()
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="kiosk-bench-rebuild-"))
        app = App(load_settings(home=tmp / "home", template_key=generate_key()), engine=engine)
        now = datetime.now(timezone.utc)
        residents = (n + 3) // 4
        vecs = _unit(rng, n, dim)
        with app.db.engine.begin() as c:
            c.execute(insert(Resident), [{
                "id": f"R{i:07d}", "name": f"居民{i}", "birth_date": date(1940, 1, 1), "sex": "女",
                "hukou": "武侯区", "categories": [], "diet_tags": [], "allergies": [], "status": "active",
                "created_at": now, "updated_at": now} for i in range(residents)])
            c.execute(insert(FaceConsent), [{
                "id": str(uuid.uuid4()), "resident_id": f"R{i:07d}", "given_by": "self", "staff_id": "S01",
                "text_version": "bench", "allows_crop": False, "source": "desk", "created_at": now}
                for i in range(residents)])
            for k in range(0, n, 20_000):
                c.execute(insert(FaceTemplate), [{
                    "id": str(uuid.uuid4()), "resident_id": f"R{i // 4:07d}", "contract_id": engine.contract.id,
                    "backend": backend, "embedding_enc": app.cipher.encrypt(vecs[i].tobytes()), "crop_enc": None,
                    "quality": None, "source": "enroll", "created_at": now} for i in range(k, min(n, k + 20_000))])
        faiss.omp_set_num_threads(1)
        row = {"load_before": round(os.getloadavg()[0], 2)}
        faces = app.faces
        t0, c0 = time.perf_counter(), time.process_time()
        tids, rids, blobs = faces._db_templates()
        t1 = time.perf_counter()
        v = app.cipher.decrypt_embeddings(blobs, dim)
        t2 = time.perf_counter()
        g = FaissGallery.build(dim, faces.contract_id, tids, rids, v)
        t3, c3 = time.perf_counter(), time.process_time()
        row.update(rebuild_ms=round((t3 - t0) * 1000, 1), rebuild_cpu_ms=round((c3 - c0) * 1000, 1),
                   select_ms=round((t1 - t0) * 1000, 1), decrypt_ms=round((t2 - t1) * 1000, 1),
                   build_ms=round((t3 - t2) * 1000, 1), index=g.kind)
        faces._gallery, faces._known_gen = g, faces.generation()
        faces._write_index(g, fingerprint(faces.contract_id, tids))
        app2 = App(app.settings, engine=engine)
        t0 = time.perf_counter()
        assert len(app2.faces.gallery()) == n
        row["restart_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        row["load_after"] = round(os.getloadavg()[0], 2)
        faiss.omp_set_num_threads(threads)
        out[str(n)] = row
        app.db.engine.dispose()
        app2.db.engine.dispose()
    return out


def report_lines(result: dict) -> list[str]:
    """The figures of the frames, identity and billing sections as a few lines of text, for a
    person reading `kiosk bench` (the JSON has everything)."""
    out = []
    m = result.get("machine", {})
    if m:
        out.append(f"machine: {m.get('cpus')} CPUs, load average {m.get('load_avg_1_5_15')} at the start")
    for backend, sizes in (result.get("frame_ms") or {}).items():
        for size, f in sizes.items():
            if "p50" not in f:
                out.append(f"per frame  {backend:<11} {size:<8}  {f.get('error')}")
                continue
            st = f.get("stages_p50_ms", {})
            extra = (f"; empty frame {f['empty_frame_p50_ms']:.1f} ms" if "empty_frame_p50_ms" in f else "")
            out.append(f"per frame  {backend:<11} {size:<8}  p50 {f['p50']:6.1f} ms  p95 {f['p95']:6.1f} ms  "
                       f"CPU p50 {f['cpu_p50_ms']:6.1f} ms  (detect {st.get('detect', 0):.1f}, "
                       f"embed {st.get('embed', 0):.1f}, search {st.get('search', 0):.1f}{extra})")
    vp = result.get("vs_plain")
    if vp:
        out.append(f"per frame  kiosk {vp['kiosk']['p50']:.1f} ms against plain YuNet + SFace {vp['plain']['p50']:.1f} ms "
                   f"(p50, interleaved, 640x480, {vp['gallery_templates']:,} templates): {vp['ratio_p50']:.2f}x")
    for backend, r in (result.get("identity_decided_ms") or {}).items():
        rows = [("enrolled -> identified", r.get("enrolled_identified")),
                ("strangers -> unknown", r.get("stranger_unknown"))]
        cpu = r.get("cpu_clock") or {}
        rows += [("CPU clock: enrolled", cpu.get("enrolled_identified")),
                 ("CPU clock: strangers", cpu.get("stranger_unknown"))]
        for name, w in (r.get("what_if") or {}).items():
            rows.append((f"what-if {name}: enrolled", w.get("enrolled_identified")))
        for name, x in rows:
            if not x:
                continue
            if x.get("p50") is None:
                out.append(f"identity decided  {backend:<11} {name:<52} none decided of {x.get('runs')}")
                continue
            out.append(f"identity decided  {backend:<11} {name:<52} p50 {x['p50']:6.0f} ms  p95 {x['p95']:6.0f} ms  "
                       f"({x['n']} of {x['runs']} decided, {x['wrong']} wrong)")
    b = result.get("billing")
    if b:
        q = b["quote_ms"]
        out.append(f"billing  {b['quotes_per_s']:,.0f} quotes/s ({b['quotes_per_cpu_s']:,.0f} per CPU-second), "
                   f"p50 {q['p50']:.3f} ms  p95 {q['p95']:.3f} ms  ({b['residents']:,} residents, "
                   f"{b['orders']:,} orders, {b['store']})")
    return out
