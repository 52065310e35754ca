"""Threshold calibration on real photos, for 1:N identification.

    python -m kiosk.vision.calibrate --backend sface \
        --labelled ../shared/faces --pool DIR [--pool DIR ...] [--json]

``--labelled`` holds one folder per person (several photos each; folders whose
name starts with ``_`` are skipped). ``--pool`` images hold unlabelled faces:
people who are none of the labelled ones. Every face of a pool image that a
template could be made of (the enrolment gate, ``STILL_THRESHOLDS``) is used, so
a group photo gives one face per person in it. Pool faces may repeat a person
across images (photo collections often hold one person several times), so two
pool faces are compared only when they come from the same image (the people in
one photo are different people).

Faces are found and embedded the way the kiosk does it: templates as at
enrolment, probes as ``kiosk identify`` (``observe_probe``).

* genuine: every pair of photos of one labelled person;
* impostor: every pair of two labelled people, every labelled photo with every
  pool face, and every pair of faces within one pool image;
* 1:N, residents = all labelled people + every pool face: each labelled photo is
  probed with its own person enrolled from the other photos (matched / unknown /
  ambiguous / wrong person); with ``derived`` (the default) each labelled photo
  is probed twice more, as a tight crop of its face (90×115 px, the face
  filling it) and as the larger of two faces beside a pool face
  (``two_face_composite``);
* strangers: each labelled photo (and its derived probes) against a gallery of
  all pool faces (its own person not enrolled), and each pool face against a
  gallery of all labelled people and the other faces of its own image. A stranger
  probe that comes back ``matched`` is a false accept."""
from __future__ import annotations

from typing import TYPE_CHECKING

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import ImageError
from kiosk.vision.engine import create_engine
from kiosk.vision.image_io import read_image
from kiosk.vision.matching import decide
from kiosk.vision.quality import STILL_THRESHOLDS, assess, measure, primary_face
from kiosk.vision.types import Candidate, Face

if TYPE_CHECKING:
    from kiosk.vision.engine import FaceEngine

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXT)


def embed_every_face(engine: FaceEngine, img: np.ndarray) -> list[np.ndarray]:
    """Every face of an image that passes the enrolment gate (a resident could be made of it)."""
    faces = engine.detect(img)
    out = []
    for f in faces:
        if assess(measure(img, f, []), STILL_THRESHOLDS).ok:
            out.append(engine.embed_aligned(engine.align(img, f)))
    return out


