"""PDF files of the district's reports (reportlab), with the WenQuanYi Micro Hei
font embedded so Chinese reads on any machine (install.sh installs fonts-wqy-microhei)."""
from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kiosk.errors import ConfigError
from kiosk.services.report_files import Money, TableReport

FONT_NAME = "WQYMicroHei"
KNOWN_PATHS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",)


@lru_cache(maxsize=1)
def cjk_font_path() -> Path:
    """The WenQuanYi Micro Hei file, as fontconfig knows it (fc-match), else its Debian path."""
    if shutil.which("fc-match"):
        try:
            out = subprocess.run(["fc-match", "-f", "%{file}", "WenQuanYi Micro Hei"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
            if out and "wqy-microhei" in out.lower() and Path(out).is_file():
                return Path(out)
        except (OSError, subprocess.SubprocessError):
            pass
    for p in KNOWN_PATHS:
        if Path(p).is_file():
            return Path(p)
    raise ConfigError("找不到中文字体（文泉驿微米黑），无法生成 PDF：请运行 install.sh",
                      detail="fonts-wqy-microhei is not installed (apt-get install fonts-wqy-microhei)")


@lru_cache(maxsize=1)
def register_font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont(FONT_NAME, str(cjk_font_path()), subfontIndex=0))
    return FONT_NAME


def _cell(v: object) -> str:
    if v is None:
        return ""
    return str(v)


def pdf_bytes(rep: TableReport) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = register_font()
    title = ParagraphStyle("t", fontName=font, fontSize=16, leading=22, spaceAfter=4)
    sub = ParagraphStyle("s", fontName=font, fontSize=10, leading=14, textColor=colors.HexColor("#333333"))
    h2 = ParagraphStyle("h", fontName=font, fontSize=12, leading=18, spaceBefore=8, spaceAfter=4)
    buf = io.BytesIO()
    page = landscape(A4)
    doc = SimpleDocTemplate(buf, pagesize=page, leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                            bottomMargin=12 * mm, title=rep.title, author="长寿食堂 区级管理后台")
    story = [Paragraph(_esc(rep.title), title)]
    if rep.subtitle:
        story.append(Paragraph(_esc(rep.subtitle), sub))
    if rep.summary:
        story.append(Paragraph("；".join(f"{_esc(k)}：{_esc(_cell(v))}" for k, v in rep.summary), sub))
    width = page[0] - 24 * mm
    for sh in rep.sheets:
        story.append(Paragraph(_esc(sh.title), h2))
        tot = sh.totals()
        body = [[_cell(c) for c in r] for r in sh.rows] + ([[_cell(c) for c in tot]] if tot else [])
        head = [_cell(h) for h in sh.head]
        layout = fit_columns(head, body, width, font)
        size = layout.font_size
        cell = ParagraphStyle("c", fontName=font, fontSize=size, leading=size * 1.3)
        # a column sized to its content holds its cells on one line (plain strings); only a
        # column too long for the page wraps its cells (as Paragraphs), never a column head
        data = [head]
        for r in body:
            data.append([Paragraph(_esc(c), cell) if layout.wraps[i] and _width(c, font, size) > layout.widths[i] - PAD
                         else c for i, c in enumerate(r)])
        if not sh.rows:
            data.append(["（无）"] + [""] * (len(sh.head) - 1))
        t = Table(data, colWidths=layout.widths, repeatRows=1)
        style = [("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), size),
                 ("LEFTPADDING", (0, 0), (-1, -1), PAD / 2), ("RIGHTPADDING", (0, 0), (-1, -1), PAD / 2),
                 ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#888888")),
                 ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                 ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
        for i in range(len(sh.head)):
            if any(isinstance(r[i], (int, Money)) for r in sh.rows if i < len(r)):
                style.append(("ALIGN", (i, 1), (i, -1), "RIGHT"))
        if tot:
            style.append(("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#f3f3f3")))
        t.setStyle(TableStyle(style))
        story += [t, Spacer(1, 4 * mm)]
    doc.build(story)
    return buf.getvalue()


PAD = 6.0                        # a cell's left + right padding, pt
FONT_SIZES = (8.5, 8.0, 7.5, 7.0, 6.5)   # tried in turn until every column fits its content
SAMPLE_ROWS = 2000               # rows measured (the first ones and the last, where totals are)


@dataclass
class Columns:
    widths: list[float]
    wraps: list[bool]            # the column's long cells wrap (it could not get its content's width)
    font_size: float


def _width(text: str, font: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return stringWidth(text, font, size)


def fit_columns(head: list[str], body: list[list[str]], total: float, font: str) -> Columns:
    """Column widths from the content's own width in the font (reportlab's metrics): at
    the largest of ``FONT_SIZES`` where every column gets the width of its longest cell
    and its head, the page's spare width shared out; when none does, at the smallest size
    the widest columns give up width (their long cells wrap) down to an even share, the
    heads and the short columns never."""
    sample = body if len(body) <= SAMPLE_ROWS else body[:SAMPLE_ROWS - 50] + body[-50:]
    n = len(head)
    for size in FONT_SIZES:
        heads = [_width(h, font, size) + PAD for h in head]
        need = [max([heads[i]] + [_width(r[i], font, size) + PAD for r in sample if i < len(r)]) for i in range(n)]
        if sum(need) <= total or size == FONT_SIZES[-1]:
            break
    if sum(need) <= total:
        spare = (total - sum(need)) / n
        return Columns([w + spare for w in need], [False] * n, size)
    # too wide even at the smallest size: the widest columns shrink to a common cap
    floor = [max(heads[i], min(need[i], 60.0)) for i in range(n)]
    lo, hi = 0.0, max(need)
    for _ in range(40):                  # the cap where the columns just fit
        cap = (lo + hi) / 2
        if sum(max(floor[i], min(need[i], cap)) for i in range(n)) > total:
            hi = cap
        else:
            lo = cap
    widths = [max(floor[i], min(need[i], lo)) for i in range(n)]
    return Columns(widths, [widths[i] < need[i] for i in range(n)], size)


def _esc(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
