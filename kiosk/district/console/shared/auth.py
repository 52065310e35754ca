"""Console logins: staff sign in with their id and console password (role supervisor
or admin; the password and its back-off: kiosk.district.domain.passwords, never the
PIN a terminal holds); a login is a random token in an HttpOnly, SameSite=Strict
cookie that expires after a period without use and after a working day at most; every
form carries the login's CSRF token and a POST without it is refused. Logins are rows
of the store (``console_sessions``, keyed by the token's hash): any server process over
it honours them."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, select, update

from kiosk.db.models import ConsoleSession, Staff, utcnow

COOKIE = "kiosk_console"
PRE_COOKIE = "kiosk_console_login"
ROLE_RANK = {"staff": 0, "supervisor": 1, "admin": 2}
ROLE_ZH = {"staff": "工作人员", "supervisor": "主管", "admin": "管理员"}
MAX_HOURS = 10


class Flash(list):
    """A login's messages for the next page, (kind, text), shown once. Kept with the
    login's row: ``append`` stores the message at once, so the page after a redirect
    shows it whichever server process serves that page."""

    def __init__(self, items=(), save: Callable[[list], None] | None = None) -> None:
        super().__init__(tuple(i) for i in items)
        self._save = save

    def append(self, item) -> None:
        super().append(tuple(item))
        if self._save is not None:
            self._save([list(i) for i in self])

    def take(self) -> list[tuple[str, str]]:
        """The messages, removed (also from the row) now that a page shows them."""
        items = list(self)
        if items:
            self.clear()
            if self._save is not None:
                self._save([])
        return items


@dataclass
class Login:
    """The logged-in staff member of a request: ``role`` and ``name`` as the staff record
    has them now (a demotion counts at the next request)."""
    token: str
    staff_id: str
    name: str
    role: str
    csrf: str
    created: datetime
    last_seen: datetime
    flash: Flash = field(default_factory=Flash)     # (kind, text) shown once

    @property
    def role_zh(self) -> str:
        return ROLE_ZH.get(self.role, self.role)

    def at_least(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]


def token_hash(token: str) -> str:
    """What the store keeps of a login's token: its SHA-256 (the token is 256 random bits)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Logins:
    """The console's logins, in the store (``console_sessions``), so that every server
    process over it (``--workers``, several servers over one PostgreSQL) honours a login
    made by any of them, and a restart signs nobody out. A login ends after ``idle_s``
    without use, ``max_s`` after it began whatever the use, at logout, and when its
    staff member's password is changed or they are deactivated
    (kiosk.services.auth.end_console_sessions, in the same unit of work).

    A use is written to the row at most every ``touch`` (30 s, or 1/60 of the idle time
    when shorter), so the idle time counts from at most that long before the last use. Expired rows are deleted at each login (one DELETE on an index)."""

    def __init__(self, db, idle_s: float, max_s: float = MAX_HOURS * 3600,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db, self.clock = db, clock
        self.idle = timedelta(seconds=idle_s)
        self.max = timedelta(seconds=max_s)
        self.touch = min(timedelta(seconds=30), self.idle / 60)

    def _expiry(self, created: datetime, last_seen: datetime) -> datetime:
        return min(last_seen + self.idle, created + self.max)

    def open(self, staff_id: str, name: str, role: str) -> Login:
        now = self.clock()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.db.session(write_lock=True) as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
            s.add(ConsoleSession(token_hash=token_hash(token), staff_id=staff_id, csrf=csrf, created_at=now,
                                 last_seen_at=now, expires_at=self._expiry(now, now), flash=None))
        return Login(token, staff_id, name, role, csrf, now, now, self._flash(token_hash(token), ()))

    def get(self, token: str | None) -> tuple[Login | None, bool]:
        """(login, expired): the live login for the cookie, touched; or why there is none."""
        if not token or len(token) > 200:
            return None, False
        key = token_hash(token)
        now = self.clock()
        with self.db.session(read_only=True) as s:
            row = s.execute(select(ConsoleSession, Staff.name, Staff.role, Staff.active)
                            .outerjoin(Staff, Staff.id == ConsoleSession.staff_id)
                            .where(ConsoleSession.token_hash == key)).first()
        if row is None:
            return None, False
        sess, name, role, active = row
        if now >= sess.expires_at or not active:
            self._delete(key)
            return None, bool(active)
        if now - sess.last_seen_at >= self.touch:
            with self.db.session(write_lock=True) as s:
                s.execute(update(ConsoleSession).where(ConsoleSession.token_hash == key)
                          .values(last_seen_at=now, expires_at=self._expiry(sess.created_at, now)))
        return Login(token, sess.staff_id, name, role, sess.csrf, sess.created_at, now,
                     self._flash(key, sess.flash or ())), False

    def close(self, token: str | None) -> None:
        if token:
            self._delete(token_hash(token))

    def _delete(self, key: str) -> None:
        with self.db.session(write_lock=True) as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == key))

    def _flash(self, key: str, items) -> Flash:
        def save(messages: list) -> None:
            with self.db.session(write_lock=True) as s:
                s.execute(update(ConsoleSession).where(ConsoleSession.token_hash == key)
                          .values(flash=messages or None))

        return Flash(items, save)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def client_address(request) -> str | None:
    """The address wrong passwords are counted against: the peer's, or, when the peer is
    a reverse proxy on this machine (loopback), the address it forwarded
    (``X-Forwarded-For``, the right-most entry: the one that proxy saw)."""
    host = request.client.host if request.client else None
    fwd = request.headers.get("x-forwarded-for")
    if host and fwd:
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if local:
            last = fwd.split(",")[-1].strip()
            if last:
                return last[:100]
    return host
