"""The subsidy policy format of the district platform (../shared/formats)."""
from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..money import yuan_to_fen

MEALS = ("早餐", "午餐", "晚餐")
MEAL_ALIASES = {"breakfast": "早餐", "lunch": "午餐", "dinner": "晚餐", "supper": "晚餐"}
CATEGORIES = ("低保", "特困", "失能", "半失能", "失独", "残疾", "独居", "空巢", "计生特殊家庭")


def normalize_meal(value: str) -> str:
    v = str(value).strip()
    v = MEAL_ALIASES.get(v.lower(), v)
    if v not in MEALS:
        raise ValueError(f"unknown meal {value!r}; expected one of {MEALS}")
    return v


def _fen(v: Any) -> int:
    return yuan_to_fen(v)


class TierMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[str] | None = None
    min_age: int | None = Field(default=None, ge=0, le=150)

    @field_validator("categories")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        for c in v or []:
            if c not in CATEGORIES:
                raise ValueError(f"unknown category {c!r}; known: {'、'.join(CATEGORIES)}")
        return v


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    match: TierMatch
    per_meal_fen: int = Field(alias="per_meal")

    @field_validator("per_meal_fen", mode="before")
    @classmethod
    def _money(cls, v: Any) -> int:
        return _fen(v)


class Eligibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_age: int = Field(ge=0, le=150)
    hukou: list[str] | None = None


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subsidized_meals_per_day: int | None = Field(default=None, ge=0)
    amount_per_month_fen: int | None = Field(default=None, alias="amount_per_month")

    @field_validator("amount_per_month_fen", mode="before")
    @classmethod
    def _money(cls, v: Any) -> int | None:
        return None if v is None else _fen(v)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str
    name: str
    district: str
    effective_from: date
    effective_to: date
    eligibility: Eligibility
    subsidized_meals: list[str]
    tiers: list[Tier] = Field(min_length=1)
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
