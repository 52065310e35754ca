"""Per-terminal tokens. A token is 32 random bytes shown once at `kiosk server terminal
add`; the server keeps its SHA-256 only (a random 256-bit secret needs no slow hash).
Every API request looks the hash up in the database (no cache), so a revoked terminal is
refused at its next request. A push looks it up inside its own transaction
(``claim_terminal``): one statement checks the token, writes last seen/last push and
locks the terminal's row, so two pushes of one terminal run one after the other."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from kiosk.db.models import Canteen, Terminal, utcnow
from kiosk.errors import NotFoundError, ValidationError
from kiosk.db import audit
from kiosk.services.context import App
from kiosk.errors import TerminalAuthError

TOKEN_PREFIX = "kt_"
SEEN_EVERY = timedelta(seconds=10)   # last_seen_at is written at most this often


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass(frozen=True)
class TerminalIdentity:
    terminal_id: str
    canteen_id: str
    name: str | None


def add_terminal(app: App, canteen_id: str, *, name: str | None = None, terminal_id: str | None = None,
                 actor: str = "system") -> tuple[TerminalIdentity, str]:
    """Register a terminal of a canteen; returns it and its token (shown once)."""
    canteen_id = canteen_id.strip()
    if not canteen_id or len(canteen_id) > 64:
        raise ValidationError("食堂编号不能为空，且不超过64个字符", detail=f"bad canteen id {canteen_id!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with app.db.session() as s:
        if s.get(Canteen, canteen_id) is None:
            s.add(Canteen(id=canteen_id, name=canteen_id))
            s.flush()
        if terminal_id is None:
            n = len(s.scalars(select(Terminal.id).where(Terminal.canteen_id == canteen_id)).all())
            terminal_id = f"{canteen_id}-T{n + 1}"
            while s.get(Terminal, terminal_id) is not None:
                n += 1
                terminal_id = f"{canteen_id}-T{n + 1}"
        elif s.get(Terminal, terminal_id) is not None:
            raise ValidationError(f"终端 {terminal_id} 已存在", detail=f"terminal {terminal_id!r} exists")
        s.add(Terminal(id=terminal_id, canteen_id=canteen_id, name=name, token_hash=hash_token(token)))
        audit.record(s, actor, "terminal.add", terminal_id, canteen_id=canteen_id, name=name)
    return TerminalIdentity(terminal_id, canteen_id, name), token


def revoke_terminal(app: App, terminal_id: str, *, actor: str = "system") -> dict:
    with app.db.session() as s:
        t = s.get(Terminal, terminal_id)
        if t is None:
            raise NotFoundError(f"没有编号为 {terminal_id} 的终端", detail=f"terminal {terminal_id!r} not found")
        already = t.revoked_at is not None
        if not already:
            t.revoked_at = utcnow()
            audit.record(s, actor, "terminal.revoke", terminal_id, canteen_id=t.canteen_id)
        return {"terminal_id": terminal_id, "canteen_id": t.canteen_id, "revoked": True,
                "already_revoked": already}


def list_terminals(app: App) -> list[dict]:
    from kiosk.timeutil import CST

    def iso(d: datetime | None) -> str | None:
        return d.astimezone(CST).isoformat(timespec="seconds") if d else None

    with app.db.session() as s:
        rows = s.scalars(select(Terminal).order_by(Terminal.canteen_id, Terminal.id)).all()
        return [{"terminal_id": t.id, "canteen_id": t.canteen_id, "name": t.name,
                 "revoked": t.revoked_at is not None, "created_at": iso(t.created_at),
                 "last_seen_at": iso(t.last_seen_at), "last_push_at": iso(t.last_push_at),
                 "last_pull_at": iso(t.last_pull_at), "pulled_version": t.pulled_version,
                 "pending": t.pending, "software_version": t.software_version, "model": t.model,
                 "disk_free_bytes": t.disk_free_bytes, "camera_state": t.camera_state,
                 "camera_since": iso(t.camera_since), "last_sale_at": iso(t.last_sale_at),
                 "health_at": iso(t.health_at)}
                for t in rows]


def claim_terminal(s, token_hash: str, *, pending: int | None = None, software: str | None = None,
                   model: str | None = None) -> TerminalIdentity:
    """Inside a push's transaction: the unrevoked terminal of this token. One UPDATE ...
    RETURNING checks the token, writes last_seen_at/last_push_at (and what the terminal
    reported) and locks the terminal's row until the push commits."""
    now = utcnow()
    values: dict = {"last_seen_at": now, "last_push_at": now}
    if pending is not None and pending < 2 ** 31:
        values["pending"] = pending
    if software:
        values["software_version"] = software[:40]
    if model:
        values["model"] = model[:200]
    t = Terminal.__table__
    row = s.execute(update(t).where(t.c.token_hash == token_hash, t.c.revoked_at.is_(None)).values(**values)
                    .returning(t.c.id, t.c.canteen_id, t.c.name)).first()
    if row is None:
        known = s.execute(select(t.c.id).where(t.c.token_hash == token_hash)).first()
        if known is None:
            raise TerminalAuthError(detail="unknown terminal token")
        raise TerminalAuthError("此终端的令牌已被吊销，请联系区管理员", detail=f"terminal {known[0]} revoked")
    return TerminalIdentity(row[0], row[1], row[2])


STALE_AFTER = timedelta(hours=1)      # a terminal silent this long during a meal is shown with a warning


def stale_in_meal_time(last_sync: datetime | None, created_at: datetime | None, now: datetime,
                       windows: dict | None = None, after: timedelta = STALE_AFTER) -> str | None:
    """The console's warning for a terminal that has not synced for ``after`` while its
    canteen is serving a meal (the canteen's meal windows, China Standard Time), or None.
    A terminal that never synced is warned about once it has been registered that long."""
    from kiosk.billing.meals import meal_at

    meal = meal_at(now, windows)
    if meal is None:
        return None
    since = last_sync or created_at
    if since is None or now - since <= after:
        return None
    hours = (now - since).total_seconds() / 3600
    what = "从未同步" if last_sync is None else f"已 {hours:.1f} 小时未同步"
    return f"{what}（{meal}时间），请检查终端的网络和电源"

