"""报餐/报停: bookings counted per canteen and dish (the kitchen sheet, JSON and PDF), booking
and cancelling on the command line by a named staff member (audited), the 报餐单 file (the
example as it is; a broken row named by row, column and name, nothing half-imported), and
booked elders who did not come counted per canteen."""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from kiosk.cli.main import main
from kiosk.db.models import AuditEntry, MealBooking
from kiosk.errors import ImportFileError, PermissionDeniedError, ValidationError
from kiosk.services.bookings import (BookedRow, count_no_shows, import_bookings, kitchen_counts, kitchen_json,
                                     kitchen_sheet, no_shows, set_booking)
from kiosk.timeutil import CST, now_cst

from tests.conftest import STAFF_PINS, staff_actor

DAY = date(2026, 11, 23)          # the example menu's day (午餐 D001..D005)
LUNCH = datetime(2026, 11, 23, 11, 30, tzinfo=CST)


def bookings(app) -> dict:
    with app.db.session() as s:
        return {(b.resident_id, b.meal_date, b.meal): b for b in s.scalars(select(MealBooking))}


def audit_actions(app, action: str) -> list[AuditEntry]:
    with app.db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


# ------------------------------------------------------------------ pure rules
def test_kitchen_counts_per_dish_leave_out_cancellations():
    rows = [BookedRow("R1", "C1", DAY, "午餐", ("D001", "D002"), 1),
            BookedRow("R2", "C1", DAY, "午餐", ("D001",), 2),
            BookedRow("R3", "C1", DAY, "午餐", (), 1),
            BookedRow("R4", "C1", DAY, "午餐", ("D001",), 3, cancelled=True),
            BookedRow("R5", "C2", DAY, "午餐", ("D001",), 1)]
    c = kitchen_counts(rows)
    assert (c[("C1", "午餐")]["elders"], c[("C1", "午餐")]["portions"]) == (3, 4)
    assert dict(c[("C1", "午餐")]["dishes"]) == {"D001": 3, "D002": 1, "（食堂安排）": 1}
    assert dict(c[("C2", "午餐")]["dishes"]) == {"D001": 1}


def test_count_no_shows_by_canteen():
    rows = [BookedRow("R1", "C1", DAY, "午餐", (), 1), BookedRow("R2", "C1", DAY, "午餐", (), 1),
            BookedRow("R3", "C1", DAY, "午餐", (), 1, cancelled=True), BookedRow("R1", "C2", DAY, "晚餐", (), 1)]
    c = count_no_shows(rows, came={("R1", DAY, "午餐")})
    assert (c["C1"]["booked"], c["C1"]["came"], c["C1"]["no_show"]) == (2, 1, 1)
    assert c["C1"]["no_show_list"] == [("R2", DAY, "午餐")]
    assert c["C2"]["no_show"] == 1


# ------------------------------------------------------------------ the kitchen sheet
def test_bookings_counted_per_dish_json_and_pdf(shop, tmp_path):
    from pypdf import PdfReader

    from kiosk.services.report_files import write_report_file

    s01 = staff_actor(shop)
    set_booking(shop, "R0001", DAY, "午餐", actor=s01, dish_ids=["D001", "D002"], today=DAY)
    set_booking(shop, "R0002", DAY, "午餐", actor=s01, dish_ids=["D001"], portions=2, today=DAY)
    set_booking(shop, "R0003", DAY, "午餐", actor=s01, today=DAY)
    with pytest.raises(ValidationError, match="D999"):        # not on that day's menu
        set_booking(shop, "R0003", DAY, "午餐", actor=s01, dish_ids=["D999"], today=DAY)
    with pytest.raises(ValidationError, match="已经过去"):
        set_booking(shop, "R0003", DAY, "午餐", actor=s01, today=DAY + timedelta(days=1))
    rep = kitchen_json(shop, DAY)
    [c] = rep["canteens"]
    assert (c["canteen_id"], c["meal"], c["elders"], c["portions"]) == ("default", "午餐", 3, 4)
    assert {d["dish_id"]: d["portions"] for d in c["dishes"]} == {"D001": 3, "D002": 1, None: 1}
    assert {d["dish_id"]: d["name"] for d in c["dishes"]} == {"D001": "清蒸鲈鱼", "D002": "番茄炒蛋",
                                                             None: "（食堂安排）"}
    # a cancellation takes the elder's portions off
    set_booking(shop, "R0002", DAY, "午餐", actor=s01, cancel=True, today=DAY)
    c = kitchen_json(shop, DAY)["canteens"][0]
    assert {d["dish_id"]: d["portions"] for d in c["dishes"]} == {"D001": 1, "D002": 1, None: 1}
    out = write_report_file(kitchen_sheet(shop, DAY), tmp_path / "kitchen.pdf")
    text = "".join(p.extract_text() for p in PdfReader(out).pages)
    assert "厨房备餐单" in text and "清蒸鲈鱼" in text and "番茄炒蛋" in text


