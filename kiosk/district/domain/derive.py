"""The server's own derivation of a pushed sale (pure): what the meal costs by the
server's menu, what the policy gives this resident for it, what is left to pay, and
whether the terminal's reported rows agree.

A terminal reports facts (this resident ate these dishes at this meal, paid this way);
the money is the server's. The rules are the terminal's own (kiosk.billing: the same
``decide_subsidy`` and ``make_quote`` the counter's checkout prices with), run on the
server's menu rows, the policy in force at the meal and the resident's record.

What the terminal's offline view explains is not a difference: a terminal that did
not know of the resident's other meals this day or month gives at most the subsidy
the policy gives with no meal counted yet (the district limits crossed that way stay
flags, kiosk.district.domain.push). Less is explained too (a meal it knew of, voided
since). Anything else is a ``Problem``:

* ``hard``: can never be applied, not even by an admin's decision: an amount outside
  the README's Limits (negative, over 10,000,000 元), a subsidy over the price, lines
  that do not add up to the total, ledger rows that do not match the order;
* soft: differs from the server's derivation (a price not on the menu, a dish of
  another canteen or day, a subsidy or tier the policy does not give, a meal date in
  the future, a resident who cannot eat): waits for an admin (待核查).

The district's offline limits (kiosk.billing.offline) are a terminal's own rules, sent to
it before it went offline, so they are not explained by its offline view: a sale it
should have refused by them (``check_offline``: a balance payment over the per-sale or
per-day cap in force when it last reached the server, a subsidy given after the offline
time, a blocked card or resident) is soft too and waits for an admin."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from kiosk.billing.offline import OfflineLimits, balance_refusal, subsidy_stop
from kiosk.billing.policy import Policy
from kiosk.billing.pricing import Line, make_quote
from kiosk.billing.subsidy import ResidentFacts, Usage, decide_subsidy
from kiosk.limits import CHECKOUT_MAX_DISHES
from kiosk.money import DISH_PRICE_MAX_FEN, MAX_AMOUNT_FEN, PORTIONS_MAX, fen_to_yuan

PAY_METHODS = ("balance", "cash", "card")
FUTURE_DAYS = 1          # a meal dated after tomorrow (China Standard Time) is not a meal served


@dataclass(frozen=True)
class Problem:
    reason: str          # in Chinese, with the figures (the console and `kiosk report quarantine` show it)
    hard: bool = False   # True: never applied, whoever decides


@dataclass(frozen=True)
class MenuRow:
    id: str
    canteen_id: str
    menu_date: date
    meal: str
    dish_id: str
    name: str
    price_fen: int


@dataclass(frozen=True)
class ResidentView:
    facts: ResidentFacts
    status: str


@dataclass(frozen=True)
class SaleView:
    """What the server knows for one order: the resident (None: unknown), the menu rows
    its lines name, the policy chosen for its meal and that policy's row id, the
    terminal's canteen and the server's today (CST)."""
    resident: ResidentView | None
    menu: dict[str, MenuRow]
    policy: Policy | None
    policy_row_id: str | None
    canteen_id: str
    today: date


def _yuan(fen: int) -> str:
    try:
        return fen_to_yuan(fen)
    except Exception:       # a value outside what fen_to_yuan formats: show it as it came
        return f"{fen / 100:.2f}"


def _amount_ok(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_AMOUNT_FEN


def check_bounds(order: dict, lines: list[dict], entries: list[dict]) -> list[Problem]:
    """The README's Limits for a sale, and its rows agreeing with each other (hard)."""
    out: list[Problem] = []
    oid = order.get("id")
    for k, zh in (("total_fen", "总价"), ("subsidy_fen", "补贴"), ("to_pay_fen", "应付")):
        if not _amount_ok(order.get(k)):
            out.append(Problem(f"订单 {oid} 的{zh} {_yuan(order.get(k) or 0)} 元超出范围（须在 0 至 "
                               f"{_yuan(MAX_AMOUNT_FEN)} 元之间）", True))
    total, subsidy, to_pay = order.get("total_fen"), order.get("subsidy_fen"), order.get("to_pay_fen")
    if not all(isinstance(v, int) for v in (total, subsidy, to_pay)):
        return out
    if subsidy > total:
        out.append(Problem(f"订单 {oid} 的补贴 {_yuan(subsidy)} 元超过餐费 {_yuan(total)} 元", True))
    if to_pay != total - subsidy:
        out.append(Problem(f"订单 {oid} 的应付 {_yuan(to_pay)} 元不等于总价减补贴（{_yuan(total)} − "
                           f"{_yuan(subsidy)}）", True))
    off = order.get("offline_s")
    if off is not None and (not isinstance(off, int) or isinstance(off, bool) or off < 0):
        out.append(Problem(f"订单 {oid} 的离线时长 {off!r} 秒不对", True))
    if order.get("pay_method") not in PAY_METHODS:
        out.append(Problem(f"订单 {oid} 的付款方式「{order.get('pay_method')}」未知", True))
    mine = [x for x in lines if x.get("order_id") == oid]
    if not mine:
        out.append(Problem(f"订单 {oid} 没有菜品", True))
    s = 0
    for x in mine:
        q, p = x.get("quantity"), x.get("price_fen")
        if not (isinstance(q, int) and 1 <= q <= PORTIONS_MAX) or not (isinstance(p, int) and 0 <= p <= DISH_PRICE_MAX_FEN):
            out.append(Problem(f"订单 {oid} 的菜品 {x.get('dish_id')} 数量 {q} 或单价 {_yuan(p or 0)} 元超出范围"
                               f"（单价 0 至 {_yuan(DISH_PRICE_MAX_FEN)} 元）", True))
            continue
        s += p * q
    dishes = sum(x["quantity"] for x in mine if isinstance(x.get("quantity"), int))
    if dishes > CHECKOUT_MAX_DISHES:
        out.append(Problem(f"订单 {oid} 有 {dishes} 份菜，一单最多 {CHECKOUT_MAX_DISHES} 份", True))
    if not out and s != total:
        out.append(Problem(f"订单 {oid} 的菜品合计 {_yuan(s)} 元与总价 {_yuan(total)} 元不符", True))
    out += _check_ledger(order, [e for e in entries if e.get("order_id") == oid])
    return out


