"""Login and logout. The login form carries a pre-login CSRF token (a cookie of its own).
Staff sign in with their console password, never the PIN a terminal holds; the check
and its back-off per account and client address: kiosk.district.domain.passwords."""
from __future__ import annotations

import secrets
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from kiosk.errors import KioskError, TooManyAttemptsError
from kiosk.district.console.shared.auth import COOKIE, PRE_COOKIE, client_address, same
from kiosk.district.domain import passwords
from kiosk.district.console.shared.deps import AppDep, SupervisorPost, console_state, read_form, refuse
from kiosk.district.console.shared.render import base, render

router = APIRouter()
NAV = None          # no link in the bar (the bar has its own 退出 button)


def _with_pre_cookie(request: Request, resp: Response, pre: str) -> Response:
    resp.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", path=base(request),
                    secure=request.url.scheme == "https", max_age=1800)
    return resp


async def login_form(request: Request) -> FormData:
    """The login form, refused (403) without the pre-login CSRF token of the login page."""
    form = await read_form(request, None, max_files=0, max_fields=10)
    if not same(form.get("csrf_token"), request.cookies.get(PRE_COOKIE)):
        raise refuse(request, None, "请求缺少有效的安全校验码（CSRF），已拒绝。请刷新登录页后重试。", 403)
    return form


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, m: str | None = None):
    pre = secrets.token_urlsafe(24)
    return _with_pre_cookie(request, render(request, None, "login.html", pre=pre, message=m), pre)


@router.post("/login")
def login_post(request: Request, app: AppDep, form: FormData = Depends(login_form)):
    staff_id = str(form.get("staff_id") or "").strip()
    password = str(form.get("password") or "")
    pre = secrets.token_urlsafe(24)

    def again(msg: str, status: int = 401) -> Response:
        return _with_pre_cookie(request, render(request, None, "login.html", status=status, pre=pre, error=msg,
                                                staff_id=staff_id), pre)

    if not staff_id or not password:
        return again("请输入工号和密码")
    try:
        who = passwords.console_login(app, staff_id, password, client_address(request))
    except TooManyAttemptsError as exc:
        resp = again(exc.user_message, 429)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except KioskError as exc:
        return again(exc.user_message)
    login = console_state(request).logins.open(who.staff_id, who.name, who.role)
    from kiosk.db import audit

    with app.db.session() as s:
        audit.record(s, login.staff_id, "console.login", None, role=login.role)
    resp = RedirectResponse(base(request) + "/", status_code=303)
    resp.set_cookie(COOKIE, login.token, httponly=True, samesite="strict", path=base(request),
                    secure=request.url.scheme == "https")
    resp.delete_cookie(PRE_COOKIE, path=base(request))
    return resp


@router.post("/logout")
def logout(request: Request, app: AppDep, post: SupervisorPost):
    console_state(request).logins.close(post.login.token)
    from kiosk.db import audit

    with app.db.session() as s:
        audit.record(s, post.login.staff_id, "console.logout", None)
    resp = RedirectResponse(base(request) + "/login?m=" + quote("已退出登录"), status_code=303)
    resp.delete_cookie(COOKIE, path=base(request))
    return resp
