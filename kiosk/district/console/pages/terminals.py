"""终端: the district's terminals, when each last pushed and pulled, orders waiting."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.deps import AppDep, Supervisor
from kiosk.district.console.shared.render import NavLink, render

router = APIRouter()
NAV = NavLink("终端", "/terminals", order=70)


@router.get("/terminals", response_class=HTMLResponse)
def terminals_page(request: Request, app: AppDep, login: Supervisor):
    return render(request, login, "terminals.html", terminals=dr.terminals(app))
