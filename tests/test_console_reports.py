"""The district console's services, without a browser: import plans (dry run, keep
blank, 清除, overlapping tiers), the report tables and their xlsx/PDF files, welfare
alerts, proof of life, the face register's filing line, console logins, and the
`kiosk report ...` commands. One small store is built once for the module."""
from __future__ import annotations

import io
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from kiosk.config import get_settings
from kiosk.timeutil import CST

from tests.conftest import FORMATS
from tests.test_postgres import pg_url  # noqa: F401  (the throwaway PostgreSQL cluster fixture)

MONTH = "2026-11"
ADMIN_PIN = "86420135"
SUPERVISOR_PIN = "97531"
ADMIN_PASSWORD = "区管理员 console-2026"        # the console's passwords (never a PIN)
SUPERVISOR_PASSWORD = "supervisor-97531-west"
MENU_DAYS = range(2, 21)


# ------------------------------------------------------------------------------ the store
def _write_menu(path: Path) -> Path:
    rows = ["日期,餐次,菜品编号,菜名,价格,类别,标签,过敏原,份数"]
    for d in MENU_DAYS:
        rows.append(f"2026-11-{d:02d},午餐,D001,清蒸鲈鱼,12.00,荤菜,低脂,鱼,")
        rows.append(f"2026-11-{d:02d},午餐,D005,米饭,1.00,主食,,,")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def seed(home: Path) -> dict:
    """A district of two canteens, the example roster and policy, a month of lunches.
    KIOSK_HOME and KIOSK_TEMPLATE_KEY must be set. Returns what the tests compare with."""
    from kiosk.db.models import Canteen, Terminal
    from kiosk.services import import_plan
    from kiosk.services.context import App

    get_settings.cache_clear()
    app = App()
    app.residents.add_staff("A1", "区管理员", "admin", ADMIN_PIN)
    admin = app.residents.authenticate(ADMIN_PIN, min_role="admin", staff_id="A1").get("actor")
    app.residents.add_staff("S1", "巡访主管", "supervisor", SUPERVISOR_PIN, actor=admin)
    from kiosk.district.domain import passwords

    passwords.set_password(app, "A1", ADMIN_PASSWORD, actor=admin)
    passwords.set_password(app, "S1", SUPERVISOR_PASSWORD, actor=admin)
    with app.db.session() as s:
        s.add(Canteen(id="C1", name="东街长寿食堂", district="武侯区"))
        s.add(Canteen(id="C2", name="西街长寿食堂", district="武侯区"))
        s.flush()
        s.add(Terminal(id="C1-T1", canteen_id="C1", name="东街1号机", software_version="0.1.0",
                       model="sface-2021dec", pending=2))
    for kind, path in (("roster", FORMATS / "roster.example.csv"), ("menu", _write_menu(home.parent / "menu.csv")),
                       ("policy", FORMATS / "policy.example.yaml")):
        plan = import_plan.PLANNERS[kind](app, path)
        assert not plan.problems, plan.to_json()
        import_plan.APPLIERS[kind](app, plan, "A1")
    c1 = App(app.settings.model_copy(update={"canteen_id": "C1"}), db=app.db)
    c2 = App(app.settings.model_copy(update={"canteen_id": "C2"}), db=app.db)
    orders = []

    def lunch(at_app, rid, day, face=False, live=False):
        r = at_app.billing.settle(rid, ["D001", "D005"], pay="cash", at=datetime(2026, 11, day, 12, 0, tzinfo=CST),
                                  identified_by="face" if face else "card", terminal_id="C1-T1" if face else None,
                                  face_verified=face or None, liveness_passed=live if face else None)
        orders.append(r)
        return r

    # 张桂兰 (R0001, born 1942, 独居): lunches on 2-6 Nov at C1; face + liveness on 2, 3, 5
    for day, face in ((2, True), (3, True), (4, False), (5, True), (6, False)):
        lunch(c1, "R0001", day, face=face, live=True)
    # face matched but liveness failed on the 6th is no proof: record one more order like that
    lunch(c2, "R0001", 6, face=True, live=False)    # second lunch that day: full price (1 subsidised meal a day)
    # 王德福 (R0002, 低保): two lunches at C2
    lunch(c2, "R0002", 10)
    lunch(c2, "R0002", 11)
    # a flag as the district server records it when an offline terminal's push breaks a limit
    from kiosk.db.models import DistrictFlag

    with app.db.session() as s:
        s.add(DistrictFlag(id="F1", order_id=orders[5].order_id, resident_id="R0001", meal_date=date(2026, 11, 6),
                           kind="daily_meals", over_fen=500, order_ids=[orders[4].order_id, orders[5].order_id]))
    return {"app": app, "orders": orders, "admin": admin}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from kiosk.services.security import generate_key

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("console") / "home"
    mp.setenv("KIOSK_HOME", str(home))
    mp.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    mp.delenv("KIOSK_DATABASE_URL", raising=False)
    mp.setenv("KIOSK_AUDIO", "off")
    try:
        data = seed(home)
        data["home"] = home
        yield data
    finally:
        data_app = locals().get("data", {}).get("app")
        if data_app is not None:
            data_app.close()
        mp.undo()
        get_settings.cache_clear()


