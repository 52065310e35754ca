"""What a terminal may sell while it cannot reach the district server (pure rules).

The district admin sets (``kiosk offline set``; the terminals get them at their next sync):

* ``per_sale_fen``: the most one meal may take from the balance (余额) while offline;
* ``per_day_fen``: the most one resident's balance may pay in one day while offline
  (every offline balance payment of that day this terminal knows of counts);
* ``subsidy_offline_s``: after the terminal has been offline this long, its meals get
  no subsidy (default 24 h): it cannot know what the elder ate elsewhere meanwhile;
* the blocked cards (挂失卡) and blocked residents: refused online and offline.

"Offline" is the terminal's sync state: the server has not been reached for longer than
the usual sync interval (``offline_for``). A terminal that never reached the server has
no replica to sell from, and is not counted offline here.

The server applies the same rules to a pushed offline sale (kiosk.district.domain.derive):
what a terminal should have refused and sold anyway waits in the quarantine list."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kiosk.money import yuan

DEFAULT_SUBSIDY_OFFLINE_S = 24 * 3600
SUBSIDY_OFFLINE_MAX_S = 30 * 24 * 3600        # the setting's bounds: up to 30 days
CAP_MAX_FEN = 5_000_00                        # a cap of at most 5000 元 (the top-up limit)
OFFLINE_GRACE_S = 30.0                        # "longer than the usual interval": at least this long


@dataclass(frozen=True)
class OfflineLimits:
    per_sale_fen: int | None = None           # None: no cap
    per_day_fen: int | None = None
    subsidy_offline_s: int = DEFAULT_SUBSIDY_OFFLINE_S
    blocked_cards: frozenset[str] = field(default_factory=frozenset)
    blocked_residents: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Refusal:
    """Why an offline balance payment is refused: ``kind`` (``per_sale`` / ``per_day``),
    the words for the elder, and the figures for the log."""
    kind: str
    message: str
    detail: str


def offline_for(now: datetime, last_sync: datetime | None, offline_since: datetime | None,
                interval_s: float) -> timedelta | None:
    """How long the terminal has been without the server, when that counts as offline
    (None: online). The time runs from the last successful sync; the terminal is offline
    when a sync failed since (``offline_since``) or none succeeded for longer than the
    usual interval (three intervals, at least ``OFFLINE_GRACE_S``)."""
    if last_sync is None:
        if offline_since is None:
            return None         # never tried: not a terminal's replica yet
        return max(timedelta(0), now - offline_since)
    gone = max(timedelta(0), now - last_sync)
    if offline_since is not None or gone.total_seconds() > max(3 * interval_s, OFFLINE_GRACE_S):
        return gone
    return None


def _hours(seconds: float) -> str:
    h = seconds / 3600
    if h >= 24 and h % 24 == 0:
        return "一天" if h == 24 else f"{int(h // 24)} 天"
    if h >= 1:
        return f"{h:g} 小时"
    return f"{max(1, round(seconds / 60))} 分钟"


def subsidy_stop(limits: OfflineLimits, offline: timedelta | None) -> str | None:
    """Why this meal gets no subsidy because the terminal has been offline too long
    (None: the subsidy is given as usual)."""
    if offline is None or offline.total_seconds() <= limits.subsidy_offline_s:
        return None
    return f"网络断开已超过{_hours(limits.subsidy_offline_s)}，今天暂不能享受补贴"


def blocked_card(limits: OfflineLimits, card_no: str | None) -> bool:
    return bool(card_no) and card_no.strip().upper() in limits.blocked_cards


def blocked_resident(limits: OfflineLimits, resident_id: str) -> bool:
    return resident_id in limits.blocked_residents


def balance_refusal(limits: OfflineLimits, offline: timedelta | None, pay: str, to_pay_fen: int,
                    spent_today_fen: int) -> Refusal | None:
    """An offline payment from the balance over a cap (None: it may go ahead). Cash and
    card are never capped; online there is no cap."""
    if offline is None or pay != "balance" or to_pay_fen <= 0:
        return None
    if limits.per_sale_fen is not None and to_pay_fen > limits.per_sale_fen:
        return Refusal("per_sale",
                       f"网络暂时断开，余额每餐最多付 {yuan(limits.per_sale_fen)} 元，请用现金或找工作人员",
                       f"offline {int(offline.total_seconds())} s: to pay {to_pay_fen} > per-sale cap "
                       f"{limits.per_sale_fen} fen")
    if limits.per_day_fen is not None and spent_today_fen + to_pay_fen > limits.per_day_fen:
        left = max(0, limits.per_day_fen - spent_today_fen)
        more = f"今天还能用余额付 {yuan(left)} 元" if left else "今天不能再用余额付"
        return Refusal("per_day",
                       f"网络暂时断开，余额每天最多付 {yuan(limits.per_day_fen)} 元，{more}，"
                       f"请用现金或找工作人员",
                       f"offline {int(offline.total_seconds())} s: spent {spent_today_fen} + to pay {to_pay_fen} "
                       f"> per-day cap {limits.per_day_fen} fen")
    return None
