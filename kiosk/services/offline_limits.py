"""The district's offline limits at the edges of the store (the rules: kiosk.billing.offline).

Read: ``current_limits`` (the newest setting and the blocked list, as the checkout and the
feed need them), ``offline_now`` (a terminal's time without the server, from its sync
state), ``offline_spent`` (a resident's offline balance payments of a day). Changed: by an
admin proven by password or PIN (``offline.limits``), audited ``offline.set`` /
``offline.block`` / ``offline.unblock``; only on the server (a terminal refuses the write:
kiosk.db.changes) and sent to every terminal at its next sync (entity ``offline``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.billing.offline import (CAP_MAX_FEN, DEFAULT_SUBSIDY_OFFLINE_S, SUBSIDY_OFFLINE_MAX_S, OfflineLimits,
                                   offline_for)
from kiosk.db import audit
from kiosk.db.models import BlockedId, OfflineLimit, Order, OrderVoid, Resident, SyncState, utcnow
from kiosk.db.permissions import require
from kiosk.errors import NotFoundError, ValidationError
from kiosk.limits import NOTE_MAX_CHARS, check_text
from kiosk.money import fen_to_yuan

KINDS = {"card": "助老卡", "resident": "居民"}
UNSET = object()


@dataclass(frozen=True)
class Blocked:
    kind: str
    value: str
    reason: str
    blocked_by: str
    blocked_at: datetime


def newest_row(s: Session) -> OfflineLimit | None:
    return s.scalars(select(OfflineLimit).order_by(OfflineLimit.set_at.desc(), OfflineLimit.id.desc()).limit(1)).first()


def blocked_rows(s: Session) -> list[Blocked]:
    """What is blocked now (not lifted), oldest first."""
    return [Blocked(b.kind, b.value, b.reason, b.blocked_by, b.blocked_at) for b in s.scalars(
        select(BlockedId).where(BlockedId.lifted_at.is_(None)).order_by(BlockedId.blocked_at, BlockedId.id))]


def limits_of(row: OfflineLimit | None, blocked: list[Blocked]) -> OfflineLimits:
    return OfflineLimits(
        per_sale_fen=row.per_sale_fen if row else None, per_day_fen=row.per_day_fen if row else None,
        subsidy_offline_s=row.subsidy_offline_s if row else DEFAULT_SUBSIDY_OFFLINE_S,
        blocked_cards=frozenset(b.value for b in blocked if b.kind == "card"),
        blocked_residents=frozenset(b.value for b in blocked if b.kind == "resident"))


def current_limits(s: Session) -> OfflineLimits:
    return limits_of(newest_row(s), blocked_rows(s))


def _time(v) -> datetime | None:
    try:
        return datetime.fromisoformat(v) if v else None
    except (TypeError, ValueError):
        return None


def offline_now(s: Session, interval_s: float, now: datetime | None = None) -> timedelta | None:
    """A terminal's time without the server as its sync state tells it (the state the sync
    client keeps: ``last_sync``, ``offline_since``), None when online."""
    state = dict(s.execute(select(SyncState.key, SyncState.value)
                           .where(SyncState.key.in_(("last_sync", "offline_since")))).all())
    return offline_for(now or utcnow(), _time(state.get("last_sync")), _time(state.get("offline_since")), interval_s)


def offline_spent(s: Session, resident_id: str, day: date) -> int:
    """The resident's balance payments on ``day`` sold offline, not voided (every terminal's
    this store knows of)."""
    return int(s.scalar(select(func.coalesce(func.sum(Order.to_pay_fen), 0)).where(
        Order.resident_id == resident_id, Order.meal_date == day, Order.pay_method == "balance",
        Order.offline_s.is_not(None), ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists())) or 0)


# ------------------------------------------------------------------------------------------ reading
def describe(app) -> dict:
    """The limits in force and the blocked list (``kiosk offline show``, the console)."""
    with app.db.session(read_only=True) as s:
        row = newest_row(s)
        blocked = blocked_rows(s)
        lim = limits_of(row, blocked)
        names = dict(s.execute(select(Resident.id, Resident.name).where(
            Resident.id.in_([b.value for b in blocked if b.kind == "resident"] or [""]))).all())
        cards = dict(s.execute(select(Resident.card_no, Resident.name).where(
            Resident.card_no.in_([b.value for b in blocked if b.kind == "card"] or [""]))).all())
    return {"per_sale_fen": lim.per_sale_fen, "per_day_fen": lim.per_day_fen,
            "subsidy_offline_s": lim.subsidy_offline_s,
            "set_by": row.set_by if row else None, "set_at": row.set_at.isoformat() if row else None,
            "blocked": [{"kind": b.kind, "value": b.value, "reason": b.reason, "blocked_by": b.blocked_by,
                         "blocked_at": b.blocked_at.isoformat(),
                         "name": (names if b.kind == "resident" else cards).get(b.value)} for b in blocked]}


# ------------------------------------------------------------------------------------------ changing
def check_cap(value, what: str) -> int | None:
    """A cap in yuan as typed (``none`` / empty: no cap) -> fen, or ValidationError."""
    from kiosk.money import AmountError, yuan_to_fen

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "无", "不限")):
        return None
    try:
        fen = yuan_to_fen(value, max_fen=CAP_MAX_FEN)
    except AmountError as exc:
        raise ValidationError(f"{what}「{str(value)[:20]}」不对：{exc.zh}（0 至 {fen_to_yuan(CAP_MAX_FEN)} 元，"
                              f"或 none 表示不限）", detail=f"{what}: {exc}") from None
    return fen


def check_hours(value) -> int:
    """The subsidy's offline time in hours as typed -> seconds (a minute to 30 days)."""
    try:
        h = float(str(value).strip())
    except ValueError:
        h = float("nan")
    if not (h == h) or h * 3600 < 60 or h * 3600 > SUBSIDY_OFFLINE_MAX_S:
        raise ValidationError(f"离线停发补贴的时间「{str(value)[:20]}」不对：应为 0.02 至 "
                              f"{SUBSIDY_OFFLINE_MAX_S // 3600} 小时", detail=f"subsidy hours {value!r}")
    return int(round(h * 3600))


