"""`kiosk bench --sections district`: the district server on PostgreSQL.

* push: a real `kiosk server` process (its workers), PostgreSQL and 20 terminal clients
  (threads of this process, one token and one keep-alive connection each), all on this
  machine, so they share its cores. Three rounds:
  (a) closed loop: every terminal sends its batches of 10 back to back: the most orders
      per second the server takes. With N terminals always waiting, Little's law makes
      mean latency = N / requests per second, so this round's latency is not the goal's;
  (b) open loop at the goal rate: each terminal sends a batch of 10 every 200 ms, as a
      sync loop does (20 terminals: 1,000 orders/s offered), each on its own random
      phase; latency from the moment the batch was due (a push waiting behind the
      terminal's previous one counts its wait);
  (c) a backlog: batches of 200, as a terminal pushes its outbox after an outage.
  Some elders eat at two canteens pushing at the same time; afterwards every order must
  be stored once, and the double subsidies flagged exactly (Σ max(0, meals - 1)).
  CPU seconds of the clients, the server, PostgreSQL and everything else are reported.
* pull: a new terminal's first sync of a district of 10^5 residents with one template
  each (decrypted by the server, encrypted again by the terminal, upserted);
* idle: the cost of a sync round when nothing changed (requests, bytes, time).

The district is built with bulk inserts (rows as the importers and services write
them). Template payloads are random unit vectors of the sface size: this measures
transport and storage, no identification is decided from them. PostgreSQL is a
throwaway cluster in a temporary folder (kiosk.bench.pgcluster, the binaries install.sh
--test installs; the tests use the same class).
"""
from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from kiosk.bench.pgcluster import PostgresCluster, free_port, postgres_missing

KIOSK = [sys.executable, "-m", "kiosk.cli.main"]


def _build_district(app, residents: int, canteens: list[str], day) -> dict:
    """Residents with consent and one template each, a policy, each canteen's menu of ``day``."""
    from sqlalchemy import insert

    from kiosk.db.models import Canteen, FaceConsent, FaceTemplate, MenuItem, Resident, SubsidyPolicy
    from kiosk.terminal.demo import FORMATS
    from kiosk.services.importing import import_policy

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
                "id": rid, "name": f"居民{j}", "id_number": None, "birth_date": datetime(1940 + j % 6, 1 + j % 12, 1).date(),
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
    """One outbox op as a terminal's settle writes it (order, lines, ledger entries). The bench's
    residents are all 80 or older (``_build_district``): 八十岁及以上, 5.00 元 a meal, the tier the
    server derives for them (kiosk.district.domain.derive)."""
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


# -- CPU accounting (Linux /proc): who used the shared cores during a round ---------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                st = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # utime + stime, and cutime + cstime: the children it waited for (PostgreSQL backends
        # that ended during the round are counted in the postmaster's)
        out[int(d)] = (int(st[1]), (int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])) / _TICK)
    return out


def _tree_cpu(table: dict, root: int | None) -> float:
    if root is None or root not in table:
        return 0.0
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += table[pid][1]
        todo += kids.get(pid, [])
    return total


def _machine_busy() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / _TICK      # all but idle and iowait


class _CPU:
    """CPU seconds of this process (the clients), the server's process tree, PostgreSQL's and
    the rest of the machine between start() and stop()."""

    def __init__(self, server_pid: int, pg_pid: int | None) -> None:
        self.server_pid, self.pg_pid = server_pid, pg_pid

    def _snap(self) -> tuple[float, float, float, float]:
        t = _proc_table()
        return (time.process_time(), _tree_cpu(t, self.server_pid), _tree_cpu(t, self.pg_pid), _machine_busy())

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.a = self._snap()

    def stop(self) -> dict:
        b = self._snap()
        wall = time.perf_counter() - self.t0
        client, server, pg, busy = (y - x for x, y in zip(self.a, b))
        return {"wall_s": round(wall, 1), "clients": round(client, 1), "server": round(server, 1),
                "postgres": round(pg, 1), "other_processes": round(max(0.0, busy - client - server - pg), 1),
                "cores": os.cpu_count()}


# -- pushing -------------------------------------------------------------------------------------

