"""The monthly subsidy reimbursement report (月度助餐补贴结算表): what the
district pays back, per resident, per tier and per canteen, voided orders left out."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, func, select

from kiosk.db import audit
from kiosk.db.models import Order, OrderVoid, Resident
from kiosk.errors import ValidationError
from kiosk.money import fen_to_yuan, yuan_decimal
from kiosk.timeutil import month_bounds, parse_month
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
    charged_back_fen: int = 0     # subsidy the district office charged back (追回): not claimed
    net_subsidy_fen: int = 0      # subsidy_fen - charged_back_fen: what is claimed

    def to_json(self) -> dict:
        return self.__dict__.copy()


def charge_backs(session, first, last) -> dict[str, tuple[str, str | None, str, int]]:
    """The subsidy charged back (追回) on the live orders of ``first``..``last``: order id ->
    (resident, tier, canteen, fen), at most the order's subsidy. Only flags about a
    subsidy count (a balance overdraft is money the resident owes, not subsidy)."""
    from kiosk.db.models import FLAG_KINDS_SUBSIDY, DistrictFlag

    rows = session.execute(
        select(Order.id, Order.resident_id, Order.tier, Order.canteen_id, Order.subsidy_fen, DistrictFlag.over_fen)
        .join(DistrictFlag, DistrictFlag.order_id == Order.id)
        .where(Order.meal_date >= first, Order.meal_date <= last,
               ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists(),
               DistrictFlag.decision == "charge_back", DistrictFlag.kind.in_(FLAG_KINDS_SUBSIDY))).all()
    out: dict[str, tuple[str, str | None, str, int]] = {}
    for oid, rid, tier, cid, subsidy, over in rows:
        before = out[oid][3] if oid in out else 0
        out[oid] = (rid, tier, cid, min(int(subsidy or 0), before + max(0, int(over or 0))))
    return out


def monthly_subsidy(app, month: str) -> MonthlyReport:
    """The month's subsidy per resident, tier and canteen; subsidy charged back by the
    district office (追回) is shown apart and taken off the net claimed."""
    return monthly_with_canteens(app, month, canteens=False)[0]


def monthly_with_canteens(app, month: str, canteens: bool = True
                          ) -> tuple[MonthlyReport, dict[str, list[str]] | None]:
    """``monthly_subsidy`` and, with ``canteens``, the canteens each resident ate at this
    month (resident -> canteen ids), from the same pass over the month's orders."""
    first, last = month_bounds(parse_month(month))
    with app.db.session() as s:
        if s.get_bind().dialect.name == "postgresql":
            per_res, tiers, canteen_rows, where = _grouped_rows(s, first, last, canteens)
        else:
            per_res, tiers, canteen_rows = _plain_rows(s, first, last)
            where = _canteens_of(s, first, last) if canteens else None
        backs = charge_backs(s, first, last)
    return _report(first, per_res, tiers, canteen_rows, backs), where


def _live(first, last) -> tuple:
    return (Order.meal_date >= first, Order.meal_date <= last,
            ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())


def _plain_rows(s, first, last) -> tuple[list, list, list]:
    """The month's rows in three grouped scans (any database): per resident (name, masked
    later), per tier (subsidised meals only), per canteen."""
    live = _live(first, last)
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
    return per_res, tiers, canteens


def _canteens_of(s, first, last) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for rid, cid in s.execute(select(Order.resident_id, Order.canteen_id).where(*_live(first, last))
                              .group_by(Order.resident_id, Order.canteen_id)):
        where.setdefault(rid, []).append(cid)
    return where


# GROUPING(resident_id, tier, canteen_id) of each grouping set: a bit set for each column not grouped by
_BY_RESIDENT, _BY_TIER, _BY_CANTEEN, _BY_RESIDENT_CANTEEN = 0b011, 0b101, 0b110, 0b010


def _grouped_rows(s, first, last, with_canteens: bool) -> tuple[list, list, list, dict | None]:
    """The same rows as ``_plain_rows`` from ONE scan of the month's orders (PostgreSQL's
    GROUPING SETS: per resident, per tier, per canteen and, when asked, per resident and
    canteen), the residents' names joined to the per-resident groups only. Tiers keep
    only their subsidised meals (FILTER), as ``_plain_rows``' WHERE subsidy > 0 does."""
    from sqlalchemy import and_, tuple_

    sets = [tuple_(Order.resident_id), tuple_(Order.tier), tuple_(Order.canteen_id)]
    if with_canteens:
        sets.append(tuple_(Order.resident_id, Order.canteen_id))
    subsidised = Order.subsidy_fen > 0
    g = (select(func.grouping(Order.resident_id, Order.tier, Order.canteen_id).label("g"),
                Order.resident_id.label("rid"), Order.tier.label("tier"), Order.canteen_id.label("cid"),
                func.count().label("n"), func.count().filter(subsidised).label("n_sub"),
                func.sum(Order.subsidy_fen).label("sub"), func.sum(Order.subsidy_fen).filter(subsidised).label("sub_pos"),
                func.sum(Order.to_pay_fen).label("paid"), func.max(Order.tier).label("max_tier"))
         .where(*_live(first, last)).group_by(func.grouping_sets(*sets)).subquery())
    rows = s.execute(select(g, Resident.id.label("res"), Resident.name, Resident.id_number, Resident.hukou)
                     .outerjoin(Resident, and_(g.c.g == _BY_RESIDENT, Resident.id == g.c.rid))
                     .order_by(g.c.g, g.c.rid, g.c.tier, g.c.cid)).all()
    per_res, tiers, canteens = [], [], []
    where: dict[str, list[str]] | None = {} if with_canteens else None
    for r in rows:
        if r.g == _BY_RESIDENT:
            if r.res is not None:          # as the inner join of ``_plain_rows``
                per_res.append((r.rid, r.name, r.id_number, r.hukou, r.n, r.n_sub, r.sub, r.paid, r.max_tier))
        elif r.g == _BY_TIER:
            if r.n_sub:                    # a tier with no subsidised meal is not listed
                tiers.append((r.tier, r.n_sub, r.sub_pos))
        elif r.g == _BY_CANTEEN:
            canteens.append((r.cid, r.n, r.sub))
        elif r.g == _BY_RESIDENT_CANTEEN and where is not None:
            where.setdefault(r.rid, []).append(r.cid)
    return per_res, tiers, canteens, where


