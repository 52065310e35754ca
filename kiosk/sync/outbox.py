"""The services' one hook into the district: ``record(app, session, kind, **meta)``.

Called inside the unit of work that made a change (a sale, a void, a top-up, an
enrolment, an erasure). On a terminal it names the outbox row that the commit writes
in the same transaction (kiosk.db.changes gathers the rows written); on the server it
notes the district records changed by writes the ORM cannot see (bulk deletes). On a
single machine it costs a dictionary update."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db.models import OutboxEntry
from ..db import changes

# which district record an operation changes, by the resident it names (for bulk writes)
_TOUCHES = {"faces.erase": "faces", "faces.remove": "faces", "faces.enroll": "faces"}


def record(app, session: Session, kind: str, **meta: object) -> None:
    if session.info.get(changes.APPLY):
        return
    session.info.setdefault(changes.OPS, []).append((kind, {k: v for k, v in meta.items() if v is not None}))
    if app.settings.is_terminal:
        session.info[changes.TERMINAL] = True
        if kind == "faces.erase" and meta.get("resident_id"):
            _scrub_pending_templates(session, str(meta["resident_id"]))
    else:
        entity = _TOUCHES.get(kind)
        rids = [meta["resident_id"]] if meta.get("resident_id") else []
        if entity and meta.get("template_ids"):     # called before the bulk delete: look the owners up
            from ..db.models import FaceTemplate
            rids += list(session.scalars(select(FaceTemplate.resident_id).distinct()
                                         .where(FaceTemplate.id.in_(list(meta["template_ids"])))))
        for rid in rids if entity else ():
            changes.touch(session, entity, str(rid))


def pending_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(OutboxEntry)
                              .where(OutboxEntry.status == "pending")) or 0)


def _scrub_pending_templates(session: Session, resident_id: str) -> None:
    """An erasure on a terminal also takes the resident's templates out of outbox rows
    not yet pushed (the enrolment still goes, without them): erased means erased here too."""
    for e in session.scalars(select(OutboxEntry).where(OutboxEntry.status.in_(("pending", "rejected")))):
        rows = (e.payload or {}).get("rows") or {}
        tpl = rows.get("face_templates") or []
        keep = [t for t in tpl if t.get("resident_id") != resident_id]
        if len(keep) != len(tpl):
            e.payload = {**e.payload, "rows": {**rows, "face_templates": keep}}
