from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.idcard import check_char, parse_id_number
from kiosk.money import fen_to_yuan, yuan_to_fen
from kiosk.timeutil import age_on


@pytest.mark.parametrize("text,fen", [("12.00", 1200), ("12.5", 1250), ("0.01", 1), ("7", 700),
                                      (" 3.30 ", 330), ("¥2.00", 200), (8.0, 800), (150, 15000)])
def test_yuan_to_fen(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("bad", ["-1", "1.234", "abc", "", "1,5", True])
def test_yuan_to_fen_refuses(bad):
    with pytest.raises(ValueError):
        yuan_to_fen(bad)


@given(st.integers(min_value=0, max_value=10**9))
def test_fen_round_trip(fen):
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


def test_example_id_numbers_are_valid():
    info = parse_id_number("510107194203150024")
    assert info.birth_date == date(1942, 3, 15) and info.sex == "女"
    assert parse_id_number("510107195011020035").sex == "男"


@pytest.mark.parametrize("bad,needle", [("51010719420315002", "18位"), ("510107194203150025", "校验位"),
                                        ("5101071942A3150024", "数字"), ("510107194213150021", "出生日期")])
def test_bad_id_numbers(bad, needle):
    if needle == "出生日期":  # month 13: make the checksum right so only the date is wrong
        bad = bad[:17] + check_char(bad[:17])
    with pytest.raises(ValueError, match=needle):
        parse_id_number(bad)


def test_x_checksum_accepted():
    first17 = "11010519491231002"
    n = first17 + check_char(first17)
    assert parse_id_number(n.lower()).number == n.upper()


def test_age_in_whole_years_birthday_on_the_day():
    assert age_on(date(1946, 11, 23), date(2026, 11, 22)) == 79
    assert age_on(date(1946, 11, 23), date(2026, 11, 23)) == 80
    assert age_on(date(1944, 2, 29), date(2026, 2, 28)) == 81
    assert age_on(date(1944, 2, 29), date(2026, 3, 1)) == 82
