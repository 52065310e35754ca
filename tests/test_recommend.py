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
