"""quote -> settle, the ledger, voids, top-ups and limits across canteens."""
import json
from datetime import datetime

import pytest
from sqlalchemy import select

from kiosk.cli.main import main
from kiosk.config import load_settings
from kiosk.db.models import AuditEntry, LedgerEntry, Order
from kiosk.errors import (BillingError, InsufficientBalanceError, NotFoundError, PermissionDeniedError,
                          SoldOutError)
from kiosk.services.context import App
from kiosk.services.importing import import_menu, import_policy, import_roster
from kiosk.timeutil import CST

from tests.billing_helpers import settle_at_once
from tests.conftest import staff_actor

LUNCH = datetime(2026, 11, 23, 12, 5, tzinfo=CST)
DINNER = datetime(2026, 11, 23, 17, 30, tzinfo=CST)


def ledger(app, resident):
    with app.db.session() as s:
        return [(e.kind, e.amount_fen, e.affects_balance) for e in
                s.scalars(select(LedgerEntry).where(LedgerEntry.resident_id == resident).order_by(LedgerEntry.created_at))]


def test_settle_records_order_and_ledger(shop):
    r = shop.billing.settle("R0001", ["D001", "D005"], at=LUNCH, pay="cash")
    assert (r.meal, r.total_fen, r.subsidy_fen, r.to_pay_fen, r.tier) == ("午餐", 1300, 500, 800, "八十岁及以上")
    assert sorted(ledger(shop, "R0001")) == sorted([("charge", 1300, False), ("subsidy", 500, False), ("payment", 800, False)])


def test_meal_from_time_windows_and_outside(shop):
    with pytest.raises(BillingError, match="不在供餐时间"):
        shop.billing.quote("R0001", ["D001"], at=datetime(2026, 11, 23, 15, 0, tzinfo=CST))
    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).meal == "午餐"
    # a time given in UTC is taken in China Standard Time: 04:05Z is 12:05 CST
    assert shop.billing.quote("R0001", ["D001"], at=datetime.fromisoformat("2026-11-23T04:05+00:00")).meal == "午餐"
    # a window's last minute is whole: lunch ends 13:30, so 13:30:59 is lunch and 13:31 is not
    assert shop.billing.quote("R0001", ["D001"], at=datetime(2026, 11, 23, 13, 30, 59, tzinfo=CST)).meal == "午餐"
    with pytest.raises(BillingError, match="不在供餐时间"):
        shop.billing.quote("R0001", ["D001"], at=datetime(2026, 11, 23, 13, 31, tzinfo=CST))


def test_double_settle_records_once(shop):
    a = shop.billing.settle("R0002", ["D003"], at=LUNCH, idempotency_key="k-1")
    b = shop.billing.settle("R0002", ["D003"], at=LUNCH, idempotency_key="k-1")
    assert a.order_id == b.order_id and b.replayed
    with shop.db.session() as s:
        assert len(s.scalars(select(Order)).all()) == 1


@pytest.mark.parametrize("change,what", [({"resident_id": "R0001"}, "居民"),
                                         ({"dish_ids": ["D003", "D003"]}, "菜品"),
                                         ({"dish_ids": ["D001"]}, "菜品"),
                                         ({"pay": "card"}, "付款方式")])
def test_idempotency_key_is_bound_to_its_request(shop, change, what):
    """The same key with another resident, other dishes or another payment is refused;
    nobody gets another elder's receipt, and nothing is recorded."""
    from kiosk.errors import IdempotencyConflictError

    first = shop.billing.settle("R0002", ["D003"], at=LUNCH, idempotency_key="k-2")
    req = {"resident_id": "R0002", "dish_ids": ["D003"], "pay": "cash", **change}
    with pytest.raises(IdempotencyConflictError, match=what) as ei:
        shop.billing.settle(req["resident_id"], req["dish_ids"], pay=req["pay"], at=LUNCH, idempotency_key="k-2")
    assert "王德福" not in ei.value.user_message and first.order_id not in ei.value.user_message
    with shop.db.session() as s:
        assert len(s.scalars(select(Order)).all()) == 1


