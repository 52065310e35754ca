"""终端: the district's terminals, when each last pushed and pulled, orders waiting; and the
district's offline limits and blocked list they receive at their next sync, which an admin
sets here (the password asked again, audited: kiosk.services.offline_limits) or with
`kiosk offline`."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.auth import client_address
from kiosk.district.console.shared.deps import AdminPost, AppDep, Supervisor
from kiosk.district.console.shared.render import NavLink, base, render
from kiosk.errors import KioskError

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
               "per_sale_value": "" if lim["per_sale_fen"] is None else yuan(lim["per_sale_fen"]),
               "per_day_value": "" if lim["per_day_fen"] is None else yuan(lim["per_day_fen"]),
               "blocked": [{**b, "kind_zh": "助老卡" if b["kind"] == "card" else "居民",
                            "at": f"{to_cst(datetime.fromisoformat(b['blocked_at'])):%Y-%m-%d %H:%M}"}
                           for b in lim["blocked"]]}
    return render(request, login, "terminals.html", terminals=dr.terminals(app), offline=offline)


def _admin(request: Request, app, post: AdminPost):
    from kiosk.district.domain import passwords

    return passwords.confirm(app, post.login.staff_id, str(post.form.get("password") or ""), "admin",
                             client_address(request))


@router.post("/terminals/offline")
def offline_set(request: Request, app: AppDep, post: AdminPost):
    """The offline limits (empty: no cap), the password again; audited ``offline.set``."""
    from kiosk.services import offline_limits as ol

    form = post.form
    try:
        given = {"per_sale_fen": ol.check_cap(str(form.get("per_sale") or ""), "离线每餐限额"),
                 "per_day_fen": ol.check_cap(str(form.get("per_day") or ""), "离线每天限额"),
                 "subsidy_offline_s": ol.check_hours(str(form.get("subsidy_hours") or "24"))}
        ol.set_limits(app, _admin(request, app, post), **given)
        post.login.flash.append(("ok", "已保存断网时的限额，终端下次同步时生效"))
    except KioskError as exc:
        post.login.flash.append(("error", exc.user_message))
    return RedirectResponse(base(request) + "/terminals#offline-limits", status_code=303)


@router.post("/terminals/blocked")
def offline_block(request: Request, app: AppDep, post: AdminPost):
    """A card or a resident on (``action=block``) or off the blocked list; audited."""
    from kiosk.services import offline_limits as ol

    form = post.form
    kind, value = str(form.get("kind") or ""), str(form.get("value") or "")
    try:
        if str(form.get("action") or "block") == "unblock":
            res = ol.unblock(app, _admin(request, app, post), kind, value)
        else:
            res = ol.block(app, _admin(request, app, post), kind, value, str(form.get("reason") or ""))
        what = "助老卡" if res["kind"] == "card" else "居民"
        post.login.flash.append(("ok", f"{what} {res['value']} {'已列入挂失名单' if res['blocked'] else '已移出挂失名单'}，"
                                       f"终端下次同步时生效"))
    except KioskError as exc:
        post.login.flash.append(("error", exc.user_message))
    return RedirectResponse(base(request) + "/terminals#offline-limits", status_code=303)
