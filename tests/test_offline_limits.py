"""The district's offline limits (issue 21, point 4): caps on balance payments while a
terminal is offline (per sale, per day), no subsidy after the offline time, blocked cards
and residents at every terminal after its next sync, and the server quarantining an
offline sale that broke them and was pushed anyway."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st
from sqlalchemy import delete, select

from kiosk.billing.offline import (OfflineLimits, balance_refusal, blocked_card, offline_for, subsidy_stop)
from kiosk.db import changes
from kiosk.db.models import AuditEntry, BlockedId, OfflineLimit, Order, QuarantinedOp, utcnow
from kiosk.errors import (BlockedCardError, BlockedResidentError, OfflineDayCapError, OfflineSaleCapError,
                          ServerUnreachableError)

from tests.conftest import staff_actor
from tests.district_helpers import District

PASSWORD = {"KIOSK_STAFF_PASSWORD": "adm-console-246810"}
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------------- the pure rules
def test_offline_is_what_the_sync_state_says():
    # synced a moment ago: online; a failed sync since: offline, counted from the last success
    assert offline_for(T0, T0 - timedelta(seconds=4), None, 5) is None
    assert offline_for(T0, T0 - timedelta(seconds=4), T0 - timedelta(seconds=1), 5) == timedelta(seconds=4)
    # no sync for longer than the usual interval (a loop that stopped): offline too
    assert offline_for(T0, T0 - timedelta(seconds=20), None, 5) is None          # within 30 s
    assert offline_for(T0, T0 - timedelta(minutes=2), None, 5) == timedelta(minutes=2)
    assert offline_for(T0, T0 - timedelta(minutes=2), None, 60) is None          # 3 intervals of 60 s
    # never synced: not a replica yet; never reached although it tried: offline since the try
    assert offline_for(T0, None, None, 5) is None
    assert offline_for(T0, None, T0 - timedelta(hours=1), 5) == timedelta(hours=1)


def test_the_subsidy_stops_after_the_offline_time():
    lim = OfflineLimits()                           # the default: 24 h
    assert subsidy_stop(lim, None) is None
    assert subsidy_stop(lim, timedelta(hours=23, minutes=59)) is None
    assert subsidy_stop(lim, timedelta(hours=24, seconds=1)) == "网络断开已超过一天，今天暂不能享受补贴"
    assert "6 小时" in subsidy_stop(OfflineLimits(subsidy_offline_s=6 * 3600), timedelta(hours=7))


@given(per_sale=st.one_of(st.none(), st.integers(0, 50_000)), per_day=st.one_of(st.none(), st.integers(0, 50_000)),
       spent=st.integers(0, 50_000), to_pay=st.integers(0, 50_000),
       pay=st.sampled_from(["balance", "cash", "card"]), off=st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_balance_caps_refuse_exactly_what_is_over_them(per_sale, per_day, spent, to_pay, pay, off):
    lim = OfflineLimits(per_sale_fen=per_sale, per_day_fen=per_day)
    r = balance_refusal(lim, None if off is None else timedelta(seconds=off), pay, to_pay, spent)
    over_sale = per_sale is not None and to_pay > per_sale
    over_day = per_day is not None and spent + to_pay > per_day
    should = off is not None and pay == "balance" and to_pay > 0 and (over_sale or over_day)
    assert (r is not None) == should
    if r is not None:
        assert r.kind == ("per_sale" if over_sale else "per_day")
        assert "网络暂时断开" in r.message and "请用现金或找工作人员" in r.message


def test_the_server_holds_a_sale_said_online_to_the_caps_when_it_had_not_heard_from_the_terminal():
    """A terminal cannot escape the offline caps by saying it was online: the server counts
    from the terminal's last pull before the push."""
    from kiosk.district.domain.derive import SILENT_GRACE_S, OfflineSale, check_offline

    lim = OfflineLimits(per_sale_fen=1000, per_day_fen=2000)
    order = {"id": "O1", "resident_id": "R1", "pay_method": "balance", "to_pay_fen": 1500, "subsidy_fen": 0}
    said_online = OfflineSale(lim, None, timedelta(seconds=SILENT_GRACE_S - 1), 0, None)
    assert check_offline(order, said_online) == []                     # pulled lately: it was online
    silent = OfflineSale(lim, None, timedelta(hours=2), 0, None)
    [p] = check_offline(order, silent)
    assert "超过离线每餐限额 10.00 元" in p.reason and "终端称在线，但服务器已有 2.0 小时未收到它的同步" in p.reason
    [p] = check_offline(dict(order, to_pay_fen=800), OfflineSale(lim, None, timedelta(hours=2), 1500, None))
    assert "超过离线每天限额 20.00 元" in p.reason
    assert check_offline(dict(order, pay_method="cash"), silent) == []      # the caps are on balance payments
    claimed = OfflineSale(lim, timedelta(minutes=10), timedelta(minutes=10), 0, None)
    assert "断网 10 分钟" in check_offline(order, claimed)[0].reason


