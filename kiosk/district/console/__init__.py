"""The district office's web console (issue 13), served by ``kiosk server`` at /console.

Layout (one module per page):

* ``pages/``: the pages, each a module with a ``router`` and its ``NAV`` link
  (``pages/__init__.py`` says how to add one);
* ``shared/``: what pages share: ``auth`` (logins), ``deps`` (FastAPI dependencies for
  the App, the logged-in staff member with role, CSRF-checked forms, parameters) and
  ``render`` (templates, headers, downloads, the nav bar);
* ``templates/``: the Jinja2 templates.

``mount(api)`` includes every page at /console on the server's FastAPI app and keeps the
console's state (logins, nav links) on ``api.state.console``."""
from __future__ import annotations

import time

from fastapi import FastAPI, Request

from kiosk.district.console import pages
from kiosk.district.console.shared.deps import Refusal, new_state
from kiosk.district.console.shared.render import PREFIX


async def _refusal(_request: Request, exc: Refusal):
    return exc.response


def mount(api: FastAPI, *, idle_minutes: float | None = None, clock=time.monotonic) -> None:
    """Include the console on ``api`` at /console. ``idle_minutes``: a login's idle
    timeout (default the server's Settings.console_idle_minutes, KIOSK_CONSOLE_IDLE_MINUTES);
    ``clock`` for tests."""
    if idle_minutes is None:
        idle_minutes = api.state.kiosk_app.settings.console_idle_minutes
    state = new_state(idle_minutes, clock)
    state.nav = pages.nav()
    api.state.console = state
    api.add_exception_handler(Refusal, _refusal)
    api.include_router(pages.router(), prefix=PREFIX)


__all__ = ["mount", "PREFIX"]
