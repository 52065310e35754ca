"""食堂 (admin): the district's canteens, and a new one added (audited ``canteen.add``):
its menu imports at once, before any terminal exists."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.errors import KioskError
from kiosk.services.canteen import add_canteen, list_canteens, rename_canteen
from kiosk.district.console.shared.deps import Admin, AdminPost, AppDep
from kiosk.district.console.shared.render import NavLink, base, render

router = APIRouter()
NAV = NavLink("食堂", "/canteens", role="admin", order=12)


@router.get("/canteens", response_class=HTMLResponse)
def canteens_page(request: Request, app: AppDep, login: Admin):
    return render(request, login, "canteens.html", canteens=list_canteens(app))


@router.post("/canteens", response_class=HTMLResponse)
def canteen_add(request: Request, app: AppDep, post: AdminPost):
    login, form = post.login, post.form
    fields = {k: str(form.get(k) or "").strip() for k in ("canteen_id", "name", "district")}
    try:
        res = add_canteen(app, fields["canteen_id"], name=fields["name"], district=fields["district"] or None,
                          actor=login.staff_id)
    except KioskError as exc:
        return render(request, login, "canteens.html", status=400, canteens=list_canteens(app), form=fields,
                      error=exc.user_message)
    login.flash.append(("ok", f"已新增食堂 {res['id']}（{res['name']}）：现在可以导入它的菜单"))
    return RedirectResponse(base(request) + "/canteens", status_code=303)


@router.post("/canteens/rename", response_class=HTMLResponse)
def canteen_rename(request: Request, app: AppDep, post: AdminPost):
    """A canteen's new name (audited ``canteen.rename``); a bad one: 400, an unknown canteen: 404."""
    from kiosk.errors import NotFoundError

    login, form = post.login, post.form
    cid, name = str(form.get("canteen_id") or "").strip(), str(form.get("name") or "").strip()
    try:
        res = rename_canteen(app, cid, name=name, actor=login.staff_id)
    except KioskError as exc:
        return render(request, login, "canteens.html", status=404 if isinstance(exc, NotFoundError) else 400,
                      canteens=list_canteens(app), rename={"canteen_id": cid, "name": name},
                      rename_error=exc.user_message)
    login.flash.append(("ok", f"食堂 {res['id']} 已改名为「{res['name']}」"))
    return RedirectResponse(base(request) + "/canteens", status_code=303)
