"""The district console in a real browser: Debian's chromium driven by Playwright,
against a real `kiosk server` process on loopback. Nothing is downloaded: the
browser is the system's /usr/bin/chromium (install.sh --test installs it).

Also takes the README's screenshots (console_*.png) at 1366×768: into KIOSK_SCREENSHOTS
(KIOSK_SCREENSHOTS=docs/screens redoes the README's), else a temporary folder, so a test
run leaves the checkout as it was."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SCREENS = Path(os.environ.get("KIOSK_SCREENSHOTS") or Path(tempfile.gettempdir()) / "kiosk-console-screens")

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium (/usr/bin/chromium; install.sh --test)"),
    pytest.mark.skipif(shutil.which("kiosk", path=str(Path(sys.executable).parent)) is None,
                       reason="needs the kiosk command in the virtual environment"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python (pip install playwright)")

from tests.test_console_reports import ADMIN_PASSWORD, MONTH, SUPERVISOR_PASSWORD, SUPERVISOR_PIN, seed  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from kiosk.config import get_settings
    from kiosk.services.security import generate_key

    home = tmp_path_factory.mktemp("console_browser") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update(KIOSK_HOME=str(home), KIOSK_TEMPLATE_KEY=generate_key(), KIOSK_AUDIO="off")
    mp = pytest.MonkeyPatch()
    for k in [k for k in os.environ if k.startswith("KIOSK_")]:
        mp.delenv(k)
    for k, v in env.items():
        if k.startswith("KIOSK_"):
            mp.setenv(k, v)
    data = seed(home)
    data["app"].close()
    port = _free_port()
    log = open(home.parent / "server.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "kiosk"), "server", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/console"
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/login", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kiosk server did not start: " + (home.parent / "server.log").read_text(errors="replace"))
        time.sleep(0.3)
    from kiosk.services.context import App

    get_settings.cache_clear()
    app = App()          # the test's own view of the same store, to check what the browser changed
    try:
        yield {"base": base, "app": app, "home": home}
    finally:
        app.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        mp.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _login(browser, server, staff: str, password: str):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", accept_downloads=True)
    page = ctx.new_page()
    page.goto(server["base"] + "/login")
    page.fill("#staff_id", staff)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/$"))
    return page


@pytest.fixture(scope="module")
def admin(browser, server):
    page = _login(browser, server, "A1", ADMIN_PASSWORD)
    yield page
    page.context.close()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _resident(app, rid):
    from kiosk.db.models import Resident

    with app.db.session(read_only=True) as s:
        return s.get(Resident, rid)


def test_login_shows_the_overview_and_a_wrong_password_or_the_pin_is_refused(browser, server, admin):
    assert "区管理员（A1，管理员）" in admin.inner_text("header")
    assert admin.locator(".cards .card").count() == 4
    page = browser.new_page()
    page.goto(server["base"] + "/login")
    page.fill("#staff_id", "A1")
    page.fill("#password", "11111111-wrong")
    page.click("button[type=submit]")
    assert "工号或密码不正确" in page.inner_text(".flash.error")
    page.fill("#staff_id", "S1")
    page.fill("#password", SUPERVISOR_PIN)          # the counter's PIN opens nothing here
    page.click("button[type=submit]")
    assert "工号或密码不正确" in page.inner_text(".flash.error")
    page.goto(server["base"] + "/imports")
    assert page.url.endswith("/console/login")          # not logged in: back to the login page
    page.close()


def test_roster_dry_run_shows_the_bad_row_then_a_fixed_file_is_confirmed(admin, server, tmp_path):
    app = server["app"]
    head = "编号,姓名,身份证号,户籍,联系电话,人员类别,卡号\n"
    bad = _write(tmp_path, "花名册.csv", head + "R0201,周五,51010719300303004X,武侯区,13800000201,孤寡,ZL0201\n"
                                                "R0001,,510107194203150024,,清除,独居;残疾:二级,\n"
                                                "R0202,吴六,51010719300303004,武侯区,,,\n")
    admin.goto(server["base"] + "/imports")
    admin.set_input_files("#roster_file", str(bad))
    admin.click("form[action$='/imports/roster/preview'] button[type=submit]")
    problems = admin.inner_text("#problems")
    assert "4" in problems and "身份证号" in problems        # row 4, the column, the reason
    assert admin.inner_text("#n-problems") == "1"
    assert admin.locator("#confirm").count() == 0            # no import while a row is bad
    assert _resident(app, "R0201") is None and _resident(app, "R0001").phone == "13800000001"

    good = _write(tmp_path, "花名册.csv", head + "R0201,周五,51010719300303004X,武侯区,13800000201,孤寡,ZL0201\n"
                                                 "R0001,,510107194203150024,,清除,独居;残疾:二级,\n")
    admin.goto(server["base"] + "/imports")
    admin.set_input_files("#roster_file", str(good))
    admin.click("form[action$='/imports/roster/preview'] button[type=submit]")
    assert (admin.inner_text("#n-add"), admin.inner_text("#n-change"), admin.inner_text("#n-problems")) == ("1", "1", "0")
    planned = admin.inner_text("#planned")
    assert "联系电话：13800000001 → （空）" in planned and "人员类别：独居 → 独居、残疾:二级" in planned
    assert _resident(app, "R0201") is None                    # the dry run wrote nothing
    admin.screenshot(path=str(SCREENS / "console_import_preview.png"))
    admin.click("#confirm")
    assert "新增 1 条，修改 1 条" in admin.inner_text(".flash.ok")
    r = _resident(app, "R0001")
    assert r.phone is None and r.categories == ["独居", "残疾:二级"] and r.card_no == "ZL0001"   # blank kept
    assert _resident(app, "R0201").name == "周五"
    from sqlalchemy import select

    from kiosk.db.models import AuditEntry

    with app.db.session(read_only=True) as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.roster")
                      .order_by(AuditEntry.at.desc())).first()
    assert e.actor == "A1" and e.detail["created"] == ["R0201"] and e.detail["via"] == "console"


def test_overlapping_policy_is_refused_naming_both_tiers(admin, server, tmp_path):
    from sqlalchemy import select

    from kiosk.db.models import SubsidyPolicy

    f = _write(tmp_path, "低保调整.yaml", """id: wuhou-dibao
