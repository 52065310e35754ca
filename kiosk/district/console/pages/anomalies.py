"""异常线索: the month's leads of false claims (kiosk.district.domain.anomalies), each with
its kind, canteen, residents, orders and one line of Chinese; the thresholds in force
(set by an admin: `kiosk report anomalies --set NAME=VALUE --staff ADM`). A month's scan
takes seconds at the size of a district: it is kept a few minutes (shared.cache), and a
kind with many leads shows its first ones, the rest a page at a time (``?kind=&page=``)."""
from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.errors import KioskError
from kiosk.district.domain import anomalies as an
from kiosk.district.console.shared import views
from kiosk.district.console.shared.cache import results
from kiosk.district.console.shared.deps import AppDep, Supervisor, int_arg, month_arg
from kiosk.district.console.shared.render import NavLink, refused, render

router = APIRouter()
NAV = NavLink("异常线索", "/anomalies", order=32)
FIRST_PER_KIND = 50       # leads of each kind on the month's page
PAGE = 200                # leads of one kind per page (?kind=)


def month_scan(app, month: str, th: an.Thresholds, refresh: bool = False):
    """The month's scan, kept a few minutes when it was slow (a Snapshot)."""
    return results.get(*views.anomalies(app, month, th), refresh=refresh)


@router.get("/anomalies", response_class=HTMLResponse)
def anomalies_page(request: Request, app: AppDep, login: Supervisor, month: str | None = None,
                   kind: str | None = None, page: str | None = None, refresh: str | None = None):
    try:
        m = month_arg(month)
        th = an.thresholds(app)
        snap = month_scan(app, m, th, refresh=refresh == "1")
        rep = snap.value
        kind = kind if kind in an.KINDS else None
        pages = max(1, -(-rep["counts"][kind] // PAGE)) if kind else 1
        n = int_arg(page, "页码", 1, 1, pages)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    kinds = [{"kind": k, "title": an.KIND_ZH[k], "count": rep["counts"][k]} for k in an.KINDS]
    if kind:
        rows = [r for r in rep["anomalies"] if r["kind"] == kind][(n - 1) * PAGE:n * PAGE]
        more = {}
    else:
        seen: dict[str, int] = {}
        rows = []
        for r in rep["anomalies"]:
            seen[r["kind"]] = seen.get(r["kind"], 0) + 1
            if seen[r["kind"]] <= FIRST_PER_KIND:
                rows.append(r)
        more = {k: c - FIRST_PER_KIND for k, c in seen.items() if c > FIRST_PER_KIND}
    settings = [{"name": k, "zh": zh, "value": asdict(th)[k], "low": lo, "high": hi}
                for k, (lo, hi, zh) in an.THRESHOLD_INFO.items()]
    from kiosk.district.domain.reports import canteen_names

    with app.db.session(read_only=True) as s:
        canteens = canteen_names(s)
    return render(request, login, "anomalies.html", month=m, kinds=kinds, rows=rows, settings=settings,
                  kind=kind, kind_zh=an.KIND_ZH.get(kind or ""), page=n, pages=pages, more=more, note=snap.note,
                  canteens=canteens)
