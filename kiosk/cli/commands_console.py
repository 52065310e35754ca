"""The district office's lists on the command line: `kiosk report welfare`,
`kiosk report proof-of-life`, `kiosk report daily`, and the PDF of
`kiosk report monthly --out F.pdf` (the same lists the web console shows)."""
from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from kiosk.cli.main import out_json


def _report_subparsers(sub) -> argparse._SubParsersAction:
    rp = sub.choices["report"]
    for action in rp._actions:   # argparse keeps a parser's subcommands in this action
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the `report` command has no subcommands")


def register(sub) -> None:
    rps = _report_subparsers(sub)
    w = rps.add_parser("welfare", help="关爱巡访: regulars living alone/空巢/失能 without a meal for N days")
    w.add_argument("--days", type=int, help="days without a meal (default: the district's setting, else 3)")
    w.add_argument("--date", help="the day to list for (YYYY-MM-DD, default today)")
    w.add_argument("--out", type=Path, help=".xlsx or .pdf")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=cmd_welfare)
    p = rps.add_parser("proof-of-life", help="高龄津贴: live-verified checkout days per resident aged 80+")
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.add_argument("--out", type=Path, help=".xlsx or .pdf")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_proof)
    d = rps.add_parser("daily", help="daily sales per canteen and portions per dish")
    d.add_argument("--date", help="YYYY-MM-DD (default today)")
    d.add_argument("--out", type=Path, help=".xlsx or .pdf")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_daily)
    # `report monthly --out F.pdf`: the PDF is written here, .xlsx/.csv by the monthly command itself
    rm = rps.choices["monthly"]
    xlsx_or_csv = rm.get_default("func")
    for action in rm._actions:
        if action.dest == "out":
            action.help = ".xlsx, .csv or .pdf"
    rm.set_defaults(func=lambda a: cmd_monthly_pdf(a) if a.out and a.out.suffix.lower() == ".pdf"
                    else xlsx_or_csv(a))


def _app():
    from kiosk.services.context import App

    return App()


def _day(text: str | None) -> date:
    from kiosk.timeutil import now_cst, parse_day

    return parse_day(text, "--date") if text else now_cst().date()


def _write(app, rep, out: Path, staff: str, action: str, subject: str) -> None:
    from kiosk.db import audit
    from kiosk.services.report_files import write_report_file

    write_report_file(rep, out)
    with app.db.session() as s:
        audit.record_file(s, staff, action, out, report=subject)


def cmd_monthly_pdf(a) -> int:
    from kiosk.money import fen_to_yuan
    from kiosk.district.domain.reports import monthly_table
    from kiosk.services.reports import monthly_subsidy

    app = _app()
    rep = monthly_table(app, a.month)
    _write(app, rep, a.out, a.staff, "report.monthly", a.month)
    m = monthly_subsidy(app, a.month)
    if a.json:
        out_json(m.to_json())
    else:
        print(f"{m.month}：补贴合计 {fen_to_yuan(m.subsidy_fen)} 元，追回 {fen_to_yuan(m.charged_back_fen)} 元，"
              f"应报销 {fen_to_yuan(m.net_subsidy_fen)} 元，已写入 {a.out}")
    return 0


def cmd_welfare(a) -> int:
    from kiosk.errors import ValidationError
    from kiosk.district.domain.reports import welfare_alerts, welfare_table

    if a.days is not None and not 1 <= a.days <= 60:
        raise ValidationError("--days 应在 1 到 60 之间", detail=f"--days {a.days}")
    app = _app()
    day = _day(a.date)
    alerts = welfare_alerts(app, day, a.days)
    if a.out:
        _write(app, welfare_table(alerts, day), a.out, "system", "report.welfare", str(day))
    if a.json:
        out_json([x.to_json() for x in alerts])
    else:
        if not alerts:
            print(f"{day}：没有需要巡访的居民")
        for x in alerts:
            visit = f"；最近巡访 {x.last_visit['at']}" if x.last_visit else "；未巡访"
            print(f"{x.resident_id} {x.name}（{'、'.join(x.categories)}）最后就餐 {x.last_meal} {x.last_canteen}，"
                  f"已 {x.days_without_meal} 天{visit}")
    return 0


def cmd_proof(a) -> int:
    from kiosk.district.domain.reports import proof_of_life, proof_table
    from kiosk.timeutil import parse_month

    app = _app()
    month = f"{parse_month(a.month, '--month'):%Y-%m}"
    rows = proof_of_life(app, month)
    if a.out:
        _write(app, proof_table(month, rows), a.out, "system", "report.proof_of_life", month)
    if a.json:
        out_json(rows)
    else:
        for r in rows:
            print(f"{r['resident_id']} {r['name']} {r['age']}岁：" +
                  (f"核验 {r['days']} 天（{'、'.join(r['verified_days'])}）" if r["days"] else "本月无核验"))
    return 0


def cmd_daily(a) -> int:
    from kiosk.district.domain.reports import daily_sales

    app = _app()
    day = _day(a.date)
    rep = daily_sales(app, day)
    if a.out:
        _write(app, rep, a.out, "system", "report.daily", str(day))
    if a.json:
        out_json(rep.to_json())
    else:
        for k, v in rep.summary:
            print(f"{k}：{v}")
    return 0
