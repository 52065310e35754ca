"""A hostile terminal: one with a valid token (its disk carried away, its token copied)
pushing forged ops through the real API. Each forged op leaves the balances, the monthly
report and the audit chain as they were, and waits in the quarantine list (待核查) with
its reason; an admin proven by password accepts (applied once) or rejects (never applied),
audited. Honest sales, online and offline (a double subsidy crossed offline stays a
flag, audited), top-ups and voids apply as before."""
from __future__ import annotations

import copy
import json
import uuid
from datetime import date, datetime, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kiosk.db import audit
from kiosk.db.models import AuditEntry, LedgerEntry, Order, Resident
from kiosk.services.checkout import balance_of
from kiosk.timeutil import now_cst

from tests.conftest import FORMATS, STAFF_PASSWORDS, STAFF_PINS
from tests.district_helpers import District


class Ctx:
    def __init__(self, d: District, apps: dict, client: TestClient) -> None:
        self.d, self.apps, self.client = d, apps, client
        self.app = apps["C1"]

    def push(self, canteen: str, *ops: dict) -> list[dict]:
        r = self.client.post("/api/v1/push", json={"ops": list(ops)},
                             headers={"Authorization": f"Bearer {self.d.tokens[canteen][1]}"})
        assert r.status_code == 200, r.text
        return r.json()["results"]


def _make(tmp: "pytest.TempPathFactory", db_url: str | None = None) -> Ctx:
    from kiosk.district.app import create_app

    d = District(tmp.mktemp("hostile"), FORMATS, db_url)
    apps = {c: d.server_app(c) for c in ("C1", "C2")}
    return Ctx(d, apps, TestClient(create_app(apps["C1"].settings, kiosk_app=apps["C1"])))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One district for the forged ops (each leaves it as it was)."""
    ctx = _make(tmp_path_factory)
    with ctx.client:
        # an honest sale at canteen 2 (the order a canteen-1 terminal will try to void)
        q = _quote(ctx, "C2", "R0002", ["D002"])
        ctx.c2_sale = _sale(q, "C2")
        assert ctx.push("C2", ctx.c2_sale)[0]["status"] == "applied"
        yield ctx
    for a in ctx.apps.values():
        a.close()


@pytest.fixture(scope="module")
def pg_cluster():
    from tests.district_helpers import PostgresCluster

    c = PostgresCluster()
    yield c
    c.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh(request, tmp_path_factory):
    """A district of its own (for what changes it), on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("pg_cluster").new_db() if request.param == "postgresql" else None
    ctx = _make(tmp_path_factory, url)
    with ctx.client:
        yield ctx
    for a in ctx.apps.values():
        a.close()


# ---------------------------------------------------------------------------- ops as a terminal writes them
def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _quote(ctx: Ctx, canteen: str, rid: str, dishes: list[str]):
    """The meal priced by the counter's own checkout service, at ``canteen``, from the store
    as it is now (what an online terminal would charge)."""
    return ctx.apps[canteen].billing.quote(rid, dishes, meal="午餐")


def _sale(q, canteen: str, pay: str = "cash") -> dict:
    """An outbox op of a settled meal (the rows CheckoutService.settle writes)."""
    oid = str(uuid.uuid4())
    qt = q.quote
    order = {"id": oid, "idempotency_key": uuid.uuid4().hex, "resident_id": q.resident_id, "canteen_id": canteen,
             "terminal_id": None, "meal_date": q.meal_date.isoformat(), "meal": q.meal, "total_fen": qt.total_fen,
             "subsidy_fen": qt.subsidy_fen, "to_pay_fen": qt.to_pay_fen, "pay_method": pay, "tier": qt.tier,
             "reason": qt.reason, "policy_row_id": q.policy_row_id, "identified_by": "face", "created_at": _now(),
             "face_verified": True, "liveness_passed": True}
    lines = [{"id": str(uuid.uuid4()), "order_id": oid, "menu_item_id": mid, "dish_id": ln.dish_id,
              "name": ln.name, "quantity": ln.quantity, "price_fen": ln.price_fen}
             for ln, mid in zip(qt.lines, q.menu_item_ids)]
    entries = [_entry(q.resident_id, "charge", qt.total_fen, order_id=oid)]
    if qt.subsidy_fen:
        entries.append(_entry(q.resident_id, "subsidy", qt.subsidy_fen, order_id=oid, note=qt.tier))
    entries.append(_entry(q.resident_id, "payment", -qt.to_pay_fen if pay == "balance" else qt.to_pay_fen,
                          order_id=oid, method=pay, affects_balance=pay == "balance"))
    return _op("order.settle", {"orders": [order], "order_lines": lines, "ledger_entries": entries},
               [{"kind": "order.settle", "order_id": oid, "resident_id": q.resident_id}])


