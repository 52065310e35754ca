"""The console keeps month-sized results a few minutes (kiosk.district.console.shared.cache):
only slow ones, shown at once while a stale one is computed again in the background."""
from __future__ import annotations

import time

import pytest

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


def test_the_server_computes_ahead_what_a_clerk_opens_first(env, monkeypatch):
    """The warmer (kiosk.district.console.warm) computes this and last month's pages before
    anyone asks: the first view of the reports page answers from the kept result, at once,
    and a second pass leaves fresh results alone."""
    from datetime import timedelta

    from kiosk.district.console.shared.cache import results
    from kiosk.district.console.warm import Warmer, warm_once
    from kiosk.district.domain import reports as dr
    from kiosk.timeutil import now_cst
    from tests.test_console_pages import ADMIN_PASSWORD, client, log_in, run

    calls: list[str] = []
    real = dr.monthly_table

    def slow_monthly_table(app, month):          # the size of a district: seconds
        calls.append(month)
        time.sleep(0.6)
        return real(app, month)

    monkeypatch.setattr(dr, "monthly_table", slow_monthly_table)
    this = f"{now_cst():%Y-%m}"
    last = f"{now_cst().date().replace(day=1) - timedelta(days=1):%Y-%m}"
    results.clear()
    monkeypatch.setenv("KIOSK_AUDIO", "off")
    srv = _console_server()
    app, api = srv["app"], srv["api"]
    done = warm_once(app)
    assert sorted(calls) == sorted([this, last]) and not done.failed
    monthly_keys = [k for k in done.computed if k[0] == "monthly"]
    assert sorted(k[2] for k in monthly_keys) == sorted([this, last])
    assert all(done.computed[k] >= 0.6 for k in monthly_keys)

    async def first_view():
        async with client(api) as c:
            await log_in(c, "A1", ADMIN_PASSWORD)
            t0 = time.perf_counter()
            r = await c.get("/console/reports", params={"month": last})
            return r, time.perf_counter() - t0

    r, took = run(first_view())
    assert r.status_code == 200 and "数据计算于" in r.text        # from the kept result
    assert took < 0.6 and sorted(calls) == sorted([this, last])   # not computed for the view
    assert not [k for k in warm_once(app).computed if k[0] == "monthly"]    # still fresh: left alone

    results.clear()                                  # the thread a server process runs does the same
    calls.clear()
    w = Warmer(app, interval_s=30).start()
    try:
        deadline = time.time() + 20
        while w.passes == 0 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        w.stop()
    assert w.passes >= 1 and sorted(calls) == sorted([this, last])
    results.clear()


def _console_server() -> dict:
    """A district server app over the fresh store of the ``env`` fixture, with the console's admin A1."""
    from kiosk.district.app import create_app
    from kiosk.district.domain import passwords
    from kiosk.services.context import App
    from tests.test_console_pages import ADMIN_PASSWORD, ADMIN_PIN

    app = App()
    app.residents.add_staff("A1", "区管理员", "admin", ADMIN_PIN)
    admin = app.residents.authenticate(ADMIN_PIN, min_role="admin", staff_id="A1")["actor"]
    passwords.set_password(app, "A1", ADMIN_PASSWORD, actor=admin)
    _opened.append(app)
    return {"api": create_app(app.settings, kiosk_app=app), "app": app}


_opened: list = []


@pytest.fixture(autouse=True)
def _close_apps():
    yield
    while _opened:
        _opened.pop().close()
