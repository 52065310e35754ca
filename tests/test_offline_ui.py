"""The counter at an offline terminal (issue 21, point 4), offscreen: the elder sees and
hears why the balance cannot pay, why there is no subsidy today, why a card is refused.
A real district: the server process, a terminal synced with it, then the server gone."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kiosk.db import changes
from kiosk.db.models import Order, utcnow
from kiosk.terminal.counter import KioskService
from kiosk.ui.main_window import BILL, NOFACE, PAY, RECEIPT, KioskWindow
from kiosk.ui.voice import Voice
from kiosk.vision.pipeline import RecognitionPipeline
from kiosk.vision.tracker import PersonTracker

from tests.conftest import UI_WAIT_MS, staff_actor
from tests.district_helpers import District


def sync(app):
    from kiosk.terminal.sync.client import SyncClient

    c = SyncClient(app)
    try:
        return c.sync()
    except Exception as exc:       # noqa: BLE001 - offline: the sync state says so
        return exc
    finally:
        c.close()


@pytest.fixture
def offline_terminal(env, tmp_path, formats):
    """Canteen C1's terminal, synced with the district's limits (3 元 per offline balance
    payment) and a lost card (ZL0002), R0001 with 100 元 on the balance; then the server stops."""
    from kiosk.services.canteen import configure_canteen
    from kiosk.services.offline_limits import block, set_limits

    d = District(tmp_path, formats)
    d.start()
    app = d.server_app("C1")
    try:
        configure_canteen(app, name="玉林社区长寿食堂", district="武侯区", windows={"午餐": ["00:00", "23:59"]})
        adm = staff_actor(app, "ADM")
        set_limits(app, adm, per_sale_fen=300)
        block(app, adm, "card", "ZL0002", "挂失")
    finally:
        app.close()
    t = d.terminal("C1")
    sync(t)
    t.billing.topup("R0001", 10_000, actor=staff_actor(t, "S01"))
    sync(t)
    d.stop()
    sync(t)                     # fails: offline from now on
    yield t
    from kiosk.terminal.sync.status import stop_background_sync

    stop_background_sync(t)
    d.close()


@pytest.fixture
def win(qtbot, offline_terminal):
    app = offline_terminal
    app.settings.liveness = "off"
    w = KioskWindow(KioskService(app), Voice(enabled=False), None, leave_seconds=2.0)
    w.resize(1080, 1920)
    qtbot.addWidget(w)
    w.show()
    w.pipeline = RecognitionPipeline(app.engine, app.faces.match, PersonTracker(votes_needed=3, window=6))
    return w


def wait_state(qtbot, win, state, timeout=UI_WAIT_MS):
    qtbot.waitUntil(lambda: win.state == state, timeout=timeout)


def test_an_offline_counter_says_why_the_balance_cannot_pay_and_takes_cash(qtbot, win):
    cap = "网络暂时断开，余额每餐最多付 3 元，请用现金或找工作人员"
    win.go_bill("R0001", "card")
    wait_state(qtbot, win, BILL)
    qtbot.waitUntil(lambda: win.bill.confirm_btn.isEnabled() and win.bill.to_pay.text() != "")
    assert win.checkout.pay == "cash"            # the kiosk does not offer a payment it would refuse
    win.bill.pay_btn.click()                     # the elder wants the balance all the same
    wait_state(qtbot, win, PAY)
    win.pay.buttons["balance"].click()
    qtbot.waitUntil(lambda: win.state == BILL and win.bill.error.text() == cap)
    qtbot.waitUntil(lambda: any(cap in t for t in win.voice.spoken))        # shown and spoken
    win.bill.confirm_btn.click()                 # and confirms: refused, in the same words
    qtbot.waitUntil(lambda: not win.checkout.settling and win.voice.spoken[-1] == cap)
    assert win.state == BILL and win.bill.error.text() == cap
    with win.service.app.db.session() as s:
        assert s.scalars(select(Order)).all() == []
    win.bill.pay_btn.click()                     # cash
    wait_state(qtbot, win, PAY)
    win.pay.buttons["cash"].click()
    qtbot.waitUntil(lambda: win.state == BILL and "现金" in win.bill.pay_line.text())
    win.bill.confirm_btn.click()
    wait_state(qtbot, win, RECEIPT)
    with win.service.app.db.session() as s:
        o = s.scalars(select(Order)).one()
    assert o.pay_method == "cash" and o.offline_s is not None


def test_a_lost_card_is_refused_in_plain_words(qtbot, win):
    win.go_noface("请刷助老卡")
    win.noface.entry.setText("ZL0002")
    win.noface.cardkeys.buttons["确定"].click()
    qtbot.waitUntil(lambda: win.noface.error.text() == "这张卡已挂失，请找工作人员")
    assert win.state == NOFACE and win.voice.spoken[-1] == "这张卡已挂失，请找工作人员"


def test_offline_for_more_than_a_day_the_bill_says_there_is_no_subsidy(qtbot, win):
    from kiosk.terminal.sync.client import set_state

    app = win.service.app
    before = win.service.checkout.greet("R0002")
    assert before.subsidy_fen > 0
    with app.db.session() as s:
        s.info[changes.APPLY] = True
        day_ago = (utcnow() - timedelta(hours=25)).isoformat()
        set_state(s, "last_sync", day_ago)
        set_state(s, "offline_since", day_ago)
    win.go_bill("R0002", "card")
    wait_state(qtbot, win, BILL)
    why = "本餐没有补贴：网络断开已超过一天，今天暂不能享受补贴"
    qtbot.waitUntil(lambda: win.bill.subsidy.text() == why and any(why in t for t in win.voice.spoken))
