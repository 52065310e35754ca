"""待核查: what terminals pushed that the server did not apply (amounts that are not the
server's own, acts outside the terminal's canteen, rows it cannot apply), each with its
reason, for an admin to accept (applied once) or reject (never applied); the password is
asked again and the decision audited (kiosk.district.domain.quarantine)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.district.console.shared.auth import client_address
from kiosk.district.console.shared.cache import results
from kiosk.district.console.shared.deps import Admin, AdminPost, AppDep
from kiosk.district.console.shared.render import NavLink, base, render
from kiosk.district.domain import passwords, quarantine as dq
from kiosk.errors import KioskError
from kiosk.limits import NOTE_MAX_CHARS

router = APIRouter()
NAV = NavLink("待核查", "/quarantine", role="admin", order=35)
SHOWN = ("waiting", "accepted", "rejected")


@router.get("/quarantine", response_class=HTMLResponse)
def quarantine_page(request: Request, app: AppDep, login: Admin, status: str | None = None):
    shown = status if status in SHOWN else "waiting"
    from kiosk.district.domain.reports import canteen_names, terminal_labels

    with app.db.session(read_only=True) as s:
        canteens = canteen_names(s)
        terminals = terminal_labels(s)
    return render(request, login, "quarantine.html", items=dq.list_quarantine(app, status=shown), shown=shown,
                  status_zh=dq.STATUS_ZH, canteens=canteens, terminals=terminals)


@router.post("/quarantine/{op_id:path}")
def quarantine_decide(op_id: str, request: Request, app: AppDep, post: AdminPost):
    login, form = post.login, post.form
    decision = str(form.get("decision") or "")
    try:
        who = passwords.confirm(app, login.staff_id, str(form.get("password") or ""), "admin",
                                client_address(request))
        note = str(form.get("note") or "").strip()[:NOTE_MAX_CHARS] or None
        res = dq.decide(app, op_id, decision, who, note)
        results.clear()          # an accepted push adds orders: the kept month results are old
        login.flash.append(("ok", f"已记录：{res['op_id'][:8]} {res['status_zh']}"))
    except KioskError as exc:
        login.flash.append(("error", exc.user_message))
    return RedirectResponse(base(request) + "/quarantine", status_code=303)
