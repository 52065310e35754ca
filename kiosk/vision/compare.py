"""The kiosk's identification against a plain pipeline, on the same photos.

    python -m kiosk.vision.compare --labelled DIR [--pool DIR ...] [--backend sface] [--json]

The plain pipeline is what anyone would write from the model authors' samples,
with nothing of the kiosk in it:

* ``sface``: OpenCV's ``FaceDetectorYN`` (YuNet) on the whole image scaled to at most
  640 px on its long side (score threshold 0.9, the OpenCV Zoo sample's), the largest
  face, ``FaceRecognizerSF.alignCrop`` → ``feature``, cosine similarity;
* ``insightface``: insightface's ``SCRFD`` at 640×640 (threshold 0.5), the
  largest face, ``face_align.norm_crop`` → ArcFace, cosine similarity.

``--labelled`` holds one folder per person (folders starting with ``_`` are
skipped). Each photo of a person is probed once with that person enrolled from
their other photos (leave one out); every labelled person and every pool face is
a resident. Then each labelled photo meets a gallery without its own person (a
stranger), and each pool face meets the labelled people. Both pipelines enrol
and probe with their own embeddings (the kiosk probes as ``kiosk identify`` and
enrols only photos its enrolment gate accepts); the kiosk decides with its own
``decide()`` (threshold and margin), the plain pipeline with cosine ≥ its
threshold (no margin). The output lists every genuine probe the plain pipeline
recognises and the kiosk does not (the regressions this tool exists to find).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import argparse
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import ImageError
from kiosk.vision.calibrate import _images, best_per_identity, face_patch, paste, tight_crop, two_face_composite
from kiosk.vision.image_io import read_image
from kiosk.vision.matching import decide

if TYPE_CHECKING:
    from kiosk.vision.engine import FaceEngine


# The two-face probe: a wide photo, the labelled person's face larger (about 1.3× the
# area as detected) at the left edge, a pool face in the middle.
PAIR = dict(size=(1280, 480), big_x=0.07, big_h=160, small_h=140)


class PlainSFace:
    """YuNet on the image scaled to at most ``max_side`` px → largest face → alignCrop →
    SFace feature."""

    max_side = 640

    def __init__(self, model_dir: Path, score_threshold: float = 0.9) -> None:
        d = model_dir / "sface"
        self.det = cv2.FaceDetectorYN.create(str(d / "face_detection_yunet_2023mar.onnx"), "",
                                             (320, 320), score_threshold, 0.3, 5000)
        self.rec = cv2.FaceRecognizerSF.create(str(d / "face_recognition_sface_2021dec.onnx"), "")

    def embed(self, img: np.ndarray) -> np.ndarray | None:
        h, w = img.shape[:2]
        if max(h, w) > self.max_side:
            f = self.max_side / max(h, w)
            img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            h, w = img.shape[:2]
        self.det.setInputSize((w, h))
        _, faces = self.det.detect(img)
        if faces is None or len(faces) == 0:
            return None
        f = max(faces, key=lambda r: r[2] * r[3])
        v = self.rec.feature(self.rec.alignCrop(img, f)).ravel().astype(np.float32)
        return v / np.linalg.norm(v)


class PlainInsightFace:
    """SCRFD at 640×640 → largest face → norm_crop → ArcFace."""

    def __init__(self, model_dir: Path) -> None:
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
        from insightface.model_zoo.scrfd import SCRFD

        d = model_dir / "insightface"
        self.det = SCRFD(model_file=str(d / "scrfd_500m_bnkps.onnx"))
        self.det.prepare(-1, input_size=(640, 640), det_thresh=0.5)
        self.rec = ArcFaceONNX(model_file=str(d / "w600k_mbf.onnx"))
        self.rec.prepare(-1)

    def embed(self, img: np.ndarray) -> np.ndarray | None:
        from insightface.utils import face_align

        det, kps = self.det.detect(img, input_size=(640, 640))
        if det.shape[0] == 0:
            return None
        i = int(np.argmax((det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])))
        v = self.rec.get_feat(face_align.norm_crop(img, kps[i], 112)).ravel().astype(np.float32)
        return v / np.linalg.norm(v)


def small_face(img: np.ndarray, face, face_h: int = 36) -> np.ndarray:
    """The face ``face_h`` px tall in a 320×240 frame (someone far from the camera)."""
    frame = np.full((240, 320, 3), 110, np.uint8)
    paste(frame, face_patch(img, face, face_h), 160, 120)
    return frame


@dataclass
class Probe:
    kind: str                 # genuine | stranger
    image: str
    person: str | None
    plain_score: float | None  # best score (genuine: own person's; stranger: best resident)
    plain_ok: bool | None      # genuine: recognised; stranger: accepted (a false accept)
    kiosk_score: float | None
    kiosk_status: str          # matched | unknown | ambiguous | no_face | low_quality | wrong
    kiosk_ok: bool | None


def _kiosk_embed(engine: FaceEngine, img: np.ndarray) -> tuple[np.ndarray | None, str, bool]:
    """As ``kiosk identify`` does; the flag says whether enrolment would make a
    template of it (``STILL_THRESHOLDS``): only those join the kiosk's gallery."""
    from kiosk.vision.quality import STILL_THRESHOLDS, assess

    obs = engine.observe_probe(img)
    if obs.primary is None:
        return None, "no_face", False
    if obs.embedding is None:
        return None, "low_quality", False
    return obs.embedding, "ok", assess(obs.quality.measurements, STILL_THRESHOLDS).ok


