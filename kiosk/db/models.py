"""SQLAlchemy 2 models. Ids are UUID strings (or the platform's own resident
id), times are stored in UTC with time zone, money is integer fen. The ledger
and order tables are append-only: a void is a new row, never an update."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "ck": "ck_%(table_name)s_%(constraint_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
          "pk": "pk_%(table_name)s"}


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Canteen(Base):
    __tablename__ = "canteens"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    district: Mapped[str | None] = mapped_column(String(100))
    meal_windows: Mapped[dict | None] = mapped_column(JSON)  # {"早餐": ["06:00","09:30"], ...}
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Terminal(Base):
    __tablename__ = "terminals"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    canteen_id: Mapped[str] = mapped_column(ForeignKey("canteens.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the district server (migration 0003): the terminal's token is kept only as a hash
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_pull_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pulled_version: Mapped[int | None] = mapped_column(Integer)
    pending: Mapped[int | None] = mapped_column(Integer)          # outbox rows it reported waiting
    software_version: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))        # face model contract it reported
    # its health as it reported it (migration 0009; kiosk/terminal/sync/health.py): disk free in its
    # KIOSK_HOME, the kiosk camera's state and since when, its last sale, when it said so
    disk_free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    camera_state: Mapped[str | None] = mapped_column(String(20))
    camera_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sale_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    health_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Resident(Base):
    __tablename__ = "residents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    id_number: Mapped[str | None] = mapped_column(String(18), unique=True)
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(4))
    hukou: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(40), index=True)
    categories: Mapped[list] = mapped_column(JSON, default=list)
    diet_tags: Mapped[list] = mapped_column(JSON, default=list)
    allergies: Mapped[list] = mapped_column(JSON, default=list)
    card_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    emergency_contact: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | suspended | erased
    # the roster's 状态 / 状态日期 (migration 0010): registered | suspended | moved | deceased, and the
    # day it takes effect (kiosk.billing.status: no subsidy from that day; moved/deceased: no checkout)
    roster_status: Mapped[str] = mapped_column(String(12), default="registered", server_default="registered")
    status_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    templates: Mapped[list["FaceTemplate"]] = relationship(back_populates="resident")


class FaceConsent(Base):
    __tablename__ = "face_consents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    given_by: Mapped[str] = mapped_column(String(20))  # self | guardian
    guardian_name: Mapped[str | None] = mapped_column(String(100))
    staff_id: Mapped[str] = mapped_column(String(64))
    text_version: Mapped[str] = mapped_column(String(40))
    allows_crop: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(40), default="desk")  # desk | roster | kiosk
    # the terminal that pushed it (migration 0015; set by the server from the terminal's token;
    # None: recorded at the server itself or before 0015)
    terminal_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FaceTemplate(Base):
    __tablename__ = "face_templates"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    contract_id: Mapped[str] = mapped_column(String(200), index=True)
    backend: Mapped[str] = mapped_column(String(40))
    embedding_enc: Mapped[bytes] = mapped_column(LargeBinary)
    crop_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    quality: Mapped[float | None]
    source: Mapped[str] = mapped_column(String(20), default="enroll")  # enroll | import | refresh
    terminal_id: Mapped[str | None] = mapped_column(String(64))   # as on FaceConsent (migration 0015)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    resident: Mapped[Resident] = relationship(back_populates="templates")


class MenuItem(Base):
    __tablename__ = "menu_items"
    __table_args__ = (UniqueConstraint("canteen_id", "menu_date", "meal", "dish_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    canteen_id: Mapped[str] = mapped_column(String(64))
    menu_date: Mapped[date] = mapped_column(Date, index=True)
    meal: Mapped[str] = mapped_column(String(10))
    dish_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    price_fen: Mapped[int] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(20))
    tags: Mapped[list] = mapped_column(JSON, default=list)
    allergens: Mapped[list] = mapped_column(JSON, default=list)
    portions: Mapped[int | None] = mapped_column(Integer)  # None = unlimited


class SubsidyPolicy(Base):
    __tablename__ = "subsidy_policies"
    __table_args__ = (UniqueConstraint("policy_id", "version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    policy_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    district: Mapped[str] = mapped_column(String(100))
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date] = mapped_column(Date)
    body: Mapped[dict] = mapped_column(JSON)
    body_sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    canteen_id: Mapped[str] = mapped_column(String(64))
    terminal_id: Mapped[str | None] = mapped_column(String(64))
    meal_date: Mapped[date] = mapped_column(Date)
    meal: Mapped[str] = mapped_column(String(10))
    total_fen: Mapped[int] = mapped_column(Integer)
    subsidy_fen: Mapped[int] = mapped_column(Integer)
    to_pay_fen: Mapped[int] = mapped_column(Integer)
    pay_method: Mapped[str] = mapped_column(String(20))
    tier: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    policy_row_id: Mapped[str | None] = mapped_column(String(36))
    identified_by: Mapped[str] = mapped_column(String(20), default="cli")  # face | card | phone | staff | cli
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # proof of life (高龄津贴, migration 0005): the face matched / the liveness check passed at
    # this checkout (None: not recorded, e.g. orders from before 0005 or the command line)
    face_verified: Mapped[bool | None] = mapped_column(Boolean)
    liveness_passed: Mapped[bool | None] = mapped_column(Boolean)
    # sold while the terminal could not reach the server (migration 0014): seconds since it last
    # did; None: sold online (kiosk.billing.offline; the server checks it against the limits)
    offline_s: Mapped[int | None] = mapped_column(Integer)

    lines: Mapped[list["OrderLine"]] = relationship(back_populates="order")

    __table_args__ = (Index("ix_orders_resident_day", "resident_id", "meal_date"),
                      # the console's overview and a month's reports: meals per day and canteen, the
                      # month's subsidy (migration 0015)
                      Index("ix_orders_day_canteen", "meal_date", "canteen_id", postgresql_include=["subsidy_fen"]),
                      # each terminal's last order (migration 0016)
                      Index("ix_orders_terminal_at", "terminal_id", "created_at"))


class OrderLine(Base):
    __tablename__ = "order_lines"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    menu_item_id: Mapped[str] = mapped_column(ForeignKey("menu_items.id"), index=True)
    dish_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    price_fen: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="lines")


class OrderVoid(Base):
    __tablename__ = "order_voids"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    staff_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """Append-only. ``amount_fen`` is signed from the resident account's view
    for balance-affecting kinds (top-up +, balance payment -, reversal of it +)."""

    __tablename__ = "ledger_entries"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # charge | subsidy | payment | topup | reversal
    method: Mapped[str | None] = mapped_column(String(20))  # balance | cash | card
    amount_fen: Mapped[int] = mapped_column(Integer)
    affects_balance: Mapped[bool] = mapped_column(Boolean, default=False)
    payer: Mapped[str | None] = mapped_column(String(100))
    staff_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))  # staff | supervisor | admin
    pin_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """Append-only in effect: ``entry_hash`` = sha256(previous entry's hash + this
    entry's canonical JSON), ``seq`` counts from 1 without gaps (kiosk.db.chain)."""

    __tablename__ = "audit_log"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # staff id, "system" or "kiosk"
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict | None] = mapped_column(JSON)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row (id 1): the last sequence number and hash of the audit chain. Every
    append updates it first, so appends from several processes queue on this row
    (the row lock on PostgreSQL, the write lock on SQLite) and never fork the chain."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class StoreCounter(Base):
    """Store-wide counters. ``gallery``: bumped in the same transaction as every change
    of face templates; a running process compares it before searching and reloads."""

    __tablename__ = "store_counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class PinLockout(Base):
    """Wrong-PIN counts and lockouts, kept in the store so they survive a restart.
    ``key``: ``staff:ID`` for a named staff member, ``terminal:CANTEEN`` for PIN-only login."""

    __tablename__ = "pin_lockouts"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)



