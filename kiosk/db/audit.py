"""The audit log: who did what, when. Append-only in effect: every entry carries
the hash of the one before (kiosk.db.chain), so an entry edited, removed or slipped
in afterwards is found by ``verify``. Appends queue on the one ``audit_head`` row
(PostgreSQL row lock; SQLite's write lock), so two processes never fork the chain.

It sits with the store, below the services, so that every layer that changes data
(services, enrollment, the district server) appends through this one function."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kiosk.db.chain import GENESIS, canonical, link, normalize_detail
from kiosk.db.models import AuditEntry, AuditHead, new_id, utcnow


def record(session: Session, actor: str, action: str, subject: str | None = None,
           **detail: object) -> AuditEntry:
    """Append one entry in the caller's unit of work (it commits or rolls back with it)."""
    # take the head first: this is the lock that orders concurrent appends
    row = session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1)
                          .returning(AuditHead.seq)).first()
    if row is None:     # a store made without migration 0003's row (cannot happen after upgrade)
        session.add(AuditHead(id=1, seq=1, last_hash=GENESIS))
        session.flush()
        seq = 1
    else:
        seq = int(row[0])
    prev = session.scalar(select(AuditHead.last_hash).where(AuditHead.id == 1))
    entry_id, at, det = new_id(), utcnow(), normalize_detail(detail)
    h = link(prev, canonical(seq, entry_id, at, actor, action, subject, det))
    entry = AuditEntry(id=entry_id, at=at, actor=actor, action=action, subject=subject, detail=det,
                       seq=seq, prev_hash=prev, entry_hash=h)
    session.add(entry)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=h))
    return entry


SUBJECT_MAX = 100      # audit_log.subject's length


def record_file(session: Session, actor: str, action: str, path: Path | str, **detail: object) -> AuditEntry:
    """A file written (an export, a report): the subject is the file's name (at most
    ``SUBJECT_MAX`` characters, its end kept), the whole path goes in the detail. A path is
    as long as the folder it is in (KIOSK_HOME, a USB stick's mount point) and must not make
    the entry, and with it the export, fail."""
    return record(session, actor, action, Path(path).name[-SUBJECT_MAX:], path=str(path), **detail)


def entries_since(session: Session, since: datetime | None = None) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.seq)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    return list(session.scalars(q))


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    entries: int
    first_broken_seq: int | None = None
    first_broken_id: str | None = None
    problem: str | None = None          # what broke, in Chinese
    problem_en: str | None = None

    def to_json(self) -> dict:
        return {"intact": self.intact, "entries": self.entries, "first_broken_seq": self.first_broken_seq,
                "first_broken_id": self.first_broken_id, "problem": self.problem, "problem_en": self.problem_en}


def verify(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the chain from the first entry; the first entry whose link does not hold
    is named (an edited entry, a removed one, one slipped in, or a cut tail)."""
    prev, expected, n = GENESIS, 1, 0
    last = 0
    while True:
        rows = session.execute(select(AuditEntry.seq, AuditEntry.id, AuditEntry.at, AuditEntry.actor,
                                      AuditEntry.action, AuditEntry.subject, AuditEntry.detail,
                                      AuditEntry.prev_hash, AuditEntry.entry_hash)
                               .where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)).all()
        if not rows:
            break
        for seq, eid, at, actor, action, subject, detail, prev_hash, entry_hash in rows:
            n += 1
            if seq != expected:
                return ChainReport(False, n, seq, eid, f"第 {expected} 条到第 {seq - 1} 条记录缺失（被删除）",
                                   f"entries {expected}..{seq - 1} are missing (deleted)")
            if prev_hash != prev:
                return ChainReport(False, n, seq, eid, f"第 {seq} 条记录与前一条的链接不符（前一条被改动或插入了记录）",
                                   f"entry {seq}: prev_hash does not match the previous entry's hash")
            if link(prev, canonical(seq, eid, at, actor, action, subject, detail)) != entry_hash:
                return ChainReport(False, n, seq, eid, f"第 {seq} 条记录的内容被改动过",
                                   f"entry {seq}: content does not match its hash (edited)")
            prev, expected, last = entry_hash, seq + 1, seq
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != last or head.last_hash != prev):
        return ChainReport(False, n, last + 1 if head.seq > last else head.seq, None,
                           f"审计记录末尾被截断：应有 {head.seq} 条，只有 {last} 条" if head.seq > last
                           else "审计链的末尾记录与链头不符",
                           f"the chain head says {head.seq} entries ending in {head.last_hash[:12]}, "
                           f"the log has {last} ending in {prev[:12]}")
    return ChainReport(True, n)
