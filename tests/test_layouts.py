"""Every page at the four terminal screens (portrait 1080×1920 and 720×1280, landscape
1280×800 and 1920×1080): no label's text clipped, no button's text cut, no widget outside
the window, the window exactly the screen's size. Screenshots go to KIOSK_SCREENSHOTS
(docs/screens/ holds the ones the README shows) or the test's temp folder."""
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QFontMetrics, QTextLayout, QTextOption
from PySide6.QtWidgets import (QAbstractScrollArea, QCheckBox, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QScrollArea, QWidget)

from kiosk.terminal.counter import KioskService
from kiosk.ui.main_window import KioskWindow
from kiosk.ui.voice import Voice
from kiosk.ui import wrap
from kiosk.ui.widgets import DishTile

from kiosk.ui.worker import event_from
from kiosk.vision.pipeline import RecognitionPipeline
from kiosk.vision.tracker import PersonTracker

from tests.test_ui import STAFF_PIN, add_staff, canteen  # noqa: F401  (the canteen fixture)
from tests.vision_helpers import face_frame

SIZES = [(1080, 1920), (720, 1280), (1280, 800), (1920, 1080)]


def _scroll_parent(w: QWidget, win) -> QAbstractScrollArea | None:
    p = w.parentWidget()
    while p is not None and p is not win:
        if isinstance(p, QAbstractScrollArea):
            return p
        p = p.parentWidget()
    return None


def problems(win) -> list[str]:
    """What does not fit on the page shown now."""
    out = []
    if (win.width(), win.height()) != win.expected:
        out.append(f"window {win.width()}×{win.height()} instead of {win.expected}: the content does not fit")
    page = win.stack.currentWidget()
    frame = win.rect()
    widgets = [w for w in page.findChildren(QWidget) if w.isVisible()] + \
        ([win.call_banner] if win.call_banner.isVisible() else [])
    for w in widgets:
        if not isinstance(w, (QLabel, QPushButton, QLineEdit, QProgressBar, QCheckBox, QAbstractScrollArea)) \
                or isinstance(w, QHeaderView):
            continue
        if isinstance(w, QLabel) and isinstance(w.parentWidget(), DishTile) is False and w.text() == "":
            continue
        name = f"{type(w).__name__}「{(w.text() if hasattr(w, 'text') else '')[:20]}」"
        tl = w.mapTo(win, QPoint(0, 0))
        r = QRect(tl, w.size())
        sa = _scroll_parent(w, win)
        if sa is not None:       # inside a scroll area: within its width (it scrolls up and down only)
            vp = sa.viewport()
            v = QRect(vp.mapTo(win, QPoint(0, 0)), vp.size())
            if r.left() < v.left() - 1 or r.right() > v.right() + 1:
                out.append(f"{name} wider than its scroll area: {r} vs {v}")
        elif not frame.contains(r):
            out.append(f"{name} leaves the window: {r}")
        parent = w.parentWidget()
        if sa is None and parent is not None and parent is not win:
            pr = QRect(parent.mapTo(win, QPoint(0, 0)), parent.size())
            if not pr.adjusted(-1, -1, 1, 1).contains(r):
                out.append(f"{name} sticks out of its parent ({type(parent).__name__}): {r} vs {pr}")
        fm = QFontMetrics(w.font())
        if isinstance(w, QLabel) and w.text():
            cr = w.contentsRect()
            if w.wordWrap():
                br = fm.boundingRect(QRect(0, 0, cr.width(), 100000), int(Qt.TextFlag.TextWordWrap),
                                     QLabel.text(w))      # as shown (phrases held together)
                if br.width() > cr.width() + 1 or br.height() > cr.height() + 1:
                    out.append(f"{name} clipped: needs {br.width()}×{br.height()}, has {cr.width()}×{cr.height()}")
            else:
                lines = w.text().split("\n")
                need_w = max(fm.horizontalAdvance(ln) for ln in lines)
                if need_w > cr.width() + 1 or len(lines) * fm.lineSpacing() > cr.height() + 1:
                    out.append(f"{name} clipped: needs {need_w} px wide, has {cr.width()}")
        elif isinstance(w, QPushButton) and not isinstance(w, DishTile) and w.text():
            lines = w.text().split("\n")
            need_w = max(fm.horizontalAdvance(ln) for ln in lines) + 12
            if need_w > w.width() or len(lines) * fm.lineSpacing() > w.height():
                out.append(f"{name} text cut: needs {need_w}×{len(lines) * fm.lineSpacing()}, has {w.width()}×{w.height()}")
    buttons = [b for b in widgets if isinstance(b, QPushButton) and _scroll_parent(b, win) is None]
    rects = [(b, QRect(b.mapTo(win, QPoint(0, 0)), b.size())) for b in buttons]
    for i, (a, ra) in enumerate(rects):
        for b, rb in rects[i + 1:]:
            if not (a.isAncestorOf(b) or b.isAncestorOf(a)) and ra.intersects(rb):
                out.append(f"buttons「{a.text()[:8]}」and「{b.text()[:8]}」overlap: {ra} {rb}")
    return out