# --------------------------------------------------------------------------- console passwords (0007)
class CanteenStaff(Base):
    """A canteen's staff list: the people whose PIN hashes that canteen's terminals
    receive (kiosk.district.domain.feed). Nobody else's hash, admins' included,
    reaches a terminal."""

    __tablename__ = "canteen_staff"
    canteen_id: Mapped[str] = mapped_column(ForeignKey("canteens.id"), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), primary_key=True, index=True)
    added_by: Mapped[str | None] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffPassword(Base):
    """The console's password of a staff member (Argon2id, kiosk.district.domain.passwords).
    A table of its own: never part of the staff record a terminal pulls."""

    __tablename__ = "staff_passwords"
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    set_by: Mapped[str | None] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginThrottle(Base):
    """Wrong passwords, counted apart from PINs (``pin_lockouts``): ``key`` is
    ``account:ID`` or ``address:IP`` (an IPv6 client by its /64). After a few free tries
    each failure doubles the wait (``locked_until``); kept in the store, so a restart
    does not reset it."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """A console login (0012), shared by every server process over the store: the
    browser holds a random token in a cookie, the row only its SHA-256 (``token_hash``),
    so a copy of the database opens no login. ``csrf``: the token every form of this
    login carries. ``expires_at``: the earlier of ``last_seen_at`` + the idle timeout and
    ``created_at`` + the working day (kiosk.district.console.shared.auth), the one indexed
    column expired rows are deleted by. ``flash``: messages for the next page shown."""

    __tablename__ = "console_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(String(64), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    flash: Mapped[list | None] = mapped_column(JSON)


# --------------------------------------------------------------------------- the district (0003)
class ChangeLogEntry(Base):
    """Which district record changed, at which version. Terminals pull what changed since
    the version they last saw. Versions are handed out at commit (see kiosk.db.changes),
    so they become visible in order."""

    __tablename__ = "change_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, index=True)
    entity: Mapped[str] = mapped_column(String(20))   # resident|faces|account|menu|policy|staff|canteen
    key: Mapped[str] = mapped_column(String(200))


class SyncCounter(Base):
    __tablename__ = "sync_counter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class AppliedOp(Base):
    """A terminal's outbox operation the server has applied (or refused, kept with its
    payload): the same op pushed again is answered from here, never applied twice."""

    __tablename__ = "applied_ops"
    op_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))   # applied | rejected
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict | None] = mapped_column(JSON)   # kept only for a rejected op
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)   # on the terminal
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PushedOrder(Base):
    """When an order from a terminal reached the server."""

    __tablename__ = "pushed_orders"
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(64))
    op_id: Mapped[str] = mapped_column(String(36))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# what a district flag is about: a subsidy over a district-wide limit (a charge-back
# lowers the subsidy claimed) or a balance gone below zero (money the resident owes)
FLAG_KINDS_SUBSIDY = ("daily_meals", "monthly_amount", "resident_status")
FLAG_KINDS_BALANCE = ("balance",)


class DistrictFlag(Base):
    """An order recorded as served that broke a district-wide limit (for reconciliation)."""

    __tablename__ = "district_flags"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    resident_id: Mapped[str] = mapped_column(String(64), index=True)
    meal_date: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(20))   # daily_meals | monthly_amount | resident_status | balance
    over_fen: Mapped[int] = mapped_column(Integer)
    order_ids: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decision: Mapped[str | None] = mapped_column(String(20))   # accept | charge_back
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)


class QuarantinedOp(Base):
    """A terminal's op the server did not apply (待核查): its reported amounts differ from
    the server's own derivation, it acts outside the terminal's canteen, or it cannot be
    applied as it stands. Kept whole with its reason until an admin accepts it (applied
    then, once) or rejects it (never applied). Migration 0006."""

    __tablename__ = "quarantined_ops"
    op_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    canteen_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    resident_id: Mapped[str | None] = mapped_column(String(64))
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)      # as the terminal reported it
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)   # on the terminal
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(20), default="waiting")   # waiting | accepted | rejected
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)


class OutboxEntry(Base):
    """A terminal's change waiting for the server, pushed in ``seq`` order."""

    __tablename__ = "sync_outbox"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="pending")   # pending | rejected
    error: Mapped[str | None] = mapped_column(Text)


