"""Staff and admin screens, behind a PIN: enrol, top up, void an order, erase face data,
imports, today's orders and their export. Labels sit above their fields, an on-screen
keyboard types into the field in use, and void and erase ask for confirmation first.
The page draws and emits intents; ``controllers.staff`` runs them through the services."""
from __future__ import annotations


from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QGridLayout, QSizePolicy, QHBoxLayout, QHeaderView, QLineEdit, QListWidget,
                               QPushButton, QScrollArea, QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from kiosk.money import yuan
from kiosk.terminal.checkout_flow import PAY_LABELS
from kiosk.ui.widgets import STAFF_KEYS, CameraView, CheckButton, Keypad, Page, TypingKeyboard, big_button, field, flip_box, label

VOID_REASONS = ("打错菜", "重复结算", "居民取消", "认错人")
PAYERS = ("本人", "子女", "亲属", "社区")
SECTIONS = (("enrol", "采集人脸"), ("topup", "充值"), ("void", "作废订单"), ("erase", "删除人脸"),
            ("admin", "管理"), ("debug", "调试信息"))
ROLE_NAMES = {"staff": "工作人员", "supervisor": "主管", "admin": "管理员"}


def _edit(password: bool = False) -> QLineEdit:
    e = QLineEdit()
    if password:
        e.setEchoMode(QLineEdit.EchoMode.Password)
    return e


def _scroll(inner: QWidget) -> QScrollArea:
    s = QScrollArea()
    s.setWidgetResizable(True)
    s.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    s.setWidget(inner)
    return s


class _FocusWatch(QObject):
    """Shows the keyboard for whichever field is touched."""

    def __init__(self, page: "StaffPage") -> None:
        super().__init__(page)
        self.page = page

    def eventFilter(self, obj, ev):  # noqa: N802
        if ev.type() in (QEvent.Type.FocusIn, QEvent.Type.MouseButtonPress) and isinstance(obj, QLineEdit):
            self.page.type_into(obj)
        return False


