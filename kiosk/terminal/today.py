"""Has this elder already had this meal today? The counter asks before it opens a bill,
so that an elder with a poor memory does not pay twice without deciding to.

"Today" is as far as this terminal knows: its own orders and, on a district terminal, the
orders of the elder at the other canteens that the sync has brought in (kiosk.terminal.sync
keeps them in the same table). Voided orders do not count."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from kiosk.db.models import Canteen, Order, OrderVoid
from kiosk.timeutil import CST


@dataclass(frozen=True)
class EarlierOrder:
    """The elder's latest order for this meal today: when, where and how much."""
    order_id: str
    at: datetime                # CST
    canteen_id: str
    canteen_name: str
    meal: str
    meal_date: date
    total_fen: int
    to_pay_fen: int
    count: int                  # how many orders for this meal today (usually 1)
    here: bool                  # at this terminal's canteen


def earlier_order(app, resident_id: str, at: datetime) -> EarlierOrder | None:
    """The elder's order for the meal served at ``at`` (None outside meal hours, or when the
    elder has none). Read-only: one session, three small queries."""
    b = app.billing
    with app.db.session(read_only=True) as s:
        from kiosk.billing.meals import meal_at

        meal = meal_at(at, b.canteen(s).windows)
        if meal is None:
            return None
        day = at.astimezone(CST).date()
        rows = s.scalars(select(Order)
                         .where(Order.resident_id == resident_id, Order.meal_date == day, Order.meal == meal,
                                ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())
                         .order_by(Order.created_at.desc())).all()
        if not rows:
            return None
        o = rows[0]
        c = s.get(Canteen, o.canteen_id)
        here = o.canteen_id == app.settings.canteen_id
        name = c.name if c is not None else (app.settings.canteen_name if here else o.canteen_id)
        return EarlierOrder(o.id, o.created_at.astimezone(CST), o.canteen_id, name, o.meal, o.meal_date,
                            o.total_fen, o.to_pay_fen, len(rows), here)
