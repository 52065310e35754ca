"""报表: the monthly reimbursement report, daily sales and reconciliation on one page,
and every report of the console as an .xlsx or .pdf download (audited). The page's
monthly report and daily sales are kept a few minutes when slow to compute
(shared.cache: a month of a district takes seconds); downloads are always computed afresh."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.errors import KioskError
from kiosk.timeutil import now_cst
from kiosk.district.domain import reports as dr
from kiosk.district.console.pages.audit import audit_filters
from kiosk.district.console.shared import views
from kiosk.district.console.shared.cache import results
from kiosk.district.console.shared.deps import AppDep, Supervisor, day_arg, month_arg
from kiosk.district.console.shared.render import NavLink, refused, render, send_report

router = APIRouter()
NAV = NavLink("报表", "/reports", order=20)


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, app: AppDep, login: Supervisor, month: str | None = None,
                 day: str | None = None, refresh: str | None = None):
    try:
        m, d = month_arg(month), day_arg(day)
        again = refresh == "1"
        monthly = results.get(*views.monthly(app, m), refresh=again)
        daily = results.get(*views.daily(app, d), refresh=again)
        recon = results.get(*views.reconciliation(app, m), refresh=again)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    return render(request, login, "reports.html", month=m, day=d.isoformat(), monthly=monthly.value,
                  daily=daily.value, recon=recon.value, note=monthly.note or daily.note or recon.note)


@router.get("/reports/{which}.{fmt}")
def report_file(which: str, fmt: str, request: Request, app: AppDep, login: Supervisor,
                month: str | None = None, day: str | None = None):
    try:
        if which == "monthly":
            m = month_arg(month)
            return send_report(app, login, dr.monthly_table(app, m), fmt, f"助餐补贴结算表_{m}", f"monthly {m}")
        if which == "daily":
            d = day_arg(day)
            return send_report(app, login, dr.daily_sales(app, d), fmt, f"每日销售_{d}", f"daily {d}")
        if which == "reconcile":
            m = month_arg(month)
            return send_report(app, login, dr.reconciliation(app, m), fmt, f"对账清单_{m}", f"reconcile {m}")
        if which == "proof":
            m = month_arg(month)
            return send_report(app, login, dr.proof_table(m, dr.proof_of_life(app, m)), fmt,
                               f"高龄津贴活体核验_{m}", f"proof-of-life {m}")
        if which == "welfare":
            today = now_cst().date()
            return send_report(app, login, dr.welfare_table(dr.welfare_alerts(app, today), today), fmt,
                               f"关爱巡访名单_{today}", f"welfare {today}")
        if which == "audit":
            if not login.at_least("admin"):
                return refused(request, login, f"此页面需要管理员权限，您的角色是{login.role_zh}。", 403)
            f = audit_filters(request)
            return send_report(app, login, dr.audit_table(dr.audit_entries(app, **f, limit=20000), "审计日志"),
                               fmt, f"审计日志_{now_cst():%Y%m%d}", "audit")
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    return refused(request, login, "没有这个报表", 404)
