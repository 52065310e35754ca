"""Two terminals settling for one elder at the same moment (threads, one App each)."""
from __future__ import annotations

import threading
import time


def settle_at_once(apps, resident_id: str, dishes: list[str], at, monkeypatch) -> list:
    """Settle the same meal on every app at once. Each quote waits 0.3 s after reading
    the elder's usage, so without a lock all of them would read it before any writes.
    Returns the receipts; an exception in any terminal fails the caller's test."""
    from kiosk.services.checkout import CheckoutService

    quote = CheckoutService._quote_locked

    def slow_quote(self, *a, **k):
        q = quote(self, *a, **k)
        time.sleep(0.3)
        return q

    monkeypatch.setattr(CheckoutService, "_quote_locked", slow_quote)
    receipts, errors = [], []

    def settle(app):
        try:
            receipts.append(app.billing.settle(resident_id, dishes, at=at, pay="cash"))
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [], errors
    assert len(receipts) == len(apps)
    return receipts
