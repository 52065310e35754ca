"""The terminal's sync status for the staff screen, and the background sync loop.

``sync_status(app)`` returns a ``SyncStatus`` (None when this machine is not a terminal).
``start_background_sync(app)`` starts one daemon thread per App that syncs every
``KIOSK_SYNC_INTERVAL_S`` seconds (default 5); it never raises into the caller: an
unreachable server only sets ``online=False`` and ``offline_since``.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from kiosk.errors import KioskError
from kiosk.timeutil import CST

log = logging.getLogger("kiosk.terminal.sync")


@dataclass(frozen=True)
class SyncStatus:
    online: bool
    offline_since: datetime | None
    last_sync: datetime | None
    pending: int
    server_version: int | None
    rejected: int = 0              # outbox ops the server refused (kept, staff should call the office)
    warning: str | None = None     # e.g. templates withheld over plain http; a revoked token


def sync_status(app) -> SyncStatus | None:
    if not app.settings.is_terminal:
        return None
    from sqlalchemy import func, select

    from kiosk.db.models import OutboxEntry
    from kiosk.terminal.sync.client import get_state, parse_time

    with app.db.session(read_only=True) as s:
        counts = dict(s.execute(select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all())
        off = parse_time(get_state(s, "offline_since"))
        last = parse_time(get_state(s, "last_sync"))
        ver = get_state(s, "server_version")
        warning = get_state(s, "warning")
    loop = _LOOPS.get(id(app))
    if loop is not None and loop.error is not None:
        warning = loop.error
    from kiosk.billing.offline import offline_for
    from kiosk.db.models import utcnow

    # offline as the checkout counts it (kiosk.billing.offline): a failed sync, or none for too long
    gone = offline_for(utcnow(), last, off, app.settings.sync_interval_s)
    return SyncStatus(online=gone is None and last is not None,
                      offline_since=off.astimezone(CST) if off else None,
                      last_sync=last.astimezone(CST) if last else None,
                      pending=int(counts.get("pending", 0)), server_version=ver,
                      rejected=int(counts.get("rejected", 0)), warning=warning)


class SyncLoop:
    def __init__(self, app, interval: float) -> None:
        self.app = app
        self.interval = interval
        self.error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="kiosk-sync", daemon=True)

    def _run(self) -> None:
        from kiosk.terminal.sync.client import SyncClient
        from kiosk.errors import ServerUnreachableError

        client = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = SyncClient(self.app)
                rep = client.sync()
                self.error = rep.warning
            except ServerUnreachableError as exc:
                self.error = None
                log.info("district server unreachable: %s", exc.detail)
            except KioskError as exc:
                self.error = exc.user_message
                log.warning("sync failed: %s", exc)
            except Exception:   # noqa: BLE001 - the loop must outlive any one bad round
                log.exception("sync round failed")
            self._wake.wait(self.interval)
            self._wake.clear()
        if client is not None:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


_LOOPS: dict[int, SyncLoop] = {}
_LOCK = threading.Lock()


def start_background_sync(app) -> SyncLoop | None:
    """Start the sync loop for this App (once); None when not a terminal."""
    if not app.settings.is_terminal:
        return None
    with _LOCK:
        loop = _LOOPS.get(id(app))
        if loop is None:
            loop = _LOOPS[id(app)] = SyncLoop(app, app.settings.sync_interval_s)
            loop.thread.start()
        return loop


def stop_background_sync(app) -> None:
    with _LOCK:
        loop = _LOOPS.pop(id(app), None)
    if loop is not None:
        loop.stop()
