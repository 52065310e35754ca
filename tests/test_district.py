"""The district: a real `kiosk server` process on loopback, terminals with their own
replica, selling while the server is down, idempotent pushes, flagged limits,
erasure and enrolment propagation. The same scenario on SQLite (the embedded
default) and on PostgreSQL."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from kiosk.db.models import DistrictFlag, FaceTemplate, Order, OrderLine, OutboxEntry
from kiosk.terminal.sync.client import SyncClient
from kiosk.errors import ServerOnlyError, ServerUnreachableError, TerminalAuthError
from kiosk.terminal.sync.status import sync_status

from tests.conftest import STAFF_PASSWORDS, STAFF_PINS, staff_actor
from tests.district_helpers import District, PostgresCluster


@pytest.fixture(scope="module")
def pg_cluster():
    c = PostgresCluster()
    yield c
    c.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def district(request, env, tmp_path, formats):
    url = request.getfixturevalue("pg_cluster").new_db() if request.param == "postgresql" else None
    d = District(tmp_path, formats, url)
    d.start()
    yield d
    d.close()


def sync(app):
    c = SyncClient(app)
    try:
        return c.sync()
    finally:
        c.close()


def server_orders(d: District) -> list[Order]:
    app = d.server_app()
    try:
        with app.db.session() as s:
            return list(s.scalars(select(Order).order_by(Order.created_at)))
    finally:
        app.close()


def test_offline_sales_reach_the_server_once_and_the_double_subsidy_is_flagged(district):
    d = district
    t1, t2 = d.terminal("C1"), d.terminal("C2")
    r1, r2 = sync(t1), sync(t2)
    assert r1.pulled > 0 and t1.settings.canteen_id == "C1" and t2.settings.canteen_id == "C2"
    st = sync_status(t1)
    assert st.online and st.pending == 0 and st.offline_since is None and st.server_version == r1.server_version

    # online: one sale at each canteen, pushed at once
    a = t1.billing.settle("R0002", ["D001", "D005"], meal="午餐")
    b = t2.billing.settle("R0003", ["D002"], meal="午餐", pay="card")
    assert sync_status(t1).pending == 1
    assert sync(t1).pushed == 1 and sync(t2).pushed == 1

    # a top-up at canteen 1 reaches canteen 2's view of the balance
    t1.billing.topup("R0001", 2000, actor=staff_actor(t1, "S01"))
    sync(t1)
    sync(t2)
    assert t2.billing.balance("R0001") == 2000

    # the cable is pulled
    d.stop()
    c1 = t1.billing.settle("R0001", ["D001", "D005"], meal="午餐")           # subsidised at canteen 1 ...
    c2 = t2.billing.settle("R0001", ["D001"], meal="午餐", pay="balance")      # ... and at canteen 2 (cannot know)
    assert c1.subsidy_fen > 0 and c2.subsidy_fen > 0 and c2.to_pay_fen > 0
    c3 = t2.billing.settle("R0002", ["D002"], meal="午餐", pay="cash")
    assert c3.subsidy_fen == 0 and c3.reason == "今日已享受补贴"    # canteen 2 knew of R0002's meal at canteen 1
    # balance payments only up to the last known balance minus local spending
    from kiosk.errors import InsufficientBalanceError
    with pytest.raises(InsufficientBalanceError):
        t2.billing.settle("R0001", ["D001", "D003"], meal="午餐", pay="balance")
    v = t1.billing.void(a.order_id, "顾客退餐", staff_actor(t1, "S01"))
    assert v["voided"]
    with pytest.raises(ServerUnreachableError):
        sync(t1)
    st = sync_status(t1)
    assert not st.online and st.offline_since is not None and st.pending == 2

    d.start()
    r1, r2 = sync(t1), sync(t2)
    assert (r1.pushed, r2.pushed) == (2, 2) and r1.pending == r2.pending == 0
    assert sync_status(t1).online and sync_status(t1).offline_since is None
    assert r2.flagged and r2.flagged[0]["kind"] == "daily_meals" and r2.flagged[0]["order_id"] == c2.order_id

    # nothing lost, nothing twice: the server has exactly the five meals, with their lines, as served
    orders = server_orders(d)
    assert sorted(o.id for o in orders) == sorted([a.order_id, b.order_id, c1.order_id, c2.order_id, c3.order_id])
    by = {o.id: o for o in orders}
    assert (by[c2.order_id].subsidy_fen, by[c2.order_id].to_pay_fen) == (c2.subsidy_fen, c2.to_pay_fen)
    assert by[c1.order_id].canteen_id == "C1" and by[c2.order_id].canteen_id == "C2"
    assert by[c2.order_id].terminal_id == d.tokens["C2"][0]

    # the terminals now know each other's sales: canteen 1 counts canteen 2's subsidised meal
    sync(t1)
    from kiosk.services.checkout import usage_of
    with t1.db.session() as s:
        assert usage_of(s, "R0001", c2.meal_date).subsidized_meals_today == 2
        assert s.get(Order, c2.order_id).canteen_id == "C2"
    assert t1.billing.balance("R0001") == 2000 - c2.to_pay_fen

    # reconciliation on the server lists the double subsidy, both meals, both canteens
    from kiosk.timeutil import now_cst
    month = now_cst().strftime("%Y-%m")
    rep = json.loads(d.cli("report", "reconcile", "--month", month, "--json").stdout)
    assert len(rep["flagged"]) == 1
    f = rep["flagged"][0]
    assert f["resident_id"] == "R0001" and sorted(f["order_ids"]) == sorted([c1.order_id, c2.order_id])
    assert f["over_fen"] == c2.subsidy_fen and f["canteens"] == ["C1", "C2"]
    assert all(m["synced_at"] for m in f["meals"]) and len(f["terminals"]) == 2
    # the office's decision, by a supervisor proven by PIN, lands in the audit log
    d.cli("report", "reconcile", "--month", month, "--decide", f["flag_id"], "--charge-back", "--staff", "SUP",
          "--note", "两食堂重复补贴", env={"KIOSK_STAFF_PASSWORD": STAFF_PASSWORDS["SUP"]})
    from kiosk.db.models import AuditEntry
    from kiosk.district.domain.reconcile import reconcile
    app = d.server_app()
    try:
        assert reconcile(app, month)["flagged"][0]["decision"] == "charge_back"
        with app.db.session() as s:
            e = s.scalars(select(AuditEntry).where(AuditEntry.action == "reconcile.charge_back")).one()
            assert (e.actor, e.subject, e.detail["over_fen"]) == ("SUP", f["flag_id"], c2.subsidy_fen)
            flag = s.scalars(select(DistrictFlag)).one()
            assert (flag.decided_by, flag.note) == ("SUP", "两食堂重复补贴")
    finally:
        app.close()


def test_the_same_push_twice_is_one_order_and_a_revoked_terminal_is_refused(district):
    import httpx

    d = district
    t1 = d.terminal("C1")
    sync(t1)
    r = t1.billing.settle("R0001", ["D001"], meal="午餐")
    with t1.db.session() as s:
        ops = [{"op_id": e.id, "kind": e.kind, "created_at": e.created_at.isoformat(), "payload": e.payload}
               for e in s.scalars(select(OutboxEntry))]
    assert len(ops) == 1
    h = {"Authorization": f"Bearer {d.tokens['C1'][1]}"}
    first = httpx.post(d.url + "/api/v1/push", json={"ops": ops}, headers=h).json()["results"]
    again = httpx.post(d.url + "/api/v1/push", json={"ops": ops}, headers=h).json()["results"]
    assert [x["status"] for x in first] == ["applied"] and [x["status"] for x in again] == ["duplicate"]
    rep = sync(t1)                       # the terminal itself pushes it a third time
    assert (rep.pushed, rep.duplicates, rep.pending) == (0, 1, 0)
    assert [o.id for o in server_orders(d)] == [r.order_id]

    # one batch: the same new op twice is applied once; a sale with a value its column cannot
    # hold is rejected alone, with the reason, and the rest of the batch is applied
    new, bad = _copy_sale(ops[0]), _copy_sale(ops[0])
    bad["payload"]["rows"]["orders"][0]["meal"] = "午餐" * 20
    res = httpx.post(d.url + "/api/v1/push", json={"ops": [new, bad, new]}, headers=h).json()["results"]
    assert [x["status"] for x in res] == ["applied", "rejected", "duplicate"] and "orders.meal" in res[1]["error"]
    assert len(server_orders(d)) == 2
    assert httpx.post(d.url + "/api/v1/push", json={"ops": [new]}).status_code == 401     # no token
    app = d.server_app()
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(OrderLine).where(OrderLine.order_id == r.order_id)) == 1
    app.close()

    # a revoked token is refused at its next request, and nothing it sends is applied
    d.cli("server", "terminal", "revoke", d.tokens["C1"][0], "--staff", "ADM",
          env={"KIOSK_STAFF_PASSWORD": STAFF_PASSWORDS["ADM"]})
    t1.billing.settle("R0002", ["D001"], meal="午餐")
    with pytest.raises(TerminalAuthError):
        sync(t1)
    assert httpx.get(d.url + "/api/v1/changes?since=0", headers=h).status_code == 401
    assert httpx.post(d.url + "/api/v1/push", json={"ops": [_copy_sale(ops[0])]}, headers=h).status_code == 401
    assert len(server_orders(d)) == 2
    assert sync_status(t1).pending == 1


def _copy_sale(op: dict) -> dict:
    """The same sale again as a new outbox op (new ids throughout)."""
    import copy
    import uuid

    op = copy.deepcopy(op)
    op["op_id"] = str(uuid.uuid4())
    rows = op["payload"]["rows"]
    order = rows["orders"][0]
    order["id"], order["idempotency_key"] = str(uuid.uuid4()), uuid.uuid4().hex
    for x in rows.get("order_lines", []) + rows.get("ledger_entries", []):
        x["id"] = str(uuid.uuid4())
        x["order_id"] = order["id"]
    for m in op["payload"].get("ops", []):
        m["order_id"] = order["id"]
    return op


def test_two_canteens_pushing_one_elder_at_once_flag_the_double_subsidy_once(district):
    """Two terminals that both subsidised the same elders (neither knew of the other's sale)
    push at the same moment: each double subsidy is flagged exactly once, nothing is lost."""
    import threading

    d = district
    t1, t2 = d.terminal("C1"), d.terminal("C2")
    sync(t1)
    sync(t2)
    sold = []
    for rid in ("R0001", "R0002"):
        a = t1.billing.settle(rid, ["D001"], meal="午餐")
        b = t2.billing.settle(rid, ["D002"], meal="午餐")
        assert a.subsidy_fen > 0 and b.subsidy_fen > 0
        sold += [a.order_id, b.order_id]
    start = threading.Barrier(2)
    reports = {}

    def push(name, app):
        start.wait()
        reports[name] = sync(app)

    threads = [threading.Thread(target=push, args=(n, a)) for n, a in (("C1", t1), ("C2", t2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert reports["C1"].pushed == reports["C2"].pushed == 2
    assert sorted(o.id for o in server_orders(d)) == sorted(sold)
    app = d.server_app()
    try:
        with app.db.session() as s:
            flags = list(s.scalars(select(DistrictFlag)))
    finally:
        app.close()
    assert sorted(f.resident_id for f in flags) == ["R0001", "R0002"] and {f.kind for f in flags} == {"daily_meals"}
    for f in flags:
        assert len(f.order_ids) == 2 and set(f.order_ids) <= set(sold) and f.order_id in f.order_ids


def test_a_terminal_killed_between_push_and_acknowledgement_replays_without_duplicates(district):
    """kill -9 of a `kiosk sync` process after the server applied its push and before the
    reply reached it (a proxy in between kills it), then the same terminal syncs again."""
    import http.server
    import os
    import signal
    import subprocess
    import threading

    import httpx

    from tests.district_helpers import KIOSK, free_port

    d = district
    env_t = d.terminal_env("C1")
    t1 = d.terminal("C1")                                   # the same terminal home, in this process
    sync(t1)
    for dish in ("D001", "D002", "D004"):
        t1.billing.settle("R0002", [dish], meal="午餐")
    victim: dict = {}
    applied = threading.Event()

    class Proxy(http.server.BaseHTTPRequestHandler):
        def _forward(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            resp = httpx.request(self.command, d.url + self.path, content=body,
                                 headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            if "/push" in self.path:
                applied.set()
                os.kill(victim["pid"], signal.SIGKILL)      # the reply never arrives
                return
            self.send_response(resp.status_code)
            self.send_header("content-type", resp.headers.get("content-type", "application/json"))
            self.send_header("content-length", str(len(resp.content)))
            self.end_headers()
            self.wfile.write(resp.content)

        do_GET = do_POST = _forward

        def log_message(self, *a):
            pass

    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    p = subprocess.Popen(KIOSK + ["sync"], env={**env_t, "KIOSK_SERVER_URL": f"http://127.0.0.1:{port}"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim["pid"] = p.pid
    p.wait(timeout=60)
    srv.shutdown()
    assert applied.is_set() and p.returncode == -signal.SIGKILL
    assert len(server_orders(d)) == 3                       # the server applied the push ...
    assert sync_status(t1).pending == 3                     # ... the terminal never heard: it replays
    r = subprocess.run(KIOSK + ["sync", "--json"], env=env_t, capture_output=True, text=True)
    out = json.loads(r.stdout)
    assert (out["pushed"], out["duplicates"], out["pending"]) == (0, 3, 0), out
    assert len(server_orders(d)) == 3 and len({o.id for o in server_orders(d)}) == 3


def test_enrolment_and_erasure_reach_every_terminal_within_one_sync(district, obama):
    from kiosk.enrollment.batch import enroll_files

    d = district
    t1, t2 = d.terminal("C1"), d.terminal("C2")
    sync(t1)
    sync(t2)
    rep = enroll_files(t1, "R0001", [obama[0]], consent="self", actor=staff_actor(t1, "S01"))
    assert rep.enrolled
    assert sync(t1).pushed == 2                              # the consent, then the templates
    app = d.server_app()
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(FaceTemplate)) == 1
        # the server keeps which terminal pushed them (from its token; the console names it)
        from kiosk.db.models import FaceConsent, Terminal

        pushed_by = s.scalars(select(FaceTemplate.terminal_id)).one()
        assert pushed_by and s.get(Terminal, pushed_by).canteen_id == "C1"
        assert s.scalars(select(FaceConsent.terminal_id).where(FaceConsent.resident_id == "R0001")).all() == [pushed_by]
    app.close()
    assert t2.faces.identify_file(obama[1]).status != "matched"
    sync(t2)                                                  # one sync: the new face is known at canteen 2
    assert t2.faces.identify_file(obama[1]).resident_id == "R0001"

    d.cli("residents", "erase", "R0001", "--staff", "SUP", env={"KIOSK_STAFF_PASSWORD": STAFF_PASSWORDS["SUP"]})
    r2 = sync(t2)                                              # one sync: never matched again
    assert r2.erased == 1
    assert t2.faces.identify_file(obama[1]).resident_id is None
    with t2.db.session() as s:
        assert s.scalar(select(func.count()).select_from(FaceTemplate)) == 0
    sync(t1)
    assert t1.faces.identify_file(obama[1]).resident_id is None

    # an erasure at a terminal before its enrolment was pushed: the templates never leave it
    enroll_files(t1, "R0002", [obama[2]], consent="self", actor=staff_actor(t1, "S01"))
    t1.residents.erase_faces("R0002", staff_actor(t1, "SUP"))
    with t1.db.session() as s:
        assert all(not (e.payload.get("rows") or {}).get("face_templates") for e in s.scalars(select(OutboxEntry)))
    sync(t1)
    app = d.server_app()
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(FaceTemplate)) == 0
    app.close()

    # district imports are refused on a terminal, with the reason
    from kiosk.services.importing import import_menu
    menu = d.root / "menu_new.csv"
    lines = (d.root / "menu_today.csv").read_text(encoding="utf-8").splitlines()
    menu.write_text("\n".join([lines[0], lines[1].replace("D001", "D099")]) + "\n", encoding="utf-8")
    with pytest.raises(ServerOnlyError):
        import_menu(t1, menu)
    r = d.cli("menu", "import", str(menu), "--staff", "ADM",
              env={**d.terminal_env("C1"), "KIOSK_STAFF_PIN": STAFF_PINS["ADM"]}, check=False)
    assert r.returncode == 2 and "区服务器" in r.stderr


def test_templates_travel_only_over_tls_or_loopback(shop, obama):
    """The feed withholds face templates from a terminal on another machine over plain
    HTTP (here: a request relayed by a proxy that does not say https), and says so."""
    from fastapi.testclient import TestClient

    from kiosk.enrollment.batch import enroll_files
    from kiosk.district.app import create_app
    from kiosk.district.domain.terminals import add_terminal

    enroll_files(shop, "R0001", [obama[0]], consent="self", actor=staff_actor(shop, "S01"))
    _, token = add_terminal(shop, "C1")
    h = {"Authorization": f"Bearer {token}"}

    def faces(api, **headers):
        with TestClient(api) as c:
            page = c.get("/api/v1/changes", params={"since": 0}, headers={**h, **headers}).json()
        rec = next(r for r in page["changes"] if r["entity"] == "faces" and r["key"] == "R0001")
        return page["templates_withheld"], rec["data"]

    api = create_app(shop.settings, kiosk_app=shop)
    withheld, data = faces(api)                                            # this machine
    assert not withheld and len(data["templates"]) == 1 and data["templates"][0]["embedding"]
    withheld, data = faces(api, **{"X-Forwarded-For": "10.1.2.3"})          # another machine, plain http
    assert withheld and data == {"withheld": True}
    withheld, data = faces(api, **{"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https"})
    assert not withheld and len(data["templates"]) == 1                     # TLS ends at the local proxy
    loud = create_app(shop.settings, kiosk_app=shop, insecure_templates=True)
    assert not faces(loud, **{"X-Forwarded-For": "10.1.2.3"})[0]
    with TestClient(api) as c:                                            # no token, no data
        assert c.get("/api/v1/changes", params={"since": 0}).status_code == 401


def test_the_running_kiosk_syncs_by_itself_and_tells_staff_when_offline(env, tmp_path, formats):
    import time

    from kiosk.config import load_settings
    from kiosk.services.context import App
    from kiosk.terminal.counter import KioskService
    from kiosk.terminal.sync.status import stop_background_sync

    from tests.conftest import shared_engine

    def until(cond, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = sync_status(app)
            if cond(st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"status never reached: {sync_status(app)}")

    d = District(tmp_path, formats)
    d.start()
    s = d.terminal_settings("C1")
    app = App(load_settings(home=s.home, template_key=s.template_key, server_url=s.server_url,
                            server_token=s.server_token, sync_interval_s=0.5), engine=shared_engine("sface"))
    try:
        KioskService(app)                                         # starts the loop (a daemon thread)
        until(lambda st: st.online and st.last_sync is not None)
        app.billing.settle("R0001", ["D001"], meal="午餐")
        until(lambda st: st.pending == 0 and st.online)
        assert len(server_orders(d)) == 1                         # pushed without anyone asking
        d.stop()
        app.billing.settle("R0002", ["D001"], meal="午餐")
        st = until(lambda st: not st.online)
        assert st.offline_since is not None and st.pending == 1    # what the staff page shows
        d.start()
        until(lambda st: st.online and st.pending == 0)
        assert len(server_orders(d)) == 2
    finally:
        stop_background_sync(app)
        app.close()
        d.close()


def test_a_malformed_sale_is_rejected_alone_with_its_reason(shop):
    """Rows the server inserts in bulk are checked first: a value the database would refuse
    rejects that op (kept with its reason), never the batch around it."""
    import random
    from datetime import date

    from kiosk.bench.district import _order_op
    from kiosk.db.models import AppliedOp, MenuItem, SubsidyPolicy
    from kiosk.district.domain.terminals import add_terminal, hash_token
    from kiosk.district.domain.push import apply_push

    _, token = add_terminal(shop, shop.settings.canteen_id)     # the canteen of the menu its sales name
    with shop.db.session() as s:
        menu = [{"id": m.id, "dish_id": m.dish_id, "name": m.name, "price_fen": m.price_fen}
                for m in s.scalars(select(MenuItem))]
        policy = s.scalar(select(SubsidyPolicy.id))
    rnd = random.Random(3)

    def sale(rid="R0001", **order):
        op = _order_op(rid, "C1", menu, policy, date(2026, 11, 23), rnd)
        op["payload"]["rows"]["orders"][0].update(order)
        return op

    bad = {"no meal": sale(meal=None), "text for money": sale(subsidy_fen="500"), "naive time":
           sale(created_at="2026-11-23T12:00:00"), "past 32 bits": sale(total_fen=2 ** 40),
           "unknown resident": sale("NOPE"), "not an object": {**sale(), "payload": [1]}}
    ops = [sale("R0001")] + list(bad.values()) + [sale("R0001")]     # (the bench's sale: 八十岁及以上)
    results, _, term = apply_push(shop, hash_token(token), ops)
    assert [r["status"] for r in results] == ["applied"] + ["rejected"] * len(bad) + ["applied"]
    assert all(r["error"] for r in results[1:-1]) and term.canteen_id == shop.settings.canteen_id
    with shop.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 2
        kept = s.scalars(select(AppliedOp).where(AppliedOp.status == "rejected")).all()
        assert len(kept) == len(bad) and all(k.payload and k.error for k in kept)