def run(backend: str, model_dir: Path, labelled: Path, pools: list[Path],
        kiosk_threshold: float, kiosk_margin: float, plain_threshold: float,
        derived: bool = True) -> dict:
    """Both pipelines on the same photos. With ``derived``, each labelled photo is
    also probed as a tight crop (``tight_crop``), as a small face (``small_face``)
    and as the larger of two faces (``two_face_composite`` with a pool face in the
    middle)."""
    from kiosk.vision.engine import create_engine
    from kiosk.vision.quality import primary_face

    engine = create_engine(backend, model_dir)
    plain = PlainSFace(model_dir) if backend == "sface" else PlainInsightFace(model_dir)
    photos: dict[str, list[Path]] = {}
    for d in sorted(labelled.iterdir()):
        if d.is_dir() and not d.name.startswith("_"):
            photos[d.name] = _images(d)
    pool_paths = [p for d in pools for p in _images(d)]
    images: dict[Path, np.ndarray] = {}
    for p in [p for ps in photos.values() for p in ps] + pool_paths:
        try:
            images[p] = read_image(p)
        except ImageError:
            continue
    emb: dict[str, dict] = {"plain": {}, "kiosk": {}}

    enrolable: dict = {}

    def embed(key, img):
        emb["plain"][key] = (plain.embed(img), "ok")
        vec, why, ok = _kiosk_embed(engine, img)
        emb["kiosk"][key] = (vec, why)
        if ok:
            enrolable[key] = True

    for p, img in images.items():
        embed(p, img)
    variants: dict[Path, list[str]] = defaultdict(list)
    if derived:
        others = [(img, f) for p, img in images.items() if p in pool_paths
                  for f in [primary_face(engine.detect(img), img.shape)] if f is not None]
        k = 0
        for ps in photos.values():
            for p in ps:
                if p not in images:
                    continue
                img = images[p]
                f = primary_face(engine.detect(img), img.shape)
                if f is None:
                    continue
                embed((p, "tight"), tight_crop(img, f))
                variants[p].append("tight")
                embed((p, "small"), small_face(img, f))
                variants[p].append("small")
                if others:
                    oimg, of = others[k % len(others)]
                    k += 1
                    embed((p, "pair"), two_face_composite(img, f, oimg, of, **PAIR))
                    variants[p].append("pair")
    # galleries: the plain pipeline enrols every photo it finds a face in, the kiosk
    # only those its enrolment gate accepts
    tmpl = {"plain": emb["plain"],
            "kiosk": {k: (v if k in enrolable else None, w) for k, (v, w) in emb["kiosk"].items()}}
    probes: list[Probe] = []
    judge = dict(k_t=kiosk_threshold, k_m=kiosk_margin, p_t=plain_threshold)
    for pid, ps in photos.items():
        for p in ps:
            if p not in images:
                continue
            rest = [q for q in ps if q != p]
            for v in [None] + variants[p]:
                key = p if v is None else (p, v)
                name = str(p) if v is None else f"{p} [{v}]"
                if rest:
                    row = {side: _judge(*emb[side][key], _gallery(tmpl[side], photos, pool_paths,
                                                                   exclude=None, own=(pid, rest)),
                                        pid, side, **judge) for side in ("plain", "kiosk")}
                    probes.append(Probe("genuine", name, pid, *row["plain"], *row["kiosk"]))
                # the same photo as a stranger: its own person is not enrolled
                row = {side: _judge(*emb[side][key], _gallery(tmpl[side], photos, pool_paths,
                                                               exclude=pid, own=None, pool_only=True),
                                    None, side, **judge) for side in ("plain", "kiosk")}
                probes.append(Probe("stranger", name, pid, *row["plain"], *row["kiosk"]))
    for p in pool_paths:
        if p not in images:
            continue
        row = {side: _judge(*emb[side][p], _gallery(tmpl[side], photos, [], exclude=None, own=None),
                            None, side, **judge) for side in ("plain", "kiosk")}
        probes.append(Probe("stranger", str(p), None, *row["plain"], *row["kiosk"]))

    def summary(kind: str, variant: str | None) -> dict:
        xs = [x for x in probes if x.kind == kind and
              (x.image.endswith(f"[{variant}]") if variant else not x.image.endswith("]"))]
        d = {"probes": len(xs), "plain": sum(bool(x.plain_ok) for x in xs),
             "kiosk": sum(bool(x.kiosk_ok) for x in xs)}
        return d

    return {
        "backend": backend, "kiosk_threshold": kiosk_threshold, "kiosk_margin": kiosk_margin,
        "plain_threshold": plain_threshold,
        "genuine_recognised": {v or "photo": summary("genuine", v) for v in (None, "tight", "small", "pair")},
        "strangers_accepted": {v or "photo": summary("stranger", v) for v in (None, "tight", "small", "pair")},
        "kiosk_lost": [asdict(x) for x in probes if x.kind == "genuine" and x.plain_ok and not x.kiosk_ok],
        "kiosk_false_accepts": [asdict(x) for x in probes if x.kind == "stranger" and x.kiosk_ok],
        "probes": [asdict(x) for x in probes],
    }


