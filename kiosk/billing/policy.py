"""The subsidy policy format of the district platform (../shared/formats)."""
from __future__ import annotations

from functools import lru_cache

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kiosk.limits import POLICY_MAX_STRING, POLICY_MAX_TIERS
from kiosk.money import SUBSIDY_PER_MEAL_MAX_FEN, SUBSIDY_PER_MONTH_MAX_FEN, AmountError, yuan_to_fen

MEALS = ("早餐", "午餐", "晚餐")
MEAL_ALIASES = {"breakfast": "早餐", "lunch": "午餐", "dinner": "晚餐", "supper": "晚餐"}
CATEGORIES = ("低保", "低收入", "特困", "孤寡", "失能", "半失能", "失独", "残疾", "独居", "空巢", "留守",
              "高龄", "计生特殊家庭")
# categories that may carry a grade, written 类别:等级 (残疾:二级); a tier that names the
# bare category matches every grade of it, one that names a grade matches that grade only
GRADES = {"残疾": ("一级", "二级", "三级", "四级"), "失能": ("轻度", "中度", "重度"),
          "低保": ("A类", "B类", "C类"), "高龄": ("80-89岁", "90-99岁", "100岁及以上")}


@lru_cache(maxsize=1024)    # the same few category texts, every checkout
def split_category(value: str) -> tuple[str, str | None]:
    """'残疾:二级' -> ('残疾', '二级'); '独居' -> ('独居', None)."""
    base, sep, grade = str(value).replace("：", ":").partition(":")
    return base.strip(), (grade.strip() if sep else None)


def category_problem(value: str) -> str | None:
    """None when ``value`` is a known category (with a known grade, if any), else why not."""
    base, grade = split_category(value)
    if base not in CATEGORIES:
        return f"未知的人员类别「{value}」（可用：{'、'.join(CATEGORIES)}）"
    if grade is not None and grade not in GRADES.get(base, ()):
        if base not in GRADES:
            return f"人员类别「{base}」不分等级，不能写「{value}」"
        return f"「{base}」的等级应为 {'/'.join(GRADES[base])}，不是「{grade}」"
    return None


def category_matches(wanted: str, held: "frozenset[str] | set[str]") -> bool:
    """Does a resident holding ``held`` categories match the tier's ``wanted`` category?"""
    base, grade = split_category(wanted)
    for h in held:
        hb, hg = split_category(h)
        if hb == base and (grade is None or hg == grade):
            return True
    return False


def normalize_meal(value: str) -> str:
    v = str(value).strip()
    v = MEAL_ALIASES.get(v.lower(), v)
    if v not in MEALS:
        raise ValueError(f"unknown meal {value!r}; expected one of {MEALS}")
    return v


def _fen(v: Any, max_fen: int, what: str) -> int:
    """Yuan -> fen within a bound; the message says the bound (README: "Limits")."""
    try:
        return yuan_to_fen(v, max_fen=max_fen)
    except AmountError as exc:
        raise ValueError(f"{what}「{v}」无效：{exc.zh}（须为不小于0、最多两位小数的元金额） / {exc}") from None



class TierMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[str] | None = Field(default=None, max_length=len(CATEGORIES))
    min_age: int | None = Field(default=None, ge=0, le=150)
    max_age: int | None = Field(default=None, ge=0, le=150)  # inclusive: 80-89 is min 80, max 89

    @field_validator("categories")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        for c in v or []:
            why = category_problem(c)
            if why:
                raise ValueError(why)
        return v

    @model_validator(mode="after")
    def _ages(self) -> "TierMatch":
        if self.min_age is not None and self.max_age is not None and self.max_age < self.min_age:
            raise ValueError(f"max_age {self.max_age} is below min_age {self.min_age}")
        return self


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)   # stored with each order (orders.tier)
    match: TierMatch
    per_meal_fen: int = Field(alias="per_meal")

    @field_validator("per_meal_fen", mode="before")
    @classmethod
    def _money(cls, v: Any) -> int:
        return _fen(v, SUBSIDY_PER_MEAL_MAX_FEN, "每餐补贴")


class Eligibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_age: int = Field(ge=0, le=150)
    hukou: list[str] | None = Field(default=None, max_length=1000)


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subsidized_meals_per_day: int | None = Field(default=None, ge=0, le=3)   # three meals a day
    amount_per_month_fen: int | None = Field(default=None, alias="amount_per_month")

    @field_validator("amount_per_month_fen", mode="before")
    @classmethod
    def _money(cls, v: Any) -> int | None:
        return None if v is None else _fen(v, SUBSIDY_PER_MONTH_MAX_FEN, "每月补贴上限")


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str = Field(min_length=1, max_length=64)          # subsidy_policies.policy_id
    name: str = Field(min_length=1, max_length=POLICY_MAX_STRING)
    district: str = Field(min_length=1, max_length=100)   # subsidy_policies.district
    effective_from: date
    effective_to: date
    eligibility: Eligibility
    subsidized_meals: list[str] = Field(max_length=3)
    tiers: list[Tier] = Field(min_length=1, max_length=POLICY_MAX_TIERS)
    limits: Limits = Limits()

    @field_validator("subsidized_meals")
    @classmethod
    def _meals(cls, v: list[str]) -> list[str]:
        return [normalize_meal(m) for m in v]

    @model_validator(mode="after")
    def _dates(self) -> "Policy":
        if self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day <= self.effective_to