def _resident(app, rid):
    from kiosk.db.models import Resident

    with app.db.session(read_only=True) as s:
        return s.get(Resident, rid)


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------------------ imports
def test_roster_plan_keeps_blank_cells_clears_with_qingchu_and_writes_nothing(store, tmp_path):
    from kiosk.services import import_plan

    app = store["app"]
    before = _resident(app, "R0001")
    f = _csv(tmp_path, "update.csv", "编号,姓名,身份证号,户籍,联系电话,人员类别,卡号,饮食禁忌\n"
                                     "R0001,,510107194203150024,,清除,残疾:二级;独居,,\n")
    plan = import_plan.plan_roster(app, f)
    assert plan.problems == [] and len(plan.change) == 1 and not plan.add
    ch = plan.change[0].changes
    assert ch["联系电话"] == ["13800000001", ""]
    assert ch["人员类别"] == ["独居", "残疾:二级、独居"]
    assert "卡号" not in ch and "饮食禁忌" not in ch and "姓名" not in ch   # blank cells keep
    after_dry = _resident(app, "R0001")
    assert (after_dry.phone, after_dry.categories, after_dry.updated_at) == \
        (before.phone, before.categories, before.updated_at)             # the dry run wrote nothing
    import_plan.apply_roster(app, plan, "A1")
    r = _resident(app, "R0001")
    assert r.phone is None and r.categories == ["残疾:二级", "独居"]
    assert r.card_no == "ZL0001" and r.diet_tags == before.diet_tags and r.name == "张桂兰"
    # put it back for the other tests
    f2 = _csv(tmp_path, "back.csv", "编号,姓名,身份证号,户籍,联系电话,人员类别\nR0001,,510107194203150024,,13800000001,独居\n")
    import_plan.apply_roster(app, import_plan.plan_roster(app, f2), "A1")
    assert _resident(app, "R0001").phone == "13800000001"


def test_roster_plan_names_every_bad_row_and_column(store, tmp_path):
    from kiosk.services import import_plan

    f = _csv(tmp_path, "bad.csv", "编号,姓名,身份证号,户籍,人员类别,联系电话\n"
                                  "R0101,赵一,510107194001010015,武侯区,高龄,\n"           # good (new)
                                  "R0102,钱二,510107194001010024,武侯区,,\n"               # bad checksum
                                  "R0103,孙三,510107194402020038,武侯区,残疾:五级,\n"     # bad grade
                                  "R0001,,510107194203150024,清除,,\n")                   # 户籍 cannot be cleared
    plan = import_plan.plan_roster(store["app"], f)
    where = sorted((p.row, p.column) for p in plan.problems)
    assert where == [(3, "身份证号"), (4, "人员类别"), (5, "户籍")], plan.to_json()["problems"]
    assert [p.key for p in plan.add] == ["R0101"]
    assert plan.blocked
    with pytest.raises(Exception) as exc:
        import_plan.apply_roster(store["app"], plan, "A1")
    assert "3 处错误" in str(exc.value)
    assert _resident(store["app"], "R0101") is None


def test_roster_plan_reads_xlsx_and_warns_that_photos_are_not_taken(store, tmp_path):
    from openpyxl import Workbook

    from kiosk.services import import_plan

    wb = Workbook()
    ws = wb.active
    ws.append(["编号", "姓名", "身份证号", "户籍", "联系电话", "照片", "人脸授权"])
    ws.append(["R0003", None, "510107196305200044", None, 13912345678, "liu_1.jpg", "是"])
    f = tmp_path / "roster.xlsx"
    wb.save(f)
    plan = import_plan.plan_roster(store["app"], f)
    assert plan.problems == [] and [p.changes for p in plan.change] == [{"联系电话": ["", "13912345678"]}]
    assert any("照片" in w and "人脸授权" in w for w in plan.warnings)