def _entry(rid: str, kind: str, amount: int, **kw) -> dict:
    e = {"id": str(uuid.uuid4()), "resident_id": rid, "order_id": None, "kind": kind, "method": None,
         "amount_fen": amount, "affects_balance": False, "payer": None, "staff_id": None, "note": None,
         "created_at": _now()}
    e.update(kw)
    return e


def _audit(actor: str, action: str, subject: str | None, **detail) -> dict:
    return {"id": str(uuid.uuid4()), "at": _now(), "actor": actor, "action": action, "subject": subject,
            "detail": detail, "seq": 1, "prev_hash": "0" * 64, "entry_hash": "0" * 64}


def _op(kind: str, rows: dict, metas: list | None = None) -> dict:
    return {"op_id": str(uuid.uuid4()), "kind": kind, "created_at": _now(),
            "payload": {"ops": metas or [], "rows": rows, "deleted": {}}}


def _topup(rid: str, amount: int, staff: str) -> dict:
    return _op("account.topup", {"ledger_entries": [_entry(rid, "topup", amount, method="cash", affects_balance=True,
                                                           staff_id=staff)],
                                 "audit_log": [_audit(staff, "account.topup", rid, amount_fen=amount, payer=None)]},
               [{"kind": "account.topup", "resident_id": rid}])


def _void(order: dict, staff: str) -> dict:
    bal = order["pay_method"] == "balance"
    return _op("order.void", {
        "order_voids": [{"id": str(uuid.uuid4()), "order_id": order["id"], "staff_id": staff, "reason": "顾客退餐",
                         "created_at": _now()}],
        "ledger_entries": [_entry(order["resident_id"], "reversal",
                                  order["to_pay_fen"] if bal else -order["to_pay_fen"], order_id=order["id"],
                                  method=order["pay_method"], affects_balance=bal, staff_id=staff)],
        "audit_log": [_audit(staff, "order.void", order["id"], reason="顾客退餐")]},
        [{"kind": "order.void", "order_id": order["id"], "resident_id": order["resident_id"]}])


def _order(op: dict) -> dict:
    return op["payload"]["rows"]["orders"][0]


def _rows(op: dict, table: str) -> list[dict]:
    return op["payload"]["rows"][table]


def _restate(op: dict, *, price: int | None = None, total: int | None = None, subsidy: int | None = None) -> dict:
    """The sale with other figures, its rows kept agreeing with each other where they can."""
    op = copy.deepcopy(op)
    op["op_id"] = str(uuid.uuid4())
    o = _order(op)
    o["id"], o["idempotency_key"] = str(uuid.uuid4()), uuid.uuid4().hex
    for x in _rows(op, "order_lines") + _rows(op, "ledger_entries"):
        x["id"], x["order_id"] = str(uuid.uuid4()), o["id"]
    if price is not None:
        for x in _rows(op, "order_lines"):
            x["price_fen"] = price
        total = sum(x["price_fen"] * x["quantity"] for x in _rows(op, "order_lines"))
        o["subsidy_fen"] = max(0, min(o["subsidy_fen"], total))
    if total is not None:
        o["total_fen"] = total
    if subsidy is not None:
        o["subsidy_fen"] = subsidy
    o["to_pay_fen"] = o["total_fen"] - o["subsidy_fen"]
    for e in _rows(op, "ledger_entries"):
        e["amount_fen"] = {"charge": o["total_fen"], "subsidy": o["subsidy_fen"],
                           "payment": o["to_pay_fen"]}[e["kind"]]
    return op


