"""Big, plain widgets for elders: labelled buttons, keypads and keyboards, dish tiles,
a camera view, and ``Page``: the base of every screen, with the line that says what to
do next (the words the voice speaks are shown there, see ``KioskWindow.say``)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QBoxLayout, QGridLayout, QLabel, QLineEdit, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from kiosk.ui import theme
from kiosk.ui.wrap import breakable

HOLD_S = 3.0          # a message spoken and shown stays at least this long


def big_button(text: str, name: str | None = None, checkable: bool = False) -> QPushButton:
    b = QPushButton(text)
    if name:
        b.setObjectName(name)
    b.setCheckable(checkable)
    b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return b


class Label(QLabel):
    """A label whose Chinese never breaks inside a word (kiosk.ui.wrap): it shows the text
    with its phrases held together and returns the plain text. ``hold`` keeps a message on
    screen for a while: later texts wait until it has been seen (the newest one wins)."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self._plain = ""
        self._held_until = 0.0
        self._pending: str | None = None
        self._timer = None
        self.setText(text)

    def text(self) -> str:  # noqa: D401 - the plain text, without the joiners
        return self._plain

    def setText(self, text: str, force: bool = False) -> None:  # noqa: N802
        import time

        text = text or ""
        if not force and time.monotonic() < self._held_until:
            if text != self._plain:
                self._pending = text
            return
        self._pending = None
        self._plain = text
        super().setText(breakable(text) if self.wordWrap() else text)

    def setWordWrap(self, on: bool) -> None:  # noqa: N802
        super().setWordWrap(on)
        super().setText(breakable(self._plain) if on else self._plain)

    def hold(self, seconds: float = HOLD_S) -> None:
        """Keep the text shown now for ``seconds``; a text set meanwhile follows after."""
        import time

        from PySide6.QtCore import QTimer

        self._held_until = time.monotonic() + seconds
        if self._timer is None:
            self._timer = QTimer(self, singleShot=True, timeout=self._release)
        self._timer.start(int(seconds * 1000) + 20)

    def _release(self) -> None:
        self._held_until = 0.0
        if self._pending is not None:
            self.setText(self._pending)


def label(text: str = "", name: str | None = None, wrap: bool = True) -> Label:
    w = Label(text)
    if name:
        w.setObjectName(name)
    w.setWordWrap(wrap)
    w.setTextFormat(Qt.TextFormat.PlainText)
    w.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    return w


def field(caption: str, edit: QLineEdit) -> QWidget:
    """A caption above its field (never a placeholder only)."""
    w = QWidget()
    v = QVBoxLayout(w)
    v.setContentsMargins(0, 0, 0, 0)
    v.setSpacing(4)
    cap = label(caption, "field")
    cap.setBuddy(edit)
    v.addWidget(cap)
    v.addWidget(edit)
    w.caption = cap
    return w


class Page(QWidget):
    """A screen. ``next`` is the line saying what to do now; the window speaks what it shows there."""

    def __init__(self) -> None:
        super().__init__()
        self.next = label("", "next")
        self.next.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.landscape = False

    def set_landscape(self, on: bool) -> None:
        self.landscape = on
        for box in self.findChildren(QBoxLayout):
            if box.property("flip"):
                box.setDirection(QBoxLayout.Direction.LeftToRight if on else QBoxLayout.Direction.TopToBottom)


def flip_box(parent: QWidget | None = None) -> QBoxLayout:
    """A box laid out top-to-bottom in portrait and left-to-right in landscape."""
    box = QBoxLayout(QBoxLayout.Direction.TopToBottom, parent)
    box.setProperty("flip", True)
    return box


DIGITS = list("1234567890")
LETTER_ROWS = [list("QWERTYUIOP"), list("ASDFGHJKL"), list("ZXCVBNM")]


