"""异常线索: what in a month's meals looks like 虚报 (meals claimed for elders who did
not come) or subsidy paid on after an elder died or moved away.

Each lead is an ``Anomaly`` (``kind``, ``canteen_id``, ``resident_ids``, ``order_ids``,
``detail``: one line of Chinese). The kinds:

* ``after_status``  meals on or after the resident's status date (暂停 with a subsidy,
                    迁出 / 死亡 at all; kiosk.billing.status);
* ``too_close``     one resident at two canteens closer in time than the trip between them;
* ``burst``         a terminal's card/phone/staff checkouts of many elders within minutes;
* ``nonface_share`` a canteen where face-enrolled elders check out without their face far
                    more often than at the district's other canteens;
* ``no_liveness``   face checkouts of elders of 80+ without a passed liveness check (a
                    photo held up?) at a canteen where the others' face checkouts pass.

Every kind has a threshold the admin sets (``Thresholds``, kept in the district's
settings, ``district_settings.anomaly_thresholds``, audited). The rules are pure
functions over plain rows (``find_*``); ``scan`` fetches those rows at the edge, with
the aggregation in SQL where the month's volume needs it: ONE grouped pass over the
month's orders per canteen and resident (``_groups``: who ate at more than one canteen,
the non-face shares, the liveness counts), a window over the meals of the residents
who moved between canteens and one over the non-face checkouts; order rows come back
to Python only for what is already suspicious (3x10^6 orders: docs/benchmarks.md)."""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime, timedelta, timezone
from typing import Iterable

from sqlalchemy import Integer, and_, case, cast, func, or_, select

from kiosk.billing.status import ENDS_CHECKOUT, REGISTERED, STATUS_ZH
from kiosk.db import audit
from kiosk.db.models import Canteen, DistrictSetting, FaceTemplate, Order, OrderVoid, Resident
from kiosk.errors import ValidationError
from kiosk.money import fen_to_yuan
from kiosk.timeutil import CST, month_bounds, now_cst, parse_month

KINDS = ("after_status", "too_close", "burst", "nonface_share", "no_liveness")
KIND_ZH = {"after_status": "状态日期后就餐", "too_close": "同一居民两食堂时间过近",
           "burst": "短时间内大量非刷脸结账", "nonface_share": "已登记人脸却常不刷脸",
           "no_liveness": "高龄居民未过活体检测"}
NON_FACE = ("card", "phone", "staff")
IDS_MAX = 200          # ids listed in one lead (the detail says how many there are)


@dataclass(frozen=True)
class Thresholds:
    """What the admin sets; the bounds and the words of each are in ``THRESHOLD_INFO``."""
    status_grace_days: int = 0        # after_status: days after the status date before a meal counts
    travel_minutes: int = 30          # too_close: meals at two canteens closer than this
    burst_elders: int = 8             # burst: this many different elders without a face ...
    burst_minutes: int = 5            # ... at one terminal within this many minutes
    nonface_factor_pct: int = 300     # nonface_share: the canteen's share at least this % of the others' ...
    nonface_min_share_pct: int = 20   # ... and at least this share ...
    nonface_min_meals: int = 30       # ... over at least this many checkouts of face-enrolled elders
    liveness_min_age: int = 80        # no_liveness: elders of this age or older ...
    liveness_min_meals: int = 5       # ... with this many meals without a passed liveness check ...
    liveness_others_pct: int = 60     # ... where the canteen's other face checkouts pass at least this %


THRESHOLD_INFO: dict[str, tuple[int, int, str]] = {
    "status_grace_days": (0, 31, "状态日期后宽限天数"),
    "travel_minutes": (1, 600, "两个食堂之间至少相隔分钟数"),
    "burst_elders": (3, 500, "一台终端连续非刷脸结账的居民人数"),
    "burst_minutes": (1, 120, "……在多少分钟之内"),
    "nonface_factor_pct": (101, 100000, "非刷脸占比达到其他食堂的百分之几"),
    "nonface_min_share_pct": (1, 100, "非刷脸占比至少（%）"),
    "nonface_min_meals": (1, 10 ** 7, "食堂已登记人脸居民的结账至少多少笔才比较"),
    "liveness_min_age": (60, 130, "高龄：年满多少岁"),
    "liveness_min_meals": (1, 93, "每人每月未通过活体检测的餐次至少"),
    "liveness_others_pct": (1, 100, "该食堂其他刷脸结账的活体通过率至少（%）"),
}


