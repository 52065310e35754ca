"""Reconciliation money (issue 17, point 6): balance overdrafts listed apart from subsidy
excess, each with its own total and decision words (domain, console, xlsx, PDF, JSON); a
charge-back (追回) lowers the subsidy claimed in the monthly reimbursement report; a flag
shows when its order reached the server; JSON labels of amounts in fen say 分."""
from __future__ import annotations

import io
import json
from datetime import date, datetime, timezone

import pytest

from kiosk.config import get_settings
from tests.test_console_reports import ADMIN_PASSWORD, MONTH, seed

RECEIVED = datetime(2026, 11, 3, 1, 15, tzinfo=timezone.utc)        # 09:15 in Beijing
LAST_PUSH = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)       # the terminal's last sync, much later


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    """The console's test district plus: a subsidy flag F2 on R0001's subsidised lunch of
    2 Nov (its order reached the server at RECEIVED) and a balance overdraft F3 of 15.00
    on R0002's lunch of 10 Nov. With F1 (a 5.00 double subsidy), the subsidy excess is
    10.00 and the overdraft 15.00: never 25.00 together."""
    from kiosk.db.models import DistrictFlag, PushedOrder, Terminal
    from kiosk.services.security import generate_key

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("reconcile_money") / "home"
    mp.setenv("KIOSK_HOME", str(home))
    mp.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    for k in ("KIOSK_DATABASE_URL", "KIOSK_SERVER_URL", "KIOSK_SERVER_TOKEN", "KIOSK_CANTEEN_ID"):
        mp.delenv(k, raising=False)
    mp.setenv("KIOSK_AUDIO", "off")
    data = seed(home)
    app, orders = data["app"], data["orders"]
    try:
        sub_order, bal_order = orders[0], orders[6]
        assert sub_order.subsidy_fen == 500 and sub_order.resident_id == "R0001"
        assert bal_order.resident_id == "R0002"
        with app.db.session() as s:
            s.get(Terminal, "C1-T1").last_push_at = LAST_PUSH
            s.add(PushedOrder(order_id=sub_order.order_id, terminal_id="C1-T1", op_id="op-1", received_at=RECEIVED))
            s.add(DistrictFlag(id="F2", order_id=sub_order.order_id, resident_id="R0001", meal_date=date(2026, 11, 2),
                               kind="daily_meals", over_fen=500, order_ids=[sub_order.order_id]))
            s.add(DistrictFlag(id="F3", order_id=bal_order.order_id, resident_id="R0002", meal_date=date(2026, 11, 10),
                               kind="balance", over_fen=1500, order_ids=[bal_order.order_id]))
        data["sub_order"], data["bal_order"] = sub_order, bal_order
        yield data
    finally:
        app.close()
        mp.undo()
        get_settings.cache_clear()


def test_overdraft_and_subsidy_excess_have_their_own_totals_and_words(district):
    from kiosk.district.domain import reconcile as rc
    from kiosk.district.domain.reports import reconciliation

    rep = rc.reconcile(district["app"], MONTH)
    assert rep["subsidy_excess"]["total_fen"] == 1000 and rep["subsidy_excess"]["flags"] == 2
    assert rep["balance_overdraft"]["total_fen"] == 1500 and rep["balance_overdraft"]["flags"] == 1
    assert "over_fen" not in rep                      # no total mixing the two
    groups = {f["flag_id"]: f["group"] for f in rep["flagged"]}
    assert groups == {"F1": "subsidy_excess", "F2": "subsidy_excess", "F3": "balance_overdraft"}
    assert rc.decision_zh("balance", "charge_back") != rc.decision_zh("daily_meals", "charge_back")
    assert "追回" in rc.decision_zh("daily_meals", "charge_back") and "补贴" in rc.decision_zh("daily_meals", "accept")
    assert "补贴" not in rc.decision_zh("balance", "accept") + rc.decision_zh("balance", "charge_back")

    table = reconciliation(district["app"], MONTH)          # what the xlsx and the PDF are made of
    subsidy, balance = table.sheets
    assert (subsidy.title, balance.title) == ("超出补贴", "余额透支")
    assert subsidy.head[4] == "超出补贴(元)" and balance.head[4] == "透支金额(元)"
    assert subsidy.totals()[4].fen == 1000 and balance.totals()[4].fen == 1500
    assert [r[0] for r in balance.rows] == ["R0002"] and {r[0] for r in subsidy.rows} == {"R0001"}
    summary = dict(table.summary)
    assert summary["超出补贴合计(元)"].fen == 1000 and summary["余额透支合计(元)"].fen == 1500


