"""The non-face path: a 助老卡 number (letters and digits, typed or from a USB card
reader), or the phone's last four digits and then the elder's name from big buttons.
找工作人员 calls staff (a sound and a call on screen), it is not a login."""
from __future__ import annotations

from kiosk.errors import KioskError

CARD_PROMPT = "请刷助老卡，或用按键输入卡号"
PHONE_PROMPT = "请输入手机号后四位"


class NoFaceController:
    def __init__(self, win) -> None:
        self.win = win
        self.svc = win.service
        p = win.noface
        p.card.connect(self.lookup_card)
        p.phone.connect(self.lookup_phone)
        p.chosen.connect(lambda rid: win.go_bill(rid, "phone"))
        p.back.connect(lambda: win.go_idle())
        p.call_staff.connect(self.call_staff)
        p.mode_changed.connect(self._mode_changed)
        self._quiet = False
        self.watch_face = False

    def go(self, prompt: str, mode: str = "card", watch_face: bool = False) -> None:
        """``watch_face``: sent here because the face was not recognised (yet); if the camera
        then recognises the elder before anything is typed, checkout goes on by face. Not
        after a failed liveness check or a tap on 不刷脸 (no second chance for a photo)."""
        w = self.win
        self.watch_face = watch_face
        w.checkout.resident_id = None
        w.liveness.cancel()
        w.idle.end_challenge()
        self._quiet = True
        w.noface.reset(mode)
        self._quiet = False
        w.show_page("noface")
        w.say(prompt, w.noface.prompt)

    def on_frame(self, ev) -> None:
        w = self.win
        if not (self.watch_face and ev.decision == "identified" and ev.resident_id):
            return
        if w.noface.entry.text() or w.noface.names.count():
            self.watch_face = False            # the elder has started on the card path: leave it
            return
        self.watch_face = False
        w.show_page("idle")
        w.checkout.on_idle_frame(ev)

    def _mode_changed(self, mode: str) -> None:
        if not self._quiet:
            self.win.say(PHONE_PROMPT if mode == "phone" else CARD_PROMPT, self.win.noface.prompt)

    def lookup_card(self, card_no: str) -> None:
        def failed(exc):
            msg = exc.user_message if isinstance(exc, KioskError) else "系统出错，请找工作人员"
            self.win.say(msg, self.win.noface.error)
        self.win.run_task(self.svc.checkout.find_by_card, lambda c: self.win.go_bill(c.resident_id, "card"), failed, card_no)

    def lookup_phone(self, last4: str) -> None:
        w = self.win

        def show(cards):
            if not cards:
                w.say("没有找到这个手机尾号，请再试一次，或找工作人员", w.noface.error)
            else:
                w.noface.error.setText("")
                w.noface.show_names(cards, 2 if w.width() > w.height() else 1)
                w.say("请点您的名字", w.noface.prompt)

        def failed(exc):
            w.say(exc.user_message if isinstance(exc, KioskError) else "系统出错，请找工作人员", w.noface.error)
        w.run_task(self.svc.checkout.find_by_phone, show, failed, last4)

    def call_staff(self) -> None:
        w = self.win
        w.show_call()
        w.run_task(self.svc.checkout.call_staff, lambda _=None: None, lambda _e: None, "收银台")
        w.say("已呼叫工作人员，请稍等", w.noface.prompt)
