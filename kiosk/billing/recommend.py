"""Dish recommendation for one resident and today's menu: pure rules.

Three promises, each tested over random menus (tests/test_recommend.py):
* no suggested dish breaks a diet tag or an allergy of the resident (``excluded_reason``);
* the suggestion fits what the resident can pay (``spend_limit_fen``);
* it says why in one line (``Plan.why``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# diet tag -> dish tags that break it. A diet "低X" is also broken by a dish tagged "高X"
# (低盐 by 高盐, 低嘌呤 by 高嘌呤), a diet "忌X"/"不吃X"/"无X" by a dish whose tags, allergens or name hold X.
AVOID = {"低糖": {"甜", "高糖", "糖"}, "低盐": {"咸", "腌制", "高盐", "重盐", "重口"},
         "低脂": {"油炸", "肥腻", "高脂"}, "软食": {"硬", "油炸", "酥脆"}, "清真": {"猪肉", "非清真"},
         "素食": {"荤", "猪肉", "牛肉", "羊肉", "鸡肉", "海鲜"}}
# dish names that break a diet even when the menu forgot the tag (回锅肉 is salty and fat)
NAME_AVOID = {"低盐": ("回锅", "腊", "腌", "咸", "酱", "卤", "榨菜", "泡菜", "火腿", "香肠", "豆瓣", "咸菜"),
              "低糖": ("糖", "甜", "蜜", "拔丝", "糍粑"),
              "低脂": ("炸", "肥肠", "红烧肉", "五花", "扣肉", "回锅"),
              "软食": ("炸", "脆", "干煸", "锅巴", "坚果")}
PREFER = {"低糖": {"低糖"}, "低盐": {"低盐"}, "低脂": {"低脂"}, "软食": {"软烂"}}
MEAT_HINT = ("肉", "排骨", "鸡", "鸭", "鱼", "虾", "蟹", "猪", "牛", "羊", "肘", "腊", "火腿", "香肠", "蹄")
PORK_HINT = ("猪", "排骨", "回锅肉", "红烧肉", "腊肉", "肘")
SET_MEAL = "套餐"


@dataclass(frozen=True)
class Dish:
    dish_id: str
    name: str
    price_fen: int
    category: str | None
    tags: frozenset[str]
    allergens: frozenset[str]
    available: int | None  # portions left, None = unlimited


@dataclass(frozen=True)
class Profile:
    diet_tags: frozenset[str]
    allergies: frozenset[str]


@dataclass(frozen=True)
class Suggestion:
    dish: Dish
    reason: str


@dataclass(frozen=True)
class Plan:
    """What to pre-select, and why in one line."""
    suggestions: tuple[Suggestion, ...]
    why: str
    set_meal: bool = False
    alternatives: tuple[Suggestion, ...] = field(default_factory=tuple)   # a 套餐 offered beside the set

    @property
    def total_fen(self) -> int:
        return sum(s.dish.price_fen for s in self.suggestions)


def _is_meat(d: Dish) -> bool:
    name = d.name.replace("鸡蛋", "蛋").replace("鸭蛋", "蛋")     # eggs are not meat
    return "荤" in (d.category or "") or any(h in name for h in MEAT_HINT) or "高蛋白" in d.tags


def _breaks(tag: str, d: Dish) -> str | None:
    """The first thing about dish ``d`` that breaks diet ``tag``, or None."""
    bad = AVOID.get(tag, set()) & d.tags
    if tag.startswith("低") and len(tag) > 1 and ("高" + tag[1:]) in d.tags:
        bad = bad | {"高" + tag[1:]}
    if bad:
        return "、".join(sorted(bad))
    hit = next((h for h in NAME_AVOID.get(tag, ()) if h in d.name), None)
    if hit:
        return hit
    for prefix in ("忌", "不吃", "无"):
        if tag.startswith(prefix) and len(tag) > len(prefix):
            what = tag[len(prefix):]
            if what in d.name or any(what in t for t in d.tags | d.allergens):
                return what
    if tag == "素食" and _is_meat(d):
        return "荤"
    if tag == "清真" and any(h in d.name for h in PORK_HINT):
        return "猪肉"
    return None


def excluded_reason(d: Dish, p: Profile) -> str | None:
    """Why a dish must not be offered to this resident, or None."""
    if d.available is not None and d.available <= 0:
        return "已售完"
    hit = d.allergens & p.allergies
    if not hit:     # an allergen the menu wrote in the name or the tags only (花生米, 海鲜粥)
        hit = {a for a in p.allergies if a and (a in d.name or a in d.tags)}
    if hit:
        return f"含过敏原：{'、'.join(sorted(hit))}"
    for tag in sorted(p.diet_tags):
        bad = _breaks(tag, d)
        if bad:
            return f"{tag}：不宜{bad}"
    return None


def _score(d: Dish, p: Profile, liked: dict[str, int]) -> tuple[float, list[str]]:
    score, why = 0.0, []
    for tag in sorted(p.diet_tags):
        good = PREFER.get(tag, set()) & d.tags
        if good:
            score += 2
            why.append(f"适合{tag}")
    if liked.get(d.dish_id):
        score += min(3, liked[d.dish_id]) * 0.8
        why.append("您常点")
    if "高蛋白" in d.tags:
        score += 0.5
    return score, why


SLOTS = (("荤菜", "荤菜补充蛋白质"), ("素菜", "素菜补充维生素"), ("主食", "主食"), ("汤", "汤"))


def _in_slot(slot: str, d: Dish) -> bool:
    if slot == "荤菜":
        return d.category == "荤菜" or (d.category is None and _is_meat(d))
    return d.category == slot


def plan(menu: list[Dish], profile: Profile, history: list[tuple[date, list[str]]], today: date, *,
         spend_limit_fen: int | None = None) -> Plan:
    """A balanced set (a protein dish, a vegetable, a staple, a soup when there is one), or
    the canteen's 套餐 when it suits the resident and costs no more; never a dish that breaks
    a diet tag or an allergy; the total at most ``spend_limit_fen`` (what the resident can
    pay plus the subsidy) when given.

    ``history`` is the resident's past orders (day, dish ids). A main (荤菜) dish eaten on each
    of the two previous days is not suggested a third day running."""
    liked: dict[str, int] = {}
    for _, ids in history:
        for i in ids:
            liked[i] = liked.get(i, 0) + 1
    days = sorted({d for d, _ in history if d < today}, reverse=True)
    recent = [set(ids) for d, ids in sorted(history, key=lambda x: x[0], reverse=True)
              if d in days[:2] and (today - d).days <= 2]
    two_running = set.intersection(*recent) if len(recent) >= 2 else set()
    limit = None if spend_limit_fen is None else max(0, spend_limit_fen)

    ok = [d for d in menu if excluded_reason(d, profile) is None and d.price_fen >= 0]
    left = limit
    out: list[Suggestion] = []
    dropped = False
    for slot, base in SLOTS:
        cands = [d for d in ok if _in_slot(slot, d)]
        if slot == "荤菜":
            fresh = [d for d in cands if d.dish_id not in two_running]
            if fresh:
                cands = fresh
            if not cands and "素食" in profile.diet_tags:
                cands = [d for d in ok if d.category != SET_MEAL and ("高蛋白" in d.tags or "豆" in d.name)]
        if not cands:
            continue
        ranked = sorted(cands, key=lambda d: (-_score(d, profile, liked)[0], d.price_fen, d.dish_id))
        fitting = [d for d in ranked if left is None or d.price_fen <= left]
        if not fitting:
            dropped = True
            continue
        best = fitting[0]
        if best is not ranked[0]:
            dropped = True
        why = _score(best, profile, liked)[1]
        if slot == "荤菜" and best.dish_id not in two_running and any(
                c.dish_id in two_running for c in ok if _in_slot(slot, c)):
            why.append("换换口味")
        out.append(Suggestion(best, "，".join([base, *why])))
        if left is not None:
            left -= best.price_fen
    sets = sorted((d for d in ok if d.category == SET_MEAL and (limit is None or d.price_fen <= limit)),
                  key=lambda d: (-_score(d, profile, liked)[0], d.price_fen, d.dish_id))
    diet = "、".join(sorted(profile.diet_tags))
    fit = "，不超过您能付的钱" if limit is not None else ""
    careful = f"按您的{diet}饮食挑选" if diet else "荤素搭配"
    if sets:
        s = sets[0]
        offer = Suggestion(s, "，".join(["套餐，荤素搭配", *_score(s, profile, liked)[1]]))
        total = sum(x.dish.price_fen for x in out)
        has_both = any(_in_slot("荤菜", x.dish) or "高蛋白" in x.dish.tags for x in out) and \
            any(_in_slot("素菜", x.dish) for x in out)
        if not out or s.price_fen <= total or not has_both:
            return Plan((offer,), f"推荐{s.name}：{careful}，一份就够{fit}", True, tuple(out))
        alt = (offer,)
    else:
        alt = ()
    if not out:
        return Plan((), "今天没有适合您的菜，请找工作人员", False, alt)
    why = f"推荐{len(out)}样菜：{careful}" + ("，荤素搭配" if diet else "") + fit
    if dropped:
        why += "，已去掉超出的菜"
    return Plan(tuple(out), why, False, alt)


def recommend(menu: list[Dish], profile: Profile, history: list[tuple[date, list[str]]],
              today: date, *, spend_limit_fen: int | None = None) -> list[Suggestion]:
    """The suggested dishes of ``plan`` (a 套餐 alone when it is the better offer)."""
    return list(plan(menu, profile, history, today, spend_limit_fen=spend_limit_fen).suggestions)
