"""Pages of the district console. Server-rendered (Jinja2), no JavaScript. Every POST
checks the login's CSRF token; every change is written through a service that
records it in the audit log under the logged-in staff member's id."""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from kiosk.errors import ImportFileError, KioskError, PermissionDeniedError, ValidationError
from kiosk.money import fen_to_yuan
from kiosk.timeutil import now_cst
from kiosk.district.domain import reports as dr
from kiosk.services import import_plan
from kiosk.services.report_files import Money, TableReport, write_report_file, xlsx_bytes
from kiosk.district.console.auth import COOKIE, PRE_COOKIE, ROLE_RANK, Login, Logins, same

log = logging.getLogger("kiosk.console")
TEMPLATES = Path(__file__).with_name("templates")
UPLOAD_MAX_BYTES = 10 * 1024 * 1024
UPLOAD_TTL_S = 3600
SUFFIXES = {"roster": (".csv", ".xlsx"), "menu": (".csv", ".xlsx"), "policy": (".yaml", ".yml", ".json")}
KIND_ZH = {"roster": "居民花名册", "menu": "菜单", "policy": "补贴政策"}
ACTION_ZH = {"add": "新增", "change": "修改", "unchanged": "不变"}
MONTH_RE = re.compile(r"^\d{4}-\d{2}$")


def _proven(who: dict):
    """The staff member whose PIN was just verified, as the services take it: the auth
    service's Actor (kiosk.services.auth) when it gives one."""
    if who.get("actor") is not None:
        return who["actor"]
    from types import SimpleNamespace

    return SimpleNamespace(staff_id=who["staff_id"], name=who.get("name"), role=who["role"])


