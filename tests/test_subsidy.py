"""The subsidy engine: every reason, the birthday, the month limit, and
hypothesis invariants over sequences of meals."""
from datetime import date
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.billing.policy import Policy
from kiosk.terminal.demo import FORMATS
from kiosk.billing.pricing import Line, make_quote
from kiosk.billing.subsidy import ResidentFacts, Usage, decide_subsidy

POLICY = Policy.model_validate(yaml.safe_load((FORMATS / "policy.example.yaml").read_text(encoding="utf-8")))
DAY = date(2026, 11, 23)


def facts(born=date(1942, 3, 15), hukou="武侯区", cats=()):
    return ResidentFacts("R", born, hukou, frozenset(cats))


def test_policy_amounts_are_fen():
    assert [t.per_meal_fen for t in POLICY.tiers] == [800, 600, 500, 300, 200]
    assert POLICY.limits.amount_per_month_fen == 15000


def test_best_tier_wins():
    d = decide_subsidy(POLICY, facts(cats=("特困",)), DAY, "午餐", 2000, Usage())
    assert (d.subsidy_fen, d.tier) == (800, "特困供养")
    d = decide_subsidy(POLICY, facts(born=date(1960, 1, 1), cats=("低保",)), DAY, "午餐", 2000, Usage())
    assert (d.subsidy_fen, d.tier) == (600, "低保及失能")
    d = decide_subsidy(POLICY, facts(), DAY, "晚餐", 2000, Usage())
    assert (d.subsidy_fen, d.tier) == (500, "八十岁及以上")
    assert "每餐补贴5.00元" in d.reason


@pytest.mark.parametrize("kw,reason", [
    ({"born": date(1970, 1, 1)}, "未满60岁"),
    ({"hukou": "锦江区"}, "户籍不符"),
])
def test_not_eligible_reasons(kw, reason):
    d = decide_subsidy(POLICY, facts(**kw), DAY, "午餐", 1500, Usage())
    assert d.subsidy_fen == 0 and d.reason == reason and d.tier is None


def test_breakfast_not_subsidized():
    d = decide_subsidy(POLICY, facts(), DAY, "早餐", 500, Usage())
    assert (d.subsidy_fen, d.reason) == (0, "早餐不在补贴范围")


@pytest.mark.parametrize("day", [date(2025, 12, 31), date(2027, 1, 1)])
def test_outside_policy_dates(day):
    d = decide_subsidy(POLICY, facts(), day, "午餐", 1500, Usage())
    assert (d.subsidy_fen, d.reason) == (0, "政策未生效")


def test_effective_dates_inclusive():
    for day in (date(2026, 1, 1), date(2026, 12, 31)):
        assert decide_subsidy(POLICY, facts(), day, "午餐", 1500, Usage()).subsidy_fen == 500


def test_no_policy_at_all():
    assert decide_subsidy(None, facts(), DAY, "午餐", 1500, Usage()).reason == "政策未生效"


def test_daily_limit():
    d = decide_subsidy(POLICY, facts(), DAY, "晚餐", 1500, Usage(subsidized_meals_today=1))
    assert (d.subsidy_fen, d.reason, d.tier) == (0, "今日已享受补贴", "八十岁及以上")


def test_month_limit_crossed_mid_meal_and_then_exhausted():
    d = decide_subsidy(POLICY, facts(), DAY, "午餐", 1500, Usage(amount_this_month_fen=14800))
    assert d.subsidy_fen == 200 and "本月补贴额度只剩2.00元" in d.reason and d.month_left_fen == 0
    d = decide_subsidy(POLICY, facts(), DAY, "午餐", 1500, Usage(amount_this_month_fen=15000))
    assert (d.subsidy_fen, d.reason) == (0, "本月补贴额度已用完")


def test_subsidy_capped_by_price():
    d = decide_subsidy(POLICY, facts(cats=("特困",)), DAY, "午餐", 300, Usage())
    assert d.subsidy_fen == 300 and "补贴不超过餐费" in d.reason


def test_birthday_on_the_meal_day():
    born = date(1946, 11, 23)  # 80 on DAY
    assert decide_subsidy(POLICY, facts(born=born), DAY, "午餐", 2000, Usage()).tier == "八十岁及以上"
    assert decide_subsidy(POLICY, facts(born=born), date(2026, 11, 22), "午餐", 2000, Usage()).tier == "七十至七十九岁"
    born60 = date(1966, 11, 23)
    assert decide_subsidy(POLICY, facts(born=born60), date(2026, 11, 22), "午餐", 2000, Usage()).reason == "未满60岁"
    assert decide_subsidy(POLICY, facts(born=born60), DAY, "午餐", 2000, Usage()).subsidy_fen == 200


meal_st = st.tuples(st.integers(min_value=0, max_value=29), st.sampled_from(["早餐", "午餐", "晚餐"]),
                    st.integers(min_value=0, max_value=5000))


@settings(max_examples=300, deadline=None)
@given(meals=st.lists(meal_st, max_size=80), cats=st.sets(st.sampled_from(["特困", "低保", "失能", "独居"])),
       born_year=st.integers(min_value=1920, max_value=1975))
def test_limits_hold_over_any_sequence(meals, cats, born_year):
    f = facts(born=date(born_year, 6, 1), cats=tuple(cats))
    per_day: dict[int, int] = {}
    month_total = 0
    for day_idx, meal, price in sorted(meals):
        day = date(2026, 11, 1 + day_idx)
        usage = Usage(per_day.get(day_idx, 0), month_total)
        d = decide_subsidy(POLICY, f, day, meal, price, usage)
        q = make_quote([Line("X", "x", price)], d)
        assert 0 <= q.subsidy_fen <= price                     # never more than the meal
        assert q.total_fen == q.subsidy_fen + q.to_pay_fen     # totals conserve
        assert q.subsidy_fen <= max(t.per_meal_fen for t in POLICY.tiers)
        if q.subsidy_fen > 0:
            per_day[day_idx] = per_day.get(day_idx, 0) + 1
        month_total += q.subsidy_fen
        assert per_day.get(day_idx, 0) <= POLICY.limits.subsidized_meals_per_day
        assert month_total <= POLICY.limits.amount_per_month_fen


@given(st.lists(st.tuples(st.integers(0, 100000), st.integers(1, 5)), min_size=1, max_size=8),
       st.integers(0, 2000))
def test_quote_conserves(lines, subsidy):
    from kiosk.billing.subsidy import SubsidyDecision

    q = make_quote([Line(str(i), "d", p, n) for i, (p, n) in enumerate(lines)], SubsidyDecision(subsidy, "t", "r"))
    assert q.total_fen == sum(p * n for p, n in lines)
    assert q.subsidy_fen == min(subsidy, q.total_fen)
    assert q.to_pay_fen >= 0 and q.total_fen == q.subsidy_fen + q.to_pay_fen