# ---------------------------------------------------------------------------- what must not move
def _state(ctx: Ctx) -> dict:
    from kiosk.services.reports import monthly_subsidy

    app = ctx.app
    with app.db.session(read_only=True) as s:
        rids = list(s.scalars(select(Resident.id)))
        balances = {r: balance_of(s, r) for r in rids}
        orders = sorted(s.scalars(select(Order.id)))
        ledger = sorted(s.scalars(select(LedgerEntry.id)))
        chain = [(e.seq, e.actor, e.action, e.subject, e.entry_hash)
                 for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        intact = audit.verify(s).intact
    months = {now_cst().strftime("%Y-%m"), "2099-01"}
    return {"balances": balances, "orders": orders, "ledger": ledger, "chain": chain, "intact": intact,
            "monthly": {m: json.loads(json.dumps(monthly_subsidy(app, m).to_json(), default=str)) for m in months}}


def _listed(ctx: Ctx, op_id: str) -> dict:
    from kiosk.district.domain.quarantine import list_quarantine

    items = {x["op_id"]: x for x in list_quarantine(ctx.app)}
    assert op_id in items, f"{op_id} not in the quarantine list"
    return items[op_id]


# ---------------------------------------------------------------------------- the forged ops
def _forged(ctx: Ctx) -> dict[str, tuple[str, dict, str]]:
    """name -> (canteen pushing it, the op, a word its reason must hold)."""
    r1 = _quote(ctx, "C1", "R0001", ["D001", "D005"])          # 13.00 元, 八十岁及以上 5.00 元
    honest = _sale(r1, "C1")
    minus = _restate(honest, price=-50000)                     # two dishes: -1,000.00 元
    huge = _restate(honest, total=2_147_483_647)
    for x in _rows(huge, "order_lines"):
        x["price_fen"] = 2_147_483_647 - sum(y["price_fen"] for y in _rows(huge, "order_lines") if y is not x) \
            if x is _rows(huge, "order_lines")[0] else x["price_fen"]
    other_dish = _restate(honest)
    c2_menu = _quote(ctx, "C2", "R0001", ["D001", "D005"])
    for x, mid in zip(_rows(other_dish, "order_lines"), c2_menu.menu_item_ids):
        x["menu_item_id"] = mid
    future = _restate(honest)
    _order(future)["meal_date"] = "2099-01-05"
    unknown = _restate(honest)
    _order(unknown)["resident_id"] = "NOPE"
    for e in _rows(unknown, "ledger_entries"):
        e["resident_id"] = "NOPE"
    smuggled = _restate(honest)
    _rows(smuggled, "ledger_entries").append(_entry("R0001", "topup", 500000, method="cash", affects_balance=True,
                                                    staff_id="S01"))
    tier = _restate(honest, subsidy=800)
    _order(tier)["tier"] = "特困供养"
    mixed = _restate(honest)
    v = _void(ctx.c2_sale and _order(ctx.c2_sale), "S01")
    for t in ("order_voids", "audit_log"):
        mixed["payload"]["rows"][t] = _rows(v, t)
    consent = _op("consent", {"face_consents": [{
        "id": str(uuid.uuid4()), "resident_id": "R0003", "given_by": "self", "guardian_name": None,
        "staff_id": "ADM", "text_version": "face-consent-2026.1", "allows_crop": False, "source": "kiosk",
        "created_at": _now(), "withdrawn_at": None}],
        "audit_log": [_audit("ADM", "consent.record", "R0003", given_by="self", source="kiosk")]})
    template = _op("faces.enroll", {"face_templates": [{      # no embedding: it is refused before one is read
        "id": str(uuid.uuid4()), "resident_id": "R0003", "contract_id": "sface", "backend": "sface",
        "quality": 0.9, "source": "enroll", "created_at": _now()}],
        "audit_log": [_audit("ADM", "enroll.templates", "R0003", count=1)]},
        [{"kind": "faces.enroll", "resident_id": "R0003"}])
    template_s01 = copy.deepcopy(template)
    template_s01["op_id"] = str(uuid.uuid4())
    _rows(template_s01, "face_templates")[0]["id"] = str(uuid.uuid4())
    _rows(template_s01, "audit_log")[0]["actor"] = "S01"
    erase = _op("faces.erase", {"audit_log": [_audit("NOBODY", "resident.erase_faces", "R0001", templates=0)]},
                [{"kind": "faces.erase", "resident_id": "R0001"}])
    return {
        "sale of -1,000 yuan": ("C1", minus, "超出范围"),
        "sale of 21,474,836.47 yuan": ("C1", huge, "超出范围"),
        "1,000-yuan subsidy on a 13-yuan meal": ("C1", _restate(honest, subsidy=100000), "补贴"),
        "price differing from the menu": ("C1", _restate(honest, price=100), "与菜单"),
        "lines not adding up": ("C1", _restate(honest, total=5000), "不符"),
        "top-up of 21.47 million to another canteen's elder": ("C1", _topup("R0002", 2_147_483_647, "S01"), "充值金额"),
        "top-up of -5,000 by NOBODY": ("C1", _topup("R0001", -500000, "NOBODY"), "充值金额"),
        "top-up by a staff id that does not exist": ("C1", _topup("R0001", 1000, "NOBODY"), "NOBODY"),
        "void of another canteen's order": ("C1", _void(_order(ctx.c2_sale), "S01"), "C2"),
        "face consent by an admin of no canteen (roster 否)": ("C1", consent, "ADM"),
        "template without consent (roster 否)": ("C1", template, "ADM"),
        "template by the canteen's staff without consent (roster 否)": ("C1", template_s01, "consent"),
        "forged audit entry A1 staff.deactivate S2": (
            "C1", _op("audit", {"audit_log": [_audit("ADM", "staff.deactivate", "S01")]}), "staff.deactivate"),
        "erasure by NOBODY": ("C1", erase, "NOBODY"),
        "dish of another canteen": ("C1", other_dish, "C2"),
        "meal date far in the future": ("C1", future, "2099-01-05"),
        "resident unknown": ("C1", unknown, "NOPE"),
        "sale with a top-up smuggled in": ("C1", smuggled, "topup"),
        "subsidy of a tier the resident is not in": ("C1", tier, "档次"),
        "sale mixed with a void": ("C1", mixed, "混在一起"),
    }


FORGED = ["sale of -1,000 yuan", "sale of 21,474,836.47 yuan", "1,000-yuan subsidy on a 13-yuan meal",
          "price differing from the menu", "lines not adding up", "top-up of 21.47 million to another canteen's elder",
          "top-up of -5,000 by NOBODY", "top-up by a staff id that does not exist", "void of another canteen's order",
          "face consent by an admin of no canteen (roster 否)", "template without consent (roster 否)",
          "template by the canteen's staff without consent (roster 否)",
          "forged audit entry A1 staff.deactivate S2", "erasure by NOBODY", "dish of another canteen",
          "meal date far in the future", "resident unknown", "sale with a top-up smuggled in",
          "subsidy of a tier the resident is not in", "sale mixed with a void"]


@pytest.mark.parametrize("name", FORGED)
def test_a_forged_op_changes_nothing_and_waits_in_quarantine(hostile, name):
    canteen, op, word = _forged(hostile)[name]
    before = _state(hostile)
    res = hostile.push(canteen, op)[0]
    assert res["status"] in ("quarantined", "rejected") and word in res["error"], res
    after = _state(hostile)
    assert after == before and after["intact"]
    item = _listed(hostile, op["op_id"])
    assert item["terminal_id"] == hostile.d.tokens[canteen][0] and item["kind"] == op["kind"]
    assert word in item["reason"] and item["status"] == "waiting"
    # pushed again (the terminal retries): answered, still not applied
    again = hostile.push(canteen, op)[0]
    assert again["status"] == "duplicate" and again["was"] == res["status"] and _state(hostile) == before


def test_every_forged_op_is_tried(hostile):
    assert sorted(_forged(hostile)) == sorted(FORGED) and len(set(FORGED)) == 20


# ---------------------------------------------------------------------------- honest ops apply as before
def test_honest_sales_online_and_offline_apply_and_a_double_subsidy_stays_a_flag(fresh):
    ctx = fresh
    # the same elder at both canteens, each terminal not knowing of the other's meal (offline)
    a, b = _quote(ctx, "C1", "R0001", ["D001", "D005"]), _quote(ctx, "C2", "R0001", ["D002"])
    assert a.quote.subsidy_fen == 500 and b.quote.subsidy_fen == 500
    sa, sb = _sale(a, "C1"), _sale(b, "C2", pay="card")
    assert ctx.push("C1", sa)[0]["status"] == "applied"
    res = ctx.push("C2", sb)[0]
    assert res["status"] == "applied" and [f["kind"] for f in res["flags"]] == ["daily_meals"]
    app = ctx.app
    with app.db.session() as s:
        stored = {o.id: o for o in s.scalars(select(Order))}
        assert (stored[_order(sb)["id"]].subsidy_fen, stored[_order(sb)["id"]].to_pay_fen) == (500, 100)
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "district.flag")).one()   # creating a flag is audited
        assert e.subject == res["flags"][0]["flag_id"] and e.detail["over_fen"] == 500
        assert e.detail["terminal_id"] == ctx.d.tokens["C2"][0] and e.detail["order_id"] == _order(sb)["id"]
        assert audit.verify(s).intact
    # a later meal the terminal priced knowing of both: no subsidy, applied without a flag
    c = _quote(ctx, "C1", "R0001", ["D002"])
    assert c.quote.subsidy_fen == 0 and ctx.push("C1", _sale(c, "C1"))[0] == {
        "op_id": ANY, "status": "applied", "flags": []}


