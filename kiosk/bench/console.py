"""`kiosk bench --sections console`: the district office's reads at full size on PostgreSQL.

A district of 10^5 residents and 3x10^6 orders over one calendar month (plus two order
lines per order, the month's menus, 报餐 bookings, flags, quarantined pushes and an audit
log) is built once in a PostgreSQL cluster kept under a data folder
(``--bench-data`` or $KIOSK_BENCH_DATA, default ``/var/tmp/kiosk-bench``; built again only when its parameters
change; a newer schema is migrated onto it), with SQL (``generate_series``), not the ORM: about
three minutes on two cores. Then:

* the monthly report (``monthly_subsidy``, what `kiosk report monthly --json` prints, and
  ``monthly_table``, what the console and the PDF/xlsx show) and the anomaly scan
  (``anomalies.scan``, `kiosk report anomalies --json`), each timed ``runs`` times;
* every console page (GET, logged in as the admin), ``requests`` times each through a
  real `kiosk server` process (one worker) over HTTP, giving p50 / p95 / max, once the
  server's warm-up pass has computed this and last month's pages (its time is reported:
  ``warm_up``). The bench month is the last full month, so it is among them.

The residents: ages 66 to 96 (about half 80 or older), 90 % with a face template, 5 %
living alone (关爱巡访), 0.3 % with a status (死亡, 迁出, 暂停) dated mid-month. Their
meals: a lunch on 3 days of 4 and a dinner on 1 day of 4 at their own canteen (one of
300, one terminal each), 1 in 200 at the next canteen; 92 % of enrolled elders' checkouts
by face. A few leads of each anomaly kind are seeded (two canteens within minutes, a burst
of staff checkouts, a canteen where enrolled elders rarely use their face, 80+ elders
whose face checkouts never pass liveness); the dead keep eating (after_status)."""
from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from kiosk.bench.pgcluster import PostgresCluster, free_port, postgres_missing

ADMIN, ADMIN_PASSWORD = "A1", "bench-admin-console-2026"
DEFAULT_DATA = Path("/var/tmp/kiosk-bench")   # synthetic data only; kept across runs (and reboots)
SCHEMA_VERSION = 1          # bump when the generated data changes shape


def _params(residents: int, canteens: int, month: date) -> dict:
    """What the kept district was built for (a change builds it again). The schema is not
    among them: the district is brought to the code's schema when it is opened (alembic)."""
    return {"residents": residents, "canteens": canteens, "month": month.strftime("%Y-%m"),
            "data_version": SCHEMA_VERSION}


