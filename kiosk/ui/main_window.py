"""The kiosk window: a stack of pages, the voice, the service calls on the thread pool,
and the vision worker's events routed to one controller per workflow
(``controllers.checkout``, ``controllers.liveness``, ``controllers.noface``,
``controllers.staff``). Pages only draw; controllers decide; services do.

Everything the kiosk speaks is shown on screen in the same words: ``say`` is the only
way to the voice, and it writes the words into a label of the page first."""
from __future__ import annotations

import logging
import time
from datetime import datetime

from PySide6.QtCore import QEvent, QObject, QPoint, QThreadPool, QTimer, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from kiosk.errors import KioskError
from kiosk.timeutil import now_cst
from kiosk.ui import theme
from kiosk.ui.controllers.checkout import CheckoutController
from kiosk.ui.controllers.liveness import ChallengeController
from kiosk.ui.controllers.noface import NoFaceController
from kiosk.ui.controllers.staff import StaffController
from kiosk.ui.pages import BillPage, IdlePage, MenuPage, NoFacePage, PayPage, ReceiptPage, SecondMealPage
from kiosk.ui.staff_page import StaffPage
from kiosk.ui.widgets import Label, label
from kiosk.ui.worker import FrameEvent, Task

log = logging.getLogger(__name__)

IDLE, BILL, MENU, PAY, RECEIPT, NOFACE, STAFF = "idle", "bill", "menu", "pay", "receipt", "noface", "staff"
SECOND = "second"             # the elder already has this meal today: a decision before a second bill
CHALLENGE = "challenge"        # on the idle page: the spoken head-turn request before any charge
from kiosk.ui.controllers.liveness import CHALLENGE_S  # noqa: E402,F401  (re-exported for tests)

TICK_MS = 250
CALL_SHOWN_S = 180.0           # the staff call stays on screen this long at most (see clear_call)
SAY_AGAIN_AFTER_S = 10.0       # a line is not spoken again within this many seconds (it stays shown)
STAFF_HOLD_S = 2.0             # staff enter by holding the top-left corner this long (an elder's tap never)
STAFF_CORNER_PX = 140          # ... the corner's size
IDLE_AFTER_S = 10.0            # an elder's page with nobody in front and no touch for this long: idle
STAFF_IDLE_AFTER_S = 30.0      # a staff page without a touch for this long: idle (logged out)


class TouchWatch(QObject):
    """Every press or key in the window counts as a touch (the idle return waits for none);
    a press held on the top-left corner for ``STAFF_HOLD_S`` opens the staff page. An elder's
    tap there is a tap: it opens nothing, and no PIN is ever tried for it."""

    PRESS = (QEvent.Type.MouseButtonPress, QEvent.Type.TouchBegin, QEvent.Type.KeyPress)
    RELEASE = (QEvent.Type.MouseButtonRelease, QEvent.Type.TouchEnd, QEvent.Type.TouchCancel)

    def __init__(self, win: "KioskWindow") -> None:
        super().__init__(win)
        self.win = win
        self.hold = QTimer(self, singleShot=True, interval=int(STAFF_HOLD_S * 1000), timeout=win.staff_gesture)

    def eventFilter(self, obj, ev):  # noqa: N802
        t = ev.type()
        if (t in self.PRESS or t in self.RELEASE) and isinstance(obj, QWidget) \
                and (obj is self.win or self.win.isAncestorOf(obj)):
            if t in self.PRESS:
                self.win.touch()
                if t == QEvent.Type.MouseButtonPress and self.win.in_staff_corner(
                        self.win.mapFromGlobal(ev.globalPosition().toPoint())):
                    if not self.hold.isActive():
                        self.hold.start()
            else:
                self.hold.stop()
        return False


