"""The elder's screens. Pages only draw and emit intents; the controllers decide what
happens next and call the services. Each page has one decision and a ``next`` line
saying what to do now (the words the voice speaks)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLineEdit, QProgressBar, QScrollArea, QStackedWidget,
                               QVBoxLayout, QWidget)

from kiosk.money import yuan
from kiosk.terminal.checkout_flow import PAY_LABELS, Bill, Greeting
from kiosk.ui.widgets import CARD_KEYS, CameraView, DishTile, Keypad, Page, TypingKeyboard, big_button, flip_box, label


def _clear(grid) -> None:
    while grid.count():
        w = grid.takeAt(0).widget()
        if w:
            w.deleteLater()


class IdlePage(Page):
    """The start screen. There is no staff button for elders to guess at: staff hold the
    top-left corner (``KioskWindow.staff_gesture``)."""

    no_face = Signal()

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.canteen = label("", "title")
        self.canteen.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.canteen)
        body = flip_box()
        self.camera = CameraView()
        body.addWidget(self.camera, 3)
        side = QVBoxLayout()
        self.prompt = self.next            # the request of the moment: 请看屏幕 / 请慢慢向左转头
        side.addWidget(self.prompt)
        self.progress = QProgressBar()     # the head turn: the yaw reached against the yaw needed
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)   # the words are below, never on the fill
        self.progress.setVisible(False)
        side.addWidget(self.progress)
        self.turned = label("", "status")    # 再转一点 / ✓ 转够了
        self.turned.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.turned.setVisible(False)
        side.addWidget(self.turned)
        self.hint = label("", "hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        side.addWidget(self.hint)
        side.addStretch(1)
        self.no_face_btn = big_button("不刷脸，用助老卡或手机号")
        self.no_face_btn.clicked.connect(self.no_face)
        side.addWidget(self.no_face_btn)
        body.addLayout(side, 2)
        v.addLayout(body, 1)

    def show_challenge(self, progress: float) -> None:
        """How far the head has turned, against how far it must: no clock counting down."""
        self.progress.setVisible(True)
        self.turned.setVisible(True)
        self.progress.setValue(int(round(min(1.0, progress) * 100)))
        self.turned.setText("✓ 转够了，请转回来" if progress >= 1.0 else
                            ("再转一点" if progress >= 0.5 else "慢慢转过去"))

    def end_challenge(self) -> None:
        self.progress.setVisible(False)
        self.turned.setVisible(False)


class BillPage(Page):
    """One decision: 确认 this meal. 确认 is the one large button, well apart (>= 48 px) from
    the smaller secondary actions in their own row (换菜, 换付款方式, 不是我, 不吃了); changing
    dishes or the payment are screens of their own. The dishes are in large type."""

    confirm = Signal()
    change_dishes = Signal()
    change_pay = Signal()
    not_me = Signal()
    cancel = Signal()

    GAP = 64     # between 确认 and any other button (rule: >= 48 px)

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.title = label("", "title")
        v.addWidget(self.title)
        body = flip_box()
        body.setSpacing(24)
        left = QVBoxLayout()
        self.lines = label("", "dishes")    # the dishes, in large type
        self.lines.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        left.addWidget(self.lines)
        self.why = label("")            # the recommendation in one line
        left.addWidget(self.why)
        left.addStretch(1)
        body.addLayout(left, 1)
        right = QVBoxLayout()
        self.subsidy = label("", "key")     # 政府补贴 6 元
        right.addWidget(self.subsidy)
        self.to_pay = label("", "pay")      # 应付 12 元: the largest figure
        right.addWidget(self.to_pay)
        self.pay_line = label("", "status")  # 付款方式：✓ 现金
        right.addWidget(self.pay_line)
        self.error = label("", "error")
        right.addWidget(self.error)
        right.addWidget(self.next)
        right.addStretch(1)
        self.confirm_btn = big_button("确认", "confirm")
        self.confirm_btn.clicked.connect(self.confirm)
        right.addWidget(self.confirm_btn)
        body.addLayout(right, 1)
        v.addLayout(body, 1)
        v.addSpacing(self.GAP)
        row = QHBoxLayout()
        row.setSpacing(32)
        self.change_btn = big_button("换菜", "secondary")
        self.change_btn.clicked.connect(self.change_dishes)
        self.pay_btn = big_button("换付款方式", "secondary")
        self.pay_btn.clicked.connect(self.change_pay)
        self.not_me_btn = big_button("不是我", "danger")
        self.not_me_btn.clicked.connect(self.not_me)
        self.cancel_btn = big_button("不吃了", "secondary")
        self.cancel_btn.clicked.connect(self.cancel)
        for b in (self.change_btn, self.pay_btn, self.not_me_btn, self.cancel_btn):
            row.addWidget(b)
        v.addLayout(row)

    def set_landscape(self, on: bool) -> None:
        super().set_landscape(on)
        # portrait has the height: the dishes take it, in the subsidy's type size
        self.lines.setObjectName("dishes" if on else "dishes_tall")
        self.lines.style().unpolish(self.lines)
        self.lines.style().polish(self.lines)

    def show_greeting(self, g: Greeting, by_face: bool) -> None:
        self.title.setText(g.title)
        self.subsidy.setText(g.subsidy_text)
        self.why.setText(g.why)
        self.not_me_btn.setVisible(by_face)
        self.error.setText("")
        self.lines.setText("")
        self.to_pay.setText("")
        self.pay_line.setText("")
        self.confirm_btn.setEnabled(False)       # until the bill is priced

    def show_bill(self, b: Bill, pay: str) -> None:
        if b.total_fen == 0:
            self.lines.setText("还没有选菜")
            self.subsidy.setText("")
            self.to_pay.setText("")
            self.pay_line.setText("")
            self.confirm_btn.setEnabled(False)
            return
        self.lines.setText("\n".join(f"{name}{'' if q == 1 else f' ×{q}'}　{yuan(amount)} 元"
                                     for name, q, amount in b.lines) + f"\n合计 {yuan(b.total_fen)} 元")
        self.subsidy.setText(b.subsidy_text)
        self.to_pay.setText(f"应付 {yuan(b.to_pay_fen)} 元")
        bal = "" if b.balance_fen is None else f"（余额 {yuan(b.balance_fen)} 元）"
        self.pay_line.setText(f"付款方式：✓ {PAY_LABELS[pay]}" + (bal if pay == "balance" else ""))
        self.confirm_btn.setEnabled(True)

    def settling(self, on: bool) -> None:
        """While the order is settled: the line says so, 确认 cannot be tapped again."""
        self.confirm_btn.setEnabled(not on)
        if on:
            self.next.setText("正在结算，请稍候", force=True)


class SecondMealPage(Page):
    """The elder already has an order for this meal today: say when, where and how much,
    and open a second bill only when the elder chooses 再买一份 here."""

    again = Signal()
    leave = Signal()

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.title = label("", "title")
        v.addWidget(self.title)
        self.headline = label("", "key")        # 您今天已经买过午餐了
        v.addWidget(self.headline)
        self.detail = label("", "dishes_tall")  # 时间 12:05 / 地点 玉林社区长寿食堂 / 实付 3 元
        v.addWidget(self.detail)
        v.addWidget(self.next)
        v.addStretch(1)
        self.leave_btn = big_button("不买了", "primary")
        self.leave_btn.clicked.connect(self.leave)
        v.addWidget(self.leave_btn)
        v.addSpacing(96)                        # the two choices well apart
        self.again_btn = big_button("再买一份")
        self.again_btn.clicked.connect(self.again)
        v.addWidget(self.again_btn)

    def show_earlier(self, title: str, e) -> None:
        self.title.setText(title)
        self.headline.setText(f"您今天已经买过{e.meal}了")
        where = "本食堂" if e.here else e.canteen_name
        more = f"（今天{e.meal}共 {e.count} 单）" if e.count > 1 else ""
        self.detail.setText(f"时间　{e.at:%H:%M}\n地点　{where}\n实付　{yuan(e.to_pay_fen)} 元{more}")


class MenuPage(Page):
    """Choosing dishes: tap a dish to choose it, tap again to leave it out."""

    changed = Signal()
    done = Signal()

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.title = label("点一下选菜，再点一下不要", "title")
        v.addWidget(self.title)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.scroll.setWidget(self.grid_host)
        v.addWidget(self.scroll, 1)
        self.to_pay = label("", "key")
        v.addWidget(self.to_pay)
        v.addWidget(self.next)
        self.done_btn = big_button("选好了", "primary")
        self.done_btn.clicked.connect(self.done)
        v.addWidget(self.done_btn)
        self.tiles: dict[str, DishTile] = {}
        self.columns = 2

    def show_menu(self, g: Greeting, preselect: bool = True) -> None:
        _clear(self.grid)
        self.tiles = {}
        for m in g.menu:
            note = (f"不宜：{m.excluded}" if m.excluded else (f"推荐：{m.reason}" if m.recommended and m.reason else
                    ("套餐，一份就够" if m.set_meal else "")))
            t = DishTile(m.dish_id, m.name, f"{yuan(m.price_fen)} 元", note, m.excluded is None)
            t.setChecked(preselect and m.recommended and m.excluded is None)
            t.toggled.connect(lambda _=False: self.changed.emit())
            self.tiles[m.dish_id] = t
        self._place()

    def set_columns(self, n: int) -> None:
        if n != self.columns:
            self.columns = n
            self._place()

    def _place(self) -> None:
        for t in self.tiles.values():
            self.grid.removeWidget(t)
        for i, t in enumerate(self.tiles.values()):
            self.grid.addWidget(t, i // self.columns, i % self.columns)

    def selected(self) -> list[str]:
        return [d for d, b in self.tiles.items() if b.isChecked()]


class PayPage(Page):
    """One decision: how to pay. Never changed without the elder choosing it; the method in
    use shows ✓."""

    chosen = Signal(str)          # balance | cash | card
    staff_topup = Signal()
    back = Signal()

    NAMES = {"cash": "付现金", "balance": "用账户余额付", "card": "刷银行卡"}

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.title = label("换付款方式", "title")
        v.addWidget(self.title)
        self.to_pay = label("", "pay")
        v.addWidget(self.to_pay)
        self.balance = label("", "status")
        v.addWidget(self.balance)
        v.addWidget(self.next)
        v.addStretch(1)
        self.buttons = {}
        choices = flip_box()                 # a column in portrait, a row in landscape
        choices.setSpacing(16)
        for key in ("cash", "balance", "card"):
            b = big_button(self.NAMES[key], checkable=True)
            b.setAutoExclusive(True)
            b.clicked.connect(lambda _=False, k=key: self.chosen.emit(k))
            self.buttons[key] = b
            choices.addWidget(b)
        v.addLayout(choices)
        v.addSpacing(48)
        others = flip_box()
        others.setSpacing(16)
        self.topup_btn = big_button("请工作人员帮我充值", "secondary")
        self.topup_btn.clicked.connect(self.staff_topup)
        others.addWidget(self.topup_btn)
        self.back_btn = big_button("回到账单", "secondary")
        self.back_btn.clicked.connect(self.back)
        others.addWidget(self.back_btn)
        v.addLayout(others)

    def show_choices(self, b: Bill, short: bool, current: str = "cash") -> None:
        self.title.setText("余额不够付这一餐" if short else "换付款方式")
        self.to_pay.setText(f"应付 {yuan(b.to_pay_fen)} 元")
        self.balance.setText("" if b.balance_fen is None else f"账户余额 {yuan(b.balance_fen)} 元")
        # the balance in use but short: still shown, with its ✓, and not to be chosen
        self.buttons["balance"].setVisible(b.enough_balance() or current == "balance")
        self.buttons["balance"].setEnabled(b.enough_balance())
        for key, btn in self.buttons.items():          # the method in use: ✓ as well as the colour
            btn.setChecked(key == current)
            btn.setText(("✓ 现在：" if key == current else "") + self.NAMES[key]
                        + ("（余额不够）" if key == "balance" and not b.enough_balance() else ""))


class ReceiptPage(Page):
    done = Signal()
    answered = Signal(bool)        # "明天还来吃午饭吗？": 来 (True) / 不来 (False)

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.title = label("", "title")
        v.addWidget(self.title)
        body = flip_box()
        self.lines = label("")
        self.lines.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        body.addWidget(self.lines, 1)
        right = QVBoxLayout()
        self.subsidy = label("", "key")
        right.addWidget(self.subsidy)
        self.paid = label("", "pay")
        right.addWidget(self.paid)
        self.balance = label("", "status")
        right.addWidget(self.balance)
        right.addStretch(1)
        body.addLayout(right, 1)
        v.addLayout(body, 1)
        # the one question after a checkout (tomorrow's same meal); it goes away by itself
        self.ask_box = QWidget()
        ask = QVBoxLayout(self.ask_box)
        ask.setContentsMargins(0, 0, 0, 0)
        self.ask_line = label("", "key")
        ask.addWidget(self.ask_line)
        answers = QHBoxLayout()
        self.yes_btn = big_button("来", "primary")
        self.no_btn = big_button("不来")
        self.yes_btn.clicked.connect(lambda: self.answered.emit(True))
        self.no_btn.clicked.connect(lambda: self.answered.emit(False))
        answers.addWidget(self.yes_btn)
        answers.addWidget(self.no_btn)
        ask.addLayout(answers)
        self.ask_box.setVisible(False)
        v.addWidget(self.ask_box)
        v.addWidget(self.next)
        self.done_btn = big_button("好的", "primary")
        self.done_btn.clicked.connect(self.done)
        v.addWidget(self.done_btn)

    def ask(self, question: str) -> None:
        self.ask_line.setText(question)
        self.yes_btn.setVisible(True)
        self.no_btn.setVisible(True)
        self.ask_box.setVisible(True)

    def answered_with(self, text: str) -> None:
        """The answer is taken: the buttons go, the line says what was recorded."""
        self.yes_btn.setVisible(False)
        self.no_btn.setVisible(False)
        self.ask_line.setText(text)

    def hide_question(self) -> None:
        self.ask_box.setVisible(False)

    def show_receipt(self, r, subsidy_line: str) -> None:
        self.title.setText(f"✓ 结算成功　{r.resident_name}　{r.meal}")
        self.lines.setText("\n".join(f"{ln['name']}{'' if ln['quantity'] == 1 else ' ×' + str(ln['quantity'])}　"
                                     f"{yuan(ln['price_fen'] * ln['quantity'])} 元" for ln in r.lines)
                           + f"\n合计 {yuan(r.total_fen)} 元")
        self.subsidy.setText(subsidy_line)
        self.paid.setText(f"实付 {yuan(r.to_pay_fen)} 元")
        how = PAY_LABELS.get(r.pay_method, "其他")
        self.balance.setText(f"付款方式：{how}" + (f"　账户余额 {yuan(r.balance_after_fen)} 元"
                                                  if r.pay_method == "balance" else ""))


class NoFacePage(Page):
    """Without the face: a 助老卡 number (letters and digits), or the phone's last four
    digits and then a name from a list of big buttons."""

    card = Signal(str)
    phone = Signal(str)
    chosen = Signal(str)
    back = Signal()
    call_staff = Signal()
    mode_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        self.prompt = self.next
        v.addWidget(self.prompt)
        body = flip_box()
        left = QVBoxLayout()
        mode_row = QHBoxLayout()
        self.card_mode = big_button("助老卡号", checkable=True)
        self.phone_mode = big_button("手机尾号", checkable=True)
        self.card_mode.setAutoExclusive(True)
        self.phone_mode.setAutoExclusive(True)
        self.card_mode.setChecked(True)
        self.card_mode.clicked.connect(lambda: self.set_mode("card"))
        self.phone_mode.clicked.connect(lambda: self.set_mode("phone"))
        mode_row.addWidget(self.card_mode)
        mode_row.addWidget(self.phone_mode)
        left.addLayout(mode_row)
        self.entry_caption = label("助老卡号", "field")
        left.addWidget(self.entry_caption)
        self.entry = QLineEdit()
        self.entry.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.entry.returnPressed.connect(self._submit)   # a USB card reader types the number and Enter
        left.addWidget(self.entry)
        self.error = label("", "error")
        left.addWidget(self.error)
        self.call = label("", "call")          # 已呼叫工作人员: visible to everyone at the counter
        self.call.setVisible(False)
        left.addWidget(self.call)
        left.addStretch(1)
        body.addLayout(left, 1)
        self.keys = QStackedWidget()
        self.cardkeys = TypingKeyboard(CARD_KEYS)
        self.cardkeys.target = self.entry
        self.cardkeys.entered.connect(self._submit)
        self.keypad = Keypad()
        self.keypad.target = self.entry
        self.keypad.digit.connect(lambda d: self.entry.insert(d))
        self.keypad.cleared.connect(self.entry.clear)
        self.keypad.back.connect(self.entry.backspace)
        self.keypad.entered.connect(self._submit)
        self.names_host = QWidget()
        self.names = QGridLayout(self.names_host)
        self.names.setSpacing(12)
        self.keys.addWidget(self.cardkeys)
        self.keys.addWidget(self.keypad)
        self.keys.addWidget(self.names_host)
        body.addWidget(self.keys, 2)
        v.addLayout(body, 1)
        row = QHBoxLayout()
        self.back_btn = big_button("返回")
        self.back_btn.clicked.connect(self.back)
        self.staff_btn = big_button("找工作人员", "danger")
        self.staff_btn.clicked.connect(self.call_staff)
        row.addWidget(self.back_btn)
        row.addWidget(self.staff_btn)
        v.addLayout(row)
        self.name_buttons: list = []

    def mode(self) -> str:
        return "phone" if self.phone_mode.isChecked() else "card"

    def set_mode(self, mode: str) -> None:
        (self.phone_mode if mode == "phone" else self.card_mode).setChecked(True)
        self.entry.clear()
        self.error.setText("")
        self.entry_caption.setText("手机号后四位" if mode == "phone" else "助老卡号")
        self.keys.setCurrentWidget(self.keypad if mode == "phone" else self.cardkeys)
        self.mode_changed.emit(mode)

    def reset(self, mode: str = "card") -> None:
        self.call.setVisible(False)
        _clear(self.names)                  # the last elder's names are not the next one's
        self.name_buttons = []
        self.set_mode(mode)
        self.entry.setFocus()

    def _submit(self) -> None:
        text = self.entry.text().strip()
        if not text:
            return
        (self.phone if self.mode() == "phone" else self.card).emit(text)

    def show_names(self, cards, columns: int = 1) -> None:
        _clear(self.names)
        self.name_buttons = []
        for i, c in enumerate(cards):
            b = big_button(f"{c.name}　{c.honorific}".strip(), "name")
            b.clicked.connect(lambda _=False, rid=c.resident_id: self.chosen.emit(rid))
            self.names.addWidget(b, i // columns, i % columns)
            self.name_buttons.append(b)
        self.names.setRowStretch(len(cards), 1)
        self.keys.setCurrentWidget(self.names_host)

    def show_call(self, text: str) -> None:
        self.call.setText(text)
        self.call.setVisible(True)