def test_cli_idempotency_key_reused_for_another_resident_exits_2(shop, capsys):
    args = ["checkout", "--dish", "D003", "--at", "2026-11-23T12:05", "--idempotency-key", "k-3", "--json"]
    assert main(args[:1] + ["--resident", "R0002"] + args[1:]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args[:1] + ["--resident", "R0002"] + args[1:]) == 0            # a retry: the same receipt
    assert json.loads(capsys.readouterr().out)["order_id"] == first["order_id"]
    assert main(args[:1] + ["--resident", "R0001"] + args[1:]) == 2
    out = json.loads(capsys.readouterr().out)
    assert "请求编号" in out["error"] and "居民" in out["error"] and "order_id" not in out


def test_two_terminals_settling_at_once_share_the_daily_limit(shop, monkeypatch):
    """Two terminals (two engines on one store, as two processes would be) settle a lunch
    for the same elder at the same moment; each reads today's usage before writing. One
    subsidy a day: exactly one of the two meals gets it."""
    other = App(shop.settings, engine=shop.engine)
    try:
        receipts = settle_at_once([shop, other], "R0001", ["D001"], LUNCH, monkeypatch)
    finally:
        other.close()
    assert sorted(r.subsidy_fen for r in receipts) == [0, 500]
    assert sorted(ledger(shop, "R0001")).count(("subsidy", 500, False)) == 1


def test_insufficient_balance_charges_nothing(shop):
    shop.billing.topup("R0002", 300, payer="子女", actor=staff_actor(shop))
    with pytest.raises(InsufficientBalanceError, match="余额不足"):
        shop.billing.settle("R0002", ["D001", "D003"], at=LUNCH, pay="balance")
    with shop.db.session() as s:
        assert s.scalars(select(Order)).all() == []
    assert shop.billing.balance("R0002") == 300
    shop.billing.topup("R0002", 2000, payer="子女 王小明", actor=staff_actor(shop))
    r = shop.billing.settle("R0002", ["D001", "D003"], at=LUNCH, pay="balance")
    assert r.to_pay_fen == 2200 - 600 and r.balance_after_fen == 2300 - 1600


def test_void_restores_balance_subsidy_and_stock(shop):
    shop.billing.topup("R0001", 5000, actor=staff_actor(shop))
    r = shop.billing.settle("R0001", ["D001"], at=LUNCH, pay="balance")
    assert shop.billing.balance("R0001") == 5000 - 700
    again = shop.billing.quote("R0001", ["D001"], at=LUNCH)  # a second lunch the same day
    assert again.quote.subsidy_fen == 0 and again.quote.reason == "今日已享受补贴"
    s01 = staff_actor(shop)
    res = shop.billing.void(r.order_id, "打错了菜", s01)
    assert res["refund_fen"] == 700 and shop.billing.balance("R0001") == 5000
    q = shop.billing.quote("R0001", ["D001"], at=LUNCH)
    assert q.quote.subsidy_fen == 500   # the subsidy is available again
    with pytest.raises(BillingError, match="已经作废"):
        shop.billing.void(r.order_id, "again", s01)
    with pytest.raises(PermissionDeniedError):          # a staff id alone is not a proven staff member
        shop.billing.void(r.order_id, "x", "S01")
    with shop.db.session() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "order.void")).one().actor == "S01"
    kinds = [k for k, _, _ in ledger(shop, "R0001")]
    assert kinds.count("reversal") == 1   # append-only: the original entries stay


