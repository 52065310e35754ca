"""FastAPI dependencies of the console's pages.

A page's handler declares what it needs and gets it checked before it runs::

    from kiosk.district.console.shared.deps import AdminPost, AppDep, Supervisor

    @router.get("/x", response_class=HTMLResponse)
    def x(request: Request, app: AppDep, login: Supervisor): ...     # logged in, supervisor or admin

    @router.post("/x")
    def x_post(request: Request, app: AppDep, post: AdminPost): ...  # admin, CSRF checked; post.form

``Supervisor`` / ``Admin``: the logged-in staff member (a ``Login``) of at least that role;
without a live login the browser is sent to the login page, with too low a role it gets
403. ``SupervisorPost`` / ``AdminPost``: the same, plus the POSTed form, read only
after the login is checked and refused (413) when too large, and refused (403) without
the login's CSRF token. A dependency refuses by raising ``Refusal`` (the response to
send), which ``kiosk.district.console.mount`` turns into that response.

Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, so their
synchronous work (SQLAlchemy, PDF and xlsx rendering, PIN hashing) never blocks the
event loop that serves the terminals' pushes. Only reading a request body is ``async``,
and it happens here, in the dependencies.
"""
from __future__ import annotations

from datetime import date, datetime
from dataclasses import dataclass, field
from typing import Annotated, Callable
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from kiosk.district.api.deps import get_app
from kiosk.district.console.shared.auth import COOKIE, Login, Logins
from kiosk.district.console.shared.render import NavLink, base, render
from kiosk.db.models import utcnow
from kiosk.errors import ValidationError
from kiosk.services.context import App
from kiosk.timeutil import now_cst, parse_day, parse_month

UPLOAD_MAX_BYTES = 10 * 1024 * 1024
FORM_MAX_FIELDS = 200


class Refusal(Exception):
    """Raised by a dependency or a handler: stop and send ``response`` (login page, 403, 400)."""

    def __init__(self, response: Response) -> None:
        super().__init__(getattr(response, "status_code", None))
        self.response = response


@dataclass
class ConsoleState:
    """The console's state on the server app (``app.state.console``): the logins (rows
    of the store, shared by every server process) and the navigation bar's links."""
    logins: Logins
    nav: list[NavLink] = field(default_factory=list)


def console_state(request: Request) -> ConsoleState:
    return request.app.state.console


AppDep = Annotated[App, Depends(get_app)]
ROLE_ZH_NEEDED = {"admin": "管理员", "supervisor": "主管"}


def to_login(request: Request, message: str | None = None) -> Refusal:
    url = base(request) + "/login" + (f"?m={quote(message)}" if message else "")
    return Refusal(RedirectResponse(url, status_code=303))


def refuse(request: Request, login: Login | None, message: str, status: int = 400) -> Refusal:
    return Refusal(render(request, login, "refused.html", status=status, message=message))


def login_of(request: Request, role: str) -> Login:
    """The live login of the request's cookie, of at least ``role`` (else a Refusal)."""
    login, expired = console_state(request).logins.get(request.cookies.get(COOKIE))
    if login is None:
        raise to_login(request, "登录已过期，请重新登录" if expired else None)
    if not login.at_least(role):
        raise refuse(request, login, f"此页面需要{ROLE_ZH_NEEDED[role]}权限，您的角色是{login.role_zh}。", 403)
    return login


def supervisor_login(request: Request) -> Login:
    return login_of(request, "supervisor")


def admin_login(request: Request) -> Login:
    return login_of(request, "admin")


Supervisor = Annotated[Login, Depends(supervisor_login)]
Admin = Annotated[Login, Depends(admin_login)]


@dataclass
class Posted:
    """A POST whose login and CSRF token were checked: who sent it and its form."""
    login: Login
    form: FormData


async def read_form(request: Request, login: Login | None, *, max_files: int = 1,
                    max_fields: int = FORM_MAX_FIELDS) -> FormData:
    """The request's form; a body announced larger than an upload may be is refused unread."""
    try:
        length = int(request.headers.get("content-length") or 0)
    except ValueError:
        length = 0
    if length > UPLOAD_MAX_BYTES + 64 * 1024:
        raise refuse(request, login, f"上传的文件超过 {UPLOAD_MAX_BYTES // 1024 // 1024} MB，未处理", 413)
    return await request.form(max_files=max_files, max_fields=max_fields)


async def _posted(request: Request, login: Login) -> Posted:
    from kiosk.district.console.shared.auth import same

    form = await read_form(request, login)
    if not same(form.get("csrf_token"), login.csrf):
        raise refuse(request, login, "请求缺少有效的安全校验码（CSRF），已拒绝。请回到页面重新提交。", 403)
    return Posted(login, form)


async def supervisor_post(request: Request, login: Supervisor) -> Posted:
    return await _posted(request, login)


async def admin_post(request: Request, login: Admin) -> Posted:
    return await _posted(request, login)


SupervisorPost = Annotated[Posted, Depends(supervisor_post)]
AdminPost = Annotated[Posted, Depends(admin_post)]


def new_state(db, idle_minutes: float, clock: Callable[[], datetime] = utcnow) -> ConsoleState:
    """The console's state over the store ``db`` (its logins are rows there)."""
    return ConsoleState(Logins(db, idle_minutes * 60, clock=clock))


# ---------------------------------------------------------------------- query parameters
def month_arg(value: str | None) -> str:
    """``YYYY-MM`` from a query or form value (this month when empty); ValidationError when bad."""
    return f"{parse_month(value) if value else now_cst():%Y-%m}"


def day_arg(value: str | None, what: str = "日期") -> date:
    """A date from a query or form value (today when empty); ValidationError when bad."""
    return parse_day(value, what) if value else now_cst().date()


def int_arg(value: object, what: str, default: int, low: int, high: int) -> int:
    """A whole number from a query or form value, within [low, high]; ValidationError when not."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ValidationError(f"{what}应为 {low} 到 {high} 之间的整数，不是「{text[:40]}」",
                              detail=f"{what}: {text[:40]!r} not an integer in [{low}, {high}]")
    return int(text)