def default_month(today: date | None = None) -> date:
    """The last full calendar month before ``today`` (its 1st)."""
    from kiosk.timeutil import now_cst

    today = today or now_cst().date()
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def _sql_build(conn, residents: int, canteens: int, first: date, last: date, say) -> None:
    """The bulk of the district, in SQL. ``conn``: a SQLAlchemy connection in a transaction."""
    from sqlalchemy import text

    days = (last - first).days + 1
    p = {"n": residents, "nc": canteens, "first": first, "days": days,
         "old80": first.replace(year=first.year - 80)}

    def run(what: str, sql: str) -> None:
        t0 = time.perf_counter()
        r = conn.execute(text(sql), p)
        say(f"console data: {what}: {r.rowcount if r.rowcount is not None else '?'} rows "
            f"in {time.perf_counter() - t0:.1f} s")

    conn.execute(text("SET session_replication_role = replica"))        # no FK triggers while loading
    conn.execute(text("SET LOCAL synchronous_commit = off"))
    conn.execute(text("CREATE OR REPLACE FUNCTION pg_temp.h(bigint) RETURNS int LANGUAGE sql IMMUTABLE "
                      "AS 'SELECT hashint8($1) & 2147483647'"))
    run("canteens", """
        INSERT INTO canteens (id, name, district, meal_windows, created_at)
        SELECT 'C' || lpad(c::text, 3, '0'), '长寿食堂第' || c || '站', '武侯区', NULL, now()
        FROM generate_series(1, :nc) c""")
    run("terminals", """
        INSERT INTO terminals (id, canteen_id, name, created_at, last_push_at, last_pull_at, pending,
                               software_version, model, camera_state, disk_free_bytes)
        SELECT 'T-C' || lpad(c::text, 3, '0'), 'C' || lpad(c::text, 3, '0'), '一号机', now() - interval '60 days',
               now() - (c % 7) * interval '1 minute', now() - (c % 5) * interval '1 minute', c % 3, '1.0',
               'sface', 'live', 20 * 1024::bigint ^ 3
        FROM generate_series(1, :nc) c""")
    # residents: R0000000.. ; the same expressions give each resident's attributes to the orders below
    run("residents", """
        INSERT INTO residents (id, name, id_number, birth_date, sex, hukou, phone, categories, diet_tags,
                               allergies, card_no, emergency_contact, status, roster_status, status_date,
                               created_at, updated_at)
        SELECT 'R' || lpad(r::text, 7, '0'), '居民' || r, '510107' || lpad(r::text, 8, '0') || '1234',
               date '1926-01-01' + pg_temp.h(r) % 10950, CASE WHEN r % 2 = 1 THEN '女' ELSE '男' END, '武侯区',
               '138' || lpad(r::text, 8, '0'),
               CASE WHEN r % 20 = 0 THEN '["独居"]' ELSE '[]' END::json, '[]'::json, '[]'::json,
               'ZL' || lpad(r::text, 7, '0'), NULL, 'active',
               CASE r % 1000 WHEN 7 THEN 'deceased' WHEN 13 THEN 'moved' WHEN 21 THEN 'suspended'
                    ELSE 'registered' END,
               CASE WHEN r % 1000 IN (7, 13, 21) THEN CAST(:first AS date) + 9 + r % 15 END,
               now() - interval '400 days', now() - interval '400 days'
        FROM generate_series(0, :n - 1) r""")
    conn.execute(text("CREATE TEMP TABLE br ON COMMIT DROP AS SELECT substr(id, 2)::int AS r, id AS rid, "
                      "birth_date <= :old80 AS old, substr(id, 2)::int % :nc AS home, "
                      "substr(id, 2)::int % 10 <> 9 AS enrolled, roster_status AS st, status_date AS sd "
                      "FROM residents"), p)
    run("face consents", """
        INSERT INTO face_consents (id, resident_id, given_by, guardian_name, staff_id, text_version, allows_crop,
                                   source, created_at, withdrawn_at)
        SELECT gen_random_uuid()::text, rid, 'self', NULL, 'A1', 'face-consent-2026.1', false, 'desk',
               now() - interval '300 days' + (r % 200) * interval '1 day', NULL
        FROM br WHERE enrolled""")
    run("face templates", """
        INSERT INTO face_templates (id, resident_id, contract_id, backend, embedding_enc, crop_enc, quality,
                                    source, created_at)
        SELECT gen_random_uuid()::text, rid, 'bench-synthetic-128', 'sface', :blob, NULL, 0.9, 'enroll',
               now() - interval '300 days' + (r % 200) * interval '1 day'
        FROM br WHERE enrolled""".replace(":blob", "decode(repeat('ab', 560), 'hex')"))
    run("menus", """
        INSERT INTO menu_items (id, canteen_id, menu_date, meal, dish_id, name, price_fen, category, tags,
                                allergens, portions)
        SELECT gen_random_uuid()::text, 'C' || lpad(c::text, 3, '0'), CAST(:first AS date) + d, m.meal,
               'D00' || k, (ARRAY['清蒸鲈鱼', '番茄炒蛋', '回锅肉', '清炒时蔬', '米饭'])[k],
               (ARRAY[1200, 600, 1000, 400, 100])[k], NULL, '[]'::json, '[]'::json, NULL
        FROM generate_series(1, :nc) c, generate_series(0, :days - 1) d, (VALUES ('午餐'), ('晚餐')) m(meal),
             generate_series(1, 5) k""")
    # orders: k 0 = lunch (3 days of 4), 1 = dinner (1 of 4), 2 = a second lunch at the next canteen
    # 10 minutes later (20 residents, 1 day in 7: too_close); h0..h5: independent hashes of the meal
    run("orders", """
        INSERT INTO orders (id, idempotency_key, resident_id, canteen_id, terminal_id, meal_date, meal, total_fen,
                            subsidy_fen, to_pay_fen, pay_method, tier, reason, policy_row_id, identified_by,
                            created_at, face_verified, liveness_passed)
        SELECT gen_random_uuid()::text, 'bench-' || x.r || '-' || x.d || '-' || x.k, x.rid, x.cid,
               'T-' || x.cid, x.day, x.meal, x.total, x.sub, x.total - x.sub,
               CASE WHEN x.h3 % 10 < 6 THEN 'balance' ELSE 'cash' END,
               CASE WHEN x.sub > 0 THEN x.tier END,
               CASE WHEN x.sub > 0 THEN x.tier || '，每餐补贴' || (x.sub / 100) || '.00元' ELSE '不补贴' END,
               NULL, x.how, x.at, x.how = 'face', CASE WHEN x.how = 'face' THEN x.live END
        FROM (
          SELECT y.*, (y.how <> 'face' OR NOT (y.old AND y.r % 3000 = 5) AND y.h4 % 50 <> 0) AS live,
                 CASE WHEN y.st = 'suspended' AND y.day >= y.sd THEN 0 WHEN y.old THEN 500 ELSE 300 END AS sub,
                 CASE WHEN y.old THEN '八十岁及以上' ELSE '六十至七十九岁' END AS tier
          FROM (
            SELECT b.r, b.rid, b.old, b.st, b.sd, m.k, dd.d, CAST(:first AS date) + dd.d AS day,
                   CASE WHEN m.k = 1 THEN '晚餐' ELSE '午餐' END AS meal,
                   'C' || lpad((1 + (b.home + CASE WHEN m.k = 2 OR pg_temp.h(hh.base + 1) % 200 = 0 THEN 1 ELSE 0 END)
                                % :nc)::text, 3, '0') AS cid,
                   1200 + (pg_temp.h(hh.base + 2) % 5) * 100 AS total,
                   pg_temp.h(hh.base + 3) AS h3, pg_temp.h(hh.base + 4) AS h4,
                   CASE WHEN m.k = 2 THEN 'card'
                        WHEN b.enrolled AND pg_temp.h(hh.base + 5) % 100 < CASE WHEN b.home = 6 THEN 55 ELSE 92 END
                             THEN 'face'
                        ELSE (ARRAY['card', 'card', 'card', 'phone', 'staff'])[1 + pg_temp.h(hh.base + 6) % 5] END AS how,
                   (CAST(:first AS date) + dd.d)::timestamp AT TIME ZONE 'Asia/Shanghai'
                     + CASE WHEN m.k = 1 THEN interval '17 hours' ELSE interval '11 hours' END
                     + (pg_temp.h(hh.base0) % 5400) * interval '1 second'
                     + CASE WHEN m.k = 2 THEN interval '10 minutes' ELSE interval '0' END AS at
            FROM br b CROSS JOIN generate_series(0, :days - 1) dd(d) CROSS JOIN (VALUES (0), (1), (2)) m(k)
            CROSS JOIN LATERAL (SELECT ((b.r::bigint * 64 + dd.d) * 4 + m.k) * 8 AS base,
                                       ((b.r::bigint * 64 + dd.d) * 4) * 8 AS base0) hh
            WHERE (m.k = 0 AND pg_temp.h(hh.base) % 4 < 3) OR (m.k = 1 AND pg_temp.h(hh.base) % 4 = 0)
               OR (m.k = 2 AND b.r % 5000 = 3 AND dd.d % 7 = 0 AND pg_temp.h(hh.base0) % 4 < 3)
          ) y
        ) x""")
    # a burst: 12 elders of C012 checked out by staff within 3 minutes on the 5th
    run("a burst", """
        INSERT INTO orders (id, idempotency_key, resident_id, canteen_id, terminal_id, meal_date, meal, total_fen,
                            subsidy_fen, to_pay_fen, pay_method, tier, reason, policy_row_id, identified_by,
                            created_at, face_verified, liveness_passed)
        SELECT gen_random_uuid()::text, 'bench-burst-' || i, 'R' || lpad((11 + :nc * (i + 7))::text, 7, '0'),
               'C012', 'T-C012', CAST(:first AS date) + 4, '晚餐', 1300, 300, 1000, 'cash', '六十至七十九岁',
               '六十至七十九岁，每餐补贴3.00元', NULL, 'staff',
               (CAST(:first AS date) + 4)::timestamp AT TIME ZONE 'Asia/Shanghai' + interval '16 hours 40 minutes'
                 + i * interval '15 seconds', false, NULL
        FROM generate_series(0, 11) i""")
    run("order lines", """
        INSERT INTO order_lines (id, order_id, menu_item_id, dish_id, name, quantity, price_fen)
        SELECT gen_random_uuid()::text, o.id, mi.id, mi.dish_id, mi.name, 1, mi.price_fen
        FROM orders o JOIN menu_items mi ON mi.canteen_id = o.canteen_id AND mi.menu_date = o.meal_date
             AND mi.meal = o.meal
        WHERE mi.dish_id = 'D005' OR mi.dish_id = 'D00' || (1 + pg_temp.h(hashtext(o.id)) % 4)""")
    run("pushed orders", """
        INSERT INTO pushed_orders (order_id, terminal_id, op_id, received_at)
        SELECT id, terminal_id, gen_random_uuid()::text, created_at + interval '2 seconds' FROM orders""")
    run("voids", """
        INSERT INTO order_voids (id, order_id, staff_id, reason, created_at)
        SELECT gen_random_uuid()::text, id, 'A1', '点错菜', created_at + interval '3 minutes'
        FROM orders WHERE pg_temp.h(hashtext(id)) % 2000 = 0""")
    run("district flags", """
        INSERT INTO district_flags (id, order_id, resident_id, meal_date, kind, over_fen, order_ids, created_at,
                                    decision, decided_by, decided_at, note)
        SELECT gen_random_uuid()::text, id, resident_id, meal_date,
               CASE WHEN g % 7 = 0 THEN 'balance' ELSE 'daily_meals' END, 300 + g % 200, json_build_array(id),
               created_at + interval '1 minute',
               CASE g % 3 WHEN 0 THEN 'charge_back' WHEN 1 THEN 'accept' END,
               CASE WHEN g % 3 < 2 THEN 'A1' END, CASE WHEN g % 3 < 2 THEN created_at + interval '1 day' END, NULL
        FROM (SELECT o.*, pg_temp.h(hashtext(o.id) + 1) AS g FROM orders o) z WHERE g % 1500 = 1""")
    run("quarantined pushes", """
        INSERT INTO quarantined_ops (op_id, terminal_id, canteen_id, kind, reason, resident_id, amount_fen, payload,
                                     created_at, received_at, status, decided_by, decided_at, note)
        SELECT gen_random_uuid()::text, 'T-C' || lpad((1 + i % :nc)::text, 3, '0'),
               'C' || lpad((1 + i % :nc)::text, 3, '0'), 'order.settle', '终端报的补贴与服务器计算的不同',
               'R' || lpad((i * 37)::text, 7, '0'), 500, json_build_object('n', i),
               now() - i * interval '1 hour', now() - i * interval '1 hour',
               CASE WHEN i % 4 = 0 THEN 'accepted' ELSE 'waiting' END, NULL, NULL, NULL
        FROM generate_series(1, 200) i""")
    run("bookings", """
        INSERT INTO meal_bookings (id, resident_id, meal_date, meal, canteen_id, dish_ids, portions, cancelled,
                                   source, staff_id, terminal_id, created_at, updated_at)
        SELECT gen_random_uuid()::text, b.rid, CAST(:first AS date) + d, '午餐',
               'C' || lpad((1 + b.home)::text, 3, '0'),
               CASE WHEN pg_temp.h(b.r * 64 + d) % 3 = 0 THEN '["D001"]' ELSE '[]' END::json, 1,
               pg_temp.h(b.r * 64 + d + 7) % 50 = 0, 'counter', NULL, NULL, now(), now()
        FROM br b, generate_series(0, :days - 1) d WHERE pg_temp.h(b.r * 64 + d + 3) % 10 = 0""")
    run("welfare visits", """
        INSERT INTO welfare_visits (id, resident_id, staff_id, note, visited_at)
        SELECT gen_random_uuid()::text, 'R' || lpad((i * 20)::text, 7, '0'), 'A1', '电话联系，身体尚好',
               CAST(:first AS date) + (i % 28) FROM generate_series(1, 300) i""")
    conn.execute(text("SET session_replication_role = DEFAULT"))


