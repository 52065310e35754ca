"""The kiosk UI, offscreen, driven by real frames through the real pipeline.
Screenshots of each state are saved under the test's temp folder."""
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton
from sqlalchemy import select

from kiosk.db.models import AuditEntry, Order
from kiosk.services.importing import import_menu, import_policy, import_roster
from kiosk.services.kiosk import KioskService
from kiosk.ui import theme
from kiosk.ui.main_window import BILL, CHALLENGE_S, IDLE, NOFACE, RECEIPT, STAFF, KioskWindow
from kiosk.ui.voice import Voice
from kiosk.ui.worker import event_from
from kiosk.vision.pipeline import RecognitionPipeline
from kiosk.vision.tracker import PersonTracker

from .vision_helpers import face_frame


@pytest.fixture
def canteen(app, formats, tmp_path, obama, biden):
    """Today's menu at the example canteen, R0001 enrolled with a photo of Obama."""
    import shutil

    from kiosk.services.canteen import configure_canteen
    from kiosk.timeutil import now_cst

    configure_canteen(app, name="玉林社区长寿食堂", district="武侯区",
                      windows={"午餐": ["00:00", "23:59"]})   # lunch all day: the same flow at any hour
    today = now_cst().date().isoformat()
    lines = (formats / "menu.example.csv").read_text(encoding="utf-8").splitlines()
    rows = [lines[0]] + [",".join([today, meal] + ln.split(",")[2:]) for meal in ("早餐", "午餐", "晚餐") for ln in lines[1:]]
    (tmp_path / "menu.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(obama[0], photos / "zhang_1.jpg")
    shutil.copy(biden, photos / "wang_1.jpg")
    import_policy(app, formats / "policy.example.yaml")
    import_menu(app, tmp_path / "menu.csv")
    import_roster(app, formats / "roster.example.csv", photos_dir=photos)
    app.residents.add_staff("S01", "李姐", "staff", "1234")
    app.residents.add_staff("A01", "王站长", "admin", "8888")
    return app


def make_window(qtbot, canteen, service: KioskService) -> KioskWindow:
    canteen.settings.liveness = "off"   # flow tests; the challenge has its own tests below
    w = KioskWindow(service, Voice(enabled=False), None, receipt_seconds=0.5)
    w.resize(1080, 1600)
    qtbot.addWidget(w)
    w.show()
    w.pipeline = RecognitionPipeline(canteen.engine, canteen.faces.match, PersonTracker(votes_needed=3, window=6))
    return w


@pytest.fixture
def win(qtbot, canteen):
    return make_window(qtbot, canteen, KioskService(canteen))


def feed(win, image, n=4):
    for i in range(n):
        win.on_frame(event_from(win.pipeline.process(image, ts=time.monotonic()), image))


def shot(win, tmp_path, name):
    import os
    folder = os.environ.get("KIOSK_SCREENSHOTS")   # set it to keep the screenshots somewhere
    path = (Path(folder) if folder else tmp_path) / f"{name}.png"
    assert win.grab().save(str(path))
    return path


def settle_check(qtbot, win):
    """Let a liveness check running on the thread pool report back (frames come faster here)."""
    if win.state == "challenge":
        qtbot.waitUntil(lambda: win.state != "challenge" or not win.challenge["checking"], timeout=5000)


def wait_state(qtbot, win, state, timeout=5000):
    qtbot.waitUntil(lambda: win.state == state, timeout=timeout)


def test_recognized_pay_receipt_idle(qtbot, win, obama, tmp_path):
    assert win.state == IDLE
    qtbot.waitUntil(lambda: "玉林社区长寿食堂" in win.idle.canteen.text())   # canteen name and today's meal
    assert any(m in win.idle.canteen.text() for m in ("早餐", "午餐", "晚餐"))
    shot(win, tmp_path, "01_idle")
    feed(win, face_frame(obama[1]))
    wait_state(qtbot, win, BILL)
    qtbot.waitUntil(lambda: "应付" in win.bill.to_pay.text())
    assert "张桂兰 阿姨您好" in win.bill.title.text()
    assert "八十岁及以上" in win.bill.subsidy.text() and "5.00" in win.bill.subsidy.text()
    assert win.bill.selected(), "the recommended set is preselected"
    assert any("推荐：" in win.bill.tiles[d].text() for d in win.bill.selected())   # one-line reasons shown
    assert all(win.bill.tiles[d].text().startswith("✓") for d in win.bill.selected())   # not colour alone
    from kiosk.money import fen_to_yuan
    expect = win.service.bill("R0001", win.bill.selected())
    assert expect.to_pay_fen == expect.total_fen - 500
    assert f"应付 {fen_to_yuan(expect.to_pay_fen)} 元" == win.bill.to_pay.text()
    shot(win, tmp_path, "02_bill")
    qtbot.mouseClick(win.bill.confirm_btn, Qt.MouseButton.LeftButton)
    wait_state(qtbot, win, RECEIPT)
    assert "结算成功" in win.receipt.title.text() and "实付" in win.receipt.paid.text()
    shot(win, tmp_path, "03_receipt")
    wait_state(qtbot, win, IDLE, 3000)          # returns by itself
    with win.service.app.db.session() as s:
        o = s.scalars(select(Order)).one()
        assert (o.resident_id, o.identified_by, o.subsidy_fen) == ("R0001", "face", 500)
    assert any("张桂兰" in t for t in win.voice.spoken) and any("结算成功" in t for t in win.voice.spoken)
    # still standing at the counter: not greeted (and charged) again
    feed(win, face_frame(obama[1]), 5)
    assert win.state == IDLE and "已经结算" in win.idle.hint.text()


def test_breakfast_is_full_price_and_the_screen_says_why(qtbot, canteen, obama):
    """With the usual meal windows and the terminal's clock at 07:30, the elder is served
    breakfast, which the example policy does not subsidise: no subsidy, the reason shown,
    the whole price to pay, and the order recorded as breakfast."""
    from datetime import datetime
    from datetime import time as clock_time

    from kiosk.services.canteen import configure_canteen
    from kiosk.timeutil import CST, now_cst

    configure_canteen(canteen, windows={"早餐": ["06:00", "09:30"], "午餐": ["10:30", "13:30"],
                                        "晚餐": ["16:30", "19:30"]})
    morning = datetime.combine(now_cst().date(), clock_time(7, 30), CST)
    w = make_window(qtbot, canteen, KioskService(canteen, clock=lambda: morning))
    qtbot.waitUntil(lambda: "早餐" in w.idle.canteen.text())
    feed(w, face_frame(obama[1]))
    wait_state(qtbot, w, BILL)
    qtbot.waitUntil(lambda: "应付" in w.bill.to_pay.text())
    assert "早餐不在补贴范围" in w.bill.subsidy.text()
    expect = w.service.bill("R0001", w.bill.selected())
    assert expect.total_fen > 0 and expect.subsidy_fen == 0 and expect.to_pay_fen == expect.total_fen
    qtbot.mouseClick(w.bill.confirm_btn, Qt.MouseButton.LeftButton)
    wait_state(qtbot, w, RECEIPT)
    with canteen.db.session() as s:
        o = s.scalars(select(Order)).one()
        assert (o.meal, o.subsidy_fen, o.to_pay_fen) == ("早餐", 0, expect.total_fen)


def test_not_me_goes_to_card_path_and_charges_nobody(qtbot, win, obama, tmp_path):
    feed(win, face_frame(obama[1]))
    wait_state(qtbot, win, BILL)
    assert win.bill.not_me_btn.isVisible()
    qtbot.mouseClick(win.bill.not_me_btn, Qt.MouseButton.LeftButton)
    wait_state(qtbot, win, NOFACE)
    shot(win, tmp_path, "04_not_me")
    qtbot.waitUntil(lambda: _audit(win, "face.misidentified") is not None)
    with win.service.app.db.session() as s:
        assert s.scalars(select(Order)).all() == []


def _audit(win, action):
    with win.service.app.db.session() as s:
        return s.scalars(select(AuditEntry).where(AuditEntry.action == action)).first()


def _count(win, action):
    with win.service.app.db.session() as s:
        return len(s.scalars(select(AuditEntry).where(AuditEntry.action == action)).all())


def test_unknown_face_goes_to_card_path(qtbot, win, strangers):
    feed(win, face_frame(strangers[0]), 8)
    wait_state(qtbot, win, NOFACE)
    assert "没有认出您" in win.noface.prompt.text()


def test_card_number_path_with_card_reader(qtbot, win, tmp_path):
    qtbot.mouseClick(win.idle.no_face_btn, Qt.MouseButton.LeftButton)
    assert win.state == NOFACE
    qtbot.keyClicks(win.noface.entry, "ZL0002")      # a USB reader types the number ...
    qtbot.keyClick(win.noface.entry, Qt.Key.Key_Return)   # ... and Enter
    wait_state(qtbot, win, BILL)
    assert "王德福 叔叔您好" in win.bill.title.text() and not win.bill.not_me_btn.isVisible()
    qtbot.waitUntil(lambda: win.bill.confirm_btn.isEnabled())
    shot(win, tmp_path, "05_card_bill")
    win.bill.confirm_btn.click()
    wait_state(qtbot, win, RECEIPT)


def test_phone_last_four_then_name(qtbot, win):
    win.go_noface("请输入")
    win.noface.phone_mode.click()
    for d in "0001":
        win.noface.keypad.buttons[d].click()
    win.noface.keypad.buttons["确定"].click()
    qtbot.waitUntil(lambda: win.noface.names.count() == 1)
    item = win.noface.names.item(0)
    assert "张桂兰" in item.text()
    win.noface.names.itemClicked.emit(item)
    wait_state(qtbot, win, BILL)


def test_unknown_card_says_so(qtbot, win):
    win.go_noface("请输入")
    win.noface.entry.setText("NOPE")
    win.noface.keypad.buttons["确定"].click()
    qtbot.waitUntil(lambda: "没有找到这张助老卡" in win.noface.error.text())
    assert win.state == NOFACE


def test_insufficient_balance_keeps_the_bill(qtbot, win, tmp_path):
    win.go_bill("R0002", "card")
    wait_state(qtbot, win, BILL)
    qtbot.waitUntil(lambda: win.bill.confirm_btn.isEnabled())
    win.bill.pay_buttons["balance"].click()
    win.bill.confirm_btn.click()
    qtbot.waitUntil(lambda: "余额不足" in win.bill.error.text())
    assert win.state == BILL and win.bill.pay_buttons["cash"].isChecked()
    shot(win, tmp_path, "06_insufficient")
    with win.service.app.db.session() as s:
        assert s.scalars(select(Order)).all() == []


def test_double_tap_confirm_settles_once(qtbot, win):
    win.go_bill("R0001", "card")
    wait_state(qtbot, win, BILL)
    qtbot.waitUntil(lambda: win.bill.confirm_btn.isEnabled())
    win.confirm()
    win.confirm()
    wait_state(qtbot, win, RECEIPT)
    qtbot.wait(300)
    with win.service.app.db.session() as s:
        assert len(s.scalars(select(Order)).all()) == 1


def test_staff_void_topup_and_admin(qtbot, win, formats, tmp_path):
    win.go_bill("R0001", "card")
    qtbot.waitUntil(lambda: win.state == BILL and win.bill.confirm_btn.isEnabled())
    win.bill.confirm_btn.click()
    wait_state(qtbot, win, RECEIPT)
    win.go_staff()
    assert win.state == STAFF
    win.staff.login.emit("0000")
    qtbot.waitUntil(lambda: "PIN 不正确" in win.staff.message.text())
    win.staff.login.emit("1234")
    qtbot.waitUntil(lambda: win.staff.stack.currentIndex() == 1)
    assert not win.staff.admin_btn.isVisible()
    win.staff.debug_btn.click()
    assert win.debug.isVisible()              # the frame-rate / stage-time overlay
    win.staff.debug_btn.click()
    assert not win.debug.isVisible()
    qtbot.waitUntil(lambda: "上一单" in win.staff.last_order.text())
    win.staff.void_buttons["打错菜"].click()
    qtbot.waitUntil(lambda: "已作废" in win.staff.message.text())
    assert _audit(win, "order.void").actor == "S01"
    win.staff.rid.setText("ZL0002")
    win.staff.amount.setText("30")
    win.staff.payer.setText("子女")
    win.staff.topup_btn.click()
    qtbot.waitUntil(lambda: "已充值" in win.staff.message.text())
    assert win.service.app.billing.balance("R0002") == 3000
    shot(win, tmp_path, "07_staff")
    win.go_idle()
    win.go_staff()
    win.staff.login.emit("8888")
    qtbot.waitUntil(lambda: win.staff.stack.currentIndex() == 1 and win.staff.admin_btn.isVisible())
    win.staff.admin_btn.click()
    imports_before = _count(win, "import.menu")
    bad = tmp_path / "menu_bad.csv"
    bad.write_text("日期,餐次,菜品编号,菜名,价格\n2026-11-23,午餐,X,鱼,12.345\n", encoding="utf-8")
    win.staff.path.setText(str(bad))
    win.staff.import_btn.click()
    qtbot.waitUntil(lambda: win.staff.report.count() >= 2)
    assert "第2行" in win.staff.report.item(1).text() and "价格" in win.staff.report.item(1).text()
    qtbot.waitUntil(lambda: "1 单" in win.staff.totals.text() or "0 单" in win.staff.totals.text())
    win.staff.export_btn.click()
    qtbot.waitUntil(lambda: "已导出" in win.staff.message.text())
    win.staff.month_btn.click()
    qtbot.waitUntil(lambda: "subsidy-" in win.staff.message.text())
    assert _audit(win, "report.monthly").actor == "A01"
    shot(win, tmp_path, "08_admin")
    assert _count(win, "import.menu") == imports_before   # the file had a bad row: nothing imported
    assert _audit(win, "orders.export").actor == "A01"


def test_camera_lost_and_back(qtbot, canteen, obama):
    """The real worker thread, a camera that dies and comes back."""
    from kiosk.vision.camera import ResilientSource
    from kiosk.ui.worker import VisionWorker

    class Cam:
        alive = True
        frame = face_frame(obama[1])

        def read(self):
            return (True, self.frame) if Cam.alive else (False, None)

        def release(self):
            pass

    src = ResilientSource(lambda: Cam() if Cam.alive else (_ for _ in ()).throw(OSError("unplugged")),
                          min_backoff_s=0.05, max_backoff_s=0.2, lost_after_s=0.3)
    pipe = RecognitionPipeline(canteen.engine, canteen.faces.match, PersonTracker(votes_needed=30, window=30))
    worker = VisionWorker(src, pipe, fps=20)
    w = KioskWindow(KioskService(canteen), Voice(enabled=False), worker)
    qtbot.addWidget(w)
    w.show()
    worker.start()
    try:
        qtbot.waitUntil(lambda: w.camera_state == "live", timeout=5000)
        Cam.alive = False
        qtbot.waitUntil(lambda: w.camera_state == "lost", timeout=5000)
        assert "摄像头暂时不可用" in w.idle.hint.text()
        assert any("摄像头暂时不可用" in t for t in w.voice.spoken)
        Cam.alive = True
        qtbot.waitUntil(lambda: w.camera_state == "live", timeout=5000)
        qtbot.waitUntil(lambda: "摄像头" not in w.idle.hint.text(), timeout=5000)
    finally:
        worker.stop()


def _visible(widget, cls):
    return [c for c in widget.findChildren(cls) if c.isVisibleTo(widget)]


@pytest.mark.parametrize("state", [IDLE, BILL, NOFACE, STAFF])
def test_elder_friendly_sizes(qtbot, win, state):
    if state == BILL:
        win.go_bill("R0001", "card")
        qtbot.waitUntil(lambda: win.state == BILL and win.bill.confirm_btn.isEnabled())
    elif state == NOFACE:
        win.go_noface("请刷卡")
    elif state == STAFF:
        win.go_staff()
    page = win.pages[state]
    qtbot.wait(50)
    for b in _visible(page, QPushButton):
        assert b.width() >= 90 and b.height() >= 90, (b.text(), b.size())
        assert b.font().pixelSize() >= 28 or b.font().pointSizeF() * 96 / 72 >= 28, b.text()
    for lab in _visible(page, QLabel):
        if lab.text():
            assert lab.font().pixelSize() >= 28, (lab.text(), lab.font().pixelSize())
    if state == BILL:
        assert win.bill.subsidy.font().pixelSize() >= 48 and win.bill.to_pay.font().pixelSize() >= 48


def test_contrast_of_every_colour_pair():
    pairs = [(theme.FG, theme.BG), (theme.ACCENT, theme.BG), (theme.ACCENT, "#FFFFFF"), ("#FFFFFF", theme.ACCENT),
             (theme.OK, theme.BG), (theme.WARN, theme.BG), (theme.DANGER, theme.BG), (theme.DANGER, "#FFFFFF"),
             (theme.FG, theme.TILE_ON), (theme.MUTED, "#EEEEEE"), (theme.FG, "#FFFFFF")]
    for fg, bg in pairs:
        assert theme.contrast(fg, bg) >= 4.5, (fg, bg, theme.contrast(fg, bg))
    assert abs(theme.contrast("#000000", "#FFFFFF") - 21.0) < 0.01


def test_voice_prompt_renders_mandarin_offline(tmp_path):
    from kiosk.ui.voice import to_pinyin

    assert to_pinyin("请看屏幕") == "qing3 kan4 ping2 mu4"
    v = Voice(enabled=False)
    v.say("请靠近一点")
    assert v.spoken == ["请靠近一点"]
    if v.engine is None:
        pytest.fail("espeak-ng is not installed (install.sh installs it)")
    wav = tmp_path / "prompt.wav"
    assert v.render_wav("请看屏幕，刷脸就餐", str(wav)) and wav.stat().st_size > 10000


def test_liveness_challenge_refuses_a_held_photo(qtbot, win, obama, tmp_path):
    """With the active challenge on, a photo in front of the camera is identified but
    never charged: two failed head-turn requests, then the card path."""
    from .liveness_helpers import attack_frames

    win.service.app.settings.liveness = "active"
    frame = face_frame(obama[1])
    t = [0.0]

    def push(img):
        t[0] += 0.1
        win.on_frame(event_from(win.pipeline.process(img, ts=t[0]), img, ts=t[0]))
        settle_check(qtbot, win)

    for _ in range(4):
        push(frame)
    assert win.state == "challenge" and "转头" in win.idle.prompt.text()
    qtbot.waitUntil(lambda: "玉林社区长寿食堂" in win.idle.canteen.text())
    shot(win, tmp_path, "09_challenge")
    # the attacker turns the photo as asked
    for img in attack_frames(frame, "turn_left", 30) + attack_frames(frame, "turn_right", 30):
        push(img)
        if win.state != "challenge":
            break
    second = None
    for _ in range(160):
        if win.state != "challenge":
            break
        if second is None and win.challenge["attempt"] == 2:
            second = t[0]
        push(frame)
    assert win.state == NOFACE
    assert second is not None and t[0] - second >= CHALLENGE_S - 0.15   # the second try had its own time
    qtbot.waitUntil(lambda: _count(win, "liveness.failed") == 2)     # written off the UI thread
    with win.service.app.db.session() as s:
        assert s.scalars(select(Order)).all() == []
        fails = s.scalars(select(AuditEntry).where(AuditEntry.action == "liveness.failed")).all()
    assert all(f.subject == "R0001" for f in fails)


def test_liveness_challenge_passes_a_turning_head(qtbot, win, obama):
    """The challenge on a (synthetic 2.5-D) turning head leads to the bill."""
    import numpy as np

    from kiosk.demo import turn_head
    from kiosk.vision.quality import primary_face

    win.service.app.settings.liveness = "active"
    frame = face_frame(obama[1])
    f = primary_face(win.service.app.engine.detect(frame), frame.shape)
    t = [0.0]

    def push(img):
        t[0] += 1 / 12
        win.on_frame(event_from(win.pipeline.process(img, ts=t[0]), img, ts=t[0]))
        settle_check(qtbot, win)

    for _ in range(4):
        push(frame)
    assert win.state == "challenge"
    sign = 1 if win.challenge["dir"] == "left" else -1
    for i in range(15):
        push(turn_head(frame, f.bbox, f.landmarks[2], sign * np.radians(28) * min(i, 12) / 12))
        if win.state != "challenge":
            break
    wait_state(qtbot, win, BILL)


def test_staff_enrols_from_the_camera_and_a_duplicate_needs_a_supervisor(qtbot, win, obama, tmp_path):
    """Guided capture (frontal, a little left, a little right) from camera frames; the face
    already belongs to R0001, so enrolling it for R0002 is refused until a supervisor
    authorises it with a reason."""
    import numpy as np

    from kiosk.demo import turn_head
    from kiosk.vision.quality import primary_face

    canteen = win.service.app
    canteen.residents.add_staff("SUP", "王主管", "supervisor", "5678")
    frame = face_frame(obama[0])                 # yaw +0.03: frontal; turned 25-28 degrees either way
    f = primary_face(canteen.engine.detect(frame), frame.shape)
    poses = [frame] + [turn_head(frame, f.bbox, f.landmarks[2], np.radians(a)) for a in (25, 28, -20, -25)]
    win.go_staff()
    win.staff.login.emit("1234")
    qtbot.waitUntil(lambda: win.staff.stack.currentIndex() == 1)
    win.staff.rid.setText("ZL0002")              # 王德福's card number
    win.staff.consent.setChecked(True)
    win.staff.enroll_btn.click()
    assert "请正对屏幕" in win.staff.capture_status.text()
    for img in poses:
        win.on_frame(event_from(win.pipeline.process(img, ts=time.monotonic()), img))
    qtbot.waitUntil(lambda: win.staff.override_box.isVisible(), timeout=5000)
    assert "R0001" in win.staff.message.text() and "张桂兰" in win.staff.message.text()
    shot(win, tmp_path, "10_enrol_duplicate")
    win.staff.override_reason.setText("双胞胎，已核对身份证")
    win.staff.sup_pin.setText("1234")              # not a supervisor
    win.staff.override_btn.click()
    qtbot.waitUntil(lambda: "主管" in win.staff.message.text())
    win.staff.sup_pin.setText("5678")
    win.staff.override_btn.click()
    qtbot.waitUntil(lambda: "采集 3 张人脸模板" in win.staff.message.text(), timeout=5000)
    a = _audit(win, "enroll.duplicate_override")
    assert a.actor == "SUP" and "双胞胎" in a.detail["reason"]