def _check_ledger(order: dict, entries: list[dict]) -> list[Problem]:
    """A settled order's ledger rows, exactly as the checkout writes them: the charge (the
    total), the subsidy (when there is one) and the payment (from the balance: negative
    and affecting it; cash or card: positive, not affecting it)."""
    oid, rid, pay = order["id"], order["resident_id"], order["pay_method"]
    balance = pay == "balance"
    want = {"charge": (order["total_fen"], False, None)}
    if order["subsidy_fen"]:
        want["subsidy"] = (order["subsidy_fen"], False, None)
    want["payment"] = (-order["to_pay_fen"] if balance else order["to_pay_fen"], balance, pay)
    got: dict[str, list[dict]] = {}
    for e in entries:
        got.setdefault(str(e.get("kind")), []).append(e)
    out = []
    extra = sorted(set(got) - set(want))
    if extra:
        out.append(Problem(f"订单 {oid} 带有不属于结算的账目：{'、'.join(extra)}", True))
    for kind, (amount, affects, method) in want.items():
        es = got.get(kind, [])
        if len(es) != 1:
            out.append(Problem(f"订单 {oid} 的账目「{kind}」应有 1 条，上传了 {len(es)} 条", True))
            continue
        e = es[0]
        if e.get("amount_fen") != amount or bool(e.get("affects_balance")) != affects \
                or e.get("resident_id") != rid or (method is not None and e.get("method") != method):
            out.append(Problem(f"订单 {oid} 的账目「{kind}」金额 {_yuan(abs(e.get('amount_fen') or 0))} 元"
                               f"（{e.get('resident_id')}，{e.get('method')}）与订单不符", True))
    return out


def derive(order: dict, lines: list[dict], view: SaleView) -> list[Problem]:
    """The order against the server's own derivation (soft problems; the bounds first:
    ``check_bounds``)."""
    oid, rid = order["id"], order["resident_id"]
    day, meal = order["meal_date"], order["meal"]
    out: list[Problem] = []
    if view.resident is None:
        return [Problem(f"未知居民 {rid}（订单 {oid}）")]
    if view.resident.status != "active":
        out.append(Problem(f"居民 {rid} 的账户状态为 {view.resident.status}，不能就餐结算"))
    if day > view.today + timedelta(days=FUTURE_DAYS):
        out.append(Problem(f"订单 {oid} 的就餐日期 {day.isoformat()} 在将来（服务器今天是 {view.today.isoformat()}）"))
    priced: list[Line] = []
    for x in (x for x in lines if x.get("order_id") == oid):
        m = view.menu.get(x.get("menu_item_id"))
        if m is None:
            out.append(Problem(f"菜品 {x.get('dish_id')} 不在服务器的菜单上（{x.get('menu_item_id')}）"))
            continue
        if m.canteen_id != view.canteen_id:
            out.append(Problem(f"菜品 {m.dish_id} 是食堂 {m.canteen_id} 的菜单，不是本终端所属食堂 {view.canteen_id} 的"))
        if (m.menu_date, m.meal) != (day, meal):
            out.append(Problem(f"菜品 {m.dish_id} 在 {m.menu_date.isoformat()} {m.meal} 的菜单上，"
                               f"订单是 {day.isoformat()} {meal}"))
        if x.get("dish_id") != m.dish_id:
            out.append(Problem(f"菜单行 {m.id} 是菜品 {m.dish_id}，上传的是 {x.get('dish_id')}"))
        if x.get("price_fen") != m.price_fen:
            out.append(Problem(f"菜品 {m.dish_id}「{m.name}」的单价 {_yuan(x.get('price_fen') or 0)} 元与菜单 "
                               f"{_yuan(m.price_fen)} 元不符"))
        priced.append(Line(m.dish_id, m.name, m.price_fen, int(x.get("quantity") or 1)))
    if out:
        return out
    # the billing rules of the counter, with no meal counted yet: the most a terminal that
    # did not know of the resident's other meals could give
    q = make_quote(priced, decide_subsidy(view.policy, view.resident.facts, day, meal,
                                          sum(ln.amount_fen for ln in priced), Usage()))
    if order["total_fen"] != q.total_fen:
        out.append(Problem(f"订单 {oid} 的总价 {_yuan(order['total_fen'])} 元与菜单核算的 {_yuan(q.total_fen)} 元不符"))
    if order["subsidy_fen"] > q.subsidy_fen:
        out.append(Problem(f"订单 {oid} 的补贴 {_yuan(order['subsidy_fen'])} 元超过政策核定的最多 "
                           f"{_yuan(q.subsidy_fen)} 元（{q.tier or q.reason}）"))
    if order["subsidy_fen"] > 0 and order.get("tier") != q.tier:
        out.append(Problem(f"订单 {oid} 的补贴档次「{order.get('tier')}」与政策核定的「{q.tier or '无'}」不符"))
    if order["subsidy_fen"] > 0 and order.get("policy_row_id") != view.policy_row_id:
        out.append(Problem(f"订单 {oid} 引用的补贴政策 {order.get('policy_row_id')} 不是该餐适用的政策"))
    return out


