"""审计日志 (admin): the audit log filtered by actor, action and dates; the chain
verified on request."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.errors import KioskError
from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.deps import Admin, AppDep, day_arg
from kiosk.district.console.shared.render import NavLink, refused, render

router = APIRouter()
NAV = NavLink("审计日志", "/audit", role="admin", order=90)


def audit_filters(request: Request) -> dict:
    """The audit log's filters from the query (ValidationError for a bad date)."""
    q = request.query_params
    return {"actor": (q.get("actor") or "").strip() or None, "action": (q.get("action") or "").strip() or None,
            "since": day_arg(q.get("since"), "起始日期") if q.get("since") else None,
            "until": day_arg(q.get("until"), "截止日期") if q.get("until") else None}


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, app: AppDep, login: Admin):
    try:
        f = audit_filters(request)
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    entries = dr.audit_entries(app, **f, limit=500)
    chain = None
    if request.query_params.get("verify") == "1":      # walks the whole log: on request only
        from kiosk.db import audit

        with app.db.session(read_only=True) as s:
            chain = audit.verify(s)
    from kiosk.services.audit_words import ACTION_ZH, PREFIX_ZH

    heads = {c.split(".", 1)[0] for c in ACTION_ZH}
    actions = sorted([(p, f"{zh}（全部）") for p, zh in PREFIX_ZH.items() if p in heads] + list(ACTION_ZH.items()))
    if f["action"] and f["action"] not in dict(actions):
        actions.insert(0, (f["action"], f["action"]))
    return render(request, login, "audit.html", entries=entries, f={k: (v or "") for k, v in f.items()},
                  actions=actions,
                  query=str(request.url.query), chain=chain)
