"""FastAPI dependencies of the district server: the App context and the terminal a
request comes from (its valid, unrevoked token)."""
from __future__ import annotations

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
    return ident