def _plans(canteens: list[str], per_terminal: int, pool: list[int], built: dict, day, rnd: random.Random,
           shared_every: int = 50) -> dict[str, list[dict]]:
    """Each terminal's orders, one elder each from ``pool`` (consumed); every
    ``shared_every``-th order of an odd terminal is for the elder the terminal before it
    serves at the same place in its outbox: both canteens push that elder at about the
    same moment (a double subsidy the server must flag, whichever push comes first)."""
    who = {c: [pool.pop() for _ in range(per_terminal)] for c in canteens}
    for k in range(1, len(canteens), 2):
        for i in range(0, per_terminal, shared_every):
            who[canteens[k]][i] = who[canteens[k - 1]][i]
    return {c: [_order_op(f"R{who[c][i]:07d}", c, built["menus"][c], built["policy_row_id"], day, rnd)
                for i in range(per_terminal)] for c in canteens}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, max(0, int(round(q * len(xs))) - 1))], 1) if xs else 0.0


def _push_round(port: int, tokens: dict, plans: dict, batch: int, *, period_s: float | None = None,
                cpu: _CPU | None = None, seed: int = 7) -> dict:
    """Every terminal pushes its plan in batches of ``batch``: back to back (closed loop,
    ``period_s`` None) or one batch every ``period_s`` seconds from a random phase (open
    loop). Request bodies are encoded before the clock starts (a real terminal is another
    machine; here its CPU would be taken from the server). Latency in ms: ``request`` from
    send to reply; open loop also ``from_due``, from the moment the batch was due."""
    import http.client

    import orjson

    bodies = {c: [orjson.dumps({"ops": ops[i:i + batch]}) for i in range(0, len(ops), batch)]
              for c, ops in plans.items()}
    rnd = random.Random(seed)
    phase = {c: rnd.uniform(0, period_s or 0) for c in plans}
    req: list[float] = []
    due_lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(plans) + 1)
    t0 = [0.0]

    def terminal(c: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        head = {"Authorization": f"Bearer {tokens[c]}", "Content-Type": "application/json"}
        mine_req, mine_due, mine_err = [], [], []
        start.wait()
        for j, body in enumerate(bodies[c]):
            due = None
            if period_s is not None:
                due = t0[0] + phase[c] + j * period_s
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            t = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/push", body=body,
                             headers={**head, "X-Kiosk-Pending": str(len(bodies[c]) - j)})
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as exc:
                mine_err.append(f"{c}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            done = time.perf_counter()
            mine_req.append((done - t) * 1000)
            if due is not None:
                mine_due.append((done - due) * 1000)
            if r.status != 200:
                mine_err.append(f"{c}: HTTP {r.status} {data[:200]!r}")
                continue
            bad = [x for x in orjson.loads(data)["results"] if x["status"] != "applied"]
            if bad:
                mine_err.append(f"{c}: {bad[0]}")
        conn.close()
        with lock:
            req.extend(mine_req)
            due_lat.extend(mine_due)
            errors.extend(mine_err)

    threads = [threading.Thread(target=terminal, args=(c,)) for c in plans]
    for t in threads:
        t.start()
    if cpu is not None:
        cpu.start()
    t0[0] = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0[0]
    n = sum(len(p) for p in plans.values())
    out = {"terminals": len(plans), "batch": batch, "orders": n, "requests": len(req), "seconds": round(wall, 2),
           "orders_per_s": round(n / wall), "request_ms_p50": _pct(req, 0.5), "request_ms_p99": _pct(req, 0.99),
           "request_ms_max": _pct(req, 1.0)}
    if period_s is not None:
        out.update({"offered_orders_per_s": round(len(plans) * batch / period_s),
                    "from_due_ms_p50": _pct(due_lat, 0.5), "from_due_ms_p99": _pct(due_lat, 0.99),
                    "from_due_ms_max": _pct(due_lat, 1.0)})
    else:
        out["mean_ms_by_littles_law"] = round(len(plans) / (len(req) / wall) * 1000, 1) if req else None
    if cpu is not None:
        out["cpu_s"] = cpu.stop()
    out["errors"] = errors[:3]
    out["error_count"] = len(errors)
    return out


def bench_district(residents: int = 100_000, terminals: int = 20, orders_per_terminal: int = 500,
                   workers: int | None = None, say=lambda m: None) -> dict:
    """The district figures (see the module's docstring). ``orders_per_terminal``: the
    closed-loop and backlog rounds; the open-loop round runs twice as long."""
    missing = postgres_missing()
    if missing:
        return {"skipped": missing}
    import httpx
    import orjson

    from kiosk.config import load_settings
    from kiosk.district.domain.terminals import add_terminal
    from kiosk.services.context import App
    from kiosk.services.security import generate_key
    from kiosk.terminal.sync.client import SyncClient
    from kiosk.timeutil import now_cst

    root = Path(tempfile.mkdtemp(prefix="kiosk-bench-district-"))
    cluster = PostgresCluster(prefix="kiosk-bench-pg-", settings={"shared_buffers": "256MB"})
    proc = None
    out: dict = {"residents": residents, "terminals": terminals, "cpus": os.cpu_count(),
                 "load_avg_at_start": [round(x, 1) for x in os.getloadavg()],
                 "postgres": "throwaway cluster on this machine, fsync on, synchronous_commit on",
                 "shared": "server, PostgreSQL and the terminal clients run on this machine's cores"}
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
        port = free_port()
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

        from kiosk.db.models import FaceTemplate, Resident
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

        # -- 20 terminals push ----------------------------------------------------------------
        from collections import Counter

        from kiosk.db.models import DistrictFlag, Order
        rnd = random.Random(1)
        pool = list(range(residents))
        rnd.shuffle(pool)
        cpu = _CPU(proc.pid, cluster.postmaster_pid())
        rounds = [("closed_loop_batch_10", 10, orders_per_terminal, None),
                  ("open_loop_1000_per_s_batch_10", 10, 2 * orders_per_terminal, 10 * terminals / 1000),
                  ("backlog_batch_200", 200, orders_per_terminal, None)]
        out["push"] = {}
        sent: Counter = Counter()
        every = []
        for name, size, n, period in rounds:
            if len(pool) < terminals * n:          # a small district: elders come back (more flags, counted)
                pool += rnd.sample(range(residents), min(residents, terminals * n - len(pool)))
            plans = _plans(canteens, n, pool, built, day, rnd)
            for ops in plans.values():
                sent.update(op["payload"]["rows"]["orders"][0]["resident_id"] for op in ops)
                every += ops[:1]
            say(f"district: {name}: {terminals} terminals x {n} orders in batches of {size}"
                + (f", one batch every {period * 1000:.0f} ms each" if period else ", back to back") + " ...")
            out["push"][name] = _push_round(port, tokens, plans, size, period_s=period, cpu=cpu)
        sapp = App(load_settings(home=root / "server", template_key=key, database_url=cluster.url))
        with sapp.db.session() as s:
            stored = s.scalar(select(func.count()).select_from(Order))
            distinct = s.scalar(select(func.count(func.distinct(Order.id))))
            flags = s.scalar(select(func.count()).select_from(DistrictFlag).where(DistrictFlag.kind == "daily_meals"))
            other_flags = s.scalar(select(func.count()).select_from(DistrictFlag).where(DistrictFlag.kind != "daily_meals"))
        sapp.close()
        # none lost, none twice; the same ops again are answered "duplicate"
        with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {tokens[canteens[0]]}",
                                                             "Content-Type": "application/json"}) as h:
            again = h.post("/push", content=orjson.dumps({"ops": every})).json()["results"]
        out["push"].update({"sent": sum(sent.values()), "stored": stored, "distinct": distinct,
                            "flagged_double_subsidy": flags,
                            "expected_flags": sum(max(0, c - 1) for c in sent.values()),
                            "other_flags": other_flags,
                            "repeat_pushed": sorted({x["status"] for x in again}),
                            "goal": ">= 1000 orders/s, p99 < 200 ms, none lost or duplicated"})
        out["load_avg_at_end"] = [round(x, 1) for x in os.getloadavg()]
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


def main() -> None:   # python -m kiosk.bench.district [residents [orders_per_terminal]]
    import json

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    print(json.dumps(bench_district(residents=n, orders_per_terminal=per,
                                    say=lambda m: print(m, file=sys.stderr, flush=True)),
                     ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
