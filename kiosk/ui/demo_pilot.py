"""Demo autopilot: with nobody at the screen, taps through the flow so the demo
shows it all (confirm a bill, type a card number for the stranger)."""
from __future__ import annotations

import time

from PySide6.QtCore import QTimer

from .widgets import label


class DemoPilot:
    def __init__(self, win, bill_after_s: float = 5.0, card_after_s: float = 4.0) -> None:
        self.win, self.bill_after_s, self.card_after_s = win, bill_after_s, card_after_s
        self.since = (None, time.monotonic())
        self.banner = label("演示模式：无人操作时自动点按；摄像头播放照片，活体检测已关闭", "hint")
        self.banner.setParent(win)
        self.banner.move(20, win.height() - 90)
        self.banner.resize(1060, 70)
        self.banner.show()
        self.timer = QTimer(win, interval=500, timeout=self.step)
        self.timer.start()
        self.actions: list[str] = []

    def step(self) -> None:
        w = self.win
        state, t0 = self.since
        if state != w.state:
            self.since = (w.state, time.monotonic())
            return
        waited = time.monotonic() - t0
        if w.state == "bill" and waited > self.bill_after_s and w.bill.confirm_btn.isEnabled():
            w.bill.confirm_btn.click()
            self.actions.append("confirm")
            self.since = (w.state, time.monotonic())
        elif w.state == "noface" and waited > self.card_after_s and not w.noface.entry.text():
            w.noface.entry.setText("ZL0002")
            w.noface.keypad.buttons["确定"].click()
            self.actions.append("card")
            self.since = (w.state, time.monotonic())
