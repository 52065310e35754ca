"""What the kiosk screens need, in plain records. The UI calls only this: it never
touches SQL, models, the face gallery or enrolment code directly.

One checkout loads what it needs once (resident, meal, policy, today's use, balance,
menu with portions left, recent orders) into a ``CheckoutContext``; the greeting,
every re-priced bill while the elder changes dishes, and the recommendation share
it. Settlement still prices again on the store under the write lock
(``CheckoutService.settle``): the context is for showing, never for charging."""
from __future__ import annotations

import csv
import io
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import func, select

from kiosk.billing.policy import Policy
from kiosk.billing.pricing import Line, Quote, make_quote
from kiosk.billing.recommend import Dish, Plan, Profile, excluded_reason, plan
from kiosk.billing.subsidy import SubsidyDecision, Usage, decide_subsidy
from kiosk.db import audit
from kiosk.db.models import Canteen, Order, OrderLine, OrderVoid, Resident
from kiosk.errors import KioskError, NotFoundError, SoldOutError, ValidationError
from kiosk.money import fen_to_yuan
from kiosk.timeutil import CST, now_cst
from kiosk.services.checkout import FAR_PRICE, Receipt, ResidentRecord, balance_of, facts_of, usage_of

PAY_LABELS = {"balance": "余额", "cash": "现金", "card": "银行卡"}
CONTEXT_TTL_S = 60.0        # a bill re-priced from the loaded context for this long; settle prices afresh
PRESENT_S = 2.0             # a face seen this recently counts as "still in front"


def yuan(fen: int) -> str:
    """Amounts as elders read them: 6 元, 12.50 元 (never 6.00)."""
    text = fen_to_yuan(fen)
    return text[:-3] if text.endswith(".00") else text


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

    @property
    def honorific(self) -> str:
        return {"女": "阿姨", "男": "叔叔"}.get(self.sex or "", "")

    @property
    def profile(self) -> Profile:
        return Profile(frozenset(self.resident.diet_tags or []), frozenset(self.resident.allergies or []))

    def decision(self, total_fen: int) -> SubsidyDecision:
        return decide_subsidy(self.policy, facts_of(self.resident), self.meal_date, self.meal, total_fen, self.usage)

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

    def enough_balance(self) -> bool:
        return self.balance_fen is not None and self.balance_fen >= self.to_pay_fen


