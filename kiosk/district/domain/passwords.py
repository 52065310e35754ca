"""Passwords: how a person is proven where a PIN is no proof.

A terminal holds the PIN hashes of its canteen's staff (it checks PINs at the counter,
offline too), and a terminal stands in a public room: its disk can be carried away and
a 4-6 digit PIN found from its hash in hours. So the district server does not take
PINs. The console signs in with a **password** (at least 10 characters, set with
``kiosk staff password ID``), hashed with Argon2id (argon2-cffi) and kept in its own
table (``staff_passwords``), which no terminal ever receives; and on a district server
(a store that has issued a terminal token) the command line proves the acting staff
member with the password too (kiosk.cli.staffpin).

Wrong passwords are counted apart from wrong PINs (``login_throttle``, not
``pin_lockouts``): per account and, for the console, per client address (an IPv6 client
by its /64). After a few free tries every further failure doubles the wait (2 s, 4 s,
... at most 15 minutes); a key with no failure for an hour starts again. The count is
taken *before* the password is checked, so parallel guesses all see it, and it is in
the store, so a restart does not reset it. Nothing here touches the PIN's lockout: a
flood of wrong console passwords never locks anybody at the counter.

An unknown id, an inactive one, one without a password and a wrong password get the
same answer (message, status), in about the same time: the password is checked against
a dummy hash of the same cost when there is no real one.
"""
from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import Canteen, CanteenStaff, LoginThrottle, Staff, StaffPassword, Terminal, utcnow
from kiosk.db.permissions import ROLE_ZH, ROLES, Actor, check_role, make_actor
from kiosk.errors import NotFoundError, PermissionDeniedError, ServerOnlyError, TooManyAttemptsError, ValidationError
from kiosk.services.auth import end_console_sessions
from kiosk.services.security import verify_pin

MIN_LENGTH = 10
MAX_LENGTH = 200
# RFC 9106's second recommended setting, as the PINs (kiosk.services.security); one lane:
# no threads (lanes > 1 were measured failing in a process that ran the Qt UI)
HASHER = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1, hash_len=32, salt_len=16)

FREE_TRIES = {"account": 3, "address": 10}   # failures before the waits start
FIRST_WAIT = timedelta(seconds=2)             # then 2 s, 4 s, 8 s, ... per further failure
MAX_WAIT = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)             # a key with no failure for this long starts again
MAX_ID = 64                                   # a submitted id is counted as at most this many characters

WRONG = "工号或密码不正确"                     # every refusal of a login that is not a back-off

# checked against when there is no real hash (unknown id, inactive, no password): same
# parameters, so the answer takes as long; the hash of a random secret nobody kept
DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=1$2M0oS4ANF6C9bwL/e6tCnA$9YG2nCmxPj7PSfObsCA8VRzhDr0+Ojorr/yR9pAhLq4"


# ---------------------------------------------------------------------------- hashing
def check_rules(password: str) -> None:
    """At least 10 characters (any: letters, digits, Chinese, spaces), at most 200, no NUL."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise ValidationError(f"密码至少 {MIN_LENGTH} 个字符", detail=f"a password needs {MIN_LENGTH}+ characters")
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"密码最多 {MAX_LENGTH} 个字符", detail=f"a password has at most {MAX_LENGTH} characters")
    if "\x00" in password or not password.strip():
        raise ValidationError("密码不能为空白，也不能含 NUL 字符", detail="blank password or NUL in it")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_hash(password: str, stored: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# ---------------------------------------------------------------------------- where
def is_district_server(app) -> bool:
    """This store has issued a terminal token: its staff's PIN hashes have left the
    machine, so on it a PIN proves nobody. (A terminal is never one; a single machine
    without terminals keeps PINs.)"""
    if app.settings.is_terminal:
        return False
    with app.db.session(read_only=True) as s:
        return bool(s.scalar(select(exists().where(Terminal.id.is_not(None)))))


def has_password(app, staff_id: str) -> bool:
    with app.db.session(read_only=True) as s:
        return s.get(StaffPassword, staff_id) is not None


def client_key(address: str | None) -> str | None:
    """The back-off key of a client address: an IPv4 address, an IPv6 client by its /64."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return "address:" + address.strip()[:80]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "address:" + str(ip.ipv4_mapped)
        return "address:" + str(ipaddress.IPv6Network((ip, 64), strict=False))
    return "address:" + str(ip)


