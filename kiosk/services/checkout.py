"""Checkout: quote -> settle, payments, voids and top-ups over the append-only ledger."""
from __future__ import annotations

import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

from sqlalchemy import and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from kiosk.billing.meals import DEFAULT_WINDOWS, meal_at
from kiosk.billing.offline import OfflineLimits, balance_refusal, blocked_resident, subsidy_stop
from kiosk.billing.policy import Policy, normalize_meal
from kiosk.billing.pricing import Line, Quote, make_quote
from kiosk.billing.recommend import Dish, Profile, recommend
from kiosk.billing.status import checkout_refusal
from kiosk.billing.subsidy import ResidentFacts, SubsidyDecision, Usage, decide_subsidy
from kiosk.db import audit
from kiosk.db.models import (Canteen, LedgerEntry, MenuItem, Order, OrderLine, OrderVoid, Resident,
                         new_id)
from kiosk.errors import (BillingError, BlockedResidentError, IdempotencyConflictError, InsufficientBalanceError,
                          NotFoundError, OfflineDayCapError, OfflineSaleCapError, ResidentStatusError,
                      SoldOutError, ValidationError)
from kiosk.limits import NOTE_MAX_CHARS, check_checkout_request, check_text
from kiosk.money import TOPUP_MAX_FEN, fen_to_yuan
from kiosk.timeutil import month_bounds, now_cst, to_cst  # noqa: F401  (month_bounds: imported from here too)
from kiosk.db.permissions import require
from kiosk.services.events import CATALOGUE_CHANGED, Change
from kiosk.services.importing import policy_in_force

PAY_METHODS = ("balance", "cash", "card")
FAR_PRICE = 10 ** 9  # "a meal dearer than any subsidy": to show a tier's full per-meal amount


@dataclass
class QuoteResult:
    quote_id: str
    resident_id: str
    resident_name: str
    canteen_id: str
    meal_date: date
    meal: str
    quote: Quote
    menu_item_ids: list[str]
    policy_row_id: str | None
    offline_s: int | None = None      # sold offline: seconds since the terminal last reached the server

    def to_json(self) -> dict:
        q = self.quote
        return {"quote_id": self.quote_id, "resident_id": self.resident_id, "meal": self.meal,
                "meal_date": self.meal_date.isoformat(), "total_fen": q.total_fen,
                "subsidy_fen": q.subsidy_fen, "to_pay_fen": q.to_pay_fen, "tier": q.tier,
                "reason": q.reason, "month_left_fen": q.month_left_fen,
                "lines": [{"dish_id": ln.dish_id, "name": ln.name, "price_fen": ln.price_fen,
                           "quantity": ln.quantity} for ln in q.lines]}


@dataclass
class Receipt:
    order_id: str
    resident_id: str
    resident_name: str
    meal: str
    meal_date: date
    total_fen: int
    subsidy_fen: int
    to_pay_fen: int
    tier: str | None
    reason: str
    pay_method: str
    balance_after_fen: int
    lines: list[dict] = field(default_factory=list)
    replayed: bool = False

    def to_json(self) -> dict:
        return {"order_id": self.order_id, "resident_id": self.resident_id, "meal": self.meal,
                "meal_date": self.meal_date.isoformat(), "total_fen": self.total_fen,
                "subsidy_fen": self.subsidy_fen, "to_pay_fen": self.to_pay_fen, "tier": self.tier,
                "reason": self.reason, "pay": self.pay_method, "balance_fen": self.balance_after_fen,
                "lines": self.lines, "replayed": self.replayed}


@dataclass(frozen=True)
class ResidentRecord:
    """What pricing and recommendation read of a resident (one row, no ORM object)."""
    id: str
    name: str
    birth_date: date
    hukou: str | None
    categories: list
    diet_tags: list
    allergies: list
    status: str
    roster_status: str | None = None     # the roster's 状态 and its date (kiosk.billing.status)
    status_date: date | None = None


