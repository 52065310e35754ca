"""The overview, the audit page in Chinese and the console's names in a real browser:
Debian's chromium driven by Playwright against a real `kiosk server` process (the
fixtures of tests/test_console_browser.py: the same seeded district). JavaScript is
turned off for the overview: it is drawn by the server alone."""
from __future__ import annotations

import re

import pytest

# the fixtures (a module's own instances) and the skip marks of the console's browser tests
from tests.test_console_browser import SCREENS, _login, browser, pytestmark, server  # noqa: F401
from tests.test_console_reports import ADMIN_PASSWORD, SUPERVISOR_PASSWORD

DAY = "2026-11-11"


@pytest.fixture(scope="module")
def admin(browser, server):  # noqa: F811
    page = _login(browser, server, "A1", ADMIN_PASSWORD)
    yield page
    page.context.close()


def test_the_overview_shows_meals_chart_and_undecided_items_without_javascript(browser, server):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", java_script_enabled=False)
    page = ctx.new_page()
    try:
        page.goto(server["base"] + "/login")
        page.fill("#staff_id", "S1")
        page.fill("#password", SUPERVISOR_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/console/$"))
        page.goto(server["base"] + f"/?day={DAY}")
        assert page.inner_text("#meals-today") == "1"                 # 王德福 at 西街 on the 11th
        today = page.locator("#today tbody tr").all_inner_texts()
        assert today[0].split() == ["西街长寿食堂", "1"] and today[1].split() == ["东街长寿食堂", "0"]
        chart = page.locator("#meals-chart")
        assert chart.is_visible() and chart.bounding_box()["width"] > 800
        assert page.locator("#meals-chart polyline").count() == 2
        assert page.locator("#meals-chart circle").count() == 60
        legend = page.inner_text("#meals-legend")
        assert "东街长寿食堂（5）" in legend and "西街长寿食堂（3）" in legend
        assert "37.00" in page.inner_text("#subsidy-month")
        assert "尚未设置每月补贴预算" in page.inner_text("#budget-line")
        assert page.locator("#budget-form").count() == 0               # a supervisor does not set it
        undecided = page.inner_text("#undecided-reconcile")
        assert "对账未决定 1 笔" in undecided.replace("\n", "")
        page.click("#undecided-reconcile a")
        page.wait_for_url(re.compile(r".*/console/reconcile\?month=2026-11$"))
        assert page.locator("#flag-F1").count() == 1
    finally:
        ctx.close()


def test_an_admin_sets_the_budget_and_the_audit_page_says_so_in_chinese(admin, server):  # noqa: F811
    admin.goto(server["base"] + f"/?day={DAY}")
    admin.fill("#budget-input", "abc")
    admin.fill("#budget-password", ADMIN_PASSWORD)
    with admin.expect_navigation():
        admin.click("#budget-form button[type=submit]")
    assert "每月补贴预算应为" in admin.inner_text("#refusal")
    admin.goto(server["base"] + f"/?day={DAY}")
    admin.fill("#budget-input", "100")
    admin.fill("#budget-password", ADMIN_PASSWORD)
    admin.click("#budget-form button[type=submit]")
    admin.wait_for_url(re.compile(r".*/console/$"))
    assert "每月补贴预算已设为 100.00 元" in admin.inner_text(".flash.ok")
    admin.goto(server["base"] + f"/?day={DAY}")
    assert admin.inner_text("#budget") == "100.00" and admin.inner_text("#budget-share") == "37.0%"
    assert admin.locator("#budget-bar").is_visible()
    admin.screenshot(path=str(SCREENS / "console_overview.png"), full_page=True)
    admin.goto(server["base"] + "/audit")
    first = admin.locator("#audit tbody tr").first
    assert first.locator("td.action").inner_text() == "设置每月补贴预算"
    sentence = first.locator("td.sentence").inner_text()
    assert "区管理员（A1）把武侯区的每月补贴预算从 未设置 改为 100.00 元。" in sentence
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first.locator("td").first.inner_text())
    raw = first.locator("details.raw")
    assert not raw.locator("code").first.is_visible()               # the raw record is folded away
    raw.locator("summary").click()
    assert "budget.set" in raw.inner_text() and "new_fen" in raw.inner_text()
    admin.select_option("#action", "budget.set")
    admin.click("form.card button[type=submit]")
    rows = admin.locator("#audit tbody tr.entry")
    assert rows.count() == 1 and "设置每月补贴预算" in rows.first.inner_text()


def test_an_admin_names_a_canteen_and_terminals_show_it(admin, server):  # noqa: F811
    from kiosk.district.domain.terminals import add_terminal

    add_terminal(server["app"], "C7", name="南街1号机")
    admin.goto(server["base"] + "/terminals")
    row = admin.locator("#terminals tbody tr", has_text="南街1号机")
    assert "未命名" in row.inner_text()
    admin.goto(server["base"] + "/canteens")
    admin.select_option("#rename_canteen", "C7")
    admin.fill("#rename_name", "南街长寿食堂")
    admin.click("#rename-form button[type=submit]")
    admin.wait_for_url(re.compile(r".*/console/canteens$"))
    assert "南街长寿食堂" in admin.inner_text("#canteen-C7")
    admin.goto(server["base"] + "/terminals")
    cell = admin.locator("#terminals tbody tr", has_text="南街1号机").locator("td").first.inner_text()
    assert cell.split() == ["南街长寿食堂", "C7"]