@dataclass
class Anomaly:
    kind: str
    canteen_id: str | None
    resident_ids: list[str]
    order_ids: list[str]
    detail: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "kind_zh": KIND_ZH[self.kind], "canteen_id": self.canteen_id,
                "resident_ids": self.resident_ids, "order_ids": self.order_ids, "detail": self.detail}


# ---------------------------------------------------------------------- rows (what the rules read)
@dataclass(frozen=True)
class StatusMeal:
    order_id: str
    resident_id: str
    name: str
    canteen_id: str
    meal_date: date
    subsidy_fen: int
    status: str
    status_date: date


@dataclass(frozen=True)
class Hop:
    """A meal and the resident's meal just before it, at another canteen."""
    resident_id: str
    name: str
    order_id: str
    canteen_id: str
    at: datetime
    prev_order_id: str
    prev_canteen_id: str
    prev_at: datetime


@dataclass(frozen=True)
class Checkout:
    order_id: str
    resident_id: str
    terminal_id: str
    canteen_id: str
    at: datetime
    identified_by: str


@dataclass(frozen=True)
class CanteenShare:
    canteen_id: str
    meals: int          # checkouts of face-enrolled elders
    non_face: int       # ... of them by card, phone or staff


@dataclass(frozen=True)
class LivenessCount:
    canteen_id: str
    resident_id: str
    name: str
    age: int
    without: int        # face checkouts without a passed liveness check
    face: int           # the resident's face checkouts there
    face_passed: int    # ... with liveness passed


@dataclass(frozen=True)
class CanteenLiveness:
    canteen_id: str
    face: int
    face_passed: int


def _ids(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))[:IDS_MAX]


def _hm(t: datetime) -> str:
    return t.astimezone(CST).strftime("%m-%d %H:%M")


def _pct(a: int, b: int) -> int:
    return round(100 * a / b) if b else 0


# ---------------------------------------------------------------------- the rules (pure)
def find_after_status(meals: list[StatusMeal], th: Thresholds) -> list[Anomaly]:
    """Meals on or after the status date (plus the grace days): per resident and canteen.
    暂停 counts only subsidised meals (a suspended elder may eat, paying in full)."""
    by: dict[tuple, list[StatusMeal]] = defaultdict(list)
    for m in meals:
        if m.status == REGISTERED or m.meal_date < m.status_date + timedelta(days=th.status_grace_days):
            continue
        if m.status not in ENDS_CHECKOUT and m.subsidy_fen <= 0:
            continue
        by[(m.resident_id, m.canteen_id)].append(m)
    out = []
    for (rid, cid), ms in sorted(by.items()):
        ms.sort(key=lambda m: (m.meal_date, m.order_id))
        m0 = ms[0]
        sub = sum(m.subsidy_fen for m in ms)
        out.append(Anomaly("after_status", cid, [rid], _ids(m.order_id for m in ms),
                           f"{m0.name}（{rid}）自{m0.status_date}起{STATUS_ZH.get(m0.status, m0.status)}，"
                           f"之后在{cid}就餐{len(ms)}次（{ms[0].meal_date}至{ms[-1].meal_date}），"
                           f"补贴{fen_to_yuan(sub)}元"))
    return out


