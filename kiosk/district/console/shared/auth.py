"""Console logins: staff sign in with their id and console password (role supervisor
or admin; the password and its back-off: kiosk.district.domain.passwords, never the
PIN a terminal holds); a login is a random token in an HttpOnly, SameSite=Strict
cookie that expires after a period without use and after a working day at most; every
form carries the login's CSRF token and a POST without it is refused."""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field


COOKIE = "kiosk_console"
PRE_COOKIE = "kiosk_console_login"
ROLE_RANK = {"staff": 0, "supervisor": 1, "admin": 2}
ROLE_ZH = {"staff": "工作人员", "supervisor": "主管", "admin": "管理员"}
MAX_HOURS = 10


@dataclass
class Login:
    token: str
    staff_id: str
    name: str
    role: str
    csrf: str
    created: float
    last_seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown once

    @property
    def role_zh(self) -> str:
        return ROLE_ZH.get(self.role, self.role)

    def at_least(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]


class Logins:
    """The server's logins, in memory: a restart signs everybody out."""

    def __init__(self, idle_s: float, max_s: float = MAX_HOURS * 3600, clock=time.monotonic) -> None:
        self.idle_s, self.max_s, self.clock = idle_s, max_s, clock
        self._by_token: dict[str, Login] = {}
        self._lock = threading.Lock()

    def open(self, staff_id: str, name: str, role: str) -> Login:
        now = self.clock()
        login = Login(secrets.token_urlsafe(32), staff_id, name, role, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._drop_expired(now)
            self._by_token[login.token] = login
        return login

    def get(self, token: str | None) -> tuple[Login | None, bool]:
        """(login, expired): the live login for the cookie, touched; or why there is none."""
        if not token:
            return None, False
        now = self.clock()
        with self._lock:
            login = self._by_token.get(token)
            if login is None:
                return None, False
            if now - login.last_seen > self.idle_s or now - login.created > self.max_s:
                del self._by_token[token]
                return None, True
            login.last_seen = now
            return login, False

    def close(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def _drop_expired(self, now: float) -> None:
        for t in [t for t, lg in self._by_token.items()
                  if now - lg.last_seen > self.idle_s or now - lg.created > self.max_s]:
            del self._by_token[t]


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