def test_blocked_cards_are_matched_as_the_counter_reads_them():
    lim = OfflineLimits(blocked_cards=frozenset({"ZL0002"}))
    assert blocked_card(lim, " zl0002 ") and not blocked_card(lim, "ZL0001") and not blocked_card(lim, None)


# ---------------------------------------------------------------------- the district
@pytest.fixture
def district(env, tmp_path, formats):
    d = District(tmp_path, formats)
    d.start()
    yield d
    d.close()


def sync(app):
    from kiosk.terminal.sync.client import SyncClient

    c = SyncClient(app)
    try:
        return c.sync()
    finally:
        c.close()


def go_offline(d, *terms):
    """The cable is pulled: the server stops and each terminal's next sync fails."""
    d.stop()
    for t in terms:
        with pytest.raises(ServerUnreachableError):
            sync(t)


def set_state(app, **values):
    from kiosk.terminal.sync.client import set_state as put

    with app.db.session() as s:
        s.info[changes.APPLY] = True
        for k, v in values.items():
            put(s, k, v)


def test_an_offline_terminal_keeps_the_districts_caps_and_stops_the_subsidy(district):
    d = district
    t1 = d.terminal("C1")
    sync(t1)
    t1.billing.topup("R0001", 10_000, actor=staff_actor(t1, "S01"))
    sync(t1)
    # the district admin sets the limits (audited, password) and blocks a lost card
    out = json.loads(d.cli("offline", "set", "--per-sale", "12", "--per-day", "20", "--subsidy-hours", "24",
                           "--staff", "ADM", "--json", env=PASSWORD).stdout)
    assert (out["per_sale_fen"], out["per_day_fen"], out["subsidy_offline_s"]) == (1200, 2000, 86400)
    assert t1.residents.by_card("ZL0002").resident_id == "R0002"
    d.cli("offline", "block", "--card", "ZL0002", "--reason", "挂失（家属来电）", "--staff", "ADM", env=PASSWORD)
    assert t1.residents.by_card("ZL0002").resident_id == "R0002"      # not synced yet: not known here
    refused = d.cli("offline", "set", "--per-sale", "12", "--staff", "ADM", env={"KIOSK_STAFF_PASSWORD": "wrong-pw-1"},
                    check=False)
    assert refused.returncode != 0                                   # the password is checked
    sync(t1)
    # the card is refused at the terminal after its next sync, in plain words
    with pytest.raises(BlockedCardError) as ei:
        t1.residents.by_card("ZL0002")
    assert ei.value.user_message == "这张卡已挂失，请找工作人员"
    # online, the caps do not apply: a 23 元 meal paid from the balance
    big = t1.billing.settle("R0001", ["D001", "D003", "D005"], meal="午餐", pay="balance")
    assert big.to_pay_fen > 1200 and t1.billing.balance("R0001") == 10_000 - big.to_pay_fen

    go_offline(d, t1)
    with pytest.raises(OfflineSaleCapError) as ei:                   # over the per-sale cap
        t1.billing.settle("R0001", ["D001", "D003"], meal="午餐", pay="balance")
    assert ei.value.user_message == "网络暂时断开，余额每餐最多付 12 元，请用现金或找工作人员"
    assert "per-sale cap 1200" in ei.value.detail
    cash = t1.billing.settle("R0001", ["D001", "D003"], meal="午餐", pay="cash")      # cash still works
    a = t1.billing.settle("R0001", ["D001"], meal="午餐", pay="balance")               # 12 元: at the cap
    b = t1.billing.settle("R0001", ["D004", "D006"], meal="午餐", pay="balance")        # 6 元: 18 of 20 today
    assert (a.to_pay_fen, b.to_pay_fen) == (1200, 600)
    with pytest.raises(OfflineDayCapError) as ei:                    # 18 + 6 > 20 元 of the day
        t1.billing.settle("R0001", ["D002"], meal="午餐", pay="balance")
    assert ei.value.user_message == ("网络暂时断开，余额每天最多付 20 元，今天还能用余额付 2 元，"
                                     "请用现金或找工作人员")
    with t1.db.session() as s:                                       # the orders say they were sold offline
        offline = dict(s.execute(select(Order.id, Order.offline_s)).all())
    assert offline[big.order_id] is None and all(offline[x.order_id] is not None for x in (cash, a, b))

    # offline for more than a day: no subsidy, the bill says why
    from kiosk.terminal.counter import KioskService

    from kiosk.timeutil import CST, now_cst

    lunch = datetime.combine(now_cst().date(), datetime.min.time(), CST).replace(hour=12)
    g = KioskService(t1).checkout.greet("R0002", at=lunch)
    assert g.subsidy_fen > 0
    day_ago = (utcnow() - timedelta(hours=25)).isoformat()
    from kiosk.terminal.sync.status import sync_status

    set_state(t1, last_sync=day_ago, offline_since=None)          # a sync loop that stopped a day ago
    assert sync_status(t1).online is False                        # the counter's status says what billing counts
    set_state(t1, last_sync=day_ago, offline_since=day_ago)
    g = KioskService(t1).checkout.greet("R0002", at=lunch)
    assert g.subsidy_fen == 0 and g.subsidy_text == "本餐没有补贴：网络断开已超过一天，今天暂不能享受补贴"
    qr = t1.billing.quote("R0002", ["D002"], meal="午餐")          # `kiosk quote` says the same as the counter
    assert qr.quote.subsidy_fen == 0 and qr.quote.reason == "网络断开已超过一天，今天暂不能享受补贴"
    assert qr.offline_s is not None and qr.offline_s > 24 * 3600
    late = t1.billing.settle("R0002", ["D002"], meal="午餐", pay="cash")
    assert late.subsidy_fen == 0 and late.reason == "网络断开已超过一天，今天暂不能享受补贴"

    # back online: everything the terminal sold within the limits is applied, nothing held
    d.start()
    rep = sync(t1)
    assert rep.rejected == 0 and rep.pending == 0
    app = d.server_app()
    try:
        with app.db.session() as s:
            assert s.scalars(select(QuarantinedOp)).all() == []
            assert {late.order_id, a.order_id, b.order_id, cash.order_id} <= set(s.scalars(select(Order.id)))
            acts = [x.action for x in s.scalars(select(AuditEntry).where(AuditEntry.action.like("offline.%")))]
        assert acts == ["offline.set", "offline.block"]
    finally:
        app.close()
    show = json.loads(d.cli("offline", "show", "--json").stdout)
    assert [(x["kind"], x["value"], x["name"]) for x in show["blocked"]] == [("card", "ZL0002", "王德福")]


