"""Canteens: the one this terminal serves (its name, district and meal windows), and the
district's canteens, added by an admin on the server."""
from __future__ import annotations

import re

from kiosk.billing.meals import DEFAULT_WINDOWS, validate_windows
from kiosk.db import audit
from kiosk.db.models import Canteen
from kiosk.errors import ValidationError
from kiosk.limits import ID_MAX_CHARS, check_text
from kiosk.services.events import CATALOGUE_CHANGED


def configure_canteen(app, *, name: str | None = None, district: str | None = None,
                      windows: dict | None = None, actor: str = "system") -> dict:
    try:
        checked = validate_windows(windows) if windows else None
    except ValueError as exc:
        raise ValidationError(f"供餐时间设置有误：{exc}", detail=str(exc)) from None
    with app.db.session() as s:
        c = s.get(Canteen, app.settings.canteen_id)
        if c is None:
            c = Canteen(id=app.settings.canteen_id, name=name or app.settings.canteen_name)
            s.add(c)
        if name:
            c.name = name
        if district is not None:
            c.district = district
        if checked:
            c.meal_windows = {k: list(v) for k, v in checked.items()}
        audit.record(s, actor, "canteen.configure", c.id, name=c.name, district=c.district,
                     windows=c.meal_windows)
        app.events.publish(s, CATALOGUE_CHANGED, part="canteen")
        out = {"id": c.id, "name": c.name, "district": c.district,
               "meal_windows": c.meal_windows or {k: list(v) for k, v in DEFAULT_WINDOWS.items()}}
    return out


CANTEEN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def add_canteen(app, canteen_id: str, *, name: str, district: str | None = None, actor: str = "system") -> dict:
    """A new canteen of the district, made by an admin (``actor``, audited ``canteen.add``):
    its menus import at once, before any terminal exists. Refused on a terminal, for an
    id that is not letters, digits, ``_ . -`` (at most 64) or that exists already."""
    if app.settings.is_terminal:
        from kiosk.errors import ServerOnlyError

        raise ServerOnlyError("这是区服务器的终端：食堂只能在区服务器上新增", detail="canteen add on a terminal")
    cid = str(canteen_id or "").strip()
    if not CANTEEN_ID.fullmatch(cid) or len(cid) > ID_MAX_CHARS:
        raise ValidationError(f"食堂编号「{cid[:70]}」不合格：应为字母、数字、_ . -，不超过 {ID_MAX_CHARS} 个字符",
                              detail=f"bad canteen id {cid[:70]!r}")
    name = str(name or "").strip()
    if not name:
        raise ValidationError("请填写食堂名称", detail="empty canteen name")
    check_text(name, 200, "食堂名称", "canteen name")
    district = (str(district).strip() or None) if district is not None else None
    check_text(district, 100, "所属区", "district")
    with app.db.session() as s:
        if s.get(Canteen, cid) is not None:
            raise ValidationError(f"食堂 {cid} 已存在", detail=f"canteen {cid!r} exists")
        s.add(Canteen(id=cid, name=name, district=district))
        audit.record(s, actor, "canteen.add", cid, name=name, district=district)
        app.events.publish(s, CATALOGUE_CHANGED, part="canteen")
    return {"id": cid, "name": name, "district": district}


def rename_canteen(app, canteen_id: str, *, name: str, actor: str) -> dict:
    """An admin (``actor``, audited ``canteen.rename`` with the old and new name) names a
    canteen, e.g. one the server made with its id for a name when its first terminal was added."""
    if app.settings.is_terminal:
        from kiosk.errors import ServerOnlyError

        raise ServerOnlyError("这是区服务器的终端：食堂名称只能在区服务器上修改", detail="canteen rename on a terminal")
    name = str(name or "").strip()
    if not name:
        raise ValidationError("请填写食堂名称", detail="empty canteen name")
    check_text(name, 200, "食堂名称", "canteen name")
    cid = str(canteen_id or "").strip()
    with app.db.session() as s:
        c = s.get(Canteen, cid) if cid and len(cid) <= ID_MAX_CHARS else None
        if c is None:
            from kiosk.errors import NotFoundError

            raise NotFoundError(f"没有编号为「{cid[:70]}」的食堂", detail=f"canteen {cid[:70]!r} not found")
        old = c.name
        c.name = name
        audit.record(s, actor, "canteen.rename", cid, old=old, new=name)
        app.events.publish(s, CATALOGUE_CHANGED, part="canteen")
    return {"id": cid, "name": name, "old": old}


def list_canteens(app) -> list[dict]:
    """The district's canteens with their terminals (not revoked) and menu days."""
    from sqlalchemy import func, select

    from kiosk.db.models import MenuItem, Terminal

    with app.db.session(read_only=True) as s:
        terms = dict(s.execute(select(Terminal.canteen_id, func.count()).where(Terminal.revoked_at.is_(None))
                               .group_by(Terminal.canteen_id)).all())
        days = dict(s.execute(select(MenuItem.canteen_id, func.count(func.distinct(MenuItem.menu_date)))
                              .group_by(MenuItem.canteen_id)).all())
        return [{"id": c.id, "name": c.name, "district": c.district, "terminals": int(terms.get(c.id, 0)),
                 "menu_days": int(days.get(c.id, 0))} for c in s.scalars(select(Canteen).order_by(Canteen.id))]
