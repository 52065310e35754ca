"""What refreshed templates change: genuine scores of later photos, strangers' best scores.

``python -m kiosk.bench.ageing --labelled DIR [--pool DIR|FILE ...] [--backend B] [--json]``

Photos are embedded as the kiosk does it (``observe_probe``; every face of a pool photo
that passes the enrolment gate). Every labelled person (one folder each) and every pool
face is a resident of one gallery. For each labelled person with at least three photos,
each photo in turn is the *later* photo (the probe) and each other photo the enrolment;
the remaining photos come to the counter one a month, in file order, and each is put to
the kiosk's own rule (``kiosk.services.template_refresh.decide_refresh``: a strong match
with a lead of 0.20, liveness taken as passed, at most one a month, the enrolment kept, at
most 5, far from the enrolment never) against the gallery as it stands. The probe's
genuine score is then its best score against the enrolment alone and against the
enrolment plus the refreshed templates. Strangers: every pool face against the labelled
people enrolled from their first photo alone, and with each person's refreshed templates
added (the same monthly simulation over their other photos): the best score a stranger
reaches, and how many reach the threshold.

``--exclude NAME:REF`` drops, from pool photo NAME, the face most like labelled photo REF
(a labelled person who is also in a group photo: a genuine pair, not a stranger).
Figures, not tests; the photos stay outside the repository.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from kiosk.services.template_refresh import StoredTemplate, decide_refresh
from kiosk.vision.calibrate import IMAGE_EXT, embed_every_face
from kiosk.vision.engine import BACKEND_DEFAULTS, create_engine
from kiosk.vision.image_io import read_image
from kiosk.vision.matching import decide
from kiosk.vision.types import Candidate

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT),
                  key=lambda p: (len(p.stem), p.stem))


def _search(q: np.ndarray, gallery: dict[str, np.ndarray]) -> list[Candidate]:
    return sorted((Candidate(k, float((v @ q).max())) for k, v in gallery.items()), key=lambda c: -c.score)


def simulate(pid: str, enrol: np.ndarray, frames: list[tuple[np.ndarray, float]], others: dict[str, np.ndarray],
             threshold: float, margin: float, strong: float | None) -> tuple[list[np.ndarray], list[str]]:
    """The person's templates after ``frames`` came to the counter one a month (the kiosk's
    rule each time), and the rule's reason for each frame."""
    stored = [StoredTemplate("E", "enroll", T0, enrol)]
    reasons = []
    for m, (emb, quality) in enumerate(frames, start=1):
        at = T0 + timedelta(days=31 * m)
        gal = {**others, pid: np.vstack([t.embedding for t in stored])}
        match = decide(_search(emb, gal), threshold, margin)
        d = decide_refresh(pid, match, emb, live=True, quality=quality, templates=stored, at=at,
                           threshold=threshold, strong_score=strong, consent_covers=True)
        reasons.append(d.reason)
        if d.add:
            stored = [t for t in stored if t.id not in d.drop] + [StoredTemplate(f"R{m}", "refresh", at, emb)]
    return [t.embedding for t in stored], reasons


