"""China Standard Time helpers. All business dates are CST dates."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from kiosk.errors import ValidationError

CST = timezone(timedelta(hours=8), "CST")
# the dates a business date may take: wide enough for any record, narrow enough that
# a month's bounds and a day's start in any time zone stay within Python's datetime
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{1,2})")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


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


def _in_range(day: date, text: str, what: str, form: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(f"{what}「{text}」超出范围：应在 {FIRST_DAY:{form}} 到 {LAST_DAY:{form}} 之间",
                              detail=f"{what} {text!r} outside {FIRST_DAY}..{LAST_DAY}")
    return day


def parse_month(text: str, what: str = "月份") -> date:
    """The first day of the month written ``YYYY-MM`` (1900-01 to 2199-12). Raises
    ValidationError saying what was wrong with ``text`` (named ``what`` in the message)."""
    m = _MONTH.fullmatch(str(text).strip())
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise ValidationError(f"{what}应写成 YYYY-MM（如 2026-11），不是「{text}」", detail=f"bad month {text!r}")
    year = int(m.group(1))
    if not FIRST_DAY.year <= year <= LAST_DAY.year:      # year 0 is not even a date
        return _in_range(date.min if year < FIRST_DAY.year else date.max, text, what, "%Y-%m")
    return _in_range(date(year, int(m.group(2)), 1), text, what, "%Y-%m")


def parse_day(text: str, what: str = "日期") -> date:
    """The date written ``YYYY-MM-DD`` (1900-01-01 to 2199-12-31). Raises
    ValidationError saying what was wrong with ``text`` (named ``what`` in the message)."""
    t = str(text).strip()
    try:
        if not _DAY.fullmatch(t):
            raise ValueError(t)
        day = date.fromisoformat(t)
    except ValueError:
        raise ValidationError(f"{what}应写成 YYYY-MM-DD（如 2026-11-05），不是「{text}」",
                              detail=f"bad date {text!r}") from None
    return _in_range(day, text, what, "%Y-%m-%d")


def month_bounds(day: date) -> tuple[date, date]:
    """The first and the last day of ``day``'s month."""
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)