def _gallery(emb: dict, photos: dict, pool_paths: list, *, exclude: str | None,
             own: tuple[str, list[Path]] | None, pool_only: bool = False) -> dict[str, np.ndarray]:
    gal: dict[str, np.ndarray] = {}
    if not pool_only:
        for pid, ps in photos.items():
            if pid == exclude or (own and pid == own[0]):
                continue
            vecs = [emb[p][0] for p in ps if emb[p][0] is not None]
            if vecs:
                gal[pid] = np.vstack(vecs)
    if own:
        vecs = [emb[p][0] for p in own[1] if emb[p][0] is not None]
        if vecs:
            gal[own[0]] = np.vstack(vecs)
    for p in pool_paths:
        if emb[p][0] is not None:
            gal[f"pool:{p.name}"] = emb[p][0][None, :]
    return gal


def _judge(vec, why, gal, person, side, *, k_t, k_m, p_t) -> tuple:
    """plain: (score, recognised-or-accepted); kiosk: (score, status, recognised-or-accepted)."""
    if vec is None or not gal:
        status = why if why != "ok" else "no_face"
        return (None, status, False) if side == "kiosk" else (None, False)
    cands = best_per_identity(vec, gal)
    if side == "plain":
        best = cands[0]
        if person is None:
            return best.score, best.score >= p_t
        own = next((c.score for c in cands if c.resident_id == person), None)
        return own, best.resident_id == person and best.score >= p_t
    r = decide(cands, k_t, k_m)
    if person is None:
        return cands[0].score, r.status, r.status == "matched"
    own = next((c.score for c in cands if c.resident_id == person), None)
    status = r.status if r.status != "matched" or r.resident_id == person else "wrong"
    return own, status, status == "matched"


def main(argv: list[str] | None = None) -> int:
    from kiosk.config import get_settings
    from kiosk.vision.engine import BACKEND_DEFAULTS

    ap = argparse.ArgumentParser(prog="python -m kiosk.vision.compare")
    ap.add_argument("--backend", default="sface", choices=["sface", "insightface"])
    ap.add_argument("--labelled", type=Path, required=True)
    ap.add_argument("--pool", type=Path, action="append", default=[])
    ap.add_argument("--threshold", type=float, default=None, help="the kiosk's (default: the backend's)")
    ap.add_argument("--margin", type=float, default=None)
    ap.add_argument("--plain-threshold", type=float, default=None,
                    help="the plain pipeline's cosine threshold (default: the kiosk's)")
    ap.add_argument("--no-derived", action="store_true", help="only the photos as they are")
    ap.add_argument("--json", action="store_true", help="every probe, not only the summary")
    a = ap.parse_args(argv)
    d = BACKEND_DEFAULTS[a.backend]
    t = d.match_threshold if a.threshold is None else a.threshold
    m = d.match_margin if a.margin is None else a.margin
    rep = run(a.backend, get_settings().model_dir, a.labelled, a.pool, t, m,
              t if a.plain_threshold is None else a.plain_threshold, derived=not a.no_derived)
    if not a.json:
        rep.pop("probes")
    print(json.dumps(rep, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
