"""The subsidy engine: one pure function from policy, resident, meal and usage
to a decision with its reason in plain Chinese."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from kiosk.money import fen_to_yuan
from kiosk.timeutil import age_on
from kiosk.billing.policy import Policy, Tier, category_matches
from kiosk.billing.status import REGISTERED, no_subsidy_reason


@dataclass(frozen=True)
class ResidentFacts:
    resident_id: str
    birth_date: date | None
    hukou: str | None
    categories: frozenset[str]
    status: str = REGISTERED            # the roster's 状态 (kiosk.billing.status)
    status_date: date | None = None     # the day it takes effect


@dataclass(frozen=True)
class Usage:
    """What the resident already received, over every canteen of the district."""

    subsidized_meals_today: int = 0
    amount_this_month_fen: int = 0


@dataclass(frozen=True)
class SubsidyDecision:
    subsidy_fen: int
    tier: str | None
    reason: str
    per_meal_fen: int = 0
    month_left_fen: int | None = None  # what is left of the month after this meal


def matching_tier(policy: Policy, facts: ResidentFacts, age: int) -> Tier | None:
    """The single matching tier with the highest per-meal amount (first listed wins a tie)."""
    best: Tier | None = None
    for t in policy.tiers:
        m = t.match
        if m.categories is not None and not any(category_matches(c, facts.categories) for c in m.categories):
            continue
        if m.min_age is not None and age < m.min_age:
            continue
        if m.max_age is not None and age > m.max_age:
            continue
        if best is None or t.per_meal_fen > best.per_meal_fen:
            best = t
    return best


def decide_subsidy(policy: Policy | None, facts: ResidentFacts, meal_day: date, meal: str,
                   price_fen: int, usage: Usage) -> SubsidyDecision:
    if price_fen < 0:
        raise ValueError("price_fen must not be negative")
    stopped = no_subsidy_reason(facts.status, facts.status_date, meal_day)
    if stopped:
        return SubsidyDecision(0, None, stopped)
    if policy is None or not policy.in_force(meal_day):
        return SubsidyDecision(0, None, "政策未生效")
    if meal not in policy.subsidized_meals:
        return SubsidyDecision(0, None, f"{meal}不在补贴范围")
    if facts.birth_date is None:
        return SubsidyDecision(0, None, "缺少出生日期，无法核定年龄")
    age = age_on(facts.birth_date, meal_day)
    if age < policy.eligibility.min_age:
        return SubsidyDecision(0, None, f"未满{policy.eligibility.min_age}岁")
    if policy.eligibility.hukou is not None and facts.hukou not in policy.eligibility.hukou:
        return SubsidyDecision(0, None, "户籍不符")
    tier = matching_tier(policy, facts, age)
    if tier is None:
        return SubsidyDecision(0, None, "不符合任何补贴档次")
    lim = policy.limits
    if lim.subsidized_meals_per_day is not None and usage.subsidized_meals_today >= lim.subsidized_meals_per_day:
        return SubsidyDecision(0, tier.name, "今日已享受补贴", tier.per_meal_fen, _left(policy, usage))
    amount = tier.per_meal_fen
    notes = []
    if lim.amount_per_month_fen is not None:
        left = max(0, lim.amount_per_month_fen - usage.amount_this_month_fen)
        if left <= 0:
            return SubsidyDecision(0, tier.name, "本月补贴额度已用完", tier.per_meal_fen, 0)
        if left < amount:
            amount = left
            notes.append(f"本月补贴额度只剩{fen_to_yuan(left)}元")
    if price_fen < amount:
        amount = price_fen
        notes.append("补贴不超过餐费")
    reason = f"{tier.name}，每餐补贴{fen_to_yuan(tier.per_meal_fen)}元"
    if notes:
        reason += "（" + "，".join(notes) + "）"
    left_after = None
    if lim.amount_per_month_fen is not None:
        left_after = max(0, lim.amount_per_month_fen - usage.amount_this_month_fen - amount)
    return SubsidyDecision(amount, tier.name, reason, tier.per_meal_fen, left_after)


def _left(policy: Policy, usage: Usage) -> int | None:
    if policy.limits.amount_per_month_fen is None:
        return None
    return max(0, policy.limits.amount_per_month_fen - usage.amount_this_month_fen)
