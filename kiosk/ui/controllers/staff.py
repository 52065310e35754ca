"""Staff and admin work at the terminal: PIN login, enrolment from the camera (with a
supervisor's override for a duplicate face), top-ups, void and erase (each confirmed
first), imports and exports, and the district sync state (staff only)."""
from __future__ import annotations

import time
from pathlib import Path

from kiosk.errors import DuplicateFaceError, KioskError
from kiosk.money import yuan_to_fen
from kiosk.money import yuan

HINT_REPEAT_S = 4.0
SYNC_EVERY_S = 5.0


class StaffController:
    def __init__(self, win) -> None:
        self.win = win
        self.svc = win.service
        self.user: dict | None = None
        self.capture = None
        self.captured = None
        self.target: tuple[str, bool] | None = None
        self.pending: tuple | None = None            # the action waiting for 确认
        self._last_hint = ("", 0.0)
        self._sync_at = 0.0
        p = win.staff
        p.login.connect(self.login)
        p.logout.connect(lambda: win.go_idle())
        p.section.connect(self.section)
        p.void_last.connect(self.ask_void)
        p.topup.connect(self.topup)
        p.erase.connect(self.ask_erase)
        p.confirmed.connect(self.confirmed)
        p.cancelled.connect(self.cancelled)
        p.enroll_start.connect(self.enroll_start)
        p.import_file.connect(self.admin_import)
        p.show_orders.connect(self.admin_orders)
        p.export_today.connect(self.admin_export)
        p.export_month.connect(self.admin_export_month)
        p.toggle_debug.connect(win.toggle_debug)
        p.override.connect(lambda reason, pin: self.save_capture(reason, pin))

    @property
    def staff_id(self) -> str | None:
        return self.user["staff_id"] if self.user else None

    def go(self) -> None:
        self.win.staff.show_login()
        self.win.show_page("staff")
        self.refresh_sync()
        call = self.win.call_info
        if call is not None:          # staff see the open call of the customer in front
            self.message(f"⚠ 居民在{call[0]}呼叫工作人员（{call[1]:%H:%M}）")

    def busy(self) -> bool:
        """A capture from the camera is running: the resident in front is the activity."""
        return self.capture is not None

    def leave(self) -> None:
        if self.user:
            self.svc.staff.logout(self.user["staff_id"])
        self.user, self.capture, self.captured, self.pending = None, None, None, None
        self.win.staff.show_override(False)

    def message(self, text: str) -> None:
        self.win.staff.message.setText(text)

    def failed(self, exc: Exception) -> None:
        self.win.show_error(exc)

    def login(self, pin: str) -> None:
        if not pin:
            return                    # an empty 确定 is not a wrong PIN
        def ok(user):
            self.user = user
            self.win.clear_call()
            self.message("")
            self.win.run_task(self.svc.staff.last_order, lambda o: self.win.staff.show_menu(user, o))
        self.win.run_task(self.svc.staff.login, ok, None, pin)

    def section(self, key: str) -> None:
        self.win.staff.show_section(key)
        self.message("")
        if key == "void":
            self.win.run_task(self.svc.staff.last_order, self.win.staff.set_last_order)
        elif key == "admin":
            self.admin_orders()

    # -- confirmed actions ------------------------------------------------------------------
    def ask_void(self, reason: str) -> None:
        if not self.user:
            return

        def got(o):
            if o is None:
                self.message("没有可作废的订单")
                return
            self.pending = ("void", o["order_id"], reason)
            self.win.staff.ask(f"作废 {o['at']:%H:%M} {o['resident']} 的订单？\n原因：{reason}\n"
                               f"退还 {yuan(o['to_pay_fen'])} 元，补贴额度退回", "确认作废")
        self.win.run_task(self.svc.staff.last_order, got)

    def ask_erase(self, who: str) -> None:
        if not self.user:
            return
        if not who:
            self.message("⚠ 请先输入居民编号或助老卡号")
            return
        self.pending = ("erase", who)
        self.win.staff.ask(f"删除 {who} 的全部人脸数据？\n删除后不能恢复，刷脸要重新签授权、重新采集", "确认删除")

    def confirmed(self) -> None:
        what, self.pending = self.pending, None
        self.win.staff.back_to_menu()
        if what is None or not self.user:
            return
        sid = self.user["staff_id"]
        if what[0] == "void":
            def done(res):
                self.message(f"已作废，退款 {yuan(res['refund_fen'])} 元（{ {'balance': '退回余额', 'cash': '退现金', 'card': '退银行卡'}.get(res['refund_to'], res['refund_to'])}）")
                self.win.run_task(self.svc.staff.last_order, self.win.staff.set_last_order)
            self.win.run_task(self.svc.staff.void, done, None, what[1], what[2], sid)
        elif what[0] == "erase":
            self.win.run_task(self.svc.staff.erase_faces, lambda r: self.message(
                f"已删除 {r['resident_id']} 的人脸数据（{r['templates_removed']} 个模板）"), None, what[1], sid)

    def cancelled(self) -> None:
        self.pending = None
        self.win.staff.back_to_menu()
        self.message("已取消，没有改动")

    def topup(self, who: str, amount: str, payer: str) -> None:
        if not self.user:
            return
        if not who:
            self.message("⚠ 请先输入居民编号或助老卡号")
            return
        try:
            fen = yuan_to_fen(amount)
        except (ValueError, ArithmeticError):
            self.message(f"⚠ 金额「{amount}」无效，请输入元，如 50 或 50.5")
            return
        self.win.run_task(self.svc.staff.topup, lambda r: self.message(
            f"已充值 {yuan(r['amount_fen'])} 元，{r['resident_id']} 余额 {yuan(r['balance_fen'])} 元"),
            None, who, fen, payer or None, self.user["staff_id"])

    # -- enrolment from the camera ------------------------------------------------------------------
    def enroll_start(self, who: str, consent_now: bool) -> None:
        if not self.user or not who:
            self.message("⚠ 请先输入居民编号或助老卡号")
            return
        self.capture = self.svc.staff.start_capture()
        self.target = (who, consent_now)
        self.win.staff.show_override(False)
        self.win.say("请居民看摄像头：" + self.capture.next_pose[2], self.win.staff.capture_status)
        if self.win.worker is not None:
            self.win.worker.reset_person()

    def on_frame(self, ev) -> None:
        st = self.win.staff
        if self.user and st.stack.currentIndex() == 1 and st.sections.currentIndex() == list(st.forms).index("enrol"):
            st.show_camera(ev)
        if self.capture is None:
            return
        prompt = self.svc.staff.capture_offer(self.capture, ev.embedding, ev.aligned, ev.quality,
                                        ev.landmarks if ev.primary is not None else None, ev.hint)
        if prompt:
            text = f"已采集 {len(self.capture.taken)}/3：{prompt}"
            last, at = self._last_hint
            if prompt != last or time.monotonic() - at > HINT_REPEAT_S:
                self.win.say(text, self.win.staff.capture_status)
                self._last_hint = (prompt, time.monotonic())
            else:
                self.win.staff.capture_status.setText(text)
        if self.capture.done:
            self.captured, self.capture = self.capture, None
            self.save_capture()

    def save_capture(self, override_reason: str | None = None, supervisor_pin: str | None = None) -> None:
        if self.captured is None or self.target is None or not self.user:
            return
        who, consent_now = self.target

        def done(rep):
            self.captured = None
            self.win.staff.show_override(False)
            self.win.say(f"采集完成：已为 {rep.resident_id} 采集 {len(rep.enrolled)} 张人脸模板", self.win.staff.message)

        def failed(exc):
            if isinstance(exc, DuplicateFaceError):
                self.win.staff.show_override(True)      # a supervisor may override, with a reason
            self.win.show_error(exc)
        self.win.run_task(self.svc.staff.enroll_captured, done, failed, who, self.captured, self.user["staff_id"],
                          consent_now=consent_now, override_reason=override_reason, supervisor_pin=supervisor_pin)

    # -- admin -----------------------------------------------------------------------------------
    def _admin(self) -> bool:
        return bool(self.user) and self.user["role"] == "admin"

    def admin_import(self, kind: str, path: str) -> None:
        if not self._admin():
            return
        if not path:
            self.message("⚠ 请先输入文件路径")
            return
        self.win.run_task(self.svc.records.import_file,
                          lambda rep: (self.win.staff.show_report(report_lines(rep)), self.admin_orders()),
                          lambda e: self.win.staff.show_report([e.user_message if isinstance(e, KioskError) else str(e)]),
                          kind, Path(path), self.user["staff_id"])

    def admin_orders(self) -> None:
        self.win.run_task(self.svc.records.today_orders, self.win.staff.show_orders_table)

    def admin_export(self) -> None:
        if not self.user:
            return
        self.win.run_task(self.svc.records.export_today, lambda p: self.message(f"已导出：{p}"), None, self.user["staff_id"])

    def admin_export_month(self) -> None:
        if not self._admin():
            return
        self.win.run_task(self.svc.records.export_this_month, lambda p: self.message(f"已导出：{p}"), None,
                          self.user["staff_id"])

    # -- the district link (staff only) -------------------------------------------------------------
    def refresh_sync(self) -> None:
        self._sync_at = time.monotonic()
        self.win.run_task(self.svc.records.sync_status, self.win.staff.show_sync, lambda _e: None)

    def tick(self) -> None:
        if self.win.state == "staff" and time.monotonic() - self._sync_at > SYNC_EVERY_S:
            self.refresh_sync()


def report_lines(rep) -> list[str]:
    """An import report as the lines the staff page shows."""
    name = Path(rep.file).name
    out = [f"{name}：新增 {len(rep.created)}，更新 {len(rep.updated)}，未变 {len(rep.unchanged)}，跳过 {len(rep.skipped_rows)} 行"
           + ("" if rep.imported else "（有错误，未导入）")]
    out += [p.text(name) for p in rep.problems]
    out += rep.warnings
    return out
