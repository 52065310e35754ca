"""终端: the district's terminals, when each last pushed and pulled, orders waiting; and the
district's offline limits and blocked list they received (set with `kiosk offline`)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.deps import AppDep, Supervisor
from kiosk.district.console.shared.render import NavLink, render

router = APIRouter()
NAV = NavLink("终端", "/terminals", order=70)


@router.get("/terminals", response_class=HTMLResponse)
def terminals_page(request: Request, app: AppDep, login: Supervisor):
    from kiosk.money import yuan
    from kiosk.services.offline_limits import describe
    from kiosk.timeutil import to_cst

    lim = describe(app)
    offline = {"per_sale": "不限" if lim["per_sale_fen"] is None else f"{yuan(lim['per_sale_fen'])} 元",
               "per_day": "不限" if lim["per_day_fen"] is None else f"{yuan(lim['per_day_fen'])} 元",
               "subsidy_hours": f"{lim['subsidy_offline_s'] / 3600:g}", "set_by": lim["set_by"],
               "blocked": [{**b, "kind_zh": "助老卡" if b["kind"] == "card" else "居民",
                            "at": f"{to_cst(datetime.fromisoformat(b['blocked_at'])):%Y-%m-%d %H:%M}"}
                           for b in lim["blocked"]]}
    return render(request, login, "terminals.html", terminals=dr.terminals(app), offline=offline)
