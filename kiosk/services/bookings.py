"""Meals booked ahead (报餐) and cancelled (报停): by a named staff member (the command line,
the console), from the platform's 报餐单 file, or by the elder at the counter after a
checkout. One row per resident, day and meal (``meal_bookings``); a cancellation keeps
the row (``cancelled``) so the kitchen's count and the office's no-show list read one table.

The kitchen sheet (portions per canteen, meal and dish) and the no-shows (booked, not
cancelled, and no meal served that day and meal at any canteen of the district) are
computed by pure functions over plain rows (``kitchen_counts``, ``count_no_shows``)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import Canteen, MealBooking, MenuItem, Order, OrderVoid, Resident, Terminal, utcnow
from kiosk.db.permissions import require
from kiosk.errors import ImportFileError, NotFoundError, ValidationError
from kiosk.services.report_files import Sheet, TableReport
from kiosk.services.tabular import Column, Problem, parse_date, read_table, split_list

MEALS = ("早餐", "午餐", "晚餐")
PORTIONS_MAX = 10
DISHES_MAX = 10
YES = {"是", "yes", "y", "true", "1"}
NO = {"否", "no", "n", "false", "0", ""}
CANTEEN_CHOICE = "（食堂安排）"      # a booking without dishes: the kitchen decides

BOOKING_COLUMNS = [
    Column("日期", "date", True), Column("餐次", "meal", True), Column("编号", "resident_id"),
    Column("身份证号", "id_number"), Column("食堂", "canteen_id"), Column("菜品编号", "dish_ids"),
    Column("份数", "portions"), Column("报停", "cancel")]
HEADERS = {c.alias: c.header for c in BOOKING_COLUMNS}


# ---------------------------------------------------------------------- pure rules
def booking_problems(meal_date: date, meal: str, portions: int, dish_ids: list[str],
                     today: date) -> list[tuple[str, str, str]]:
    """What is wrong with a booking, as (column alias, Chinese, English); empty when nothing."""
    out = []
    if meal_date < today:
        out.append(("date", f"日期 {meal_date} 已经过去，只能报今天（{today}）或以后的餐",
                    f"{meal_date} is before today {today}"))
    if meal not in MEALS:
        out.append(("meal", f"餐次「{meal}」不对，应为 早餐、午餐 或 晚餐", f"unknown meal {meal!r}"))
    if not 1 <= portions <= PORTIONS_MAX:
        out.append(("portions", f"份数应为 1 到 {PORTIONS_MAX} 的整数", f"portions {portions} not in 1..{PORTIONS_MAX}"))
    if len(dish_ids) > DISHES_MAX:
        out.append(("dish_ids", f"菜品最多 {DISHES_MAX} 个", f"{len(dish_ids)} dishes > {DISHES_MAX}"))
    return out


def next_day_same_meal(day: date, meal: str) -> tuple[date, str]:
    """The booking the counter offers after a checkout: tomorrow, the same meal."""
    return day + timedelta(days=1), meal


@dataclass(frozen=True)
class BookedRow:
    """A booking as the counts read it."""
    resident_id: str
    canteen_id: str
    meal_date: date
    meal: str
    dish_ids: tuple[str, ...]
    portions: int
    cancelled: bool = False


def kitchen_counts(rows: list[BookedRow]) -> dict[tuple[str, str], dict]:
    """Per (canteen, meal): elders booked, portions booked, and portions per dish (a booking
    without dishes counts under CANTEEN_CHOICE). Cancelled bookings count nowhere."""
    out: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r.cancelled:
            continue
        c = out.setdefault((r.canteen_id, r.meal), {"elders": 0, "portions": 0, "dishes": defaultdict(int)})
        c["elders"] += 1
        c["portions"] += r.portions
        for d in (r.dish_ids or (CANTEEN_CHOICE,)):
            c["dishes"][d] += r.portions
    return out


def count_no_shows(rows: list[BookedRow], came: set[tuple[str, date, str]]) -> dict[str, dict]:
    """Per canteen: bookings (not cancelled) and those whose elder had no meal that day and
    meal (``came``: (resident, day, meal) served anywhere, not voided)."""
    out: dict[str, dict] = {}
    for r in rows:
        if r.cancelled:
            continue
        c = out.setdefault(r.canteen_id, {"booked": 0, "came": 0, "no_show": 0, "no_show_list": []})
        c["booked"] += 1
        if (r.resident_id, r.meal_date, r.meal) in came:
            c["came"] += 1
        else:
            c["no_show"] += 1
            c["no_show_list"].append((r.resident_id, r.meal_date, r.meal))
    return out


# ---------------------------------------------------------------------- one booking
@dataclass
class BookingResult:
    resident_id: str
    name: str
    meal_date: date
    meal: str
    canteen_id: str
    dish_ids: list[str]
    portions: int
    cancelled: bool
    changed: bool

    def to_json(self) -> dict:
        return {"resident_id": self.resident_id, "name": self.name, "date": self.meal_date.isoformat(),
                "meal": self.meal, "canteen_id": self.canteen_id, "dish_ids": self.dish_ids,
                "portions": self.portions, "cancelled": self.cancelled, "changed": self.changed}


def _today() -> date:
    from kiosk.timeutil import now_cst

    return now_cst().date()


def last_canteen(s: Session, resident_id: str) -> str | None:
    """The canteen of the resident's last meal (not voided)."""
    return s.scalar(select(Order.canteen_id).outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                    .where(Order.resident_id == resident_id, OrderVoid.id.is_(None))
                    .order_by(Order.meal_date.desc(), Order.created_at.desc()).limit(1))