class _Any:
    def __eq__(self, other) -> bool:
        return isinstance(other, str) and len(other) == 36


ANY = _Any()


def test_honest_top_up_and_void_apply_and_are_recorded_as_the_terminals_report(fresh):
    ctx = fresh
    tid = ctx.d.tokens["C1"][0]
    assert ctx.push("C1", _topup("R0001", 2000, "S01"))[0]["status"] == "applied"
    q = _quote(ctx, "C1", "R0001", ["D001"])
    sale = _sale(q, "C1", pay="balance")
    assert ctx.push("C1", sale)[0]["status"] == "applied"
    with ctx.app.db.session() as s:
        assert balance_of(s, "R0001") == 2000 - _order(sale)["to_pay_fen"]
    assert ctx.push("C1", _void(_order(sale), "S01"))[0]["status"] == "applied"
    with ctx.app.db.session() as s:
        assert balance_of(s, "R0001") == 2000
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action.in_(("account.topup", "order.void")))
                         .order_by(AuditEntry.seq)).all()
        assert [(e.action, e.actor, e.detail["reported_by"], e.detail["terminal_id"]) for e in rows] == [
            ("account.topup", f"terminal:{tid}", "S01", tid), ("order.void", f"terminal:{tid}", "S01", tid)]
        assert audit.verify(s).intact
    # the counter's own notes (a login) are recorded, as the terminal's report
    assert ctx.push("C1", _op("audit", {"audit_log": [_audit("S01", "staff.login", None)]}))[0]["status"] == "applied"


