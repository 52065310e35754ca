"""The district office's web console (issue 13), served by ``kiosk server`` at /console.

Layout (one module per page):

* ``pages/``: the pages, each a module with a ``router`` and its ``NAV`` link
  (``pages/__init__.py`` says how to add one);
* ``shared/``: what pages share: ``auth`` (logins), ``deps`` (FastAPI dependencies for
  the App, the logged-in staff member with role, CSRF-checked forms, parameters) and
  ``render`` (templates, headers, downloads, the nav bar);
* ``templates/``: the Jinja2 templates.

``mount(api)`` includes every page at /console on the server's FastAPI app and keeps the
console's state (logins, nav links) on ``api.state.console``; the logins themselves
are rows of the store (``console_sessions``), honoured by every server process."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from fastapi import FastAPI, Request

from kiosk.db.models import utcnow
from kiosk.district.console import pages
from kiosk.district.console.shared.deps import Refusal, new_state
from kiosk.district.console.shared.render import PREFIX


async def _refusal(_request: Request, exc: Refusal):
    return exc.response


def mount(api: FastAPI, *, idle_minutes: float | None = None, clock: Callable[[], datetime] = utcnow) -> None:
    """Include the console on ``api`` at /console; its logins are rows of the store of
    ``api.state.kiosk_app``. ``idle_minutes``: a login's idle timeout (default the
    server's Settings.console_idle_minutes, KIOSK_CONSOLE_IDLE_MINUTES); ``clock`` (UTC)
    for tests."""
    if idle_minutes is None:
        idle_minutes = api.state.kiosk_app.settings.console_idle_minutes
    state = new_state(api.state.kiosk_app.db, idle_minutes, clock)
    state.nav = pages.nav()
    api.state.console = state
    api.add_exception_handler(Refusal, _refusal)
    api.include_router(pages.router(), prefix=PREFIX)


__all__ = ["mount", "PREFIX"]