name: 武侯区低保助餐调整
district: 武侯区
effective_from: 2026-12-01
effective_to: 2027-03-31
eligibility: {min_age: 60, hukou: [武侯区]}
subsidized_meals: [午餐]
tiers:
  - {name: 低保, match: {categories: [低保]}, per_meal: 1.00}
""")
    admin.goto(server["base"] + "/imports")
    admin.set_input_files("#policy_file", str(f))
    admin.click("form[action$='/imports/policy/preview'] button[type=submit]")
    conflicts = admin.inner_text("#conflicts")
    assert "低保 每餐1.00元" in conflicts and "低保及失能 每餐6.00元" in conflicts and "wuhou-2026" in conflicts
    admin.click("#confirm")                                   # confirmed without 取代: refused
    assert "档次重叠，不能导入" in admin.inner_text("#overlap-refused")
    with server["app"].db.session(read_only=True) as s:
        assert s.scalars(select(SubsidyPolicy).where(SubsidyPolicy.policy_id == "wuhou-dibao")).first() is None


def test_monthly_report_xlsx_and_pdf_totals_match_the_table(admin, server, tmp_path):
    from openpyxl import load_workbook

    admin.goto(server["base"] + f"/reports?month={MONTH}")
    total_row = admin.locator("#monthly tr.total td").all_inner_texts()
    page_total = total_row[8]
    assert page_total == "37.00"                              # 5 × 5.00 + 2 × 6.00, as the orders were priced
    admin.screenshot(path=str(SCREENS / "console_reports.png"))
    with admin.expect_download() as dl:
        admin.click("#monthly-xlsx")
    x = tmp_path / "m.xlsx"
    dl.value.save_as(x)
    ws = load_workbook(x)["明细（每位居民）"]
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
    total = [r for r in rows if r[0] == "合计"][0]
    body = [r for r in rows if r[0] != "合计"]
    assert isinstance(total[8], (int, float)) and f"{total[8]:.2f}" == page_total
    assert round(sum(r[8] for r in body), 2) == total[8]
    assert ws.cell(row=2, column=9).number_format == "0.00"
    with admin.expect_download() as dl:
        admin.click("#monthly-pdf")
    p = tmp_path / "m.pdf"
    dl.value.save_as(p)
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(p), "-"], capture_output=True, text=True, check=True).stdout
    else:
        from pypdf import PdfReader

        text = "".join(pg.extract_text() for pg in PdfReader(p).pages)
    assert "助餐补贴结算表" in text
    total_line = [ln for ln in text.splitlines() if ln.strip().startswith("合计")][0]
    assert page_total in total_line.split()


def test_welfare_alert_is_marked_visited_with_a_note(admin, server):
    from sqlalchemy import select

    from kiosk.db.models import WelfareVisit

    admin.goto(server["base"] + "/welfare")
    row = admin.locator("#alert-R0001")
    assert "2026-11-06" in row.inner_text() and "未巡访" in row.inner_text()
    row.locator("input[name=note]").fill("电话联系上，住院三天，下周回来吃饭")
    row.locator("button[type=submit]").click()
    assert "已记录" in admin.inner_text(".flash.ok")
    assert "住院三天" in admin.locator("#alert-R0001 .visit").inner_text()
    with server["app"].db.session(read_only=True) as s:
        v = s.scalars(select(WelfareVisit).where(WelfareVisit.resident_id == "R0001")).all()
    assert [(x.staff_id, x.note) for x in v] == [("A1", "电话联系上，住院三天，下周回来吃饭")]


def test_reconciliation_decision_needs_the_password_and_is_audited(browser, server):
    from sqlalchemy import select

    from kiosk.db.models import AuditEntry

    page = _login(browser, server, "S1", SUPERVISOR_PASSWORD)
    try:
        page.goto(server["base"] + f"/reconcile?month={MONTH}")
        row = page.locator("#flag-F1")
        assert "张桂兰" in row.inner_text() and "5.00" in row.inner_text()
        row.locator("select[name=decision]").select_option("charge_back")
        row.locator("input[name=note]").fill("同日两餐，追回一餐补贴")
        row.locator("input[name=password]").fill(SUPERVISOR_PIN)      # the PIN is no proof here
        row.locator("button[type=submit]").click()
        assert "工号或密码不正确" in page.inner_text(".flash.error")
        row = page.locator("#flag-F1")
        row.locator("select[name=decision]").select_option("charge_back")
        row.locator("input[name=password]").fill(SUPERVISOR_PASSWORD)
        row.locator("button[type=submit]").click()
        assert "追回" in page.locator("#flag-F1 .decision").inner_text()
    finally:
        page.context.close()
    with server["app"].db.session(read_only=True) as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "reconcile.charge_back")).first()
    assert e is not None and e.actor == "S1" and e.subject == "F1"


def test_proof_of_life_terminals_and_audit_pages(admin, server, tmp_path):
    from openpyxl import load_workbook

    admin.goto(server["base"] + f"/proof?month={MONTH}")
    proof = admin.inner_text("#proof")
    assert "张桂兰" in proof and "2026-11-02、2026-11-03、2026-11-05" in proof and "C1-T1" in proof
    admin.goto(server["base"] + "/terminals")
    assert "东街1号机" in admin.inner_text("#terminals") and "0.1.0" in admin.inner_text("#terminals")
    admin.goto(server["base"] + "/audit?verify=1")
    assert "审计链完整" in admin.inner_text("#chain")
    admin.goto(server["base"] + "/audit?actor=A1&action=import")
    rows = admin.locator("#audit tbody tr").all_inner_texts()
    assert rows and all("区管理员（A1）" in r and "导入" in r and "import." not in r for r in rows)   # in Chinese
    with admin.expect_download() as dl:
        admin.click("a[href*='/reports/audit.xlsx']")
    x = tmp_path / "audit.xlsx"
    dl.value.save_as(x)
    ws = load_workbook(x)["审计日志"]
    head = [c.value for c in ws[1]]
    actions = [dict(zip(head, r)) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert actions and all(a["操作代码"].startswith("import.") and a["操作"].startswith("导入") for a in actions)
    assert len(actions) == len(rows)


def test_supervisor_is_refused_an_admin_page(browser, server):
    page = _login(browser, server, "S1", SUPERVISOR_PASSWORD)
    try:
        assert page.locator("nav a[href$='/imports']").count() == 0
        resp = page.goto(server["base"] + "/imports")
        assert resp.status == 403 and "需要管理员权限" in page.inner_text("#refusal")
        resp = page.goto(server["base"] + "/welfare")             # a supervisor's own page works
        assert resp.status == 200
    finally:
        page.context.close()


def test_a_post_without_the_csrf_token_is_refused(admin, server):
    from sqlalchemy import func, select

    from kiosk.db.models import WelfareVisit

    def visits() -> int:
        with server["app"].db.session(read_only=True) as s:
            return s.scalar(select(func.count()).select_from(WelfareVisit))

    before = visits()
    r = admin.request.post(server["base"] + "/welfare/R0001/visited", form={"note": "伪造的请求"})
    assert r.status == 403 and "CSRF" in r.text()
    r = admin.request.post(server["base"] + "/welfare/R0001/visited", form={"note": "伪造的请求", "csrf_token": "x" * 43})
    assert r.status == 403
    assert visits() == before
