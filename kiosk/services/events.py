"""The core's one port for what changed: ``app.events.publish(session, kind, **meta)``.

The domain services call it inside the unit of work that made a change (``order.settle``,
``order.void``, ``account.topup``, ``faces.enroll``, ``faces.remove``, ``faces.erase``,
``catalogue.changed``); changes applied by a pull from the district server are told to the
subscribers with ``app.events.notify`` (``catalogue.changed``, ``faces.pulled``). The store's change tracking (kiosk.db.changes) turns the unit of
work into what this deployable keeps of it: on a terminal one outbox row, written in the
same transaction as the sale; on the district server change-log rows that terminals pull.
Subscribers (caches such as the face gallery) hear of every event after its commit, so
nothing invalidates a cache by reaching into another module's globals.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from kiosk.db import changes
from kiosk.db.models import FaceTemplate, OutboxEntry

log = logging.getLogger("kiosk.events")

CATALOGUE_CHANGED = "catalogue.changed"   # menus, the subsidy policy or the canteen's settings
FACES_PULLED = "faces.pulled"             # templates changed by a pull from the district server

# which district record an operation changes, by the resident it names (for bulk writes)
_TOUCHES = {"faces.erase": "faces", "faces.remove": "faces", "faces.enroll": "faces"}
_PENDING = "kiosk_events_pending"


@dataclass(frozen=True)
class Change:
    """One committed change, as subscribers hear of it."""
    kind: str
    meta: dict


Subscriber = Callable[[Change], None]


class ChangeEvents:
    """Publishes what the core changed, to the store's change tracking and to subscribers."""

    def __init__(self, *, terminal: bool) -> None:
        self.terminal = terminal            # this store is a terminal's replica (it keeps an outbox)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def publish(self, session: Session, kind: str, **meta: object) -> None:
        clean = {k: v for k, v in meta.items() if v is not None}
        if not session.info.get(changes.APPLY):
            _track(session, kind, clean, self.terminal)
        pending = session.info.get(_PENDING)
        if pending is None:
            pending = session.info[_PENDING] = []
            event.listen(session, "after_commit", self._after_commit, once=True)
            event.listen(session, "after_rollback", _forget, once=True)
        pending.append(Change(kind, clean))

    def notify(self, change: Change) -> None:
        """Tell the subscribers of a change made outside a session of this process (a pull)."""
        for fn in list(self._subscribers):
            try:
                fn(change)
            except Exception:       # a cache that fails to refresh must not undo a committed sale
                log.exception("subscriber %r failed on %s", fn, change.kind)

    def _after_commit(self, session: Session) -> None:
        for change in session.info.pop(_PENDING, None) or []:
            self.notify(change)


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _track(session: Session, kind: str, meta: dict, terminal: bool) -> None:
    session.info.setdefault(changes.OPS, []).append((kind, meta))
    if terminal:
        session.info[changes.TERMINAL] = True
        if kind == "faces.erase" and meta.get("resident_id"):
            _scrub_pending_templates(session, str(meta["resident_id"]))
        return
    entity = _TOUCHES.get(kind)
    rids = [meta["resident_id"]] if meta.get("resident_id") else []
    if entity and meta.get("template_ids"):     # called before the bulk delete: look the owners up
        rids += list(session.scalars(select(FaceTemplate.resident_id).distinct()
                                     .where(FaceTemplate.id.in_(list(meta["template_ids"])))))
    for rid in rids if entity else ():
        changes.touch(session, entity, str(rid))


def _scrub_pending_templates(session: Session, resident_id: str) -> None:
    """An erasure on a terminal also takes the resident's templates out of outbox rows
    not yet pushed (the enrolment still goes, without them): erased means erased here too."""
    for e in session.scalars(select(OutboxEntry).where(OutboxEntry.status.in_(("pending", "rejected")))):
        rows = (e.payload or {}).get("rows") or {}
        tpl = rows.get("face_templates") or []
        keep = [t for t in tpl if t.get("resident_id") != resident_id]
        if len(keep) != len(tpl):
            e.payload = {**e.payload, "rows": {**rows, "face_templates": keep}}
