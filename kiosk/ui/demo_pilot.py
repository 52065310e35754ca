"""Demo autopilot: with nobody at the screen, taps through the flow so the demo
shows it all (confirm a bill, type a card number for the stranger)."""
from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QTimer

from kiosk.ui.widgets import label


class DemoPilot:
    def __init__(self, win, capture=None, bill_after_s: float = 5.0, card_after_s: float = 4.0,
                 on_sales: tuple[int, Callable[[], None]] | None = None) -> None:
        """``on_sales`` (n, callback): called once when the n-th receipt is shown (``kiosk
        demo --sales``: the demo ends after serving that many meals)."""
        self.win, self.capture = win, capture
        self.on_sales, self.sales = on_sales, 0
        self.bill_after_s, self.card_after_s = bill_after_s, card_after_s
        self.since = (None, time.monotonic())
        self.banner = label("演示模式：自动点按；画面中的人按提示转头（照片合成的三维转头）", "status")
        win.add_banner(self.banner)          # under the pages, never over them
        self.timer = QTimer(win, interval=500, timeout=self.step)
        self.timer.start()
        self.actions: list[str] = []
        self._last_challenge = None
        self._heard, self._heard_at = None, 0.0

    def step(self) -> None:
        w = self.win
        challenge = w.challenge
        if w.state == "challenge" and challenge is not None and challenge is not self._last_challenge \
                and self.capture is not None:
            if self._heard is not challenge:          # listen first, then turn (as a person would)
                self._heard, self._heard_at = challenge, time.monotonic()
            elif time.monotonic() - self._heard_at >= 1.0:
                self._last_challenge = challenge
                self.capture.turn(challenge.direction)   # the elder on camera turns as asked
                self.actions.append("turn")
        state, t0 = self.since
        if state != w.state:
            self.since = (w.state, time.monotonic())
            if w.state == "receipt":                  # a meal served
                self.sales += 1
                if self.on_sales is not None and self.sales == self.on_sales[0]:
                    self.on_sales[1]()
            return
        waited = time.monotonic() - t0
        if w.state == "bill" and waited > self.bill_after_s and w.bill.confirm_btn.isEnabled():
            w.bill.confirm_btn.click()
            self.actions.append("confirm")
            self.since = (w.state, time.monotonic())
        elif w.state == "pay" and waited > self.bill_after_s:
            w.pay.buttons["cash"].click()            # the demo elder chooses cash
            self.actions.append("cash")
            self.since = (w.state, time.monotonic())
        elif w.state == "second" and waited > self.bill_after_s:
            w.second.leave_btn.click()                # the demo elder who has paid comes back: 不买了
            self.actions.append("not_again")
        elif w.state == "receipt" and waited > self.bill_after_s:
            w.receipt.done_btn.click()
            self.actions.append("done")
        elif w.state == "noface" and waited > self.card_after_s and not w.noface.entry.text():
            w.noface.entry.setText("ZL0002")
            w.noface.cardkeys.buttons["确定"].click()
            self.actions.append("card")
            self.since = (w.state, time.monotonic())