def test_sold_out(shop, tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("日期,餐次,菜品编号,菜名,价格,类别,标签,过敏原,份数\n2026-11-23,午餐,X1,狮子头,9.00,荤菜,,,1\n", encoding="utf-8")
    import_menu(shop, p)
    shop.billing.settle("R0002", ["X1"], at=LUNCH)
    with pytest.raises(SoldOutError, match="已售完"):
        shop.billing.settle("R0001", ["X1"], at=LUNCH)


def test_dish_not_on_menu(shop):
    with pytest.raises(NotFoundError, match="不在 2026-11-23 晚餐 的菜单上"):
        shop.billing.settle("R0001", ["D001"], at=DINNER)
    with pytest.raises(NotFoundError, match="没有编号为 NOPE"):
        shop.billing.settle("NOPE", ["D001"], at=LUNCH)


def test_month_limit_across_canteens(app, formats, tmp_path, monkeypatch):
    """全城通: two canteens share one store; the month limit counts both."""
    import_policy(app, formats / "policy.example.yaml")
    import_roster(app, formats / "roster.example.csv")
    days = [f"2026-11-{d:02d}" for d in range(1, 31)]
    rows = "\n".join(f"{d},午餐,M1,套餐,20.00,套餐,,," for d in days)
    menu = tmp_path / "menu.csv"
    menu.write_text("日期,餐次,菜品编号,菜名,价格,类别,标签,过敏原,份数\n" + rows + "\n", encoding="utf-8")
    other = App(load_settings(canteen_id="east"), db=app.db, engine=app.engine)
    import_menu(app, menu)
    import_menu(other, menu)
    total = 0
    for i, d in enumerate(days):
        shop = app if i % 2 == 0 else other
        r = shop.billing.settle("R0001", ["M1"], at=datetime.fromisoformat(d + "T12:00").replace(tzinfo=CST))
        total += r.subsidy_fen
        if i < 29:
            assert r.subsidy_fen == 500
        else:   # the 30th meal: 150.00 - 29 * 5.00 = 5.00 left... exactly the tier
            assert r.subsidy_fen == 500
    assert total == 15000
    r = other.billing.quote("R0001", ["M1"], at=datetime(2026, 11, 30, 12, 0, tzinfo=CST))
    assert r.quote.subsidy_fen == 0 and r.quote.reason in ("今日已享受补贴", "本月补贴额度已用完")


def policy_with_80_plus_at(formats, tmp_path, yuan: float):
    """The example policy with the 八十岁及以上 tier's per-meal amount changed: a new version."""
    import yaml

    data = yaml.safe_load((formats / "policy.example.yaml").read_text(encoding="utf-8"))
    next(t for t in data["tiers"] if t["name"] == "八十岁及以上")["per_meal"] = yuan
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def test_a_new_policy_version_prices_the_next_quote(shop, formats, tmp_path):
    """The policy in force is cached briefly; an import drops it, so the very next quote
    uses the new version (the 80+ tier raised from 5.00 to 5.50)."""
    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).quote.subsidy_fen == 500
    p = policy_with_80_plus_at(formats, tmp_path, 5.50)
    assert import_policy(shop, p, replace=True).imported   # a changed tier amount: replaces it
    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).quote.subsidy_fen == 550


def test_settle_prices_on_the_newest_policy_even_when_quotes_are_cached(shop, formats, tmp_path):
    """Another process (a second App on the same store: its events are not this one's)
    imports a new policy version: this terminal's quotes may show the cached one for a few
    seconds, but what is settled and recorded uses the new one."""
    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).quote.subsidy_fen == 500
    p = policy_with_80_plus_at(formats, tmp_path, 5.50)
    other = App(shop.settings, engine=shop.engine)
    try:
        assert import_policy(other, p, replace=True).imported   # a changed tier amount: replaces it
    finally:
        other.close()
    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).quote.subsidy_fen == 500   # cached, briefly
    assert shop.billing.settle("R0001", ["D001"], at=LUNCH).subsidy_fen == 550


def test_the_catalogue_cache_follows_the_change_events(shop):
    """The catalogue is cached per generation: a change written behind the services' back
    (as a pull does) is not seen until a catalogue.changed event is told, then at once."""
    from sqlalchemy import update

    from kiosk.db.models import MenuItem
    from kiosk.services.events import CATALOGUE_CHANGED, Change

    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).quote.total_fen == 1200
    with shop.db.engine.begin() as c:
        c.execute(update(MenuItem).where(MenuItem.dish_id == "D001").values(price_fen=1500))
    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).quote.total_fen == 1200   # the cached menu
    generation = shop.billing.generation
    shop.events.notify(Change(CATALOGUE_CHANGED, {"via": "pull"}))
    assert shop.billing.generation == generation + 1
    assert shop.billing.quote("R0001", ["D001"], at=LUNCH).quote.total_fen == 1500


