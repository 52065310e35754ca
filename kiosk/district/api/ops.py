"""Operations endpoints of the district server: ``/healthz`` and ``/metrics``.

``GET /healthz``: 200 ``{"ok": true, ...}`` when the database answers and its schema is
at the newest migration; 503 with what is wrong otherwise (a load balancer or systemd
watchdog takes the server out of rotation on 503).

``GET /metrics``: Prometheus text (prometheus-client). Two kinds of figures:

* **counted by this server** (all its uvicorn workers): push requests
  (``kiosk_push_requests_total{outcome}``) and the ops in them by the answer given
  (``kiosk_push_ops_total{status}``: applied, duplicate, rejected, and any status the
  push answers with, e.g. quarantined). ``kiosk server --workers N`` runs N processes;
  they count into files of one folder (prometheus-client's multiprocess mode,
  ``PROMETHEUS_MULTIPROC_DIR``, made by `kiosk server` for its workers), and a scrape
  served by any worker sums them all. Several servers over one database are scraped
  one by one: sum these in the query (``sum(kiosk_push_ops_total)``).
* **read from the database at scrape time** (the same from every worker and every
  server, so nothing depends on which process answers): ops kept in ``applied_ops`` by
  status (``kiosk_applied_ops{status}``: every status the table holds, whatever adds
  new ones), district flags by kind and decision, and per terminal its sync lag,
  outbox waiting, disk free, camera, last sale and reported software (labels
  ``terminal``, ``canteen``). A scrape costs a few grouped queries (``applied_ops``
  is counted whole: at 10^6 rows about a tenth of a second on PostgreSQL).
"""
from __future__ import annotations

import logging
import os
from collections import Counter as _Tally

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily

from kiosk.district.api.deps import get_app
from kiosk.services.context import App

router = APIRouter()
log = logging.getLogger("kiosk.district")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# counted by this server's processes (not registered in the global registry: a scrape builds its own)
PUSH_REQUESTS = Counter("kiosk_push_requests", "Push requests answered by this server, by outcome "
                        "(ok: answered per op; error: refused or failed as a whole)", ["outcome"], registry=None)
PUSH_OPS = Counter("kiosk_push_ops", "Outbox ops answered by this server, by the status answered "
                   "(applied, duplicate, rejected, quarantined ...)", ["status"], registry=None)


def count_push(results: list[dict] | None) -> None:
    """Count one push request (None: it was refused or failed as a whole)."""
    if results is None:
        PUSH_REQUESTS.labels("error").inc()
        return
    PUSH_REQUESTS.labels("ok").inc()
    for status, n in _Tally(str(r.get("status")) for r in results).items():
        PUSH_OPS.labels(status).inc(n)


# -- /healthz ---------------------------------------------------------------------------

_HEAD: list[str] = []


def migration_head() -> str:
    """The newest migration this software has (kiosk/db/migrations)."""
    if not _HEAD:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        from kiosk.db.session import MIGRATIONS

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        _HEAD.append(ScriptDirectory.from_config(cfg).get_current_head())
    return _HEAD[0]


@router.get("/healthz")
def healthz(request: Request, app: App = Depends(get_app)) -> JSONResponse:
    """The database reachable and its schema at the newest migration: 200; otherwise 503."""
    from alembic.runtime.migration import MigrationContext

    head = migration_head()
    try:
        with app.db.engine.connect() as c:
            c.exec_driver_sql("SELECT 1")
            current = MigrationContext.configure(c).get_current_revision()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is "unhealthy"
        log.warning("healthz: database unreachable: %s", exc)
        return JSONResponse({"ok": False, "database": "unreachable", "detail": f"{type(exc).__name__}: {exc}"[:500],
                             "migration": None, "head": head}, status_code=503)
    ok = current == head
    warmer = getattr(request.app.state, "warmer", None)     # this process's warm-up of the console (app.py)
    body = {"ok": ok, "database": "ok", "migration": current, "head": head,
            "console_warm": warmer.status() if warmer is not None else None}
    if not ok:
        body["detail"] = f"schema at {current}, this software needs {head}: run `kiosk migrate` / restart after upgrading"
    return JSONResponse(body, status_code=200 if ok else 503)