class Keyboard(QWidget):
    """Keys in fixed rows, the same at every screen size: the digits row 1-0 on top, then
    the letter rows (as on a phone or a computer), then the control keys. Emits ``key`` for
    characters, ``back`` (删除), ``cleared`` (清除), ``entered`` (确定), ``hide_me`` (收起).

    The grid has two half-columns per key, so a row of fewer keys sits indented as on a
    real keyboard; a control key is two keys wide and the last one (确定) takes the rest of
    its row: easy to find, easy to hit."""

    key = Signal(str)
    back = Signal()
    cleared = Signal()
    entered = Signal()
    hide_me = Signal()

    SPECIAL = {"删除": "back", "清除": "cleared", "确定": "entered", "收起": "hide_me"}
    WIDTH = 10          # keys in the widest row

    def __init__(self, rows: list[list[str]], name: str = "elderkey", parent=None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setHorizontalSpacing(4)      # between half-columns too: keep it small, keys stay wide
        self.grid.setVerticalSpacing(6)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.layout_rows = [list(r) for r in rows]
        self.keys = [k for r in rows for k in r]
        self.buttons: dict[str, QPushButton] = {}
        half = 2 * self.WIDTH
        for c in range(half):
            self.grid.setColumnStretch(c, 1)
        for r, row in enumerate(self.layout_rows):
            special = all(k in self.SPECIAL for k in row)
            span = 4 if special else 2
            col = 0 if special else self.WIDTH - len(row)       # shorter rows indented, centred
            for i, k in enumerate(row):
                b = big_button(k, "primary" if k == "确定" else
                               ("elderctl" if name == "elderkey" and k in self.SPECIAL else name))
                b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
                b.clicked.connect(lambda _=False, k=k: self._press(k))
                self.buttons[k] = b
                width = half - col if special and i == len(row) - 1 else span
                self.grid.addWidget(b, r, col, 1, width)
                col += width

    def rows(self) -> int:
        return len(self.layout_rows)

    def _press(self, k: str) -> None:
        sig = self.SPECIAL.get(k)
        if sig:
            getattr(self, sig).emit()
        else:
            self.key.emit(k)


class Keypad(Keyboard):
    """Digits in the same row as on the card keyboard (1-0), then 删除, 清除 and 确定; a USB
    card reader that types and presses Enter works too."""

    digit = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__([DIGITS, ["删除", "清除", "确定"]], "elderkey", parent)
        self.key.connect(self.digit)


CARD_KEYS = [DIGITS, *LETTER_ROWS, ["删除", "清除", "确定"]]
STAFF_KEYS = [DIGITS, *LETTER_ROWS[:2], LETTER_ROWS[2] + [".", "-"], ["删除", "清除", "收起"]]


class TypingKeyboard(Keyboard):
    """Types into a line edit: the card keyboard for elders, the staff keyboard."""

    def __init__(self, rows: list[list[str]], name: str = "elderkey", parent=None) -> None:
        super().__init__(rows, name, parent)
        self.target: QLineEdit | None = None
        self.key.connect(lambda k: self.target and self.target.insert(k))
        self.back.connect(lambda: self.target and self.target.backspace())
        self.cleared.connect(lambda: self.target and self.target.clear())


class CheckButton(QPushButton):
    """A yes/no choice as a big button with ☐ / ☑ before its words (a check box's tiny,
    faint square is hard to see and to hit); ``isChecked`` and ``setChecked`` as usual."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.base = text
        self.setCheckable(True)
        self.setObjectName("check")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.toggled.connect(self._mark)
        self._mark(False)

    def _mark(self, on: bool) -> None:
        self.setText(("☑ " if on else "☐ ") + self.base)


class DishTile(QPushButton):
    """A dish: name and price on the first line, why (or why not) below, wrapped, never cut."""

    def __init__(self, dish_id: str, name: str, price: str, note: str, enabled: bool) -> None:
        super().__init__()
        self.dish_id = dish_id
        self.setCheckable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        v = QVBoxLayout(self)
        v.setContentsMargins(16, 10, 16, 10)
        self.name = label("", "status")
        self.name.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.note = label(note)
        self.note.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.note.setVisible(bool(note))
        v.addWidget(self.name)
        v.addWidget(self.note)
        self.base = f"{name}　{price}"
        self.setEnabled(enabled)
        self.toggled.connect(self._mark)
        self._mark(False)

    def _mark(self, on: bool) -> None:
        """A chosen dish shows ✓ as well as its colour (colour is never the only signal)."""
        self.name.setText(("✓ " if on else "") + self.base)

    def text(self) -> str:  # noqa: D401 - what the tile says, for tests and screen readers
        return self.name.text() + ("\n" + self.note.text() if self.note.text() else "")

    def sizeHint(self):  # noqa: N802
        return self.layout().sizeHint()

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, w: int) -> int:  # noqa: N802
        return self.layout().totalHeightForWidth(w)


def to_qimage(img: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class CameraView(QLabel):
    """The live picture with the face box drawn on it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setText("摄像头准备中…")

    def show_frame(self, img: np.ndarray, boxes, primary, guide: bool = False) -> None:
        """The picture, every face's box (the customer's thick, in green), and with ``guide``
        the frame where the face should be (enrolment)."""
        qimg = to_qimage(img)
        p = QPainter(qimg)
        if guide:
            h, w = img.shape[:2]
            pen = QPen(QColor(theme.ACCENT))
            pen.setWidth(4)
            pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            gw, gh = int(w * 0.36), int(h * 0.62)
            p.drawEllipse((w - gw) // 2, (h - gh) // 2, gw, gh)
        for b in boxes:
            is_primary = primary is not None and tuple(b) == tuple(primary)
            pen = QPen(QColor(theme.OK if is_primary else theme.MUTED))
            pen.setWidth(6 if is_primary else 3)
            p.setPen(pen)
            p.drawRect(int(b[0]), int(b[1]), int(b[2]), int(b[3]))
        p.end()
        self._image = qimg
        self._fit()

    def _fit(self) -> None:
        img = getattr(self, "_image", None)
        if img is not None:
            self.setPixmap(QPixmap.fromImage(img).scaled(self.width(), self.height(), Qt.AspectRatioMode.KeepAspectRatio,
                                                         Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, e) -> None:  # noqa: N802 - the newest picture fills the new size
        super().resizeEvent(e)
        self._fit()
