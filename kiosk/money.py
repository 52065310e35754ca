"""Money is integer fen. These convert to and from yuan text without floats."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_YUAN = re.compile(r"^\s*(\d+)(?:\.(\d{1,2}))?\s*$")


def yuan_to_fen(value: object) -> int:
    """'12.5' -> 1250. Raises ValueError for negatives, >2 decimals or non-numbers."""
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"negative amount: {value}")
        return value * 100
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, Decimal):
        value = format(value, "f")
    text = str(value).strip().replace("￥", "").replace("¥", "")
    m = _YUAN.match(text)
    if not m:
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not an amount in yuan: {value!r}") from None
        if d < 0:
            raise ValueError(f"negative amount: {value!r}")
        if d != d.quantize(Decimal("0.01")):
            raise ValueError(f"more than two decimals: {value!r}")
        return int(d * 100)
    whole, frac = m.group(1), (m.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(frac)


def fen_to_yuan(fen: int) -> str:
    """1250 -> '12.50'."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