def test_menu_plan_rows_per_canteen_and_unknown_canteen(store, tmp_path):
    from kiosk.services import import_plan

    f = _csv(tmp_path, "menu.csv", "日期,餐次,菜品编号,菜名,价格,食堂\n"
                                   "2026-11-25,午餐,D101,红烧豆腐,5.00,C1\n"
                                   "2026-11-25,午餐,D102,紫菜蛋汤,2.00,\n"
                                   "2026-11-25,午餐,D103,炒青菜,3.00,C9\n")
    plan = import_plan.plan_menu(store["app"], f)
    assert [(p.row, p.column) for p in plan.problems] == [(4, "食堂")]
    assert sorted(p.key for p in plan.add) == ["C1 2026-11-25 午餐 D101", "C1 2026-11-25 午餐 D102",
                                               "C2 2026-11-25 午餐 D102"]
    f2 = _csv(tmp_path, "menu2.csv", "日期,餐次,菜品编号,菜名,价格\n2026-11-02,午餐,D001,清蒸鲈鱼,13.00\n")
    plan2 = import_plan.plan_menu(store["app"], f2, canteen_id="C2")
    assert [(p.key, p.changes) for p in plan2.change] == [("C2 2026-11-02 午餐 D001", {"价格": ["12.00", "13.00"]})]


def _policy(tmp_path: Path, pid: str, tiers: str, name: str = "测试政策") -> Path:
    return _csv(tmp_path, f"{pid}.yaml", f"""id: {pid}
name: {name}
district: 武侯区
effective_from: 2026-12-01
effective_to: 2026-12-31
eligibility: {{min_age: 60, hukou: [武侯区]}}
subsidized_meals: [午餐]
tiers:
{tiers}
""")


def test_policy_overlapping_tier_is_refused_naming_both_unless_replacing(store, tmp_path):
    from kiosk.errors import ValidationError
    from kiosk.services import import_plan

    app = store["app"]
    f = _policy(tmp_path, "wuhou-dec", "  - {name: 低保, match: {categories: [低保]}, per_meal: 1.00}\n")
    plan = import_plan.plan_policy(app, f)
    assert plan.blocked and len(plan.conflicts) == 1
    text = plan.conflicts[0].text()
    assert "低保 每餐1.00元" in text and "低保及失能 每餐6.00元" in text and "wuhou-2026" in text
    with pytest.raises(ValidationError):
        import_plan.apply_policy(app, plan, "A1")
    replacing = import_plan.plan_policy(app, f, replace=True)
    assert not replacing.blocked
    assert any("2026-12-01至2026-12-31" in w and "wuhou-2026" in w for w in replacing.warnings)
    import_plan.apply_policy(app, replacing, "A1")
    from kiosk.db.models import AuditEntry, SubsidyPolicy

    with app.db.session(read_only=True) as s:
        assert s.scalars(select(SubsidyPolicy).where(SubsidyPolicy.policy_id == "wuhou-dec")).first() is not None
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.policy",
                                                   AuditEntry.subject == "wuhou-dec")).first()
        assert entry.actor == "A1" and "低保及失能" in json.dumps(entry.detail, ensure_ascii=False)


def test_age_brackets_do_not_overlap_and_price_by_upper_bound(store, tmp_path):
    from kiosk.billing.policy import Policy
    from kiosk.billing.subsidy import ResidentFacts, Usage, decide_subsidy
    from kiosk.services import import_plan

    tiers = ("  - {name: 八十至八十九岁, match: {min_age: 80, max_age: 89}, per_meal: 5.00}\n"
             "  - {name: 九十岁及以上, match: {min_age: 90}, per_meal: 8.00}\n")
    f = _policy(tmp_path, "ages", tiers)
    pol, _ = import_plan.load_policy_file(f)
    assert import_plan.tiers_overlap(pol.tiers[0], pol.tiers[1]) is None
    facts = lambda born: ResidentFacts("x", date(born, 1, 1), "武侯区", frozenset())  # noqa: E731
    day = date(2026, 12, 10)
    assert decide_subsidy(pol, facts(1940), day, "午餐", 2000, Usage()).tier == "八十至八十九岁"
    assert decide_subsidy(pol, facts(1930), day, "午餐", 2000, Usage()).subsidy_fen == 800
    graded = Policy.model_validate({**json.loads(pol.model_dump_json(by_alias=True)), "tiers": [
        {"name": "一级残疾", "match": {"categories": ["残疾:一级"]}, "per_meal": 7},
        {"name": "残疾", "match": {"categories": ["残疾"]}, "per_meal": 3}]})
    one = ResidentFacts("x", date(1950, 1, 1), "武侯区", frozenset({"残疾:一级"}))
    two = ResidentFacts("x", date(1950, 1, 1), "武侯区", frozenset({"残疾:二级"}))
    assert decide_subsidy(graded, one, day, "午餐", 2000, Usage()).subsidy_fen == 700
    assert decide_subsidy(graded, two, day, "午餐", 2000, Usage()).subsidy_fen == 300


