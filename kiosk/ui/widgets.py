"""Big, plain widgets for elders: labelled buttons, a keypad, a camera view."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QSizePolicy, QWidget

from . import theme


def big_button(text: str, name: str | None = None, checkable: bool = False) -> QPushButton:
    b = QPushButton(text)
    if name:
        b.setObjectName(name)
    b.setCheckable(checkable)
    b.setMinimumSize(theme.BUTTON_MIN, theme.BUTTON_MIN)
    b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return b


def label(text: str = "", name: str | None = None, wrap: bool = True) -> QLabel:
    w = QLabel(text)
    if name:
        w.setObjectName(name)
    w.setWordWrap(wrap)
    return w


class Keypad(QWidget):
    """A numeric keypad with 清除 and 确定; a USB card reader that types digits
    and Enter works too (the line edit takes keyboard input)."""

    digit = Signal(str)
    cleared = Signal()
    entered = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        g = QGridLayout(self)
        g.setSpacing(12)
        self.buttons: dict[str, QPushButton] = {}
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "清除", "0", "确定"]
        for i, k in enumerate(keys):
            b = big_button(k, "primary" if k == "确定" else None)
            b.clicked.connect(lambda _=False, k=k: self._press(k))
            self.buttons[k] = b
            g.addWidget(b, i // 3, i % 3)

    def _press(self, k: str) -> None:
        if k == "清除":
            self.cleared.emit()
        elif k == "确定":
            self.entered.emit()
        else:
            self.digit.emit(k)


def to_qimage(img: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class CameraView(QLabel):
    """The live picture with the face box drawn on it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(480, 360)
        self.setText("摄像头准备中…")

    def show_frame(self, img: np.ndarray, boxes, primary) -> None:
        qimg = to_qimage(img)
        p = QPainter(qimg)
        for b in boxes:
            is_primary = primary is not None and tuple(b) == tuple(primary)
            pen = QPen(QColor(theme.OK if is_primary else theme.MUTED))
            pen.setWidth(6 if is_primary else 3)
            p.setPen(pen)
            p.drawRect(int(b[0]), int(b[1]), int(b[2]), int(b[3]))
        p.end()
        pm = QPixmap.fromImage(qimg).scaled(self.width(), self.height(), Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.SmoothTransformation)
        self.setPixmap(pm)