def find_too_close(hops: list[Hop], th: Thresholds) -> list[Anomaly]:
    """A resident's meal at one canteen less than ``travel_minutes`` after a meal at another."""
    out = []
    for h in sorted(hops, key=lambda h: (h.at, h.order_id)):
        if h.canteen_id == h.prev_canteen_id:
            continue
        gap = (h.at - h.prev_at).total_seconds() / 60
        if gap < 0 or gap >= th.travel_minutes:
            continue
        out.append(Anomaly("too_close", h.canteen_id, [h.resident_id], [h.prev_order_id, h.order_id],
                           f"{h.name}（{h.resident_id}）{_hm(h.prev_at)}在{h.prev_canteen_id}就餐，"
                           f"{round(gap)}分钟后（{_hm(h.at)}）又在{h.canteen_id}就餐"))
    return out


def find_bursts(checkouts: list[Checkout], th: Thresholds) -> list[Anomaly]:
    """Per terminal: the stretches where ``burst_elders`` different elders checked out by
    card, phone or staff within ``burst_minutes`` (overlapping windows joined into one)."""
    win = timedelta(minutes=th.burst_minutes)
    by: dict[str, list[Checkout]] = defaultdict(list)
    for c in checkouts:
        if c.identified_by in NON_FACE:
            by[c.terminal_id].append(c)
    out = []
    for tid, cs in sorted(by.items()):
        cs.sort(key=lambda c: (c.at, c.order_id))
        spans: list[list[int]] = []
        lo = 0
        count: dict[str, int] = defaultdict(int)
        for hi, c in enumerate(cs):
            count[c.resident_id] += 1
            while c.at - cs[lo].at > win:
                r = cs[lo].resident_id
                count[r] -= 1
                if not count[r]:
                    del count[r]
                lo += 1
            if len(count) >= th.burst_elders:
                if spans and lo <= spans[-1][1]:
                    spans[-1][1] = hi
                else:
                    spans.append([lo, hi])
        for a, b in spans:
            part = cs[a:b + 1]
            elders = list(dict.fromkeys(c.resident_id for c in part))
            how = "、".join(sorted({ {"card": "刷卡", "phone": "手机号", "staff": "工作人员代办"}[c.identified_by]
                                    for c in part}))
            minutes = max(1, round((part[-1].at - part[0].at).total_seconds() / 60))
            out.append(Anomaly("burst", part[0].canteen_id, _ids(elders), _ids(c.order_id for c in part),
                               f"终端{tid}在{_hm(part[0].at)}至{_hm(part[-1].at)}约{minutes}分钟内"
                               f"为{len(elders)}位居民{how}结账{len(part)}笔，均未刷脸"))
    return out


def find_nonface_share(shares: list[CanteenShare], th: Thresholds) -> list[Anomaly]:
    """Canteens whose share of non-face checkouts of face-enrolled elders is far above that
    of the district's other canteens (ids: filled in by ``scan``)."""
    total = sum(c.meals for c in shares)
    total_nf = sum(c.non_face for c in shares)
    out = []
    for c in sorted(shares, key=lambda c: c.canteen_id):
        if c.meals < th.nonface_min_meals:
            continue
        o_meals, o_nf = total - c.meals, total_nf - c.non_face
        share, others = c.non_face / c.meals, (o_nf / o_meals if o_meals else 0.0)
        if share * 100 < th.nonface_min_share_pct or share * 100 < others * th.nonface_factor_pct:
            continue
        out.append(Anomaly("nonface_share", c.canteen_id, [], [],
                           f"{c.canteen_id}已登记人脸的居民结账{c.meals}笔，其中{c.non_face}笔未刷脸"
                           f"（{_pct(c.non_face, c.meals)}%），区内其他食堂为{_pct(o_nf, o_meals)}%"))
    return out


