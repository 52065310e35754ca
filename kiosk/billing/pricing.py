"""A quote: the bill of one meal, with subsidy, to the fen."""
from __future__ import annotations

from dataclasses import dataclass

from kiosk.billing.subsidy import SubsidyDecision


@dataclass(frozen=True)
class Line:
    dish_id: str
    name: str
    price_fen: int
    quantity: int = 1

    @property
    def amount_fen(self) -> int:
        return self.price_fen * self.quantity


@dataclass(frozen=True)
class Quote:
    lines: tuple[Line, ...]
    total_fen: int
    subsidy_fen: int
    to_pay_fen: int
    tier: str | None
    reason: str
    month_left_fen: int | None


def total_of(lines: list[Line] | tuple[Line, ...]) -> int:
    for ln in lines:
        if ln.price_fen < 0 or ln.quantity < 1:
            raise ValueError(f"bad line {ln}")
    return sum(ln.amount_fen for ln in lines)


def make_quote(lines: list[Line], decision: SubsidyDecision) -> Quote:
    total = total_of(lines)
    subsidy = min(decision.subsidy_fen, total)
    return Quote(tuple(lines), total, subsidy, total - subsidy, decision.tier, decision.reason,
                 decision.month_left_fen)