# ---------------------------------------------------------------------------- the admin's decision
def test_an_admin_accepts_once_or_rejects_never_with_password_and_audited(fresh):
    ctx, d = fresh, fresh.d
    honest = _sale(_quote(ctx, "C1", "R0001", ["D001", "D005"]), "C1")
    cheap = _restate(honest, price=100)            # a price not on the menu: for the office to judge
    minus = _restate(honest, price=-100000)        # below zero: never, whoever decides
    cheap2 = _restate(honest, price=200)
    assert [r["status"] for r in ctx.push("C1", cheap, minus, cheap2)] == ["quarantined"] * 3

    listed = json.loads(d.cli("report", "quarantine", "--json").stdout)
    assert listed["count"] == 3
    for x in listed["quarantined"]:
        assert {"op_id", "terminal_id", "kind", "reason", "received_at", "resident_id", "amount_fen"} <= set(x)
        assert x["terminal_id"] == d.tokens["C1"][0] and x["kind"] == "order.settle" and x["reason"]
    pin = {"KIOSK_STAFF_PASSWORD": STAFF_PASSWORDS["ADM"]}       # the server's command line: a password

    # a supervisor is not an admin; the admin's PIN (on every terminal's disk) proves nothing here
    r = d.cli("quarantine", "accept", cheap["op_id"], "--staff", "SUP",
              env={"KIOSK_STAFF_PASSWORD": STAFF_PASSWORDS["SUP"]}, check=False)
    assert r.returncode == 2
    r = d.cli("quarantine", "accept", cheap["op_id"], "--staff", "ADM",
              env={"KIOSK_STAFF_PIN": STAFF_PINS["ADM"], "KIOSK_STAFF_PASSWORD": STAFF_PINS["ADM"]}, check=False)
    assert r.returncode == 2
    before = _state(ctx)
    assert before["orders"] == sorted(before["orders"]) and _order(cheap)["id"] not in before["orders"]

    out = json.loads(d.cli("quarantine", "accept", cheap["op_id"], "--staff", "ADM", "--note", "菜单临时调价",
                           "--json", env=pin).stdout)
    assert out["status"] == "accepted" and out["decided_by"] == "ADM"
    after = _state(ctx)
    assert _order(cheap)["id"] in after["orders"] and after["intact"]
    month = now_cst().strftime("%Y-%m")
    assert after["monthly"][month]["meals"] == before["monthly"][month]["meals"] + 1
    # once: a second decision is refused, the terminal's retry is a duplicate
    assert d.cli("quarantine", "accept", cheap["op_id"], "--staff", "ADM", env=pin, check=False).returncode == 2
    assert d.cli("quarantine", "reject", cheap["op_id"], "--staff", "ADM", env=pin, check=False).returncode == 2
    assert ctx.push("C1", cheap)[0]["status"] == "duplicate"
    with ctx.app.db.session() as s:
        assert s.scalars(select(Order).where(Order.id == _order(cheap)["id"])).one().total_fen == 200
        accepted = s.scalars(select(AuditEntry).where(AuditEntry.action == "quarantine.accept")).one()
        assert (accepted.actor, accepted.subject, accepted.detail["note"]) == ("ADM", cheap["op_id"], "菜单临时调价")

    # what the README's Limits forbid cannot be accepted, by anyone
    r = d.cli("quarantine", "accept", minus["op_id"], "--staff", "ADM", "--json", env=pin, check=False)
    assert r.returncode == 2 and "不能入账" in json.loads(r.stdout)["error"]
    assert _order(minus)["id"] not in _state(ctx)["orders"]

    # rejected: never applied, not by a retry either
    before = _state(ctx)
    d.cli("quarantine", "reject", cheap2["op_id"], "--staff", "ADM", env=pin)
    assert ctx.push("C1", cheap2)[0]["status"] == "duplicate"
    after = _state(ctx)
    assert after["orders"] == before["orders"] and after["balances"] == before["balances"]
    assert [c[2] for c in after["chain"][len(before["chain"]):]] == ["quarantine.reject"] and after["intact"]
    waiting = json.loads(d.cli("report", "quarantine", "--json").stdout)["quarantined"]
    assert [x["op_id"] for x in waiting] == [minus["op_id"]]
    done = {x["op_id"]: x["status"] for x in
            json.loads(d.cli("report", "quarantine", "--status", "all", "--json").stdout)["quarantined"]}
    assert done == {cheap["op_id"]: "accepted", minus["op_id"]: "waiting", cheap2["op_id"]: "rejected"}


