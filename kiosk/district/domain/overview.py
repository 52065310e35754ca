"""概览: what a district head looks at first, kept fast at district size (10^5 residents,
millions of orders): every figure is aggregated in SQL over indexed columns and no order
row comes back to Python.

* today's meals per canteen and meals per day per canteen over the last 30 days, with
  this month's subsidy (net of what the office charged back, as the monthly report's
  应报销补贴) against the monthly budget an admin sets (audited ``budget.set``). One
  grouped scan of ``ix_orders_day_canteen`` (meal_date, canteen_id INCLUDE subsidy_fen:
  an index-only scan on PostgreSQL) for the days from the earlier of the month's first
  day and 30 days ago; voided orders are taken off with a second grouped query that
  starts from the (few) voids instead of probing every order for a void. At district size
  (3x10^6 orders in the window) that scan takes about half a second, so the days before
  today are kept (``PAST_FRESH_SECONDS``) and refreshed in the background; today's
  orders are counted on every call;
* the undecided items as counts: reconciliation flags without a decision (per month),
  the quarantine list's waiting ops, the month's anomaly leads;
* the counts that need a whole-month scan (the anomaly leads, the open welfare alerts)
  come from a scan run in the background and kept for ``FRESH_SECONDS``: the page waits
  for it at most ``WAIT_SECONDS`` and otherwise says it is being counted.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

from sqlalchemy import func, select

from kiosk.db import audit
from kiosk.db.models import (Canteen, DistrictFlag, DistrictSetting, FaceTemplate, Order, OrderVoid, QuarantinedOp,
                             Terminal, utcnow)
from kiosk.errors import PermissionDeniedError, ValidationError
from kiosk.money import AmountError, fen_to_yuan, yuan_to_fen
from kiosk.timeutil import month_bounds, now_cst, to_cst

log = logging.getLogger(__name__)

DAYS = 30                       # the chart's days, up to today
CHART_LINES = 8                 # canteens drawn apart; the rest are summed as 其他
BUDGET_MAX_FEN = 10 ** 12       # 100 亿元 a month: far above any district's subsidy
FRESH_SECONDS = 600.0           # a background count is reused this long
WAIT_SECONDS = 0.5              # the page waits this long for the first background count
PAST_FRESH_SECONDS = 120.0      # the days before today: their meals and subsidy are reused this long
KEPT_MAX = 64


# ---------------------------------------------------------------------- the budget (an admin's setting)
def district_key(s) -> str:
    """Whose settings: the district of the server's canteens (as the anomaly thresholds)."""
    from kiosk.district.domain.anomalies import _district

    return _district(s)


def budget_fen(app, district: str | None = None) -> int | None:
    """The monthly subsidy budget in fen (None: not set)."""
    with app.db.session(read_only=True) as s:
        row = s.get(DistrictSetting, district or district_key(s))
        return int(row.subsidy_budget_fen) if row is not None and row.subsidy_budget_fen is not None else None


def parse_budget(text: object) -> int | None:
    """A budget in yuan as typed (``12.5``, ``80000``, ``8,000``) -> fen; empty -> None (clear it)."""
    raw = str(text if text is not None else "").strip().replace(",", "").replace("，", "").replace("元", "")
    if not raw:
        return None
    try:
        fen = yuan_to_fen(raw, max_fen=BUDGET_MAX_FEN)
    except (AmountError, ValueError):
        raise ValidationError(f"每月补贴预算应为不超过 {fen_to_yuan(BUDGET_MAX_FEN)} 元的金额（最多两位小数），"
                              f"不是「{raw[:30]}」", detail=f"budget {raw[:30]!r}") from None
    if fen <= 0:
        raise ValidationError("每月补贴预算应大于 0 元（清空请留空）", detail=f"budget {raw[:30]!r} <= 0")
    return fen