def _resident(s: Session, resident_id: str | None, id_number: str | None = None) -> Resident:
    r = None
    if resident_id:
        r = s.get(Resident, resident_id)
    elif id_number:
        r = s.scalar(select(Resident).where(Resident.id_number == id_number.upper()))
    if r is None or r.status == "erased":
        who = resident_id or id_number or ""
        raise NotFoundError(f"没有编号或身份证号为 {who} 的居民", detail=f"resident {who!r} not found")
    return r


def _canteen_for(app, s: Session, r: Resident, canteen_id: str | None) -> str:
    if canteen_id:
        if (s.get(Canteen, canteen_id) is None and canteen_id != _own_canteen(app, s)
                and s.scalar(select(MenuItem.id).where(MenuItem.canteen_id == canteen_id).limit(1)) is None):
            raise NotFoundError(f"没有编号为 {canteen_id} 的食堂", detail=f"canteen {canteen_id!r} not found")
        return canteen_id
    if app.settings.is_terminal:
        return app.settings.canteen_id
    last = last_canteen(s, r.id) or _own_canteen(app, s)
    if last is None:
        raise ValidationError(f"{r.name}（{r.id}）还没有在任何食堂吃过饭，请写明食堂",
                              detail=f"no canteen given and {r.id} has no meal yet")
    return last


def status_problem(r: Resident, day: date) -> str | None:
    """Why ``r`` cannot be booked for ``day``: 迁出 or 死亡 in effect that day (None: may be)."""
    from kiosk.billing.status import checkout_refusal

    why = checkout_refusal(r.name, getattr(r, "roster_status", None), getattr(r, "status_date", None), day)
    return f"不能报餐：{why}" if why else None


def _own_canteen(app, s: Session) -> str | None:
    """This machine's canteen on a terminal or a single machine; None on a district server
    (a store that has issued terminals: an elder with no meal yet has no canteen to default to)."""
    if app.settings.is_terminal:
        return app.settings.canteen_id
    if s.scalar(select(Terminal.id).limit(1)) is not None:
        return None
    return app.settings.canteen_id


def _dish_problem(s: Session, canteen_id: str, day: date, meal: str, dish_ids: list[str]) -> str | None:
    """A dish not on the canteen's menu of that day and meal (checked only once the menu is in)."""
    if not dish_ids:
        return None
    menu = set(s.scalars(select(MenuItem.dish_id).where(MenuItem.canteen_id.in_((canteen_id, "*", "")),
                                                        MenuItem.menu_date == day, MenuItem.meal == meal)))
    if not menu:
        return None
    missing = [d for d in dish_ids if d not in menu]
    return "、".join(missing) if missing else None