def _lines(text: str, font, width: int) -> list[str]:
    """How Qt wraps ``text`` (one paragraph) in ``width`` px: the lines, as shown."""
    tl = QTextLayout(text, font)
    opt = QTextOption()
    opt.setWrapMode(QTextOption.WrapMode.WordWrap)
    tl.setTextOption(opt)
    tl.beginLayout()
    out = []
    while True:
        ln = tl.createLine()
        if not ln.isValid():
            break
        ln.setLineWidth(width)
        out.append(text[ln.textStart():ln.textStart() + ln.textLength()])
    tl.endLayout()
    return out


def word_breaks(win) -> list[str]:
    """Labels whose Chinese breaks inside a phrase (kiosk.ui.wrap.phrases): a line that
    ends with part of a phrase, e.g. 「手」/「机号后四位」 or 「现」/「金」."""
    out = []
    page = win.stack.currentWidget()
    labels = [w for w in page.findChildren(QLabel) if w.isVisible() and w.wordWrap() and w.text()]
    labels += [win.call_banner] if win.call_banner.isVisible() else []
    for w in labels:
        width = w.contentsRect().width() - 2 * w.margin()
        for para in QLabel.text(w).split("\n"):
            plain = wrap.plain(para)
            bounds = wrap.unit_bounds(plain) | {0}
            end = 0
            lines = _lines(para, w.font(), width)
            for ln in lines[:-1]:
                end += len(wrap.plain(ln))
                if end not in bounds and not plain[end - 1:end].isspace():
                    out.append(f"「{plain}」breaks inside a phrase: 「{plain[:end][-6:]}」/「{plain[end:][:6]}」"
                               f" ({'|'.join(wrap.phrases(plain))})")
    return out


def keyboard_problems(win, edit, button) -> list[str]:
    """With the staff keyboard open: the field being typed and its form's button are whole
    on the screen (not scrolled away, not under the keyboard), and the keys are in their rows."""
    out = []
    kb = win.staff.keyboard
    if not kb.isVisible():
        return ["the keyboard is not open"]
    rk = QRect(kb.mapTo(win, QPoint(0, 0)), kb.size())
    for w in (edit, button):
        r = QRect(w.mapTo(win, QPoint(0, 0)), w.size())
        sa = _scroll_parent(w, win)
        view = QRect(sa.viewport().mapTo(win, QPoint(0, 0)), sa.viewport().size()) if sa else win.rect()
        if not w.isVisible() or not view.contains(r) or not win.rect().contains(r) or rk.intersects(r):
            out.append(f"{type(w).__name__}「{w.text()[:10]}」not in view with the keyboard open: {r} in {view}")
    return out + key_rows_problems(win, kb)


