"""The staff screen's records: today's orders, the exports, the imports and the
terminal's sync state."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from sqlalchemy import select

from kiosk.datadir import write_atomic
from kiosk.db import audit
from kiosk.db.models import Order, OrderVoid, Resident
from kiosk.errors import ValidationError
from kiosk.money import fen_to_yuan
from kiosk.terminal.checkout_flow import PAY_LABELS
from kiosk.terminal.staff_desk import StaffDesk
from kiosk.terminal.sync.status import SyncStatus, sync_status
from kiosk.timeutil import CST, now_cst

ORDER_HEADERS = ["订单号", "时间", "居民编号", "姓名", "餐次", "合计(元)", "补贴(元)", "实付(元)", "付款方式", "已作废"]


class RecordsDesk:
    def __init__(self, app, staff: StaffDesk, clock: Callable[[], datetime] = now_cst) -> None:
        self.app = app
        self.staff = staff          # who is logged in (imports need a fresh login)
        self.clock = clock

    def today_orders(self, day: date | None = None) -> dict:
        day = day or self.clock().date()
        with self.app.db.session() as s:
            rows = s.execute(select(Order, Resident.name, OrderVoid.id)
                             .join(Resident, Resident.id == Order.resident_id)
                             .outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                             .where(Order.meal_date == day, Order.canteen_id == self.app.settings.canteen_id)
                             .order_by(Order.created_at)).all()
        orders = [{"order_id": o.id, "time": o.created_at.astimezone(CST).strftime("%H:%M"), "resident_id": o.resident_id,
                   "name": name, "meal": o.meal, "total_fen": o.total_fen, "subsidy_fen": o.subsidy_fen,
                   "to_pay_fen": o.to_pay_fen, "pay": o.pay_method, "voided": vid is not None}
                  for o, name, vid in rows]
        live = [o for o in orders if not o["voided"]]
        return {"date": day.isoformat(), "orders": orders, "count": len(live), "voided": len(orders) - len(live),
                "total_fen": sum(o["total_fen"] for o in live), "subsidy_fen": sum(o["subsidy_fen"] for o in live),
                "paid_fen": sum(o["to_pay_fen"] for o in live)}

    def export_today_csv(self, path: Path, staff_id: str) -> Path:
        data = self.today_orders()
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(ORDER_HEADERS)
        for o in data["orders"]:
            w.writerow([o["order_id"], o["time"], o["resident_id"], o["name"], o["meal"], fen_to_yuan(o["total_fen"]),
                        fen_to_yuan(o["subsidy_fen"]), fen_to_yuan(o["to_pay_fen"]), PAY_LABELS.get(o["pay"], o["pay"]),
                        "是" if o["voided"] else ""])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buf.getvalue(), encoding="utf-8-sig")
        try:
            with self.app.db.session() as s:
                audit.record_file(s, staff_id, "orders.export", path, count=len(data["orders"]))
        except BaseException:
            path.unlink(missing_ok=True)     # an export that is not in the audit log is not kept
            raise
        return path

    def export_today(self, staff_id: str) -> Path:
        return self.export_today_csv(self.app.settings.home / "exports" / f"orders-{self.clock():%Y%m%d}.csv", staff_id)

    def export_month(self, month: str, path: Path, staff_id: str) -> Path:
        from kiosk.services.reports import monthly_subsidy, write_report

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return write_report(self.app, monthly_subsidy(self.app, month), path, staff_id)

    def export_this_month(self, staff_id: str) -> Path:
        month = f"{self.clock():%Y-%m}"
        return self.export_month(month, self.app.settings.home / "exports" / f"subsidy-{month}.xlsx", staff_id)

    def import_file(self, kind: str, path: Path, staff_id: str, skip_invalid: bool = False):
        from kiosk.services.importing import import_menu, import_policy, import_roster

        self.app.auth.check(self.staff.actor(staff_id), "data.import")
        if kind == "roster":
            return import_roster(self.app, path, skip_invalid=skip_invalid, staff_id=staff_id)
        if kind == "menu":
            return import_menu(self.app, path, skip_invalid=skip_invalid, staff_id=staff_id)
        if kind == "policy":
            return import_policy(self.app, path, staff_id=staff_id)
        raise ValidationError("未知的导入类型", detail=kind)

    def sync_status(self) -> SyncStatus | None:
        """The district sync state of this terminal (None when it is not a district's terminal)."""
        return sync_status(self.app)
