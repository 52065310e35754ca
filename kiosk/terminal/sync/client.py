"""A terminal's sync with the district server: push the outbox, then pull changes.

``SyncClient(app).sync()`` does one round (``kiosk sync`` and the kiosk's background
loop call it). Pushes go in outbox order, in batches; the server answers per op
(applied, duplicate, rejected) and only then are ops removed here, so a crash or a lost
reply means the same ops are pushed again and the server answers "duplicate".
"""
from __future__ import annotations

import base64
import ipaddress
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from urllib.parse import urlparse

import httpx
import orjson
from sqlalchemy import delete, select

from kiosk import __version__
from kiosk.db.models import OutboxEntry, SyncState, utcnow
from kiosk.db import changes
from kiosk.errors import (DistrictError, PayloadTooLargeError, ServerUnreachableError, TerminalAuthError,
                          TerminalOnlyError)
from kiosk.terminal.sync import health
from kiosk.terminal.sync.outbox import pending_count
from kiosk.terminal.sync.replica import apply_records

log = logging.getLogger("kiosk.terminal.sync")
PUSH_BATCH = 200
# a push body stays under this many bytes (the server refuses more than KIOSK_PUSH_MAX_BYTES,
# 4 MB by default, with 413): enrolments with face crops can make 200 ops several MB
PUSH_BUDGET_BYTES = 1024 * 1024
PULL_LIMIT = 2000
_ROUND_LOCK = threading.Lock()   # one sync round at a time per process


@dataclass
class SyncReport:
    pushed: int = 0
    duplicates: int = 0
    rejected: int = 0
    pulled: int = 0
    pending: int = 0
    server_version: int | None = None
    flagged: list[dict] = field(default_factory=list)
    erased: int = 0
    faces_changed: int = 0
    templates_withheld: int = 0
    warning: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def get_state(session, key: str):
    row = session.get(SyncState, key)
    return None if row is None else row.value


def set_state(session, key: str, value) -> None:
    row = session.get(SyncState, key)
    if row is None:
        session.add(SyncState(key=key, value=value))
    else:
        row.value = value


