"""China Standard Time helpers. All business dates are CST dates."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")


def now_cst() -> datetime:
    return datetime.now(CST)


def to_cst(dt: datetime) -> datetime:
    """An aware datetime in CST; a naive one is taken to be CST already."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=CST)
    return dt.astimezone(CST)


def parse_cst(text: str) -> datetime:
    """Parse ISO text like 2026-11-23T12:05 (CST unless it names an offset)."""
    return to_cst(datetime.fromisoformat(text))


def age_on(birth: date, day: date) -> int:
    """Age in whole years on ``day`` (a 29 Feb birthday counts on 1 Mar in common years)."""
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years
