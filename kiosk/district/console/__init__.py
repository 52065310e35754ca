"""The district office's web console (issue 13), served by ``kiosk server`` at /console.

``console_router(get_app)`` builds the router over the server's App dependency;
``mount(api)`` includes it at /console on the server's FastAPI app."""
from __future__ import annotations

from kiosk.district.console.routes import console_router

PREFIX = "/console"


def mount(api, get_app=None) -> None:
    """Include the console on ``api`` at /console, over the server's App dependency."""
    if get_app is None:
        from kiosk.district.api.deps import get_app as server_get_app

        get_app = server_get_app
    idle = api.state.kiosk_app.settings.console_idle_minutes      # KIOSK_CONSOLE_IDLE_MINUTES
    api.include_router(console_router(get_app, idle_minutes=idle), prefix=PREFIX)


__all__ = ["console_router", "mount", "PREFIX"]