def test_a_blocked_resident_is_refused_at_a_terminal_after_its_next_sync(district):
    d = district
    t1 = d.terminal("C1")
    sync(t1)
    d.cli("offline", "block", "--resident", "R0003", "--reason", "冒用他人身份", "--staff", "ADM", env=PASSWORD)
    from kiosk.errors import PermissionDeniedError
    from kiosk.services.offline_limits import unblock

    with pytest.raises(PermissionDeniedError, match="设置离线限额和挂失名单"):    # counter staff cannot lift it
        unblock(t1, staff_actor(t1, "S01"), "resident", "R0003")
    sync(t1)
    with pytest.raises(BlockedResidentError) as ei:
        t1.billing.settle("R0003", ["D002"], meal="午餐", pay="cash")
    assert ei.value.user_message == "刘秀英暂时不能在这里就餐，请找工作人员"
    with pytest.raises(BlockedResidentError, match="刘秀英暂时不能"):    # `kiosk quote` too
        t1.billing.quote("R0003", ["D002"], meal="午餐")
    from kiosk.terminal.counter import KioskService

    from kiosk.timeutil import CST, now_cst

    lunch = datetime.combine(now_cst().date(), datetime.min.time(), CST).replace(hour=12)
    with pytest.raises(BlockedResidentError, match="请找工作人员"):
        KioskService(t1).checkout.greet("R0003", at=lunch)
    d.cli("offline", "unblock", "--resident", "R0003", "--staff", "ADM", env=PASSWORD)
    sync(t1)
    assert t1.billing.quote("R0003", ["D002"], meal="午餐").resident_name == "刘秀英"   # the pull is heard at once
    assert t1.billing.settle("R0003", ["D002"], meal="午餐", pay="cash").order_id


