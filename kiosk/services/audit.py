"""The audit log: who did what, when."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import AuditEntry


def record(session: Session, actor: str, action: str, subject: str | None = None,
           **detail: object) -> AuditEntry:
    entry = AuditEntry(actor=actor, action=action, subject=subject, detail=detail or None)
    session.add(entry)
    return entry


def entries_since(session: Session, since: datetime | None = None) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.at)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    return list(session.scalars(q))