# ------------------------------------------------------------------------------ reports
def test_monthly_table_totals_match_rows_and_the_orders(store):
    from kiosk.district.domain.reports import monthly_table

    rep = monthly_table(store["app"], MONTH)
    detail = rep.sheets[0]
    total = detail.totals()
    live = [o for o in store["orders"]]
    assert total[8].fen == sum(o.subsidy_fen for o in live) == sum(r[8].fen for r in detail.rows)
    assert total[6] == len(live)
    assert total[8].fen == 5 * 500 + 2 * 600        # 张桂兰 5 days × 5.00, 王德福 2 × 6.00
    row = {r[0]: r for r in detail.rows}
    assert row["R0001"][5] == "东街长寿食堂、西街长寿食堂"
    assert sum(r[2].fen for r in rep.sheets[1].rows) == total[8].fen == sum(r[3].fen for r in rep.sheets[2].rows)


def test_xlsx_numbers_are_numbers_money_two_decimals_and_text_never_a_formula():
    from openpyxl import load_workbook

    from kiosk.services.report_files import Money, Sheet, TableReport, xlsx_bytes

    rep = TableReport("t", sheets=[Sheet("明细", ["姓名", "次数", "金额(元)"],
                                        [["=HYPERLINK(\"http://x\",\"y\")", 2, Money(1250)], ["@SUM(A1)", 1, Money(5)]])])
    ws = load_workbook(io.BytesIO(xlsx_bytes(rep)))["明细"]
    assert ws["A2"].value == "=HYPERLINK(\"http://x\",\"y\")" and ws["A2"].data_type == "s"
    assert ws["B2"].value == 2 and ws["C2"].value == 12.5 and ws["C2"].number_format == "0.00"
    assert [c.value for c in ws[4]] == ["合计", 3, 12.55]


def test_monthly_pdf_has_the_font_embedded_and_the_totals(store, tmp_path):
    from pypdf import PdfReader

    from kiosk.district.domain.reports import monthly_table
    from kiosk.services.report_files import write_report_file

    rep = monthly_table(store["app"], MONTH)
    out = write_report_file(rep, tmp_path / "m.pdf")
    reader = PdfReader(out)
    text = "".join(p.extract_text() for p in reader.pages)
    assert "助餐补贴结算表" in text and "张桂兰" in text and "37.00" in text
    embedded = set()
    for p in reader.pages:
        for f in p["/Resources"]["/Font"].values():
            f = f.get_object()
            desc = f.get("/FontDescriptor")
            if desc is None and "/DescendantFonts" in f:
                desc = f["/DescendantFonts"][0].get_object().get("/FontDescriptor")
            if desc is not None and any(k in desc.get_object() for k in ("/FontFile2", "/FontFile3", "/FontFile")):
                embedded.add(str(f["/BaseFont"]))
    assert any("WenQuanYiMicroHei" in f for f in embedded), embedded


def test_daily_sales_counts_portions_per_dish(store):
    from kiosk.district.domain.reports import daily_sales

    rep = daily_sales(store["app"], date(2026, 11, 6))
    dishes = {(r[0], r[2]): r[4] for r in rep.sheets[1].rows}
    assert dishes == {("东街长寿食堂", "D001"): 1, ("东街长寿食堂", "D005"): 1,
                      ("西街长寿食堂", "D001"): 1, ("西街长寿食堂", "D005"): 1}
    assert rep.sheets[0].totals()[3].fen == 2 * 1300


