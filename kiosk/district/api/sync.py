"""The terminals' API (prefix /api/v1). Every route but /ping needs a terminal token."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import weakref

import anyio
import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from kiosk import __version__
from kiosk.services.context import App
from kiosk.district.api.deps import get_app
from kiosk.db.models import Terminal, utcnow
from kiosk.district.api.deps import bearer_hash, current_terminal, reported
from kiosk.district.api.ops import count_push
from kiosk.district.domain.terminals import TerminalIdentity

router = APIRouter()
log = logging.getLogger("kiosk.district")


@router.get("/ping")
def ping() -> dict:
    """Liveness of the server (no data)."""
    return {"ok": True, "service": "kiosk-district", "software_version": __version__}


@router.get("/whoami")
def whoami(term: TerminalIdentity = Depends(current_terminal), app: App = Depends(get_app)) -> dict:
    from kiosk.db.changes import current_version

    with app.db.session(read_only=True) as s:
        v = current_version(s)
    return {"terminal_id": term.terminal_id, "canteen_id": term.canteen_id, "name": term.name,
            "server_version": v}


def _templates_allowed(request: Request) -> bool:
    """Templates travel only over TLS (served directly, or by a proxy on this machine that
    says so) or to a terminal on this machine; --insecure-templates overrides, loudly."""
    st = request.app.state
    client = request.client.host if request.client else ""
    local = _is_loopback(client)
    if st.tls or request.url.scheme == "https":
        return True
    if local and request.headers.get("x-forwarded-proto", "").lower() == "https":
        return True
    if local and "x-forwarded-for" not in request.headers:
        return True
    if st.insecure_templates:
        log.warning("!!! sending FACE TEMPLATES over plain HTTP to %s (--insecure-templates) !!!", client)
        return True
    log.warning("face templates withheld from %s: plain HTTP to another machine (put TLS in front; "
                "docs/district.md)", client)
    return False


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


@router.get("/changes")
def changes_feed(request: Request, since: int = Query(0, ge=0, le=2 ** 62),
                 cursor: str | None = Query(None, max_length=200, pattern=r"^[0-9]{1,18}:"),
                 limit: int = Query(1000, ge=1, le=5000), term: TerminalIdentity = Depends(current_terminal),
                 app: App = Depends(get_app)) -> Response:
    """District records changed since ``since`` (0: a snapshot, paged with ``cursor``)."""
    from kiosk.district.domain.feed import page

    allowed = _templates_allowed(request)
    with app.db.session(read_only=True) as s:
        out = page(app, s, term.canteen_id, since, cursor, limit, allowed)
    if not out["more"]:      # the console's "last sync"; an idle terminal writes it at most every 10 s
        with app.db.session() as s:
            t = s.get(Terminal, term.terminal_id)
            now = utcnow()
            if t is not None and (t.pulled_version != out["since"] or t.last_pull_at is None
                                  or (now - t.last_pull_at).total_seconds() > 10):
                t.last_pull_at = now
                t.pulled_version = out["since"]
    # plain json.dumps: FastAPI's encoder walks every value and is several times slower on a 10^5 pull
    return Response(json.dumps(out, ensure_ascii=False, separators=(",", ":")), media_type="application/json")


MAX_PUSH_OPS = 500


# the push body as the OpenAPI schema says it (the route reads it itself: no validation
# model, each op checked where it is applied; the fuzz tests generate bodies from this)
_OP_SCHEMA = {
    "type": "object", "required": ["op_id", "payload"],
    "properties": {
        "op_id": {"type": "string", "minLength": 1, "maxLength": 36},
        "kind": {"type": "string", "maxLength": 40},
        "created_at": {"type": "string", "format": "date-time"},
        "payload": {"type": "object", "properties": {
            "rows": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object"}}},
            "deleted": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            "ops": {"type": "array", "items": {"type": "object"}}}},
    },
}
PUSH_OPENAPI = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["ops"],
    "properties": {"ops": {"type": "array", "maxItems": 500, "items": _OP_SCHEMA}}}}}}}


@router.post("/push", openapi_extra=PUSH_OPENAPI)
async def push(request: Request, app: App = Depends(get_app)) -> Response:
    """Apply a terminal's outbox operations (each once, in order): ``{"ops": [...]}``,
    at most 500. Before the body is read: no token, or a token no unrevoked terminal holds,
    is refused (401); a body over KIOSK_PUSH_MAX_BYTES is refused (413,
    kiosk.district.api.limits). The body is plain JSON nested at most MAX_JSON_DEPTH deep
    (400); an op of the wrong shape is rejected alone (``limits.op_problem``), the others
    go to the push, which checks the token again in its own transaction
    (``auth.claim_terminal``: a terminal revoked meanwhile is refused and nothing applied)
    and each op where it is applied (a bad one is kept as rejected with its reason)."""
    from kiosk.errors import DistrictError, TerminalAuthError
    from kiosk.district.api import limits
    from kiosk.district.domain.push import apply_push

    token_hash = bearer_hash(request)          # no token: 401 before the body is read
    await limits.known_token(request, app, token_hash)
    body = limits.parse_json(await limits.read_body(request, app.settings.push_max_bytes))
    ops = body.get("ops") if isinstance(body, dict) else None
    if not isinstance(ops, list) or len(ops) > MAX_PUSH_OPS or not all(isinstance(o, dict) for o in ops):
        raise DistrictError("上传的数据格式不对", detail=f'expected {{"ops": [op, ...]}} with at most {MAX_PUSH_OPS} ops')
    problems = [limits.op_problem(o) for o in ops]
    good = [o for o, p in zip(ops, problems) if p is None]
    refused = [(i, o, p) for i, (o, p) in enumerate(zip(ops, problems)) if p is not None]

    def work():
        results, version, term = apply_push(app, token_hash, good, **reported(request))
        answers = iter(results)
        out = limits.record_rejected(app, term.terminal_id, refused) if refused else {}
        return [out[i] if i in out else next(answers) for i in range(len(ops))], version

    try:
        results, version = await anyio.to_thread.run_sync(work, limiter=_push_limiter())
    except TerminalAuthError:
        count_push(None)                                    # /metrics
        limits.forget_token(request, token_hash)
        raise
    except Exception:
        count_push(None)
        raise
    count_push(results)
    return Response(orjson.dumps({"results": results, "server_version": version}), media_type="application/json")


# pushes applied at once by one server process (each holds a database connection: the
# pool keeps 5). More only contend for the same cores and the residents' row locks; a
# push beyond it waits for a free slot (its latency counts the wait).
PUSH_CONCURRENCY = 4
_LIMITERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _push_limiter() -> anyio.CapacityLimiter:
    """The push slots of this process's event loop (one per loop: test clients run several)."""
    loop = asyncio.get_running_loop()
    lim = _LIMITERS.get(loop)
    if lim is None:
        lim = _LIMITERS[loop] = anyio.CapacityLimiter(PUSH_CONCURRENCY)
    return lim
