"""The canteen this terminal serves: its name, district and meal windows."""
from __future__ import annotations

from kiosk.billing.meals import DEFAULT_WINDOWS, validate_windows
from kiosk.db import audit
from kiosk.db.models import Canteen
from kiosk.errors import ValidationError
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
