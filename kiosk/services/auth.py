"""Staff who must prove who they are.

Every action that changes money, consent, faces or staff is done by an ``Actor``:
a staff member whose PIN was verified by ``StaffAuth.verify`` (the command line:
``--staff ID`` and the PIN) or ``StaffAuth.login`` (the kiosk's staff screen: the PIN
alone, PINs being unique among active staff). The services take the Actor and check
it again inside their unit of work (``require``): still active, and the role (as
stored now) has the permission. ``Actor``, ``require`` and the role -> permission
table ``PERMISSIONS`` are in kiosk.db.permissions (below the services, so that
enrollment checks the same way); this module proves PINs and manages staff.

PINs: digits only, 4-12 for staff and supervisors, 6-12 for admins; unique among
active staff (checked by verifying against every active hash, since they are salted);
hashed with Argon2id (kiosk.services.security). Five wrong PINs in a row lock that
staff id (or, for PIN-only login, that terminal) for five minutes; the count and the
lock are in the store (``pin_lockouts``), so a restart does not clear them.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import ConsoleSession, PinLockout, Staff, utcnow
from kiosk.db.permissions import ROLE_ZH, ROLES, Actor, check_role, make_actor, require
from kiosk.errors import NotFoundError, PermissionDeniedError, ValidationError
from kiosk.services.security import hash_pin, pin_needs_rehash, verify_pin

MIN_PIN = {"staff": 4, "supervisor": 4, "admin": 6}
MAX_PIN = 12
MAX_PIN_FAILURES = 5                 # wrong PINs in a row before the lock ...
PIN_LOCK = timedelta(minutes=5)      # ... for this long
SESSION_MAX_AGE = timedelta(minutes=30)   # a staff-screen login is good for this long


def check_pin_rules(pin: str, role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"角色应为 {'/'.join(ROLES)}，不是 {role}", detail=f"role {role!r}")
    lo = MIN_PIN[role]
    if not (pin.isascii() and pin.isdigit() and lo <= len(pin) <= MAX_PIN):
        raise ValidationError(f"{ROLE_ZH[role]}的 PIN 应为 {lo} 到 {MAX_PIN} 位数字",
                              detail=f"a {role} PIN must be {lo}-{MAX_PIN} digits")


class StaffAuth:
    def __init__(self, app, clock: Callable[[], datetime] = utcnow) -> None:
        self.app = app
        self.clock = clock

    # -- lockouts (in the store) -------------------------------------------------------
    def _check_lock(self, s: Session, key: str, who: str) -> None:
        row = s.get(PinLockout, key)
        now = self.clock()
        if row is not None and row.locked_until is not None and row.locked_until > now:
            minutes = int((row.locked_until - now).total_seconds()) // 60 + 1
            raise PermissionDeniedError(f"{who}PIN 错误次数过多，已锁定，请 {minutes} 分钟后再试",
                                        detail=f"{key} locked until {row.locked_until.isoformat()}")

    def _failed(self, key: str, staff_id: str | None) -> int:
        """Count a wrong PIN (committed at once); the number of tries left."""
        now = self.clock()
        with self.app.db.session(write_lock=True) as s:
            row = s.get(PinLockout, key, with_for_update=True)
            if row is None:
                try:
                    with s.begin_nested():
                        row = PinLockout(key=key, failures=0)
                        s.add(row)
                        s.flush()
                except IntegrityError:
                    row = s.get(PinLockout, key, with_for_update=True)
            if row.locked_until is not None and row.locked_until <= now:
                row.locked_until = None
            row.failures = (row.failures or 0) + 1
            left = MAX_PIN_FAILURES - row.failures
            audit.record(s, staff_id or "kiosk", "staff.pin_wrong", staff_id, key=key, failures=row.failures)
            if row.failures >= MAX_PIN_FAILURES:
                row.failures, row.locked_until = 0, now + PIN_LOCK
                audit.record(s, "kiosk", "staff.pin_locked", staff_id, key=key,
                             seconds=int(PIN_LOCK.total_seconds()))
                left = 0
        return left

    def _succeeded(self, key: str, staff_id: str, pin: str, stored_hash: str, *, login: str | None = None) -> Actor:
        """After a right PIN (verified outside any transaction: hashing is slow on purpose):
        clear the wrong-PIN count, re-hash an old hash, and make the Actor from the row
        as it is now (still active, same hash)."""
        new_hash = hash_pin(pin) if pin_needs_rehash(stored_hash) else None
        with self.app.db.session(write_lock=True) as s:
            st = s.get(Staff, staff_id)
            if st is None or not st.active or st.pin_hash != stored_hash:
                raise PermissionDeniedError("工作人员信息刚被修改，请重新输入 PIN",
                                            detail=f"staff {staff_id} changed while the PIN was checked")
            self._check_lock(s, key, "")       # locked meanwhile by wrong PINs tried at the same time
            row = s.get(PinLockout, key)
            if row is not None and (row.failures or row.locked_until):
                row.failures, row.locked_until = 0, None
            if new_hash:            # old scrypt or weaker parameters
                st.pin_hash = new_hash
                audit.record(s, st.id, "staff.pin_rehash", st.id)
            if login:
                audit.record(s, st.id, "staff.login", None, min_role=login)
            return make_actor(st, self.clock())

    # -- proving who acts --------------------------------------------------------------
    def verify(self, staff_id: str, pin: str, permission: str | None = None, *,
               min_role: str | None = None) -> Actor:
        """The command line's check: this staff id, this PIN, this permission (or role)."""
        key = f"staff:{staff_id}"
        with self.app.db.session(read_only=True) as s:
            self._check_lock(s, key, f"工号 {staff_id} 的")
            st = s.get(Staff, staff_id)
            if st is None:
                raise NotFoundError(f"没有工号为 {staff_id} 的工作人员", detail=f"staff {staff_id!r} not found")
            if not st.active:
                raise PermissionDeniedError(f"工作人员 {st.id}（{st.name}）已停用，不能操作",
                                            detail=f"staff {st.id} is inactive")
            stored = st.pin_hash
        if not verify_pin(pin or "", stored):
            left = self._failed(key, staff_id)
            raise PermissionDeniedError(
                f"工号 {staff_id} 的 PIN 不正确" + (f"（还可再试 {left} 次）" if left > 0 else "，已锁定 5 分钟"),
                detail=f"wrong PIN for {staff_id}")
        if permission is not None:
            check_role(st, permission)
        if min_role is not None and ROLES.index(st.role) < ROLES.index(min_role):
            raise PermissionDeniedError(f"需要{ROLE_ZH.get(min_role, '工作人员')}权限",
                                        detail=f"{st.id} is {st.role}, needs {min_role}")
        return self._succeeded(key, staff_id, pin, stored)

    def login(self, pin: str, min_role: str = "staff", *, terminal: str | None = None) -> Actor:
        """The staff screen's check: the PIN alone finds the active staff member."""
        key = f"terminal:{terminal or self.app.settings.canteen_id}"
        with self.app.db.session(read_only=True) as s:
            self._check_lock(s, key, "")
            rows = s.execute(select(Staff.id, Staff.role, Staff.pin_hash).where(Staff.active.is_(True))
                             .order_by(Staff.id)).all()
        found = next((r for r in rows if verify_pin(pin or "", r.pin_hash)), None)
        if found is None:
            left = self._failed(key, None)
            raise PermissionDeniedError("PIN 不正确" + (f"（还可再试 {left} 次）" if left > 0 else "，已锁定 5 分钟"),
                                        detail="no active staff with that PIN")
        if ROLES.index(found.role) < ROLES.index(min_role):
            raise PermissionDeniedError(f"需要{ROLE_ZH.get(min_role, '工作人员')}权限",
                                        detail=f"{found.id} is {found.role}, needs {min_role}")
        return self._succeeded(key, found.id, pin, found.pin_hash, login=min_role)

    def check(self, actor: Actor, permission: str) -> Actor:
        """``require`` in a unit of its own (for actions whose service takes a staff id)."""
        with self.app.db.session(read_only=True) as s:
            require(s, actor, permission)
        return actor

    def has_staff(self) -> bool:
        with self.app.db.session(read_only=True) as s:
            return s.scalar(select(Staff.id).limit(1)) is not None

    def fresh(self, actor: Actor) -> bool:
        return self.clock() - actor.proven_at <= SESSION_MAX_AGE

    # -- managing staff ------------------------------------------------------------------
    def add_staff(self, staff_id: str, name: str, role: str, pin: str, *, actor: Actor | None = None) -> dict:
        """Add (or change) a staff member. Without an acting admin only the very first
        staff member may be made, and only as an admin."""
        check_pin_rules(pin, role)
        if not staff_id or not staff_id.strip() or not name or not name.strip():
            raise ValidationError("工号和姓名不能为空", detail="empty staff id or name")
        new_hash = hash_pin(pin)
        with self.app.db.session(read_only=True) as s:     # the slow part, without the write lock
            checked = self._check_unique(pin, self._active_hashes(s, staff_id), set())
        with self.app.db.session(write_lock=True) as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("LOCK TABLE staff IN SHARE ROW EXCLUSIVE MODE"))
            if actor is None:
                if (s.scalar(select(func.count()).select_from(Staff)) or 0) > 0:
                    raise PermissionDeniedError(
                        "已有工作人员：添加或修改工作人员需要管理员确认身份（--staff 管理员工号，并输入其 PIN）",
                        detail="staff exist already; staff add needs an acting admin (--staff)")
                if role != "admin":
                    raise PermissionDeniedError("第一位工作人员必须是管理员（--role admin）",
                                                detail="the first staff member must be an admin")
                who = staff_id
            else:
                who = require(s, actor, "staff.manage").id
            # only hashes that changed since the check made before taking the lock
            self._check_unique(pin, self._active_hashes(s, staff_id), checked)
            existing = s.get(Staff, staff_id)
            if existing:
                existing.name, existing.role, existing.pin_hash, existing.active = name, role, new_hash, True
                action = "staff.update"
            else:
                s.add(Staff(id=staff_id, name=name, role=role, pin_hash=new_hash))
                action = "staff.add"
            audit.record(s, who, action, staff_id, role=role)
        return {"staff_id": staff_id, "name": name, "role": role}

    @staticmethod
    def _active_hashes(s: Session, except_id: str) -> set[str]:
        return set(s.scalars(select(Staff.pin_hash).where(Staff.active.is_(True), Staff.id != except_id)))

    @staticmethod
    def _check_unique(pin: str, hashes: set[str], already: set[str]) -> set[str]:
        """PINs are unique among active staff; salted hashes can only be compared by verifying."""
        for h in hashes - already:
            if verify_pin(pin, h):
                raise ValidationError("这个 PIN 已被另一位在职工作人员使用，请换一个",
                                      detail="PIN already used by another active staff member")
        return hashes | already

    def deactivate(self, staff_id: str, *, actor: Actor) -> dict:
        with self.app.db.session(write_lock=True) as s:
            who = require(s, actor, "staff.manage")
            st = s.get(Staff, staff_id)
            if st is None:
                raise NotFoundError(f"没有工号为 {staff_id} 的工作人员", detail=f"staff {staff_id!r} not found")
            if st.id == who.id:
                raise ValidationError("不能停用自己", detail="an admin cannot deactivate themselves")
            st.active = False
            ended = end_console_sessions(s, staff_id)
            audit.record(s, who.id, "staff.deactivate", staff_id, console_sessions_ended=ended)
        return {"staff_id": staff_id, "active": False}

    def list_staff(self) -> list[dict]:
        with self.app.db.session(read_only=True) as s:
            return [{"staff_id": st.id, "name": st.name, "role": st.role, "active": bool(st.active)}
                    for st in s.scalars(select(Staff).order_by(Staff.id))]


def end_console_sessions(s: Session, staff_id: str) -> int:
    """End every district-console login of ``staff_id`` (rows of ``console_sessions``), in
    the caller's unit of work: when their password changes or they are deactivated, no
    browser stays signed in as them, on any server process. The number ended."""
    return int(s.execute(delete(ConsoleSession).where(ConsoleSession.staff_id == staff_id)).rowcount or 0)
