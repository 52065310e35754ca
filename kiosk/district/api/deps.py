"""FastAPI dependencies of the district server: the App context and the terminal a
request comes from (its valid, unrevoked token)."""
from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import Depends, Request
from sqlalchemy import select

from kiosk.db.models import Terminal, utcnow
from kiosk.district.domain.terminals import SEEN_EVERY, TerminalIdentity, hash_token
from kiosk.errors import TerminalAuthError
from kiosk.services.context import App


def get_app(request: Request) -> App:
    """The server's App context (settings, store, services)."""
    return request.app.state.kiosk_app


def _bearer(request: Request) -> str | None:
    h = request.headers.get("authorization", "")
    if h[:7].lower() == "bearer ":
        return h[7:].strip() or None
    return None


def bearer_hash(request: Request) -> str:
    """The SHA-256 of the request's token (401 when there is none)."""
    token = _bearer(request)
    if not token:
        raise TerminalAuthError("请求没有终端令牌", detail="missing Authorization: Bearer <token>")
    return hash_token(token)


def reported(request: Request) -> dict:
    """What a terminal reports in its headers: outbox rows waiting, software, face model."""
    pending = request.headers.get("x-kiosk-pending")
    return {"pending": int(pending) if pending is not None and pending.isascii() and pending.isdigit() else None,
            "software": request.headers.get("x-kiosk-software") or None,
            "model": request.headers.get("x-kiosk-model") or None}


def _aware_time(v: str | None) -> datetime | None:
    if not v or len(v) > 40:
        return None
    try:
        d = datetime.fromisoformat(v)
    except ValueError:
        return None
    return d if d.tzinfo is not None else None


def reported_health(request: Request) -> dict:
    """The terminal's health headers (kiosk/terminal/sync/health.py): disk free in bytes, the
    kiosk camera's state and since when, its last sale. A value that does not parse is
    left out (None), never stored."""
    h = request.headers
    disk = h.get("x-kiosk-disk-free")
    camera = (h.get("x-kiosk-camera") or "").strip().lower()
    return {"disk_free_bytes": int(disk) if disk and disk.isascii() and disk.isdigit() and len(disk) < 19 else None,
            "camera_state": camera if camera.isascii() and camera.isalpha() and len(camera) <= 20 else None,
            "camera_since": _aware_time(h.get("x-kiosk-camera-since")),
            "last_sale_at": _aware_time(h.get("x-kiosk-last-sale"))}


HEALTH_EVERY = timedelta(seconds=60)    # a terminal's health is written at most this often


def current_terminal(request: Request, app: App = Depends(get_app)) -> TerminalIdentity:
    """FastAPI dependency: the terminal whose valid, unrevoked token came with the request."""
    h = bearer_hash(request)
    now = utcnow()
    with app.db.session() as s:
        t = s.scalars(select(Terminal).where(Terminal.token_hash == h)).first()
        if t is None:
            raise TerminalAuthError(detail="unknown terminal token")
        if t.revoked_at is not None:
            raise TerminalAuthError("此终端的令牌已被吊销，请联系区管理员", detail=f"terminal {t.id} revoked")
        ident = TerminalIdentity(t.id, t.canteen_id, t.name)
        rep = reported(request)
        pending = rep["pending"] if rep["pending"] is not None and rep["pending"] < 2 ** 31 else None
        if t.last_seen_at is None or now - t.last_seen_at > SEEN_EVERY or (pending is not None and pending != t.pending):
            t.last_seen_at = now
            if pending is not None:
                t.pending = pending
            if rep["software"]:
                t.software_version = rep["software"][:40]
            if rep["model"]:
                t.model = rep["model"][:200]
        health = reported_health(request)
        if any(v is not None for v in health.values()) and (
                t.health_at is None or now - t.health_at > HEALTH_EVERY
                or (health["camera_state"], health["last_sale_at"]) != (t.camera_state, t.last_sale_at)):
            t.health_at = now
            for k, v in health.items():
                setattr(t, k, v)
    return ident