def set_budget(app, fen: int | None, actor, district: str | None = None) -> int | None:
    """An admin (proven: ``actor``) sets the monthly subsidy budget (None: clears it);
    audited ``budget.set`` with the old and new amounts."""
    if getattr(actor, "role", None) != "admin" or not getattr(actor, "staff_id", None):
        raise PermissionDeniedError("设置每月补贴预算需要管理员", detail=f"role {getattr(actor, 'role', None)!r}")
    if fen is not None and (isinstance(fen, bool) or not isinstance(fen, int) or not 0 < fen <= BUDGET_MAX_FEN):
        raise ValidationError("每月补贴预算应大于 0 元", detail=f"budget fen {fen!r}")
    with app.db.session() as s:
        key = district or district_key(s)
        row = s.get(DistrictSetting, key)
        if row is None:
            row = DistrictSetting(district=key, updated_by=actor.staff_id)
            s.add(row)
        old = row.subsidy_budget_fen
        row.subsidy_budget_fen = fen
        row.updated_by, row.updated_at = actor.staff_id, utcnow()
        audit.record(s, actor.staff_id, "budget.set", key, old_fen=old, new_fen=fen)
    return fen


# ---------------------------------------------------------------------- the figures
@dataclass
class CanteenToday:
    canteen_id: str
    name: str
    meals: int


@dataclass
class Series:
    """Meals per day of one canteen (or of the others together: ``canteen_id`` None)."""
    canteen_id: str | None
    name: str
    meals: list[int]

    @property
    def total(self) -> int:
        return sum(self.meals)


@dataclass
class Undecided:
    reconcile: list[tuple[str, int]]          # (month, flags without a decision), oldest first
    quarantine: int                           # waiting ops

    @property
    def reconcile_total(self) -> int:
        return sum(n for _, n in self.reconcile)


@dataclass
class Overview:
    today: date
    month: str
    canteens_today: list[CanteenToday]
    days: list[date]
    series: list[Series]
    subsidy_fen: int                          # the month's subsidy on live orders
    charged_back_fen: int                     # taken off by the office (追回)
    budget_fen: int | None
    undecided: Undecided
    faces: int
    terminals: int
    terminals_pending: int
    terminals_stale: int
    seconds: dict = field(default_factory=dict)

    @property
    def meals_today(self) -> int:
        return sum(c.meals for c in self.canteens_today)

    @property
    def day_totals(self) -> list[int]:
        return [sum(x.meals[i] for x in self.series) for i in range(len(self.days))]

    @property
    def net_subsidy_fen(self) -> int:
        return self.subsidy_fen - self.charged_back_fen

    @property
    def budget_share(self) -> float | None:
        return self.net_subsidy_fen / self.budget_fen if self.budget_fen else None

    @property
    def month_share(self) -> float:
        """How much of the month has passed (today counted whole)."""
        first, last = month_bounds(self.today)
        return self.today.day / last.day

    @property
    def projected_fen(self) -> int:
        """The month's subsidy at this pace (a straight line from the days so far)."""
        return round(self.net_subsidy_fen / self.month_share)

    def to_json(self) -> dict:
        return {"today": self.today.isoformat(), "month": self.month, "meals_today": self.meals_today,
                "canteens_today": [c.__dict__ for c in self.canteens_today],
                "days": [d.isoformat() for d in self.days],
                "series": [{"canteen_id": x.canteen_id, "name": x.name, "meals": x.meals} for x in self.series],
                "subsidy_fen": self.subsidy_fen, "charged_back_fen": self.charged_back_fen,
                "net_subsidy_fen": self.net_subsidy_fen, "budget_fen": self.budget_fen,
                "projected_fen": self.projected_fen,
                "undecided": {"reconcile": [{"month": m, "count": n} for m, n in self.undecided.reconcile],
                              "quarantine": self.undecided.quarantine},
                "faces": self.faces, "terminals": self.terminals, "terminals_pending": self.terminals_pending,
                "terminals_stale": self.terminals_stale}


