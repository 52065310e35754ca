"""The checkout: idle -> (liveness) -> bill -> receipt, and the queue-safety rules.

* 确认 settles a face bill only while the recognised elder is still in front of the
  camera (re-checked through the service at the tap); a card / phone bill settles on
  the tap.
* A face bill whose elder walked away, or when another recognised resident steps in,
  resets within ``leave_seconds``, announced on screen and by voice.
* The payment is never changed without the elder choosing it: a balance that does not
  cover the meal opens the payment choice (cash, or a top-up by staff).
* The receipt stays until 好的 or until the elder has walked away.
* A second meal is a decision: when the elder already has an order for this meal today
  (at any canteen, as far as the terminal knows), its time, canteen and amount come first,
  and a bill opens only after 再买一份, with no dish chosen for the elder."""
from __future__ import annotations

import logging
import time
import uuid

from kiosk.errors import InsufficientBalanceError, KioskError
from kiosk.money import yuan

log = logging.getLogger(__name__)

SERVED_COOLDOWN_S = 90.0   # a resident just served is not greeted again while still at the counter
HINT_REPEAT_S = 4.0
IDLE_PROMPT = "请看屏幕，刷脸就餐"
NO_MEAL_PROMPT = "现在不是供餐时间"
ASK_S = 8.0                # the question "明天还来吃午饭吗？" goes away by itself after this
ANSWER_SHOWN_S = 4.0       # the answer's confirmation stays this long
MEAL_WORDS = {"早餐": "早饭", "午餐": "午饭", "晚餐": "晚饭"}


def tomorrow_question(meal: str) -> str:
    return f"明天还来吃{MEAL_WORDS.get(meal, meal)}吗？"


