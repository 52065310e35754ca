from datetime import date, timedelta

from kiosk.billing.recommend import Dish, Profile, excluded_reason, recommend

TODAY = date(2026, 11, 23)


def dish(i, name, cat, price=500, tags=(), allergens=(), available=None):
    return Dish(i, name, price, cat, frozenset(tags), frozenset(allergens), available)


MENU = [dish("D001", "清蒸鲈鱼", "荤菜", 1200, ("低脂", "高蛋白", "软烂"), ("鱼",), 40),
        dish("D002", "番茄炒蛋", "素菜", 600, ("软烂",), ("蛋",)),
        dish("D003", "回锅肉", "荤菜", 1000, ("辣",), (), 30),
        dish("D004", "清炒时蔬", "素菜", 400, ("低盐", "低脂", "低糖")),
        dish("D005", "米饭", "主食", 100),
        dish("D006", "南瓜小米粥", "主食", 200, ("软烂", "低盐")),
        dish("D007", "冬瓜排骨汤", "汤", 500, ("低盐",)),
        dish("D008", "红糖糍粑", "主食", 300, ("甜", "高糖")),
        dish("D009", "腌菜肉丝", "荤菜", 800, ("咸", "腌制"))]


def ids(sugg):
    return [s.dish.dish_id for s in sugg]


def test_balanced_set_with_reasons():
    s = recommend(MENU, Profile(frozenset(), frozenset()), [], TODAY)
    cats = [x.dish.category for x in s]
    assert cats == ["荤菜", "素菜", "主食", "汤"]
    assert all(x.reason for x in s)


def test_never_an_allergen():
    p = Profile(frozenset(), frozenset({"鱼", "蛋"}))
    s = recommend(MENU, p, [], TODAY)
    assert "D001" not in ids(s) and "D002" not in ids(s)
    assert excluded_reason(MENU[0], p) == "含过敏原：鱼"


def test_low_sugar_and_low_salt():
    s = recommend(MENU, Profile(frozenset({"低糖"}), frozenset()), [], TODAY)
    assert "D008" not in ids(s)
    assert "适合低糖" in next(x.reason for x in s if x.dish.dish_id == "D004")
    s = recommend(MENU, Profile(frozenset({"低盐"}), frozenset()), [], TODAY)
    assert "D009" not in ids(s)
    assert "D006" in ids(s)  # prefers 低盐 staple


def test_soft_food_prefers_soft():
    s = recommend(MENU, Profile(frozenset({"软食"}), frozenset()), [], TODAY)
    assert "D001" in ids(s) and "D006" in ids(s)


def test_vegetarian_gets_no_meat():
    s = recommend(MENU, Profile(frozenset({"素食"}), frozenset()), [], TODAY)
    assert not {"D001", "D003", "D007", "D009"} & set(ids(s))


def test_halal_no_pork():
    s = recommend(MENU, Profile(frozenset({"清真"}), frozenset()), [], TODAY)
    assert not {"D003", "D007"} & set(ids(s))


def test_prefers_past_choices_but_not_three_days_running():
    hist = [(TODAY - timedelta(days=5), ["D003"]), (TODAY - timedelta(days=4), ["D003"])]
    assert "D003" in ids(recommend(MENU, Profile(frozenset(), frozenset()), hist, TODAY))
    hist = [(TODAY - timedelta(days=2), ["D003"]), (TODAY - timedelta(days=1), ["D003"])]
    s = recommend(MENU, Profile(frozenset(), frozenset()), hist, TODAY)
    assert "D003" not in ids(s)
    assert "换换口味" in s[0].reason


def test_respects_stock():
    menu = [dish("A", "红烧鸡块", "荤菜", available=0), dish("B", "白菜", "素菜")]
    assert ids(recommend(menu, Profile(frozenset(), frozenset()), [], TODAY)) == ["B"]


# -- diet rules over random menus (hypothesis) ------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kiosk.billing.recommend import plan  # noqa: E402

DISH_TAGS = ["低糖", "低盐", "低脂", "软烂", "高蛋白", "辣", "甜", "高糖", "咸", "高盐", "腌制", "油炸", "肥腻",
             "高脂", "硬", "猪肉", "高嘌呤", "重口"]
