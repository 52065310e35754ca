"""概览: what a district head opens first (kiosk.district.domain.overview): today's meals
per canteen, this month's subsidy against the budget an admin sets (the form here, the
password asked again, audited ``budget.set``; also ``kiosk report budget``), meals per
day per canteen over 30 days as an SVG chart drawn here (no JavaScript), and the
undecided items (reconciliation, quarantine, anomaly leads) as counts linking to their pages."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.district.console.shared.auth import client_address
from kiosk.district.console.shared.deps import AdminPost, AppDep, Supervisor, day_arg
from kiosk.district.console.shared.render import NavLink, base, refused, render
from kiosk.district.domain import overview as ov
from kiosk.district.domain.reports import FILING_LINE
from kiosk.district.domain import passwords
from kiosk.errors import KioskError, ValidationError
from kiosk.money import fen_to_yuan

router = APIRouter()
NAV = NavLink("概览", "/", order=0)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, app: AppDep, login: Supervisor, day: str | None = None):
    """``day``: the overview as of that day (default today; a bad day: 400)."""
    try:
        today = day_arg(day)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    ov.background_counts(app, today, wait=0)          # the whole-month scan starts while the rest is counted
    o = ov.overview(app, today)
    slow = ov.background_counts(app, today)
    return render(request, login, "home.html", o=o, chart=ov.chart(o.days, o.series), slow=slow,
                  filing_line=FILING_LINE,
                  budget_input=fen_to_yuan(o.budget_fen) if o.budget_fen else "")


@router.post("/budget")
def budget_set(request: Request, app: AppDep, post: AdminPost):
    """A bad amount: 400; a wrong password: 403 (both with the reason in Chinese)."""
    login, form = post.login, post.form
    try:
        fen = ov.parse_budget(form.get("budget"))
        who = passwords.confirm(app, login.staff_id, str(form.get("password") or ""), "admin",
                                client_address(request))
        ov.set_budget(app, fen, who)
    except KioskError as exc:
        return refused(request, login, exc.user_message, 400 if isinstance(exc, ValidationError) else 403)
    login.flash.append(("ok", f"每月补贴预算已设为 {fen_to_yuan(fen)} 元" if fen else "每月补贴预算已清除"))
    return RedirectResponse(base(request) + "/", status_code=303)