def test_the_server_quarantines_an_offline_sale_over_the_caps_pushed_anyway(district):
    d = district
    t1, t2 = d.terminal("C1"), d.terminal("C2")
    sync(t1)
    sync(t2)
    t1.billing.topup("R0001", 10_000, actor=staff_actor(t1, "S01"))
    t1.billing.topup("R0002", 10_000, actor=staff_actor(t1, "S01"))
    sync(t1)
    d.cli("offline", "set", "--per-sale", "10", "--staff", "ADM", env=PASSWORD)
    sync(t1)
    sync(t2)
    go_offline(d, t1, t2)
    # canteen 1 runs software that ignores the limits (its copy of them is gone): it sells 12 元
    with t1.db.session() as s:
        s.info[changes.APPLY] = True
        s.execute(delete(OfflineLimit))
    over = t1.billing.settle("R0001", ["D001", "D003"], meal="午餐", pay="balance")     # 22 − 5 元 subsidy
    within = t1.billing.settle("R0002", ["D001"], meal="午餐", pay="balance")           # 12 − 6 元
    assert over.to_pay_fen > 1000 and 0 < within.to_pay_fen <= 1000
    # meanwhile the office lowers the cap to 3 元 and reports ZL0001 lost: canteen 2 cannot know
    d.cli("offline", "set", "--per-sale", "3", "--staff", "ADM", env=PASSWORD)
    d.cli("offline", "block", "--card", "ZL0001", "--reason", "挂失", "--staff", "ADM", env=PASSWORD)
    fair = t2.billing.settle("R0002", ["D001"], meal="午餐", pay="balance")   # 6 元: under the 10 it had
    by_card = t2.billing.settle("R0001", ["D002"], meal="午餐", pay="cash", identified_by="card")
    assert fair.to_pay_fen > 300

    d.start()
    r1, r2 = sync(t1), sync(t2)
    app = d.server_app()
    try:
        with app.db.session() as s:
            held = {q.payload["payload"]["rows"]["orders"][0]["id"]: q for q in s.scalars(select(QuarantinedOp))}
            stored = set(s.scalars(select(Order.id)))
        # the sale over the cap in force when canteen 1 went offline waits for an admin, not applied
        assert over.order_id in held and over.order_id not in stored
        assert "超过离线每餐限额 10.00 元" in held[over.order_id].reason
        assert held[over.order_id].resident_id == "R0001" and held[over.order_id].amount_fen == over.total_fen
        # within the caps it had: applied; the cap lowered while canteen 2 was offline does not hold it
        assert within.order_id in stored and fair.order_id in stored
        # the card lost while canteen 2 was offline: its sale is held too, saying the terminal could not know
        assert by_card.order_id in held and "ZL0001" in held[by_card.order_id].reason
        assert "尚未同步到" in held[by_card.order_id].reason
        assert len(held) == 2
        assert app.billing.balance("R0001") == 10_000          # the held sale has not taken the balance
    finally:
        app.close()
    assert r1.pending == 0 and r2.pending == 0
    q = json.loads(d.cli("report", "quarantine", "--json").stdout)
    assert {x["op_id"] for x in q["quarantined"]} == {h.op_id for h in held.values()}
    assert {x["kind_zh"] for x in q["quarantined"]} == {"售餐"}        # what the op was, in Chinese
    # an admin's decision applies it once (the same path as every op)
    d.cli("quarantine", "accept", held[over.order_id].op_id, "--staff", "ADM", "--note", "核实为本人", env=PASSWORD)
    app = d.server_app()
    try:
        with app.db.session() as s:
            assert s.get(Order, over.order_id) is not None
    finally:
        app.close()


