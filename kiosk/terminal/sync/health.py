"""What a terminal reports to the district server about itself at every sync: software
version, face model, disk free in KIOSK_HOME, camera state and its last sale.

The camera is the kiosk UI's (``kiosk run``); it records each change of state here
(``record_camera``), in the replica's ``sync_state`` table, so the sync loop of the
kiosk and a `kiosk sync` run from a shell both report the last state the camera was
in. A terminal whose kiosk has never run reports ``unknown``.

The headers (``X-Kiosk-*``) are read by the server in kiosk/district/api/deps.py
``reported_health``."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from kiosk import __version__
from kiosk.db.models import Order, SyncState, utcnow

CAMERA_STATES = ("live", "reconnecting", "lost", "error", "stopped", "unknown")


@dataclass(frozen=True)
class TerminalHealth:
    software: str
    model: str
    disk_free_bytes: int | None
    camera: str
    camera_since: datetime | None
    last_sale_at: datetime | None

    def headers(self) -> dict[str, str]:
        h = {"X-Kiosk-Software": self.software, "X-Kiosk-Model": self.model, "X-Kiosk-Camera": self.camera}
        if self.disk_free_bytes is not None:
            h["X-Kiosk-Disk-Free"] = str(self.disk_free_bytes)
        if self.camera_since is not None:
            h["X-Kiosk-Camera-Since"] = self.camera_since.isoformat()
        if self.last_sale_at is not None:
            h["X-Kiosk-Last-Sale"] = self.last_sale_at.isoformat()
        return h


def face_model(app) -> str:
    """The face model this terminal identifies with: the backend, its recognizer and the
    start of the recognizer's SHA-256 (as kiosk.vision's ModelContract names it), read
    from the model manifest (no model is loaded)."""
    backend = app.settings.backend
    try:
        from pathlib import Path

        from kiosk.vision.modelpacks import get_pack

        rec = get_pack(backend).file("recognizer")
        return f"{backend}/{Path(rec.name).stem}@{rec.sha256[:12]}"
    except Exception:  # noqa: BLE001 - a report must not fail for a manifest without the entry
        return backend


def record_camera(app, state: str) -> None:
    """The kiosk's camera changed state (live, reconnecting, lost, error, stopped)."""
    from kiosk.db import changes

    state = state if state in CAMERA_STATES else "unknown"
    with app.db.session() as s:
        s.info[changes.APPLY] = True          # bookkeeping, not a change for the outbox
        row = s.get(SyncState, "camera")
        value = {"state": state, "since": utcnow().isoformat()}
        if row is None:
            s.add(SyncState(key="camera", value=value))
        elif (row.value or {}).get("state") != state:
            row.value = value


def last_sale(app) -> datetime | None:
    """This canteen's newest order in the replica (a scan of its orders: the sync client
    asks only after new sales or every few minutes)."""
    from datetime import timezone

    with app.db.session(read_only=True) as db:
        last = db.scalar(select(func.max(Order.created_at)).where(Order.canteen_id == app.settings.canteen_id))
    if isinstance(last, str):                          # SQLite's max() bypasses the column type
        last = datetime.fromisoformat(last)
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=timezone.utc)
    return last


_LOOK_UP = object()


def collect(app, last_sale_at: "datetime | None | object" = _LOOK_UP) -> TerminalHealth:
    """This terminal's health now (``last_sale_at``: known already, None for no sale;
    by default looked up)."""
    s = app.settings
    try:
        free = shutil.disk_usage(s.home).free
    except OSError:
        free = None
    with app.db.session(read_only=True) as db:
        cam = (db.get(SyncState, "camera") or SyncState(value=None)).value or {}
    since = None
    if cam.get("since"):
        try:
            since = datetime.fromisoformat(cam["since"])
        except ValueError:
            since = None
    return TerminalHealth(software=__version__, model=face_model(app), disk_free_bytes=free,
                          camera=cam.get("state") or "unknown", camera_since=since,
                          last_sale_at=last_sale(app) if last_sale_at is _LOOK_UP else last_sale_at)