def test_derivation_uses_the_counters_billing_rules():
    """The pure check: the most a terminal that counted no meal yet could give is allowed
    (an offline view), a cent more is not; the rows must agree with each other."""
    from kiosk.billing.policy import Policy
    from kiosk.billing.subsidy import ResidentFacts
    from kiosk.district.domain.derive import MenuRow, ResidentView, SaleView, check_bounds, derive
    import yaml

    policy = Policy.model_validate(yaml.safe_load((FORMATS / "policy.example.yaml").read_text(encoding="utf-8")))
    day = date(2026, 11, 23)
    view = SaleView(ResidentView(ResidentFacts("R1", date(1942, 3, 15), "武侯区", frozenset()), "active"),
                    {"m1": MenuRow("m1", "C1", day, "午餐", "D001", "清蒸鲈鱼", 1200)}, policy, "p1", "C1", day)
    line = {"id": "l1", "order_id": "o1", "menu_item_id": "m1", "dish_id": "D001", "name": "清蒸鲈鱼",
            "quantity": 1, "price_fen": 1200}

    def order(subsidy: int, tier: str | None = "八十岁及以上") -> dict:
        return {"id": "o1", "resident_id": "R1", "meal_date": day, "meal": "午餐", "total_fen": 1200,
                "subsidy_fen": subsidy, "to_pay_fen": 1200 - subsidy, "pay_method": "cash", "tier": tier,
                "policy_row_id": "p1"}

    assert derive(order(500), [line], view) == []
    assert derive(order(300), [line], view) == []          # less: what a terminal that knew more gives
    assert derive(order(0, None), [line], view) == []
    assert [p.hard for p in derive(order(501), [line], view)] == [False]
    assert "档次" in derive(order(500, "特困供养"), [line], view)[0].reason
    entries = [{"kind": "charge", "amount_fen": 1200, "resident_id": "R1", "order_id": "o1"},
               {"kind": "subsidy", "amount_fen": 500, "resident_id": "R1", "order_id": "o1"},
               {"kind": "payment", "amount_fen": 700, "resident_id": "R1", "order_id": "o1", "method": "cash"}]
    assert check_bounds(order(500), [line], entries) == []
    bad = check_bounds(order(500), [line], entries[:2] + [{**entries[2], "amount_fen": 1}])
    assert bad and all(p.hard for p in bad)
    assert all(p.hard for p in check_bounds({**order(500), "total_fen": -1}, [line], entries))


