"""What a terminal's request may cost the district server.

* The token is checked before a push body is read (``known_token``): a request without a
  valid, unrevoked token is answered 401 with its body unread.
* A body over ``KIOSK_PUSH_MAX_BYTES`` (default 4 MB) is answered 413: by its
  Content-Length before a byte is read, a chunked body while it streams (``read_body``).
* JSON nested deeper than ``MAX_JSON_DEPTH`` is answered 400 before it is parsed into
  Python objects (``json_depth``: a vectorised scan of the bytes, ~0.1 ms for a push of 10
  sales); orjson parses the rest.
* An op whose payload has the wrong shape (``op_problem``: a row that is not an object, a
  list where a single value belongs, ...) is rejected alone, before the push applies the
  batch; the rest of the batch is applied (``record_rejected`` keeps it, with its reason,
  in ``applied_ops`` as the push does with the ops it refuses).
"""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import numpy as np
from starlette.requests import ClientDisconnect, Request

from kiosk.errors import DistrictError, PayloadTooLargeError, TerminalAuthError

# {"ops": [op{payload{rows{table[row{detail{...: a terminal's op goes 8 deep; audit details
# a few more. orjson itself stops at 1024, deeper than Python's json (the store's JSON
# columns) can write back.
MAX_JSON_DEPTH = 32
# a valid token is looked up again after this long (a revoked one is refused by the push's
# own transaction anyway; this only spares valid terminals a lookup before every push)
TOKEN_RECHECK_S = 30.0
_TOKEN_CACHE_MAX = 10_000

SCALARS = (str, int, float, bool, type(None))


# -- the token, before the body ---------------------------------------------------------

def _token_state(app, token_hash: str) -> tuple[str, bool] | None:
    """(terminal id, revoked) of a token hash, or None when no terminal has it."""
    from sqlalchemy import select

    from kiosk.db.models import Terminal

    with app.db.session(read_only=True) as s:
        row = s.execute(select(Terminal.id, Terminal.revoked_at).where(Terminal.token_hash == token_hash)).first()
    return None if row is None else (row[0], row[1] is not None)


async def known_token(request: Request, app, token_hash: str) -> None:
    """Refuse (401) a token no unrevoked terminal holds, before the request's body is read.
    Valid tokens are remembered for TOKEN_RECHECK_S per server app; unknown ones never."""
    import anyio

    cache = getattr(request.app.state, "valid_tokens", None)
    if cache is None:
        cache = request.app.state.valid_tokens = {}
    now = time.monotonic()
    if cache.get(token_hash, 0.0) > now:
        return
    state = await anyio.to_thread.run_sync(_token_state, app, token_hash)
    if state is None:
        raise TerminalAuthError(detail="unknown terminal token")
    if state[1]:
        raise TerminalAuthError("此终端的令牌已被吊销，请联系区管理员", detail=f"terminal {state[0]} revoked")
    if len(cache) >= _TOKEN_CACHE_MAX:
        cache.clear()
    cache[token_hash] = now + TOKEN_RECHECK_S


def forget_token(request: Request, token_hash: str) -> None:
    """The push found the token revoked after all: look it up again next time."""
    getattr(request.app.state, "valid_tokens", {}).pop(token_hash, None)


# -- the body ---------------------------------------------------------------------------

