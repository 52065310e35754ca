"""Threshold calibration on real photos, for 1:N identification.

    python -m kiosk.vision.calibrate --backend sface \
        --labelled ../shared/faces --pool DIR [--pool DIR ...] [--json]

``--labelled`` holds one folder per person (several photos each; folders whose
name starts with ``_`` are skipped). ``--pool`` images are unlabelled faces (the
primary face of each): people who are none of the labelled ones, but who may
repeat among themselves (photo collections often hold one person several times),
so no pool face is ever compared with another.

* genuine: every pair of photos of one labelled person;
* impostor: every pair of two labelled people, and every labelled photo with every
  pool face;
* 1:N, residents = all labelled people + every pool face: each labelled photo is
  probed with its own person enrolled from the other photos (matched / unknown /
  ambiguous / wrong person);
* strangers: each labelled photo against a gallery of all pool faces (its own
  person not enrolled), and each pool face against a gallery of all labelled
  people. A stranger probe that comes back ``matched`` is a false accept."""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import ImageError
from .engine import create_engine
from .image_io import read_image
from .matching import decide
from .types import Candidate

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXT)


def embed_all(engine, paths: list[Path]) -> dict[Path, np.ndarray]:
    out = {}
    for p in paths:
        try:
            obs = engine.observe_still(read_image(p))
        except ImageError:
            continue
        if obs.embedding is not None:
            out[p] = obs.embedding
    return out


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
        thresholds: list[float], margins: list[float]) -> dict:
    eng = create_engine(backend, model_dir)
    people: dict[str, list[np.ndarray]] = defaultdict(list)
    folders = [d for d in sorted(labelled.iterdir()) if d.is_dir() and not d.name.startswith("_")]
    for d in folders:
        for e in embed_all(eng, _images(d)).values():
            people[d.name].append(e)
    pool_ids = {f"pool:{d.name}/{p.name}": e[None, :]
                for d in pools for p, e in embed_all(eng, _images(d)).items()}
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
    impostor = np.array(impostor)

    def stranger_probes():
        for pid, vecs in labelled_ids.items():          # a labelled person meets the pool
            for q in vecs:
                yield q, pool_ids
        for k, v in pool_ids.items():                   # a pool face meets the labelled people
            yield v[0], labelled_ids

    results = {}
    for t in thresholds:
        for m in margins:
            g_ok = g_unknown = g_ambig = g_wrong = 0
            for pid, q, gal in leave_one_out(people, everyone):
                r = decide(best_per_identity(q, gal), t, m)
                if r.status == "matched":
                    g_ok += r.resident_id == pid
                    g_wrong += r.resident_id != pid
                elif r.status == "ambiguous":
                    g_ambig += 1
                else:
                    g_unknown += 1
            s_fa = s_probes = 0
            for q, gal in stranger_probes():
                if not gal:
                    continue
                s_probes += 1
                s_fa += decide(best_per_identity(q, gal), t, m).status == "matched"
            results[f"t={t:.2f},m={m:.2f}"] = {
                "genuine_probes": g_ok + g_unknown + g_ambig + g_wrong, "genuine_matched": g_ok,
                "genuine_unknown": g_unknown, "genuine_ambiguous": g_ambig, "genuine_wrong": g_wrong,
                "stranger_probes": s_probes, "stranger_false_accepts": s_fa}
    # rank-1 (no threshold) among labelled probes, residents = everyone
    r1 = n1 = 0
    for pid, q, gal in leave_one_out(people, everyone):
        n1 += 1
        r1 += best_per_identity(q, gal)[0].resident_id == pid
    imp_sorted = np.sort(impostor)[::-1]
    return {
        "backend": backend, "contract": eng.contract.id,
        "labelled_people": len(people), "labelled_photos": sum(len(v) for v in people.values()),
        "pool_faces": len(pool_ids), "residents_in_1_to_n": len(everyone),
        "genuine_pairs": len(genuine), "impostor_pairs": int(len(impostor)),
        "genuine": {"min": float(np.min(genuine)), "p05": float(np.percentile(genuine, 5)),
                    "median": float(np.median(genuine))},
        "impostor": {"max": float(imp_sorted[0]), "top5": [float(x) for x in imp_sorted[:5]],
                     "p999": float(np.percentile(impostor, 99.9)), "p99": float(np.percentile(impostor, 99))},
        "rank1": {"correct": int(r1), "probes": int(n1)},
        "one_to_n": results,
        "tail": [tail_estimates(impostor, t) for t in thresholds],
    }


def main(argv: list[str] | None = None) -> int:
    from ..config import get_settings

    ap = argparse.ArgumentParser(prog="python -m kiosk.vision.calibrate")
    ap.add_argument("--backend", default="sface")
    ap.add_argument("--labelled", type=Path, required=True)
    ap.add_argument("--pool", type=Path, action="append", default=[])
    ap.add_argument("--thresholds", default="0.30,0.35,0.40,0.45,0.50,0.55")
    ap.add_argument("--margins", default="0.0,0.05,0.08")
    a = ap.parse_args(argv)
    rep = run(a.backend, get_settings().model_dir, a.labelled, a.pool,
              [float(x) for x in a.thresholds.split(",")], [float(x) for x in a.margins.split(",")])
    print(json.dumps(rep, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