def _per_day_canteen(s, first: date, last: date) -> dict[tuple[date, str], tuple[int, int]]:
    """(meals, subsidy fen) per (day, canteen) of the live orders of ``first``..``last``:
    every order, less the voided ones (found from order_voids, which is small)."""
    cols = (Order.meal_date, Order.canteen_id, func.count(), func.coalesce(func.sum(Order.subsidy_fen), 0))
    in_days = (Order.meal_date >= first, Order.meal_date <= last)
    out: dict[tuple[date, str], tuple[int, int]] = {}
    for d, cid, n, fen in s.execute(select(*cols).where(*in_days).group_by(Order.meal_date, Order.canteen_id)):
        out[(d, cid)] = (int(n), int(fen))
    for d, cid, n, fen in s.execute(select(*cols).select_from(OrderVoid).join(Order, Order.id == OrderVoid.order_id)
                                    .where(*in_days).group_by(Order.meal_date, Order.canteen_id)):
        m, f = out.get((d, cid), (0, 0))
        out[(d, cid)] = (m - int(n), f - int(fen))
    return out


def _series(days: list[date], counts: dict[tuple[date, str], tuple[int, int]], names: dict[str, str],
            lines: int = CHART_LINES) -> list[Series]:
    """One line per canteen, the busiest first; past ``lines`` canteens the rest are one line (其他)."""
    index = {d: i for i, d in enumerate(days)}
    per: dict[str, list[int]] = {}
    for (d, cid), (n, _) in counts.items():
        if d in index:
            per.setdefault(cid, [0] * len(days))[index[d]] += n
    for cid in names:
        per.setdefault(cid, [0] * len(days))
    ordered = sorted(per.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    if len(ordered) <= lines:
        return [Series(cid, names.get(cid) or cid, m) for cid, m in ordered]
    head, rest = ordered[:lines - 1], ordered[lines - 1:]
    other = [sum(m[i] for _, m in rest) for i in range(len(days))]
    return [Series(cid, names.get(cid) or cid, m) for cid, m in head] + \
        [Series(None, f"其他 {len(rest)} 个食堂", other)]


def store_key(app) -> tuple:
    """Which store kept figures belong to (the object and its address: an id alone may be reused)."""
    engine = getattr(app.db, "engine", None)
    return id(app.db), str(engine.url) if engine is not None else None


def _past(app, since: date, today: date) -> dict[tuple[date, str], tuple[int, int]]:
    with app.db.session(read_only=True) as s:
        return _per_day_canteen(s, since, today - timedelta(days=1))


def overview(app, today: date | None = None, now: datetime | None = None, *,
             past_fresh: float = PAST_FRESH_SECONDS) -> Overview:
    """The overview's figures for ``today`` (China time; default now). The days before
    today are kept for ``past_fresh`` seconds (0: counted now, e.g. the command line)."""
    from kiosk.district.domain.terminals import stale_in_meal_time
    from kiosk.services.reports import charge_backs

    today = today or now_cst().date()
    now = now or utcnow()
    first_of_month, last_of_month = month_bounds(today)
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    clock = [time.monotonic()]
    seconds: dict[str, float] = {}

    def took(what: str) -> None:
        clock.append(time.monotonic())
        seconds[what] = round(clock[-1] - clock[-2], 4)

    since = min(days[0], first_of_month)
    past = None
    if past_fresh > 0:
        # the days before today change rarely (a late push, a void): kept and refreshed in the
        # background; today is counted on every call
        past = kept(("past", store_key(app), since, today), lambda: _past(app, since, today),
                    fresh=past_fresh, wait=None)
        if past["value"] is None:
            raise RuntimeError(f"overview: counting the days before {today} failed: {past['error']}")
    with app.db.session(read_only=True) as s:
        canteens = s.execute(select(Canteen.id, Canteen.name, Canteen.meal_windows).order_by(Canteen.id)).all()
        names = {cid: (nm or cid) for cid, nm, _ in canteens}
        windows = {cid: w for cid, _, w in canteens}
        if past is not None:
            counts = {**past["value"], **_per_day_canteen(s, today, today)}
        else:
            counts = _per_day_canteen(s, since, today)
        took("orders")
        back = sum(x[3] for x in charge_backs(s, first_of_month, last_of_month).values())
        undecided_by_day = s.execute(select(DistrictFlag.meal_date, func.count()).where(DistrictFlag.decision.is_(None))
                                     .group_by(DistrictFlag.meal_date)).all()
        waiting = s.scalar(select(func.count()).select_from(QuarantinedOp).where(QuarantinedOp.status == "waiting"))
        took("undecided")
        faces = s.scalar(select(func.count(func.distinct(FaceTemplate.resident_id)))) or 0
        terms = s.execute(select(Terminal.canteen_id, Terminal.pending, Terminal.last_push_at, Terminal.last_pull_at,
                                 Terminal.created_at).where(Terminal.revoked_at.is_(None))).all()
        took("faces_terminals")
    for cid in {c for _, c in counts}:
        names.setdefault(cid, cid)
    by_month: dict[str, int] = {}
    for d, n in undecided_by_day:
        by_month[f"{d:%Y-%m}"] = by_month.get(f"{d:%Y-%m}", 0) + int(n)
    stale = 0
    for cid, _, push, pull, created in terms:
        syncs = [x for x in (push, pull) if x]
        if stale_in_meal_time(max(syncs) if syncs else None, created, now, windows.get(cid)):
            stale += 1
    today_rows = [CanteenToday(cid, names[cid], counts.get((today, cid), (0, 0))[0]) for cid in names]
    today_rows.sort(key=lambda c: (-c.meals, c.canteen_id))
    subsidy = sum(f for (d, _), (_, f) in counts.items() if first_of_month <= d <= last_of_month)
    return Overview(today=today, month=f"{today:%Y-%m}", canteens_today=today_rows, days=days,
                    series=_series(days, counts, names), subsidy_fen=subsidy, charged_back_fen=back,
                    budget_fen=budget_fen(app), undecided=Undecided(sorted(by_month.items()), int(waiting or 0)),
                    faces=int(faces), terminals=len(terms), terminals_pending=sum(int(p or 0) for _, p, *_ in terms),
                    terminals_stale=stale, seconds=seconds)


# ---------------------------------------------------------------------- the chart (SVG drawn by the server)
@dataclass
class ChartLine:
    name: str
    color: str
    points: str                     # the polyline's "x,y x,y ..."
    dots: list[tuple[float, float, str]]   # each day's point with its tooltip
    total: int


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_w: float
    plot_h: float
    y_ticks: list[tuple[float, int]]       # (y, value)
    x_ticks: list[tuple[float, str]]       # (x, label)
    lines: list[ChartLine]
    y_max: int


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def nice_max(v: int) -> int:
    """The axis top: the smallest 1, 2, 2.5 or 5 times a power of ten at or above ``v`` (at least 5)."""
    v = max(int(v), 5)
    mag = 1
    while mag * 10 <= v:
        mag *= 10
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * mag)
        if top >= v:
            return top
    return 10 * mag


