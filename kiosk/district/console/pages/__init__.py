"""The console's pages, one module each. A page module has

* ``router``: a FastAPI ``APIRouter`` with the page's routes (paths under /console);
* ``NAV``: its link in the navigation bar (``shared.render.NavLink(label, path, role,
  order)``), or ``None`` for a page without one.

To add a page: write ``pages/<name>.py`` with both (handlers as plain ``def``, taking
``AppDep``, ``Supervisor``/``Admin`` or ``SupervisorPost``/``AdminPost`` from
``shared.deps``; see its docstring), put its template in ``templates/`` (extending
``base.html``), and add the module to ``PAGES`` below. The bar shows the links sorted
by ``order`` to the roles allowed to see them."""
from __future__ import annotations

from fastapi import APIRouter

from kiosk.district.console.pages import (anomalies, audit, bookings, canteens, faces, home, imports, login, proof,
                                          quarantine, reconcile, reports, terminals, welfare)
from kiosk.district.console.shared.render import NavLink

PAGES = (
    login,
    home,
    imports,
    canteens,
    reports,
    reconcile,
    quarantine,
    bookings,
    anomalies,
    welfare,
    proof,
    faces,
    terminals,
    audit,
)


def router() -> APIRouter:
    """One router with every page's routes."""
    r = APIRouter()
    for page in PAGES:
        r.include_router(page.router)
    return r


def nav() -> list[NavLink]:
    """The navigation bar's links, in order."""
    return sorted((p.NAV for p in PAGES if p.NAV is not None), key=lambda n: n.order)
