"""高龄津贴核验: residents of 80 and over with the days a face and a passed liveness
check proved them alive this month. The month's list is kept a few minutes when slow to
compute (shared.cache); it is shown a page at a time, those without any proof first
on request (``?missing=1``); the xlsx / PDF downloads hold everyone."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.errors import KioskError
from kiosk.district.console.shared import views
from kiosk.district.console.shared.cache import results
from kiosk.district.console.shared.deps import AppDep, Supervisor, int_arg, month_arg
from kiosk.district.console.shared.render import NavLink, refused, render

router = APIRouter()
NAV = NavLink("高龄津贴核验", "/proof", order=50)
PAGE = 200


@router.get("/proof", response_class=HTMLResponse)
def proof_page(request: Request, app: AppDep, login: Supervisor, month: str | None = None, page: str | None = None,
               missing: str | None = None, refresh: str | None = None):
    try:
        m = month_arg(month)
        snap = results.get(*views.proof(app, m), refresh=refresh == "1")
        rows = snap.value
        absent = [r for r in rows if r["none_this_month"]]
        listed = absent if missing == "1" else rows
        pages = max(1, -(-len(listed) // PAGE))
        n = int_arg(page, "页码", 1, 1, pages)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    return render(request, login, "proof.html", month=m, rows=listed[(n - 1) * PAGE:n * PAGE], total=len(rows),
                  missing_count=len(absent), only_missing=missing == "1", page=n, pages=pages, note=snap.note)
