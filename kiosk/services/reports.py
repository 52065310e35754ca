"""The monthly subsidy reimbursement report (月度助餐补贴结算表): what the
district pays back, per resident, per tier and per canteen, voided orders left out."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import case, func, select

from kiosk.db import audit
from kiosk.db.models import Order, OrderVoid, Resident
from kiosk.errors import ValidationError
from kiosk.money import fen_to_yuan
from kiosk.services.checkout import month_bounds
from kiosk.services.tabular import csv_cell, xlsx_append


def mask_id(id_number: str | None) -> str:
    """510107194203150024 -> 510107********0024 (enough to check, not to copy)."""
    if not id_number or len(id_number) < 10:
        return id_number or ""
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


@dataclass
class MonthlyReport:
    month: str
    residents: list[dict]
    by_tier: list[dict]
    by_canteen: list[dict]
    meals: int
    subsidized_meals: int
    subsidy_fen: int
    paid_fen: int

    def to_json(self) -> dict:
        return self.__dict__.copy()


def parse_month(text: str) -> date:
    try:
        y, m = (int(x) for x in text.split("-"))
        return date(y, m, 1)
    except ValueError:
        raise ValidationError(f"月份应写成 YYYY-MM，不是 {text}", detail=f"bad month {text!r}") from None


def monthly_subsidy(app, month: str) -> MonthlyReport:
    first, last = month_bounds(parse_month(month))
    live = (Order.meal_date >= first, Order.meal_date <= last,
            ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())
    with app.db.session() as s:
        per_res = s.execute(
            select(Order.resident_id, Resident.name, Resident.id_number, Resident.hukou,
                   func.count(), func.sum(case((Order.subsidy_fen > 0, 1), else_=0)),
                   func.sum(Order.subsidy_fen), func.sum(Order.to_pay_fen), func.max(Order.tier))
            .join(Resident, Resident.id == Order.resident_id).where(*live)
            .group_by(Order.resident_id, Resident.name, Resident.id_number, Resident.hukou)
            .order_by(Order.resident_id)).all()
        tiers = s.execute(select(Order.tier, func.count(), func.sum(Order.subsidy_fen))
                          .where(*live, Order.subsidy_fen > 0).group_by(Order.tier).order_by(Order.tier)).all()
        canteens = s.execute(select(Order.canteen_id, func.count(), func.sum(Order.subsidy_fen))
                             .where(*live).group_by(Order.canteen_id).order_by(Order.canteen_id)).all()
    residents = [{"resident_id": r, "name": n, "id_number": mask_id(idn), "hukou": hk, "meals": int(c),
                  "subsidized_meals": int(sc or 0), "subsidy_fen": int(sf or 0), "paid_fen": int(pf or 0),
                  "tier": t} for r, n, idn, hk, c, sc, sf, pf, t in per_res]
    return MonthlyReport(
        month=f"{first:%Y-%m}", residents=residents,
        by_tier=[{"tier": t, "meals": int(c), "subsidy_fen": int(f or 0)} for t, c, f in tiers],
        by_canteen=[{"canteen_id": cid, "meals": int(c), "subsidy_fen": int(f or 0)} for cid, c, f in canteens],
        meals=sum(r["meals"] for r in residents), subsidized_meals=sum(r["subsidized_meals"] for r in residents),
        subsidy_fen=sum(r["subsidy_fen"] for r in residents), paid_fen=sum(r["paid_fen"] for r in residents))


HEAD = ["居民编号", "姓名", "身份证号", "户籍", "档次", "就餐次数", "补贴次数", "补贴金额(元)", "自付金额(元)"]


def _yuan(fen: int) -> Decimal:
    """An amount as a number of yuan for a spreadsheet (exact: Decimal, two decimals)."""
    return Decimal(fen) / 100


def _rows(rep: MonthlyReport, money=fen_to_yuan) -> list[list]:
    return [[r["resident_id"], r["name"], r["id_number"], r["hukou"], r["tier"] or "", r["meals"],
             r["subsidized_meals"], money(r["subsidy_fen"]), money(r["paid_fen"])] for r in rep.residents]


def write_report(app, rep: MonthlyReport, path: Path, staff_id: str = "system") -> Path:
    """.xlsx (汇总 and 明细 sheets) or .csv; written to a temporary file, then moved.
    Text that a spreadsheet would run as a formula (a name starting with = + - @) is
    written as text: a string cell in .xlsx, a leading ' in .csv. Numbers stay numbers."""
    from kiosk.datadir import write_atomic

    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.title = "汇总"
        xlsx_append(ws, [f"{rep.month} 助餐补贴结算表"])
        xlsx_append(ws, ["就餐次数", rep.meals, "补贴次数", rep.subsidized_meals])
        xlsx_append(ws, ["补贴合计(元)", _yuan(rep.subsidy_fen), "自付合计(元)", _yuan(rep.paid_fen)])
        ws.append([])
        xlsx_append(ws, ["档次", "补贴次数", "补贴金额(元)"])
        for t in rep.by_tier:
            xlsx_append(ws, [t["tier"], t["meals"], _yuan(t["subsidy_fen"])])
        ws.append([])
        xlsx_append(ws, ["食堂", "就餐次数", "补贴金额(元)"])
        for c in rep.by_canteen:
            xlsx_append(ws, [c["canteen_id"], c["meals"], _yuan(c["subsidy_fen"])])
        detail = wb.create_sheet("明细")
        xlsx_append(detail, HEAD)
        for row in _rows(rep, _yuan):
            xlsx_append(detail, row)
        out = io.BytesIO()
        wb.save(out)
        data: bytes | str = out.getvalue()
    elif path.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(HEAD)
        w.writerows([csv_cell(v) for v in row] for row in _rows(rep))
        w.writerow(["合计", "", "", "", "", rep.meals, rep.subsidized_meals, fen_to_yuan(rep.subsidy_fen),
                    fen_to_yuan(rep.paid_fen)])
        data = buf.getvalue().encode("utf-8-sig")
    else:
        raise ValidationError("报表文件应为 .xlsx 或 .csv", detail=f"unsupported {path.suffix}")
    write_atomic(path, data)
    try:
        with app.db.session() as s:
            audit.record(s, staff_id, "report.monthly", str(path), month=rep.month, subsidy_fen=rep.subsidy_fen)
    except BaseException:
        path.unlink(missing_ok=True)     # an export that is not in the audit log is not kept
        raise
    return path
