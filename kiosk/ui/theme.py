"""适老化 rules in one place: type sizes, touch targets, colours with contrast >= 4.5:1.

Two densities: ``large`` for 1080-wide portrait and 1920×1080 screens, ``compact`` for
720×1280 and 1280×800. Every size stays within the rules (body >= 28 px, key figures
>= 48 px, touch targets >= 90 px); the amount to pay is the largest type on the screen."""
from __future__ import annotations

from dataclasses import dataclass

BODY_PX = 32          # body text (rule: >= 28 px)
KEY_PX = 64           # subsidy (rule: >= 48 px)
PAY_PX = 96           # the amount to pay: the single largest figure
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
PROGRESS = ACCENT     # the head-turn bar's fill on white: 6.7:1 (rule: >= 3:1 for a graphic)
CALL_BG = "#FFF1C2"   # the staff-call banner (FG on it: 16:1)
FONT_FAMILY = "WenQuanYi Micro Hei"


@dataclass(frozen=True)
class Density:
    name: str
    body: int
    title: int
    key: int
    pay: int
    button: int
    staff_key: int     # keys of the staff keyboard (staff, not elders: still >= 64 px)


LARGE = Density("large", BODY_PX, TITLE_PX, KEY_PX, PAY_PX, BUTTON_MIN, 90)
COMPACT = Density("compact", 28, 40, 52, 72, 92, 72)


def density_for(width: int, height: int) -> Density:
    return LARGE if min(width, height) >= 1000 else COMPACT


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


def elder_key(d: Density) -> int:
    """Keyboard keys for elders: >= 90 px with their 3 px border."""
    return max(84, d.button - 12)


def confirm_h(d: Density) -> int:
    """确认 on the bill: the one large button, well over the others' height."""
    return int(d.button * 1.6)


BORDER = 6     # both sides of a button's 3 px border
KEY_MIN_W = 48  # a key's content: ten keys in a row fit a 720 px portrait screen (about 63 px each there, 90+ tall)


def stylesheet(d: Density = LARGE) -> str:
    return f"""
    QWidget {{ background: {BG}; color: {FG}; font-family: "{FONT_FAMILY}"; font-size: {d.body}px; }}
    QPushButton {{ min-width: {d.button}px; min-height: {d.button}px; border: 3px solid {ACCENT};
                   border-radius: 16px; background: #FFFFFF; color: {ACCENT}; font-size: {d.body}px; padding: 4px 12px; }}
    QPushButton:checked {{ background: {TILE_ON}; color: {FG}; border: 6px solid {ACCENT}; }}
    QPushButton:disabled {{ color: {MUTED}; border: 3px dashed {MUTED}; background: #EEEEEE; }}
    QPushButton#primary {{ background: {ACCENT}; color: #FFFFFF; font-size: {d.title}px; font-weight: bold; }}
    QPushButton#primary:disabled {{ background: #EEEEEE; color: {MUTED}; border: 3px dashed {MUTED}; }}
    QPushButton#danger {{ color: {DANGER}; border-color: {DANGER}; }}
    QPushButton#confirm {{ background: {ACCENT}; color: #FFFFFF; font-size: {d.pay}px; font-weight: bold;
                           min-height: {confirm_h(d)}px; border-radius: 24px; }}
    QPushButton#confirm:disabled {{ background: #EEEEEE; color: {MUTED}; border: 3px dashed {MUTED}; }}
    QPushButton#secondary {{ font-size: {d.body}px; }}
    QPushButton#name {{ font-size: {d.title}px; font-weight: bold; color: {FG}; border: 4px solid {ACCENT}; }}
    QPushButton#key {{ min-width: {KEY_MIN_W}px; min-height: {d.staff_key}px; padding: 0px; }}
    QPushButton#elderkey {{ padding: 0px; font-size: {d.title}px; min-width: {KEY_MIN_W}px; min-height: {elder_key(d)}px; }}
    QPushButton#elderctl {{ padding: 0px; font-size: {d.body}px; min-width: {KEY_MIN_W}px; min-height: {elder_key(d)}px; }}
    QPushButton QLabel {{ background: transparent; }}
    QLabel#key {{ font-size: {d.key}px; font-weight: bold; color: {OK}; }}
    QLabel#pay {{ font-size: {d.pay}px; font-weight: bold; color: {ACCENT}; }}
    QLabel#title {{ font-size: {d.title}px; font-weight: bold; }}
    QLabel#hint {{ font-size: {d.title}px; color: {WARN}; }}
    QLabel#error {{ font-size: {d.body}px; color: {DANGER}; font-weight: bold; }}
    QLabel#dishes {{ font-size: {d.title}px; color: {FG}; }}
    QLabel#dishes_tall {{ font-size: {d.key}px; color: {FG}; }}
    QLabel#status {{ font-size: {d.body}px; font-weight: bold; color: {FG}; }}
    QLabel#next {{ font-size: {d.title}px; font-weight: bold; color: {ACCENT}; }}
    QLabel#call {{ font-size: {d.title}px; font-weight: bold; color: {FG}; background: {CALL_BG};
                   border: 4px solid {WARN}; padding: 8px; }}
    QLabel#field {{ font-size: {d.body}px; color: {MUTED}; }}
    QCheckBox {{ min-height: {d.button}px; }}
    QCheckBox::indicator {{ width: 56px; height: 56px; border: 3px solid {FG}; background: #FFFFFF; }}
    QCheckBox::indicator:checked {{ background: {ACCENT}; }}
    QPushButton#check {{ text-align: left; color: {FG}; border: 3px solid {FG}; }}
    QPushButton#check:checked {{ background: {TILE_ON}; border: 6px solid {ACCENT}; }}
    QLineEdit {{ font-size: {d.title}px; min-height: {d.button}px; border: 3px solid {MUTED}; background: #FFFFFF; }}
    QListWidget, QTableWidget {{ font-size: {d.body}px; background: #FFFFFF; }}
    QProgressBar {{ min-height: 56px; border: 3px solid {ACCENT}; border-radius: 8px; background: #FFFFFF; }}
    QProgressBar::chunk {{ background: {PROGRESS}; }}
    """