def _upsert(s: Session, r: Resident, day: date, meal: str, canteen_id: str, dish_ids: list[str], portions: int,
            cancel: bool, source: str, staff_id: str | None, terminal_id: str | None) -> tuple[MealBooking, bool]:
    b = s.scalar(select(MealBooking).where(MealBooking.resident_id == r.id, MealBooking.meal_date == day,
                                           MealBooking.meal == meal))
    if b is None:
        b = MealBooking(resident_id=r.id, meal_date=day, meal=meal, canteen_id=canteen_id,
                        dish_ids=[] if cancel else list(dish_ids), portions=portions, cancelled=cancel,
                        source=source, staff_id=staff_id, terminal_id=terminal_id)
        s.add(b)
        return b, True
    before = (b.canteen_id, list(b.dish_ids or []), b.portions, b.cancelled)
    if cancel:
        b.cancelled = True
    else:
        b.canteen_id, b.dish_ids, b.portions, b.cancelled = canteen_id, list(dish_ids), portions, False
    after = (b.canteen_id, list(b.dish_ids or []), b.portions, b.cancelled)
    if before != after:
        b.source, b.staff_id, b.terminal_id, b.updated_at = source, staff_id, terminal_id, utcnow()
    return b, before != after


def set_booking(app, resident_id: str, meal_date: date, meal: str, *, actor=None, canteen_id: str | None = None,
                dish_ids: list[str] | tuple[str, ...] = (), portions: int = 1, cancel: bool = False,
                source: str = "cli", today: date | None = None) -> BookingResult:
    """Book (or, ``cancel``, call off) one meal of one resident. ``actor``: the staff member
    proven by PIN or password (``meal.book``), or None for the elder at the counter (audited
    as ``kiosk``). Audited ``meal.book`` / ``meal.cancel``; published ``booking.set``."""
    dish_ids = [str(d).strip() for d in dish_ids if str(d).strip()]
    bad = booking_problems(meal_date, meal, int(portions), dish_ids, today or _today())
    if bad:
        raise ValidationError("；".join(p[1] for p in bad), detail="; ".join(p[2] for p in bad))
    terminal_id = getattr(app.settings, "terminal_id", None) if app.settings.is_terminal else None
    with app.db.session() as s:
        staff_id = require(s, actor, "meal.book").id if actor is not None else None
        r = _resident(s, resident_id)
        refusal = None if cancel else status_problem(r, meal_date)
        if refusal:
            raise ValidationError(refusal, detail=f"{r.id}: roster status {r.roster_status} from {r.status_date}")
        cid = _canteen_for(app, s, r, canteen_id)
        missing = None if cancel else _dish_problem(s, cid, meal_date, meal, dish_ids)
        if missing:
            raise ValidationError(f"菜品 {missing} 不在食堂 {cid} {meal_date} {meal}的菜单上",
                                  detail=f"dishes {missing} not on {cid}'s menu of {meal_date} {meal}")
        b, changed = _upsert(s, r, meal_date, meal, cid, dish_ids, int(portions), cancel, source, staff_id,
                             terminal_id)
        if changed:
            s.flush()
            audit.record(s, staff_id or "kiosk", "meal.cancel" if cancel else "meal.book", r.id,
                         date=meal_date.isoformat(), meal=meal, canteen=cid, dish_ids=list(b.dish_ids or []),
                         portions=b.portions, source=source)
            app.events.publish(s, "booking.set", resident_id=r.id, meal_date=meal_date.isoformat(), meal=meal)
        return BookingResult(r.id, r.name, meal_date, meal, b.canteen_id, list(b.dish_ids or []), b.portions,
                             b.cancelled, changed)


def booking_of(app, resident_id: str, meal_date: date, meal: str) -> BookingResult | None:
    with app.db.session(read_only=True) as s:
        b = s.scalar(select(MealBooking).where(MealBooking.resident_id == resident_id,
                                               MealBooking.meal_date == meal_date, MealBooking.meal == meal))
        if b is None:
            return None
        r = s.get(Resident, resident_id)
        return BookingResult(b.resident_id, r.name if r else "", b.meal_date, b.meal, b.canteen_id,
                             list(b.dish_ids or []), b.portions, b.cancelled, False)


# ---------------------------------------------------------------------- the 报餐单 file
@dataclass
class PlannedBooking:
    row: int
    resident_id: str
    name: str
    meal_date: date
    meal: str
    canteen_id: str
    dish_ids: list[str]
    portions: int
    cancel: bool

    def to_json(self) -> dict:
        return {"row": self.row, "resident_id": self.resident_id, "name": self.name,
                "date": self.meal_date.isoformat(), "meal": self.meal, "canteen_id": self.canteen_id,
                "dish_ids": self.dish_ids, "portions": self.portions, "cancel": self.cancel}


