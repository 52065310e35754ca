"""关爱巡访: regulars living alone who have not eaten for some days, 200 a page; visits
recorded with a note; the number of days per district (admin)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.errors import KioskError
from kiosk.timeutil import now_cst
from kiosk.district.domain import reports as dr
from kiosk.district.console.shared import views
from kiosk.district.console.shared.cache import results
from kiosk.district.console.shared.deps import AdminPost, AppDep, Supervisor, SupervisorPost, int_arg
from kiosk.district.console.shared.render import NavLink, base, refused, render

router = APIRouter()
NAV = NavLink("关爱巡访", "/welfare", order=40)
PAGE = 200          # alerts per page (the longest without a meal and not yet visited first)


@router.get("/welfare", response_class=HTMLResponse)
def welfare_page(request: Request, app: AppDep, login: Supervisor, page: str | None = None,
                 refresh: str | None = None):
    snap = results.get(*views.welfare(app, now_cst().date()), refresh=refresh == "1")
    alerts = snap.value
    pages = max(1, -(-len(alerts) // PAGE))
    try:
        n = int_arg(page, "页码", 1, 1, pages)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    return render(request, login, "welfare.html", alerts=alerts[(n - 1) * PAGE:n * PAGE], total=len(alerts),
                  page=n, pages=pages, districts=dr.district_days(app), default_days=dr.WELFARE_DEFAULT_DAYS,
                  note=snap.note)


@router.post("/welfare/settings")
def welfare_settings(request: Request, app: AppDep, post: AdminPost):
    login, form = post.login, post.form
    try:
        days = int(str(form.get("days") or "0"))
    except ValueError:
        days = 0
    try:
        dr.set_welfare_days(app, str(form.get("district") or ""), days, login.staff_id)
        results.clear()
        login.flash.append(("ok", f"{form.get('district')}：连续 {days} 天未就餐即提醒巡访"))
    except KioskError as exc:
        login.flash.append(("error", exc.user_message))
    return RedirectResponse(base(request) + "/welfare", status_code=303)


@router.post("/welfare/{resident_id}/visited")
def welfare_visited(resident_id: str, request: Request, app: AppDep, post: SupervisorPost):
    login, form = post.login, post.form
    try:
        dr.mark_visited(app, resident_id, login.staff_id, str(form.get("note") or ""))
        results.clear()          # the visit shows at once
        login.flash.append(("ok", f"已记录对 {resident_id} 的巡访"))
    except KioskError as exc:
        login.flash.append(("error", exc.user_message))
    return RedirectResponse(base(request) + "/welfare", status_code=303)
