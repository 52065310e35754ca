"""The console keeps month-sized results a few minutes (kiosk.district.console.shared.cache):
only slow ones, shown at once while a stale one is computed again in the background."""
from __future__ import annotations

import time

from kiosk.district.console.shared.cache import ResultCache


def test_a_slow_result_is_kept_a_quick_one_is_not_and_refresh_computes_again():
    cache = ResultCache(fresh_s=60, slow_s=0.05)
    calls = {"slow": 0, "quick": 0}

    def slow():
        calls["slow"] += 1
        time.sleep(0.06)
        return calls["slow"]

    def quick():
        calls["quick"] += 1
        return calls["quick"]

    first = cache.get("slow", slow)
    assert (first.value, first.kept, first.note) == (1, False, None)
    again = cache.get("slow", slow)
    assert (again.value, again.kept, calls["slow"]) == (1, True, 1) and "数据计算于" in again.note
    assert cache.get("slow", slow, refresh=True).value == 2 and cache.get("slow", slow).value == 2
    assert [cache.get("quick", quick).value for _ in range(3)] == [1, 2, 3]      # never kept
    cache.clear()
    assert cache.get("slow", slow).value == 3


def test_a_stale_result_is_shown_at_once_and_replaced_in_the_background():
    cache = ResultCache(fresh_s=0.0, slow_s=0.05)
    n = {"v": 0}

    def compute():
        n["v"] += 1
        time.sleep(0.3)
        return n["v"]

    assert cache.get("k", compute).value == 1
    t0 = time.perf_counter()
    stale = cache.get("k", compute)                 # stale: answered from the kept one, refresh started
    assert stale.value == 1 and stale.kept and time.perf_counter() - t0 < 0.1
    deadline = time.time() + 5
    while cache.get("k", compute).value == 1 and time.time() < deadline:
        time.sleep(0.05)
    assert cache.get("k", compute).value >= 2