def chart(days: list[date], series: list[Series], width: int = 880, height: int = 300) -> Chart:
    """The geometry of meals per day per canteen as a line chart (the template draws it)."""
    left, top, right, bottom = 56, 14, 16, 34
    pw, ph = width - left - right, height - top - bottom
    y_max = nice_max(max((m for x in series for m in x.meals), default=0))
    n = len(days)

    def x_of(i: int) -> float:
        return round(left + (pw * i / (n - 1) if n > 1 else pw / 2), 1)

    def y_of(v: int) -> float:
        return round(top + ph - ph * v / y_max, 1)

    lines = []
    for k, sr in enumerate(series):
        pts = [(x_of(i), y_of(v)) for i, v in enumerate(sr.meals)]
        lines.append(ChartLine(sr.name, PALETTE[k % len(PALETTE)], " ".join(f"{x},{y}" for x, y in pts),
                               [(x, y, f"{sr.name} {days[i]:%m-%d}：{sr.meals[i]} 餐") for i, (x, y) in enumerate(pts)],
                               sr.total))
    y_ticks = [(y_of(round(y_max * k / 5)), round(y_max * k / 5)) for k in range(6)]
    x_ticks = [(x_of(i), f"{d.month}/{d.day}") for i, d in enumerate(days) if (n - 1 - i) % 5 == 0]
    return Chart(width, height, left, top, pw, ph, y_ticks, x_ticks, lines, y_max)