NO_LIMITS = OfflineLimits()          # before the district's first setting: no caps, 24 h
# A terminal syncs every few seconds while it is online: a sale it says it made online, after
# the server had not seen it pull for this long, is held to the offline caps all the same
SILENT_GRACE_S = 300.0


@dataclass(frozen=True)
class OfflineSale:
    """What the server knows of an order's offline circumstances: the limits in force when
    the terminal last reached the server, how long it had been offline at the sale by its
    own account (``claimed``; None: it says it was online) and by the server's (the sale's
    time after the terminal's last pull before this push: ``since_pull``), the resident's
    offline balance payments that day at that terminal before this order, and why the card
    or resident was blocked at the sale (None: not blocked)."""
    limits: OfflineLimits
    claimed: timedelta | None
    since_pull: timedelta | None
    spent_before_fen: int
    blocked: str | None


def _span(t: timedelta) -> str:
    h = t.total_seconds() / 3600
    return f"{h:.1f} 小时" if h >= 1 else f"{max(1, round(t.total_seconds() / 60))} 分钟"


def check_offline(order: dict, view: OfflineSale) -> list[Problem]:
    """The order against the district's offline limits, with the terminal's own rules
    (kiosk.billing.offline): each breach a soft problem with its figures."""
    oid, rid = order["id"], order["resident_id"]
    out: list[Problem] = []
    if view.blocked:
        out.append(Problem(f"订单 {oid}：{view.blocked}"))
    # the subsidy's offline time: the longer of the two accounts (a terminal cannot hide it by
    # saying it was online when the server had not seen it pull for that long)
    spans = [t for t in (view.claimed, view.since_pull) if t is not None]
    off_subsidy = max(spans) if spans else None
    if order["subsidy_fen"] > 0 and subsidy_stop(view.limits, off_subsidy):
        out.append(Problem(f"订单 {oid} 在终端断网 {_span(off_subsidy)} 后仍给了补贴 {_yuan(order['subsidy_fen'])} 元"
                           f"（区里设定断网超过 {view.limits.subsidy_offline_s / 3600:g} 小时停发补贴）"))
    # the caps on balance payments: the terminal's account, or, when it says it sold online, the
    # server's (it had not pulled for longer than SILENT_GRACE_S before the sale)
    off_caps = view.claimed
    where = "" if off_caps is None else f"断网 {_span(off_caps)}"
    if off_caps is None and view.since_pull is not None and view.since_pull.total_seconds() > SILENT_GRACE_S:
        off_caps = view.since_pull
        where = f"终端称在线，但服务器已有 {_span(off_caps)}未收到它的同步"
    refused = balance_refusal(view.limits, off_caps, order["pay_method"], order["to_pay_fen"],
                              view.spent_before_fen)
    if refused is not None and refused.kind == "per_sale":
        out.append(Problem(f"订单 {oid} 离线售出（{where}），余额付 {_yuan(order['to_pay_fen'])} 元"
                           f"超过离线每餐限额 {_yuan(view.limits.per_sale_fen)} 元"))
    elif refused is not None:
        out.append(Problem(f"订单 {oid} 离线售出（{where}），居民 {rid} 当天离线已用余额付 "
                           f"{_yuan(view.spent_before_fen)} 元，加上这笔 {_yuan(order['to_pay_fen'])} 元超过离线每天限额 "
                           f"{_yuan(view.limits.per_day_fen)} 元"))
    return out


def limits_then(versions: list[tuple[datetime, OfflineLimits]], at: datetime) -> OfflineLimits:
    """The offline limits in force at ``at``: the newest setting made by then (``versions``
    sorted oldest first); the defaults before the first."""
    pick = NO_LIMITS
    for set_at, lim in versions:
        if set_at > at:
            break
        pick = lim
    return pick
