"""Rendering for the console's pages: the Jinja2 templates (kiosk/district/console/templates),
the security headers every answer carries, the navigation bar, file downloads and
exported reports (audited)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from kiosk.errors import ValidationError
from kiosk.money import fen_to_yuan
from kiosk.services.report_files import TableReport, xlsx_bytes
from kiosk.timeutil import now_cst
from kiosk.district.console.shared.auth import Login

PREFIX = "/console"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}
templates.env.filters["yuan"] = lambda fen: fen_to_yuan(int(fen or 0))


@dataclass(frozen=True)
class NavLink:
    """A page's link in the navigation bar: shown to ``role`` and above, in ``order``."""
    label: str
    path: str                 # under the console's root: "/" or "/reports"
    role: str = "supervisor"
    order: int = 100

    def on(self, here: str, root: str) -> bool:
        return here == root + "/" if self.path == "/" else here.startswith(root + self.path)


def base(request: Request) -> str:
    """The console's own path (/console, under whatever root the server has)."""
    path = request.url.path
    i = path.find(PREFIX)
    return (path[:i] if i >= 0 else "") + PREFIX


def security_headers(resp: Response) -> Response:
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = ("default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                               "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
    return resp


def nav_links(request: Request, login: Login | None) -> list[NavLink]:
    if login is None:
        return []
    state = getattr(request.app.state, "console", None)
    return [n for n in (state.nav if state is not None else ()) if login.at_least(n.role)]


def render(request: Request, login: Login | None, template: str, status: int = 200, **ctx) -> HTMLResponse:
    """A page from its template, with the login's flash messages (shown once) and the nav bar."""
    login_flash = login.flash.take() if login is not None else []
    flash = login_flash + ctx.pop("flash", [])
    resp = templates.TemplateResponse(request, template, {
        "login": login, "root": base(request), "flash": flash, "today": now_cst().date(),
        "nav": nav_links(request, login), **ctx}, status_code=status)
    return security_headers(resp)


def refused(request: Request, login: Login | None, message: str, status: int = 400) -> HTMLResponse:
    """The page saying why a request was not done."""
    return render(request, login, "refused.html", status=status, message=message)


def download(data: bytes, filename: str, media: str) -> Response:
    resp = Response(data, media_type=media, headers={
        "Content-Disposition": f"attachment; filename=\"report{Path(filename).suffix}\"; "
                               f"filename*=UTF-8''{quote(filename)}"})
    return security_headers(resp)


def send_report(app, login: Login, rep: TableReport, fmt: str, stem: str, what: str) -> Response:
    """A report as an .xlsx or .pdf download; the export is audited. Synchronous (the
    PDF takes a while): call it from a ``def`` handler, which FastAPI runs in a thread."""
    if fmt == "xlsx":
        data, media = xlsx_bytes(rep), XLSX
    elif fmt == "pdf":
        from kiosk.services.pdf import pdf_bytes

        data, media = pdf_bytes(rep), "application/pdf"
    else:
        raise ValidationError("格式应为 xlsx 或 pdf", detail=f"format {fmt!r}")
    from kiosk.db import audit

    with app.db.session() as s:
        audit.record(s, login.staff_id, "console.export", what, format=fmt, title=rep.title)
    return download(data, f"{stem}.{fmt}", media)