def key_rows_problems(win, kb) -> list[str]:
    """A keyboard in its fixed rows at every size: the digits 1-0 in one row on top, then the
    letter rows, each key left of the next, and 删除 and 清除 on it."""
    out = []
    if kb.layout_rows[0] != list("1234567890"):
        out.append(f"the first row is {kb.layout_rows[0]}, not the digits 1-0")
    if not {"删除", "清除"} <= set(kb.buttons):
        out.append("删除 or 清除 missing")
    tops = []
    for row in kb.layout_rows:
        pos = [kb.buttons[k].mapTo(win, QPoint(0, 0)) for k in row]
        if len({p.y() for p in pos}) != 1 or [p.x() for p in pos] != sorted(p.x() for p in pos):
            out.append(f"keyboard row {''.join(row)} is not one row in order: {[(p.x(), p.y()) for p in pos]}")
        tops.append(pos[0].y())
    if tops != sorted(tops) or len(set(tops)) != len(tops):
        out.append(f"keyboard rows out of order: {tops}")
    return out


def bill_problems(win) -> list[str]:
    """The bill: 确认 is the one large button, >= 48 px from any other button."""
    out = []
    c = win.bill.confirm_btn
    rc = QRect(c.mapTo(win, QPoint(0, 0)), c.size())
    for b in win.bill.findChildren(QPushButton):
        if b is c or not b.isVisible():
            continue
        rb = QRect(b.mapTo(win, QPoint(0, 0)), b.size())
        dx = max(rb.left() - rc.right() - 1, rc.left() - rb.right() - 1, 0)
        dy = max(rb.top() - rc.bottom() - 1, rc.top() - rb.bottom() - 1, 0)
        if max(dx, dy) < 48:
            out.append(f"「{b.text()}」{max(dx, dy)} px from 确认 (needs >= 48)")
        if b.height() * 1.3 > c.height() or b.font().pixelSize() >= c.font().pixelSize():
            out.append(f"「{b.text()}」as large as 确认: {b.size()} vs {c.size()}")
    return out