class SyncState(Base):
    """A terminal's sync bookkeeping (role, pulled version, last sync, offline since)."""

    __tablename__ = "sync_state"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict | None] = mapped_column(JSON)



# --------------------------------------------------------------------------- the console (0005)
class WelfareVisit(Base):
    """A staff member's visit to a resident on the welfare-alert list (关爱巡访)."""

    __tablename__ = "welfare_visits"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    staff_id: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    visited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class DistrictSetting(Base):
    """Per-district settings of the console (days without a meal before a welfare alert)."""

    __tablename__ = "district_settings"
    district: Mapped[str] = mapped_column(String(100), primary_key=True)
    welfare_days: Mapped[int] = mapped_column(Integer, default=3)
    # the anomaly scan's thresholds set by an admin (migration 0010; kiosk.district.domain.anomalies)
    anomaly_thresholds: Mapped[dict | None] = mapped_column(JSON)
    # the monthly subsidy budget the admin sets, in fen (migration 0015; the console's overview)
    subsidy_budget_fen: Mapped[int | None] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)



# --------------------------------------------------------------------------- meal bookings (0013)
class MealBooking(Base):
    """A meal booked ahead (报餐) or cancelled (报停): one row per resident, day and meal,
    kept (``cancelled``) when called off so the kitchen and the office see both."""

    __tablename__ = "meal_bookings"
    __table_args__ = (UniqueConstraint("resident_id", "meal_date", "meal"),
                      Index("ix_meal_bookings_day", "meal_date", "canteen_id"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"))
    meal_date: Mapped[date] = mapped_column(Date)
    meal: Mapped[str] = mapped_column(String(10))
    canteen_id: Mapped[str] = mapped_column(String(64))
    dish_ids: Mapped[list] = mapped_column(JSON, default=list)      # empty: the canteen's choice
    portions: Mapped[int] = mapped_column(Integer, default=1)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20), default="cli")  # cli | import | counter | console
    staff_id: Mapped[str | None] = mapped_column(String(64))
    terminal_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --------------------------------------------------------------------------- offline limits (0014)
class OfflineLimit(Base):
    """The district's limits on what terminals sell offline (kiosk.billing.offline), one
    row per setting made (kept): the newest is in force, and the server judges a pushed
    offline sale by the one in force when its terminal last reached the server."""

    __tablename__ = "offline_limits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    per_sale_fen: Mapped[int | None] = mapped_column(Integer)       # None: no cap
    per_day_fen: Mapped[int | None] = mapped_column(Integer)
    subsidy_offline_s: Mapped[int] = mapped_column(Integer, default=24 * 3600)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    note: Mapped[str | None] = mapped_column(Text)


class BlockedId(Base):
    """A card (挂失卡) or a resident the district blocked at every terminal; kept when
    lifted (``lifted_at``), so the server knows what was blocked when."""

    __tablename__ = "blocked_ids"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(10))          # card | resident
    value: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    blocked_by: Mapped[str] = mapped_column(String(64))
    blocked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_by: Mapped[str | None] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