class SyncClient:
    """``KIOSK_SERVER_URL`` may list several servers over one database (comma list): a
    request that gets no answer (connection refused or reset, a timeout, HTTP 5xx) is sent
    again to the next server, and the client stays with the one that answered. A push
    repeated that way is safe: the server applies each op once and answers ``duplicate``
    for one it already has (the first server may have committed before it died)."""

    def __init__(self, app, *, timeout: float = 20.0, transport: httpx.BaseTransport | None = None) -> None:
        s = app.settings
        if not s.is_terminal:
            raise TerminalOnlyError(detail="set KIOSK_SERVER_URL and KIOSK_SERVER_TOKEN")
        self.app = app
        self.urls = s.server_urls
        self._current = 0
        self.headers = {"Authorization": f"Bearer {s.server_token}", "X-Kiosk-Software": __version__,
                        "X-Kiosk-Model": s.backend}
        self.https = [httpx.Client(base_url=u + "/api/v1", transport=transport,
                                   timeout=httpx.Timeout(timeout, connect=3.0)) for u in self.urls]
        self.insecure = any(u.startswith("http://") and not _loopback_url(u) for u in self.urls)
        ensure_terminal(app)

    @property
    def http(self) -> httpx.Client:
        """The HTTP client of the current server."""
        return self.https[self._current]

    @property
    def url(self) -> str:
        """The server this client talks to now."""
        return self.urls[self._current]

    def close(self) -> None:
        for h in self.https:
            h.close()

    # -- HTTP -----------------------------------------------------------------------
    def _call(self, method: str, path: str, headers: dict | None = None, **kw) -> dict:
        """One request, to the current server, then to the others in turn while none answers."""
        start = self._current
        failures = []
        for i in range(len(self.urls)):
            idx = (start + i) % len(self.urls)
            try:
                r = self.https[idx].request(method, path, headers={**self.headers, **(headers or {})}, **kw)
            except httpx.HTTPError as exc:
                failures.append(f"{self.urls[idx]}: {type(exc).__name__}: {exc}")
                continue
            if r.status_code >= 500:
                failures.append(f"{self.urls[idx]}{path}: HTTP {r.status_code}")
                continue
            if idx != self._current:
                log.warning("district server %s did not answer; syncing through %s", self.url, self.urls[idx])
                self._current = idx
            return self._answer(r)
        raise ServerUnreachableError(detail="; ".join(failures))

    def _answer(self, r: httpx.Response) -> dict:
        if r.status_code == 401:
            try:
                body = r.json()
            except ValueError:
                body = {}
            raise TerminalAuthError(body.get("error") or None, detail=body.get("detail", "401"))
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": r.text[:200]}
            if r.status_code == 413:
                raise PayloadTooLargeError(body.get("error") or None, detail=str(body.get("detail") or 413))
            raise DistrictError(body.get("error") or f"区服务器拒绝了请求（{r.status_code}）",
                                detail=str(body.get("detail") or r.status_code))
        return r.json()

    # -- rounds ---------------------------------------------------------------------
    def whoami(self) -> dict:
        me = self._call("GET", "/whoami")
        with self.app.db.session() as s:
            set_state(s, "terminal", me)
        _remember_canteen(self.app, me)
        return me

    def sync(self) -> SyncReport:
        with _ROUND_LOCK:
            rep = SyncReport()
            try:
                with self.app.db.session() as s:
                    known = get_state(s, "terminal")
                if known is None:
                    known = self.whoami()
                if known.get("canteen_id") != self.app.settings.canteen_id:
                    raise DistrictError(
                        f"终端令牌属于食堂 {known.get('canteen_id')}，本机设置的是 {self.app.settings.canteen_id}",
                        detail=f"set KIOSK_CANTEEN_ID={known.get('canteen_id')} (or unset it)")
                self._report_health()
                with self.app.db.session(read_only=True) as s:
                    self.headers["X-Kiosk-Pending"] = str(pending_count(s))   # the console shows it
                self.push(rep)
                with self.app.db.session(read_only=True) as s:
                    self.headers["X-Kiosk-Pending"] = str(pending_count(s))
                self.pull(rep)
            except ServerUnreachableError:
                _mark_offline(self.app)
                raise
            with self.app.db.session() as s:
                rep.pending = pending_count(s)
                set_state(s, "last_sync", utcnow().isoformat())
                set_state(s, "offline_since", None)
                set_state(s, "server_version", rep.server_version)
                if rep.warning:
                    set_state(s, "warning", rep.warning)
            return rep

    LAST_SALE_EVERY_S = 600.0

    def _report_health(self) -> None:
        """Version, face model, disk free, camera, last sale: sent as headers every round.
        The last sale (a scan of the replica's orders) is looked up again only when the
        outbox holds something or every ten minutes."""
        import time

        now = time.monotonic()
        with self.app.db.session(read_only=True) as s:
            waiting = pending_count(s)
        looked = getattr(self, "_last_sale_t", None)
        if looked is None or waiting or now - looked >= self.LAST_SALE_EVERY_S:
            self._last_sale, self._last_sale_t = health.last_sale(self.app), now
        known = self._last_sale
        for k in [k for k in self.headers if k.startswith("X-Kiosk-") and k != "X-Kiosk-Pending"]:
            del self.headers[k]
        self.headers.update(health.collect(self.app, known).headers())

    def push(self, rep: SyncReport) -> None:
        budget = PUSH_BUDGET_BYTES
        while True:
            with self.app.db.session(read_only=True) as s:
                batch = s.scalars(select(OutboxEntry).where(OutboxEntry.status == "pending")
                                  .order_by(OutboxEntry.seq).limit(PUSH_BATCH)).all()
                waiting = pending_count(s)
            if not batch:
                return
            fetched = len(batch)
            encoded: list[bytes] = []
            size = 0
            for e in batch:            # in outbox order, as many as fit the budget (at least one)
                op = orjson.dumps({"op_id": e.id, "kind": e.kind, "created_at": e.created_at.isoformat(),
                                   "payload": self._wire(e.payload)})
                if encoded and size + len(op) + 1 > budget:
                    break
                encoded.append(op)
                size += len(op) + 1
            batch = batch[:len(encoded)]
            try:
                res = self._call("POST", "/push", content=b'{"ops":[' + b",".join(encoded) + b"]}",
                                 headers={"X-Kiosk-Pending": str(waiting), "Content-Type": "application/json"})
            except PayloadTooLargeError as exc:
                if len(batch) > 1:          # the server takes less than the budget: halve it and go on
                    budget = max(1, size // 2)
                    continue
                self._too_large(batch[0], exc, rep)     # one op the server will never take: kept, marked
                continue
            rep.server_version = res.get("server_version")
            by_id = {r["op_id"]: r for r in res.get("results", [])}
            done, rejected = [], []
            for e in batch:
                r = by_id.get(e.id)
                if r is None:
                    continue
                if r["status"] in ("applied", "duplicate"):
                    done.append(e.id)
                    rep.pushed += r["status"] == "applied"
                    rep.duplicates += r["status"] == "duplicate"
                    rep.flagged += r.get("flags") or []
                else:
                    rejected.append((e.id, r.get("error")))
            with self.app.db.session() as s:
                s.info[changes.APPLY] = True
                if done:
                    s.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(done)))
                for oid, err in rejected:
                    e = s.scalars(select(OutboxEntry).where(OutboxEntry.id == oid)).first()
                    if e is not None:
                        e.status, e.error = "rejected", str(err)[:2000]
                        rep.rejected += 1
                        log.error("the server refused outbox op %s (%s): %s", oid, e.kind, err)
            if (fetched < PUSH_BATCH and len(batch) == fetched) or not (done or rejected):
                return

    def _too_large(self, entry, exc: PayloadTooLargeError, rep: SyncReport) -> None:
        """An op larger than the server takes in one push: marked rejected with the reason
        (shown as rejected on the staff screen), so the ops after it still go."""
        with self.app.db.session() as s:
            s.info[changes.APPLY] = True
            e = s.scalars(select(OutboxEntry).where(OutboxEntry.id == entry.id)).first()
            if e is not None:
                e.status, e.error = "rejected", f"{exc.user_message} ({exc.detail})"[:2000]
                rep.rejected += 1
                log.error("outbox op %s (%s) is larger than the server takes: %s", entry.id, entry.kind, exc.detail)

    def _wire(self, payload: dict) -> dict:
        """Templates leave encrypted with this terminal's key only as far as the wire: the
        server gets the embedding (over TLS) and encrypts it with its own key."""
        rows = (payload or {}).get("rows") or {}
        if "face_templates" not in rows:
            return payload
        cipher = self.app.cipher
        out = []
        for t in rows["face_templates"]:
            t = dict(t)
            enc = t.pop("embedding_enc", None)
            crop = t.pop("crop_enc", None)
            if enc:
                t["embedding"] = base64.b64encode(cipher.decrypt(base64.b64decode(enc))).decode()
            if crop:
                t["crop"] = base64.b64encode(cipher.decrypt(base64.b64decode(crop))).decode()
            out.append(t)
        if self.insecure:
            log.warning("!!! pushing FACE TEMPLATES over plain HTTP to %s: put TLS in front of the server !!!",
                        self.url)
        return {**payload, "rows": {**rows, "face_templates": out}}

    def pull(self, rep: SyncReport) -> None:
        """Pages in order; the next page is fetched while this one is applied (the server
        and this terminal work at the same time). The version and snapshot cursor are
        saved after each applied page, so an interrupted pull resumes where it stopped."""
        import queue

        with self.app.db.session(read_only=True) as s:
            since = int(get_state(s, "version") or 0)
            cursor = get_state(s, "cursor")
        pages: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def fetch(since: int, cursor: str | None) -> None:
            try:
                while not stop.is_set():
                    params = {"since": since, "limit": PULL_LIMIT}
                    if cursor:
                        params["cursor"] = cursor
                    page = self._call("GET", "/changes", params=params)
                    pages.put(page)
                    if not page.get("more"):
                        return
                    since, cursor = int(page["since"]), page.get("cursor")
            except BaseException as exc:  # noqa: BLE001 - handed to the applying thread
                pages.put(exc)

        t = threading.Thread(target=fetch, args=(since, cursor), name="kiosk-pull", daemon=True)
        t.start()
        try:
            while True:
                page = pages.get()
                if isinstance(page, BaseException):
                    raise page
                stats = apply_records(self.app, page["changes"])
                rep.pulled += len(page["changes"])
                rep.erased += stats["erased"]
                rep.faces_changed += stats["faces_changed"]
                rep.templates_withheld += stats["withheld"]
                rep.server_version = page.get("server_version")
                with self.app.db.session() as s:
                    set_state(s, "version", int(page["since"]))
                    set_state(s, "cursor", page.get("cursor"))
                if page.get("templates_withheld") and rep.warning is None:
                    rep.warning = ("区服务器未下发人脸模板：连接不是 HTTPS。请为服务器配置 TLS（docs/district.md），"
                                   "本机暂时只能刷卡或手机号就餐")
                    log.error("face templates withheld by the server: plain HTTP to %s", self.url)
                if not page.get("more"):
                    return
        finally:
            stop.set()
            while t.is_alive():       # let the fetcher finish its request, drop what it got
                try:
                    pages.get(timeout=0.1)
                except queue.Empty:
                    pass


def ensure_terminal(app) -> None:
    """Mark this store as a terminal's replica (its writes go to the outbox)."""
    changes.mark_terminal(app.db.engine)
    with app.db.session() as s:
        s.info[changes.APPLY] = True
        if get_state(s, "role") != "terminal":
            set_state(s, "role", "terminal")


def _remember_canteen(app, me: dict) -> None:
    import json
    import os

    f = app.settings.home / "terminal.json"
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps({"terminal_id": me["terminal_id"], "canteen_id": me["canteen_id"]}))
    os.replace(tmp, f)
    if "canteen_id" not in app.settings.model_fields_set:
        app.settings.canteen_id = me["canteen_id"]


def _mark_offline(app) -> None:
    with app.db.session() as s:
        s.info[changes.APPLY] = True
        if not get_state(s, "offline_since"):
            set_state(s, "offline_since", utcnow().isoformat())


def parse_time(v) -> datetime | None:
    try:
        return datetime.fromisoformat(v) if v else None
    except (TypeError, ValueError):
        return None
