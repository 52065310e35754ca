"""The roster's 状态 / 状态日期: imported as the format says, no subsidy from the date
(暂停, 迁出, 死亡), no checkout for 迁出 / 死亡 (at a terminal after its next sync), and an
offline terminal's sale after the date flagged for reconciliation."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, strategies as st
from sqlalchemy import select

from kiosk.billing.status import checkout_refusal, no_subsidy_reason, status_in_effect
from kiosk.billing.subsidy import ResidentFacts, Usage, decide_subsidy
from kiosk.db.models import DistrictFlag, Resident
from kiosk.errors import ResidentStatusError
from kiosk.services.importing import import_roster
from kiosk.timeutil import CST, now_cst

from tests.district_helpers import District

HEAD = "编号,姓名,身份证号,性别,出生日期,户籍,联系电话,人员类别,饮食禁忌,卡号,照片,紧急联系人,人脸授权,状态,状态日期"
ZHANG = "R0001,张桂兰,510107194203150024,女,1942-03-15,武侯区,13800000001,独居,低糖;软食,ZL0001,,,是"
WANG = "R0002,王德福,510107195011020035,男,1950-11-02,武侯区,13800000002,低保,低盐,ZL0002,,,是"
LIU = "R0003,刘秀英,510107196305200044,女,1963-05-20,锦江区,,,,,,,否"


def roster(path, *rows: str):
    path.write_text(HEAD + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def stored(app, rid):
    with app.db.session() as s:
        r = s.get(Resident, rid)
        return r.roster_status, r.status_date


# ---------------------------------------------------------------------- import
def test_roster_status_columns_import_and_update(app, tmp_path):
    rep = import_roster(app, roster(tmp_path / "a.csv", ZHANG + ",在册,", WANG + ",死亡,2026-11-20", LIU + ",,"))
    assert rep.imported and not rep.problems
    assert stored(app, "R0001") == ("registered", None)
    assert stored(app, "R0002") == ("deceased", date(2026, 11, 20))
    assert stored(app, "R0003") == ("registered", None)          # blank: the default for a new resident
    # an update: a blank 状态 keeps the stored one; 暂停 with its date; 在册 restores
    rep = import_roster(app, roster(tmp_path / "b.csv", ZHANG + ",暂停,2026-12-01", WANG + ",,", LIU + ",迁出,2026-12-02"))
    assert not rep.problems
    assert stored(app, "R0001") == ("suspended", date(2026, 12, 1))
    assert stored(app, "R0002") == ("deceased", date(2026, 11, 20))
    assert stored(app, "R0003") == ("moved", date(2026, 12, 2))
    changed = {u["resident_id"]: u["changed"] for u in rep.updated}
    assert changed["R0001"]["roster_status"] == ["在册", "暂停"] and "R0002" not in changed
    rep = import_roster(app, roster(tmp_path / "c.csv", ZHANG + ",在册,", WANG + ",在册,"))
    assert stored(app, "R0001") == ("registered", None) and stored(app, "R0002") == ("registered", None)
    assert any("王德福" in w and "死亡" in w for w in rep.warnings)   # a deceased restored: said so


@pytest.mark.parametrize("cells, column, needle", [
    (",已故,2026-11-20", "状态", "在册、暂停、迁出 或 死亡"),
    (",死亡,", "状态日期", "必须填状态日期"),
    (",暂停,2026/13/40", "状态日期", "格式不对"),
    (",,2026-11-20", "状态日期", "没有填状态"),
    (",迁出,1940-01-01", "状态日期", "早于出生日期"),
])
def test_bad_status_cells_are_named_by_row_column_and_name(app, tmp_path, cells, column, needle):
    rep = import_roster(app, roster(tmp_path / "bad.csv", ZHANG + ",在册,", WANG + cells))
    assert not rep.imported
    [p] = rep.problems
    assert (p.row, p.column) == (3, column)
    assert needle in p.message_zh and p.message_zh.startswith("王德福：")


# ---------------------------------------------------------------------- the rules
def facts(status="registered", since=None):
    return ResidentFacts("R", date(1940, 1, 1), "武侯区", frozenset({"低保"}), status, since)


def test_no_subsidy_from_the_status_date(shop):
    from kiosk.services.importing import policy_in_force

    with shop.db.session() as s:
        policy, _ = policy_in_force(s, date(2026, 11, 23), None)
    day = date(2026, 11, 23)
    assert decide_subsidy(policy, facts(), day, "午餐", 1500, Usage()).subsidy_fen > 0
    assert decide_subsidy(policy, facts("suspended", day + timedelta(days=1)), day, "午餐", 1500,
                          Usage()).subsidy_fen > 0                       # not yet
    dec = decide_subsidy(policy, facts("suspended", day), day, "午餐", 1500, Usage())
    assert dec.subsidy_fen == 0 and "暂停" in dec.reason and "2026-11-23" in dec.reason
    # at the counter: a suspended elder still eats, without subsidy, from the date
    at = datetime(2026, 11, 23, 12, 0, tzinfo=CST)
    before = shop.billing.quote("R0002", ["D001", "D005"], at=at)
    assert before.quote.subsidy_fen > 0
    with shop.db.session() as s:
        r = s.get(Resident, "R0002")
        r.roster_status, r.status_date = "suspended", date(2026, 11, 23)
    rec = shop.billing.settle("R0002", ["D001", "D005"], at=at, pay="cash")
    assert rec.subsidy_fen == 0 and rec.to_pay_fen == rec.total_fen and "暂停" in rec.reason


@given(st.sampled_from(["suspended", "moved", "deceased"]), st.integers(-400, 400))
def test_status_rules_hold_from_the_date_on(status, offset):
    since, day = date(2026, 6, 1), date(2026, 6, 1) + timedelta(days=offset)
    in_effect = offset >= 0
    assert (status_in_effect(status, since, day) is not None) == in_effect
    assert (no_subsidy_reason(status, since, day) is not None) == in_effect
    assert (checkout_refusal("王德福", status, since, day) is not None) == (in_effect and status != "suspended")
    assert status_in_effect("registered", since, day) is None and status_in_effect(status, None, day) is None


# ---------------------------------------------------------------------- the district
@pytest.fixture
def district(env, tmp_path, formats):
    d = District(tmp_path, formats)
    d.start()
    yield d
    d.close()


def sync(app):
    from kiosk.terminal.sync.client import SyncClient

    c = SyncClient(app)
    try:
        return c.sync()
    finally:
        c.close()


def test_deceased_refused_at_a_terminal_after_its_next_sync_and_an_offline_sale_flagged(district, tmp_path):
    d = district
    t1, t2 = d.terminal("C1"), d.terminal("C2")
    sync(t1)
    sync(t2)
    today = now_cst().date()
    assert t1.billing.settle("R0001", ["D001"], meal="午餐", pay="cash").order_id   # selling as usual
    sync(t1)
    # the office records 王德福 as deceased from today
    f = roster(tmp_path / "dead.csv", WANG + f",死亡,{today.isoformat()}")
    d.cli("residents", "import", str(f), "--staff", "ADM", env={"KIOSK_STAFF_PASSWORD": "adm-console-246810"})
    # canteen 2 has not synced since: it still sells (offline, or not yet pulled)
    late = t2.billing.settle("R0002", ["D002"], meal="午餐", pay="cash")
    # canteen 1 syncs: the next checkout is refused in plain words
    sync(t1)
    with pytest.raises(ResidentStatusError) as ei:
        t1.billing.settle("R0002", ["D001"], meal="午餐", pay="cash")
    assert "王德福" in ei.value.user_message and "死亡" in ei.value.user_message
    assert "请找工作人员" in ei.value.user_message
    from kiosk.terminal.counter import KioskService     # the counter refuses before showing the menu

    lunch = datetime.combine(today, datetime.min.time(), CST).replace(hour=12)
    with pytest.raises(ResidentStatusError, match="请找工作人员"):
        KioskService(t1).checkout.greet("R0002", at=lunch)
    assert KioskService(t1).checkout.greet("R0001", at=lunch).name == "张桂兰"
    # canteen 2's sale reaches the server: flagged for reconciliation
    r2 = sync(t2)
    assert late.subsidy_fen > 0
    assert [x["kind"] for x in r2.flagged] == ["resident_status"]
    assert r2.flagged[0]["order_id"] == late.order_id
    with pytest.raises(ResidentStatusError):         # and canteen 2 refuses from now on
        t2.billing.settle("R0002", ["D002"], meal="午餐", pay="cash")
    rep = json.loads(d.cli("report", "reconcile", "--month", today.strftime("%Y-%m"), "--json").stdout)
    [flag] = [x for x in rep["flagged"] if x["kind"] == "resident_status"]
    assert flag["order_id"] == late.order_id and flag["over_fen"] == late.subsidy_fen
    assert flag["group"] == "subsidy_excess" and "死亡" in flag["reason"]
    app = d.server_app()
    try:
        with app.db.session() as s:
            assert s.scalars(select(DistrictFlag.kind)).all() == ["resident_status"]
    finally:
        app.close()
