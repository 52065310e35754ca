"""Bookings (报餐/报停) a terminal pushes: applied only for a resident the district knows
(not erased) and for the terminal's own canteen; one row per resident, day and meal, the
later change winning (a booking the office changed after the terminal's is kept)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.db import rowcodec
from kiosk.db.models import MealBooking, Resident, new_id
from kiosk.district.domain.terminals import TerminalIdentity
from kiosk.services.bookings import MEALS, PORTIONS_MAX


def apply_pushed_bookings(s: Session, term: TerminalIdentity, rows: list) -> int:
    """Apply the ``meal_bookings`` rows of one op; ValueError (the op is rejected whole) for a
    row the terminal may not write. Returns how many rows changed."""
    changed = 0
    for raw in rows or []:
        if not isinstance(raw, dict):
            raise ValueError("meal_bookings: a row is not an object")
        d = rowcodec.load(MealBooking, raw)
        rid, cid = d.get("resident_id"), d.get("canteen_id")
        r = s.get(Resident, rid) if isinstance(rid, str) else None
        if r is None or r.status == "erased":
            raise ValueError(f"booking for unknown or erased resident {rid!r}")
        if cid != term.canteen_id:
            raise ValueError(f"booking at canteen {cid!r} from a terminal of {term.canteen_id!r}")
        if d.get("meal") not in MEALS or d.get("meal_date") is None:
            raise ValueError(f"booking with a bad meal or day: {d.get('meal')!r} {d.get('meal_date')!r}")
        portions = d.get("portions", 1)
        if not isinstance(portions, int) or isinstance(portions, bool) or not 1 <= portions <= PORTIONS_MAX:
            raise ValueError(f"booking portions {portions!r}")
        dishes = d.get("dish_ids") or []
        if not isinstance(dishes, list) or not all(isinstance(x, str) and len(x) <= 64 for x in dishes):
            raise ValueError("booking dish_ids is not a list of dish ids")
        cancelled = bool(d.get("cancelled"))
        b = s.scalar(select(MealBooking).where(MealBooking.resident_id == rid,
                                               MealBooking.meal_date == d["meal_date"],
                                               MealBooking.meal == d["meal"]))
        at = d.get("updated_at")
        if b is None:
            bid = d.get("id") if isinstance(d.get("id"), str) and len(d["id"]) <= 36 else new_id()
            if s.get(MealBooking, bid) is not None:      # that id is another resident's or day's booking
                raise ValueError(f"booking id {bid!r} is taken by another booking")
            s.add(MealBooking(id=bid, resident_id=rid, meal_date=d["meal_date"], meal=d["meal"],
                              canteen_id=cid, dish_ids=list(dishes), portions=portions, cancelled=cancelled,
                              source="counter" if d.get("source") == "counter" else "terminal",
                              staff_id=d.get("staff_id"), terminal_id=term.terminal_id,
                              **({"created_at": d["created_at"]} if d.get("created_at") else {}),
                              **({"updated_at": at} if at else {})))
            changed += 1
        elif at is None or b.updated_at is None or at >= b.updated_at:
            b.canteen_id, b.dish_ids, b.portions, b.cancelled = cid, list(dishes), portions, cancelled
            b.terminal_id, b.staff_id = term.terminal_id, d.get("staff_id")
            if at:
                b.updated_at = at
            changed += 1
    s.flush()
    return changed