def tight_crop(img: np.ndarray, face: Face, size: tuple[int, int] = (90, 115)) -> np.ndarray:
    """The face box alone, resized to ``size`` (w, h): an ID-style photo the face fills."""
    x, y, w, h = (int(round(v)) for v in face.bbox)
    x0, y0 = max(0, x), max(0, y)
    crop = img[y0:max(y0 + 1, y + h), x0:max(x0 + 1, x + w)]
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def face_patch(img: np.ndarray, face: Face, face_h: int) -> np.ndarray:
    """The face with a margin of half its size around it, scaled so the face is ``face_h`` tall."""
    x, y, w, h = face.bbox
    s = face_h / h
    m = 0.5 * max(w, h)
    x0, y0 = int(max(0, x - m)), int(max(0, y - m))
    x1, y1 = int(min(img.shape[1], x + w + m)), int(min(img.shape[0], y + h + m))
    return cv2.resize(img[y0:y1, x0:x1], None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def paste(frame: np.ndarray, patch: np.ndarray, cx: int, cy: int) -> None:
    """Copy ``patch`` into ``frame`` centred at (cx, cy), clipped at the frame's edges."""
    ph, pw = patch.shape[:2]
    x0, y0 = cx - pw // 2, cy - ph // 2
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(frame.shape[1], x0 + pw), min(frame.shape[0], y0 + ph)
    if dx1 > dx0 and dy1 > dy0:
        frame[dy0:dy1, dx0:dx1] = patch[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]


def two_face_composite(big_img: np.ndarray, big_face: Face, small_img: np.ndarray, small_face: Face,
                       size: tuple[int, int] = (640, 480), big_h: int = 170, small_h: int = 130,
                       big_x: float = 0.15) -> np.ndarray:
    """Two real faces on one grey frame: ``big`` (the customer) larger and off to the
    side (its centre at ``big_x`` of the width), ``small`` smaller and in the middle,
    as when someone looks over the customer's shoulder. The faces are ``big_h`` and
    ``small_h`` px tall (detected boxes vary by about ±8 % around these)."""
    w, h = size
    frame = np.full((h, w, 3), 110, np.uint8)
    paste(frame, face_patch(small_img, small_face, small_h), w // 2, h // 2)
    paste(frame, face_patch(big_img, big_face, big_h), int(w * big_x), h // 2)
    return frame


def best_per_identity(q: np.ndarray, gallery: dict[str, np.ndarray]) -> list[Candidate]:
    cands = [Candidate(ident, float((vecs @ q).max())) for ident, vecs in gallery.items()]
    return sorted(cands, key=lambda c: -c.score)


def leave_one_out(people: dict, all_ids: dict):
    """Each labelled photo with a gallery of everybody, its own person enrolled from the others."""
    for pid, vecs in people.items():
        if len(vecs) < 2:
            continue
        for i, q in enumerate(vecs):
            gal = {k: v for k, v in all_ids.items() if k != pid}
            gal[pid] = np.vstack([x for j, x in enumerate(vecs) if j != i])
            yield pid, q, gal


def tail_estimates(impostor: np.ndarray, threshold: float, gallery_sizes=(100, 300, 1000)) -> dict:
    """What the impostor scores say about one comparison reaching ``threshold``, and
    about a stranger meeting a gallery of N residents (N comparisons, one per resident;
    before the margin rule and the frame voting, which only lower it).

    ``counted``: the observed share. ``upper95``: the one-sided 95 % upper bound when
    none or few were seen (exact binomial; "rule of three" for none). ``normal``: a
    normal fit of the scores (impostor cosine scores are close to normal in the bulk,
    but real tails are heavier: read it as a lower estimate, not a guarantee)."""
    from math import erfc, sqrt

    from scipy.stats import beta

    n = int(len(impostor))
    k = int((impostor >= threshold).sum())
    upper = float(beta.ppf(0.95, k + 1, n - k)) if n else 1.0
    mu, sd = float(impostor.mean()), float(impostor.std()) or 1e-9
    z = (threshold - mu) / sd
    normal = 0.5 * erfc(z / sqrt(2))

    def one_to_n(p: float) -> dict:
        return {str(g): float(1 - (1 - p) ** g) for g in gallery_sizes}

    return {"threshold": threshold, "comparisons": n, "at_or_above": k, "counted": k / n if n else None,
            "upper95": upper, "mean": mu, "std": sd, "z": z, "normal": normal,
            "stranger_matched_upper95": one_to_n(upper), "stranger_matched_normal": one_to_n(normal)}


def run(backend: str, model_dir: Path, labelled: Path, pools: list[Path],
        thresholds: list[float], margins: list[float], derived: bool = True) -> dict:
    eng = create_engine(backend, model_dir)
    people: dict[str, list[np.ndarray]] = defaultdict(list)
    probes: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)  # derived probes per person
    folders = [d for d in sorted(labelled.iterdir()) if d.is_dir() and not d.name.startswith("_")]
    enrol_refused = 0
    pool_imgs: list[tuple[str, np.ndarray]] = []
    for d in pools:
        for p in _images(d):
            try:
                pool_imgs.append((f"{d.name}/{p.name}", read_image(p)))
            except ImageError:
                continue
    pool_groups: dict[str, np.ndarray] = {}      # image -> its faces
    for name, img in pool_imgs:
        vecs = embed_every_face(eng, img)
        if vecs:
            pool_groups[name] = np.vstack(vecs)
    partners = [(img, f) for _, img in pool_imgs
                for f in [primary_face(eng.detect(img), img.shape)] if f is not None]
    k = 0
    for d in folders:
        for p in _images(d):
            try:
                img = read_image(p)
            except ImageError:
                continue
            obs = eng.observe_probe(img)
            if obs.embedding is None:
                continue
            people[d.name].append(obs.embedding)
            enrol_refused += not assess(obs.quality.measurements, STILL_THRESHOLDS).ok
            if derived:
                t = eng.observe_probe(tight_crop(img, obs.primary))
                probes[d.name].append(("tight", t.embedding))
                if partners:
                    oimg, of = partners[k % len(partners)]
                    k += 1
                    c = eng.observe_probe(two_face_composite(img, obs.primary, oimg, of))
                    probes[d.name].append(("pair", c.embedding))
    pool_ids = {f"pool:{name}#{i}": v[None, :] for name, vs in pool_groups.items() for i, v in enumerate(vs)}
    labelled_ids = {pid: np.vstack(vs) for pid, vs in people.items()}
    everyone = {**labelled_ids, **pool_ids}
    genuine = []
    for v in labelled_ids.values():
        genuine += list((v @ v.T)[np.triu_indices(len(v), 1)])
    lab_keys = list(labelled_ids)
    impostor = []
    for i, a in enumerate(lab_keys):
        for b in lab_keys[i + 1:]:
            impostor += list((labelled_ids[a] @ labelled_ids[b].T).ravel())
    if pool_ids:
        pool_mat = np.vstack(list(pool_ids.values()))
        for v in labelled_ids.values():
            impostor += list((v @ pool_mat.T).ravel())
    within = 0
    for vs in pool_groups.values():
        if len(vs) > 1:
            sims = (vs @ vs.T)[np.triu_indices(len(vs), 1)]
            impostor += list(sims)
            within += len(sims)
    impostor = np.array(impostor)

    def stranger_probes():
        for pid, vecs in labelled_ids.items():          # a labelled person meets the pool
            for q in vecs:
                yield "photo", q, pool_ids
            for kind, q in probes[pid]:
                if q is not None:
                    yield kind, q, pool_ids
        for name, vs in pool_groups.items():            # a pool face meets the labelled people
            for i, v in enumerate(vs):                  # and the others of its own photo
                gal = dict(labelled_ids)
                gal.update({f"{name}#{j}": w[None, :] for j, w in enumerate(vs) if j != i})
                yield "pool", v, gal

    def genuine_probes():
        for pid, q, gal in leave_one_out(people, everyone):
            yield "photo", pid, q, gal
        for pid, vecs in people.items():
            if len(vecs) < 2:
                continue
            gal = {k: v for k, v in everyone.items() if k != pid}
            # a derived probe of photo i meets the person enrolled from the other photos
            for i, (kind, q) in enumerate(probes[pid]):
                src = i // (2 if partners else 1)
                gal[pid] = np.vstack([x for j, x in enumerate(vecs) if j != src])
                yield kind, pid, q, dict(gal)

    kinds = ["photo"] + (["tight", "pair"] if derived else [])
    results = {}
    for t in thresholds:
        for m in margins:
            by: dict[str, dict] = {}
            for kind, pid, q, gal in genuine_probes():
                c = by.setdefault(kind, {"genuine_probes": 0, "genuine_matched": 0, "genuine_unknown": 0,
                                         "genuine_ambiguous": 0, "genuine_wrong": 0, "genuine_no_face": 0})
                c["genuine_probes"] += 1
                if q is None:
                    c["genuine_no_face"] += 1
                    continue
                r = decide(best_per_identity(q, gal), t, m)
                if r.status == "matched":
                    c["genuine_matched"] += r.resident_id == pid
                    c["genuine_wrong"] += r.resident_id != pid
                elif r.status == "ambiguous":
                    c["genuine_ambiguous"] += 1
                else:
                    c["genuine_unknown"] += 1
            s: dict[str, list[int]] = {}
            for kind, q, gal in stranger_probes():
                if not gal:
                    continue
                c = s.setdefault(kind, [0, 0])
                c[0] += 1
                c[1] += decide(best_per_identity(q, gal), t, m).status == "matched"
            photo = by.get("photo", {})
            results[f"t={t:.2f},m={m:.2f}"] = {
                **photo,
                "stranger_probes": sum(v[0] for v in s.values()),
                "stranger_false_accepts": sum(v[1] for v in s.values()),
                "derived": {k: by[k] for k in kinds[1:] if k in by},
                "strangers_by_kind": {k: {"probes": v[0], "false_accepts": v[1]} for k, v in s.items()}}
    # rank-1 (no threshold) among labelled probes, residents = everyone
    r1 = n1 = 0
    for pid, q, gal in leave_one_out(people, everyone):
        n1 += 1
        r1 += best_per_identity(q, gal)[0].resident_id == pid
    imp_sorted = np.sort(impostor)[::-1]
    derived_scores = {}
    for kind in kinds[1:]:
        own = [max(float(q @ v) for j, v in enumerate(people[pid]) if j != i // (2 if partners else 1))
               for pid in people if len(people[pid]) > 1
               for i, (kk, q) in enumerate(probes[pid]) if kk == kind and q is not None]
        if own:
            derived_scores[kind] = {"min": float(np.min(own)), "median": float(np.median(own))}
    return {
        "backend": backend, "contract": eng.contract.id,
        "labelled_people": len(people), "labelled_photos": sum(len(v) for v in people.values()),
        "labelled_refused_at_enrolment": int(enrol_refused),
        "pool_images": len(pool_groups), "pool_faces": len(pool_ids), "residents_in_1_to_n": len(everyone),
        "genuine_pairs": len(genuine), "impostor_pairs": int(len(impostor)),
        "impostor_pairs_within_pool_images": int(within),
        "genuine": {"min": float(np.min(genuine)), "p05": float(np.percentile(genuine, 5)),
                    "median": float(np.median(genuine))},
        "derived_genuine": derived_scores,
        "impostor": {"max": float(imp_sorted[0]), "top5": [float(x) for x in imp_sorted[:5]],
                     "p999": float(np.percentile(impostor, 99.9)), "p99": float(np.percentile(impostor, 99))},
        "rank1": {"correct": int(r1), "probes": int(n1)},
        "one_to_n": results,
        "tail": [tail_estimates(impostor, t) for t in thresholds],
    }


def main(argv: list[str] | None = None) -> int:
    from kiosk.config import get_settings

    ap = argparse.ArgumentParser(prog="python -m kiosk.vision.calibrate")
    ap.add_argument("--backend", default="sface")
    ap.add_argument("--labelled", type=Path, required=True)
    ap.add_argument("--pool", type=Path, action="append", default=[])
    ap.add_argument("--thresholds", default="0.30,0.35,0.40,0.45,0.50,0.55")
    ap.add_argument("--margins", default="0.0,0.05,0.08")
    ap.add_argument("--no-derived", action="store_true",
                    help="probe only the photos as they are (no tight crops, no two-face composites)")
    a = ap.parse_args(argv)
    rep = run(a.backend, get_settings().model_dir, a.labelled, a.pool,
              [float(x) for x in a.thresholds.split(",")], [float(x) for x in a.margins.split(",")],
              derived=not a.no_derived)
    print(json.dumps(rep, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