def test_welfare_alert_lists_regular_living_alone_and_records_the_visit(store):
    from kiosk.district.domain.reports import mark_visited, set_welfare_days, welfare_alerts

    app = store["app"]
    alerts = welfare_alerts(app, date(2026, 11, 12))
    assert [(a.resident_id, a.last_meal, a.days_without_meal, a.last_visit) for a in alerts] == \
        [("R0001", date(2026, 11, 6), 6, None)]
    assert welfare_alerts(app, date(2026, 11, 8)) == []            # 2 days: under the default 3
    assert welfare_alerts(app, date(2026, 11, 8), days=2)[0].resident_id == "R0001"
    set_welfare_days(app, "武侯区", 7, "A1")
    assert welfare_alerts(app, date(2026, 11, 12)) == []            # the district waits 7 days
    set_welfare_days(app, "武侯区", 3, "A1")
    mark_visited(app, "R0001", "S1", "上门看望，身体无恙，感冒两天")
    a = welfare_alerts(app, date(2026, 11, 12))[0]
    assert a.last_visit["note"].startswith("上门看望") and a.last_visit["staff_id"] == "S1"


def test_proof_of_life_counts_only_face_and_liveness_days(store):
    from kiosk.district.domain.reports import proof_of_life

    rows = {r["resident_id"]: r for r in proof_of_life(store["app"], MONTH)}
    assert set(rows) == {"R0001"}        # 王德福 (1950) and 刘秀英 (1963) are under 80
    assert rows["R0001"]["verified_days"] == ["2026-11-02", "2026-11-03", "2026-11-05"]
    assert rows["R0001"]["terminals"] == ["东街长寿食堂/C1-T1"]
    assert proof_of_life(store["app"], "2026-10")[0]["none_this_month"] is True


def test_face_register_filing_line_and_terminals(store):
    from kiosk.district.domain import reports as dr

    reg = dr.face_register(store["app"], 12, today=date(2026, 11, 26))
    assert reg["people"] == 0 and reg["filing_line"] == 100_000 and reg["warning"] is False
    t = dr.terminals(store["app"])
    assert [(x["id"], x["canteen"], x["pending"], x["software_version"]) for x in t] == \
        [("C1-T1", "东街长寿食堂", 2, "0.1.0")]
    assert t[0]["last_order_at"] is not None


def test_reconciliation_lists_the_flag_and_records_the_decision(store):
    from kiosk.errors import KioskError
    from kiosk.district.domain import reports as dr

    app = store["app"]
    rep = dr.reconciliation(app, MONTH)
    row = rep.sheets[0].rows[0]
    assert row[0] == "R0001" and row[4].fen == 500 and row[5] == "东街长寿食堂、西街长寿食堂"
    assert rep.sheets[0].totals()[4].fen == 500
    with pytest.raises(KioskError):
        dr.decide_flag(app, "F1", "forgive", store["admin"])
    assert dr.reconciliation_rows(app, MONTH)[0]["decision"] is None


def test_console_logins_expire_when_idle(store):
    """A login (a row of the store) ends after its idle time without use and after the
    working day whatever the use; the login after that deletes the expired rows."""
    from datetime import timedelta

    from kiosk.db.models import ConsoleSession
    from kiosk.district.console.shared.auth import Logins

    app = store["app"]
    now = [datetime(2026, 12, 1, 1, 0, tzinfo=CST)]
    logins = Logins(app.db, idle_s=60, max_s=3600, clock=lambda: now[0])
    lg = logins.open("A1", "区管理员", "admin")
    assert logins.get(lg.token)[0].csrf == lg.csrf
    now[0] += timedelta(seconds=59)
    assert logins.get(lg.token)[0].staff_id == "A1"      # used: the idle time starts again
    now[0] += timedelta(seconds=61)
    assert logins.get(lg.token) == (None, True)           # expired
    lg2 = logins.open("A1", "区管理员", "admin")
    for _ in range(65):                                   # in use all along, 65 × 55 s < 3600 s
        now[0] += timedelta(seconds=55)
        assert logins.get(lg2.token)[0].csrf == lg2.csrf
    now[0] += timedelta(seconds=55)
    assert logins.get(lg2.token) == (None, True)          # the working day is over whatever the use
    stale = logins.open("S1", "巡访主管", "supervisor")      # left open, never used again
    now[0] += timedelta(seconds=61)
    fresh = logins.open("A1", "区管理员", "admin")          # this login prunes the expired row
    with app.db.session(read_only=True) as s:
        left = {r.staff_id for r in s.query(ConsoleSession)}
    assert left == {"A1"} and logins.get(stale.token) == (None, False) and logins.get(fresh.token)[0] is not None
    logins.close(fresh.token)