# -- /metrics ---------------------------------------------------------------------------

class DistrictCollector:
    """Figures read from the database at scrape time (the same from every server process)."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self):
        from sqlalchemy import func, select

        from kiosk.db.changes import current_version
        from kiosk.db.models import AppliedOp, DistrictFlag, Terminal, utcnow

        now = utcnow()
        with self.app.db.session(read_only=True) as s:
            ops = s.execute(select(AppliedOp.status, func.count()).group_by(AppliedOp.status)).all()
            flags = s.execute(select(DistrictFlag.kind, DistrictFlag.decision, func.count())
                              .group_by(DistrictFlag.kind, DistrictFlag.decision)).all()
            terms = s.scalars(select(Terminal).where(Terminal.revoked_at.is_(None))).all()
            version = current_version(s)

        g = GaugeMetricFamily("kiosk_applied_ops", "Ops kept in applied_ops, by status (district-wide)",
                              labels=["status"])
        for status, n in sorted(ops):
            g.add_metric([status], n)
        yield g
        g = GaugeMetricFamily("kiosk_district_flags", "District flags (orders over a district-wide limit), by "
                              "kind and decision (undecided: none)", labels=["kind", "decision"])
        for kind, decision, n in sorted(flags, key=lambda r: (r[0], r[1] or "")):
            g.add_metric([kind, decision or "none"], n)
        yield g
        yield GaugeMetricFamily("kiosk_change_log_version", "The district's change-log version", value=version)

        labels = ["terminal", "canteen"]
        lag = GaugeMetricFamily("kiosk_terminal_sync_lag_seconds",
                                "Seconds since the terminal's last push or pull (absent: it never synced)",
                                labels=labels)
        pending = GaugeMetricFamily("kiosk_terminal_pending_ops", "Outbox ops the terminal reported waiting",
                                    labels=labels)
        disk = GaugeMetricFamily("kiosk_terminal_disk_free_bytes", "Free bytes in the terminal's KIOSK_HOME",
                                 labels=labels)
        camera = GaugeMetricFamily("kiosk_terminal_camera_live", "1 when the kiosk's camera was live at the "
                                   "terminal's last report, 0 otherwise", labels=labels + ["state"])
        sale = GaugeMetricFamily("kiosk_terminal_last_sale_timestamp_seconds", "The terminal's last sale "
                                 "(Unix time)", labels=labels)
        info = GaugeMetricFamily("kiosk_terminal_info", "Software and face model the terminal reported",
                                 labels=labels + ["software", "model"])
        for t in terms:
            lv = [t.id, t.canteen_id]
            last = max((d for d in (t.last_push_at, t.last_pull_at) if d is not None), default=None)
            if last is not None:
                lag.add_metric(lv, max(0.0, (now - last).total_seconds()))
            if t.pending is not None:
                pending.add_metric(lv, t.pending)
            if t.disk_free_bytes is not None:
                disk.add_metric(lv, t.disk_free_bytes)
            if t.camera_state:
                camera.add_metric(lv + [t.camera_state], 1.0 if t.camera_state == "live" else 0.0)
            if t.last_sale_at is not None:
                sale.add_metric(lv, t.last_sale_at.timestamp())
            info.add_metric(lv + [t.software_version or "", t.model or ""], 1)
        yield from (lag, pending, disk, camera, sale, info)


def render_metrics(app: App) -> bytes:
    """The Prometheus text of one scrape."""
    reg = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(reg)
    else:
        reg.register(PUSH_REQUESTS)
        reg.register(PUSH_OPS)
    reg.register(DistrictCollector(app))
    return generate_latest(reg)


@router.get("/metrics")
def metrics(app: App = Depends(get_app)) -> Response:
    return Response(render_metrics(app), media_type=CONTENT_TYPE_LATEST)