# ------------------------------------------------------------------ the command line
def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_book_and_cancel_by_a_named_staff_member_audited(shop, capsys, monkeypatch):
    tomorrow = now_cst().date() + timedelta(days=1)
    monkeypatch.setenv("KIOSK_STAFF_PIN", "0000")
    rc, out, err = run(capsys, "meals", "book", "--resident", "R0002", "--date", tomorrow, "--meal", "午餐",
                       "--staff", "S01")
    assert rc == 2 and "PIN" in err and bookings(shop) == {}
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["S01"])
    rc, out, err = run(capsys, "meals", "book", "--resident", "R0002", "--date", tomorrow, "--meal", "午餐",
                       "--dish", "D001", "--dish", "D003", "--portions", "2", "--json", "--staff", "S01")
    assert rc == 0, err
    res = json.loads(out)
    assert (res["name"], res["dish_ids"], res["portions"], res["cancelled"]) == ("王德福", ["D001", "D003"], 2, False)
    b = bookings(shop)[("R0002", tomorrow, "午餐")]
    assert (b.canteen_id, b.staff_id, b.source, b.cancelled) == ("default", "S01", "cli", False)
    [a] = audit_actions(shop, "meal.book")
    assert (a.actor, a.subject, a.detail["dish_ids"], a.detail["portions"]) == ("S01", "R0002", ["D001", "D003"], 2)
    rc, out, err = run(capsys, "meals", "cancel", "--resident", "R0002", "--date", tomorrow, "--meal", "午餐",
                       "--staff", "S01")
    assert rc == 0, err
    assert "已报停" in out
    assert bookings(shop)[("R0002", tomorrow, "午餐")].cancelled is True
    [c] = audit_actions(shop, "meal.cancel")
    assert (c.actor, c.subject, c.detail["date"]) == ("S01", "R0002", tomorrow.isoformat())
    assert kitchen_json(shop, tomorrow)["canteens"] == []
    # a day gone by, a meal that is not one
    rc, out, err = run(capsys, "meals", "book", "--resident", "R0002", "--date", "2020-01-01", "--meal", "午餐",
                       "--staff", "S01")
    assert rc == 2 and "已经过去" in err
    rc, out, err = run(capsys, "meals", "book", "--resident", "R0002", "--date", tomorrow, "--meal", "夜宵",
                       "--staff", "S01")
    assert rc == 2 and "餐次" in err
    rc, out, err = run(capsys, "report", "bookings", "--date", tomorrow, "--json")
    assert rc == 0 and json.loads(out)["portions"] == 0


def test_a_booking_needs_a_proven_staff_member(shop):
    with pytest.raises(PermissionDeniedError):
        set_booking(shop, "R0001", DAY, "午餐", actor="S01", today=DAY)       # a bare id proves nobody
    assert bookings(shop) == {}


# ------------------------------------------------------------------ the 报餐单
def test_the_example_file_imports_as_it_is(shop, formats, tmp_path):
    from kiosk.services.canteen import add_canteen

    add_canteen(shop, "C2", name="西街长寿食堂")
    dry = import_bookings(shop, formats / "bookings.example.csv", dry_run=True, today=DAY)
    assert dry.problems == [] and len(dry.rows) == 3 and bookings(shop) == {}
    rep = import_bookings(shop, formats / "bookings.example.csv", actor=staff_actor(shop), today=DAY)
    assert rep.imported and rep.to_json()["bookings"] == 2 and rep.to_json()["cancellations"] == 1
    b = bookings(shop)
    nov24 = date(2026, 11, 24)
    r1 = b[("R0001", nov24, "午餐")]
    assert (r1.canteen_id, r1.dish_ids, r1.portions, r1.cancelled) == ("default", ["D001", "D005"], 1, False)
    r2 = b[("R0002", nov24, "午餐")]
    assert (r2.canteen_id, r2.dish_ids, r2.portions) == ("C2", [], 2)
    assert b[("R0001", nov24, "晚餐")].cancelled is True
    [a] = audit_actions(shop, "meal.import")
    assert (a.actor, a.detail["bookings"], a.detail["cancellations"]) == ("S01", 2, 1)
    sheet = kitchen_json(shop, nov24)
    assert [(c["canteen_id"], c["portions"]) for c in sheet["canteens"]] == [("C2", 2), ("default", 1)]


