"""The console's 报餐 page and the 终端 page's offline limits in a real browser (chromium,
1366×768) against a real `kiosk server` over the console tests' seeded month
(tests/test_console_reports.seed)."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from kiosk.timeutil import now_cst

from tests.test_console_browser import admin, browser, pytestmark, server  # noqa: F401  (fixtures, skips)
from tests.test_console_reports import ADMIN_PASSWORD

MONTH = "2026-11"


def _days_eaten(app, rid: str) -> set[date]:
    from kiosk.db.models import Order

    with app.db.session(read_only=True) as s:
        return set(s.scalars(select(Order.meal_date).where(Order.resident_id == rid, Order.meal == "午餐")))


def test_the_kitchen_sheet_and_the_no_shows_of_the_month(admin, server):  # noqa: F811
    from kiosk.services.bookings import set_booking

    app = server["app"]
    first = date(2026, 11, 1)
    month_days = [first + timedelta(days=i) for i in range(30)]
    came = sorted(_days_eaten(app, "R0001") & set(month_days))
    absent = [d for d in month_days if d not in _days_eaten(app, "R0003")]
    assert came and absent, "the seeded month has a lunch of R0001 and a day without R0003"
    set_booking(app, "R0001", came[0], "午餐", canteen_id="C1", today=came[0])          # booked and came
    set_booking(app, "R0003", absent[0], "午餐", canteen_id="C1", today=absent[0])      # booked, did not come
    tomorrow = now_cst().date() + timedelta(days=1)
    set_booking(app, "R0001", tomorrow, "午餐", canteen_id="C1", portions=2, today=now_cst().date())
    set_booking(app, "R0002", tomorrow, "午餐", canteen_id="C1", today=now_cst().date())
    set_booking(app, "R0003", tomorrow, "午餐", canteen_id="C1", today=now_cst().date(), cancel=True)   # 报停

    admin.goto(server["base"] + f"/bookings?day={tomorrow}&month={MONTH}")
    per_meal = admin.inner_text("#bookings-1")
    row = [r for r in per_meal.splitlines() if "午餐" in r]
    assert len(row) == 1 and row[0].split("\t")[-2:] == ["2", "3"], per_meal     # 2 elders, 3 portions
    assert "报餐人数 2，份数 3，报停 1" in admin.inner_text("main")
    assert "食堂安排" in admin.inner_text("#bookings-2")                            # no dish chosen
    no_shows = admin.inner_text("#no-shows")
    line = [r for r in no_shows.splitlines() if "C1" in r][0]
    assert line.split("\t")[1:4] == ["2", "1", "1"], no_shows                         # booked, came, not
    assert "刘秀英（R0003" in line and "王德福" not in line
    # the kitchen sheet as a file, as the kitchen prints it
    with admin.expect_download() as dl:
        admin.click("text=下载 PDF")
    assert dl.value.suggested_filename.endswith(".pdf")
    assert admin.evaluate("document.documentElement.scrollWidth") <= 1366
    admin.goto(server["base"] + "/")
    admin.click("nav >> text=报餐")
    assert "/bookings" in admin.url


def test_an_admin_sets_the_offline_limits_and_blocks_a_card(admin, server):  # noqa: F811
    from kiosk.services.offline_limits import describe

    admin.goto(server["base"] + "/terminals")
    admin.fill("#per_sale", "15")
    admin.fill("#per_day", "30.5")
    admin.fill("#subsidy_hours", "12")
    admin.fill("#offline_pw", "wrong password")
    admin.click("#offline-form button")
    assert "密码" in admin.inner_text(".flash.error")              # refused, nothing changed
    assert describe(server["app"])["per_sale_fen"] is None
    admin.fill("#per_sale", "15")
    admin.fill("#per_day", "30.5")
    admin.fill("#subsidy_hours", "12")
    admin.fill("#offline_pw", ADMIN_PASSWORD)
    admin.click("#offline-form button")
    d = describe(server["app"])
    assert (d["per_sale_fen"], d["per_day_fen"], d["subsidy_offline_s"]) == (1500, 3050, 12 * 3600)
    settings = admin.inner_text("#offline-settings")
    assert "15 元" in settings and "30.50 元" in settings and "12 小时" in settings
    admin.select_option("#block_kind", "card")
    admin.fill("#block_value", "zl0002")
    admin.fill("#block_reason", "卡丢失")
    admin.fill("#block_pw", ADMIN_PASSWORD)
    admin.click("#block-form button")
    blocked = admin.inner_text("#offline-blocked")
    assert "ZL0002" in blocked and "卡丢失" in blocked
    # the audit page says it in Chinese, with yuan
    admin.goto(server["base"] + "/audit")
    audit = admin.inner_text("main")
    assert "设置断网时的限额" in audit and "15" in audit and "挂失了 ZL0002（卡丢失）" in audit
