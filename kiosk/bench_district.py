"""`kiosk bench --sections district`: the district server on PostgreSQL.

* push: orders accepted per second by a real `kiosk server` process from 20 concurrent
  terminals (threads, one token each, each pushing its outbox in batches as the sync
  loop does), latency per push request, and a check that every order is stored once;
* pull: a new terminal's first sync of a district of 10^5 residents with one template
  each (decrypted by the server, encrypted again by the terminal, upserted);
* idle: the cost of a sync round when nothing changed (requests, bytes, time).

The district is built with bulk inserts (rows as the importers and services write
them). Template payloads are random unit vectors of the sface size: this measures
transport and storage, no identification is decided from them. PostgreSQL is a
throwaway cluster in a temporary folder (the binaries install.sh --test installs).
"""
from __future__ import annotations

import base64
import glob
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

KIOSK = [sys.executable, "-m", "kiosk.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_missing() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "the PostgreSQL server is not installed (bash install.sh --test installs it)"
    return None


class _Cluster:
    def __init__(self) -> None:
        self.bindir = os.path.dirname(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1])
        self.base = Path(tempfile.mkdtemp(prefix="kiosk-bench-pg-"))
        self.sock = self.base / "sock"
        self.sock.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        subprocess.run(self.as_user + [f"{self.bindir}/initdb", "-D", str(self.base / "data"), "-A", "trust", "-U",
                                       "kiosk", "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
        subprocess.run(self.as_user + [f"{self.bindir}/pg_ctl", "-D", str(self.base / "data"), "-w", "-l",
                                       str(self.base / "log"), "-o",
                                       f"-k {self.sock} -p {self.port} -c listen_addresses='' "
                                       f"-c max_connections=200 -c shared_buffers=256MB", "start"],
                       check=True, capture_output=True)
        subprocess.run(self.as_user + [f"{self.bindir}/createdb", "-h", str(self.sock), "-p", str(self.port),
                                       "-U", "kiosk", "kiosk"], check=True, capture_output=True)
        self.url = f"postgresql+psycopg://kiosk@/kiosk?host={self.sock}&port={self.port}"

    def stop(self) -> None:
        subprocess.run(self.as_user + [f"{self.bindir}/pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def _build_district(app, residents: int, canteens: list[str], day) -> dict:
    """Residents with consent and one template each, a policy, each canteen's menu of ``day``."""
    from sqlalchemy import insert

    from .db.models import Canteen, FaceConsent, FaceTemplate, MenuItem, Resident, SubsidyPolicy
    from .demo import FORMATS
    from .services.importing import import_policy

    import_policy(app, FORMATS / "policy.example.yaml")
    rng = np.random.default_rng(0)
    now = datetime.now(timezone.utc)
    cipher = app.cipher
    menus: dict[str, list[dict]] = {}
    with app.db.engine.begin() as c:
        c.execute(insert(Canteen), [{"id": cid, "name": f"食堂{cid}", "district": "武侯区", "created_at": now}
                                    for cid in canteens])
        rows = []
        for cid in canteens:
            for k, (price, name) in enumerate([(1200, "清蒸鲈鱼"), (600, "番茄炒蛋"), (1000, "回锅肉"),
                                               (400, "清炒时蔬"), (100, "米饭")]):
                rows.append({"id": str(uuid.uuid4()), "canteen_id": cid, "menu_date": day, "meal": "午餐",
                             "dish_id": f"D{k + 1:03d}", "name": name, "price_fen": price, "category": None,
                             "tags": [], "allergens": [], "portions": None})
        c.execute(insert(MenuItem), rows)
        for r in rows:
            menus.setdefault(r["canteen_id"], []).append(r)
        step = 5000
        for i in range(0, residents, step):
            n = min(step, residents - i)
            rids = [f"R{j:07d}" for j in range(i, i + n)]
            c.execute(insert(Resident), [{
                "id": rid, "name": f"居民{j}", "id_number": None, "birth_date": datetime(1940 + j % 25, 1 + j % 12, 1).date(),
                "sex": "女" if j % 2 else "男", "hukou": "武侯区", "phone": f"138{j:08d}", "categories": [],
                "diet_tags": [], "allergies": [], "card_no": f"ZL{j:07d}", "emergency_contact": None,
                "status": "active", "created_at": now, "updated_at": now} for j, rid in zip(range(i, i + n), rids)])
            c.execute(insert(FaceConsent), [{
                "id": str(uuid.uuid4()), "resident_id": rid, "given_by": "self", "guardian_name": None,
                "staff_id": "ADM", "text_version": "face-consent-2026.1", "allows_crop": False, "source": "desk",
                "created_at": now, "withdrawn_at": None} for rid in rids])
            vecs = rng.normal(size=(n, 128)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            c.execute(insert(FaceTemplate), [{
                "id": str(uuid.uuid4()), "resident_id": rid, "contract_id": "bench-synthetic-128",
                "backend": "sface", "embedding_enc": cipher.encrypt(v.tobytes()), "crop_enc": None,
                "quality": 0.9, "source": "enroll", "created_at": now} for rid, v in zip(rids, vecs)])
    with app.db.session() as s:
        from sqlalchemy import select
        policy_row = s.scalar(select(SubsidyPolicy.id))
    return {"menus": menus, "policy_row_id": policy_row}


def _order_op(rid: str, canteen: str, menu: list[dict], policy_row_id: str, day, rnd: random.Random) -> dict:
    """One outbox op as a terminal's settle writes it (order, lines, ledger entries)."""
    picks = rnd.sample(menu, 2)
    total = sum(m["price_fen"] for m in picks)
    subsidy = min(500, total)
    oid = str(uuid.uuid4())
    now = datetime.now(timezone.utc).isoformat()
    order = {"id": oid, "idempotency_key": uuid.uuid4().hex, "resident_id": rid, "canteen_id": canteen,
             "terminal_id": None, "meal_date": day.isoformat(), "meal": "午餐", "total_fen": total,
             "subsidy_fen": subsidy, "to_pay_fen": total - subsidy, "pay_method": "cash", "tier": "八十岁及以上",
             "reason": "八十岁及以上，每餐补贴5.00元", "policy_row_id": policy_row_id, "identified_by": "face",
             "created_at": now}
    lines = [{"id": str(uuid.uuid4()), "order_id": oid, "menu_item_id": m["id"], "dish_id": m["dish_id"],
              "name": m["name"], "quantity": 1, "price_fen": m["price_fen"]} for m in picks]
    ledger = [{"id": str(uuid.uuid4()), "resident_id": rid, "order_id": oid, "kind": k, "method": meth,
               "amount_fen": amt, "affects_balance": False, "payer": None, "staff_id": None, "note": None,
               "created_at": now}
              for k, meth, amt in (("charge", None, total), ("subsidy", None, subsidy), ("payment", "cash", total - subsidy))]
    return {"op_id": str(uuid.uuid4()), "kind": "order.settle", "created_at": now,
            "payload": {"ops": [{"kind": "order.settle", "order_id": oid, "resident_id": rid}],
                        "rows": {"orders": [order], "order_lines": lines, "ledger_entries": ledger}, "deleted": {}}}


def _server(env: dict, port: int, workers: int = 1) -> subprocess.Popen:
    import httpx

    p = subprocess.Popen(KIOSK + ["server", "--port", str(port), "--workers", str(workers)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    p.stdout.readline()
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/ping", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _push_round(url: str, tokens: dict, plans: dict, batch: int) -> dict:
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(plans) + 1)

    def terminal(c: str) -> None:
        with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {tokens[c]}"},
                          timeout=120) as h:
            ops = plans[c]
            start.wait()
            for i in range(0, len(ops), batch):
                t = time.perf_counter()
                r = h.post("/push", json={"ops": ops[i:i + batch]})
                dt = (time.perf_counter() - t) * 1000
                with lock:
                    lat.append(dt)
                    if r.status_code != 200:
                        errors.append(f"{c}: HTTP {r.status_code} {r.text[:200]}")
                    else:
                        bad = [x for x in r.json()["results"] if x["status"] != "applied"]
                        if bad:
                            errors.append(f"{c}: {bad[0]}")

    threads = [threading.Thread(target=terminal, args=(c,)) for c in plans]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    n = sum(len(p) for p in plans.values())
    lat.sort()
    return {"orders": n, "requests": len(lat), "seconds": round(wall, 2), "orders_per_s": round(n / wall),
            "request_ms_p50": round(lat[len(lat) // 2], 1), "request_ms_p99": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1),
            "errors": errors[:3]}


def bench_district(residents: int = 100_000, terminals: int = 20, orders_per_terminal: int = 500,
                   batches: tuple[int, ...] = (10, 200), workers: int | None = None, say=lambda m: None) -> dict:
    missing = postgres_missing()
    if missing:
        return {"skipped": missing}
    import httpx

    from .config import load_settings
    from .server.auth import add_terminal
    from .services.context import App
    from .services.security import generate_key
    from .sync.client import SyncClient
    from .timeutil import now_cst

    root = Path(tempfile.mkdtemp(prefix="kiosk-bench-district-"))
    cluster = _Cluster()
    proc = None
    out: dict = {"residents": residents, "terminals": terminals, "cpus": os.cpu_count(),
                 "load_avg_at_start": [round(x, 1) for x in os.getloadavg()]}
    try:
        key = generate_key()
        canteens = [f"C{i + 1:02d}" for i in range(terminals)]
        day = now_cst().date()
        sapp = App(load_settings(home=root / "server", template_key=key, database_url=cluster.url))
        say(f"district: building {residents} residents with templates on PostgreSQL ...")
        t0 = time.perf_counter()
        built = _build_district(sapp, residents, canteens, day)
        out["build_s"] = round(time.perf_counter() - t0, 1)
        tokens = {c: add_terminal(sapp, c)[1] for c in canteens}
        sapp.close()
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_") or k == "KIOSK_MODEL_DIR"}
        env.update(KIOSK_HOME=str(root / "server"), KIOSK_TEMPLATE_KEY=key, KIOSK_DATABASE_URL=cluster.url,
                   KIOSK_AUDIO="off")
        workers = workers or min(4, os.cpu_count() or 1)
        out["server_workers"] = workers
        proc = _server(env, port, workers)

        # -- a new terminal pulls the whole district -------------------------------------
        say("district: a new terminal pulls everything ...")
        tapp = App(load_settings(home=root / "term", template_key=generate_key(), server_url=url,
                                 server_token=tokens[canteens[0]]))
        client = SyncClient(tapp, timeout=120)
        t0 = time.perf_counter()
        rep = client.sync()
        pull_s = time.perf_counter() - t0
        from sqlalchemy import func, select

        from .db.models import FaceTemplate, Resident
        with tapp.db.session() as s:
            n_res = s.scalar(select(func.count()).select_from(Resident))
            n_tpl = s.scalar(select(func.count()).select_from(FaceTemplate))
        out["new_terminal_pull"] = {"seconds": round(pull_s, 1), "records": rep.pulled, "residents": n_res,
                                    "templates": n_tpl, "goal_s": 60}

        # -- a sync round when nothing changed ------------------------------------------------
        counts = {"requests": 0, "bytes": 0}

        def on_response(r):
            r.read()
            counts["requests"] += 1
            counts["bytes"] += len(r.content) + len(r.request.content or b"")
        client.http.event_hooks["response"] = [on_response]
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            client.sync()
            times.append((time.perf_counter() - t0) * 1000)
        out["idle_sync"] = {"requests_per_round": counts["requests"] / 20, "bytes_per_round": counts["bytes"] // 20,
                            "ms_p50": round(statistics.median(times), 1), "ms_max": round(max(times), 1)}
        client.close()
        tapp.close()

        # -- 20 terminals push at once: small batches (a sync round at lunch) and full ones
        # (a terminal's backlog after the network was down: the client pushes up to 200 at once)
        from sqlalchemy import func, select

        from .db.models import DistrictFlag, Order
        rnd = random.Random(1)
        total = terminals * orders_per_terminal
        # one lunch per elder (a district's lunch hour); elders beyond the roster eat twice (flagged)
        who = rnd.sample(range(residents), min(2 * total, residents)) + [
            rnd.randrange(residents) for _ in range(max(0, 2 * total - residents))]
        out["push"] = {}
        for round_no, size in enumerate(batches):
            say(f"district: {terminals} terminals push {orders_per_terminal} orders each in batches of {size} ...")
            base = round_no * total
            plans = {c: [_order_op(f"R{who[base + k * orders_per_terminal + i]:07d}", c, built["menus"][c],
                                   built["policy_row_id"], day, rnd)
                         for i in range(orders_per_terminal)] for k, c in enumerate(canteens)}
            out["push"][f"batch_{size}"] = _push_round(url, tokens, plans, size)
        sapp = App(load_settings(home=root / "server", template_key=key, database_url=cluster.url))
        with sapp.db.session() as s:
            stored = s.scalar(select(func.count()).select_from(Order))
            distinct = s.scalar(select(func.count(func.distinct(Order.id))))
            flags = s.scalar(select(func.count()).select_from(DistrictFlag))
        sapp.close()
        # none lost, none twice; the same batch again is answered "duplicate"
        with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {tokens[canteens[0]]}"}) as h:
            again = h.post("/push", json={"ops": plans[canteens[0]][:10]}).json()["results"]
        out["push"].update({"sent": total * len(batches), "stored": stored, "distinct": distinct, "flagged": flags,
                            "repeat_batch": sorted({x["status"] for x in again}),
                            "goal": ">= 1000 orders/s, p99 < 200 ms"})
        return out
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:   # python -m kiosk.bench_district [residents]
    import json

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(bench_district(residents=n, say=lambda m: print(m, file=sys.stderr, flush=True)),
                     ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
