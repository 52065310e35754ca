"""The district server's FastAPI application.

``create_app(settings)`` builds the app over the district store (``KIOSK_DATABASE_URL``,
PostgreSQL in production, SQLite in KIOSK_HOME by default). Routers mount on it:

* ``/api/v1/...``  the terminals' API (kiosk.district.api.sync), every request with a
  terminal token (``Authorization: Bearer ...``);
* ``/healthz``, ``/metrics`` health and Prometheus figures (kiosk.district.api.ops);
* ``/console/...`` the district office's web console (mounted by kiosk.console when
  that package is present: it exposes ``router`` or ``mount(app)``).

Request handlers get the store and the services through one dependency::

    from fastapi import Depends
    from kiosk.district.api.deps import get_app
    from kiosk.services.context import App

    @router.get("/x")
    def x(app: App = Depends(get_app)): ...

The App is the same context the command line uses (settings, db, residents, billing,
faces, cipher); the server never loads a face model (it stores and forwards templates).
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kiosk.config import Settings, get_settings
from kiosk.errors import KioskError
from kiosk.services.context import App

log = logging.getLogger("kiosk.district")
API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, kiosk_app: App | None = None,
               tls: bool | None = None, insecure_templates: bool | None = None) -> FastAPI:
    """The server app. ``tls`` (default ``settings.serve_tls``): served over HTTPS directly
    (uvicorn --ssl-*); ``insecure_templates`` (default ``settings.serve_insecure_templates``):
    send face templates over plain http to non-loopback terminals anyway (logged loudly at
    every pull; see docs/district.md)."""
    settings = settings or get_settings()
    tls = settings.serve_tls if tls is None else tls
    insecure_templates = settings.serve_insecure_templates if insecure_templates is None else insecure_templates
    if settings.is_terminal:
        from kiosk.errors import DistrictError
        raise DistrictError("这台机器配置为终端（KIOSK_SERVER_URL），不能作为区服务器运行",
                            detail="unset KIOSK_SERVER_URL / KIOSK_SERVER_TOKEN to run `kiosk server`")
    app_ctx = kiosk_app or App(settings)
    _no_generic_plans(app_ctx)

    @asynccontextmanager
    async def lifespan(this: FastAPI):
        warmer = None
        if kiosk_app is None and settings.console_warm:      # a server process of its own (not a test's app)
            from kiosk.district.console.warm import Warmer
            warmer = this.state.warmer = Warmer(app_ctx).start()     # /healthz shows its passes
        yield
        if warmer is not None:
            warmer.stop()
        if kiosk_app is None:
            app_ctx.close()

    api = FastAPI(title="长寿食堂 district server", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    api.state.kiosk_app = app_ctx
    api.state.tls = tls
    api.state.insecure_templates = insecure_templates

    @api.exception_handler(KioskError)
    async def _kiosk_error(_request: Request, exc: KioskError):
        from kiosk.errors import StorageError
        status = 503 if isinstance(exc, StorageError) else getattr(exc, "http_status", 400)
        return JSONResponse({"error": exc.user_message, "detail": exc.detail, "type": type(exc).__name__},
                            status_code=status)

    from kiosk.district.api.sync import router
    api.include_router(router, prefix=API_PREFIX)
    from kiosk.district.api.ops import router as ops_router      # /healthz, /metrics
    api.include_router(ops_router)
    _mount_console(api)
    return api


@dataclass(frozen=True)
class WorkerApp:
    """The app factory of `kiosk server --workers N`: uvicorn hands it (with the settings
    the command read and its flags) to every worker process, which calls it."""
    settings: Settings

    def __call__(self) -> FastAPI:
        return create_app(self.settings)


def _no_generic_plans(app_ctx: App) -> None:
    """Multi-row INSERTs for executemany. PostgreSQL: no server-side prepared statements on the server's connections. psycopg
    prepares a query after 5 runs, and PostgreSQL may then keep a generic plan; for the
    feed's long IN lists that plan was a sequential scan per page (17 s instead of 0.1 s)."""
    from sqlalchemy import event

    eng = app_ctx.db.engine
    # executemany INSERTs (the change log of every commit) go as multi-row INSERT statements
    eng.dialect.use_insertmanyvalues_wo_returning = True
    if eng.dialect.name != "postgresql":
        return

    @event.listens_for(eng, "connect")
    def _connect(dbapi_conn, _rec) -> None:
        if hasattr(dbapi_conn, "prepare_threshold"):
            dbapi_conn.prepare_threshold = None

    eng.dispose()     # connections made before (the migration check) are replaced


def _mount_console(api: FastAPI) -> None:
    """The district office's web console at /console."""
    from kiosk.district import console

    console.mount(api)
