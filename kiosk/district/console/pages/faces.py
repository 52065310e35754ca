"""人脸数据 (admin): the register of stored faces against the filing line, consents,
and the bulk erasure of templates unused for some months (the password asked again, audited)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.errors import KioskError
from kiosk.district.domain import reports as dr
from kiosk.district.console.shared.auth import client_address
from kiosk.district.console.shared.deps import Admin, AdminPost, AppDep, int_arg
from kiosk.district.domain import passwords
from kiosk.district.console.shared.render import NavLink, base, refused, render

router = APIRouter()
NAV = NavLink("人脸数据", "/faces", role="admin", order=60)
MONTHS = ("未使用月数", 12, 1, 120)      # what, default, lowest, highest


@router.get("/faces", response_class=HTMLResponse)
def faces_page(request: Request, app: AppDep, login: Admin, months: str | None = None, resident: str | None = None):
    try:
        reg = dr.face_register(app, int_arg(months, *MONTHS))
    except KioskError as exc:
        return refused(request, login, exc.user_message)
    return render(request, login, "faces.html", reg=reg, consents=dr.consents(app, resident or None),
                  resident=resident or "")


@router.post("/faces/erase", response_class=HTMLResponse)
def faces_erase(request: Request, app: AppDep, post: AdminPost):
    login, form = post.login, post.form
    ids = [str(v) for v in form.getlist("resident_id") if str(v).strip()][:1000]
    if not ids:
        login.flash.append(("error", "请先勾选要删除人脸数据的居民"))
        return RedirectResponse(base(request) + "/faces", status_code=303)
    try:
        months = int_arg(form.get("months"), *MONTHS)
    except KioskError as exc:
        return refused(request, login, exc.user_message)

    def confirm_page(status: int = 200, error: str | None = None) -> HTMLResponse:
        reg = dr.face_register(app, months)
        chosen = [u for u in reg["unused"] if u["resident_id"] in set(ids)]
        return render(request, login, "faces_confirm.html", status=status, chosen=chosen, months=reg["months"],
                      error=error)

    if form.get("confirm") != "1":
        return confirm_page()
    try:
        admin = passwords.confirm(app, login.staff_id, str(form.get("password") or ""), "admin",
                                  client_address(request))
    except KioskError as exc:
        return confirm_page(403, exc.user_message)
    try:
        done = dr.erase_faces_bulk(app, ids, admin, login.staff_id)
        login.flash.append(("ok", f"已删除 {len(done)} 位居民的人脸数据（模板共 "
                                  f"{sum(int(d.get('templates_removed', 0)) for d in done)} 个）"))
    except KioskError as exc:
        login.flash.append(("error", exc.user_message))
    return RedirectResponse(base(request) + "/faces", status_code=303)