def find_no_liveness(counts: list[LivenessCount], canteens: list[CanteenLiveness],
                     th: Thresholds) -> list[Anomaly]:
    """Elders of ``liveness_min_age``+ with ``liveness_min_meals`` meals without a passed
    liveness check at a canteen whose other face checkouts pass (``liveness_others_pct``)."""
    at = {c.canteen_id: c for c in canteens}
    out = []
    for r in sorted(counts, key=lambda r: (r.canteen_id, r.resident_id)):
        c = at.get(r.canteen_id)
        if c is None or r.age < th.liveness_min_age or r.without < th.liveness_min_meals:
            continue
        others, passed = c.face - r.face, c.face_passed - r.face_passed
        if others <= 0 or passed * 100 < others * th.liveness_others_pct:
            continue
        out.append(Anomaly("no_liveness", r.canteen_id, [r.resident_id], [],
                           f"{r.name}（{r.resident_id}，{r.age}岁）在{r.canteen_id}刷脸就餐{r.without}次未通过活体检测，"
                           f"该食堂其他刷脸结账通过率{_pct(passed, others)}%"))
    return out


# ---------------------------------------------------------------------- thresholds (the district's settings)
def _district(s) -> str:
    """The district these settings belong to: the district of the server's canteens."""
    row = s.execute(select(Canteen.district, func.count()).where(Canteen.district.is_not(None))
                    .group_by(Canteen.district).order_by(func.count().desc(), Canteen.district)).first()
    return row[0] if row else "本区"


def thresholds(app, district: str | None = None) -> Thresholds:
    with app.db.session(read_only=True) as s:
        row = s.get(DistrictSetting, district or _district(s))
        stored = dict(row.anomaly_thresholds or {}) if row is not None else {}
    known = {f.name for f in fields(Thresholds)}
    return replace(Thresholds(), **{k: int(v) for k, v in stored.items() if k in known})


def check_threshold(name: str, value) -> int:
    if name not in THRESHOLD_INFO:
        raise ValidationError(f"没有名为「{name}」的阈值（可设：{'、'.join(THRESHOLD_INFO)}）",
                              detail=f"unknown threshold {name!r}")
    lo, hi, zh = THRESHOLD_INFO[name]
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ValidationError(f"{zh}（{name}）应为整数，不是「{str(value)[:20]}」", detail=f"{name}={value!r}") from None
    if not lo <= v <= hi:
        raise ValidationError(f"{zh}（{name}）应在 {lo} 到 {hi} 之间，不是 {v}", detail=f"{name}={v} not in [{lo}, {hi}]")
    return v


def set_thresholds(app, values: dict, actor, district: str | None = None) -> Thresholds:
    """An admin (proven: ``actor``) sets some thresholds; audited ``anomalies.set_thresholds``."""
    if getattr(actor, "role", None) != "admin":
        from kiosk.errors import PermissionDeniedError

        raise PermissionDeniedError("设置异常线索的阈值需要管理员", detail=f"role {getattr(actor, 'role', None)!r}")
    new = {k: check_threshold(k, v) for k, v in values.items()}
    if not new:
        raise ValidationError("没有要设置的阈值", detail="no thresholds given")
    with app.db.session() as s:
        key = district or _district(s)
        row = s.get(DistrictSetting, key)
        if row is None:
            row = DistrictSetting(district=key, updated_by=actor.staff_id)
            s.add(row)
        old = dict(row.anomaly_thresholds or {})
        row.anomaly_thresholds = {**old, **new}
        row.updated_by, row.updated_at = actor.staff_id, now_cst()
        audit.record(s, actor.staff_id, "anomalies.set_thresholds", key,
                     old={k: old.get(k, getattr(Thresholds(), k)) for k in new}, new=new)
    return thresholds(app, key)


# ---------------------------------------------------------------------- the scan (rows fetched at the edge)
def _live():
    return ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists()


def _epoch(dialect: str):
    if dialect == "postgresql":
        return cast(func.extract("epoch", Order.created_at), Integer)
    return cast(func.strftime("%s", Order.created_at), Integer)


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), timezone.utc)


def _age(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True)
class Group:
    """A resident's month at one canteen: checkouts, by card/phone/staff, by face, by face
    with liveness passed; whether the resident has a face template."""
    canteen_id: str
    resident_id: str
    meals: int
    non_face: int
    face: int
    face_passed: int
    enrolled: bool


