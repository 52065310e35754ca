"""导入 (admin): roster, menu and policy files, previewed (a dry run naming every bad row)
and applied only when the admin confirms the preview."""
from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from kiosk.errors import KioskError
from kiosk.services import import_plan
from kiosk.timeutil import now_cst
from kiosk.district.console.shared.auth import Login
from kiosk.district.console.shared.deps import UPLOAD_MAX_BYTES, Admin, AdminPost, AppDep
from kiosk.district.console.shared.render import NavLink, base, refused, render

router = APIRouter()
NAV = NavLink("导入", "/imports", role="admin", order=10)

UPLOAD_TTL_S = 3600
SUFFIXES = {"roster": (".csv", ".xlsx"), "menu": (".csv", ".xlsx"), "policy": (".yaml", ".yml", ".json")}
IMPORT_ZH = {"roster": "居民花名册", "menu": "菜单", "policy": "补贴政策"}
ACTION_ZH = {"add": "新增", "change": "修改", "unchanged": "不变"}


def uploads(app) -> Path:
    """The folder of uploads waiting for confirmation; those older than an hour are dropped."""
    d = Path(app.settings.home) / "console_uploads"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = time.time()
    for f in d.iterdir():
        try:
            if now - f.stat().st_mtime > UPLOAD_TTL_S:
                f.unlink()
        except OSError:
            pass
    return d


@router.get("/imports", response_class=HTMLResponse)
def imports_page(request: Request, app: AppDep, login: Admin):
    with app.db.session(read_only=True) as s:
        from kiosk.district.domain.reports import canteen_names

        names = canteen_names(s)
        canteens = [(c, names.get(c)) for c in import_plan.known_canteens(s)]
    return render(request, login, "imports.html", canteens=canteens, kinds=IMPORT_ZH)


def _back(request: Request, login: Login, message: str) -> RedirectResponse:
    login.flash.append(("error", message))
    return RedirectResponse(base(request) + "/imports", status_code=303)


@router.post("/imports/{kind}/preview", response_class=HTMLResponse)
def import_preview(kind: str, request: Request, app: AppDep, post: AdminPost):
    login, form = post.login, post.form
    if kind not in SUFFIXES:
        return refused(request, login, "没有这种导入", 404)
    up = form.get("file")
    if up is None or not getattr(up, "filename", ""):
        return _back(request, login, "请选择要上传的文件")
    name = Path(str(up.filename)).name[:120]
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES[kind]:
        return _back(request, login, f"{IMPORT_ZH[kind]}应为 {' 或 '.join(SUFFIXES[kind])} 文件，不是「{name}」")
    data = up.file.read(UPLOAD_MAX_BYTES + 1)
    if len(data) > UPLOAD_MAX_BYTES:
        return _back(request, login, f"文件「{name}」超过 {UPLOAD_MAX_BYTES // 1024 // 1024} MB，未处理")
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
                      kind=meta["kind"], kind_zh=IMPORT_ZH[meta["kind"]], name=meta["name"],
                      error=exc.user_message, problems=probs, replace=replace)
    if plan.blocked and status == 200:
        status = 422 if plan.problems else 409
    return render(request, login, "import_preview.html", status=status, plan=plan, token=token, kind=meta["kind"],
                  kind_zh=IMPORT_ZH[meta["kind"]], name=meta["name"], action_zh=ACTION_ZH, replace=replace,
                  error=None, problems=plan.problems_json())


@router.post("/imports/{kind}/confirm", response_class=HTMLResponse)
def import_confirm(kind: str, request: Request, app: AppDep, post: AdminPost):
    login, form = post.login, post.form
    token = str(form.get("token") or "")
    if kind not in SUFFIXES or not re.fullmatch(r"[0-9a-f]{32}", token):
        return refused(request, login, "预览已失效，请重新上传文件")
    folder = uploads(app)
    meta_path = folder / f"{token}.json"
    if not meta_path.is_file():
        return refused(request, login, "预览已过期（超过1小时）或已导入，请重新上传文件")
    meta = json.loads(meta_path.read_text())
    if meta["kind"] != kind or meta["staff_id"] != login.staff_id:
        return refused(request, login, "只能确认自己上传的预览", 403)
    path = folder / f"{token}{meta['suffix']}"
    replace = form.get("replace") == "1"
    try:
        plan = _plan(app, meta, path, replace)   # planned again: the store may have changed since
        if plan.blocked:
            return _preview(request, app, login, token, meta, path, replace)
        result = import_plan.APPLIERS[kind](app, plan, login.staff_id)
    except KioskError as exc:
        return _back(request, login, exc.user_message)
    for f in (path, meta_path):
        f.unlink(missing_ok=True)
    d = path.with_name(f"{path.stem}.d")
    if d.is_dir():
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    login.flash.append(("ok", f"{IMPORT_ZH[kind]}「{meta['name']}」已导入：新增 {result['created']} 条，"
                              f"修改 {result['updated']} 条，不变 {result['unchanged']} 条"))
    return RedirectResponse(base(request) + "/imports", status_code=303)