# ---------------------------------------------------------------------------- back-off
class Throttle:
    """Per-key failure counts with doubling waits, in ``login_throttle``."""

    def __init__(self, app, clock: Callable[[], datetime] = utcnow) -> None:
        self.app = app
        self.clock = clock

    @staticmethod
    def wait_after(kind: str, failures: int) -> timedelta | None:
        over = failures - FREE_TRIES[kind]
        if over <= 0:
            return None
        return min(MAX_WAIT, FIRST_WAIT * (2 ** min(over - 1, 20)))

    def _row(self, s: Session, key: str) -> LoginThrottle:
        row = s.get(LoginThrottle, key, with_for_update=True)
        if row is None:
            try:
                with s.begin_nested():
                    row = LoginThrottle(key=key, failures=0)
                    s.add(row)
                    s.flush()
            except IntegrityError:
                row = s.get(LoginThrottle, key, with_for_update=True)
        return row

    def claim(self, keys: list[tuple[str, str]], who: str) -> None:
        """Before a password is checked: refuse while any key waits; else count this try
        as a failure now (undone by ``succeeded``), so that parallel tries see it."""
        now = self.clock()
        with self.app.db.session(write_lock=True) as s:
            rows = [(kind, self._row(s, key)) for kind, key in keys]
            waits = [r.locked_until for _, r in rows if r.locked_until is not None and r.locked_until > now]
            if waits:
                seconds = max(1, int((max(waits) - now).total_seconds() + 0.999))
                raise TooManyAttemptsError(f"登录失败次数过多，请 {_human(seconds)}后再试",
                                           detail=f"back-off for {seconds} s ({who})", retry_after=seconds)
            for kind, r in rows:
                if r.last_failure_at is not None and now - r.last_failure_at > FORGET_AFTER:
                    r.failures = 0
                r.failures = (r.failures or 0) + 1
                r.last_failure_at = now
                wait = self.wait_after(kind, r.failures)
                r.locked_until = now + wait if wait else None
                if wait is not None and r.failures == FREE_TRIES[kind] + 1:
                    audit.record(s, "system", "console.login_backoff", r.key[:100], failures=r.failures)

    def succeeded(self, keys: list[tuple[str, str]]) -> None:
        """A right password: the account starts again; the address keeps its count less
        this try (a valid account must not let its owner wipe an address's failures)."""
        with self.app.db.session(write_lock=True) as s:
            for kind, key in keys:
                r = s.get(LoginThrottle, key, with_for_update=True)
                if r is None:
                    continue
                if kind == "account":
                    s.delete(r)
                else:
                    r.failures = max(0, (r.failures or 0) - 1)
                    wait = self.wait_after(kind, r.failures)
                    if wait is None:
                        r.locked_until = None

    def state(self, key: str) -> dict | None:
        with self.app.db.session(read_only=True) as s:
            r = s.get(LoginThrottle, key)
            return None if r is None else {"failures": r.failures, "locked_until": r.locked_until}


def _human(seconds: int) -> str:
    return f"{seconds} 秒" if seconds < 120 else f"{(seconds + 59) // 60} 分钟"