def _groups(db, in_month) -> list[Group]:
    """ONE grouped pass over the month's live orders, per canteen and resident: what the
    movers (too_close), the non-face shares and the liveness counts are all read from."""
    non_face = case((Order.identified_by.in_(NON_FACE), 1), else_=0)
    is_face = case((Order.identified_by == "face", 1), else_=0)
    passed = case((and_(Order.identified_by == "face", Order.liveness_passed.is_(True)), 1), else_=0)
    g = (select(Order.canteen_id.label("cid"), Order.resident_id.label("rid"), func.count().label("n"),
                func.sum(non_face).label("nf"), func.sum(is_face).label("f"), func.sum(passed).label("p"))
         .where(in_month).group_by(Order.canteen_id, Order.resident_id).subquery())
    rows = db.execute(select(g.c.cid, g.c.rid, g.c.n, g.c.nf, g.c.f, g.c.p,
                            g.c.rid.in_(select(FaceTemplate.resident_id)))).all()
    return [Group(c, r, int(n), int(nf or 0), int(f or 0), int(p or 0), bool(e)) for c, r, n, nf, f, p, e in rows]


def _among(col, ids: list[str], dialect: str):
    """``col`` is one of ``ids`` (one array parameter on PostgreSQL, however many ids)."""
    if dialect == "postgresql":
        from sqlalchemy import String, any_, bindparam
        from sqlalchemy.dialects.postgresql import ARRAY

        return col == any_(bindparam("among_ids", ids, type_=ARRAY(String)))
    return col.in_(ids)


def _in_spans(spans: list[list]):
    """PostgreSQL: the order lies in one of ``spans`` ([terminal, first epoch, last epoch], a
    second's margin each side), as one semi-join over the spans passed as three arrays."""
    from sqlalchemy import DateTime, String, bindparam, literal_column
    from sqlalchemy.dialects.postgresql import ARRAY

    sp = (func.unnest(bindparam("span_tids", [t for t, _, _ in spans], type_=ARRAY(String)),
                      bindparam("span_lo", [_at(a - 1) for _, a, _ in spans], type_=ARRAY(DateTime(timezone=True))),
                      bindparam("span_hi", [_at(b + 1) for _, _, b in spans], type_=ARRAY(DateTime(timezone=True))))
          .table_valued("tid", "lo", "hi").render_derived(name="sp"))
    return (select(literal_column("1")).select_from(sp)
            .where(sp.c.tid == Order.terminal_id, Order.created_at >= sp.c.lo, Order.created_at <= sp.c.hi)
            .exists())


