"""The checkout workflow at the counter, in plain records for the screens.

One checkout loads what it needs once (resident, meal, policy, today's use, balance,
menu with portions left, recent orders) into a ``CheckoutContext``; the greeting,
every re-priced bill while the elder changes dishes, and the recommendation share
it. Settlement still prices again on the store under the write lock
(``CheckoutService.settle``): the context is for showing, never for charging."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

from sqlalchemy import func, select

from kiosk.billing.meals import meal_at
from kiosk.billing.offline import OfflineLimits, balance_refusal
from kiosk.billing.policy import Policy
from kiosk.billing.pricing import Line, Quote, make_quote
from kiosk.billing.recommend import Dish, Plan, Profile, excluded_reason, plan
from kiosk.billing.subsidy import SubsidyDecision, Usage, decide_subsidy
from kiosk.db import audit
from kiosk.db.models import Canteen, Order, OrderLine, OrderVoid, Resident
from kiosk.errors import NotFoundError, SoldOutError
from kiosk.money import yuan
from kiosk.services.checkout import FAR_PRICE, CheckoutService, Receipt, ResidentRecord, balance_of, facts_of, usage_of
from kiosk.terminal.liveness_check import LivenessCheck
from kiosk.timeutil import now_cst

PAY_LABELS = {"balance": "余额", "cash": "现金", "card": "银行卡"}
CONTEXT_TTL_S = 60.0        # a bill re-priced from the loaded context for this long; settle prices afresh


def subsidy_text(subsidy_fen: int, reason: str, notes: tuple[str, ...] = ()) -> str:
    """The subsidy as an amount and a plain reason; never the welfare category."""
    if subsidy_fen > 0:
        return f"政府补贴 {yuan(subsidy_fen)} 元" + (f"（{'，'.join(notes)}）" if notes else "")
    return f"本餐没有补贴：{reason}"


def _notes(dec: SubsidyDecision) -> tuple[str, ...]:
    # the engine's reason reads "<tier>，每餐补贴X元（note，note）": keep the notes, drop the tier
    if "（" in dec.reason and dec.reason.endswith("）"):
        return tuple(n for n in dec.reason[dec.reason.index("（") + 1:-1].split("，") if n)
    return ()


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

    @property
    def set_meal(self) -> bool:
        return self.category == "套餐"


@dataclass(frozen=True)
class CheckoutContext:
    """Everything one checkout reads, loaded in one database session."""
    resident: ResidentRecord
    sex: str | None
    at: datetime
    meal_date: date
    meal: str
    policy: Policy | None
    usage: Usage
    balance_fen: int
    menu: tuple[Dish, ...]
    history: tuple[tuple[date, tuple[str, ...]], ...]
    loaded_at: float
    # the district's offline limits, how long this terminal has been without the server (None:
    # online) and the elder's offline balance payments today (kiosk.billing.offline)
    limits: OfflineLimits = OfflineLimits()
    offline: timedelta | None = None
    offline_spent_fen: int = 0

    @property
    def honorific(self) -> str:
        return {"女": "阿姨", "男": "叔叔"}.get(self.sex or "", "")

    @property
    def profile(self) -> Profile:
        return Profile(frozenset(self.resident.diet_tags or []), frozenset(self.resident.allergies or []))

    def decision(self, total_fen: int) -> SubsidyDecision:
        return CheckoutService.offline_decision(
            decide_subsidy(self.policy, facts_of(self.resident), self.meal_date, self.meal, total_fen, self.usage),
            self.limits, self.offline)

    def balance_refused(self, to_pay_fen: int) -> str | None:
        """Why the balance may not pay this much offline (None: it may, as far as the caps go)."""
        r = balance_refusal(self.limits, self.offline, "balance", to_pay_fen, self.offline_spent_fen)
        return None if r is None else r.message

    def quote(self, dish_ids: list[str]) -> Quote:
        items = {d.dish_id: d for d in self.menu}
        counts: dict[str, int] = {}
        for d in dish_ids:
            counts[d] = counts.get(d, 0) + 1
        lines = []
        for d, qty in counts.items():
            m = items.get(d)
            if m is None:
                raise NotFoundError(f"菜品 {d} 不在今天的菜单上", detail=f"dish {d!r} not on the menu")
            if m.available is not None and qty > m.available:
                raise SoldOutError(f"「{m.name}」已售完" if m.available <= 0 else f"「{m.name}」只剩 {m.available} 份",
                                   detail=f"{d}: left {m.available}, asked {qty}")
            lines.append(Line(m.dish_id, m.name, m.price_fen, qty))
        return make_quote(lines, self.decision(sum(ln.amount_fen for ln in lines)))

    def plan(self) -> Plan:
        """The recommendation, within what the elder can pay when they pay from a balance."""
        per_meal = self.decision(FAR_PRICE).subsidy_fen
        limit = self.balance_fen + per_meal if self.balance_fen > 0 else None
        return plan(list(self.menu), self.profile, [(d, list(ids)) for d, ids in self.history], self.meal_date,
                    spend_limit_fen=limit)


@dataclass
class Greeting:
    resident_id: str
    name: str
    honorific: str
    tier: str | None            # staff-only detail: never shown to the queue
    subsidy_fen: int
    subsidy_reason: str
    month_left_fen: int | None
    balance_fen: int
    meal: str
    meal_date: date
    menu: list[MenuChoice] = field(default_factory=list)
    subsidy_text: str = ""
    why: str = ""               # the recommendation, in one line
    pay_default: str = "cash"

    @property
    def title(self) -> str:
        return f"{self.name} {self.honorific}您好".replace("  ", " ")

    @property
    def recommended(self) -> list[str]:
        return [m.dish_id for m in self.menu if m.recommended and m.excluded is None]


@dataclass(frozen=True)
class Bill:
    total_fen: int
    subsidy_fen: int
    to_pay_fen: int
    reason: str
    tier: str | None
    subsidy_text: str = ""
    lines: tuple[tuple[str, int, int], ...] = ()     # (name, quantity, amount_fen)
    balance_fen: int | None = None
    balance_refused: str | None = None   # offline: why the balance may not pay this (kiosk.billing.offline)

    def enough_balance(self) -> bool:
        return self.balance_fen is not None and self.balance_fen >= self.to_pay_fen


class CheckoutFlow:
    """Idle screen, greeting, bill, settlement and what happens around them (a card or
    phone look-up, a call for staff, a misidentification, a template refresh)."""

    def __init__(self, app, liveness: LivenessCheck, clock: Callable[[], datetime] = now_cst) -> None:
        self.app = app
        self.liveness = liveness
        self.clock = clock          # the terminal's time (CST); tests set it to a chosen moment
        self._contexts: dict[str, CheckoutContext] = {}

    def idle_info(self) -> tuple[str, datetime, str | None]:
        """The canteen's name, the time and the meal served now (None outside meal hours)."""
        at = self.clock()
        with self.app.db.session() as s:
            c = s.get(Canteen, self.app.settings.canteen_id)
            return (c.name if c else self.app.settings.canteen_name), at, meal_at(at, self.app.billing.canteen(s).windows)

    def load_context(self, resident_id: str, at: datetime | None = None) -> CheckoutContext:
        """One read-only session: resident, meal, policy, today's use, balance, menu, history."""
        b = self.app.billing
        at = at or self.clock()
        with self.app.db.session(read_only=True) as s:
            r = b.resident(s, resident_id)
            sex = s.execute(select(Resident.sex).where(Resident.id == resident_id)).scalar()
            day, meal = b.resolve_meal(s, at, None)
            b.refuse_if_gone(r, day)         # 迁出 / 死亡: refused before the menu is shown
            lim, off = b.offline_view(s)
            b.refuse_if_blocked(lim, r.id, r.name)      # on the district's blocked list: to staff
            spent = 0
            if off is not None:
                from kiosk.services.offline_limits import offline_spent

                spent = offline_spent(s, r.id, day)
            policy, _row = b.policy(s, day)
            usage = usage_of(s, r.id, day)
            balance = balance_of(s, r.id)
            items = b.menu(s, day, meal)
            sold = dict(s.execute(select(OrderLine.menu_item_id, func.sum(OrderLine.quantity))
                                  .join(Order, Order.id == OrderLine.order_id)
                                  .where(OrderLine.menu_item_id.in_([m.id for m in items]),
                                         ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())
                                  .group_by(OrderLine.menu_item_id)).all()) if items else {}
            menu = tuple(Dish(m.dish_id, m.name, m.price_fen, m.category, frozenset(m.tags or []),
                              frozenset(m.allergens or []),
                              None if m.portions is None else m.portions - int(sold.get(m.id) or 0)) for m in items)
            hist_rows = s.execute(select(Order.meal_date, OrderLine.dish_id)
                                  .join(OrderLine, OrderLine.order_id == Order.id)
                                  .where(Order.resident_id == r.id, Order.meal_date >= day - timedelta(days=30),
                                         Order.meal_date < day,
                                         ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())
                                  ).all()
        by_day: dict[date, list[str]] = {}
        for d, dish in hist_rows:
            by_day.setdefault(d, []).append(dish)
        ctx = CheckoutContext(r, sex, at, day, meal, policy, usage, balance, menu,
                              tuple((d, tuple(v)) for d, v in sorted(by_day.items())), time.monotonic(),
                              lim, off, spent)
        self._contexts = {resident_id: ctx}       # one elder at the counter at a time
        return ctx

    def _context(self, resident_id: str) -> CheckoutContext:
        ctx = self._contexts.get(resident_id)
        if ctx is None or time.monotonic() - ctx.loaded_at > CONTEXT_TTL_S:
            ctx = self.load_context(resident_id)
        return ctx

    def greet(self, resident_id: str, at: datetime | None = None) -> Greeting:
        ctx = self.load_context(resident_id, at)
        dec = ctx.decision(FAR_PRICE)
        p = ctx.plan()
        chosen = {x.dish.dish_id: x.reason for x in p.suggestions}
        offered = {x.dish.dish_id: x.reason for x in p.alternatives}
        profile = ctx.profile
        menu = [MenuChoice(d.dish_id, d.name, d.price_fen, d.category, d.available, excluded_reason(d, profile),
                           d.dish_id in chosen, chosen.get(d.dish_id) or offered.get(d.dish_id))
                for d in ctx.menu]
        month_left = dec.month_left_fen
        if month_left is not None:
            month_left += dec.subsidy_fen   # what is left before this meal
        to_pay = ctx.quote(list(chosen)).to_pay_fen if chosen else 0
        pay = "balance" if ctx.balance_fen > 0 and ctx.balance_fen >= to_pay and not ctx.balance_refused(to_pay) \
            else "cash"
        r = ctx.resident
        return Greeting(r.id, r.name, ctx.honorific, dec.tier, dec.subsidy_fen, dec.reason, month_left,
                        ctx.balance_fen, ctx.meal, ctx.meal_date, menu,
                        subsidy_text(dec.subsidy_fen, dec.reason, _notes(dec)), p.why, pay)

    def earlier_order(self, resident_id: str, at: datetime | None = None):
        """The elder's order for this meal today, as far as this terminal knows (or None)."""
        from kiosk.terminal.today import earlier_order

        return earlier_order(self.app, resident_id, at or self.clock())

    def bill(self, resident_id: str, dish_ids: list[str], at: datetime | None = None) -> Bill:
        if not dish_ids:
            return Bill(0, 0, 0, "", None)
        ctx = self.load_context(resident_id, at) if at is not None else self._context(resident_id)
        q = ctx.quote(dish_ids)
        dec = ctx.decision(q.total_fen)
        return Bill(q.total_fen, q.subsidy_fen, q.to_pay_fen, q.reason, q.tier,
                    subsidy_text(q.subsidy_fen, q.reason, _notes(dec)),
                    tuple((ln.name, ln.quantity, ln.amount_fen) for ln in q.lines), ctx.balance_fen,
                    ctx.balance_refused(q.to_pay_fen))

    def settle(self, resident_id: str, dish_ids: list[str], pay: str, key: str, identified_by: str,
               at: datetime | None = None, staff_id: str | None = None) -> Receipt:
        """Price again on the store, under its lock, and record the meal. A face checkout
        reaches the bill only after the liveness check passed (unless liveness is off), so the
        order records both for the 高龄津贴 proof of life."""
        self._contexts.pop(resident_id, None)
        by_face = identified_by == "face"
        return self.app.billing.settle(resident_id, dish_ids, pay=pay, at=at or self.clock(),
                                       idempotency_key=key, identified_by=identified_by, staff_id=staff_id,
                                       face_verified=by_face,
                                       liveness_passed=by_face and self.liveness.mode() != "off")

    def record_misidentification(self, resident_id: str, score: float | None) -> None:
        with self.app.db.session() as s:
            audit.record(s, "kiosk", "face.misidentified", resident_id, score=score)

    def find_by_card(self, card_no: str):
        return self.app.residents.by_card(card_no.strip().upper())

    def find_by_phone(self, last4: str):
        return self.app.residents.by_phone_last4(last4)

    def call_staff(self, where: str = "收银台") -> None:
        """An elder asked for help at the counter (recorded; the screen and a sound call staff)."""
        with self.app.db.session() as s:
            audit.record(s, "kiosk", "staff.called", where)

    def maybe_refresh_template(self, resident_id: str, score: float | None, quality: float, match_status: str | None,
                               live: bool, embedding, crop) -> bool:
        """After a settled face checkout: a strong, live match may add a fresh template (faces
        age; the rule: kiosk.services.template_refresh). ``score``/``match_status`` are the
        tracker's; the rule looks at the frame's own match again."""
        from kiosk.services.template_refresh import TemplateRefresh

        if embedding is None or match_status != "matched":
            return False
        return TemplateRefresh(self.app).consider(resident_id, embedding, quality=quality, crop=crop,
                                                  live=bool(live) and self.liveness.mode() != "off",
                                                  at=self.clock()).add
