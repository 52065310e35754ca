"""`kiosk report overview` (the console's 概览 as JSON) and `kiosk report budget` (the
monthly subsidy budget the overview compares the month's subsidy with; setting it needs
an admin, proven, and is audited ``budget.set``)."""
from __future__ import annotations

import argparse

from kiosk.cli.main import out_json


def register(sub) -> None:
    report = sub.choices.get("report")
    if report is None:
        return
    rsub = next(x for x in report._actions if isinstance(x, argparse._SubParsersAction))
    o = rsub.add_parser("overview", help="the district server: the console's overview (概览) as of a day")
    o.add_argument("--date", help="YYYY-MM-DD (default today)")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_overview)
    b = rsub.add_parser("budget", help="the district server: the monthly subsidy budget (每月补贴预算)")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--set", dest="set_yuan", metavar="YUAN", help="set it, in yuan (admin, --staff)")
    g.add_argument("--clear", action="store_true", help="clear it (admin, --staff)")
    b.add_argument("--staff", help="with --set/--clear: the acting admin; the password is asked "
                                   "(scripts: KIOSK_STAFF_PASSWORD)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_budget)


def cmd_overview(a: argparse.Namespace) -> int:
    from kiosk.cli.commands_district import _server_app
    from kiosk.district.domain import overview as ov
    from kiosk.money import fen_to_yuan
    from kiosk.timeutil import now_cst, parse_day

    day = parse_day(a.date, "--date") if a.date else now_cst().date()
    app = _server_app()
    try:
        o = ov.overview(app, day, past_fresh=0)
        if a.json:
            out_json({**o.to_json(), "seconds": o.seconds})
            return 0
        print(f"{o.today} 今日就餐 {o.meals_today} 人次")
        for c in o.canteens_today:
            print(f"  {c.name}（{c.canteen_id}）{c.meals}")
        budget = f"，预算 {fen_to_yuan(o.budget_fen)} 元（已用 {o.budget_share * 100:.1f}%）" if o.budget_fen else ""
        print(f"{o.month} 补贴（应报销）{fen_to_yuan(o.net_subsidy_fen)} 元{budget}")
        print(f"对账未决定 {o.undecided.reconcile_total} 笔，待核查 {o.undecided.quarantine} 笔")
        return 0
    finally:
        app.close()


def cmd_budget(a: argparse.Namespace) -> int:
    from kiosk.cli.commands_district import _server_app
    from kiosk.district.domain import overview as ov
    from kiosk.errors import PermissionDeniedError, ValidationError
    from kiosk.money import fen_to_yuan

    app = _server_app()
    try:
        if a.set_yuan is not None or a.clear:
            fen = None if a.clear else ov.parse_budget(a.set_yuan)
            if a.set_yuan is not None and fen is None:
                raise ValidationError("--set 需要金额（元）；清除请用 --clear", detail="--set with an empty amount")
            if not a.staff:
                raise PermissionDeniedError("设置预算需要写明经办人：--staff 工号（管理员），并输入其密码",
                                            detail="--set/--clear needs --staff (an admin) and the password")
            from kiosk.cli.staffpin import prove

            ov.set_budget(app, fen, prove(app, a.staff, min_role="admin"))
        fen = ov.budget_fen(app)
        if a.json:
            out_json({"budget_fen": fen, "budget_yuan": fen_to_yuan(fen) if fen is not None else None})
        else:
            print(f"每月补贴预算：{fen_to_yuan(fen)} 元" if fen is not None else "每月补贴预算：未设置")
        return 0
    finally:
        app.close()