def scan(app, month: str, th: Thresholds | None = None, *, one_pass: bool = True) -> dict:
    """The month's leads, every kind, with the thresholds used. ``one_pass`` (the default):
    the movers, non-face shares and liveness counts come from one grouped pass over the
    month's orders (``_groups``); False: each kind's own grouped query, as before (kept to
    check that both find the same, tests/test_scale_sql.py)."""
    first, last = month_bounds(parse_month(month))
    th = th or thresholds(app)
    in_month = and_(Order.meal_date >= first, Order.meal_date <= last, _live())
    out: list[Anomaly] = []
    clock = [time.monotonic()]
    seconds: dict[str, float] = {}

    def took(kind: str) -> None:
        clock.append(time.monotonic())
        seconds[kind] = round(clock[-1] - clock[-2], 3)

    with app.db.session(read_only=True) as s:
        dialect = s.get_bind().dialect.name
        db = s.connection()          # Core rows: the ORM's row handling costs seconds at 10^5 rows

        # after_status: only residents with a status date, joined in SQL
        rows = db.execute(select(Order.id, Order.resident_id, Resident.name, Order.canteen_id, Order.meal_date,
                                Order.subsidy_fen, Resident.roster_status, Resident.status_date)
                         .join(Resident, Resident.id == Order.resident_id)
                         .where(in_month, Resident.status_date.is_not(None),
                                Resident.roster_status != REGISTERED, Order.meal_date >= Resident.status_date))
        out += find_after_status([StatusMeal(*r) for r in rows], th)
        took("after_status")

        groups = _groups(db, in_month) if one_pass else None
        took("month_groups")

        # too_close: the meal before each meal (a window over the month's meals of the residents who ate
        # at more than one canteen), kept only when the canteen changed
        if groups is not None:
            seen: dict[str, int] = defaultdict(int)
            for g in groups:
                seen[g.resident_id] += 1
            moving = _among(Order.resident_id, sorted(r for r, k in seen.items() if k > 1), dialect)
        else:
            moving = Order.resident_id.in_(select(Order.resident_id).where(in_month).group_by(Order.resident_id)
                                           .having(func.count(func.distinct(Order.canteen_id)) > 1))
        prev = (select(Order.id.label("oid"), Order.resident_id.label("rid"), Order.canteen_id.label("cid"),
                       Order.created_at.label("at"),
                       _lag(Order.id, "pid"), _lag(Order.canteen_id, "pcid"), _lag(Order.created_at, "pat"))
                .where(in_month, moving).subquery())
        hop_rows = db.execute(select(prev.c.rid, Resident.name, prev.c.oid, prev.c.cid, prev.c.at, prev.c.pid,
                                    prev.c.pcid, prev.c.pat).join(Resident, Resident.id == prev.c.rid)
                             .where(prev.c.pcid.is_not(None), prev.c.pcid != prev.c.cid)).all()
        out += find_too_close([Hop(*r) for r in hop_rows], th)
        took("too_close")

        # burst: a window over each terminal's non-face checkouts; rows come back only around a burst
        ep = _epoch(dialect)
        nf = (select(Order.terminal_id.label("tid"), ep.label("t"),
                     func.lag(ep, th.burst_elders - 1, type_=Integer()).over(partition_by=Order.terminal_id,
                                                            order_by=Order.created_at).label("t0"))
              .where(in_month, Order.identified_by.in_(NON_FACE), Order.terminal_id.is_not(None)).subquery())
        ends = db.execute(select(nf.c.tid, nf.c.t0, nf.c.t).where(nf.c.t0.is_not(None),
                                                                 nf.c.t - nf.c.t0 <= th.burst_minutes * 60)
                         .order_by(nf.c.tid, nf.c.t)).all()
        spans: list[list] = []
        for tid, t0, t1 in ends:
            if spans and spans[-1][0] == tid and t0 <= spans[-1][2]:
                spans[-1][2] = max(spans[-1][2], t1)
            else:
                spans.append([tid, t0, t1])
        found: list[Checkout] = []
        cols = (Order.id, Order.resident_id, Order.terminal_id, Order.canteen_id, Order.created_at,
                Order.identified_by)
        if dialect == "postgresql" and spans:     # the rows of every burst in one pass, however many
            found += [Checkout(*r) for r in db.execute(
                select(*cols).where(in_month, Order.identified_by.in_(NON_FACE), _in_spans(spans))).all()]
        else:
            for i in range(0, len(spans), 200):        # the rows of up to 200 bursts per scan
                within = or_(*[and_(Order.terminal_id == tid, Order.created_at >= _at(t0 - 1),
                                    Order.created_at <= _at(t1 + 1)) for tid, t0, t1 in spans[i:i + 200]])
                found += [Checkout(*r) for r in db.execute(
                    select(*cols).where(in_month, Order.identified_by.in_(NON_FACE), within)).all()]
        out += find_bursts(found, th)
        took("burst")

        # nonface_share: one grouped scan over the checkouts of face-enrolled elders
        enrolled = select(FaceTemplate.resident_id)
        if groups is not None:
            share_of: dict[str, list[int]] = {}
            for g in groups:
                if g.enrolled:
                    x = share_of.setdefault(g.canteen_id, [0, 0])
                    x[0] += g.meals
                    x[1] += g.non_face
            shares = [CanteenShare(c, n, k) for c, (n, k) in share_of.items()]
        else:
            non_face = case((Order.identified_by.in_(NON_FACE), 1), else_=0)
            shares = [CanteenShare(c, int(n), int(k or 0)) for c, n, k in db.execute(
                select(Order.canteen_id, func.count(), func.sum(non_face))
                .where(in_month, Order.resident_id.in_(enrolled)).group_by(Order.canteen_id))]
        for a in find_nonface_share(shares, th):
            rows = db.execute(select(Order.id, Order.resident_id).where(
                in_month, Order.canteen_id == a.canteen_id, Order.identified_by.in_(NON_FACE),
                Order.resident_id.in_(enrolled)).order_by(Order.created_at).limit(IDS_MAX)).all()
            a.order_ids, a.resident_ids = _ids(r[0] for r in rows), _ids(r[1] for r in rows)
            out.append(a)
        took("nonface_share")

        # no_liveness: grouped per canteen and per elder (born before the month's cut-off)
        cutoff = _years_before(first, th.liveness_min_age)     # of that age on every day of the month
        if groups is not None:
            at: dict[str, list[int]] = {}
            for g in groups:
                x = at.setdefault(g.canteen_id, [0, 0])
                x[0] += g.face
                x[1] += g.face_passed
            canteens = [CanteenLiveness(c, f, p) for c, (f, p) in at.items()]
            many = [g for g in groups if g.enrolled and g.face - g.face_passed >= th.liveness_min_meals]
            who = {}
            for i in range(0, len(many), 5000):
                ids = sorted({g.resident_id for g in many[i:i + 5000]})
                who.update({r: (n, b) for r, n, b in db.execute(
                    select(Resident.id, Resident.name, Resident.birth_date)
                    .where(_among(Resident.id, ids, dialect), Resident.birth_date <= cutoff))})
            counts = [LivenessCount(g.canteen_id, g.resident_id, who[g.resident_id][0],
                                    _age(who[g.resident_id][1], first), g.face - g.face_passed, g.face, g.face_passed)
                      for g in many if g.resident_id in who]
        else:
            is_face = case((Order.identified_by == "face", 1), else_=0)
            face_passed = case((and_(Order.identified_by == "face", Order.liveness_passed.is_(True)), 1), else_=0)
            canteens = [CanteenLiveness(c, int(f or 0), int(p or 0)) for c, f, p in db.execute(
                select(Order.canteen_id, func.sum(is_face), func.sum(face_passed)).where(in_month)
                .group_by(Order.canteen_id))]
            without = func.sum(is_face) - func.sum(face_passed)
            counts = []
            for c, rid, name, born, w, f, p in db.execute(
                    select(Order.canteen_id, Order.resident_id, Resident.name, Resident.birth_date, without,
                           func.sum(is_face), func.sum(face_passed))
                    .join(Resident, Resident.id == Order.resident_id)
                    .where(in_month, Resident.birth_date <= cutoff, Order.resident_id.in_(enrolled))
                    .group_by(Order.canteen_id, Order.resident_id, Resident.name, Resident.birth_date)
                    .having(without >= th.liveness_min_meals)):
                counts.append(LivenessCount(c, rid, name, _age(born, first), int(w), int(f or 0), int(p or 0)))
        for a in find_no_liveness(counts, canteens, th):
            rows = db.execute(select(Order.id).where(in_month, Order.canteen_id == a.canteen_id,
                                                    Order.resident_id == a.resident_ids[0],
                                                    Order.identified_by == "face",
                                                    Order.liveness_passed.is_not(True))
                             .order_by(Order.created_at).limit(IDS_MAX)).scalars().all()
            a.order_ids = list(rows)
            out.append(a)
        took("no_liveness")
    counts_by = {k: sum(1 for a in out if a.kind == k) for k in KINDS}
    return {"month": first.strftime("%Y-%m"), "thresholds": asdict(th), "counts": counts_by,
            "seconds": seconds, "anomalies": [a.to_json() for a in out]}


def _lag(col, label: str):
    """The value of ``col`` at the resident's meal before (typed as the column)."""
    return func.lag(col, type_=col.type).over(partition_by=Order.resident_id, order_by=Order.created_at).label(label)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:          # 29 February
        return day.replace(year=day.year - years, day=28)
