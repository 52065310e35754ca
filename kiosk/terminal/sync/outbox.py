"""The terminal's outbox: what its units of work wrote, waiting to be pushed.

The rows are written by the store's change tracking (kiosk.db.changes) in the same
transaction as the sale, from what the core published (kiosk.services.events)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.db.models import OutboxEntry


def pending_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(OutboxEntry)
                              .where(OutboxEntry.status == "pending")) or 0)
