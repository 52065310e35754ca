"""The console's overview (概览), the audit log in Chinese, PDF columns sized to their
content, and the console's names (terminals on consents, canteens, residents beside a bad
import row), in process: the domain functions and the pages over httpx/ASGI. One small
store (tests.test_console_reports.seed: two canteens, a month of lunches, one flag) is
built for the module; the tests run in file order."""
from __future__ import annotations

import io
import re
import time
import uuid
from datetime import date, datetime, timezone

import httpx
import pytest
from sqlalchemy import event, select

from tests.test_console_reports import ADMIN_PASSWORD, MONTH, SUPERVISOR_PASSWORD, store  # noqa: F401
from tests.test_postgres import pg_url  # noqa: F401  (the throwaway PostgreSQL cluster fixture)

DAY = date(2026, 11, 11)        # the overview "as of" this day: C2 served 王德福 that day


@pytest.fixture(scope="module")
def api(store):  # noqa: F811
    from kiosk.district.app import create_app

    return create_app(store["app"].settings, kiosk_app=store["app"])


class Console:
    """A logged-in console user over ASGI (synchronous calls)."""

    def __init__(self, api, staff: str, password: str) -> None:
        from fastapi.testclient import TestClient

        self.c = TestClient(api, raise_server_exceptions=True)
        pre = self.c.get("/console/login")
        tok = re.search(r'name="csrf_token" value="([^"]+)"', pre.text).group(1)
        r = self.c.post("/console/login", data={"csrf_token": tok, "staff_id": staff, "password": password},
                        follow_redirects=False)
        assert r.status_code == 303, r.text[:300]

    def get(self, path: str, **kw) -> httpx.Response:
        return self.c.get(path, **kw)

    def post(self, path: str, data: dict, page: str = "/console/") -> httpx.Response:
        tok = re.search(r'name="csrf_token" value="([^"]+)"', self.c.get(page).text).group(1)
        return self.c.post(path, data={**data, "csrf_token": tok}, follow_redirects=False)


