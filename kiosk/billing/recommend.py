"""Dish recommendation for one resident and today's menu: pure rules."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# diet tag -> dish tags it avoids / prefers
AVOID = {"低糖": {"甜", "高糖"}, "低盐": {"咸", "腌制"}, "低脂": {"油炸", "肥腻", "高脂"},
         "软食": {"硬", "油炸"}, "清真": {"猪肉", "非清真"}}
PREFER = {"低糖": {"低糖"}, "低盐": {"低盐"}, "低脂": {"低脂"}, "软食": {"软烂"}}
MEAT_HINT = ("肉", "排骨", "鸡", "鸭", "鱼", "虾", "蟹", "猪", "牛", "羊")
PORK_HINT = ("猪", "排骨", "回锅肉", "红烧肉", "腊肉", "肘")


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


def _is_meat(d: Dish) -> bool:
    return "荤" in (d.category or "") or any(h in d.name for h in MEAT_HINT) or "高蛋白" in d.tags


def excluded_reason(d: Dish, p: Profile) -> str | None:
    """Why a dish must not be offered to this resident, or None."""
    if d.available is not None and d.available <= 0:
        return "已售完"
    hit = d.allergens & p.allergies
    if hit:
        return f"含过敏原：{'、'.join(sorted(hit))}"
    for tag in p.diet_tags:
        bad = AVOID.get(tag, set()) & d.tags
        if bad:
            return f"{tag}：不宜{'、'.join(sorted(bad))}"
    if "素食" in p.diet_tags and _is_meat(d):
        return "素食"
    if "清真" in p.diet_tags and any(h in d.name for h in PORK_HINT):
        return "清真"
    return None


def _score(d: Dish, p: Profile, liked: dict[str, int]) -> tuple[float, list[str]]:
    score, why = 0.0, []
    for tag in sorted(p.diet_tags):
        good = PREFER.get(tag, set()) & d.tags
        if good:
            score += 2
            why.append(f"适合{tag}（{'、'.join(sorted(good))}）")
    if liked.get(d.dish_id):
        score += min(3, liked[d.dish_id]) * 0.8
        why.append("您常点")
    if "高蛋白" in d.tags:
        score += 0.5
    return score, why


def recommend(menu: list[Dish], profile: Profile, history: list[tuple[date, list[str]]],
              today: date) -> list[Suggestion]:
    """A balanced set: a protein dish, a vegetable, a staple and a soup when there is one.

    ``history`` is the resident's past orders (day, dish ids). A main (荤菜) dish
    eaten on each of the two previous days is not suggested a third day running."""
    liked: dict[str, int] = {}
    for _, ids in history:
        for i in ids:
            liked[i] = liked.get(i, 0) + 1
    days = sorted({d for d, _ in history if d < today}, reverse=True)
    recent = [set(ids) for d, ids in sorted(history, key=lambda x: x[0], reverse=True)
              if d in days[:2] and (today - d).days <= 2]
    two_running = set.intersection(*recent) if len(recent) >= 2 else set()

    ok = [d for d in menu if excluded_reason(d, profile) is None]
    slots = [("荤菜", lambda d: d.category == "荤菜" or (d.category is None and _is_meat(d)), "荤菜补充蛋白质"),
             ("素菜", lambda d: d.category == "素菜", "素菜补充维生素"),
             ("主食", lambda d: d.category == "主食", "主食"),
             ("汤", lambda d: d.category == "汤", "汤")]
    out: list[Suggestion] = []
    for slot, pred, base in slots:
        cands = [d for d in ok if pred(d)]
        if slot == "荤菜":
            fresh = [d for d in cands if d.dish_id not in two_running]
            if fresh:
                cands = fresh
        if slot == "荤菜" and not cands and "素食" in profile.diet_tags:
            cands = [d for d in ok if "高蛋白" in d.tags or "豆" in d.name]
        if not cands:
            continue
        ranked = sorted(cands, key=lambda d: (-_score(d, profile, liked)[0], d.price_fen, d.dish_id))
        best = ranked[0]
        why = _score(best, profile, liked)[1]
        if slot == "荤菜" and best.dish_id not in two_running and any(
                c.dish_id in two_running for c in [d for d in ok if pred(d)]):
            why.append("换换口味")
        out.append(Suggestion(best, "，".join([base, *why])))
    return out