# ---------------------------------------------------------------------------- the console's page 待核查
def test_the_console_lists_quarantined_ops_and_an_admin_decides_with_password(fresh):
    import asyncio
    import re

    from tests.test_console_pages import client, log_in

    ctx = fresh
    honest = _sale(_quote(ctx, "C1", "R0001", ["D001", "D005"]), "C1")
    cheap, cheap2 = _restate(honest, price=100), _restate(honest, price=200)
    assert [r["status"] for r in ctx.push("C1", cheap, cheap2)] == ["quarantined"] * 2
    api = ctx.client.app

    async def scenario():
        async with client(api) as c:
            await log_in(c, "SUP", STAFF_PASSWORDS["SUP"])
            assert (await c.get("/console/quarantine")).status_code == 403          # admins only
        async with client(api) as c:
            await log_in(c, "ADM", STAFF_PASSWORDS["ADM"])
            page = await c.get("/console/quarantine")
            assert page.status_code == 200 and "待核查" in page.text
            for op in (cheap, cheap2):
                assert f'id="op-{op["op_id"]}"' in page.text
            assert "与菜单 12.00 元不符" in page.text and ctx.d.tokens["C1"][0] in page.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

            async def decide(op, decision, password):
                r = await c.post(f"/console/quarantine/{op['op_id']}",
                                 data={"csrf_token": token, "decision": decision, "password": password, "note": "核实"})
                assert r.status_code == 303

            r = await c.post(f"/console/quarantine/{cheap['op_id']}", data={"decision": "accept",
                                                                            "password": STAFF_PASSWORDS["ADM"]})
            assert r.status_code == 403                                              # no CSRF token
            await decide(cheap, "accept", STAFF_PINS["ADM"])                         # the PIN decides nothing
            assert _order(cheap)["id"] not in _state(ctx)["orders"]
            await decide(cheap, "accept", STAFF_PASSWORDS["ADM"])
            await decide(cheap2, "reject", STAFF_PASSWORDS["ADM"])
            await decide(cheap, "accept", STAFF_PASSWORDS["ADM"])                    # once
            done = await c.get("/console/quarantine", params={"status": "accepted"})
            assert f'id="op-{cheap["op_id"]}"' in done.text and f'id="op-{cheap2["op_id"]}"' not in done.text

    asyncio.run(scenario())
    state = _state(ctx)
    assert _order(cheap)["id"] in state["orders"] and _order(cheap2)["id"] not in state["orders"] and state["intact"]
    with ctx.app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order).where(Order.id == _order(cheap)["id"])) == 1
        acts = [(e.actor, e.action, e.subject) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action.like("quarantine.%")).order_by(AuditEntry.seq))]
    assert acts == [("ADM", "quarantine.accept", cheap["op_id"]), ("ADM", "quarantine.reject", cheap2["op_id"])]


