"""报餐 at the counter: the elder's answer to "明天还来吃午饭吗？" after a checkout, in plain
records for the screens (kiosk.services.bookings does the booking)."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from kiosk.services.bookings import BookingResult, next_day_same_meal, set_booking
from kiosk.timeutil import now_cst


class BookingDesk:
    def __init__(self, app, clock: Callable[[], datetime] = now_cst) -> None:
        self.app = app
        self.clock = clock

    def answer_tomorrow(self, resident_id: str, meal: str, coming: bool) -> BookingResult:
        """Tomorrow's same meal at this canteen booked (来) or called off (不来), recorded as the
        kiosk's (audited ``meal.book`` / ``meal.cancel``) and, on a terminal, pushed with the outbox."""
        today = self.clock().date()
        day, meal = next_day_same_meal(today, meal)
        return set_booking(self.app, resident_id, day, meal, actor=None, canteen_id=self.app.settings.canteen_id,
                           cancel=not coming, source="counter", today=today)