def _too_large(limit: int, detail: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"上传的数据超过 {limit // 1024} KB，请分批上传",
                                detail=f"{detail}; KIOSK_PUSH_MAX_BYTES={limit}")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes: a larger Content-Length is refused before
    anything is read; a body without one (chunked) is counted as it arrives and cut off
    at the limit. Either way 413 (PayloadTooLargeError)."""
    cl = request.headers.get("content-length")
    if cl is not None:
        if not (cl.isascii() and cl.isdigit()):
            raise DistrictError("请求头 Content-Length 不对", detail=f"bad Content-Length {cl[:40]!r}")
        if int(cl) > limit:
            raise _too_large(limit, f"Content-Length {int(cl)} bytes")
    buf = bytearray()
    try:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise _too_large(limit, f"body longer than {limit} bytes")
    except ClientDisconnect:
        raise DistrictError("上传中断", detail="the client went away while sending the body") from None
    return bytes(buf)


_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def json_depth(raw: bytes) -> int:
    """How deep the JSON text ``raw`` nests (``[]`` and ``{}``; 0 for a bare value), without
    building it. Escaped backslashes and quotes are dropped first, so every remaining
    ``"`` opens or closes a string; a bracket inside a string has an odd number of quotes
    before it. Meant for text orjson accepts (for other text it gives some number)."""
    s = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    a = np.frombuffer(s, dtype=np.uint8)
    step = _OPEN[a]
    at = np.flatnonzero(step)
    if at.size == 0:
        return 0
    quotes = np.flatnonzero(a == ord('"'))
    outside = (np.searchsorted(quotes, at) & 1) == 0
    return int(np.cumsum(step[at[outside]], dtype=np.int64).max(initial=0))


def parse_json(raw: bytes) -> Any:
    """The body as Python values: 400 when it is not JSON or nests deeper than MAX_JSON_DEPTH."""
    import orjson

    try:
        body = orjson.loads(raw)
    except ValueError:
        raise DistrictError("上传的数据不是 JSON", detail="push body is not JSON (or nests deeper than 1024)") from None
    if isinstance(body, (dict, list)) and json_depth(raw) > MAX_JSON_DEPTH:
        raise DistrictError("上传的数据嵌套太深", detail=f"push body nests deeper than {MAX_JSON_DEPTH}")
    return body


# -- the shape of one op ----------------------------------------------------------------

@lru_cache(maxsize=1)
def _json_columns() -> dict[str, frozenset[str]]:
    """Per table, the columns whose value may be an object or a list (JSON columns)."""
    from sqlalchemy import JSON

    from kiosk.db.models import Base

    return {t.name: frozenset(c.name for c in t.columns if isinstance(c.type, JSON))
            for t in Base.metadata.tables.values()}


def _aware(v: Any):
    """An ISO time with its zone as a datetime, else None."""
    from datetime import datetime

    try:
        t = datetime.fromisoformat(v)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo is not None else None


def _scalars(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, SCALARS) and not isinstance(x, float) for x in v)


def op_problem(op: dict) -> str | None:
    """Why an op cannot be what a terminal's outbox writes, or None. Checks the shape only
    (objects, lists and single values where the outbox puts them); the values are the
    push's to check (kiosk.district.domain.push)."""
    if not isinstance(op.get("kind"), (str, type(None))):
        return "kind is not text"
    if op.get("created_at") and _aware(op["created_at"]) is None:
        return "created_at is not a time with its zone"
    payload = op.get("payload")
    if not isinstance(payload, dict):
        return "payload is not an object"
    rows = payload.get("rows")
    if rows is not None:
        if not isinstance(rows, dict):
            return "payload.rows is not an object"
        json_cols = _json_columns()
        for table, items in rows.items():
            if not isinstance(items, list):
                return f"rows.{table} is not a list"
            allowed = json_cols.get(table, frozenset())
            for row in items:
                if not isinstance(row, dict):
                    return f"rows.{table}: a row is not an object"
                for k, v in row.items():
                    if not isinstance(v, SCALARS) and k not in allowed:
                        return f"rows.{table}.{k} is not a single value"
    deleted = payload.get("deleted")
    if deleted is not None:
        if not isinstance(deleted, dict):
            return "payload.deleted is not an object"
        for table, ids in deleted.items():
            if not _scalars(ids):
                return f"deleted.{table} is not a list of ids"
    metas = payload.get("ops")
    if metas is not None:
        if not isinstance(metas, list):
            return "payload.ops is not a list"
        for m in metas:
            if not isinstance(m, dict):
                return "payload.ops: an entry is not an object"
            for k, v in m.items():
                if k == "template_ids":
                    if v is not None and not _scalars(v):
                        return "payload.ops: template_ids is not a list of ids"
                elif not isinstance(v, SCALARS):
                    return f"payload.ops: {k} is not a single value"
    return None


def record_rejected(app, terminal_id: str, refused: list[tuple[int, dict, str]]) -> dict[int, dict]:
    """Ops refused by their shape, kept like the push keeps the ops it rejects: in
    ``applied_ops`` with status ``rejected``, the reason and the op. An op id seen before
    (or earlier in the list) is answered ``duplicate`` with what became of it; an op
    without a usable id is answered ``rejected`` and not kept. Returns position -> result."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from kiosk.db.models import AppliedOp

    out: dict[int, dict] = {}
    with app.db.session() as s:
        for pos, op, reason in refused:
            op_id = op.get("op_id")
            if not isinstance(op_id, str) or not op_id or len(op_id) > 36:
                out[pos] = {"op_id": op_id if isinstance(op_id, str) else None, "status": "rejected",
                            "error": f"bad op id; {reason}"}
                continue
            was = s.scalar(select(AppliedOp.status).where(AppliedOp.op_id == op_id))
            if was is not None:
                out[pos] = {"op_id": op_id, "status": "duplicate", "was": was}
                continue
            created = _aware(op.get("created_at"))
            sp = s.begin_nested()
            try:
                s.add(AppliedOp(op_id=op_id, terminal_id=terminal_id, kind=str(op.get("kind") or "")[:40],
                                status="rejected", error=reason[:2000], payload=op, created_at=created))
                s.flush()
                sp.commit()
            except IntegrityError:          # the same op in a push of this terminal at this moment
                sp.rollback()
                out[pos] = {"op_id": op_id, "status": "duplicate", "was": "rejected"}
                continue
            out[pos] = {"op_id": op_id, "status": "rejected", "error": reason[:500]}
    return out
