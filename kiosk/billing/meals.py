"""Which meal a moment belongs to, from the canteen's meal windows (CST)."""
from __future__ import annotations

from datetime import datetime, time
from functools import lru_cache

from kiosk.timeutil import to_cst

DEFAULT_WINDOWS: dict[str, tuple[str, str]] = {
    "早餐": ("06:00", "09:30"), "午餐": ("10:30", "13:30"), "晚餐": ("16:30", "19:30")}


@lru_cache(maxsize=64)     # the same few window strings, every checkout
def _t(s: str) -> time:
    try:
        h, m = str(s).strip().split(":")
        return time(int(h), int(m))
    except ValueError:
        raise ValueError(f"{s!r} is not a time HH:MM") from None


def meal_at(moment: datetime, windows: dict[str, tuple[str, str]] | None = None) -> str | None:
    """The meal whose window holds ``moment`` (inclusive, to the minute: a window that
    ends at 13:30 still holds 13:30:45), or None between meals."""
    t = to_cst(moment).time().replace(second=0, microsecond=0)
    for meal, (a, b) in (windows or DEFAULT_WINDOWS).items():
        if _t(a) <= t <= _t(b):
            return meal
    return None


def validate_windows(windows: dict[str, list[str] | tuple[str, str]]) -> dict[str, tuple[str, str]]:
    out = {}
    for meal, (a, b) in windows.items():
        if _t(a) >= _t(b):
            raise ValueError(f"{meal}: window start {a} is not before end {b}")
        out[meal] = (a, b)
    return out