class KioskWindow(QMainWindow):
    def __init__(self, service, voice, worker=None, *, leave_seconds: float = 4.0,
                 receipt_max_seconds: float = 90.0, idle_seconds: float = IDLE_AFTER_S,
                 staff_idle_seconds: float = STAFF_IDLE_AFTER_S, printer=None) -> None:
        super().__init__()
        self.service, self.voice, self.worker, self.printer = service, voice, worker, printer
        self.leave_seconds, self.receipt_max_seconds = leave_seconds, receipt_max_seconds
        self.idle_seconds, self.staff_idle_seconds = idle_seconds, staff_idle_seconds
        self.setWindowTitle("长寿食堂 刷脸助餐")
        self.density = theme.LARGE
        self.setStyleSheet(theme.stylesheet(self.density))
        self.pool = QThreadPool.globalInstance()
        host = QWidget()
        self.layout_ = QVBoxLayout(host)
        self.layout_.setContentsMargins(12, 12, 12, 12)
        self.call_banner = label("", "call")       # 已呼叫工作人员: seen by everyone at the counter
        self.call_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.call_banner.setVisible(False)
        self.layout_.addWidget(self.call_banner)
        self.stack = QStackedWidget()
        self.layout_.addWidget(self.stack, 1)
        self.setCentralWidget(host)
        self.idle, self.bill, self.menu, self.pay = IdlePage(), BillPage(), MenuPage(), PayPage()
        self.receipt, self.noface, self.staff = ReceiptPage(), NoFacePage(), StaffPage()
        self.second = SecondMealPage()
        self.pages = {IDLE: self.idle, BILL: self.bill, MENU: self.menu, PAY: self.pay, RECEIPT: self.receipt,
                      NOFACE: self.noface, STAFF: self.staff, CHALLENGE: self.idle,
                      SECOND: self.second}
        for p in dict.fromkeys(self.pages.values()):
            # a page hidden in the stack must not make the window bigger than the screen
            p.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            self.stack.addWidget(p)
        self.state = IDLE
        self.camera_state = "reconnecting"
        self.last_touch_ts = time.monotonic()
        self.last_frame_ts = 0.0           # this process's clock at the newest frame
        self._last_event: FrameEvent | None = None
        self._last_face: tuple | None = None      # the last embedding of a face in front, and when
        self._pending_tasks: list[Task] = []
        self._alive = True
        self._call_until = 0.0
        self._spoken_at: dict[str, float] = {}
        self.call_info: tuple[str, datetime] | None = None    # (where, wall time) of the open staff call
        self.debug = QLabel(self)
        self.debug.setStyleSheet("background: rgba(0,0,0,170); color: #FFFFFF; font-size: 20px;")
        self.debug.setVisible(False)
        QShortcut(QKeySequence(Qt.Key.Key_F12), self, activated=self.toggle_debug)
        self.checkout = CheckoutController(self)
        self.liveness = ChallengeController(self)
        self.cardpath = NoFaceController(self)
        self.staffflow = StaffController(self)
        self.touches = TouchWatch(self)
        from PySide6.QtWidgets import QApplication
        QApplication.instance().installEventFilter(self.touches)
        self.ticker = QTimer(self, interval=TICK_MS, timeout=self._tick)
        self.ticker.start()
        if worker is not None:
            worker.frame.connect(self.on_frame)
            worker.source_state.connect(self.on_source_state)
        self.go_idle()

    # -- the shell ---------------------------------------------------------------------------
    def add_banner(self, w: QWidget) -> None:
        """A line under the pages (the demo's notice): part of the layout, never over a page."""
        self.layout_.addWidget(w)

    def touch(self) -> None:
        self.last_touch_ts = time.monotonic()

    def untouched_for(self) -> float:
        return time.monotonic() - self.last_touch_ts

    def in_staff_corner(self, p: QPoint) -> bool:
        return 0 <= p.x() < STAFF_CORNER_PX and 0 <= p.y() < STAFF_CORNER_PX

    def staff_gesture(self) -> None:
        """The corner held long enough: staff, not an elder."""
        if self.state != STAFF:
            self.go_staff()

    def resizeEvent(self, e) -> None:  # noqa: N802
        super().resizeEvent(e)
        w, h = self.width(), self.height()
        d = theme.density_for(w, h)
        if d != self.density:
            self.density = d
            self.setStyleSheet(theme.stylesheet(d))
        landscape = w > h
        for p in dict.fromkeys(self.pages.values()):
            p.set_landscape(landscape)
        self.menu.set_columns(3 if w >= 1500 else 2)

    def show_page(self, state: str) -> None:
        self.state = state
        self.stack.setCurrentWidget(self.pages[state])
        self.touch()

    def say(self, text: str, where: QLabel | None = None) -> None:
        """Show ``text`` (in ``where``, by default the page's line saying what to do next)
        and speak the same words. The only way to the voice. The words stay shown at least
        ``HOLD_S`` (3 s); the same line is not spoken again within ``SAY_AGAIN_AFTER_S``."""
        if not text:
            return
        target = where if where is not None else self.pages[self.state].next
        self._show(target, text)
        target.setVisible(True)
        self._speak(text)

    def say_all(self, parts: list[tuple[QLabel, str]]) -> None:
        """Several lines at once (a greeting, a bill): each shown, spoken as one."""
        parts = [(w, t) for w, t in parts if t]
        for w, t in parts:
            self._show(w, t)
        if parts:
            self._speak("。".join(t for _, t in parts))

    @staticmethod
    def _show(target: QLabel, text: str) -> None:
        if isinstance(target, Label):
            target.setText(text, force=True)
            target.hold()
        else:
            target.setText(text)

    def _speak(self, text: str) -> None:
        now = time.monotonic()
        self._spoken_at = {t: at for t, at in self._spoken_at.items() if now - at < SAY_AGAIN_AFTER_S}
        if text in self._spoken_at:
            return
        self._spoken_at[text] = now
        self.voice.say(text.replace("\n", "，"))      # a line break on screen is a pause in speech

    def chime(self) -> None:
        chime = getattr(self.voice, "chime", None)
        if chime is not None:
            chime()

    def run_task(self, fn, on_result, on_error=None, *args, **kwargs) -> Task:
        """Service calls run on the thread pool; the UI thread never waits on the store."""
        t = Task(fn, *args, **kwargs)

        def alive(cb):      # a result that arrives after the window closed goes nowhere
            return lambda value: cb(value) if self._alive else None
        t.signals.result.connect(alive(on_result))
        t.signals.error.connect(alive(on_error or self.show_error))
        self._pending_tasks.append(t)
        t.signals.result.connect(lambda _=None, t=t: self._pending_tasks.remove(t) if t in self._pending_tasks else None)
        t.signals.error.connect(lambda _=None, t=t: self._pending_tasks.remove(t) if t in self._pending_tasks else None)
        self.pool.start(t)
        return t

    def show_error(self, exc: Exception) -> None:
        msg = exc.user_message if isinstance(exc, KioskError) else "系统出错，请找工作人员"
        if not isinstance(exc, KioskError):
            log.exception("unexpected error", exc_info=exc)
        page = self.pages[self.state]
        target = getattr(page, "error", None)
        if target is None and getattr(page, "message", None) is not None:
            target, msg = page.message, "⚠ " + msg
        self.say(msg, target)

    def show_call(self, where: str = "收银台") -> None:
        """找工作人员: a sound and a visible call, on every page until staff come or the
        customer changes (the page goes back to idle); staff see it on their page."""
        self.call_banner.setText("【已呼叫工作人员】请在这里稍等")
        self.call_banner.setVisible(True)
        self._call_until = time.monotonic() + CALL_SHOWN_S
        self.call_info = (where, now_cst())
        self.chime()

    def clear_call(self) -> None:
        self.call_banner.setVisible(False)
        self._call_until = 0.0
        self.call_info = None

    # -- routing -----------------------------------------------------------------------------
    def go_idle(self, announce: str | None = None) -> None:
        self.checkout.go_idle(announce)

    def go_bill(self, resident_id: str, identified_by: str) -> None:
        self.checkout.go_bill(resident_id, identified_by)

    def go_noface(self, prompt: str, mode: str = "card", watch_face: bool = False) -> None:
        self.cardpath.go(prompt, mode, watch_face)

    def go_staff(self) -> None:
        self.staffflow.go()

    def confirm(self) -> None:
        self.checkout.confirm()

    @property
    def challenge(self):
        return self.liveness.current

    @property
    def resident_id(self) -> str | None:
        return self.checkout.resident_id

    def on_source_state(self, state: str) -> None:
        self.camera_state = state
        if self.state == IDLE:
            self.idle.hint.setText(self.checkout.camera_hint())
            if state == "lost":
                self.say("摄像头暂时不可用，请点“不刷脸”用助老卡", self.idle.hint)

    def on_frame(self, ev: FrameEvent) -> None:
        self._last_event = ev
        self.last_frame_ts = time.monotonic()
        if ev.embedding is not None:
            self._last_face = (ev.embedding, self.last_frame_ts)
        self.service.camera.note_frame(ev.primary is not None, ev.track_id, ev.decision, ev.resident_id,
                                ev.match_status, ev.match_resident)
        if self.debug.isVisible():
            self.debug.setText(f"FPS {ev.fps:.1f}  " + "  ".join(f"{k} {v:.1f}ms" for k, v in ev.timings_ms.items())
                               + f"  质量 {ev.quality:.2f}  {ev.decision}")
            self.debug.adjustSize()
        if self.state == STAFF:
            self.staffflow.on_frame(ev)
        elif self.state == CHALLENGE:
            self.idle.camera.show_frame(ev.image, ev.boxes, ev.primary)
            self.liveness.on_frame(ev)
        elif self.state == IDLE:
            self.idle.camera.show_frame(ev.image, ev.boxes, ev.primary)
            self.checkout.on_idle_frame(ev)
        elif self.state == NOFACE:
            self.cardpath.on_frame(ev)

    FACE_RECENT_S = 2.0      # a face embedded this recently is the one in front

    def face_in_front(self):
        """The embedding of the face in front now (the latest frame that passed the quality
        gate, within ``FACE_RECENT_S``), or None."""
        if self._last_face is None or time.monotonic() - self._last_face[1] > self.FACE_RECENT_S:
            return None
        return self._last_face[0]

    def _tick(self) -> None:
        if self._call_until and time.monotonic() > self._call_until:
            self.clear_call()
        self.liveness.tick()
        self.checkout.tick()
        self.staffflow.tick()
        self.idle_return()

    def idle_return(self) -> None:
        """Every page goes back to idle by itself: an elder's page once nobody is in front and
        nobody has touched it for ``idle_seconds``, a staff page after ``staff_idle_seconds``
        without a touch. The next person never finds the last one's page."""
        st = self.state
        if st in (IDLE, CHALLENGE):
            return
        untouched = self.untouched_for()
        if st == STAFF:
            if untouched > self.staff_idle_seconds and not self.staffflow.busy():
                self.go_idle()
            return
        if self.checkout.settling:
            return
        wait = self.idle_seconds * (3 if self.camera_state == "lost" else 1)   # no camera: nobody is seen
        if untouched > wait and self.service.camera.absent_for() > wait:
            billed = st in (BILL, MENU, PAY, SECOND) and self.checkout.resident_id is not None
            self.go_idle("没有看到您，本单已取消，没有扣钱" if billed else None)

    def toggle_debug(self) -> None:
        self.debug.setVisible(not self.debug.isVisible())
        self.debug.move(10, 10)
        self.debug.raise_()

    def closeEvent(self, e) -> None:  # noqa: N802
        self._alive = False
        self.ticker.stop()
        if self.worker is not None:
            self.worker.stop()
        self.pool.waitForDone(3000)
        super().closeEvent(e)
