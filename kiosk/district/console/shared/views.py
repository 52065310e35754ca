"""The console's month-sized results, each named once: the key it is kept under
(kiosk.district.console.shared.cache) and how it is computed. The pages show them; the
server computes the ones a clerk opens first ahead of time (kiosk.district.console.warm),
so the first view of this month and the last answers at once at the size of a district."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Callable, Hashable

from kiosk.district.domain import anomalies as an
from kiosk.district.domain import reports as dr
from kiosk.services import bookings as bk

View = tuple[Hashable, Callable[[], object]]


def _db(app) -> str:
    return str(app.db.engine.url)


def monthly(app, month: str) -> View:
    return ("monthly", _db(app), month), lambda: dr.monthly_table(app, month)


def daily(app, day: date) -> View:
    return ("daily", _db(app), day), lambda: dr.daily_sales(app, day)


def reconciliation(app, month: str) -> View:
    return ("reconciliation", _db(app), month), lambda: dr.reconciliation(app, month)


def anomalies(app, month: str, th: an.Thresholds) -> View:
    return ("anomalies", _db(app), month, th), lambda: an.scan(app, month, th)


def proof(app, month: str) -> View:
    return ("proof", _db(app), month), lambda: dr.proof_of_life(app, month)


def no_shows(app, month: str, today: date) -> View:
    return ("no_shows", _db(app), month, today), lambda: bk.no_shows(app, month=month)


def welfare(app, today: date) -> View:
    return ("welfare", _db(app), today), lambda: dr.welfare_alerts(app)


def opened_first(app, today: date) -> list[View]:
    """What a clerk opens without choosing: every month page for this month and the last (the
    reimbursement report is last month's), today's sales and the welfare list. The anomaly
    scan with the thresholds in force."""
    this = f"{today:%Y-%m}"
    last = f"{today.replace(day=1) - timedelta(days=1):%Y-%m}"
    th = an.thresholds(app)
    out: list[View] = [daily(app, today), welfare(app, today)]
    for m in (this, last):
        out += [monthly(app, m), reconciliation(app, m), anomalies(app, m, th), proof(app, m),
                no_shows(app, m, today)]
    return out
