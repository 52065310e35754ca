"""适老化 rules in one place: type sizes, touch targets, colours with contrast >= 4.5:1."""
from __future__ import annotations

BODY_PX = 32          # body text (rule: >= 28 px)
KEY_PX = 64           # subsidy, amount to pay (rule: >= 48 px)
TITLE_PX = 48
BUTTON_MIN = 110      # touch targets (rule: >= 90 x 90 px)

BG = "#FFFDF7"        # warm white
FG = "#1A1A1A"
ACCENT = "#0B5CAD"    # blue on white: 6.9:1
OK = "#1B6E20"        # green: 6.4:1 on BG, always with a ✓ or a word
WARN = "#8A4B00"      # brown-orange: 6.3:1, always with words
DANGER = "#A4161A"    # red: 7.0:1, always with words
MUTED = "#4A4A4A"
TILE_ON = "#DCEBFA"
TILE_OFF = "#FFFFFF"
FONT_FAMILY = "WenQuanYi Micro Hei"


def _lin(c: float) -> float:
    c /= 255.0
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(hex_color: str) -> float:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _lin(r) + 0.7152 * _lin(g) + 0.0722 * _lin(b)


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio."""
    a, b = luminance(fg), luminance(bg)
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


def stylesheet() -> str:
    return f"""
    QWidget {{ background: {BG}; color: {FG}; font-family: "{FONT_FAMILY}"; font-size: {BODY_PX}px; }}
    QPushButton {{ min-width: {BUTTON_MIN}px; min-height: {BUTTON_MIN}px; border: 3px solid {ACCENT};
                   border-radius: 16px; background: #FFFFFF; color: {ACCENT}; font-size: {BODY_PX}px; padding: 8px 18px; }}
    QPushButton:checked {{ background: {TILE_ON}; color: {FG}; border: 5px solid {ACCENT}; }}
    QPushButton:disabled {{ color: {MUTED}; border-color: {MUTED}; background: #EEEEEE; }}
    QPushButton#primary {{ background: {ACCENT}; color: #FFFFFF; font-size: {TITLE_PX}px; }}
    QPushButton#danger {{ color: {DANGER}; border-color: {DANGER}; }}
    QLabel#key {{ font-size: {KEY_PX}px; font-weight: bold; color: {ACCENT}; }}
    QLabel#title {{ font-size: {TITLE_PX}px; font-weight: bold; }}
    QLabel#hint {{ font-size: {TITLE_PX}px; color: {WARN}; }}
    QLabel#error {{ font-size: {BODY_PX}px; color: {DANGER}; }}
    QLabel#status {{ font-size: {BODY_PX}px; font-weight: bold; color: {FG}; }}
    QCheckBox {{ min-height: {BUTTON_MIN}px; }}
    QCheckBox::indicator {{ width: 56px; height: 56px; }}
    QLineEdit {{ font-size: {TITLE_PX}px; min-height: {BUTTON_MIN}px; border: 3px solid {MUTED}; background: #FFFFFF; }}
    QListWidget, QTableWidget {{ font-size: {BODY_PX}px; background: #FFFFFF; }}
    """
