"""The terminals' API (prefix /api/v1). Every route but /ping needs a terminal token."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from .. import __version__
from ..services.context import App
from .app import get_app
from .auth import TerminalIdentity, current_terminal

router = APIRouter()


@router.get("/ping")
def ping() -> dict:
    """Liveness of the server (no data)."""
    return {"ok": True, "service": "kiosk-district", "software_version": __version__}


@router.get("/whoami")
def whoami(term: TerminalIdentity = Depends(current_terminal), app: App = Depends(get_app)) -> dict:
    from ..sync.changes import current_version

    with app.db.session(read_only=True) as s:
        v = current_version(s)
    return {"terminal_id": term.terminal_id, "canteen_id": term.canteen_id, "name": term.name,
            "server_version": v}
