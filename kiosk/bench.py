"""`kiosk bench`: figures, not tests. Prints one JSON object with --json.

* frame_to_identity_ms: a 640x480 frame with one real face through detect,
  quality, embed and search against a gallery of 1,000 residents, per backend.
* search_ms: FAISS search for galleries of 10^4, 10^5, 10^6 templates, the index
  type picked by size, recall@1 against exact search.
* billing: quotes per second over a store of 10,000 residents and 200,000 past orders.
* gallery_rebuild_ms: decrypting templates and building the index from the store.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .config import load_settings


def _pct(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50": round(statistics.median(xs), 3), "p95": round(xs[int(0.95 * (len(xs) - 1))], 3), "n": len(xs)}


def _unit(rng, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _camera_frame(engine, photo: Path) -> np.ndarray:
    """A 640x480 frame with the photo's face ~200 px tall, as a counter camera sees it."""
    import cv2

    from .vision.image_io import read_image
    from .vision.quality import primary_face

    img = read_image(photo)
    f = primary_face(engine.detect(img), img.shape)
    s = 200 / f.bbox[3]
    img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)))
    cx, cy = (f.bbox[0] + f.bbox[2] / 2) * s, (f.bbox[1] + f.bbox[3] / 2) * s
    frame = np.full((480, 640, 3), 110, np.uint8)
    x0, y0 = int(cx - 320), int(cy - 240)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(img.shape[1], x0 + 640), min(img.shape[0], y0 + 480)
    frame[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return frame


def bench_frames(backend: str, model_dir: Path, photo: Path, n: int = 60) -> dict:
    from .vision.engine import BACKEND_DEFAULTS, create_engine
    from .vision.gallery import FaissGallery
    from .vision.matching import decide

    import faiss

    faiss.omp_set_num_threads(1)     # as the kiosk runs it (kiosk.services.faces)
    eng = create_engine(backend, model_dir)
    frame = _camera_frame(eng, photo)
    rng = np.random.default_rng(0)
    d = eng.contract.dim
    # 1,000 residents x 3 templates. The enrolled person's template is real; the
    # others fill the index to size (search cost depends on size, not content).
    vecs = _unit(rng, 3000, d)
    own = eng.observe(frame).embedding
    vecs[0] = own
    ids = [str(uuid.uuid4()) for _ in range(3000)]
    rids = [f"R{i // 3:04d}" for i in range(3000)]
    g = FaissGallery.build(d, eng.contract.id, ids, rids, vecs)
    t = BACKEND_DEFAULTS[backend]
    total, stages = [], {"detect": [], "quality": [], "embed": [], "search": []}
    status = None
    for i in range(n + 5):
        t0 = time.perf_counter()
        obs = eng.observe(frame)
        t1 = time.perf_counter()
        m = decide(g.search(obs.embedding, 6), t.match_threshold, t.match_margin)
        t2 = time.perf_counter()
        if i >= 5:   # warm-up frames are not counted
            total.append((t2 - t0) * 1000)
            for k in ("detect", "quality", "embed"):
                stages[k].append(obs.timings_ms.get(k, 0.0))
            stages["search"].append((t2 - t1) * 1000)
        status = m.status
    return {**_pct(total), "stages_p50_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
            "gallery_templates": len(g), "match_status": status, "dim": d}


def bench_search(sizes: list[int], dim: int = 128, queries: int = 500, seed: int = 0) -> dict:
    """Templates cluster by resident (4 each, like real enrolments); queries are new
    noisy views of enrolled residents. nprobe is raised until recall@1 >= 0.99."""
    import faiss

    from .vision.gallery import FaissGallery

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
        t0 = time.perf_counter()
        g = FaissGallery.build(dim, "bench", ids, [str(o) for o in owner], vecs)
        build_s = time.perf_counter() - t0
        exact = faiss.IndexFlatIP(dim)
        exact.add(vecs)
        _, truth = exact.search(q, 1)
        from .vision.gallery import template_key
        keys = np.array([template_key(t) for t in ids], np.int64)
        truth_keys = keys[truth[:, 0]]

        def recall() -> float:
            _, got = g.search_batch(q, 1)
            return float((got[:, 0] == truth_keys).mean())

        nprobe = None
        r = recall()
        if g.kind == "ivf":
            ivf = faiss.downcast_index(g._index.index)
            for nprobe in (4, 8, 16, 32, 64, 128, 256):
                if nprobe > ivf.nlist:
                    break
                g.set_nprobe(nprobe)
                r = recall()
                if r >= 0.99:
                    break
        faiss.omp_set_num_threads(1)   # one query at a time, as at the counter
        times = []
        for i in range(queries):
            t0 = time.perf_counter()
            g.search(q[i], 5)
            times.append((time.perf_counter() - t0) * 1000)
        faiss.omp_set_num_threads(threads)
        out[str(n)] = {"p50": round(statistics.median(times), 4), "p95": round(sorted(times)[int(0.95 * (queries - 1))], 4),
                       "recall_at_1": round(r, 4), "index": g.kind, "nprobe": nprobe, "build_s": round(build_s, 2),
                       "dim": dim}
    return out


def bench_billing(residents: int = 10_000, orders: int = 200_000, quotes: int = 2000) -> dict:
    from sqlalchemy import insert

    from .db.models import LedgerEntry, MenuItem, Order, OrderLine, Resident
    from .services.context import App
    from .services.importing import import_policy
    from .services.security import generate_key

    tmp = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    s = load_settings(home=tmp / "home", template_key=generate_key())
    app = App(s)
    from .demo import FORMATS

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
    t0 = time.perf_counter()
    lat = []
    for _ in range(quotes):
        q0 = time.perf_counter()
        app.billing.quote(f"R{rnd.randrange(residents):05d}", rnd.sample(dishes, 3), at=at)
        lat.append((time.perf_counter() - q0) * 1000)
    el = time.perf_counter() - t0
    return {"residents": residents, "orders": orders, "quotes": quotes, "quotes_per_s": round(quotes / el, 1),
            "quote_ms": _pct(lat), "setup_s": round(setup_s, 1), "store": "sqlite-wal"}


def bench_rebuild(model_dir: Path, sizes: list[int]) -> dict:
    """Decrypt N templates and build the gallery, as a restart does (the index file aside)."""
    from .services.security import TemplateCipher, generate_key
    from .vision.gallery import FaissGallery

    c = TemplateCipher(generate_key())
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        blobs = [c.encrypt(v.tobytes()) for v in _unit(rng, n, 128)]
        ids = [str(uuid.uuid4()) for _ in range(n)]
        t0 = time.perf_counter()
        vecs = np.vstack([np.frombuffer(c.decrypt(b), np.float32) for b in blobs])
        FaissGallery.build(128, "bench", ids, [f"R{i // 4}" for i in range(n)], vecs)
        out[str(n)] = round((time.perf_counter() - t0) * 1000, 1)
    return out