def test_reconcile_xlsx_and_pdf_keep_the_two_lists_apart(district, tmp_path):
    from openpyxl import load_workbook
    from pypdf import PdfReader

    from kiosk.district.domain.reports import reconciliation
    from kiosk.services.report_files import write_report_file, xlsx_bytes

    rep = reconciliation(district["app"], MONTH)
    wb = load_workbook(io.BytesIO(xlsx_bytes(rep)))
    sub_ws, bal_ws = wb["超出补贴"], wb["余额透支"]
    assert [c.value for c in sub_ws[1]][4] == "超出补贴(元)" and [c.value for c in bal_ws[1]][4] == "透支金额(元)"
    assert [c.value for c in sub_ws[sub_ws.max_row]][:5] == ["合计", None, None, None, 10.0]
    assert [c.value for c in bal_ws[bal_ws.max_row]][:5] == ["合计", None, None, None, 15.0]
    text = "".join(p.extract_text() for p in PdfReader(write_report_file(rep, tmp_path / "r.pdf")).pages)
    assert "余额透支合计(元)" in text and "15.00" in text and "10.00" in text
    assert "25.00" not in text


def test_a_flag_shows_when_its_order_reached_the_server(district):
    from kiosk.district.domain import reconcile as rc
    from kiosk.district.domain.reports import reconciliation

    f2 = next(f for f in rc.reconcile(district["app"], MONTH)["flagged"] if f["flag_id"] == "F2")
    assert f2["order_received_at"] == "2026-11-03T09:15:00+08:00"
    assert f2["order_terminal_id"] == "C1-T1"
    row = next(r for r in reconciliation(district["app"], MONTH).sheets[0].rows if "2026-11-03 09:15" in r)
    assert "2026-11-28" not in " ".join(str(c) for c in row)     # not the terminal's last sync
    from kiosk.db.models import Canteen, Terminal

    with district["app"].db.session(read_only=True) as s:        # the terminal as the console names it
        label = f"{s.get(Terminal, 'C1-T1').name or 'C1-T1'}（{s.get(Canteen, 'C1').name}）"
    assert label in row


def test_console_reconcile_page_lists_two_tables_with_their_own_totals(district):
    from tests.test_console_pages import client, log_in, run
    from kiosk.district.app import create_app

    api = create_app(district["app"].settings, kiosk_app=district["app"])

    async def scenario():
        async with client(api) as c:
            await log_in(c, "A1", ADMIN_PASSWORD)
            return await c.get("/console/reconcile", params={"month": MONTH})

    r = run(scenario())
    assert r.status_code == 200
    html = r.text
    sub = html[html.index('id="reconcile-subsidy_excess"'):html.index('id="reconcile-balance_overdraft"')]
    bal = html[html.index('id="reconcile-balance_overdraft"'):]
    assert "flag-F1" in sub and "flag-F2" in sub and "flag-F3" not in sub
    assert "flag-F3" in bal and "flag-F2" not in bal
    assert "10.00" in sub and "15.00" in bal and "25.00" not in html
    assert "追回（超出的补贴不予报销）" in sub and "追缴" in bal and "追回（超出的补贴不予报销）" not in bal
    assert "2026-11-03 09:15" in sub                  # when F2's order reached the server


