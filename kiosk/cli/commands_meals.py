"""`kiosk meals book|cancel|import` (报餐/报停, by a named staff member with their PIN, or
password on a district server; audited) and `kiosk report bookings` (the kitchen sheet) /
`kiosk report no-shows` (booked elders who did not come)."""
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
    m = sub.add_parser("meals", help="报餐/报停: meals booked ahead or cancelled")
    ms = m.add_subparsers(dest="meals_command", required=True)
    for name, helptext in (("book", "book a meal (报餐)"), ("cancel", "cancel a booked meal (报停)")):
        p = ms.add_parser(name, help=helptext)
        p.add_argument("--resident", required=True, help="resident id")
        p.add_argument("--date", required=True, help="YYYY-MM-DD, today or later")
        p.add_argument("--meal", required=True, help="早餐 / 午餐 / 晚餐")
        if name == "book":
            p.add_argument("--dish", action="append", default=[], help="dish id (repeat for several)")
            p.add_argument("--portions", type=int, default=1, help="whole number, default 1")
        p.add_argument("--canteen", help="canteen id (default: a terminal's own, else the elder's last canteen)")
        p.add_argument("--staff", required=True, help="acting staff id (PIN: KIOSK_STAFF_PIN for scripts)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_book if name == "book" else cmd_cancel)
    im = ms.add_parser("import", help="a 报餐单 file (CSV or .xlsx); nothing is written if a row is bad")
    im.add_argument("file", type=Path)
    im.add_argument("--dry-run", action="store_true", help="check and show the plan, write nothing")
    im.add_argument("--staff", help="acting staff id (needed unless --dry-run)")
    im.add_argument("--json", action="store_true")
    im.set_defaults(func=cmd_import)

    rps = _report_subparsers(sub)
    b = rps.add_parser("bookings", help="报餐: portions booked per canteen and dish (the kitchen sheet)")
    b.add_argument("--date", help="YYYY-MM-DD (default tomorrow)")
    b.add_argument("--canteen", help="one canteen only")
    b.add_argument("--out", type=Path, help=".xlsx or .pdf")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_report_bookings)
    n = rps.add_parser("no-shows", help="booked elders who did not come, per canteen (a day or a month)")
    g = n.add_mutually_exclusive_group(required=True)
    g.add_argument("--date", help="YYYY-MM-DD")
    g.add_argument("--month", help="YYYY-MM")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_no_shows)


def _app():
    from kiosk.services.context import App

    return App()


def _day(text: str, what: str = "--date") -> date:
    from kiosk.timeutil import parse_day

    return parse_day(text, what)


def _set(a, cancel: bool) -> int:
    from kiosk.cli.staffpin import acting_staff
    from kiosk.services.bookings import set_booking

    app = _app()
    who = acting_staff(app, a.staff, "meal.book")
    res = set_booking(app, a.resident, _day(a.date), a.meal.strip(), actor=who, canteen_id=a.canteen,
                      dish_ids=[] if cancel else a.dish, portions=1 if cancel else a.portions, cancel=cancel)
    if a.json:
        out_json(res.to_json())
    elif cancel:
        print(f"已报停：{res.name}（{res.resident_id}）{res.meal_date} {res.meal}，食堂 {res.canteen_id}")
    else:
        dishes = "、".join(res.dish_ids) or "食堂安排"
        print(f"已报餐：{res.name}（{res.resident_id}）{res.meal_date} {res.meal}，食堂 {res.canteen_id}，"
              f"{res.portions} 份，菜品 {dishes}")
    return 0


def cmd_book(a) -> int:
    return _set(a, cancel=False)


def cmd_cancel(a) -> int:
    return _set(a, cancel=True)


def cmd_import(a) -> int:
    from kiosk.cli.staffpin import acting_staff
    from kiosk.errors import ImportFileError
    from kiosk.services.bookings import import_bookings

    app = _app()
    who = None if a.dry_run else acting_staff(app, a.staff, "meal.book")
    try:
        rep = import_bookings(app, a.file, actor=who, dry_run=a.dry_run)
    except ImportFileError as err:
        if a.json and err.problems:
            out_json({"error": err.user_message, "imported": False, "problems": err.problems})
            return 2
        raise
    if a.json:
        out_json(rep.to_json())
        return 2 if rep.problems else 0
    for w in rep.warnings:
        print(f"提示：{w}")
    for p in rep.problems:
        print(p.text(rep.file))
    j = rep.to_json()
    verb = "将导入（试运行，未写入）" if a.dry_run else "已导入"
    if rep.problems:
        print(f"{rep.file}：{len(rep.problems)} 处错误，未导入")
        return 2
    print(f"{rep.file}：{verb} 报餐 {j['bookings']} 条，报停 {j['cancellations']} 条")
    return 0


def cmd_report_bookings(a) -> int:
    from datetime import timedelta

    from kiosk.services.bookings import kitchen_json, kitchen_sheet
    from kiosk.timeutil import now_cst

    app = _app()
    day = _day(a.date) if a.date else now_cst().date() + timedelta(days=1)
    if a.out:
        from kiosk.db import audit
        from kiosk.services.report_files import write_report_file

        write_report_file(kitchen_sheet(app, day, canteen_id=a.canteen), a.out)
        with app.db.session() as s:
            audit.record_file(s, "system", "report.bookings", a.out, report=str(day))
    rep = kitchen_json(app, day, canteen_id=a.canteen)
    if a.json:
        out_json(rep)
    else:
        if not rep["canteens"]:
            print(f"{day}：没有报餐")
        for c in rep["canteens"]:
            dishes = "，".join(f"{d['name'] or d['dish_id']}{'（' + d['dish_id'] + '）' if d['dish_id'] else ''} "
                              f"{d['portions']} 份" for d in c["dishes"])
            print(f"{c['canteen']}（{c['canteen_id']}）{c['meal']}：{c['elders']} 人 {c['portions']} 份；{dishes}")
    return 0


def cmd_no_shows(a) -> int:
    from kiosk.services.bookings import no_shows

    app = _app()
    rep = no_shows(app, day=_day(a.date) if a.date else None, month=a.month)
    if a.json:
        out_json(rep)
    else:
        for c in rep["canteens"]:
            names = "、".join(f"{x['name']}（{x['date']} {x['meal']}）" for x in c["no_shows"])
            print(f"{c['canteen']}（{c['canteen_id']}）：报餐 {c['booked']}，来了 {c['came']}，未来 {c['no_show']}"
                  + (f"：{names}" if names else ""))
    return 0
