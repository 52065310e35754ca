"""对账: orders that broke a district-wide limit while a terminal was offline, for a
supervisor to accept or charge back (the password asked again, audited)."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.errors import KioskError
from kiosk.district.domain import reconcile as rc
from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.auth import client_address
from kiosk.district.console.shared.cache import results
from kiosk.district.console.shared.deps import AppDep, Supervisor, SupervisorPost, month_arg
from kiosk.district.domain import passwords
from kiosk.district.console.shared.render import NavLink, base, refused, render

router = APIRouter()
NAV = NavLink("对账", "/reconcile", order=30)


@router.get("/reconcile", response_class=HTMLResponse)
def reconcile_page(request: Request, app: AppDep, login: Supervisor, month: str | None = None):
    try:
        m = month_arg(month)
        rows = dr.reconciliation_rows(app, m)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    groups = [{"key": g, "title": rc.GROUP_ZH[g], "amount": rc.AMOUNT_ZH[g], "decisions": rc.DECISION_ZH[g],
               "rows": [r for r in rows if r["group"] == g]} for g in (rc.SUBSIDY, rc.BALANCE)]
    for g in groups:
        g["total_fen"] = sum(r["over_fen"] for r in g["rows"])
        g["charged_back_fen"] = sum(r["over_fen"] for r in g["rows"] if r["decision"] == "charge_back")
    return render(request, login, "reconcile.html", month=m, groups=groups)


@router.post("/reconcile/{flag_id}")
def reconcile_decide(flag_id: str, request: Request, app: AppDep, post: SupervisorPost):
    login, form = post.login, post.form
    try:
        back_month = month_arg(str(form.get("month") or "")) if form.get("month") else None
    except KioskError:
        back_month = None
    back = base(request) + "/reconcile" + (f"?month={quote(back_month)}" if back_month else "")
    decision = str(form.get("decision") or "")
    try:
        who = passwords.confirm(app, login.staff_id, str(form.get("password") or ""), "supervisor",
                                client_address(request))
        res = dr.decide_flag(app, flag_id, decision, who, str(form.get("note") or "").strip()[:500] or None)
        results.clear()          # a charge-back changes the monthly report kept for the reports page
        login.flash.append(("ok", f"已记录：{res['resident_id']} {res['decision_zh']}"))
    except KioskError as exc:
        login.flash.append(("error", exc.user_message))
    return RedirectResponse(back, status_code=303)
