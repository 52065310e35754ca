"""What the kiosk screens need, in plain records. The UI calls only this."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from sqlalchemy import select

from ..db.models import Canteen, Order, OrderVoid, Resident
from ..errors import KioskError
from ..money import fen_to_yuan
from ..timeutil import CST, now_cst
from . import audit
from .checkout import Receipt


@dataclass(frozen=True)
class MenuChoice:
    dish_id: str
    name: str
    price_fen: int
    category: str | None
    available: int | None
    excluded: str | None     # why not for this resident (allergen, diet, sold out)
    recommended: bool
    reason: str | None


@dataclass
class Greeting:
    resident_id: str
    name: str
    honorific: str
    tier: str | None
    subsidy_fen: int
    subsidy_reason: str
    month_left_fen: int | None
    balance_fen: int
    meal: str
    meal_date: date
    menu: list[MenuChoice] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.name} {self.honorific}您好".replace("  ", " ")


@dataclass(frozen=True)
class Bill:
    total_fen: int
    subsidy_fen: int
    to_pay_fen: int
    reason: str
    tier: str | None


class KioskService:
    def __init__(self, app, clock: Callable[[], datetime] = now_cst) -> None:
        self.app = app
        self.clock = clock          # the terminal's time (CST); tests set it to a chosen moment
        from ..sync.status import start_background_sync
        self._sync = start_background_sync(app)   # a district terminal syncs by itself (None otherwise)

    @property
    def settings(self):
        return self.app.settings

    def canteen_name(self) -> str:
        with self.app.db.session() as s:
            c = s.get(Canteen, self.settings.canteen_id)
            return c.name if c else self.settings.canteen_name

    def current_meal(self, at: datetime | None = None) -> str | None:
        from ..billing.meals import meal_at

        with self.app.db.session() as s:
            return meal_at(at or self.clock(), self.app.billing.windows(s))

    # -- the checkout flow ---------------------------------------------------------------
    def greet(self, resident_id: str, at: datetime | None = None) -> Greeting:
        from ..billing.recommend import Dish, Profile, excluded_reason

        at = at or self.clock()
        card = self.app.residents.get(resident_id)
        summary = self.app.billing.today_summary(resident_id, at=at)
        rec = self.app.billing.recommend(resident_id, at=at)
        recommended = {d["dish_id"]: d["reason"] for d in rec["dishes"]}
        profile = Profile(frozenset(card.diet_tags), frozenset(card.allergies))
        from .checkout import sold_of

        menu = []
        with self.app.db.session() as s:
            for m in self.app.billing.menu(s, summary["meal_date"], summary["meal"]):
                avail = None if m.portions is None else m.portions - sold_of(s, m.id)
                d = Dish(m.dish_id, m.name, m.price_fen, m.category, frozenset(m.tags or []),
                         frozenset(m.allergens or []), avail)
                menu.append(MenuChoice(m.dish_id, m.name, m.price_fen, m.category, avail,
                                       excluded_reason(d, profile), m.dish_id in recommended,
                                       recommended.get(m.dish_id)))
        month_left = summary["month_left_fen"]
        if month_left is not None:
            month_left += summary["subsidy_fen"]   # what is left before this meal
        return Greeting(card.resident_id, card.name, card.honorific, summary["tier"], summary["subsidy_fen"],
                        summary["reason"], month_left, summary["balance_fen"], summary["meal"],
                        summary["meal_date"], menu)

    def bill(self, resident_id: str, dish_ids: list[str], at: datetime | None = None) -> Bill:
        if not dish_ids:
            return Bill(0, 0, 0, "", None)
        q = self.app.billing.quote(resident_id, dish_ids, at=at or self.clock()).quote
        return Bill(q.total_fen, q.subsidy_fen, q.to_pay_fen, q.reason, q.tier)

    def settle(self, resident_id: str, dish_ids: list[str], pay: str, key: str, identified_by: str,
               at: datetime | None = None, staff_id: str | None = None) -> Receipt:
        return self.app.billing.settle(resident_id, dish_ids, pay=pay, at=at or self.clock(),
                                       idempotency_key=key, identified_by=identified_by, staff_id=staff_id)

    def record_misidentification(self, resident_id: str, score: float | None) -> None:
        with self.app.db.session() as s:
            audit.record(s, "kiosk", "face.misidentified", resident_id, score=score)

    def passive_liveness(self, image, landmarks):
        """The configured ONNX anti-spoofing model on one frame."""
        from ..vision.liveness import PassiveLiveness

        if getattr(self, "_passive", None) is None:
            s = self.settings
            if s.liveness_model is None:
                from ..errors import ConfigError
                raise ConfigError("未配置活体检测模型", detail="KIOSK_LIVENESS=passive needs KIOSK_LIVENESS_MODEL")
            path = s.liveness_model if s.liveness_model.is_absolute() else s.model_dir / s.liveness_model
            self._passive = PassiveLiveness(path, s.liveness_threshold)
        return self._passive.check(image, landmarks)

    def find_by_card(self, card_no: str):
        return self.app.residents.by_card(card_no)

    def find_by_phone(self, last4: str):
        return self.app.residents.by_phone_last4(last4)

    def refresh_template(self, resident_id: str, embedding, crop, quality: float) -> bool:
        """A confident, good-quality checkout may add a fresh template (issue: faces age)."""
        from enrollment.refresh import maybe_refresh

        return maybe_refresh(self.app, resident_id, embedding, crop, quality)

    # -- staff ---------------------------------------------------------------------------
    def resolve_resident(self, text: str) -> str:
        """A resident id, or a 助老卡 number, typed by staff."""
        try:
            return self.app.residents.get(text.strip()).resident_id
        except KioskError:
            return self.find_by_card(text).resident_id

    def enroll_captured(self, who: str, capture, staff_id: str, *, consent_now: bool,
                        override_reason: str | None = None, supervisor_pin: str | None = None):
        """Templates from a guided camera capture. A duplicate face needs a supervisor's
        PIN and a reason (audited)."""
        from enrollment.capture import enroll_captured

        rid = self.resolve_resident(who)
        actor = self.staff_actor(staff_id)
        override_by = None
        if override_reason:
            override_by = self.app.auth.login(supervisor_pin or "", min_role="supervisor")
        return enroll_captured(self.app, rid, capture, actor, consent="self" if consent_now else None,
                               override_reason=override_reason, override_by=override_by)

    def login(self, pin: str, min_role: str = "staff") -> dict:
        """The staff screen's PIN. The proven staff member (kiosk.services.auth.Actor) is
        kept here for this screen session; void, top-up and enrolment act as them."""
        actor = self.app.auth.login(pin, min_role=min_role)
        self.__dict__.setdefault("_staff_actors", {})[actor.staff_id] = actor
        return actor.to_dict()

    def staff_actor(self, staff_id: str):
        """The staff member logged in on this screen (by PIN, within the last 30 minutes)."""
        from ..errors import PermissionDeniedError

        actor = self.__dict__.get("_staff_actors", {}).get(staff_id)
        if actor is None or not self.app.auth.fresh(actor):
            raise PermissionDeniedError("请先输入 PIN 登录", detail=f"staff {staff_id!r} has no fresh PIN login here")
        return actor

    def logout(self, staff_id: str | None = None) -> None:
        actors = self.__dict__.get("_staff_actors", {})
        actors.clear() if staff_id is None else actors.pop(staff_id, None)

    def last_order(self) -> dict | None:
        with self.app.db.session() as s:
            o = s.scalars(select(Order).outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                          .where(OrderVoid.id.is_(None), Order.canteen_id == self.settings.canteen_id)
                          .order_by(Order.created_at.desc())).first()
            if o is None:
                return None
            r = s.get(Resident, o.resident_id)
            return {"order_id": o.id, "resident": r.name if r else o.resident_id, "total_fen": o.total_fen,
                    "to_pay_fen": o.to_pay_fen, "pay": o.pay_method, "at": o.created_at.astimezone(CST)}

    def void(self, order_id: str, reason: str, staff_id: str) -> dict:
        return self.app.billing.void(order_id, reason, self.staff_actor(staff_id))

    def topup(self, resident_id: str, amount_fen: int, payer: str | None, staff_id: str) -> dict:
        return self.app.billing.topup(resident_id, amount_fen, payer=payer, actor=self.staff_actor(staff_id))

    def today_orders(self, day: date | None = None) -> dict:
        day = day or self.clock().date()
        with self.app.db.session() as s:
            rows = s.execute(select(Order, Resident.name, OrderVoid.id)
                             .join(Resident, Resident.id == Order.resident_id)
                             .outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                             .where(Order.meal_date == day, Order.canteen_id == self.settings.canteen_id)
                             .order_by(Order.created_at)).all()
        orders = [{"order_id": o.id, "time": o.created_at.astimezone(CST).strftime("%H:%M"), "resident_id": o.resident_id,
                   "name": name, "meal": o.meal, "total_fen": o.total_fen, "subsidy_fen": o.subsidy_fen,
                   "to_pay_fen": o.to_pay_fen, "pay": o.pay_method, "voided": vid is not None}
                  for o, name, vid in rows]
        live = [o for o in orders if not o["voided"]]
        return {"date": day.isoformat(), "orders": orders, "count": len(live),
                "total_fen": sum(o["total_fen"] for o in live), "subsidy_fen": sum(o["subsidy_fen"] for o in live),
                "paid_fen": sum(o["to_pay_fen"] for o in live)}

    def export_today_csv(self, path: Path, staff_id: str) -> Path:
        data = self.today_orders()
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["订单号", "时间", "居民编号", "姓名", "餐次", "合计(元)", "补贴(元)", "实付(元)", "付款方式", "已作废"])
        for o in data["orders"]:
            w.writerow([o["order_id"], o["time"], o["resident_id"], o["name"], o["meal"], fen_to_yuan(o["total_fen"]),
                        fen_to_yuan(o["subsidy_fen"]), fen_to_yuan(o["to_pay_fen"]), o["pay"], "是" if o["voided"] else ""])
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(buf.getvalue(), encoding="utf-8-sig")
        tmp.replace(path)
        with self.app.db.session() as s:
            audit.record(s, staff_id, "orders.export", str(path), count=len(data["orders"]))
        return path

    def export_month(self, month: str, path: Path, staff_id: str) -> Path:
        from .reports import monthly_subsidy, write_report

        return write_report(self.app, monthly_subsidy(self.app, month), path, staff_id)

    def import_file(self, kind: str, path: Path, staff_id: str, skip_invalid: bool = False):
        from .importing import import_menu, import_policy, import_roster

        self.app.auth.check(self.staff_actor(staff_id), "data.import")
        if kind == "roster":
            return import_roster(self.app, path, skip_invalid=skip_invalid, staff_id=staff_id)
        if kind == "menu":
            return import_menu(self.app, path, skip_invalid=skip_invalid, staff_id=staff_id)
        if kind == "policy":
            return import_policy(self.app, path, staff_id=staff_id)
        raise KioskError("未知的导入类型", detail=kind)

    def audit(self, actor: str, action: str, subject: str | None = None, **detail) -> None:
        with self.app.db.session() as s:
            audit.record(s, actor, action, subject, **detail)