def test_the_limits_a_terminal_had_are_the_ones_at_its_last_pull_not_at_its_own_account(district):
    """A cap lowered right after a terminal's last sync, then a sale within it: the server
    judges the sale by the cap in force at the terminal's last pull (its own record), not by
    the sale's time less the offline seconds the terminal reports (whole seconds: 0 here, as a
    sale in the same second as the sync reads). Before, such a sale was held as over the new
    cap, which the terminal could not have known; the suite's timing test caught it once in
    a few runs."""
    from kiosk.db.models import OutboxEntry

    d = district
    t = d.terminal("C2")
    sync(t)
    t.billing.topup("R0002", 10_000, actor=staff_actor(t, "S01"))
    d.cli("offline", "set", "--per-sale", "10", "--staff", "ADM", env=PASSWORD)
    sync(t)
    go_offline(d, t)
    d.cli("offline", "set", "--per-sale", "3", "--staff", "ADM", env=PASSWORD)     # after its last pull
    sale = t.billing.settle("R0002", ["D001"], meal="午餐", pay="balance")          # 6 元: under its 10
    assert 300 < sale.to_pay_fen <= 1000
    with t.db.session() as s:                       # the terminal's account: offline for 0 s
        s.info[changes.APPLY] = True
        for e in s.scalars(select(OutboxEntry)):
            orders = (e.payload.get("rows") or {}).get("orders") or []
            if any(o["id"] == sale.order_id for o in orders):
                body = json.loads(json.dumps(e.payload))
                for o in body["rows"]["orders"]:
                    o["offline_s"] = 0
                e.payload = body
    d.start()
    rep = sync(t)
    app = d.server_app()
    try:
        with app.db.session() as s:
            assert s.get(Order, sale.order_id) is not None, s.scalars(select(QuarantinedOp.reason)).all()
            assert s.scalars(select(QuarantinedOp)).all() == []
    finally:
        app.close()
    assert rep.pending == 0 and rep.rejected == 0


