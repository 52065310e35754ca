"""Money is integer fen. These convert to and from yuan text without floats.

Upper bounds (README: "Limits"): an amount is refused before anything is stored
when it is not finite, negative, has more than two decimals or passes its bound."""
from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_YUAN = re.compile(r"^\s*(\d+)(?:\.(\d{1,2}))?\s*$")

MAX_AMOUNT_FEN = 10 ** 9             # 1000万元: no amount of any kind is larger (fits a 32-bit column)
DISH_PRICE_MAX_FEN = 500_00          # a dish costs at most 500 元
TOPUP_MAX_FEN = 5_000_00             # one top-up is at most 5000 元
SUBSIDY_PER_MEAL_MAX_FEN = 100_00    # a policy gives at most 100 元 per meal
SUBSIDY_PER_MONTH_MAX_FEN = 3_000_00  # and at most 3000 元 per month
PORTIONS_MAX = 10_000                # portions of one dish on one menu


class AmountError(ValueError):
    """A refused amount; ``zh`` says why in Chinese, ``str()`` in English."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.zh = zh


def yuan_to_fen(value: object, *, max_fen: int = MAX_AMOUNT_FEN) -> int:
    """'12.5' -> 1250. Raises AmountError (a ValueError) for negatives, more than two
    decimals, non-numbers, NaN/Infinity and amounts above ``max_fen``."""
    fen = _to_fen(value)
    if fen > max_fen:
        raise AmountError(f"amount {value!r} is above the limit of {fen_to_yuan(max_fen)} yuan",
                          f"超过上限 {fen_to_yuan(max_fen)} 元")
    return fen


def _to_fen(value: object) -> int:
    if isinstance(value, bool) or value is None:
        raise AmountError(f"not an amount: {value!r}", "不是金额")
    if isinstance(value, int):
        if value < 0:
            raise AmountError(f"negative amount: {value}", "不能为负数")
        if value > MAX_AMOUNT_FEN:   # before multiplying a huge integer
            raise AmountError(f"amount {value} is absurdly large", f"超过上限 {fen_to_yuan(MAX_AMOUNT_FEN)} 元")
        return value * 100
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AmountError(f"not a finite amount: {value!r}", "不是有效数字（NaN 或无穷大）")
        value = repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise AmountError(f"not a finite amount: {value!r}", "不是有效数字（NaN 或无穷大）")
        value = format(value, "f")
    text = str(value).strip().replace("￥", "").replace("¥", "")
    if len(text) > 40:
        raise AmountError(f"not an amount in yuan: {text[:40]!r}...", "不是金额")
    m = _YUAN.match(text)
    if not m:
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise AmountError(f"not an amount in yuan: {value!r}", "不是金额") from None
        if not d.is_finite():
            raise AmountError(f"not a finite amount: {value!r}", "不是有效数字（NaN 或无穷大）")
        if d < 0:
            raise AmountError(f"negative amount: {value!r}", "不能为负数")
        if d > MAX_AMOUNT_FEN:
            raise AmountError(f"amount {value!r} is absurdly large", f"超过上限 {fen_to_yuan(MAX_AMOUNT_FEN)} 元")
        if d != d.quantize(Decimal("0.01")):
            raise AmountError(f"more than two decimals: {value!r}", "最多两位小数")
        return int(d * 100)
    whole, frac = m.group(1), (m.group(2) or "").ljust(2, "0")
    if len(whole) > 12:
        raise AmountError(f"amount {value!r} is absurdly large", f"超过上限 {fen_to_yuan(MAX_AMOUNT_FEN)} 元")
    return int(whole) * 100 + int(frac)


def fen_to_yuan(fen: int) -> str:
    """1250 -> '12.50'."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def yuan(fen: int) -> str:
    """Amounts as elders read them on the screen: 6 元, 12.50 元 (never 6.00)."""
    text = fen_to_yuan(fen)
    return text[:-3] if text.endswith(".00") else text


def yuan_decimal(fen: int) -> Decimal:
    """An amount as an exact number of yuan with two decimals (spreadsheet cells)."""
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))