def test_month_limit_crossed_in_the_middle_of_a_meal(app, formats, tmp_path):
    import yaml
    data = yaml.safe_load((formats / "policy.example.yaml").read_text(encoding="utf-8"))
    data["limits"]["amount_per_month"] = 12.00
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    import_policy(app, p)
    import_roster(app, formats / "roster.example.csv")
    menu = tmp_path / "menu.csv"
    menu.write_text("日期,餐次,菜品编号,菜名,价格,类别,标签,过敏原,份数\n" +
                    "\n".join(f"2026-11-{d:02d},午餐,M1,套餐,20.00,套餐,,," for d in (1, 2, 3, 4)) + "\n", encoding="utf-8")
    import_menu(app, menu)
    got = [app.billing.settle("R0001", ["M1"], at=datetime(2026, 11, d, 12, tzinfo=CST)) for d in (1, 2, 3, 4)]
    assert [g.subsidy_fen for g in got] == [500, 500, 200, 0]
    assert "本月补贴额度只剩2.00元" in got[2].reason and got[3].reason == "本月补贴额度已用完"


def test_cli_checkout_json_keys_and_errors(env, formats, capsys):
    for args in (["policy", "import", str(formats / "policy.example.yaml")],
                 ["menu", "import", str(formats / "menu.example.csv")],
                 ["residents", "import", str(formats / "roster.example.csv")]):
        assert main(args) == 0
    capsys.readouterr()
    assert main(["checkout", "--resident", "R0001", "--dish", "D001", "--dish", "D005",
                 "--at", "2026-11-23T12:05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("resident_id", "meal", "total_fen", "subsidy_fen", "to_pay_fen", "tier")} == \
        {"resident_id": "R0001", "meal": "午餐", "total_fen": 1300, "subsidy_fen": 500, "to_pay_fen": 800, "tier": "八十岁及以上"}
    assert out["order_id"] and out["reason"]
    assert main(["checkout", "--resident", "R0002", "--dish", "D001", "--at", "2026-11-23T12:05",
                 "--pay", "balance", "--json"]) != 0
    assert "余额不足" in json.loads(capsys.readouterr().out)["error"]
    assert main(["checkout", "--resident", "R0002", "--dish", "D001", "--at", "2026-11-23T12:05",
                 "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["order_id"] is None
    assert main(["residents", "show", "R0001", "--at", "2026-11-24T09:00", "--json"]) == 0
    show = json.loads(capsys.readouterr().out)
    assert (show["age"], show["categories"], show["tier"], show["subsidy_fen"]) == (84, ["独居"], "八十岁及以上", 500)
    assert main(["recommend", "--resident", "R0001", "--at", "2026-11-23T12:00", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["dishes"] and {"dish_id", "name", "price_fen", "reason"} <= set(rec["dishes"][0])
    assert rec["to_pay_fen"] == sum(d["price_fen"] for d in rec["dishes"]) - rec["subsidy_fen"]


def test_monthly_subsidy_report(shop, tmp_path, capsys):
    from openpyxl import load_workbook

    from kiosk.services.reports import mask_id, monthly_subsidy, write_report

    a = shop.billing.settle("R0001", ["D001", "D005"], at=LUNCH)
    shop.billing.settle("R0002", ["D003"], at=LUNCH)
    shop.billing.settle("R0003", ["D004"], at=LUNCH)          # 户籍不符: no subsidy
    v = shop.billing.settle("R0001", ["D002"], at=LUNCH)       # second meal of the day, then voided
    shop.billing.void(v.order_id, "重复", staff_actor(shop))
    rep = monthly_subsidy(shop, "2026-11")
    assert (rep.meals, rep.subsidized_meals, rep.subsidy_fen) == (3, 2, 500 + 600)
    assert rep.paid_fen == (1300 - 500) + (1000 - 600) + 400
    by = {r["resident_id"]: r for r in rep.residents}
    assert by["R0001"]["id_number"] == "510107********0024" and by["R0001"]["subsidy_fen"] == a.subsidy_fen
    assert {t["tier"]: t["subsidy_fen"] for t in rep.by_tier} == {"八十岁及以上": 500, "低保及失能": 600}
    assert mask_id("") == ""
    out = write_report(shop, rep, tmp_path / "2026-11.xlsx", "S01")
    wb = load_workbook(out)
    assert wb.sheetnames == ["汇总", "明细"] and wb["明细"].max_row == 4
    assert monthly_subsidy(shop, "2026-10").meals == 0
    from kiosk.cli.main import main
    assert main(["report", "monthly", "--month", "2026-11", "--out", str(tmp_path / "r.csv")]) == 0
    assert "补贴合计 11.00 元" in capsys.readouterr().out
    assert (tmp_path / "r.csv").read_text(encoding="utf-8-sig").startswith("居民编号")
