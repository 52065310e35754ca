"""A resident's roster status (the roster's 状态 / 状态日期) as pure rules.

在册 (registered) is the default. 暂停 (suspended), 迁出 (moved away) and 死亡
(deceased) take effect on their date: from that day the resident gets no subsidy at
any canteen; 迁出 and 死亡 also end checkout (the counter sends the elder to staff).
A status without a date is not in effect (the import refuses one)."""
from __future__ import annotations

from datetime import date

REGISTERED, SUSPENDED, MOVED, DECEASED = "registered", "suspended", "moved", "deceased"
STATUS_ZH = {REGISTERED: "在册", SUSPENDED: "暂停", MOVED: "迁出", DECEASED: "死亡"}
# what the roster cell may say (the format's Chinese words, and the English of the spec)
STATUS_OF_CELL = {**{zh: code for code, zh in STATUS_ZH.items()},
                  "registered": REGISTERED, "suspended": SUSPENDED, "moved": MOVED, "moved away": MOVED,
                  "deceased": DECEASED}
ENDS_CHECKOUT = frozenset({MOVED, DECEASED})


def status_in_effect(status: str | None, status_date: date | None, day: date) -> str | None:
    """The status that applies on ``day`` when it is not 在册 (None when the resident is
    registered, or the status's date has not come yet)."""
    if not status or status == REGISTERED or status_date is None:
        return None
    return status if day >= status_date else None


def no_subsidy_reason(status: str | None, status_date: date | None, day: date) -> str | None:
    """Why a meal on ``day`` gets no subsidy because of the resident's status (None: it may)."""
    st = status_in_effect(status, status_date, day)
    if st is None:
        return None
    return f"居民状态为{STATUS_ZH.get(st, st)}（自{status_date.isoformat()}起），不享受补贴"


def checkout_refusal(name: str, status: str | None, status_date: date | None, day: date) -> str | None:
    """The plain words the counter shows when the resident may not check out on ``day``
    (迁出 or 死亡 in effect), else None. 暂停 still eats, without subsidy."""
    st = status_in_effect(status, status_date, day)
    if st not in ENDS_CHECKOUT:
        return None
    return (f"{name}的登记状态是「{STATUS_ZH[st]}」（{status_date.isoformat()}起），"
            f"不能刷脸或刷卡就餐，请找工作人员")