def _report(first, per_res, tiers, canteens, backs) -> MonthlyReport:
    back_of: dict[tuple[str, object], int] = {}
    for rid, tier, cid, fen in backs.values():
        for key in (("resident", rid), ("tier", tier), ("canteen", cid)):
            back_of[key] = back_of.get(key, 0) + fen

    def net(row: dict, key: tuple[str, object]) -> dict:
        row["charged_back_fen"] = back_of.get(key, 0)
        row["net_subsidy_fen"] = row["subsidy_fen"] - row["charged_back_fen"]
        return row
    residents = [net({"resident_id": r, "name": n, "id_number": mask_id(idn), "hukou": hk, "meals": int(c),
                      "subsidized_meals": int(sc or 0), "subsidy_fen": int(sf or 0), "paid_fen": int(pf or 0),
                      "tier": t}, ("resident", r)) for r, n, idn, hk, c, sc, sf, pf, t in per_res]
    subsidy = sum(r["subsidy_fen"] for r in residents)
    back = sum(r["charged_back_fen"] for r in residents)
    return MonthlyReport(
        month=f"{first:%Y-%m}", residents=residents,
        by_tier=[net({"tier": t, "meals": int(c), "subsidy_fen": int(f or 0)}, ("tier", t)) for t, c, f in tiers],
        by_canteen=[net({"canteen_id": cid, "meals": int(c), "subsidy_fen": int(f or 0)}, ("canteen", cid))
                    for cid, c, f in canteens],
        meals=sum(r["meals"] for r in residents), subsidized_meals=sum(r["subsidized_meals"] for r in residents),
        subsidy_fen=subsidy, paid_fen=sum(r["paid_fen"] for r in residents),
        charged_back_fen=back, net_subsidy_fen=subsidy - back)


HEAD = ["居民编号", "姓名", "身份证号", "户籍", "档次", "就餐次数", "补贴次数", "补贴金额(元)", "追回(元)",
        "应报销补贴(元)", "自付金额(元)"]


def _rows(rep: MonthlyReport, money=fen_to_yuan) -> list[list]:
    return [[r["resident_id"], r["name"], r["id_number"], r["hukou"], r["tier"] or "", r["meals"],
             r["subsidized_meals"], money(r["subsidy_fen"]), money(r["charged_back_fen"]), money(r["net_subsidy_fen"]),
             money(r["paid_fen"])] for r in rep.residents]


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
        xlsx_append(ws, ["补贴合计(元)", yuan_decimal(rep.subsidy_fen), "自付合计(元)", yuan_decimal(rep.paid_fen)])
        xlsx_append(ws, ["追回(元)", yuan_decimal(rep.charged_back_fen), "应报销补贴(元)", yuan_decimal(rep.net_subsidy_fen)])
        ws.append([])
        xlsx_append(ws, ["档次", "补贴次数", "补贴金额(元)", "追回(元)", "应报销补贴(元)"])
        for t in rep.by_tier:
            xlsx_append(ws, [t["tier"], t["meals"], yuan_decimal(t["subsidy_fen"]), yuan_decimal(t["charged_back_fen"]),
                             yuan_decimal(t["net_subsidy_fen"])])
        ws.append([])
        xlsx_append(ws, ["食堂", "就餐次数", "补贴金额(元)", "追回(元)", "应报销补贴(元)"])
        for c in rep.by_canteen:
            xlsx_append(ws, [c["canteen_id"], c["meals"], yuan_decimal(c["subsidy_fen"]), yuan_decimal(c["charged_back_fen"]),
                             yuan_decimal(c["net_subsidy_fen"])])
        detail = wb.create_sheet("明细")
        xlsx_append(detail, HEAD)
        for row in _rows(rep, yuan_decimal):
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
                    fen_to_yuan(rep.charged_back_fen), fen_to_yuan(rep.net_subsidy_fen), fen_to_yuan(rep.paid_fen)])
        data = buf.getvalue().encode("utf-8-sig")
    else:
        raise ValidationError("报表文件应为 .xlsx 或 .csv", detail=f"unsupported {path.suffix}")
    write_atomic(path, data)
    try:
        with app.db.session() as s:
            audit.record_file(s, staff_id, "report.monthly", path, month=rep.month, subsidy_fen=rep.subsidy_fen,
                         charged_back_fen=rep.charged_back_fen)
    except BaseException:
        path.unlink(missing_ok=True)     # an export that is not in the audit log is not kept
        raise
    return path