@dataclass
class BookingImport:
    file: str
    rows: list[PlannedBooking] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = True
    imported: bool = False
    changed: int = 0

    def to_json(self) -> dict:
        return {"file": self.file, "dry_run": self.dry_run, "imported": self.imported,
                "rows": len(self.rows) + len({p.row for p in self.problems if p.row}),
                "bookings": sum(1 for p in self.rows if not p.cancel),
                "cancellations": sum(1 for p in self.rows if p.cancel), "changed": self.changed,
                "planned": [p.to_json() for p in self.rows],
                "problems": [p.to_json() for p in self.problems], "warnings": self.warnings}


def _cell(v: object) -> str:
    return "" if v is None else str(v).strip()


def plan_bookings(app, path: Path, *, today: date | None = None) -> BookingImport:
    """Read and check every row of a 报餐单 (nothing written). A bad row is a Problem named by
    row, column (its Chinese header) and the resident's name when the resident is known."""
    today = today or _today()
    table = read_table(Path(path), BOOKING_COLUMNS)
    plan = BookingImport(Path(path).name, warnings=list(table.warnings))
    seen: dict[tuple[str, date, str], int] = {}
    with app.db.session(read_only=True) as s:
        canteens = set(s.scalars(select(Canteen.id))) | set(s.scalars(select(MenuItem.canteen_id).distinct()))
        own = _own_canteen(app, s)
        if own:
            canteens.add(own)
        for n, cells in table.rows:
            probs: list[tuple[str, str, str]] = []
            r = None
            rid, idn = _cell(cells.get("resident_id")), _cell(cells.get("id_number"))
            if not rid and not idn:
                probs.append(("resident_id", "缺少编号（或身份证号）", "no resident_id or id_number"))
            else:
                try:
                    r = _resident(s, rid or None, idn or None)
                except NotFoundError:
                    probs.append(("resident_id" if rid else "id_number", f"没有编号或身份证号为 {rid or idn} 的居民",
                                  f"unknown resident {rid or idn!r}"))
            day = None
            try:
                day = parse_date(cells.get("date"))
            except (ValueError, TypeError):
                probs.append(("date", f"日期「{_cell(cells.get('date'))}」应为 YYYY-MM-DD",
                              f"bad date {_cell(cells.get('date'))!r}"))
            meal = _cell(cells.get("meal"))
            ptext = _cell(cells.get("portions"))
            portions = 1
            if ptext:
                if ptext.isascii() and ptext.isdigit() and len(ptext) <= 3:
                    portions = int(ptext)
                else:
                    probs.append(("portions", f"份数「{ptext}」应为整数", f"portions {ptext!r} is not a whole number"))
            ctext = _cell(cells.get("cancel")).lower()
            if ctext not in YES and ctext not in NO:
                probs.append(("cancel", f"报停「{ctext}」应为 是 或留空", f"cancel {ctext!r} is not 是 or empty"))
            cancel = ctext in YES
            dishes = split_list(cells.get("dish_ids"))
            if day is not None:
                probs += [p for p in booking_problems(day, meal, portions, dishes, today)]
            cid = _cell(cells.get("canteen_id"))
            if cid and cid not in canteens:
                probs.append(("canteen_id", f"没有编号为 {cid} 的食堂", f"unknown canteen {cid!r}"))
            elif not cid and r is not None:
                cid = last_canteen(s, r.id) or own or ""
                if not cid and not cancel:
                    probs.append(("canteen_id", "食堂为空，而这位居民还没有在任何食堂吃过饭：请写明食堂",
                                  "no canteen and no meal yet to take it from"))
            if r is not None and day is not None and meal in MEALS and cid and not cancel:
                missing = _dish_problem(s, cid, day, meal, dishes)
                if missing:
                    probs.append(("dish_ids", f"菜品 {missing} 不在食堂 {cid} 当天{meal}的菜单上",
                                  f"dishes {missing} not on {cid}'s menu"))
            if r is not None and day is not None and not cancel and status_problem(r, day):
                probs.append(("resident_id" if rid else "id_number", status_problem(r, day),
                              f"roster status {r.roster_status} from {r.status_date}"))
            if r is not None and day is not None:
                key = (r.id, day, meal)
                if key in seen:
                    probs.append(("date", f"与第 {seen[key]} 行是同一位居民的同一餐", f"same meal as row {seen[key]}"))
                seen.setdefault(key, n)
            who = f"（{r.name}）" if r is not None else ""
            for col, zh, en in probs:
                plan.problems.append(Problem(n, HEADERS.get(col, col), f"{zh}{who}", en))
            if not probs and r is not None and day is not None:
                plan.rows.append(PlannedBooking(n, r.id, r.name, day, meal, cid, dishes, portions, cancel))
    return plan


