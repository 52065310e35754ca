"""Report tables and their files: one ``TableReport`` written as .xlsx (numbers as
numbers, yuan with two decimals, every text cell stored as text so nothing from the
data can become a formula) or as PDF (kiosk.services.pdf). Totals are computed from
the rows of the table itself, so a total always matches its table."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from kiosk.errors import ValidationError
from kiosk.money import fen_to_yuan, yuan_decimal


@dataclass
class Money:
    """An amount in fen shown as yuan with two decimals."""

    fen: int

    def __str__(self) -> str:
        return fen_to_yuan(self.fen)

    @property
    def yuan(self) -> Decimal:
        return yuan_decimal(self.fen)


@dataclass
class Sheet:
    title: str
    head: list[str]
    rows: list[list]                       # cells: str, int, Money, or None
    total_label: str | None = "合计"      # a total row summing the int and Money columns
    total_skip: set[int] = field(default_factory=set)  # numeric columns not to sum (ages...)

    def totals(self) -> list | None:
        if self.total_label is None or not self.rows:
            return None
        out: list = [None] * len(self.head)
        out[0] = self.total_label
        for i in range(1, len(self.head)):
            if i in self.total_skip:
                continue
            cells = [r[i] for r in self.rows if i < len(r)]
            if cells and all(isinstance(c, Money) for c in cells if c is not None) and any(cells):
                out[i] = Money(sum(c.fen for c in cells if c is not None))
            elif cells and all(isinstance(c, int) and not isinstance(c, bool) for c in cells if c is not None) \
                    and any(c is not None for c in cells):
                out[i] = sum(c for c in cells if c is not None)
        return out


@dataclass
class TableReport:
    title: str
    subtitle: str = ""
    summary: list[tuple[str, object]] = field(default_factory=list)
    sheets: list[Sheet] = field(default_factory=list)

    def to_json(self) -> dict:
        """The report as JSON: amounts as integer fen, and the label of every amount (a
        summary line, a column holding amounts) says 分, not the 元 of the printed report."""
        def cell(c):
            return c.fen if isinstance(c, Money) else c

        def head(sh: Sheet) -> list[str]:
            rows = sh.rows + [sh.totals() or []]
            return [fen_label(h) if any(i < len(r) and isinstance(r[i], Money) for r in rows) else h
                    for i, h in enumerate(sh.head)]
        return {"title": self.title, "subtitle": self.subtitle,
                "summary": [[fen_label(k) if isinstance(v, Money) else k, cell(v)] for k, v in self.summary],
                "sheets": [{"title": s.title, "head": head(s), "rows": [[cell(c) for c in r] for r in s.rows],
                            "totals": [cell(c) for c in (s.totals() or [])]} for s in self.sheets]}


def fen_label(label: str) -> str:
    """The label of an amount given in fen: 补贴(元) -> 补贴(分), 合计 -> 合计(分)."""
    return label.replace("(元)", "(分)") if "(元)" in label else f"{label}(分)"


def _safe_title(t: str) -> str:
    for ch in "[]:*?/\\":
        t = t.replace(ch, " ")
    return t[:31] or "Sheet"


def xlsx_bytes(rep: TableReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    first = wb.active
    first.title = "汇总"
    first.append([rep.title])
    first["A1"].font = Font(bold=True, size=14)
    if rep.subtitle:
        _put(first, [rep.subtitle])
    for k, v in rep.summary:
        _put(first, [k, v])
    for sh in rep.sheets:
        ws = wb.create_sheet(_safe_title(sh.title))
        _put(ws, sh.head)
        for c in ws[1]:
            c.font = Font(bold=True)
        for r in sh.rows:
            _put(ws, r)
        tot = sh.totals()
        if tot:
            _put(ws, tot)
            for c in ws[ws.max_row]:
                c.font = Font(bold=True)
        for i, h in enumerate(sh.head, start=1):
            ws.column_dimensions[ws.cell(1, i).column_letter].width = max(10, min(40, 2 * len(str(h)) + 4))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _put(ws, values: list) -> None:
    row = ws.max_row + 1 if ws.max_row > 1 or ws.cell(1, 1).value is not None else 1
    for i, v in enumerate(values, start=1):
        c = ws.cell(row=row, column=i)
        if isinstance(v, Money):
            c.value = v.yuan
            c.number_format = "0.00"
        elif v is None:
            continue
        elif isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
            c.value = v
        else:
            c.value = str(v)
            c.data_type = "s"   # text stays text: a name like "=1+1" is never a formula


def write_report_file(rep: TableReport, path: Path) -> Path:
    """.xlsx or .pdf, written to a temporary file and moved into place."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        data = xlsx_bytes(rep)
    elif suffix == ".pdf":
        from kiosk.services.pdf import pdf_bytes

        data = pdf_bytes(rep)
    else:
        raise ValidationError("报表文件应为 .xlsx 或 .pdf", detail=f"unsupported {suffix!r}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