def test_a_broken_row_is_named_and_nothing_is_imported(shop, tmp_path, capsys, monkeypatch):
    f = tmp_path / "bad.csv"
    f.write_text("日期,餐次,编号,身份证号,食堂,菜品编号,份数,报停\n"
                 "2026-11-24,午餐,R0001,,,D001,1,\n"
                 "2026-11-24,午餐,R0002,,,,两份,\n"
                 "2026-11-24,夜宵,,510107196305200044,,,,\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as exc:
        import_bookings(shop, f, actor=staff_actor(shop), today=DAY)
    probs = {(p["row"], p["column"]): p["message_zh"] for p in exc.value.problems}
    assert set(probs) == {(3, "份数"), (4, "餐次")}
    assert "王德福" in probs[(3, "份数")] and "刘秀英" in probs[(4, "餐次")]
    assert bookings(shop) == {} and audit_actions(shop, "meal.import") == []     # the good row is not written
    # the command line's dry run names them too, and writes nothing
    shutil.copy(f, tmp_path / "bad2.csv")
    rc, out, err = run(capsys, "meals", "import", tmp_path / "bad2.csv", "--dry-run")
    assert rc == 2
    assert "第3行「份数」" in out and "王德福" in out and "第4行「餐次」" in out
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["S01"])
    rc, out, err = run(capsys, "meals", "import", f, "--staff", "S01", "--json")
    assert rc == 2 and json.loads(out)["imported"] is False
    with shop.db.session() as s:
        assert s.scalar(select(func.count()).select_from(MealBooking)) == 0


# ------------------------------------------------------------------ no-shows
def test_a_booked_elder_who_did_not_come_is_counted(shop, capsys):
    s01 = staff_actor(shop)
    for rid in ("R0001", "R0002", "R0003"):
        set_booking(shop, rid, DAY, "午餐", actor=s01, today=DAY)
    set_booking(shop, "R0003", DAY, "午餐", actor=s01, cancel=True, today=DAY)    # 报停: not a no-show
    shop.billing.settle("R0001", ["D002"], at=LUNCH, pay="cash")
    voided = shop.billing.settle("R0002", ["D002"], at=LUNCH, pay="cash")
    shop.billing.void(voided.order_id, "点错了", s01)        # a voided meal is no meal
    rep = no_shows(shop, day=DAY, today=DAY + timedelta(days=1))
    [c] = rep["canteens"]
    assert (c["canteen_id"], c["booked"], c["came"], c["no_show"]) == ("default", 2, 1, 1)
    assert [(x["resident_id"], x["name"]) for x in c["no_shows"]] == [("R0002", "王德福")]
    month = no_shows(shop, month="2026-11", today=DAY + timedelta(days=1))
    assert (month["booked"], month["no_show"]) == (2, 1)
    rc, out, err = run(capsys, "report", "no-shows", "--month", "2026-11", "--json")
    assert rc == 0 and json.loads(out)["no_show"] == 1
    # today's bookings may still be eaten: not counted yet
    assert no_shows(shop, day=DAY, today=DAY)["canteens"] == []


# ------------------------------------------------------------------ a terminal's booking reaches the server
@pytest.fixture
def district(env, tmp_path, formats):
    from tests.district_helpers import District

    d = District(tmp_path, formats)
    d.start()
    yield d
    d.close()


def _sync(app):
    from kiosk.terminal.sync.client import SyncClient

    c = SyncClient(app)
    try:
        return c.sync()
    finally:
        c.close()


def _server_bookings(d) -> dict:
    app = d.server_app()
    try:
        return {(b.resident_id, b.meal_date, b.meal): (b.canteen_id, b.cancelled, b.terminal_id, b.source)
                for b in bookings(app).values()}
    finally:
        app.close()


def test_a_terminals_booking_reaches_the_server_for_its_own_canteen_only(district):
    from kiosk.db.models import AppliedOp, OutboxEntry

    d = district
    t1 = d.terminal("C1")
    _sync(t1)
    tid = d.tokens["C1"][0]
    today = now_cst().date()
    tomorrow = today + timedelta(days=1)
    # what the counter's 来 does (KioskService.answer_tomorrow): the kiosk's booking at this canteen
    set_booking(t1, "R0002", tomorrow, "午餐", canteen_id="C1", source="counter", today=today)
    with t1.db.session() as s:
        [op] = s.scalars(select(OutboxEntry)).all()
        assert op.kind == "booking.set" and len(op.payload["rows"]["meal_bookings"]) == 1
    r = _sync(t1)
    with t1.db.session() as s:
        why = [e.error for e in s.scalars(select(OutboxEntry))]
    assert (r.pushed, r.rejected) == (1, 0), (r, why)
    assert _server_bookings(d) == {("R0002", tomorrow, "午餐"): ("C1", False, tid, "counter")}
    app = d.server_app()
    try:
        a = audit_actions(app, "meal.book")
        assert [(x.actor, x.subject, x.detail.get("reported_by"), x.detail.get("terminal_id")) for x in a] == \
            [(f"terminal:{tid}", "R0002", "kiosk", tid)]
        assert kitchen_json(app, tomorrow)["canteens"][0]["portions"] == 1
    finally:
        app.close()
    # 不来 the next day's question: the cancellation follows
    set_booking(t1, "R0002", tomorrow, "午餐", canteen_id="C1", cancel=True, source="counter", today=today)
    assert _sync(t1).pushed == 1
    assert _server_bookings(d)[("R0002", tomorrow, "午餐")][:2] == ("C1", True)

    # a booking at another canteen, or for a resident the district does not know, is refused whole
    set_booking(t1, "R0003", tomorrow, "午餐", canteen_id="C1", source="counter", today=today)
    with t1.db.session() as s:
        [op] = s.scalars(select(OutboxEntry).where(OutboxEntry.status == "pending")).all()
        rows = op.payload["rows"]
        op.payload = {**op.payload, "rows": {**rows, "meal_bookings": [{**rows["meal_bookings"][0],
                                                                         "canteen_id": "C2"}]}}
    r = _sync(t1)
    assert r.pushed == 0, r
    assert ("R0003", tomorrow, "午餐") not in _server_bookings(d)
    app = d.server_app()
    try:
        with app.db.session() as s:
            [(status, err)] = s.execute(select(AppliedOp.status, AppliedOp.error)
                                        .where(AppliedOp.status != "applied")).all()
        assert status in ("quarantined", "rejected") and "C2" in err and "C1" in err
    finally:
        app.close()