def import_bookings(app, path: Path, *, actor=None, dry_run: bool = False, today: date | None = None,
                    source: str = "import") -> BookingImport:
    """The 报餐单 checked whole, then (unless ``dry_run``) written in one transaction: a file
    with any bad row writes nothing (ImportFileError listing every problem)."""
    plan = plan_bookings(app, path, today=today)
    plan.dry_run = dry_run
    if dry_run:
        return plan
    if plan.problems:
        raise ImportFileError(f"{plan.file} 有 {len(plan.problems)} 处错误，未导入："
                              + "；".join(p.text(plan.file) for p in plan.problems[:5]),
                              detail="the booking file has problems", problems=[p.to_json() for p in plan.problems])
    with app.db.session() as s:
        staff_id = require(s, actor, "meal.book").id
        for p in plan.rows:
            r = s.get(Resident, p.resident_id)
            cid = p.canteen_id
            b, changed = _upsert(s, r, p.meal_date, p.meal, cid, p.dish_ids, p.portions, p.cancel, source,
                                 staff_id, None)
            if changed and b.canteen_id:
                plan.changed += 1
                app.events.publish(s, "booking.set", resident_id=r.id, meal_date=p.meal_date.isoformat(),
                                   meal=p.meal)
            elif changed:       # a cancellation of nothing with no canteen to note it at: nothing to keep
                s.expunge(b)
        audit.record(s, staff_id, "meal.import", plan.file, rows=len(plan.rows), changed=plan.changed,
                     bookings=sum(1 for p in plan.rows if not p.cancel),
                     cancellations=sum(1 for p in plan.rows if p.cancel))
    plan.imported = True
    return plan


# ---------------------------------------------------------------------- the kitchen sheet and no-shows
def _rows(s: Session, where) -> list[BookedRow]:
    """The bookings as plain rows (columns, not ORM objects: a month of a district is 10^5s)."""
    return [BookedRow(rid, cid, d, m, tuple(dishes or ()), portions, cancelled) for rid, cid, d, m, dishes, portions,
            cancelled in s.execute(select(MealBooking.resident_id, MealBooking.canteen_id, MealBooking.meal_date,
                                          MealBooking.meal, MealBooking.dish_ids, MealBooking.portions,
                                          MealBooking.cancelled).where(where)).all()]


def _canteen_names(s: Session) -> dict[str, str]:
    return dict(s.execute(select(Canteen.id, Canteen.name)).all())


def _kitchen_data(s: Session, day: date, canteen_id: str | None):
    """What the kitchen sheet and its JSON both read: the day's filter, counts per canteen and
    meal, canteen names and the day's dish names."""
    where = MealBooking.meal_date == day
    if canteen_id:
        where = and_(where, MealBooking.canteen_id == canteen_id)
    counts = kitchen_counts(_rows(s, where))
    dish_names = {(c, m, d): nm for c, m, d, nm in s.execute(
        select(MenuItem.canteen_id, MenuItem.meal, MenuItem.dish_id, MenuItem.name)
        .where(MenuItem.menu_date == day))}
    return where, counts, _canteen_names(s), dish_names


def kitchen_sheet(app, day: date, *, canteen_id: str | None = None) -> TableReport:
    """Portions booked for ``day`` per canteen and meal, and per dish (the kitchen sheet)."""
    with app.db.session(read_only=True) as s:
        where, counts, names, dish_names = _kitchen_data(s, day, canteen_id)
        cancelled = len(_rows(s, and_(where, MealBooking.cancelled.is_(True))))
    order = {m: i for i, m in enumerate(MEALS)}
    keys = sorted(counts, key=lambda k: (k[0], order.get(k[1], 9)))
    per_meal = Sheet("按食堂", ["食堂", "编号", "餐次", "报餐人数", "份数"],
                     [[names.get(c, c), c, m, counts[(c, m)]["elders"], counts[(c, m)]["portions"]] for c, m in keys])
    dish_rows = []
    for c, m in keys:
        for d, q in sorted(counts[(c, m)]["dishes"].items(), key=lambda x: (-x[1], x[0])):
            nm = dish_names.get((c, m, d)) or dish_names.get(("*", m, d)) or ("" if d == CANTEEN_CHOICE else d)
            dish_rows.append([names.get(c, c), m, "" if d == CANTEEN_CHOICE else d, nm or CANTEEN_CHOICE, q])
    # no total row: an elder booking two dishes counts in both (the portions are on the first sheet)
    dishes = Sheet("按菜品（份数）", ["食堂", "餐次", "菜品编号", "菜名", "份数"], dish_rows, total_label=None)
    return TableReport(f"{day} 报餐（厨房备餐单）", "报停的不计入；未点菜的记为“食堂安排”",
                       [("报餐人数", sum(r[3] for r in per_meal.rows)), ("份数", sum(r[4] for r in per_meal.rows)),
                        ("报停", cancelled)], [per_meal, dishes])


