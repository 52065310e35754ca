"""One page per step of the checkout flow. Pages hold widgets and emit intents;
the main window decides what happens next and calls the services."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QGridLayout, QHBoxLayout, QLineEdit, QListWidget,
                               QListWidgetItem, QScrollArea, QVBoxLayout, QWidget)

from ..money import fen_to_yuan
from ..services.kiosk import Bill, Greeting
from .widgets import CameraView, Keypad, big_button, label

PAY_LABELS = {"balance": "余额", "cash": "现金", "card": "银行卡"}


class IdlePage(QWidget):
    no_face = Signal()
    staff = Signal()

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.canteen = label("", "title")
        self.canteen.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.canteen)
        self.camera = CameraView()
        v.addWidget(self.camera, 1)
        self.prompt = label("请看屏幕，刷脸就餐", "title")
        self.prompt.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.prompt)
        self.hint = label("", "hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.hint)
        row = QHBoxLayout()
        self.no_face_btn = big_button("不刷脸（刷卡 / 手机尾号）")
        self.no_face_btn.clicked.connect(self.no_face)
        self.staff_btn = big_button("工作人员")
        self.staff_btn.clicked.connect(self.staff)
        row.addWidget(self.no_face_btn, 3)
        row.addWidget(self.staff_btn, 1)
        v.addLayout(row)


class BillPage(QWidget):
    changed = Signal()
    confirm = Signal()
    not_me = Signal()
    cancel = Signal()

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.title = label("", "title")
        v.addWidget(self.title)
        self.subsidy = label("", "key")
        v.addWidget(self.subsidy)
        self.month = label("")
        v.addWidget(self.month)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.scroll.setWidget(self.grid_host)
        v.addWidget(self.scroll, 1)
        sum_row = QHBoxLayout()
        self.sum = label("", "title")           # 合计 − 补贴 =
        self.to_pay = label("", "key")          # 应付 (the largest figure)
        sum_row.addWidget(self.sum, 3)
        sum_row.addWidget(self.to_pay, 2)
        v.addLayout(sum_row)
        self.sum_reason = label("")
        v.addWidget(self.sum_reason)
        pay_row = QHBoxLayout()
        self.pay_group = QButtonGroup(self)
        self.pay_buttons = {}
        for key, text in PAY_LABELS.items():
            b = big_button(text, checkable=True)
            b.setProperty("base", text)
            b.toggled.connect(lambda _=False, b=b: self._label_tile(b))
            self.pay_group.addButton(b)
            self.pay_buttons[key] = b
            pay_row.addWidget(b)
        self.pay_buttons["cash"].setChecked(True)
        v.addLayout(pay_row)
        self.error = label("", "error")
        v.addWidget(self.error)
        row = QHBoxLayout()
        self.not_me_btn = big_button("不是我", "danger")
        self.not_me_btn.clicked.connect(self.not_me)
        self.cancel_btn = big_button("返回")
        self.cancel_btn.clicked.connect(self.cancel)
        self.confirm_btn = big_button("确认", "primary")
        self.confirm_btn.clicked.connect(self.confirm)
        row.addWidget(self.not_me_btn, 1)
        row.addWidget(self.cancel_btn, 1)
        row.addWidget(self.confirm_btn, 2)
        v.addLayout(row)
        self.tiles: dict[str, object] = {}

    def show_greeting(self, g: Greeting, by_face: bool) -> None:
        self.title.setText(g.title)
        if g.subsidy_fen:
            self.subsidy.setText(f"{g.tier}　今日补贴 {fen_to_yuan(g.subsidy_fen)} 元")
        else:
            self.subsidy.setText(f"今日无补贴：{g.subsidy_reason}")
        self.month.setText(f"本月补贴还剩 {fen_to_yuan(g.month_left_fen)} 元　　账户余额 {fen_to_yuan(g.balance_fen)} 元"
                           if g.month_left_fen is not None else f"账户余额 {fen_to_yuan(g.balance_fen)} 元")
        self.not_me_btn.setVisible(by_face)
        self.error.setText("")
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w:
                w.deleteLater()
        self.tiles = {}
        for i, m in enumerate(g.menu):
            b = big_button("", checkable=True)
            b.setMinimumHeight(140)
            b.setEnabled(m.excluded is None)
            b.setChecked(m.recommended and m.excluded is None)
            b.setProperty("base", f"{m.name}  {fen_to_yuan(m.price_fen)}元")
            b.setProperty("note", f"不宜：{m.excluded}" if m.excluded else
                          (f"推荐：{m.reason}" if m.recommended and m.reason else ""))
            b.setToolTip(m.reason or m.excluded or "")
            self._label_tile(b)
            b.toggled.connect(lambda _=False, b=b: (self._label_tile(b), self.changed.emit()))
            self.tiles[m.dish_id] = b
            self.grid.addWidget(b, i // 2, i % 2)
        self.pay_buttons["balance"].setEnabled(True)
        self.pay_buttons["cash"].setChecked(True)

    @staticmethod
    def _label_tile(b) -> None:
        """A chosen dish shows ✓ as well as its colour (colour is never the only signal)."""
        note = b.property("note") or ""
        if len(note) > 13:
            note = note[:12] + "…"
        mark = "✓ " if b.isChecked() else ""
        b.setText(f"{mark}{b.property('base')}" + (f"\n{note}" if note else ""))

    def selected(self) -> list[str]:
        return [d for d, b in self.tiles.items() if b.isChecked()]

    def pay_method(self) -> str:
        return next(k for k, b in self.pay_buttons.items() if b.isChecked())

    def show_bill(self, b: Bill) -> None:
        if b.total_fen == 0:
            self.sum.setText("请选择菜品")
            self.to_pay.setText("")
            self.sum_reason.setText("")
            self.confirm_btn.setEnabled(False)
            return
        self.sum.setText(f"合计 {fen_to_yuan(b.total_fen)} − 补贴 {fen_to_yuan(b.subsidy_fen)} =")
        self.to_pay.setText(f"应付 {fen_to_yuan(b.to_pay_fen)} 元")
        self.sum_reason.setText(b.reason)
        self.confirm_btn.setEnabled(True)


class ReceiptPage(QWidget):
    done = Signal()

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.title = label("", "title")
        v.addWidget(self.title)
        self.lines = label("")
        self.lines.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        v.addWidget(self.lines, 1)
        self.subsidy = label("", "title")
        v.addWidget(self.subsidy)
        self.paid = label("", "key")
        v.addWidget(self.paid)
        self.balance = label("")
        v.addWidget(self.balance)
        self.done_btn = big_button("完成", "primary")
        self.done_btn.clicked.connect(self.done)
        v.addWidget(self.done_btn)

    def show_receipt(self, r) -> None:
        self.title.setText(f"✓ 结算成功　{r.resident_name}　{r.meal}")
        self.lines.setText("\n".join(f"{ln['name']} × {ln['quantity']}　{fen_to_yuan(ln['price_fen'] * ln['quantity'])} 元"
                                     for ln in r.lines) + f"\n合计 {fen_to_yuan(r.total_fen)} 元")
        self.subsidy.setText(f"政府补贴 {fen_to_yuan(r.subsidy_fen)} 元" if r.subsidy_fen else f"本餐无补贴：{r.reason}")
        self.paid.setText(f"实付 {fen_to_yuan(r.to_pay_fen)} 元（{PAY_LABELS.get(r.pay_method, r.pay_method)}）")
        self.balance.setText(f"账户余额 {fen_to_yuan(r.balance_after_fen)} 元")


class NoFacePage(QWidget):
    card = Signal(str)
    phone = Signal(str)
    chosen = Signal(str)
    back = Signal()
    staff = Signal()

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.prompt = label("请刷助老卡，或输入卡号 / 手机号后四位", "title")
        v.addWidget(self.prompt)
        mode_row = QHBoxLayout()
        self.card_mode = big_button("助老卡号", checkable=True)
        self.phone_mode = big_button("手机尾号", checkable=True)
        grp = QButtonGroup(self)
        grp.addButton(self.card_mode)
        grp.addButton(self.phone_mode)
        self.card_mode.setChecked(True)
        mode_row.addWidget(self.card_mode)
        mode_row.addWidget(self.phone_mode)
        v.addLayout(mode_row)
        self.entry = QLineEdit()
        self.entry.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.entry.returnPressed.connect(self._submit)   # a USB card reader types the number and Enter
        v.addWidget(self.entry)
        self.error = label("", "error")
        v.addWidget(self.error)
        self.names = QListWidget()
        self.names.setVisible(False)
        self.names.itemClicked.connect(lambda it: self.chosen.emit(it.data(Qt.ItemDataRole.UserRole)))
        v.addWidget(self.names)
        self.keypad = Keypad()
        self.keypad.digit.connect(lambda d: self.entry.setText(self.entry.text() + d))
        self.keypad.cleared.connect(self.entry.clear)
        self.keypad.entered.connect(self._submit)
        v.addWidget(self.keypad, 1)
        row = QHBoxLayout()
        self.back_btn = big_button("返回")
        self.back_btn.clicked.connect(self.back)
        self.staff_btn = big_button("找工作人员")
        self.staff_btn.clicked.connect(self.staff)
        row.addWidget(self.back_btn)
        row.addWidget(self.staff_btn)
        v.addLayout(row)

    def reset(self, prompt: str | None = None) -> None:
        self.entry.clear()
        self.error.setText("")
        self.names.clear()
        self.names.setVisible(False)
        self.card_mode.setChecked(True)
        if prompt:
            self.prompt.setText(prompt)
        self.entry.setFocus()

    def _submit(self) -> None:
        text = self.entry.text().strip()
        if not text:
            return
        (self.phone if self.phone_mode.isChecked() else self.card).emit(text)

    def show_names(self, cards) -> None:
        self.names.clear()
        for c in cards:
            it = QListWidgetItem(f"{c.name}　{c.honorific}")
            it.setData(Qt.ItemDataRole.UserRole, c.resident_id)
            it.setSizeHint(QSize(400, 110))
            self.names.addItem(it)
        self.names.setVisible(bool(cards))