_RESIDENT = select(Resident.id, Resident.name, Resident.birth_date, Resident.hukou, Resident.categories,
                   Resident.diet_tags, Resident.allergies, Resident.status, Resident.roster_status,
                   Resident.status_date).where(Resident.id == bindparam("rid"))


def facts_of(r: ResidentRecord) -> ResidentFacts:
    return ResidentFacts(r.id, r.birth_date, r.hukou, frozenset(r.categories or []),
                         r.roster_status or "registered", r.status_date)


_USAGE = (select(func.coalesce(func.sum(case((and_(Order.meal_date == bindparam("day"), Order.subsidy_fen > 0), 1),
                                              else_=0)), 0),
                 func.coalesce(func.sum(Order.subsidy_fen), 0))
          .where(Order.resident_id == bindparam("rid"), Order.meal_date >= bindparam("first"),
                 Order.meal_date <= bindparam("last"),
                 ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists()))


def usage_of(session: Session, resident_id: str, day: date) -> Usage:
    """Subsidy already received: every canteen counts (全城通). One prebuilt query."""
    first, last = month_bounds(day)
    today, month = session.connection().execute(_USAGE, {"day": day, "rid": resident_id, "first": first,
                                                         "last": last}).one()
    return Usage(int(today), int(month))


def balance_of(session: Session, resident_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
                              .where(LedgerEntry.resident_id == resident_id,
                                     LedgerEntry.affects_balance.is_(True))) or 0)


def sold_of(session: Session, menu_item_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(OrderLine.quantity), 0))
                              .join(Order, Order.id == OrderLine.order_id)
                              .outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                              .where(OrderLine.menu_item_id == menu_item_id, OrderVoid.id.is_(None))) or 0)


# what pricing reads of a resident on a day: the resident row and the subsidy used so far
# (today's subsidised meals, the month's subsidy; every canteen counts), in one statement
_RESIDENT_DAY = (select(Resident.id, Resident.name, Resident.birth_date, Resident.hukou, Resident.categories,
                        Resident.status,
                        func.coalesce(func.sum(case((and_(Order.meal_date == bindparam("day"),
                                                          Order.subsidy_fen > 0), 1), else_=0)), 0),
                        func.coalesce(func.sum(Order.subsidy_fen), 0), Resident.roster_status, Resident.status_date)
                 .select_from(Resident)
                 .outerjoin(Order, and_(Order.resident_id == Resident.id, Order.meal_date >= bindparam("first"),
                                        Order.meal_date <= bindparam("last"),
                                        ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists()))
                 .where(Resident.id == bindparam("rid"))
                 .group_by(Resident.id))
_SOLD = (select(func.coalesce(func.sum(OrderLine.quantity), 0))
         .join(Order, Order.id == OrderLine.order_id)
         .where(OrderLine.menu_item_id == bindparam("mid"),
                ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists()))

# The catalogue (canteen settings, menus, the policy in force) is cached per generation: a
# ``catalogue.changed`` event (an import, the canteen's settings, a pull) starts a new one, so
# this process prices on the new catalogue at once. Another process's change shows within these:
CANTEEN_TTL_S = 30.0
MENU_TTL_S = 10.0
POLICY_TTL_S = 10.0
# The advisory quote reads the offline limits and the terminal's time offline this often (the
# settle reads them again under the lock, so a stale view never changes what is recorded)
OFFLINE_TTL_S = 5.0


@dataclass(frozen=True)
class CanteenInfo:
    district: str | None
    windows: dict


@dataclass(frozen=True)
class MenuLine:
    """What pricing reads of a menu row."""
    id: str
    dish_id: str
    name: str
    price_fen: int
    portions: int | None


@dataclass(frozen=True)
class MealMenu:
    """The menu of one meal: rows in dish order (detached copies) and, by dish id, what
    pricing reads of them."""
    rows: list[MenuItem]
    by_dish: dict[str, MenuLine]


