"""PRC resident ID numbers (GB 11643-1999): checksum, birth date and sex."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


@dataclass(frozen=True)
class IdInfo:
    number: str
    birth_date: date
    sex: str  # 男 / 女


def check_char(first17: str) -> str:
    return CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS)) % 11]


def parse_id_number(raw: str) -> IdInfo:
    """Validate an 18-character ID number; ValueError with a Chinese message otherwise."""
    n = str(raw).strip().upper()
    if len(n) != 18:
        raise ValueError(f"身份证号应为18位，实际{len(n)}位")
    if not n[:17].isdigit() or not (n[17].isdigit() or n[17] == "X"):
        raise ValueError("身份证号前17位须为数字，最后一位为数字或X")
    if check_char(n[:17]) != n[17]:
        raise ValueError(f"身份证号校验位错误（应为{check_char(n[:17])}）")
    try:
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        raise ValueError("身份证号中的出生日期无效") from None
    if born.year < 1890 or born > date.today():
        raise ValueError("身份证号中的出生日期不合理")
    return IdInfo(n, born, "男" if int(n[16]) % 2 else "女")