# ---------------------------------------------------------------------------- proving
def verify(app, staff_id: str, password: str, *, permission: str | None = None, min_role: str | None = None,
           client: str | None = None, clock: Callable[[], datetime] = utcnow) -> Actor:
    """The staff member ``staff_id`` proven by their password (the console's login and
    confirmations, the district server's command line). ``client``: the console's client
    address (also counted); the command line passes none. Every refusal before the
    password is known right reads 工号或密码不正确 (or the back-off's wait)."""
    sid = (staff_id or "").strip()[:MAX_ID]
    keys = [("account", f"account:{sid}")]
    ck = client_key(client)
    if ck is not None:
        keys.append(("address", ck))
    throttle = Throttle(app, clock)
    throttle.claim(keys, f"staff {sid!r} from {client or 'cli'}")
    with app.db.session(read_only=True) as s:
        st = s.get(Staff, sid) if sid else None
        row = s.get(StaffPassword, sid) if st is not None else None
        stored = row.password_hash if row is not None and st.active else None
    ok = verify_hash(password or "", stored or DUMMY_HASH)
    if not (ok and stored):
        raise PermissionDeniedError(WRONG, detail=f"wrong password, unknown id or no password ({sid!r})")
    throttle.succeeded(keys)
    new_hash = hash_password(password) if HASHER.check_needs_rehash(stored) else None
    with app.db.session(write_lock=True) as s:
        st = s.get(Staff, sid)
        row = s.get(StaffPassword, sid)
        if st is None or not st.active or row is None or row.password_hash != stored:
            raise PermissionDeniedError("工作人员信息刚被修改，请重新登录", detail=f"staff {sid} changed meanwhile")
        if new_hash:
            row.password_hash = new_hash
        if permission is not None:
            check_role(st, permission)
        if min_role is not None and ROLES.index(st.role) < ROLES.index(min_role):
            raise PermissionDeniedError(f"需要{ROLE_ZH.get(min_role, '工作人员')}权限",
                                        detail=f"{st.id} is {st.role}, needs {min_role}")
        return make_actor(st, clock())


def console_login(app, staff_id: str, password: str, client: str | None, *, min_role: str = "supervisor",
                  clock: Callable[[], datetime] = utcnow) -> Actor:
    """The console's sign-in: supervisors and admins, by password, counted per account
    and per client address."""
    return verify(app, staff_id, password, min_role=min_role, client=client, clock=clock)


def confirm(app, staff_id: str, password: str, min_role: str, client: str | None) -> Actor:
    """A signed-in console user confirming a grave action (a reconciliation decision, a
    bulk erasure) with the password again."""
    return verify(app, staff_id, password, min_role=min_role, client=client)


# ---------------------------------------------------------------------------- setting
def set_password(app, staff_id: str, password: str, *, actor: Actor | None = None,
                 own_proof: str | None = None, own_pin: str | None = None) -> dict:
    """Set ``staff_id``'s password. Who may:

    * an admin (``actor``, proven as the command line proves people: by password on a
      district server) for anybody;
    * the person, proven by their current password (``own_proof``);
    * while no active admin has a password yet (just after setting up or upgrading), an
      active admin for themselves, proven by their PIN (``own_pin``): the first password.
    """
    if app.settings.is_terminal:
        raise ServerOnlyError("密码只能在区服务器上设置，终端不保存也不接收密码",
                              detail="kiosk staff password runs on the district server")
    check_rules(password)
    with app.db.session(read_only=True) as s:
        st = s.get(Staff, staff_id)
        if st is None:
            raise NotFoundError(f"没有工号为 {staff_id} 的工作人员", detail=f"staff {staff_id!r} not found")
        if not st.active:
            raise PermissionDeniedError(f"工作人员 {st.id}（{st.name}）已停用", detail=f"staff {st.id} is inactive")
        pin_hash = st.pin_hash
        admins_with = s.scalar(select(exists().where(StaffPassword.staff_id == Staff.id, Staff.active.is_(True),
                                                     Staff.role == "admin")))
        role = st.role
    if actor is not None:
        who, how = actor.staff_id, "admin"
    elif own_proof is not None:
        verify(app, staff_id, own_proof)
        who, how = staff_id, "own_password"
    elif own_pin is not None:
        if role != "admin" or admins_with:
            raise PermissionDeniedError(
                "用 PIN 只能设置第一位管理员的密码；请由管理员用 --staff 为其设置，或用当前密码修改",
                detail="a PIN proves the first admin password only")
        app.auth.verify(staff_id, own_pin, min_role="admin")
        who, how = staff_id, "first_admin_pin"
    else:
        raise PermissionDeniedError("设置密码需要管理员（--staff）或本人的当前密码", detail="nobody proven")
    if verify_pin(password, pin_hash):
        raise ValidationError("密码不能与 PIN 相同", detail="the password equals the staff member's PIN")
    new_hash = hash_password(password)
    with app.db.session(write_lock=True) as s:
        if actor is not None:
            from kiosk.db.permissions import require

            require(s, actor, "staff.manage")
        row = s.get(StaffPassword, staff_id)
        if row is None:
            s.add(StaffPassword(staff_id=staff_id, password_hash=new_hash, set_by=who, set_at=utcnow()))
        else:
            row.password_hash, row.set_by, row.set_at = new_hash, who, utcnow()
        s.execute(delete(LoginThrottle).where(LoginThrottle.key == f"account:{staff_id}"))
        ended = end_console_sessions(s, staff_id)       # a new password signs the old logins out
        audit.record(s, who, "staff.password_set", staff_id, how=how, console_sessions_ended=ended)
    return {"staff_id": staff_id, "password_set": True, "by": who}