class _Refusal(Exception):
    """Stop a handler with a response (login page, 403, 400)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def console_router(get_app: Callable, *, idle_minutes: float, clock=time.monotonic) -> APIRouter:
    """The console's router (mount at /console). ``get_app`` is the server's FastAPI
    dependency giving the App context."""
    logins = Logins(idle_minutes * 60, clock=clock)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}
    templates.env.filters["yuan"] = lambda fen: fen_to_yuan(int(fen or 0))
    router = APIRouter()
    router.logins = logins  # type: ignore[attr-defined]  (tests reach the clock through it)

    # ------------------------------------------------------------------ helpers
    def base(request: Request) -> str:
        """The console's own path (/console, under whatever root the server has)."""
        path = request.url.path
        i = path.find("/console")
        return (path[:i] if i >= 0 else "") + "/console"

    def render(request: Request, login: Login | None, template: str, status: int = 200, **ctx) -> HTMLResponse:
        flash, login_flash = [], []
        if login is not None:
            login_flash, login.flash = login.flash, []
        flash = login_flash + ctx.pop("flash", [])
        resp = templates.TemplateResponse(request, template, {"login": login, "root": base(request), "flash": flash,
                                                          "today": now_cst().date(), **ctx}, status_code=status)
        _headers(resp)
        return resp

    def _headers(resp: Response) -> None:
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                   "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")

    def to_login(request: Request, message: str | None = None) -> _Refusal:
        url = base(request) + "/login" + (f"?m={quote(message)}" if message else "")
        return _Refusal(RedirectResponse(url, status_code=303))

    def need(request: Request, role: str = "supervisor") -> Login:
        login, expired = logins.get(request.cookies.get(COOKIE))
        if login is None:
            raise to_login(request, "登录已过期，请重新登录" if expired else None)
        if not login.at_least(role):
            raise _Refusal(render(request, login, "refused.html", status=403,
                                  message=f"此页面需要{ {'admin': '管理员', 'supervisor': '主管'}[role] }权限，"
                                          f"您的角色是{login.role_zh}。"))
        return login

    async def posted(request: Request, role: str = "supervisor") -> tuple[Login, dict]:
        """The logged-in staff and the form of a POST whose CSRF token is right."""
        login = need(request, role)
        try:
            length = int(request.headers.get("content-length") or 0)
        except ValueError:
            length = 0
        if length > UPLOAD_MAX_BYTES + 64 * 1024:     # refused before the body is read
            raise _Refusal(render(request, login, "refused.html", status=413,
                                  message=f"上传的文件超过 {UPLOAD_MAX_BYTES // 1024 // 1024} MB，未处理"))
        form = await request.form(max_files=1, max_fields=200)
        if not same(form.get("csrf_token"), login.csrf):
            raise _Refusal(render(request, login, "refused.html", status=403,
                                  message="请求缺少有效的安全校验码（CSRF），已拒绝。请回到页面重新提交。"))
        return login, form

    def guard(handler):
        """Turn _Refusal into its response (FastAPI handlers stay plain functions)."""
        import functools

        @functools.wraps(handler)
        async def wrapped(*args, **kwargs):
            try:
                return await handler(*args, **kwargs)
            except _Refusal as r:
                return r.response
        return wrapped

    def download(data: bytes, filename: str, media: str) -> Response:
        resp = Response(data, media_type=media, headers={
            "Content-Disposition": f"attachment; filename=\"report{Path(filename).suffix}\"; "
                                   f"filename*=UTF-8''{quote(filename)}"})
        _headers(resp)
        return resp

    def send_report(app, login: Login, rep: TableReport, fmt: str, stem: str, what: str) -> Response:
        if fmt == "xlsx":
            data, media = xlsx_bytes(rep), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        elif fmt == "pdf":
            from kiosk.services.pdf import pdf_bytes

            data, media = pdf_bytes(rep), "application/pdf"
        else:
            raise ValidationError("格式应为 xlsx 或 pdf", detail=f"format {fmt!r}")
        from kiosk.db import audit

        with app.db.session() as s:
            audit.record(s, login.staff_id, "console.export", what, format=fmt, title=rep.title)
        return download(data, f"{stem}.{fmt}", media)

    def month_arg(value: str | None) -> str:
        if not value:
            return f"{now_cst():%Y-%m}"
        if not MONTH_RE.match(value):
            raise ValidationError(f"月份应写成 YYYY-MM，不是「{value}」", detail=f"bad month {value!r}")
        return value

    def day_arg(value: str | None) -> date:
        if not value:
            return now_cst().date()
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"日期应写成 YYYY-MM-DD，不是「{value}」", detail=f"bad date {value!r}") from None

    def uploads(app) -> Path:
        d = Path(app.settings.home) / "console_uploads"
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = time.time()
        for f in d.iterdir():   # uploads not confirmed within the hour are dropped
            try:
                if now - f.stat().st_mtime > UPLOAD_TTL_S:
                    f.unlink()
            except OSError:
                pass
        return d

    # ------------------------------------------------------------------ login
    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, m: str | None = None):
        pre = secrets.token_urlsafe(24)
        resp = render(request, None, "login.html", pre=pre, message=m)
        resp.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", path=base(request),
                        secure=request.url.scheme == "https", max_age=1800)
        return resp

    @router.post("/login")
    async def login_post(request: Request, app=Depends(get_app)):
        form = await request.form(max_files=0, max_fields=10)
        if not same(form.get("csrf_token"), request.cookies.get(PRE_COOKIE)):
            resp = render(request, None, "refused.html", status=403,
                          message="请求缺少有效的安全校验码（CSRF），已拒绝。请刷新登录页后重试。")
            return resp
        staff_id = str(form.get("staff_id") or "").strip()
        pin = str(form.get("pin") or "").strip()
        pre = secrets.token_urlsafe(24)

        def again(msg: str) -> Response:
            r = render(request, None, "login.html", status=401, pre=pre, error=msg, staff_id=staff_id)
            r.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", path=base(request),
                         secure=request.url.scheme == "https", max_age=1800)
            return r

        if not staff_id or not pin:
            return again("请输入工号和 PIN")
        try:
            who = app.residents.authenticate(pin, min_role="supervisor", staff_id=staff_id)
        except KioskError as exc:
            return again(exc.user_message)
        login = logins.open(who["staff_id"], who["name"], who["role"])
        from kiosk.db import audit

        with app.db.session() as s:
            audit.record(s, login.staff_id, "console.login", None, role=login.role)
        resp = RedirectResponse(base(request) + "/", status_code=303)
        resp.set_cookie(COOKIE, login.token, httponly=True, samesite="strict", path=base(request),
                        secure=request.url.scheme == "https")
        resp.delete_cookie(PRE_COOKIE, path=base(request))
        return resp

    @router.post("/logout")
    @guard
    async def logout(request: Request, app=Depends(get_app)):
        login, _ = await posted(request)
        logins.close(login.token)
        from kiosk.db import audit

        with app.db.session() as s:
            audit.record(s, login.staff_id, "console.logout", None)
        resp = RedirectResponse(base(request) + "/login?m=" + quote("已退出登录"), status_code=303)
        resp.delete_cookie(COOKIE, path=base(request))
        return resp

    # ------------------------------------------------------------------ home
    @router.get("/", response_class=HTMLResponse)
    @guard
    async def home(request: Request, app=Depends(get_app)):
        login = need(request)
        reg = dr.face_register(app)
        alerts = dr.welfare_alerts(app)
        open_alerts = [a for a in alerts if not (a.last_visit and a.last_visit["after_last_meal"])]
        terms = dr.terminals(app)
        return render(request, login, "home.html", reg=reg, alerts=len(open_alerts), all_alerts=len(alerts),
                      terminals=len(terms), pending=sum(int(t.get("pending") or 0) for t in terms))

    # ------------------------------------------------------------------ imports
    @router.get("/imports", response_class=HTMLResponse)
    @guard
    async def imports_page(request: Request, app=Depends(get_app)):
        login = need(request, "admin")
        with app.db.session(read_only=True) as s:
            canteens = import_plan.known_canteens(s)
        return render(request, login, "imports.html", canteens=canteens, kinds=KIND_ZH)

    @router.post("/imports/{kind}/preview", response_class=HTMLResponse)
    @guard
    async def import_preview(kind: str, request: Request, app=Depends(get_app)):
        login, form = await posted(request, "admin")
        if kind not in SUFFIXES:
            return render(request, login, "refused.html", status=404, message="没有这种导入")
        up = form.get("file")
        if up is None or not getattr(up, "filename", ""):
            login.flash.append(("error", "请选择要上传的文件"))
            return RedirectResponse(base(request) + "/imports", status_code=303)
        name = Path(str(up.filename)).name[:120]
        suffix = Path(name).suffix.lower()
        if suffix not in SUFFIXES[kind]:
            login.flash.append(("error", f"{KIND_ZH[kind]}应为 {' 或 '.join(SUFFIXES[kind])} 文件，不是「{name}」"))
            return RedirectResponse(base(request) + "/imports", status_code=303)
        data = await up.read(UPLOAD_MAX_BYTES + 1)
        if len(data) > UPLOAD_MAX_BYTES:
            login.flash.append(("error", f"文件「{name}」超过 {UPLOAD_MAX_BYTES // 1024 // 1024} MB，未处理"))
            return RedirectResponse(base(request) + "/imports", status_code=303)
        token = secrets.token_hex(16)
        folder = uploads(app)
        path = folder / f"{token}{suffix}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        canteen = str(form.get("canteen_id") or "").strip() or None
        replace = form.get("replace") == "1"
        meta = {"kind": kind, "name": name, "staff_id": login.staff_id, "canteen_id": canteen, "suffix": suffix}
        fd = os.open(folder / f"{token}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, ensure_ascii=False)
        return _preview(request, app, login, token, meta, path, replace)

    def _plan(app, meta: dict, path: Path, replace: bool):
        # the importer reads the file under its own name, so messages name it as the admin knows it
        named = path.with_name(f"{path.stem}.d") / meta["name"]
        named.parent.mkdir(mode=0o700, exist_ok=True)
        if not named.exists():
            try:
                os.link(path, named)
            except OSError:          # a file system without hard links
                import shutil

                shutil.copyfile(path, named)
        if meta["kind"] == "roster":
            return import_plan.plan_roster(app, named)
        if meta["kind"] == "menu":
            return import_plan.plan_menu(app, named, meta.get("canteen_id"))
        return import_plan.plan_policy(app, named, replace=replace, today=now_cst().date())

    def _preview(request, app, login, token, meta, path, replace, status: int = 200) -> HTMLResponse:
        try:
            plan = _plan(app, meta, path, replace)
        except KioskError as exc:
            probs = getattr(exc, "problems", None) or []
            return render(request, login, "import_preview.html", status=422, plan=None, token=None,
                          kind=meta["kind"], kind_zh=KIND_ZH[meta["kind"]], name=meta["name"],
                          error=exc.user_message, problems=probs, replace=replace)
        if plan.blocked and status == 200:
            status = 422 if plan.problems else 409
        return render(request, login, "import_preview.html", status=status, plan=plan, token=token, kind=meta["kind"],
                      kind_zh=KIND_ZH[meta["kind"]], name=meta["name"], action_zh=ACTION_ZH, replace=replace,
                      error=None, problems=[p.to_json() for p in plan.problems])

    @router.post("/imports/{kind}/confirm", response_class=HTMLResponse)
    @guard
    async def import_confirm(kind: str, request: Request, app=Depends(get_app)):
        login, form = await posted(request, "admin")
        token = str(form.get("token") or "")
        if kind not in SUFFIXES or not re.fullmatch(r"[0-9a-f]{32}", token):
            return render(request, login, "refused.html", status=400, message="预览已失效，请重新上传文件")
        folder = uploads(app)
        meta_path = folder / f"{token}.json"
        if not meta_path.is_file():
            return render(request, login, "refused.html", status=400, message="预览已过期（超过1小时）或已导入，请重新上传文件")
        meta = json.loads(meta_path.read_text())
        if meta["kind"] != kind or meta["staff_id"] != login.staff_id:
            return render(request, login, "refused.html", status=403, message="只能确认自己上传的预览")
        path = folder / f"{token}{meta['suffix']}"
        replace = form.get("replace") == "1"
        try:
            plan = _plan(app, meta, path, replace)   # planned again: the store may have changed since
            if plan.blocked:
                return _preview(request, app, login, token, meta, path, replace)
            result = import_plan.APPLIERS[kind](app, plan, login.staff_id)
        except KioskError as exc:
            login.flash.append(("error", exc.user_message))
            return RedirectResponse(base(request) + "/imports", status_code=303)
        for f in (path, meta_path):
            f.unlink(missing_ok=True)
        d = path.with_name(f"{path.stem}.d")
        if d.is_dir():
            for f in d.iterdir():
                f.unlink()
            d.rmdir()
        login.flash.append(("ok", f"{KIND_ZH[kind]}「{meta['name']}」已导入：新增 {result['created']} 条，"
                                  f"修改 {result['updated']} 条，不变 {result['unchanged']} 条"))
        return RedirectResponse(base(request) + "/imports", status_code=303)

    # ------------------------------------------------------------------ reports
    @router.get("/reports", response_class=HTMLResponse)
    @guard
    async def reports_page(request: Request, app=Depends(get_app), month: str | None = None,
                           day: str | None = None):
        login = need(request)
        try:
            m, d = month_arg(month), day_arg(day)
            monthly = dr.monthly_table(app, m)
            daily = dr.daily_sales(app, d)
            recon = dr.reconciliation(app, m)
        except KioskError as exc:
            return render(request, login, "refused.html", status=400, message=exc.user_message)
        return render(request, login, "reports.html", month=m, day=d.isoformat(), monthly=monthly, daily=daily,
                      recon=recon)

    @router.get("/reports/{which}.{fmt}")
    @guard
    async def report_file(which: str, fmt: str, request: Request, app=Depends(get_app), month: str | None = None,
                          day: str | None = None):
        login = need(request)
        try:
            if which == "monthly":
                m = month_arg(month)
                return send_report(app, login, dr.monthly_table(app, m), fmt, f"助餐补贴结算表_{m}", f"monthly {m}")
            if which == "daily":
                d = day_arg(day)
                return send_report(app, login, dr.daily_sales(app, d), fmt, f"每日销售_{d}", f"daily {d}")
            if which == "reconcile":
                m = month_arg(month)
                return send_report(app, login, dr.reconciliation(app, m), fmt, f"对账清单_{m}", f"reconcile {m}")
            if which == "proof":
                m = month_arg(month)
                return send_report(app, login, dr.proof_table(m, dr.proof_of_life(app, m)), fmt,
                                   f"高龄津贴活体核验_{m}", f"proof-of-life {m}")
            if which == "welfare":
                today = now_cst().date()
                return send_report(app, login, dr.welfare_table(dr.welfare_alerts(app, today), today), fmt,
                                   f"关爱巡访名单_{today}", f"welfare {today}")
            if which == "audit":
                need(request, "admin")
                f = _audit_filters(request)
                return send_report(app, login, dr.audit_table(dr.audit_entries(app, **f, limit=20000), "审计日志"),
                                   fmt, f"审计日志_{now_cst():%Y%m%d}", "audit")
        except KioskError as exc:
            return render(request, login, "refused.html", status=400, message=exc.user_message)
        return render(request, login, "refused.html", status=404, message="没有这个报表")

    # ------------------------------------------------------------------ reconciliation
    @router.get("/reconcile", response_class=HTMLResponse)
    @guard
    async def reconcile_page(request: Request, app=Depends(get_app), month: str | None = None):
        login = need(request)
        try:
            m = month_arg(month)
            rows = dr.reconciliation_rows(app, m)
        except KioskError as exc:
            return render(request, login, "refused.html", status=400, message=exc.user_message)
        return render(request, login, "reconcile.html", month=m, rows=rows, kind_zh=dr.KIND_ZH,
                      decision_zh=dr.DECISION_ZH)

    @router.post("/reconcile/{flag_id}")
    @guard
    async def reconcile_decide(flag_id: str, request: Request, app=Depends(get_app)):
        login, form = await posted(request)
        month = str(form.get("month") or "")
        back = base(request) + "/reconcile" + (f"?month={quote(month)}" if MONTH_RE.match(month) else "")
        decision = str(form.get("decision") or "")
        try:
            who = app.residents.authenticate(str(form.get("pin") or ""), min_role="supervisor",
                                             staff_id=login.staff_id)
            res = dr.decide_flag(app, flag_id, decision, _proven(who), str(form.get("note") or "").strip()[:500] or None)
            login.flash.append(("ok", f"已记录：{res['resident_id']} {dr.DECISION_ZH.get(decision, decision)}"))
        except KioskError as exc:
            login.flash.append(("error", exc.user_message))
        return RedirectResponse(back, status_code=303)

    # ------------------------------------------------------------------ welfare
    @router.get("/welfare", response_class=HTMLResponse)
    @guard
    async def welfare_page(request: Request, app=Depends(get_app)):
        login = need(request)
        alerts = dr.welfare_alerts(app)
        return render(request, login, "welfare.html", alerts=alerts, districts=dr.district_days(app),
                      default_days=dr.WELFARE_DEFAULT_DAYS)

    @router.post("/welfare/{resident_id}/visited")
    @guard
    async def welfare_visited(resident_id: str, request: Request, app=Depends(get_app)):
        login, form = await posted(request)
        try:
            dr.mark_visited(app, resident_id, login.staff_id, str(form.get("note") or ""))
            login.flash.append(("ok", f"已记录对 {resident_id} 的巡访"))
        except KioskError as exc:
            login.flash.append(("error", exc.user_message))
        return RedirectResponse(base(request) + "/welfare", status_code=303)

    @router.post("/welfare/settings")
    @guard
    async def welfare_settings(request: Request, app=Depends(get_app)):
        login, form = await posted(request, "admin")
        try:
            days = int(str(form.get("days") or "0"))
        except ValueError:
            days = 0
        try:
            dr.set_welfare_days(app, str(form.get("district") or ""), days, login.staff_id)
            login.flash.append(("ok", f"{form.get('district')}：连续 {days} 天未就餐即提醒巡访"))
        except KioskError as exc:
            login.flash.append(("error", exc.user_message))
        return RedirectResponse(base(request) + "/welfare", status_code=303)

    # ------------------------------------------------------------------ proof of life
    @router.get("/proof", response_class=HTMLResponse)
    @guard
    async def proof_page(request: Request, app=Depends(get_app), month: str | None = None):
        login = need(request)
        try:
            m = month_arg(month)
            rows = dr.proof_of_life(app, m)
        except KioskError as exc:
            return render(request, login, "refused.html", status=400, message=exc.user_message)
        return render(request, login, "proof.html", month=m, rows=rows,
                      missing=[r for r in rows if r["none_this_month"]])

    # ------------------------------------------------------------------ faces
    @router.get("/faces", response_class=HTMLResponse)
    @guard
    async def faces_page(request: Request, app=Depends(get_app), months: int = 12, resident: str | None = None):
        login = need(request, "admin")
        try:
            reg = dr.face_register(app, months)
        except KioskError as exc:
            return render(request, login, "refused.html", status=400, message=exc.user_message)
        return render(request, login, "faces.html", reg=reg, consents=dr.consents(app, resident or None),
                      resident=resident or "")

    @router.post("/faces/erase", response_class=HTMLResponse)
    @guard
    async def faces_erase(request: Request, app=Depends(get_app)):
        login, form = await posted(request, "admin")
        ids = [str(v) for v in form.getlist("resident_id") if str(v).strip()][:1000]
        if not ids:
            login.flash.append(("error", "请先勾选要删除人脸数据的居民"))
            return RedirectResponse(base(request) + "/faces", status_code=303)
        if form.get("confirm") != "1":
            reg = dr.face_register(app, int(str(form.get("months") or 12)))
            chosen = [u for u in reg["unused"] if u["resident_id"] in set(ids)]
            return render(request, login, "faces_confirm.html", chosen=chosen, months=reg["months"])
        pin = str(form.get("pin") or "")
        try:
            admin = _proven(app.residents.authenticate(pin, min_role="admin", staff_id=login.staff_id))
        except KioskError as exc:
            reg = dr.face_register(app, int(str(form.get("months") or 12)))
            chosen = [u for u in reg["unused"] if u["resident_id"] in set(ids)]
            return render(request, login, "faces_confirm.html", status=403, chosen=chosen, months=reg["months"],
                          error=exc.user_message)
        try:
            done = dr.erase_faces_bulk(app, ids, admin, login.staff_id)
            login.flash.append(("ok", f"已删除 {len(done)} 位居民的人脸数据（模板共 "
                                      f"{sum(int(d.get('templates_removed', 0)) for d in done)} 个）"))
        except KioskError as exc:
            login.flash.append(("error", exc.user_message))
        return RedirectResponse(base(request) + "/faces", status_code=303)

    # ------------------------------------------------------------------ terminals, audit
    @router.get("/terminals", response_class=HTMLResponse)
    @guard
    async def terminals_page(request: Request, app=Depends(get_app)):
        login = need(request)
        return render(request, login, "terminals.html", terminals=dr.terminals(app))

    def _audit_filters(request: Request) -> dict:
        q = request.query_params
        return {"actor": (q.get("actor") or "").strip() or None, "action": (q.get("action") or "").strip() or None,
                "since": day_arg(q.get("since")) if q.get("since") else None,
                "until": day_arg(q.get("until")) if q.get("until") else None}

    @router.get("/audit", response_class=HTMLResponse)
    @guard
    async def audit_page(request: Request, app=Depends(get_app)):
        login = need(request, "admin")
        try:
            f = _audit_filters(request)
        except KioskError as exc:
            return render(request, login, "refused.html", status=400, message=exc.user_message)
        entries = dr.audit_entries(app, **f, limit=500)
        chain = None
        if request.query_params.get("verify") == "1":      # walks the whole log: on request only
            from kiosk.db import audit

            if hasattr(audit, "verify"):
                with app.db.session(read_only=True) as s:
                    chain = audit.verify(s)
        return render(request, login, "audit.html", entries=entries, f={k: (v or "") for k, v in f.items()},
                      query=str(request.url.query), chain=chain)

    return router
