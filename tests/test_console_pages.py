"""The console's structure, in process (httpx over ASGI, no browser): its handlers run in
the thread pool, so a slow report never holds up the terminals' API; every page of the
nav bar answers; bad parameters get a 4xx with a Chinese message, never a 500."""
from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from kiosk.config import get_settings

ADMIN_PIN = "86420135"
SUPERVISOR_PIN = "97531"
ADMIN_PASSWORD = "区管理员 console-2026"          # the console takes passwords, never PINs
SUPERVISOR_PASSWORD = "supervisor-97531-west"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A district server app over a fresh SQLite store with an admin and a supervisor."""
    from kiosk.district.app import create_app
    from kiosk.services.context import App
    from kiosk.services.security import generate_key

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("console_pages") / "home"
    mp.setenv("KIOSK_HOME", str(home))
    mp.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    for k in ("KIOSK_DATABASE_URL", "KIOSK_SERVER_URL", "KIOSK_SERVER_TOKEN", "KIOSK_CANTEEN_ID"):
        mp.delenv(k, raising=False)
    mp.setenv("KIOSK_AUDIO", "off")
    get_settings.cache_clear()
    app = App()
    try:
        app.residents.add_staff("A1", "区管理员", "admin", ADMIN_PIN)
        admin = app.residents.authenticate(ADMIN_PIN, min_role="admin", staff_id="A1")["actor"]
        app.residents.add_staff("S1", "主管", "supervisor", SUPERVISOR_PIN, actor=admin)
        from kiosk.district.domain import passwords

        passwords.set_password(app, "A1", ADMIN_PASSWORD, actor=admin)
        passwords.set_password(app, "S1", SUPERVISOR_PASSWORD, actor=admin)
        yield {"api": create_app(app.settings, kiosk_app=app), "app": app}
    finally:
        app.close()
        mp.undo()
        get_settings.cache_clear()


def client(api) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://testserver")


async def log_in(c: httpx.AsyncClient, staff: str, password: str) -> None:
    page = await c.get("/console/login")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = await c.post("/console/login", data={"csrf_token": pre, "staff_id": staff, "password": password})
    assert r.status_code == 303, r.text
    assert r.headers["location"].endswith("/console/")


def run(coro):
    return asyncio.run(coro)


def test_a_slow_report_does_not_hold_up_the_terminals_api(server, monkeypatch):
    """While a report takes 2 s to build, /api/v1/ping (same process, same event loop)
    answers at once: the report runs in the thread pool, not on the event loop."""
    from kiosk.district.domain import reports as dr

    slow_s = 2.0
    real = dr.monthly_table

    def slow_monthly_table(app, month):
        time.sleep(slow_s)           # a heavy report: synchronous SQL and rendering
        return real(app, month)

    monkeypatch.setattr(dr, "monthly_table", slow_monthly_table)

    async def scenario():
        async with client(server["api"]) as c:
            await log_in(c, "A1", ADMIN_PASSWORD)
            t0 = time.monotonic()
            report = asyncio.create_task(c.get("/console/reports", params={"month": "2026-11"}))
            await asyncio.sleep(0.3)                 # the report is being built now
            pings = []
            for _ in range(3):
                p0 = time.monotonic()
                r = await c.get("/api/v1/ping")
                assert r.status_code == 200 and r.json()["ok"] is True
                pings.append(time.monotonic() - p0)
            pinged_at = time.monotonic() - t0
            rep = await report
            return pings, pinged_at, time.monotonic() - t0, rep

    pings, pinged_at, report_s, rep = run(scenario())
    assert rep.status_code == 200 and "助餐补贴结算表" in rep.text
    assert report_s >= slow_s                         # the report really was slow
    assert pinged_at < slow_s - 0.5, (pings, pinged_at)   # and the pings did not wait for it
    assert max(pings) < 0.5, pings


def test_every_page_of_the_nav_bar_answers_and_supervisors_see_no_admin_link(server):
    from kiosk.district.console import pages

    links = pages.nav()
    assert [n.order for n in links] == sorted(n.order for n in links)
    admin_only = {n.path for n in links if n.role == "admin"}
    assert {"/imports", "/faces", "/audit"} <= admin_only

    async def scenario():
        out = {}
        async with client(server["api"]) as c:
            await log_in(c, "A1", ADMIN_PASSWORD)
            for n in links:
                r = await c.get("/console" + n.path)
                out[("admin", n.path)] = (r.status_code, r.text)
        async with client(server["api"]) as c:
            await log_in(c, "S1", SUPERVISOR_PASSWORD)
            for n in links:
                r = await c.get("/console" + n.path)
                out[("supervisor", n.path)] = (r.status_code, r.text)
        return out

    out = run(scenario())
    for n in links:
        status, text = out[("admin", n.path)]
        assert status == 200, (n.path, text[:300])
        for m in links:              # an admin sees every link
            assert f'href="/console{m.path}"' in text
        status, text = out[("supervisor", n.path)]
        assert status == (403 if n.role == "admin" else 200), n.path
        for m in links:
            assert (f'href="/console{m.path}"' in text) == (m.role != "admin"), (n.path, m.path)


def test_a_post_needs_a_login_and_its_csrf_token(server):
    async def scenario():
        async with client(server["api"]) as c:
            anon = await c.post("/console/welfare/R1/visited", data={"note": "x"})
            await log_in(c, "S1", SUPERVISOR_PASSWORD)
            no_csrf = await c.post("/console/welfare/R1/visited", data={"note": "x"})
            return anon, no_csrf

    anon, no_csrf = run(scenario())
    assert anon.status_code == 303 and anon.headers["location"].endswith("/console/login")
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text


@pytest.mark.parametrize("method, path, data, words", [
    ("GET", "/console/reconcile?month=9999-12", None, "月份「9999-12」超出范围"),
    ("GET", "/console/reconcile?month=2026-13", None, "月份应写成 YYYY-MM"),
    ("GET", "/console/reports?month=0000-01", None, "月份「0000-01」超出范围"),
    ("GET", "/console/reports?day=2026-02-30", None, "日期应写成 YYYY-MM-DD"),
    ("GET", "/console/proof?month=abc", None, "月份应写成 YYYY-MM"),
    ("GET", "/console/audit?since=0001-01-01", None, "起始日期「0001-01-01」超出范围"),
    ("GET", "/console/audit?until=9999-12-31", None, "截止日期「9999-12-31」超出范围"),
    ("GET", "/console/reports/audit.xlsx?since=0001-01-01", None, "起始日期「0001-01-01」超出范围"),
    ("GET", "/console/faces?months=abc", None, "未使用月数应为 1 到 120 之间的整数"),
    ("POST", "/console/faces/erase", {"resident_id": "R1", "months": "abc"}, "未使用月数应为 1 到 120 之间的整数"),
    ("POST", "/console/faces/erase", {"resident_id": "R1", "months": "99999999999999999999"}, "未使用月数"),
])
def test_a_bad_month_day_or_number_gets_a_4xx_in_chinese(server, method, path, data, words):
    """These answered 500 (issue 17): the month's end past year 9999, a day before year 1
    in UTC, int('abc')."""
    async def scenario():
        async with client(server["api"]) as c:
            await log_in(c, "A1", ADMIN_PASSWORD)
            if method == "GET":
                return await c.get(path)
            page = await c.get("/console/faces")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            return await c.post(path, data={**data, "csrf_token": csrf})

    r = run(scenario())
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert words in r.text


def test_month_and_day_parsing_is_one_function_with_bounds():
    from kiosk.errors import ValidationError
    from kiosk.timeutil import month_bounds, parse_day, parse_month
    from datetime import date

    assert parse_month("2026-11") == date(2026, 11, 1) and parse_month(" 2026-2 ") == date(2026, 2, 1)
    assert month_bounds(parse_month("2199-12")) == (date(2199, 12, 1), date(2199, 12, 31))
    assert month_bounds(date(2028, 2, 10)) == (date(2028, 2, 1), date(2028, 2, 29))
    assert parse_day("2026-11-05") == date(2026, 11, 5)
    for bad in ("9999-12", "0000-01", "2026-13", "2026-00", "2026/11", "abc", "", "2026-11-01", "１２３４-11"):
        with pytest.raises(ValidationError) as e:
            parse_month(bad, "--month")
        assert "--month" in e.value.user_message
    for bad in ("0001-01-01", "9999-12-31", "2026-02-30", "20261105", "2026-11-5", "abc", ""):
        with pytest.raises(ValidationError) as e:
            parse_day(bad, "起始日期")
        assert "起始日期" in e.value.user_message


def test_the_command_line_refuses_a_bad_month_or_day_with_exit_2(server, capsys):
    from kiosk.cli.main import main

    assert main(["report", "reconcile", "--month", "9999-12", "--json"]) == 2
    assert main(["audit", "--since", "0001-01-01"]) == 2
    assert main(["report", "daily", "--date", "2026-02-30", "--json"]) == 2
    cap = capsys.readouterr()
    err = cap.out + cap.err
    assert "月份「9999-12」超出范围" in err and "--since「0001-01-01」超出范围" in err and "--date应写成" in err