class CheckoutController:
    def __init__(self, win) -> None:
        self.win = win
        self.svc = win.service
        self.resident_id: str | None = None
        self.identified_by = "face"
        self.match_score: float | None = None
        self.settle_key: str | None = None
        self.greeting = None
        self.pay = "cash"
        self.last_bill = None
        self.settling = False
        self.refresh_ev = None
        # the resident just served, when, and the face then in front (its embedding; None: none)
        self.just_served: tuple[str, float, object] | None = None
        self.bill_started = 0.0
        self.receipt_shown = 0.0
        self.serving_meal: str | None = "?"
        self.missing_since: float | None = None      # the face bill's elder not seen in front since
        self.earlier = None                           # the elder's order for this meal today, if any
        self.again = False                            # 再买一份 chosen: a bill with nothing preselected
        self._last_hint = ("", 0.0)
        b, m, p, r = win.bill, win.menu, win.pay, win.receipt
        b.confirm.connect(self.confirm)
        b.change_dishes.connect(self.open_menu)
        b.change_pay.connect(lambda: self.open_pay(short=False))
        b.not_me.connect(self.not_me)
        b.cancel.connect(lambda: self.go_idle("好的，本单已取消，没有扣钱"))
        m.changed.connect(self.menu_changed)
        m.done.connect(self.menu_done)
        p.chosen.connect(self.pay_chosen)
        p.staff_topup.connect(self.ask_topup)
        p.back.connect(lambda: self.back_to_bill(speak=True))
        r.done.connect(lambda: self.go_idle())
        r.answered.connect(self.answer_tomorrow)
        from PySide6.QtCore import QTimer
        self.ask_timer = QTimer(win, singleShot=True, timeout=r.hide_question)
        self.asked: tuple[str, str] | None = None    # (resident, meal) the question is about
        win.second.again.connect(self.buy_again)
        win.second.leave.connect(self.not_again)
        win.idle.no_face.connect(lambda: win.go_noface("请刷助老卡，或用按键输入卡号"))

    # -- idle --------------------------------------------------------------------------------
    def go_idle(self, announce: str | None = None) -> None:
        w = self.win
        self.resident_id, self.greeting, self.last_bill, self.settling = None, None, None, False
        self.earlier, self.again = None, False
        self.refresh_ev = None
        self.asked = None                 # an unanswered question is skipped, nothing recorded
        self.ask_timer.stop()
        w.receipt.hide_question()
        w.clear_call()                 # the customer changes: the call was theirs (staff saw it)
        w.liveness.cancel()
        w.staffflow.leave()
        if w.worker is not None:
            w.worker.reset_person()
        self.svc.camera.forget_person()
        w.idle.end_challenge()
        w.idle.hint.setText(self.camera_hint())
        w.show_page("idle")
        w.run_task(self.svc.checkout.idle_info, self._idle_info, lambda _e: None)
        prompt = IDLE_PROMPT if self.serving_meal else NO_MEAL_PROMPT
        if announce:
            w.say_all([(w.idle.hint, announce), (w.idle.prompt, prompt)])
        else:
            w.say(prompt, w.idle.prompt)

    def _idle_info(self, info) -> None:
        name, at, meal = info
        self.serving_meal = meal
        self.win.idle.canteen.setText(f"{name}　{at:%m月%d日}　{meal or '非供餐时间'}")
        if self.win.state == "idle":
            self.win.idle.prompt.setText(IDLE_PROMPT if meal else f"{NO_MEAL_PROMPT}，请到供餐时间再来")

    def camera_hint(self) -> str:
        st = self.win.camera_state
        if st == "lost":
            return "摄像头暂时不可用，请点“不刷脸”用助老卡"
        if st == "reconnecting" and self.win.worker is not None:
            return "摄像头连接中…"
        return ""

    def on_idle_frame(self, ev) -> None:
        w = self.win
        if ev.hint:
            text, at = self._last_hint
            if ev.hint != text or time.monotonic() - at > HINT_REPEAT_S:
                w.say(ev.hint, w.idle.hint)
                self._last_hint = (ev.hint, time.monotonic())
            else:
                w.idle.hint.setText(ev.hint)
        elif ev.primary is None:
            w.idle.hint.setText(self.camera_hint())
        if ev.decision == "identified" and ev.resident_id:
            if self.just_served and self.just_served[0] == ev.resident_id and \
                    time.monotonic() - self.just_served[1] < SERVED_COOLDOWN_S:
                if w.idle.hint.text() != "您已经结算好了，祝您用餐愉快":
                    w.say("您已经结算好了，祝您用餐愉快", w.idle.hint)
                return
            self.match_score = ev.score
            self.refresh_ev = ev
            w.liveness.start(ev)
        elif ev.decision == "unknown":
            served = self.just_served
            if served and time.monotonic() - served[1] < SERVED_COOLDOWN_S and \
                    self.svc.camera.same_face(served[2], self.win.face_in_front()):
                # served by card or phone, still standing there: not sent to the card page again
                if w.idle.hint.text() != "您已经结算好了，祝您用餐愉快":
                    w.say("您已经结算好了，祝您用餐愉快", w.idle.hint)
                return
            # the camera keeps looking: an elder who then faces it is still recognised
            w.go_noface("没有认出您。请用助老卡，或输入手机号后四位", watch_face=True)

    # -- the bill ------------------------------------------------------------------------------
    def go_bill(self, resident_id: str, identified_by: str) -> None:
        self.resident_id, self.identified_by = resident_id, identified_by
        self.settle_key = uuid.uuid4().hex     # one key per bill: a double tap settles once
        self.bill_started = time.monotonic()
        self.settling = False
        self.missing_since = None
        self.earlier, self.again = None, False
        svc = self.svc
        self.win.run_task(lambda rid: (svc.checkout.earlier_order(rid), svc.checkout.greet(rid)), self._show_start,
                          self._greet_failed, resident_id)

    def _show_start(self, got) -> None:
        earlier, g = got
        if g.resident_id != self.resident_id:
            return
        if earlier is None:
            self._show_greeting(g)
            return
        w = self.win
        self.earlier, self.greeting = earlier, g
        w.second.show_earlier(g.title, earlier)
        w.liveness.cancel()
        w.idle.end_challenge()
        w.show_page("second")
        w.say_all([(w.second.title, g.title), (w.second.headline, w.second.headline.text()),
                   (w.second.detail, w.second.detail.text()), (w.second.next, "还要再买一份吗？")])

    def not_again(self) -> None:
        """不买了: nothing bought; still standing there, the elder is not asked again."""
        if self.resident_id is not None:
            self.just_served = (self.resident_id, time.monotonic(), self.win.face_in_front())
        self.go_idle("好的，没有再买，没有扣钱")

    def buy_again(self) -> None:
        """再买一份: the bill opens with nothing chosen; the elder picks the dishes."""
        if self.resident_id is None or self.greeting is None:
            return
        self.again = True
        self.settle_key = uuid.uuid4().hex
        self._show_greeting(self.greeting)

    def _greet_failed(self, exc: Exception) -> None:
        msg = exc.user_message if isinstance(exc, KioskError) else "系统出错，请找工作人员"
        if not isinstance(exc, KioskError):
            log.error("greeting failed: %r", exc)
        self.resident_id = None
        w = self.win
        if w.state in ("idle", "challenge"):
            w.liveness.cancel()
            w.idle.end_challenge()
            w.show_page("idle")
            w.say(msg, w.idle.hint)
        else:
            w.show_error(exc)

    def _show_greeting(self, g) -> None:
        if g.resident_id != self.resident_id:
            return
        w = self.win
        self.greeting = g
        self.pay = g.pay_default
        w.bill.show_greeting(g, by_face=self.identified_by == "face")
        w.menu.show_menu(g, preselect=not self.again)
        if self.again and self.earlier is not None:
            w.bill.why.setText(f"再买一份：今天第 {self.earlier.count + 1} 份{self.earlier.meal}，请自己选菜")
        w.show_page("bill")
        self.refresh_bill(greet=True)

    def refresh_bill(self, greet: bool = False, after: str | None = None) -> None:
        if self.resident_id is None:
            return
        rid = self.resident_id
        self.win.run_task(self.svc.checkout.bill, lambda b: self._show_bill(b, greet, after) if rid == self.resident_id else None,
                          None, rid, self.win.menu.selected())

    def _show_bill(self, b, greet: bool, after: str | None) -> None:
        w, page = self.win, self.win.bill
        self.last_bill = b
        page.show_bill(b, self.pay)
        page.error.setText("")
        if b.total_fen == 0:
            nxt = "请点“换菜”选菜"
        elif self.pay == "balance" and not b.enough_balance():
            page.error.setText(f"余额不够：余额 {yuan(b.balance_fen or 0)} 元")
            nxt = "请点确认，再选付款方式"
        elif self.pay == "balance" and getattr(b, "balance_refused", None):    # offline: over the district's cap
            page.error.setText(b.balance_refused)
            nxt = "请点“换付款方式”"
        else:
            nxt = "请点确认"
        refused = page.error.text() if self.pay == "balance" and getattr(b, "balance_refused", None) else None
        if greet:
            parts = [(page.title, self.greeting.title), (page.subsidy, page.subsidy.text() or self.greeting.subsidy_text)]
            if b.total_fen:
                parts.append((page.to_pay, page.to_pay.text()))
                nxt = ("菜已按您的口味选好，" + nxt) if nxt == "请点确认" else nxt
            w.say_all(parts + ([(page.error, refused)] if refused else []) + [(page.next, nxt)])
        elif after:
            w.say_all([(page.to_pay, page.to_pay.text())] + ([(page.error, refused)] if refused else [])
                      + [(page.next, nxt)] if b.total_fen else [(page.next, nxt)])
        else:
            page.next.setText(nxt)

    def open_menu(self) -> None:
        w = self.win
        w.show_page("menu")
        self.menu_changed()
        w.say("点一下选菜，再点一下不要，选好了点“选好了”", w.menu.next)

    def menu_changed(self) -> None:
        if self.resident_id is None:
            return
        w = self.win
        w.touch()
        rid = self.resident_id

        def show(b):
            if rid == self.resident_id:
                w.menu.to_pay.setText(f"应付 {yuan(b.to_pay_fen)} 元" if b.total_fen else "还没有选菜")
                w.menu.done_btn.setEnabled(b.total_fen > 0)
        w.run_task(self.svc.checkout.bill, show, None, rid, w.menu.selected())

    def menu_done(self) -> None:
        self.back_to_bill(speak=True)

    def back_to_bill(self, speak: bool = False) -> None:
        self.win.show_page("bill")
        self.refresh_bill(after="back" if speak else None)

    def open_pay(self, short: bool) -> None:
        w, b = self.win, self.last_bill
        if b is None:
            return
        w.pay.show_choices(b, short, self.pay)
        w.show_page("pay")
        if short:
            w.say_all([(w.pay.title, "余额不够付这一餐"), (w.pay.to_pay, f"应付 {yuan(b.to_pay_fen)} 元"),
                       (w.pay.balance, f"账户余额 {yuan(b.balance_fen or 0)} 元"),
                       (w.pay.next, "请选付现金，或请工作人员帮您充值")])
        else:
            w.say("请点您要用的付款方式", w.pay.next)

    def pay_chosen(self, how: str) -> None:
        self.pay = how
        self.back_to_bill(speak=True)

    def ask_topup(self) -> None:
        w = self.win
        w.show_call("收银台（充值）")
        w.run_task(self.svc.checkout.call_staff, lambda _=None: None, lambda _e: None, "充值")
        w.say("已呼叫工作人员来帮您充值，请稍等", w.pay.next)

    def confirm(self) -> None:
        w = self.win
        if self.resident_id is None or not w.menu.selected() or self.settling:
            return
        if self.identified_by == "face" and not self.svc.camera.still_in_front(self.resident_id):
            w.say("请您本人看着屏幕，再点确认", w.bill.error)
            return
        b = self.last_bill
        if self.pay == "balance" and b is not None and not b.enough_balance():
            self.open_pay(short=True)
            return
        self.settling = True
        w.bill.settling(True)
        w.run_task(self.svc.checkout.settle, self._settled, self._settle_failed, self.resident_id,
                   w.menu.selected(), self.pay, self.settle_key, self.identified_by)

    def _settled(self, receipt) -> None:
        w = self.win
        self.settling = False
        if receipt.resident_id != self.resident_id:
            return
        self.just_served = (receipt.resident_id, time.monotonic(), self.win.face_in_front())
        line = f"政府补贴 {yuan(receipt.subsidy_fen)} 元" if receipt.subsidy_fen else f"本餐没有补贴：{receipt.reason}"
        w.receipt.show_receipt(receipt, line)
        question = tomorrow_question(receipt.meal) if receipt.meal else ""
        self.asked = (receipt.resident_id, receipt.meal) if question else None
        if question:
            w.receipt.ask(question)
            self.ask_timer.start(int(ASK_S * 1000))
        else:
            w.receipt.hide_question()
        w.show_page("receipt")
        self.receipt_shown = time.monotonic()
        w.say_all([(w.receipt.next, "结算成功，请取餐。取好餐请点“好的”"), (w.receipt.paid, w.receipt.paid.text()),
                   (w.receipt.ask_line, question)])
        if w.printer is not None:
            w.printer.print_receipt(receipt)
        ev, self.refresh_ev = self.refresh_ev, None
        if ev is not None and self.identified_by == "face" and ev.embedding is not None:
            w.run_task(self.svc.checkout.maybe_refresh_template, lambda _ok: None, lambda _e: None, ev.resident_id, ev.score,
                       ev.quality, ev.match_status, bool(ev.live), ev.embedding, ev.aligned)

    def answer_tomorrow(self, coming: bool) -> None:
        """来 / 不来: tomorrow's same meal booked or called off through the counter's façade."""
        asked, self.asked = self.asked, None
        if asked is None:
            return
        self.ask_timer.stop()
        self.receipt_shown = time.monotonic()          # a tap is the elder still here
        w = self.win
        w.receipt.answered_with("正在记下…")

        def done(_res) -> None:
            if w.state == "receipt":
                w.receipt.answered_with("")
                w.say("好的，明天给您留饭" if coming else "好的，明天不给您留饭", w.receipt.ask_line)
                self.ask_timer.start(int(ANSWER_SHOWN_S * 1000))

        def failed(exc: Exception) -> None:
            log.warning("booking at the counter failed: %s", exc)
            if w.state == "receipt":
                w.receipt.answered_with("")
                w.say("没有记下，请找工作人员报餐", w.receipt.ask_line)
                self.ask_timer.start(int(ANSWER_SHOWN_S * 1000))
        w.run_task(self.svc.bookings.answer_tomorrow, done, failed, asked[0], asked[1], coming)

    def _settle_failed(self, exc: Exception) -> None:
        self.settling = False
        self.win.bill.settling(False)
        self.win.bill.next.setText("请点确认")
        if isinstance(exc, InsufficientBalanceError):
            self.win.run_task(self.svc.checkout.bill, lambda b: (setattr(self, "last_bill", b), self.open_pay(short=True)),
                              None, self.resident_id, self.win.menu.selected())
            return
        self.win.show_error(exc)

    def not_me(self) -> None:
        rid = self.resident_id
        if rid:
            self.win.run_task(self.svc.checkout.record_misidentification, lambda _=None: None, None, rid, self.match_score)
        self.resident_id = None
        self.refresh_ev = None
        self.win.go_noface("对不起，认错了。请用助老卡，或输入手机号后四位")

    # -- the clock ---------------------------------------------------------------------------------
    def tick(self) -> None:
        w, now = self.win, time.monotonic()
        st = w.state
        away = self.svc.camera.absent_for()
        if st in ("bill", "menu", "pay", "second") and self.resident_id and not self.settling:
            if self.identified_by == "face":
                if self.svc.camera.someone_else_in_front(self.resident_id):
                    self.go_idle("换了一位，上一单已取消，没有扣钱")
                    return
                if self.svc.camera.still_in_front(self.resident_id):
                    self.missing_since = None
                elif self.missing_since is None:
                    self.missing_since = now
                elif now - self.missing_since > w.leave_seconds:
                    self.go_idle("没有看到您，本单已取消，没有扣钱" if away > w.leave_seconds else
                                 "换了一位，上一单已取消，没有扣钱")
                    return
        elif st == "idle" and self.just_served and away > w.leave_seconds:
            self.just_served = None          # the elder has left: back later, the second-meal screen asks
        elif st == "receipt":
            watched = self.identified_by == "face" or now - away >= self.bill_started   # a face was at the counter
            if (watched and away > w.leave_seconds) or now - self.receipt_shown > w.receipt_max_seconds:
                self.go_idle()
