"""概览: welfare alerts, stored faces against the filing line, terminals."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.deps import AppDep, Supervisor
from kiosk.district.console.shared.render import NavLink, render

router = APIRouter()
NAV = NavLink("概览", "/", order=0)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, app: AppDep, login: Supervisor):
    reg = dr.face_register(app)
    alerts = dr.welfare_alerts(app)
    open_alerts = [a for a in alerts if not (a.last_visit and a.last_visit["after_last_meal"])]
    terms = dr.terminals(app)
    return render(request, login, "home.html", reg=reg, alerts=len(open_alerts), all_alerts=len(alerts),
                  terminals=len(terms), pending=sum(int(t.get("pending") or 0) for t in terms))