def run(backend: str, labelled: Path, pools: list[Path], excludes: list[str], model_dir: Path | None = None) -> dict:
    from kiosk.config import load_settings

    eng = create_engine(backend, model_dir or load_settings(backend=backend).model_dir)
    d = BACKEND_DEFAULTS[backend]
    thr, margin, strong = d.match_threshold, d.match_margin, d.strong_score
    people: dict[str, list[tuple[str, np.ndarray, float]]] = {}
    for folder in sorted(p for p in labelled.iterdir() if p.is_dir() and not p.name.startswith("_")):
        rows = []
        for p in _images(folder):
            obs = eng.observe_probe(read_image(p))
            if obs.embedding is not None:
                rows.append((p.name, obs.embedding, obs.quality.score if obs.quality else 0.0))
        if rows:
            people[folder.name] = rows
    ref = {f"{pid}/{n}": e for pid, rows in people.items() for n, e, _ in rows}
    drop: dict[str, list[str]] = defaultdict(list)
    for x in excludes:
        name, _, r = x.partition(":")
        drop[name].append(r)
    pool: dict[str, np.ndarray] = {}
    excluded = []
    files = [f for p in pools for f in (_images(p) if p.is_dir() else [p])]
    for f in files:
        vecs = embed_every_face(eng, read_image(f))
        for r in drop.get(f.name, []):
            if vecs:
                sims = [float(v @ ref[r]) for v in vecs]
                i = int(np.argmax(sims))
                excluded.append({"photo": f.name, "like": r, "score": round(sims[i], 4)})
                vecs = vecs[:i] + vecs[i + 1:]
        for i, v in enumerate(vecs):
            pool[f"pool:{f.name}#{i}"] = v[None, :]

    genuine = []
    reasons: Counter = Counter()
    for pid, rows in people.items():
        if len(rows) < 3:
            continue
        others = {**{k: np.vstack([e for _, e, _ in r][:1]) for k, r in people.items() if k != pid}, **pool}
        for pi, (pname, pemb, _) in enumerate(rows):
            for ei, (ename, eemb, _) in enumerate(rows):
                if ei == pi:
                    continue
                frames = [(e, q) for j, (_, e, q) in enumerate(rows) if j not in (pi, ei)]
                tpls, why = simulate(pid, eemb, frames, others, thr, margin, strong)
                reasons.update(why)
                only = float(eemb @ pemb)
                more = float(np.max(np.vstack(tpls) @ pemb))
                gal_only = {**others, pid: eemb[None, :]}
                gal_more = {**others, pid: np.vstack(tpls)}
                genuine.append({"person": pid, "probe": pname, "enrolment": ename, "templates": len(tpls),
                                "enrol_only": round(only, 4), "with_refresh": round(more, 4),
                                "matched_only": decide(_search(pemb, gal_only), thr, margin).resident_id == pid,
                                "matched_refresh": decide(_search(pemb, gal_more), thr, margin).resident_id == pid})

    # strangers: the labelled people enrolled from their first photo, then refreshed from the rest
    first = {pid: rows[0][1][None, :] for pid, rows in people.items()}
    refreshed = {}
    for pid, rows in people.items():
        others = {**{k: v for k, v in first.items() if k != pid}, **pool}
        tpls, _ = simulate(pid, rows[0][1], [(e, q) for _, e, q in rows[1:]], others, thr, margin, strong)
        refreshed[pid] = np.vstack(tpls)
    strangers = []
    for k, v in pool.items():
        q = v[0]
        a, b = _search(q, first), _search(q, refreshed)
        strangers.append({"face": k, "enrol_only": round(a[0].score, 4), "with_refresh": round(b[0].score, 4),
                          "accepted_only": decide(a, thr, margin).status == "matched",
                          "accepted_refresh": decide(b, thr, margin).status == "matched"})

    def stats(xs: list[float]) -> dict:
        a = np.array(xs)
        return {"min": round(float(a.min()), 4), "p05": round(float(np.percentile(a, 5)), 4),
                "mean": round(float(a.mean()), 4), "median": round(float(np.median(a)), 4)}

    per_person = {}
    for pid in sorted({g["person"] for g in genuine}):
        gs = [g for g in genuine if g["person"] == pid]
        per_person[pid] = {"pairs": len(gs), "enrol_only": stats([g["enrol_only"] for g in gs]),
                           "with_refresh": stats([g["with_refresh"] for g in gs]),
                           "recognised_only": sum(g["matched_only"] for g in gs),
                           "recognised_refresh": sum(g["matched_refresh"] for g in gs),
                           "mean_templates": round(float(np.mean([g["templates"] for g in gs])), 2)}
    return {
        "backend": backend, "contract": eng.contract.id, "threshold": thr, "strong_score": strong,
        "people": {pid: len(r) for pid, r in people.items()}, "pool_faces": len(pool), "excluded": excluded,
        "genuine": {"pairs": len(genuine), "enrol_only": stats([g["enrol_only"] for g in genuine]),
                    "with_refresh": stats([g["with_refresh"] for g in genuine]),
                    "recognised_only": sum(g["matched_only"] for g in genuine),
                    "recognised_refresh": sum(g["matched_refresh"] for g in genuine),
                    "improved": sum(g["with_refresh"] > g["enrol_only"] + 1e-6 for g in genuine),
                    "per_person": per_person},
        "rule_reasons": dict(reasons),
        "strangers": {"faces": len(strangers),
                      "best_enrol_only": max(s["enrol_only"] for s in strangers) if strangers else None,
                      "best_with_refresh": max(s["with_refresh"] for s in strangers) if strangers else None,
                      "raised": sum(s["with_refresh"] > s["enrol_only"] + 1e-6 for s in strangers),
                      "mean_rise": round(float(np.mean([s["with_refresh"] - s["enrol_only"] for s in strangers])), 4)
                      if strangers else None,
                      "accepted_only": sum(s["accepted_only"] for s in strangers),
                      "accepted_refresh": sum(s["accepted_refresh"] for s in strangers)},
        "pairs": genuine, "stranger_faces": strangers,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kiosk.bench.ageing", description=__doc__.split("\n")[0])
    ap.add_argument("--labelled", type=Path, required=True)
    ap.add_argument("--pool", type=Path, action="append", default=[])
    ap.add_argument("--exclude", action="append", default=[], help="POOLPHOTO:person/photo")
    ap.add_argument("--backend", default="sface")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = run(a.backend, a.labelled, a.pool, a.exclude)
    if a.json:
        print(json.dumps(r, ensure_ascii=False, indent=1))
    else:
        short = {k: v for k, v in r.items() if k not in ("pairs", "stranger_faces")}
        print(json.dumps(short, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