def _audit_entries(app, n: int) -> None:
    """``n`` audit entries with an intact chain (as terminals' actions and console work leave them)."""
    from sqlalchemy import insert, select, update

    from kiosk.db.chain import canonical, link, normalize_detail
    from kiosk.db.models import AuditEntry, AuditHead, new_id

    with app.db.engine.begin() as c:
        seq, prev = c.execute(select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
        rows = []
        t0 = datetime.now(timezone.utc) - timedelta(days=40)
        for i in range(n):
            seq += 1
            eid, at = new_id(), t0 + timedelta(seconds=i * 60)
            actor, action = (f"terminal:T-C{1 + i % 300:03d}", "staff.unlock") if i % 3 else ("A1", "console.export")
            det = normalize_detail({"format": "xlsx", "title": f"报表{i}"} if i % 3 == 0 else {"canteen": "C001"})
            h = link(prev, canonical(seq, eid, at, actor, action, None, det))
            rows.append({"id": eid, "at": at, "actor": actor, "action": action, "subject": None, "detail": det,
                         "seq": seq, "prev_hash": prev, "entry_hash": h})
            prev = h
        for i in range(0, n, 5000):
            c.execute(insert(AuditEntry), rows[i:i + 5000])
        c.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, last_hash=prev))


def build(url: str, home: Path, key: str, residents: int, canteens: int, month: date, say) -> dict:
    """The whole district in a fresh database at ``url``; its counts."""
    from sqlalchemy import func, select, text

    from kiosk.config import load_settings
    from kiosk.db.models import Order, OrderLine
    from kiosk.district.domain import passwords
    from kiosk.services.context import App
    from kiosk.timeutil import month_bounds

    first, last = month_bounds(month)
    app = App(load_settings(home=home, template_key=key, database_url=url))
    try:
        app.residents.add_staff(ADMIN, "区管理员", "admin", "86420135")
        admin = app.residents.authenticate("86420135", min_role="admin", staff_id=ADMIN)["actor"]
        passwords.set_password(app, ADMIN, ADMIN_PASSWORD, actor=admin)
        with app.db.engine.begin() as conn:
            _sql_build(conn, residents, canteens, first, last, say)
        _audit_entries(app, 20_000)
        t0 = time.perf_counter()
        with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        say(f"console data: VACUUM ANALYZE in {time.perf_counter() - t0:.1f} s")
        with app.db.session(read_only=True) as s:
            return {"orders": s.scalar(select(func.count()).select_from(Order)),
                    "order_lines": s.scalar(select(func.count()).select_from(OrderLine))}
    finally:
        app.close()


