"""报餐: the kitchen sheet of a day (portions booked per canteen, meal and dish, as .xlsx
or .pdf) and the booked elders who did not come, per canteen, for a month (kept a few
minutes when slow to compute, shared.cache; the first names of each canteen shown)."""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.errors import KioskError
from kiosk.services import bookings as bk
from kiosk.timeutil import now_cst
from kiosk.district.console.shared import views
from kiosk.district.console.shared.cache import results
from kiosk.district.console.shared.deps import AppDep, Supervisor, day_arg, month_arg
from kiosk.district.console.shared.render import NavLink, refused, render, send_report

router = APIRouter()
NAV = NavLink("报餐", "/bookings", order=36)
NAMES_SHOWN = 10        # no-show elders named per canteen on the page (the count says how many)


def _day(day: str | None):
    return day_arg(day) if day else now_cst().date() + timedelta(days=1)      # tomorrow: what to cook


@router.get("/bookings", response_class=HTMLResponse)
def bookings_page(request: Request, app: AppDep, login: Supervisor, day: str | None = None,
                  month: str | None = None, refresh: str | None = None):
    try:
        d, m = _day(day), month_arg(month)
        sheet = bk.kitchen_sheet(app, d)
        snap = results.get(*views.no_shows(app, m, now_cst().date()), refresh=refresh == "1")
        absent = snap.value
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    return render(request, login, "bookings.html", day=d.isoformat(), month=m, sheet=sheet, absent=absent,
                  names_shown=NAMES_SHOWN, note=snap.note)


@router.get("/bookings/kitchen.{fmt}")
def kitchen_file(fmt: str, request: Request, app: AppDep, login: Supervisor, day: str | None = None):
    try:
        d = _day(day)
        return send_report(app, login, bk.kitchen_sheet(app, d), fmt, f"报餐备餐单_{d}", f"bookings {d}")
    except KioskError as exc:
        return refused(request, login, exc.user_message)
