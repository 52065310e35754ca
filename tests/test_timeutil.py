"""Month and day arguments are read in one place (kiosk.timeutil) for the CLI,
the reports and the console."""
from __future__ import annotations

from datetime import date

import pytest

from kiosk.errors import ValidationError
from kiosk.timeutil import now_cst, parse_day, parse_month


def test_parse_month_gives_the_first_day():
    assert parse_month("2026-11") == date(2026, 11, 1)
    assert parse_month(" 2026-2 ") == date(2026, 2, 1)


def test_parse_day_reads_iso_dates():
    assert parse_day("2026-02-28") == date(2026, 2, 28)


def test_empty_means_now_in_cst():
    today = now_cst().date()
    assert parse_day(None) in (today, now_cst().date())
    assert parse_month("") in (today.replace(day=1), now_cst().date().replace(day=1))


@pytest.mark.parametrize("bad", ["2026", "2026-13", "26-11", "2026-11-01", "十一月", "2026-00"])
def test_bad_month_is_refused_with_its_text(bad):
    with pytest.raises(ValidationError) as e:
        parse_month(bad)
    assert "YYYY-MM" in e.value.user_message and bad in e.value.user_message


@pytest.mark.parametrize("bad", ["2026-02-30", "2026/02/01x", "yesterday"])
def test_bad_day_is_refused_with_its_text(bad):
    with pytest.raises(ValidationError) as e:
        parse_day(bad)
    assert "YYYY-MM-DD" in e.value.user_message and bad in e.value.user_message