def kitchen_json(app, day: date, *, canteen_id: str | None = None) -> dict:
    """The kitchen sheet as scripts read it: per canteen and meal, elders, portions and dishes."""
    with app.db.session(read_only=True) as s:
        _where, counts, names, dish_names = _kitchen_data(s, day, canteen_id)
    out = []
    for (c, m), v in sorted(counts.items(), key=lambda kv: (kv[0][0], MEALS.index(kv[0][1])
                                                             if kv[0][1] in MEALS else 9)):
        out.append({"canteen_id": c, "canteen": names.get(c, c), "meal": m, "elders": v["elders"],
                    "portions": v["portions"],
                    "dishes": [{"dish_id": None if d == CANTEEN_CHOICE else d, "portions": q,
                                "name": CANTEEN_CHOICE if d == CANTEEN_CHOICE else
                                dish_names.get((c, m, d)) or dish_names.get(("*", m, d))}
                               for d, q in sorted(v["dishes"].items(), key=lambda x: (-x[1], x[0]))]})
    return {"date": day.isoformat(), "canteens": out,
            "portions": sum(x["portions"] for x in out), "elders": sum(x["elders"] for x in out)}


def no_shows(app, *, day: date | None = None, month: str | None = None, today: date | None = None) -> dict:
    """Booked elders who did not come, per canteen, for a day or a month (only days already
    past count: a booking for today or later may still be eaten)."""
    from kiosk.timeutil import parse_month

    today = today or _today()
    if month:
        first = parse_month(month, "--month")
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    elif day:
        first = last = day
    else:
        raise ValidationError("请给出日期或月份", detail="no day and no month")
    last = min(last, today - timedelta(days=1))
    with app.db.session(read_only=True) as s:
        rows = _rows(s, and_(MealBooking.meal_date >= first, MealBooking.meal_date <= last)) if last >= first else []
        came = set()
        if rows:
            # the meals served of the booked elders only (not every order of the month)
            came = {(rid, d, m) for rid, d, m in s.execute(
                select(Order.resident_id, Order.meal_date, Order.meal)
                .join(MealBooking, and_(MealBooking.resident_id == Order.resident_id,
                                        MealBooking.meal_date == Order.meal_date, MealBooking.meal == Order.meal))
                .outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                .where(Order.meal_date >= first, Order.meal_date <= last, MealBooking.meal_date >= first,
                       MealBooking.meal_date <= last, OrderVoid.id.is_(None)))}
        counts = count_no_shows(rows, came)
        names = _canteen_names(s)
        # the names of the booked elders (a subquery: no list of 10^4s of ids as parameters)
        who = dict(s.execute(select(Resident.id, Resident.name).where(Resident.id.in_(
            select(MealBooking.resident_id).where(MealBooking.meal_date >= first, MealBooking.meal_date <= last))))
            .all()) if counts else {}
    canteens = []
    for cid in sorted(counts):
        c = counts[cid]
        canteens.append({"canteen_id": cid, "canteen": names.get(cid, cid), "booked": c["booked"],
                         "came": c["came"], "no_show": c["no_show"],
                         "no_shows": [{"resident_id": r, "name": who.get(r, ""), "date": d.isoformat(), "meal": m}
                                      for r, d, m in sorted(c["no_show_list"], key=lambda x: (x[1], x[2], x[0]))]})
    return {"from": first.isoformat(), "to": last.isoformat() if last >= first else None, "canteens": canteens,
            "booked": sum(c["booked"] for c in canteens), "no_show": sum(c["no_show"] for c in canteens)}