def set_limits(app, actor, *, per_sale_fen=UNSET, per_day_fen=UNSET, subsidy_offline_s=UNSET,
               note: str | None = None) -> dict:
    """A new setting (what is not given stays as it was), audited ``offline.set`` with the
    old and new values."""
    check_text(note, NOTE_MAX_CHARS, "备注", "note")
    given = {k: v for k, v in (("per_sale_fen", per_sale_fen), ("per_day_fen", per_day_fen),
                               ("subsidy_offline_s", subsidy_offline_s)) if v is not UNSET}
    if not given:
        raise ValidationError("没有要设置的离线限额（--per-sale、--per-day 或 --subsidy-hours）",
                              detail="nothing to set")
    for k in ("per_sale_fen", "per_day_fen"):
        v = given.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= CAP_MAX_FEN):
            raise ValidationError(f"离线限额应在 0 至 {fen_to_yuan(CAP_MAX_FEN)} 元之间", detail=f"{k}={v!r}")
    v = given.get("subsidy_offline_s", DEFAULT_SUBSIDY_OFFLINE_S)
    if not isinstance(v, int) or not 60 <= v <= SUBSIDY_OFFLINE_MAX_S:
        raise ValidationError("离线停发补贴的时间应在 1 分钟至 30 天之间", detail=f"subsidy_offline_s={v!r}")
    with app.db.session() as s:
        staff_id = require(s, actor, "offline.limits").id
        old = newest_row(s)
        before = {"per_sale_fen": old.per_sale_fen if old else None, "per_day_fen": old.per_day_fen if old else None,
                  "subsidy_offline_s": old.subsidy_offline_s if old else DEFAULT_SUBSIDY_OFFLINE_S}
        after = {**before, **given}
        s.add(OfflineLimit(**after, set_by=staff_id, set_at=utcnow(), note=note))
        audit.record(s, staff_id, "offline.set", "offline_limits", old=before, new=after, note=note)
    return describe(app)


def _check_subject(kind: str, value: str) -> str:
    if kind not in KINDS:
        raise ValidationError(f"挂失名单只收助老卡或居民，不是「{kind}」", detail=f"kind {kind!r}")
    v = (value or "").strip()
    if kind == "card":
        v = v.upper()
    if not v or len(v) > 64 or not v.isprintable():
        raise ValidationError(f"{KINDS[kind]}号「{v[:20]}」不对（1 至 64 个字符）", detail=f"{kind} {value!r}")
    return v


def block(app, actor, kind: str, value: str, reason: str) -> dict:
    """A card (挂失) or a resident blocked at every terminal from its next sync; audited."""
    v = _check_subject(kind, value)
    if not reason or not reason.strip():
        raise ValidationError("挂失或停用必须写明原因（--reason）", detail="empty reason")
    check_text(reason, NOTE_MAX_CHARS, "原因", "reason")
    with app.db.session() as s:
        staff_id = require(s, actor, "offline.limits").id
        if kind == "resident" and s.get(Resident, v) is None:
            raise NotFoundError(f"没有编号为 {v} 的居民", detail=f"resident {v!r} not found")
        if s.scalar(select(BlockedId.id).where(BlockedId.kind == kind, BlockedId.value == v,
                                               BlockedId.lifted_at.is_(None))) is not None:
            raise ValidationError(f"{KINDS[kind]} {v} 已在挂失名单上", detail=f"{kind} {v} already blocked")
        s.add(BlockedId(kind=kind, value=v, reason=reason.strip(), blocked_by=staff_id, blocked_at=utcnow()))
        audit.record(s, staff_id, "offline.block", f"{kind}:{v}", kind=kind, value=v, reason=reason.strip())
    return {"kind": kind, "value": v, "blocked": True}


def unblock(app, actor, kind: str, value: str, note: str | None = None) -> dict:
    """Lift a block (the row is kept, with who lifted it and when); audited."""
    v = _check_subject(kind, value)
    check_text(note, NOTE_MAX_CHARS, "备注", "note")
    with app.db.session() as s:
        staff_id = require(s, actor, "offline.limits").id
        row = s.scalars(select(BlockedId).where(BlockedId.kind == kind, BlockedId.value == v,
                                                BlockedId.lifted_at.is_(None))).first()
        if row is None:
            raise NotFoundError(f"{KINDS[kind]} {v} 不在挂失名单上", detail=f"{kind} {v} is not blocked")
        row.lifted_by, row.lifted_at = staff_id, utcnow()
        audit.record(s, staff_id, "offline.unblock", f"{kind}:{v}", kind=kind, value=v, note=note)
    return {"kind": kind, "value": v, "blocked": False}


def feed_record(s: Session) -> dict:
    """What a terminal receives (entity ``offline``): the newest setting and the blocked list."""
    row = newest_row(s)
    return {"limits": None if row is None else {"per_sale_fen": row.per_sale_fen, "per_day_fen": row.per_day_fen,
                                                "subsidy_offline_s": row.subsidy_offline_s, "set_by": row.set_by,
                                                "set_at": row.set_at.isoformat()},
            "blocked": [{**asdict(b), "blocked_at": b.blocked_at.isoformat()} for b in blocked_rows(s)]}