def test_limits_are_checked_before_the_password_and_only_set_on_the_server(district):
    d = district
    bad = d.cli("offline", "set", "--per-sale", "-3", "--staff", "ADM", env=PASSWORD, check=False)
    assert bad.returncode != 0 and "--per-sale" in bad.stderr + bad.stdout
    bad = d.cli("offline", "set", "--subsidy-hours", "9999", "--staff", "ADM", env=PASSWORD, check=False)
    assert bad.returncode != 0 and "小时" in bad.stderr + bad.stdout
    t = d.terminal("C1")
    sync(t)
    env = d.terminal_env("C1")
    import subprocess

    from tests.district_helpers import KIOSK
    r = subprocess.run(KIOSK + ["offline", "set", "--per-sale", "5", "--staff", "ADM"], env={**env, **PASSWORD},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "区服务器" in r.stdout + r.stderr
    with t.db.session() as s:
        assert s.scalars(select(BlockedId)).all() == []


def test_the_console_terminals_page_shows_the_offline_limits_and_the_blocked_list(tmp_path, monkeypatch):
    import asyncio
    import re

    import httpx

    from kiosk.config import get_settings
    from kiosk.db.models import Resident
    from kiosk.district.app import create_app
    from kiosk.district.domain import passwords
    from kiosk.services.context import App
    from kiosk.services.offline_limits import block, set_limits
    from kiosk.services.security import generate_key

    monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    for k in ("KIOSK_DATABASE_URL", "KIOSK_SERVER_URL", "KIOSK_SERVER_TOKEN", "KIOSK_CANTEEN_ID"):
        monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    app = App()
    try:
        app.residents.add_staff("A1", "区管理员", "admin", "86420135")
        admin = app.residents.authenticate("86420135", min_role="admin", staff_id="A1")["actor"]
        passwords.set_password(app, "A1", "区管理员 console-2026", actor=admin)
        with app.db.session() as s:
            s.add(Resident(id="R9", name="孙玉梅", card_no="ZL9009"))
        set_limits(app, admin, per_sale_fen=1500, subsidy_offline_s=12 * 3600)
        block(app, admin, "card", "zl9009", "家属报失")
        api = create_app(app.settings, kiosk_app=app)

        async def page() -> str:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as c:
                pre = re.search(r'name="csrf_token" value="([^"]+)"', (await c.get("/console/login")).text).group(1)
                r = await c.post("/console/login", data={"csrf_token": pre, "staff_id": "A1",
                                                         "password": "区管理员 console-2026"})
                assert r.status_code == 303
                r = await c.get("/console/terminals")
                assert r.status_code == 200
                first = r.text
                tok = re.search(r'id="offline-form">.*?name="csrf_token" value="([^"]+)"', first, re.S).group(1)
                # the admin changes them here, with the password again; a wrong one changes nothing
                r = await c.post("/console/terminals/offline", data={
                    "csrf_token": tok, "per_sale": "15", "per_day": "", "subsidy_hours": "12", "password": "wrong"})
                assert r.status_code == 303
                r = await c.post("/console/terminals/offline", data={
                    "csrf_token": tok, "per_sale": "8.5", "per_day": "30", "subsidy_hours": "6",
                    "password": "区管理员 console-2026"})
                assert r.status_code == 303
                r = await c.post("/console/terminals/blocked", data={
                    "csrf_token": tok, "action": "unblock", "kind": "card", "value": "ZL9009",
                    "password": "区管理员 console-2026"})
                r = await c.post("/console/terminals/blocked", data={
                    "csrf_token": tok, "action": "block", "kind": "resident", "value": "R9", "reason": "冒用",
                    "password": "区管理员 console-2026"})
                assert r.status_code == 303
                after = (await c.get("/console/terminals")).text
                return first, after

        html, after = asyncio.run(page())
        with app.db.session() as s:
            acts = [(a.action, a.actor) for a in s.scalars(select(AuditEntry).where(AuditEntry.action.like("offline.%"))
                                                          .order_by(AuditEntry.seq))]
        assert acts == [("offline.set", "A1"), ("offline.block", "A1"), ("offline.set", "A1"),
                        ("offline.unblock", "A1"), ("offline.block", "A1")]
    finally:
        app.close()
        get_settings.cache_clear()
    assert "已保存断网时的限额" in after and "已列入挂失名单" in after
    cells = [re.sub(r"<[^>]+>", "", x).strip() for x in re.findall(
        r"<td[^>]*>(.*?)</td>", re.search(r'<table id="offline-settings">(.*?)</table>', after, re.S).group(1), re.S)]
    assert cells[1::2] == ["8.50 元", "30 元", "6 小时"]
    blocked = re.search(r'<table id="offline-blocked">.*?<tbody>(.*?)</tbody>', after, re.S).group(1)
    assert "ZL9009" not in blocked and "R9" in blocked and "孙玉梅" in blocked
    settings = re.search(r'<table id="offline-settings">(.*?)</table>', html, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", x).strip() for x in re.findall(r"<td[^>]*>(.*?)</td>", settings, re.S)]
    assert cells == ["断网时余额每餐最多付", "15 元", "断网时每人每天余额最多付", "不限", "断网超过多少小时停发补贴", "12 小时"]
    blocked = re.search(r'<table id="offline-blocked">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    row = [re.sub(r"<[^>]+>", "", x).strip() for x in re.findall(r"<td[^>]*>(.*?)</td>", blocked, re.S)]
    assert row[:5] == ["助老卡", "ZL9009", "孙玉梅", "家属报失", "A1"]
