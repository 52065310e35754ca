"""Staff and admin screens, behind a PIN: enrol, void the last order, top up,
imports, today's orders and their export."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QHBoxLayout, QLineEdit, QListWidget,
                               QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..money import fen_to_yuan
from .widgets import Keypad, big_button, label

VOID_REASONS = ("打错菜", "重复结算", "居民取消", "认错人")


class StaffPage(QWidget):
    """Emits intents; the main window runs them through the service layer."""

    login = Signal(str)
    logout = Signal()
    enroll_start = Signal(str, bool)          # resident id, consent signed now
    void_last = Signal(str)                   # reason
    topup = Signal(str, str, str)             # resident id or card, yuan, payer
    import_file = Signal(str, str)            # kind, path
    export_today = Signal()
    export_month = Signal()
    show_orders = Signal()
    toggle_debug = Signal()
    override = Signal(str, str)               # reason, supervisor PIN

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.who = label("工作人员登录", "title")
        v.addWidget(self.who)
        self.message = label("", "status")     # words say whether it worked; errors start with ⚠
        v.addWidget(self.message)
        self.stack = QStackedWidget()
        v.addWidget(self.stack, 1)
        self.back_btn = big_button("退出")
        self.back_btn.clicked.connect(self.logout)
        v.addWidget(self.back_btn)

        # PIN
        pin = QWidget()
        pv = QVBoxLayout(pin)
        self.pin = QLineEdit()
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pin.returnPressed.connect(lambda: self.login.emit(self.pin.text()))
        pv.addWidget(label("请输入工作人员 PIN"))
        pv.addWidget(self.pin)
        kp = Keypad()
        kp.digit.connect(lambda d: self.pin.setText(self.pin.text() + d))
        kp.cleared.connect(self.pin.clear)
        kp.entered.connect(lambda: self.login.emit(self.pin.text()))
        pv.addWidget(kp, 1)
        self.stack.addWidget(pin)

        # menu
        menu = QWidget()
        mv = QVBoxLayout(menu)
        self.rid = QLineEdit()
        self.rid.setPlaceholderText("居民编号或助老卡号")
        mv.addWidget(self.rid)
        self.consent = QCheckBox("居民（或监护人）已签署人脸授权书")
        self.consent.setMinimumHeight(90)
        mv.addWidget(self.consent)
        self.enroll_btn = big_button("采集人脸")
        self.enroll_btn.clicked.connect(lambda: self.enroll_start.emit(self.rid.text().strip(), self.consent.isChecked()))
        mv.addWidget(self.enroll_btn)
        self.capture_status = label("")
        mv.addWidget(self.capture_status)
        self.override_box = QWidget()
        ov = QHBoxLayout(self.override_box)
        self.override_reason = QLineEdit()
        self.override_reason.setPlaceholderText("授权理由（如：双胞胎，已核对身份证）")
        self.sup_pin = QLineEdit()
        self.sup_pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.sup_pin.setPlaceholderText("主管 PIN")
        self.override_btn = big_button("主管授权登记", "danger")
        self.override_btn.clicked.connect(lambda: self.override.emit(self.override_reason.text().strip(),
                                                                     self.sup_pin.text()))
        ov.addWidget(self.override_reason, 2)
        ov.addWidget(self.sup_pin, 1)
        ov.addWidget(self.override_btn, 1)
        self.override_box.setVisible(False)
        mv.addWidget(self.override_box)
        row = QHBoxLayout()
        self.amount = QLineEdit()
        self.amount.setPlaceholderText("充值金额（元）")
        self.payer = QLineEdit()
        self.payer.setPlaceholderText("付款人（如：子女）")
        row.addWidget(self.amount)
        row.addWidget(self.payer)
        mv.addLayout(row)
        self.topup_btn = big_button("充值")
        self.topup_btn.clicked.connect(lambda: self.topup.emit(self.rid.text().strip(), self.amount.text().strip(),
                                                               self.payer.text().strip()))
        mv.addWidget(self.topup_btn)
        self.last_order = label("")
        mv.addWidget(self.last_order)
        mv.addWidget(label("作废上一单，原因："))
        vr = QHBoxLayout()
        self.void_buttons = {}
        for r in VOID_REASONS:
            b = big_button(r, "danger")
            b.clicked.connect(lambda _=False, r=r: self.void_last.emit(r))
            self.void_buttons[r] = b
            vr.addWidget(b)
        mv.addLayout(vr)
        self.debug_btn = big_button("显示 / 隐藏调试信息（帧率、各步耗时）")
        self.debug_btn.clicked.connect(self.toggle_debug)
        mv.addWidget(self.debug_btn)
        self.admin_btn = big_button("管理（导入 / 今日订单）")
        self.admin_btn.clicked.connect(lambda: (self.stack.setCurrentIndex(2), self.show_orders.emit()))
        mv.addWidget(self.admin_btn)
        self.stack.addWidget(menu)

        # admin
        admin = QWidget()
        av = QVBoxLayout(admin)
        kind_row = QHBoxLayout()
        self.kind_group = QButtonGroup(self)
        self.kind_buttons = {}
        for k, t in (("roster", "花名册"), ("menu", "菜单"), ("policy", "补贴政策")):
            b = big_button(t, checkable=True)
            self.kind_group.addButton(b)
            self.kind_buttons[k] = b
            kind_row.addWidget(b)
        self.kind_buttons["menu"].setChecked(True)
        av.addLayout(kind_row)
        self.path = QLineEdit()
        self.path.setPlaceholderText("文件路径（CSV / Excel / YAML）")
        av.addWidget(self.path)
        self.import_btn = big_button("导入")
        self.import_btn.clicked.connect(lambda: self.import_file.emit(self.kind(), self.path.text().strip()))
        av.addWidget(self.import_btn)
        self.report = QListWidget()
        av.addWidget(self.report, 1)
        self.totals = label("")
        av.addWidget(self.totals)
        self.orders = QTableWidget(0, 6)
        self.orders.setHorizontalHeaderLabels(["时间", "姓名", "餐次", "合计", "补贴", "实付"])
        av.addWidget(self.orders, 2)
        ex_row = QHBoxLayout()
        self.export_btn = big_button("导出今日订单")
        self.export_btn.clicked.connect(self.export_today)
        self.month_btn = big_button("导出本月补贴结算表")
        self.month_btn.clicked.connect(self.export_month)
        ex_row.addWidget(self.export_btn)
        ex_row.addWidget(self.month_btn)
        av.addLayout(ex_row)
        self.stack.addWidget(admin)

    def show_override(self, on: bool) -> None:
        self.override_box.setVisible(on)
        if not on:
            self.override_reason.clear()
            self.sup_pin.clear()

    def kind(self) -> str:
        return next(k for k, b in self.kind_buttons.items() if b.isChecked())

    def show_login(self) -> None:
        self.who.setText("工作人员登录")
        self.pin.clear()
        self.message.setText("")
        self.stack.setCurrentIndex(0)

    def show_menu(self, staff: dict, last_order: dict | None) -> None:
        role = {"staff": "工作人员", "supervisor": "主管", "admin": "管理员"}[staff["role"]]
        self.who.setText(f"{staff['name']}（{role}）")
        self.message.setText("")
        self.admin_btn.setVisible(staff["role"] == "admin")
        self.set_last_order(last_order)
        self.stack.setCurrentIndex(1)

    def set_last_order(self, o: dict | None) -> None:
        if o is None:
            self.last_order.setText("今天还没有订单")
        else:
            self.last_order.setText(f"上一单：{o['at']:%H:%M} {o['resident']} 合计 {fen_to_yuan(o['total_fen'])} 元"
                                    f"（实付 {fen_to_yuan(o['to_pay_fen'])} 元）")
        for b in self.void_buttons.values():
            b.setEnabled(o is not None)

    def show_report(self, lines: list[str]) -> None:
        self.report.clear()
        self.report.addItems(lines)

    def show_orders_table(self, data: dict) -> None:
        self.totals.setText(f"{data['date']}：{data['count']} 单，合计 {fen_to_yuan(data['total_fen'])} 元，"
                            f"补贴 {fen_to_yuan(data['subsidy_fen'])} 元，实收 {fen_to_yuan(data['paid_fen'])} 元")
        rows = data["orders"]
        self.orders.setRowCount(len(rows))
        for i, o in enumerate(rows):
            vals = [o["time"], o["name"] + ("（已作废）" if o["voided"] else ""), o["meal"], fen_to_yuan(o["total_fen"]),
                    fen_to_yuan(o["subsidy_fen"]), fen_to_yuan(o["to_pay_fen"])]
            for j, val in enumerate(vals):
                self.orders.setItem(i, j, QTableWidgetItem(val))


def report_lines(rep) -> list[str]:
    name = Path(rep.file).name
    out = [f"{name}：新增 {len(rep.created)}，更新 {len(rep.updated)}，未变 {len(rep.unchanged)}，跳过 {len(rep.skipped_rows)} 行"
           + ("" if rep.imported else "（有错误，未导入）")]
    out += [p.text(name) for p in rep.problems]
    out += rep.warnings
    return out