def test_report_commands_welfare_and_proof_of_life_json(store, capsys, tmp_path):
    from kiosk.cli.main import main

    assert main(["report", "welfare", "--date", "2026-11-12", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(e["resident_id"], e["last_meal"]) for e in out] == [("R0001", "2026-11-06")]
    assert main(["report", "proof-of-life", "--month", MONTH, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["resident_id"] == "R0001" and len(out[0]["verified_days"]) == 3
    pdf = tmp_path / "monthly.pdf"
    assert main(["report", "monthly", "--month", MONTH, "--out", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert main(["report", "proof-of-life", "--month", "2026-13", "--json"]) == 2


def test_face_register_lists_unused_templates_and_erases_them_in_bulk(store, obama):
    from sqlalchemy import update

    from kiosk.enrollment.batch import enroll_files
    from kiosk.db.models import AuditEntry, FaceTemplate
    from kiosk.district.domain import reports as dr
    from kiosk.services.context import App

    from tests.conftest import shared_engine

    app = App(store["app"].settings, db=store["app"].db, engine=shared_engine("sface"))
    admin = app.residents.authenticate(ADMIN_PIN, min_role="admin", staff_id="A1")["actor"]
    assert enroll_files(app, "R0002", [obama[0]], consent="self", actor=admin).enrolled   # a real photo, real model
    today = date(2026, 11, 26)
    reg = dr.face_register(app, 12, today=today)
    assert (reg["people"], reg["unused"]) == (1, [])
    with app.db.session() as s:          # enrolled a year and a half ago, never used at a counter since
        s.execute(update(FaceTemplate).where(FaceTemplate.resident_id == "R0002")
                  .values(created_at=datetime(2025, 5, 1, tzinfo=CST)))
    reg = dr.face_register(app, 12, today=today)
    assert [(u["resident_id"], u["last_used"], u["enrolled"]) for u in reg["unused"]] == [("R0002", None, "2025-05-01")]
    assert dr.face_register(app, 24, today=today)["unused"] == []
    assert [c["given_by"] for c in dr.consents(app, "R0002")] == ["self"]
    done = dr.erase_faces_bulk(app, ["R0002"], admin, "A1")
    assert done[0]["templates_removed"] == 1
    assert dr.face_register(app, 12, today=today)["people"] == 0
    assert dr.consents(app, "R0002")[0]["withdrawn_at"] is not None
    with app.db.session(read_only=True) as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "faces.erase_bulk")).one()
    assert e.actor == "A1" and e.detail["residents"] == ["R0002"]


@pytest.mark.postgres
def test_the_console_lists_on_postgresql(tmp_path, monkeypatch, pg_url):
    """The same store and lists on PostgreSQL (the district server's production database)."""
    from kiosk.district.domain import reports as dr
    from kiosk.services import import_plan
    from kiosk.services.security import generate_key

    monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    monkeypatch.setenv("KIOSK_DATABASE_URL", pg_url)
    data = seed(tmp_path / "home")
    app = data["app"]
    try:
        assert dr.monthly_table(app, MONTH).sheets[0].totals()[8].fen == 3700
        assert {(r[2], r[4]) for r in dr.daily_sales(app, date(2026, 11, 6)).sheets[1].rows} == {("D001", 1), ("D005", 1)}
        assert [a.resident_id for a in dr.welfare_alerts(app, date(2026, 11, 12))] == ["R0001"]
        assert dr.proof_of_life(app, MONTH)[0]["verified_days"] == ["2026-11-02", "2026-11-03", "2026-11-05"]
        assert dr.face_register(app, 12)["people"] == 0
        assert dr.reconciliation(app, MONTH).sheets[0].totals()[4].fen == 500
        assert dr.audit_entries(app, actor="A1", action="import.")
        f = tmp_path / "r.csv"
        f.write_text("编号,姓名,身份证号,户籍,联系电话\nR0002,,510107195011020035,,清除\n", encoding="utf-8")
        plan = import_plan.plan_roster(app, f)
        assert [p.changes for p in plan.change] == [{"联系电话": ["13800000002", ""]}]
        import_plan.apply_roster(app, plan, "A1")
        assert _resident(app, "R0002").phone is None
    finally:
        app.close()
        get_settings.cache_clear()