# ------------------------------------------------------------------ the console's 报餐 page
def test_the_console_page_shows_the_kitchen_sheet_and_the_no_shows(shop):
    import asyncio
    import re

    import httpx

    from kiosk.district.app import create_app
    from tests.conftest import STAFF_PASSWORDS, add_test_passwords

    add_test_passwords(shop)
    s01 = staff_actor(shop)
    set_booking(shop, "R0001", DAY, "午餐", actor=s01, dish_ids=["D001"], today=DAY)
    set_booking(shop, "R0002", DAY, "午餐", actor=s01, dish_ids=["D001", "D003"], portions=2, today=DAY)
    shop.billing.settle("R0001", ["D001"], at=LUNCH, pay="cash")
    api = create_app(shop.settings, kiosk_app=shop)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://testserver") as c:
            page = await c.get("/console/login")
            pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = await c.post("/console/login", data={"csrf_token": pre, "staff_id": "SUP",
                                                      "password": STAFF_PASSWORDS["SUP"]})
            assert r.status_code == 303, r.text
            html = (await c.get(f"/console/bookings?day={DAY}&month=2026-11")).text
            pdf = await c.get(f"/console/bookings/kitchen.pdf?day={DAY}")
            bad = await c.get("/console/bookings?day=2026-13-40")
            return html, pdf, bad

    html, pdf, bad = asyncio.run(scenario())
    assert 'href="/console/bookings"' in html and "报餐（厨房备餐单）" in html
    # per dish: 清蒸鲈鱼 D001 1 + 2 = 3 portions, 回锅肉 D003 2
    assert re.search(r"<td>D001</td><td>清蒸鲈鱼</td><td class=\"num\">3</td>", html), html
    assert re.search(r"<td>D003</td><td>回锅肉</td><td class=\"num\">2</td>", html)
    # the no-shows of the month: 王德福 booked and did not come; 张桂兰 came
    row = re.search(r'<tr class="bad"><td>[^<]*（default）</td>(.*?)</tr>', html, re.S).group(1)
    assert '<td class="num">2</td><td class="num">1</td><td class="num">1</td>' in row
    assert "王德福（R0002" in row and "张桂兰" not in row
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert bad.status_code == 400 and "日期" in bad.text
    exports = [a for a in audit_actions(shop, "console.export") if a.subject == f"bookings {DAY}"]
    assert [(a.actor, a.detail["format"]) for a in exports] == [("SUP", "pdf")]


def test_a_resident_moved_away_or_deceased_by_that_day_cannot_be_booked(shop, tmp_path):
    from kiosk.db.models import Resident

    with shop.db.session() as s:
        r = s.get(Resident, "R0003")
        r.roster_status, r.status_date = "deceased", DAY + timedelta(days=1)
    s01 = staff_actor(shop)
    set_booking(shop, "R0003", DAY, "午餐", actor=s01, today=DAY)          # the day before: still booked
    with pytest.raises(ValidationError, match="死亡"):
        set_booking(shop, "R0003", DAY + timedelta(days=1), "午餐", actor=s01, today=DAY)
    f = tmp_path / "b.csv"
    f.write_text("日期,餐次,编号\n2026-11-24,午餐,R0003\n", encoding="utf-8")
    [p] = import_bookings(shop, f, dry_run=True, today=DAY).problems
    assert (p.row, p.column) == (2, "编号") and "死亡" in p.message_zh and "刘秀英" in p.message_zh