# ---------------------------------------------------------------------------- canteen lists
def add_to_canteen(app, staff_id: str, canteen_id: str, actor: Actor) -> dict:
    """Put a staff member on a canteen's list: that canteen's terminals receive their
    PIN hash at the next sync."""
    from kiosk.db.permissions import require

    with app.db.session(write_lock=True) as s:
        who = require(s, actor, "staff.manage").id
        if s.get(Staff, staff_id) is None:
            raise NotFoundError(f"没有工号为 {staff_id} 的工作人员", detail=f"staff {staff_id!r} not found")
        if s.get(Canteen, canteen_id) is None:
            raise NotFoundError(f"没有编号为 {canteen_id} 的食堂", detail=f"canteen {canteen_id!r} not found")
        added = s.get(CanteenStaff, (canteen_id, staff_id)) is None
        if added:
            s.add(CanteenStaff(canteen_id=canteen_id, staff_id=staff_id, added_by=who))
            audit.record(s, who, "staff.canteen_add", staff_id, canteen_id=canteen_id)
    return {"staff_id": staff_id, "canteen_id": canteen_id, "on_list": True, "changed": added}


def remove_from_canteen(app, staff_id: str, canteen_id: str, actor: Actor) -> dict:
    """Take a staff member off a canteen's list: gone from its terminals at their next sync."""
    from kiosk.db.permissions import require

    with app.db.session(write_lock=True) as s:
        who = require(s, actor, "staff.manage").id
        row = s.get(CanteenStaff, (canteen_id, staff_id))
        if row is not None:
            s.delete(row)
            audit.record(s, who, "staff.canteen_remove", staff_id, canteen_id=canteen_id)
    return {"staff_id": staff_id, "canteen_id": canteen_id, "on_list": False, "changed": row is not None}


def canteen_lists(app, canteen_id: str | None = None) -> list[dict]:
    with app.db.session(read_only=True) as s:
        q = (select(CanteenStaff.canteen_id, Staff.id, Staff.name, Staff.role, Staff.active)
             .join(Staff, Staff.id == CanteenStaff.staff_id).order_by(CanteenStaff.canteen_id, Staff.id))
        if canteen_id:
            q = q.where(CanteenStaff.canteen_id == canteen_id)
        return [{"canteen_id": c, "staff_id": i, "name": n, "role": r, "active": bool(a)}
                for c, i, n, r, a in s.execute(q)]