# ---------------------------------------------------------------------- counts from a background scan
@dataclass
class _Slow:
    values: dict | None = None
    at: float = 0.0                       # monotonic time the values were counted
    counted_at: datetime | None = None
    thread: threading.Thread | None = None
    error: str | None = None


_SLOW: dict[tuple, _Slow] = {}
_SLOW_LOCK = threading.Lock()


def slow_counts(app, day: date) -> dict:
    """What needs a whole-month scan, as of ``day``: the anomaly leads of its month per kind
    and the open welfare alerts (not visited since the last meal)."""
    from kiosk.district.domain import anomalies as an
    from kiosk.district.domain import reports as dr

    month = f"{day:%Y-%m}"
    rep = an.scan(app, month, an.thresholds(app))
    alerts = dr.welfare_alerts(app, today=day)
    return {"month": month, "anomalies": {k: rep["counts"][k] for k in an.KINDS},
            "anomalies_total": sum(rep["counts"].values()),
            "welfare": sum(1 for a in alerts if not (a.last_visit and a.last_visit["after_last_meal"]))}


def kept(key: tuple, compute: Callable[[], object], *, fresh: float, wait: float | None) -> dict:
    """``compute()`` run in a thread and its result kept for ``fresh`` seconds under ``key``;
    waits for the first result at most ``wait`` seconds (None: until it is there); later
    the kept result is returned at once while a new one is computed. Returns ``value``
    (None while the first runs), ``counted_at`` (UTC), ``running``, ``error``."""
    with _SLOW_LOCK:
        slot = _SLOW.get(key)
        if slot is None:
            if len(_SLOW) >= KEPT_MAX:               # the oldest go (a day's keys are of no use the next)
                for k in sorted(_SLOW, key=lambda k: _SLOW[k].at)[:len(_SLOW) - KEPT_MAX + 1]:
                    del _SLOW[k]
            slot = _SLOW[key] = _Slow()
        stale = slot.values is None or time.monotonic() - slot.at > fresh
        if stale and (slot.thread is None or not slot.thread.is_alive()):
            def run() -> None:
                try:
                    values = compute()
                    with _SLOW_LOCK:
                        slot.values, slot.at, slot.counted_at, slot.error = values, time.monotonic(), utcnow(), None
                except Exception as exc:           # reported; the next call tries again
                    log.exception("overview: background count failed")
                    with _SLOW_LOCK:
                        slot.error = f"{type(exc).__name__}: {exc}"[:300]
            slot.thread = threading.Thread(target=run, name="overview-counts", daemon=True)
            slot.thread.start()
        thread = slot.thread
        first = slot.values is None
    if stale and first and thread is not None and (wait is None or wait > 0):
        thread.join(wait)
    with _SLOW_LOCK:
        return {"value": slot.values, "running": slot.thread is not None and slot.thread.is_alive(),
                "counted_at": slot.counted_at, "error": slot.error}


def background_counts(app, day: date | None = None, *, wait: float = WAIT_SECONDS, fresh: float = FRESH_SECONDS,
                      count: Callable[[object, date], dict] = slow_counts) -> dict:
    """``count(app, day)`` (by default the anomaly leads and welfare alerts) kept for
    ``fresh`` seconds per store and day (``kept``). Returns ``counts`` (None while the
    first count runs), ``counted_at`` (China time, text), ``running``, ``error``."""
    day = day or now_cst().date()
    k = kept(("slow", store_key(app), day, count), lambda: count(app, day), fresh=fresh, wait=wait)
    return {"counts": k["value"], "running": k["running"], "error": k["error"],
            "counted_at": to_cst(k["counted_at"]).strftime("%m-%d %H:%M") if k["counted_at"] else None}


def forget_counts() -> None:
    """Drop every kept background count (tests; after a restore)."""
    with _SLOW_LOCK:
        _SLOW.clear()