def test_a_charge_back_lowers_the_subsidy_claimed(district, tmp_path, capsys):
    from openpyxl import load_workbook
    from pypdf import PdfReader

    from kiosk.cli.main import main
    from kiosk.district.domain import reconcile as rc
    from kiosk.district.domain.reports import monthly_table
    from kiosk.services.report_files import write_report_file, xlsx_bytes
    from kiosk.services.reports import monthly_subsidy, write_report

    app = district["app"]
    before = monthly_subsidy(app, MONTH)
    assert before.charged_back_fen == 0 and before.net_subsidy_fen == before.subsidy_fen == 3700
    rc.decide(app, "F2", "charge_back", district["admin"], "同日两餐")
    rc.decide(app, "F3", "charge_back", district["admin"])         # an overdraft: not subsidy
    rc.decide(app, "F1", "charge_back", district["admin"])         # its order had no subsidy: nothing to take back
    rep = monthly_subsidy(app, MONTH)
    assert rep.subsidy_fen == 3700 and rep.charged_back_fen == 500 and rep.net_subsidy_fen == 3200
    res = {r["resident_id"]: r for r in rep.residents}
    assert (res["R0001"]["charged_back_fen"], res["R0001"]["net_subsidy_fen"]) == (500, 2000)
    assert (res["R0002"]["charged_back_fen"], res["R0002"]["net_subsidy_fen"]) == (0, 1200)
    assert sum(t["charged_back_fen"] for t in rep.by_tier) == 500 == sum(c["charged_back_fen"] for c in rep.by_canteen)
    assert sum(t["net_subsidy_fen"] for t in rep.by_tier) == 3200 == sum(c["net_subsidy_fen"] for c in rep.by_canteen)

    # JSON: `kiosk report monthly --json`
    assert main(["report", "monthly", "--month", MONTH, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["subsidy_fen"], out["charged_back_fen"], out["net_subsidy_fen"]) == (3700, 500, 3200)

    # the console's xlsx and PDF (monthly_table): a 追回 column and the net total
    table = monthly_table(app, MONTH)
    detail = table.sheets[0]
    i_back, i_net = detail.head.index("追回(元)"), detail.head.index("应报销补贴(元)")
    assert detail.totals()[i_back].fen == 500 and detail.totals()[i_net].fen == 3200
    ws = load_workbook(io.BytesIO(xlsx_bytes(table)))["明细（每位居民）"]
    assert [c.value for c in ws[ws.max_row]][i_back:i_net + 1] == [5.0, 32.0]
    text = "".join(p.extract_text() for p in PdfReader(write_report_file(table, tmp_path / "m.pdf")).pages)
    assert "追回(元)" in text and "应报销补贴(元)" in text and "32.00" in text

    # the command line's own xlsx (kiosk report monthly --out F.xlsx)
    xl = load_workbook(write_report(app, rep, tmp_path / "m.xlsx"))
    head = [c.value for c in xl["明细"][1]]
    rows = {r[0].value: [c.value for c in r] for r in xl["明细"].iter_rows(min_row=2)}
    assert rows["R0001"][head.index("追回(元)")] == 5 and rows["R0001"][head.index("应报销补贴(元)")] == 20
    summary = [[c.value for c in r] for r in xl["汇总"].iter_rows()]
    assert ["追回(元)", 5, "应报销补贴(元)", 32, None] in summary


def test_report_json_labels_amounts_in_fen(district, capsys):
    from kiosk.cli.main import main

    assert main(["report", "daily", "--date", "2026-11-02", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert dict(out["summary"])["营业额(分)"] == 1300             # 13.00 yuan, as fen, labelled 分
    head = out["sheets"][0]["head"]
    assert head == ["食堂", "餐次", "订单数", "营业额(分)", "补贴(分)", "自付(分)"]
    assert not any("元" in h for s in out["sheets"] for h in s["head"])
    assert out["sheets"][0]["rows"][0][3:] == [1300, 500, 800]