class StaffPage(Page):
    login = Signal(str)
    logout = Signal()
    section = Signal(str)
    enroll_start = Signal(str, bool)          # resident id or card, consent signed now
    void_last = Signal(str)                   # reason (asks for confirmation first)
    topup = Signal(str, str, str)             # resident id or card, yuan, payer
    erase = Signal(str)                       # resident id or card (asks for confirmation first)
    confirmed = Signal()
    cancelled = Signal()
    import_file = Signal(str, str)            # kind, path
    export_today = Signal()
    export_month = Signal()
    show_orders = Signal()
    toggle_debug = Signal()
    override = Signal(str, str)               # reason, supervisor PIN

    def __init__(self) -> None:
        super().__init__()
        v = QVBoxLayout(self)
        head = QHBoxLayout()                   # who is logged in, and 退出 beside it (room for the forms)
        self.who = label("工作人员登录", "title")
        head.addWidget(self.who, 3)
        self.back_btn = big_button("退出")
        self.back_btn.clicked.connect(self.logout)
        head.addWidget(self.back_btn, 1)
        v.addLayout(head)
        self.sync = label("", "status")        # the district link: staff only
        self.sync.setVisible(False)
        v.addWidget(self.sync)
        self.message = label("", "status")     # words say whether it worked; errors start with ⚠
        v.addWidget(self.message)
        self.stack = QStackedWidget()
        v.addWidget(self.stack, 1)
        self.keyboard = TypingKeyboard(STAFF_KEYS, "key")
        self.keyboard.hide_me.connect(self.hide_keyboard)
        self.keyboard.setVisible(False)
        self._watch = _FocusWatch(self)
        self.forms: dict[str, QWidget] = {}
        self.form_buttons: dict[str, QPushButton] = {}     # each form's own button (kept in view)
        self.stack.addWidget(self._build_login())           # 0
        self.stack.addWidget(self._build_menu())            # 1
        for key, build in (("enrol", self._build_enrol), ("topup", self._build_topup), ("void", self._build_void),
                           ("erase", self._build_erase), ("admin", self._build_admin), ("debug", self._build_debug)):
            self._add_form(key, build())
        self.stack.addWidget(self._build_confirm())         # 2
        for e in self.findChildren(QLineEdit):
            if e is not self.pin:
                e.installEventFilter(self._watch)

    # -- the pages and forms, one builder each -------------------------------------------------
    def _build_login(self) -> QWidget:
        pin = QWidget()
        pv = flip_box(pin)            # the field beside the keypad on a landscape screen
        self.pin = _edit(password=True)
        self.pin.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pin.returnPressed.connect(lambda: self.login.emit(self.pin.text()))
        pin_col = QVBoxLayout()
        pin_col.addWidget(field("请输入工作人员 PIN", self.pin))
        pin_col.addStretch(1)
        pv.addLayout(pin_col, 1)
        kp = Keypad()
        kp.digit.connect(lambda d: self.pin.insert(d))
        kp.cleared.connect(self.pin.clear)
        kp.back.connect(self.pin.backspace)
        kp.entered.connect(lambda: self.login.emit(self.pin.text()))
        pv.addWidget(kp, 1)
        return pin

    def _build_menu(self) -> QWidget:
        """The tasks' buttons, and the task below them; with the keyboard open the buttons
        make room, and the keyboard sits beside the form (landscape) or below it (portrait)."""
        menu = QWidget()
        mv = QVBoxLayout(menu)
        mv.setContentsMargins(0, 0, 0, 0)
        self.section_grid = QWidget()
        grid = QGridLayout(self.section_grid)
        grid.setContentsMargins(0, 0, 0, 0)
        self.section_buttons = {}
        for i, (key, text) in enumerate(SECTIONS):
            b = big_button(text, checkable=True)
            b.setAutoExclusive(True)
            b.clicked.connect(lambda _=False, k=key: self.section.emit(k))
            self.section_buttons[key] = b
            grid.addWidget(b, i // 3, i % 3)
        mv.addWidget(self.section_grid)
        work = flip_box()
        self.sections = QStackedWidget()
        work.addWidget(self.sections, 1)
        work.addWidget(self.keyboard, 1)
        mv.addLayout(work, 1)
        return menu

    def _build_enrol(self) -> QWidget:
        f = QWidget()
        split = flip_box(f)                    # the camera beside the form in landscape, below it in portrait
        fv = QVBoxLayout()
        split.addLayout(fv, 1)
        self.rid = _edit()
        fv.addWidget(field("居民编号或助老卡号", self.rid))
        self.consent = CheckButton("居民（或监护人）已签署人脸授权书")
        fv.addWidget(self.consent)
        self.enroll_btn = big_button("开始采集")
        self.enroll_btn.clicked.connect(lambda: self.enroll_start.emit(self.rid.text().strip(), self.consent.isChecked()))
        fv.addWidget(self.enroll_btn)
        self.form_buttons["enrol"] = self.enroll_btn
        self.capture_status = label("")
        fv.addWidget(self.capture_status)
        self.override_box = QWidget()
        ov = QVBoxLayout(self.override_box)
        ov.setContentsMargins(0, 0, 0, 0)
        self.override_reason = _edit()
        ov.addWidget(field("授权理由（如：双胞胎，已核对身份证）", self.override_reason))
        self.sup_pin = _edit(password=True)
        ov.addWidget(field("主管 PIN", self.sup_pin))
        self.override_btn = big_button("主管授权登记", "danger")
        self.override_btn.clicked.connect(lambda: self.override.emit(self.override_reason.text().strip(),
                                                                     self.sup_pin.text()))
        ov.addWidget(self.override_btn)
        self.override_box.setVisible(False)
        fv.addWidget(self.override_box)
        fv.addStretch(1)
        self.camera_box = QWidget()            # out of the way while the keyboard is open
        cam = QVBoxLayout(self.camera_box)
        cam.setContentsMargins(0, 0, 0, 0)
        self.camera = CameraView()             # the live picture: the face's box, the frame to fill
        self.camera.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.camera.setFixedHeight(360)
        cam.addWidget(self.camera)
        self.quality = label("", "hint")       # 请靠近一点 / 位置合适
        self.quality.setAlignment(Qt.AlignmentFlag.AlignCenter)
        cam.addWidget(self.quality)
        cam.addStretch(1)
        split.addWidget(self.camera_box, 1)
        return f

    def _build_topup(self) -> QWidget:
        f = QWidget()
        fv = QVBoxLayout(f)
        self.topup_rid = _edit()
        fv.addWidget(field("居民编号或助老卡号", self.topup_rid))
        self.amount = _edit()
        fv.addWidget(field("充值金额（元）", self.amount))
        fv.addWidget(label("付款人", "field"))
        prow = QHBoxLayout()
        self.payer_buttons = {}
        for p in PAYERS:
            b = big_button(p, checkable=True)
            b.setAutoExclusive(True)
            self.payer_buttons[p] = b
            prow.addWidget(b)
        self.payer_buttons["本人"].setChecked(True)
        fv.addLayout(prow)
        self.topup_btn = big_button("充值", "primary")
        self.topup_btn.clicked.connect(lambda: self.topup.emit(self.topup_rid.text().strip(),
                                                               self.amount.text().strip(), self.payer()))
        fv.addWidget(self.topup_btn)
        self.form_buttons["topup"] = self.topup_btn
        fv.addStretch(1)
        return f

    def _build_void(self) -> QWidget:
        f = QWidget()
        fv = QVBoxLayout(f)
        self.last_order = label("")
        fv.addWidget(self.last_order)
        fv.addWidget(label("作废上一单，原因：", "field"))
        vr = QGridLayout()
        self.void_buttons = {}
        for i, r in enumerate(VOID_REASONS):
            b = big_button(r, "danger")
            b.clicked.connect(lambda _=False, r=r: self.void_last.emit(r))
            self.void_buttons[r] = b
            vr.addWidget(b, i // 2, i % 2)
        fv.addLayout(vr)
        fv.addStretch(1)
        return f

    def _build_erase(self) -> QWidget:
        f = QWidget()
        fv = QVBoxLayout(f)
        self.erase_rid = _edit()
        fv.addWidget(field("居民编号或助老卡号", self.erase_rid))
        self.erase_btn = big_button("删除人脸数据", "danger")
        self.erase_btn.clicked.connect(lambda: self.erase.emit(self.erase_rid.text().strip()))
        fv.addWidget(self.erase_btn)
        self.form_buttons["erase"] = self.erase_btn
        fv.addWidget(label("删除这位居民的全部人脸数据（订单和账户保留）。删除后需重新签署授权才能刷脸。"))
        fv.addStretch(1)
        return f

    def _build_admin(self) -> QWidget:
        f = QWidget()
        fv = QVBoxLayout(f)
        kind_row = QHBoxLayout()
        self.kind_buttons = {}
        for k, t in (("roster", "花名册"), ("menu", "菜单"), ("policy", "补贴政策")):
            b = big_button(t, checkable=True)
            b.setAutoExclusive(True)
            self.kind_buttons[k] = b
            kind_row.addWidget(b)
        self.kind_buttons["menu"].setChecked(True)
        fv.addLayout(kind_row)
        self.path = _edit()
        fv.addWidget(field("文件路径（CSV / Excel / YAML）", self.path))
        self.import_btn = big_button("导入")
        self.import_btn.clicked.connect(lambda: self.import_file.emit(self.kind(), self.path.text().strip()))
        fv.addWidget(self.import_btn)
        self.form_buttons["admin"] = self.import_btn
        self.report = QListWidget()
        self.report.setWordWrap(True)
        self.report.setMinimumHeight(160)
        fv.addWidget(self.report)
        self.totals = label("")
        fv.addWidget(self.totals)
        self.orders = QTableWidget(0, 6)
        self.orders.setHorizontalHeaderLabels(["时间", "姓名", "餐次", "合计", "补贴", "实付"])
        self.orders.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.orders.setMinimumHeight(260)
        fv.addWidget(self.orders)
        ex_row = QGridLayout()
        self.export_btn = big_button("导出今日订单")
        self.export_btn.clicked.connect(self.export_today)
        self.month_btn = big_button("导出本月补贴表")
        self.month_btn.clicked.connect(self.export_month)
        ex_row.addWidget(self.export_btn, 0, 0)
        ex_row.addWidget(self.month_btn, 0, 1)
        fv.addLayout(ex_row)
        return f

    def _build_debug(self) -> QWidget:
        f = QWidget()
        fv = QVBoxLayout(f)
        fv.addWidget(label("帧率和各步耗时显示在屏幕左上角。"))
        self.debug_btn = big_button("显示 / 隐藏调试信息")
        self.debug_btn.clicked.connect(self.toggle_debug)
        fv.addWidget(self.debug_btn)
        fv.addStretch(1)
        return f

    def _build_confirm(self) -> QWidget:
        """Void and erase are confirmed first."""
        c = QWidget()
        cv = QVBoxLayout(c)
        self.confirm_text = label("", "title")
        cv.addWidget(self.confirm_text)
        cv.addStretch(1)
        self.confirm_btn = big_button("确认", "danger")
        self.confirm_btn.clicked.connect(self.confirmed)
        self.cancel_btn = big_button("取消", "primary")
        self.cancel_btn.clicked.connect(self.cancelled)
        cv.addWidget(self.confirm_btn)
        cv.addWidget(self.cancel_btn)
        return c

    def _add_form(self, key: str, w: QWidget) -> None:
        self.forms[key] = w
        self.sections.addWidget(_scroll(w))

    def type_into(self, edit: QLineEdit) -> None:
        """The keyboard opens for ``edit``; the tasks' buttons make room, and the field being
        typed and its form's button stay in view."""
        self.keyboard.target = edit
        self.keyboard.setVisible(True)
        self.section_grid.setVisible(False)
        self.camera_box.setVisible(False)
        area = self.sections.currentWidget()
        if isinstance(area, QScrollArea):
            QTimer.singleShot(0, lambda: self._keep_in_view(area, edit))

    def _keep_in_view(self, area: QScrollArea, edit: QLineEdit) -> None:
        key = list(self.forms)[self.sections.currentIndex()]
        button = self.form_buttons.get(key)
        if button is not None and button.isVisible():
            area.ensureWidgetVisible(button, 0, 8)
        area.ensureWidgetVisible(edit, 0, 8)           # the field first: it wins when both cannot fit

    def hide_keyboard(self) -> None:
        self.keyboard.setVisible(False)
        self.section_grid.setVisible(True)
        self.camera_box.setVisible(True)

    def show_section(self, key: str) -> None:
        self.section_buttons[key].setChecked(True)
        self.sections.setCurrentIndex(list(self.forms).index(key))
        self.hide_keyboard()

    def show_camera(self, ev) -> None:
        """Enrolment: the live camera with the face's box and the frame to fill, and the
        quality hint in words."""
        self.camera.show_frame(ev.image, ev.boxes, ev.primary, guide=True)
        self.quality.setText(ev.hint or ("位置合适，请保持" if ev.primary is not None else "请站到摄像头前"))

    def payer(self) -> str:
        return next(p for p, b in self.payer_buttons.items() if b.isChecked())

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
        self.hide_keyboard()
        self.stack.setCurrentIndex(0)

    def show_menu(self, staff: dict, last_order: dict | None) -> None:
        self.who.setText(f"{staff['name']}（{ROLE_NAMES.get(staff['role'], staff['role'])}）")
        self.section_buttons["admin"].setVisible(staff["role"] == "admin")
        self.set_last_order(last_order)
        self.stack.setCurrentIndex(1)
        self.show_section("enrol")

    @property
    def admin_btn(self):
        return self.section_buttons["admin"]

    def ask(self, text: str, action: str) -> None:
        self.confirm_text.setText(text)
        self.confirm_btn.setText(action)
        self.hide_keyboard()
        self.stack.setCurrentIndex(2)

    def back_to_menu(self) -> None:
        self.stack.setCurrentIndex(1)

    def set_last_order(self, o: dict | None) -> None:
        if o is None:
            self.last_order.setText("今天还没有订单")
        else:
            self.last_order.setText(f"上一单：{o['at']:%H:%M} {o['resident']}，合计 {yuan(o['total_fen'])} 元，"
                                    f"实付 {yuan(o['to_pay_fen'])} 元（{PAY_LABELS.get(o['pay'], o['pay'])}）")
        for b in self.void_buttons.values():
            b.setEnabled(o is not None)

    def show_sync(self, st) -> None:
        """Whether the terminal is offline, since when, and how many orders wait (staff only)."""
        if st is None:
            self.sync.setVisible(False)
            return
        pending = getattr(st, "pending", 0) or 0
        if getattr(st, "online", True):
            last = getattr(st, "last_sync", None)
            text = "联网正常" + (f"，上次同步 {last:%H:%M}" if last else "") + f"，待上传 {pending} 单"
        else:
            since = getattr(st, "offline_since", None)
            text = "⚠ 离线" + (f"（自 {since:%m月%d日 %H:%M} 起）" if since else "") + \
                f"，待上传 {pending} 单，可以继续售餐"
        self.sync.setText(text)
        self.sync.setVisible(True)

    def show_report(self, lines: list[str]) -> None:
        self.report.clear()
        self.report.addItems(lines)

    def show_orders_table(self, data: dict) -> None:
        """Every order of today; the totals count the valid ones, and the last row adds them up."""
        rows = data["orders"]
        live = [o for o in rows if not o["voided"]]
        void_note = f"（另有作废 {data['voided']} 单，不计入）" if data.get("voided") else ""
        self.totals.setText(f"{data['date']}：有效 {data['count']} 单，合计 {yuan(data['total_fen'])} 元，"
                            f"补贴 {yuan(data['subsidy_fen'])} 元，实收 {yuan(data['paid_fen'])} 元{void_note}")
        self.orders.setRowCount(len(rows) + 1)
        for i, o in enumerate(rows):
            vals = [o["time"], o["name"] + ("（已作废）" if o["voided"] else ""), o["meal"],
                    yuan(o["total_fen"]), yuan(o["subsidy_fen"]), yuan(o["to_pay_fen"])]
            for j, val in enumerate(vals):
                self.orders.setItem(i, j, QTableWidgetItem(val))
        sums = ["合计", f"{len(live)} 单", "", yuan(sum(o["total_fen"] for o in live)),
                yuan(sum(o["subsidy_fen"] for o in live)), yuan(sum(o["to_pay_fen"] for o in live))]
        for j, val in enumerate(sums):
            self.orders.setItem(len(rows), j, QTableWidgetItem(val))
