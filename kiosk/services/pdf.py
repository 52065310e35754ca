"""PDF files of the district's reports (reportlab), with the WenQuanYi Micro Hei
font embedded so Chinese reads on any machine (install.sh installs fonts-wqy-microhei)."""
from __future__ import annotations

import io
import shutil
import subprocess
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
    cell = ParagraphStyle("c", fontName=font, fontSize=8.5, leading=11)
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
        widths = _col_widths(sh.head, body, width)
        # a cell that fits its column stays a plain string (fast); a longer one wraps as a Paragraph
        fits = [max(1, int(w / 9.0)) for w in widths]    # about 9 pt per CJK character at 8.5 pt
        data = [[Paragraph(_esc(h), cell) for h in sh.head]]
        for r in body:
            data.append([c if _span(c) <= fits[i] else Paragraph(_esc(c), cell) for i, c in enumerate(r)])
        if not sh.rows:
            data.append(["（无）"] + [""] * (len(sh.head) - 1))
        t = Table(data, colWidths=widths, repeatRows=1)
        style = [("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
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


def _span(text: str) -> float:
    """Width of a text in CJK character widths (a Latin character or digit is about half)."""
    return sum(1.0 if ord(ch) > 0x2E80 else 0.55 for ch in text)


def _col_widths(head: list[str], body: list[list[str]], total: float) -> list[float]:
    """Columns as wide as their content (sampled), scaled to the page width."""
    sample = body[:300] + body[-20:]
    want = []
    for i, h in enumerate(head):
        longest = max([_span(h)] + [_span(r[i]) for r in sample if i < len(r)])
        want.append(min(max(longest, 3.0), 24.0))
    scale = total / sum(want)
    return [w * scale for w in want]


def _esc(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
