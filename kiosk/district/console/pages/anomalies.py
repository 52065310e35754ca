"""异常线索: the month's leads of false claims (kiosk.district.domain.anomalies), each with
its kind, canteen, residents, orders and one line of Chinese; the thresholds in force
(set by an admin: `kiosk report anomalies --set NAME=VALUE --staff ADM`)."""
from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.errors import KioskError
from kiosk.district.domain import anomalies as an
from kiosk.district.console.shared.deps import AppDep, Supervisor, month_arg
from kiosk.district.console.shared.render import NavLink, refused, render

router = APIRouter()
NAV = NavLink("异常线索", "/anomalies", order=32)


@router.get("/anomalies", response_class=HTMLResponse)
def anomalies_page(request: Request, app: AppDep, login: Supervisor, month: str | None = None):
    try:
        m = month_arg(month)
        th = an.thresholds(app)
        rep = an.scan(app, m, th)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    kinds = [{"kind": k, "title": an.KIND_ZH[k], "count": rep["counts"][k]} for k in an.KINDS]
    settings = [{"name": k, "zh": zh, "value": asdict(th)[k], "low": lo, "high": hi}
                for k, (lo, hi, zh) in an.THRESHOLD_INFO.items()]
    from kiosk.district.domain.reports import canteen_names

    with app.db.session(read_only=True) as s:
        canteens = canteen_names(s)
    return render(request, login, "anomalies.html", month=m, kinds=kinds, rows=rep["anomalies"],
                  settings=settings, canteens=canteens)