def shot(win, name: str, tmp_path: Path) -> None:
    folder = os.environ.get("KIOSK_SCREENSHOTS")
    d = Path(folder) if folder else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    assert win.grab().save(str(d / f"{win.expected[0]}x{win.expected[1]}_{name}.png"))


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_page_fits(qtbot, canteen, size, tmp_path, obama):  # noqa: F811
    canteen.settings.liveness = "off"
    win = KioskWindow(KioskService(canteen), Voice(enabled=False), None, leave_seconds=600,
                      idle_seconds=600, staff_idle_seconds=600)
    win.expected = size
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        qtbot.wait(60)
        found[name] = problems(win) + word_breaks(win)
        shot(win, name, tmp_path)

    qtbot.waitUntil(lambda: "玉林社区长寿食堂" in win.idle.canteen.text())
    check("idle")
    win.idle.show_challenge(0.45)                       # the head-turn request and the turn so far
    win.say("请慢慢向左转头", win.idle.prompt)
    win.idle.hint.setText("请慢慢转头，再转回来")
    check("challenge")
    win.go_bill("R0001", "card")
    qtbot.waitUntil(lambda: win.state == "bill" and win.bill.confirm_btn.isEnabled())
    check("bill")
    found["bill"] += bill_problems(win)
    win.bill.change_btn.click()
    qtbot.waitUntil(lambda: "应付" in win.menu.to_pay.text())
    check("menu")
    win.menu.done_btn.click()
    qtbot.waitUntil(lambda: win.state == "bill" and win.bill.confirm_btn.isEnabled())
    win.checkout.pay = "balance"                        # as if chosen; the balance is short
    win.bill.confirm_btn.click()
    qtbot.waitUntil(lambda: win.state == "pay")
    check("pay_short")
    win.pay.buttons["cash"].click()
    qtbot.waitUntil(lambda: win.state == "bill" and win.bill.confirm_btn.isEnabled())
    win.bill.confirm_btn.click()
    qtbot.waitUntil(lambda: win.state == "receipt")
    check("receipt")
    win.go_bill("R0001", "card")                        # the same elder again: a decision first
    qtbot.waitUntil(lambda: win.state == "second")
    check("second_meal")
    win.go_noface("没有认出您。请用助老卡，或输入手机号后四位")
    check("noface_card")
    found["noface_card"] += key_rows_problems(win, win.noface.cardkeys)
    win.noface.phone_mode.click()
    qtbot.wait(60)
    found["noface_card"] += key_rows_problems(win, win.noface.keypad)
    win.noface.entry.setText("0001")
    win.noface.keypad.buttons["确定"].click()
    qtbot.waitUntil(lambda: len(win.noface.name_buttons) == 1)
    win.noface.staff_btn.click()                        # 找工作人员: the call on screen
    check("noface_names_call")
    win.go_staff()
    check("staff_login")
    win.staff.login.emit(STAFF_PIN)
    qtbot.waitUntil(lambda: win.staff.stack.currentIndex() == 1)
    win.staff.show_override(True)
    img = face_frame(obama[1])                          # enrolment: the live camera and the quality hint
    pipe = RecognitionPipeline(canteen.engine, canteen.faces.match, PersonTracker())
    win.on_frame(event_from(pipe.process(img, ts=1.0), img, ts=1.0))
    win.staff.message.setText("⚠ 这张脸已登记在另一位居民名下：R0001（张桂兰），相似度 0.96。如确认无误，请主管授权后重试。")
    check("staff_enrol_duplicate")
    for form, edit in (("topup", win.staff.topup_rid), ("topup", win.staff.amount), ("enrol", win.staff.rid),
                       ("erase", win.staff.erase_rid)):
        win.staff.section_buttons[form].click()
        win.staff.type_into(edit)                     # the keyboard open: the field and its button in view
        name = f"staff_{form}_keyboard" + ("_amount" if edit is win.staff.amount else "")
        check(name)
        found[name] += keyboard_problems(win, edit, win.staff.form_buttons[form])
    win.staff.section_buttons["void"].click()
    qtbot.waitUntil(lambda: "上一单" in win.staff.last_order.text())
    win.staff.void_buttons["打错菜"].click()
    qtbot.waitUntil(lambda: win.staff.stack.currentIndex() == 2)
    check("staff_void_confirm")
    win.staff.cancel_btn.click()
    win.go_idle()
    win.go_staff()
    win.staff.login.emit(canteen.admin_pin)
    qtbot.waitUntil(lambda: win.staff.stack.currentIndex() == 1 and win.staff.admin_btn.isVisible())
    win.staff.section_buttons["admin"].click()
    qtbot.waitUntil(lambda: "有效" in win.staff.totals.text())
    check("staff_admin")
    win.staff.type_into(win.staff.path)
    check("staff_admin_keyboard")
    found["staff_admin_keyboard"] += keyboard_problems(win, win.staff.path, win.staff.import_btn)
    bad = {k: v for k, v in found.items() if v}
    assert not bad, "\n".join(f"{k}: {p}" for k, v in bad.items() for p in v)


def test_full_screen_under_a_bare_x_server(tmp_path):
    """`kiosk run` fills the screen when no window manager honours the full-screen request
    (a plain showFullScreen() leaves a small window there)."""
    import shutil
    import subprocess
    import sys
    import time

    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (install.sh --test installs it)")
    display = f":{90 + os.getpid() % 500}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "720x1280x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        script = tmp_path / "fs.py"
        script.write_text(
            "import sys\n"
            "from PySide6.QtCore import QTimer\n"
            "from PySide6.QtWidgets import QApplication, QLabel, QMainWindow\n"
            "from kiosk.ui.app import show_full_screen\n"
            "app = QApplication(sys.argv[:1])\n"
            "w = QMainWindow(); w.setCentralWidget(QLabel('x'))\n"
            "show_full_screen(w)\n"
            "def done():\n"
            "    print('GEOMETRY', *w.geometry().getRect(), flush=True)\n"
            "    app.quit()\n"
            "QTimer.singleShot(1000, done)\n"
            "app.exec()\n", encoding="utf-8")
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("GEOMETRY")), None)
        assert line is not None, out.stdout + out.stderr
        assert line.split()[1:] == ["0", "0", "720", "1280"], line
    finally:
        server.terminate()
        server.wait(10)