NAMES = ["清蒸鲈鱼", "番茄炒蛋", "回锅肉", "清炒时蔬", "米饭", "南瓜小米粥", "冬瓜排骨汤", "红糖糍粑", "腌菜肉丝",
         "腊肉炒蒜苗", "豆腐汤", "炸鸡腿", "花生米", "酱肘子", "西兰花", "红烧肉套餐", "素三鲜套餐", "鸡蛋羹"]
DIETS = ["低糖", "低盐", "低脂", "软食", "素食", "清真", "低嘌呤", "忌辣"]
ALLERGENS = ["鱼", "蛋", "花生", "海鲜", "牛奶"]

# the rule each diet states, written independently of the recommender
FORBIDDEN = {"低糖": {"甜", "高糖"}, "低盐": {"咸", "高盐", "腌制"}, "低脂": {"油炸", "肥腻", "高脂"},
             "软食": {"硬", "油炸"}, "清真": {"猪肉"}, "低嘌呤": {"高嘌呤"}, "忌辣": {"辣"}}


def breaks(d, diet: str) -> bool:
    if FORBIDDEN.get(diet, set()) & d.tags:
        return True
    if diet == "素食" and (d.category == "荤菜" or
                          any(m in d.name.replace("鸡蛋", "蛋") for m in ("肉", "鱼", "鸡", "排骨", "肘"))):
        return True
    if diet == "清真" and any(p in d.name for p in ("回锅肉", "红烧肉", "腊肉", "排骨", "肘")):
        return True
    return diet == "低盐" and any(h in d.name for h in ("回锅", "腊", "腌", "酱"))


dishes = st.builds(lambda i, n, c, p, t, a, av: dish(f"X{i}", n, c, p, t, a, av),
                   st.integers(0, 999), st.sampled_from(NAMES),
                   st.sampled_from(["荤菜", "素菜", "主食", "汤", "套餐", None]), st.integers(0, 3000),
                   st.frozensets(st.sampled_from(DISH_TAGS), max_size=4),
                   st.frozensets(st.sampled_from(ALLERGENS), max_size=2), st.one_of(st.none(), st.integers(0, 3)))
menus = st.lists(dishes, min_size=0, max_size=14, unique_by=lambda d: d.dish_id)
profiles = st.builds(Profile, st.frozensets(st.sampled_from(DIETS), max_size=3),
                     st.frozensets(st.sampled_from(ALLERGENS), max_size=2))


@settings(max_examples=300, deadline=None)
@given(menus, profiles, st.one_of(st.none(), st.integers(0, 4000)))
def test_no_diet_rule_or_allergy_is_ever_broken(menu, profile, limit):
    p = plan(menu, profile, [], TODAY, spend_limit_fen=limit)
    for s in list(p.suggestions) + list(p.alternatives):
        d = s.dish
        assert not (d.allergens & profile.allergies), (d, profile)
        assert not any(breaks(d, t) for t in profile.diet_tags), (d, profile)
        assert d.available is None or d.available > 0
    if limit is not None:
        assert p.total_fen <= limit                              # within what the elder can pay
    assert p.why and "\n" not in p.why                           # why, in one line


def test_hui_guo_rou_never_goes_to_low_salt():
    s = recommend(MENU, Profile(frozenset({"低盐"}), frozenset()), [], TODAY)
    assert "D003" not in ids(s)
    assert excluded_reason(MENU[2], Profile(frozenset({"低盐"}), frozenset())) == "低盐：不宜回锅"


def test_a_set_meal_is_offered_when_it_suits_and_costs_no_more():
    menu = MENU + [dish("T01", "素三鲜套餐", "套餐", 1000, ("低盐", "软烂"))]
    p = plan(menu, Profile(frozenset({"低盐"}), frozenset()), [], TODAY)
    assert p.set_meal and ids(p.suggestions) == ["T01"] and "素三鲜套餐" in p.why
    salty = MENU + [dish("T02", "腊肉套餐", "套餐", 800, ("咸",))]
    p = plan(salty, Profile(frozenset({"低盐"}), frozenset()), [], TODAY)
    assert "T02" not in ids(p.suggestions) + ids(p.alternatives)


def test_stays_within_the_balance():
    p = plan(MENU, Profile(frozenset(), frozenset()), [], TODAY, spend_limit_fen=1300)
    assert p.total_fen <= 1300 and p.suggestions and "不超过您能付的钱" in p.why