@pytest.fixture(scope="module")
def admin(api):
    return Console(api, "A1", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def supervisor(api):
    return Console(api, "S1", SUPERVISOR_PASSWORD)


# ------------------------------------------------------------------------------ the figures
def test_overview_counts_meals_per_day_and_canteen_and_the_months_subsidy_as_the_monthly_report(store):  # noqa: F811
    from kiosk.district.domain import overview as ov
    from kiosk.services.reports import monthly_subsidy

    app = store["app"]
    o = ov.overview(app, DAY)
    by = {s.canteen_id: s for s in o.series}
    i = {d: k for k, d in enumerate(o.days)}
    assert o.days[0] == date(2026, 10, 13) and o.days[-1] == DAY and len(o.days) == 30
    assert [by["C1"].meals[i[date(2026, 11, d)]] for d in range(2, 8)] == [1, 1, 1, 1, 1, 0]
    assert [by["C2"].meals[i[date(2026, 11, d)]] for d in (6, 10, 11)] == [1, 1, 1]
    assert by["C1"].total == 5 and by["C2"].total == 3 and by["C1"].name == "东街长寿食堂"
    assert [(c.canteen_id, c.meals) for c in o.canteens_today] == [("C2", 1), ("C1", 0)]
    rep = monthly_subsidy(app, MONTH)
    assert o.subsidy_fen == rep.subsidy_fen > 0 and o.net_subsidy_fen == rep.net_subsidy_fen
    assert o.undecided.reconcile == [("2026-11", 1)] and o.undecided.quarantine == 0


def test_a_voided_order_leaves_the_overview_and_a_charge_back_leaves_its_subsidy(store):  # noqa: F811
    from kiosk.district.domain import overview as ov
    from kiosk.district.domain import reports as dr
    from kiosk.services.reports import monthly_subsidy

    app = store["app"]
    before = ov.overview(app, DAY)
    last = store["orders"][-1]                       # 王德福's lunch at C2 on the 11th
    app.billing.void(last.order_id, "测试作废", store["admin"])
    after = ov.overview(app, DAY)
    assert after.meals_today == before.meals_today - 1 == 0
    assert after.subsidy_fen == before.subsidy_fen - last.subsidy_fen
    from kiosk.db.models import DistrictFlag

    with app.db.session() as s:                      # over the month's limit on 王德福's lunch of the 10th
        s.add(DistrictFlag(id="F2", order_id=store["orders"][6].order_id, resident_id="R0002",
                           meal_date=date(2026, 11, 10), kind="monthly_amount", over_fen=300,
                           order_ids=[store["orders"][6].order_id]))
    assert ov.overview(app, DAY).undecided.reconcile == [("2026-11", 2)]
    dr.decide_flag(app, "F2", "charge_back", store["admin"], "测试追回")
    decided = ov.overview(app, DAY)
    rep = monthly_subsidy(app, MONTH)
    assert decided.charged_back_fen == rep.charged_back_fen > 0
    assert decided.net_subsidy_fen == rep.net_subsidy_fen == after.subsidy_fen - rep.charged_back_fen
    assert decided.charged_back_fen == 300 and decided.undecided.reconcile == [("2026-11", 1)]


def test_the_days_before_today_are_kept_and_today_is_counted_each_time(store):  # noqa: F811
    from kiosk.district.domain import overview as ov

    app = store["app"]
    ov.overview(app, DAY)                                          # keeps the days before the 11th
    kept = ov.overview(app, DAY, past_fresh=3600)
    fourth = store["orders"][2]                                    # 张桂兰's lunch at C1 on the 4th
    assert fourth.meal_date == date(2026, 11, 4)
    app.billing.void(fourth.order_id, "测试作废（前几天）", store["admin"])
    i = kept.days.index(date(2026, 11, 4))
    c1 = {s.canteen_id: s for s in ov.overview(app, DAY, past_fresh=3600).series}["C1"]
    assert c1.meals[i] == 1                                       # kept: the void shows at the next refresh
    exact = {s.canteen_id: s for s in ov.overview(app, DAY, past_fresh=0).series}["C1"]
    assert exact.meals[i] == 0
    t0 = time.monotonic()
    ov.overview(app, DAY, past_fresh=0.0001)                       # stale: the kept figures at once, refreshed
    time.sleep(0.5)
    assert {s.canteen_id: s for s in ov.overview(app, DAY, past_fresh=3600).series}["C1"].meals[i] == 0
    assert time.monotonic() - t0 < 5


def test_the_overview_aggregates_in_sql_and_never_reads_order_rows(store):  # noqa: F811
    """Every statement over ``orders`` groups (or counts), and returns at most one row per
    day and canteen: no order row comes back to Python."""
    from kiosk.district.domain import overview as ov

    app = store["app"]
    statements: list[str] = []

    def before(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    event.listen(app.db.engine, "before_cursor_execute", before)
    try:
        ov.overview(app, DAY, past_fresh=0)
    finally:
        event.remove(app.db.engine, "before_cursor_execute", before)
    over_orders = [s for s in statements if re.search(r"\b(FROM|JOIN) orders\b", s)]
    assert over_orders
    for s in over_orders:
        # grouped, or the charge-backs (one row per order the office charged back: flags are few)
        if "JOIN district_flags" in s:
            continue
        assert "GROUP BY" in s or "count(" in s.lower(), s
        assert "orders.id," not in s.split("FROM")[0], s      # no order id selected


# ------------------------------------------------------------------------------ the page
def test_the_overview_page_draws_the_chart_as_svg_without_javascript(admin):
    r = admin.get(f"/console/?day={DAY}")
    assert r.status_code == 200
    html = r.text
    assert "<script" not in html.lower()
    svg = re.search(r'<svg id="meals-chart".*?</svg>', html, re.S).group(0)
    lines = re.findall(r'<polyline [^>]*points="([^"]+)"', svg)
    assert len(lines) == 2 and all(len(p.split()) == 30 for p in lines)
    assert "东街长寿食堂 11-02：1 餐" in svg and "西街长寿食堂 11-10：1 餐" in svg
    today = re.search(r'<table id="today">.*?</table>', html, re.S).group(0)
    assert "东街长寿食堂" in today and "西街长寿食堂" in today
    assert re.search(r'id="meals-today">0<', html)             # the 11th's lunch was voided above
    assert f'href="/console/anomalies?month={MONTH}"' in html and 'href="/console/quarantine"' in html


def test_the_undecided_items_are_counted_and_link_to_their_pages(store, admin, supervisor):  # noqa: F811
    from kiosk.db.models import DistrictFlag, QuarantinedOp

    app = store["app"]
    with app.db.session() as s:
        s.add(DistrictFlag(id="F3", order_id=store["orders"][0].order_id, resident_id="R0001",
                           meal_date=date(2026, 10, 30), kind="daily_meals", over_fen=200, order_ids=[]))
        for k in range(3):
            s.add(QuarantinedOp(op_id=f"q{k}", terminal_id="C1-T1", canteen_id="C1", kind="sale", reason="金额不符",
                                payload={}, status="waiting" if k else "rejected"))
    html = admin.get(f"/console/?day={DAY}").text
    li = re.search(r'<li id="undecided-reconcile">.*?</li>', html, re.S).group(0)
    assert "<b>2</b> 笔" in li
    assert 'href="/console/reconcile?month=2026-10">2026-10 1 笔' in li
    assert 'href="/console/reconcile?month=2026-11">2026-11 1 笔' in li
    q = re.search(r'<li id="undecided-quarantine">.*?</li>', html, re.S).group(0)
    assert "<b>2</b> 笔" in q and 'href="/console/quarantine"' in q
    an = re.search(r'<li id="undecided-anomalies">.*?</li>', html, re.S).group(0)
    assert re.search(r"<b>\d+</b> 条", an), an
    sup = supervisor.get(f"/console/?day={DAY}").text     # the quarantine page is an admin's
    q = re.search(r'<li id="undecided-quarantine">.*?</li>', sup, re.S).group(0)
    assert "<b>2</b> 笔" in q and "href" not in q and "budget-form" not in sup
    assert admin.get("/console/reconcile?month=2026-10").status_code == 200


@pytest.mark.parametrize("day", ["2026-02-30", "9999-12-31", "abc", "0001-01-01"])
def test_a_bad_day_gets_a_400_in_chinese(admin, day):
    r = admin.get("/console/", params={"day": day})
    assert r.status_code == 400 and "日期" in r.text


def test_the_budget_is_set_by_an_admin_with_the_password_and_audited(store, admin, supervisor):  # noqa: F811
    from kiosk.db.models import AuditEntry
    from kiosk.district.domain import overview as ov

    app = store["app"]
    assert ov.budget_fen(app) is None
    assert "尚未设置每月补贴预算" in admin.get(f"/console/?day={DAY}").text
    for bad in ("abc", "-5", "0", "12.345", "99999999999999"):
        r = admin.post("/console/budget", {"budget": bad, "password": ADMIN_PASSWORD})
        assert r.status_code == 400 and "每月补贴预算" in r.text, (bad, r.status_code)
    r = admin.post("/console/budget", {"budget": "100", "password": "wrong-password-1"})
    assert r.status_code == 403
    r = supervisor.post("/console/budget", {"budget": "100", "password": SUPERVISOR_PASSWORD})
    assert r.status_code == 403
    assert ov.budget_fen(app) is None
    r = admin.post("/console/budget", {"budget": "1,000.50", "password": ADMIN_PASSWORD})
    assert r.status_code == 303
    assert ov.budget_fen(app) == 100050
    o = ov.overview(app, DAY)
    html = admin.get(f"/console/?day={DAY}").text
    assert '<span id="budget">1000.50</span>' in html
    assert f'id="budget-share">{o.net_subsidy_fen / 100050 * 100:.1f}%' in html
    with app.db.session(read_only=True) as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "budget.set")).all()
    assert len(e) == 1 and e[0].actor == "A1" and e[0].detail["new_fen"] == 100050 and e[0].detail["old_fen"] is None
    r = admin.post("/console/budget", {"budget": "", "password": ADMIN_PASSWORD})   # cleared
    assert r.status_code == 303 and ov.budget_fen(app) is None


