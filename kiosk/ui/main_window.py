"""The kiosk window: pages, transitions, voice, and the vision worker's events."""
from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

from PySide6.QtCore import QThreadPool, QTimer, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget

from ..errors import InsufficientBalanceError, KioskError
from ..money import yuan_to_fen
from . import theme
from .pages import BillPage, IdlePage, NoFacePage, ReceiptPage
from .staff_page import StaffPage, report_lines
from .worker import FrameEvent, Task

log = logging.getLogger(__name__)

IDLE, BILL, RECEIPT, NOFACE, STAFF = "idle", "bill", "receipt", "noface", "staff"
CHALLENGE = "challenge"        # on the idle page: the spoken head-turn request before any charge
MIN_CHALLENGE_FPS = 4      # what the head-turn check needs to see a turn progressively
CHALLENGE_S = 7.0       # elders turn slowly; a pass ends the challenge at once
HINT_REPEAT_S = 4.0
SERVED_COOLDOWN_S = 90.0   # a resident just served is not greeted again while still at the counter


class KioskWindow(QMainWindow):
    def __init__(self, service, voice, worker=None, *, receipt_seconds: float = 8.0,
                 inactivity_seconds: float = 120.0, printer=None) -> None:
        super().__init__()
        self.service, self.voice, self.worker, self.printer = service, voice, worker, printer
        self.receipt_seconds, self.inactivity_seconds = receipt_seconds, inactivity_seconds
        self.setWindowTitle("长寿食堂 刷脸助餐")
        self.setStyleSheet(theme.stylesheet())
        self.pool = QThreadPool.globalInstance()
        self.stack = QStackedWidget()
        self.setCentralWidget(self.stack)
        self.idle, self.bill, self.receipt = IdlePage(), BillPage(), ReceiptPage()
        self.noface, self.staff = NoFacePage(), StaffPage()
        self.pages = {IDLE: self.idle, BILL: self.bill, RECEIPT: self.receipt, NOFACE: self.noface, STAFF: self.staff,
                      CHALLENGE: self.idle}
        for p in self.pages.values():
            self.stack.addWidget(p)
        self.state = IDLE
        self.resident_id: str | None = None
        self.identified_by = "face"
        self.match_score: float | None = None
        self.settle_key: str | None = None
        self.staff_user: dict | None = None
        self.capture = None
        self.last_face_ts = 0.0
        self.last_touch_ts = time.monotonic()
        self._last_hint: tuple[str, float] = ("", 0.0)
        self._last_event: FrameEvent | None = None
        self._pending_tasks: list[Task] = []
        self.just_served: tuple[str, float] | None = None
        self._alive = True
        self.camera_state = "reconnecting"
        self.debug = QLabel(self)
        self.debug.setStyleSheet("background: rgba(0,0,0,170); color: #FFFFFF; font-size: 20px;")
        self.debug.setVisible(False)
        QShortcut(QKeySequence(Qt.Key.Key_F12), self, activated=self.toggle_debug)
        self._wire()
        self.receipt_timer = QTimer(self, singleShot=True, timeout=self.go_idle)
        self.inactivity = QTimer(self, interval=1000, timeout=self._check_inactivity)
        self.inactivity.start()
        if worker is not None:
            worker.frame.connect(self.on_frame)
            worker.source_state.connect(self.on_source_state)
        self.go_idle()

    # -- wiring ---------------------------------------------------------------------
    def _wire(self) -> None:
        self.idle.no_face.connect(lambda: self.go_noface("请刷助老卡，或输入卡号 / 手机号后四位"))
        self.idle.staff.connect(self.go_staff)
        self.bill.changed.connect(self.refresh_bill)
        self.bill.confirm.connect(self.confirm)
        self.bill.not_me.connect(self.not_me)
        self.bill.cancel.connect(self.go_idle)
        self.receipt.done.connect(self.go_idle)
        self.noface.card.connect(self.lookup_card)
        self.noface.phone.connect(self.lookup_phone)
        self.noface.chosen.connect(lambda rid: self.go_bill(rid, "phone"))
        self.noface.back.connect(self.go_idle)
        self.noface.staff.connect(self.go_staff)
        self.staff.login.connect(self.staff_login)
        self.staff.logout.connect(self.go_idle)
        self.staff.void_last.connect(self.staff_void)
        self.staff.topup.connect(self.staff_topup)
        self.staff.enroll_start.connect(self.staff_enroll_start)
        self.staff.import_file.connect(self.admin_import)
        self.staff.show_orders.connect(self.admin_orders)
        self.staff.export_today.connect(self.admin_export)
        self.staff.toggle_debug.connect(self.toggle_debug)
        self.staff.export_month.connect(self.admin_export_month)
        self.staff.override.connect(lambda reason, pin: self.save_capture(reason, pin))

    def touch(self) -> None:
        self.last_touch_ts = time.monotonic()

    def event(self, e):  # any touch or key counts as activity
        if e.type() in (e.Type.MouseButtonPress, e.Type.KeyPress, e.Type.TouchBegin):
            self.touch()
        return super().event(e)

    def show_page(self, state: str) -> None:
        self.state = state
        self.stack.setCurrentWidget(self.pages[state])
        self.touch()

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
        if target is not None:
            target.setText(msg)
        self.voice.say(msg)

    # -- idle -------------------------------------------------------------------------
    def go_idle(self) -> None:
        self.receipt_timer.stop()
        self.idle.prompt.setText("请看屏幕，刷脸就餐")
        self.resident_id = None
        self.staff_user = None
        self.capture = None
        if self.worker is not None:
            self.worker.reset_person()
        svc = self.service
        self.run_task(lambda: (svc.canteen_name(), svc.clock(), svc.current_meal()),
                      lambda r: self.idle.canteen.setText(f"{r[0]}　{r[1]:%m月%d日}　{r[2] or '非供餐时间'}"))
        self.idle.hint.setText(self._camera_hint())
        self.show_page(IDLE)
        self.voice.say("请看屏幕，刷脸就餐")

    def _camera_hint(self) -> str:
        if self.camera_state == "lost":
            return "摄像头暂时不可用，请点“不刷脸”刷卡，或找工作人员"
        if self.camera_state == "reconnecting":
            return "摄像头连接中…"
        return ""

    def on_source_state(self, state: str) -> None:
        self.camera_state = state
        if self.state == IDLE:
            self.idle.hint.setText(self._camera_hint())
            if state == "lost":
                self.voice.say("摄像头暂时不可用，请刷助老卡")

    def on_frame(self, ev: FrameEvent) -> None:
        self._last_event = ev
        if ev.primary is not None:
            self.last_face_ts = time.monotonic()
        if self.debug.isVisible():
            self.debug.setText(f"FPS {ev.fps:.1f}  " + "  ".join(f"{k} {v:.1f}ms" for k, v in ev.timings_ms.items())
                               + f"  质量 {ev.quality:.2f}  {ev.decision}")
            self.debug.adjustSize()
        if self.state == STAFF and self.capture is not None:
            self._capture_frame(ev)
            return
        if self.state == CHALLENGE:
            self.idle.camera.show_frame(ev.image, ev.boxes, ev.primary)
            self._challenge_frame(ev)
            return
        if self.state != IDLE:
            return
        self.idle.camera.show_frame(ev.image, ev.boxes, ev.primary)
        if ev.hint:
            self.idle.hint.setText(ev.hint)
            text, at = self._last_hint
            if ev.hint != text or time.monotonic() - at > HINT_REPEAT_S:
                self.voice.say(ev.hint)
                self._last_hint = (ev.hint, time.monotonic())
        elif ev.primary is None:
            self.idle.hint.setText(self._camera_hint())
        if ev.decision == "identified" and ev.resident_id:
            if self.just_served and self.just_served[0] == ev.resident_id and \
                    time.monotonic() - self.just_served[1] < SERVED_COOLDOWN_S:
                self.idle.hint.setText("您已经结算好了，祝您用餐愉快")
                return
            self.match_score = ev.score
            self._refresh_candidate = ev
            self.start_liveness(ev)
        elif ev.decision == "unknown":
            self.go_noface("没有认出您，请刷助老卡，或输入手机号后四位")

    # -- liveness before a face checkout -------------------------------------------------
    def start_liveness(self, ev: FrameEvent, attempt: int = 1, start_ts: float | None = None) -> None:
        mode = self.service.settings.liveness
        if mode == "off":
            self.go_bill(ev.resident_id, "face")
            return
        if mode == "passive":
            result = self.service.passive_liveness(ev.image, ev.landmarks)
            if result.live:
                ev.live = True
                self.go_bill(ev.resident_id, "face")
            else:
                self.go_noface(result.reason + "。请刷助老卡")
            return
        import random

        from ..vision.liveness import CHALLENGES

        self.challenge = {"resident_id": ev.resident_id, "dir": random.choice(list(CHALLENGES)), "frames": [],
                          "start": ev.ts if start_ts is None else start_ts, "attempt": attempt, "event": ev,
                          "checking": False, "began": time.monotonic()}   # frame time; this clock for the guard
        prompt = CHALLENGES[self.challenge["dir"]][0]
        self.idle.prompt.setText(prompt)
        self.idle.hint.setText("请慢慢转头，再转回来")
        self.state = CHALLENGE
        self.voice.say(prompt)

    def _challenge_frame(self, ev: FrameEvent) -> None:
        from ..vision.liveness import LiveFrame, check_active

        c = self.challenge
        if ev.decision == "identified" and ev.resident_id not in (None, c["resident_id"]):
            self.go_idle()             # somebody else stepped in: start again
            return
        c["frames"].append(LiveFrame(ev.ts, ev.primary, ev.landmarks, ev.gray))
        if c["checking"] or (ev.ts - c["start"] < 1.0 and len(c["frames"]) < 8):
            return
        # the check tracks points through every frame so far: off the UI thread, one at a time
        c["checking"] = True
        final = ev.ts - c["start"] >= CHALLENGE_S
        self.run_task(check_active, lambda r: self._challenge_result(c, r, final),
                      lambda exc: self._challenge_error(c, exc), list(c["frames"]), c["dir"])

    def _challenge_error(self, c: dict, exc: Exception) -> None:
        log.error("liveness check failed: %r", exc)
        c["checking"] = False
        if self.state == CHALLENGE and self.challenge is c:
            self.go_noface("请刷助老卡，或输入手机号后四位")

    def _challenge_result(self, c: dict, result, final: bool) -> None:
        c["checking"] = False
        if self.state != CHALLENGE or self.challenge is not c:
            return                     # the elder left or somebody else stepped in meanwhile
        if result.live or final:
            seen = [f.ts for f in c["frames"] if f.bbox is not None]
            fps = (len(seen) - 1) / (seen[-1] - seen[0]) if len(seen) > 1 and seen[-1] > seen[0] else 0.0
            log.log(logging.INFO if fps >= MIN_CHALLENGE_FPS or result.live else logging.WARNING,
                    "liveness %s (attempt %d, %s): %s %s; %d frames at %.1f fps%s",
                    "passed" if result.live else "failed", c["attempt"], c["dir"], result.reason, result.details,
                    len(c["frames"]), fps, "" if fps >= MIN_CHALLENGE_FPS else
                    f" (below {MIN_CHALLENGE_FPS} fps the head-turn check cannot see a turn progressively:"
                    " this terminal is too slow or overloaded)")
        if result.live:
            c["event"].live = True
            self.idle.prompt.setText("请看屏幕，刷脸就餐")
            self.go_bill(c["resident_id"], "face")
        elif final:
            self.run_task(self.service.audit, lambda _=None: None, None, "kiosk", "liveness.failed",
                          c["resident_id"], reason=result.reason, attempt=c["attempt"], details=result.details)
            if c["attempt"] == 1:
                self.voice.say(result.reason)
                # the second try gets its own full window, from the newest frame on
                self.start_liveness(c["event"], attempt=2, start_ts=self._last_event.ts)
            else:
                self.idle.prompt.setText("请看屏幕，刷脸就餐")
                self.go_noface("请刷助老卡，或输入手机号后四位")

    # -- the bill ---------------------------------------------------------------------
    def go_bill(self, resident_id: str, identified_by: str) -> None:
        self.resident_id, self.identified_by = resident_id, identified_by
        self.settle_key = uuid.uuid4().hex     # one key per bill: a double tap settles once
        self.run_task(self.service.greet, self._show_greeting, None, resident_id)

    def _show_greeting(self, g) -> None:
        if g.resident_id != self.resident_id:
            return
        self.bill.show_greeting(g, by_face=self.identified_by == "face")
        self.show_page(BILL)
        words = f"{g.title}。" + (f"今天补贴{g.subsidy_fen // 100}元{'' if g.subsidy_fen % 100 == 0 else str(g.subsidy_fen % 100) + '分'}。"
                                 if g.subsidy_fen else "")
        self.voice.say(words + "已为您选好推荐的菜，请确认")
        self.refresh_bill()

    def refresh_bill(self) -> None:
        if self.resident_id is None:
            return
        self.touch()
        dishes = self.bill.selected()
        rid = self.resident_id
        self.run_task(self.service.bill, lambda b: self.bill.show_bill(b) if rid == self.resident_id else None,
                      None, rid, dishes)

    def confirm(self) -> None:
        if self.resident_id is None or not self.bill.selected():
            return
        self.bill.confirm_btn.setEnabled(False)
        self.run_task(self.service.settle, self._settled, self._settle_failed, self.resident_id,
                      self.bill.selected(), self.bill.pay_method(), self.settle_key, self.identified_by)

    def _settled(self, receipt) -> None:
        self.just_served = (receipt.resident_id, time.monotonic())
        self.receipt.show_receipt(receipt)
        self.show_page(RECEIPT)
        self.voice.say(f"结算成功，实付{receipt.to_pay_fen / 100:g}元，祝您用餐愉快")
        if self.printer is not None:
            self.printer.print_receipt(receipt)
        self._maybe_refresh_template()
        self.receipt_timer.start(int(self.receipt_seconds * 1000))

    def _settle_failed(self, exc: Exception) -> None:
        self.bill.confirm_btn.setEnabled(True)
        if isinstance(exc, InsufficientBalanceError):
            self.bill.pay_buttons["cash"].setChecked(True)
        self.show_error(exc)

    def _maybe_refresh_template(self) -> None:
        ev = getattr(self, "_refresh_candidate", None)
        self._refresh_candidate = None
        if ev is None or self.identified_by != "face" or ev.embedding is None:
            return
        from enrollment.refresh import should_refresh

        live = bool(getattr(ev, "live", False))
        if should_refresh(ev.score or 0.0, self.service.app.faces.threshold, ev.quality, ev.match_status or "", live):
            self.run_task(self.service.refresh_template, lambda _ok: None, lambda _e: None,
                          ev.resident_id, ev.embedding, ev.aligned, ev.quality)

    def not_me(self) -> None:
        rid = self.resident_id
        if rid:
            self.run_task(self.service.record_misidentification, lambda _=None: None, None, rid, self.match_score)
        self.resident_id = None
        self._refresh_candidate = None
        self.go_noface("对不起，认错了。请刷助老卡，或输入手机号后四位")

    # -- non-face path -------------------------------------------------------------------
    def go_noface(self, prompt: str) -> None:
        self.resident_id = None
        self.noface.reset(prompt)
        self.show_page(NOFACE)
        self.voice.say(prompt)

    def lookup_card(self, card_no: str) -> None:
        self.run_task(self.service.find_by_card, lambda c: self.go_bill(c.resident_id, "card"), None, card_no)

    def lookup_phone(self, last4: str) -> None:
        def show(cards):
            if not cards:
                self.noface.error.setText("没有找到，请再试一次或找工作人员")
                self.voice.say("没有找到，请找工作人员")
            else:
                self.noface.show_names(cards)
                self.voice.say("请点您的名字")
        self.run_task(self.service.find_by_phone, show, None, last4)

    # -- staff --------------------------------------------------------------------------
    def go_staff(self) -> None:
        self.staff.show_login()
        self.show_page(STAFF)

    def staff_login(self, pin: str) -> None:
        def ok(user):
            self.staff_user = user
            self.run_task(self.service.last_order, lambda o: self.staff.show_menu(user, o))
        self.run_task(self.service.login, ok, None, pin)

    def staff_void(self, reason: str) -> None:
        if not self.staff_user:
            return
        user = self.staff_user

        def done(res):
            self.staff.message.setText(f"已作废，退款 {res['refund_fen'] / 100:.2f} 元（{res['refund_to']}）")
            self.run_task(self.service.last_order, self.staff.set_last_order)

        def go(o):
            if o is None:
                self.staff.message.setText("没有可作废的订单")
                return
            self.run_task(self.service.void, done, None, o["order_id"], reason, user["staff_id"])
        self.run_task(self.service.last_order, go)

    def staff_topup(self, who: str, yuan: str, payer: str) -> None:
        if not self.staff_user:
            return
        try:
            fen = yuan_to_fen(yuan)
        except ValueError:
            self.staff.message.setText(f"金额「{yuan}」无效")
            return
        user = self.staff_user

        def run():
            rid = who
            try:
                self.service.app.residents.get(who)
            except KioskError:
                rid = self.service.find_by_card(who).resident_id
            return self.service.topup(rid, fen, payer or None, user["staff_id"])
        self.run_task(run, lambda r: self.staff.message.setText(
            f"已充值，{r['resident_id']} 余额 {r['balance_fen'] / 100:.2f} 元"))

    def staff_enroll_start(self, resident_id: str, consent_now: bool) -> None:
        from enrollment.capture import CaptureSession

        if not self.staff_user or not resident_id:
            self.staff.message.setText("请先输入居民编号")
            return
        self.capture = CaptureSession()
        self._capture_target = (resident_id, consent_now)
        self.staff.capture_status.setText("请居民看摄像头：" + self.capture.next_pose[2])
        self.voice.say(self.capture.next_pose[2])
        if self.worker is not None:
            self.worker.reset_person()

    def _capture_frame(self, ev: FrameEvent) -> None:
        from kiosk.vision.quality import pose_from_landmarks

        yaw = 0.0
        if ev.primary is not None and ev.embedding is not None and getattr(ev, "landmarks", None) is not None:
            yaw = pose_from_landmarks(ev.landmarks)[0]
        prompt = self.capture.offer(ev.embedding, ev.aligned, ev.embedding is not None, ev.quality, yaw, ev.hint)
        if prompt:
            self.staff.capture_status.setText(f"已采集 {len(self.capture.taken)}/3：{prompt}")
            text, at = self._last_hint
            if prompt != text or time.monotonic() - at > HINT_REPEAT_S:
                self.voice.say(prompt)
                self._last_hint = (prompt, time.monotonic())
        if self.capture.done:
            self._captured, self.capture = self.capture, None
            self.save_capture()

    def save_capture(self, override_reason: str | None = None, supervisor_pin: str | None = None) -> None:
        from ..errors import DuplicateFaceError

        who, consent_now = self._capture_target

        def done(rep):
            self._captured = None
            self.staff.show_override(False)
            self.staff.message.setText(f"已为 {rep.resident_id} 采集 {len(rep.enrolled)} 张人脸模板")
            self.voice.say("采集完成")

        def failed(exc):
            if isinstance(exc, DuplicateFaceError):
                self.staff.show_override(True)      # a supervisor may override, with a reason
            self.show_error(exc)
        self.run_task(self.service.enroll_captured, done, failed, who, self._captured,
                      self.staff_user["staff_id"], consent_now=consent_now,
                      override_reason=override_reason, supervisor_pin=supervisor_pin)

    def admin_import(self, kind: str, path: str) -> None:
        if not self.staff_user or self.staff_user["role"] != "admin":
            return
        self.run_task(self.service.import_file, lambda rep: (self.staff.show_report(report_lines(rep)), self.admin_orders()),
                      lambda e: self.staff.show_report([e.user_message if isinstance(e, KioskError) else str(e)]),
                      kind, Path(path), self.staff_user["staff_id"])

    def admin_orders(self) -> None:
        self.run_task(self.service.today_orders, self.staff.show_orders_table)

    def admin_export(self) -> None:
        if not self.staff_user:
            return
        out = self.service.settings.home / "exports" / f"orders-{self.service.clock():%Y%m%d}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.run_task(self.service.export_today_csv, lambda p: self.staff.message.setText(f"已导出：{p}"), None,
                      out, self.staff_user["staff_id"])

    def admin_export_month(self) -> None:
        if not self.staff_user or self.staff_user["role"] != "admin":
            return
        month = f"{self.service.clock():%Y-%m}"
        out = self.service.settings.home / "exports" / f"subsidy-{month}.xlsx"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.run_task(self.service.export_month, lambda p: self.staff.message.setText(f"已导出：{p}"), None,
                      month, out, self.staff_user["staff_id"])

    # -- misc ---------------------------------------------------------------------------
    def toggle_debug(self) -> None:
        self.debug.setVisible(not self.debug.isVisible())
        self.debug.move(10, 10)
        self.debug.raise_()

    def _check_inactivity(self) -> None:
        """Back to idle only after long inactivity with no face in front of the camera."""
        if self.state in (IDLE, RECEIPT):
            return
        now = time.monotonic()
        if self.state == CHALLENGE:      # no frames came (camera gone): do not wait for ever
            if now - self.challenge["began"] > CHALLENGE_S * 2:
                self.go_noface("请刷助老卡，或输入手机号后四位")
            return
        if now - self.last_touch_ts > self.inactivity_seconds and now - self.last_face_ts > 10:
            self.go_idle()

    def closeEvent(self, e) -> None:  # noqa: N802
        self._alive = False
        self.inactivity.stop()
        if self.worker is not None:
            self.worker.stop()
        self.pool.waitForDone(3000)
        super().closeEvent(e)