class CheckoutService:
    def __init__(self, app) -> None:
        self.app = app
        self.generation = 0      # of the catalogue this process caches (see catalogue.changed)
        self._canteen: tuple[int, float, CanteenInfo] | None = None
        self._menus: dict[tuple, tuple[int, float, MealMenu]] = {}
        self._policies: dict[tuple, tuple[int, float, tuple | None]] = {}
        self._offline: tuple[int, float, tuple[OfflineLimits, timedelta | None]] | None = None
        self._resident_day = app.db.prepare(_RESIDENT_DAY)
        self._sold = app.db.prepare(_SOLD)
        app.events.subscribe(self._on_change)

    # -- look-ups ---------------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        if change.kind == CATALOGUE_CHANGED:
            self.generation += 1
            self._canteen = None
            self._menus.clear()
            self._policies.clear()
            self._offline = None

    def _fresh(self, entry: tuple | None, ttl: float) -> bool:
        return entry is not None and entry[0] == self.generation and time.monotonic() - entry[1] < ttl

    def canteen(self, session: Session | None = None, *, fresh: bool = False) -> CanteenInfo:
        """This canteen's district and meal windows (``fresh``: read now, not from the cache)."""
        if not fresh and self._fresh(self._canteen, CANTEEN_TTL_S):
            return self._canteen[2]
        gen = self.generation
        with self._reading(session) as s:
            c = s.get(Canteen, self.app.settings.canteen_id)
            info = CanteenInfo(c.district if c else None,
                               c.meal_windows if c and c.meal_windows else DEFAULT_WINDOWS)
        self._canteen = (gen, time.monotonic(), info)
        return info

    def _reading(self, session: Session | None):
        """The given session, or a read-only unit of its own."""
        return nullcontext(session) if session is not None else self.app.db.session(read_only=True)

    def resolve_meal(self, session: Session | None, at: datetime | None, meal: str | None, *,
                     fresh: bool = False) -> tuple[date, str]:
        moment = to_cst(at) if at else now_cst()
        if meal:
            try:
                return moment.date(), normalize_meal(meal)
            except ValueError as exc:
                raise ValidationError(f"餐次应为 早餐/午餐/晚餐，不是「{meal}」", detail=str(exc)) from None
        m = meal_at(moment, self.canteen(session, fresh=fresh).windows)
        if m is None:
            raise BillingError(f"现在（{moment:%H:%M}）不在供餐时间内",
                               detail=f"{moment.isoformat()} is outside every meal window; pass --meal")
        return moment.date(), m

    @staticmethod
    def _check_resident(r: ResidentRecord | None, resident_id: str) -> ResidentRecord:
        if r is None or r.status == "erased":
            raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r} not found")
        if r.status != "active":
            raise BillingError(f"居民 {r.name} 的账户已停用，请联系工作人员", detail=f"status={r.status}")
        return r

    @staticmethod
    def refuse_if_gone(r: ResidentRecord, day: date) -> None:
        """迁出 / 死亡 in effect on ``day`` (kiosk.billing.status): no checkout; the words the
        counter shows send the elder to staff."""
        refused = checkout_refusal(r.name, r.roster_status, r.status_date, day)
        if refused:
            raise ResidentStatusError(refused, detail=f"roster_status={r.roster_status} from {r.status_date}")

    # -- the district's offline limits (kiosk.billing.offline; read at the edge) --------------------
    def offline_view(self, session: Session) -> tuple[OfflineLimits, timedelta | None]:
        """The limits and blocked list this store holds, and how long this terminal has been
        without the server (None: online, or not a terminal)."""
        from kiosk.services.offline_limits import current_limits, offline_now

        lim = current_limits(session)
        off = offline_now(session, self.app.settings.sync_interval_s) if self.app.settings.is_terminal else None
        return lim, off

    def offline_view_cached(self) -> tuple[OfflineLimits, timedelta | None]:
        """offline_view() for the advisory quote, read at most every OFFLINE_TTL_S."""
        if self._fresh(self._offline, OFFLINE_TTL_S):
            return self._offline[2]
        gen = self.generation
        with self._reading(None) as s:
            view = self.offline_view(s)
        self._offline = (gen, time.monotonic(), view)
        return view

    @staticmethod
    def refuse_if_blocked(lim: OfflineLimits, resident_id: str, name: str) -> None:
        """A resident on the district's blocked list: no checkout, online or offline."""
        if blocked_resident(lim, resident_id):
            raise BlockedResidentError(f"{name}暂时不能在这里就餐，请找工作人员",
                                       detail=f"resident {resident_id} is on the district's blocked list")

    @staticmethod
    def offline_decision(dec: SubsidyDecision, lim: OfflineLimits, off: timedelta | None) -> SubsidyDecision:
        """No subsidy once the terminal has been offline longer than the district allows."""
        stop = subsidy_stop(lim, off)
        if stop is None or dec.subsidy_fen == 0:
            return dec
        return SubsidyDecision(0, None, stop)

    def resident(self, session: Session, resident_id: str) -> ResidentRecord:
        row = session.connection().execute(_RESIDENT, {"rid": resident_id}).first()
        return self._check_resident(ResidentRecord(*row) if row is not None else None, resident_id)

    def resident_day(self, resident_id: str, day: date) -> tuple[str, ResidentFacts, Usage]:
        """The resident's name, what the subsidy rules read of them and the subsidy they used
        so far (one statement, no ORM: the quote path)."""
        first, last = month_bounds(day)
        row = self._resident_day.first(rid=resident_id, day=day, first=first, last=last)
        r = self._check_resident(ResidentRecord(*row[:5], (), (), row[5], row[8], row[9]) if row is not None else None,
                                 resident_id)
        self.refuse_if_gone(r, day)
        return r.name, facts_of(r), Usage(int(row[6]), int(row[7]))

    def meal_menu(self, session: Session | None, day: date, meal: str, *, fresh: bool = False) -> MealMenu:
        key = (day, meal)
        hit = self._menus.get(key)
        if not fresh and self._fresh(hit, MENU_TTL_S):
            return hit[2]
        gen = self.generation
        with self._reading(session) as s:
            rows = list(s.scalars(select(MenuItem).where(
                MenuItem.canteen_id == self.app.settings.canteen_id, MenuItem.menu_date == day,
                MenuItem.meal == meal).order_by(MenuItem.dish_id)))
            for r in rows:
                s.expunge(r)
        menu = MealMenu(rows, {m.dish_id: MenuLine(m.id, m.dish_id, m.name, m.price_fen, m.portions) for m in rows})
        if len(self._menus) > 16:
            self._menus.clear()
        self._menus[key] = (gen, time.monotonic(), menu)
        return menu

    def menu(self, session: Session | None, day: date, meal: str) -> list[MenuItem]:
        """Menu rows of a meal (detached copies, cached per catalogue generation)."""
        return self.meal_menu(session, day, meal).rows

    def policy(self, session: Session | None, day: date, *, fresh: bool = False) -> tuple[Policy | None, str | None]:
        """The subsidy policy in force on ``day`` for this canteen's district, and its row id."""
        district = self.canteen(session, fresh=fresh).district
        key = (day, district)
        hit = self._policies.get(key)
        if fresh or not self._fresh(hit, POLICY_TTL_S):
            gen = self.generation
            with self._reading(session) as s:
                found = policy_in_force(s, day, district)
            if len(self._policies) > 16:
                self._policies.clear()
            hit = self._policies[key] = (gen, time.monotonic(), found)
        return hit[2] if hit[2] else (None, None)

    def _decision(self, session: Session, r: ResidentRecord, day: date, meal: str, price_fen: int,
                 ) -> tuple[SubsidyDecision, str | None]:
        policy, row_id = self.policy(session, day)
        lim, off = self.offline_view(session)
        return self.offline_decision(decide_subsidy(policy, facts_of(r), day, meal, price_fen,
                                                    usage_of(session, r.id, day)), lim, off), row_id

    # -- quote / settle ------------------------------------------------------------------
    @staticmethod
    def _lines(menu: MealMenu, day: date, meal: str, dish_ids: list[str],
               sold: Callable[[str], int]) -> tuple[list[Line], list[str]]:
        if not dish_ids:
            raise ValidationError("请至少选一道菜", detail="no dishes given")
        counts: dict[str, int] = {}
        for d in dish_ids:
            counts[d] = counts.get(d, 0) + 1
        lines, ids = [], []
        for d, qty in counts.items():
            m = menu.by_dish.get(d)
            if m is None:
                raise NotFoundError(f"菜品 {d} 不在 {day} {meal} 的菜单上",
                                    detail=f"dish {d!r} is not on the menu of {day} {meal}")
            if m.portions is not None:
                left = max(0, m.portions - sold(m.id))
                if qty > left:
                    raise SoldOutError(f"「{m.name}」已售完" if left == 0 else f"「{m.name}」只剩 {left} 份",
                                       detail=f"{d}: portions {m.portions}, left {left}, asked {qty}")
            lines.append(Line(m.dish_id, m.name, m.price_fen, qty))
            ids.append(m.id)
        return lines, ids

    def quote(self, resident_id: str, dish_ids: list[str], *, at: datetime | None = None,
              meal: str | None = None) -> QuoteResult:
        """An advisory price (settle() prices again under the lock): one statement for the
        resident's day, the catalogue from this process's cache."""
        check_checkout_request(resident_id, dish_ids)     # ids checked before the database sees them
        name, facts, usage = self.resident_day(resident_id, (to_cst(at) if at else now_cst()).date())
        lim, off = self.offline_view_cached()
        self.refuse_if_blocked(lim, facts.resident_id, name)
        day, meal_name = self.resolve_meal(None, at, meal)
        lines, ids = self._lines(self.meal_menu(None, day, meal_name), day, meal_name, dish_ids,
                                 lambda mid: int(self._sold.first(mid=mid)[0]))
        policy, row_id = self.policy(None, day)
        dec = decide_subsidy(policy, facts, day, meal_name, sum(ln.amount_fen for ln in lines), usage)
        dec = self.offline_decision(dec, lim, off)     # the district's subsidy stop, as settle() applies it
        return QuoteResult(uuid.uuid4().hex, facts.resident_id, name, self.app.settings.canteen_id, day, meal_name,
                           make_quote(lines, dec), ids, row_id, None if off is None else int(off.total_seconds()))

    def _quote_locked(self, s: Session, resident_id: str, dish_ids: list[str], at, meal,
                      ) -> tuple[QuoteResult, OfflineLimits, timedelta | None]:
        """The price settle() records: everything read in its own (locked) unit of work, the
        catalogue as stored now, not from the cache."""
        r = self.resident(s, resident_id)
        day, meal_name = self.resolve_meal(s, at, meal, fresh=True)
        self.refuse_if_gone(r, day)
        lim, off = self.offline_view(s)
        self.refuse_if_blocked(lim, r.id, r.name)
        lines, ids = self._lines(self.meal_menu(s, day, meal_name, fresh=True), day, meal_name, dish_ids,
                                 lambda mid: sold_of(s, mid))
        policy, row_id = self.policy(s, day, fresh=True)
        dec = decide_subsidy(policy, facts_of(r), day, meal_name, sum(ln.amount_fen for ln in lines),
                             usage_of(s, r.id, day))
        dec = self.offline_decision(dec, lim, off)
        qr = QuoteResult(uuid.uuid4().hex, r.id, r.name, self.app.settings.canteen_id, day, meal_name,
                         make_quote(lines, dec), ids, row_id, None if off is None else int(off.total_seconds()))
        return qr, lim, off

    def settle(self, resident_id: str, dish_ids: list[str], *, pay: str = "cash", at: datetime | None = None,
               meal: str | None = None, idempotency_key: str | None = None, identified_by: str = "cli",
               terminal_id: str | None = None, staff_id: str | None = None,
               face_verified: bool | None = None, liveness_passed: bool | None = None) -> Receipt:
        """Price and record one meal in one transaction. The same idempotency key
        settles once: a second call returns the first receipt. ``face_verified`` /
        ``liveness_passed``: what the terminal checked (recorded for 高龄津贴 proof of life)."""
        if pay not in PAY_METHODS:
            raise ValidationError(f"付款方式应为 余额/现金/银行卡（balance/cash/card），不是 {pay}",
                                  detail=f"pay must be one of {PAY_METHODS}")
        check_checkout_request(resident_id, dish_ids, idempotency_key)   # before the database sees them
        with self.app.db.session(write_lock=True) as s:
            if idempotency_key:
                prev = s.scalars(select(Order).where(Order.idempotency_key == idempotency_key)).first()
                if prev is not None:     # a retry: the same request only, never another's receipt
                    self._check_same_request(s, prev, resident_id, dish_ids, pay)
                    return self._receipt(s, prev, replayed=True)
            # lock the resident row (PostgreSQL) so two canteens cannot both spend the same limit
            s.execute(select(Resident.id).where(Resident.id == resident_id).with_for_update()).first()
            qr, lim, off = self._quote_locked(s, resident_id, dish_ids, at, meal)   # priced on the store as it is now
            q = qr.quote
            if pay == "balance" and off is not None:      # offline: the district's caps on balance payments
                from kiosk.services.offline_limits import offline_spent

                refused = balance_refusal(lim, off, pay, q.to_pay_fen, offline_spent(s, resident_id, qr.meal_date))
                if refused is not None:
                    raise (OfflineSaleCapError if refused.kind == "per_sale" else OfflineDayCapError)(
                        refused.message, detail=refused.detail)
            balance = balance_of(s, resident_id)
            if pay == "balance" and balance < q.to_pay_fen:
                raise InsufficientBalanceError(
                    f"余额不足：应付 {fen_to_yuan(q.to_pay_fen)} 元，余额 {fen_to_yuan(balance)} 元",
                    detail=f"balance {balance} < to_pay {q.to_pay_fen}")
            order = Order(id=new_id(), idempotency_key=idempotency_key or qr.quote_id, resident_id=resident_id,
                          canteen_id=qr.canteen_id, terminal_id=terminal_id, meal_date=qr.meal_date,
                          meal=qr.meal, total_fen=q.total_fen, subsidy_fen=q.subsidy_fen,
                          to_pay_fen=q.to_pay_fen, pay_method=pay, tier=q.tier, reason=q.reason,
                          policy_row_id=qr.policy_row_id, identified_by=identified_by,
                          face_verified=face_verified, liveness_passed=liveness_passed, offline_s=qr.offline_s)
            s.add(order)
            s.flush()
            for ln, mid in zip(q.lines, qr.menu_item_ids):
                s.add(OrderLine(order_id=order.id, menu_item_id=mid, dish_id=ln.dish_id, name=ln.name,
                                quantity=ln.quantity, price_fen=ln.price_fen))
            s.add(LedgerEntry(resident_id=resident_id, order_id=order.id, kind="charge", amount_fen=q.total_fen))
            if q.subsidy_fen:
                s.add(LedgerEntry(resident_id=resident_id, order_id=order.id, kind="subsidy",
                                  amount_fen=q.subsidy_fen, note=q.tier))
            s.add(LedgerEntry(resident_id=resident_id, order_id=order.id, kind="payment", method=pay,
                              amount_fen=-q.to_pay_fen if pay == "balance" else q.to_pay_fen,
                              affects_balance=pay == "balance", staff_id=staff_id))
            self.app.events.publish(s, "order.settle", order_id=order.id, resident_id=resident_id)
            s.flush()
            return self._receipt(s, order)

    def _receipt(self, s: Session, order: Order, replayed: bool = False) -> Receipt:
        r = s.get(Resident, order.resident_id)
        lines = [{"dish_id": ln.dish_id, "name": ln.name, "price_fen": ln.price_fen, "quantity": ln.quantity}
                 for ln in s.scalars(select(OrderLine).where(OrderLine.order_id == order.id))]
        return Receipt(order.id, order.resident_id, r.name if r else "", order.meal, order.meal_date,
                       order.total_fen, order.subsidy_fen, order.to_pay_fen, order.tier, order.reason,
                       order.pay_method, balance_of(s, order.resident_id), lines, replayed)

    @staticmethod
    def _check_same_request(s: Session, prev: Order, resident_id: str, dish_ids: list[str], pay: str) -> None:
        """An idempotency key is bound to its request: resident, dishes (with counts), payment."""
        from collections import Counter

        lines = Counter()
        for dish, qty in s.execute(select(OrderLine.dish_id, OrderLine.quantity).where(OrderLine.order_id == prev.id)):
            lines[dish] += qty
        diffs = [zh for zh, same in (("居民", prev.resident_id == resident_id),
                                     ("菜品", lines == Counter(dish_ids)),
                                     ("付款方式", prev.pay_method == pay)) if not same]
        if diffs:
            raise IdempotencyConflictError(
                f"这个请求编号（idempotency key）已用于另一笔订单，与本次请求的{'、'.join(diffs)}不同；"
                f"未结算。请为新的订单使用新的请求编号",
                detail=f"idempotency key {prev.idempotency_key!r} belongs to order {prev.id}; "
                       f"differs in {', '.join(diffs)}")

    # -- staff actions (an Actor proven by PIN: kiosk.services.auth) ---------------------------
    def void(self, order_id: str, reason: str, actor) -> dict:
        if not reason or not reason.strip():
            raise ValidationError("作废订单必须写明原因", detail="empty void reason")
        check_text(reason, NOTE_MAX_CHARS, "作废原因", "void reason")
        with self.app.db.session(write_lock=True) as s:
            staff_id = require(s, actor, "order.void").id
            order = s.get(Order, order_id)
            if order is None:
                raise NotFoundError(f"没有编号为 {order_id} 的订单", detail=f"order {order_id!r} not found")
            if s.scalars(select(OrderVoid).where(OrderVoid.order_id == order_id)).first():
                raise BillingError("这笔订单已经作废过了", detail=f"order {order_id} already voided")
            s.add(OrderVoid(order_id=order_id, staff_id=staff_id, reason=reason.strip()))
            s.add(LedgerEntry(resident_id=order.resident_id, order_id=order_id, kind="reversal",
                              method=order.pay_method,
                              amount_fen=order.to_pay_fen if order.pay_method == "balance" else -order.to_pay_fen,
                              affects_balance=order.pay_method == "balance", staff_id=staff_id,
                              note=f"作废：{reason.strip()}；退还补贴 {fen_to_yuan(order.subsidy_fen)} 元额度"))
            audit.record(s, staff_id, "order.void", order_id, reason=reason.strip(),
                         resident_id=order.resident_id, to_pay_fen=order.to_pay_fen,
                         subsidy_fen=order.subsidy_fen)
            self.app.events.publish(s, "order.void", order_id=order_id, resident_id=order.resident_id)
            return {"order_id": order_id, "voided": True, "refund_fen": order.to_pay_fen,
                    "refund_to": order.pay_method, "subsidy_released_fen": order.subsidy_fen,
                    "balance_fen": balance_of(s, order.resident_id) if order.pay_method == "balance" else None}

    def topup(self, resident_id: str, amount_fen: int, *, payer: str | None = None,
              actor=None, method: str = "cash") -> dict:
        if amount_fen <= 0:
            raise ValidationError("充值金额必须大于0", detail=f"amount {amount_fen}")
        if amount_fen > TOPUP_MAX_FEN:   # README "Limits"
            raise ValidationError(f"单次充值不能超过 {fen_to_yuan(TOPUP_MAX_FEN)} 元",
                                  detail=f"amount {amount_fen} > {TOPUP_MAX_FEN} fen")
        check_text(payer, 100, "付款人", "payer")   # ledger_entries.payer
        with self.app.db.session() as s:
            staff_id = require(s, actor, "account.topup").id
            self.resident(s, resident_id)
            s.add(LedgerEntry(resident_id=resident_id, kind="topup", method=method, amount_fen=amount_fen,
                              affects_balance=True, payer=payer, staff_id=staff_id))
            audit.record(s, staff_id, "account.topup", resident_id, amount_fen=amount_fen, payer=payer)
            self.app.events.publish(s, "account.topup", resident_id=resident_id)
            s.flush()
            return {"resident_id": resident_id, "amount_fen": amount_fen, "payer": payer,
                    "balance_fen": balance_of(s, resident_id)}

    def balance(self, resident_id: str) -> int:
        with self.app.db.session() as s:
            self.resident(s, resident_id)
            return balance_of(s, resident_id)

    # -- recommendation / summary ---------------------------------------------------------------
    def today_summary(self, resident_id: str, *, at: datetime | None = None, meal: str | None = None) -> dict:
        """Tier and per-meal subsidy for the meal, and what is left of the month."""
        with self.app.db.session() as s:
            r = self.resident(s, resident_id)
            day, meal_name = self.resolve_meal(s, at, meal)
            dec, _ = self._decision(s, r, day, meal_name, FAR_PRICE)
            return {"meal_date": day, "meal": meal_name, "tier": dec.tier, "subsidy_fen": dec.subsidy_fen,
                    "reason": dec.reason, "month_left_fen": dec.month_left_fen,
                    "balance_fen": balance_of(s, r.id)}

    def recommend(self, resident_id: str, *, at: datetime | None = None, meal: str | None = None) -> dict:
        with self.app.db.session() as s:
            r = self.resident(s, resident_id)
            day, meal_name = self.resolve_meal(s, at, meal)
            menu = self.menu(s, day, meal_name)
            dishes = [Dish(m.dish_id, m.name, m.price_fen, m.category, frozenset(m.tags or []),
                           frozenset(m.allergens or []),
                           None if m.portions is None else m.portions - sold_of(s, m.id)) for m in menu]
            since = day - timedelta(days=30)
            hist_rows = s.execute(select(Order.meal_date, OrderLine.dish_id)
                                  .join(OrderLine, OrderLine.order_id == Order.id)
                                  .outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                                  .where(Order.resident_id == r.id, Order.meal_date >= since,
                                         Order.meal_date < day, OrderVoid.id.is_(None))).all()
            by_day: dict[date, list[str]] = {}
            for d, dish in hist_rows:
                by_day.setdefault(d, []).append(dish)
            profile = Profile(frozenset(r.diet_tags or []), frozenset(r.allergies or []))
            sugg = recommend(dishes, profile, sorted(by_day.items()), day)
            total = sum(x.dish.price_fen for x in sugg)
            dec, _ = self._decision(s, r, day, meal_name, total)
            subsidy = min(dec.subsidy_fen, total)
            return {"resident_id": r.id, "meal": meal_name, "meal_date": day.isoformat(),
                    "dishes": [{"dish_id": x.dish.dish_id, "name": x.dish.name, "price_fen": x.dish.price_fen,
                                "reason": x.reason} for x in sugg],
                    "total_fen": total, "subsidy_fen": subsidy, "to_pay_fen": total - subsidy,
                    "tier": dec.tier, "subsidy_reason": dec.reason}