def test_the_budget_from_the_command_line(store, monkeypatch, capsys):  # noqa: F811
    import json

    from kiosk.cli.main import main

    monkeypatch.setenv("KIOSK_STAFF_PASSWORD", ADMIN_PASSWORD)
    assert main(["report", "budget", "--set", "80000", "--staff", "A1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["budget_fen"] == 8_000_000
    assert main(["report", "budget", "--set", "abc", "--staff", "A1"]) == 2
    assert "每月补贴预算" in capsys.readouterr().err
    monkeypatch.setenv("KIOSK_STAFF_PASSWORD", SUPERVISOR_PASSWORD)
    assert main(["report", "budget", "--clear", "--staff", "S1"]) == 2      # not an admin
    capsys.readouterr()
    assert main(["report", "overview", "--date", str(DAY), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["budget_fen"] == 8_000_000 and out["today"] == str(DAY) and len(out["days"]) == 30


def test_slow_counts_run_in_the_background_and_are_kept():
    from kiosk.district.domain import overview as ov

    class FakeDb:            # only its identity keys the kept counts
        pass

    class FakeApp:
        def __init__(self) -> None:
            self.db = FakeDb()

    calls = []

    def slow(app, day):
        calls.append(day)
        time.sleep(0.6)
        return {"anomalies_total": 7, "welfare": 2}

    app = FakeApp()
    first = ov.background_counts(app, DAY, wait=0.05, count=slow)
    assert first["counts"] is None and first["running"]          # the page does not wait for it
    time.sleep(0.9)
    second = ov.background_counts(app, DAY, wait=0.05, count=slow)
    assert second["counts"] == {"anomalies_total": 7, "welfare": 2} and not second["running"]
    assert second["counted_at"] and len(calls) == 1              # kept: not counted again
    t0 = time.monotonic()
    stale = ov.background_counts(app, DAY, wait=1.0, fresh=0.0, count=slow)
    assert time.monotonic() - t0 < 0.3                           # the kept counts at once, while it recounts
    assert stale["running"] and stale["counts"]["anomalies_total"] == 7
    time.sleep(0.9)
    assert len(calls) == 2

    def broken(app, day):
        raise RuntimeError("scan failed")

    out = ov.background_counts(FakeApp(), DAY, wait=1.0, count=broken)
    assert out["counts"] is None and "scan failed" in out["error"]


def test_the_chart_axis_and_points():
    from kiosk.district.domain import overview as ov

    assert [ov.nice_max(v) for v in (0, 3, 7, 12, 26, 99, 101, 2400)] == [5, 5, 10, 20, 50, 100, 200, 2500]
    days = [date(2026, 11, d) for d in range(1, 31)]
    c = ov.chart(days, [ov.Series("C1", "东街", [0] * 29 + [40])])
    xs = [float(p.split(",")[0]) for p in c.lines[0].points.split()]
    ys = [float(p.split(",")[1]) for p in c.lines[0].points.split()]
    assert xs[0] == c.left and xs[-1] == c.left + c.plot_w and xs == sorted(xs)
    assert ys[0] == c.top + c.plot_h and ys[-1] == pytest.approx(c.top + c.plot_h * (1 - 40 / 50), abs=0.1)
    assert c.y_max == 50
    assert c.y_ticks[-1][1] == c.y_max and c.x_ticks[-1][1] == "11/30"
    series = ov._series(days, {(d, f"C{k}"): (k, 0) for d in days for k in range(12)},
                        {f"C{k}": f"食堂{k}" for k in range(12)})
    assert len(series) == ov.CHART_LINES and series[-1].canteen_id is None
    assert series[-1].meals[0] == sum(range(5)) and series[0].name == "食堂11"


# ------------------------------------------------------------------------------ the audit log in Chinese
def test_every_action_code_in_the_code_has_a_chinese_name():
    from pathlib import Path

    from kiosk.services.audit_words import ACTION_ZH

    root = Path(__file__).resolve().parents[1]
    codes = set()
    for f in list((root / "kiosk").rglob("*.py")) + list((root / "enrollment").rglob("*.py")):
        text = f.read_text(encoding="utf-8")
        for m in re.finditer(r"audit\.record\(\s*\w+,\s*[^,]+,\s*f?\"([a-z_]+\.[a-z_{}]+)\"", text):
            codes.add(m.group(1))
        for m in re.finditer(r"_write\(app, [^\n]*?\"(report\.[a-z_]+)\"", text):
            codes.add(m.group(1))
    expanded = set()
    for c in codes:
        if c == "reconcile.{decision}":
            expanded |= {"reconcile.accept", "reconcile.charge_back"}
        elif c == "quarantine.{decision}":
            expanded |= {"quarantine.accept", "quarantine.reject"}
        else:
            expanded.add(c)
    assert len(expanded) > 40
    assert expanded - set(ACTION_ZH) == set()
    assert {"staff.add", "staff.update"} <= set(ACTION_ZH)          # named in a variable, not a literal


def test_the_audit_page_says_each_entry_in_a_chinese_sentence(store, admin):  # noqa: F811
    from kiosk.services.audit_words import ACTION_ZH

    html = admin.get("/console/audit?action=reconcile").text
    rows = re.findall(r'<tr class="entry" data-action="([^"]+)">(.*?)</tr>', html, re.S)
    assert rows and all(code == "reconcile.charge_back" for code, _ in rows)
    body = rows[0][1]
    assert ACTION_ZH["reconcile.charge_back"] == "追回补贴" and '<td class="action">追回补贴</td>' in body
    sentence = re.search(r'<td class="sentence">(.*?)<details', body, re.S).group(1).strip()
    assert sentence == "区管理员（A1）决定追回王德福（R0002）超出的补贴 3.00 元（超过每月补贴额度），说明：测试追回。"
    raw = re.search(r"<details class=\"raw muted\">(.*?)</details>", body, re.S).group(1)
    assert "reconcile.charge_back" in raw and "over_fen" in raw and "300" in raw     # the raw detail kept
    assert re.search(r'<td class="nowrap">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>', body)
    assert "over_fen" not in sentence and "{" not in sentence
    html = admin.get("/console/audit?action=console.login").text
    assert "登录了管理后台" in html and "<option value=\"console.export\">导出报表</option>" in html


def test_sentences_give_money_in_yuan_and_times_in_china_time():
    from kiosk.services.audit_words import Names, action_zh, describe

    names = Names({"A1": "区管理员"}, {"R0002": "王德福"}, {"C1": "东街长寿食堂"}, {"C1-T1": "东街1号机（东街长寿食堂）"})
    s = describe("account.topup", "A1", "R0002", {"amount_fen": 12345, "method": "cash"}, names)
    assert s == "区管理员（A1）为王德福（R0002）充值 123.45 元。"
    s = describe("x.unknown", "terminal:C1-T1", "R0002",
                 {"reported_by": "S01", "at_terminal": "2026-11-06T04:00:00+00:00", "canteen_id": "C1"}, names)
    assert "终端 东街1号机（东街长寿食堂）（上报的操作人 S01）" in s and "2026-11-06 12:00:00" in s and "东街长寿食堂" in s
    assert describe("budget.set", "A1", "武侯区", {"old_fen": None, "new_fen": 800000}, names) == \
        "区管理员（A1）把武侯区的每月补贴预算从 未设置 改为 8000.00 元。"
    assert action_zh("console.export") == "导出报表" and action_zh("limits.set") == "离线限额（limits.set）"


def test_the_audit_export_is_in_chinese_too(store, admin):  # noqa: F811
    from openpyxl import load_workbook

    r = admin.get("/console/reports/audit.xlsx?action=reconcile")
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.content))["审计日志"]
    head = [c.value for c in ws[1]]
    rows = [dict(zip(head, r)) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert head[:4] == ["时间", "操作人", "操作", "说明"] and rows
    assert all(r["操作"] == "追回补贴" and "3.00 元" in r["说明"] for r in rows)


# ------------------------------------------------------------------------------ PDF columns
def _runs(pdf: bytes) -> list[str]:
    """Every piece of text the PDF draws, as pypdf reads it, one string per text run."""
    from pypdf import PdfReader

    out: list[str] = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        page.extract_text(visitor_text=lambda text, *a: out.append(text.strip()) if text.strip() else None)
    return out


def test_the_reconcile_pdf_holds_every_cell_whole(store):  # noqa: F811
    """王德福 was clipped to two characters and column heads wrapped: every head and cell of
    every sheet is now drawn as one run of text."""
    from kiosk.district.domain import reports as dr
    from kiosk.services.pdf import pdf_bytes

    app = store["app"]
    dr.decide_flag(app, "F1", "accept", store["admin"], "核实无误")
    rep = dr.reconciliation(app, MONTH)
    assert any("王德福" in [str(c) for c in r] for sh in rep.sheets for r in sh.rows)
    runs = set(_runs(pdf_bytes(rep)))
    cells = [str(h) for sh in rep.sheets for h in sh.head]
    cells += [str(c) for sh in rep.sheets for r in sh.rows + ([sh.totals()] if sh.totals() else []) for c in r
              if c is not None and str(c) != ""]
    missing = [c for c in cells if c not in runs]
    assert not missing, (missing, sorted(runs))


def test_monthly_and_audit_pdfs_hold_their_cells_whole_and_long_columns_wrap_only_there(store):  # noqa: F811
    from kiosk.district.domain import reports as dr
    from kiosk.services.pdf import FONT_SIZES, fit_columns, pdf_bytes, register_font
    from kiosk.services.report_files import Sheet, TableReport

    app = store["app"]
    rep = dr.monthly_table(app, MONTH)
    runs = set(_runs(pdf_bytes(rep)))
    for sh in rep.sheets:
        for c in list(sh.head) + [str(x) for r in sh.rows for x in r if x not in (None, "")]:
            assert str(c) in runs, (sh.title, c)
    # a column far too long for the page wraps; the heads and the short columns stay whole
    font = register_font()
    long = "很长的说明文字" * 40
    head = ["居民编号", "姓名", "说明", "订单到达服务器"]
    body = [["R0002", "王德福", long, "2026-11-06 12:00"]]
    cols = fit_columns(head, body, 770.0, font)
    assert cols.wraps == [False, False, True, False] and cols.font_size == FONT_SIZES[-1]
    assert abs(sum(cols.widths) - 770.0) < 1.0
    runs = _runs(pdf_bytes(TableReport("长说明", "", [], [Sheet("表", head, body, total_label=None)])))
    for c in head + ["R0002", "王德福", "2026-11-06 12:00"]:
        assert c in runs, c
    assert "".join(r for r in runs if "很长" in r or "说明文字" in r or "的说" in r).count("很长的说明文字") >= 39


# ------------------------------------------------------------------------------ names
def test_a_consent_pushed_by_a_terminal_names_that_terminal(store, admin):  # noqa: F811
    from fastapi.testclient import TestClient

    from kiosk.db.models import FaceConsent
    from kiosk.district.domain.terminals import add_terminal

    from kiosk.db.models import CanteenStaff

    app = store["app"]
    term, token = add_terminal(app, "C2", name="西街2号机")
    with app.db.session() as s:
        s.add(CanteenStaff(canteen_id="C2", staff_id="S1", added_by="A1"))
    now = datetime.now(timezone.utc).isoformat()
    api = admin.c.app
    cid = str(uuid.uuid4())
    op = {"op_id": str(uuid.uuid4()), "kind": "faces.enroll", "created_at": datetime.now(timezone.utc).isoformat(),
          "payload": {"rows": {"face_consents": [{
              "id": cid, "resident_id": "R0002", "given_by": "self", "staff_id": "S1", "text_version": "v1",
              "allows_crop": False, "source": "desk", "terminal_id": "C1-T1",        # a lie: the token decides
              "withdrawn_at": None, "created_at": now}],
              "audit_log": [{"actor": "S1", "action": "consent.record", "subject": "R0002",
                             "detail": {"given_by": "self", "source": "desk"}, "at": now}]}}}
    r = TestClient(api).post("/api/v1/push", json={"ops": [op]}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied", r.text
    with app.db.session(read_only=True) as s:
        assert s.get(FaceConsent, cid).terminal_id == term.terminal_id
    html = admin.get("/console/faces?resident=R0002").text
    row = re.search(r'<table id="consents">.*?</table>', html, re.S).group(0)
    assert "西街2号机（西街长寿食堂）" in row and ">desk<" not in row


def test_canteens_show_by_name_and_an_admin_renames_one(store, admin):  # noqa: F811
    from kiosk.db.models import AuditEntry
    from kiosk.district.domain.terminals import add_terminal

    app = store["app"]
    add_terminal(app, "C9", name="北街1号机")          # the server makes canteen C9 named "C9"
    html = admin.get("/console/terminals").text
    row = re.search(r"<tr[^>]*>\s*<td>C9.*?</tr>", html, re.S).group(0)
    assert "未命名" in row and "C9<div" not in row                    # not "C9 / C9"
    assert admin.post("/console/canteens/rename", {"canteen_id": "C9", "name": ""}, "/console/canteens").status_code == 400
    assert admin.post("/console/canteens/rename", {"canteen_id": "NOPE", "name": "x"},
                      "/console/canteens").status_code == 404
    r = admin.post("/console/canteens/rename", {"canteen_id": "C9", "name": "北街长寿食堂"}, "/console/canteens")
    assert r.status_code == 303
    html = admin.get("/console/terminals").text
    assert "北街长寿食堂<div class=\"muted\">C9</div>" in html
    with app.db.session(read_only=True) as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "canteen.rename")).one()
    assert e.detail == {"old": "C9", "new": "北街长寿食堂"} and e.actor == "A1"
    assert "北街长寿食堂" in admin.get(f"/console/?day={DAY}").text


def test_the_import_preview_names_the_resident_beside_a_bad_row(admin, tmp_path):
    csv = ("编号,姓名,身份证号,户籍,人员类别,联系电话\n"
           "R0101,赵一,510107194001010015,武侯区,高龄,\n"
           "R0102,钱二,510107194001010024,武侯区,,\n"          # bad checksum
           "R0002,,510107194402020038,武侯区,残疾:五级,\n")    # 王德福 from the store: a bad grade
    page = admin.get("/console/imports").text
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = admin.c.post("/console/imports/roster/preview", data={"csrf_token": tok},
                     files={"file": ("名单.csv", csv.encode("utf-8"), "text/csv")})
    assert r.status_code == 422
    table = re.search(r'<table id="problems">.*?</table>', r.text, re.S).group(0)
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td class="nowrap name">([^<]*)</td>', table)
    assert ("3", "钱二") in rows and ("4", "王德福") in rows, rows


# ------------------------------------------------------------------------------ PostgreSQL
def test_the_overview_on_postgresql_reads_meals_and_subsidy_from_the_index_alone(tmp_path, monkeypatch, pg_url):  # noqa: F811
    """On the district server's database: the same figures as the monthly report, and the
    per day and canteen count is an index-only scan of ix_orders_day_canteen (migration
    0015: meal_date, canteen_id INCLUDE subsidy_fen) once the planner prefers the index."""
    from sqlalchemy import text

    from kiosk.district.domain import overview as ov
    from kiosk.services.reports import monthly_subsidy
    from kiosk.services.security import generate_key
    from tests.test_console_reports import seed

    monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    monkeypatch.setenv("KIOSK_DATABASE_URL", pg_url)
    data = seed(tmp_path / "home")
    app = data["app"]
    try:
        o = ov.overview(app, DAY, past_fresh=0)
        assert o.subsidy_fen == monthly_subsidy(app, MONTH).subsidy_fen == 3700
        assert {s.canteen_id: s.total for s in o.series} == {"C1": 5, "C2": 3}
        assert [(c.canteen_id, c.meals) for c in o.canteens_today] == [("C2", 1), ("C1", 0)]
        with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE orders"))
            c.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(r[0] for r in c.execute(text(
                "EXPLAIN SELECT meal_date, canteen_id, count(*), sum(subsidy_fen) FROM orders "
                "WHERE meal_date >= '2026-10-13' AND meal_date <= '2026-11-11' GROUP BY meal_date, canteen_id")))
        assert "Index Only Scan using ix_orders_day_canteen" in plan, plan
    finally:
        from kiosk.config import get_settings

        app.close()
        get_settings.cache_clear()
