"""高龄津贴核验: residents of 80 and over with the days a face and a passed liveness
check proved them alive this month."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.errors import KioskError
from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.deps import AppDep, Supervisor, month_arg
from kiosk.district.console.shared.render import NavLink, refused, render

router = APIRouter()
NAV = NavLink("高龄津贴核验", "/proof", order=50)


@router.get("/proof", response_class=HTMLResponse)
def proof_page(request: Request, app: AppDep, login: Supervisor, month: str | None = None):
    try:
        m = month_arg(month)
        rows = dr.proof_of_life(app, m)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    return render(request, login, "proof.html", month=m, rows=rows, missing=[r for r in rows if r["none_this_month"]])
