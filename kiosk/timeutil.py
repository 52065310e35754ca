"""China Standard Time helpers. All business dates are CST dates."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from kiosk.errors import ValidationError

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


def parse_day(text: str | None) -> date:
    """A day written YYYY-MM-DD (CST business date); empty means today in CST.

    Raises ValidationError (Chinese message naming the bad text) otherwise."""
    if text is None or not str(text).strip():
        return now_cst().date()
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValidationError(f"日期应写成 YYYY-MM-DD，不是「{text}」", detail=f"bad date {text!r}") from None


def parse_month(text: str | None) -> date:
    """A month written YYYY-MM, as its first day; empty means this month in CST.

    Raises ValidationError (Chinese message naming the bad text) otherwise."""
    if text is None or not str(text).strip():
        return now_cst().date().replace(day=1)
    s = str(text).strip()
    parts = s.split("-")
    try:
        if len(parts) != 2 or len(parts[0]) != 4 or not 1 <= len(parts[1]) <= 2:
            raise ValueError(s)
        return date(int(parts[0]), int(parts[1]), 1)
    except ValueError:
        raise ValidationError(f"月份应写成 YYYY-MM，不是「{text}」", detail=f"bad month {text!r}") from None