def _timed(fn, runs: int) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"seconds": [round(t, 2) for t in times], "best_s": round(min(times), 2),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, max(0, int(round(q * len(xs))) - 1))], 1) if xs else 0.0


def console_paths(month: str, day: date) -> dict[str, str]:
    """Every page of the console's nav bar (the admin sees all), with the bench month."""
    return {"home": "/console/", "imports": "/console/imports", "canteens": "/console/canteens",
            "reports": f"/console/reports?month={month}&day={day}",
            "reconcile": f"/console/reconcile?month={month}",
            "quarantine": "/console/quarantine", "bookings": f"/console/bookings?day={day}&month={month}",
            "anomalies": f"/console/anomalies?month={month}", "welfare": "/console/welfare",
            "proof": f"/console/proof?month={month}", "faces": "/console/faces",
            "terminals": "/console/terminals", "audit": "/console/audit"}


def _wait_for_warm_up(http, say, limit_s: float = 900) -> dict:
    """The server's first warm-up pass (kiosk.district.console.warm: this and last month's
    pages computed ahead): how long after the server answered it ended. A clerk opens the
    console long after the server started; the pages are timed after this."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        w = http.get("/healthz").json().get("console_warm")
        if w is None:                         # KIOSK_CONSOLE_WARM=0: pages computed when first opened
            return {"off": True}
        if w.get("passes", 0) >= 1:
            out = {"seconds_after_start": round(time.perf_counter() - t0, 1), "pass_s": w.get("last_pass_s"),
                   "results": w.get("last_computed"), "load_avg_1min": round(os.getloadavg()[0], 2)}
            say(f"console: the server's warm-up pass took {out['pass_s']} s ({out['results']} results)")
            return out
        time.sleep(0.5)
    return {"timed_out_s": limit_s}


def _log_in(http) -> None:
    import re

    page = http.get("/console/login")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = http.post("/console/login", data={"csrf_token": pre, "staff_id": ADMIN, "password": ADMIN_PASSWORD})
    if r.status_code != 303:
        raise RuntimeError(f"console login failed: HTTP {r.status_code}")


def bench_console(residents: int = 100_000, canteens: int = 300, data_dir: Path | None = None,
                  requests: int = 20, runs: int = 3, pages: list[str] | None = None, month: date | None = None,
                  skip: tuple[str, ...] = (), say=lambda m: None) -> dict:
    """See the module's docstring. ``skip``: parts left out (``reports``, ``pages``)."""
    missing = postgres_missing()
    if missing:
        return {"skipped": missing}
    import httpx

    from kiosk.bench.district import _server
    from kiosk.config import load_settings
    from kiosk.services.context import App
    from kiosk.services.security import generate_key

    data_dir = Path(data_dir or os.environ.get("KIOSK_BENCH_DATA") or DEFAULT_DATA)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o711)         # the server runs as postgres when we are root: it must get through
    where = data_dir / f"console-{residents}"
    month = month or default_month()
    out: dict = {"cpus": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
                 "data": str(where), "postgres": "a cluster on this machine (shared_buffers 512MB, work_mem 64MB)"}
    meta_file = where / "built.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if meta is not None and meta.get("params", {}).get("residents") == residents:
        month = date.fromisoformat(meta["params"]["month"] + "-01")
    params = _params(residents, canteens, month)
    if meta is not None and {k: meta.get("params", {}).get(k) for k in params} != params:
        say(f"console data: {where} was built for {meta.get('params')}, building it again")
        import shutil

        if (where / "data" / "PG_VERSION").exists():
            PostgresCluster(keep_in=where, db=None).stop()
        shutil.rmtree(where, ignore_errors=True)
        meta = None
    cluster = PostgresCluster(keep_in=where, db=None,
                              settings={"shared_buffers": "512MB", "work_mem": "64MB",
                                        "maintenance_work_mem": "512MB", "max_wal_size": "4GB"})
    proc = None
    try:
        if meta is None:
            url = cluster.new_db("kiosk")
            key = generate_key()
            say(f"console data: building {residents:,} residents, {month:%Y-%m} (once; kept in {where}) ...")
            t0 = time.perf_counter()
            counts = build(url, where / "home", key, residents, canteens, month, say)
            meta = {"params": params, "key": key, "build_s": round(time.perf_counter() - t0, 1), **counts,
                    "load_avg_during_build": [round(x, 2) for x in os.getloadavg()]}
            (where / "built.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2))
        url = cluster.db_url("kiosk")
        out.update({"month": params["month"], "residents": residents, "canteens": canteens,
                    "orders": meta["orders"], "order_lines": meta["order_lines"], "build_s": meta["build_s"]})
        m = params["month"]
        app = App(load_settings(home=where / "home", template_key=meta["key"], database_url=url))
        try:
            if "reports" not in skip:
                from kiosk.district.domain import anomalies as an
                from kiosk.district.domain.reports import monthly_table
                from kiosk.services.reports import monthly_subsidy

                say("console: the monthly report ...")
                rep = monthly_subsidy(app, m)
                out["monthly_report"] = {**_timed(lambda: monthly_subsidy(app, m), runs),
                                         "residents_listed": len(rep.residents), "meals": rep.meals, "goal_s": 10}
                say(f"console: monthly report {out['monthly_report']['seconds']} s")
                out["monthly_table"] = _timed(lambda: monthly_table(app, m), runs)
                say(f"console: monthly table (console, PDF, xlsx) {out['monthly_table']['seconds']} s")
                say("console: the anomaly scan ...")
                scan = an.scan(app, m)
                out["anomaly_scan"] = {**_timed(lambda: an.scan(app, m), runs), "counts": scan["counts"],
                                       "seconds_per_kind_last": scan["seconds"], "goal_s": 10}
                say(f"console: anomaly scan {out['anomaly_scan']['seconds']} s, {scan['counts']}")
        finally:
            app.close()
        if "pages" not in skip:
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_") or k == "KIOSK_MODEL_DIR"}
            env.update(KIOSK_HOME=str(where / "home"), KIOSK_TEMPLATE_KEY=meta["key"], KIOSK_DATABASE_URL=url,
                       KIOSK_AUDIO="off")
            proc = _server(env, port, 1)
            first = date.fromisoformat(m + "-01")
            paths = console_paths(m, first + timedelta(days=14))
            out["pages"] = {}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
                out["warm_up"] = _wait_for_warm_up(http, say)
                from kiosk.timeutil import now_cst

                today = now_cst().date()
                out["warm_up"]["covers_the_bench_month"] = m in (f"{today:%Y-%m}", f"{default_month(today):%Y-%m}")
                _log_in(http)
                for name, path in paths.items():
                    if pages and name not in pages:
                        continue
                    times, status, size = [], set(), 0
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        r = http.get(path)
                        times.append((time.perf_counter() - t0) * 1000)
                        status.add(r.status_code)
                        size = len(r.content)
                    out["pages"][name] = {"path": path, "ms_p50": _pct(times, 0.5), "ms_p95": _pct(times, 0.95),
                                          "ms_max": _pct(times, 1.0), "first_ms": round(times[0], 1),
                                          "status": sorted(status), "bytes": size,
                                          "load_avg_1min": round(os.getloadavg()[0], 2)}
                    say(f"console page {name:<11} p50 {out['pages'][name]['ms_p50']:8.1f} ms  "
                        f"p95 {out['pages'][name]['ms_p95']:8.1f} ms  max {out['pages'][name]['ms_max']:8.1f} ms  "
                        f"HTTP {sorted(status)}  {size:,} bytes  (load {os.getloadavg()[0]:.2f})")
            out["pages_goal_ms_p95"] = 1000
        out["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return out
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.stop()


def main() -> None:   # python -m kiosk.bench.console [residents [requests]]
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    req = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    skip = tuple(x for x in os.environ.get("KIOSK_BENCH_SKIP", "").split(",") if x)
    only = [x for x in os.environ.get("KIOSK_BENCH_PAGES", "").split(",") if x] or None
    print(json.dumps(bench_console(n, requests=req, skip=skip, pages=only,
                                   say=lambda m: print(m, file=sys.stderr, flush=True)),
                     ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
