"""The audit log's hash chain, pure: each entry's hash covers the previous entry's
hash and the entry's own canonical JSON, so an edited, removed or inserted entry
breaks every link after it. Used by kiosk.db.audit and by migration 0003."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

GENESIS = "0" * 64      # the "previous hash" of the first entry


def normalize_detail(detail: dict | None) -> dict | None:
    """The detail as the database gives it back (JSON types only), so that the hash
    computed at append time equals the one recomputed when verifying."""
    if not detail:
        return None
    return json.loads(json.dumps(detail, ensure_ascii=False, default=str))


def canonical(seq: int, entry_id: str, at: datetime, actor: str, action: str,
              subject: str | None, detail: dict | None) -> bytes:
    at_utc = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"seq": int(seq), "id": entry_id, "at": at_utc, "actor": actor, "action": action,
                       "subject": subject, "detail": detail},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def link(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body).hexdigest()
