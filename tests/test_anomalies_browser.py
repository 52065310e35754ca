"""The console's 异常线索 page in a real browser (chromium, 1366×768) against a real
`kiosk server` over the console tests' seeded month (tests/test_console_reports.seed)."""
from __future__ import annotations

from datetime import date, datetime

from kiosk.timeutil import CST
from tests.test_console_browser import admin, browser, pytestmark, server  # noqa: F401  (fixtures, skips)

MONTH = "2026-11"


def _order(oid: str, rid: str, canteen: str, at: datetime, subsidy: int = 500):
    from kiosk.db.models import Order

    return Order(id=oid, idempotency_key=oid, resident_id=rid, canteen_id=canteen, terminal_id=f"{canteen}-T1",
                 meal_date=at.date(), meal="午餐", total_fen=1500, subsidy_fen=subsidy, to_pay_fen=1500 - subsidy,
                 pay_method="cash", reason="", identified_by="face", created_at=at, face_verified=True,
                 liveness_passed=True)


def test_anomalies_page_lists_the_leads_of_the_month(admin, server):  # noqa: F811
    from kiosk.db.models import Resident

    app = server["app"]
    admin.goto(server["base"] + "/anomalies?month=2026-10")
    assert "2026-10 没有异常线索" in admin.inner_text("#anomalies")
    with app.db.session() as s:
        r = s.get(Resident, "R0003")
        r.roster_status, r.status_date = "deceased", date(2026, 11, 27)
        s.add(_order("X-LATE", "R0003", "C1", datetime(2026, 11, 28, 11, 40, tzinfo=CST)))
        s.add(_order("X-HOP1", "R0002", "C1", datetime(2026, 11, 29, 12, 0, tzinfo=CST)))
        s.add(_order("X-HOP2", "R0002", "C2", datetime(2026, 11, 29, 12, 7, tzinfo=CST), subsidy=0))
    admin.goto(server["base"] + f"/anomalies?month={MONTH}")
    late = admin.inner_text("#anomalies tr.kind-after_status")
    assert "状态日期后就餐" in late and "刘秀英" in late and "死亡" in late and "R0003" in late
    hop = admin.locator("#anomalies tr.kind-too_close", has_text="王德福")
    assert "7分钟后" in hop.inner_text() and "C2" in hop.inner_text()
    hop.locator("summary").click()
    assert "X-HOP1 X-HOP2" in hop.locator("details").inner_text()
    counts = admin.inner_text("#anomaly-counts")
    assert "状态日期后就餐 1" in counts and "短时间内大量非刷脸结账 0" in counts
    assert "两个食堂之间至少相隔分钟数" in admin.inner_text("#anomaly-thresholds")
    # readable at 1366×768: nothing wider than the window
    assert admin.evaluate("document.documentElement.scrollWidth") <= 1366
    # the nav bar leads here
    admin.goto(server["base"] + "/")
    admin.click("nav >> text=异常线索")
    assert "/anomalies" in admin.url