def test_malformed_ops_are_answered_alone_never_failing_the_push(hostile):
    """Keys that are not text and rows that are not lists (found by fuzzing the push): the
    API refuses them by their shape, each alone; the push itself (reached by whatever
    passes the API's shape check) answers each alone too, and lists them."""
    from kiosk.district.domain.push import apply_push
    from kiosk.district.domain.terminals import hash_token

    def ops():
        return [_op("consent", {"face_consents": [{"id": {"a": 1}, "resident_id": ["R0001"], "staff_id": "S01"}]}),
                _op("order.void", {"order_voids": [{"id": str(uuid.uuid4()), "order_id": {"x": 1},
                                                    "staff_id": "S01"}]}),
                _op("order.settle", {"orders": 1})]

    before = _state(hostile)
    res = hostile.push("C1", *ops())
    assert [r["status"] for r in res] == ["rejected"] * 3 and all(r["error"] for r in res)
    assert _state(hostile) == before
    direct = ops()
    res, _, _ = apply_push(hostile.app, hash_token(hostile.d.tokens["C1"][1]), direct)
    assert [r["status"] for r in res] == ["quarantined"] * 3 and all(r["error"] for r in res)
    assert _state(hostile) == before
    for op in direct:
        assert _listed(hostile, op["op_id"])["reason"]


def test_an_op_id_with_odd_characters_is_not_kept_and_the_page_encodes_ids(hostile):
    """Terminals' op ids are UUIDs: one with a control character is answered and not kept
    (it would break the console's links); a printable one with a slash or a space is kept
    and its link on the page is encoded."""
    odd = _restate(_sale(_quote(hostile, "C1", "R0001", ["D001"]), "C1"), price=100)
    odd["op_id"] = "bad\x1aid"
    res = hostile.push("C1", odd)[0]
    assert res["status"] == "rejected" and "bad op id" in res["error"]
    slash = _restate(odd, price=100)
    slash["op_id"] = "a/b c?d"
    assert hostile.push("C1", slash)[0]["status"] == "quarantined"
    from kiosk.district.domain.quarantine import list_quarantine

    assert not any("\x1a" in x["op_id"] for x in list_quarantine(hostile.app))

    import asyncio
    import re

    from tests.test_console_pages import client, log_in

    async def reject_on_the_page():
        async with client(hostile.client.app) as c:
            await log_in(c, "ADM", STAFF_PASSWORDS["ADM"])
            page = (await c.get("/console/quarantine")).text
            assert '/quarantine/a/b%20c%3Fd"' in page
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            r = await c.post("/console/quarantine/a/b%20c%3Fd", data={"csrf_token": token, "decision": "reject",
                                                                     "password": STAFF_PASSWORDS["ADM"]})
            assert r.status_code == 303

    asyncio.run(reject_on_the_page())
    assert {x["op_id"]: x["status"] for x in list_quarantine(hostile.app, status=None)}["a/b c?d"] == "rejected"


def test_a_template_that_ages_with_the_elder_needs_its_refresh_record_not_staff(hostile):
    """A refreshed template (source ``refresh``, the system's act on the elder's consent,
    audited by ``kiosk``) passes the canteen check with its ``face.template_refresh``
    entry; without it, or passed off by a forged entry of another kind, it does not."""
    from kiosk.district.domain.scope import check_op

    def payload(audit_rows):
        return {"ops": [{"kind": "faces.enroll", "resident_id": "R0001"}], "deleted": {},
                "rows": {"face_templates": [{"id": str(uuid.uuid4()), "resident_id": "R0001", "source": "refresh"}],
                         "audit_log": audit_rows}}

    with hostile.app.db.session() as s:
        assert check_op(s, "C1", payload([_audit("kiosk", "face.template_refresh", "R0001")])) == []
        assert check_op(s, "C1", payload([]))
        assert check_op(s, "C1", payload([_audit("kiosk", "face.template_refresh", "R0002")]))