class Presence:
    """Who stands in front of the camera, from the frames the kiosk sees (plain facts of
    each frame: a face or none, the tracker's person, the decision, the frame's own match).
    The queue-safety rule reads it: a face bill is settled only while its elder is in front."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_face_at: float | None = None
        self.track_id: int | None = None
        self.who: str | None = None
        self.recent: deque = deque(maxlen=3)     # the person's latest per-frame matches (id or None)

    def note(self, has_face: bool, track_id: int | None, decision: str, resident_id: str | None,
             match_status: str | None, match_resident: str | None) -> None:
        if not has_face:
            return
        self.last_face_at = self.clock()
        if track_id != self.track_id:
            self.track_id, self.who = track_id, None
            self.recent.clear()
        if decision == "identified" and resident_id:
            self.who = resident_id
        if match_status is not None:
            self.recent.append(match_resident if match_status == "matched" else None)

    def absent_for(self) -> float:
        return float("inf") if self.last_face_at is None else self.clock() - self.last_face_at

    def in_front(self, resident_id: str, within_s: float = PRESENT_S) -> bool:
        if self.absent_for() > within_s or self.who != resident_id:
            return False
        r = list(self.recent)
        if sum(1 for x in r if x not in (None, resident_id)) >= 2:
            return False                     # somebody else stands there now
        return not (len(r) == 3 and all(x is None for x in r))

    def someone_else(self, resident_id: str) -> bool:
        """Another recognised resident is in front now."""
        return self.absent_for() <= PRESENT_S and self.who not in (None, resident_id)

    def reset(self) -> None:
        self.track_id, self.who = None, None
        self.recent.clear()


class KioskService:
    def __init__(self, app, clock: Callable[[], datetime] = now_cst) -> None:
        self.app = app
        self.clock = clock          # the terminal's time (CST); tests set it to a chosen moment
        self.presence = Presence()
        self._contexts: dict[str, CheckoutContext] = {}
        self._passive = None
        self._actors: dict = {}     # staff logged in on this screen: staff id -> Actor
        from kiosk.terminal.sync.status import start_background_sync
        self._sync = start_background_sync(app)   # a district terminal syncs by itself (None otherwise)

    @property
    def settings(self):
        return self.app.settings

    # -- idle ----------------------------------------------------------------------------
    def canteen_name(self) -> str:
        with self.app.db.session() as s:
            c = s.get(Canteen, self.settings.canteen_id)
            return c.name if c else self.settings.canteen_name

    def current_meal(self, at: datetime | None = None) -> str | None:
        from kiosk.billing.meals import meal_at

        with self.app.db.session() as s:
            return meal_at(at or self.clock(), self.app.billing.windows(s))

    def idle_info(self) -> tuple[str, datetime, str | None]:
        """The canteen's name, the time and the meal served now (None outside meal hours)."""
        from kiosk.billing.meals import meal_at

        at = self.clock()
        with self.app.db.session() as s:
            c = s.get(Canteen, self.settings.canteen_id)
            return (c.name if c else self.settings.canteen_name), at, meal_at(at, self.app.billing.windows(s))

    # -- the camera ------------------------------------------------------------------------
    def open_source(self, spec: Any = None, capture: Any = None):
        """The camera (or a file, folder, URL, or a given capture), reconnecting by itself."""
        from kiosk.vision.camera import ResilientSource, opener_for

        opener = (lambda: capture) if capture is not None else opener_for(spec if spec is not None else 0)
        return ResilientSource(opener)

    def recognition_pipeline(self):
        from kiosk.vision.pipeline import RecognitionPipeline
        from kiosk.vision.tracker import PersonTracker

        s = self.settings
        pipe = RecognitionPipeline(self.app.engine, self.app.faces.match,
                                   PersonTracker(votes_needed=s.votes_needed, window=s.vote_window))
        self.app.faces.gallery()            # load the index before the first frame
        return pipe

    def note_frame(self, has_face: bool, track_id: int | None, decision: str, resident_id: str | None,
                   match_status: str | None, match_resident: str | None) -> None:
        """Each frame's plain facts, for the queue-safety rule."""
        self.presence.note(has_face, track_id, decision, resident_id, match_status, match_resident)

    def still_in_front(self, resident_id: str) -> bool:
        """Re-checked at the tap on 确认: the recognised elder's face is in front now."""
        return self.presence.in_front(resident_id)

    def absent_for(self) -> float:
        """Seconds since any face was in front of the camera."""
        return self.presence.absent_for()

    def someone_else_in_front(self, resident_id: str) -> bool:
        return self.presence.someone_else(resident_id)

    def forget_person(self) -> None:
        self.presence.reset()

    # -- liveness ------------------------------------------------------------------------------
    def liveness_mode(self) -> str:
        return self.settings.liveness

    def new_challenge(self) -> tuple[str, str]:
        """A random head-turn direction and its spoken request."""
        from kiosk.vision.liveness import CHALLENGES

        d = random.choice(sorted(CHALLENGES))
        return d, CHALLENGES[d][0]

    def live_frame(self, ts: float, bbox, landmarks, image):
        """What the head-turn check keeps of one frame."""
        import cv2

        from kiosk.vision.liveness import LiveFrame

        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image is not None and image.ndim == 3 else image
        return LiveFrame(ts, bbox, landmarks, gray)

    def check_head_turn(self, frames: list, direction: str):
        from kiosk.vision.liveness import check_active

        return check_active(frames, direction)

    def turn_progress(self, first_landmarks, landmarks, direction: str) -> float:
        """The yaw reached the way asked against the yaw the check needs, 0..1 (the progress
        bar): the head pose in degrees, as the check measures it (kiosk.vision.headpose)."""
        from kiosk.vision.headpose import head_pose
        from kiosk.vision.liveness import CHALLENGES, LivenessConfig

        if first_landmarks is None or landmarks is None:
            return 0.0
        turned = (head_pose(landmarks).yaw - head_pose(first_landmarks).yaw) * CHALLENGES[direction][1]
        return max(0.0, min(1.0, turned / LivenessConfig().min_turn_deg))

    def passive_liveness(self, image, landmarks):
        """The configured ONNX anti-spoofing model on one frame."""
        from kiosk.vision.liveness import PassiveLiveness

        if self._passive is None:
            s = self.settings
            if s.liveness_model is None:
                from kiosk.errors import ConfigError
                raise ConfigError("未配置活体检测模型", detail="KIOSK_LIVENESS=passive needs KIOSK_LIVENESS_MODEL")
            path = s.liveness_model if s.liveness_model.is_absolute() else s.model_dir / s.liveness_model
            self._passive = PassiveLiveness(path, s.liveness_threshold)
        return self._passive.check(image, landmarks)

    # -- the checkout flow ---------------------------------------------------------------
    def load_context(self, resident_id: str, at: datetime | None = None) -> CheckoutContext:
        """One read-only session: resident, meal, policy, today's use, balance, menu, history."""
        b = self.app.billing
        at = at or self.clock()
        with self.app.db.session(read_only=True) as s:
            r = b.resident(s, resident_id)
            sex = s.execute(select(Resident.sex).where(Resident.id == resident_id)).scalar()
            day, meal = b.resolve_meal(s, at, None)
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
                              tuple((d, tuple(v)) for d, v in sorted(by_day.items())), time.monotonic())
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
        pay = "balance" if ctx.balance_fen > 0 and ctx.balance_fen >= to_pay else "cash"
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
                    tuple((ln.name, ln.quantity, ln.amount_fen) for ln in q.lines), ctx.balance_fen)

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
                                       liveness_passed=by_face and self.liveness_mode() != "off")

    def answer_tomorrow(self, resident_id: str, meal: str, coming: bool):
        """The elder's answer to "明天还来吃午饭吗？" after a checkout: tomorrow's same meal at
        this canteen booked (来) or called off (不来), recorded as the kiosk's (audited
        ``meal.book`` / ``meal.cancel``) and, on a terminal, pushed with the outbox."""
        from kiosk.services.bookings import next_day_same_meal, set_booking

        today = self.clock().date()
        day, meal = next_day_same_meal(today, meal)
        return set_booking(self.app, resident_id, day, meal, actor=None, canteen_id=self.settings.canteen_id,
                           cancel=not coming, source="counter", today=today)

    def record_misidentification(self, resident_id: str, score: float | None) -> None:
        with self.app.db.session() as s:
            audit.record(s, "kiosk", "face.misidentified", resident_id, score=score)

    def find_by_card(self, card_no: str):
        return self.app.residents.by_card(card_no.strip().upper())

    def find_by_phone(self, last4: str):
        return self.app.residents.by_phone_last4(last4)

    def call_staff(self, where: str = "收银台") -> None:
        """An elder asked for help at the counter (recorded; the screen and a sound call staff)."""
        self.audit("kiosk", "staff.called", where)

    def maybe_refresh_template(self, resident_id: str, score: float | None, quality: float, match_status: str | None,
                               live: bool, embedding, crop) -> bool:
        """A confident, live, good-quality checkout may add a fresh template (faces age)."""
        from kiosk.enrollment.refresh import maybe_refresh, should_refresh

        if embedding is None or not should_refresh(score or 0.0, self.app.faces.threshold, quality,
                                                   match_status or "", live):
            return False
        return maybe_refresh(self.app, resident_id, embedding, crop, quality)

    def refresh_template(self, resident_id: str, embedding, crop, quality: float) -> bool:
        from kiosk.enrollment.refresh import maybe_refresh

        return maybe_refresh(self.app, resident_id, embedding, crop, quality)

    # -- staff ---------------------------------------------------------------------------
    def resolve_resident(self, text: str) -> str:
        """A resident id, or a 助老卡 number, typed by staff."""
        try:
            return self.app.residents.get(text.strip()).resident_id
        except KioskError:
            return self.find_by_card(text).resident_id

    def start_capture(self):
        """A guided capture (frontal, a little left, a little right); feed it with ``capture_offer``."""
        from kiosk.enrollment.capture import CaptureSession

        return CaptureSession()

    def capture_offer(self, capture, embedding, aligned, quality: float, landmarks, hint: str | None) -> str | None:
        from kiosk.vision.quality import pose_from_landmarks

        yaw = pose_from_landmarks(landmarks)[0] if embedding is not None and landmarks is not None else 0.0
        return capture.offer(embedding, aligned, embedding is not None, quality, yaw, hint)

    # Staff act as an ``Actor`` proven by PIN (kiosk.services.auth). The staff screen logs in
    # with the PIN; the service keeps that Actor for the session and the screen names the
    # staff member by id; every service checks the Actor again inside its unit of work.
    def _new_auth(self) -> bool:
        return hasattr(self.app, "auth")

    def login(self, pin: str, min_role: str = "staff") -> dict:
        """The staff screen: the PIN alone finds the staff member; returns staff_id, name, role."""
        if not self._new_auth():
            return self.app.residents.authenticate(pin, min_role=min_role)
        actor = self.app.auth.login(pin, min_role)
        self._actors[actor.staff_id] = actor
        return actor.to_dict()

    def logout(self, staff_id: str | None) -> None:
        self._actors.pop(staff_id, None)

    def staff_actor(self, staff_id: str):
        """The Actor of a staff member logged in on this screen (the staff id on older stores)."""
        if not self._new_auth():
            return staff_id
        from kiosk.errors import PermissionDeniedError

        actor = self._actors.get(staff_id)
        if actor is None or not self.app.auth.fresh(actor):
            self._actors.pop(staff_id, None)
            raise PermissionDeniedError("登录已过期，请重新输入 PIN", detail=f"no fresh login for {staff_id!r}")
        return actor

    def enroll_captured(self, who: str, capture, staff_id: str, *, consent_now: bool,
                        override_reason: str | None = None, supervisor_pin: str | None = None):
        """Templates from a guided camera capture. A duplicate face needs a supervisor's
        PIN and a reason (audited)."""
        from kiosk.enrollment.capture import enroll_captured

        rid = self.resolve_resident(who)
        consent = "self" if consent_now else None
        if not self._new_auth():
            sup = self.login(supervisor_pin or "", min_role="supervisor")["staff_id"] if override_reason else None
            return enroll_captured(self.app, rid, capture, staff_id, consent=consent,
                                   override_reason=override_reason, override_staff=sup)
        sup = self.app.auth.login(supervisor_pin or "", "supervisor") if override_reason else None
        return enroll_captured(self.app, rid, capture, self.staff_actor(staff_id), consent=consent,
                               override_reason=override_reason, override_by=sup)

    def erase_faces(self, who: str, staff_id: str) -> dict:
        return self.app.residents.erase_faces(self.resolve_resident(who), self.staff_actor(staff_id))

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

    def topup(self, who: str, amount_fen: int, payer: str | None, staff_id: str) -> dict:
        """A top-up for a resident named by id or 助老卡 number."""
        rid = self.resolve_resident(who)
        if not self._new_auth():
            return self.app.billing.topup(rid, amount_fen, payer=payer, staff_id=staff_id)
        return self.app.billing.topup(rid, amount_fen, payer=payer, actor=self.staff_actor(staff_id))

    def sync_status(self):
        """The district sync state of this terminal (kiosk.terminal.sync.status), or None when the
        terminal is not a client of a district server (or sync is not installed)."""
        try:
            from kiosk.terminal.sync import status as sync_status
        except ImportError:
            return None
        fn = getattr(sync_status, "sync_status", None) or getattr(sync_status, "status", None) \
            or getattr(sync_status, "get_status", None)
        if fn is None:
            return None
        try:
            return fn(self.app)
        except TypeError:
            return fn()

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
        return {"date": day.isoformat(), "orders": orders, "count": len(live), "voided": len(orders) - len(live),
                "total_fen": sum(o["total_fen"] for o in live), "subsidy_fen": sum(o["subsidy_fen"] for o in live),
                "paid_fen": sum(o["to_pay_fen"] for o in live)}

    def export_today_csv(self, path: Path, staff_id: str) -> Path:
        data = self.today_orders()
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["订单号", "时间", "居民编号", "姓名", "餐次", "合计(元)", "补贴(元)", "实付(元)", "付款方式", "已作废"])
        for o in data["orders"]:
            w.writerow([o["order_id"], o["time"], o["resident_id"], o["name"], o["meal"], fen_to_yuan(o["total_fen"]),
                        fen_to_yuan(o["subsidy_fen"]), fen_to_yuan(o["to_pay_fen"]), PAY_LABELS.get(o["pay"], o["pay"]),
                        "是" if o["voided"] else ""])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(buf.getvalue(), encoding="utf-8-sig")
        tmp.replace(path)
        with self.app.db.session() as s:
            audit.record(s, staff_id, "orders.export", str(path), count=len(data["orders"]))
        return path

    def export_today(self, staff_id: str) -> Path:
        return self.export_today_csv(self.settings.home / "exports" / f"orders-{self.clock():%Y%m%d}.csv", staff_id)

    def export_month(self, month: str, path: Path, staff_id: str) -> Path:
        from kiosk.services.reports import monthly_subsidy, write_report

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return write_report(self.app, monthly_subsidy(self.app, month), path, staff_id)

    def export_this_month(self, staff_id: str) -> Path:
        month = f"{self.clock():%Y-%m}"
        return self.export_month(month, self.settings.home / "exports" / f"subsidy-{month}.xlsx", staff_id)

    def import_file(self, kind: str, path: Path, staff_id: str, skip_invalid: bool = False):
        from kiosk.services.importing import import_menu, import_policy, import_roster

        if self._new_auth():
            self.app.auth.check(self.staff_actor(staff_id), "data.import")
        if kind == "roster":
            return import_roster(self.app, path, skip_invalid=skip_invalid, staff_id=staff_id)
        if kind == "menu":
            return import_menu(self.app, path, skip_invalid=skip_invalid, staff_id=staff_id)
        if kind == "policy":
            return import_policy(self.app, path, staff_id=staff_id)
        raise ValidationError("未知的导入类型", detail=kind)

    def audit(self, actor: str, action: str, subject: str | None = None, **detail) -> None:
        with self.app.db.session() as s:
            audit.record(s, actor, action, subject, **detail)
