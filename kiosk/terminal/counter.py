"""The counter: what the kiosk screens call, one object per workflow over one App.
The UI calls only these: it never touches SQL, models, the face gallery or enrolment
code directly.

- ``camera`` (kiosk.terminal.presence): the camera, the recognition pipeline and who
  stands in front (the queue-safety rule);
- ``liveness`` (kiosk.terminal.liveness_check): the head-turn challenge or the passive model;
- ``checkout`` (kiosk.terminal.checkout_flow): idle screen, greeting, bill, settlement;
- ``staff`` (kiosk.terminal.staff_desk): PIN login, enrolment, erasure, void, top-up;
- ``records`` (kiosk.terminal.records): today's orders, exports, imports, sync state;
- ``bookings`` (kiosk.terminal.bookings): the elder's 来 / 不来 for tomorrow's meal.

A district terminal also syncs by itself from here (kiosk.terminal.sync.status)."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from kiosk.terminal.bookings import BookingDesk
from kiosk.terminal.checkout_flow import CheckoutFlow
from kiosk.terminal.liveness_check import LivenessCheck
from kiosk.terminal.presence import CounterCamera
from kiosk.terminal.records import RecordsDesk
from kiosk.terminal.staff_desk import StaffDesk
from kiosk.terminal.sync.status import start_background_sync
from kiosk.timeutil import now_cst


class KioskService:
    def __init__(self, app, clock: Callable[[], datetime] = now_cst) -> None:
        self.app = app
        self.clock = clock          # the terminal's time (CST); tests set it to a chosen moment
        self.camera = CounterCamera(app)
        self.liveness = LivenessCheck(app)
        self.checkout = CheckoutFlow(app, self.liveness, clock)
        self.staff = StaffDesk(app)
        self.records = RecordsDesk(app, self.staff, clock)
        self.bookings = BookingDesk(app, clock)
        self._sync = start_background_sync(app)   # a district terminal syncs by itself (None otherwise)

    @property
    def settings(self):
        return self.app.settings
